//! eBPF on the Linux kernel: programs loaded with `bpf(BPF_PROG_LOAD)` and run with
//! `bpf(BPF_PROG_TEST_RUN)`, by raw system calls (module `syscall`).
//!
//! # Program type
//! `BPF_PROG_TYPE_XDP`, as bpf_conformance's libbpf plugin uses: its test run takes input data
//! (`data_in`), copies the data back after the run (`data_out`), and XDP programs may read and
//! write their packet directly with pointer arithmetic, which is what a program given "R1 =
//! pointer to memory" does. (`SOCKET_FILTER` has no direct packet access; `SCHED_CLS` has, but
//! its test run builds an skb and parses an Ethernet header from the data, for nothing here.)
//! The license is `GPL` so that every helper an XDP program may call is available.
//!
//! # Wrapper (module `wrap`)
//! The kernel enters an XDP program with R1 = `struct xdp_md *`. The program under test becomes
//! a bpf-to-bpf subprogram of a small main function that loads `data`/`data_end`, proves to the
//! verifier that `n` bytes are readable (`if data + n > data_end`), calls the program with
//! R1 = data and R2 = n (both 0 for an empty memory, as bpf_conformance defines), stores the
//! callee's R0 through a direct map-value pointer into a one-entry `BPF_MAP_TYPE_ARRAY` and
//! returns `XDP_PASS`. The full 64-bit R0 is then read with `BPF_MAP_LOOKUP_ELEM` (the test
//! run's `retval` has only 32 bits). The memory after the run is the test run's `data_out`:
//! [`Outcome::memory`] is always observed. The subprogram has its own 512-byte frame (main uses
//! no stack) and one of the kernel's 8 call frames. A program that calls `bpf_tail_call` is
//! instead the XDP main function itself ("inline" style, module `wrap`), because the helper
//! needs the context in R1 and a tail call replaces the calling frame.
//!
//! # Maps, helpers and tail calls
//! [`EbpfProgram::maps`] are created with `BPF_MAP_CREATE` when the program is loaded (module
//! `maps`); `lddw` with `src` 1/2 has its map index replaced by the descriptor, `src` 5/6
//! index the load's `fd_array` (the same maps in order). Before every run each map is brought
//! to the run's initial contents ([`EbpfInput::maps`](crate::EbpfInput::maps)) and after it
//! every map is dumped into [`Outcome::maps`] (always `Some`, empty without maps). A map
//! definition the kernel refuses rejects the load with the errno (`EPERM`, `ENOMEM`,
//! `EOPNOTSUPP`: unsupported); initial contents that do not fit the definitions are
//! unsupported inputs.
//!
//! Tail-call targets ([`EbpfProgram::progs`]) are loaded with the same wrapper for the same
//! memory length, and each verified length has its own copies of the prog_arrays, filled
//! with that length's targets (module `maps` says why). A target starts like any program:
//! R1 = the memory (with the caller's writes), R2 = its length, a fresh stack frame (no other
//! register readable); its return value ends the run.
//!
//! `bpf_get_smp_processor_id` is made deterministic by pinning the calling thread to
//! [`HELPER_CPU`] (0) around the test run when any program of the set calls it
//! (`BPF_PROG_TEST_RUN` runs XDP programs on the calling CPU); a run is unsupported if the
//! thread may not run there. `bpf_get_prandom_u32` and `bpf_ktime_get_ns` just run.
//!
//! ## Measured (Linux 6.18, x86_64, JIT on; asserted by `engines/tests/linux_maps.rs`)
//! Helper errors are negative errnos sign-extended to 64 bits in R0.
//! - array: lookup of an index >= `max_entries` is NULL; a value pointer stays valid and
//!   writable across helper calls. Update checks, in order: flags (minus `BPF_F_LOCK`) >
//!   `BPF_EXIST` → `-EINVAL`; index >= `max_entries` → `-E2BIG`; `BPF_NOEXIST` → `-EEXIST`
//!   (every element exists); `BPF_F_LOCK` (no spin lock) → `-EINVAL`. `BPF_EXIST` succeeds.
//!   Delete → `-EINVAL`. `lddw` src 2 works only on a one-entry array, offset < `value_size`
//!   (else the load is refused: "invalid access to map value pointer").
//! - hash: lookup miss → NULL. Update: flags > `BPF_EXIST` or `BPF_F_LOCK` → `-EINVAL` (before
//!   the key is looked at); `BPF_NOEXIST` on a present key → `-EEXIST`; `BPF_EXIST` on a
//!   missing key → `-ENOENT`; a new key in a full map → `-E2BIG` (also with `BPF_NOEXIST`, and
//!   the same with `BPF_F_NO_PREALLOC`); replacing a key in a full map works. Delete: 0 or
//!   `-ENOENT`. No direct value address (`lddw` src 2 refused).
//! - queue/stack: push appends (queue back / stack top); full → `-E2BIG`, unless `BPF_EXIST`,
//!   which first drops the *oldest* value (queue front; for a stack its bottom). Push flags
//!   `BPF_NOEXIST` or > `BPF_EXIST` → `-EINVAL`. Pop/peek give the queue's front / the stack's
//!   top; on an empty map `-ENOENT` and the value buffer is zeroed. Lookup/update/delete on
//!   them are refused by the verifier ("invalid zero-sized read"), push/pop/peek on hash and
//!   array maps too ("cannot pass map_type N into func").
//! - tail calls: the index is R3's low 32 bits; an index >= `max_entries` or an empty slot
//!   falls through with R0–R5 unreadable (the verifier refuses reading them) and R6–R9 and
//!   the stack intact. At most 33 tail calls happen per run (`MAX_TAIL_CALL_CNT`): a program
//!   that tail-calls itself runs 34 times. Calls that fall through do not count. Only a
//!   prog_array is accepted ("expected prog array map for tail call").
//! - `bpf_get_smp_processor_id` = [`HELPER_CPU`] in every program, tail-call targets included.
//!
//! ## Limits of the tail-call wrapper
//! `bpf_tail_call` must be in the program's main function (not in a bpf-to-bpf subprogram),
//! and that function must leave one of R6–R9 unnamed (it holds the context); otherwise the
//! program is unsupported. The R1 a program passes to `bpf_tail_call` is ignored (replaced by
//! the context). Reading uninitialised stack is allowed for privileged programs and yields
//! leftovers of the kernel stack, not zeros.
//!
//! # Memory length and the verifier
//! The verifier proves packet accesses against the constant `n`, so each memory length needs
//! its own verified program. [`Loaded`] programs are built per length on first use and cached.
//! [`Engine::load`](crate::Engine::load) verifies the program for the longest memory a run can
//! take ([`MAX_MEM`]) and, if that is refused, for the empty memory (where R1 is the scalar 0,
//! on which arithmetic refused on a pointer is allowed); the load is rejected, with the first
//! reason, only if both are. This is a heuristic: the verifier knows R2 = `n` exactly and
//! skips branches that constant decides, so a program may be refused for both lengths and
//! accepted for another (one that tests R2 before an access, say). A run whose length the
//! verifier refuses although the load was accepted (an access beyond `n` on some path) is
//! reported as [`RunError::Refused`] with the verifier's reason: a rejection for this input
//! (the kernel did not run it), which matches a case expecting a fault or an error.
//!
//! # Test-run data
//! Measured on Linux 6.18 (x86_64) by the tests below: the XDP test run refuses less than
//! `ETH_HLEN` = 14 bytes of data (`EINVAL`) and keeps at most `PAGE_SIZE -
//! XDP_PACKET_HEADROOM - SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` = 4096 - 256 - 320 =
//! 3520 bytes linear ([`MAX_MEM`]); the rest of a longer input goes to fragments, which packet
//! pointers cannot reach (the wrapper's check then fails). Memories shorter than 14 bytes are
//! padded with zeros the program cannot reach (its proven range is `n`).
//!
//! # Verifier rejections
//! A load is first tried without a log (fast); if it fails, it is repeated with a level-1 log
//! of 1 MiB, enlarged to the size the kernel reports (`log_true_size`) when the log was
//! truncated. A failure with a log is [`LoadError::Rejected`] with reason `verifier: ` and the
//! last three non-empty log lines joined with ` | `. The verifier numbers the slots of the
//! wrapped program; a line that starts with a slot number (`17: (c4) w0 s>>= 48`) is
//! renumbered to the program's own slots (`2: ...`), other numbers (`from 5 to 17`) still count
//! the wrapper's slots first (module `wrap`: 15, or 8 for an empty memory, in call style; more
//! in inline style, whose exit and tail-call stubs precede the program and keep their wrapped
//! numbers). A refused tail-call target's reason starts with `progs[i]: `. `EPERM`
//! and `ENOMEM` are unsupported loads (a missing privilege or a limit of the machine);
//! failures without a log are engine errors,
//! except `E2BIG` (more than 1,000,000 slots), a rejection.

