//! What a case exercises, derived from its program: the checklist groups it counts in and the
//! opcode / extension / ISA rows it uses.
//!
//! Classic: an opcode row per instruction (`Op::name`), group `load` (LD/LDX, except ancillary
//! loads), `store`, `alu`, `jump`, `ret`, `misc` (TAX/TXA), `cop` (NetBSD COP/COPX); an
//! `LD ABS` whose k is in `SKF_AD_OFF..SKF_AD_OFF+SKF_AD_MAX` is the Linux extension it names
//! (group `ext <name>`, not `load`), `ld len` also counts as the `len` extension, and a packet
//! load whose k is a negative `SKF_NET_OFF`/`SKF_LL_OFF` offset counts in that group. Cases a
//! dialect's checker must reject also count in `checker` for that variant.
//!
//! eBPF: an ISA row per instruction, its conformance group (`base32`…`callx`), and `atomics`,
//! `calls`, `memory` (loads, stores, atomics), `helpers` (`call` of a helper), `tail calls`
//! (helper 12, `bpf_tail_call`, or a case with tail-call target programs), `maps` (`lddw` of a
//! map fd/value or index, or a case defining maps); cases expecting a rejection or fault also
//! count in `rejections & faults`.

use bpfconf_spec::case::{Case, EbpfCase, EbpfExpected, Expected};
use bpfconf_spec::cbpf::ext::{Ext, NegBase, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{Op, ALL_OPS};
use bpfconf_spec::ebpf::isa::{classify_insn, slot_starts, Form, Group, Sel, ISA};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// The part of the per-opcode matrix a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// The 52 classic opcodes.
    Classic,
    /// Linux classic extensions (ancillary loads and `len`).
    Ext,
    /// Linux negative packet offsets (`SKF_NET_OFF`, `SKF_LL_OFF`).
    Negoff,
    /// eBPF ISA rows (RFC 9669 plus `callx`).
    Ebpf,
}

impl Section {
    /// Every section, in checklist order.
    pub const ALL: [Section; 4] = [
        Section::Classic,
        Section::Ext,
        Section::Negoff,
        Section::Ebpf,
    ];

    /// Heading of the section in the checklist.
    pub fn title(self) -> &'static str {
        match self {
            Section::Classic => "Classic opcodes",
            Section::Ext => "Linux extensions",
            Section::Negoff => "Linux negative offsets",
            Section::Ebpf => "eBPF ISA rows",
        }
    }
}

/// A matrix row: its section, stable name and a note (opcode, mnemonic…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDef {
    /// Section.
    pub section: Section,
    /// Stable name (`ld_abs_w`, `poff`, `alu64_add_k`…).
    pub name: String,
    /// Opcode or mnemonic, for people.
    pub note: String,
}

