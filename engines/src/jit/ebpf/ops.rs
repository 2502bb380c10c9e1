//! eBPF instruction bodies: ALU (with division by zero, signed overflow and shift masking per
//! RFC 9669), byte swaps, `lddw`, loads and stores through checked address translation,
//! atomics, and the legacy packet loads.

use super::gen::{ctx_off, where_, Deferred, Gen, Site, R16, R32, R64, R8};
use super::{loc, rt_map_ref, JitCtx};
use crate::interp::ebpf::exec::access_size;
use crate::interp::ebpf::memory::{Access, STACK_SIZE};
use crate::interp::ebpf::MEM_BASE;
use crate::jit::emit::{Cond, EmitError, Label};
use crate::jit::x86::*;
use crate::jit::{CRASH_IMM, HANG_IMM};
use bpfconf_spec::ebpf::isa::{Form, IsaRow, Sel};
use bpfconf_spec::ebpf::{alu, atomic, class, mode, pseudo, source, Insn};
use std::mem::offset_of;

/// The regions generated code checks inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
    /// The current stack frame.
    Frame,
    /// The memory buffer.
    Buffer,
}

impl Region {
    fn other(self) -> Region {
        match self {
            Region::Frame => Region::Buffer,
            Region::Buffer => Region::Frame,
        }
    }
}

/// `R[d] = v` in the shortest form: `mov r32, imm32` (zero-extends), `mov r/m64, imm32`
/// (sign-extends) or `mov r64, imm64` — as the kernel's `emit_mov_imm64`.
fn mov_imm(a: &mut X86, d: usize, v: u64) -> Result<(), EmitError> {
    if let Ok(v32) = u32::try_from(v) {
        a.mov(R32[d], v32)
    } else if let Ok(v32) = i32::try_from(v as i64) {
        a.mov(R64[d], v32)
    } else {
        a.mov(R64[d], v)
    }
}

impl Gen {
    /// Everything but control flow.
    pub(super) fn body(
        &mut self,
        prog: usize,
        insns: &[Insn],
        pc: usize,
        row: &'static IsaRow,
    ) -> Result<(), EmitError> {
        let insn = insns[pc];
        let l = loc(prog, pc);
        match row.form {
            Form::AluK | Form::AluX | Form::Neg => self.alu(insn, row),
            Form::End => self.end(insn, row),
            Form::Lddw => self.lddw(prog, insns, pc),
            Form::Ldx => {
                let size = access_size(insn.code);
                let m = self.translate(insn.src as usize, insn.off, size, Access::Load, l)?;
                let d = insn.dst as usize;
                let sx = insn.code & 0xe0 == mode::MEMSX;
                let a = &mut self.asm.a;
                match (size, sx) {
                    (1, false) => a.movzx(R32[d], byte_ptr(r11 + m))?,
                    (2, false) => a.movzx(R32[d], word_ptr(r11 + m))?,
                    (4, false) => a.mov(R32[d], dword_ptr(r11 + m))?,
                    (1, true) => a.movsx(R64[d], byte_ptr(r11 + m))?,
                    (2, true) => a.movsx(R64[d], word_ptr(r11 + m))?,
                    (4, true) => a.movsxd(R64[d], dword_ptr(r11 + m))?,
                    _ => a.mov(R64[d], qword_ptr(r11 + m))?,
                }
                Ok(())
            }
            Form::St | Form::Stx => {
                let size = access_size(insn.code);
                let m = self.translate(insn.dst as usize, insn.off, size, Access::Store, l)?;
                let a = &mut self.asm.a;
                if row.form == Form::St {
                    let k = insn.imm;
                    match size {
                        1 => a.mov(byte_ptr(r11 + m), k as i8 as i32)?,
                        2 => a.mov(word_ptr(r11 + m), k as i16 as i32)?,
                        4 => a.mov(dword_ptr(r11 + m), k)?,
                        _ => a.mov(qword_ptr(r11 + m), k)?,
                    }
                } else {
                    let s = insn.src as usize;
                    match size {
                        1 => a.mov(byte_ptr(r11 + m), R8[s])?,
                        2 => a.mov(word_ptr(r11 + m), R16[s])?,
                        4 => a.mov(dword_ptr(r11 + m), R32[s])?,
                        _ => a.mov(qword_ptr(r11 + m), R64[s])?,
                    }
                }
                Ok(())
            }
            Form::Atomic => self.atomic(insn, row, l),
            Form::LdAbs | Form::LdInd => self.packet_load(insn, row),
            other => unreachable!("{other:?} is control flow"),
        }
    }

