//! Other textual program formats users paste: `tcpdump -dd`, `tcpdump -ddd`, bpf_asm comma form.
//! PLACEHOLDER: being written; API fixed below.

use super::Insn;

/// A format parse error with the 1-based line (or comma-separated item) it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FormatError {
    /// 1-based line (or item number for the comma form).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `tcpdump -ddd` output: a count line, then `code jt jf k` decimal lines.
pub fn parse_ddd(text: &str) -> Result<Vec<Insn>, FormatError> {
    let _ = text;
    Err(FormatError {
        line: 1,
        message: "not written yet".into(),
    })
}
