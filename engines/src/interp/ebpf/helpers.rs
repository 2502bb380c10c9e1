//! Helper functions: a registry from helper id to implementation, consulted by `call imm`
//! (`src` = 0) and by `callx` (the id in a register).
//!
//! A helper receives R1–R5 and a [`HelperCtx`] through which it reaches the run's memory, maps
//! and helper state; it returns R0, ends the whole program ([`HelperReturn::Exit`]), leaves R0 as
//! it was ([`HelperReturn::Void`]) or transfers to a tail-call target
//! ([`HelperReturn::TailCall`]). Calling an id with no entry is a fault `unknown helper N`.
//! R1–R5 keep their values across a helper call (they are caller-saved scratch registers whose
//! contents after a call no program may rely on; the kernel's interpreter leaves them untouched
//! too).
//!
//! # Tables
//!
//! - [`Helpers::bpf_conformance`] is the environment bpf_conformance's test files assume: its
//!   plugins (e.g. uBPF's `ubpf_plugin`) register uBPF's test helpers and make id 5 the *unwind*
//!   helper (`ubpf_set_unwind_function_index(vm, 5)`), which returns its first argument; when
//!   that value is 0 the VM stops the program with R0 = 0. The only conformance files that call
//!   a helper, `call_unwind_fail.data` (`call 5`) and `callx.data` (`call %r2` with R2 = 5), rely
//!   on exactly that, so that is the one helper provided. It is [`super::Interpreter::new`]'s
//!   default.
//! - [`Helpers::kernel`] has the kernel's helpers the spec covers (`bpfconf_spec::ebpf::maps::HELPERS`),
//!   by their UAPI ids: 1 `map_lookup_elem`, 2 `map_update_elem`, 3 `map_delete_elem`,
//!   5 `ktime_get_ns`, 7 `get_prandom_u32`, 8 `get_smp_processor_id`, 12 `tail_call`,
//!   87 `map_push_elem`, 88 `map_pop_elem`, 89 `map_peek_elem`. The map helpers' semantics are in
//!   [`super::maps`].
//! - [`Helpers::kernel_with_unwind`] is the kernel table with id 5 as bpf_conformance's unwind.
//!
//! Id 5 is the one clash. [`Helpers::for_program`] (what the `interp` engine uses) settles it by
//! the program: one that declares maps or tail-call targets gets [`Helpers::kernel`] (it is
//! written for the kernel's environment), a map-less program [`Helpers::kernel_with_unwind`] (so
//! every bpf_conformance file keeps working, and the other kernel helpers remain callable). A
//! case that wants `ktime_get_ns` must therefore declare at least one map.
//!
//! # Kernel helpers without maps
//!
//! - `get_smp_processor_id` returns 0: the interpreter is one CPU, number 0 (the `linux` engine
//!   pins its thread, so its value is fixed too, but not necessarily 0).
//! - `get_prandom_u32` returns the next number of a SplitMix64 generator seeded with the
//!   interpreter's seed ([`DEFAULT_SEED`], or `Interpreter::with_seed`), restarted for every run:
//!   the upper 32 bits of each output, zero-extended.
//! - `ktime_get_ns` returns a monotonic clock that starts at [`KTIME_START`] (1 s) on the first
//!   call and advances [`KTIME_STEP`] (1 µs) per call, restarted for every run.
//!
//! Both are nondeterministic in the kernel (the spec marks them so): only runs of the same engine
//! reproduce these values; comparisons across engines must ignore values derived from them.
//!
//! # `tail_call(ctx, prog_array, index)`
//!
//! As `JMP_TAIL_CALL` in `___bpf_prog_run` (kernel/bpf/core.c) and the x86-64 JIT: the index is
//! the low 32 bits of R3; the call falls through when the index is ≥ `max_entries`, when
//! [`MAX_TAIL_CALL_CNT`] (33) tail calls have already been made in this run (the check is
//! `tail_call_cnt >= MAX_TAIL_CALL_CNT`), or when the slot is empty. The count goes up only for
//! calls that happen: the x86-64 JIT has counted that way since "bpf, x64: Fix tailcall
//! hierarchy" (v6.10) and the interpreter since "bpf: Do not increment tailcall count when prog
//! is NULL" (2026; older interpreters and JITs also counted calls to empty slots). A tail call
//! that falls through leaves R0 (and every register) unchanged: `bpf_tail_call`'s prototype
//! returns `RET_VOID`, the kernel's interpreter and JITs write nothing, and the verifier marks
//! R0 unreadable after the call, so no accepted program can tell. On success the target starts
//! at its first slot with every register as it was (R1 = the context) except R10, which points
//! to a fresh zero-filled frame at the same call depth; its `exit` returns to whoever called the
//! function that made the tail call (the end of the run from the main function).

