//! The classic JIT against the reference interpreter: every opcode on edge values in every
//! dialect, the step limit and pc traps, branch layout at the BPF level (staggered jumps, the
//! 4096-instruction maximum, jumps to the last instruction), fault injection and the listing.

mod layout;
mod traps;

use super::Compiled;
use crate::interp::classic::{self as interp, ClassicResult};
use crate::jit::Inject;
use crate::{ClassicProgram, RunError};
use bpfconf_spec::case::{Ctx, Dev};
use bpfconf_spec::cbpf::disasm::disassemble;
use bpfconf_spec::cbpf::ext::{Ext, SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};
use bpfconf_spec::cbpf::{Insn, JmpOp, Op, Size, Src, ALL_OPS, MEMWORDS};
use bpfconf_spec::cop::CopFn;
use bpfconf_spec::Dialect;

fn program(dialect: Dialect, insns: &[Insn]) -> ClassicProgram {
    ClassicProgram {
        dialect,
        insns: insns.to_vec(),
        cop_funcs: CopFn::ALL.len(),
        memwords: MEMWORDS,
    }
}

fn compile(dialect: Dialect, insns: &[Insn]) -> Compiled {
    compile_with(dialect, insns, Inject::default())
}

fn compile_with(dialect: Dialect, insns: &[Insn], inject: Inject) -> Compiled {
    Compiled::new(&program(dialect, insns), inject).unwrap_or_else(|e| {
        panic!("{dialect:?}: {e}\n{}", disassemble(insns));
    })
}

/// The interpreter's result in the JIT's terms (a trap is `JIT trap: …`).
fn expected(d: Dialect, insns: &[Insn], pkt: &[u8], ctx: &Ctx) -> Result<ClassicResult, String> {
    interp::run(d, insns, pkt, ctx).map_err(|t| format!("JIT trap: {t}"))
}

/// Runs `c` (compiled from `insns`) and the interpreter; panics on any difference. `filter`
/// must agree with `run` too.
fn agree(c: &Compiled, d: Dialect, insns: &[Insn], pkt: &[u8], ctx: &Ctx) {
    let want = expected(d, insns, pkt, ctx);
    let got = c.run(pkt, ctx).map_err(|e| match e {
        RunError::Engine(m) => m,
        other => panic!("unexpected error kind {other:?}"),
    });
    assert_eq!(
        got,
        want,
        "{d:?} on packet {pkt:02x?} ctx {ctx:?}\n{}\n{}",
        disassemble(insns),
        c.listing()
    );
    assert_eq!(c.filter(pkt, ctx), want.map_or(0, |r| r.ret));
}

fn stmt(op: Op, k: u32) -> Insn {
    Insn::stmt(op.code(), k)
}

fn jmp(op: Op, k: u32, jt: u8, jf: u8) -> Insn {
    Insn::new(op.code(), jt, jf, k)
}

/// Edge values for A, X and k.
const EDGES: [u32; 16] = [
    0,
    1,
    2,
    3,
    7,
    31,
    32,
    33,
    0xff,
    0x1_0000,
    0x1234_5678,
    0x7fff_ffff,
    0x8000_0000,
    0x8000_0001,
    0xffff_fffe,
    0xffff_ffff,
];

/// A context with everything set: a device, a VLAN tag, headers, fixed random value,
/// a coprocessor table and a small external memory.
fn full_ctx() -> Ctx {
    Ctx {
        protocol: 0x0800,
        pkt_type: 3,
        dev: Some(Dev {
            ifindex: 7,
            hatype: 772,
        }),
        mark: 0xdead_beef,
        queue_mapping: 5,
        rxhash: 0x1234_5678,
        vlan_tci: 0xabc,
        vlan_present: true,
        vlan_tpid: 0x88a8,
        cpu: 3,
        rand: Some(0x5555_aaaa),
        poff: 34,
        mac_header: Some(0),
        network_header: Some(14),
        wirelen: Some(1500),
        cop: CopFn::ALL.to_vec(),
        extmem: Some(vec![11, 22, 33, 44, 55]),
    }
}

