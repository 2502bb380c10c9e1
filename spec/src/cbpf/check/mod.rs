//! The classic checker per dialect: Linux `bpf_check_classic` (plus the rejections of
//! `bpf_convert_filter`), libpcap 1.10.3 `bpf_validate` and NetBSD's `bpf_validate_ext`.
//!
//! Each dialect lives in its own module and mirrors one validator function rule for rule, in the
//! same order, so that the *first* reason found is the one the real code would stop at:
//! - Linux — `net/core/filter.c`: `bpf_check_basics_ok`, `bpf_check_classic`
//!   (with `chk_code_allowed` and `bpf_anc_helper` from `include/linux/filter.h`),
//!   `check_load_and_stores`, and the jump-offset limit of `bpf_convert_filter`.
//! - BSD — libpcap 1.10.3 `bpf_filter.c` `pcap_validate_filter` (exported as `bpf_validate`),
//!   the version Debian 12 ships; [`check_libpcap_master`] models the newer
//!   `pcapint_validate_filter`.
//! - NetBSD — `sys/net/bpf_filter.c` (rev. 1.70, the BPF_COP/external-memory version)
//!   `bpf_validate_ext` as compiled into the kernel (`_KERNEL`), with the context described by
//!   [`NetbsdCtx`]; [`check`] derives that context from [`CheckConfig`] (see [`NetbsdCtx::from_config`]).
//!
//! Only *whether* a program is rejected is compared against real implementations; the rule name,
//! pc and message explain why.

mod bsd;
mod linux;
mod netbsd;
#[cfg(test)]
mod tests;

pub use bsd::check_libpcap_master;
pub use linux::linux_ebpf_len;
pub use netbsd::{check_netbsd, NetbsdCtx};

use super::{Insn, Op};
use crate::Dialect;

/// What the checker needs besides the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckConfig {
    /// The dialect whose rules apply.
    pub dialect: Dialect,
    /// NetBSD: number of functions in the coprocessor table (0 = none installed).
    pub cop_funcs: usize,
    /// Words in the memory store (16, or the NetBSD external memory size).
    pub memwords: usize,
}

/// A checker rejection: the rule, the offending instruction and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {message}")]
pub struct Rejection {
    /// Stable rule name (e.g. `div_by_zero`), matched against case expectations.
    pub rule: &'static str,
    /// The offending instruction index, if any.
    pub pc: Option<usize>,
    /// Human-readable explanation.
    pub message: String,
}

/// The stable rule names, one constant per rule (see [`RULES`] for descriptions).
pub mod rule {
    /// Program length outside the dialect's bounds.
    pub const LENGTH: &str = "length";
    /// Opcode the dialect's validator does not accept.
    pub const UNKNOWN_OPCODE: &str = "unknown_opcode";
    /// Division or modulo by the constant 0.
    pub const DIV_BY_ZERO: &str = "div_by_zero";
    /// Shift by a constant of 32 or more.
    pub const SHIFT_TOO_LARGE: &str = "shift_too_large";
    /// Scratch memory index beyond the memory store.
    pub const MEM_INDEX: &str = "mem_index";
    /// Jump whose target lies outside the program.
    pub const JUMP_OUT_OF_RANGE: &str = "jump_out_of_range";
    /// `ja` that jumps to itself (libpcap master only).
    pub const JUMP_SELF_LOOP: &str = "jump_self_loop";
    /// The last instruction is not an accepted return.
    pub const LAST_NOT_RET: &str = "last_not_ret";
    /// Linux ancillary load from an unknown `SKF_AD_*` offset.
    pub const UNKNOWN_ANCILLARY: &str = "unknown_ancillary";
    /// Scratch memory read before it is written on some path.
    pub const UNINIT_MEM: &str = "uninit_mem";
    /// Linux: a jump does not fit the 16-bit offset of the converted eBPF program.
    pub const EBPF_JUMP_RANGE: &str = "ebpf_jump_range";
    /// NetBSD coprocessor call without a coprocessor table.
    pub const COP_NO_TABLE: &str = "cop_no_table";
    /// NetBSD `BPF_COP` with a function index beyond the table.
    pub const COP_OUT_OF_RANGE: &str = "cop_out_of_range";
    /// NetBSD external memory configuration that `bpf_set_extmem` refuses.
    pub const EXTMEM_CONFIG: &str = "extmem_config";
}

