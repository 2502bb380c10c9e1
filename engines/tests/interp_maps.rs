//! Integration tests of maps, helpers and tail calls in the eBPF reference interpreter
//! (`interp`): every map type and helper with each of its kernel return codes, value pointers,
//! tail-call chains and limits, `lddw` map references, faults for bad arguments, the snapshot form
//! and the load-time checks, plus random helper sequences that must never panic.
//!
//! Expected values come from the kernel sources the interpreter documents (kernel/bpf/hashtab.c,
//! arraymap.c, queue_stack_maps.c, core.c) and the helper descriptions in
//! include/uapi/linux/bpf.h.

use bpfconf_engines::interp::ebpf::{EbpfResult, Interpreter};
use bpfconf_engines::{EbpfProgram, RunError};
use bpfconf_spec::ebpf::asm::assemble;
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::Insn;

mod support;

#[path = "interp_maps/array.rs"]
mod array;
#[path = "interp_maps/engine.rs"]
mod engine;
#[path = "interp_maps/faults.rs"]
mod faults;
#[path = "interp_maps/hash.rs"]
mod hash;
#[path = "interp_maps/queue.rs"]
mod queue;
#[path = "interp_maps/random.rs"]
mod random;
#[path = "interp_maps/tail.rs"]
mod tail;

/// `-ENOENT` as R0 holds it.
const ENOENT: u64 = -2i64 as u64;
/// `-E2BIG`.
const E2BIG: u64 = -7i64 as u64;
/// `-EEXIST`.
const EEXIST: u64 = -17i64 as u64;
/// `-EINVAL`.
const EINVAL: u64 = -22i64 as u64;

/// Size of the memory buffer tests run on: result slots of 8 bytes each.
const MEM: usize = 256;

/// Assembles test assembly, panicking on errors (test programs are fixed).
fn asm(text: &str) -> Vec<Insn> {
    assemble(text).unwrap_or_else(|e| panic!("bad test assembly: {e}\n{text}"))
}

/// A map definition named `m<kind>`, without flags.
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

/// A hash map with u32 keys and u64 values.
fn hash(max_entries: u32) -> MapDef {
    def(MapKind::Hash, 4, 8, max_entries)
}

/// An array map of u64 values.
fn array(max_entries: u32) -> MapDef {
    def(MapKind::Array, 4, 8, max_entries)
}

/// A program with maps and no tail-call targets.
fn program(text: &str, maps: Vec<MapDef>) -> EbpfProgram {
    EbpfProgram {
        insns: asm(text),
        maps,
        progs: Vec::new(),
    }
}

/// The interpreter for `p`; its load checks must pass.
fn interp(p: &EbpfProgram) -> Interpreter {
    Interpreter::for_program(p).unwrap_or_else(|e| panic!("load failed: {e}"))
}

/// Runs `p` on a zeroed [`MEM`]-byte buffer with initial map contents `init`; must succeed.
fn run(p: &EbpfProgram, init: &[MapContents]) -> EbpfResult {
    interp(p)
        .run_with_maps(&[0; MEM], init)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The fault message of running `p` (on a zeroed buffer, maps empty); it must fault.
fn fault(p: &EbpfProgram) -> String {
    match interp(p).run(&[0; MEM]) {
        Err(RunError::Fault(m)) => m,
        other => panic!("expected a fault, got {other:?}"),
    }
}

/// The buffer as little-endian u64 result slots.
fn slots(r: &EbpfResult) -> Vec<u64> {
    r.mem
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Keyed contents with u32 keys and u64 values.
fn keyed(pairs: &[(u32, u64)]) -> MapContents {
    MapContents::Keyed(
        pairs
            .iter()
            .map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
            .collect(),
    )
}

/// Sequence contents of u64 values, oldest first.
fn sequence(values: &[u64]) -> MapContents {
    MapContents::Sequence(values.iter().map(|v| v.to_le_bytes().to_vec()).collect())
}

/// Assembly: R1 = map `m`, R2 = pointer to the u32 key `k` at [r10-4].
fn key_arg(m: u32, k: i32) -> String {
    format!("lddw_map_fd %r1, {m}\nstw [%r10-4], {k}\nmov %r2, %r10\nadd %r2, -4\n")
}

/// Assembly: `map_lookup_elem(m, &k)`, R0 stored in result slot `slot` (R0 kept).
fn lookup(m: u32, k: i32, slot: usize) -> String {
    format!("{}call 1\nstxdw [%r6+{}], %r0\n", key_arg(m, k), slot * 8)
}

/// Assembly: `map_update_elem(m, &k, &v, flags)` with the u64 value `v` at [r10-16], R0 stored in
/// result slot `slot`.
fn update(m: u32, k: i32, v: i32, flags: i32, slot: usize) -> String {
    format!(
        "{}stdw [%r10-16], {v}\nmov %r3, %r10\nadd %r3, -16\nmov %r4, {flags}\ncall 2\n\
         stxdw [%r6+{}], %r0\n",
        key_arg(m, k),
        slot * 8
    )
}

/// Assembly: `map_delete_elem(m, &k)`, R0 stored in result slot `slot`.
fn delete(m: u32, k: i32, slot: usize) -> String {
    format!("{}call 3\nstxdw [%r6+{}], %r0\n", key_arg(m, k), slot * 8)
}

/// Assembly: `map_push_elem(m, &v, flags)` with the u64 `v` at [r10-16], R0 in slot `slot`.
fn push(m: u32, v: i32, flags: i32, slot: usize) -> String {
    format!(
        "lddw_map_fd %r1, {m}\nstdw [%r10-16], {v}\nmov %r2, %r10\nadd %r2, -16\n\
         mov %r3, {flags}\ncall 87\nstxdw [%r6+{}], %r0\n",
        slot * 8
    )
}

/// Assembly: `map_pop_elem` (helper 88) or `map_peek_elem` (89) of map `m` into [r10-24], which
/// first holds a marker; R0 goes to slot `slot` and the value read to slot `slot + 1`.
fn pop(helper: u32, m: u32, slot: usize) -> String {
    format!(
        "lddw_map_fd %r1, {m}\nstdw [%r10-24], -1\nmov %r2, %r10\nadd %r2, -24\ncall {helper}\n\
         stxdw [%r6+{}], %r0\nldxdw %r0, [%r10-24]\nstxdw [%r6+{}], %r0\n",
        slot * 8,
        slot * 8 + 8
    )
}

/// The prologue every program here starts with: R6 = the result buffer.
const START: &str = "mov %r6, %r1\n";
/// The epilogue: return 0.
const END: &str = "mov %r0, 0\nexit\n";
