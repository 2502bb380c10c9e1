//! The spec catches a broken JIT rule: with the test-only `flip-jeq` switch (jump-if-equal
//! emitted with the opposite x86 condition) the JIT fails spec cases of both instruction sets,
//! while the same spec passes on the unbroken JIT. In process, through the runner's own run
//! loop (`report::Run::execute`).

use bpfconf_engines::jit::{Inject, Jit};
use bpfconf_engines::Engine;
use bpfconf_runner::report::Run;
use bpfconf_runner::suite::{units, Selection};
use bpfconf_spec::case::load_path;
use std::path::Path;

fn run_dir(dir: &str, inject: Inject) -> Run {
    let r = load_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let u = units(&r.cases, &r.ebpf, &Selection::default());
    let engines: Vec<Box<dyn Engine>> = vec![Box::new(Jit::with_inject(inject))];
    Run::execute(&u, &engines, Vec::new(), None)
}

fn failed_cases(run: &Run) -> Vec<String> {
    run.results
        .iter()
        .filter(|r| r.verdict.is_failure())
        .map(|r| r.case.clone())
        .collect()
}

fn check(dir: &str) {
    let good = run_dir(dir, Inject::default());
    assert_eq!(good.counts().failed, 0, "{:?}", failed_cases(&good));
    assert!(good.counts().passed > 100);
    let flip = Inject {
        flip_jeq: true,
        ..Inject::default()
    };
    let bad = run_dir(dir, flip);
    let failed = failed_cases(&bad);
    eprintln!("{dir}: flip-jeq fails {} cases", failed.len());
    assert!(failed.len() >= 10, "only {failed:?}");
    // The failures point at the broken rule: cases about conditional jumps are among them.
    assert!(
        failed
            .iter()
            .any(|c| c.contains("jeq") || c.contains("jmp")),
        "{failed:?}"
    );
}

#[test]
fn flipped_jeq_is_caught_by_the_ebpf_spec() {
    check("spec/cases/ebpf");
}

#[test]
fn flipped_jeq_is_caught_by_the_classic_spec() {
    check("spec/cases/classic");
}
