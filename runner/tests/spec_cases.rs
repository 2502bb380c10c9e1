//! Drives every spec case file, and every minimized divergence in corpus/regressions/, through
//! the reference interpreter and, where available, the Linux kernel; the classic case files
//! also through our JIT. A failure prints the full
//! report; skips are printed with their reasons.

mod common;

use bpfconf_runner::report;
use bpfconf_runner::suite::{run_units, units, Selection, Verdict};
use bpfconf_spec::case::load_file;
use rstest::rstest;
use std::path::PathBuf;

fn run_file(path: &std::path::Path, engines: Vec<Box<dyn bpfconf_engines::Engine>>) {
    let loaded = load_file(path);
    assert!(
        loaded.errors.is_empty(),
        "case file errors:\n{}",
        loaded
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !loaded.cases.is_empty() || !loaded.ebpf.is_empty(),
        "{} has no cases",
        path.display()
    );
    let rep = run_units(
        &units(&loaded.cases, &loaded.ebpf, &Selection::default()),
        &engines,
    );
    let text = report::human(&rep, false);
    eprintln!("{text}");
    assert!(rep.success(), "{}:\n{text}", path.display());
}

#[rstest]
fn interp(#[files("../spec/cases/**/*.toml")] path: PathBuf) {
    let e = bpfconf_engines::engine_by_name("interp").unwrap();
    run_file(&path, vec![e]);
    // The interpreter models every dialect and every context: it must never skip.
    let loaded = load_file(&path);
    let rep = run_units(
        &units(&loaded.cases, &loaded.ebpf, &Selection::default()),
        &[bpfconf_engines::engine_by_name("interp").unwrap()],
    );
    for r in &rep.results {
        assert!(
            !matches!(r.verdict, Verdict::Skip(_)),
            "interp skipped {}: {:?}",
            r.case,
            r.verdict
        );
    }
}

/// Our JIT models every classic dialect and context, and every eBPF row, helper, map and tail
/// call, like the interpreter: every case (and every minimized regression) passes and none is
/// skipped. In process: the isolated form is `bpfconf run`'s default (tests/jit_crash.rs).
#[cfg(target_arch = "x86_64")]
#[rstest]
fn jit(
    #[files("../spec/cases/**/*.toml")]
    #[files("../corpus/regressions/*.toml")]
    path: PathBuf,
) {
    let jit = || bpfconf_engines::engine_by_name("jit").unwrap();
    run_file(&path, vec![jit()]);
    let loaded = load_file(&path);
    let rep = run_units(
        &units(&loaded.cases, &loaded.ebpf, &Selection::default()),
        &[jit()],
    );
    for r in &rep.results {
        assert!(
            !matches!(r.verdict, Verdict::Skip(_)),
            "jit skipped {}: {:?}",
            r.case,
            r.verdict
        );
    }
}

#[rstest]
fn linux(#[files("../spec/cases/**/*.toml")] path: PathBuf) {
    if let Some(e) = common::linux_engine() {
        run_file(&path, vec![e]);
    }
}

/// Minimized divergences found in third-party engines are regression cases for ours: the
/// reference interpreter and the kernel must keep giving the expected results.
#[rstest]
fn regressions_interp(#[files("../corpus/regressions/*.toml")] path: PathBuf) {
    run_file(
        &path,
        vec![bpfconf_engines::engine_by_name("interp").unwrap()],
    );
}

#[rstest]
fn regressions_linux(#[files("../corpus/regressions/*.toml")] path: PathBuf) {
    if let Some(e) = common::linux_engine() {
        run_file(&path, vec![e]);
    }
}
