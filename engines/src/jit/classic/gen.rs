//! The code generator: one pass over the instructions, then the out-of-line stubs (epilogue,
//! `return 0`, `return A`, traps, Linux negative-offset loads). Register use and the step
//! counting scheme are described in the parent module. Control flow (returns, jumps, `cop`)
//! is emitted here, straight-line operations in [`ops`].

use super::{rt, trap, RunCtx};
use crate::jit::emit::{Asm, Assembled, Cond, EmitError, Label, Origin};
use crate::jit::x86::*;
use crate::jit::{Inject, CRASH_IMM, HANG_IMM};
use bpfconf_spec::cbpf::ext::{Ext, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{Insn, JmpOp, Op, Size, Src};
use bpfconf_spec::Dialect;
use flow::{charges, ja_target};
use std::collections::BTreeMap;
use std::mem::offset_of;

/// The offset of a [`RunCtx`] field, as a displacement from r13.
macro_rules! off {
    ($f:ident) => {
        offset_of!(RunCtx, $f) as i32
    };
}

mod flow;
mod ops;

/// A: ebx.
const A: Reg32 = ebx;
/// X: r12d.
const X: Reg32 = r12d;

/// The generated code and what a run must fill in for it.
pub(super) struct Output {
    /// The code.
    pub asm: Assembled,
    /// The skb fields the ancillary loads read, with their slot in [`RunCtx::anc`].
    pub fields: Vec<(Ext, usize)>,
}

/// Where a packet load puts its byte(s).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dst {
    /// A = the big-endian value.
    A,
    /// `ldx msh`: X = 4 × (byte & 0xf).
    Msh,
}

/// A Linux `ld [x + k]` whose offset came out negative: call [`rt::load`] out of line.
struct NegLoad {
    entry: Label,
    back: Label,
    size: u32,
}

/// What happens after an instruction's code: whether control may continue into the code that
/// follows it (the next instruction's).
type FallsThrough = bool;

struct Gen<'a> {
    asm: Asm,
    insns: &'a [Insn],
    dialect: Dialect,
    inject: Inject,
    labels: Vec<Label>,
    epilogue: Label,
    fail: Label,
    ret_a: Label,
    /// True once an ancillary load may end the program returning A.
    uses_ret_a: bool,
    step_limit: Label,
    /// Trap stubs for jump targets outside the program, by target pc.
    out_of_range: BTreeMap<u64, Label>,
    neg_loads: Vec<NegLoad>,
    fields: Vec<(Ext, usize)>,
    /// Steps to charge at each instruction (block entries), when the program can loop.
    charge: Option<Vec<u32>>,
}

/// Compiles a classic program (checked or not: anything the interpreter traps on traps here).
pub(super) fn compile(
    insns: &[Insn],
    dialect: Dialect,
    inject: Inject,
) -> Result<Output, EmitError> {
    let mut asm = Asm::with_capacity(64 + 6 * insns.len())?;
    let labels = (0..insns.len()).map(|_| asm.label()).collect();
    let (epilogue, fail, ret_a, step_limit) = (asm.label(), asm.label(), asm.label(), asm.label());
    let mut g = Gen {
        asm,
        insns,
        dialect,
        inject,
        labels,
        epilogue,
        fail,
        ret_a,
        uses_ret_a: false,
        step_limit,
        out_of_range: BTreeMap::new(),
        neg_loads: Vec::new(),
        fields: Vec::new(),
        charge: charges(insns, dialect),
    };
    g.prologue()?;
    let mut falls = true;
    for pc in 0..insns.len() {
        g.asm.bind(g.labels[pc])?;
        g.asm.mark(Origin::Insn { prog: 0, insn: pc })?;
        if let Some(n) = g.charge.as_ref().map(|c| c[pc]).filter(|&n| n > 0) {
            g.asm.a.sub(dword_ptr(r13 + off!(steps)), n)?;
            g.asm.jcc(Cond::B, g.step_limit)?;
        }
        falls = g.insn(pc)?;
    }
    if falls {
        // Running off the end (an empty or unchecked program).
        let t = g.target(insns.len() as u64);
        g.asm.jmp(t)?;
    }
    g.stubs()?;
    Ok(Output {
        asm: g.asm.finish()?,
        fields: g.fields,
    })
}

