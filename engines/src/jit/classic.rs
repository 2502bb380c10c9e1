//! Classic BPF code generator (placeholder until the generator lands).

use super::emit::Assembled;
use super::Inject;
use crate::interp::classic::ClassicResult;
use crate::{ClassicProgram, LoadError, RunError};
use bpfconf_spec::case::Ctx;

/// A compiled classic program.
pub struct Compiled {
    asm: Assembled,
}

impl Compiled {
    /// Compiles a checked program.
    pub fn new(_p: &ClassicProgram, _inject: Inject) -> Result<Compiled, LoadError> {
        Err(LoadError::Unsupported("classic JIT not written yet".into()))
    }

    /// Runs the program on a packet.
    pub fn run(&self, _pkt: &[u8], _ctx: &Ctx) -> Result<ClassicResult, RunError> {
        let _ = &self.asm;
        Err(RunError::Unsupported("classic JIT not written yet".into()))
    }
}