/// Every rule name with a one-line description, in no particular order.
pub const RULES: &[(&str, &str)] = &[
    (
        rule::LENGTH,
        "program length outside the dialect's bounds (linux 1..=4096, netbsd 1..=512, bsd >= 1)",
    ),
    (
        rule::UNKNOWN_OPCODE,
        "opcode not accepted (linux: chk_code_allowed's 49 codes; bsd/netbsd: class/mode/op switch)",
    ),
    (rule::DIV_BY_ZERO, "BPF_DIV or BPF_MOD by the constant k = 0"),
    (
        rule::SHIFT_TOO_LARGE,
        "BPF_LSH or BPF_RSH by a constant k >= 32 (linux, libpcap master)",
    ),
    (
        rule::MEM_INDEX,
        "ld/ldx/st/stx M[k] with k beyond the memory store (16 words, or the netbsd extmem size)",
    ),
    (
        rule::JUMP_OUT_OF_RANGE,
        "jump target at or past the end of the program (or wrapping backwards where refused)",
    ),
    (rule::JUMP_SELF_LOOP, "ja -1, a jump to itself (libpcap master)"),
    (
        rule::LAST_NOT_RET,
        "last instruction is not a return (linux/netbsd: ret k or ret a; bsd: any ret class)",
    ),
    (
        rule::UNKNOWN_ANCILLARY,
        "linux ld/ldh/ldb [k] with k >= SKF_AD_OFF that is not a known SKF_AD_* offset",
    ),
    (
        rule::UNINIT_MEM,
        "M[k] may be read before written (linux check_load_and_stores, netbsd invalid mask)",
    ),
    (
        rule::EBPF_JUMP_RANGE,
        "linux bpf_convert_filter: a jump's eBPF offset does not fit in 16 bits",
    ),
    (
        rule::COP_NO_TABLE,
        "netbsd cop/copx but no coprocessor table is installed",
    ),
    (
        rule::COP_OUT_OF_RANGE,
        "netbsd cop #k with k >= the number of coprocessor functions",
    ),
    (
        rule::EXTMEM_CONFIG,
        "netbsd external memory refused by bpf_set_extmem (more than 30 words, bad preinited mask)",
    ),
];

/// Checks a program under a dialect's rules.
///
/// - Linux: `bpf_check_classic` and the jump-offset limit of `bpf_convert_filter` (x86-64 model);
///   `cfg.cop_funcs` and `cfg.memwords` are ignored (16 words, no coprocessor).
/// - BSD: libpcap 1.10.3 `bpf_validate`; `cfg` besides the dialect is ignored.
/// - NetBSD: kernel `bpf_validate_ext` with the context of [`NetbsdCtx::from_config`].
pub fn check(prog: &[Insn], cfg: &CheckConfig) -> Result<(), Rejection> {
    match cfg.dialect {
        Dialect::Linux => linux::check(prog),
        Dialect::Bsd => bsd::check(prog),
        Dialect::Netbsd => check_netbsd(prog, &NetbsdCtx::from_config(cfg)),
    }
}

/// Builds a rejection naming the instruction at `pc`.
fn reject(rule: &'static str, pc: usize, insn: &Insn, why: impl std::fmt::Display) -> Rejection {
    Rejection {
        rule,
        pc: Some(pc),
        message: format!("insn {pc} ({}): {why}", describe(insn)),
    }
}

/// Describes an instruction by its opcode name and raw fields, without depending on the
/// disassembler: `ld_mem code=0x0060 jt=0 jf=0 k=0x11`.
fn describe(insn: &Insn) -> String {
    let name = Op::decode(insn.code).map_or_else(|| "unknown".to_string(), Op::name);
    format!(
        "{name} code={:#06x} jt={} jf={} k={:#x}",
        insn.code, insn.jt, insn.jf, insn.k
    )
}

/// Classic BPF field extractors (`BPF_CLASS`, `BPF_MODE`, …) as in `pcap/bpf.h` and NetBSD's
/// `net/bpf.h`; they look at the low byte only, exactly like the C macros applied to a `u16`.
mod field {
    /// `BPF_CLASS(code)`.
    pub fn class(code: u16) -> u16 {
        code & 0x07
    }
    /// `BPF_MODE(code)`.
    pub fn mode(code: u16) -> u16 {
        code & 0xe0
    }
    /// `BPF_OP(code)`.
    pub fn op(code: u16) -> u16 {
        code & 0xf0
    }
    /// `BPF_SRC(code)`.
    pub fn src(code: u16) -> u16 {
        code & 0x08
    }
    /// `BPF_MISCOP(code)` (NetBSD).
    pub fn miscop(code: u16) -> u16 {
        code & 0xf8
    }
}
