//! Assembler for bpf_conformance's eBPF syntax (the `-- asm` sections of its `.data` files, as its
//! `src/bpf_assembler.cc` reads them), plus a few bpfconf extensions.
//!
//! # Syntax
//!
//! One instruction or label per line. A `#` starts a comment. Tokens are separated by
//! whitespace and a trailing `,` is dropped from each, so `add %r1, %r2` and `add %r1 %r2` are
//! the same. A line `name:` defines a label at the next slot; the first `exit` instruction also
//! defines the label `exit` (a bpf_conformance convenience: `jne %r0, 0, exit`).
//!
//! | form | syntax | encoding |
//! |---|---|---|
//! | ALU | `add32 %r1, 5` / `add32 %r1, %r2`; `add` … for ALU64; ops `add sub mul div sdiv or and lsh rsh mod smod xor mov arsh` | `ALU\|op\|K` / `ALU\|op\|X`; `sdiv`/`smod` set `off = 1` |
//! | negation | `neg32 %r1`, `neg %r1` | `ALU\|NEG`, `ALU64\|NEG` |
//! | sign-extending move | `movsx832`, `movsx1632`, `movsx864`, `movsx1664`, `movsx3264` `%rD, %rS` | `MOV\|X`, `off` = 8/16/32 |
//! | byte swap | `le16`/`le32`/`le64`, `be16`…, `bswap16`… (alias `swap16`…) `%rD` | `0xd4`, `0xdc`, `0xd7`; width in `imm` |
//! | load | `ldxb %r0, [%r1+2]` (`ldxh ldxw ldxdw`, sign-extending `ldxsb ldxsh ldxsw`) | `LDX\|MEM`, `LDX\|MEMSX` |
//! | store | `stw [%r10-4], 5`, `stxdw [%r10-8], %r1` (sizes `b h w dw`) | `ST\|MEM`, `STX\|MEM` |
//! | 64-bit immediate | `lddw %r0, 0x1122334455667788` | two slots |
//! | atomics | `lock [fetch] add\|or\|and\|xor[32] [%rD+off], %rS`, `lock xchg[32] …`, `lock cmpxchg[32] …` | `STX\|ATOMIC\|DW` (`W` with `32`), op in `imm` |
//! | jumps | `ja +2`, `ja label`, `jeq %r1, 3, +2`, `jeq32 %r1, %r2, label`, `ja32 label` | target in `off`; `ja32` in `imm` |
//! | calls | `call 1` (= `call helper 1`), `call local label`, `call runtime 7`, `call %r2` | `src` 0 / 1 / 2; `%r2` → `JMP\|CALL\|X` with the register in `dst` (callx) |
//! | exit | `exit` | `JMP\|EXIT` |
//!
//! Registers are `%r0` … `%r10`; `%r11` … `%r15` are accepted too (bpf_conformance has them for
//! negative tests). Numbers are decimal or `0x` hex with an optional sign. A 32-bit immediate is
//! a decimal in −2³¹ … 2³¹−1 or a hex value up to `0xffffffff` (its bit pattern); an offset is a
//! decimal in −32768 … 32767 or hex up to `0xffff`; `lddw` takes anything up to 64 bits. A jump
//! target is a label or a *signed* displacement `+N`/`-N` from the next slot — an unsigned
//! number is taken as a label name, as in bpf_conformance.
//!
//! # bpfconf extensions
//!
//! bpf_conformance has no syntax for these; the disassembler uses them so that every program
//! round-trips:
//!
//! - `lddw_map_fd %rD, imm[, next_imm]`, and likewise `lddw_map_value`, `lddw_var_addr`,
//!   `lddw_code_addr`, `lddw_map_idx`, `lddw_map_idx_value`: `lddw` with `src` 1 … 6
//!   (RFC 9669 §5.4); `next_imm` (the second slot's `imm`) defaults to 0.
//! - `ldabsw imm`, `ldabsh`, `ldabsb`; `ldindw %rS, imm`, `ldindh`, `ldindb`: the legacy packet
//!   loads (RFC 9669 §5.5), in uBPF's spelling.
//! - `.insn code, dst, src, off, imm`: one raw slot, verbatim (unknown opcodes, unused fields set,
//!   a lone half of an `lddw`). `code` is 0–255, `dst`/`src` 0–15.
//! - `ja32` and `call local` take displacements in the full 32-bit range (bpf_conformance stops at
//!   16 bits).
//!
//! Deliberate differences from bpf_conformance, which silently accepts the following: a label
//! followed by an instruction on the same line, trailing junk after a number (`5abc`), and a
//! label too far away for a 16-bit offset are errors here.