impl Gen<'_> {
    fn prologue(&mut self) -> Result<(), EmitError> {
        self.asm.mark(Origin::Stub("prologue"))?;
        let a = &mut self.asm.a;
        for r in [rbx, rbp, r12, r13, r14, r15] {
            a.push(r)?;
        }
        // Six pushes and the return address: one more slot aligns rsp for call-outs.
        a.sub(rsp, 8)?;
        a.mov(r13, rdi)?;
        a.mov(r14, qword_ptr(r13 + off!(pkt)))?;
        a.mov(r15, qword_ptr(r13 + off!(bound)))?;
        a.mov(rbp, qword_ptr(r13 + off!(mem)))?;
        a.xor(A, A)?;
        a.xor(X, X)?;
        Ok(())
    }

    /// The label of instruction `t`, or of a trap stub when `t` is outside the program.
    fn target(&mut self, t: u64) -> Label {
        if t < self.insns.len() as u64 {
            return self.labels[t as usize];
        }
        if let Some(l) = self.out_of_range.get(&t) {
            return *l;
        }
        let l = self.asm.label();
        self.out_of_range.insert(t, l);
        l
    }

    /// True when `t` is the instruction right after `pc` (so reached by falling through).
    fn is_next(&self, pc: usize, t: u64) -> bool {
        t == pc as u64 + 1 && t < self.insns.len() as u64
    }

    /// `mov rax, f; call rax` (arguments already in rdi, rsi, rdx).
    fn callout(&mut self, f: *const ()) -> Result<(), EmitError> {
        self.asm.a.mov(rax, f as u64)?;
        self.asm.a.call(rax)?;
        Ok(())
    }

    /// After a call-out returning [`rt::FAIL`] or a value: return 0 on failure.
    fn fail_if_negative(&mut self) -> Result<(), EmitError> {
        self.asm.a.test(rax, rax)?;
        self.asm.jcc(Cond::S, self.fail)
    }

    /// Returns with eax already set (falls into the epilogue after the last instruction).
    fn leave(&mut self, pc: usize) -> Result<FallsThrough, EmitError> {
        if pc + 1 != self.insns.len() {
            self.asm.jmp(self.epilogue)?;
        }
        Ok(false)
    }

    fn insn(&mut self, pc: usize) -> Result<FallsThrough, EmitError> {
        let insn = self.insns[pc];
        let k = insn.k;
        let Some(op) = insn.op() else {
            // Unknown opcodes (accepted by BSD's field-wise validator) return 0.
            self.asm.jmp(self.fail)?;
            return Ok(false);
        };
        match op {
            Op::LdImm | Op::LdxImm => {
                let dst = if op == Op::LdImm { A } else { X };
                if self.inject.hang && k == HANG_IMM {
                    let l = self.asm.label();
                    self.asm.bind(l)?;
                    self.asm.jmp(l)?;
                    return Ok(false);
                }
                if self.inject.crash && k == CRASH_IMM {
                    self.asm.a.xor(eax, eax)?;
                    self.asm.a.mov(dword_ptr(rax), eax)?;
                }
                self.asm.a.mov(dst, k)?;
            }
            Op::LdLen => self.asm.a.mov(A, dword_ptr(r13 + off!(len)))?,
            Op::LdxLen => self.asm.a.mov(X, dword_ptr(r13 + off!(len)))?,
            Op::LdAbs(size) => {
                if self.dialect == Dialect::Linux
                    && (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&k)
                {
                    return self.ancillary(k);
                }
                return self.load_const(k, size, Dst::A);
            }
            Op::LdxMsh => return self.load_const(k, Size::B, Dst::Msh),
            Op::LdInd(size) => self.load_ind(k, size)?,
            Op::LdMem | Op::LdxMem | Op::St | Op::Stx => return self.mem_op(op, k),
            Op::Alu(o, s) => return self.alu(o, s, k),
            Op::Neg => self.asm.a.neg(A)?,
            Op::Tax => self.asm.a.mov(X, A)?,
            Op::Txa => self.asm.a.mov(A, X)?,
            Op::Ja => {
                match ja_target(self.dialect, pc, k, self.insns.len()) {
                    None => self.asm.jmp(self.fail)?,
                    Some(t) if self.is_next(pc, t) => return Ok(true),
                    Some(t) => {
                        let l = self.target(t);
                        self.asm.jmp(l)?;
                    }
                }
                return Ok(false);
            }
            Op::Jmp(o, s) => return self.jump(pc, insn, o, s),
            Op::RetK => {
                if k == 0 {
                    self.asm.a.xor(eax, eax)?;
                } else {
                    self.asm.a.mov(eax, k)?;
                }
                return self.leave(pc);
            }
            Op::RetA => {
                self.asm.a.mov(eax, A)?;
                return self.leave(pc);
            }
            Op::RetX => {
                // No interpreter implements RET X: it returns 0.
                self.asm.jmp(self.fail)?;
                return Ok(false);
            }
            Op::Cop | Op::Copx => {
                if self.dialect != Dialect::Netbsd {
                    self.asm.jmp(self.fail)?;
                    return Ok(false);
                }
                let a = &mut self.asm.a;
                a.mov(rdi, r13)?;
                if op == Op::Cop {
                    a.mov(esi, k)?;
                } else {
                    a.mov(esi, X)?;
                }
                a.mov(edx, A)?;
                self.callout(rt::cop as *const ())?;
                self.fail_if_negative()?;
                self.asm.a.mov(A, eax)?;
            }
        }
        Ok(true)
    }

    fn jump(&mut self, pc: usize, insn: Insn, o: JmpOp, s: Src) -> Result<FallsThrough, EmitError> {
        let t = pc as u64 + 1 + insn.jt as u64;
        let f = pc as u64 + 1 + insn.jf as u64;
        if t == f {
            if self.is_next(pc, t) {
                return Ok(true);
            }
            let l = self.target(t);
            self.asm.jmp(l)?;
            return Ok(false);
        }
        let a = &mut self.asm.a;
        match (o, s) {
            (JmpOp::Jset, Src::K) => a.test(A, insn.k)?,
            (JmpOp::Jset, Src::X) => a.test(A, X)?,
            (_, Src::K) => a.cmp(A, insn.k)?,
            (_, Src::X) => a.cmp(A, X)?,
        }
        let cond = match o {
            JmpOp::Jeq if self.inject.flip_jeq => Cond::Ne,
            JmpOp::Jeq => Cond::E,
            JmpOp::Jgt => Cond::A,
            JmpOp::Jge => Cond::Ae,
            JmpOp::Jset => Cond::Ne,
        };
        if self.is_next(pc, t) {
            let l = self.target(f);
            self.asm.jcc(cond.negate(), l)?;
            return Ok(true);
        }
        let l = self.target(t);
        self.asm.jcc(cond, l)?;
        if self.is_next(pc, f) {
            return Ok(true);
        }
        let l = self.target(f);
        self.asm.jmp(l)?;
        Ok(false)
    }

    fn stubs(&mut self) -> Result<(), EmitError> {
        self.asm.bind(self.epilogue)?;
        self.asm.mark(Origin::Stub("epilogue"))?;
        let a = &mut self.asm.a;
        a.add(rsp, 8)?;
        for r in [r15, r14, r13, r12, rbp, rbx] {
            a.pop(r)?;
        }
        a.ret()?;

        self.asm.bind(self.fail)?;
        self.asm.mark(Origin::Stub("return 0"))?;
        self.asm.a.xor(eax, eax)?;
        self.asm.jmp(self.epilogue)?;

        if self.uses_ret_a {
            self.asm.bind(self.ret_a)?;
            self.asm.mark(Origin::Stub("return A"))?;
            self.asm.a.mov(eax, A)?;
            self.asm.jmp(self.epilogue)?;
        }

        for nl in std::mem::take(&mut self.neg_loads) {
            self.asm.bind(nl.entry)?;
            self.asm.mark(Origin::Stub("negative offset load"))?;
            let a = &mut self.asm.a;
            a.mov(rdi, r13)?;
            a.mov(esi, eax)?;
            a.mov(edx, nl.size)?;
            self.callout(rt::load as *const ())?;
            self.fail_if_negative()?;
            self.asm.a.mov(A, eax)?;
            self.asm.jmp(nl.back)?;
        }

        let counting = self.charge.is_some();
        for (t, l) in std::mem::take(&mut self.out_of_range) {
            self.asm.bind(l)?;
            self.asm.mark(Origin::Stub("pc out of range"))?;
            if counting {
                // The interpreter stops for the step limit before it looks at the pc.
                self.asm.a.cmp(dword_ptr(r13 + off!(steps)), 0)?;
                self.asm.jcc(Cond::E, self.step_limit)?;
            }
            let a = &mut self.asm.a;
            a.mov(rax, t)?;
            a.mov(qword_ptr(r13 + off!(trap_pc)), rax)?;
            a.mov(dword_ptr(r13 + off!(trap)), trap::PC_OUT_OF_RANGE)?;
            self.asm.jmp(self.fail)?;
        }

        if counting {
            self.asm.bind(self.step_limit)?;
            self.asm.mark(Origin::Stub("step limit"))?;
            self.asm
                .a
                .mov(dword_ptr(r13 + off!(trap)), trap::STEP_LIMIT)?;
            self.asm.jmp(self.fail)?;
        }
        Ok(())
    }
}
