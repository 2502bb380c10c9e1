//! The rbpf engines: the interpreter (`rbpf-interp`), the x86-64 JIT (`rbpf-jit`) and the
//! Cranelift backend (`rbpf-cranelift`, feature `rbpf-cranelift`) of the `rbpf` crate 0.4.
//! eBPF only.
//!
//! # Machine model
//!
//! Programs run in an `EbpfVmRaw`: R1 = the address of a copy of the memory buffer (0 when it is
//! empty), R10 = the top of a 512-byte stack. rbpf's interpreter and JIT leave R2 alone (0 in
//! the interpreter; the JIT's R2 is its `mbuff_len` argument, 0 for a raw VM), while
//! bpf_conformance's model, which ours follows, has R2 = the buffer length. So for a non-empty
//! buffer those two backends run the program behind a one-slot prologue `mov r2, len` (all jumps
//! and calls are relative, so nothing else moves; rbpf's messages then count the prologue as
//! insn #0). The Cranelift backend sets R2 itself and runs the program as given.
//!
//! # Isolation
//!
//! Loading (rbpf's verifier, and compiling for the JIT backends) runs in-process: it is plain
//! Rust, and a panic there is caught by the runner. Every *run* happens in a forked child
//! ([`isolate`]) with a deadline ([`DEFAULT_TIMEOUT`], or `BPFCONF_RBPF_TIMEOUT_MS`): rbpf's
//! interpreter has no instruction limit, and its JIT does no memory checks, so an endless loop
//! or a wild access costs one child, never the runner. A child that dies by `SIGSEGV`/`SIGBUS`
//! (JIT) or `SIGILL` (a Cranelift bounds trap) is a *fault*; other deaths are crashes
//! (`RunError::Crash`), deadlines timeouts (`RunError::Timeout`), panics engine errors.
//!
//! # What rbpf 0.4 does not support
//!
//! [`unsupported`] refuses, with a reason, the instruction forms rbpf 0.4.1's verifier rejects
//! or its backends misexecute, read from its source (`src/verifier.rs`, `src/interpreter.rs`,
//! `src/jit.rs`, `src/cranelift.rs`) and confirmed by running the suites with
//! `BPFCONF_RBPF_NO_REFUSALS=1`: atomics, signed division/modulo, MOVSX, sign-extending loads,
//! `ja32`, `bswap`, `callx`, BTF-id calls, `lddw` with a non-zero `src`, the legacy packet loads,
//! and (Cranelift) local calls. Maps and tail calls are not supported at all; the only helper
//! registered is bpf_conformance's id 5 (see [`unwind_helper`]).
//!
//! What rbpf runs but runs differently is *not* hidden: those cases fail, and
//! `corpus/regressions/rbpf.toml` holds minimized cases of each bug (the interpreter
//! zero-extends the immediate of 64-bit `jeq`/`jne`/`jgt`/`jge`/`jlt`/`jle`; `mod32` by zero keeps
//! the upper half; the JIT's `le16`/`le32` do not truncate, its `mov32` from a register does not
//! zero-extend, and its callees share the caller's stack frame; the verifier lets `lddw` write
//! r10). Also: the interpreter gives each local call 256 bytes of one 512-byte stack, so deep call
//! chains fault; jump targets are computed in `i16` (programs over 32767 slots go astray); and
//! rbpf relies on wrapping arithmetic, so a build with overflow checks (the dev profile) panics
//! on backward calls and `neg` of `i64::MIN` — build with `[profile.dev.package.rbpf]
//! overflow-checks = false` or in release.

pub mod isolate;

use crate::{
    EbpfProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program, RunError,
};
use bpfconf_spec::ebpf::isa::{slot_starts, Form, IsaRow, Sel};
use bpfconf_spec::ebpf::{to_bytes, Insn};
use isolate::{run_isolated, ChildError};
use std::sync::OnceLock;
use std::time::Duration;

/// Default deadline of one run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The version of the `rbpf` crate these engines are built against.
pub const RBPF_VERSION: &str = "0.4.1";

/// Which rbpf backend runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The interpreter (`execute_program`).
    Interp,
    /// The x86-64 JIT (`jit_compile`, `execute_program_jit`).
    Jit,
    /// The Cranelift JIT (`cranelift_compile`, `execute_program_cranelift`).
    Cranelift,
}

