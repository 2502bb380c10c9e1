//! BSD: libpcap's userland validator.
//!
//! [`check`] mirrors libpcap 1.10.3 `bpf_filter.c` `pcap_validate_filter` (exported as
//! `bpf_validate`), the version Debian 12 ships; it was read in Debian's source package and its
//! verdicts were confirmed against the installed `libpcap.so.0.8`. It validates by *fields*
//! (`BPF_CLASS`, `BPF_MODE`, `BPF_OP`), not by exact opcode, so it accepts codes its own
//! `bpf_filter()` does not implement (`ret x`, `ld #k` with a size, COP, bits above the low
//! byte…), for which 1.10.3's interpreter calls `abort()`. It has no upper length limit, no shift
//! check and no uninitialised-memory tracking, and it accepts backward `ja` (the offset is added
//! in unsigned 32-bit arithmetic and only the wrapped target is range-checked).
//!
//! [`check_libpcap_master`] mirrors the newer `pcapint_validate_filter` (the-tcpdump-group/libpcap
//! master): an exact-opcode list (`pcapint_valid_insn`) that also refuses constant shifts >= 32,
//! a 3,060,000-instruction limit and a refusal of `ja -1`.

use super::{field, reject, rule, Rejection};
use crate::cbpf::{class, misc, mode, op, rval, size, src, Insn, MEMWORDS};

/// Mirrors libpcap 1.10.3 `pcap_validate_filter`.
pub(super) fn check(prog: &[Insn]) -> Result<(), Rejection> {
    // `int len`: `len < 1` is the only length check; a longer slice cannot even be passed.
    let Some(len) = u32::try_from(prog.len())
        .ok()
        .filter(|&n| n >= 1 && n <= i32::MAX as u32)
    else {
        return Err(length_rejection(
            prog.len(),
            "libpcap 1.10.3 accepts 1..=INT_MAX",
        ));
    };
    for (i, p) in prog.iter().enumerate() {
        match field::class(p.code) {
            class::LD | class::LDX => match field::mode(p.code) {
                mode::IMM | mode::ABS | mode::IND | mode::MSH | mode::LEN => {}
                mode::MEM => mem_index(i, p, MEMWORDS)?,
                _ => return Err(unknown(i, p, "BPF_MODE 0xc0/0xe0 is not a load mode")),
            },
            class::ST | class::STX => mem_index(i, p, MEMWORDS)?,
            class::ALU => match field::op(p.code) {
                op::ADD
                | op::SUB
                | op::MUL
                | op::OR
                | op::AND
                | op::XOR
                | op::LSH
                | op::RSH
                | op::NEG => {}
                op::DIV | op::MOD => div_by_zero(i, p)?,
                _ => return Err(unknown(i, p, "BPF_OP 0xb0..0xf0 is not an ALU operation")),
            },
            class::JMP => {
                let from = i as u32 + 1;
                match field::op(p.code) {
                    op::JA => {
                        if from.wrapping_add(p.k) >= len {
                            return Err(ja_range(i, p));
                        }
                    }
                    op::JEQ | op::JGT | op::JGE | op::JSET => cond_range(i, p, len)?,
                    _ => return Err(unknown(i, p, "BPF_OP 0x50..0xf0 is not a jump")),
                }
            }
            // BPF_RET and BPF_MISC: anything goes.
            _ => {}
        }
    }
    last_ret_class(prog)
}

/// Mirrors libpcap master `pcapint_validate_filter` (with `pcapint_valid_insn`).
pub fn check_libpcap_master(prog: &[Insn]) -> Result<(), Rejection> {
    /// libpcap's own `BPF_MAXINSNS` for the userland interpreter.
    const MAXINSNS: u32 = 3_060_000;
    let Some(len) = u32::try_from(prog.len())
        .ok()
        .filter(|&n| (1..=MAXINSNS).contains(&n))
    else {
        return Err(length_rejection(
            prog.len(),
            "libpcap master accepts 1..=3060000",
        ));
    };
    for (i, p) in prog.iter().enumerate() {
        master_valid_insn(i, p)?;
        if field::class(p.code) == class::JMP {
            let from = i as u32 + 1;
            match field::op(p.code) {
                op::JA => {
                    if from.wrapping_add(p.k) >= len {
                        return Err(ja_range(i, p));
                    }
                    if p.k as i32 == -1 {
                        return Err(reject(
                            rule::JUMP_SELF_LOOP,
                            i,
                            p,
                            "ja -1 jumps to itself (an infinite loop)",
                        ));
                    }
                }
                _ => cond_range(i, p, len)?,
            }
        }
    }
    last_ret_class(prog)
}

