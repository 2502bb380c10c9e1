//! Decoding a classic program once into the form the interpreter loop runs ([`Prepared`]).
//!
//! Each instruction becomes one [`Ins`]: its opcode resolved under the dialect, with operands
//! ready to use (shift counts masked, jump targets absolute). Anything that can only fail —
//! unknown opcodes, `ret x`, coprocessor calls outside NetBSD, division by a zero constant,
//! packet offsets that overflow, unknown ancillary offsets, BSD jumps out of the program —
//! becomes `return 0`, exactly as the step would have ended. Jumps outside the program go to
//! sentinels appended after it ([`Ins::Oob`]), which trap with the pc the step would have
//! reached; falling off the end reaches the first one ([`END`]).
//!
//! Programs that can only jump forward (every Linux and NetBSD program, BSD programs without
//! backward `ja`) and are shorter than [`STEP_LIMIT`] execute fewer than [`STEP_LIMIT`]
//! instructions, so they run without counting steps, and may skip steps. For them the
//! [`fuse`] passes make tcpdump's tests single instructions: a load into A (a packet load at a
//! constant offset or, BSD and NetBSD, at X + k; `ld len`), an optional `and #mask`, a
//! conditional jump on k, and a `jeq` at its false target ([`LoadCond`]); `ldx msh` before an
//! indirect one ([`MshLoadCond`]); and jumps to `ret #k` return k directly ([`RET`]). The
//! instructions a fused one covers stay in place for jumps that land on them. Programs that may
//! loop keep one [`Ins`] per instruction and count every step, as the reference semantics do.

use super::{fuse, STEP_LIMIT};
use bpfconf_spec::cbpf::ext::{Ext, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{AluOp, Insn, JmpOp, Op, Size, Src};
use bpfconf_spec::Dialect;
use std::collections::BTreeMap;

/// A conditional jump's constant (unused for X comparisons) and absolute targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cond {
    pub k: u32,
    pub jt: u32,
    pub jf: u32,
}

/// A load into A fused with the conditional jump on a constant that follows it, possibly
/// through an `and #mask` between them: the load's offset (k for an absolute load, added to X
/// for an indirect one, unused for `len`), the mask (all ones without the `and`) and the
/// jump's constant and targets. When A fails the test, `jeq #k2, jt2, jf` (a `jeq` the false
/// target held, inlined); `jt2` is `jf` when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LoadCond {
    pub off: u32,
    pub mask: u32,
    pub k: u32,
    pub jt: u32,
    pub jf: u32,
    pub k2: u32,
    pub jt2: u32,
}

/// `ldx 4*([msh]&0xf)` fused with the indirect load-and-jump after it (TCP and UDP port
/// tests); the other fields as in [`LoadCond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MshLoadCond {
    pub msh: u32,
    pub off: u32,
    pub mask: u32,
    pub k: u32,
    pub jt: u32,
    pub jf: u32,
}