mod maps;
mod syscall;
pub mod timed;
mod wrap;

use crate::{EbpfProgram, Input, LoadError, Loaded, Observed, Outcome, Program, RunError};
use bpfconf_spec::ebpf::maps::{MapContents, MapDef, MapKind};
use bpfconf_spec::ebpf::{self, alu, class, jmp, source, Insn};
use maps::{Maps, ProgArrays, Targets};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use syscall::{LoadFailure, MapSpec, MAP_TYPE_ARRAY, PROG_TYPE_XDP};
use wrap::Shape;

/// The longest memory a run can take: the linear data of an XDP test run on x86_64.
pub const MAX_MEM: usize = 3520;
/// The CPU a run is pinned to when a program calls `bpf_get_smp_processor_id`: what the helper
/// returns.
pub const HELPER_CPU: u32 = 0;
/// `BPF_FUNC_get_smp_processor_id`.
const GET_SMP_PROCESSOR_ID: i32 = 8;
/// The test run refuses less data than an Ethernet header.
const MIN_DATA: usize = 14;
/// Initial verifier log size.
const LOG_SIZE: u32 = 1 << 20;
/// Largest verifier log we ask for after a truncation.
const MAX_LOG_SIZE: u32 = 64 << 20;
/// Most per-length programs kept by one loaded program.
const MAX_VARIANTS: usize = 16;
/// `BPF_COMPLEXITY_LIMIT_INSNS`: the most slots a privileged load may have.
const MAX_SLOTS: usize = 1_000_000;
/// `ENOTSUPP`, the kernel-internal errno some verifier refusals leak (524).
const ENOTSUPP: i32 = 524;

