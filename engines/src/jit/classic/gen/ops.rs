//! Straight-line instructions: ALU, the memory store, packet loads and Linux ancillary loads.

use super::{Dst, FallsThrough, Gen, NegLoad, A, X};
use crate::jit::classic::{rt, RunCtx};
use crate::jit::emit::{Cond, EmitError};
use crate::jit::x86::*;
use bpfconf_spec::cbpf::ext::{Ext, NegBase};
use bpfconf_spec::cbpf::{AluOp, Op, Size, Src, MEMWORDS};
use bpfconf_spec::Dialect;
use std::mem::offset_of;

impl Gen<'_> {
    pub(super) fn alu(&mut self, o: AluOp, s: Src, k: u32) -> Result<FallsThrough, EmitError> {
        let a = &mut self.asm.a;
        match (o, s) {
            (AluOp::Add, Src::K) => a.add(A, k)?,
            (AluOp::Add, Src::X) => a.add(A, X)?,
            (AluOp::Sub, Src::K) => a.sub(A, k)?,
            (AluOp::Sub, Src::X) => a.sub(A, X)?,
            (AluOp::And, Src::K) => a.and(A, k)?,
            (AluOp::And, Src::X) => a.and(A, X)?,
            (AluOp::Or, Src::K) => a.or(A, k)?,
            (AluOp::Or, Src::X) => a.or(A, X)?,
            (AluOp::Xor, Src::K) => a.xor(A, k)?,
            (AluOp::Xor, Src::X) => a.xor(A, X)?,
            (AluOp::Mul, Src::K) => a.imul_3(A, A, k as i32)?,
            (AluOp::Mul, Src::X) => a.imul_2(A, X)?,
            (AluOp::Div | AluOp::Mod, Src::K) => {
                if k == 0 {
                    self.asm.jmp(self.fail)?;
                    return Ok(false);
                }
                if k.is_power_of_two() {
                    if o == AluOp::Div {
                        if k > 1 {
                            a.shr(A, k.trailing_zeros())?;
                        }
                    } else {
                        a.and(A, k - 1)?;
                    }
                } else {
                    a.mov(eax, A)?;
                    a.xor(edx, edx)?;
                    a.mov(ecx, k)?;
                    a.div(ecx)?;
                    a.mov(A, if o == AluOp::Div { eax } else { edx })?;
                }
            }
            (AluOp::Div | AluOp::Mod, Src::X) => {
                a.test(X, X)?;
                self.asm.jcc(Cond::E, self.fail)?;
                let a = &mut self.asm.a;
                a.mov(eax, A)?;
                a.xor(edx, edx)?;
                a.div(X)?;
                a.mov(A, if o == AluOp::Div { eax } else { edx })?;
            }
            // Constant shifts: every dialect shifts by k mod 32 (Linux's checker refuses k >= 32;
            // BSD and NetBSD execute C shifts the way x86 does).
            (AluOp::Lsh | AluOp::Rsh, Src::K) => {
                let n = k & 31;
                if n != 0 {
                    if o == AluOp::Lsh {
                        a.shl(A, n)?;
                    } else {
                        a.shr(A, n)?;
                    }
                }
            }
            // x86 masks a 32-bit shift count to 5 bits, as Linux and NetBSD do; libpcap gives 0
            // for X >= 32.
            (AluOp::Lsh | AluOp::Rsh, Src::X) => {
                a.mov(ecx, X)?;
                if o == AluOp::Lsh {
                    a.shl(A, cl)?;
                } else {
                    a.shr(A, cl)?;
                }
                if self.dialect == Dialect::Bsd {
                    a.xor(eax, eax)?;
                    a.cmp(X, 32u32)?;
                    a.cmovae(A, eax)?;
                }
            }
        }
        Ok(true)
    }

    /// `ld M[k]`, `ldx M[k]`, `st M[k]`, `stx M[k]`. Linux and BSD always have 16 words; NetBSD's
    /// store is the run's external memory, so its size is checked at run time.
    pub(super) fn mem_op(&mut self, op: Op, k: u32) -> Result<FallsThrough, EmitError> {
        let slot = match self.dialect {
            Dialect::Netbsd => {
                let a = &mut self.asm.a;
                if k <= i32::MAX as u32 {
                    a.cmp(qword_ptr(r13 + off!(mem_len)), k as i32)?;
                } else {
                    a.mov(eax, k)?;
                    a.cmp(qword_ptr(r13 + off!(mem_len)), rax)?;
                }
                self.asm.jcc(Cond::Be, self.fail)?;
                if k < 1 << 29 {
                    dword_ptr(rbp + 4 * k as i32)
                } else {
                    self.asm.a.mov(eax, k)?;
                    dword_ptr(rbp + rax * 4)
                }
            }
            Dialect::Linux | Dialect::Bsd => {
                if k as usize >= MEMWORDS {
                    self.asm.jmp(self.fail)?;
                    return Ok(false);
                }
                dword_ptr(rbp + 4 * k as i32)
            }
        };
        let a = &mut self.asm.a;
        match op {
            Op::LdMem => a.mov(A, slot)?,
            Op::LdxMem => a.mov(X, slot)?,
            Op::St => a.mov(slot, A)?,
            _ => a.mov(slot, X)?,
        }
        Ok(true)
    }

    /// Loads `size` bytes at the checked address `m` into `dst`.
    pub(super) fn load_into(&mut self, dst: Dst, size: Size, m: Mem) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        match (dst, size) {
            (Dst::A, Size::W) => {
                a.mov(A, dword_ptr(m))?;
                a.bswap(A)?;
            }
            (Dst::A, Size::H) => {
                a.movzx(A, word_ptr(m))?;
                a.rol(bx, 8u32)?;
            }
            (Dst::A, Size::B) => a.movzx(A, byte_ptr(m))?,
            (Dst::Msh, _) => {
                a.movzx(X, byte_ptr(m))?;
                a.and(X, 0xfu32)?;
                a.shl(X, 2u32)?;
            }
        }
        Ok(())
    }

    /// Sets `dst` from a value a call-out returned in eax.
    pub(super) fn set_from_eax(&mut self, dst: Dst) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        match dst {
            Dst::A => a.mov(A, eax)?,
            Dst::Msh => {
                a.and(eax, 0xfu32)?;
                a.shl(eax, 2u32)?;
                a.mov(X, eax)?;
            }
        }
        Ok(())
    }

    /// Returns 0 unless a load ending at the constant `end` fits under the bound (r15).
    pub(super) fn check_end(&mut self, end: u64) -> Result<(), EmitError> {
        if end <= i32::MAX as u64 {
            self.asm.a.cmp(r15, end as i32)?;
        } else {
            self.asm.a.mov(rax, end)?;
            self.asm.a.cmp(r15, rax)?;
        }
        self.asm.jcc(Cond::B, self.fail)
    }

    /// `ld [k]`, `ldh [k]`, `ldb [k]`, `ldx msh [k]` (not ancillary).
    pub(super) fn load_const(
        &mut self,
        k: u32,
        size: Size,
        dst: Dst,
    ) -> Result<FallsThrough, EmitError> {
        let n = size.bytes();
        if self.dialect == Dialect::Linux && (k as i32) < 0 {
            if NegBase::classify(k as i32).is_none() {
                self.asm.jmp(self.fail)?;
                return Ok(false);
            }
            let a = &mut self.asm.a;
            a.mov(rdi, r13)?;
            a.mov(esi, k)?;
            a.mov(edx, n)?;
            self.callout(rt::load as *const ())?;
            self.fail_if_negative()?;
            self.set_from_eax(dst)?;
            return Ok(true);
        }
        let end = k as u64 + n as u64;
        if self.dialect != Dialect::Linux && end > u32::MAX as u64 {
            // libpcap/NetBSD: `k + size` overflows 32 bits.
            self.asm.jmp(self.fail)?;
            return Ok(false);
        }
        self.check_end(end)?;
        let m = if k <= i32::MAX as u32 {
            r14 + k as i32
        } else {
            self.asm.a.mov(eax, k)?;
            r14 + rax
        };
        self.load_into(dst, size, m)?;
        Ok(true)
    }

    /// `ld [x + k]`, `ldh [x + k]`, `ldb [x + k]`.
    pub(super) fn load_ind(&mut self, k: u32, size: Size) -> Result<(), EmitError> {
        let n = size.bytes();
        self.asm.a.mov(eax, X)?;
        let back = if self.dialect == Dialect::Linux {
            // 32-bit wrap-around, then a signed offset: negative ones go out of line.
            if k != 0 {
                self.asm.a.add(eax, k)?;
            } else {
                self.asm.a.test(eax, eax)?;
            }
            let (entry, back) = (self.asm.label(), self.asm.label());
            self.asm.jcc(Cond::S, entry)?;
            self.neg_loads.push(NegLoad {
                entry,
                back,
                size: n,
            });
            Some(back)
        } else {
            // Overflow-checked X + k.
            if k != 0 {
                self.asm.a.add(eax, k)?;
                self.asm.jcc(Cond::B, self.fail)?;
            }
            None
        };
        self.asm.a.lea(rcx, rax + n as i32)?;
        self.asm.a.cmp(rcx, r15)?;
        self.asm.jcc(Cond::A, self.fail)?;
        self.load_into(Dst::A, size, r14 + rax)?;
        if let Some(back) = back {
            self.asm.bind(back)?;
        }
        Ok(())
    }

    /// Linux ancillary load from `SKF_AD_OFF + [0, SKF_AD_MAX)`.
    pub(super) fn ancillary(&mut self, k: u32) -> Result<FallsThrough, EmitError> {
        let Some(ext) = Ext::from_k(k) else {
            self.asm.jmp(self.fail)?;
            return Ok(false);
        };
        match ext {
            Ext::XorX => self.asm.a.xor(A, X)?,
            Ext::Rand => {
                self.asm.a.mov(rdi, r13)?;
                self.callout(rt::rand as *const ())?;
                self.asm.a.mov(A, eax)?;
            }
            Ext::Nla | Ext::Nlan => {
                let a = &mut self.asm.a;
                a.mov(rdi, r13)?;
                a.mov(esi, A)?;
                a.mov(edx, X)?;
                let f = if ext == Ext::Nla {
                    rt::nla as *const ()
                } else {
                    rt::nlan as *const ()
                };
                self.callout(f)?;
                self.asm.a.mov(A, eax)?;
            }
            _ => {
                let slot = ext.ad_offset().unwrap_or(0) as usize / 4;
                if !self.fields.iter().any(|&(_, s)| s == slot) {
                    self.fields.push((ext, slot));
                }
                // A field that does not exist (no device) ends the program returning A.
                self.asm
                    .a
                    .test(dword_ptr(r13 + off!(anc_ok)), 1u32 << slot)?;
                self.asm.jcc(Cond::E, self.ret_a)?;
                self.uses_ret_a = true;
                self.asm
                    .a
                    .mov(A, dword_ptr(r13 + off!(anc) + 4 * slot as i32))?;
            }
        }
        Ok(true)
    }
}
