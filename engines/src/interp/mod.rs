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

struct LoadedClassic {
    prog: ClassicProgram,
}

impl Loaded for LoadedClassic {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Classic(inp) = input else {
            return Err(RunError::Engine(
                "a classic program needs a classic input".into(),
            ));
        };
        let r = classic::run(self.prog.dialect, &self.prog.insns, &inp.packet, &inp.ctx)
            .map_err(|t| RunError::Engine(format!("interpreter trap: {t}")))?;
        Ok(Outcome::classic(Observed::Exact(r.ret as u64), Some(r.mem)))
    }
}

/// A validated eBPF program. Runs use [`ebpf::Interpreter`]'s defaults: the bpf_conformance
/// helper environment ([`ebpf::Helpers::bpf_conformance`]) and [`ebpf::STEP_LIMIT`].
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
        let r = self.interp.run(&inp.mem)?;
        Ok(Outcome {
            ret: Observed::Exact(r.ret),
            mem: None,
            memory: Some(r.mem),
            maps: None,
        })
    }
}

/// Why the eBPF interpreter cannot load `p`, if it cannot: `lddw` with a map/BTF `src`.
fn ebpf_unsupported(p: &EbpfProgram) -> Option<String> {
    let starts = bpfconf_spec::ebpf::isa::slot_starts(&p.insns);
    p.insns
        .iter()
        .zip(starts)
        .position(|(i, start)| start && i.is_lddw() && (1..=6).contains(&i.src))
        .map(|pc| {
            format!(
                "insn {pc}: `lddw` with src {} (map/BTF reference): maps are not supported yet",
                p.insns[pc].src
            )
        })
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
                validate(&p.insns).map_err(|r| LoadError::Rejected {
                    rule: Some(r.rule.name().to_string()),
                    reason: r.to_string(),
                })?;
                if let Some(why) = ebpf_unsupported(p) {
                    return Err(LoadError::Unsupported(why));
                }
                return Ok(Box::new(LoadedEbpf {
                    interp: ebpf::Interpreter::new(&p.insns),
                }));
            }
        };
        let cfg = CheckConfig {
            dialect: p.dialect,
            cop_funcs: p.cop_funcs,
            memwords: p.memwords,
        };
        check(&p.insns, &cfg).map_err(|r| LoadError::Rejected {
            rule: Some(r.rule.to_string()),
            reason: r.to_string(),
        })?;
        Ok(Box::new(LoadedClassic { prog: p.clone() }))
    }
}