/// `Ok` if `bpf()` can load and test-run an XDP program here; otherwise why not. Probed once
/// per process.
pub fn availability() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let mov = Insn::new(class::ALU64 | alu::MOV | source::K, 0, 0, 0, 7);
            let exit = Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0);
            let mut l = load_program(&EbpfProgram::new(vec![mov, exit])).map_err(|e| match e {
                LoadError::Unsupported(why) | LoadError::Engine(why) => format!("eBPF: {why}"),
                LoadError::Rejected { reason, .. } => {
                    format!("eBPF: the probe program was rejected: {reason}")
                }
            })?;
            let out = l
                .run_mem(&[], &[])
                .map_err(|e| format!("eBPF: BPF_PROG_TEST_RUN: {e}"))?;
            if out.ret != Observed::Exact(7) {
                return Err(format!(
                    "eBPF: the probe program returned {:?}, not 7",
                    out.ret
                ));
            }
            Ok(())
        })
        .clone()
}

/// The shapes of the entry program (first) and of every tail-call target, or why one cannot
/// be run.
fn shapes(program: &EbpfProgram) -> Result<Vec<Shape>, String> {
    let mut shapes = vec![wrap::shape(&program.insns)?];
    for (i, p) in program.progs.iter().enumerate() {
        shapes.push(wrap::shape(p).map_err(|why| format!("progs[{i}]: {why}"))?);
    }
    Ok(shapes)
}

