//! Integration tests of the Linux kernel engine's maps, helpers and tail calls: every map type
//! and helper the spec covers, run on the real kernel, with asserted return values and final
//! map snapshots. The values asserted here are what the kernel does (Linux 6.18, x86_64, JIT
//! on) and are the reference for the interpreter's semantics.
//!
//! They need root (CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON or CAP_SYS_ADMIN). When the kernel
//! cannot run eBPF they print why and pass, unless `BPFCONF_REQUIRE_KERNEL=1` (set in CI), in
//! which case they fail. All tests take one lock: the descriptor test counts `/proc/self/fd`,
//! which concurrent tests would disturb.

use bpfconf_engines::linux::Linux;
use bpfconf_engines::{
    EbpfInput, EbpfProgram, Engine, Input, LoadError, Observed, Outcome, Program, RunError,
};
use bpfconf_spec::ebpf::asm::assemble;
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::Insn;

mod support;

#[path = "linux_maps/array.rs"]
mod array;
#[path = "linux_maps/hash.rs"]
mod hash;
#[path = "linux_maps/misc.rs"]
mod misc;
#[path = "linux_maps/resources.rs"]
mod resources;
#[path = "linux_maps/sequence.rs"]
mod sequence;
#[path = "linux_maps/tail.rs"]
mod tail;

use support::serial;

/// The engine, or `None` (after printing why) when the kernel cannot run eBPF here and that is
/// not required.
fn engine() -> Option<Linux> {
    let e = Linux::new();
    let probe = Program::Ebpf(EbpfProgram::new(asm("mov %r0, 0\nexit")));
    let availability = e.supports(&probe, &input(&[], vec![]));
    support::available(
        e,
        availability,
        "BPFCONF_REQUIRE_KERNEL",
        "the kernel eBPF engine",
    )
}

/// Assembles bpf_conformance syntax (with `lddw_map_fd %rD, index` for map references).
fn asm(src: &str) -> Vec<Insn> {
    assemble(src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// A map definition.
fn def(kind: MapKind, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: format!("{kind:?}").to_lowercase(),
        kind,
        key_size,
        value_size,
        max_entries,
        flags: 0,
    }
}

/// A program with maps and tail-call targets.
fn program(src: &str, maps: &[MapDef], progs: &[&str]) -> Program {
    Program::Ebpf(EbpfProgram {
        insns: asm(src),
        maps: maps.to_vec(),
        progs: progs.iter().map(|p| asm(p)).collect(),
    })
}

fn input(mem: &[u8], maps: Vec<MapContents>) -> Input {
    Input::Ebpf(EbpfInput {
        mem: mem.to_vec(),
        maps,
    })
}

/// Loads and runs once; panics with the reason on failure.
fn run(e: &Linux, p: &Program, i: &Input) -> Outcome {
    let mut l = e.load(p).unwrap_or_else(|err| panic!("load: {err}"));
    let out = l.run(i).unwrap_or_else(|err| panic!("run: {err}"));
    out
}

/// R0 of an outcome.
fn r0(o: &Outcome) -> u64 {
    match o.ret {
        Observed::Exact(v) => v,
        other => panic!("not exact: {other:?}"),
    }
}

/// The maps of an outcome.
fn maps(o: &Outcome) -> &[MapContents] {
    o.maps.as_deref().expect("the kernel engine observes maps")
}

/// The verifier's (or the engine's) reason for refusing a program.
fn reject(e: &Linux, p: &Program) -> String {
    match e.load(p) {
        Err(LoadError::Rejected { rule: None, reason }) => reason,
        Err(other) => panic!("expected a rejection, got {other:?}"),
        Ok(_) => panic!("expected a rejection, got a loaded program"),
    }
}

/// Why the engine cannot load a program.
fn unsupported(e: &Linux, p: &Program) -> String {
    match e.load(p) {
        Err(LoadError::Unsupported(why)) => why,
        Err(other) => panic!("expected unsupported, got {other:?}"),
        Ok(_) => panic!("expected unsupported, got a loaded program"),
    }
}

/// A helper's negative errno as R0 holds it (sign-extended to 64 bits).
fn neg(errno: i32) -> u64 {
    -(i64::from(errno)) as u64
}

/// Keyed contents with u32 keys and u64 values (little-endian).
fn keyed(entries: &[(u32, u64)]) -> MapContents {
    MapContents::Keyed(
        entries
            .iter()
            .map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
            .collect(),
    )
}

/// An array's full snapshot: value `values[i]` (u64) at index `i`.
fn array_of(values: &[u64]) -> MapContents {
    let entries: Vec<(u32, u64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, *v))
        .collect();
    keyed(&entries)
}

/// A prog_array's contents: slot → program index.
fn slots(entries: &[(u32, u32)]) -> MapContents {
    MapContents::Keyed(
        entries
            .iter()
            .map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
            .collect(),
    )
}

/// Queue/stack contents of u64 values (queue: front first; stack: bottom first).
fn seq(values: &[u64]) -> MapContents {
    MapContents::Sequence(values.iter().map(|v| v.to_le_bytes().to_vec()).collect())
}
