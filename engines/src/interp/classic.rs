//! The reference classic BPF interpreter for the Linux, BSD (libpcap) and NetBSD dialects.
//!
//! Semantics, per dialect, and where they come from:
//! - **Linux** (`net/core/filter.c`, classic programs converted to eBPF): packet loads are
//!   big-endian; a failed load ends the program with 0. `LD ABS` with k in the ancillary range
//!   reads skb fields (size ignored). `LD IND` computes `X + k` with 32-bit wrap-around and treats
//!   the result as a signed offset. Negative offsets in `[SKF_NET_OFF, 0)` read relative to the
//!   network header, `[SKF_LL_OFF, SKF_NET_OFF)` relative to the MAC header (which must be set).
//!   `ldx msh` uses the same load path. DIV/MOD by X = 0 returns 0; shifts by X use the low
//!   5 bits (32-bit eBPF ALU on x86). `ifidx`/`hatype` without a device end the program
//!   returning the current A (the converted code exits with R0 = A; measured on 6.18).
//! - **BSD** (libpcap 1.10 `bpf_filter`): unsigned offsets with overflow-checked `X + k`;
//!   `ld len` reads the wire length; shifts by X ≥ 32 give 0; shifts by a constant k ≥ 32 (which
//!   the 1.10 validator accepts) are C undefined behaviour that x86 executes as `k & 31`, and we
//!   model that. Opcodes the validator accepts but the interpreter has no case for (RET X,
//!   non-canonical codes) return 0 as libpcap master does (1.10.3 calls abort()).
//! - **NetBSD** (`bpf_filter_ext`, rev 1.70): like BSD for loads; shifts are plain C shifts
//!   (x86: count & 31); RET X has no case and returns 0; BPF_COP/BPF_COPX call the coprocessor
//!   table (index out of range returns 0; X is preserved), and an optional external memory
//!   replaces M[].
//!
//! Programs are decoded once into a [`Prepared`] form (`prepare`): every opcode resolved
//! to its dialect's operation with its operands, jump targets made absolute, statically failing
//! instructions turned into `return 0`; for programs that can only jump forward, tcpdump-style
//! tests fused into single instructions and jumps to `ret #k` made returns (`fuse`).
//! `exec` runs that form with A, X and the pc in locals and M[] on the stack;
//! [`Prepared::run_ret`] (the return value only, no allocation) is what a packet filter calls,
//! [`Prepared::run`] also gives the memory store, and [`run`] prepares and runs once. The
//! step-by-step interpreter this replaced is kept in the tests as the reference the prepared
//! form must match.

mod exec;
mod fuse;
mod nla;
mod prepare;
#[cfg(test)]
mod tests;

pub(crate) use nla::{nla_find_at, nla_find_nested_at};
pub use prepare::Prepared;

use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::ext::{Ext, NegBase};
use bpfconf_spec::cbpf::Insn;
use bpfconf_spec::Dialect;

/// Maximum instructions executed before the run is declared runaway (forward-only jumps make
/// this unreachable for checked programs; it protects against unchecked input).
pub const STEP_LIMIT: usize = 1 << 20;

/// Result of one interpreter run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicResult {
    /// The 32-bit return value.
    pub ret: u32,
    /// The memory store after the run.
    pub mem: Vec<u32>,
}

/// Why the interpreter stopped without a return value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Trap {
    /// The program counter left the program (only possible for unchecked programs).
    #[error("pc {0} is outside the program")]
    PcOutOfRange(usize),
    /// More than [`STEP_LIMIT`] instructions executed.
    #[error("step limit exceeded")]
    StepLimit,
}

/// The pseudo-random state every run starts from (see [`pseudo_random`]).
pub(crate) const RAND_SEED: u32 = 0x1234_5678;

/// A deterministic stand-in for `prandom_u32()` when the case does not fix a value
/// (a SplitMix32-style step over a per-run counter).
fn pseudo_random(seed: &mut u32) -> u32 {
    *seed = seed.wrapping_add(0x9e37_79b9);
    let mut z = *seed;
    z = (z ^ (z >> 16)).wrapping_mul(0x85eb_ca6b);
    z = (z ^ (z >> 13)).wrapping_mul(0xc2b2_ae35);
    z ^ (z >> 16)
}

