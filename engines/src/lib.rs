//! bpfconf-engines: who runs BPF. The [`Engine`] trait and one module per engine.
//!
//! Every engine — the reference interpreter, the Linux kernel, later our JIT and third-party
//! engines — is driven through the same two steps: [`Engine::load`] (the checker/verifier may
//! reject, with a reason) and [`Loaded::run`] (an [`Outcome`]). What an engine cannot do is said
//! up front by [`Engine::availability`] and [`Engine::supports`], always with a reason, and the
//! runner records it as a skip, never a pass.

pub mod interp;
#[cfg(target_arch = "x86_64")]
pub mod jit;
pub mod linux;
pub mod pcap;
pub mod plugin;
#[cfg(feature = "rbpf")]
pub mod rbpf;
pub mod signal;

use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::Insn;
use bpfconf_spec::Dialect;
use serde::Serialize;

/// A program to load, in any of the families engines may support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A classic BPF program.
    Classic(ClassicProgram),
    /// An eBPF program.
    Ebpf(EbpfProgram),
}

/// An eBPF program: instruction slots as encoded (`lddw` takes two), the maps it uses and the
/// other programs its `prog_array` maps may tail-call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EbpfProgram {
    /// The slots.
    pub insns: Vec<bpfconf_spec::ebpf::Insn>,
    /// Maps, referenced from `lddw` (src 1: imm = index here; src 2: imm = index, second imm
    /// = offset into the value). Engines create them fresh for every run.
    pub maps: Vec<bpfconf_spec::ebpf::maps::MapDef>,
    /// Tail-call targets: a `prog_array` value `i` (u32, little-endian) names `progs[i]`. They
    /// share `maps` with the main program.
    pub progs: Vec<Vec<bpfconf_spec::ebpf::Insn>>,
}

impl EbpfProgram {
    /// A program without maps.
    pub fn new(insns: Vec<bpfconf_spec::ebpf::Insn>) -> Self {
        EbpfProgram {
            insns,
            ..Default::default()
        }
    }
}

/// A classic program together with what its dialect's loader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicProgram {
    /// Dialect whose checker and semantics apply.
    pub dialect: Dialect,
    /// The instructions.
    pub insns: Vec<Insn>,
    /// NetBSD: size of the coprocessor table the program is loaded with (validated at load).
    pub cop_funcs: usize,
    /// Words in the memory store (16, or NetBSD external memory size).
    pub memwords: usize,
}

/// The input of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A packet and its context, for classic programs.
    Classic(ClassicInput),
    /// The memory buffer of an eBPF run.
    Ebpf(EbpfInput),
}

impl Input {
    /// The length return values are projected against: the classic packet's or the eBPF
    /// memory buffer's.
    pub fn data_len(&self) -> usize {
        match self {
            Input::Classic(c) => c.packet.len(),
            Input::Ebpf(e) => e.mem.len(),
        }
    }
}

/// The input of an eBPF run, as bpf_conformance defines it: R1 points to a copy of `mem` and
/// R2 holds its length (R1 = R2 = 0 when `mem` is empty); R10 points one past the 512-byte stack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EbpfInput {
    /// The memory the program may read and write.
    pub mem: Vec<u8>,
    /// Initial contents of the program's maps, by index (missing or `Unknown` = empty; arrays
    /// start zero-filled).
    pub maps: Vec<bpfconf_spec::ebpf::maps::MapContents>,
}

impl EbpfInput {
    /// An input with memory and no map contents.
    pub fn new(mem: Vec<u8>) -> Self {
        EbpfInput {
            mem,
            ..Default::default()
        }
    }
}

/// A packet and the context it is seen in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicInput {
    /// The bytes the filter sees from offset 0.
    pub packet: Vec<u8>,
    /// skb fields, lengths, coprocessor table, external memory.
    pub ctx: Ctx,
}

/// How an engine observed the return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// The exact return value.
    Exact(u64),
    /// Only what a socket delivers: `None` if the packet was dropped (return 0), otherwise the
    /// number of bytes delivered, `min(ret, packet length)`.
    Delivered(Option<u32>),
}

impl Observed {
    /// Projects an exact 32-bit classic return value onto what a socket observes for a packet
    /// of `len` bytes.
    pub fn delivered_for(ret: u32, len: usize) -> Observed {
        if ret == 0 {
            Observed::Delivered(None)
        } else {
            Observed::Delivered(Some(ret.min(len as u32)))
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The return value, as observed.
    pub ret: Observed,
    /// The memory store after the run (M[] or NetBSD external memory), if observable.
    pub mem: Option<Vec<u32>>,
    /// eBPF: the memory buffer after the run, if observable.
    pub memory: Option<Vec<u8>>,
    /// eBPF: every map's contents after the run, by index (canonical snapshots), if observable.
    pub maps: Option<Vec<bpfconf_spec::ebpf::maps::MapContents>>,
}

impl Outcome {
    /// A classic outcome.
    pub fn classic(ret: Observed, mem: Option<Vec<u32>>) -> Self {
        Outcome {
            ret,
            mem,
            memory: None,
            maps: None,
        }
    }
}

/// Why a program was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The engine's checker/verifier refused the program. `rule` is the checker rule name when
    /// the engine can tell (our checker), `None` when it cannot (the kernel says only EINVAL).
    #[error("rejected: {reason}")]
    Rejected {
        /// Checker rule, if known.
        rule: Option<String>,
        /// Human-readable reason.
        reason: String,
    },
    /// The engine cannot load this program at all (unsupported feature, missing privilege…).
    #[error("skipped: {0}")]
    Unsupported(String),
    /// The engine failed for a reason unrelated to the program (I/O, syscall failure…).
    ///
    /// A plugin or isolation child that dies or hangs *while loading* is reported here too, with
    /// a message starting with `crashed:` or `timed out` ([`LoadError::is_crash`],
    /// [`LoadError::is_timeout`]); the runner records those as the verdicts `crash` and
    /// `timeout`, like [`RunError::Crash`] and [`RunError::Timeout`]. (`LoadError` has no
    /// variants of its own for them: loaders match it exhaustively, and a load that crashes
    /// is rare — JIT code crashes when it runs.)
    #[error("engine error: {0}")]
    Engine(String),
}

/// How a message describing a dead child starts (`crashed: killed by SIGSEGV`).
pub const CRASH_PREFIX: &str = "crashed:";
/// How a message describing a child killed at its deadline starts (`timed out after 10.0s`).
pub const TIMEOUT_PREFIX: &str = "timed out";

impl LoadError {
    /// True for an [`LoadError::Engine`] error saying the loading process died (`crashed: …`).
    pub fn is_crash(&self) -> bool {
        matches!(self, LoadError::Engine(m) if m.starts_with(CRASH_PREFIX))
    }

