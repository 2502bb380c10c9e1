//! Classic BPF: the instruction model (`struct sock_filter`), opcode constants and decoding.
//!
//! Encoding facts come from `linux/filter.h`, `linux/bpf_common.h`, libpcap's `pcap/bpf.h` and
//! NetBSD's `net/bpf.h` (BPF_COP/BPF_COPX in the BPF_MISC class).

pub mod asm;
pub mod check;
pub mod disasm;
pub mod ext;
pub mod formats;

use serde::{Deserialize, Serialize};

/// Maximum number of instructions in a classic program (`BPF_MAXINSNS`).
pub const MAXINSNS: usize = 4096;
/// Number of scratch memory words `M[0..16]` (`BPF_MEMWORDS`).
pub const MEMWORDS: usize = 16;

/// Instruction classes.
pub mod class {
    /// Load into A.
    pub const LD: u16 = 0x00;
    /// Load into X.
    pub const LDX: u16 = 0x01;
    /// Store A into M[].
    pub const ST: u16 = 0x02;
    /// Store X into M[].
    pub const STX: u16 = 0x03;
    /// Arithmetic on A.
    pub const ALU: u16 = 0x04;
    /// Jumps.
    pub const JMP: u16 = 0x05;
    /// Return.
    pub const RET: u16 = 0x06;
    /// Register moves and (NetBSD) coprocessor calls.
    pub const MISC: u16 = 0x07;
}

/// Load sizes.
pub mod size {
    /// 32-bit word.
    pub const W: u16 = 0x00;
    /// 16-bit half word.
    pub const H: u16 = 0x08;
    /// Byte.
    pub const B: u16 = 0x10;
}

/// Load addressing modes.
pub mod mode {
    /// Immediate `#k`.
    pub const IMM: u16 = 0x00;
    /// Absolute packet offset `[k]`.
    pub const ABS: u16 = 0x20;
    /// Indirect packet offset `[x + k]`.
    pub const IND: u16 = 0x40;
    /// Scratch memory `M[k]`.
    pub const MEM: u16 = 0x60;
    /// Packet length.
    pub const LEN: u16 = 0x80;
    /// IP header length `4*([k]&0xf)`.
    pub const MSH: u16 = 0xa0;
}

/// ALU and jump operations (the `BPF_OP` bits).
pub mod op {
    /// `A + src`.
    pub const ADD: u16 = 0x00;
    /// `A - src`.
    pub const SUB: u16 = 0x10;
    /// `A * src`.
    pub const MUL: u16 = 0x20;
    /// `A / src`.
    pub const DIV: u16 = 0x30;
    /// `A | src`.
    pub const OR: u16 = 0x40;
    /// `A & src`.
    pub const AND: u16 = 0x50;
    /// `A << src`.
    pub const LSH: u16 = 0x60;
    /// `A >> src`.
    pub const RSH: u16 = 0x70;
    /// `-A`.
    pub const NEG: u16 = 0x80;
    /// `A % src`.
    pub const MOD: u16 = 0x90;
    /// `A ^ src`.
    pub const XOR: u16 = 0xa0;
    /// Unconditional jump.
    pub const JA: u16 = 0x00;
    /// Jump if `A == src`.
    pub const JEQ: u16 = 0x10;
    /// Jump if `A > src` (unsigned).
    pub const JGT: u16 = 0x20;
    /// Jump if `A >= src` (unsigned).
    pub const JGE: u16 = 0x30;
    /// Jump if `A & src != 0`.
    pub const JSET: u16 = 0x40;
}

/// Operand source for ALU and jumps.
pub mod src {
    /// The constant `k`.
    pub const K: u16 = 0x00;
    /// The X register.
    pub const X: u16 = 0x08;
}

/// Return value source.
pub mod rval {
    /// Return the constant `k`.
    pub const K: u16 = 0x00;
    /// Return X (BSD only).
    pub const X: u16 = 0x08;
    /// Return A.
    pub const A: u16 = 0x10;
}

/// Misc operations.
pub mod misc {
    /// `X = A`.
    pub const TAX: u16 = 0x00;
    /// NetBSD: `A = cop[k](...)`.
    pub const COP: u16 = 0x20;
    /// NetBSD: `A = cop[X](...)`.
    pub const COPX: u16 = 0x40;
    /// `A = X`.
    pub const TXA: u16 = 0x80;
}

/// One classic BPF instruction, exactly as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic operand.
    pub k: u32,
}

