//! Per-mnemonic operand parsing for the bpf_asm assembler: one method per instruction family,
//! emitting the encodings listed in the parent module's table.

use super::lex::Tok;
use super::{describe, err, AsmError, Field, Operand, Parser};
use crate::cbpf::ext::Ext;
use crate::cbpf::{class, misc, mode, op, rval, size, src, AluOp, Insn, JmpOp};

impl Parser<'_> {
    fn stmt(&mut self, code: u16, k: u32) -> Result<(), AsmError> {
        self.push(Insn::stmt(code, k));
        Ok(())
    }

    fn bad_operand(&self, m: &str, line: usize, expected: &str) -> AsmError {
        err(
            self.here(line),
            format!(
                "bad operand for '{m}': expected {expected}, found {}",
                describe(self.peek())
            ),
        )
    }

    pub(super) fn instruction(&mut self, m: &str, line: usize) -> Result<(), AsmError> {
        use class::*;
        let alu = AluOp::ALL.iter().copied().find(|o| o.mnemonic() == m);
        if let Some(o) = alu {
            return match self.operand(line, m)? {
                Operand::K(k) => self.stmt(ALU | o.bits() | src::K, k),
                Operand::X => self.stmt(ALU | o.bits() | src::X, 0),
            };
        }
        match m {
            "ld" | "ldh" | "ldb" => self.load_a(m, line),
            "ldi" => {
                let k = self.immediate(line, "an immediate")?;
                self.stmt(LD | mode::IMM, k)
            }
            "ldx" => self.load_x(line),
            "ldxi" => {
                let k = self.immediate(line, "an immediate")?;
                self.stmt(LDX | mode::IMM, k)
            }
            "ldxb" => {
                let k = self.msh(line)?;
                self.stmt(LDX | size::B | mode::MSH, k)
            }
            "st" | "stx" => {
                if !self.eat_keyword("m") {
                    return Err(self.bad_operand(m, line, "'M[k]'"));
                }
                let k = self.mem_index(line)?;
                self.stmt(if m == "st" { ST } else { STX }, k)
            }
            "jmp" | "ja" => {
                let t = self.target(line)?;
                let idx = self.push(Insn::stmt(JMP | op::JA, 0));
                self.set_target(idx, Field::K, t, line)
            }
            "jeq" => self.cond_jump(m, JmpOp::Jeq, false, line),
            "jgt" => self.cond_jump(m, JmpOp::Jgt, false, line),
            "jge" => self.cond_jump(m, JmpOp::Jge, false, line),
            "jset" => self.cond_jump(m, JmpOp::Jset, false, line),
            "jneq" | "jne" => self.cond_jump(m, JmpOp::Jeq, true, line),
            "jlt" => self.cond_jump(m, JmpOp::Jge, true, line),
            "jle" => self.cond_jump(m, JmpOp::Jgt, true, line),
            "neg" => self.stmt(ALU | op::NEG, 0),
            "tax" => self.stmt(MISC | misc::TAX, 0),
            "txa" => self.stmt(MISC | misc::TXA, 0),
            "copx" => self.stmt(MISC | misc::COPX, 0),
            "cop" => {
                let k = self.immediate(line, "a coprocessor function index")?;
                self.stmt(MISC | misc::COP, k)
            }
            "ret" => {
                if self.eat_register("a") {
                    self.stmt(RET | rval::A, 0)
                } else if self.eat_register("x") {
                    self.stmt(RET | rval::X, 0)
                } else if matches!(
                    self.peek().map(|t| &t.tok),
                    Some(Tok::Punct('#' | '-' | '+') | Tok::Num { .. })
                ) {
                    let k = self.immediate(line, "a return value")?;
                    self.stmt(RET | rval::K, k)
                } else {
                    Err(self.bad_operand(m, line, "'#k', 'a' or 'x'"))
                }
            }
            _ => Err(err(line, format!("unknown mnemonic '{m}'"))),
        }
    }

    /// `ld`, `ldh`, `ldb`.
    fn load_a(&mut self, m: &str, line: usize) -> Result<(), AsmError> {
        use class::LD;
        let sz = match m {
            "ldh" => size::H,
            "ldb" => size::B,
            _ => size::W,
        };
        if let Some(e) = self.extension() {
            return match e.k() {
                Some(k) => self.stmt(LD | sz | mode::ABS, k),
                None if sz == size::W => self.stmt(LD | size::W | mode::LEN, 0),
                None => Err(err(
                    line,
                    format!("'{m} len' is not an instruction; use 'ld len'"),
                )),
            };
        }
        if self.eat_punct('[') {
            let (ind, k) = self.packet(line)?;
            let md = if ind { mode::IND } else { mode::ABS };
            return self.stmt(LD | sz | md, k);
        }
        if sz == size::W {
            if self.eat_keyword("m") {
                let k = self.mem_index(line)?;
                return self.stmt(LD | mode::MEM, k);
            }
            if matches!(
                self.peek().map(|t| &t.tok),
                Some(Tok::Punct('#' | '-' | '+') | Tok::Num { .. })
            ) {
                let k = self.immediate(line, "an immediate")?;
                return self.stmt(LD | mode::IMM, k);
            }
            return Err(self.bad_operand(
                m,
                line,
                "'#k', '[k]', '[x + k]', 'M[k]', 'len' or an extension name",
            ));
        }
        Err(self.bad_operand(m, line, "'[k]', '[x + k]' or an extension name"))
    }

    /// `ldx`.
    fn load_x(&mut self, line: usize) -> Result<(), AsmError> {
        use class::LDX;
        let save = self.pos;
        if let Some(e) = self.extension() {
            if e == Ext::Len {
                return self.stmt(LDX | size::W | mode::LEN, 0);
            }
            self.pos = save;
            return Err(err(
                line,
                format!(
                    "'ldx {}' is not an instruction: ancillary loads go to A ('ld {}')",
                    e.name(),
                    e.name()
                ),
            ));
        }
        if self.eat_keyword("m") {
            let k = self.mem_index(line)?;
            return self.stmt(LDX | mode::MEM, k);
        }
        if self.eat_punct('#') {
            let k = self.number(line, "an immediate")?;
            return self.stmt(LDX | mode::IMM, k);
        }
        if matches!(
            self.peek().map(|t| &t.tok),
            Some(Tok::Punct('-' | '+') | Tok::Num { .. })
        ) {
            let k = self.number(line, "an immediate")?;
            if self.peek_punct('*') {
                // `ldx 4*([k]&0xf)`: rewind and parse the whole form.
                if k != 4 {
                    return Err(err(line, "only '4*([k]&0xf)' is supported"));
                }
                self.pos -= 1;
                let k = self.msh(line)?;
                return self.stmt(LDX | size::B | mode::MSH, k);
            }
            return self.stmt(LDX | mode::IMM, k);
        }
        Err(self.bad_operand("ldx", line, "'#k', 'M[k]', 'len' or '4*([k]&0xf)'"))
    }

    /// Conditional jumps. `swapped` mnemonics (jneq, jlt, jle) name the false target first.
    fn cond_jump(&mut self, m: &str, o: JmpOp, swapped: bool, line: usize) -> Result<(), AsmError> {
        let operand = self.operand(line, m)?;
        self.expect_punct(',', line, &format!("after the '{m}' operand"))?;
        let first = self.target(line)?;
        let second = if self.eat_punct(',') {
            Some(self.target(line)?)
        } else {
            None
        };
        let (jt, jf) = if swapped {
            (second, Some(first))
        } else {
            (Some(first), second)
        };
        let (s, k) = match operand {
            Operand::K(k) => (src::K, k),
            Operand::X => (src::X, 0),
        };
        let idx = self.push(Insn::stmt(class::JMP | o.bits() | s, k));
        if let Some(t) = jt {
            self.set_target(idx, Field::Jt, t, line)?;
        }
        if let Some(t) = jf {
            self.set_target(idx, Field::Jf, t, line)?;
        }
        Ok(())
    }
}
