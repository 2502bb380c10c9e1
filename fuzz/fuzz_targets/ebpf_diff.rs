//! Fuzz target: a generated verifier-friendly eBPF program run on two engines
//! (`BPFCONF_FUZZ_ENGINES`, default `interp,linux`); any divergence in r0, memory or maps
//! panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{EbpfInput, EbpfProgram, Input, Program};
use bpfconf_runner::fuzz::{check_divergence, pair_from_env, EnginePair};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PAIR: OnceLock<EnginePair> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let pair = PAIR.get_or_init(|| pair_from_env("interp,linux"));
    let mut u = Unstructured::new(data);
    let Ok(body) = u.int_in_range(1..=32usize) else {
        return;
    };
    let Ok(insns) = bpfconf_runner::gen::ebpf::program(&mut u, body) else {
        return;
    };
    check_divergence(
        pair,
        &Program::Ebpf(EbpfProgram::new(insns)),
        &Input::Ebpf(EbpfInput::new(Vec::new())),
    );
});
