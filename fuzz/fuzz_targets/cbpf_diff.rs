//! Fuzz target: a generated classic program (dialect `BPFCONF_FUZZ_DIALECT`, default linux),
//! packet and context run on two engines (`BPFCONF_FUZZ_ENGINES`, default `interp,linux`);
//! any divergence on what both observe panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{Input, Program};
use bpfconf_runner::fuzz::{check_divergence, pair_from_env, EnginePair};
use bpfconf_spec::Dialect;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PAIR: OnceLock<(EnginePair, Dialect)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (pair, dialect) = PAIR.get_or_init(|| {
        let d = std::env::var("BPFCONF_FUZZ_DIALECT")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(Dialect::Linux);
        (pair_from_env("interp,linux"), d)
    });
    let mut u = Unstructured::new(data);
    let Ok(body) = u.int_in_range(1..=32usize) else {
        return;
    };
    let Ok((p, i)) = bpfconf_runner::gen::classic::unit(&mut u, *dialect, body) else {
        return;
    };
    check_divergence(pair, &Program::Classic(p), &Input::Classic(i));
});