/// Contexts that change what loads see: default, full, headers far out, tiny external memory.
fn contexts() -> Vec<Ctx> {
    let far = Ctx {
        mac_header: Some(60),
        network_header: Some(0xffff_fff0),
        wirelen: Some(0),
        cop: vec![CopFn::SetM0, CopFn::IncMLast],
        extmem: Some(vec![9]),
        ..Ctx::default()
    };
    let big_mem = Ctx {
        cop: vec![CopFn::IncMLast],
        extmem: Some((0..30).collect()),
        vlan_present: true,
        ..Ctx::default()
    };
    vec![Ctx::default(), full_ctx(), far, big_mem]
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 37 + 11) as u8).collect()
}

#[test]
fn alu_jump_return_and_register_ops_on_edge_values() {
    // A = pkt[0..4], X = pkt[4..8]; the op; then both registers are stored and A returned.
    // Jumps go to `ret #0x7777` (true) or `ret #0x8888` (false).
    let ops: Vec<Op> = ALL_OPS
        .iter()
        .copied()
        .filter(|op| {
            !matches!(
                op,
                Op::LdAbs(_)
                    | Op::LdInd(_)
                    | Op::LdxMsh
                    | Op::LdMem
                    | Op::LdxMem
                    | Op::St
                    | Op::Stx
            )
        })
        .collect();
    let packets: Vec<Vec<u8>> = EDGES
        .iter()
        .step_by(2)
        .flat_map(|&a| {
            EDGES.iter().map(move |&x| {
                let mut p = a.to_be_bytes().to_vec();
                p.extend_from_slice(&x.to_be_bytes());
                p
            })
        })
        .collect();
    let ctx = full_ctx();
    for d in Dialect::ALL {
        for &op in &ops {
            for k in EDGES {
                let insns = [
                    stmt(Op::LdAbs(Size::W), 4),
                    stmt(Op::Tax, 0),
                    stmt(Op::LdAbs(Size::W), 0),
                    jmp(op, k, 3, 4),
                    stmt(Op::Stx, 1),
                    stmt(Op::St, 0),
                    stmt(Op::RetA, 0),
                    stmt(Op::RetK, 0x7777),
                    stmt(Op::RetK, 0x8888),
                ];
                let c = compile(d, &insns);
                // A backward `ja` loops until the step limit: once is enough.
                let n = if op == Op::Ja { 1 } else { packets.len() };
                for p in &packets[..n] {
                    agree(&c, d, &insns, p, &ctx);
                }
            }
        }
    }
}

#[test]
fn packet_loads_on_edge_offsets() {
    let mut ks: Vec<u32> = vec![
        0,
        1,
        2,
        3,
        4,
        12,
        13,
        14,
        15,
        30,
        60,
        61,
        62,
        63,
        64,
        65,
        0x7fff_fffb,
        0x7fff_fffc,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffc,
        0xffff_ffff,
        SKF_NET_OFF,
        SKF_NET_OFF + 1,
        SKF_NET_OFF + 13,
        SKF_NET_OFF + 50,
        SKF_NET_OFF + 0xf_ffff,
        SKF_LL_OFF,
        SKF_LL_OFF + 12,
        SKF_LL_OFF + 62,
        SKF_LL_OFF - 1,
        SKF_AD_OFF - 1,
        SKF_AD_OFF + 1,
        SKF_AD_OFF + 64,
    ];
    ks.extend((0..16).map(|i| SKF_AD_OFF + 4 * i));
    let xs = [
        0,
        1,
        13,
        60,
        0x7fff_ffff,
        0xffff_ffff,
        SKF_NET_OFF,
        SKF_LL_OFF + 2,
    ];
    let packets: Vec<Vec<u8>> = [0, 1, 2, 3, 4, 5, 13, 14, 15, 16, 20, 34, 64, 66]
        .iter()
        .map(|&n| pattern(n))
        .collect();
    let ctxs = contexts();
    let ops = [
        Op::LdAbs(Size::W),
        Op::LdAbs(Size::H),
        Op::LdAbs(Size::B),
        Op::LdxMsh,
        Op::LdInd(Size::W),
        Op::LdInd(Size::H),
        Op::LdInd(Size::B),
    ];
    for d in Dialect::ALL {
        for op in ops {
            let xs: &[u32] = if matches!(op, Op::LdInd(_)) {
                &xs
            } else {
                &[3]
            };
            for &k in &ks {
                for &x in xs {
                    let insns = [
                        stmt(Op::LdxImm, x),
                        stmt(Op::LdImm, 0x5a5a_5a5a),
                        stmt(op, k),
                        stmt(Op::St, 0),
                        stmt(Op::Stx, 1),
                        stmt(Op::RetA, 0),
                    ];
                    let c = compile(d, &insns);
                    for p in &packets {
                        for ctx in &ctxs {
                            agree(&c, d, &insns, p, ctx);
                        }
                    }
                }
            }
        }
    }
}

