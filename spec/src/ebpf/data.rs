//! Parser for bpf_conformance's `.data` test files.
//!
//! A file is a sequence of sections, each introduced by a line `-- NAME`; lines before the first
//! section may only be blank or `#` comments. The sections (each at most once):
//!
//! | section | content |
//! |---|---|
//! | `-- asm` | the program in bpf_conformance assembly ([`super::asm`]) |
//! | `-- raw` | the program as whitespace-separated 64-bit words, one per slot: `0x`-prefixed hex or decimal; the word's little-endian bytes are the slot (`0x0000000000000095` is `exit`) |
//! | `-- mem` | the memory handed to the program (R1 points at it, R2 is its length): whitespace-separated hex bytes |
//! | `-- result` | the expected R0: one number, `0x` hex or decimal |
//! | `-- error` | the expected error text |
//! | `-- c` | the C source the program was compiled from (kept, not interpreted) |
//! | `-- no register offset` | a uBPF heritage: skip this test under uBPF's `--register-offset` JIT option (`ubpf_set_register_offset`, which remaps eBPF registers onto other host registers to test register allocation); the content (e.g. `call instruction`) is the reason |
//!
//! `#` starts a comment in every section but `-- c`. When both `-- raw` and `-- asm` are present
//! the raw words are the program (as in bpf_conformance), but the assembly must still assemble.
//!
//! As in bpf_conformance, a file must state an expectation — a `-- result`, or a non-empty
//! `-- error` — and must contain at least one instruction. bpf_conformance skips such files and
//! files with unknown sections with a message; here they are [`DataError`]s, as are malformed
//! numbers, which bpf_conformance reads with `stoull` (silently ignoring trailing junk).

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use super::asm::assemble;
use super::Insn;
use std::path::{Path, PathBuf};

/// One parsed `.data` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTest {
    /// The file stem (`add`, `lock_cmpxchg32`, …).
    pub name: String,
    /// The program to run: the `-- raw` words when present, else the assembled `-- asm`.
    pub program: Vec<Insn>,
    /// The `-- asm` text as written, comments included.
    pub asm: Option<String>,
    /// The assembled `-- asm` section.
    pub asm_program: Option<Vec<Insn>>,
    /// The `-- raw` section's slots.
    pub raw: Option<Vec<Insn>>,
    /// Memory for the program (empty when there is no `-- mem`).
    pub mem: Vec<u8>,
    /// The expected R0.
    pub result: Option<u64>,
    /// The expected error text (lines joined with `\n`).
    pub error: Option<String>,
    /// Present when the file has `-- no register offset`: the reason given (maybe empty).
    pub no_register_offset: Option<String>,
    /// The `-- c` source, verbatim.
    pub c_source: Option<String>,
}

/// A malformed `.data` file, with the file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct DataError {
    /// The file, as given to [`parse_data`].
    pub path: PathBuf,
    /// 1-based line (the section header, or the last line, for whole-file problems).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    C,
    NoRegisterOffset,
}

const KINDS: [(&str, Kind); 7] = [
    ("asm", Kind::Asm),
    ("raw", Kind::Raw),
    ("mem", Kind::Mem),
    ("result", Kind::Result),
    ("error", Kind::Error),
    ("c", Kind::C),
    ("no register offset", Kind::NoRegisterOffset),
];

struct Section<'a> {
    kind: Kind,
    header: usize,
    lines: Vec<(usize, &'a str)>,
}

impl Section<'_> {
    /// Content lines with `#` comments removed and whitespace trimmed, blank lines dropped.
    fn values(&self) -> impl Iterator<Item = (usize, &str)> {
        self.lines
            .iter()
            .map(|(n, l)| (*n, l.split('#').next().unwrap_or("").trim()))
            .filter(|(_, l)| !l.is_empty())
    }
}

/// Reads and parses a `.data` file.
pub fn load_data(path: &Path) -> Result<DataTest, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse_data(path, &text)
}

