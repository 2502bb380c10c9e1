//! Differential runs: the reference interpreter (with the spec's Linux checker) against the
//! kernel, on seeded random programs. Both must accept or reject alike, and when both accept,
//! the kernel must deliver what the interpreter's return value projects to.

use super::support::XorShift64Star as Rng;
use super::*;
use bpfconf_engines::interp::Interp;
use bpfconf_engines::linux::realise::eth_protocol;
use bpfconf_spec::cbpf::ext::{SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::ALL_OPS;

/// Which extensions a generated program may read on a path (values that differ run to run or
/// that the case cannot declare are left out).
fn exts(tap: bool) -> Vec<Ext> {
    let mut v = vec![
        Ext::Proto,
        Ext::Type,
        Ext::Ifidx,
        Ext::Hatype,
        Ext::Mark,
        Ext::Queue,
        Ext::Rxhash,
        Ext::Cpu,
        Ext::XorX,
        Ext::VlanTci,
        Ext::VlanPr,
        Ext::VlanTpid,
        Ext::Nla,
        Ext::Nlan,
    ];
    if !tap {
        v.push(Ext::Poff);
    }
    v
}

fn gen_k(r: &mut Rng, op: Op, len: u32, tap: bool) -> u32 {
    match op {
        Op::LdAbs(_) | Op::LdInd(_) | Op::LdxMsh => match r.below(10) {
            0..=3 => r.below(len as u64 + 6) as u32,
            4 if matches!(op, Op::LdAbs(_)) => r.pick(&exts(tap)).k().unwrap(),
            4 | 5 if matches!(op, Op::LdInd(_)) => r.below(len as u64 + 4) as u32,
            4 => SKF_AD_OFF + r.below(SKF_AD_MAX as u64 + 4) as u32,
            5 | 6 => SKF_NET_OFF + r.below(len as u64 + 4) as u32,
            7 => SKF_LL_OFF + r.below(len as u64 + 4) as u32,
            8 => r.pick(&[
                SKF_LL_OFF - 1,
                SKF_NET_OFF - 1,
                u32::MAX,
                0x7fff_ffff,
                SKF_AD_OFF - 1,
            ]),
            _ => r.next() as u32,
        },
        Op::LdMem | Op::LdxMem | Op::St | Op::Stx => {
            if r.below(40) == 0 {
                16
            } else {
                r.below(16) as u32
            }
        }
        Op::Ja => r.below(3) as u32,
        // Index registers aimed at the negative bases, so `ld [x + k]` reaches them.
        Op::LdxImm if r.below(3) == 0 => r.pick(&[SKF_NET_OFF, SKF_LL_OFF, u32::MAX - 3]),
        _ => match r.below(6) {
            0 => r.pick(&[0, 1, 2, 7, 31, 32, 33, 63, 0x8000_0000, u32::MAX]),
            1 => r.below(len as u64 + 2) as u32,
            2 => r.pick(&[SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF]),
            _ => r.next() as u32 >> r.below(32),
        },
    }
}

/// A random program of 1..=12 instructions ending in a return, over the opcodes Linux knows
/// (plus, rarely, RET X and unknown codes, which both checkers must reject).
fn gen_program(r: &mut Rng, len: u32, tap: bool) -> Vec<Insn> {
    let n = 1 + r.below(12) as usize;
    let ops: Vec<Op> = ALL_OPS
        .iter()
        .copied()
        .filter(|o| !matches!(o, Op::Cop | Op::Copx | Op::RetX))
        .collect();
    let mut p = Vec::with_capacity(n);
    for i in 0..n {
        let op = if i + 1 == n {
            r.pick(&[Op::RetA, Op::RetA, Op::RetK])
        } else if r.below(200) == 0 {
            Op::RetX
        } else {
            r.pick(&ops)
        };
        let k = gen_k(r, op, len, tap);
        let (jt, jf) = if matches!(op, Op::Jmp(..)) {
            (r.below(3) as u8, r.below(3) as u8)
        } else {
            (0, 0)
        };
        p.push(Insn::new(op.code(), jt, jf, k));
    }
    if r.below(300) == 0 {
        p[0].code = 0x0d; // not a classic opcode
    }
    p
}

/// How the random programs fared.
#[derive(Default, Debug)]
struct Tally {
    rejected: usize,
    unsupported: usize,
    compared: usize,
    disagreements: Vec<String>,
}

/// Runs one program on both engines, counting the outcome in `t`.
fn compare(t: &mut Tally, k: &Linux, interp: &Interp, insns: &[Insn], packet: &[u8], ctx: &Ctx) {
    if let Some(d) = compare_one(t, k, interp, insns, packet, ctx) {
        t.disagreements.push(d);
    }
}

/// Runs one program on both engines; `Some(description)` if they disagree.
fn compare_one(
    t: &mut Tally,
    k: &Linux,
    interp: &Interp,
    insns: &[Insn],
    packet: &[u8],
    ctx: &Ctx,
) -> Option<String> {
    let prog = program(insns);
    let inp = input(packet, ctx);
    let show = || {
        format!(
            "program {insns:?}, packet {packet:02x?} ({} bytes)",
            packet.len()
        )
    };
    let reference = interp.load(&prog);
    let kernel = k.load(&prog);
    let (mut r, mut kl) = match (reference, kernel) {
        (Err(_), Err(LoadError::Rejected { .. })) => {
            t.rejected += 1;
            return None;
        }
        (Err(e), Ok(_)) => {
            return Some(format!(
                "checker: interp rejects ({e}), kernel accepts: {}",
                show()
            ))
        }
        (Ok(_), Err(e)) => {
            return Some(format!("checker: interp accepts, kernel: {e}: {}", show()))
        }
        (Err(e), Err(ke)) => {
            return Some(format!(
                "kernel load failed: {ke} (interp: {e}): {}",
                show()
            ))
        }
        (Ok(r), Ok(kl)) => (r, kl),
    };
    if k.supports(&prog, &inp).is_err() {
        t.unsupported += 1;
        return None;
    }
    t.compared += 1;
    let want = match r.run(&inp).expect("interp run").ret {
        Observed::Exact(v) => Observed::delivered_for(v as u32, packet.len()),
        other => other,
    };
    let got = kl
        .run(&inp)
        .unwrap_or_else(|e| panic!("kernel run: {e}: {}", show()))
        .ret;
    (want != got).then(|| {
        format!(
            "run on {:?}: interp {want:?}, kernel {got:?}: {}, ctx {ctx:?}",
            k.path_for(insns, &inp).unwrap(),
            show()
        )
    })
}

/// Runs and seed, overridable for longer explorations with `BPFCONF_DIFF_RUNS` and
/// `BPFCONF_DIFF_SEED`.
fn budget(runs: usize, seed: u64) -> (usize, Rng) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let runs = env("BPFCONF_DIFF_RUNS").map_or(runs, |v| v as usize);
    (
        runs,
        Rng(env("BPFCONF_DIFF_SEED").map_or(seed, |s| s ^ seed) | 1),
    )
}