impl Insn {
    /// Builds an instruction from its four fields.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Insn { code, jt, jf, k }
    }

    /// A non-jump statement (`BPF_STMT`).
    pub const fn stmt(code: u16, k: u32) -> Self {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// The instruction class (`BPF_CLASS`).
    pub const fn class(&self) -> u16 {
        self.code & 0x07
    }

    /// The decoded operation, if the opcode is one of the 52 known classic opcodes.
    pub fn op(&self) -> Option<Op> {
        Op::decode(self.code)
    }

    /// Encodes to the 8-byte little-endian in-memory layout of `struct sock_filter` on x86.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_le_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_le_bytes());
        b
    }

    /// Decodes from the 8-byte in-memory layout (see [`Insn::to_bytes`]).
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Insn {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Load width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 4 bytes.
    W,
    /// 2 bytes.
    H,
    /// 1 byte.
    B,
}

impl Size {
    /// Width in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            Size::W => 4,
            Size::H => 2,
            Size::B => 1,
        }
    }
    fn bits(self) -> u16 {
        match self {
            Size::W => size::W,
            Size::H => size::H,
            Size::B => size::B,
        }
    }
}

/// ALU operation with a source operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// Addition.
    Add,
    /// Subtraction.
    Sub,
    /// Multiplication.
    Mul,
    /// Unsigned division.
    Div,
    /// Unsigned remainder.
    Mod,
    /// Bitwise and.
    And,
    /// Bitwise or.
    Or,
    /// Bitwise xor.
    Xor,
    /// Left shift.
    Lsh,
    /// Logical right shift.
    Rsh,
}

impl AluOp {
    /// Every ALU operation that takes a source.
    pub const ALL: [AluOp; 10] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Mod,
        AluOp::And,
        AluOp::Or,
        AluOp::Xor,
        AluOp::Lsh,
        AluOp::Rsh,
    ];
    /// The `BPF_OP` bits.
    pub fn bits(self) -> u16 {
        match self {
            AluOp::Add => op::ADD,
            AluOp::Sub => op::SUB,
            AluOp::Mul => op::MUL,
            AluOp::Div => op::DIV,
            AluOp::Mod => op::MOD,
            AluOp::And => op::AND,
            AluOp::Or => op::OR,
            AluOp::Xor => op::XOR,
            AluOp::Lsh => op::LSH,
            AluOp::Rsh => op::RSH,
        }
    }
    /// The bpf_asm mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::Mod => "mod",
            AluOp::And => "and",
            AluOp::Or => "or",
            AluOp::Xor => "xor",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
        }
    }
}

/// Conditional jump comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpOp {
    /// `A == src`.
    Jeq,
    /// `A > src`, unsigned.
    Jgt,
    /// `A >= src`, unsigned.
    Jge,
    /// `A & src != 0`.
    Jset,
}

impl JmpOp {
    /// Every conditional jump.
    pub const ALL: [JmpOp; 4] = [JmpOp::Jeq, JmpOp::Jgt, JmpOp::Jge, JmpOp::Jset];
    /// The `BPF_OP` bits.
    pub fn bits(self) -> u16 {
        match self {
            JmpOp::Jeq => op::JEQ,
            JmpOp::Jgt => op::JGT,
            JmpOp::Jge => op::JGE,
            JmpOp::Jset => op::JSET,
        }
    }
    /// The bpf_asm mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            JmpOp::Jeq => "jeq",
            JmpOp::Jgt => "jgt",
            JmpOp::Jge => "jge",
            JmpOp::Jset => "jset",
        }
    }
    /// Evaluates the comparison.
    pub fn eval(self, a: u32, v: u32) -> bool {
        match self {
            JmpOp::Jeq => a == v,
            JmpOp::Jgt => a > v,
            JmpOp::Jge => a >= v,
            JmpOp::Jset => a & v != 0,
        }
    }
}

/// Operand source: the constant `k` or register X.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Src {
    /// The constant `k`.
    K,
    /// Register X.
    X,
}

impl Src {
    fn bits(self) -> u16 {
        match self {
            Src::K => src::K,
            Src::X => src::X,
        }
    }
}