/// Checklist groups of classic cases, in display order.
pub fn classic_groups() -> Vec<String> {
    let mut g: Vec<String> = [
        "load", "store", "alu", "jump", "ret", "misc", "cop", "checker",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    g.push(negoff_group(NegBase::Net));
    g.push(negoff_group(NegBase::Ll));
    g.extend(Ext::ALL.iter().map(|e| ext_group(e.name())));
    g
}

/// Checklist groups of eBPF cases, in display order.
pub fn ebpf_groups() -> Vec<String> {
    let mut g: Vec<String> = Group::ALL.iter().map(|g| g.name().to_string()).collect();
    g.extend(
        [
            "atomics",
            "calls",
            "memory",
            "helpers",
            "maps",
            "tail calls",
            "rejections & faults",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    g
}

fn ext_group(name: &str) -> String {
    format!("ext {name}")
}

fn negoff_name(b: NegBase) -> &'static str {
    match b {
        NegBase::Net => "SKF_NET_OFF",
        NegBase::Ll => "SKF_LL_OFF",
    }
}

fn negoff_group(b: NegBase) -> String {
    format!("negative offsets ({})", negoff_name(b))
}

/// Every matrix row, in display order: 52 classic opcodes, the extensions, the two negative
/// offset bases, then the eBPF ISA rows.
pub fn all_rows() -> Vec<RowDef> {
    let mut rows: Vec<RowDef> = ALL_OPS
        .iter()
        .map(|op| RowDef {
            section: Section::Classic,
            name: op.name(),
            note: format!("0x{:02x}", op.code()),
        })
        .collect();
    rows.extend(Ext::ALL.iter().map(|e| RowDef {
        section: Section::Ext,
        name: e.name().to_string(),
        note: match e.ad_offset() {
            Some(o) => format!("SKF_AD_OFF+{o}"),
            None => "ld len (opcode 0x80)".into(),
        },
    }));
    rows.extend([NegBase::Net, NegBase::Ll].iter().map(|b| RowDef {
        section: Section::Negoff,
        name: negoff_name(*b).to_string(),
        note: "ld/ldx abs,ind with a negative offset".into(),
    }));
    rows.extend(ISA.iter().map(|r| RowDef {
        section: Section::Ebpf,
        name: r.name.to_string(),
        note: format!(
            "{} · 0x{:02x} · {} · v{}",
            r.mnemonic,
            r.code,
            r.group.name(),
            r.version
        ),
    }));
    rows
}

/// What one case exercises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFeatures {
    /// True for eBPF cases.
    pub ebpf: bool,
    /// Groups it counts in (for every variant).
    pub groups: BTreeSet<String>,
    /// Variants whose expectation is a rejection (classic `checker` group).
    pub reject_variants: BTreeSet<String>,
    /// Matrix rows it uses.
    pub rows: BTreeSet<(Section, String)>,
}

impl CaseFeatures {
    /// The groups a result of this case in `variant` counts in.
    pub fn groups_for(&self, variant: &str) -> Vec<String> {
        let mut g: Vec<String> = self.groups.iter().cloned().collect();
        if self.reject_variants.contains(variant) {
            g.push(
                if self.ebpf {
                    "rejections & faults"
                } else {
                    "checker"
                }
                .into(),
            );
        }
        g
    }
}

/// Features of a classic case.
pub fn classic(case: &Case) -> CaseFeatures {
    let mut f = CaseFeatures::default();
    for insn in &case.program {
        let Some(op) = insn.op() else { continue };
        f.rows.insert((Section::Classic, op.name()));
        let mut g = |s: &str| {
            f.groups.insert(s.to_string());
        };
        match op {
            Op::LdAbs(_) if (SKF_AD_OFF..SKF_AD_OFF.wrapping_add(SKF_AD_MAX)).contains(&insn.k) => {
                let name = Ext::from_k(insn.k).map_or("unknown", Ext::name);
                g(&ext_group(name));
                f.rows.insert((Section::Ext, name.to_string()));
            }
            Op::LdAbs(_) | Op::LdInd(_) => {
                g("load");
                if let Some((base, _)) = NegBase::classify(insn.k as i32) {
                    g(&negoff_group(base));
                    f.rows
                        .insert((Section::Negoff, negoff_name(base).to_string()));
                }
            }
            Op::LdLen => {
                g("load");
                g(&ext_group(Ext::Len.name()));
                f.rows.insert((Section::Ext, Ext::Len.name().to_string()));
            }
            Op::LdImm | Op::LdMem | Op::LdxLen | Op::LdxMsh | Op::LdxImm | Op::LdxMem => g("load"),
            Op::St | Op::Stx => g("store"),
            Op::Alu(..) | Op::Neg => g("alu"),
            Op::Ja | Op::Jmp(..) => g("jump"),
            Op::RetK | Op::RetA | Op::RetX => g("ret"),
            Op::Tax | Op::Txa => g("misc"),
            Op::Cop | Op::Copx => g("cop"),
        }
    }
    for (d, e) in &case.expect {
        if matches!(e, Expected::Reject { .. }) {
            f.reject_variants.insert(d.to_string());
        }
    }
    f
}

/// Features of an eBPF case.
pub fn ebpf(case: &EbpfCase) -> CaseFeatures {
    let mut f = CaseFeatures {
        ebpf: true,
        ..Default::default()
    };
    let starts = slot_starts(&case.program);
    for (insn, _) in case.program.iter().zip(&starts).filter(|(_, s)| **s) {
        let Some(row) = classify_insn(insn) else {
            continue;
        };
        f.rows.insert((Section::Ebpf, row.name.to_string()));
        let mut g = |s: &str| {
            f.groups.insert(s.to_string());
        };
        g(row.group.name());
        match row.form {
            Form::Atomic => {
                g("atomics");
                g("memory");
            }
            Form::Ldx | Form::St | Form::Stx => g("memory"),
            Form::Callx | Form::CallLocal => g("calls"),
            Form::Call => {
                g("calls");
                if row.sel == Sel::Src(0) {
                    g("helpers");
                    if insn.imm == 12 {
                        g("tail calls");
                    }
                }
            }
            Form::Lddw if matches!(row.sel, Sel::Src(1 | 2 | 5 | 6)) => g("maps"),
            _ => {}
        }
    }
    if !case.maps.is_empty() {
        f.groups.insert("maps".into());
    }
    if !case.progs.is_empty() {
        f.groups.insert("tail calls".into());
    }
    if !matches!(case.expect, EbpfExpected::Accept { .. }) {
        f.reject_variants.insert("ebpf".into());
    }
    f
}

/// Features of loaded cases, by (case name, is eBPF): a result of variant `ebpf` looks up
/// `(case, true)`, a classic one `(case, false)`.
pub type Index = HashMap<(String, bool), CaseFeatures>;

/// Indexes the features of loaded cases (the first case of a name wins).
pub fn index(cases: &[Case], ebpf_cases: &[EbpfCase]) -> Index {
    let mut m = HashMap::new();
    for c in cases {
        m.entry((c.name.clone(), false))
            .or_insert_with(|| classic(c));
    }
    for c in ebpf_cases {
        m.entry((c.name.clone(), true)).or_insert_with(|| ebpf(c));
    }
    m
}