/// One prepared instruction. Packet loads named `Ld…` follow the BSD rules (unsigned offsets,
/// overflow-checked, which for the non-negative offsets they are used for on Linux is the same
/// load); `Lnx…` are Linux loads that may use the negative-offset bases. A failed load returns
/// 0. The fused `Ld{B,H,W}J…`, `LdInd{B,H,W}J…`, `LenJ…` ([`LoadCond`]) and `MshInd…`
/// ([`MshLoadCond`]) load A, mask it, then jump as `J…K` would. Jump targets are code indices,
/// or [`RET`] `| i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ins {
    LdB(u32),
    LdH(u32),
    LdW(u32),
    LdIndB(u32),
    LdIndH(u32),
    LdIndW(u32),
    LdxMsh(u32),
    LnxAbs(i32, u8),
    LnxInd(u32, u8),
    LnxMsh(i32),
    Anc(Ext),
    LdLen,
    LdxLen,
    LdImm(u32),
    LdxImm(u32),
    LdMem(u32),
    LdxMem(u32),
    St(u32),
    Stx(u32),
    AddK(u32),
    SubK(u32),
    MulK(u32),
    /// k ≠ 0.
    DivK(u32),
    /// k ≠ 0.
    ModK(u32),
    AndK(u32),
    OrK(u32),
    XorK(u32),
    /// k & 31.
    LshK(u32),
    /// k & 31.
    RshK(u32),
    AddX,
    SubX,
    MulX,
    DivX,
    ModX,
    AndX,
    OrX,
    XorX,
    /// Shift by X modulo 32 (Linux, NetBSD).
    LshX,
    RshX,
    /// Shift by X, 0 when X ≥ 32 (BSD).
    LshXBsd,
    RshXBsd,
    Neg,
    Ja(u32),
    JeqK(Cond),
    JgtK(Cond),
    JgeK(Cond),
    JsetK(Cond),
    JeqX(Cond),
    JgtX(Cond),
    JgeX(Cond),
    JsetX(Cond),
    RetK(u32),
    RetA,
    Tax,
    Txa,
    Cop(u32),
    Copx,
    /// The pc left the program: traps with [`Prepared::oob`]`[i]`, or with the program's
    /// length for [`END`] (falling off its end).
    Oob(u32),
    LdBJeq(LoadCond),
    LdBJgt(LoadCond),
    LdBJge(LoadCond),
    LdBJset(LoadCond),
    LdHJeq(LoadCond),
    LdHJgt(LoadCond),
    LdHJge(LoadCond),
    LdHJset(LoadCond),
    LdWJeq(LoadCond),
    LdWJgt(LoadCond),
    LdWJge(LoadCond),
    LdWJset(LoadCond),
    LdIndBJeq(LoadCond),
    LdIndBJgt(LoadCond),
    LdIndBJge(LoadCond),
    LdIndBJset(LoadCond),
    LdIndHJeq(LoadCond),
    LdIndHJgt(LoadCond),
    LdIndHJge(LoadCond),
    LdIndHJset(LoadCond),
    LdIndWJeq(LoadCond),
    LdIndWJgt(LoadCond),
    LdIndWJge(LoadCond),
    LdIndWJset(LoadCond),
    LenJeq(LoadCond),
    LenJgt(LoadCond),
    LenJge(LoadCond),
    LenJset(LoadCond),
    MshIndBJeq(MshLoadCond),
    MshIndBJgt(MshLoadCond),
    MshIndBJge(MshLoadCond),
    MshIndBJset(MshLoadCond),
    MshIndHJeq(MshLoadCond),
    MshIndHJgt(MshLoadCond),
    MshIndHJge(MshLoadCond),
    MshIndHJset(MshLoadCond),
    MshIndWJeq(MshLoadCond),
    MshIndWJgt(MshLoadCond),
    MshIndWJge(MshLoadCond),
    MshIndWJset(MshLoadCond),
}

// 32 bytes (the largest operands, 28, and the tag): indexing the code is a shift.
const _: () = assert!(std::mem::size_of::<Ins>() == 32);

/// A classic program decoded once for a dialect, ready to run any number of times with
/// [`Prepared::run`] (the result and the memory store) or [`Prepared::run_ret`] (the return
/// value only, without allocating). Semantics are exactly [`super::run`]'s.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(super) dialect: Dialect,
    /// The program, then the out-of-range sentinels (`Oob(END)`, then `Oob(0)`, `Oob(1)`…).
    pub(super) code: Box<[Ins]>,
    /// The program's length.
    pub(super) len: usize,
    /// The pc each [`Ins::Oob`] sentinel but [`END`] traps with.
    pub(super) oob: Box<[usize]>,
    /// Whether runs count steps against [`STEP_LIMIT`] (the program may jump backward).
    pub(super) counted: bool,
    /// Whether any instruction reads or writes the memory store (coprocessor calls included).
    pub(super) uses_mem: bool,
    /// What a jump target `RET | i` returns: `rets[i]` (see [`fuse::thread_returns`]).
    pub(super) rets: Box<[u32]>,
}

/// The [`Ins::Oob`] after the program's last instruction.
pub(super) const END: u32 = u32::MAX;

/// The bit of a jump target that makes it a return (the others index [`Prepared::rets`]).
pub(super) const RET: u32 = 1 << 31;

