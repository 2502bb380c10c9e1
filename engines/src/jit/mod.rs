//! Our JIT engine (`jit`): classic BPF (all three dialects) and eBPF compiled to x86-64
//! machine code.
//!
//! # Encoding: our own lean encoder, iced-x86 as its oracle
//!
//! Generators write `a.mov(rax, qword_ptr(r12 + 8))?` — the syntax of
//! [iced-x86](https://crates.io/crates/iced-x86)'s `code_asm`, which the JIT used first — but
//! the calls go to [`x86`], a small encoder for exactly the forms the generators use. Fuzzing
//! compiles ~10^5 programs a second per core, and building an iced `Instruction` per x86
//! instruction and encoding it (even memoized) was ~40% of an interpreter-vs-JIT fuzzing unit;
//! writing bytes straight into the buffer made classic fuzzing 1.6× faster (`bpfconf fuzz`
//! figures in the README). Operand mistakes are compile errors (no impl for the operand types)
//! or [`emit::EmitError`]s, never wrong bytes, and the tests encode every form over every
//! register and displacement/immediate edge with both encoders and compare what iced's decoder
//! reads back. iced-x86 still decodes and formats the code for `bpfconf jit-dump`.
//! dynasmrt assembles at compile time through macros with fixed branch sizes; here the
//! short/near choice is made per branch by our own kernel-style relaxation ([`emit`]).
//!
//! # Layers
//!
//! - [`x86`]: instruction encoding.
//! - [`emit`]: code buffer, labels, branch relaxation until convergence, branch encoding.
//! - [`exec`]: W^X executable memory.
//! - [`ebpf`] and [`classic`]: the code generators and their run-time support.
//! - [`dump`]: disassembly interleaved with the BPF instruction each block came from.
//!
//! # Safety of generated code
//!
//! Generated code touches only memory the reference semantics allow: classic packet loads are
//! bounds-checked (out of bounds → the program returns 0), eBPF loads and stores go through the
//! same region table as the interpreter ([`crate::interp::ebpf::memory`]) with inline fast paths
//! for the buffer and the current stack frame, division by zero and shift counts follow each
//! ISA, and runaway loops hit the interpreter's step limits. A wrong rule therefore shows as a
//! divergence from the interpreter, not as corruption of the harness. Crashes can still happen
//! (that is what JIT bugs do, and [`Inject`] makes them on purpose): `bpfconf run` executes this
//! engine in a `bpfconf serve` child, so a crash or a hang becomes a verdict.

pub mod classic;
pub mod dump;
pub mod ebpf;
pub mod emit;
pub mod exec;
pub mod x86;

use crate::{Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program, RunError};

/// Test-only fault injection, from the `BPFCONF_JIT_INJECT` environment variable (a
/// comma-separated list) or [`Jit::with_inject`]. Each switch breaks one JIT rule so tests can
/// show that the spec catches it; none is on by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inject {
    /// `flip-jeq`: jump-if-equal (classic `jeq`, eBPF `jeq`/`jeq32`) is emitted with the
    /// opposite x86 condition.
    pub flip_jeq: bool,
    /// `crash`: loading the immediate [`CRASH_IMM`] (classic `ld`/`ldx #k`, eBPF `mov`) emits a
    /// store to address 0, so the generated code dies by SIGSEGV.
    pub crash: bool,
    /// `hang`: loading the immediate [`HANG_IMM`] emits a jump to itself.
    pub hang: bool,
}

/// The immediate that [`Inject::crash`] turns into a crash.
pub const CRASH_IMM: u32 = 0x00c0_ffee;
/// The immediate that [`Inject::hang`] turns into an endless loop.
pub const HANG_IMM: u32 = 0x004a_4a4a;

impl Inject {
    /// Parses a `BPFCONF_JIT_INJECT` value; unknown words are an error naming them.
    pub fn parse(s: &str) -> Result<Inject, String> {
        let mut i = Inject::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "flip-jeq" => i.flip_jeq = true,
                "crash" => i.crash = true,
                "hang" => i.hang = true,
                other => {
                    return Err(format!(
                    "BPFCONF_JIT_INJECT: unknown switch `{other}` (known: flip-jeq, crash, hang)"
                ))
                }
            }
        }
        Ok(i)
    }

    /// The switches set in the environment (none when unset).
    pub fn from_env() -> Result<Inject, String> {
        match std::env::var("BPFCONF_JIT_INJECT") {
            Ok(s) => Inject::parse(&s),
            Err(_) => Ok(Inject::default()),
        }
    }

    /// True when any switch is on.
    pub fn any(&self) -> bool {
        self.flip_jeq || self.crash || self.hang
    }
}

