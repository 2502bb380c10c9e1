//! The classic checker per dialect (Linux `bpf_check_classic`, libpcap and NetBSD `bpf_validate`).
//! PLACEHOLDER: being written; API fixed below.

use super::Insn;
use crate::Dialect;

/// What the checker needs besides the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckConfig {
    /// The dialect whose rules apply.
    pub dialect: Dialect,
    /// NetBSD: number of functions in the coprocessor table (0 = none installed).
    pub cop_funcs: usize,
    /// Words in the memory store (16, or the NetBSD external memory size).
    pub memwords: usize,
}

/// A checker rejection: the rule, the offending instruction and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct Rejection {
    /// Stable rule name (e.g. `div_by_zero`), matched against case expectations.
    pub rule: &'static str,
    /// The offending instruction index, if any.
    pub pc: Option<usize>,
    /// Human-readable explanation.
    pub message: String,
}

/// Checks a program under a dialect's rules.
pub fn check(prog: &[Insn], cfg: &CheckConfig) -> Result<(), Rejection> {
    let _ = (prog, cfg);
    Ok(())
}
