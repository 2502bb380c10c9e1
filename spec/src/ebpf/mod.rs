//! eBPF: the instruction model (RFC 9669 / `struct bpf_insn`), opcode constants and encoding.
//!
//! An instruction is 8 bytes: opcode, dst/src registers (4 bits each), a signed 16-bit offset
//! and a signed 32-bit immediate. The wide `lddw` takes two slots; here it stays two [`Insn`]s
//! (the second carries the high 32 bits of the immediate in `imm`, everything else zero), exactly
//! as encoded, so program counters and jump offsets are slot indices as in the kernel.

pub mod asm;
pub mod data;
pub mod disasm;
pub mod isa;
pub mod maps;
pub mod validate;

use serde::{Deserialize, Serialize};

/// Number of general registers R0..R10.
pub const NREGS: usize = 11;
/// Size of a program's stack frame in bytes (R10 points one past its end).
pub const STACK_SIZE: usize = 512;

/// Instruction classes (`code & 0x07`).
pub mod class {
    /// Non-standard loads (`lddw`, legacy packet loads).
    pub const LD: u8 = 0x00;
    /// Loads into a register.
    pub const LDX: u8 = 0x01;
    /// Stores of an immediate.
    pub const ST: u8 = 0x02;
    /// Stores of a register (and atomics).
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls and exit.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// Source bit for ALU and JMP classes (`code & 0x08`).
pub mod source {
    /// Operand is the immediate (also: `TO_LE` for byte swaps).
    pub const K: u8 = 0x00;
    /// Operand is the src register (also: `TO_BE` for byte swaps).
    pub const X: u8 = 0x08;
}

/// ALU operations (`code & 0xf0`).
pub mod alu {
    /// `dst += src`.
    pub const ADD: u8 = 0x00;
    /// `dst -= src`.
    pub const SUB: u8 = 0x10;
    /// `dst *= src`.
    pub const MUL: u8 = 0x20;
    /// `dst /= src` (unsigned; signed when off = 1).
    pub const DIV: u8 = 0x30;
    /// `dst |= src`.
    pub const OR: u8 = 0x40;
    /// `dst &= src`.
    pub const AND: u8 = 0x50;
    /// `dst <<= src`.
    pub const LSH: u8 = 0x60;
    /// `dst >>= src` (logical).
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`.
    pub const NEG: u8 = 0x80;
    /// `dst %= src` (unsigned; signed when off = 1).
    pub const MOD: u8 = 0x90;
    /// `dst ^= src`.
    pub const XOR: u8 = 0xa0;
    /// `dst = src` (sign-extending from off bits when off ∈ {8, 16, 32}).
    pub const MOV: u8 = 0xb0;
    /// `dst >>= src` (arithmetic).
    pub const ARSH: u8 = 0xc0;
    /// Byte swap / endianness conversion (width in imm).
    pub const END: u8 = 0xd0;
}

/// Jump operations (`code & 0xf0`).
pub mod jmp {
    /// Unconditional (`ja`; JMP32 `ja32` uses imm as the offset).
    pub const JA: u8 = 0x00;
    /// `==`.
    pub const JEQ: u8 = 0x10;
    /// `>` unsigned.
    pub const JGT: u8 = 0x20;
    /// `>=` unsigned.
    pub const JGE: u8 = 0x30;
    /// `&`.
    pub const JSET: u8 = 0x40;
    /// `!=`.
    pub const JNE: u8 = 0x50;
    /// `>` signed.
    pub const JSGT: u8 = 0x60;
    /// `>=` signed.
    pub const JSGE: u8 = 0x70;
    /// Call (helper by id; local function when src = 1).
    pub const CALL: u8 = 0x80;
    /// Return from function / program.
    pub const EXIT: u8 = 0x90;
    /// `<` unsigned.
    pub const JLT: u8 = 0xa0;
    /// `<=` unsigned.
    pub const JLE: u8 = 0xb0;
    /// `<` signed.
    pub const JSLT: u8 = 0xc0;
    /// `<=` signed.
    pub const JSLE: u8 = 0xd0;
}

/// Load/store sizes (`code & 0x18`).
pub mod size {
    /// 4 bytes.
    pub const W: u8 = 0x00;
    /// 2 bytes.
    pub const H: u8 = 0x08;
    /// 1 byte.
    pub const B: u8 = 0x10;
    /// 8 bytes.
    pub const DW: u8 = 0x18;
}

/// Load/store modes (`code & 0xe0`).
pub mod mode {
    /// 64-bit immediate (`lddw`).
    pub const IMM: u8 = 0x00;
    /// Legacy packet load, absolute.
    pub const ABS: u8 = 0x20;
    /// Legacy packet load, indirect.
    pub const IND: u8 = 0x40;
    /// Regular memory access.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load (v4).
    pub const MEMSX: u8 = 0x80;
    /// Atomic operation (imm selects it).
    pub const ATOMIC: u8 = 0xc0;
}

/// Atomic operation codes (in `imm`).
pub mod atomic {
    /// `*addr += src`.
    pub const ADD: i32 = 0x00;
    /// `*addr |= src`.
    pub const OR: i32 = 0x40;
    /// `*addr &= src`.
    pub const AND: i32 = 0x50;
    /// `*addr ^= src`.
    pub const XOR: i32 = 0xa0;
    /// Modifier: return the old value in src.
    pub const FETCH: i32 = 0x01;
    /// Exchange.
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// Compare (with R0) and exchange; old value in R0.
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
}

/// `src` values of `lddw` selecting a pseudo immediate.
pub mod pseudo {
    /// Plain 64-bit immediate.
    pub const IMM64: u8 = 0;
    /// imm is a map fd (`BPF_PSEUDO_MAP_FD`).
    pub const MAP_FD: u8 = 1;
    /// imm is a map fd and the next imm an offset into its value (`BPF_PSEUDO_MAP_VALUE`).
    pub const MAP_VALUE: u8 = 2;
    /// `src` of a call to a local function (`BPF_PSEUDO_CALL`).
    pub const CALL: u8 = 1;
}

/// One eBPF instruction slot, exactly as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (4 bits).
    pub dst: u8,
    /// Source register (4 bits).
    pub src: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// Builds an instruction.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The class bits.
    pub const fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// True for the first slot of a wide `lddw` (`BPF_LD|BPF_IMM|BPF_DW`).
    pub const fn is_lddw(&self) -> bool {
        self.code == class::LD | mode::IMM | size::DW
    }

    /// Little-endian encoding (`dst` in the low nibble of byte 1, as on x86).
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// Decodes the little-endian encoding.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Encodes a program to bytes (8 per slot).
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Decodes bytes into slots; the length must be a multiple of 8.
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<Insn>, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!(
            "program length {} is not a multiple of 8 bytes",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().expect("chunks of 8")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_kernel_layout() {
        // mov64 r1, -2 : 0xb7, dst 1, imm -2
        let i = Insn::new(class::ALU64 | alu::MOV | source::K, 1, 0, 0, -2);
        assert_eq!(i.to_bytes(), [0xb7, 0x01, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        // ldxdw r0, [r10-8]: 0x79, dst 0, src 10, off -8
        let l = Insn::new(class::LDX | mode::MEM | size::DW, 0, 10, -8, 0);
        assert_eq!(l.to_bytes(), [0x79, 0xa0, 0xf8, 0xff, 0, 0, 0, 0]);
        assert_eq!(Insn::from_bytes(l.to_bytes()), l);
        assert!(Insn::new(0x18, 0, 0, 0, 0).is_lddw());
        assert_eq!(from_bytes(&to_bytes(&[i, l])).unwrap(), vec![i, l]);
        assert!(from_bytes(&[0; 7]).is_err());
    }
}
