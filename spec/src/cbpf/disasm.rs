//! Disassembler to the kernel's `bpf_asm` syntax, in the style of bpf_dbg's `disassemble`.
//!
//! Output follows bpf_dbg's choices (`ldh [12]`, `jeq #0x800, l4, l5`, `ret #0xffff`, hex
//! immediates for loads/jumps/returns/bitwise ops, signed decimal for packet offsets and
//! arithmetic) with three changes so that the text always reassembles to the same instructions
//! with [`super::asm::assemble`]:
//! - `[x + k]` is written with spaces (bpf_asm's lexer reads `+4` in `[x+4]` as a signed number);
//! - `ja` targets are labels, not absolute indices; jump targets past the end of the program are
//!   written as raw relative offsets `+N`;
//! - anything the mnemonics cannot express exactly (unknown opcodes, unused `jt`/`jf`/`k` fields
//!   that are not zero) is written as `.insn code, jt, jf, k`.
//!
//! Ancillary loads use extension names (`ld proto`, `ldh vlan_tci`), `BPF_LD|BPF_W|BPF_LEN` is
//! `ld len`, and NetBSD's coprocessor calls are `cop #k` / `copx`.

#[cfg(test)]
mod tests;

use super::ext::Ext;
use super::{Insn, Op, Size, Src};
use std::collections::BTreeSet;
use std::fmt::Write;

/// Disassembles one instruction at `pc` (jump targets printed as labels `lN`), prefixed with its
/// own label: `l3: jeq #0x800, l4, l5`.
pub fn disasm_insn(insn: &Insn, pc: usize) -> String {
    format!("l{pc}: {}", body(insn, pc, None))
}

/// Disassembles a program to text that [`super::asm::assemble`] turns back into the same
/// instructions. Jump targets get labels `lN:` (N = instruction index); other lines are indented
/// to the same column.
pub fn disassemble(prog: &[Insn]) -> String {
    let len = prog.len();
    let mut targets = BTreeSet::new();
    for (pc, insn) in prog.iter().enumerate() {
        for off in jump_offsets(insn) {
            let t = (pc as u64).saturating_add(1).saturating_add(off);
            if t < len as u64 {
                targets.insert(t as usize);
            }
        }
    }
    let width = targets
        .iter()
        .next_back()
        .map_or(0, |t| format!("l{t}:").len() + 1);
    let mut out = String::new();
    for (pc, insn) in prog.iter().enumerate() {
        let label = if targets.contains(&pc) {
            format!("l{pc}:")
        } else {
            String::new()
        };
        let _ = writeln!(out, "{label:width$}{}", body(insn, pc, Some(len)));
    }
    out
}

/// The offsets a jump printed with mnemonics refers to (empty for everything else, including
/// jumps printed as `.insn`).
fn jump_offsets(insn: &Insn) -> Vec<u64> {
    match insn.op() {
        Some(Op::Ja) if insn.jt == 0 && insn.jf == 0 => vec![u64::from(insn.k)],
        Some(Op::Jmp(_, s)) if s == Src::K || insn.k == 0 => {
            vec![u64::from(insn.jt), u64::from(insn.jf)]
        }
        _ => Vec::new(),
    }
}

/// Hex the way C's `%#x` prints it (`0` for zero).
fn hex(k: u32) -> String {
    if k == 0 {
        "0".into()
    } else {
        format!("{k:#x}")
    }
}

/// Signed decimal, as bpf_dbg's `%d`.
fn signed(k: u32) -> String {
    (k as i32).to_string()
}

/// A jump target: a label when it lands inside the program (or the length is unknown), else the
/// raw offset.
fn target(pc: usize, off: u64, len: Option<usize>) -> String {
    let t = (pc as u64).saturating_add(1).saturating_add(off);
    match len {
        Some(n) if t >= n as u64 => format!("+{off}"),
        _ => format!("l{t}"),
    }
}

fn raw(i: &Insn) -> String {
    format!(".insn {:#04x}, {}, {}, {}", i.code, i.jt, i.jf, hex(i.k))
}

/// The instruction text without a label.
fn body(i: &Insn, pc: usize, len: Option<usize>) -> String {
    let Some(op) = i.op() else {
        return raw(i);
    };
    let k = i.k;
    let szm = |s: Size| match s {
        Size::W => "ld",
        Size::H => "ldh",
        Size::B => "ldb",
    };
    if let Op::Jmp(j, s) = op {
        let (t, f) = (
            target(pc, u64::from(i.jt), len),
            target(pc, u64::from(i.jf), len),
        );
        return match s {
            Src::K => format!("{} #{}, {t}, {f}", j.mnemonic(), hex(k)),
            Src::X if k == 0 => format!("{} x, {t}, {f}", j.mnemonic()),
            Src::X => raw(i),
        };
    }
    if i.jt != 0 || i.jf != 0 {
        return raw(i);
    }
    // Forms whose k is unused must have k == 0 to reassemble identically.
    let text = match op {
        Op::LdAbs(s) => match Ext::from_k(k) {
            Some(e) => format!("{} {}", szm(s), e.name()),
            None => format!("{} [{}]", szm(s), signed(k)),
        },
        Op::LdInd(s) => format!("{} [x + {}]", szm(s), signed(k)),
        Op::LdImm => format!("ld #{}", hex(k)),
        Op::LdMem => format!("ld M[{k}]"),
        Op::LdxMsh => format!("ldxb 4*([{}]&0xf)", signed(k)),
        Op::LdxImm => format!("ldx #{}", hex(k)),
        Op::LdxMem => format!("ldx M[{k}]"),
        Op::St => format!("st M[{k}]"),
        Op::Stx => format!("stx M[{k}]"),
        Op::Alu(a, Src::K) => {
            use super::AluOp::*;
            match a {
                And | Or | Xor => format!("{} #{}", a.mnemonic(), hex(k)),
                _ => format!("{} #{}", a.mnemonic(), signed(k)),
            }
        }
        Op::Ja => format!("ja {}", target(pc, u64::from(k), len)),
        Op::RetK => format!("ret #{}", hex(k)),
        Op::Cop => format!("cop #{k}"),
        _ if k != 0 => return raw(i),
        Op::LdLen => "ld len".into(),
        Op::LdxLen => "ldx len".into(),
        Op::Alu(a, Src::X) => format!("{} x", a.mnemonic()),
        Op::Neg => "neg".into(),
        Op::RetA => "ret a".into(),
        Op::RetX => "ret x".into(),
        Op::Tax => "tax".into(),
        Op::Txa => "txa".into(),
        Op::Copx => "copx".into(),
        Op::Jmp(..) => raw(i),
    };
    text
}
