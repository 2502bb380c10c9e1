//! Random slot sequences never panic: every run returns an outcome or a `RunError`.

use super::support::SplitMix64 as Rng;
use bpfconf_engines::interp::ebpf::Interpreter;
use bpfconf_engines::interp::Interp;
use bpfconf_engines::{EbpfInput, EbpfProgram, Engine, Input, Program};
use bpfconf_spec::ebpf::isa::{Sel, ISA};
use bpfconf_spec::ebpf::Insn;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Values that hit edges: small numbers, sign boundaries, stack and buffer offsets.
fn interesting(rng: &mut Rng) -> i64 {
    const EDGES: [i64; 14] = [0, 1, -1, 2, 8, 16, 31, 32, 63, 64, -8, -512, -513, 0x7fff];
    match rng.below(4) {
        0 => EDGES[rng.below(EDGES.len() as u64) as usize],
        1 => rng.below(64) as i64 - 32,
        _ => rng.next() as i64,
    }
}

/// One slot: usually a real ISA form with random operands, sometimes raw noise.
fn slot(rng: &mut Rng) -> Insn {
    let reg = |rng: &mut Rng| if rng.below(16) == 0 { rng.below(16) } else { rng.below(11) } as u8;
    let mut i = Insn::new(
        rng.next() as u8,
        reg(rng),
        reg(rng),
        interesting(rng) as i16,
        interesting(rng) as i32,
    );
    if rng.below(8) != 0 {
        let row = &ISA[rng.below(ISA.len() as u64) as usize];
        i.code = row.code;
        match row.sel {
            Sel::Src(s) => i.src = s,
            Sel::Off(o) => i.off = o,
            Sel::Imm(v) => i.imm = v,
            Sel::None => {}
        }
        // Keep most jumps and calls inside small programs.
        if rng.below(2) == 0 {
            i.off = (rng.below(9) as i16) - 4;
            if matches!(row.code, 0x06 | 0x85) {
                i.imm = (rng.below(9) as i32) - 4;
            }
        }
    }
    i
}

#[test]
fn random_programs_never_panic() {
    let mut rng = Rng(0x5eed_0bf0);
    let engine = Interp::new();
    let (mut ok, mut faults) = (0u32, 0u32);
    for n in 0..100_000u32 {
        let len = 1 + rng.below(24) as usize;
        let mut insns: Vec<Insn> = (0..len).map(|_| slot(&mut rng)).collect();
        if rng.below(2) == 0 {
            insns.push(Insn::new(0x95, 0, 0, 0, 0));
        }
        let mem: Vec<u8> = (0..rng.below(48)).map(|_| rng.next() as u8).collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let r = Interpreter::new(&insns).with_step_limit(4096).run(&mem);
            if n % 16 == 0 {
                // Through the engine too (validator first; most random programs are rejected).
                let p = Program::Ebpf(EbpfProgram::new(insns.clone()));
                if let Ok(mut l) = engine.load(&p) {
                    let _ = l.run(&Input::Ebpf(EbpfInput::new(mem.clone())));
                }
            }
            r
        }));
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => faults += 1,
            Err(_) => panic!("run {n} panicked on {insns:?} with mem {mem:?}"),
        }
    }
    println!("random programs: {ok} returned, {faults} faulted");
    assert_eq!(ok + faults, 100_000);
    assert!(ok > 1000, "too few random programs ran to completion: {ok}");
}
