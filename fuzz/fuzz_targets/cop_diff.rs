//! Fuzz target: NetBSD programs with `cop`/`copx`, a coprocessor table and sometimes external
//! memory, run on several engines (`BPFCONF_FUZZ_ENGINES`, default `interp,jit`: our JIT
//! implements NetBSD's coprocessor calls; the kernel has none and would only refuse them). Any
//! divergence from the first engine panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{ClassicInput, ClassicProgram, Input, Program};
use bpfconf_engines::Engine;
use bpfconf_runner::fuzz::{check_divergences, engines_from_env};
use bpfconf_runner::gen::classic;
use bpfconf_spec::Dialect;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static ENGINES: OnceLock<Vec<Box<dyn Engine>>> = OnceLock::new();

fn unit(u: &mut Unstructured) -> arbitrary::Result<(ClassicProgram, ClassicInput)> {
    let body = u.int_in_range(1..=32usize)?;
    let packet = classic::packet(u)?;
    let mut ctx = classic::ctx(u, Dialect::Netbsd, packet.len())?;
    if ctx.cop.is_empty() {
        ctx.cop = classic::cop_table(u)?;
    }
    let insns = classic::program(u, Dialect::Netbsd, body, packet.len(), ctx.cop.len())?;
    Ok((
        ClassicProgram {
            dialect: Dialect::Netbsd,
            insns,
            cop_funcs: ctx.cop.len(),
            memwords: ctx.memwords(),
        },
        ClassicInput { packet, ctx },
    ))
}

fuzz_target!(|data: &[u8]| {
    let engines = ENGINES.get_or_init(|| engines_from_env("interp,jit"));
    let Ok((p, i)) = unit(&mut Unstructured::new(data)) else {
        return;
    };
    check_divergences(engines, &Program::Classic(p), &Input::Classic(i));
});
