//! A generator of verifier-friendly random eBPF programs.
//!
//! Shape: a prologue gives R0–R9 and eight 8-byte stack slots random values (so every register
//! and every slot a later instruction reads is initialised on every path), then a body of ALU
//! (32/64-bit, K and X, signed div/mod, MOVSX, byte swaps), stack loads/stores/atomics and
//! forward conditional jumps (JMP and JMP32) inside the body, then `exit`. Constants are
//! edge-biased (0, ±1, INT_MIN/INT_MAX of both widths, 31/32/33, 63/64). R10 is only used as the
//! stack base, never as an ALU operand, so no pointer ever leaks into a scalar.

use arbitrary::{Result, Unstructured};
use bpfconf_spec::ebpf::{alu, atomic, class, jmp, mode, size, source, Insn};

/// Stack slots the generator initialises and uses: [r10-8], [r10-16], … [r10-64].
const SLOTS: i16 = 8;

fn edge_imm(u: &mut Unstructured) -> Result<i32> {
    const EDGES: [i32; 14] = [
        0,
        1,
        -1,
        2,
        i32::MIN,
        i32::MAX,
        31,
        32,
        33,
        63,
        64,
        0xff,
        0xffff,
        -0x8000,
    ];
    Ok(if u.ratio(1, 2)? {
        *u.choose(&EDGES)?
    } else {
        u.arbitrary()?
    })
}

fn edge_imm64(u: &mut Unstructured) -> Result<u64> {
    const EDGES: [u64; 8] = [
        0,
        1,
        u64::MAX,
        i64::MIN as u64,
        i64::MAX as u64,
        0xffff_ffff,
        0x8000_0000,
        0x1_0000_0000,
    ];
    Ok(if u.ratio(1, 2)? {
        *u.choose(&EDGES)?
    } else {
        u.arbitrary()?
    })
}

fn reg(u: &mut Unstructured) -> Result<u8> {
    u.int_in_range(0..=9)
}

