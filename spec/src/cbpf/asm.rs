//! Assembler for the kernel's `bpf_asm` syntax (tools/bpf/bpf_exp.{l,y}, filter.txt), plus a few
//! bpfconf extensions.
//!
//! # Syntax
//!
//! Like bpf_asm, the input is a stream of tokens: line breaks carry no meaning, so a label may sit
//! on its own line before its instruction, and comments (`/* */`, `;`, `//`, or `#` in column 0)
//! may go anywhere. Mnemonics, registers (`x`, `a`, `M`) and extension names are
//! case-insensitive; labels are case-sensitive.
//!
//! | mnemonic | operands | encoding |
//! |---|---|---|
//! | `ld` | `#k`, `[k]`, `[x + k]`, `M[k]`, `len`, extension | `LD\|IMM`, `LD\|W\|ABS`, `LD\|W\|IND`, `LD\|MEM`, `LD\|W\|LEN`, `LD\|W\|ABS` with `k = SKF_AD_OFF + off` |
//! | `ldh`, `ldb` | `[k]`, `[x + k]`, extension | `LD\|H\|…`, `LD\|B\|…` (extensions keep the H/B size bits) |
//! | `ldi` | `#k` | `LD\|IMM` |
//! | `ldx` | `#k`, `M[k]`, `len`, `4*([k]&0xf)` | `LDX\|IMM`, `LDX\|MEM`, `LDX\|W\|LEN`, `LDX\|B\|MSH` |
//! | `ldxi` | `#k` | `LDX\|IMM` |
//! | `ldxb` | `4*([k]&0xf)` | `LDX\|B\|MSH` |
//! | `st`, `stx` | `M[k]` | `ST`, `STX` |
//! | `jmp`, `ja` | target | `JMP\|JA`, `k = offset` |
//! | `jeq`, `jgt`, `jge`, `jset` | `#k, Lt[, Lf]` or `x, Lt[, Lf]` | `jf = 0` when `Lf` is omitted |
//! | `jneq`, `jne` | `#k, L[, L2]` or `x, L[, L2]` | `jeq` with the targets exchanged: `jt = L2` (0 if omitted), `jf = L` |
//! | `jlt` / `jle` | `#k, L[, L2]` or `x, L[, L2]` | `jge` / `jgt` with the targets exchanged, as bpf_exp.y encodes them |
//! | `add` … `rsh`, `mod`, `xor` | `#k` or `x` | `ALU\|op\|K`, `ALU\|op\|X` |
//! | `neg`, `tax`, `txa` | — | `ALU\|NEG`, `MISC\|TAX`, `MISC\|TXA` |
//! | `ret` | `#k`, `a`, `x` | `RET\|K`, `RET\|A`, `RET\|X` (BSD) |
//! | `cop` / `copx` | `#k` / — | NetBSD `MISC\|COP` (0x27) / `MISC\|COPX` (0x47) |
//! | `.insn` | `code, jt, jf, k` | the raw instruction, verbatim (bpfconf extension) |
//!
//! Registers may be written `%x`/`%a`; `[x+k]`, `[%x + k]` and `[x]` are all accepted. Extension
//! names ([`Ext`]) may carry a `#` (`ld #proto`); `vlan_avail` aliases `vlan_pr` and `xor_x` (which
//! bpf_asm lacks) names `SKF_AD_ALU_XOR_X`.
//!
//! Numbers: decimal, `0x` hex, `0b` binary, leading-`0` octal. A sign is allowed on decimal numbers
//! only (as in bpf_exp.l); negative values from −2³¹ to −1 wrap to two's complement
//! (`ret #-1` is `ret #0xffffffff`). Anything that does not fit in 32 bits is an error. The `#`
//! before an immediate is optional.
//!
//! Jump targets are labels or numbers. A number `N` or `+N` is the raw relative offset stored in
//! the instruction (the target is `pc + 1 + N`), which also reaches past the end of the program.
//! Conditional offsets must fit in 8 bits; jumps only go forward.
//!
//! `.insn code, jt, jf, k` emits any instruction at all (unknown opcodes, unused fields set, jumps
//! out of range); the disassembler uses it for whatever it cannot express otherwise.

