//! Fuzz target: a generated classic program (dialect `BPFCONF_FUZZ_DIALECT`, default linux),
//! packet and context run on several engines (`BPFCONF_FUZZ_ENGINES`, default
//! `interp,jit,linux?`: the kernel joins when available); any divergence from the first engine
//! on what both observe panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{Input, Program};
use bpfconf_engines::Engine;
use bpfconf_runner::fuzz::{check_divergences, engines_from_env};
use bpfconf_spec::Dialect;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static ENGINES: OnceLock<(Vec<Box<dyn Engine>>, Dialect)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (engines, dialect) = ENGINES.get_or_init(|| {
        let d = std::env::var("BPFCONF_FUZZ_DIALECT")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(Dialect::Linux);
        (engines_from_env("interp,jit,linux?"), d)
    });
    let mut u = Unstructured::new(data);
    let Ok(body) = u.int_in_range(1..=32usize) else {
        return;
    };
    let Ok((p, i)) = bpfconf_runner::gen::classic::unit(&mut u, *dialect, body) else {
        return;
    };
    check_divergences(engines, &Program::Classic(p), &Input::Classic(i));
});