use super::maps::Maps;
use super::memory::Memory;
use crate::EbpfProgram;
use bpfconf_spec::ebpf::maps::MAX_TAIL_CALL_CNT;

/// What a helper call does to the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperReturn {
    /// Continue after the call with this value in R0.
    Value(u64),
    /// Continue after the call, R0 unchanged (a helper returning `void`).
    Void,
    /// End the whole program, returning this value.
    Exit(u64),
    /// Replace the running function by tail-call target `EbpfProgram::progs[n]`.
    TailCall(usize),
}

/// The default seed of `get_prandom_u32`'s generator.
pub const DEFAULT_SEED: u64 = 0x6270_6663_6f6e_6621;
/// What `ktime_get_ns` returns on a run's first call (1 s).
pub const KTIME_START: u64 = 1_000_000_000;
/// How much `ktime_get_ns` advances per call (1 µs).
pub const KTIME_STEP: u64 = 1_000;

/// Per-run helper state: the tail-call count and the nondeterministic helpers' sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperState {
    /// Tail calls made so far in this run.
    pub tail_calls: u32,
    /// SplitMix64 state of `get_prandom_u32`.
    prandom: u64,
    /// `ktime_get_ns` calls so far.
    ktime_calls: u64,
}

impl HelperState {
    /// Fresh state for a run, the random generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        HelperState {
            tail_calls: 0,
            prandom: seed,
            ktime_calls: 0,
        }
    }

    /// The next `get_prandom_u32` value.
    pub fn next_prandom(&mut self) -> u32 {
        self.prandom = self.prandom.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.prandom;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }

    /// The next `ktime_get_ns` value.
    pub fn next_ktime(&mut self) -> u64 {
        let t = KTIME_START.wrapping_add(self.ktime_calls.wrapping_mul(KTIME_STEP));
        self.ktime_calls += 1;
        t
    }
}

impl Default for HelperState {
    fn default() -> Self {
        HelperState::new(DEFAULT_SEED)
    }
}

/// What a helper can reach besides its arguments.
#[derive(Debug)]
pub struct HelperCtx<'a> {
    /// The run's address space (memory buffer, live stack frames, map values).
    pub memory: &'a mut Memory,
    /// The run's maps.
    pub maps: &'a mut Maps,
    /// Tail-call count, random generator and clock.
    pub state: &'a mut HelperState,
}

/// A helper implementation: arguments R1–R5 in order; an `Err` is a fault with that message.
pub type HelperFn = fn(&mut HelperCtx<'_>, [u64; 5]) -> Result<HelperReturn, String>;

/// One registered helper.
#[derive(Debug, Clone, Copy)]
pub struct Helper {
    /// A name for messages.
    pub name: &'static str,
    /// The implementation.
    pub func: HelperFn,
}

/// A helper table, keyed by helper id.
///
/// A vector sorted by id: tables have about ten entries and one is built for every program
/// loaded (fuzzing loads ~10^5 a second), where a `BTreeMap` cost a node allocation per entry.
#[derive(Debug, Clone, Default)]
pub struct Helpers {
    table: Vec<(u32, Helper)>,
}

/// The id of bpf_conformance's (uBPF's) unwind helper.
pub const UNWIND: u32 = 5;

/// uBPF's test helper 5: returns R1; a zero result ends the program with R0 = 0.
fn unwind(_: &mut HelperCtx<'_>, args: [u64; 5]) -> Result<HelperReturn, String> {
    Ok(match args[0] {
        0 => HelperReturn::Exit(0),
        v => HelperReturn::Value(v),
    })
}

/// The map an argument names (`arg` = register name for messages).
fn map_arg(ctx: &HelperCtx<'_>, arg: &str, value: u64) -> Result<usize, String> {
    ctx.maps.resolve(arg, value)
}

/// `bpf_map_lookup_elem(map, key)` (id 1).
fn map_lookup_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .lookup(ctx.memory, m, a[1])
        .map(HelperReturn::Value)
}

