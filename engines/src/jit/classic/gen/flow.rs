//! Control-flow facts the generator needs before it emits anything: `ja` targets per dialect,
//! straight-line blocks, and the steps to charge at each block entry when a program can loop.

use crate::interp::classic::STEP_LIMIT;
use bpfconf_spec::cbpf::{AluOp, Insn, Op};
use bpfconf_spec::Dialect;

/// The target of `ja` at `pc`: Linux and NetBSD add k unsigned (forward only), BSD adds it as a
/// signed 32-bit offset and ends the program with 0 (`None`) when the target is outside.
pub(super) fn ja_target(dialect: Dialect, pc: usize, k: u32, len: usize) -> Option<u64> {
    match dialect {
        Dialect::Bsd => {
            let t = (pc as u32).wrapping_add(1).wrapping_add(k) as u64;
            (t < len as u64).then_some(t)
        }
        Dialect::Linux | Dialect::Netbsd => Some(pc as u64 + 1 + k as u64),
    }
}

/// True when the instruction's code ends its straight-line block: jumps, returns, unknown
/// opcodes, and everything that may end the run early.
fn ends_block(insn: &Insn) -> bool {
    match insn.op() {
        None => true,
        Some(op) => matches!(
            op,
            Op::Ja
                | Op::Jmp(..)
                | Op::RetK
                | Op::RetA
                | Op::RetX
                | Op::LdAbs(_)
                | Op::LdInd(_)
                | Op::LdxMsh
                | Op::LdMem
                | Op::LdxMem
                | Op::St
                | Op::Stx
                | Op::Alu(AluOp::Div | AluOp::Mod, _)
                | Op::Cop
                | Op::Copx
        ),
    }
}

/// Steps to charge at each instruction, or `None` when the program cannot run into the step
/// limit (no backward jump and no more instructions than the limit).
pub(super) fn charges(insns: &[Insn], dialect: Dialect) -> Option<Vec<u32>> {
    let len = insns.len();
    let mut target = vec![false; len + 1];
    let mut backward = false;
    for (pc, insn) in insns.iter().enumerate() {
        let ts = match insn.op() {
            Some(Op::Ja) => vec![ja_target(dialect, pc, insn.k, len)],
            Some(Op::Jmp(..)) => vec![
                Some(pc as u64 + 1 + insn.jt as u64),
                Some(pc as u64 + 1 + insn.jf as u64),
            ],
            _ => vec![],
        };
        for t in ts.into_iter().flatten() {
            if t < len as u64 {
                target[t as usize] = true;
                backward |= t <= pc as u64;
            }
        }
    }
    if !backward && len <= STEP_LIMIT {
        return None;
    }
    // Block lengths, from the end: a block continues while its instruction does not end it
    // and the next one is not a jump target.
    let mut blen = vec![1u32; len];
    for pc in (0..len).rev() {
        if pc + 1 < len && !ends_block(&insns[pc]) && !target[pc + 1] {
            blen[pc] = 1 + blen[pc + 1];
        }
    }
    Some(
        (0..len)
            .map(|pc| {
                let start = pc == 0 || target[pc] || ends_block(&insns[pc - 1]);
                if start {
                    blen[pc]
                } else {
                    0
                }
            })
            .collect(),
    )
}