impl Prepared {
    /// Decodes `insns` for `dialect`. Any program is accepted: unchecked ones trap or return 0
    /// where the reference semantics do.
    pub fn new(dialect: Dialect, insns: &[Insn]) -> Prepared {
        let n = insns.len();
        let counted = n >= STEP_LIMIT
            || (dialect == Dialect::Bsd
                && insns.iter().enumerate().any(|(pc, i)| {
                    i.op() == Some(Op::Ja) && bsd_ja_target(pc, i.k, n).is_some_and(|t| t <= pc)
                }));
        let mut b = Builder {
            n,
            oob: Vec::new(),
            sentinels: BTreeMap::new(),
        };
        let mut code = Vec::with_capacity(n + 1);
        code.extend((0..n).map(|pc| b.single(dialect, insns, pc)));
        let mut rets = Vec::new();
        if !counted {
            // Front to back: the instructions a fused one reads come after it, and stay as
            // they were (unfused loads are not jumps, ands are not loads).
            for pc in 0..n {
                if let Some(f) = fuse::load_jump(&code, pc) {
                    code[pc] = f;
                }
            }
            fuse::thread_returns(&mut code, &mut rets);
            for pc in 0..n.saturating_sub(1) {
                if let Some(f) = fuse::msh(code[pc], code[pc + 1]) {
                    code[pc] = f;
                }
            }
            fuse::chain_jeq(&mut code);
        }
        let uses_mem = code.iter().any(|i| {
            use Ins::*;
            matches!(i, LdMem(_) | LdxMem(_) | St(_) | Stx(_) | Cop(_) | Copx)
        });
        code.push(Ins::Oob(END));
        code.extend((0..b.oob.len()).map(|i| Ins::Oob(i as u32)));
        Prepared {
            dialect,
            code: code.into_boxed_slice(),
            len: n,
            oob: b.oob.into_boxed_slice(),
            counted,
            uses_mem,
            rets: rets.into_boxed_slice(),
        }
    }

    /// The dialect the program was prepared for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// Where a BSD `ja` at `pc` goes (k sign-extended, 32-bit wrap-around), if inside the program.
fn bsd_ja_target(pc: usize, k: u32, n: usize) -> Option<usize> {
    let target = (pc as u32).wrapping_add(1).wrapping_add(k) as usize;
    (target < n).then_some(target)
}

struct Builder {
    n: usize,
    /// The pc of each [`Ins::Oob`] sentinel after `Oob(END)`, in order.
    oob: Vec<usize>,
    /// [`Ins::Oob`] index by pc.
    sentinels: BTreeMap<usize, u32>,
}

impl Builder {
    /// The code index for pc `t`: itself inside the program, else its sentinel (`Oob(END)`
    /// at `n`, then the others).
    fn target(&mut self, t: usize) -> u32 {
        if t <= self.n {
            return index(t);
        }
        let i = *self.sentinels.entry(t).or_insert_with(|| {
            self.oob.push(t);
            (self.oob.len() - 1) as u32
        });
        index(self.n + 1 + i as usize)
    }

