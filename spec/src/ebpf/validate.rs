//! Structural validation of eBPF programs: what RFC 9669 says an instruction stream must look
//! like, before any data-flow reasoning.
//!
//! Checked, in slot order (the first problem wins, the fall-off check comes last):
//!
//! | rule | what |
//! |---|---|
//! | `empty_program` | no slots at all |
//! | `unknown_opcode` | no [`ISA`](super::isa::ISA) row has this opcode |
//! | `bad_variant` | the opcode is known but its selecting field is not: `lddw`/`call` `src`, `DIV`/`MOD`/`MOV X` `off`, byte-swap width or atomic operation in `imm` |
//! | `unused_field` | a field the form does not use is non-zero (RFC 9669 §3.1: "Unused fields shall be cleared to zero") |
//! | `bad_register` | a register field above 10 (RFC 9669 §3.1: register numbers are 0–10) |
//! | `writes_r10` | the frame pointer R10 as destination, or as the `src` a `FETCH`/`XCHG` atomic writes back |
//! | `lddw_truncated` | an `lddw` in the last slot |
//! | `lddw_second_slot` | the slot after `lddw` has a non-zero opcode, `dst`, `src` or `off` (§3.2: "all set to zero") |
//! | `jump_out_of_range` | a jump or local call whose target is outside the program |
//! | `jump_into_lddw` | a jump or local call whose target is the second slot of an `lddw` |
//! | `falls_off_end` | the last instruction is not `exit`, `ja` or `ja32` |
//!
//! The unused-field rules follow RFC 9669's instruction descriptions (§3.1, §4, §5); they agree
//! with the per-opcode `src`/`offset`/`imm` columns of the ISA draft's opcode table (as reproduced
//! in ebpf-for-windows' `docs/isa-support.rst`) and with bpf_conformance's `negative/unused-*`
//! files. The kernel verifier's `check_*` functions (kernel/bpf/verifier.c) enforce the same zeros. Not
//! checked here (they are semantic, not structural): reads of uninitialised registers, stack
//! bounds, helper ids, loops, subprogram boundaries. [`max_version`] and [`check_version`] relate
//! a program to the CPU versions of [`super::isa`].

#[cfg(test)]
mod tests;

use super::isa::{classify_insn, opcode_known, slot_starts, Group, IsaRow, Use};
use super::Insn;
use std::collections::BTreeSet;
use std::fmt;

/// An instruction field, for messages and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The opcode byte.
    Code,
    /// The destination register.
    Dst,
    /// The source register.
    Src,
    /// The offset.
    Off,
    /// The immediate.
    Imm,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Code => "opcode",
            Field::Dst => "dst",
            Field::Src => "src",
            Field::Off => "off",
            Field::Imm => "imm",
        })
    }
}

/// Which structural rule a program breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The program has no slots.
    EmptyProgram,
    /// No row has this opcode.
    UnknownOpcode,
    /// The opcode is known but the selecting field holds no defined value.
    BadVariant(Field),
    /// A field the instruction does not use is non-zero.
    UnusedField(Field),
    /// A register field is above 10.
    BadRegister(Field),
    /// R10 (read-only frame pointer) would be written.
    WritesR10(Field),
    /// `lddw` in the last slot.
    LddwTruncated,
    /// The slot after `lddw` is not a pure immediate carrier.
    LddwSecondSlot(Field),
    /// A jump target outside the program.
    JumpOutOfRange,
    /// A jump target in the middle of an `lddw`.
    JumpIntoLddw,
    /// Execution can run past the last slot.
    FallsOffEnd,
    /// The instruction needs a newer CPU version than allowed ([`check_version`]).
    VersionTooNew,
}

