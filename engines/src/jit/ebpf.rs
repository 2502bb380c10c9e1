//! eBPF code generator (placeholder while it is written).

use super::Inject;
use crate::interp::ebpf::EbpfResult;
use crate::{EbpfInput, EbpfProgram, LoadError, RunError};

/// A compiled eBPF program.
pub struct Compiled;

impl Compiled {
    /// Compiles a validated program.
    pub fn new(_p: &EbpfProgram, _inject: Inject) -> Result<Compiled, LoadError> {
        Err(LoadError::Unsupported("eBPF JIT not written yet".into()))
    }

    /// Runs on an input.
    pub fn run_input(&self, _i: &EbpfInput) -> Result<EbpfResult, RunError> {
        Err(RunError::Unsupported("eBPF JIT not written yet".into()))
    }
}
