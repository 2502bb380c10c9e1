//! The reference interpreter engine (`interp`): our executable semantics of every dialect.

pub mod classic;

use crate::{
    ClassicProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program,
    RunError,
};
use bpfconf_spec::cbpf::check::{check, CheckConfig};

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

    fn supports(&self, program: &Program, _input: &Input) -> Result<(), String> {
        match program {
            Program::Classic(_) => Ok(()),
            Program::Ebpf(_) => Err("the eBPF interpreter is not built yet".into()),
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let Program::Classic(p) = program else {
            return Err(LoadError::Unsupported(
                "the eBPF interpreter is not built yet".into(),
            ));
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