impl Rule {
    /// The rule's stable name (`unused_field`, `jump_out_of_range`, …).
    pub const fn name(&self) -> &'static str {
        match self {
            Rule::EmptyProgram => "empty_program",
            Rule::UnknownOpcode => "unknown_opcode",
            Rule::BadVariant(_) => "bad_variant",
            Rule::UnusedField(_) => "unused_field",
            Rule::BadRegister(_) => "bad_register",
            Rule::WritesR10(_) => "writes_r10",
            Rule::LddwTruncated => "lddw_truncated",
            Rule::LddwSecondSlot(_) => "lddw_second_slot",
            Rule::JumpOutOfRange => "jump_out_of_range",
            Rule::JumpIntoLddw => "jump_into_lddw",
            Rule::FallsOffEnd => "falls_off_end",
            Rule::VersionTooNew => "version_too_new",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a program is structurally invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("insn {pc}: {rule}: {message}")]
pub struct Invalid {
    /// The offending slot.
    pub pc: usize,
    /// The rule broken.
    pub rule: Rule,
    /// Human-readable detail.
    pub message: String,
}

fn invalid(pc: usize, rule: Rule, message: String) -> Invalid {
    Invalid { pc, rule, message }
}

/// The field that selects among the rows sharing `code`.
fn selector_field(code: u8) -> Field {
    use super::isa::{Sel, ISA};
    match ISA.iter().find(|r| r.code == code).map(|r| r.sel) {
        Some(Sel::Src(_)) => Field::Src,
        Some(Sel::Off(_)) => Field::Off,
        Some(Sel::Imm(_)) => Field::Imm,
        _ => Field::Code,
    }
}

/// Checks one instruction's fields against its row.
fn check_fields(row: &IsaRow, insn: &Insn, pc: usize) -> Result<(), Invalid> {
    let u = row.uses();
    let fields = [
        (Field::Dst, u.dst, insn.dst as i64),
        (Field::Src, u.src, insn.src as i64),
        (Field::Off, u.off, insn.off as i64),
        (Field::Imm, u.imm, insn.imm as i64),
    ];
    for (field, usage, value) in fields {
        match usage {
            Use::Zero if value != 0 => {
                return Err(invalid(
                    pc,
                    Rule::UnusedField(field),
                    format!(
                    "`{}` (opcode 0x{:02x}) does not use {field}, which must be 0 but is {value}",
                    row.name, row.code
                ),
                ))
            }
            Use::Reg if value > 10 => {
                return Err(invalid(
                    pc,
                    Rule::BadRegister(field),
                    format!("`{}`: {field} register r{value} does not exist", row.name),
                ))
            }
            _ => {}
        }
    }
    if row.writes_dst() && insn.dst == 10 {
        return Err(invalid(
            pc,
            Rule::WritesR10(Field::Dst),
            format!("`{}` writes r10, the read-only frame pointer", row.name),
        ));
    }
    if row.writes_src() && insn.src == 10 {
        return Err(invalid(
            pc,
            Rule::WritesR10(Field::Src),
            format!(
                "`{}` writes the old value back to src r10, the read-only frame pointer",
                row.name
            ),
        ));
    }
    Ok(())
}

/// Validates a program's structure; see the module documentation for the rules.
pub fn validate(prog: &[Insn]) -> Result<(), Invalid> {
    if prog.is_empty() {
        return Err(invalid(
            0,
            Rule::EmptyProgram,
            "the program is empty".into(),
        ));
    }
    let starts = slot_starts(prog);
    let mut last = 0;
    for (pc, insn) in prog.iter().enumerate() {
        if !starts[pc] {
            continue;
        }
        last = pc;
        let Some(row) = classify_insn(insn) else {
            if !opcode_known(insn.code) {
                return Err(invalid(
                    pc,
                    Rule::UnknownOpcode,
                    format!("unknown opcode 0x{:02x}", insn.code),
                ));
            }
            let f = selector_field(insn.code);
            let v = match f {
                Field::Src => insn.src as i64,
                Field::Off => insn.off as i64,
                _ => insn.imm as i64,
            };
            return Err(invalid(
                pc,
                Rule::BadVariant(f),
                format!("opcode 0x{:02x} has no form with {f} = {v}", insn.code),
            ));
        };
        check_fields(row, insn, pc)?;
        if row.is_wide() {
            let Some(next) = prog.get(pc + 1) else {
                return Err(invalid(
                    pc,
                    Rule::LddwTruncated,
                    "`lddw` in the last slot has no second slot".into(),
                ));
            };
            let second = [
                (Field::Code, next.code as i64),
                (Field::Dst, next.dst as i64),
                (Field::Src, next.src as i64),
                (Field::Off, next.off as i64),
            ];
            if let Some((f, v)) = second.into_iter().find(|(_, v)| *v != 0) {
                return Err(invalid(
                    pc + 1,
                    Rule::LddwSecondSlot(f),
                    format!("the second slot of `lddw` must have {f} 0, not {v}"),
                ));
            }
        }
        if let Some(t) = row.jump_target(insn, pc) {
            if t < 0 || t >= prog.len() as i64 {
                return Err(invalid(
                    pc,
                    Rule::JumpOutOfRange,
                    format!("`{}` targets slot {t}, outside 0..{}", row.name, prog.len()),
                ));
            }
            if !starts[t as usize] {
                return Err(invalid(
                    pc,
                    Rule::JumpIntoLddw,
                    format!(
                        "`{}` targets slot {t}, the second half of an `lddw`",
                        row.name
                    ),
                ));
            }
        }
    }
    let ends = classify_insn(&prog[last]).is_some_and(|r| r.is_terminator());
    if !ends || prog[last].is_lddw() {
        return Err(invalid(
            last,
            Rule::FallsOffEnd,
            "the last instruction is not `exit` or an unconditional jump".into(),
        ));
    }
    Ok(())
}

/// The rows of a program's instructions (unknown slots and `lddw` second slots skipped).
fn rows(prog: &[Insn]) -> impl Iterator<Item = (usize, &'static IsaRow)> + '_ {
    let starts = slot_starts(prog);
    prog.iter()
        .enumerate()
        .filter(move |(pc, _)| starts[*pc])
        .filter_map(|(pc, i)| classify_insn(i).map(|r| (pc, r)))
}

/// The newest CPU version (1–4) any instruction of the program needs; 1 for an empty program.
pub fn max_version(prog: &[Insn]) -> u8 {
    rows(prog).map(|(_, r)| r.version).max().unwrap_or(1)
}

/// Fails on the first instruction that needs a CPU version above `limit`.
pub fn check_version(prog: &[Insn], limit: u8) -> Result<(), Invalid> {
    match rows(prog).find(|(_, r)| r.version > limit) {
        Some((pc, r)) => Err(invalid(
            pc,
            Rule::VersionTooNew,
            format!("`{}` needs cpu v{}, above v{limit}", r.name, r.version),
        )),
        None => Ok(()),
    }
}

/// The conformance groups a program's instructions belong to.
pub fn groups(prog: &[Insn]) -> BTreeSet<Group> {
    rows(prog).map(|(_, r)| r.group).collect()
}
