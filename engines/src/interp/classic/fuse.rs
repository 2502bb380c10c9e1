//! The passes that turn a forward-only program's [`Ins`] into fewer, larger ones (see
//! [`super::prepare`] for when they apply). Each keeps every instruction it reads in place, so
//! jumps that land on them still find them; only the first instruction of a fused group is
//! replaced.

use super::prepare::{index, Ins, LoadCond, MshLoadCond, RET};

impl Ins {
    /// The fused load-and-jump's operands, for the `Ld…J…` and `LenJ…` instructions.
    pub(super) fn load_cond_mut(&mut self) -> Option<&mut LoadCond> {
        use Ins::*;
        match self {
            LdBJeq(f) | LdBJgt(f) | LdBJge(f) | LdBJset(f) | LdHJeq(f) | LdHJgt(f) | LdHJge(f)
            | LdHJset(f) | LdWJeq(f) | LdWJgt(f) | LdWJge(f) | LdWJset(f) | LdIndBJeq(f)
            | LdIndBJgt(f) | LdIndBJge(f) | LdIndBJset(f) | LdIndHJeq(f) | LdIndHJgt(f)
            | LdIndHJge(f) | LdIndHJset(f) | LdIndWJeq(f) | LdIndWJgt(f) | LdIndWJge(f)
            | LdIndWJset(f) | LenJeq(f) | LenJgt(f) | LenJge(f) | LenJset(f) => Some(f),
            _ => None,
        }
    }
}

/// The instructions from `pc` on as one, when they are a load into A (from the packet at a
/// constant offset or X + k, or the length), optionally `and #mask`, then a conditional jump
/// on a constant.
#[inline]
pub(super) fn load_jump(code: &[Ins], pc: usize) -> Option<Ins> {
    use Ins::*;
    let (mask, jump) = match code.get(pc + 1..)? {
        [AndK(m), jump, ..] => (*m, *jump),
        [jump, ..] => (u32::MAX, *jump),
        [] => return None,
    };
    let (c, cmp) = match jump {
        JeqK(c) => (c, 0),
        JgtK(c) => (c, 1),
        JgeK(c) => (c, 2),
        JsetK(c) => (c, 3),
        _ => return None,
    };
    type Fused = [fn(LoadCond) -> Ins; 4];
    let (table, off): (Fused, u32) = match code[pc] {
        LdB(o) => ([LdBJeq, LdBJgt, LdBJge, LdBJset], o),
        LdH(o) => ([LdHJeq, LdHJgt, LdHJge, LdHJset], o),
        LdW(o) => ([LdWJeq, LdWJgt, LdWJge, LdWJset], o),
        LdIndB(o) => ([LdIndBJeq, LdIndBJgt, LdIndBJge, LdIndBJset], o),
        LdIndH(o) => ([LdIndHJeq, LdIndHJgt, LdIndHJge, LdIndHJset], o),
        LdIndW(o) => ([LdIndWJeq, LdIndWJgt, LdIndWJge, LdIndWJset], o),
        LdLen => ([LenJeq, LenJgt, LenJge, LenJset], 0),
        _ => return None,
    };
    Some(table[cmp](LoadCond {
        off,
        mask,
        k: c.k,
        jt: c.jt,
        jf: c.jf,
        k2: c.k,
        jt2: c.jf,
    }))
}

/// Makes jumps to a `ret #k` return k themselves: `ja` becomes the `ret`, conditional jump
/// targets become `RET | i` with `rets[i] = k`.
pub(super) fn thread_returns(code: &mut [Ins], rets: &mut Vec<u32>) {
    // Targets are forward: `code[t]` is still as decoded when `code[pc]` is rewritten.
    let ret_of = |code: &[Ins], t: u32| match code.get(t as usize) {
        Some(Ins::RetK(k)) => Some(*k),
        _ => None,
    };
    let mut target = |code: &[Ins], t: &mut u32| {
        if let Some(k) = ret_of(code, *t) {
            let i = rets.iter().position(|&r| r == k).unwrap_or_else(|| {
                rets.push(k);
                rets.len() - 1
            });
            *t = RET | index(i);
        }
    };
    for pc in 0..code.len() {
        use Ins::*;
        let mut ins = code[pc];
        match &mut ins {
            Ja(t) => {
                if let Some(k) = ret_of(code, *t) {
                    ins = RetK(k);
                }
            }
            JeqK(c) | JgtK(c) | JgeK(c) | JsetK(c) | JeqX(c) | JgtX(c) | JgeX(c) | JsetX(c) => {
                target(code, &mut c.jt);
                target(code, &mut c.jf);
            }
            other => {
                if let Some(f) = other.load_cond_mut() {
                    target(code, &mut f.jt);
                    target(code, &mut f.jf);
                    target(code, &mut f.jt2);
                }
            }
        }
        code[pc] = ins;
    }
}

/// `ldx 4*([k]&0xf)` then an indirect load-and-jump, as one instruction.
#[inline]
pub(super) fn msh(msh: Ins, next: Ins) -> Option<Ins> {
    use Ins::*;
    let Ins::LdxMsh(msh) = msh else {
        return None;
    };
    let (variant, f): (fn(MshLoadCond) -> Ins, LoadCond) = match next {
        LdIndBJeq(f) => (MshIndBJeq, f),
        LdIndBJgt(f) => (MshIndBJgt, f),
        LdIndBJge(f) => (MshIndBJge, f),
        LdIndBJset(f) => (MshIndBJset, f),
        LdIndHJeq(f) => (MshIndHJeq, f),
        LdIndHJgt(f) => (MshIndHJgt, f),
        LdIndHJge(f) => (MshIndHJge, f),
        LdIndHJset(f) => (MshIndHJset, f),
        LdIndWJeq(f) => (MshIndWJeq, f),
        LdIndWJgt(f) => (MshIndWJgt, f),
        LdIndWJge(f) => (MshIndWJge, f),
        LdIndWJset(f) => (MshIndWJset, f),
        _ => return None,
    };
    // Not chained yet (chain_jeq runs last).
    debug_assert_eq!(f.jt2, f.jf);
    Some(variant(MshLoadCond {
        msh,
        off: f.off,
        mask: f.mask,
        k: f.k,
        jt: f.jt,
        jf: f.jf,
    }))
}

/// Inlines into a fused load-and-jump the `jeq` on A its false target holds (tcpdump's tests
/// of the ethertype, the protocol, a port: `jeq #a, …, next; next: jeq #b, …`).
pub(super) fn chain_jeq(code: &mut [Ins]) {
    for pc in 0..code.len() {
        let Some(&mut LoadCond { jf, .. }) = code[pc].load_cond_mut() else {
            continue;
        };
        // A `RET | i` target is not an index (and not below `code.len()`).
        let Some(&Ins::JeqK(c)) = code.get(jf as usize) else {
            continue;
        };
        if let Some(f) = code[pc].load_cond_mut() {
            (f.k2, f.jt2, f.jf) = (c.k, c.jt, c.jf);
        }
    }
}