/// A netlink attribute stream: (len, type) headers, little-endian, with payloads and nesting.
fn netlink() -> Vec<u8> {
    let mut p = Vec::new();
    let mut attr = |len: u16, ty: u16, payload: &[u8]| {
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&ty.to_le_bytes());
        p.extend_from_slice(payload);
    };
    attr(8, 1, &[1, 2, 3, 4]);
    attr(6, 2, &[5, 6, 0, 0]);
    attr(16, 3 | 0x8000, &[]);
    attr(8, 4, &[7, 8, 9, 10]);
    attr(4, 5, &[]);
    attr(5, 0x4003, &[0xaa, 0, 0, 0]);
    p
}

#[test]
fn ancillary_loads_in_every_context() {
    let pkts = [Vec::new(), pattern(3), netlink(), pattern(64)];
    for ext in Ext::ALL.into_iter().filter(|&e| e != Ext::Len) {
        let k = ext.k().unwrap();
        for a in [0, 4, 8, 12, 20, 100, 0xffff_fffc] {
            for x in [0, 1, 2, 3, 4, 5, 0x4003] {
                let insns = [
                    stmt(Op::LdxImm, x),
                    stmt(Op::LdImm, a),
                    stmt(Op::LdAbs(Size::W), k),
                    stmt(Op::St, 0),
                    stmt(Op::LdAbs(Size::B), k),
                    stmt(Op::St, 1),
                    stmt(Op::LdImm, a),
                    stmt(Op::LdAbs(Size::H), k),
                    stmt(Op::RetA, 0),
                ];
                let c = compile(Dialect::Linux, &insns);
                for p in &pkts {
                    for ctx in contexts() {
                        agree(&c, Dialect::Linux, &insns, p, &ctx);
                        let no_rand = Ctx { rand: None, ..ctx };
                        agree(&c, Dialect::Linux, &insns, p, &no_rand);
                    }
                }
            }
        }
    }
}

#[test]
fn memory_store_and_coprocessor_calls() {
    let mut ctxs = contexts();
    for words in [0usize, 1, 2, 15, 16, 17, 30, 40] {
        ctxs.push(Ctx {
            cop: CopFn::ALL.to_vec(),
            extmem: Some((0..words as u32).map(|i| i * 3 + 1).collect()),
            ..Ctx::default()
        });
    }
    ctxs.push(Ctx {
        extmem: None,
        cop: Vec::new(),
        ..Ctx::default()
    });
    let pkts = [Vec::new(), pattern(4)];
    for d in Dialect::ALL {
        for k in [
            0,
            1,
            4,
            14,
            15,
            16,
            17,
            29,
            30,
            31,
            1 << 29,
            0x7fff_ffff,
            0xffff_ffff,
        ] {
            for op in [Op::LdMem, Op::LdxMem, Op::St, Op::Stx] {
                let insns = [
                    stmt(Op::LdImm, 0x1111),
                    stmt(Op::LdxImm, 0x2222),
                    stmt(op, k),
                    stmt(Op::Tax, 0),
                    stmt(Op::Stx, 0),
                    stmt(Op::RetA, 0),
                ];
                let c = compile(d, &insns);
                for ctx in &ctxs {
                    for p in &pkts {
                        agree(&c, d, &insns, p, ctx);
                    }
                }
            }
        }
        for idx in [0, 1, 3, 5, 6, 7, 8, 0xffff_ffff] {
            for op in [Op::Cop, Op::Copx] {
                let insns = [
                    stmt(Op::LdImm, 41),
                    stmt(Op::LdxImm, idx),
                    stmt(op, idx),
                    stmt(op, idx),
                    stmt(Op::Copx, 0),
                    stmt(Op::RetA, 0),
                ];
                let c = compile(d, &insns);
                for ctx in &ctxs {
                    for p in &pkts {
                        agree(&c, d, &insns, p, ctx);
                    }
                }
            }
        }
    }
}

