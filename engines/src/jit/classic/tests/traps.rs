//! Traps: the step limit of BSD backward-jump loops (exact at the boundary, also when a load
//! ends the run mid-block) and pcs outside the program, as the interpreter reports them.

use super::{agree, compile, contexts, jmp, pattern, stmt};
use crate::interp::classic::STEP_LIMIT;
use crate::RunError;
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::{AluOp, Insn, JmpOp, Op, Size, Src};
use bpfconf_spec::Dialect;

#[test]
fn runaway_bsd_loop_traps_like_the_interpreter() {
    // ja -1: a jump to itself.
    let insns = [
        stmt(Op::LdImm, 1),
        stmt(Op::Ja, u32::MAX),
        stmt(Op::RetA, 0),
    ];
    let c = compile(Dialect::Bsd, &insns);
    let err = c.run(&[], &Ctx::default()).unwrap_err();
    assert_eq!(
        err,
        RunError::Engine("JIT trap: step limit exceeded".into())
    );
    assert_eq!(c.filter(&[], &Ctx::default()), 0);
    agree(&c, Dialect::Bsd, &insns, &[], &Ctx::default());
}

/// `ld #n; l1: sub #1; jeq #0, done; ja l1; done: ret a` takes 3n + 1 steps.
fn countdown(n: u32) -> Vec<Insn> {
    vec![
        stmt(Op::LdImm, n),
        stmt(Op::Alu(AluOp::Sub, Src::K), 1),
        jmp(Op::Jmp(JmpOp::Jeq, Src::K), 0, 1, 0),
        stmt(Op::Ja, (-3i32) as u32),
        stmt(Op::RetA, 0),
    ]
}

#[test]
fn step_limit_is_exact_at_the_boundary() {
    let n = (STEP_LIMIT as u32 - 1) / 3;
    assert_eq!(3 * n + 1, STEP_LIMIT as u32);
    for (n, ok) in [(n, true), (n + 1, false)] {
        let insns = countdown(n);
        let c = compile(Dialect::Bsd, &insns);
        let got = c.run(&[], &Ctx::default());
        assert_eq!(got.is_ok(), ok, "{n}: {got:?}");
        agree(&c, Dialect::Bsd, &insns, &[], &Ctx::default());
    }
}

#[test]
fn step_limit_is_checked_before_a_jump_out_of_the_program() {
    // A padded countdown whose exit jumps past the end instead of returning: 1 + 3n steps.
    // After exactly STEP_LIMIT steps the interpreter reports the step limit; a loop earlier,
    // the pc.
    let n = (STEP_LIMIT as u32 - 1) / 3;
    for (n, want) in [
        (n, "JIT trap: step limit exceeded".to_string()),
        (n - 1, "JIT trap: pc 11 is outside the program".to_string()),
    ] {
        let mut insns = vec![stmt(Op::LdImm, 0)];
        insns.extend(countdown(n));
        insns[3] = jmp(Op::Jmp(JmpOp::Jeq, Src::K), 0, 7, 0);
        let c = compile(Dialect::Bsd, &insns);
        assert_eq!(c.run(&[], &Ctx::default()), Err(RunError::Engine(want)));
        agree(&c, Dialect::Bsd, &insns, &[], &Ctx::default());
    }
}

#[test]
fn step_limit_is_exact_when_a_load_fails_mid_loop() {
    // P padding instructions, then a loop over the packet that ends when `ldb [x]` fails:
    // P + 1 + 5 L + 1 steps for a packet of L bytes. With the failing load on the very last
    // allowed step the program returns 0; one more padding instruction and it traps. A block
    // charged past the load would trap in both.
    let len = 209_714usize;
    let pad = STEP_LIMIT - 2 - 5 * len;
    for (pad, ok) in [(pad, true), (pad + 1, false)] {
        let mut insns = vec![stmt(Op::LdImm, 0); pad];
        insns.extend([
            stmt(Op::LdxImm, 0),
            stmt(Op::LdInd(Size::B), 0),
            stmt(Op::Txa, 0),
            stmt(Op::Alu(AluOp::Add, Src::K), 1),
            stmt(Op::Tax, 0),
            stmt(Op::Ja, (-5i32) as u32),
            stmt(Op::RetK, 1),
        ]);
        let c = compile(Dialect::Bsd, &insns);
        let pkt = vec![1u8; len];
        let got = c.run(&pkt, &Ctx::default());
        assert_eq!(got.is_ok(), ok, "pad {pad}: {got:?}");
        agree(&c, Dialect::Bsd, &insns, &pkt, &Ctx::default());
    }
}

#[test]
fn leaving_the_program_traps_like_the_interpreter() {
    let progs: Vec<(Dialect, Vec<Insn>)> = vec![
        (Dialect::Linux, vec![]),
        (Dialect::Linux, vec![stmt(Op::LdImm, 1)]),
        (Dialect::Linux, vec![stmt(Op::Ja, 5), stmt(Op::RetA, 0)]),
        (
            Dialect::Netbsd,
            vec![jmp(Op::Jmp(JmpOp::Jgt, Src::K), 3, 7, 0), stmt(Op::RetA, 0)],
        ),
        (
            Dialect::Linux,
            vec![
                jmp(Op::Jmp(JmpOp::Jset, Src::X), 0, 0, 200),
                stmt(Op::RetA, 0),
            ],
        ),
        (Dialect::Bsd, vec![stmt(Op::Ja, 7), stmt(Op::RetA, 0)]),
        // BSD, looping and then leaving: the step limit is checked before the pc.
        (Dialect::Bsd, {
            let mut v = countdown(1);
            v[4] = jmp(Op::Jmp(JmpOp::Jeq, Src::K), 0, 9, 9);
            v
        }),
    ];
    for (d, insns) in progs {
        let c = compile(d, &insns);
        for ctx in contexts() {
            agree(&c, d, &insns, &pattern(4), &ctx);
            agree(&c, d, &insns, &[], &ctx);
        }
    }
}
