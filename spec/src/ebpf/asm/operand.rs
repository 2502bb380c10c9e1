//! Operand parsing for the eBPF assembler: registers, numbers, memory references, jump targets.
//!
//! The number rules are bpf_conformance's (with its range checks): a number is hexadecimal when it
//! carries a `0x` prefix (after an optional sign), decimal otherwise. Errors are plain messages;
//! the caller adds the line.

/// A parsed integer literal: sign, magnitude and radix.
struct Lit {
    neg: bool,
    mag: u128,
    hex: bool,
}

/// Parses `[+-]?(0x[0-9a-fA-F]+|[0-9]+)`; anything else (trailing junk, empty digits, more than
/// 64 bits of magnitude) is `None`.
fn lit(tok: &str) -> Option<Lit> {
    let (neg, rest) = match tok.as_bytes().first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    let (hex, digits) = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        Some(d) => (true, d),
        None => (false, rest),
    };
    let digit_ok = |b: u8| {
        if hex {
            b.is_ascii_hexdigit()
        } else {
            b.is_ascii_digit()
        }
    };
    if digits.is_empty() || digits.len() > 40 || !digits.bytes().all(digit_ok) {
        return None;
    }
    let mag = u128::from_str_radix(digits, if hex { 16 } else { 10 }).ok()?;
    if mag > u64::MAX as u128 {
        return None;
    }
    Some(Lit { neg, mag, hex })
}

fn bad_number(tok: &str) -> String {
    format!("invalid number `{tok}`")
}

/// A register `%r0` … `%r15` (bpf_conformance accepts the fake registers 11–15 so that negative
/// tests can be written; the validator rejects them).
pub(super) fn reg(tok: &str) -> Result<u8, String> {
    let n = tok.strip_prefix("%r").and_then(|d| {
        d.parse::<u8>()
            .ok()
            .filter(|n| *n <= 15 && n.to_string() == d)
    });
    n.ok_or_else(|| format!("invalid register `{tok}`"))
}

/// A 32-bit immediate: hex up to `0xffffffff` (taken as its bit pattern, so `0xffffffff` is −1),
/// a negated hex magnitude up to `0x80000000`, or a decimal in −2³¹ … 2³¹−1.
pub(super) fn imm32(tok: &str) -> Result<i32, String> {
    let l = lit(tok).ok_or_else(|| bad_number(tok))?;
    let out_of_range = || format!("immediate `{tok}` is out of 32-bit range");
    match (l.hex, l.neg) {
        (true, false) if l.mag <= u32::MAX as u128 => Ok(l.mag as u32 as i32),
        (true, true) if l.mag <= 1 << 31 => Ok((l.mag as i64).wrapping_neg() as i32),
        (false, _) => {
            let v = if l.neg {
                -(l.mag as i128)
            } else {
                l.mag as i128
            };
            i32::try_from(v).map_err(|_| out_of_range())
        }
        _ => Err(out_of_range()),
    }
}

/// A 64-bit immediate (`lddw`): hex or decimal up to `u64::MAX`, or a negative decimal (or
/// negated hex) down to −2⁶³, stored in two's complement.
pub(super) fn imm64(tok: &str) -> Result<u64, String> {
    let l = lit(tok).ok_or_else(|| bad_number(tok))?;
    if !l.neg {
        return Ok(l.mag as u64);
    }
    if l.mag <= 1 << 63 {
        Ok((l.mag as u64).wrapping_neg())
    } else {
        Err(format!("immediate `{tok}` is out of 64-bit range"))
    }
}

/// A 16-bit offset: hex up to `0xffff` (its bit pattern), a negated hex magnitude up to
/// `0x8000`, or a decimal in −32768 … 32767.
pub(super) fn off16(tok: &str) -> Result<i16, String> {
    let l = lit(tok).ok_or_else(|| bad_number(tok))?;
    let out_of_range = || format!("offset `{tok}` is out of 16-bit range");
    match (l.hex, l.neg) {
        (true, false) if l.mag <= u16::MAX as u128 => Ok(l.mag as u16 as i16),
        (true, true) if l.mag <= 1 << 15 => Ok((l.mag as i32).wrapping_neg() as i16),
        (false, _) => {
            let v = if l.neg {
                -(l.mag as i128)
            } else {
                l.mag as i128
            };
            i16::try_from(v).map_err(|_| out_of_range())
        }
        _ => Err(out_of_range()),
    }
}

/// A plain unsigned field of `.insn` (opcode, registers): decimal or hex, at most `max`.
pub(super) fn field(tok: &str, what: &str, max: u8) -> Result<u8, String> {
    match lit(tok) {
        Some(l) if !l.neg && l.mag <= max as u128 => Ok(l.mag as u8),
        Some(_) => Err(format!("{what} `{tok}` is out of range 0..={max}")),
        None => Err(bad_number(tok)),
    }
}

/// A memory operand `[%rN]`, `[%rN+off]` or `[%rN-off]`.
pub(super) fn mem(tok: &str) -> Result<(u8, i16), String> {
    let inner = tok
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected a memory operand like `[%r1+8]`, found `{tok}`"))?;
    match inner.find(['+', '-']) {
        Some(i) => Ok((reg(&inner[..i])?, off16(&inner[i..])?)),
        None => Ok((reg(inner)?, 0)),
    }
}

/// A jump target as written.
pub(super) enum Target<'a> {
    /// A signed displacement (`+3`, `-1`), relative to the next slot.
    Rel(i32),
    /// A label, resolved once the whole text is read.
    Label(&'a str),
}

/// A jump target: a signed number (`+N`/`-N`) or a label. Numbers without a sign are labels, as
/// in bpf_conformance. `wide` targets (`ja32`, `call local`) live in `imm` and may use the whole
/// 32-bit range (a bpfconf extension: bpf_conformance limits them to 16 bits); the others must fit
/// the 16-bit `off`.
pub(super) fn target(tok: &str, wide: bool) -> Result<Target<'_>, String> {
    if !(tok.starts_with('+') || tok.starts_with('-')) {
        return Ok(Target::Label(tok));
    }
    if wide {
        imm32(tok).map(Target::Rel)
    } else {
        off16(tok).map(|o| Target::Rel(o as i32))
    }
}
