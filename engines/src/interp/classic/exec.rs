//! The interpreter loop over a [`Prepared`] program: A, X, the pc and the step count in
//! locals, the memory store a slice the caller owns (on its stack unless NetBSD's external
//! memory replaces it; empty for programs without memory instructions), one `match` per
//! instruction.
//!
//! Two details matter to speed on tcpdump filters, where most of the time goes to branches
//! that mispredict on a mix of packets: a conditional jump is a branch, not a conditional move
//! (see [`branch`]), except when both targets return, where the return value is selected
//! without one; and [`Prepared::run_ret`]'s common case is inlined into the caller with no
//! memory store, which keeps the loop's state in registers.

use super::prepare::{Cond, Ins, LoadCond, MshLoadCond, RET};
use super::{
    cop_call, initial_mem, len_value, load_linux, nla_find_at, nla_find_nested_at, rand_value,
    skb_field, ClassicResult, Prepared, Trap, RAND_SEED, STEP_LIMIT,
};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::ext::Ext;
use bpfconf_spec::cbpf::MEMWORDS;
use bpfconf_spec::Dialect;

/// How a run ended (a register's worth, unlike `Result<u32, Trap>`).
#[derive(Debug, Clone, Copy)]
enum Exit {
    Ret(u32),
    /// The pc left the program: see [`Ins::Oob`].
    Oob(u32),
    StepLimit,
}

impl Prepared {
    /// Runs the program on `pkt` with context `ctx`: the return value and the memory store
    /// after the run.
    pub fn run(&self, pkt: &[u8], ctx: &Ctx) -> Result<ClassicResult, Trap> {
        let mut mem = initial_mem(self.dialect, ctx).to_vec();
        let ret = self.finish(self.exec(pkt, ctx, &mut mem))?;
        Ok(ClassicResult { ret, mem })
    }

    /// Runs the program on `pkt` with context `ctx` and returns only the return value. The
    /// memory store, if the program uses one, lives on the stack (NetBSD's external memory,
    /// when the context has one, is copied), so nothing is allocated otherwise.
    #[inline(always)]
    pub fn run_ret(&self, pkt: &[u8], ctx: &Ctx) -> Result<u32, Trap> {
        // The common case (a forward-only program without memory instructions) inlined into
        // the caller, with an empty memory store; everything else out of line.
        let exit = if !self.counted && !self.uses_mem {
            exec::<false>(self, pkt, ctx, &mut [])
        } else {
            self.run_ret_general(pkt, ctx)
        };
        self.finish(exit)
    }

    #[inline(never)]
    fn run_ret_general(&self, pkt: &[u8], ctx: &Ctx) -> Exit {
        let (mut zeros, mut ext);
        let mem: &mut [u32] = if !self.uses_mem {
            &mut []
        } else if let (Some(words), Dialect::Netbsd) = (&ctx.extmem, self.dialect) {
            ext = words.clone();
            &mut ext
        } else {
            zeros = [0; MEMWORDS];
            &mut zeros
        };
        self.exec(pkt, ctx, mem)
    }

    #[inline]
    fn exec(&self, pkt: &[u8], ctx: &Ctx, mem: &mut [u32]) -> Exit {
        if self.counted {
            exec_counted(self, pkt, ctx, mem)
        } else {
            exec::<false>(self, pkt, ctx, mem)
        }
    }

    #[inline]
    fn finish(&self, exit: Exit) -> Result<u32, Trap> {
        match exit {
            Exit::Ret(v) => Ok(v),
            Exit::Oob(i) => Err(Trap::PcOutOfRange(
                self.oob.get(i as usize).copied().unwrap_or(self.len),
            )),
            Exit::StepLimit => Err(Trap::StepLimit),
        }
    }
}

/// BSD packet load of `N` bytes at `off` (`off + N` already known not to overflow 32 bits),
/// big-endian.
#[inline(always)]
fn ld<const N: usize>(pkt: &[u8], off: u32) -> Option<u32> {
    // `off + N` cannot overflow a usize: one bounds check.
    let off = off as usize;
    let b: &[u8; N] = pkt.get(off..off + N)?.try_into().ok()?;
    Some(b.iter().fold(0, |v, &b| (v << 8) | b as u32))
}

/// BSD indirect load: `X + k` and the end of the load must not overflow 32 bits.
#[inline(always)]
fn ld_ind<const N: usize>(pkt: &[u8], x: u32, k: u32) -> Option<u32> {
    let off = x.checked_add(k)?;
    off.checked_add(N as u32)?;
    ld::<N>(pkt, off)
}

