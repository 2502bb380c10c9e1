//! Differential smoke tests of our JIT against the reference interpreter, in process: the
//! generated eBPF programs of `ebpf_diff.rs` (with random memory buffers) and the map programs of
//! `maps_diff.rs` must give identical r0, memory and map snapshots. `BPFCONF_JIT_DIFF_RUNS`
//! changes the count (default 3,000 each).

use arbitrary::Unstructured;
use bpfconf_engines::{EbpfInput, EbpfProgram, Engine, Input, Program};
use bpfconf_runner::diff::{diff_unit, Diff};
use bpfconf_runner::gen::{ebpf, maps, seeded_bytes};
use bpfconf_spec::ebpf::disasm::disassemble;

fn runs() -> u64 {
    std::env::var("BPFCONF_JIT_DIFF_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn pair() -> (Box<dyn Engine>, Box<dyn Engine>) {
    (
        bpfconf_engines::engine_by_name("interp").unwrap(),
        bpfconf_engines::engine_by_name("jit").expect("the jit engine (x86-64)"),
    )
}

#[test]
fn generated_ebpf_programs_agree_on_interp_and_jit() {
    let (interp, jit) = pair();
    let mut matched = 0;
    for seed in 0..runs() {
        let bytes = seeded_bytes(seed, 8192);
        let mut u = Unstructured::new(&bytes);
        let insns = ebpf::program(&mut u, 32).expect("enough bytes");
        let mem: Vec<u8> = (0..(seed % 24) as u8).map(|i| i.wrapping_mul(37)).collect();
        let program = Program::Ebpf(EbpfProgram::new(insns));
        let input = Input::Ebpf(EbpfInput::new(mem));
        match diff_unit(interp.as_ref(), jit.as_ref(), &program, &input) {
            Diff::Match => matched += 1,
            d => panic!(
                "seed {seed}: {d}\n{}",
                match &program {
                    Program::Ebpf(p) => disassemble(&p.insns),
                    _ => unreachable!(),
                }
            ),
        }
    }
    assert_eq!(matched, runs());
}

#[test]
fn random_map_programs_agree_on_interp_and_jit() {
    let (interp, jit) = pair();
    let mut calls = 0;
    for seed in 0..runs() {
        let bytes = seeded_bytes(seed, 8192);
        let c = maps::case(&mut Unstructured::new(&bytes), 12).expect("enough bytes");
        calls += c.asm.matches("call ").count();
        let program = Program::Ebpf(c.program());
        let input = Input::Ebpf(c.input());
        let d = diff_unit(interp.as_ref(), jit.as_ref(), &program, &input);
        assert_eq!(d, Diff::Match, "seed {seed}: {d}\n{}", c.asm);
    }
    // The programs really exercise helpers.
    assert!(calls as u64 > runs(), "only {calls} helper calls");
}