/// The JIT engine.
#[derive(Debug, Default)]
pub struct Jit {
    inject: Option<Inject>,
}

impl Jit {
    /// The engine, with fault injection from the environment.
    pub fn new() -> Self {
        Jit { inject: None }
    }

    /// The engine with explicit fault injection (tests).
    pub fn with_inject(inject: Inject) -> Self {
        Jit {
            inject: Some(inject),
        }
    }

    fn inject(&self) -> Result<Inject, LoadError> {
        match self.inject {
            Some(i) => Ok(i),
            None => Inject::from_env().map_err(LoadError::Engine),
        }
    }
}

impl Jit {
    /// Checks and compiles `program` like [`Engine::load`] and returns the generated code
    /// disassembled, interleaved with the BPF instruction each block came from (`bpfconf
    /// jit-dump`).
    pub fn listing(&self, program: &Program) -> Result<String, LoadError> {
        let inject = self.inject()?;
        match program {
            Program::Classic(p) => {
                crate::interp::check_classic(p)?;
                Ok(classic::Compiled::new(p, inject)?.listing())
            }
            Program::Ebpf(p) => {
                crate::interp::validate_ebpf(p)?;
                Ok(ebpf::Compiled::new(p, inject)?.listing())
            }
        }
    }
}

struct LoadedClassic {
    code: classic::Compiled,
}

impl Loaded for LoadedClassic {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Classic(inp) = input else {
            return Err(RunError::Engine(
                "a classic program needs a classic input".into(),
            ));
        };
        let r = self.code.run(&inp.packet, &inp.ctx)?;
        Ok(Outcome::classic(Observed::Exact(r.ret as u64), Some(r.mem)))
    }
}

struct LoadedEbpf {
    code: ebpf::Compiled,
}

impl Loaded for LoadedEbpf {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Ebpf(inp) = input else {
            return Err(RunError::Engine(
                "an eBPF program needs an eBPF input".into(),
            ));
        };
        let r = self.code.run_input(inp)?;
        Ok(r.into())
    }
}

impl Engine for Jit {
    fn name(&self) -> &str {
        "jit"
    }

    fn info(&self) -> EngineInfo {
        let mut facts = vec![
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ("encoder".into(), "iced-x86 1.22".into()),
        ];
        if let Ok(i) = self.inject() {
            if i.any() {
                facts.push(("fault-injection".into(), format!("{i:?}")));
            }
        }
        EngineInfo {
            name: "jit".into(),
            arch: std::env::consts::ARCH.into(),
            facts,
        }
    }

    fn availability(&self) -> Result<(), String> {
        if cfg!(target_arch = "x86_64") {
            Ok(())
        } else {
            Err(format!(
                "the JIT emits x86-64 code; this is {}",
                std::env::consts::ARCH
            ))
        }
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        match program {
            Program::Classic(_) => Ok(()),
            Program::Ebpf(p) => match input {
                Input::Ebpf(_) => crate::interp::ebpf_unsupported(p).map_or(Ok(()), Err),
                _ => Err("an eBPF program needs an eBPF input".into()),
            },
        }
    }

    /// Generated code that goes wrong takes its process down: `bpfconf run` runs the JIT in a
    /// `bpfconf serve` child, so such a case gets the verdict `crash` or `timeout`.
    fn needs_isolation(&self) -> bool {
        true
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let inject = self.inject()?;
        match program {
            Program::Classic(p) => {
                crate::interp::check_classic(p)?;
                Ok(Box::new(LoadedClassic {
                    code: classic::Compiled::new(p, inject)?,
                }))
            }
            Program::Ebpf(p) => {
                crate::interp::validate_ebpf(p)?;
                Ok(Box::new(LoadedEbpf {
                    code: ebpf::Compiled::new(p, inject)?,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_parses_switches_and_rejects_unknown_ones() {
        let i = Inject::parse("flip-jeq, crash").unwrap();
        assert!(i.flip_jeq && i.crash && !i.hang);
        assert!(Inject::parse("").unwrap() == Inject::default());
        let e = Inject::parse("flip-jne").unwrap_err();
        assert!(e.contains("flip-jne"), "{e}");
    }
}
