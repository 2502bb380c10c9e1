//! Linux: `bpf_check_classic` and friends from `net/core/filter.c` (torvalds/linux), checked
//! against a 6.18 x86-64 kernel with `SO_ATTACH_FILTER`.
//!
//! Order of checks, as in the kernel:
//! 1. `bpf_check_basics_ok`: `1 <= len <= BPF_MAXINSNS` (4096).
//! 2. `bpf_check_classic`, one instruction at a time: `chk_code_allowed`, then the per-opcode
//!    checks (DIV/MOD k = 0, LSH/RSH k >= 32, M[] index, jump range, ancillary offset).
//! 3. `bpf_check_classic`: the last instruction must be exactly `ret k` or `ret a`.
//! 4. `check_load_and_stores`: M[] read before written.
//! 5. `bpf_convert_filter` (via `bpf_migrate_filter`, since x86-64 has no classic JIT): every
//!    jump must fit eBPF's signed 16-bit `off`, including in the first pass where forward targets
//!    still have address 0.
//!
//! Not modelled: resource failures (`-ENOMEM` from `kmalloc` or from `__sk_filter_charge` when
//! the converted program exceeds `net.core.optmem_max`; see [`linux_ebpf_len`]).

use super::{reject, rule, Rejection};
use crate::cbpf::ext::{Ext, SKF_AD_OFF};
use crate::cbpf::{AluOp, Insn, JmpOp, Op, Size, Src, MAXINSNS, MEMWORDS};

/// Runs every Linux check in kernel order.
pub(super) fn check(prog: &[Insn]) -> Result<(), Rejection> {
    check_basics(prog)?;
    check_classic(prog)?;
    check_load_and_stores(prog)?;
    check_convert_jumps(prog)
}

/// Mirrors `bpf_check_basics_ok`: the length must be in `1..=BPF_MAXINSNS`.
fn check_basics(prog: &[Insn]) -> Result<(), Rejection> {
    if prog.is_empty() || prog.len() > MAXINSNS {
        return Err(Rejection {
            rule: rule::LENGTH,
            pc: None,
            message: format!(
                "program has {} instructions; Linux accepts 1..={MAXINSNS} (bpf_check_basics_ok)",
                prog.len()
            ),
        });
    }
    Ok(())
}

/// Mirrors `chk_code_allowed`: the 49 exact opcodes of its table, i.e. every known classic
/// opcode except `ret x` and NetBSD's `cop`/`copx`.
fn code_allowed(code: u16) -> Option<Op> {
    Op::decode(code).filter(|op| !matches!(op, Op::RetX | Op::Cop | Op::Copx))
}

/// Mirrors the loop and the final `switch` of `bpf_check_classic`.
fn check_classic(prog: &[Insn]) -> Result<(), Rejection> {
    let flen = prog.len();
    for (pc, insn) in prog.iter().enumerate() {
        let Some(op) = code_allowed(insn.code) else {
            return Err(reject(
                rule::UNKNOWN_OPCODE,
                pc,
                insn,
                "opcode not in chk_code_allowed's table",
            ));
        };
        match op {
            Op::Alu(AluOp::Div | AluOp::Mod, Src::K) if insn.k == 0 => {
                return Err(reject(
                    rule::DIV_BY_ZERO,
                    pc,
                    insn,
                    "division by constant 0",
                ));
            }
            Op::Alu(AluOp::Lsh | AluOp::Rsh, Src::K) if insn.k >= 32 => {
                return Err(reject(
                    rule::SHIFT_TOO_LARGE,
                    pc,
                    insn,
                    format!("shift by constant {} (must be < 32)", insn.k),
                ));
            }
            Op::LdMem | Op::LdxMem | Op::St | Op::Stx if insn.k as usize >= MEMWORDS => {
                return Err(reject(
                    rule::MEM_INDEX,
                    pc,
                    insn,
                    format!("M[{}] out of range (BPF_MEMWORDS = {MEMWORDS})", insn.k),
                ));
            }
            // `ftest->k >= (unsigned int)(flen - pc - 1)`: at most the last instruction.
            Op::Ja if u64::from(insn.k) >= (flen - pc - 1) as u64 => {
                return Err(reject(
                    rule::JUMP_OUT_OF_RANGE,
                    pc,
                    insn,
                    format!(
                        "ja target {} is past the last instruction",
                        target(pc, insn.k)
                    ),
                ));
            }
            Op::Jmp(..)
                if pc + usize::from(insn.jt) + 1 >= flen
                    || pc + usize::from(insn.jf) + 1 >= flen =>
            {
                return Err(reject(
                    rule::JUMP_OUT_OF_RANGE,
                    pc,
                    insn,
                    format!(
                        "conditional targets {} / {} must both be < {flen}",
                        pc + usize::from(insn.jt) + 1,
                        pc + usize::from(insn.jf) + 1
                    ),
                ));
            }
            // `bpf_anc_helper` accepts all three sizes; only the exact SKF_AD_OFF + SKF_AD_x
            // offsets are known.
            Op::LdAbs(_) if insn.k >= SKF_AD_OFF && Ext::from_k(insn.k).is_none() => {
                return Err(reject(
                    rule::UNKNOWN_ANCILLARY,
                    pc,
                    insn,
                    format!(
                        "SKF_AD_OFF + {:#x} is not a known ancillary offset",
                        insn.k.wrapping_sub(SKF_AD_OFF)
                    ),
                ));
            }
            _ => {}
        }
    }
    // `flen >= 1` was checked by check_basics; stay panic-free anyway.
    let Some((pc, last)) = prog.iter().enumerate().next_back() else {
        return Ok(());
    };
    match Op::decode(last.code) {
        Some(Op::RetK | Op::RetA) => Ok(()),
        _ => Err(reject(
            rule::LAST_NOT_RET,
            pc,
            last,
            "the last instruction must be ret k or ret a",
        )),
    }
}

