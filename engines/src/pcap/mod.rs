//! The `pcap` engine: libpcap's own `bpf_validate()` and `bpf_filter()` (the BSD dialect), called
//! through FFI on the libpcap installed on this machine.
//!
//! - **Library**: loaded at run time (see [`ffi`]); without it the engine is unavailable, with the
//!   loader's reason, and everything else still builds and runs.
//! - **Load**: `bpf_validate(insns, len)`; a refusal is [`LoadError::Rejected`] with no rule name
//!   (libpcap says only "invalid"), which matches any expected rejection.
//! - **Run**: `bpf_filter(insns, packet, wirelen, buflen)` with `wirelen` from the context
//!   (`ctx.wirelen`, default the packet length) and `buflen` the packet length; the result is
//!   [`Observed::Exact`]. M[] is not observable (libpcap 1.10.3 keeps it on `bpf_filter`'s stack,
//!   uninitialised), so outcomes carry no memory.
//! - **Isolation**: every run happens in a forked worker process ([`isolate`]), one per loaded
//!   program, reused across runs: libpcap 1.10.3 aborts on opcodes its validator accepts but its
//!   interpreter lacks and loops forever on `ja -1`. Such a run ends as [`RunError::Crash`]
//!   (`crashed: SIGABRT (signal 6)`) or [`RunError::Timeout`] (`timed out after N ms`) and
//!   the next run forks a fresh worker; the caller's process is never harmed. The timeout is
//!   2 s, or `BPFCONF_PCAP_TIMEOUT_MS`.
//! - [`direct`] runs programs known to be safe in-process, for benchmarks.
//! - Only the BSD dialect: Linux programs use ancillary loads and negative offsets libpcap does
//!   not have, NetBSD ones a coprocessor and external memory.

pub mod direct;
pub mod ffi;
pub mod isolate;

use crate::{
    ClassicProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program,
    RunError,
};
use bpfconf_spec::Dialect;
use ffi::{libpcap, BpfInsn, Libpcap};
use isolate::Worker;
use std::time::Duration;

/// How long one `bpf_filter` call may take before its child is killed, unless
/// `BPFCONF_PCAP_TIMEOUT_MS` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The libpcap engine.
#[derive(Debug, Clone)]
pub struct Pcap {
    timeout: Duration,
}

impl Default for Pcap {
    fn default() -> Self {
        Pcap::new()
    }
}

impl Pcap {
    /// The engine with the default timeout (or `BPFCONF_PCAP_TIMEOUT_MS`).
    pub fn new() -> Self {
        let timeout = std::env::var("BPFCONF_PCAP_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Pcap { timeout }
    }

    /// The engine with a given per-run timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Pcap { timeout }
    }

    /// The per-run timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Why the engine cannot take `program` (classic, BSD dialect, no NetBSD extensions), if it
/// cannot.
fn unsupported_program(program: &Program) -> Option<String> {
    match program {
        Program::Ebpf(_) => Some("libpcap runs classic BPF only".into()),
        Program::Classic(p) if p.dialect != Dialect::Bsd => {
            Some("libpcap implements the BSD dialect".into())
        }
        Program::Classic(p) if p.cop_funcs != 0 => {
            Some("libpcap has no coprocessor table (NetBSD BPF_COP)".into())
        }
        Program::Classic(_) => None,
    }
}

/// A program `bpf_validate` accepted, and the worker process that runs it (forked on the first
/// run, again after a crash or for a packet larger than its buffer).
struct LoadedPcap {
    lib: &'static Libpcap,
    insns: Vec<BpfInsn>,
    timeout: Duration,
    worker: Option<Worker>,
}

impl LoadedPcap {
    /// A live worker whose buffer fits `len` bytes, forking one if needed.
    fn worker(&mut self, len: usize) -> Result<&mut Worker, isolate::Failure> {
        let usable = self
            .worker
            .as_ref()
            .is_some_and(|w| w.alive() && w.fits(len));
        if !usable {
            self.worker = None;
            let filter = self.lib.filter_fn();
            let prog = self.insns.as_ptr();
            let call = move |pkt: &[u8], wirelen: u32| {
                // SAFETY: prog holds the program bpf_validate accepted (the worker's snapshot of
                // self.insns); pkt is the worker's buffer of pkt.len() readable bytes, a length
                // that fits u32 (checked by run). bpf_filter only reads both.
                unsafe { filter(prog, pkt.as_ptr(), wirelen, pkt.len() as u32) }
            };
            // SAFETY: the closure only calls bpf_filter, a pure C interpreter that neither
            // allocates nor locks, bound at dlopen time (RTLD_NOW: no lazy binding in the
            // child), on memory that exists in this process now (self.insns).
            self.worker = Some(unsafe { Worker::spawn(len, self.timeout, call)? });
        }
        Ok(self.worker.as_mut().expect("just ensured"))
    }
}

impl Loaded for LoadedPcap {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Classic(inp) = input else {
            return Err(RunError::Engine(
                "a classic program needs a classic input".into(),
            ));
        };
        if inp.ctx.extmem.is_some() {
            return Err(RunError::Unsupported(
                "libpcap has no external memory (NetBSD bpf_filter_ext)".into(),
            ));
        }
        if u32::try_from(inp.packet.len()).is_err() {
            return Err(RunError::Unsupported("packet longer than 4 GiB".into()));
        }
        let wirelen = inp.ctx.wirelen_for(inp.packet.len());
        let timeout = self.timeout;
        let r = self
            .worker(inp.packet.len())
            .and_then(|w| w.call(&inp.packet, wirelen, timeout));
        match r {
            Ok(ret) => Ok(Outcome::classic(Observed::Exact(ret as u64), None)),
            Err(f) => Err(f.into_run_error()),
        }
    }
}

impl Engine for Pcap {
    fn name(&self) -> &str {
        "pcap"
    }

    fn info(&self) -> EngineInfo {
        let mut facts = Vec::new();
        match libpcap() {
            Ok(lib) => {
                facts.push(("libpcap".into(), lib.version().to_string()));
                facts.push(("library".into(), lib.path().to_string()));
            }
            Err(e) => facts.push(("libpcap".into(), format!("unavailable: {e}"))),
        }
        facts.push((
            "isolation".into(),
            format!(
                "forked worker per loaded program, timeout {} ms per run",
                self.timeout.as_millis()
            ),
        ));
        EngineInfo {
            name: "pcap".into(),
            arch: std::env::consts::ARCH.into(),
            facts,
        }
    }

    fn availability(&self) -> Result<(), String> {
        libpcap().map(|_| ())
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        if let Some(why) = unsupported_program(program) {
            return Err(why);
        }
        match input {
            Input::Classic(i) if i.ctx.extmem.is_some() => {
                Err("libpcap has no external memory (NetBSD bpf_filter_ext)".into())
            }
            Input::Classic(_) => Ok(()),
            Input::Ebpf(_) => Err("libpcap runs classic BPF only".into()),
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        if let Some(why) = unsupported_program(program) {
            return Err(LoadError::Unsupported(why));
        }
        let Program::Classic(ClassicProgram { insns, .. }) = program else {
            unreachable!("unsupported_program refuses every non-classic program");
        };
        let lib = libpcap().map_err(LoadError::Unsupported)?;
        let insns: Vec<BpfInsn> = insns.iter().map(BpfInsn::from).collect();
        if !lib.validate(&insns) {
            return Err(LoadError::Rejected {
                rule: None,
                reason: "libpcap bpf_validate() refused the program".into(),
            });
        }
        Ok(Box::new(LoadedPcap {
            lib,
            insns,
            timeout: self.timeout,
            worker: None,
        }))
    }
}