fn report(t: &Tally, runs: usize) {
    eprintln!(
        "{runs} programs: {} rejected by both, {} not realisable, {} compared, {} disagreements",
        t.rejected,
        t.unsupported,
        t.compared,
        t.disagreements.len()
    );
    for d in t.disagreements.iter().take(20) {
        eprintln!("DISAGREEMENT {d}");
    }
    assert!(
        t.compared * 3 >= runs,
        "too few programs were compared: {t:?}"
    );
    assert!(
        t.disagreements.is_empty(),
        "{} of {runs} random programs disagree (first shown above)",
        t.disagreements.len()
    );
}

#[test]
fn interp_agrees_with_kernel_on_unix() {
    let _g = serial();
    let Some(k) = engine() else { return };
    let interp = Interp::new();
    let (runs, mut r) = budget(3000, 0x5eed_0001);
    let mut t = Tally::default();
    for _ in 0..runs {
        let len = r.below(48) as usize;
        let packet: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        let insns = gen_program(&mut r, len as u32, false);
        let ctx = Ctx {
            network_header: Some(0),
            ..Ctx::default()
        };
        compare(&mut t, &k, &interp, &insns, &packet, &ctx);
    }
    report(&t, runs);
}

#[test]
fn interp_agrees_with_kernel_on_tap() {
    let _g = serial();
    let Some((k, d)) = packet_engine() else {
        return;
    };
    let interp = Interp::new();
    let (runs, mut r) = budget(1500, 0x5eed_0002);
    let mut t = Tally::default();
    let dsts = [
        TAP_MAC,
        [0xff; 6],
        [0x33, 0x33, 0, 0, 0, 1],
        [0x02, 0, 0, 0, 0, 9],
    ];
    for _ in 0..runs {
        let len = 14 + r.below(50) as usize;
        let mut packet: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        let dst = r.pick(&dsts);
        packet[..6].copy_from_slice(&dst);
        let ty = r.pick(&[0x0800u16, 0x86dd, 0x0806, 0x0010, 0x88b5]);
        packet[12..14].copy_from_slice(&ty.to_be_bytes());
        let vlan = r.below(4) == 0 && len >= 16;
        let ctx = Ctx {
            protocol: eth_protocol(&packet),
            pkt_type: match dst {
                d if d == TAP_MAC => 0,
                [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => 1,
                [0x33, ..] => 2,
                _ => 3,
            },
            vlan_present: vlan,
            vlan_tci: if vlan { r.next() as u16 } else { 0 },
            vlan_tpid: if vlan { r.pick(&[0x8100, 0x88a8]) } else { 0 },
            ..tap_ctx(&d)
        };
        // Force the tap path: an unreachable ifidx load makes the device observable.
        let insns = on(Ext::Ifidx, &gen_program(&mut r, len as u32, true));
        compare(&mut t, &k, &interp, &insns, &packet, &ctx);
    }
    report(&t, runs);
}

#[test]
fn interp_agrees_with_kernel_on_tun_lo_and_tap_out() {
    let _g = serial();
    let Some((k, d)) = packet_engine() else {
        return;
    };
    let interp = Interp::new();
    let (runs, mut r) = budget(1500, 0x5eed_0003);
    let mut t = Tally::default();
    for i in 0..runs {
        let len = 14 + r.below(50) as usize;
        let mut packet: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        let ty = r.pick(&[0x0800u16, 0x86dd, 0x0806, 0x0010, 0x88b5]);
        packet[12..14].copy_from_slice(&ty.to_be_bytes());
        let (ctx, marker) = match i % 3 {
            0 => {
                let c = Ctx {
                    protocol: r.pick(&[0x0800, 0x86dd, 0x1234, 0]),
                    dev: Some(Dev {
                        ifindex: d.tun_ifindex,
                        hatype: 0xfffe,
                    }),
                    queue_mapping: 1,
                    mac_header: Some(0),
                    network_header: Some(0),
                    ..Ctx::default()
                };
                (c, Ext::Hatype)
            }
            1 if d.lo.is_ok() => {
                packet[..6].copy_from_slice(&r.pick(&[[0u8; 6], [0xff; 6], [0x02, 0, 0, 0, 0, 9]]));
                let c = Ctx {
                    protocol: eth_protocol(&packet),
                    pkt_type: match packet[0] {
                        0 => 0,
                        0xff => 2,
                        _ => 3,
                    },
                    dev: Some(Dev {
                        ifindex: 1,
                        hatype: 772,
                    }),
                    mark: 1 + r.next() as u32 % 0xffff_fffe,
                    mac_header: Some(0),
                    network_header: Some(14),
                    ..Ctx::default()
                };
                (c, Ext::Mark)
            }
            _ if d.tap_out.is_ok() => {
                let c = Ctx {
                    protocol: r.pick(&[0x0800, 0x86dd, 0x4321]),
                    pkt_type: 4,
                    dev: Some(Dev {
                        ifindex: d.tap_ifindex,
                        hatype: 1,
                    }),
                    mark: r.next() as u32,
                    mac_header: Some(0),
                    network_header: Some(14),
                    ..Ctx::default()
                };
                (c, Ext::Type)
            }
            _ => continue,
        };
        let insns = on(marker, &gen_program(&mut r, len as u32, true));
        compare(&mut t, &k, &interp, &insns, &packet, &ctx);
    }
    report(&t, runs);
}

#[test]
fn interp_agrees_with_kernel_on_edges() {
    let _g = serial();
    let Some(k) = engine() else { return };
    let interp = Interp::new();
    let mut t = Tally::default();
    let packet: Vec<u8> = (0..64u32).map(|i| (i * 13 + 5) as u8).collect();
    let ctx = Ctx {
        network_header: Some(0),
        ..Ctx::default()
    };
    let mut ks: Vec<u32> = (0..SKF_AD_MAX + 8).map(|o| SKF_AD_OFF + o).collect();
    ks.extend([
        0,
        1,
        60,
        61,
        62,
        63,
        64,
        65,
        u32::MAX,
        0x7fff_ffff,
        0x8000_0000,
    ]);
    ks.extend([
        SKF_AD_OFF - 1,
        SKF_AD_OFF - 4,
        SKF_NET_OFF - 1,
        SKF_NET_OFF,
        SKF_NET_OFF + 62,
    ]);
    ks.extend([
        SKF_LL_OFF - 1,
        SKF_LL_OFF,
        SKF_LL_OFF + 3,
        SKF_NET_OFF + 0xf_ffff,
    ]);
    let xs = [0u32, 1, 3, u32::MAX, SKF_NET_OFF, SKF_LL_OFF, SKF_AD_OFF];
    for &kk in &ks {
        for size in [Size::B, Size::H, Size::W] {
            // A preset so that "returns A" and "returns 0" differ.
            let abs = [st(Op::LdImm, 5), st(Op::LdAbs(size), kk), ret_a()];
            compare(&mut t, &k, &interp, &abs, &packet, &ctx);
            for &x in &xs {
                let ind = [
                    st(Op::LdImm, 5),
                    st(Op::LdxImm, x),
                    st(Op::LdInd(size), kk),
                    ret_a(),
                ];
                compare(&mut t, &k, &interp, &ind, &packet, &ctx);
            }
        }
        let msh = [
            st(Op::LdImm, 5),
            st(Op::LdxMsh, kk),
            st(Op::Txa, 0),
            ret_a(),
        ];
        compare(&mut t, &k, &interp, &msh, &packet, &ctx);
    }
    for sh in [0u32, 1, 31, 32, 33, 63, 64, 255, u32::MAX] {
        for o in [AluOp::Lsh, AluOp::Rsh] {
            let kp = [st(Op::LdImm, 0x8000_0001), alu_k(o, sh), ret_a()];
            let xp = [
                st(Op::LdImm, 0x8000_0001),
                st(Op::LdxImm, sh),
                st(Op::Alu(o, Src::X), 0),
                ret_a(),
            ];
            compare(&mut t, &k, &interp, &kp, &packet, &ctx);
            compare(&mut t, &k, &interp, &xp, &packet, &ctx);
        }
    }
    for d in [0u32, 1, 3, u32::MAX] {
        for o in [AluOp::Div, AluOp::Mod] {
            compare(
                &mut t,
                &k,
                &interp,
                &[st(Op::LdImm, 100), alu_k(o, d), ret_a()],
                &packet,
                &ctx,
            );
        }
    }
    // M[] read before any store, and after a store on one branch only.
    compare(
        &mut t,
        &k,
        &interp,
        &[st(Op::LdMem, 0), ret_a()],
        &packet,
        &ctx,
    );
    let branch = [
        st(Op::LdAbs(Size::B), 0),
        Insn::new(Op::Jmp(JmpOp::Jeq, Src::K).code(), 0, 1, 5),
        st(Op::St, 2),
        st(Op::LdMem, 2),
        ret_a(),
    ];
    compare(&mut t, &k, &interp, &branch, &packet, &ctx);
    for d in &t.disagreements {
        eprintln!("DISAGREEMENT {d}");
    }
    eprintln!("edges: {t:?}");
    assert!(
        t.disagreements.is_empty(),
        "{} edge programs disagree",
        t.disagreements.len()
    );
}