/// Linux ancillary load. `None` means the program ends, returning the current A.
#[cold]
fn ancillary(ext: Ext, a: u32, x: u32, pkt: &[u8], ctx: &Ctx, rand: &mut u32) -> Option<u32> {
    Some(match ext {
        Ext::XorX => a ^ x,
        Ext::Rand => rand_value(ctx, rand),
        Ext::Nla => nla_find_at(pkt, a, x),
        Ext::Nlan => nla_find_nested_at(pkt, a, x),
        _ => return skb_field(ext, pkt.len(), ctx),
    })
}

/// The next pc after a conditional jump, chosen by a branch. Left to itself LLVM selects
/// between `jt` and `jf` with a conditional move, which makes every following instruction wait
/// for the packet load and the comparison; a predicted branch lets the CPU run ahead, and is
/// what libpcap's C compiles to (this alone is ~30% on the tcpdump benchmark). The compiler
/// fence (no machine code; it only orders memory accesses the compiler may move, of which there
/// are none here) keeps the two arms from being merged into a select.
#[inline(always)]
fn branch(taken: bool, jt: u32, jf: u32) -> u32 {
    if taken {
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        jt
    } else {
        jf
    }
}

/// [`exec`] for programs that may loop (kept out of line: the common case is inlined).
#[inline(never)]
fn exec_counted(p: &Prepared, pkt: &[u8], ctx: &Ctx, mem: &mut [u32]) -> Exit {
    exec::<true>(p, pkt, ctx, mem)
}

