//! Integration tests of the Linux kernel engine: values the kernel really produces.
//!
//! They need root (or CAP_NET_ADMIN/CAP_NET_RAW) for the packet paths. When the engine is
//! unavailable they print why and pass, unless `BPFCONF_REQUIRE_KERNEL=1` (set in CI), in which
//! case they fail. All tests take one lock: the fd-leak test counts `/proc/self/fd`, which
//! concurrent tests would disturb.

use bpfconf_engines::linux::realise::{Devices, Path, TAP_MAC};
use bpfconf_engines::linux::Linux;
use bpfconf_engines::{ClassicInput, ClassicProgram, Engine, Input, LoadError, Observed, Program};
use bpfconf_spec::case::{Ctx, Dev};
use bpfconf_spec::cbpf::ext::{Ext, SKF_LL_OFF, SKF_NET_OFF};
use bpfconf_spec::cbpf::{AluOp, Insn, JmpOp, Op, Size, Src};
use bpfconf_spec::Dialect;

mod support;

#[path = "linux/diff.rs"]
mod diff;
#[path = "linux/packet.rs"]
mod packet;
#[path = "linux/resources.rs"]
mod resources;
#[path = "linux/unix.rs"]
mod unix;

use support::serial;

fn required() -> bool {
    support::required("BPFCONF_REQUIRE_KERNEL")
}

/// The engine, or `None` (after printing why) when it is unavailable and not required.
fn engine() -> Option<Linux> {
    let e = Linux::new();
    let availability = e.availability();
    support::available(
        e,
        availability,
        "BPFCONF_REQUIRE_KERNEL",
        "the kernel engine",
    )
}

/// The engine and its packet-path devices, or `None` (after printing why).
fn packet_engine() -> Option<(Linux, Devices)> {
    let e = engine()?;
    match e.devices() {
        Ok(d) => Some((e, d)),
        Err(why) if required() => panic!("kernel packet paths required but unavailable: {why}"),
        Err(why) => {
            eprintln!("skipped: kernel packet paths unavailable: {why}");
            None
        }
    }
}

fn st(op: Op, k: u32) -> Insn {
    Insn::stmt(op.code(), k)
}
fn ret_a() -> Insn {
    st(Op::RetA, 0)
}
fn ret_k(k: u32) -> Insn {
    st(Op::RetK, k)
}
fn ld_anc(e: Ext) -> Insn {
    st(Op::LdAbs(Size::W), e.k().unwrap())
}
fn alu_k(o: AluOp, k: u32) -> Insn {
    st(Op::Alu(o, Src::K), k)
}

/// `prog` followed by an unreachable `ld marker; ret #0`: the program then observes `marker`,
/// which steers the engine to the path whose context declares it.
fn on(marker: Ext, prog: &[Insn]) -> Vec<Insn> {
    let mut v = prog.to_vec();
    v.extend([ld_anc(marker), ret_k(0)]);
    v
}

fn program(insns: &[Insn]) -> Program {
    Program::Classic(ClassicProgram {
        dialect: Dialect::Linux,
        insns: insns.to_vec(),
        cop_funcs: 0,
        memwords: 16,
    })
}

fn input(packet: &[u8], ctx: &Ctx) -> Input {
    Input::Classic(ClassicInput {
        packet: packet.to_vec(),
        ctx: ctx.clone(),
    })
}

/// Loads and runs once; returns the path taken and what the socket saw.
fn run(e: &Linux, insns: &[Insn], packet: &[u8], ctx: &Ctx) -> (Path, Option<u32>) {
    let prog = program(insns);
    let inp = input(packet, ctx);
    e.supports(&prog, &inp)
        .unwrap_or_else(|why| panic!("unsupported: {why}"));
    let path = e.path_for(insns, &inp).unwrap();
    let mut l = e
        .load(&prog)
        .unwrap_or_else(|err| panic!("load failed: {err}"));
    match l
        .run(&inp)
        .unwrap_or_else(|err| panic!("run failed on {path:?}: {err}"))
        .ret
    {
        Observed::Delivered(d) => (path, d),
        other => panic!("unexpected observation {other:?}"),
    }
}

/// Reads the 32-bit value an ancillary load yields, a byte per run (`(v >> 8i) & 0xff` + 1
/// delivered bytes of a 300-byte packet); `None` if the load makes the program return 0.
fn anc_value(e: &Linux, ext: Ext, packet: &[u8], ctx: &Ctx) -> (Path, Option<u32>) {
    anc_value_on(e, ext, None, packet, ctx)
}

/// [`anc_value`] with a marker (see [`on`]).
fn anc_value_on(
    e: &Linux,
    ext: Ext,
    marker: Option<Ext>,
    packet: &[u8],
    ctx: &Ctx,
) -> (Path, Option<u32>) {
    assert!(packet.len() >= 257);
    let mut v = 0u32;
    let mut path = Path::Unix;
    for i in 0..4 {
        let prog = [
            ld_anc(ext),
            alu_k(AluOp::Rsh, 8 * i),
            alu_k(AluOp::And, 0xff),
            alu_k(AluOp::Add, 1),
            ret_a(),
        ];
        let prog = match marker {
            Some(m) => on(m, &prog),
            None => prog.to_vec(),
        };
        let (p, d) = run(e, &prog, packet, ctx);
        path = p;
        match d {
            None => return (p, None),
            Some(n) => v |= (n - 1) << (8 * i),
        }
    }
    (path, Some(v))
}

/// An Ethernet frame of `len` bytes to `dst` with `ethertype`, carrying IPv4 + TCP headers
/// (when long enough) so the flow dissector has something to parse.
fn frame(dst: [u8; 6], ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(14)];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    if len >= 54 && ethertype == 0x0800 {
        let ip = [
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        f[14..34].copy_from_slice(&ip);
        f[34 + 12] = 0x50; // TCP data offset 5 words
    }
    f.truncate(len);
    f
}

fn tap_ctx(d: &Devices) -> Ctx {
    Ctx {
        protocol: 0x0800,
        dev: Some(Dev {
            ifindex: d.tap_ifindex,
            hatype: 1,
        }),
        queue_mapping: 1,
        mac_header: Some(0),
        network_header: Some(14),
        ..Ctx::default()
    }
}