fn lddw(dst: u8, v: u64) -> [Insn; 2] {
    [
        Insn::new(class::LD | mode::IMM | size::DW, dst, 0, 0, v as u32 as i32),
        Insn::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

fn slot(u: &mut Unstructured) -> Result<i16> {
    Ok(-8 * u.int_in_range(1..=SLOTS)?)
}

/// One body instruction (or a few slots for `lddw`), never a jump.
fn straight(u: &mut Unstructured, out: &mut Vec<Insn>) -> Result<()> {
    let dst = reg(u)?;
    match u.int_in_range(0..=9)? {
        0..=3 => {
            // ALU / ALU64 with K or X.
            let cls = if u.arbitrary()? {
                class::ALU64
            } else {
                class::ALU
            };
            let ops = [
                alu::ADD,
                alu::SUB,
                alu::MUL,
                alu::DIV,
                alu::OR,
                alu::AND,
                alu::LSH,
                alu::RSH,
                alu::MOD,
                alu::XOR,
                alu::MOV,
                alu::ARSH,
            ];
            let op = *u.choose(&ops)?;
            let signed = matches!(op, alu::DIV | alu::MOD) && u.ratio(1, 3)?;
            let off = i16::from(signed);
            if u.arbitrary()? {
                out.push(Insn::new(cls | op | source::X, dst, reg(u)?, off, 0));
            } else {
                let mut imm = edge_imm(u)?;
                if matches!(op, alu::LSH | alu::RSH | alu::ARSH) {
                    // The verifier refuses constant shifts outside the width.
                    let width = if cls == class::ALU64 { 64 } else { 32 };
                    imm = imm.rem_euclid(width);
                }
                if matches!(op, alu::DIV | alu::MOD) && imm == 0 {
                    // The verifier refuses division by a zero constant.
                    imm = 3;
                }
                out.push(Insn::new(cls | op | source::K, dst, 0, off, imm));
            }
        }
        4 => {
            // NEG, MOVSX, byte swaps.
            match u.int_in_range(0..=3)? {
                0 => out.push(Insn::new(
                    *u.choose(&[class::ALU, class::ALU64])? | alu::NEG,
                    dst,
                    0,
                    0,
                    0,
                )),
                1 => {
                    let cls = *u.choose(&[class::ALU, class::ALU64])?;
                    let widths: &[i16] = if cls == class::ALU64 {
                        &[8, 16, 32]
                    } else {
                        &[8, 16]
                    };
                    out.push(Insn::new(
                        cls | alu::MOV | source::X,
                        dst,
                        reg(u)?,
                        *u.choose(widths)?,
                        0,
                    ));
                }
                2 => out.push(Insn::new(
                    class::ALU | alu::END | *u.choose(&[source::K, source::X])?,
                    dst,
                    0,
                    0,
                    *u.choose(&[16, 32, 64])?,
                )),
                _ => out.push(Insn::new(
                    class::ALU64 | alu::END,
                    dst,
                    0,
                    0,
                    *u.choose(&[16, 32, 64])?,
                )),
            }
        }
        5 => out.extend(lddw(dst, edge_imm64(u)?)),
        6 => {
            // Stack store of a register or an immediate, any width.
            let sz = *u.choose(&[size::B, size::H, size::W, size::DW])?;
            let off = slot(u)?;
            if u.arbitrary()? {
                out.push(Insn::new(class::STX | mode::MEM | sz, 10, dst, off, 0));
            } else {
                out.push(Insn::new(
                    class::ST | mode::MEM | sz,
                    10,
                    0,
                    off,
                    edge_imm(u)?,
                ));
            }
        }
        7 => {
            // Stack load, plain or sign-extending.
            let off = slot(u)?;
            if u.arbitrary()? {
                let sz = *u.choose(&[size::B, size::H, size::W, size::DW])?;
                out.push(Insn::new(class::LDX | mode::MEM | sz, dst, 10, off, 0));
            } else {
                let sz = *u.choose(&[size::B, size::H, size::W])?;
                out.push(Insn::new(class::LDX | mode::MEMSX | sz, dst, 10, off, 0));
            }
        }
        _ => {
            // Atomic on a stack slot (64-bit, or 32-bit on its low word).
            let sz = *u.choose(&[size::W, size::DW])?;
            let ops = [
                atomic::ADD,
                atomic::OR,
                atomic::AND,
                atomic::XOR,
                atomic::ADD | atomic::FETCH,
                atomic::OR | atomic::FETCH,
                atomic::AND | atomic::FETCH,
                atomic::XOR | atomic::FETCH,
                atomic::XCHG,
                atomic::CMPXCHG,
            ];
            let op = *u.choose(&ops)?;
            out.push(Insn::new(
                class::STX | mode::ATOMIC | sz,
                10,
                dst,
                slot(u)?,
                op,
            ));
        }
    }
    Ok(())
}

/// Generates one program of roughly `body` instructions from the bytes in `u`.
pub fn program(u: &mut Unstructured, body: usize) -> Result<Vec<Insn>> {
    let mut out = Vec::new();
    for r in 0..=9 {
        if u.arbitrary()? {
            out.extend(lddw(r, edge_imm64(u)?));
        } else {
            out.push(Insn::new(
                class::ALU64 | alu::MOV | source::K,
                r,
                0,
                0,
                edge_imm(u)?,
            ));
        }
    }
    for s in 1..=SLOTS {
        out.push(Insn::new(
            class::STX | mode::MEM | size::DW,
            10,
            (s % 10) as u8,
            -8 * s,
            0,
        ));
    }
    // The body is generated as blocks so that forward jumps land on block starts (never inside
    // a lddw).
    let mut blocks: Vec<Vec<Insn>> = Vec::new();
    for _ in 0..body {
        let mut b = Vec::new();
        straight(u, &mut b)?;
        blocks.push(b);
    }
    let mut body_insns = Vec::new();
    let n = blocks.len();
    for (i, b) in blocks.into_iter().enumerate() {
        if i + 1 < n && u.ratio(1, 4)? {
            // A forward conditional jump over the next 0..k blocks, in slots.
            let skip_blocks = u.int_in_range(0..=(n - i - 1).min(6))?;
            // Placeholder target; patched below once the skipped blocks' sizes are known.
            body_insns.push((Some(skip_blocks), jump(u)?));
        }
        for insn in b {
            body_insns.push((None, insn));
        }
    }
    // Patch jump offsets: count the slots of the next `k` blocks (a block ends where a new
    // straight instruction starts; lddw second slots belong to their first).
    let mut patched = Vec::with_capacity(body_insns.len());
    for i in 0..body_insns.len() {
        let (skip, mut insn) = body_insns[i];
        if let Some(k) = skip {
            let mut slots = 0i32;
            let mut blocks_seen = 0;
            let mut j = i + 1;
            while j < body_insns.len() && blocks_seen < k {
                // A jump placeholder is not a block of its own.
                if body_insns[j].0.is_none() {
                    let is_second_lddw_slot = j > 0 && body_insns[j - 1].1.is_lddw();
                    if !is_second_lddw_slot {
                        // Count the block start, then its slots.
                        blocks_seen += 1;
                    }
                    if blocks_seen <= k {
                        slots += 1;
                        if body_insns[j].1.is_lddw() {
                            slots += 1;
                            j += 1;
                        }
                    }
                } else if blocks_seen < k {
                    slots += 1;
                }
                j += 1;
            }
            if insn.code & 0x07 == class::JMP32 && insn.code & 0xf0 == jmp::JA {
                insn.imm = slots;
            } else {
                insn.off = slots as i16;
            }
        }
        patched.push(insn);
    }
    out.extend(patched);
    out.push(Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0));
    Ok(out)
}

fn jump(u: &mut Unstructured) -> Result<Insn> {
    let ops = [
        jmp::JEQ,
        jmp::JGT,
        jmp::JGE,
        jmp::JSET,
        jmp::JNE,
        jmp::JSGT,
        jmp::JSGE,
        jmp::JLT,
        jmp::JLE,
        jmp::JSLT,
        jmp::JSLE,
    ];
    let cls = *u.choose(&[class::JMP, class::JMP32])?;
    let op = *u.choose(&ops)?;
    Ok(if u.arbitrary()? {
        Insn::new(cls | op | source::X, reg(u)?, reg(u)?, 0, 0)
    } else {
        Insn::new(cls | op | source::K, reg(u)?, 0, 0, edge_imm(u)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfconf_spec::ebpf::validate::validate;

    #[test]
    fn generated_programs_are_structurally_valid() {
        for seed in 0..500u64 {
            let bytes = crate::gen::seeded_bytes(seed, 4096);
            let mut u = Unstructured::new(&bytes);
            let p = program(&mut u, 24).expect("enough bytes");
            if let Err(e) = validate(&p) {
                panic!(
                    "seed {seed}: {e:?}\n{}",
                    bpfconf_spec::ebpf::disasm::disassemble(&p)
                );
            }
        }
    }
}
