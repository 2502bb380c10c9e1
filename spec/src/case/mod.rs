//! The TOML case schema and its loader.
//!
//! A case file holds `[[case]]` tables; the file stem is the group and every case is named
//! `group/name`. Unknown fields are rejected (`deny_unknown_fields`), and every error names the
//! file, the case and the field (and the line where it is known). See `spec/README.md` for the
//! schema with examples.

mod ctx;
mod ebpf;
mod load;

pub use ctx::{Ctx, CtxSpec, Dev};
pub use ebpf::{insns_from_rows as ebpf_rows, EbpfCase, EbpfExpected};
pub use load::{load_file, load_path, load_str, LoadReport};

use crate::cbpf::Insn;
use crate::Dialect;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// What a case expects from one dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The checker accepts the program and the run returns `ret` (if given), leaving the listed
    /// memory words with the given values.
    Accept {
        /// The exact 32-bit return value, or `None` when any value is acceptable
        /// (nondeterministic extensions such as `rand`).
        ret: Option<u32>,
        /// Expected `M[slot]` values after the run (only the listed slots are compared).
        mem: BTreeMap<usize, u32>,
    },
    /// The dialect's checker rejects the program; `rule` names the checker rule if the case
    /// states it (engines that cannot tell rules apart, like the kernel, match any rejection).
    Reject {
        /// Checker rule name, e.g. `div_by_zero`.
        rule: Option<String>,
    },
}

/// A fully loaded, validated case.
#[derive(Debug, Clone)]
pub struct Case {
    /// `group/name`.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The 1-based line of its `[[case]]` header.
    pub line: usize,
    /// Free-text description.
    pub description: Option<String>,
    /// Dialects the case applies to.
    pub dialects: Vec<Dialect>,
    /// The program.
    pub program: Vec<Insn>,
    /// The packet bytes.
    pub packet: Vec<u8>,
    /// The execution context.
    pub ctx: Ctx,
    /// The expectation per dialect (one entry for each of `dialects`).
    pub expect: BTreeMap<Dialect, Expected>,
    /// Engines that must skip this case, with the reason.
    pub skip: BTreeMap<String, String>,
}

impl Case {
    /// The group (file stem) part of the name.
    pub fn group(&self) -> &str {
        self.name.split('/').next().unwrap_or(&self.name)
    }
}

/// A problem found while loading cases: it names the file, the case and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    /// The file.
    pub file: PathBuf,
    /// The case name, when the error is inside one.
    pub case: Option<String>,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(c) = &self.case {
            write!(f, ": case `{c}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CaseError {}

/// Parses a hex string: whitespace, `:` and `_` separators are allowed, an optional `0x` prefix
/// is stripped.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'_')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let txt = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(txt, 16).map_err(|_| format!("bad hex byte `{txt}` at byte {i}"))
        })
        .collect()
}

/// Formats bytes as lowercase hex without separators.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
