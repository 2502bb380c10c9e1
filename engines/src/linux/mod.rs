//! The Linux kernel engine: classic filters attached to sockets (`SO_ATTACH_FILTER`).
//! PLACEHOLDER: being written.

use crate::{Engine, EngineInfo, Input, LoadError, Loaded, Program};

/// The Linux kernel as a BPF engine.
#[derive(Debug, Default)]
pub struct Linux;

impl Linux {
    /// Creates the engine.
    pub fn new() -> Self {
        Linux
    }
}

impl Engine for Linux {
    fn name(&self) -> &str {
        "linux"
    }
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "linux".into(),
            arch: std::env::consts::ARCH.into(),
            facts: vec![],
        }
    }
    fn availability(&self) -> Result<(), String> {
        Err("not written yet".into())
    }
    fn supports(&self, _: &Program, _: &Input) -> Result<(), String> {
        Err("not written yet".into())
    }
    fn load(&self, _: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        Err(LoadError::Unsupported("not written yet".into()))
    }
}