/// Whether the kernel engine can load `program` and run it on `input`.
pub(super) fn supports(program: &EbpfProgram, input: &Input) -> Result<(), String> {
    let Input::Ebpf(inp) = input else {
        return Err("an eBPF program needs an eBPF input".into());
    };
    shapes(program)?;
    maps::check_input(&program.maps, &inp.maps, program.progs.len())?;
    if inp.mem.len() > MAX_MEM {
        return Err(too_long(inp.mem.len()));
    }
    availability()
}

fn too_long(n: usize) -> String {
    format!("memory of {n} bytes: an XDP test run keeps at most {MAX_MEM} bytes linear")
}

/// Facts for [`crate::EngineInfo`].
pub(super) fn facts() -> Vec<(String, String)> {
    let mut facts = Vec::new();
    for key in ["unprivileged_bpf_disabled", "bpf_stats_enabled"] {
        if let Some(v) = super::sys::read_text(&format!("/proc/sys/kernel/{key}")) {
            facts.push((key.to_string(), v));
        }
    }
    if let Some(v) = super::sys::read_text("/proc/sys/net/core/bpf_jit_limit") {
        facts.push(("bpf_jit_limit".to_string(), v));
    }
    let ebpf = match availability() {
        Ok(()) => format!("BPF_PROG_TYPE_XDP + BPF_PROG_TEST_RUN, memory up to {MAX_MEM} bytes"),
        Err(why) => format!("unavailable: {why}"),
    };
    facts.push(("ebpf".to_string(), ebpf));
    facts.push((
        "ebpf_get_smp_processor_id".to_string(),
        format!("runs pinned to CPU {HELPER_CPU}"),
    ));
    facts
}

/// Loads an eBPF program (see the module documentation).
pub(super) fn load(program: &Program) -> Result<Box<dyn Loaded>, LoadError> {
    let Program::Ebpf(p) = program else {
        return Err(LoadError::Engine("not an eBPF program".into()));
    };
    availability().map_err(LoadError::Unsupported)?;
    Ok(Box::new(load_program(p)?))
}

/// One program of the set (the entry program or a tail-call target), with map indices (each
/// variant patches in its descriptors).
struct Part {
    /// `entry` or `progs[i]`, for reasons.
    name: String,
    insns: Vec<Insn>,
    shape: Shape,
}

/// The programs verified for one memory length, and their prog_arrays.
struct Variant {
    entry: OwnedFd,
    targets: Vec<OwnedFd>,
    /// Kernel ids of the targets (only with a prog_array).
    ids: Vec<u32>,
    prog_arrays: ProgArrays,
}