    /// True for an [`LoadError::Engine`] error saying the load timed out (`timed out …`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, LoadError::Engine(m) if m.starts_with(TIMEOUT_PREFIX))
    }
}

/// Why a run produced no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The program did something the ISA forbids at run time (out-of-bounds access, bad call,
    /// stack overflow…): the run has a *fault* outcome. Memory-safe engines report this instead of
    /// corrupting anything.
    #[error("fault: {0}")]
    Fault(String),
    /// The engine cannot realise this input (e.g. an skb field the kernel cannot be made to set).
    #[error("skipped: {0}")]
    Unsupported(String),
    /// The engine's verifier refused the program for this particular input (e.g. the kernel
    /// verifies eBPF against the memory length, so an out-of-bounds access is refused at load
    /// time for a short buffer): equivalent to a load-time rejection.
    #[error("refused: {0}")]
    Refused(String),
    /// The engine failed (I/O, syscall, garbage from a plugin…).
    #[error("engine error: {0}")]
    Engine(String),
    /// The process running the program died: killed by a signal (generated code that faults,
    /// a library that aborts) or exited without a result. Only engines that run code in a
    /// child process (plugins, forked workers, isolation children) can report it; in-process, a
    /// crash takes the caller down. The message is complete and starts with `crashed:` (e.g.
    /// `crashed: killed by SIGSEGV; stderr: …`). The runner records the verdict `crash`.
    #[error("{0}")]
    Crash(String),
    /// The run did not finish by its deadline; the process running it was killed (and is
    /// restarted for the next run). The message is complete and starts with `timed out` (e.g.
    /// `timed out after 10.0s`). The runner records the verdict `timeout`.
    #[error("{0}")]
    Timeout(String),
}

/// Facts about an engine for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    /// Engine name as used with `--engine`.
    pub name: String,
    /// Architecture the engine's code runs on: `portable` for interpreters, else e.g. `x86_64`.
    pub arch: String,
    /// Version facts (kernel release, JIT state, crate versions…), as key/value pairs.
    pub facts: Vec<(String, String)>,
}

/// A program loaded into an engine, ready to run on inputs.
pub trait Loaded: Send {
    /// Runs the program once.
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError>;
}

/// One BPF engine.
pub trait Engine: Send + Sync {
    /// The name used with `--engine`.
    fn name(&self) -> &str;

    /// Architecture and version facts.
    fn info(&self) -> EngineInfo;

    /// `Ok` if the engine can run here at all; otherwise why not (missing privilege, no kernel
    /// support…).
    fn availability(&self) -> Result<(), String>;

    /// `Ok` if the engine can load this program and realise this input; otherwise the reason it
    /// must be skipped. Must be cheap and must not run anything.
    fn supports(&self, program: &Program, input: &Input) -> Result<(), String>;

    /// Loads (checks/verifies) a program.
    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError>;

    /// True for engines that run generated machine code (a JIT) or anything else whose bugs
    /// crash or hang the process running it. `bpfconf run` and `bpfconf report` then run the
    /// engine in a child process (`bpfconf serve --engine NAME --in-process`, restarted after a
    /// crash or a timeout) so that such a case gets the verdict `crash` or `timeout` and the run
    /// goes on; `bpfconf fuzz` keeps it in-process, where a crash is a finding. Default: false.
    fn needs_isolation(&self) -> bool {
        false
    }
}

/// Every engine this build knows, in a stable order.
pub fn all_engines() -> Vec<Box<dyn Engine>> {
    #[allow(unused_mut)]
    let mut v: Vec<Box<dyn Engine>> = vec![
        Box::new(interp::Interp::new()),
        Box::new(linux::Linux::new()),
        Box::new(pcap::Pcap::new()),
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(Box::new(jit::Jit::new()));
    #[cfg(feature = "rbpf")]
    v.extend(
        rbpf::Rbpf::all()
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Engine>),
    );
    v
}

/// Looks an engine up by name: one of [`all_engines`], or an external plugin engine created
/// from its spec (`plugin:<command>`, `jsonl:<command>`; see [`plugin::from_spec`]).
pub fn engine_by_name(name: &str) -> Option<Box<dyn Engine>> {
    if plugin::is_plugin_spec(name) {
        return plugin::from_spec(name).ok();
    }
    all_engines().into_iter().find(|e| e.name() == name)
}
