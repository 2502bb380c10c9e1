//! Branch layout at the BPF level: staggered jumps whose short/near forms interact, the
//! 4096-instruction maximum, and jumps to the last instruction (which falls into the epilogue).

use super::{agree, compile, jmp, stmt};
use crate::jit::classic::Compiled;
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::check::{check, CheckConfig};
use bpfconf_spec::cbpf::{AluOp, JmpOp, Op, Size, Src, MAXINSNS, MEMWORDS};
use bpfconf_spec::Dialect;

fn short_and_near(c: &Compiled) -> (usize, usize, usize) {
    let a = c.assembled();
    (a.short_branches, a.near_branches, a.passes)
}

#[test]
fn staggered_jumps_mix_short_and_near_branches() {
    // A = pkt[0..4]; jump i (at pc 1 + i) tests A == i and lands on `ret #1000+i` at pc
    // 2n + 1 - i. The spans nest, so the inner jumps shrink to rel8 first and the outer ones
    // only in later passes; the outermost stay near.
    let n = 60usize;
    let mut insns = vec![stmt(Op::LdAbs(Size::W), 0)];
    for i in 0..n {
        let jt = (2 * n - 2 * i - 1) as u8;
        insns.push(jmp(Op::Jmp(JmpOp::Jeq, Src::K), i as u32, jt, 0));
    }
    insns.push(stmt(Op::RetK, 0xffff));
    for i in (0..n).rev() {
        insns.push(stmt(Op::RetK, 1000 + i as u32));
    }
    let cfg = CheckConfig {
        dialect: Dialect::Linux,
        cop_funcs: 0,
        memwords: MEMWORDS,
    };
    check(&insns, &cfg).unwrap();
    for d in Dialect::ALL {
        let c = compile(d, &insns);
        let (short, near, passes) = short_and_near(&c);
        assert!(
            short > 0 && near > 0 && passes > 2,
            "{short} {near} {passes}"
        );
        for a in 0..n as u32 + 2 {
            let pkt = a.to_be_bytes();
            agree(&c, d, &insns, &pkt, &Ctx::default());
            let want = if (a as usize) < n { 1000 + a } else { 0xffff };
            assert_eq!(c.filter(&pkt, &Ctx::default()), want, "A = {a}");
        }
    }
}

#[test]
fn maximum_length_program_passes_the_checker_compiles_and_runs() {
    // 4096 instructions: a jump over almost everything, jumps of 255, ALU work and memory.
    let mut insns = vec![
        stmt(Op::LdAbs(Size::B), 0),
        jmp(Op::Jmp(JmpOp::Jeq, Src::K), 0xff, 0, 1),
        stmt(Op::Ja, (MAXINSNS - 4) as u32), // to the last instruction
        stmt(Op::St, 0),
    ];
    let mut i = 0u32;
    while insns.len() < MAXINSNS - 2 {
        let pc = insns.len();
        let room = MAXINSNS - 2 - pc - 1; // instructions between here and `ret a`
        insns.push(match i % 7 {
            0 => stmt(Op::Alu(AluOp::Add, Src::K), i),
            1 => stmt(Op::Alu(AluOp::Mul, Src::K), 3),
            2 => jmp(
                Op::Jmp(JmpOp::Jset, Src::K),
                1 << (i % 32),
                room.min(255) as u8,
                0,
            ),
            3 => stmt(Op::Alu(AluOp::Xor, Src::K), i.wrapping_mul(0x9e37_79b9)),
            4 => stmt(Op::LdMem, 0),
            5 => stmt(Op::Alu(AluOp::Rsh, Src::K), i % 32),
            _ => stmt(Op::St, 0),
        });
        i += 1;
    }
    insns.push(stmt(Op::Alu(AluOp::Add, Src::K), 1));
    insns.push(stmt(Op::RetA, 0));
    assert_eq!(insns.len(), MAXINSNS);
    let cfg = CheckConfig {
        dialect: Dialect::Linux,
        cop_funcs: 0,
        memwords: MEMWORDS,
    };
    check(&insns, &cfg).unwrap();
    let c = compile(Dialect::Linux, &insns);
    let (short, near, _) = short_and_near(&c);
    assert!(short > 0 && near > 0);
    for b in 0..=255u8 {
        agree(&c, Dialect::Linux, &insns, &[b, 1, 2], &Ctx::default());
    }
    agree(&c, Dialect::Linux, &insns, &[], &Ctx::default());
}

#[test]
fn jumps_to_the_last_instruction() {
    // Every kind of jump, from near and far, lands on the final `ret a`, which falls into the
    // epilogue; fall-through reaches it too.
    for gap in [0usize, 1, 10, 40, 200] {
        let mut insns = vec![
            stmt(Op::LdAbs(Size::B), 0),
            jmp(Op::Jmp(JmpOp::Jeq, Src::K), 1, 0, 0),
            jmp(Op::Jmp(JmpOp::Jgt, Src::K), 2, 0, 0),
            jmp(Op::Jmp(JmpOp::Jge, Src::X), 0, 0, 0),
            jmp(Op::Jmp(JmpOp::Jset, Src::K), 4, 0, 0),
            jmp(Op::Jmp(JmpOp::Jeq, Src::K), 5, 0, 1),
            stmt(Op::Ja, 0),
            stmt(Op::LdImm, 77),
        ];
        for _ in 0..gap {
            insns.push(stmt(Op::Alu(AluOp::Add, Src::K), 1));
        }
        let last = insns.len();
        for (pc, insn) in insns.iter_mut().enumerate() {
            let dist = (last - pc - 1) as u32;
            match insn.op() {
                Some(Op::Jmp(..)) if insn.jt == 0 => insn.jt = dist as u8,
                Some(Op::Ja) => insn.k = dist,
                _ => {}
            }
        }
        insns.push(stmt(Op::RetA, 0));
        for d in Dialect::ALL {
            let c = compile(d, &insns);
            for b in 0..8u8 {
                agree(&c, d, &insns, &[b], &Ctx::default());
            }
        }
    }
}
