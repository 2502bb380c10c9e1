//! eBPF cases: from TOML (`isa = "ebpf"`) and from bpf_conformance `.data` files.

use super::{parse_hex, CaseError};
use crate::ebpf::data::DataTest;
use crate::ebpf::maps::{MapContents, MapDef, MapKind};
use crate::ebpf::Insn;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What an eBPF case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EbpfExpected {
    /// The program loads and returns `r0` (full 64 bits, if given), leaving the memory buffer
    /// equal to `memory` (if given).
    Accept {
        /// Expected R0.
        r0: Option<u64>,
        /// Expected memory buffer after the run.
        memory: Option<Vec<u8>>,
        /// Expected contents of maps after the run, by map index (maps not listed are not
        /// compared). Array maps compare their non-zero entries.
        maps: BTreeMap<usize, MapContents>,
    },
    /// Our structural validator (RFC 9669 rules) rejects it; `rule` names the rule if stated.
    Reject {
        /// Validator rule name (e.g. `unused_field`).
        rule: Option<String>,
    },
    /// The program is well formed but faults at run time (out-of-bounds access…); engines with
    /// a verifier may refuse it at load time instead.
    Fault,
    /// Either a rejection or a fault (bpf_conformance's `-- error` section).
    Error(String),
}

/// A fully loaded eBPF case.
#[derive(Debug, Clone)]
pub struct EbpfCase {
    /// `group/name`.
    pub name: String,
    /// File it came from.
    pub file: PathBuf,
    /// 1-based line of its header (1 for `.data` files).
    pub line: usize,
    /// Free text.
    pub description: Option<String>,
    /// The program slots.
    pub program: Vec<Insn>,
    /// The memory buffer (R1 points to it, R2 holds its length).
    pub mem: Vec<u8>,
    /// Maps the program uses (by index in `lddw`).
    pub maps: Vec<MapDef>,
    /// Initial contents of each map (same order as `maps`).
    pub map_init: Vec<MapContents>,
    /// Tail-call target programs (prog_array values index this list).
    pub progs: Vec<Vec<Insn>>,
    /// The expectation.
    pub expect: EbpfExpected,
    /// Engines that must skip it, with the reason.
    pub skip: BTreeMap<String, String>,
}

impl EbpfCase {
    /// The group (file stem, or directory for `.data` files) part of the name.
    pub fn group(&self) -> &str {
        self.name.split('/').next().unwrap_or(&self.name)
    }

    /// Builds a case from a parsed bpf_conformance `.data` file, named `<dir>/<stem>`.
    pub fn from_data(t: DataTest, file: PathBuf) -> Result<EbpfCase, CaseError> {
        let dir = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let name = format!("{dir}/{}", t.name);
        let expect = match (t.result, t.error) {
            (Some(r), None) => EbpfExpected::Accept {
                r0: Some(r),
                memory: None,
                maps: BTreeMap::new(),
            },
            (None, Some(e)) => EbpfExpected::Error(e),
            _ => {
                return Err(CaseError {
                    file,
                    case: Some(name),
                    line: None,
                    message: "needs exactly one of `-- result` or `-- error`".into(),
                })
            }
        };
        Ok(EbpfCase {
            name,
            line: 1,
            description: t.asm.as_ref().map(|_| "bpf_conformance test".to_string()),
            program: t.program,
            mem: t.mem,
            maps: vec![],
            map_init: vec![],
            progs: vec![],
            expect,
            skip: BTreeMap::new(),
            file,
        })
    }
}

/// Parses eBPF instruction rows `[code, dst, src, off, imm]` (TOML `insns`, serve `ebpf`);
/// imm may be given signed or as its unsigned 32-bit pattern.
pub fn insns_from_rows(rows: &[Vec<i64>]) -> Result<Vec<Insn>, String> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let [code, dst, src, off, imm] = r[..] else {
                return Err(format!(
                    "instruction {i}: eBPF rows are [code, dst, src, off, imm]"
                ));
            };
            let code = u8::try_from(code).map_err(|_| format!("instruction {i}: code"))?;
            let dst = u8::try_from(dst)
                .ok()
                .filter(|r| *r < 16)
                .ok_or(format!("instruction {i}: dst"))?;
            let src = u8::try_from(src)
                .ok()
                .filter(|r| *r < 16)
                .ok_or(format!("instruction {i}: src"))?;
            let off = i16::try_from(off).map_err(|_| format!("instruction {i}: off"))?;
            let imm = i32::try_from(imm)
                .or_else(|_| u32::try_from(imm).map(|u| u as i32))
                .map_err(|_| format!("instruction {i}: imm"))?;
            Ok(Insn::new(code, dst, src, off, imm))
        })
        .collect()
}