fn load_program(p: &EbpfProgram) -> Result<LoadedEbpf, LoadError> {
    let shapes = shapes(p).map_err(LoadError::Unsupported)?;
    if p.insns.is_empty() {
        return Err(LoadError::Rejected {
            rule: None,
            reason: "the kernel refuses an empty program (insn_cnt 0: E2BIG)".into(),
        });
    }
    if let Some(i) = p.progs.iter().position(Vec::is_empty) {
        return Err(LoadError::Rejected {
            rule: None,
            reason: format!("progs[{i}]: the kernel refuses an empty program (insn_cnt 0: E2BIG)"),
        });
    }
    let result = syscall::map_create(
        MapSpec {
            map_type: MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
        },
        "bpfconf_r0",
    )
    .map_err(|e| {
        let what = format!(
            "BPF_MAP_CREATE (array) failed: {}",
            super::sys::errno_name(&e)
        );
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOMEM) => LoadError::Unsupported(what),
            _ => LoadError::Engine(what),
        }
    })?;
    let maps = Maps::create(&p.maps)?;
    let no_fds = vec![-1; p.maps.len()];
    let mut parts = Vec::with_capacity(shapes.len());
    let sources = std::iter::once(&p.insns).chain(&p.progs);
    for (i, (insns, shape)) in sources.zip(shapes).enumerate() {
        let name = match i {
            0 => "entry".to_string(),
            i => format!("progs[{}]", i - 1),
        };
        // References to maps the program does not have are refused before anything loads.
        wrap::patch_maps(&mut insns.clone(), &no_fds).map_err(|why| LoadError::Rejected {
            rule: None,
            reason: if i == 0 {
                why
            } else {
                format!("{name}: {why}")
            },
        })?;
        parts.push(Part {
            name,
            insns: insns.clone(),
            shape,
        });
    }
    let pin = parts.iter().any(|p| p.shape.calls(GET_SMP_PROCESSOR_ID));
    let targets = parts.split_off(1);
    let entry = parts.pop().expect("the entry program");
    let mut l = LoadedEbpf {
        entry,
        targets,
        result,
        defs: p.maps.clone(),
        maps,
        pin,
        variants: HashMap::new(),
        data_in: Vec::new(),
        data_out: Vec::new(),
    };
    // The longest memory first; a program that only the empty memory's R1 = 0 lets through
    // (arithmetic on R1 that is refused on a pointer) is loaded for that one.
    let (n, variant) = match l.load_variant(MAX_MEM) {
        Ok(v) => (MAX_MEM, v),
        Err(rejected @ LoadError::Rejected { .. }) => match l.load_variant(0) {
            Ok(v) => (0, v),
            Err(_) => return Err(rejected),
        },
        Err(e) => return Err(e),
    };
    l.variants.insert(n, variant);
    Ok(l)
}

/// The test run's data buffers: in, and out (the same length).
struct Data<'a> {
    data_in: &'a [u8],
    data_out: &'a mut [u8],
}

/// A program set loaded into the kernel: its maps, the map that receives R0, and per memory
/// length the verified entry program, tail-call targets and prog_arrays.
struct LoadedEbpf {
    entry: Part,
    targets: Vec<Part>,
    result: OwnedFd,
    defs: Vec<MapDef>,
    maps: Maps,
    /// Pin runs to [`HELPER_CPU`].
    pin: bool,
    variants: HashMap<usize, Variant>,
    data_in: Vec<u8>,
    data_out: Vec<u8>,
}

