//! Seeded map differential test: 1,000 generated programs (`bpfconf_runner::gen::maps`) doing
//! random lookups, updates, deletes, pushes and pops on 1–3 maps with random initial contents,
//! keyed by the memory buffer's bytes, run on the reference interpreter and on the kernel. Both
//! must return the same 64-bit r0, leave the same memory and the same snapshot of every map.
//! Verifier refusals are counted and must stay rare (at most 5%).
//!
//! Without the kernel engine the test is skipped with a message, unless
//! `BPFCONF_REQUIRE_KERNEL=1`, which makes it fail. `BPFCONF_MAPS_DIFF_RUNS` and
//! `BPFCONF_MAPS_DIFF_SEED` change the count (default 1,000) and the first seed.

mod common;

use arbitrary::Unstructured;
use bpfconf_engines::{Engine, Input, Outcome, Program};
use bpfconf_runner::compare::Actual;
use bpfconf_runner::gen::maps::{case, MapsCase};
use bpfconf_runner::gen::seeded_bytes;
use bpfconf_runner::suite::{execute, Verdict};
use bpfconf_spec::ebpf::maps::first_difference;

/// Map operations per program.
const OPS: usize = 12;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything needed to reproduce a divergence: the program, the maps before, and both
/// outcomes.
fn divergence(seed: u64, c: &MapsCase, what: &str, ours: &Outcome, kernel: &Outcome) -> String {
    let mut s = format!("seed {seed}: interp and kernel disagree: {what}\n");
    s += &format!(
        "memory ({} bytes): {}\n",
        c.mem.len(),
        bpfconf_spec::case::to_hex(&c.mem)
    );
    s += "program:\n";
    s += &bpfconf_spec::ebpf::disasm::disassemble(&c.insns);
    s += "\n";
    s += &format!("r0: interp {:?}, kernel {:?}\n", ours.ret, kernel.ret);
    let none = Vec::new();
    let (a, b) = (
        ours.maps.as_ref().unwrap_or(&none),
        kernel.maps.as_ref().unwrap_or(&none),
    );
    for (i, d) in c.maps.iter().enumerate() {
        s += &format!("map {i} ({d:?}):\n  initial: {}\n", c.init[i]);
        s += &format!(
            "  interp:  {}\n",
            a.get(i).map_or("missing".into(), |m| m.to_string())
        );
        s += &format!(
            "  kernel:  {}\n",
            b.get(i).map_or("missing".into(), |m| m.to_string())
        );
    }
    s
}

/// The first difference between two outcomes, or `None`.
fn first_divergence(ours: &Outcome, kernel: &Outcome) -> Option<String> {
    if ours.ret != kernel.ret {
        return Some(format!(
            "r0: interp {:?}, kernel {:?}",
            ours.ret, kernel.ret
        ));
    }
    if ours.memory != kernel.memory {
        return Some("the memory buffer after the run".into());
    }
    let (Some(a), Some(b)) = (&ours.maps, &kernel.maps) else {
        return Some(format!(
            "map snapshots: interp {}, kernel {}",
            ours.maps.is_some(),
            kernel.maps.is_some()
        ));
    };
    if a.len() != b.len() {
        return Some(format!("{} maps vs {}", a.len(), b.len()));
    }
    a.iter().zip(b).enumerate().find_map(|(i, (x, y))| {
        first_difference(x, y).map(|(at, e, g)| format!("map {i} {at}: interp {e}, kernel {g}"))
    })
}

fn run(engine: &dyn Engine, p: &Program, i: &Input) -> Result<Actual, Verdict> {
    execute(engine, p, i, false)
}

#[test]
fn random_map_operations_agree_on_interp_and_kernel() {
    let Some(linux) = common::linux_engine() else {
        return;
    };
    let interp = bpfconf_engines::engine_by_name("interp").unwrap();
    let runs = env_u64("BPFCONF_MAPS_DIFF_RUNS", 1000);
    let first = env_u64("BPFCONF_MAPS_DIFF_SEED", 0);
    let (mut agreed, mut refused, mut map_ops_seen) = (0u64, Vec::new(), 0usize);
    for seed in first..first + runs {
        let bytes = seeded_bytes(seed, 8192);
        let c = case(&mut Unstructured::new(&bytes), OPS).expect("enough bytes");
        map_ops_seen += c.asm.matches("call ").count();
        let program = Program::Ebpf(c.program());
        let input = Input::Ebpf(c.input());
        let ours = match run(interp.as_ref(), &program, &input) {
            Ok(Actual::Ran(o)) => o,
            other => panic!(
                "seed {seed}: interp did not run the program: {other:?}\n{}",
                c.asm
            ),
        };
        let kernel = match run(linux.as_ref(), &program, &input) {
            Ok(Actual::Ran(o)) => o,
            Ok(Actual::Rejected { reason, .. }) => {
                refused.push((seed, reason));
                continue;
            }
            // The kernel engine verifies a program again for each memory length; a refusal
            // for this length is a verifier refusal too.
            Err(Verdict::Skip(reason)) if reason.contains("verifier") => {
                refused.push((seed, reason));
                continue;
            }
            other => panic!("seed {seed}: kernel gave {other:?}\n{}", c.asm),
        };
        if let Some(what) = first_divergence(&ours, &kernel) {
            panic!("{}", divergence(seed, &c, &what, &ours, &kernel));
        }
        agreed += 1;
    }
    for (seed, reason) in refused.iter().take(5) {
        eprintln!("kernel verifier refused seed {seed}: {reason}");
    }
    eprintln!(
        "{agreed} of {runs} programs agreed (r0, memory and every map), {} refused by the \
         verifier; {map_ops_seen} helper calls in all",
        refused.len()
    );
    assert!(
        refused.len() as u64 * 20 <= runs,
        "{} of {runs} programs refused by the verifier",
        refused.len()
    );
}
