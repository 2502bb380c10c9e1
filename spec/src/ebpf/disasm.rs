//! Disassembler to bpf_conformance's eBPF syntax (see [`super::asm`]), with labels.
//!
//! Every program round-trips: `assemble(&disassemble(p)) == p` for any slots at all. A slot that
//! matches an [`ISA`](super::isa::ISA) row with all its unused fields zero prints as that row's
//! mnemonic; anything else (unknown opcode, a non-zero unused field, an `lddw` whose second slot is
//! missing or not `0, 0, 0, 0`) prints as the raw escape `.insn code, dst, src, off, imm`, a
//! bpfconf extension (bpf_conformance has no such escape).
//!
//! Jump and local-call targets that land on a printed instruction get a label `L<slot>` on the
//! line before it; other targets (out of the program, into the middle of an `lddw`) print as a
//! signed displacement `+N`/`-N`. Immediates print in decimal when small and as 32-bit hex
//! otherwise; `lddw` values always in hex.

#[cfg(test)]
mod tests;

use super::isa::{classify_insn, Form, IsaRow, Sel};
use super::Insn;
use std::fmt::Write;

/// One printed line: the slot it starts at and how many slots it covers.
struct Line {
    pc: usize,
    row: Option<&'static IsaRow>,
    wide: bool,
}

/// Splits a program into printed lines.
fn lines(prog: &[Insn]) -> Vec<Line> {
    let mut out = Vec::with_capacity(prog.len());
    let mut pc = 0;
    while pc < prog.len() {
        let insn = &prog[pc];
        let row = classify_insn(insn).filter(|r| r.fits(insn));
        let wide = row.is_some_and(|r| r.is_wide());
        let second_ok = prog
            .get(pc + 1)
            .is_some_and(|n| n.code == 0 && n.dst == 0 && n.src == 0 && n.off == 0);
        if wide && !second_ok {
            out.push(Line {
                pc,
                row: None,
                wide: false,
            });
            pc += 1;
            continue;
        }
        out.push(Line { pc, row, wide });
        pc += if wide { 2 } else { 1 };
    }
    out
}

/// Disassembles a program, one instruction per line, each line ending in `\n`.
pub fn disassemble(prog: &[Insn]) -> String {
    let lines = lines(prog);
    let mut is_line = vec![false; prog.len()];
    for l in &lines {
        is_line[l.pc] = true;
    }
    let mut labelled = vec![false; prog.len()];
    for l in &lines {
        if let Some(t) = l.row.and_then(|r| r.jump_target(&prog[l.pc], l.pc)) {
            if let Some(t) = usize::try_from(t).ok().filter(|t| *t < prog.len()) {
                labelled[t] |= is_line[t];
            }
        }
    }
    let mut s = String::new();
    for l in &lines {
        if labelled[l.pc] {
            let _ = writeln!(s, "L{}:", l.pc);
        }
        let insn = &prog[l.pc];
        match l.row {
            Some(row) => {
                let next_imm = if l.wide { prog[l.pc + 1].imm } else { 0 };
                s.push_str(&render(row, insn, l.pc, next_imm, &labelled));
            }
            None => s.push_str(&raw(insn)),
        }
        s.push('\n');
    }
    s
}

/// The `.insn` escape for one slot.
pub fn raw(insn: &Insn) -> String {
    format!(
        ".insn 0x{:02x}, {}, {}, {}, {}",
        insn.code, insn.dst, insn.src, insn.off, insn.imm
    )
}

/// Disassembles one slot on its own: jump targets print as displacements, and an `lddw` first
/// slot prints with `next_imm` as its second slot's immediate.
pub fn render_insn(insn: &Insn, next_imm: i32) -> String {
    match classify_insn(insn).filter(|r| r.fits(insn)) {
        Some(row) => render(row, insn, 0, next_imm, &[]),
        None => raw(insn),
    }
}

fn imm(v: i32) -> String {
    if (-0xffff..=0xffff).contains(&v) {
        v.to_string()
    } else {
        format!("0x{:x}", v as u32)
    }
}

fn mem(reg: u8, off: i16) -> String {
    if off < 0 {
        format!("[%r{reg}{off}]")
    } else {
        format!("[%r{reg}+{off}]")
    }
}

/// A jump target: the label of the target line when there is one, else `+N`/`-N`.
fn target(insn_pc: usize, disp: i64, labelled: &[bool]) -> String {
    let t = insn_pc as i64 + 1 + disp;
    match usize::try_from(t)
        .ok()
        .filter(|t| labelled.get(*t) == Some(&true))
    {
        Some(t) => format!("L{t}"),
        None if disp < 0 => disp.to_string(),
        None => format!("+{disp}"),
    }
}

fn render(row: &IsaRow, i: &Insn, pc: usize, next_imm: i32, labelled: &[bool]) -> String {
    let m = row.mnemonic;
    let (d, s) = (i.dst, i.src);
    match row.form {
        Form::AluK => format!("{m} %r{d}, {}", imm(i.imm)),
        Form::AluX => format!("{m} %r{d}, %r{s}"),
        Form::Neg | Form::End => format!("{m} %r{d}"),
        Form::Ldx => format!("{m} %r{d}, {}", mem(s, i.off)),
        Form::St => format!("{m} {}, {}", mem(d, i.off), imm(i.imm)),
        Form::Stx | Form::Atomic => format!("{m} {}, %r{s}", mem(d, i.off)),
        Form::Lddw if row.sel == Sel::Src(0) => {
            let v = (next_imm as u32 as u64) << 32 | i.imm as u32 as u64;
            format!("{m} %r{d}, 0x{v:x}")
        }
        Form::Lddw if next_imm == 0 => format!("{m} %r{d}, {}", imm(i.imm)),
        Form::Lddw => format!("{m} %r{d}, {}, {}", imm(i.imm), imm(next_imm)),
        Form::JmpK => format!(
            "{m} %r{d}, {}, {}",
            imm(i.imm),
            target(pc, i.off as i64, labelled)
        ),
        Form::JmpX => format!("{m} %r{d}, %r{s}, {}", target(pc, i.off as i64, labelled)),
        Form::Ja => format!("{m} {}", target(pc, i.off as i64, labelled)),
        Form::Ja32 | Form::CallLocal => format!("{m} {}", target(pc, i.imm as i64, labelled)),
        Form::Call => format!("{m} {}", i.imm),
        Form::Callx => format!("{m} %r{d}"),
        Form::Exit => m.to_string(),
        Form::LdAbs => format!("{m} {}", imm(i.imm)),
        Form::LdInd => format!("{m} %r{s}, {}", imm(i.imm)),
    }
}
