//! Every encoder form against iced-x86: the same call (same syntax, same operands) goes through
//! our [`X86`] and iced's `CodeAssembler`; both encodings are decoded by iced's decoder and must
//! be the same instruction (mnemonic, prefixes, operands, sizes, immediate values). Registers
//! run over all sixteen, displacements and immediates over their encoding edges.

// Loop indices pick the same register from both register tables (`ours::Q[b]`, `theirs::Q[b]`).
#![allow(clippy::needless_range_loop)]

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind};

/// Our side: the encoder and register tables by index.
mod ours {
    pub use crate::jit::x86::*;
    pub const Q: [Reg64; 16] = [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ];
    pub const D: [Reg32; 16] = [
        eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d,
    ];
    pub const W: [Reg16; 16] = [
        ax, cx, dx, bx, sp, bp, si, di, r8w, r9w, r10w, r11w, r12w, r13w, r14w, r15w,
    ];
    pub const B: [Reg8; 16] = [
        al, cl, dl, bl, spl, bpl, sil, dil, r8b, r9b, r10b, r11b, r12b, r13b, r14b, r15b,
    ];
}

/// iced's side, with the same names.
mod theirs {
    pub use iced_x86::code_asm::*;
    pub const Q: [AsmRegister64; 16] = [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ];
    pub const D: [AsmRegister32; 16] = [
        eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d,
    ];
    pub const W: [AsmRegister16; 16] = [
        ax, cx, dx, bx, sp, bp, si, di, r8w, r9w, r10w, r11w, r12w, r13w, r14w, r15w,
    ];
    pub const B: [AsmRegister8; 16] = [
        al, cl, dl, bl, spl, bpl, sil, dil, r8b, r9b, r10b, r11b, r12b, r13b, r14b, r15b,
    ];
}

/// Decodes exactly one instruction spanning all of `code`.
fn one(code: &[u8], what: &str) -> Instruction {
    let mut d = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let i = d.decode();
    assert!(
        !i.is_invalid() && i.len() == code.len(),
        "{what}: {code:02x?} is not one instruction"
    );
    i
}

/// What an instruction does, independent of the encoding chosen.
fn meaning(i: &Instruction) -> String {
    let mut s = format!("{:?} lock={}", i.mnemonic(), i.has_lock_prefix());
    for n in 0..i.op_count() {
        let part = match i.op_kind(n) {
            OpKind::Register => format!(" {:?}", i.op_register(n)),
            OpKind::Memory => format!(
                " [{:?}+{:?}*{}+{:#x}]:{:?}",
                i.memory_base(),
                i.memory_index(),
                i.memory_index_scale(),
                i.memory_displacement64(),
                i.memory_size()
            ),
            k => format!(" imm {:#x}", i.immediate(n) & imm_mask(k)),
        };
        s.push_str(&part);
    }
    s
}

