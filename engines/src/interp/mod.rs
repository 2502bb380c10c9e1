//! The reference interpreter engine (`interp`): our executable semantics of every dialect.

pub mod classic;
pub mod ebpf;

use crate::{
    ClassicProgram, EbpfProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome,
    Program, RunError,
};
use bpfconf_spec::cbpf::check::{check, CheckConfig};
use bpfconf_spec::ebpf::validate::validate;

/// The reference interpreter.
#[derive(Debug, Default)]
pub struct Interp;

impl Interp {
    /// Creates the engine.
    pub fn new() -> Self {
        Interp
    }
}

/// A checked classic program, decoded once for its dialect.
struct LoadedClassic {
    prog: classic::Prepared,
}

impl Loaded for LoadedClassic {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Classic(inp) = input else {
            return Err(RunError::Engine(
                "a classic program needs a classic input".into(),
            ));
        };
        let r = self
            .prog
            .run(&inp.packet, &inp.ctx)
            .map_err(|t| RunError::Engine(format!("interpreter trap: {t}")))?;
        Ok(Outcome::classic(Observed::Exact(r.ret as u64), Some(r.mem)))
    }
}

/// A validated eBPF program with its maps and tail-call targets. Runs use
/// [`ebpf::Interpreter::for_program`]'s environment: the helper table
/// [`ebpf::Helpers::for_program`] chooses (the kernel's helpers; id 5 is bpf_conformance's unwind
/// helper for programs without maps or tail-call targets, `ktime_get_ns` otherwise),
/// [`ebpf::STEP_LIMIT`], and maps created afresh for every run from the input's initial contents.
/// Outcomes carry every map's snapshot.
struct LoadedEbpf {
    interp: ebpf::Interpreter,
}

impl Loaded for LoadedEbpf {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Ebpf(inp) = input else {
            return Err(RunError::Engine(
                "an eBPF program needs an eBPF input".into(),
            ));
        };
        let r = self.interp.run_input(inp)?;
        Ok(r.into())
    }
}

/// Why the eBPF interpreter cannot load `p`, if it cannot: map flags or sizes it does not model,
/// `lddw` with `src` 3–6.
pub(crate) fn ebpf_unsupported(p: &EbpfProgram) -> Option<String> {
    match ebpf::maps::check_program(p) {
        Err(LoadError::Unsupported(why)) => Some(why),
        _ => None,
    }
}

/// Structural validation of the main program and every tail-call target.
pub(crate) fn validate_ebpf(p: &EbpfProgram) -> Result<(), LoadError> {
    let programs = std::iter::once(("", &p.insns)).chain(p.progs.iter().map(|t| ("t", t)));
    for (i, (kind, insns)) in programs.enumerate() {
        validate(insns).map_err(|r| LoadError::Rejected {
            rule: Some(r.rule.name().to_string()),
            reason: if kind.is_empty() {
                r.to_string()
            } else {
                format!("progs[{}]: {r}", i - 1)
            },
        })?;
    }
    Ok(())
}

impl Engine for Interp {
    fn name(&self) -> &str {
        "interp"
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "interp".into(),
            arch: "portable".into(),
            facts: vec![("version".into(), env!("CARGO_PKG_VERSION").into())],
        }
    }

    fn availability(&self) -> Result<(), String> {
        Ok(())
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        match program {
            Program::Classic(_) => Ok(()),
            Program::Ebpf(p) => match input {
                Input::Ebpf(_) => ebpf_unsupported(p).map_or(Ok(()), Err),
                _ => Err("an eBPF program needs an eBPF input".into()),
            },
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let p = match program {
            Program::Classic(p) => p,
            Program::Ebpf(p) => {
                validate_ebpf(p)?;
                return Ok(Box::new(LoadedEbpf {
                    interp: ebpf::Interpreter::for_program(p)?,
                }));
            }
        };
        check_classic(p)?;
        Ok(Box::new(LoadedClassic {
            prog: classic::Prepared::new(p.dialect, &p.insns),
        }))
    }
}

/// Runs the dialect's checker on a classic program, as every engine of ours does at load.
pub(crate) fn check_classic(p: &ClassicProgram) -> Result<(), LoadError> {
    let cfg = CheckConfig {
        dialect: p.dialect,
        cop_funcs: p.cop_funcs,
        memwords: p.memwords,
    };
    check(&p.insns, &cfg).map_err(|r| LoadError::Rejected {
        rule: Some(r.rule.to_string()),
        reason: r.to_string(),
    })
}