    /// Leaves in r11 + the returned displacement the host address of `size` bytes at
    /// `R[base] + off` (checked), with the fake address in r10 (except on the R10 fast path). Fast paths: the current frame, then the buffer; anything else
    /// goes through `rt_translate` out of line.
    fn translate(
        &mut self,
        base: usize,
        off: i16,
        size: usize,
        kind: Access,
        l: u64,
    ) -> Result<i32, EmitError> {
        // `[r10 + off]` wholly inside the current frame needs no check: R10 is read-only and
        // always the current frame pointer, so the host address is frame_host + 512 + off.
        let in_frame = off as i64 + STACK_SIZE as i64;
        if base == 10 && in_frame >= 0 && in_frame as usize + size <= STACK_SIZE {
            let a = &mut self.asm.a;
            a.mov(r11, qword_ptr(r12 + ctx_off!(frame_host)))?;
            return Ok(in_frame as i32);
        }
        // Inline: the likelier region only (the frame for R10-based addresses, else the
        // buffer); the other region and the slow path are out of line.
        let (other, ready) = (self.asm.label(), self.asm.label());
        self.asm.a.lea(r10, qword_ptr(R64[base] + off as i32))?;
        let first = if base == 10 {
            Region::Frame
        } else {
            Region::Buffer
        };
        self.region_check(first, size, other)?;
        self.asm.bind(ready)?;
        self.sites.push(Site {
            size,
            access: kind,
            loc: l,
        });
        self.deferred.push(Deferred::Translate {
            at: other,
            back: ready,
            site: self.sites.len() as u32 - 1,
            region: first.other(),
            size,
        });
        Ok(0)
    }