    /// One instruction, unfused.
    #[inline]
    fn single(&mut self, dialect: Dialect, insns: &[Insn], pc: usize) -> Ins {
        let insn = insns[pc];
        let (k, next) = (insn.k, pc + 1);
        let fail = Ins::RetK(0);
        let Some(op) = insn.op() else {
            // Unknown opcodes never pass a checker; interpreters that meet one return 0.
            return fail;
        };
        let linux = dialect == Dialect::Linux;
        match op {
            Op::LdAbs(size) => {
                if linux && (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&k) {
                    // The checker rejects unknown ancillary offsets; they fail like loads.
                    Ext::from_k(k).map_or(fail, Ins::Anc)
                } else if linux && (k as i32) < 0 {
                    Ins::LnxAbs(k as i32, size.bytes() as u8)
                } else if k.checked_add(size.bytes()).is_none() {
                    fail
                } else {
                    match size {
                        Size::B => Ins::LdB(k),
                        Size::H => Ins::LdH(k),
                        Size::W => Ins::LdW(k),
                    }
                }
            }
            Op::LdInd(size) if linux => Ins::LnxInd(k, size.bytes() as u8),
            Op::LdInd(Size::B) => Ins::LdIndB(k),
            Op::LdInd(Size::H) => Ins::LdIndH(k),
            Op::LdInd(Size::W) => Ins::LdIndW(k),
            Op::LdxMsh if linux && (k as i32) < 0 => Ins::LnxMsh(k as i32),
            Op::LdxMsh if k == u32::MAX => fail,
            Op::LdxMsh => Ins::LdxMsh(k),
            Op::LdLen => Ins::LdLen,
            Op::LdxLen => Ins::LdxLen,
            Op::LdImm => Ins::LdImm(k),
            Op::LdxImm => Ins::LdxImm(k),
            Op::LdMem => Ins::LdMem(k),
            Op::LdxMem => Ins::LdxMem(k),
            Op::St => Ins::St(k),
            Op::Stx => Ins::Stx(k),
            Op::Alu(o, Src::K) => match o {
                AluOp::Add => Ins::AddK(k),
                AluOp::Sub => Ins::SubK(k),
                AluOp::Mul => Ins::MulK(k),
                AluOp::Div | AluOp::Mod if k == 0 => fail,
                AluOp::Div => Ins::DivK(k),
                AluOp::Mod => Ins::ModK(k),
                AluOp::And => Ins::AndK(k),
                AluOp::Or => Ins::OrK(k),
                AluOp::Xor => Ins::XorK(k),
                // Every dialect shifts by a constant modulo 32 (eBPF's 32-bit ALU; C shifts as
                // x86 executes them).
                AluOp::Lsh => Ins::LshK(k & 31),
                AluOp::Rsh => Ins::RshK(k & 31),
            },
            Op::Alu(o, Src::X) => match o {
                AluOp::Add => Ins::AddX,
                AluOp::Sub => Ins::SubX,
                AluOp::Mul => Ins::MulX,
                AluOp::Div => Ins::DivX,
                AluOp::Mod => Ins::ModX,
                AluOp::And => Ins::AndX,
                AluOp::Or => Ins::OrX,
                AluOp::Xor => Ins::XorX,
                AluOp::Lsh if dialect == Dialect::Bsd => Ins::LshXBsd,
                AluOp::Rsh if dialect == Dialect::Bsd => Ins::RshXBsd,
                AluOp::Lsh => Ins::LshX,
                AluOp::Rsh => Ins::RshX,
            },
            Op::Neg => Ins::Neg,
            // libpcap: k is sign-extended (backward jumps implement `protochain`); a target
            // outside the program ends it with 0. Elsewhere k is unsigned.
            Op::Ja if dialect == Dialect::Bsd => match bsd_ja_target(pc, k, self.n) {
                Some(t) => Ins::Ja(index(t)),
                None => fail,
            },
            Op::Ja => Ins::Ja(self.target(next.wrapping_add(k as usize))),
            Op::Jmp(o, s) => {
                let c = Cond {
                    k,
                    jt: self.target(next + insn.jt as usize),
                    jf: self.target(next + insn.jf as usize),
                };
                match (o, s) {
                    (JmpOp::Jeq, Src::K) => Ins::JeqK(c),
                    (JmpOp::Jgt, Src::K) => Ins::JgtK(c),
                    (JmpOp::Jge, Src::K) => Ins::JgeK(c),
                    (JmpOp::Jset, Src::K) => Ins::JsetK(c),
                    (JmpOp::Jeq, Src::X) => Ins::JeqX(c),
                    (JmpOp::Jgt, Src::X) => Ins::JgtX(c),
                    (JmpOp::Jge, Src::X) => Ins::JgeX(c),
                    (JmpOp::Jset, Src::X) => Ins::JsetX(c),
                }
            }
            Op::RetK => Ins::RetK(k),
            Op::RetA => Ins::RetA,
            // No interpreter implements RET X: only BSD-family validators accept it, and their
            // interpreters fall into the default case, which returns 0.
            Op::RetX => fail,
            Op::Tax => Ins::Tax,
            Op::Txa => Ins::Txa,
            Op::Cop | Op::Copx if dialect != Dialect::Netbsd => fail,
            Op::Cop => Ins::Cop(k),
            Op::Copx => Ins::Copx,
        }
    }
}

/// A code index (programs of 2^31 instructions or more are not supported).
pub(super) fn index(pc: usize) -> u32 {
    u32::try_from(pc)
        .ok()
        .filter(|&i| i < RET)
        .expect("classic program too long")
}