impl LoadedEbpf {
    /// Loads one program of the set wrapped for a memory of `n` bytes, with the map
    /// descriptors `fds` (by map index; also the load's `fd_array`).
    fn load_part(&self, part: &Part, n: usize, fds: &[RawFd]) -> Result<OwnedFd, LoadError> {
        let mut insns = part.insns.clone();
        wrap::patch_maps(&mut insns, fds)
            .map_err(|reason| LoadError::Rejected { rule: None, reason })?;
        let wrapped = wrap::wrap(&insns, &part.shape, n, self.result.as_raw_fd());
        if wrapped.insns.len() > MAX_SLOTS {
            return Err(LoadError::Rejected {
                rule: None,
                reason: format!(
                    "kernel rejected the program (E2BIG): {} slots with the {}-slot wrapper, limit {MAX_SLOTS}",
                    wrapped.insns.len(),
                    wrapped.prologue
                ),
            });
        }
        let bytes = ebpf::to_bytes(&wrapped.insns);
        let mut log_size = 0;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure =
                match syscall::prog_load(PROG_TYPE_XDP, &bytes, c"GPL", "bpfconf", log_size, fds) {
                    Ok(fd) => return Ok(fd),
                    Err(f) => f,
                };
            let errno = failure.error.raw_os_error();
            // libbpf retries EAGAIN too: the kernel may be transiently unable to allocate.
            if errno == Some(libc::EAGAIN) && attempts < 5 {
                continue;
            }
            if matches!(errno, Some(libc::EPERM) | Some(libc::ENOMEM)) {
                return Err(LoadError::Unsupported(format!(
                    "bpf(BPF_PROG_LOAD) failed: {}",
                    super::sys::errno_name(&failure.error)
                )));
            }
            if log_size == 0 {
                log_size = LOG_SIZE;
                continue;
            }
            // A truncated log turns the verifier's errno into ENOSPC: retry with the size the
            // kernel says the whole log needs.
            if errno == Some(libc::ENOSPC)
                && failure.log_true_size > log_size
                && log_size < MAX_LOG_SIZE
            {
                log_size = failure.log_true_size.min(MAX_LOG_SIZE);
                continue;
            }
            return Err(load_error(&failure, wrapped.prologue));
        }
    }

    /// Loads the entry program and every target for a memory of `n` bytes; a refusal of a
    /// target names it (`progs[i]: ...`).
    fn load_variant(&self, n: usize) -> Result<Variant, LoadError> {
        let prog_arrays = ProgArrays::create(&self.defs)?;
        let fds = self.maps.fds(&prog_arrays);
        let entry = self.load_part(&self.entry, n, &fds)?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for part in &self.targets {
            let named = |why: String| format!("{}: {why}", part.name);
            targets.push(self.load_part(part, n, &fds).map_err(|e| match e {
                LoadError::Rejected { rule, reason } => LoadError::Rejected {
                    rule,
                    reason: named(reason),
                },
                LoadError::Unsupported(why) => LoadError::Unsupported(named(why)),
                LoadError::Engine(why) => LoadError::Engine(named(why)),
            })?);
        }
        let ids = if self.defs.iter().any(|d| d.kind == MapKind::ProgArray) {
            targets
                .iter()
                .map(syscall::prog_id)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    LoadError::Engine(format!(
                        "bpf(BPF_OBJ_GET_INFO_BY_FD) failed: {}",
                        super::sys::errno_name(&e)
                    ))
                })?
        } else {
            Vec::new()
        };
        Ok(Variant {
            entry,
            targets,
            ids,
            prog_arrays,
        })
    }

    /// Makes sure the programs for a memory of `n` bytes are loaded.
    fn ensure_variant(&mut self, n: usize) -> Result<(), RunError> {
        if self.variants.contains_key(&n) {
            return Ok(());
        }
        let v = self.load_variant(n).map_err(|e| match e {
            LoadError::Rejected { reason, .. } => RunError::Refused(format!(
                "the verifier refuses the program for a memory of {n} bytes: {reason}"
            )),
            LoadError::Unsupported(why) => RunError::Unsupported(why),
            LoadError::Engine(why) => RunError::Engine(why),
        })?;
        if self.variants.len() >= MAX_VARIANTS {
            self.variants.clear();
        }
        self.variants.insert(n, v);
        Ok(())
    }

    /// Runs on a memory buffer with initial map contents `init` (by map index).
    fn run_mem(&mut self, mem: &[u8], init: &[MapContents]) -> Result<Outcome, RunError> {
        let n = mem.len();
        if n > MAX_MEM {
            return Err(RunError::Unsupported(too_long(n)));
        }
        maps::check_input(&self.defs, init, self.targets.len()).map_err(RunError::Unsupported)?;
        self.ensure_variant(n)?;
        let mut data_in = std::mem::take(&mut self.data_in);
        let mut data_out = std::mem::take(&mut self.data_out);
        data_in.clear();
        data_in.extend_from_slice(mem);
        data_in.resize(n.max(MIN_DATA), 0);
        data_out.clear();
        data_out.resize(data_in.len(), 0);
        let result = self.test_run(n, init, &data_in, &mut data_out);
        self.data_in = data_in;
        let out = result.map(|(ret, maps)| Outcome {
            ret: Observed::Exact(ret),
            mem: None,
            memory: Some(data_out[..n].to_vec()),
            maps: Some(maps),
        });
        self.data_out = data_out;
        out
    }

    /// Resets the maps, runs the variant for `n` bytes once, reads R0 and dumps the maps. On
    /// failure the maps are forgotten.
    fn test_run(
        &mut self,
        n: usize,
        init: &[MapContents],
        data_in: &[u8],
        data_out: &mut [u8],
    ) -> Result<(u64, Vec<MapContents>), RunError> {
        let Some(v) = self.variants.get_mut(&n) else {
            return Err(RunError::Engine("program variant missing".into()));
        };
        let result = Self::run_variant(
            &mut self.maps,
            &self.result,
            self.pin,
            v,
            n,
            init,
            Data { data_in, data_out },
        );
        if result.is_err() {
            self.maps.forget(&mut v.prog_arrays);
        }
        result
    }

    fn run_variant(
        maps: &mut Maps,
        result: &OwnedFd,
        pin: bool,
        v: &mut Variant,
        n: usize,
        init: &[MapContents],
        data: Data<'_>,
    ) -> Result<(u64, Vec<MapContents>), RunError> {
        let Data { data_in, data_out } = data;
        let Variant {
            entry,
            targets,
            ids,
            prog_arrays,
        } = v;
        let targets = Targets { fds: targets, ids };
        maps.reset(prog_arrays, init, &targets)?;
        let pin = match pin {
            true => Some(super::sys::CpuPin::new(HELPER_CPU).map_err(|e| {
                RunError::Unsupported(format!(
                    "bpf_get_smp_processor_id: cannot pin the run to CPU {HELPER_CPU}: {}",
                    super::sys::errno_name(&e)
                ))
            })?),
            false => None,
        };
        let run = syscall::prog_test_run(entry, data_in, data_out).map_err(|e| {
            RunError::Engine(format!(
                "bpf(BPF_PROG_TEST_RUN) failed: {}",
                super::sys::errno_name(&e)
            ))
        });
        drop(pin);
        let run = run?;
        match run.retval {
            wrap::XDP_PASS => {}
            wrap::XDP_DROP => {
                return Err(RunError::Unsupported(format!(
                    "the XDP test run presented fewer than the {n} bytes of memory"
                )))
            }
            other => {
                return Err(RunError::Engine(format!(
                    "the wrapper returned {other}, not XDP_PASS: the program did not return to it"
                )))
            }
        }
        if run.data_size_out as usize != data_in.len() {
            return Err(RunError::Engine(format!(
                "the test run returned {} bytes of data, not {}",
                run.data_size_out,
                data_in.len()
            )));
        }
        let mut value = [0u8; 8];
        syscall::map_lookup(result, &0u32.to_ne_bytes(), &mut value).map_err(|e| {
            RunError::Engine(format!(
                "bpf(BPF_MAP_LOOKUP_ELEM) failed: {}",
                super::sys::errno_name(&e)
            ))
        })?;
        let maps = maps.dump(prog_arrays, &targets)?;
        Ok((u64::from_ne_bytes(value), maps))
    }
}