mod operand;
#[cfg(test)]
mod tests;

use super::isa::{Form, IsaRow, Sel, ISA};
use super::Insn;
use operand::Target;
use std::collections::HashMap;
use std::sync::OnceLock;

/// An assembly error with the 1-based line of the assembly text it refers to (the same type as
/// the classic assembler's).
pub use crate::cbpf::asm::AsmError;

/// Assembles bpf_conformance-syntax text into instruction slots.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::default();
    for (i, raw) in text.lines().enumerate() {
        a.line = i + 1;
        a.statement(raw).map_err(|message| AsmError {
            line: a.line,
            message,
        })?;
    }
    a.finish()
}

/// The rows each mnemonic can produce (one, or a K/X pair).
fn by_mnemonic() -> &'static HashMap<&'static str, Vec<&'static IsaRow>> {
    static MAP: OnceLock<HashMap<&'static str, Vec<&'static IsaRow>>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static IsaRow>> = HashMap::new();
        for r in ISA {
            m.entry(r.mnemonic).or_default().push(r);
        }
        m
    })
}

/// True for the forms whose discriminating operand is a register.
fn register_form(form: Form) -> bool {
    matches!(form, Form::AluX | Form::JmpX | Form::Callx)
}

struct Fixup {
    slot: usize,
    line: usize,
    label: String,
    in_imm: bool,
}

#[derive(Default)]
struct Asm {
    out: Vec<Insn>,
    labels: HashMap<String, usize>,
    fixups: Vec<Fixup>,
    seen_exit: bool,
    line: usize,
}

impl Asm {
    fn statement(&mut self, raw: &str) -> Result<(), String> {
        let text = raw.split('#').next().unwrap_or("");
        let toks: Vec<&str> = text
            .split_whitespace()
            .map(|t| t.strip_suffix(',').unwrap_or(t))
            .collect();
        let Some((&mnemonic, ops)) = toks.split_first() else {
            return Ok(());
        };
        if let Some(label) = mnemonic.strip_suffix(':') {
            if label.is_empty() {
                return Err("empty label name".into());
            }
            if !ops.is_empty() {
                return Err(format!(
                    "label `{label}:` must stand alone on its line (bpf_conformance would drop `{}`)",
                    ops.join(" ")
                ));
            }
            if let Some(prev) = self.labels.get(label) {
                return Err(format!(
                    "duplicate label `{label}` (already defined at slot {prev})"
                ));
            }
            self.labels.insert(label.to_string(), self.out.len());
            return Ok(());
        }
        if mnemonic == "exit" && !self.seen_exit {
            // bpf_conformance: the first `exit` is also the label `exit`.
            self.seen_exit = true;
            self.labels.insert("exit".to_string(), self.out.len());
        }
        match mnemonic {
            "lock" => self.lock(ops),
            "call" => self.call(ops),
            ".insn" => self.raw(ops),
            _ => {
                let key = match mnemonic.strip_prefix("swap") {
                    Some(w) => ["bswap", w].concat(),
                    None => mnemonic.to_string(),
                };
                match by_mnemonic().get(key.as_str()) {
                    Some(rows) if !key.starts_with("lock ") && !key.starts_with("call") => {
                        let row = pick(rows, ops, 1);
                        self.encode(row, ops)
                    }
                    _ => Err(format!("invalid mnemonic `{mnemonic}`")),
                }
            }
        }
    }