/// Absolute target of a relative jump, for messages.
fn target(pc: usize, off: u32) -> u64 {
    pc as u64 + u64::from(off) + 1
}

/// Mirrors `check_load_and_stores` exactly, including its over-approximation.
///
/// One forward pass with a `u16` mask per instruction (all ones initially): at each pc the
/// running `memvalid` is ANDed with the pc's mask; stores set their bit; loads need theirs;
/// a jump ANDs `memvalid` into its targets' masks and then sets `memvalid` to all ones.
/// A `ret` does **not** reset `memvalid`, so the instruction after a `ret` inherits the state
/// of the path that returned: dead code after `ret` is checked as if reachable, and a jump
/// target placed right after a `ret` is checked against the returning path too. Dead code
/// after `ja` (not targeted by any jump) is accepted whatever it reads.
fn check_load_and_stores(prog: &[Insn]) -> Result<(), Rejection> {
    let mut masks = vec![u16::MAX; prog.len()];
    let mut memvalid: u16 = 0;
    for (pc, insn) in prog.iter().enumerate() {
        memvalid &= masks[pc];
        let bit = |k: u32| 1u16.checked_shl(k).unwrap_or(0);
        match Op::decode(insn.code) {
            Some(Op::St | Op::Stx) => memvalid |= bit(insn.k),
            Some(Op::LdMem | Op::LdxMem) if memvalid & bit(insn.k) == 0 => {
                return Err(reject(
                    rule::UNINIT_MEM,
                    pc,
                    insn,
                    format!(
                        "M[{}] may be read before it is written (check_load_and_stores)",
                        insn.k
                    ),
                ));
            }
            Some(Op::Ja) => {
                and_mask(&mut masks, pc as u64 + 1 + u64::from(insn.k), memvalid);
                memvalid = u16::MAX;
            }
            Some(Op::Jmp(..)) => {
                and_mask(&mut masks, pc as u64 + 1 + u64::from(insn.jt), memvalid);
                and_mask(&mut masks, pc as u64 + 1 + u64::from(insn.jf), memvalid);
                memvalid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `masks[i] &= v`, ignoring indices outside the program (already rejected by then).
fn and_mask(masks: &mut [u16], i: u64, v: u16) {
    if let Some(m) = usize::try_from(i).ok().and_then(|i| masks.get_mut(i)) {
        *m &= v;
    }
}

/// Largest eBPF jump offset (`S16_MAX`).
const OFF_MAX: i64 = i16::MAX as i64;
/// Smallest eBPF jump offset (`S16_MIN`).
const OFF_MIN: i64 = i16::MIN as i64;

/// The eBPF instructions `bpf_convert_filter` emits for one classic instruction, and whether it
/// is a packet load that makes the prologue cache skb->data (`seen_ld_abs`).
///
/// Counts are for x86-64 (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`, `NET_IP_ALIGN` = 0,
/// little-endian bitfields) and kernels >= 6.2 (`vlan_avail` reads `vlan_all`: 3 insns); every
/// count was confirmed on a 6.18 kernel by bisecting the `-EINVAL` threshold of long `ja`s.
fn ebpf_size(insn: &Insn) -> (u64, bool) {
    let Some(op) = Op::decode(insn.code) else {
        return (1, false);
    };
    match op {
        Op::Alu(AluOp::Div | AluOp::Mod, Src::X) => (5, false),
        Op::LdAbs(size) => match Ext::from_k(insn.k) {
            Some(ext) => (ext_size(ext), false),
            None => (ld_abs_size(size, insn.k), true),
        },
        Op::LdInd(_) => (8 + u64::from(insn.k != 0), true),
        Op::LdxMsh => (6 + ld_abs_size(Size::B, insn.k), true),
        Op::RetK => (2, false),
        Op::Jmp(jop, src) => {
            let tmp = u64::from(src == Src::K && (insn.k as i32) < 0);
            (tmp + cond_jumps(jop, insn).len() as u64, false)
        }
        _ => (1, false),
    }
}

/// `convert_bpf_extensions`: instructions per ancillary load.
fn ext_size(ext: Ext) -> u64 {
    match ext {
        Ext::Proto | Ext::Type | Ext::VlanTpid => 2,
        Ext::Ifidx | Ext::Hatype => 4,
        Ext::Nla | Ext::Nlan | Ext::Cpu | Ext::Poff | Ext::Rand => 4,
        Ext::VlanPr => 3,
        Ext::Mark | Ext::Queue | Ext::Rxhash | Ext::XorX | Ext::VlanTci | Ext::Len => 1,
    }
}

/// `convert_bpf_ld_abs` for `BPF_ABS`: a direct-load fast path when the offset is non-negative
/// (mov, sub if k != 0, jslt, 1 or 3 for the load, bswap for h/w, ja) and the helper call
/// (3 movs, mov k, call, jsge, xor, exit).
fn ld_abs_size(size: Size, k: u32) -> u64 {
    let off = k as i32;
    let fast = if off >= 0 {
        let load = if off <= i32::from(i16::MAX) { 1 } else { 3 };
        1 + u64::from(off != 0) + 1 + load + u64::from(size != Size::B) + 1
    } else {
        0
    };
    fast + 8
}

/// The eBPF jumps a conditional classic jump becomes, as `(index within the expansion after
/// the optional temp mov, relative classic target)`: one jump when `jf == 0`, one inverted jump
/// when `jt == 0` and the op has an inverse (jeq/jgt/jge; not jset), else a jump and a `ja`.
fn cond_jumps(jop: JmpOp, insn: &Insn) -> Vec<(u64, u8)> {
    if insn.jf == 0 {
        vec![(0, insn.jt)]
    } else if insn.jt == 0 && jop != JmpOp::Jset {
        vec![(0, insn.jf)]
    } else {
        vec![(0, insn.jt), (1, insn.jf)]
    }
}

/// The length of the eBPF program `bpf_convert_filter` makes from a program that passed
/// `bpf_check_classic` (x86-64 model, see [`super::check`]): the prologue (3 instructions, 4 more when
/// the program loads packet data) plus each instruction's expansion.
///
/// `SO_ATTACH_FILTER` then fails with `ENOMEM` unless
/// `96 + 8 * linux_ebpf_len(prog) < net.core.optmem_max` (measured on 6.18 x86-64 with a fresh
/// socket: 16371 instructions fit in the default 131072 bytes).
pub fn linux_ebpf_len(prog: &[Insn]) -> usize {
    let (body, seen) = prog.iter().fold((0u64, false), |(n, seen), i| {
        let (s, ld) = ebpf_size(i);
        (n + s, seen || ld)
    });
    usize::try_from(3 + 4 * u64::from(seen) + body).unwrap_or(usize::MAX)
}

/// Mirrors the `BPF_EMIT_JMP` offset check of `bpf_convert_filter` over its two passes.
///
/// Pass 0 of the second call runs with `addrs[]` zeroed (`kcalloc`) and filled as it goes, so a
/// forward target still has address 0: a jump fails when
/// `0 - addrs[i] - 1 - idx < S16_MIN`, i.e. when the jump instruction lands at eBPF address
/// 32768 or later. Pass 1 then fails on real forward distances above `S16_MAX`.
fn check_convert_jumps(prog: &[Insn]) -> Result<(), Rejection> {
    let mut addrs = Vec::with_capacity(prog.len() + 1);
    let mut seen = false;
    let mut sizes = Vec::with_capacity(prog.len());
    for insn in prog {
        let (s, ld) = ebpf_size(insn);
        sizes.push(s);
        seen |= ld;
    }
    let mut at = 3 + 4 * u64::from(seen);
    for s in &sizes {
        addrs.push(at as i64);
        at += s;
    }
    addrs.push(at as i64);

    // (pc, index of the jump within the expansion, classic target)
    let mut jumps = Vec::new();
    for (pc, insn) in prog.iter().enumerate() {
        match Op::decode(insn.code) {
            Some(Op::Ja) => jumps.push((pc, 0u64, target(pc, insn.k))),
            Some(Op::Jmp(jop, src)) => {
                let tmp = u64::from(src == Src::K && (insn.k as i32) < 0);
                for (idx, off) in cond_jumps(jop, insn) {
                    jumps.push((pc, tmp + idx, target(pc, u32::from(off))));
                }
            }
            _ => {}
        }
    }
    let fail = |pc: usize, why: String| reject(rule::EBPF_JUMP_RANGE, pc, &prog[pc], why);
    for &(pc, idx, _) in &jumps {
        let off = -addrs[pc] - 1 - idx as i64;
        if off < OFF_MIN {
            return Err(fail(
                pc,
                format!(
                    "jump at eBPF address {} fails bpf_convert_filter's first pass (offset {off} < {OFF_MIN})",
                    addrs[pc] + idx as i64
                ),
            ));
        }
    }
    for &(pc, idx, tgt) in &jumps {
        let Some(&to) = usize::try_from(tgt).ok().and_then(|t| addrs.get(t)) else {
            continue;
        };
        let off = to - addrs[pc] - 1 - idx as i64;
        if off > OFF_MAX {
            return Err(fail(
                pc,
                format!("converted jump offset {off} exceeds {OFF_MAX} (bpf_convert_filter)"),
            ));
        }
    }
    Ok(())
}