/// A decoded classic opcode: one of the 52 known to Linux, BSD or NetBSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `A = pkt[k]` (also Linux ancillary loads when k ≥ SKF_AD_OFF).
    LdAbs(Size),
    /// `A = pkt[X + k]`.
    LdInd(Size),
    /// `A = len`.
    LdLen,
    /// `A = k`.
    LdImm,
    /// `A = M[k]`.
    LdMem,
    /// `X = len`.
    LdxLen,
    /// `X = 4 * (pkt[k] & 0xf)`.
    LdxMsh,
    /// `X = k`.
    LdxImm,
    /// `X = M[k]`.
    LdxMem,
    /// `M[k] = A`.
    St,
    /// `M[k] = X`.
    Stx,
    /// `A = A op src`.
    Alu(AluOp, Src),
    /// `A = -A`.
    Neg,
    /// `pc += k`.
    Ja,
    /// `pc += (A cmp src) ? jt : jf`.
    Jmp(JmpOp, Src),
    /// Return k.
    RetK,
    /// Return A.
    RetA,
    /// `ret x` (0x0e): accepted by the libpcap and NetBSD validators but implemented by no
    /// interpreter (their default case returns 0; libpcap 1.10 aborts); Linux rejects it.
    RetX,
    /// `X = A`.
    Tax,
    /// `A = X`.
    Txa,
    /// NetBSD: `A = cop[k](ctx, args, A)`.
    Cop,
    /// NetBSD: `A = cop[X](ctx, args, A)`.
    Copx,
}

impl Op {
    /// Decodes an exact opcode; `None` for any code outside the 52 known ones.
    pub fn decode(code: u16) -> Option<Op> {
        // Every known opcode is below 0x100; a table indexed by the low byte (built once from
        // ALL_OPS) makes this a load, which matters to the checkers and the fuzzer's hot loop.
        static TABLE: std::sync::LazyLock<[Option<Op>; 256]> = std::sync::LazyLock::new(|| {
            let mut t = [None; 256];
            for op in ALL_OPS {
                t[op.code() as usize] = Some(op);
            }
            t
        });
        TABLE.get(code as usize).copied().flatten()
    }

    /// The canonical 16-bit opcode.
    pub fn code(self) -> u16 {
        use class::*;
        match self {
            Op::LdAbs(s) => LD | s.bits() | mode::ABS,
            Op::LdInd(s) => LD | s.bits() | mode::IND,
            Op::LdLen => LD | size::W | mode::LEN,
            Op::LdImm => LD | size::W | mode::IMM,
            Op::LdMem => LD | size::W | mode::MEM,
            Op::LdxLen => LDX | size::W | mode::LEN,
            Op::LdxMsh => LDX | size::B | mode::MSH,
            Op::LdxImm => LDX | size::W | mode::IMM,
            Op::LdxMem => LDX | size::W | mode::MEM,
            Op::St => ST,
            Op::Stx => STX,
            Op::Alu(o, s) => ALU | o.bits() | s.bits(),
            Op::Neg => ALU | op::NEG,
            Op::Ja => JMP | op::JA,
            Op::Jmp(o, s) => JMP | o.bits() | s.bits(),
            Op::RetK => RET | rval::K,
            Op::RetA => RET | rval::A,
            Op::RetX => RET | rval::X,
            Op::Tax => MISC | misc::TAX,
            Op::Txa => MISC | misc::TXA,
            Op::Cop => MISC | misc::COP,
            Op::Copx => MISC | misc::COPX,
        }
    }

    /// A stable, human-readable name (`ld_abs_w`, `alu_add_k`, `ret_a`, `cop`…) used by coverage
    /// reports and checklists.
    pub fn name(self) -> String {
        let sz = |s: Size| match s {
            Size::W => "w",
            Size::H => "h",
            Size::B => "b",
        };
        let sr = |s: Src| match s {
            Src::K => "k",
            Src::X => "x",
        };
        match self {
            Op::LdAbs(s) => format!("ld_abs_{}", sz(s)),
            Op::LdInd(s) => format!("ld_ind_{}", sz(s)),
            Op::LdLen => "ld_len".into(),
            Op::LdImm => "ld_imm".into(),
            Op::LdMem => "ld_mem".into(),
            Op::LdxLen => "ldx_len".into(),
            Op::LdxMsh => "ldx_msh".into(),
            Op::LdxImm => "ldx_imm".into(),
            Op::LdxMem => "ldx_mem".into(),
            Op::St => "st".into(),
            Op::Stx => "stx".into(),
            Op::Alu(o, s) => format!("alu_{}_{}", o.mnemonic(), sr(s)),
            Op::Neg => "alu_neg".into(),
            Op::Ja => "jmp_ja".into(),
            Op::Jmp(o, s) => format!("jmp_{}_{}", o.mnemonic(), sr(s)),
            Op::RetK => "ret_k".into(),
            Op::RetA => "ret_a".into(),
            Op::RetX => "ret_x".into(),
            Op::Tax => "misc_tax".into(),
            Op::Txa => "misc_txa".into(),
            Op::Cop => "misc_cop".into(),
            Op::Copx => "misc_copx".into(),
        }
    }