    /// `lock [fetch] OP [dst+off], src`.
    fn lock(&mut self, ops: &[&str]) -> Result<(), String> {
        let count_err = || {
            "invalid number of operands for lock: expected `lock [fetch] OP [%rD+off], %rS`"
                .to_string()
        };
        let (fetch, op, rest) = match ops {
            ["fetch", op, rest @ ..] => (true, *op, rest),
            [op, rest @ ..] if *op != "fetch" => (false, *op, rest),
            _ => return Err(count_err()),
        };
        if rest.len() != 2 {
            return Err(count_err());
        }
        let base = op.strip_suffix("32").unwrap_or(op);
        // `fetch` is implied by (and ignored for) xchg and cmpxchg, as in bpf_conformance.
        let key = match base {
            "add" | "and" | "or" | "xor" if fetch => format!("lock fetch {op}"),
            "add" | "and" | "or" | "xor" | "xchg" | "cmpxchg" => format!("lock {op}"),
            _ => return Err(format!("invalid atomic operation `{op}`")),
        };
        match by_mnemonic().get(key.as_str()) {
            Some(rows) => self.encode(rows[0], rest),
            None => Err(format!("invalid atomic operation `{op}`")),
        }
    }

    /// `call N`, `call helper N|%rN`, `call local TARGET`, `call runtime N`.
    fn call(&mut self, ops: &[&str]) -> Result<(), String> {
        let (mode, target) = match ops {
            [m @ ("helper" | "local" | "runtime")] => {
                return Err(format!("missing target after `call {m}`"))
            }
            [t] => ("helper", *t),
            [m, t] => (*m, *t),
            _ => {
                return Err(format!(
                    "invalid number of operands for `call`: expected 1 or 2, found {}",
                    ops.len()
                ))
            }
        };
        let key = match mode {
            "helper" => "call",
            "local" => "call local",
            "runtime" => "call runtime",
            _ => {
                return Err(format!(
                    "invalid call mode `{mode}` (helper, local or runtime)"
                ))
            }
        };
        let rows = by_mnemonic()
            .get(key)
            .ok_or_else(|| format!("no row for `{key}`"))?;
        let ops = [target];
        let row = pick(rows, &ops, 0);
        self.encode(row, &ops)
    }

    /// `.insn code, dst, src, off, imm`.
    fn raw(&mut self, ops: &[&str]) -> Result<(), String> {
        let [code, dst, src, off, imm] = ops else {
            return Err(format!(
                "invalid number of operands for `.insn`: expected 5 (code, dst, src, off, imm), found {}",
                ops.len()
            ));
        };
        self.out.push(Insn::new(
            operand::field(code, "opcode", 255)?,
            operand::field(dst, "dst", 15)?,
            operand::field(src, "src", 15)?,
            operand::off16(off)?,
            operand::imm32(imm)?,
        ));
        Ok(())
    }

    fn target(&mut self, tok: &str, in_imm: bool) -> Result<i32, String> {
        match operand::target(tok, in_imm)? {
            Target::Rel(d) => Ok(d),
            Target::Label(l) => {
                self.fixups.push(Fixup {
                    slot: self.out.len(),
                    line: self.line,
                    label: l.to_string(),
                    in_imm,
                });
                Ok(0)
            }
        }
    }

