//! Arithmetic, byte-swap and jump-condition semantics (RFC 9669 §4.1–§4.3) as pure functions.
//!
//! - `ALU` (32-bit) operations work on the low 32 bits of their operands and the result is
//!   zero-extended into the 64-bit register; `imm` is the low 32 bits of the immediate.
//!   `ALU64` operations use the immediate sign-extended to 64 bits.
//! - Division by zero gives 0; modulo by zero leaves `dst` unchanged (for `ALU` that means its
//!   low 32 bits, zero-extended). Signed division overflow (`INT_MIN / -1`) wraps to `INT_MIN`
//!   and `INT_MIN % -1` is 0. Signed modulo truncates toward zero (`-13 % 3 == -1`,
//!   `13 % -3 == 1`), as RFC 9669 §4.1 specifies.
//! - Shift amounts are masked to 5 bits (`ALU`) or 6 bits (`ALU64`).
//! - `MOVSX` sign-extends the low 8/16 bits (`ALU`, into 32 bits then zero-extended) or
//!   8/16/32 bits (`ALU64`) of `src`.
//! - Byte swaps model a little-endian host, as bpf_conformance's results assume: `le16/32/64`
//!   truncate to the width (zero-extending), `be16/32/64` and `bswap16/32/64` reverse the bytes of
//!   the low 16/32/64 bits and zero-extend.
//! - `JMP32` conditions compare the low 32 bits only (signed comparisons as `i32`).
//!
//! The kernel's `___bpf_prog_run` (kernel/bpf/core.c) agrees on all of these once the verifier's
//! rewrites for division by zero and signed overflow (`do_misc_fixups`) are applied.

use bpfconf_spec::ebpf::{alu, jmp};

/// A 64-bit (`ALU64`) operation: `op` is the operation (`code & 0xf0`), `variant` the row's `off`
/// selector (1 = signed div/mod, 8/16/32 = `MOVSX` width, else 0), `src` the register value or
/// sign-extended immediate. `None` for an operation code that is not an ALU operation.
pub fn alu64(op: u8, variant: i16, dst: u64, src: u64) -> Option<u64> {
    let signed = variant == 1;
    Some(match op {
        alu::ADD => dst.wrapping_add(src),
        alu::SUB => dst.wrapping_sub(src),
        alu::MUL => dst.wrapping_mul(src),
        alu::DIV if signed => sdiv64(dst as i64, src as i64) as u64,
        alu::DIV => dst.checked_div(src).unwrap_or(0),
        alu::OR => dst | src,
        alu::AND => dst & src,
        alu::LSH => dst << (src & 63),
        alu::RSH => dst >> (src & 63),
        alu::NEG => dst.wrapping_neg(),
        alu::MOD if signed => smod64(dst as i64, src as i64) as u64,
        alu::MOD => dst.checked_rem(src).unwrap_or(dst),
        alu::XOR => dst ^ src,
        alu::MOV => match variant {
            8 => src as i8 as i64 as u64,
            16 => src as i16 as i64 as u64,
            32 => src as i32 as i64 as u64,
            _ => src,
        },
        alu::ARSH => ((dst as i64) >> (src & 63)) as u64,
        _ => return None,
    })
}

/// A 32-bit (`ALU`) operation on the low halves; the caller zero-extends the result. Arguments
/// as for [`alu64`] (`MOVSX` widths 8 and 16 only).
pub fn alu32(op: u8, variant: i16, dst: u32, src: u32) -> Option<u32> {
    let signed = variant == 1;
    Some(match op {
        alu::ADD => dst.wrapping_add(src),
        alu::SUB => dst.wrapping_sub(src),
        alu::MUL => dst.wrapping_mul(src),
        alu::DIV if signed => sdiv32(dst as i32, src as i32) as u32,
        alu::DIV => dst.checked_div(src).unwrap_or(0),
        alu::OR => dst | src,
        alu::AND => dst & src,
        alu::LSH => dst << (src & 31),
        alu::RSH => dst >> (src & 31),
        alu::NEG => dst.wrapping_neg(),
        alu::MOD if signed => smod32(dst as i32, src as i32) as u32,
        alu::MOD => dst.checked_rem(src).unwrap_or(dst),
        alu::XOR => dst ^ src,
        alu::MOV => match variant {
            8 => src as i8 as i32 as u32,
            16 => src as i16 as i32 as u32,
            _ => src,
        },
        alu::ARSH => ((dst as i32) >> (src & 31)) as u32,
        _ => return None,
    })
}

fn sdiv64(a: i64, b: i64) -> i64 {
    if b == 0 {
        0
    } else {
        a.wrapping_div(b)
    }
}

fn smod64(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        a.wrapping_rem(b)
    }
}

fn sdiv32(a: i32, b: i32) -> i32 {
    if b == 0 {
        0
    } else {
        a.wrapping_div(b)
    }
}

fn smod32(a: i32, b: i32) -> i32 {
    if b == 0 {
        a
    } else {
        a.wrapping_rem(b)
    }
}