/// `SKF_AD_RANDOM`: the case's fixed value, or the next [`pseudo_random`] number of the run.
pub(crate) fn rand_value(ctx: &Ctx, state: &mut u32) -> u32 {
    match ctx.rand {
        Some(v) => v,
        None => pseudo_random(state),
    }
}

/// What `ld len` / `ldx len` load: the packet length on Linux, the wire length on BSD and NetBSD.
pub(crate) fn len_value(dialect: Dialect, pkt_len: usize, ctx: &Ctx) -> u32 {
    match dialect {
        Dialect::Linux => pkt_len as u32,
        Dialect::Bsd | Dialect::Netbsd => ctx.wirelen_for(pkt_len),
    }
}

/// A Linux ancillary load that reads only the skb and the packet length (every extension but
/// `xor_x`, `rand`, `nla` and `nlan`, which depend on A, X, the run or the packet bytes and
/// give 0 here). `None` means the program ends, returning the current A (`ifidx` and
/// `hatype` without a device).
pub(crate) fn skb_field(ext: Ext, pkt_len: usize, c: &Ctx) -> Option<u32> {
    Some(match ext {
        Ext::Len => pkt_len as u32,
        Ext::Proto => c.protocol as u32,
        Ext::Type => c.pkt_type as u32,
        Ext::Ifidx => c.dev?.ifindex,
        Ext::Hatype => c.dev?.hatype as u32,
        Ext::Mark => c.mark,
        Ext::Queue => c.queue_mapping as u32,
        Ext::Rxhash => c.rxhash,
        Ext::Cpu => c.cpu,
        Ext::VlanTci => {
            if c.vlan_present {
                c.vlan_tci as u32
            } else {
                0
            }
        }
        Ext::VlanPr => c.vlan_present as u32,
        Ext::VlanTpid => {
            if c.vlan_present {
                c.vlan_tpid as u32
            } else {
                0
            }
        }
        Ext::Poff => c.poff,
        Ext::XorX | Ext::Rand | Ext::Nla | Ext::Nlan => 0,
    })
}

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32)
}

/// Linux packet load through `bpf_skb_load_helper_*`: non-negative offsets index the packet,
/// negative ones go through the network/MAC header bases.
pub(crate) fn load_linux(pkt: &[u8], ctx: &Ctx, off: i32, size: u32) -> Option<u32> {
    let start: u64 = if off >= 0 {
        off as u64
    } else {
        let (base, rel) = NegBase::classify(off)?;
        let hdr = match base {
            NegBase::Net => ctx.network_header?,
            NegBase::Ll => ctx.mac_header?,
        };
        hdr as u64 + rel as u64
    };
    let end = start + size as u64;
    if end > pkt.len() as u64 {
        return None;
    }
    Some(be(&pkt[start as usize..end as usize]))
}

/// NetBSD `BPF_COP`/`BPF_COPX`: calls coprocessor function `idx` of the context's table on A,
/// the packet and the memory store; `None` (the program returns 0) when `idx` is out of range.
pub(crate) fn cop_call(ctx: &Ctx, idx: u32, a: u32, pkt: &[u8], mem: &mut [u32]) -> Option<u32> {
    let f = ctx.cop.get(idx as usize)?;
    let wirelen = ctx.wirelen_for(pkt.len());
    Some(f.call(a, pkt, wirelen, mem, ctx.cop.len()))
}

/// The memory store a run starts with: NetBSD's external memory when the context has one,
/// otherwise 16 zero words.
pub(crate) fn initial_mem(dialect: Dialect, ctx: &Ctx) -> &[u32] {
    const ZEROS: [u32; bpfconf_spec::cbpf::MEMWORDS] = [0; bpfconf_spec::cbpf::MEMWORDS];
    match (&ctx.extmem, dialect) {
        (Some(words), Dialect::Netbsd) => words,
        _ => &ZEROS,
    }
}

/// Runs a classic program under a dialect's semantics. The program should already have passed
/// the dialect's checker; unchecked programs are still run safely (bad jumps trap). This
/// prepares the program for one run; to run it many times, keep a [`Prepared`].
pub fn run(dialect: Dialect, prog: &[Insn], pkt: &[u8], ctx: &Ctx) -> Result<ClassicResult, Trap> {
    Prepared::new(dialect, prog).run(pkt, ctx)
}
