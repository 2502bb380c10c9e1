//! Loading case files: TOML → validated [`Case`]s, with errors that name file, case and field.

use super::ctx::CtxSpec;
use super::ebpf::{
    contents, hex_field, insns_from_rows, maps_from_raw, EbpfCase, EbpfExpected, RawContents,
    RawMap, RawProg,
};
use super::{parse_hex, Case, CaseError, Expected};
use crate::cbpf::{asm, formats, Insn};
use crate::Dialect;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    isa: Option<String>,
    #[serde(default)]
    dialects: Vec<Dialect>,
    #[serde(default)]
    asm: Option<Spanned<String>>,
    #[serde(default)]
    insns: Option<Vec<Vec<i64>>>,
    #[serde(default)]
    mem: Option<String>,
    #[serde(default)]
    maps: Vec<RawMap>,
    #[serde(default)]
    progs: Vec<RawProg>,
    #[serde(default)]
    ddd: Option<String>,
    #[serde(default)]
    packet: Option<String>,
    #[serde(default)]
    ctx: Option<CtxSpec>,
    expect: RawExpect,
    #[serde(default)]
    skip: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    ret: Option<u32>,
    #[serde(default)]
    any_ret: Option<bool>,
    #[serde(default)]
    mem: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    rejected: Option<RawRejected>,
    #[serde(default)]
    r0: Option<RawU64>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    fault: Option<bool>,
    #[serde(default)]
    maps: Option<BTreeMap<String, RawContents>>,
    #[serde(default)]
    linux: Option<Box<RawExpect>>,
    #[serde(default)]
    bsd: Option<Box<RawExpect>>,
    #[serde(default)]
    netbsd: Option<Box<RawExpect>>,
}

/// A 64-bit value in TOML, whose integers stop at 2^63 - 1: a non-negative integer, a negative
/// one (its two's-complement bit pattern), or a string in decimal or `0x` hex.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawU64 {
    Int(i64),
    Text(String),
}