impl Backend {
    /// The engine name.
    pub const fn engine_name(self) -> &'static str {
        match self {
            Backend::Interp => "rbpf-interp",
            Backend::Jit => "rbpf-jit",
            Backend::Cranelift => "rbpf-cranelift",
        }
    }

    /// True when this backend leaves R2 unset, so runs need the `mov r2, len` prologue.
    const fn needs_r2_prologue(self) -> bool {
        matches!(self, Backend::Interp | Backend::Jit)
    }
}

/// An rbpf engine.
#[derive(Debug, Clone)]
pub struct Rbpf {
    backend: Backend,
    timeout: Duration,
}

impl Rbpf {
    /// The engine for a backend, with the deadline from `BPFCONF_RBPF_TIMEOUT_MS` or
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(backend: Backend) -> Self {
        let timeout = std::env::var("BPFCONF_RBPF_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Rbpf { backend, timeout }
    }

    /// The same engine with another per-run deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The engines this build has, in a stable order.
    pub fn all() -> Vec<Rbpf> {
        let mut v = vec![Rbpf::new(Backend::Interp), Rbpf::new(Backend::Jit)];
        if cfg!(feature = "rbpf-cranelift") {
            v.push(Rbpf::new(Backend::Cranelift));
        }
        v
    }
}

/// bpf_conformance's helper 5 as rbpf's own bpf_conformance plugin registers it
/// (`examples/rbpf_plugin.rs`): it returns its first argument. rbpf cannot unwind from a helper
/// (uBPF's `ubpf_set_unwind_function_index`), so where uBPF stops the program when the helper
/// returns 0, rbpf goes on; `call_unwind_fail.data` (R1 = -1, no unwind) passes.
pub fn unwind_helper(a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

/// The helper ids registered in every VM.
const HELPERS: [(u32, rbpf::Helper); 1] = [(5, unwind_helper)];

/// True when `BPFCONF_RBPF_NO_REFUSALS` is set (see [`row_unsupported`]).
fn no_refusals() -> bool {
    static NO_REFUSALS: OnceLock<bool> = OnceLock::new();
    *NO_REFUSALS.get_or_init(|| std::env::var_os("BPFCONF_RBPF_NO_REFUSALS").is_some())
}

/// Why rbpf 0.4.1 cannot run the instruction form `row`, if it cannot (see the module docs).
///
/// With `BPFCONF_RBPF_NO_REFUSALS` set, nothing is refused: every program is handed to rbpf, to
/// re-measure this list against a new rbpf release.
pub fn row_unsupported(row: &IsaRow) -> Option<String> {
    if no_refusals() {
        return None;
    }
    let why = match (row.form, row.sel) {
        (Form::Atomic, _) => {
            "atomic instructions: rbpf 0.4.1's verifier rejects opcodes 0xc3/0xdb \
                              (\"XADD instructions are not supported\")"
        }
        (Form::AluK | Form::AluX, Sel::Off(1)) => {
            "signed division/modulo (off = 1): rbpf 0.4.1 ignores `off` and divides unsigned"
        }
        (Form::AluX, Sel::Off(o)) if o != 0 => {
            "MOVSX (off = 8/16/32): rbpf 0.4.1 ignores `off` and executes a plain mov"
        }
        (Form::Ldx, _) if matches!(row.code, 0x81 | 0x89 | 0x91) => {
            "sign-extending loads (MEMSX): unknown opcodes to rbpf 0.4.1's verifier"
        }
        (Form::Ja32, _) => "ja32 (JMP32|JA): unknown opcode to rbpf 0.4.1's verifier",
        (Form::End, _) if row.code == 0xd7 => {
            "bswap (ALU64|END): unknown opcode to rbpf 0.4.1's verifier"
        }
        (Form::Callx, _) => {
            "callx (0x8d): rbpf 0.4.1 treats the opcode as TAIL_CALL and rejects it"
        }
        (Form::Call, Sel::Src(s)) if s != 0 => {
            "calls by BTF id (src 2): rbpf 0.4.1 rejects the call type"
        }
        (Form::Lddw, Sel::Src(s)) if s != 0 => {
            "lddw with a map/BTF/code `src`: rbpf 0.4.1 has no maps and ignores `src`, loading the \
             raw immediate"
        }
        (Form::LdAbs | Form::LdInd, _) => {
            "legacy packet loads: rbpf 0.4.1 reads them in host byte order and bounds-checks 8 \
             bytes whatever the size"
        }
        _ => return None,
    };
    Some(why.to_string())
}

/// Why rbpf 0.4.1's `backend` cannot run `p`, if it cannot: maps, tail-call targets, or the
/// first instruction whose form [`row_unsupported`] refuses; on the Cranelift backend also local
/// calls (its `CALL` arm ignores `src` and compiles `call local` as a call of helper `imm`).
pub fn unsupported(p: &EbpfProgram, backend: Backend) -> Option<String> {
    if !p.maps.is_empty() || !p.progs.is_empty() {
        return Some("rbpf 0.4.1 has no maps and no tail calls".into());
    }
    let starts = slot_starts(&p.insns);
    for (insn, start) in p.insns.iter().zip(starts) {
        if !start {
            continue;
        }
        if let Some(row) = bpfconf_spec::ebpf::isa::classify_insn(insn) {
            if row.name == "call_helper"
                && !HELPERS
                    .iter()
                    .any(|(id, _)| i64::from(*id) == i64::from(insn.imm))
                && !no_refusals()
            {
                return Some(format!(
                    "helper {}: rbpf 0.4.1 registers no such helper (only bpf_conformance's 5)",
                    insn.imm
                ));
            }
            if let Some(why) = row_unsupported(row) {
                // The reason alone (no pc): reports group skips by their text.
                return Some(why);
            }
            if backend == Backend::Cranelift && row.form == Form::CallLocal && !no_refusals() {
                return Some(
                    "local calls: rbpf 0.4.1's Cranelift backend ignores `src` and compiles \
                     `call local` as a call of helper `imm`"
                        .into(),
                );
            }
        }
    }
    None
}

/// The one-slot prologue `mov r2, len`.
fn r2_prologue(len: usize) -> Option<Insn> {
    let imm = i32::try_from(len).ok()?;
    Some(Insn {
        code: 0xb7,
        dst: 2,
        src: 0,
        off: 0,
        imm,
    })
}

/// Builds a VM for `bytes` with the helpers registered, compiled for `backend`.
fn build_vm(backend: Backend, bytes: &[u8]) -> Result<rbpf::EbpfVmRaw<'_>, String> {
    let mut vm = rbpf::EbpfVmRaw::new(Some(bytes)).map_err(|e| e.to_string())?;
    for (id, f) in HELPERS {
        vm.register_helper(id, f).map_err(|e| e.to_string())?;
    }
    match backend {
        Backend::Interp => {}
        Backend::Jit => jit_compile(&mut vm)?,
        Backend::Cranelift => cranelift_compile(&mut vm)?,
    }
    Ok(vm)
}

#[cfg(target_arch = "x86_64")]
fn jit_compile(vm: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
    vm.jit_compile().map_err(|e| e.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn jit_compile(_: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
    Err("rbpf's JIT emits x86-64 code only".into())
}

#[cfg(feature = "rbpf-cranelift")]
fn cranelift_compile(vm: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
    vm.cranelift_compile().map_err(|e| e.to_string())
}

#[cfg(not(feature = "rbpf-cranelift"))]
fn cranelift_compile(_: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
    Err("built without the `rbpf-cranelift` feature".into())
}

/// Runs a built VM on `mem` (in the child).
fn execute(backend: Backend, vm: &rbpf::EbpfVmRaw<'_>, mem: &mut [u8]) -> Result<u64, String> {
    match backend {
        Backend::Interp => vm.execute_program(mem).map_err(|e| e.to_string()),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: JIT code does no memory checks; this runs only in a forked child (module docs),
        // so whatever it does to memory dies with the child.
        Backend::Jit => unsafe { vm.execute_program_jit(mem) }.map_err(|e| e.to_string()),
        #[cfg(feature = "rbpf-cranelift")]
        Backend::Cranelift => vm.execute_program_cranelift(mem).map_err(|e| e.to_string()),
        #[allow(unreachable_patterns)]
        _ => Err("backend not built".into()),
    }
}

struct LoadedRbpf {
    backend: Backend,
    insns: Vec<Insn>,
    timeout: Duration,
}

impl Loaded for LoadedRbpf {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Ebpf(inp) = input else {
            return Err(RunError::Engine(
                "an eBPF program needs an eBPF input".into(),
            ));
        };
        let mut insns = Vec::with_capacity(self.insns.len() + 1);
        if self.backend.needs_r2_prologue() && !inp.mem.is_empty() {
            insns.push(r2_prologue(inp.mem.len()).ok_or_else(|| {
                RunError::Unsupported("memory larger than 2 GiB: R2 cannot hold its length".into())
            })?);
        }
        insns.extend_from_slice(&self.insns);
        let bytes = to_bytes(&insns);
        let backend = self.backend;
        let mut mem = inp.mem.clone();
        let r = run_isolated(self.timeout, move || {
            let vm = build_vm(backend, &bytes)?;
            let r0 = execute(backend, &vm, &mut mem)?;
            Ok((r0, mem))
        });
        let name = backend.engine_name();
        match r {
            Ok(Ok((r0, memory))) => Ok(Outcome {
                ret: Observed::Exact(r0),
                mem: None,
                memory: Some(memory),
                maps: None,
            }),
            Ok(Err(e)) => Err(RunError::Fault(e)),
            Err(ChildError::Signaled(sig))
                if matches!(
                    (backend, sig),
                    (Backend::Jit, libc::SIGSEGV | libc::SIGBUS)
                        | (
                            Backend::Cranelift,
                            libc::SIGILL | libc::SIGSEGV | libc::SIGBUS
                        )
                ) =>
            {
                Err(RunError::Fault(format!(
                    "{name}: the compiled code died with {} (rbpf's JIT does not check memory \
                     accesses; Cranelift traps on out-of-bounds ones)",
                    signal_name(sig)
                )))
            }
            Err(e) => Err(e.into_run_error(name)),
        }
    }
}

pub use crate::signal::signal_name;

impl Engine for Rbpf {
    fn name(&self) -> &str {
        self.backend.engine_name()
    }

    fn info(&self) -> EngineInfo {
        let arch = match self.backend {
            Backend::Interp => "portable",
            _ => std::env::consts::ARCH,
        };
        EngineInfo {
            name: self.name().into(),
            arch: arch.into(),
            facts: vec![
                ("rbpf".into(), RBPF_VERSION.into()),
                ("isolation".into(), "forked child per run".into()),
                ("timeout".into(), format!("{:?}", self.timeout)),
            ],
        }
    }

    fn availability(&self) -> Result<(), String> {
        match self.backend {
            Backend::Interp => Ok(()),
            Backend::Jit if cfg!(target_arch = "x86_64") => Ok(()),
            Backend::Jit => Err("rbpf's JIT emits x86-64 code only".into()),
            Backend::Cranelift if cfg!(feature = "rbpf-cranelift") => Ok(()),
            Backend::Cranelift => Err("built without the `rbpf-cranelift` feature".into()),
        }
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        match (program, input) {
            (Program::Classic(_), _) => Err("rbpf runs eBPF only".into()),
            (Program::Ebpf(p), Input::Ebpf(_)) => unsupported(p, self.backend).map_or(Ok(()), Err),
            _ => Err("an eBPF program needs an eBPF input".into()),
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let Program::Ebpf(p) = program else {
            return Err(LoadError::Unsupported("rbpf runs eBPF only".into()));
        };
        if let Some(why) = unsupported(p, self.backend) {
            return Err(LoadError::Unsupported(why));
        }
        let bytes = to_bytes(&p.insns);
        let backend = self.backend;
        // Verifying and compiling touch no foreign memory: run them here, panics caught.
        match isolate::quietly(|| build_vm(backend, &bytes).map(drop)) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(LoadError::Rejected { rule: None, reason }),
            Err(p) => {
                let msg = isolate::panic_message(&*p);
                // rbpf's x86-64 JIT writes into one 4 KiB page and asserts it has room.
                if backend == Backend::Jit && msg.contains("mem.offset + size") {
                    return Err(LoadError::Unsupported(format!(
                        "the program's machine code does not fit rbpf's one-page (4 KiB) JIT \
                         buffer (rbpf 0.4.1 panics: {msg})"
                    )));
                }
                return Err(LoadError::Engine(format!(
                    "rbpf panicked while loading: {msg}"
                )));
            }
        }
        Ok(Box::new(LoadedRbpf {
            backend,
            insns: p.insns.clone(),
            timeout: self.timeout,
        }))
    }
}