    fn encode(&mut self, row: &IsaRow, ops: &[&str]) -> Result<(), String> {
        let expected: &[usize] = match row.form {
            Form::Exit => &[0],
            Form::Neg
            | Form::End
            | Form::Ja
            | Form::Ja32
            | Form::Call
            | Form::CallLocal
            | Form::Callx
            | Form::LdAbs => &[1],
            Form::JmpK | Form::JmpX => &[3],
            Form::Lddw if row.sel != Sel::Src(0) => &[2, 3],
            _ => &[2],
        };
        if !expected.contains(&ops.len()) {
            let want = expected
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(format!(
                "invalid number of operands for `{}`: expected {want}, found {}",
                row.mnemonic,
                ops.len()
            ));
        }
        let mut i = Insn::new(row.code, 0, 0, 0, 0);
        let mut next_imm = None;
        match row.form {
            Form::AluK => (i.dst, i.imm) = (operand::reg(ops[0])?, operand::imm32(ops[1])?),
            Form::AluX => (i.dst, i.src) = (operand::reg(ops[0])?, operand::reg(ops[1])?),
            Form::Neg | Form::End | Form::Callx => i.dst = operand::reg(ops[0])?,
            Form::Ldx => {
                i.dst = operand::reg(ops[0])?;
                (i.src, i.off) = operand::mem(ops[1])?;
            }
            Form::St => {
                (i.dst, i.off) = operand::mem(ops[0])?;
                i.imm = operand::imm32(ops[1])?;
            }
            Form::Stx | Form::Atomic => {
                (i.dst, i.off) = operand::mem(ops[0])?;
                i.src = operand::reg(ops[1])?;
            }
            Form::Lddw => {
                i.dst = operand::reg(ops[0])?;
                if row.sel == Sel::Src(0) {
                    let v = operand::imm64(ops[1])?;
                    i.imm = v as u32 as i32;
                    next_imm = Some((v >> 32) as u32 as i32);
                } else {
                    i.imm = operand::imm32(ops[1])?;
                    next_imm = Some(match ops.get(2) {
                        Some(t) => operand::imm32(t)?,
                        None => 0,
                    });
                }
            }
            Form::JmpK | Form::JmpX => {
                i.dst = operand::reg(ops[0])?;
                if row.form == Form::JmpX {
                    i.src = operand::reg(ops[1])?;
                } else {
                    i.imm = operand::imm32(ops[1])?;
                }
                i.off = self.target(ops[2], false)? as i16;
            }
            Form::Ja => i.off = self.target(ops[0], false)? as i16,
            Form::Ja32 | Form::CallLocal => i.imm = self.target(ops[0], true)?,
            Form::Call | Form::LdAbs => i.imm = operand::imm32(ops[0])?,
            Form::LdInd => (i.src, i.imm) = (operand::reg(ops[0])?, operand::imm32(ops[1])?),
            Form::Exit => {}
        }
        match row.sel {
            Sel::None => {}
            Sel::Src(s) => i.src = s,
            Sel::Off(o) => i.off = o,
            Sel::Imm(v) => i.imm = v,
        }
        self.out.push(i);
        if let Some(hi) = next_imm {
            self.out.push(Insn::new(0, 0, 0, 0, hi));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for f in &self.fixups {
            let err = |message| AsmError {
                line: f.line,
                message,
            };
            let target = *self
                .labels
                .get(&f.label)
                .ok_or_else(|| err(format!("undefined label `{}`", f.label)))?;
            let disp = target as i64 - f.slot as i64 - 1;
            let slot = &mut self.out[f.slot];
            if f.in_imm {
                slot.imm = i32::try_from(disp)
                    .map_err(|_| err(format!("label `{}` is out of 32-bit jump range", f.label)))?;
            } else {
                slot.off = i16::try_from(disp).map_err(|_| {
                    err(format!(
                        "label `{}` is {disp} slots away, beyond a 16-bit offset",
                        f.label
                    ))
                })?;
            }
        }
        Ok(self.out)
    }
}

/// Chooses between the K and X rows of a mnemonic by whether operand `at` is a register.
fn pick<'r>(rows: &[&'r IsaRow], ops: &[&str], at: usize) -> &'r IsaRow {
    let is_reg = ops.get(at).is_some_and(|o| o.starts_with('%'));
    rows.iter()
        .copied()
        .find(|r| register_form(r.form) == is_reg)
        .unwrap_or(rows[0])
}
