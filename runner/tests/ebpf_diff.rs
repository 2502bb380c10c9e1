//! Differential smoke test: seeded, verifier-friendly random eBPF programs run on the reference
//! interpreter and on the kernel must give the same 64-bit r0. `BPFCONF_EBPF_DIFF_RUNS` and
//! `BPFCONF_EBPF_DIFF_SEED` change the count (default 2,000) and the first seed.

mod common;

use arbitrary::Unstructured;
use bpfconf_engines::{EbpfInput, EbpfProgram, Input, Observed, Program};
use bpfconf_runner::compare::Actual;
use bpfconf_runner::gen::{ebpf, seeded_bytes};
use bpfconf_runner::suite::execute;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_programs_agree_on_interp_and_kernel() {
    let Some(linux) = common::linux_engine() else {
        return;
    };
    let interp = bpfconf_engines::engine_by_name("interp").unwrap();
    let runs = env_u64("BPFCONF_EBPF_DIFF_RUNS", 2000);
    let first = env_u64("BPFCONF_EBPF_DIFF_SEED", 0);
    let input = Input::Ebpf(EbpfInput::new(vec![]));
    let (mut agreed, mut refused) = (0u64, Vec::new());
    for seed in first..first + runs {
        let bytes = seeded_bytes(seed, 8192);
        let insns = ebpf::program(&mut Unstructured::new(&bytes), 32).expect("enough bytes");
        let program = Program::Ebpf(EbpfProgram::new(insns));
        let ours = execute(interp.as_ref(), &program, &input, false)
            .unwrap_or_else(|v| panic!("seed {seed}: interp gave no result: {v:?}"));
        let Actual::Ran(ours) = ours else {
            panic!("seed {seed}: interp did not run the program: {ours:?}");
        };
        match execute(linux.as_ref(), &program, &input, false) {
            Ok(Actual::Ran(k)) => {
                assert_eq!(
                    ours.ret,
                    k.ret,
                    "seed {seed}: interp and kernel disagree\n{}",
                    bpfconf_spec::ebpf::disasm::disassemble(match &program {
                        Program::Ebpf(p) => &p.insns,
                        _ => unreachable!(),
                    })
                );
                assert!(matches!(k.ret, Observed::Exact(_)));
                agreed += 1;
            }
            Ok(Actual::Rejected { reason, .. }) => refused.push((seed, reason)),
            other => panic!("seed {seed}: kernel gave {other:?}"),
        }
    }
    for (seed, reason) in refused.iter().take(5) {
        eprintln!("kernel verifier refused seed {seed}: {reason}");
    }
    eprintln!("{agreed} agreed, {} refused by the verifier", refused.len());
    // The generator targets the verifier: almost everything must be accepted and compared.
    assert!(
        refused.len() as u64 * 20 <= runs,
        "{} of {runs} programs refused by the verifier",
        refused.len()
    );
}
