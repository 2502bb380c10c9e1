//! eBPF cases: from TOML (`isa = "ebpf"`) and from bpf_conformance `.data` files.

use super::{parse_hex, CaseError};
use crate::ebpf::data::DataTest;
use crate::ebpf::Insn;
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
