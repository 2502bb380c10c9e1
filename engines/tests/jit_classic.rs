//! The classic JIT (`jit`) against the reference interpreter on random programs of every
//! dialect: checked programs through the `Engine` trait (same verdicts, same outcomes) and
//! unchecked ones straight through the compiler (same results, same traps — the generated
//! code must stay memory-safe whatever it is given).
#![cfg(target_arch = "x86_64")]

mod support;

use bpfconf_engines::interp::{classic as interp, Interp};
use bpfconf_engines::jit::classic::Compiled;
use bpfconf_engines::jit::{Inject, Jit};
use bpfconf_engines::{ClassicInput, ClassicProgram, Engine, Input, LoadError, Program, RunError};
use bpfconf_spec::case::{Ctx, Dev};
use bpfconf_spec::cbpf::disasm::disassemble;
use bpfconf_spec::cbpf::ext::{SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};
use bpfconf_spec::cbpf::{Insn, Op, ALL_OPS, MEMWORDS};
use bpfconf_spec::cop::CopFn;
use bpfconf_spec::Dialect;
use support::SplitMix64;

const EDGES: [u32; 12] = [
    0,
    1,
    2,
    31,
    32,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    14,
];

fn k_for(r: &mut SplitMix64, op: Op, pc: usize, len: usize, d: Dialect) -> u32 {
    match op {
        Op::LdAbs(_) | Op::LdInd(_) | Op::LdxMsh => match r.below(8) {
            0 => r.pick(&EDGES),
            1 => SKF_AD_OFF + 4 * r.below(16) as u32 + (r.below(8) == 0) as u32,
            2 => r.pick(&[SKF_NET_OFF, SKF_LL_OFF]) + r.below(40) as u32,
            _ => r.below(70) as u32,
        },
        Op::LdMem | Op::LdxMem | Op::St | Op::Stx => r.below(18) as u32,
        Op::Ja => {
            let room = (len - pc - 1) as u64;
            match r.below(40) {
                // Backward (BSD loops; elsewhere a far forward jump out of the program).
                0 if d == Dialect::Bsd => (-(1 + r.below(pc as u64 + 1) as i64)) as u32,
                1 => r.pick(&EDGES),
                _ => r.below(room.max(1)) as u32,
            }
        }
        Op::Cop => r.below(9) as u32,
        _ => {
            if r.below(2) == 0 {
                r.pick(&EDGES)
            } else {
                r.next() as u32
            }
        }
    }
}

/// A random program of 1..=40 instructions: mostly jumps inside, mostly ending in a return,
/// with the occasional unknown opcode, jump out, or missing return.
fn program(r: &mut SplitMix64, d: Dialect) -> Vec<Insn> {
    let len = 1 + r.below(40) as usize;
    let mut v = Vec::with_capacity(len);
    for pc in 0..len {
        let last = pc + 1 == len;
        if last && r.below(20) != 0 {
            v.push(Insn::stmt(
                r.pick(&[Op::RetA.code(), Op::RetK.code()]),
                r.pick(&EDGES),
            ));
            break;
        }
        if r.below(60) == 0 {
            v.push(Insn::new(r.next() as u16, 0, 0, r.next() as u32));
            continue;
        }
        let op = r.pick(&ALL_OPS);
        let k = k_for(r, op, pc, len, d);
        let room = (len - pc - 1) as u64;
        let mut off = || {
            if r.below(30) == 0 {
                r.next() as u8
            } else {
                r.below(room.clamp(1, 256)) as u8
            }
        };
        let (jt, jf) = (off(), off());
        v.push(Insn::new(op.code(), jt, jf, k));
    }
    v
}

fn context(r: &mut SplitMix64) -> Ctx {
    let mut c = Ctx::default();
    if r.below(2) == 0 {
        c.dev = Some(Dev {
            ifindex: r.next() as u32,
            hatype: 1,
        });
    }
    c.protocol = r.next() as u16;
    c.mark = r.next() as u32;
    c.vlan_present = r.below(2) == 0;
    c.vlan_tci = r.next() as u16;
    c.vlan_tpid = 0x8100;
    c.rand = (r.below(2) == 0).then(|| r.next() as u32);
    c.mac_header = (r.below(2) == 0).then(|| r.below(20) as u32);
    c.network_header = (r.below(2) == 0).then(|| r.below(40) as u32);
    c.wirelen = (r.below(2) == 0).then(|| r.below(100) as u32);
    c.cop = (0..r.below(8))
        .map(|_| CopFn::ALL[r.below(CopFn::ALL.len() as u64) as usize])
        .collect();
    if r.below(2) == 0 {
        c.extmem = Some((0..1 + r.below(30)).map(|_| r.next() as u32).collect());
    }
    c
}

fn packet(r: &mut SplitMix64) -> Vec<u8> {
    let n = r.pick(&[0usize, 1, 2, 4, 14, 20, 34, 64]);
    (0..n).map(|_| r.next() as u8).collect()
}

#[test]
fn unchecked_random_programs_match_the_interpreter() {
    let mut r = SplitMix64(0x6a17_c1a5);
    for i in 0..6000 {
        let d = Dialect::ALL[i % 3];
        let insns = program(&mut r, d);
        let p = ClassicProgram {
            dialect: d,
            insns: insns.clone(),
            cop_funcs: 0,
            memwords: MEMWORDS,
        };
        let c = Compiled::new(&p, Inject::default()).unwrap();
        for _ in 0..3 {
            let (pkt, ctx) = (packet(&mut r), context(&mut r));
            let want = interp::run(d, &insns, &pkt, &ctx).map_err(|t| format!("JIT trap: {t}"));
            let got = c.run(&pkt, &ctx).map_err(|e| match e {
                RunError::Engine(m) => m,
                other => panic!("{other:?}"),
            });
            assert_eq!(
                got,
                want,
                "#{i} {d:?} packet {pkt:02x?} ctx {ctx:?}\n{}\n{}",
                disassemble(&insns),
                c.listing()
            );
        }
    }
}

#[test]
fn checked_random_programs_load_and_run_like_the_interpreter() {
    let (interp_engine, jit) = (Interp::new(), Jit::with_inject(Inject::default()));
    let mut r = SplitMix64(0x00c1_a551);
    let mut accepted = 0;
    for i in 0..6000 {
        let d = Dialect::ALL[i % 3];
        let ctx = context(&mut r);
        let prog = Program::Classic(ClassicProgram {
            dialect: d,
            insns: program(&mut r, d),
            cop_funcs: ctx.cop.len(),
            memwords: ctx.memwords(),
        });
        let (a, b) = (interp_engine.load(&prog), jit.load(&prog));
        let (mut a, mut b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (
                Err(LoadError::Rejected { rule: ra, .. }),
                Err(LoadError::Rejected { rule: rb, .. }),
            ) => {
                assert_eq!(ra, rb);
                continue;
            }
            (a, b) => panic!("#{i}: interp {:?} / jit {:?}", a.err(), b.err()),
        };
        accepted += 1;
        for _ in 0..3 {
            let input = Input::Classic(ClassicInput {
                packet: packet(&mut r),
                ctx: ctx.clone(),
            });
            let want = a.run(&input);
            let got = b.run(&input);
            match (&want, &got) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "#{i} {prog:?} {input:?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("#{i}: {want:?} / {got:?}\n{prog:?} {input:?}"),
            }
        }
    }
    assert!(
        accepted > 200,
        "only {accepted} programs passed the checkers"
    );
}