impl RawU64 {
    fn value(&self) -> Result<u64, String> {
        match self {
            RawU64::Int(i) => Ok(*i as u64),
            RawU64::Text(t) => {
                let t = t.trim().replace('_', "");
                let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => t.parse::<u64>(),
                };
                r.map_err(|_| format!("`{t}` is not a 64-bit value"))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawRejected {
    Flag(bool),
    Rule(String),
}

/// The result of loading a set of files: the cases that loaded and the errors of those that did
/// not. One bad case never hides the others.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Cases loaded successfully, in file order.
    pub cases: Vec<Case>,
    /// eBPF cases loaded successfully (TOML `isa = "ebpf"` and `.data` files), in file order.
    pub ebpf: Vec<EbpfCase>,
    /// Problems found, each naming file, case and field.
    pub errors: Vec<CaseError>,
}

/// Loads every case file under `path` (or `path` itself if it is a file), sorted by path:
/// TOML case files and bpf_conformance `.data` files (named `<directory>/<stem>`).
/// Walking a directory skips hidden directories, `target/`, and `Cargo.toml` manifests, so
/// `bpfconf run spec/` finds just the cases.
pub fn load_path(path: &Path) -> LoadReport {
    let mut files = Vec::new();
    collect_toml(path, &mut files);
    files.sort();
    let mut report = LoadReport::default();
    let mut seen = BTreeSet::new();
    for f in files {
        let r = load_file(&f);
        report.errors.extend(r.errors);
        let dup = |name: &str, file: &Path, line: usize| CaseError {
            file: file.to_path_buf(),
            case: Some(name.to_string()),
            line: Some(line),
            message: "duplicate case name (another file has the same group/name)".into(),
        };
        for c in r.cases {
            if !seen.insert(c.name.clone()) {
                report.errors.push(dup(&c.name, &c.file, c.line));
            } else {
                report.cases.push(c);
            }
        }
        for c in r.ebpf {
            if !seen.insert(c.name.clone()) {
                report.errors.push(dup(&c.name, &c.file, c.line));
            } else {
                report.ebpf.push(c);
            }
        }
    }
    report
}

fn collect_toml(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let skip = if p.is_dir() {
                    name.starts_with('.') || name == "target"
                } else {
                    name == "Cargo.toml" || !(name.ends_with(".toml") || name.ends_with(".data"))
                };
                if !skip {
                    collect_toml(&p, out);
                }
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

/// Loads one case file (`.data` files are bpf_conformance tests, anything else TOML).
pub fn load_file(path: &Path) -> LoadReport {
    if path.extension().is_some_and(|e| e == "data") {
        let mut r = LoadReport::default();
        match crate::ebpf::data::load_data(path).map_err(|e| CaseError {
            file: path.to_path_buf(),
            case: None,
            line: (e.line > 0).then_some(e.line),
            message: e.message,
        }) {
            Ok(t) => match EbpfCase::from_data(t, path.to_path_buf()) {
                Ok(c) => r.ebpf.push(c),
                Err(e) => r.errors.push(e),
            },
            Err(e) => r.errors.push(e),
        }
        return r;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, &text),
        Err(e) => LoadReport {
            errors: vec![CaseError {
                file: path.to_path_buf(),
                case: None,
                line: None,
                message: format!("cannot read: {e}"),
            }],
            ..Default::default()
        },
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Loads cases from TOML text; `path` names the file in errors and gives the group (its stem).
pub fn load_str(path: &Path, text: &str) -> LoadReport {
    let mut report = LoadReport::default();
    let file_err = |line: Option<usize>, message: String| CaseError {
        file: path.to_path_buf(),
        case: None,
        line,
        message,
    };
    let group = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            report
                .errors
                .push(file_err(line, e.message().trim().to_string()));
            return report;
        }
    };
    let mut names = BTreeSet::new();
    for spanned in raw.case {
        let line = line_of(text, spanned.span().start);
        let rc = spanned.into_inner();
        let name = format!("{group}/{}", rc.name);
        let err = |field: &str, message: String, at: Option<usize>| CaseError {
            file: path.to_path_buf(),
            case: Some(name.clone()),
            line: Some(at.unwrap_or(line)),
            message: format!("{field}: {message}"),
        };
        if !names.insert(name.clone()) {
            report
                .errors
                .push(err("name", "duplicate case name in this file".into(), None));
            continue;
        }
        let built = match rc.isa.as_deref() {
            None | Some("classic") => {
                build_case(path, text, line, &name, rc).map(|c| report.cases.push(c))
            }
            Some("ebpf") => build_ebpf(path, text, line, &name, rc).map(|c| report.ebpf.push(c)),
            Some(other) => Err((
                "isa",
                format!("unknown ISA `{other}` (classic or ebpf)"),
                None,
            )),
        };
        if let Err((field, msg, at)) = built {
            report.errors.push(err(field, msg, at));
        }
    }
    report
}

type BuildErr = (&'static str, String, Option<usize>);

fn build_case(
    path: &Path,
    text: &str,
    line: usize,
    name: &str,
    rc: RawCase,
) -> Result<Case, BuildErr> {
    if rc.name.is_empty() || rc.name.contains('/') || rc.name.contains(char::is_whitespace) {
        return Err((
            "name",
            "must be non-empty, without `/` or whitespace".into(),
            None,
        ));
    }
    if rc.dialects.is_empty() {
        return Err(("dialects", "at least one dialect is required".into(), None));
    }
    if rc.mem.is_some() || !rc.maps.is_empty() || !rc.progs.is_empty() {
        return Err((
            "mem",
            "`mem`, `maps` and `progs` are for eBPF cases (`isa = \"ebpf\"`); classic cases use `packet`".into(),
            None,
        ));
    }
    let e = &rc.expect;
    if e.r0.is_some() || e.memory.is_some() || e.fault.is_some() || e.maps.is_some() {
        return Err((
            "expect",
            "`r0`, `memory` and `fault` are for eBPF cases; classic cases use `ret`".into(),
            None,
        ));
    }
    let sources = [rc.asm.is_some(), rc.insns.is_some(), rc.ddd.is_some()];
    if sources.iter().filter(|b| **b).count() != 1 {
        return Err((
            "program",
            "exactly one of `asm`, `insns` or `ddd` is required".into(),
            None,
        ));
    }
    let program: Vec<Insn> = if let Some(a) = rc.asm {
        let base = line_of(text, a.span().start);
        asm::assemble(a.get_ref()).map_err(|e| {
            // TOML trims the newline right after `"""`, so asm line 1 is the next file line.
            let multiline = text[a.span().start..].starts_with("\"\"\"")
                || text[a.span().start..].starts_with("'''");
            let at = base + e.line.saturating_sub(1) + usize::from(multiline);
            ("asm", format!("line {}: {}", e.line, e.message), Some(at))
        })?
    } else if let Some(quads) = rc.insns {
        let mut v = Vec::with_capacity(quads.len());
        for (i, row) in quads.into_iter().enumerate() {
            let bad = || {
                (
                    "insns",
                    format!(
                        "instruction {i}: classic rows are [code, jt, jf, k]; code must fit 16 bits, jt/jf 8 bits and k 32 bits"
                    ),
                    None,
                )
            };
            let [code, jt, jf, k] = row[..] else {
                return Err(bad());
            };
            let (Ok(code), Ok(jt), Ok(jf), Ok(k)) = (
                u16::try_from(code),
                u8::try_from(jt),
                u8::try_from(jf),
                u32::try_from(k),
            ) else {
                return Err(bad());
            };
            v.push(Insn::new(code, jt, jf, k));
        }
        v
    } else {
        let t = rc.ddd.unwrap_or_default();
        formats::parse_ddd(&t).map_err(|e| ("ddd", e.to_string(), None))?
    };
    let packet = match rc.packet {
        Some(p) => parse_hex(&p).map_err(|e| ("packet", e, None))?,
        None => Vec::new(),
    };
    let ctx = rc
        .ctx
        .unwrap_or_default()
        .into_ctx()
        .map_err(|e| ("ctx", e, None))?;
    let mut expect = BTreeMap::new();
    for d in &rc.dialects {
        let e = resolve_expect(&rc.expect, *d, ctx.memwords()).map_err(|m| ("expect", m, None))?;
        expect.insert(*d, e);
    }
    for (dial, over) in [
        (Dialect::Linux, &rc.expect.linux),
        (Dialect::Bsd, &rc.expect.bsd),
        (Dialect::Netbsd, &rc.expect.netbsd),
    ] {
        if over.is_some() && !rc.dialects.contains(&dial) {
            return Err((
                "expect",
                format!("has an override for `{dial}`, which is not in `dialects`"),
                None,
            ));
        }
    }
    Ok(Case {
        name: name.to_string(),
        file: path.to_path_buf(),
        line,
        description: rc.description,
        dialects: rc.dialects,
        program,
        packet,
        ctx,
        expect,
        skip: rc.skip,
    })
}

fn resolve_expect(base: &RawExpect, d: Dialect, memwords: usize) -> Result<Expected, String> {
    let over = match d {
        Dialect::Linux => base.linux.as_deref(),
        Dialect::Bsd => base.bsd.as_deref(),
        Dialect::Netbsd => base.netbsd.as_deref(),
    };
    if let Some(o) = over {
        if o.linux.is_some() || o.bsd.is_some() || o.netbsd.is_some() {
            return Err(format!("the `{d}` override cannot nest dialect overrides"));
        }
    }
    // An override replaces the outcome kind wholesale if it names one.
    let pick = |o: Option<&RawExpect>| -> RawExpect {
        match o {
            Some(o) if o.ret.is_some() || o.any_ret.is_some() || o.rejected.is_some() => {
                let mut r = o.clone();
                if r.mem.is_none() && r.rejected.is_none() {
                    r.mem = base.mem.clone();
                }
                r
            }
            Some(o) => RawExpect {
                mem: o.mem.clone().or_else(|| base.mem.clone()),
                ..base.clone()
            },
            None => base.clone(),
        }
    };
    let e = pick(over);
    let rejected = match &e.rejected {
        None | Some(RawRejected::Flag(false)) => None,
        Some(RawRejected::Flag(true)) => Some(None),
        Some(RawRejected::Rule(r)) => Some(Some(r.clone())),
    };
    let any = e.any_ret.unwrap_or(false);
    match (rejected, e.ret, any) {
        (Some(rule), None, false) => {
            if e.mem.is_some() {
                return Err(format!("[{d}] `mem` makes no sense with `rejected`"));
            }
            Ok(Expected::Reject { rule })
        }
        (None, Some(_), true) => Err(format!("[{d}] `ret` and `any_ret` exclude each other")),
        (None, ret, any) if ret.is_some() || any => {
            let mut mem = BTreeMap::new();
            for (k, v) in e.mem.iter().flatten() {
                let slot: usize = k
                    .parse()
                    .map_err(|_| format!("[{d}] mem key `{k}` is not a slot number"))?;
                if slot >= memwords {
                    return Err(format!(
                        "[{d}] mem slot {slot} out of range (memory has {memwords} words)"
                    ));
                }
                mem.insert(slot, *v);
            }
            Ok(Expected::Accept { ret, mem })
        }
        (None, _, _) => Err(format!("[{d}] needs `ret`, `any_ret = true` or `rejected`")),
        (Some(_), _, _) => Err(format!("[{d}] `rejected` excludes `ret` and `any_ret`")),
    }
}

fn build_ebpf(
    path: &Path,
    text: &str,
    line: usize,
    name: &str,
    rc: RawCase,
) -> Result<EbpfCase, BuildErr> {
    if !rc.dialects.is_empty() || rc.packet.is_some() || rc.ctx.is_some() || rc.ddd.is_some() {
        return Err((
            "isa",
            "eBPF cases take no `dialects`, `packet`, `ctx` or `ddd` (use `mem`)".into(),
            None,
        ));
    }
    let program = match (rc.asm, rc.insns) {
        (Some(a), None) => {
            let base = line_of(text, a.span().start);
            let multiline = text[a.span().start..].starts_with("\"\"\"");
            crate::ebpf::asm::assemble(a.get_ref()).map_err(|e| {
                let at = base + e.line.saturating_sub(1) + usize::from(multiline);
                ("asm", format!("line {}: {}", e.line, e.message), Some(at))
            })?
        }
        (None, Some(rows)) => insns_from_rows(&rows).map_err(|e| ("insns", e, None))?,
        _ => {
            return Err((
                "program",
                "exactly one of `asm` or `insns` is required".into(),
                None,
            ))
        }
    };
    let mem = hex_field(&rc.mem)
        .map_err(|e| ("mem", e, None))?
        .unwrap_or_default();
    let e = &rc.expect;
    if e.ret.is_some()
        || e.mem.is_some()
        || e.linux.is_some()
        || e.bsd.is_some()
        || e.netbsd.is_some()
    {
        return Err((
            "expect",
            "eBPF cases expect `r0`, `memory`, `fault` or `rejected`".into(),
            None,
        ));
    }
    let memory = hex_field(&e.memory).map_err(|m| ("expect.memory", m, None))?;
    let (maps, map_init) = maps_from_raw(&rc.maps).map_err(|m| ("maps", m, None))?;
    let mut progs = Vec::new();
    for (i, p) in rc.progs.iter().enumerate() {
        progs.push(
            crate::ebpf::asm::assemble(&p.asm)
                .map_err(|e| ("progs", format!("progs[{i}]: {e}"), None))?,
        );
    }
    let mut expect_maps = BTreeMap::new();
    for (name, raw) in e.maps.iter().flatten() {
        let Some(idx) = maps.iter().position(|d| &d.name == name) else {
            return Err(("expect.maps", format!("no map named `{name}`"), None));
        };
        let c = contents(&maps[idx], raw).map_err(|m| ("expect.maps", m, None))?;
        expect_maps.insert(idx, c);
    }
    let rejected = match &e.rejected {
        None | Some(RawRejected::Flag(false)) => None,
        Some(RawRejected::Flag(true)) => Some(None),
        Some(RawRejected::Rule(r)) => Some(Some(r.clone())),
    };
    let fault = e.fault.unwrap_or(false);
    let any = e.any_ret.unwrap_or(false);
    let r0 =
        e.r0.as_ref()
            .map(RawU64::value)
            .transpose()
            .map_err(|m| ("expect.r0", m, None))?;
    let expect = match (rejected, fault, r0, any) {
        (Some(rule), false, None, false) if memory.is_none() && expect_maps.is_empty() => {
            EbpfExpected::Reject { rule }
        }
        (None, true, None, false) if memory.is_none() && expect_maps.is_empty() => {
            EbpfExpected::Fault
        }
        (None, false, r0, any)
            if r0.is_some() || any || memory.is_some() || !expect_maps.is_empty() =>
        {
            if r0.is_some() && any {
                return Err(("expect", "`r0` and `any_ret` exclude each other".into(), None));
            }
            EbpfExpected::Accept {
                r0,
                memory,
                maps: expect_maps,
            }
        }
        _ => {
            return Err((
                "expect",
                "needs exactly one of `r0` (with optional `memory`, `maps`), `fault = true` or `rejected`"
                    .into(),
                None,
            ))
        }
    };
    Ok(EbpfCase {
        name: name.to_string(),
        file: path.to_path_buf(),
        line,
        description: rc.description,
        program,
        mem,
        maps,
        map_init,
        progs,
        expect,
        skip: rc.skip,
    })
}