/// Runs `p` from pc 0. With `COUNTED`, more than [`STEP_LIMIT`] instructions trap; without,
/// the program cannot loop (see [`super::prepare`]).
#[inline(always)]
fn exec<const COUNTED: bool>(p: &Prepared, pkt: &[u8], ctx: &Ctx, mem: &mut [u32]) -> Exit {
    let code = &*p.code;
    let (mut a, mut x) = (0u32, 0u32);
    let mut rand_state = RAND_SEED;
    let mut pc = 0usize;
    let mut steps = 0usize;
    // A failed load, a division by zero, a memory slot out of range: the program returns 0.
    macro_rules! or_fail {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Exit::Ret(0),
            }
        };
    }
    macro_rules! slot {
        ($k:expr) => {
            or_fail!(mem.get_mut($k as usize))
        };
    }
    // A conditional jump: to the next pc, or a return (see `fuse::thread_returns`).
    macro_rules! jump {
        ($taken:expr, $jt:expr, $jf:expr) => {{
            let (taken, jt, jf): (bool, u32, u32) = ($taken, $jt, $jf);
            if jt & jf & RET != 0 {
                // Both targets return (a filter's final test): pick the value without a
                // branch, which would mispredict as often as the outcome is random.
                let t = [jf, jt][usize::from(taken)];
                return Exit::Ret(p.rets[(t & !RET) as usize]);
            }
            let t = branch(taken, jt, jf);
            if t & RET != 0 {
                return Exit::Ret(p.rets[(t & !RET) as usize]);
            }
            pc = t as usize;
        }};
    }
    // A fused load and jump.
    macro_rules! load_jump {
        ($f:expr, $load:expr, $taken:expr) => {{
            let f: LoadCond = $f;
            a = or_fail!($load(f.off)) & f.mask;
            // Failing the test: the inlined `jeq #k2` (jt2 = jf when there is none).
            let other = if a == f.k2 { f.jt2 } else { f.jf };
            jump!($taken(a, f.k), f.jt, other);
        }};
    }
    // `ldx msh` fused with an indirect load and jump.
    macro_rules! msh_jump {
        ($m:expr, $n:literal, $taken:expr) => {{
            let m: MshLoadCond = $m;
            x = (or_fail!(ld::<1>(pkt, m.msh)) & 0xf) << 2;
            a = or_fail!(ld_ind::<$n>(pkt, x, m.off)) & m.mask;
            jump!($taken(a, m.k), m.jt, m.jf);
        }};
    }
    let jeq = |a: u32, k: u32| a == k;
    let jgt = |a: u32, k: u32| a > k;
    let jge = |a: u32, k: u32| a >= k;
    let jset = |a: u32, k: u32| a & k != 0;
    loop {
        if COUNTED {
            if steps == STEP_LIMIT {
                return Exit::StepLimit;
            }
            steps += 1;
        }
        let ins = &code[pc];
        pc += 1;
        match *ins {
            Ins::LdB(k) => a = or_fail!(ld::<1>(pkt, k)),
            Ins::LdH(k) => a = or_fail!(ld::<2>(pkt, k)),
            Ins::LdW(k) => a = or_fail!(ld::<4>(pkt, k)),
            Ins::LdIndB(k) => a = or_fail!(ld_ind::<1>(pkt, x, k)),
            Ins::LdIndH(k) => a = or_fail!(ld_ind::<2>(pkt, x, k)),
            Ins::LdIndW(k) => a = or_fail!(ld_ind::<4>(pkt, x, k)),
            Ins::LdxMsh(k) => x = (or_fail!(ld::<1>(pkt, k)) & 0xf) << 2,
            Ins::LnxAbs(off, size) => a = or_fail!(load_linux(pkt, ctx, off, size.into())),
            Ins::LnxInd(k, size) => {
                a = or_fail!(load_linux(pkt, ctx, x.wrapping_add(k) as i32, size.into()))
            }
            Ins::LnxMsh(off) => x = (or_fail!(load_linux(pkt, ctx, off, 1)) & 0xf) << 2,
            Ins::Anc(ext) => match ancillary(ext, a, x, pkt, ctx, &mut rand_state) {
                Some(v) => a = v,
                None => return Exit::Ret(a),
            },
            Ins::LdLen => a = len_value(p.dialect, pkt.len(), ctx),
            Ins::LdxLen => x = len_value(p.dialect, pkt.len(), ctx),
            Ins::LdImm(k) => a = k,
            Ins::LdxImm(k) => x = k,
            Ins::LdMem(k) => a = *slot!(k),
            Ins::LdxMem(k) => x = *slot!(k),
            Ins::St(k) => *slot!(k) = a,
            Ins::Stx(k) => *slot!(k) = x,
            Ins::AddK(k) => a = a.wrapping_add(k),
            Ins::SubK(k) => a = a.wrapping_sub(k),
            Ins::MulK(k) => a = a.wrapping_mul(k),
            Ins::DivK(k) => a = or_fail!(a.checked_div(k)),
            Ins::ModK(k) => a = or_fail!(a.checked_rem(k)),
            Ins::AndK(k) => a &= k,
            Ins::OrK(k) => a |= k,
            Ins::XorK(k) => a ^= k,
            Ins::LshK(k) => a = a.wrapping_shl(k),
            Ins::RshK(k) => a = a.wrapping_shr(k),
            Ins::AddX => a = a.wrapping_add(x),
            Ins::SubX => a = a.wrapping_sub(x),
            Ins::MulX => a = a.wrapping_mul(x),
            Ins::DivX => a = or_fail!(a.checked_div(x)),
            Ins::ModX => a = or_fail!(a.checked_rem(x)),
            Ins::AndX => a &= x,
            Ins::OrX => a |= x,
            Ins::XorX => a ^= x,
            Ins::LshX => a = a.wrapping_shl(x),
            Ins::RshX => a = a.wrapping_shr(x),
            Ins::LshXBsd => a = a.checked_shl(x).unwrap_or(0),
            Ins::RshXBsd => a = a.checked_shr(x).unwrap_or(0),
            Ins::Neg => a = a.wrapping_neg(),
            Ins::Ja(t) => pc = t as usize,
            Ins::JeqK(Cond { k, jt, jf }) => jump!(a == k, jt, jf),
            Ins::JgtK(Cond { k, jt, jf }) => jump!(a > k, jt, jf),
            Ins::JgeK(Cond { k, jt, jf }) => jump!(a >= k, jt, jf),
            Ins::JsetK(Cond { k, jt, jf }) => jump!(a & k != 0, jt, jf),
            Ins::JeqX(Cond { jt, jf, .. }) => jump!(a == x, jt, jf),
            Ins::JgtX(Cond { jt, jf, .. }) => jump!(a > x, jt, jf),
            Ins::JgeX(Cond { jt, jf, .. }) => jump!(a >= x, jt, jf),
            Ins::JsetX(Cond { jt, jf, .. }) => jump!(a & x != 0, jt, jf),
            Ins::RetK(k) => return Exit::Ret(k),
            Ins::RetA => return Exit::Ret(a),
            Ins::Tax => x = a,
            Ins::Txa => a = x,
            Ins::Cop(k) => a = or_fail!(cop_call(ctx, k, a, pkt, mem)),
            Ins::Copx => a = or_fail!(cop_call(ctx, x, a, pkt, mem)),
            Ins::Oob(i) => return Exit::Oob(i),
            Ins::LdBJeq(f) => load_jump!(f, |o| ld::<1>(pkt, o), jeq),
            Ins::LdBJgt(f) => load_jump!(f, |o| ld::<1>(pkt, o), jgt),
            Ins::LdBJge(f) => load_jump!(f, |o| ld::<1>(pkt, o), jge),
            Ins::LdBJset(f) => load_jump!(f, |o| ld::<1>(pkt, o), jset),
            Ins::LdHJeq(f) => load_jump!(f, |o| ld::<2>(pkt, o), jeq),
            Ins::LdHJgt(f) => load_jump!(f, |o| ld::<2>(pkt, o), jgt),
            Ins::LdHJge(f) => load_jump!(f, |o| ld::<2>(pkt, o), jge),
            Ins::LdHJset(f) => load_jump!(f, |o| ld::<2>(pkt, o), jset),
            Ins::LdWJeq(f) => load_jump!(f, |o| ld::<4>(pkt, o), jeq),
            Ins::LdWJgt(f) => load_jump!(f, |o| ld::<4>(pkt, o), jgt),
            Ins::LdWJge(f) => load_jump!(f, |o| ld::<4>(pkt, o), jge),
            Ins::LdWJset(f) => load_jump!(f, |o| ld::<4>(pkt, o), jset),
            Ins::LdIndBJeq(f) => load_jump!(f, |o| ld_ind::<1>(pkt, x, o), jeq),
            Ins::LdIndBJgt(f) => load_jump!(f, |o| ld_ind::<1>(pkt, x, o), jgt),
            Ins::LdIndBJge(f) => load_jump!(f, |o| ld_ind::<1>(pkt, x, o), jge),
            Ins::LdIndBJset(f) => load_jump!(f, |o| ld_ind::<1>(pkt, x, o), jset),
            Ins::LdIndHJeq(f) => load_jump!(f, |o| ld_ind::<2>(pkt, x, o), jeq),
            Ins::LdIndHJgt(f) => load_jump!(f, |o| ld_ind::<2>(pkt, x, o), jgt),
            Ins::LdIndHJge(f) => load_jump!(f, |o| ld_ind::<2>(pkt, x, o), jge),
            Ins::LdIndHJset(f) => load_jump!(f, |o| ld_ind::<2>(pkt, x, o), jset),
            Ins::LdIndWJeq(f) => load_jump!(f, |o| ld_ind::<4>(pkt, x, o), jeq),
            Ins::LdIndWJgt(f) => load_jump!(f, |o| ld_ind::<4>(pkt, x, o), jgt),
            Ins::LdIndWJge(f) => load_jump!(f, |o| ld_ind::<4>(pkt, x, o), jge),
            Ins::LdIndWJset(f) => load_jump!(f, |o| ld_ind::<4>(pkt, x, o), jset),
            Ins::LenJeq(f) => load_jump!(f, |_| Some(len_value(p.dialect, pkt.len(), ctx)), jeq),
            Ins::LenJgt(f) => load_jump!(f, |_| Some(len_value(p.dialect, pkt.len(), ctx)), jgt),
            Ins::LenJge(f) => load_jump!(f, |_| Some(len_value(p.dialect, pkt.len(), ctx)), jge),
            Ins::LenJset(f) => load_jump!(f, |_| Some(len_value(p.dialect, pkt.len(), ctx)), jset),
            Ins::MshIndBJeq(m) => msh_jump!(m, 1, jeq),
            Ins::MshIndBJgt(m) => msh_jump!(m, 1, jgt),
            Ins::MshIndBJge(m) => msh_jump!(m, 1, jge),
            Ins::MshIndBJset(m) => msh_jump!(m, 1, jset),
            Ins::MshIndHJeq(m) => msh_jump!(m, 2, jeq),
            Ins::MshIndHJgt(m) => msh_jump!(m, 2, jgt),
            Ins::MshIndHJge(m) => msh_jump!(m, 2, jge),
            Ins::MshIndHJset(m) => msh_jump!(m, 2, jset),
            Ins::MshIndWJeq(m) => msh_jump!(m, 4, jeq),
            Ins::MshIndWJgt(m) => msh_jump!(m, 4, jgt),
            Ins::MshIndWJge(m) => msh_jump!(m, 4, jge),
            Ins::MshIndWJset(m) => msh_jump!(m, 4, jset),
        }
    }
}
