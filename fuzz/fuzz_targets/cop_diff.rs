//! Fuzz target: NetBSD programs with `cop`/`copx`, a coprocessor table and sometimes external
//! memory, run on two engines (`BPFCONF_FUZZ_ENGINES`, default `interp,linux`: the kernel has
//! no coprocessor and refuses them, which is not a divergence; compare with a NetBSD-capable
//! engine, e.g. a JIT or a plugin, to find bugs). Any divergence panics.
#![no_main]

use arbitrary::Unstructured;
use bpfconf_engines::{ClassicInput, ClassicProgram, Input, Program};
use bpfconf_runner::fuzz::{check_divergence, pair_from_env, EnginePair};
use bpfconf_runner::gen::classic;
use bpfconf_spec::Dialect;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PAIR: OnceLock<EnginePair> = OnceLock::new();

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
    let pair = PAIR.get_or_init(|| pair_from_env("interp,linux"));
    let Ok((p, i)) = unit(&mut Unstructured::new(data)) else {
        return;
    };
    check_divergence(pair, &Program::Classic(p), &Input::Classic(i));
});
