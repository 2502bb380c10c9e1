//! NetBSD: `bpf_validate_ext` from `sys/net/bpf_filter.c` (NetBSD/src, rev. 1.70 by alnsn, the
//! version with BPF_COP/BPF_COPX and external memory), as compiled into the kernel (`_KERNEL`),
//! with `BPF_MAXINSNS` = 512 and `BPF_MAX_MEMWORDS` = 30 from `sys/net/bpf.h`.
//!
//! Order of checks, as in the C function:
//! 1. `1 <= len <= BPF_MAXINSNS` (512).
//! 2. The last instruction must be exactly `ret k` or `ret a` (checked *before* the loop).
//! 3. One pass over the instructions, validating by fields (`BPF_CLASS`, `BPF_MODE`, `BPF_OP`,
//!    `BPF_MISCOP`), with the `invalid` bitmask of uninitialised memory words:
//!    - ld/ldx: modes imm/abs/ind/msh/len are accepted with any size bits; `M[k]` needs
//!      `k < memwords` and the word not invalid on the current path;
//!    - st/stx: `k < memwords`, then the word becomes valid;
//!    - alu: add/sub/mul/or/xor/and/lsh/rsh/neg; div/mod refuse the constant 0 (no shift check);
//!    - jmp: `ja` must land inside the program without wrapping (no backward jumps); the
//!      conditional targets must be inside; every jump ORs `invalid` into its targets' entry and
//!      then clears `invalid` (the same over-approximation as Linux: a `ret` does not clear it);
//!    - ret: any `BPF_RVAL` (a `ret x` before the end is accepted; the interpreter returns 0);
//!    - misc: `cop`/`copx` need a coprocessor table (`bc->copfuncs != NULL`), `cop` needs
//!      `k < nfuncs` (`copx` is checked at run time); every other misc op is accepted.

use super::{field, reject, rule, CheckConfig, Rejection};
use crate::cbpf::{class, misc, mode, op, rval, src, Insn, MEMWORDS};

/// NetBSD's `BPF_MAXINSNS`.
pub const NETBSD_MAXINSNS: usize = 512;
/// NetBSD's `BPF_MAX_MEMWORDS`: the largest external memory store.
pub const MAX_MEMWORDS: usize = 30;

/// The parts of NetBSD's `bpf_ctx_t` that `bpf_validate_ext` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetbsdCtx {
    /// `bc->copfuncs` / `bc->nfuncs`: `None` when no table is installed (`copfuncs == NULL`, or
    /// no context at all as with plain `bpf_validate`), else the number of functions.
    pub cop_funcs: Option<usize>,
    /// `bc->extwords`: words of external memory, 0 for the internal 16-word store.
    pub extwords: usize,
    /// `bc->preinited`: bit k set when external word k is initialised by the caller. Must fit in
    /// `extwords` bits (so 0 without external memory), or `bpf_set_extmem` refuses it.
    pub preinited: u32,
}

impl NetbsdCtx {
    /// The context bpfconf's [`CheckConfig`] describes:
    /// - `cop_funcs == 0` means no table installed; otherwise a table of that many functions.
    /// - `memwords == 16` (or 0, which `bpf_set_extmem` also treats as "no external memory")
    ///   means the internal store, whose words all start uninitialised; any other size means an
    ///   external store of that many words, **all pre-initialised** (the case schema's `extmem`
    ///   gives every word an initial value), so loads are never refused as uninitialised.
    ///
    /// A 16-word external memory cannot be told apart from the internal store through
    /// `CheckConfig` and is checked as the internal one; use [`check_netbsd`] with an explicit
    /// context when that matters.
    pub fn from_config(cfg: &CheckConfig) -> Self {
        let extwords = if cfg.memwords == MEMWORDS {
            0
        } else {
            cfg.memwords
        };
        let preinited = match u32::try_from(extwords) {
            Ok(n) if n < 32 => (1u32 << n) - 1,
            _ => u32::MAX,
        };
        NetbsdCtx {
            cop_funcs: (cfg.cop_funcs > 0).then_some(cfg.cop_funcs),
            extwords,
            preinited,
        }
    }
}

