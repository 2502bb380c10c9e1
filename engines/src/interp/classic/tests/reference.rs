//! The interpreter as it was before [`super::super::Prepared`]: every step decodes its
//! instruction again. Kept, unchanged, as the reference the prepared form is tested against.

use super::super::{
    cop_call, initial_mem, len_value, load_linux, nla_find_at, nla_find_nested_at, rand_value,
    skb_field, ClassicResult, Trap, RAND_SEED, STEP_LIMIT,
};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::ext::{Ext, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{AluOp, Insn, Op, Size, Src};
use bpfconf_spec::Dialect;

struct Machine<'a> {
    dialect: Dialect,
    pkt: &'a [u8],
    ctx: &'a Ctx,
    a: u32,
    x: u32,
    mem: Vec<u32>,
    rand_state: u32,
}

/// Outcome of a single step.
enum Flow {
    Next(usize),
    Return(u32),
}

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32)
}

impl Machine<'_> {
    /// BSD/NetBSD packet load: unsigned offset, must fit in the buffer.
    fn load_bsd(&self, off: u32, size: u32) -> Option<u32> {
        let end = off.checked_add(size)?;
        if end as usize > self.pkt.len() {
            return None;
        }
        Some(be(&self.pkt[off as usize..end as usize]))
    }

    /// Linux packet load (see [`load_linux`]).
    fn load_linux(&self, off: i32, size: u32) -> Option<u32> {
        load_linux(self.pkt, self.ctx, off, size)
    }

    fn load(&self, off: u32, size: u32) -> Option<u32> {
        match self.dialect {
            Dialect::Linux => self.load_linux(off as i32, size),
            Dialect::Bsd | Dialect::Netbsd => self.load_bsd(off, size),
        }
    }

    /// Linux ancillary load. `None` means the program ends, returning the current A.
    fn ancillary(&mut self, ext: Ext) -> Option<u32> {
        Some(match ext {
            Ext::XorX => self.a ^ self.x,
            Ext::Rand => rand_value(self.ctx, &mut self.rand_state),
            Ext::Nla => nla_find_at(self.pkt, self.a, self.x),
            Ext::Nlan => nla_find_nested_at(self.pkt, self.a, self.x),
            _ => return skb_field(ext, self.pkt.len(), self.ctx),
        })
    }

    fn shift(&self, left: bool, a: u32, amount: u32, src: Src) -> u32 {
        match (self.dialect, src) {
            // Linux: 32-bit eBPF ALU shift; NetBSD and libpcap's constant shifts: C shifts that
            // x86 executes modulo 32.
            (Dialect::Linux | Dialect::Netbsd, _) | (Dialect::Bsd, Src::K) => {
                if left {
                    a.wrapping_shl(amount)
                } else {
                    a.wrapping_shr(amount)
                }
            }
            (Dialect::Bsd, Src::X) => {
                if amount >= 32 {
                    0
                } else if left {
                    a << amount
                } else {
                    a >> amount
                }
            }
        }
    }

    fn step(&mut self, prog: &[Insn], pc: usize) -> Flow {
        let insn = prog[pc];
        let next = pc + 1;
        let Some(op) = insn.op() else {
            // Unknown opcodes never pass a checker; interpreters that meet one return 0.
            return Flow::Return(0);
        };
        let k = insn.k;
        let fail = Flow::Return(0);
        match op {
            Op::LdAbs(size) => {
                if self.dialect == Dialect::Linux
                    && (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&k)
                {
                    // The checker rejects unknown ancillary offsets; treat them as failed loads.
                    let Some(ext) = Ext::from_k(k) else {
                        return fail;
                    };
                    match self.ancillary(ext) {
                        Some(v) => self.a = v,
                        None => return Flow::Return(self.a),
                    }
                } else {
                    match self.load(k, size.bytes()) {
                        Some(v) => self.a = v,
                        None => return fail,
                    }
                }
            }
            Op::LdInd(size) => {
                let v = match self.dialect {
                    Dialect::Linux => self.load_linux(self.x.wrapping_add(k) as i32, size.bytes()),
                    _ => self
                        .x
                        .checked_add(k)
                        .and_then(|off| self.load_bsd(off, size.bytes())),
                };
                match v {
                    Some(v) => self.a = v,
                    None => return fail,
                }
            }
            Op::LdxMsh => match self.load(k, Size::B.bytes()) {
                Some(v) => self.x = (v & 0xf) << 2,
                None => return fail,
            },
            Op::LdLen | Op::LdxLen => {
                let len = len_value(self.dialect, self.pkt.len(), self.ctx);
                if op == Op::LdLen {
                    self.a = len
                } else {
                    self.x = len
                }
            }
            Op::LdImm => self.a = k,
            Op::LdxImm => self.x = k,
            Op::LdMem | Op::LdxMem | Op::St | Op::Stx => {
                let Some(slot) = self.mem.get_mut(k as usize) else {
                    return fail;
                };
                match op {
                    Op::LdMem => self.a = *slot,
                    Op::LdxMem => self.x = *slot,
                    Op::St => *slot = self.a,
                    _ => *slot = self.x,
                }
            }
            Op::Alu(o, s) => {
                let v = match s {
                    Src::K => k,
                    Src::X => self.x,
                };
                let a = self.a;
                self.a = match o {
                    AluOp::Add => a.wrapping_add(v),
                    AluOp::Sub => a.wrapping_sub(v),
                    AluOp::Mul => a.wrapping_mul(v),
                    AluOp::Div | AluOp::Mod if v == 0 => return fail,
                    AluOp::Div => a / v,
                    AluOp::Mod => a % v,
                    AluOp::And => a & v,
                    AluOp::Or => a | v,
                    AluOp::Xor => a ^ v,
                    AluOp::Lsh => self.shift(true, a, v, s),
                    AluOp::Rsh => self.shift(false, a, v, s),
                };
            }
            Op::Neg => self.a = self.a.wrapping_neg(),
            Op::Ja => {
                if self.dialect != Dialect::Bsd {
                    return Flow::Next(next.wrapping_add(k as usize));
                }
                // libpcap: k is sign-extended (backward jumps implement `protochain`). libpcap
                // 1.10 has no bound on backward jumps (master stops after 64): a loop runs until
                // it exits, and one that never exits hits our step limit (a trap, not a value).
                // A target outside the program ends it with 0 (master's check; 1.10's
                // validator already refuses such programs).
                let target = (pc as u32).wrapping_add(1).wrapping_add(k);
                if target as usize >= prog.len() {
                    return fail;
                }
                return Flow::Next(target as usize);
            }
            Op::Jmp(o, s) => {
                let v = match s {
                    Src::K => k,
                    Src::X => self.x,
                };
                let off = if o.eval(self.a, v) { insn.jt } else { insn.jf };
                return Flow::Next(next + off as usize);
            }
            Op::RetK => return Flow::Return(k),
            Op::RetA => return Flow::Return(self.a),
            // No interpreter implements RET X: only BSD-family validators accept it, and their
            // interpreters fall into the default case, which returns 0.
            Op::RetX => return Flow::Return(0),
            Op::Tax => self.x = self.a,
            Op::Txa => self.a = self.x,
            Op::Cop | Op::Copx => {
                if self.dialect != Dialect::Netbsd {
                    return fail;
                }
                let idx = if op == Op::Cop { k } else { self.x };
                match cop_call(self.ctx, idx, self.a, self.pkt, &mut self.mem) {
                    Some(v) => self.a = v,
                    None => return fail,
                }
            }
        }
        Flow::Next(next)
    }
}

/// Runs a classic program, one decoded step at a time.
pub(super) fn run(
    dialect: Dialect,
    prog: &[Insn],
    pkt: &[u8],
    ctx: &Ctx,
) -> Result<ClassicResult, Trap> {
    let mem = initial_mem(dialect, ctx).to_vec();
    let mut m = Machine {
        dialect,
        pkt,
        ctx,
        a: 0,
        x: 0,
        mem,
        rand_state: RAND_SEED,
    };
    let mut pc = 0usize;
    for _ in 0..STEP_LIMIT {
        if pc >= prog.len() {
            return Err(Trap::PcOutOfRange(pc));
        }
        match m.step(prog, pc) {
            Flow::Next(n) => pc = n,
            Flow::Return(r) => {
                return Ok(ClassicResult { ret: r, mem: m.mem });
            }
        }
    }
    Err(Trap::StepLimit)
}