/// How an `END` instruction converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// `le16/32/64` (`ALU`, `TO_LE`): identity on a little-endian host, truncated to the width.
    ToLe,
    /// `be16/32/64` (`ALU`, `TO_BE`) and `bswap16/32/64` (`ALU64`): byte reversal of the width.
    Reverse,
}

/// An `END` instruction of width 16, 32 or 64 on `dst`; `None` for another width.
pub fn end(swap: Swap, width: i32, dst: u64) -> Option<u64> {
    Some(match (swap, width) {
        (Swap::ToLe, 16) => dst as u16 as u64,
        (Swap::ToLe, 32) => dst as u32 as u64,
        (Swap::ToLe, 64) => dst,
        (Swap::Reverse, 16) => (dst as u16).swap_bytes() as u64,
        (Swap::Reverse, 32) => (dst as u32).swap_bytes() as u64,
        (Swap::Reverse, 64) => dst.swap_bytes(),
        _ => return None,
    })
}

/// Evaluates a conditional jump `op` (`code & 0xf0`) with unsigned and signed views of both
/// operands; `None` for an operation code that is not a condition.
fn cond(op: u8, ua: u64, ub: u64, sa: i64, sb: i64) -> Option<bool> {
    Some(match op {
        jmp::JEQ => ua == ub,
        jmp::JGT => ua > ub,
        jmp::JGE => ua >= ub,
        jmp::JSET => ua & ub != 0,
        jmp::JNE => ua != ub,
        jmp::JSGT => sa > sb,
        jmp::JSGE => sa >= sb,
        jmp::JLT => ua < ub,
        jmp::JLE => ua <= ub,
        jmp::JSLT => sa < sb,
        jmp::JSLE => sa <= sb,
        _ => return None,
    })
}

/// A `JMP` condition on full 64-bit values (`b`: register or sign-extended immediate).
pub fn jump64(op: u8, a: u64, b: u64) -> Option<bool> {
    cond(op, a, b, a as i64, b as i64)
}

/// A `JMP32` condition on the low 32 bits of both operands.
pub fn jump32(op: u8, a: u64, b: u64) -> Option<bool> {
    let (a, b) = (a as u32, b as u32);
    cond(op, a as u64, b as u64, a as i32 as i64, b as i32 as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_and_modulo_edges() {
        assert_eq!(alu64(alu::DIV, 0, 7, 0), Some(0));
        assert_eq!(alu64(alu::MOD, 0, 7, 0), Some(7));
        assert_eq!(
            alu64(alu::DIV, 1, i64::MIN as u64, u64::MAX),
            Some(i64::MIN as u64)
        );
        assert_eq!(alu64(alu::MOD, 1, i64::MIN as u64, u64::MAX), Some(0));
        assert_eq!(alu64(alu::MOD, 1, -13i64 as u64, 3), Some(-1i64 as u64));
        assert_eq!(alu64(alu::MOD, 1, 13, -3i64 as u64), Some(1));
        assert_eq!(alu64(alu::DIV, 1, -7i64 as u64, 2), Some(-3i64 as u64));
        assert_eq!(
            alu32(alu::DIV, 1, i32::MIN as u32, u32::MAX),
            Some(i32::MIN as u32)
        );
        assert_eq!(alu32(alu::MOD, 1, i32::MIN as u32, u32::MAX), Some(0));
        assert_eq!(alu32(alu::MOD, 0, 9, 0), Some(9));
        assert_eq!(alu32(alu::DIV, 1, 5, 0), Some(0));
        assert_eq!(alu32(alu::MOD, 1, -5i32 as u32, 0), Some(-5i32 as u32));
    }

    #[test]
    fn shifts_mask_and_swaps_truncate() {
        assert_eq!(alu64(alu::LSH, 0, 1, 64), Some(1));
        assert_eq!(alu64(alu::LSH, 0, 1, 63), Some(1 << 63));
        assert_eq!(alu32(alu::LSH, 0, 1, 32), Some(1));
        assert_eq!(alu64(alu::ARSH, 0, 1 << 63, 63), Some(u64::MAX));
        assert_eq!(alu32(alu::ARSH, 0, 0x8000_0000, 31), Some(u32::MAX));
        assert_eq!(end(Swap::ToLe, 16, 0x1122_3344_5566_7788), Some(0x7788));
        assert_eq!(end(Swap::Reverse, 16, 0x1122_3344_5566_7788), Some(0x8877));
        assert_eq!(
            end(Swap::Reverse, 32, 0x1122_3344_5566_7788),
            Some(0x8877_6655)
        );
        assert_eq!(end(Swap::Reverse, 8, 0), None);
        assert_eq!(alu64(alu::END, 0, 0, 0), None);
    }

    #[test]
    fn jump_conditions() {
        assert_eq!(jump64(jmp::JSGT, 1, u64::MAX), Some(true));
        assert_eq!(jump64(jmp::JGT, 1, u64::MAX), Some(false));
        assert_eq!(jump32(jmp::JEQ, 0xffff_ffff_0000_0001, 1), Some(true));
        assert_eq!(jump32(jmp::JSLT, 0x8000_0000, 0), Some(true));
        assert_eq!(jump64(jmp::JSET, 6, 1), Some(false));
        assert_eq!(jump64(jmp::CALL, 0, 0), None);
    }
}