/// Checks a program as NetBSD's kernel `bpf_validate_ext(bc, f, len)` does, after
/// `bpf_set_extmem(bc, extwords, preinited)` (whose `EINVAL` is reported as `extmem_config`).
pub fn check_netbsd(prog: &[Insn], ctx: &NetbsdCtx) -> Result<(), Rejection> {
    // bpf_set_extmem: nwords > BPF_MAX_MEMWORDS || (preinited >> nwords) != 0 -> EINVAL.
    if ctx.extwords > MAX_MEMWORDS || u64::from(ctx.preinited) >> ctx.extwords != 0 {
        return Err(Rejection {
            rule: rule::EXTMEM_CONFIG,
            pc: None,
            message: format!(
                "bpf_set_extmem refuses {} words with preinited mask {:#x} (at most {MAX_MEMWORDS} words, mask within them)",
                ctx.extwords, ctx.preinited
            ),
        });
    }
    let memwords = if ctx.extwords > 0 {
        ctx.extwords
    } else {
        MEMWORDS
    };
    let preinited = if ctx.extwords > 0 { ctx.preinited } else { 0 };

    let len = prog.len();
    if !(1..=NETBSD_MAXINSNS).contains(&len) {
        return Err(Rejection {
            rule: rule::LENGTH,
            pc: None,
            message: format!(
                "program has {len} instructions; NetBSD accepts 1..={NETBSD_MAXINSNS} (BPF_MAXINSNS)"
            ),
        });
    }
    if let Some((pc, last)) = prog.iter().enumerate().next_back() {
        if last.code != class::RET | rval::K && last.code != class::RET | rval::A {
            return Err(reject(
                rule::LAST_NOT_RET,
                pc,
                last,
                "the last instruction must be exactly ret k or ret a",
            ));
        }
    }

    // Per-pc bits that some jump marked invalid on arrival ("mem" in the C code).
    let mut marks = vec![0u32; len];
    let mut invalid: u32 = !preinited;
    let len32 = len as u32; // len <= 512
    let bit = |k: u32| 1u32.checked_shl(k).unwrap_or(0);

    for (i, p) in prog.iter().enumerate() {
        invalid |= marks[i];
        match field::class(p.code) {
            class::LD | class::LDX => match field::mode(p.code) {
                mode::MEM => {
                    if p.k as usize >= memwords {
                        return Err(mem_index(i, p, memwords));
                    }
                    if invalid & bit(p.k) != 0 {
                        return Err(reject(
                            rule::UNINIT_MEM,
                            i,
                            p,
                            format!("M[{}] may be read before it is written", p.k),
                        ));
                    }
                }
                mode::ABS | mode::IND | mode::MSH | mode::IMM | mode::LEN => {}
                _ => return Err(unknown(i, p, "BPF_MODE 0xc0/0xe0 is not a load mode")),
            },
            class::ST | class::STX => {
                if p.k as usize >= memwords {
                    return Err(mem_index(i, p, memwords));
                }
                invalid &= !bit(p.k);
            }
            class::ALU => match field::op(p.code) {
                op::ADD
                | op::SUB
                | op::MUL
                | op::OR
                | op::XOR
                | op::AND
                | op::LSH
                | op::RSH
                | op::NEG => {}
                op::DIV | op::MOD => {
                    if field::src(p.code) == src::K && p.k == 0 {
                        return Err(reject(rule::DIV_BY_ZERO, i, p, "division by constant 0"));
                    }
                }
                _ => return Err(unknown(i, p, "BPF_OP 0xb0..0xf0 is not an ALU operation")),
            },
            class::JMP => {
                let from = i as u32 + 1;
                match field::op(p.code) {
                    op::JA => {
                        let to = from.wrapping_add(p.k);
                        if to >= len32 || to < from {
                            return Err(reject(
                                rule::JUMP_OUT_OF_RANGE,
                                i,
                                p,
                                format!(
                                    "ja target (i + 1 + k) mod 2^32 = {to} is not a forward target inside the program"
                                ),
                            ));
                        }
                        marks[to as usize] |= invalid;
                        invalid = 0;
                    }
                    op::JEQ | op::JGT | op::JGE | op::JSET => {
                        let (t, f) = (from + u32::from(p.jt), from + u32::from(p.jf));
                        if t >= len32 || f >= len32 {
                            return Err(reject(
                                rule::JUMP_OUT_OF_RANGE,
                                i,
                                p,
                                format!("conditional targets {t} / {f} must both be < {len}"),
                            ));
                        }
                        marks[t as usize] |= invalid;
                        marks[f as usize] |= invalid;
                        invalid = 0;
                    }
                    _ => return Err(unknown(i, p, "BPF_OP 0x50..0xf0 is not a jump")),
                }
            }
            class::MISC => {
                let miscop = field::miscop(p.code);
                if miscop == misc::COP || miscop == misc::COPX {
                    let Some(nfuncs) = ctx.cop_funcs else {
                        return Err(reject(
                            rule::COP_NO_TABLE,
                            i,
                            p,
                            "coprocessor call but no coprocessor table is installed",
                        ));
                    };
                    if miscop == misc::COP && p.k as usize >= nfuncs {
                        return Err(reject(
                            rule::COP_OUT_OF_RANGE,
                            i,
                            p,
                            format!("cop #{} but the table has {nfuncs} functions", p.k),
                        ));
                    }
                }
            }
            // BPF_RET: any return value source.
            _ => {}
        }
    }
    Ok(())
}

fn unknown(i: usize, p: &Insn, why: &str) -> Rejection {
    reject(rule::UNKNOWN_OPCODE, i, p, why)
}

fn mem_index(i: usize, p: &Insn, memwords: usize) -> Rejection {
    reject(
        rule::MEM_INDEX,
        i,
        p,
        format!(
            "M[{}] out of range (memory store has {memwords} words)",
            p.k
        ),
    )
}