/// Parses the text of a `.data` file; `path_for_messages` names it in errors and gives the test
/// its name.
pub fn parse_data(path_for_messages: &Path, text: &str) -> Result<DataTest, DataError> {
    let err = |line: usize, message: String| DataError {
        path: path_for_messages.to_path_buf(),
        line,
        message,
    };
    let mut sections: Vec<Section> = Vec::new();
    let mut last_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        let line = raw.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("--") {
            let name = name.trim();
            let Some(&(_, kind)) = KINDS.iter().find(|(k, _)| *k == name) else {
                let known: Vec<_> = KINDS.iter().map(|(k, _)| format!("`-- {k}`")).collect();
                return Err(err(
                    n,
                    format!("unknown section `{line}` (known: {})", known.join(", ")),
                ));
            };
            if let Some(prev) = sections.iter().find(|s| s.kind == kind) {
                return Err(err(
                    n,
                    format!(
                        "duplicate section `-- {name}` (first at line {})",
                        prev.header
                    ),
                ));
            }
            sections.push(Section {
                kind,
                header: n,
                lines: Vec::new(),
            });
            continue;
        }
        match sections.last_mut() {
            Some(s) => s.lines.push((n, line)),
            None => {
                let t = line.trim_start();
                if !(t.is_empty() || t.starts_with('#')) {
                    return Err(err(
                        n,
                        format!("text outside any section: `{}`", line.trim()),
                    ));
                }
            }
        }
    }
    let get = |k: Kind| sections.iter().find(|s| s.kind == k);

    // The expectation comes first, as in bpf_conformance.
    let result = match get(Kind::Result) {
        None => None,
        Some(s) => {
            let values: Vec<_> = s.values().collect();
            match values.as_slice() {
                [] => None,
                [(n, v)] => Some(parse_result(v).map_err(|m| err(*n, m))?),
                [_, (n, _), ..] => {
                    return Err(err(*n, "`-- result` holds more than one value".into()))
                }
            }
        }
    };
    let error = get(Kind::Error).and_then(|s| {
        let lines: Vec<_> = s.values().map(|(_, l)| l).collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    });
    if result.is_none() && error.is_none() {
        let line = get(Kind::Error)
            .or(get(Kind::Result))
            .map_or(last_line, |s| s.header);
        return Err(err(
            line,
            "no expectation: the file has neither a `-- result` value nor `-- error` text".into(),
        ));
    }

    let raw = match get(Kind::Raw) {
        None => None,
        Some(s) => {
            let mut slots = Vec::new();
            for (n, l) in s.values() {
                for tok in l.split_whitespace() {
                    let word = parse_word(tok).map_err(|m| err(n, m))?;
                    slots.push(Insn::from_bytes(word.to_le_bytes()));
                }
            }
            Some(slots)
        }
    };
    let (asm, asm_program) = match get(Kind::Asm) {
        None => (None, None),
        Some(s) => {
            let text: Vec<&str> = s.lines.iter().map(|(_, l)| *l).collect();
            let text = text.join("\n");
            let prog = assemble(&text)
                .map_err(|e| err(s.header + e.line, format!("assembly: {}", e.message)))?;
            (Some(text), Some(prog))
        }
    };
    let program = match (&raw, &asm_program) {
        (Some(r), _) if !r.is_empty() => r.clone(),
        (_, Some(a)) => a.clone(),
        _ => Vec::new(),
    };
    if program.is_empty() {
        let line = get(Kind::Raw)
            .or(get(Kind::Asm))
            .map_or(last_line, |s| s.header);
        return Err(err(
            line,
            "no program: no instructions in a `-- raw` or `-- asm` section".into(),
        ));
    }

    let mut mem = Vec::new();
    if let Some(s) = get(Kind::Mem) {
        for (n, l) in s.values() {
            for tok in l.split_whitespace() {
                mem.push(parse_byte(tok).map_err(|m| err(n, m))?);
            }
        }
    }
    let text_of = |s: &Section| {
        let lines: Vec<&str> = s.lines.iter().map(|(_, l)| *l).collect();
        lines.join("\n")
    };
    let no_register_offset = get(Kind::NoRegisterOffset).map(|s| {
        let lines: Vec<&str> = s.values().map(|(_, l)| l).collect();
        lines.join("\n")
    });
    Ok(DataTest {
        name: path_for_messages
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        program,
        asm,
        asm_program,
        raw,
        mem,
        result,
        error,
        no_register_offset,
        c_source: get(Kind::C).map(text_of),
    })
}

/// A `-- result` value: `0x` hex or decimal up to 64 bits, or a negative decimal (two's
/// complement).
fn parse_result(v: &str) -> Result<u64, String> {
    let bad = || format!("`-- result` value `{v}` is not a 64-bit number");
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return hex_u64(h).ok_or_else(bad);
    }
    if v.starts_with('+') {
        return Err(bad());
    }
    if let Some(d) = v.strip_prefix('-') {
        return match d.parse::<u64>() {
            Ok(m) if m <= 1 << 63 && !d.starts_with(['+', '-']) => Ok(m.wrapping_neg()),
            _ => Err(bad()),
        };
    }
    v.parse::<u64>().map_err(|_| bad())
}

/// Hex digits only (no sign, unlike `from_str_radix`), up to 64 bits.
fn hex_u64(h: &str) -> Option<u64> {
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// A `-- raw` word: `0x` hex or decimal, 64 bits.
fn parse_word(tok: &str) -> Result<u64, String> {
    let parsed = match tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")) {
        Some(h) => hex_u64(h),
        None if tok.starts_with('+') => None,
        None => tok.parse::<u64>().ok(),
    };
    parsed.ok_or_else(|| format!("`-- raw` word `{tok}` is not a 64-bit number"))
}

/// A `-- mem` byte: one or two hex digits, optionally `0x`-prefixed.
fn parse_byte(tok: &str) -> Result<u8, String> {
    let h = tok
        .strip_prefix("0x")
        .or_else(|| tok.strip_prefix("0X"))
        .unwrap_or(tok);
    if (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(h, 16).map_err(|e| e.to_string())
    } else {
        Err(format!("`-- mem` token `{tok}` is not a hex byte"))
    }
}