mod lex;
mod mnemonics;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use crate::testrng::Rng;

use super::ext::Ext;
use super::Insn;
use lex::{Tok, Token};
use std::collections::HashMap;

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
    let toks = lex::lex(text)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        insns: Vec::new(),
        labels: HashMap::new(),
        pending: Vec::new(),
        fixups: Vec::new(),
    };
    while p.pos < p.toks.len() {
        p.statement()?;
    }
    if let Some((name, line)) = p.pending.first() {
        return Err(err(
            *line,
            format!("label '{name}' is not followed by an instruction"),
        ));
    }
    p.resolve()?;
    Ok(p.insns)
}

fn err(line: usize, message: impl Into<String>) -> AsmError {
    AsmError {
        line,
        message: message.into(),
    }
}

/// Which field of an instruction a jump target fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Jt,
    Jf,
    K,
}

/// A jump target as written.
#[derive(Debug, Clone)]
enum Target {
    Label(String),
    Offset(u32),
}

/// A label reference to patch once every label is known.
struct Fixup {
    insn: usize,
    field: Field,
    label: String,
    line: usize,
}

/// Source operand of ALU and conditional jump instructions.
enum Operand {
    K(u32),
    X,
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    insns: Vec<Insn>,
    /// Label name → (instruction index, line of definition).
    labels: HashMap<String, (usize, usize)>,
    /// Labels seen since the last instruction (they name the next one).
    pending: Vec<(String, usize)>,
    fixups: Vec<Fixup>,
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "end of input".into(),
        Some(t) => format!("'{}'", t.text),
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn peek_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.peek_punct(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// The line to blame for a problem at the current position.
    fn here(&self, fallback: usize) -> usize {
        self.peek().map_or(fallback, |t| t.line)
    }

    fn expect_punct(&mut self, c: char, line: usize, what: &str) -> Result<(), AsmError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(err(
                self.here(line),
                format!("expected '{c}' {what}, found {}", describe(self.peek())),
            ))
        }
    }

    /// The identifier at the current position, lowercased, if any (not consumed).
    fn peek_ident_lower(&self) -> Option<String> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => Some(s.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let hit = self.peek_ident_lower().as_deref() == Some(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// `x` or `%x` (likewise `a`).
    fn eat_register(&mut self, r: &str) -> bool {
        let save = self.pos;
        let pct = self.eat_punct('%');
        if self.eat_keyword(r) {
            return true;
        }
        if pct {
            self.pos = save;
        }
        false
    }

    /// A number with an optional sign (decimal only), wrapped to 32 bits.
    fn number(&mut self, line: usize, what: &str) -> Result<u32, AsmError> {
        let sign = if self.eat_punct('-') {
            Some('-')
        } else if self.eat_punct('+') {
            Some('+')
        } else {
            None
        };
        let t = self.peek();
        let Some(Token {
            tok: Tok::Num { value, decimal },
            line: nline,
            text,
        }) = t
        else {
            return Err(err(
                self.here(line),
                format!("expected {what}, found {}", describe(t)),
            ));
        };
        self.pos += 1;
        match sign {
            Some(s) if !decimal => Err(err(
                *nline,
                format!("a sign is only allowed on decimal numbers, not '{s}{text}'"),
            )),
            Some('-') => {
                if *value > 1 << 31 {
                    Err(err(
                        *nline,
                        format!("number '-{text}' is out of range (below -2147483648)"),
                    ))
                } else {
                    Ok(value.wrapping_neg())
                }
            }
            _ => Ok(*value),
        }
    }

    /// An immediate: `#k` or a bare `k`.
    fn immediate(&mut self, line: usize, what: &str) -> Result<u32, AsmError> {
        self.eat_punct('#');
        self.number(line, what)
    }

    /// A source operand: `x`, `%x`, `#k` or `k`.
    fn operand(&mut self, line: usize, mnemonic: &str) -> Result<Operand, AsmError> {
        if self.eat_register("x") {
            return Ok(Operand::X);
        }
        let t = self.peek();
        match t.map(|t| &t.tok) {
            Some(Tok::Punct('#' | '-' | '+') | Tok::Num { .. }) => {
                Ok(Operand::K(self.immediate(line, "a number")?))
            }
            _ => Err(err(
                self.here(line),
                format!(
                    "bad operand for '{mnemonic}': expected '#k' or 'x', found {}",
                    describe(t)
                ),
            )),
        }
    }

    /// `M[k]`, after the caller has seen the `M`.
    fn mem_index(&mut self, line: usize) -> Result<u32, AsmError> {
        self.expect_punct('[', line, "after 'M'")?;
        let k = self.number(line, "a scratch memory index")?;
        self.expect_punct(']', line, "to close 'M[k]'")?;
        Ok(k)
    }

    /// A packet operand after `[`: `k]` or `x + k]` (`%x`, `[x]` allowed). Returns (indirect, k).
    fn packet(&mut self, line: usize) -> Result<(bool, u32), AsmError> {
        if self.eat_register("x") {
            let k = if self.eat_punct('+') {
                self.number(line, "an offset after 'x +'")?
            } else {
                0
            };
            self.expect_punct(']', line, "to close '[x + k]'")?;
            Ok((true, k))
        } else {
            let k = self.number(line, "a packet offset or 'x'")?;
            self.expect_punct(']', line, "to close '[k]'")?;
            Ok((false, k))
        }
    }

    /// `4*([k]&0xf)`, returning k.
    fn msh(&mut self, line: usize) -> Result<u32, AsmError> {
        let four = self.number(line, "'4*([k]&0xf)'")?;
        if four != 4 {
            return Err(err(line, "only '4*([k]&0xf)' is supported"));
        }
        self.expect_punct('*', line, "in '4*([k]&0xf)'")?;
        self.expect_punct('(', line, "in '4*([k]&0xf)'")?;
        self.expect_punct('[', line, "in '4*([k]&0xf)'")?;
        let k = self.number(line, "a packet offset")?;
        self.expect_punct(']', line, "in '4*([k]&0xf)'")?;
        self.expect_punct('&', line, "in '4*([k]&0xf)'")?;
        let mask = self.number(line, "'0xf'")?;
        if mask != 0xf {
            return Err(err(line, "only '4*([k]&0xf)' is supported"));
        }
        self.expect_punct(')', line, "in '4*([k]&0xf)'")?;
        Ok(k)
    }

    /// An extension name with optional `#` (not consumed unless it is one).
    fn extension(&mut self) -> Option<Ext> {
        let save = self.pos;
        self.eat_punct('#');
        if let Some(e) = self.peek_ident_lower().and_then(|s| Ext::from_name(&s)) {
            self.pos += 1;
            return Some(e);
        }
        self.pos = save;
        None
    }

    fn target(&mut self, line: usize) -> Result<Target, AsmError> {
        let t = self.peek();
        match t.map(|t| &t.tok) {
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                Ok(Target::Label(name.clone()))
            }
            Some(Tok::Punct('-')) => Err(err(
                self.here(line),
                "negative jump offset: classic BPF jumps only go forward",
            )),
            Some(Tok::Punct('+') | Tok::Num { .. }) => {
                Ok(Target::Offset(self.number(line, "a jump offset")?))
            }
            _ => Err(err(
                self.here(line),
                format!(
                    "expected a jump target (label or offset), found {}",
                    describe(t)
                ),
            )),
        }
    }

    fn push(&mut self, insn: Insn) -> usize {
        for (name, _) in self.pending.drain(..) {
            if let Some(e) = self.labels.get_mut(&name) {
                e.0 = self.insns.len();
            }
        }
        self.insns.push(insn);
        self.insns.len() - 1
    }

    /// Fills a jump field from a target: offsets directly, labels later.
    fn set_target(
        &mut self,
        idx: usize,
        field: Field,
        t: Target,
        line: usize,
    ) -> Result<(), AsmError> {
        match t {
            Target::Offset(n) => {
                if field != Field::K && n > 255 {
                    return Err(err(
                        line,
                        format!(
                            "jump offset {n} out of range: conditional jumps reach at most 255"
                        ),
                    ));
                }
                let i = &mut self.insns[idx];
                match field {
                    Field::Jt => i.jt = n as u8,
                    Field::Jf => i.jf = n as u8,
                    Field::K => i.k = n,
                }
            }
            Target::Label(label) => self.fixups.push(Fixup {
                insn: idx,
                field,
                label,
                line,
            }),
        }
        Ok(())
    }

    fn statement(&mut self) -> Result<(), AsmError> {
        let Some(t) = self.peek() else {
            return Ok(());
        };
        let line = t.line;
        self.pos += 1;
        match &t.tok {
            Tok::Ident(name) if self.peek_punct(':') => {
                self.pos += 1;
                if let Some((_, first)) = self.labels.get(name) {
                    return Err(err(
                        line,
                        format!("duplicate label '{name}' (first defined on line {first})"),
                    ));
                }
                // The index is fixed when the next instruction is pushed.
                self.labels.insert(name.clone(), (usize::MAX, line));
                self.pending.push((name.clone(), line));
                Ok(())
            }
            Tok::Ident(name) => self.instruction(&name.to_ascii_lowercase(), line),
            Tok::Dir(d) if d == "insn" => {
                let code = self.immediate(line, "an opcode")?;
                let code = u16::try_from(code)
                    .map_err(|_| err(line, format!("opcode {code:#x} does not fit in 16 bits")))?;
                self.expect_punct(',', line, "after the opcode")?;
                let jt = self.immediate(line, "jt")?;
                self.expect_punct(',', line, "after jt")?;
                let jf = self.immediate(line, "jf")?;
                self.expect_punct(',', line, "after jf")?;
                let k = self.immediate(line, "k")?;
                let (Ok(jt), Ok(jf)) = (u8::try_from(jt), u8::try_from(jf)) else {
                    return Err(err(line, "jt and jf must fit in 8 bits (0..=255)"));
                };
                self.push(Insn::new(code, jt, jf, k));
                Ok(())
            }
            Tok::Dir(d) => Err(err(line, format!("unknown directive '.{d}'"))),
            _ => Err(err(
                line,
                format!("expected an instruction or a label, found '{}'", t.text),
            )),
        }
    }

    /// Patches label references into offsets.
    fn resolve(&mut self) -> Result<(), AsmError> {
        for f in &self.fixups {
            let Some(&(target, _)) = self.labels.get(&f.label) else {
                return Err(err(f.line, format!("undefined label '{}'", f.label)));
            };
            let delta = target as i64 - f.insn as i64 - 1;
            if delta < 0 {
                return Err(err(
                    f.line,
                    format!(
                        "backward jump to label '{}': classic BPF jumps only go forward",
                        f.label
                    ),
                ));
            }
            let i = &mut self.insns[f.insn];
            match f.field {
                Field::K => {
                    i.k = u32::try_from(delta).map_err(|_| {
                        err(f.line, format!("jump to label '{}' is too far", f.label))
                    })?
                }
                Field::Jt | Field::Jf => {
                    let Ok(d) = u8::try_from(delta) else {
                        return Err(err(
                            f.line,
                            format!(
                                "jump to label '{}' is {delta} instructions away: conditional \
                                 jumps reach at most 255",
                                f.label
                            ),
                        ));
                    };
                    if f.field == Field::Jt {
                        i.jt = d;
                    } else {
                        i.jf = d;
                    }
                }
            }
        }
        Ok(())
    }
}