    /// With the fake address in r10: if `size` bytes there lie in `region`, leaves the host
    /// address in r11 and falls through; otherwise jumps to `miss`.
    pub(super) fn region_check(
        &mut self,
        region: Region,
        size: usize,
        miss: Label,
    ) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        match region {
            Region::Frame => {
                // t = addr - (R10 - 512), inside iff t <= 512 - size.
                a.lea(r11, qword_ptr(r10 + STACK_SIZE as i32))?;
                a.sub(r11, rbp)?;
                a.cmp(r11, (STACK_SIZE - size) as i32)?;
                self.asm.jcc(Cond::A, miss)?;
                self.asm.a.add(r11, qword_ptr(r12 + ctx_off!(frame_host)))?;
            }
            Region::Buffer => {
                // t = addr - MEM_BASE, inside iff t < mem_lim[size].
                a.mov(r11, MEM_BASE.wrapping_neg())?;
                a.add(r11, r10)?;
                a.cmp(
                    r11,
                    qword_ptr(r12 + offset_of!(JitCtx, mem_lim) as i32 + 8 * size as i32),
                )?;
                self.asm.jcc(Cond::Ae, miss)?;
                self.asm.a.add(r11, qword_ptr(r12 + ctx_off!(mem_host)))?;
            }
        }
        Ok(())
    }

    fn alu(&mut self, insn: Insn, row: &IsaRow) -> Result<(), EmitError> {
        let op = insn.code & 0xf0;
        let wide = insn.class() == class::ALU64;
        let x = row.form == Form::AluX;
        let variant = match row.sel {
            Sel::Off(o) => o,
            _ => 0,
        };
        let (d, s, k) = (insn.dst as usize, insn.src as usize, insn.imm);
        if op == alu::MOV && !x && (self.inject.crash || self.inject.hang) {
            if self.inject.crash && k as u32 == CRASH_IMM {
                // Test-only: a store through a null pointer.
                return self.asm.a.mov(qword_ptr(0), 0);
            }
            if self.inject.hang && k as u32 == HANG_IMM {
                let me = self.asm.label();
                self.asm.bind(me)?;
                return self.asm.jmp(me);
            }
        }
        if matches!(op, alu::DIV | alu::MOD) {
            return self.divmod(op, wide, variant == 1, d, if x { Some(s) } else { None }, k);
        }
        if matches!(op, alu::LSH | alu::RSH | alu::ARSH) {
            return self.shift(op, wide, d, if x { Some(s) } else { None }, k);
        }
        let a = &mut self.asm.a;
        let (d64, d32) = (R64[d], R32[d]);
        match (op, wide, x) {
            (alu::NEG, true, _) => a.neg(d64)?,
            (alu::NEG, false, _) => a.neg(d32)?,
            (alu::MOV, true, false) => mov_imm(a, d, k as i64 as u64)?,
            (alu::MOV, false, false) => a.mov(d32, k)?,
            (alu::MOV, true, true) => match variant {
                8 => a.movsx(d64, R8[s])?,
                16 => a.movsx(d64, R16[s])?,
                32 => a.movsxd(d64, R32[s])?,
                _ => a.mov(d64, R64[s])?,
            },
            (alu::MOV, false, true) => match variant {
                8 => a.movsx(d32, R8[s])?,
                16 => a.movsx(d32, R16[s])?,
                _ => a.mov(d32, R32[s])?,
            },
            (alu::MUL, true, false) => a.imul_3(d64, d64, k)?,
            (alu::MUL, false, false) => a.imul_3(d32, d32, k)?,
            (alu::MUL, true, true) => a.imul_2(d64, R64[s])?,
            (alu::MUL, false, true) => a.imul_2(d32, R32[s])?,
            (op, true, false) => match op {
                alu::ADD => a.add(d64, k)?,
                alu::SUB => a.sub(d64, k)?,
                alu::OR => a.or(d64, k)?,
                alu::AND => a.and(d64, k)?,
                _ => a.xor(d64, k)?,
            },
            (op, false, false) => match op {
                alu::ADD => a.add(d32, k)?,
                alu::SUB => a.sub(d32, k)?,
                alu::OR => a.or(d32, k)?,
                alu::AND => a.and(d32, k)?,
                _ => a.xor(d32, k)?,
            },
            (op, true, true) => match op {
                alu::ADD => a.add(d64, R64[s])?,
                alu::SUB => a.sub(d64, R64[s])?,
                alu::OR => a.or(d64, R64[s])?,
                alu::AND => a.and(d64, R64[s])?,
                _ => a.xor(d64, R64[s])?,
            },
            (op, false, true) => match op {
                alu::ADD => a.add(d32, R32[s])?,
                alu::SUB => a.sub(d32, R32[s])?,
                alu::OR => a.or(d32, R32[s])?,
                alu::AND => a.and(d32, R32[s])?,
                _ => a.xor(d32, R32[s])?,
            },
        }
        Ok(())
    }

    /// Shifts: x86 masks the count to 6 (64-bit) or 5 (32-bit) bits, as eBPF requires. A
    /// register count must be in cl (R4's register), so rcx is swapped through r11.
    fn shift(
        &mut self,
        op: u8,
        wide: bool,
        d: usize,
        s: Option<usize>,
        k: i32,
    ) -> Result<(), EmitError> {
        let a = &mut self.asm.a;
        let emit = |a: &mut X86, r64: Reg64, r32: Reg32, n: Option<u32>| match (op, wide, n) {
            (alu::LSH, true, Some(n)) => a.shl(r64, n),
            (alu::RSH, true, Some(n)) => a.shr(r64, n),
            (_, true, Some(n)) => a.sar(r64, n),
            (alu::LSH, false, Some(n)) => a.shl(r32, n),
            (alu::RSH, false, Some(n)) => a.shr(r32, n),
            (_, false, Some(n)) => a.sar(r32, n),
            (alu::LSH, true, None) => a.shl(r64, cl),
            (alu::RSH, true, None) => a.shr(r64, cl),
            (_, true, None) => a.sar(r64, cl),
            (alu::LSH, false, None) => a.shl(r32, cl),
            (alu::RSH, false, None) => a.shr(r32, cl),
            (_, false, None) => a.sar(r32, cl),
        };
        const RCX: usize = 4;
        match s {
            None => {
                let mask = if wide { 63 } else { 31 };
                emit(a, R64[d], R32[d], Some(k as u32 & mask))?;
                if !wide && k as u32 & mask == 0 {
                    // A shift by 0 leaves the register untouched; ALU32 still zero-extends.
                    a.mov(R32[d], R32[d])?;
                }
            }
            Some(s) if s == RCX => {
                emit(a, R64[d], R32[d], None)?;
                if !wide {
                    a.mov(R32[d], R32[d])?;
                }
            }
            Some(s) if d == RCX => {
                a.mov(r11, rcx)?;
                a.mov(rcx, R64[s])?;
                emit(a, r11, r11d, None)?;
                if !wide {
                    a.mov(r11d, r11d)?;
                }
                a.mov(rcx, r11)?;
            }
            Some(s) => {
                a.mov(r11, rcx)?;
                a.mov(rcx, R64[s])?;
                emit(a, R64[d], R32[d], None)?;
                if !wide {
                    a.mov(R32[d], R32[d])?;
                }
                a.mov(rcx, r11)?;
            }
        }
        Ok(())
    }

    /// DIV/MOD, unsigned and signed: by zero gives 0 (DIV) or leaves dst (MOD, zero-extended
    /// for ALU32); signed `MIN / -1` wraps to MIN and `MIN % -1` is 0 (x86 would trap).
    fn divmod(
        &mut self,
        op: u8,
        wide: bool,
        signed: bool,
        d: usize,
        s: Option<usize>,
        k: i32,
    ) -> Result<(), EmitError> {
        let (zero, neg1, done) = (self.asm.label(), self.asm.label(), self.asm.label());
        let a = &mut self.asm.a;
        match (s, wide) {
            (Some(s), true) => a.mov(r10, R64[s])?,
            (Some(s), false) => a.mov(r10d, R32[s])?,
            (None, true) => a.mov(r10, k as i64)?,
            (None, false) => a.mov(r10d, k)?,
        }
        if wide {
            a.test(r10, r10)?;
        } else {
            a.test(r10d, r10d)?;
        }
        self.asm.jcc(Cond::E, zero)?;
        if signed {
            if wide {
                self.asm.a.cmp(r10, -1)?;
            } else {
                self.asm.a.cmp(r10d, -1)?;
            }
            self.asm.jcc(Cond::E, neg1)?;
        }
        let a = &mut self.asm.a;
        a.push(rax)?;
        a.mov(r11, rdx)?;
        a.mov(rax, R64[d])?;
        match (wide, signed) {
            (true, false) => {
                a.xor(edx, edx)?;
                a.div(r10)?;
            }
            (true, true) => {
                a.cqo()?;
                a.idiv(r10)?;
            }
            (false, false) => {
                a.xor(edx, edx)?;
                a.div(r10d)?;
            }
            (false, true) => {
                a.cdq()?;
                a.idiv(r10d)?;
            }
        }
        let result = if op == alu::DIV { rax } else { rdx };
        a.mov(r10, result)?;
        a.pop(rax)?;
        a.mov(rdx, r11)?;
        if wide {
            a.mov(R64[d], r10)?;
        } else {
            a.mov(R32[d], r10d)?;
        }
        self.asm.jmp(done)?;
        self.asm.bind(zero)?;
        let a = &mut self.asm.a;
        if op == alu::DIV {
            a.xor(R32[d], R32[d])?;
        } else if !wide {
            a.mov(R32[d], R32[d])?;
        }
        if signed {
            self.asm.jmp(done)?;
            self.asm.bind(neg1)?;
            let a = &mut self.asm.a;
            match (op == alu::DIV, wide) {
                (true, true) => a.neg(R64[d])?,
                (true, false) => a.neg(R32[d])?,
                (false, _) => a.xor(R32[d], R32[d])?,
            }
        }
        self.asm.bind(done)
    }

    /// `le`/`be` (ALU) and `bswap` (ALU64) of width 16, 32 or 64.
    fn end(&mut self, insn: Insn, row: &IsaRow) -> Result<(), EmitError> {
        let Sel::Imm(width) = row.sel else {
            unreachable!("END rows select on imm")
        };
        let to_le = insn.class() == class::ALU && insn.code & source::X == 0;
        let d = insn.dst as usize;
        let a = &mut self.asm.a;
        match (to_le, width) {
            (true, 16) => a.movzx(R32[d], R16[d])?,
            (true, 32) => a.mov(R32[d], R32[d])?,
            (true, _) => {}
            (false, 16) => {
                a.ror(R16[d], 8)?;
                a.movzx(R32[d], R16[d])?;
            }
            (false, 32) => a.bswap(R32[d])?,
            (false, _) => a.bswap(R64[d])?,
        }
        Ok(())
    }

    fn lddw(&mut self, prog: usize, insns: &[Insn], pc: usize) -> Result<(), EmitError> {
        let insn = insns[pc];
        let hi = insns[pc + 1].imm;
        let d = insn.dst as usize;
        match insn.src {
            pseudo::IMM64 => {
                let v = (insn.imm as u32 as u64) | ((hi as u32 as u64) << 32);
                mov_imm(&mut self.asm.a, d, v)?;
                Ok(())
            }
            pseudo::MAP_FD | pseudo::MAP_VALUE => {
                self.spill()?;
                let a = &mut self.asm.a;
                a.mov(rsi, insn.src as u64 | (insn.imm as u32 as u64) << 32)?;
                a.mov(rdx, hi as u32 as u64)?;
                a.mov(rcx, loc(prog, pc))?;
                self.callout(rt_map_ref)?;
                self.asm.a.mov(r10, rax)?;
                self.reload()?;
                self.check_status()?;
                self.asm.a.mov(R64[d], r10)?;
                Ok(())
            }
            src => self.fault(format!(
                "`lddw` with src {src} (a variable, code or fd_array-index reference) is not \
                 supported ({})",
                where_(prog, pc)
            )),
        }
    }

    /// `lock op [dst+off], src` for W and DW.
    fn atomic(&mut self, insn: Insn, row: &IsaRow, l: u64) -> Result<(), EmitError> {
        let Sel::Imm(op) = row.sel else {
            unreachable!("atomic rows select on imm")
        };
        let size = access_size(insn.code);
        let m = self.translate(insn.dst as usize, insn.off, size, Access::Atomic, l)?;
        let s = insn.src as usize;
        let wide = size == 8;
        let (m64, m32) = (qword_ptr(r11 + m), dword_ptr(r11 + m));
        let fetch = op & atomic::FETCH != 0;
        if op == atomic::CMPXCHG {
            let a = &mut self.asm.a;
            if wide {
                a.lock().cmpxchg(m64, R64[s])?;
            } else {
                a.lock().cmpxchg(m32, R32[s])?;
                // On success cmpxchg leaves rax alone: zero-extend R0 either way.
                a.mov(eax, eax)?;
            }
            return Ok(());
        }
        if op == atomic::XCHG {
            let a = &mut self.asm.a;
            if wide {
                a.xchg(m64, R64[s])?;
            } else {
                a.xchg(m32, R32[s])?;
            }
            return Ok(());
        }
        let base = op & !atomic::FETCH;
        if !fetch {
            let a = &mut self.asm.a;
            match (base, wide) {
                (atomic::ADD, true) => a.lock().add(m64, R64[s])?,
                (atomic::ADD, false) => a.lock().add(m32, R32[s])?,
                (atomic::OR, true) => a.lock().or(m64, R64[s])?,
                (atomic::OR, false) => a.lock().or(m32, R32[s])?,
                (atomic::AND, true) => a.lock().and(m64, R64[s])?,
                (atomic::AND, false) => a.lock().and(m32, R32[s])?,
                (_, true) => a.lock().xor(m64, R64[s])?,
                (_, false) => a.lock().xor(m32, R32[s])?,
            }
            return Ok(());
        }
        if base == atomic::ADD {
            let a = &mut self.asm.a;
            if wide {
                a.lock().xadd(m64, R64[s])?;
            } else {
                a.lock().xadd(m32, R32[s])?;
            }
            return Ok(());
        }
        // Fetching OR/AND/XOR: a cmpxchg loop with rax as the accumulator; R0 waits on the
        // native stack meanwhile (and is the operand there when src is R0).
        let again = self.asm.label();
        let a = &mut self.asm.a;
        a.push(rax)?;
        if wide {
            a.mov(rax, m64)?;
        } else {
            a.mov(eax, m32)?;
        }
        self.asm.bind(again)?;
        let a = &mut self.asm.a;
        a.mov(r10, rax)?;
        match (base, s) {
            (atomic::OR, 0) => a.or(r10, qword_ptr(rsp))?,
            (atomic::AND, 0) => a.and(r10, qword_ptr(rsp))?,
            (_, 0) => a.xor(r10, qword_ptr(rsp))?,
            (atomic::OR, _) => a.or(r10, R64[s])?,
            (atomic::AND, _) => a.and(r10, R64[s])?,
            _ => a.xor(r10, R64[s])?,
        }
        if wide {
            a.lock().cmpxchg(m64, r10)?;
        } else {
            a.lock().cmpxchg(m32, r10d)?;
        }
        self.asm.jcc(Cond::Ne, again)?;
        let a = &mut self.asm.a;
        if wide {
            a.mov(R64[s], rax)?;
        } else {
            a.mov(R32[s], eax)?;
        }
        if s != 0 {
            a.pop(rax)?;
        } else {
            a.add(rsp, 8)?;
        }
        Ok(())
    }

    /// Legacy `ldabs`/`ldind`: big-endian bytes of the buffer into R0, R1–R5 cleared; outside
    /// the buffer (or a negative offset) `r0 = 0; exit`.
    fn packet_load(&mut self, insn: Insn, row: &IsaRow) -> Result<(), EmitError> {
        let size = access_size(insn.code);
        let fail = self.asm.label();
        let done = self.asm.label();
        let a = &mut self.asm.a;
        if row.form == Form::LdAbs {
            a.mov(r10, insn.imm as i64)?;
        } else {
            a.mov(r10d, R32[insn.src as usize])?;
            a.add(r10d, insn.imm)?;
            a.movsxd(r10, r10d)?;
        }
        a.test(r10, r10)?;
        self.asm.jcc(Cond::S, fail)?;
        let a = &mut self.asm.a;
        a.lea(r11, qword_ptr(r10 + size as i32))?;
        a.cmp(r11, qword_ptr(r12 + ctx_off!(mem_len)))?;
        self.asm.jcc(Cond::A, fail)?;
        let a = &mut self.asm.a;
        a.add(r10, qword_ptr(r12 + ctx_off!(mem_host)))?;
        match size {
            1 => a.movzx(eax, byte_ptr(r10))?,
            2 => {
                a.movzx(eax, word_ptr(r10))?;
                a.rol(ax, 8)?;
            }
            4 => {
                a.mov(eax, dword_ptr(r10))?;
                a.bswap(eax)?;
            }
            _ => {
                a.mov(rax, qword_ptr(r10))?;
                a.bswap(rax)?;
            }
        }
        for r in [edi, esi, edx, ecx, r8d] {
            a.xor(r, r)?;
        }
        self.asm.jmp(done)?;
        self.asm.bind(fail)?;
        self.asm.a.xor(eax, eax)?;
        self.asm.jmp(self.exit)?;
        self.asm.bind(done)
    }
}