    /// True for conditional and unconditional jumps.
    pub fn is_jump(self) -> bool {
        matches!(self, Op::Ja | Op::Jmp(..))
    }

    /// True for returns.
    pub fn is_ret(self) -> bool {
        matches!(self, Op::RetK | Op::RetA | Op::RetX)
    }
}

/// All 52 classic opcodes: the 49 accepted by Linux, RET X (BSD), and NetBSD's COP and COPX.
pub const ALL_OPS: [Op; 52] = {
    use AluOp::*;
    use JmpOp::*;
    use Size::*;
    use Src::*;
    [
        Op::LdAbs(W),
        Op::LdAbs(H),
        Op::LdAbs(B),
        Op::LdInd(W),
        Op::LdInd(H),
        Op::LdInd(B),
        Op::LdLen,
        Op::LdImm,
        Op::LdMem,
        Op::LdxLen,
        Op::LdxMsh,
        Op::LdxImm,
        Op::LdxMem,
        Op::St,
        Op::Stx,
        Op::Alu(Add, K),
        Op::Alu(Add, X),
        Op::Alu(Sub, K),
        Op::Alu(Sub, X),
        Op::Alu(Mul, K),
        Op::Alu(Mul, X),
        Op::Alu(Div, K),
        Op::Alu(Div, X),
        Op::Alu(Mod, K),
        Op::Alu(Mod, X),
        Op::Alu(And, K),
        Op::Alu(And, X),
        Op::Alu(Or, K),
        Op::Alu(Or, X),
        Op::Alu(Xor, K),
        Op::Alu(Xor, X),
        Op::Alu(Lsh, K),
        Op::Alu(Lsh, X),
        Op::Alu(Rsh, K),
        Op::Alu(Rsh, X),
        Op::Neg,
        Op::Ja,
        Op::Jmp(Jeq, K),
        Op::Jmp(Jeq, X),
        Op::Jmp(Jgt, K),
        Op::Jmp(Jgt, X),
        Op::Jmp(Jge, K),
        Op::Jmp(Jge, X),
        Op::Jmp(Jset, K),
        Op::Jmp(Jset, X),
        Op::RetK,
        Op::RetA,
        Op::RetX,
        Op::Tax,
        Op::Txa,
        Op::Cop,
        Op::Copx,
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_ops_have_distinct_codes_and_decode_back() {
        let codes: HashSet<u16> = ALL_OPS.iter().map(|o| o.code()).collect();
        assert_eq!(codes.len(), 52);
        for op in ALL_OPS {
            assert_eq!(Op::decode(op.code()), Some(op), "{}", op.name());
        }
    }

    #[test]
    fn decode_refuses_every_other_code() {
        for code in 0..=u16::MAX {
            let scan = ALL_OPS.iter().copied().find(|op| op.code() == code);
            assert_eq!(Op::decode(code), scan, "{code:#x}");
        }
    }

    #[test]
    fn known_encodings_match_the_headers() {
        // Values from linux/filter.h as printed by `tcpdump -dd` and filter.txt.
        assert_eq!(Op::LdAbs(Size::H).code(), 0x28);
        assert_eq!(Op::LdAbs(Size::B).code(), 0x30);
        assert_eq!(Op::Jmp(JmpOp::Jeq, Src::K).code(), 0x15);
        assert_eq!(Op::Jmp(JmpOp::Jset, Src::K).code(), 0x45);
        assert_eq!(Op::LdxMsh.code(), 0xb1);
        assert_eq!(Op::LdInd(Size::H).code(), 0x48);
        assert_eq!(Op::RetK.code(), 0x06);
        assert_eq!(Op::RetA.code(), 0x16);
        assert_eq!(Op::Cop.code(), 0x27);
        assert_eq!(Op::Copx.code(), 0x47);
        assert_eq!(Op::Txa.code(), 0x87);
    }

    #[test]
    fn unknown_codes_do_not_decode() {
        for code in [0x08u16, 0x18, 0x1e, 0x67, 0xb4, 0xffff] {
            assert_eq!(Op::decode(code), None, "{code:#x}");
        }
    }

    #[test]
    fn bytes_round_trip() {
        let i = Insn::new(0x15, 1, 2, 0xdeadbeef);
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
    }
}