/// `bpf_map_update_elem(map, key, value, flags)` (id 2).
fn map_update_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .update(ctx.memory, m, a[1], a[2], a[3])
        .map(HelperReturn::Value)
}

/// `bpf_map_delete_elem(map, key)` (id 3).
fn map_delete_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .delete(ctx.memory, m, a[1])
        .map(HelperReturn::Value)
}

/// `bpf_ktime_get_ns()` (id 5 in the kernel table).
fn ktime_get_ns(ctx: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<HelperReturn, String> {
    Ok(HelperReturn::Value(ctx.state.next_ktime()))
}

/// `bpf_get_prandom_u32()` (id 7).
fn get_prandom_u32(ctx: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<HelperReturn, String> {
    Ok(HelperReturn::Value(ctx.state.next_prandom() as u64))
}

/// `bpf_get_smp_processor_id()` (id 8): CPU 0.
fn get_smp_processor_id(_: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<HelperReturn, String> {
    Ok(HelperReturn::Value(0))
}

/// `bpf_tail_call(ctx, prog_array, index)` (id 12); see the module documentation.
fn tail_call(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R2", a[1])?;
    let target = ctx.maps.prog_at(m, a[2] as u32)?;
    match target {
        Some(prog) if ctx.state.tail_calls < MAX_TAIL_CALL_CNT => {
            ctx.state.tail_calls += 1;
            Ok(HelperReturn::TailCall(prog as usize))
        }
        _ => Ok(HelperReturn::Void),
    }
}

/// `bpf_map_push_elem(map, value, flags)` (id 87).
fn map_push_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .push(ctx.memory, m, a[1], a[2])
        .map(HelperReturn::Value)
}

/// `bpf_map_pop_elem(map, value)` (id 88).
fn map_pop_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .pop(ctx.memory, m, a[1], true)
        .map(HelperReturn::Value)
}

/// `bpf_map_peek_elem(map, value)` (id 89).
fn map_peek_elem(ctx: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<HelperReturn, String> {
    let m = map_arg(ctx, "R1", a[0])?;
    ctx.maps
        .pop(ctx.memory, m, a[1], false)
        .map(HelperReturn::Value)
}

impl Helpers {
    /// No helpers at all: every call faults.
    pub fn empty() -> Self {
        Helpers::default()
    }

    /// The helpers bpf_conformance's test files assume (see the module documentation).
    pub fn bpf_conformance() -> Self {
        let mut h = Helpers::empty();
        h.register(UNWIND, "unwind", unwind);
        h
    }

    /// The kernel's helpers the spec covers, by their UAPI ids (see the module documentation).
    pub fn kernel() -> Self {
        let mut h = Helpers {
            table: Vec::with_capacity(11),
        };
        let all: [(u32, &'static str, HelperFn); 10] = [
            (1, "map_lookup_elem", map_lookup_elem),
            (2, "map_update_elem", map_update_elem),
            (3, "map_delete_elem", map_delete_elem),
            (5, "ktime_get_ns", ktime_get_ns),
            (7, "get_prandom_u32", get_prandom_u32),
            (8, "get_smp_processor_id", get_smp_processor_id),
            (12, "tail_call", tail_call),
            (87, "map_push_elem", map_push_elem),
            (88, "map_pop_elem", map_pop_elem),
            (89, "map_peek_elem", map_peek_elem),
        ];
        for (id, name, func) in all {
            h.register(id, name, func);
        }
        h
    }

    /// [`Helpers::kernel`] with id 5 as bpf_conformance's unwind helper.
    pub fn kernel_with_unwind() -> Self {
        let mut h = Helpers::kernel();
        h.register(UNWIND, "unwind", unwind);
        h
    }

    /// The table the `interp` engine gives `p`: [`Helpers::kernel`] when it declares maps or
    /// tail-call targets, else [`Helpers::kernel_with_unwind`].
    pub fn for_program(p: &EbpfProgram) -> Self {
        // Built once: every program loaded (~10^5 a second when fuzzing) gets a copy.
        static TABLES: std::sync::OnceLock<(Helpers, Helpers)> = std::sync::OnceLock::new();
        let (with_unwind, kernel) =
            TABLES.get_or_init(|| (Helpers::kernel_with_unwind(), Helpers::kernel()));
        if p.maps.is_empty() && p.progs.is_empty() {
            with_unwind.clone()
        } else {
            kernel.clone()
        }
    }

    /// Registers (or replaces) helper `id`, returning the previous entry.
    pub fn register(&mut self, id: u32, name: &'static str, func: HelperFn) -> Option<Helper> {
        let helper = Helper { name, func };
        match self.table.binary_search_by_key(&id, |e| e.0) {
            Ok(i) => Some(std::mem::replace(&mut self.table[i].1, helper)),
            Err(i) => {
                self.table.insert(i, (id, helper));
                None
            }
        }
    }

    /// The helper registered under `id`.
    pub fn get(&self, id: u32) -> Option<&Helper> {
        let i = self.table.binary_search_by_key(&id, |e| e.0).ok()?;
        Some(&self.table[i].1)
    }

    /// The registered ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|e| e.0)
    }

    /// Calls helper `id` (a register value for `callx`, so any 64-bit number).
    pub fn call(
        &self,
        id: u64,
        ctx: &mut HelperCtx<'_>,
        args: [u64; 5],
    ) -> Result<HelperReturn, String> {
        let helper = u32::try_from(id)
            .ok()
            .and_then(|id| self.get(id))
            .ok_or_else(|| format!("unknown helper {id}"))?;
        (helper.func)(ctx, args).map_err(|e| format!("helper {id} ({}): {e}", helper.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lookup_and_unwind() {
        let h = Helpers::bpf_conformance();
        assert_eq!(h.ids().collect::<Vec<_>>(), vec![UNWIND]);
        let mut mem = Memory::default();
        let mut maps = Maps::default();
        let mut state = HelperState::default();
        let mut ctx = HelperCtx {
            memory: &mut mem,
            maps: &mut maps,
            state: &mut state,
        };
        let args = |a| [a, 0, 0, 0, 0];
        assert_eq!(h.call(5, &mut ctx, args(7)), Ok(HelperReturn::Value(7)));
        assert_eq!(h.call(5, &mut ctx, args(0)), Ok(HelperReturn::Exit(0)));
        assert_eq!(
            h.call(1 << 32 | 5, &mut ctx, args(1)),
            Err(format!("unknown helper {}", 1u64 << 32 | 5))
        );
        assert_eq!(
            Helpers::empty().call(5, &mut ctx, args(1)),
            Err("unknown helper 5".into())
        );
        let mut custom = Helpers::empty();
        custom.register(9, "fails", |_, _| Err("boom".into()));
        assert_eq!(
            custom.call(9, &mut ctx, args(0)),
            Err("helper 9 (fails): boom".into())
        );
    }

    #[test]
    fn tables_and_nondeterministic_sources() {
        let ids: Vec<u32> = Helpers::kernel().ids().collect();
        let spec: Vec<u32> = bpfconf_spec::ebpf::maps::HELPERS
            .iter()
            .map(|h| h.id as u32)
            .collect();
        assert_eq!(ids, spec);
        for id in ids {
            let k = Helpers::kernel().get(id).unwrap().name;
            assert_eq!(
                Some(k),
                bpfconf_spec::ebpf::maps::helper(id as i32).map(|h| h.name)
            );
        }
        assert_eq!(Helpers::kernel_with_unwind().get(5).unwrap().name, "unwind");
        let mut s = HelperState::new(1);
        let mut t = HelperState::new(1);
        let a: Vec<u32> = (0..4).map(|_| s.next_prandom()).collect();
        let b: Vec<u32> = (0..4).map(|_| t.next_prandom()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        assert_ne!(HelperState::new(2).next_prandom(), a[0]);
        assert_eq!(s.next_ktime(), KTIME_START);
        assert_eq!(s.next_ktime(), KTIME_START + KTIME_STEP);
    }
}