/// Immediates are compared as the operand-size value they produce.
fn imm_mask(k: OpKind) -> u64 {
    match k {
        OpKind::Immediate8 => 0xff,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 0xffff,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// Runs the same call on both assemblers and compares the decoded instructions.
macro_rules! same {
    ($a:ident => $call:expr) => {{
        let ours = {
            use ours::*;
            let mut $a = X86::default();
            $call.unwrap();
            $a.code().to_vec()
        };
        let theirs = {
            use theirs::*;
            let mut $a = CodeAssembler::new(64).unwrap();
            $call.unwrap();
            $a.assemble(0).unwrap()
        };
        let what = stringify!($call);
        let (o, t) = (one(&ours, what), one(&theirs, what));
        assert_eq!(
            meaning(&o),
            meaning(&t),
            "{what}: ours {ours:02x?}, iced {theirs:02x?}"
        );
    }};
}

const DISPS: [i32; 9] = [0, 1, -1, 127, 128, -128, -129, 0x1234_5678, i32::MIN];
const IMMS: [i32; 9] = [0, 1, -1, 127, 128, -128, -129, i32::MAX, i32::MIN];

#[test]
fn alu_register_forms() {
    for x in 0..16 {
        for y in 0..16 {
            same!(a => a.add(Q[x], Q[y]));
            same!(a => a.or(D[x], D[y]));
            same!(a => a.and(W[x], W[y]));
            same!(a => a.sub(B[x], B[y]));
            same!(a => a.xor(Q[x], Q[y]));
            same!(a => a.cmp(D[x], D[y]));
            same!(a => a.test(Q[x], Q[y]));
            same!(a => a.test(B[x], B[y]));
            same!(a => a.mov(Q[x], Q[y]));
            same!(a => a.mov(D[x], D[y]));
            same!(a => a.mov(W[x], W[y]));
            same!(a => a.mov(B[x], B[y]));
            same!(a => a.imul_2(Q[x], Q[y]));
            same!(a => a.imul_2(D[x], D[y]));
            same!(a => a.cmovae(D[x], D[y]));
            same!(a => a.movzx(D[x], W[y]));
            same!(a => a.movzx(D[x], B[y]));
            same!(a => a.movsx(Q[x], B[y]));
            same!(a => a.movsx(Q[x], W[y]));
            same!(a => a.movsx(D[x], B[y]));
            same!(a => a.movsxd(Q[x], D[y]));
        }
    }
}

#[test]
fn alu_immediate_forms() {
    for x in 0..16 {
        for k in IMMS {
            same!(a => a.add(Q[x], k));
            same!(a => a.sub(D[x], k));
            same!(a => a.cmp(Q[x], k));
            same!(a => a.and(D[x], k as u32));
            same!(a => a.xor(Q[x], k));
            same!(a => a.or(D[x], k));
            same!(a => a.test(D[x], k as u32));
            same!(a => a.mov(D[x], k as u32));
            same!(a => a.mov(D[x], k));
            same!(a => a.imul_3(Q[x], Q[(x + 3) % 16], k));
            same!(a => a.imul_3(D[x], D[x], k));
            same!(a => a.mov(Q[x], k as i64));
            same!(a => a.mov(Q[x], (k as u64) << 20 | 0x77));
        }
        for k in [0i32, 1, 0x7f, -128, 0x1234] {
            same!(a => a.add(W[x], k));
        }
        for k in [0i32, 1, 0x7f, -128] {
            same!(a => a.cmp(B[x], k));
        }
    }
}

#[test]
fn sign_extended_mov_of_a_64_bit_register() {
    // iced's `code_asm` has no `mov(r64, i32)`; compare with its encoder directly.
    for (x, r) in ours::Q.iter().enumerate() {
        for k in IMMS {
            let mut a = ours::X86::default();
            ours::Mov::mov(&mut a, *r, k).unwrap();
            let reg = iced_x86::Register::from(theirs::Q[x]);
            let want = Instruction::with2(iced_x86::Code::Mov_rm64_imm32, reg, k).unwrap();
            assert_eq!(meaning(&one(a.code(), "mov r64, imm32")), meaning(&want));
        }
    }
}

#[test]
fn memory_forms_over_every_base_and_displacement() {
    for b in 0..16 {
        for d in DISPS {
            for x in [0, 4, 5, 10, 12, 13] {
                same!(a => a.mov(Q[x], qword_ptr(Q[b] + d)));
                same!(a => a.mov(dword_ptr(Q[b] + d), D[x]));
                same!(a => a.mov(word_ptr(Q[b] + d), W[x]));
                same!(a => a.mov(byte_ptr(Q[b] + d), B[x]));
                same!(a => a.add(Q[x], qword_ptr(Q[b] + d)));
                same!(a => a.cmp(qword_ptr(Q[b] + d), Q[x]));
                same!(a => a.or(Q[x], qword_ptr(Q[b] + d)));
                same!(a => a.movzx(D[x], byte_ptr(Q[b] + d)));
                same!(a => a.movzx(D[x], word_ptr(Q[b] + d)));
                same!(a => a.movsx(Q[x], byte_ptr(Q[b] + d)));
                same!(a => a.movsx(Q[x], word_ptr(Q[b] + d)));
                same!(a => a.movsxd(Q[x], dword_ptr(Q[b] + d)));
                same!(a => a.lea(Q[x], qword_ptr(Q[b] + d)));
                same!(a => a.xchg(qword_ptr(Q[b] + d), Q[x]));
                same!(a => a.lock().cmpxchg(dword_ptr(Q[b] + d), D[x]));
                same!(a => a.lock().xadd(qword_ptr(Q[b] + d), Q[x]));
                same!(a => a.lock().add(dword_ptr(Q[b] + d), D[x]));
                same!(a => a.lock().xor(qword_ptr(Q[b] + d), Q[x]));
            }
            for k in [0i32, 1, -1, 0x7f, -128] {
                same!(a => a.mov(byte_ptr(Q[b] + d), k));
                same!(a => a.mov(word_ptr(Q[b] + d), k));
            }
            for k in IMMS {
                same!(a => a.mov(dword_ptr(Q[b] + d), k));
                same!(a => a.mov(qword_ptr(Q[b] + d), k));
                same!(a => a.sub(qword_ptr(Q[b] + d), k));
                same!(a => a.cmp(dword_ptr(Q[b] + d), k));
                same!(a => a.sub(dword_ptr(Q[b] + d), k as u32));
                same!(a => a.test(dword_ptr(Q[b] + d), k as u32));
            }
        }
        same!(a => a.mov(Q[3], qword_ptr(Q[b])));
        same!(a => a.mov(D[3], dword_ptr(Q[b] + 0x10 + 8)));
    }
}

#[test]
fn indexed_memory_forms() {
    for b in 0..16 {
        for i in (0..16).filter(|&i| i != 4) {
            same!(a => a.mov(D[2], dword_ptr(Q[b] + Q[i] * 4)));
            same!(a => a.mov(D[9], dword_ptr(Q[b] + Q[i])));
            same!(a => a.movzx(D[9], byte_ptr(Q[b] + Q[i] * 8 + 300)));
            same!(a => a.mov(qword_ptr(Q[b] + Q[i] * 2 - 7), Q[13]));
        }
    }
}

#[test]
fn shifts_rotates_and_one_operand_forms() {
    for x in 0..16 {
        for n in [0u32, 1, 2, 8, 31, 63] {
            same!(a => a.shl(Q[x], n));
            same!(a => a.shr(D[x], n));
            same!(a => a.sar(Q[x], n));
            same!(a => a.rol(W[x], n));
            same!(a => a.ror(W[x], n));
            same!(a => a.shl(B[x], n));
        }
        same!(a => a.shl(Q[x], cl));
        same!(a => a.shr(D[x], cl));
        same!(a => a.sar(D[x], cl));
        same!(a => a.neg(Q[x]));
        same!(a => a.neg(D[x]));
        same!(a => a.div(Q[x]));
        same!(a => a.div(D[x]));
        same!(a => a.idiv(Q[x]));
        same!(a => a.idiv(D[x]));
        same!(a => a.bswap(Q[x]));
        same!(a => a.bswap(D[x]));
        same!(a => a.push(Q[x]));
        same!(a => a.pop(Q[x]));
        same!(a => a.call(Q[x]));
    }
    same!(a => a.ret());
    same!(a => a.cqo());
    same!(a => a.cdq());
    same!(a => a.mov(qword_ptr(0), 0));
}

#[test]
fn operand_mistakes_are_errors_not_code() {
    use ours::*;
    let mut a = X86::default();
    assert!(a.mov(dword_ptr(rax), rcx).is_err(), "size mismatch");
    assert!(
        a.add(qword_ptr(rax + 8), 0xffff_ffffu32).is_err(),
        "u32 into qword"
    );
    assert!(a.mov(rax + 8, 1).is_err(), "memory without a size");
    assert!(a.shl(eax, dl).is_err(), "count not in cl");
    assert!(a.movzx(eax, dword_ptr(rcx)).is_err(), "movzx of a dword");
    assert!(a.mov(D[0], dword_ptr(rax + rsp)).is_err(), "rsp as index");
    assert!(a.mov(D[0], dword_ptr(rax + rcx * 3)).is_err(), "scale 3");
    assert!(a.add(W[0], 70000).is_err(), "imm16 overflow");
    assert!(a.bswap(W[0]).is_err(), "bswap r16");
}