impl Loaded for LoadedEbpf {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Ebpf(inp) = input else {
            return Err(RunError::Engine(
                "an eBPF program needs an eBPF input".into(),
            ));
        };
        self.run_mem(&inp.mem, &inp.maps)
    }
}

/// A log line with a leading slot number (`17: (c4) w0 s>>= 48`) renumbered to the program's
/// own slots, when it is one of the program's.
fn renumber(line: &str, prologue: usize) -> String {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    match (
        line[..digits].parse::<usize>(),
        line[digits..].starts_with(": "),
    ) {
        (Ok(slot), true) if slot >= prologue => {
            format!("{}{}", slot - prologue, &line[digits..])
        }
        _ => line.to_string(),
    }
}

/// Maps a failed load (with its log) to a load error; `prologue` is the wrapper's length.
fn load_error(f: &LoadFailure, prologue: usize) -> LoadError {
    let lines: Vec<String> = f
        .log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| renumber(l, prologue))
        .collect();
    let errno = f.error.raw_os_error();
    if lines.is_empty() {
        return if errno == Some(libc::E2BIG) {
            LoadError::Rejected {
                rule: None,
                reason: "kernel rejected the program (E2BIG)".into(),
            }
        } else {
            LoadError::Engine(format!(
                "bpf(BPF_PROG_LOAD) failed without a verifier log: {}",
                super::sys::errno_name(&f.error)
            ))
        };
    }
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    let reason = match errno {
        Some(libc::EACCES) | Some(libc::EINVAL) | Some(libc::E2BIG) | Some(ENOTSUPP) => {
            format!("verifier: {tail}")
        }
        _ => format!("verifier ({}): {tail}", super::sys::errno_name(&f.error)),
    };
    LoadError::Rejected { rule: None, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r0_is_r2() -> [Insn; 2] {
        [
            Insn::new(class::ALU64 | alu::MOV | source::X, 0, 2, 0, 0),
            Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0),
        ]
    }

    /// The test-run data limits the module documentation states.
    #[test]
    fn xdp_test_run_data_limits() {
        if let Err(why) = availability() {
            eprintln!("skipped: {why}");
            return;
        }
        let mut l = load_program(&EbpfProgram::new(r0_is_r2().to_vec())).unwrap();
        let mut run = |variant: usize, data: usize| {
            l.ensure_variant(variant).unwrap();
            let prog = &l.variants[&variant].entry;
            let mut out = vec![0u8; data];
            syscall::prog_test_run(prog, &vec![0u8; data], &mut out)
                .map(|r| r.retval)
                .map_err(|e| e.raw_os_error())
        };
        assert_eq!(run(0, 13), Err(Some(libc::EINVAL)));
        assert_eq!(run(0, 14), Ok(wrap::XDP_PASS));
        assert_eq!(run(MAX_MEM, MAX_MEM - 1), Ok(wrap::XDP_DROP));
        assert_eq!(run(MAX_MEM, MAX_MEM), Ok(wrap::XDP_PASS));
        assert_eq!(run(MAX_MEM, MAX_MEM + 100), Ok(wrap::XDP_PASS));
        // Data beyond MAX_MEM is not linear: a program built for MAX_MEM + 1 bytes fails its
        // check whatever the data size.
        assert_eq!(run(MAX_MEM + 1, MAX_MEM + 1), Ok(wrap::XDP_DROP));
        assert_eq!(run(MAX_MEM + 1, 8000), Ok(wrap::XDP_DROP));
    }

    #[test]
    fn log_lines_are_renumbered() {
        assert_eq!(renumber("17: (c4) w0 s>>= 48", 15), "2: (c4) w0 s>>= 48");
        assert_eq!(renumber("3: (b7) r1 = 0", 15), "3: (b7) r1 = 0");
        assert_eq!(renumber("invalid shift 48", 15), "invalid shift 48");
        assert_eq!(renumber("17 is not a slot", 15), "17 is not a slot");
        let f = LoadFailure {
            error: std::io::Error::from_raw_os_error(libc::EACCES),
            log: "0: (bf) r0 = r5\n\n16: (95) exit\nR5 !read_ok\nprocessed 1 insns\n".into(),
            log_true_size: 0,
        };
        let LoadError::Rejected { rule: None, reason } = load_error(&f, 15) else {
            panic!("not a rejection");
        };
        assert_eq!(
            reason,
            "verifier: 1: (95) exit | R5 !read_ok | processed 1 insns"
        );
    }
}
