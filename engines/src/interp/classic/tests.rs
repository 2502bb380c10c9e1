//! The prepared interpreter against the step-by-step reference it replaced ([`reference`]):
//! random programs of every dialect (checked or not: unknown opcodes, jumps out of the
//! program, missing returns, BSD loops), random packets and contexts, and the step limit at its
//! exact boundary.

mod reference;

use super::prepare::{Ins, RET};
use super::{ClassicResult, Prepared, Trap, STEP_LIMIT};
use bpfconf_spec::case::{Ctx, Dev};
use bpfconf_spec::cbpf::ext::{SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};
use bpfconf_spec::cbpf::{AluOp, Insn, JmpOp, Op, Size, Src, ALL_OPS};
use bpfconf_spec::cop::CopFn;
use bpfconf_spec::Dialect;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

const EDGES: [u32; 14] = [
    0,
    1,
    2,
    14,
    31,
    32,
    33,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffc,
    0xffff_fffe,
    0xffff_ffff,
];

fn k_for(r: &mut Rng, op: Op, pc: usize, len: usize, d: Dialect) -> u32 {
    match op {
        Op::LdAbs(_) | Op::LdInd(_) | Op::LdxMsh => match r.below(8) {
            0 => r.pick(&EDGES),
            1 => SKF_AD_OFF + 4 * r.below(16) as u32 + (r.below(8) == 0) as u32,
            2 => r.pick(&[SKF_NET_OFF, SKF_LL_OFF]) + r.below(40) as u32,
            _ => r.below(70) as u32,
        },
        Op::LdMem | Op::LdxMem | Op::St | Op::Stx => r.below(34) as u32,
        Op::Ja => match r.below(30) {
            // Backward (BSD loops; elsewhere a far forward jump out of the program).
            0..=2 if d == Dialect::Bsd => (-(1 + r.below(pc as u64 + 1) as i64)) as u32,
            3 => r.pick(&EDGES),
            _ => r.below((len - pc) as u64) as u32,
        },
        Op::Cop => r.below(9) as u32,
        Op::Alu(AluOp::Lsh | AluOp::Rsh, _) => r.below(70) as u32,
        _ => match r.below(3) {
            0 => r.pick(&EDGES),
            1 => r.below(8) as u32,
            _ => r.next() as u32,
        },
    }
}

/// A random program of 1..=30 instructions: mostly jumps inside and a final return, often a
/// tcpdump-like test (the fused groups: `ldx msh`, a load, `and`, a conditional jump on k, a
/// `jeq` after it), with the occasional unknown opcode, jump out of the program, or missing
/// return.
fn program(r: &mut Rng, d: Dialect) -> Vec<Insn> {
    let len = 1 + r.below(30) as usize;
    let mut v = Vec::with_capacity(len + 1);
    while v.len() < len {
        let pc = v.len();
        let off = |r: &mut Rng, pc: usize| match r.below(30) {
            0 => r.next() as u8,
            _ => r.below((len - pc).min(256) as u64) as u8,
        };
        if pc + 1 == len && r.below(15) != 0 {
            let code = r.pick(&[Op::RetA.code(), Op::RetK.code()]);
            v.push(Insn::stmt(code, r.pick(&EDGES)));
        } else if r.below(60) == 0 {
            v.push(Insn::new(r.next() as u16, 0, 0, r.next() as u32));
        } else if r.below(3) == 0 && pc + 5 < len {
            let size = r.pick(&[Size::B, Size::H, Size::W]);
            let load = r.pick(&[Op::LdAbs(size), Op::LdInd(size), Op::LdLen]);
            if load == Op::LdInd(size) && r.below(2) == 0 {
                v.push(Insn::stmt(Op::LdxMsh.code(), r.below(40) as u32));
            }
            v.push(Insn::stmt(load.code(), k_for(r, load, pc, len, d)));
            if r.below(4) == 0 {
                let any = r.next() as u32;
                let mask = r.pick(&[0xff, 0x1fff, 0xffff_0000, any]);
                v.push(Insn::stmt(Op::Alu(AluOp::And, Src::K).code(), mask));
            }
            for chained in [false, r.below(2) == 0] {
                let jump = match chained {
                    true => Op::Jmp(JmpOp::Jeq, Src::K),
                    false => Op::Jmp(r.pick(&JmpOp::ALL), Src::K),
                };
                let k = match r.below(3) {
                    0 => r.next() as u32,
                    _ => r.below(0x100) as u32,
                };
                let pc = v.len();
                let (jt, jf) = (off(r, pc), if chained { off(r, pc) } else { 0 });
                v.push(Insn::new(jump.code(), jt, jf, k));
            }
        } else {
            let op = r.pick(&ALL_OPS);
            let k = k_for(r, op, pc, len, d);
            let (jt, jf) = (off(r, pc), off(r, pc));
            v.push(Insn::new(op.code(), jt, jf, k));
        }
    }
    v
}