#[test]
fn len_loads_follow_each_dialect() {
    let insns = [
        stmt(Op::LdxLen, 0),
        stmt(Op::LdLen, 0),
        stmt(Op::Stx, 3),
        stmt(Op::RetA, 0),
    ];
    for d in Dialect::ALL {
        let c = compile(d, &insns);
        for ctx in contexts() {
            for n in [0, 1, 60, 1500] {
                agree(&c, d, &insns, &pattern(n), &ctx);
            }
        }
    }
}

#[test]
fn unknown_opcodes_and_ret_x_return_zero() {
    for d in Dialect::ALL {
        for code in [0x0e, 0x16 | 0x100, 0x0d, 0xc0, 0xff, 0x05 | 0x08] {
            let insns = [stmt(Op::LdImm, 5), Insn::stmt(code, 9), stmt(Op::RetA, 0)];
            let c = compile(d, &insns);
            agree(&c, d, &insns, &[], &Ctx::default());
        }
    }
}

#[test]
fn inject_flip_jeq_inverts_jeq() {
    let insns = [
        stmt(Op::LdxImm, 5),
        stmt(Op::LdImm, 5),
        jmp(Op::Jmp(JmpOp::Jeq, Src::K), 5, 0, 1),
        stmt(Op::RetK, 1),
        jmp(Op::Jmp(JmpOp::Jeq, Src::X), 0, 1, 0),
        stmt(Op::RetK, 2),
        stmt(Op::RetK, 3),
    ];
    let flip = Inject {
        flip_jeq: true,
        ..Inject::default()
    };
    let good = compile(Dialect::Linux, &insns);
    let bad = compile_with(Dialect::Linux, &insns, flip);
    assert_eq!(good.filter(&[], &Ctx::default()), 1);
    assert_eq!(bad.filter(&[], &Ctx::default()), 2);
}

/// Decodes the generated code.
fn decode(c: &Compiled) -> Vec<iced_x86::Instruction> {
    let code = &c.assembled().code;
    let mut d = iced_x86::Decoder::with_ip(64, code, 0, iced_x86::DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

#[test]
fn inject_crash_and_hang_emit_their_faults() {
    use crate::jit::{CRASH_IMM, HANG_IMM};
    let inject = Inject {
        crash: true,
        hang: true,
        ..Inject::default()
    };
    let crash = [stmt(Op::LdxImm, CRASH_IMM), stmt(Op::RetA, 0)];
    let c = compile_with(Dialect::Linux, &crash, inject);
    let stores_to_zero = decode(&c).iter().any(|i| {
        i.mnemonic() == iced_x86::Mnemonic::Mov
            && i.op0_kind() == iced_x86::OpKind::Memory
            && i.memory_base() == iced_x86::Register::RAX
    });
    assert!(stores_to_zero, "{}", c.listing());
    // Without the switch the same program runs.
    assert_eq!(
        compile(Dialect::Linux, &crash).filter(&[], &Ctx::default()),
        0
    );

    let hang = [stmt(Op::LdImm, HANG_IMM), stmt(Op::RetA, 0)];
    let c = compile_with(Dialect::Linux, &hang, inject);
    let self_jump = decode(&c)
        .iter()
        .any(|i| i.is_jmp_short_or_near() && i.near_branch64() == i.ip());
    assert!(self_jump, "{}", c.listing());
    assert_eq!(
        compile(Dialect::Linux, &hang).filter(&[], &Ctx::default()),
        HANG_IMM
    );
}

#[test]
fn listing_names_each_instruction_and_stub() {
    let insns = [
        stmt(Op::LdAbs(Size::H), 12),
        jmp(Op::Jmp(JmpOp::Jeq, Src::K), 0x806, 0, 1),
        stmt(Op::RetK, 0xffff_ffff),
        stmt(Op::RetK, 0),
    ];
    let c = compile(Dialect::Linux, &insns);
    let l = c.listing();
    for want in [
        "; prologue",
        "; insn 0: ldh [12]",
        "; insn 1: jeq #0x806",
        "; insn 3: ret #0",
        "; epilogue",
        "; return 0",
        "rol",
    ] {
        assert!(l.contains(want), "{want}\n{l}");
    }
}
