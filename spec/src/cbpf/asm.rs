//! Assembler for the kernel's `bpf_asm` syntax (tools/bpf/bpf_exp.{l,y}, filter.txt).
//! PLACEHOLDER: being written; API fixed below.

use super::Insn;

/// An assembly error with the 1-based line of the assembly text it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct AsmError {
    /// 1-based line in the assembly text.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Assembles bpf_asm text into instructions.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let _ = text;
    Err(AsmError {
        line: 1,
        message: "assembler not written yet".into(),
    })
}