fn context(r: &mut Rng) -> Ctx {
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

fn packet(r: &mut Rng) -> Vec<u8> {
    let n = r.pick(&[0usize, 1, 2, 3, 4, 14, 20, 34, 64, 70]);
    (0..n).map(|_| r.next() as u8).collect()
}

/// `Prepared::run` and `run_ret` against the reference; panics with the program on a
/// difference.
fn agree(p: &Prepared, d: Dialect, insns: &[Insn], pkt: &[u8], ctx: &Ctx) {
    let want: Result<ClassicResult, Trap> = reference::run(d, insns, pkt, ctx);
    let show = || bpfconf_spec::cbpf::disasm::disassemble(insns);
    assert_eq!(
        p.run(pkt, ctx),
        want,
        "{d:?} pkt {pkt:02x?} ctx {ctx:?}\n{}\n{:?}",
        show(),
        p.code
    );
    assert_eq!(
        p.run_ret(pkt, ctx),
        want.map(|r| r.ret),
        "{d:?}\n{}",
        show()
    );
}

#[test]
fn random_programs_match_the_reference() {
    let mut r = Rng(0x5eed_c1a5_51c0);
    let mut seen = Forms::default();
    for i in 0..30_000 {
        let d = Dialect::ALL[i % 3];
        let insns = program(&mut r, d);
        let p = Prepared::new(d, &insns);
        seen.count(&p);
        for _ in 0..4 {
            let (pkt, ctx) = (packet(&mut r), context(&mut r));
            agree(&p, d, &insns, &pkt, &ctx);
        }
    }
    // The generator exercises every form.
    let Forms {
        fused,
        masked,
        chained,
        msh,
        threaded,
        counted,
    } = seen;
    assert!(fused > 10_000, "{seen:?}");
    assert!(masked > 1_000 && chained > 1_000, "{seen:?}");
    assert!(msh > 500 && threaded > 1_000 && counted > 100, "{seen:?}");
}

/// How many prepared instructions (programs, for `counted`) of each form.
#[derive(Debug, Default, Clone, Copy)]
struct Forms {
    fused: usize,
    masked: usize,
    chained: usize,
    msh: usize,
    threaded: usize,
    counted: usize,
}

impl Forms {
    fn count(&mut self, p: &Prepared) {
        self.counted += usize::from(p.counted);
        for i in p.code.iter() {
            let mut i = *i;
            if let Some(f) = i.load_cond_mut() {
                self.fused += 1;
                self.masked += usize::from(f.mask != u32::MAX);
                self.chained += usize::from(f.jt2 != f.jf);
                self.threaded += usize::from((f.jt | f.jf | f.jt2) & RET != 0);
            }
            self.msh += usize::from(format!("{i:?}").starts_with("Msh"));
        }
    }
}

fn is_fused(i: &Ins) -> bool {
    i.clone().load_cond_mut().is_some() || format!("{i:?}").starts_with("Msh")
}

/// A BSD loop `A += 1` until A ≥ `n` after `prefix` straight-line instructions, ending in
/// `ret a` or (`ret` false) `tax` then falling off the program: prefix + 3n steps (the last
/// `ja` is not taken; the final instruction is one).
fn loop_program(prefix: usize, n: u32, ret: bool) -> Vec<Insn> {
    let mut v = vec![Insn::stmt(Op::LdImm.code(), 0); prefix];
    let top = v.len();
    v.push(Insn::stmt(Op::Alu(AluOp::Add, Src::K).code(), 1));
    v.push(Insn::new(Op::Jmp(JmpOp::Jge, Src::K).code(), 1, 0, n));
    v.push(Insn::stmt(
        Op::Ja.code(),
        (top as i64 - v.len() as i64 - 1) as u32,
    ));
    v.push(match ret {
        true => Insn::stmt(Op::RetA.code(), 0),
        false => Insn::stmt(Op::Tax.code(), 0),
    });
    v
}

#[test]
fn the_step_limit_is_exact() {
    let ctx = Ctx::default();
    let base = (STEP_LIMIT / 3) as u32;
    let mut seen = [0; 3];
    for prefix in 1..=3 {
        for n in base - 2..=base + 1 {
            for ret in [true, false] {
                let insns = loop_program(prefix, n, ret);
                let p = Prepared::new(Dialect::Bsd, &insns);
                assert!(p.counted);
                agree(&p, Dialect::Bsd, &insns, &[], &ctx);
                let steps = 3 * n as usize + prefix;
                let got = p.run_ret(&[], &ctx);
                match steps.cmp(&STEP_LIMIT) {
                    std::cmp::Ordering::Greater => assert_eq!(got, Err(Trap::StepLimit)),
                    _ if ret => assert_eq!(got, Ok(n)),
                    std::cmp::Ordering::Equal => assert_eq!(got, Err(Trap::StepLimit)),
                    std::cmp::Ordering::Less => {
                        assert_eq!(got, Err(Trap::PcOutOfRange(prefix + 4)))
                    }
                }
                seen[(steps.cmp(&STEP_LIMIT) as i8 + 1) as usize] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&s| s > 0), "{seen:?}");
}

#[test]
fn forward_programs_fuse_and_loops_count() {
    // tcpdump -d 'ip[6:2] & 0x1fff != 0': ldh [12]; jeq #0x800 jt 2 jf 5; ldh [20];
    // jset #0x1fff jt 4 jf 5; ret #262144; ret #0.
    let insns = [
        Insn::stmt(0x28, 12),
        Insn::new(0x15, 0, 3, 0x800),
        Insn::stmt(0x28, 20),
        Insn::new(0x45, 0, 1, 0x1fff),
        Insn::stmt(0x06, 262144),
        Insn::stmt(0x06, 0),
    ];
    for d in Dialect::ALL {
        let p = Prepared::new(d, &insns);
        assert!(!p.counted);
        assert!(is_fused(&p.code[0]) && is_fused(&p.code[2]), "{:?}", p.code);
        // The jumps stay for jumps that land on them; one sentinel for falling off.
        assert_eq!(p.code.len(), insns.len() + 1);
        assert_eq!(p.code[6], Ins::Oob(super::prepare::END));
    }
    let p = Prepared::new(Dialect::Bsd, &loop_program(1, 5, true));
    assert!(p.counted && !p.code.iter().any(is_fused));
    assert_eq!(p.run_ret(&[], &Ctx::default()), Ok(5));
}

#[test]
fn jumps_out_of_the_program_trap_with_their_pc() {
    let ctx = Ctx::default();
    for (d, insns, pc) in [
        (
            Dialect::Linux,
            vec![Insn::stmt(Op::Ja.code(), u32::MAX)],
            1 + u32::MAX as usize,
        ),
        (Dialect::Netbsd, vec![Insn::new(0x15, 0, 200, 1)], 201),
        (Dialect::Bsd, vec![Insn::stmt(Op::LdImm.code(), 1)], 1),
        (Dialect::Linux, vec![], 0),
    ] {
        let p = Prepared::new(d, &insns);
        assert_eq!(p.run_ret(&[], &ctx), Err(Trap::PcOutOfRange(pc)));
        agree(&p, d, &insns, &[], &ctx);
    }
}