/// Parses an optional hex memory field.
pub(crate) fn hex_field(v: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    v.as_ref().map(|s| parse_hex(s)).transpose()
}

/// TOML form of a map declaration (`[[case.maps]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMap {
    name: String,
    #[serde(rename = "type")]
    kind: MapKind,
    #[serde(default)]
    key_size: Option<u32>,
    value_size: u32,
    max_entries: u32,
    #[serde(default)]
    flags: u32,
    #[serde(default)]
    init: Option<RawContents>,
}

/// TOML form of map contents: `[["key hex", "value hex"], …]` for keyed maps,
/// `["value hex", …]` for queue and stack maps.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawContents {
    Keyed(Vec<[String; 2]>),
    Sequence(Vec<String>),
}

/// Converts contents for a map of `def`, checking sizes; errors name the map.
pub(crate) fn contents(def: &MapDef, raw: &RawContents) -> Result<MapContents, String> {
    let n = &def.name;
    let value = |v: &str| -> Result<Vec<u8>, String> {
        let b = parse_hex(v).map_err(|e| format!("map `{n}`: value `{v}`: {e}"))?;
        if b.len() != def.value_size as usize {
            return Err(format!(
                "map `{n}`: value `{v}` has {} bytes, value_size is {}",
                b.len(),
                def.value_size
            ));
        }
        Ok(b)
    };
    match (def.kind.is_sequence(), raw) {
        (true, RawContents::Sequence(vs)) => Ok(MapContents::Sequence(
            vs.iter().map(|v| value(v)).collect::<Result<_, _>>()?,
        )),
        (true, RawContents::Keyed(k)) if k.is_empty() => Ok(MapContents::Sequence(vec![])),
        (false, RawContents::Keyed(kvs)) => {
            let mut m = BTreeMap::new();
            for [k, v] in kvs {
                let kb = parse_hex(k).map_err(|e| format!("map `{n}`: key `{k}`: {e}"))?;
                if kb.len() != def.key_size as usize {
                    return Err(format!(
                        "map `{n}`: key `{k}` has {} bytes, key_size is {}",
                        kb.len(),
                        def.key_size
                    ));
                }
                if m.insert(kb, value(v)?).is_some() {
                    return Err(format!("map `{n}`: key `{k}` given twice"));
                }
            }
            Ok(MapContents::Keyed(m))
        }
        (false, RawContents::Sequence(s)) if s.is_empty() => {
            Ok(MapContents::Keyed(BTreeMap::new()))
        }
        (true, _) => Err(format!(
            "map `{n}`: queue/stack contents are [\"value\", …]"
        )),
        (false, _) => Err(format!("map `{n}`: contents are [[\"key\", \"value\"], …]")),
    }
}

/// Converts declared maps: definitions and initial contents.
pub(crate) fn maps_from_raw(raw: &[RawMap]) -> Result<(Vec<MapDef>, Vec<MapContents>), String> {
    let mut defs = Vec::new();
    let mut init = Vec::new();
    for r in raw {
        if defs.iter().any(|d: &MapDef| d.name == r.name) {
            return Err(format!("map `{}` declared twice", r.name));
        }
        let key_size = r.key_size.unwrap_or(match r.kind {
            MapKind::Queue | MapKind::Stack => 0,
            _ => 4,
        });
        let def = MapDef {
            name: r.name.clone(),
            kind: r.kind,
            key_size,
            value_size: r.value_size,
            max_entries: r.max_entries,
            flags: r.flags,
        };
        def.validate()?;
        let c = match &r.init {
            Some(c) => contents(&def, c)?,
            None if def.kind.is_sequence() => MapContents::Sequence(vec![]),
            None => MapContents::Keyed(BTreeMap::new()),
        };
        if let MapContents::Keyed(m) = &c {
            if m.len() > def.max_entries as usize {
                return Err(format!("map `{}`: more entries than max_entries", def.name));
            }
        }
        defs.push(def);
        init.push(c);
    }
    Ok((defs, init))
}

/// TOML form of a tail-call target (`[[case.progs]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProg {
    pub(crate) asm: String,
}