/// `pcapint_valid_insn`: the exact opcodes of libpcap's interpreter, with k checks for M[]
/// indices, constant division/modulo and constant shifts.
fn master_valid_insn(i: usize, p: &Insn) -> Result<(), Rejection> {
    let c = p.code;
    let alu = |o: u16, s: u16| class::ALU | o | s;
    let jmp = |o: u16, s: u16| class::JMP | o | s;
    let plain = [
        class::RET | rval::K,
        class::RET | rval::A,
        class::LD | size::W | mode::ABS,
        class::LD | size::H | mode::ABS,
        class::LD | size::B | mode::ABS,
        class::LD | size::W | mode::LEN,
        class::LDX | size::W | mode::LEN,
        class::LD | size::W | mode::IND,
        class::LD | size::H | mode::IND,
        class::LD | size::B | mode::IND,
        class::LDX | mode::MSH | size::B,
        class::LD | mode::IMM,
        class::LDX | mode::IMM,
        jmp(op::JA, 0),
        class::ALU | op::NEG,
        class::MISC | misc::TAX,
        class::MISC | misc::TXA,
    ];
    if plain.contains(&c) {
        return Ok(());
    }
    for s in [src::K, src::X] {
        for o in [op::JGT, op::JGE, op::JEQ, op::JSET] {
            if c == jmp(o, s) {
                return Ok(());
            }
        }
        for o in [op::ADD, op::SUB, op::MUL, op::AND, op::OR, op::XOR] {
            if c == alu(o, s) {
                return Ok(());
            }
        }
    }
    if c == alu(op::DIV, src::X) || c == alu(op::MOD, src::X) {
        return Ok(());
    }
    if c == alu(op::LSH, src::X) || c == alu(op::RSH, src::X) {
        return Ok(());
    }
    if c == alu(op::DIV, src::K) || c == alu(op::MOD, src::K) {
        return div_by_zero(i, p);
    }
    if c == alu(op::LSH, src::K) || c == alu(op::RSH, src::K) {
        if p.k >= 32 {
            return Err(reject(
                rule::SHIFT_TOO_LARGE,
                i,
                p,
                format!("shift by constant {} (must be < 32)", p.k),
            ));
        }
        return Ok(());
    }
    if [
        class::LD | mode::MEM,
        class::LDX | mode::MEM,
        class::ST,
        class::STX,
    ]
    .contains(&c)
    {
        return mem_index(i, p, MEMWORDS);
    }
    Err(unknown(i, p, "opcode not in pcapint_valid_insn's list"))
}

fn length_rejection(n: usize, limits: &str) -> Rejection {
    Rejection {
        rule: rule::LENGTH,
        pc: None,
        message: format!("program has {n} instructions; {limits}"),
    }
}

fn unknown(i: usize, p: &Insn, why: &str) -> Rejection {
    reject(rule::UNKNOWN_OPCODE, i, p, why)
}

fn mem_index(i: usize, p: &Insn, words: usize) -> Result<(), Rejection> {
    if p.k as usize >= words {
        return Err(reject(
            rule::MEM_INDEX,
            i,
            p,
            format!("M[{}] out of range (BPF_MEMWORDS = {words})", p.k),
        ));
    }
    Ok(())
}

fn div_by_zero(i: usize, p: &Insn) -> Result<(), Rejection> {
    if field::src(p.code) == src::K && p.k == 0 {
        return Err(reject(rule::DIV_BY_ZERO, i, p, "division by constant 0"));
    }
    Ok(())
}

fn ja_range(i: usize, p: &Insn) -> Rejection {
    reject(
        rule::JUMP_OUT_OF_RANGE,
        i,
        p,
        format!(
            "ja target (i + 1 + k) mod 2^32 = {} is not inside the program",
            (i as u32).wrapping_add(1).wrapping_add(p.k)
        ),
    )
}

fn cond_range(i: usize, p: &Insn, len: u32) -> Result<(), Rejection> {
    let from = i as u64 + 1;
    let (t, f) = (from + u64::from(p.jt), from + u64::from(p.jf));
    if t >= u64::from(len) || f >= u64::from(len) {
        return Err(reject(
            rule::JUMP_OUT_OF_RANGE,
            i,
            p,
            format!("conditional targets {t} / {f} must both be < {len}"),
        ));
    }
    Ok(())
}

/// `BPF_CLASS(f[len - 1].code) == BPF_RET`: any return, including `ret x`.
fn last_ret_class(prog: &[Insn]) -> Result<(), Rejection> {
    match prog.iter().enumerate().next_back() {
        Some((pc, last)) if field::class(last.code) != class::RET => Err(reject(
            rule::LAST_NOT_RET,
            pc,
            last,
            "the last instruction must be of class BPF_RET",
        )),
        _ => Ok(()),
    }
}
