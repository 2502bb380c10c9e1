//! Fuzz target: a generated verifier-friendly eBPF program run on several engines
//! (`BPFCONF_FUZZ_ENGINES`, default `interp,jit,linux?`: the kernel joins when available); any
//! divergence from the first engine in r0, memory or maps panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{EbpfInput, EbpfProgram, Input, Program};
use bpfconf_engines::Engine;
use bpfconf_runner::fuzz::{check_divergences, engines_from_env};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static ENGINES: OnceLock<Vec<Box<dyn Engine>>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let engines = ENGINES.get_or_init(|| engines_from_env("interp,jit,linux?"));
    let mut u = Unstructured::new(data);
    let Ok(body) = u.int_in_range(1..=32usize) else {
        return;
    };
    let Ok(insns) = bpfconf_runner::gen::ebpf::program(&mut u, body) else {
        return;
    };
    check_divergences(
        engines,
        &Program::Ebpf(EbpfProgram::new(insns)),
        &Input::Ebpf(EbpfInput::new(Vec::new())),
    );
});
