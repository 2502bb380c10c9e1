//! Every bpf_conformance test file, through the `interp` engine (validator, then interpreter).

use bpfconf_engines::interp::Interp;
use bpfconf_engines::{EbpfInput, EbpfProgram, Engine, Input, LoadError, Observed, Program};
use bpfconf_engines::{Outcome, RunError};
use bpfconf_spec::ebpf::data::load_data;
use std::path::{Path, PathBuf};

/// The test files (present here and in CI).
const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/bpf_conformance/tests"
);

/// Files not expected to pass, with the reason. Empty: all 313 pass. (The two files that call
/// a helper, `call_unwind_fail` and `callx`, rely on bpf_conformance's helper 5, which
/// `Helpers::bpf_conformance` provides.)
const SKIPS: &[(&str, &str)] = &[];

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(DIR)
        .expect("readable test directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    v.sort();
    v
}

#[test]
fn bpf_conformance_suite_passes() {
    if !Path::new(DIR).is_dir() {
        eprintln!("skip: {DIR} is absent");
        return;
    }
    let engine = Interp::new();
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    let all = files();
    for path in &all {
        let t = load_data(path).unwrap_or_else(|e| panic!("{e}"));
        if SKIPS.iter().any(|(n, _)| *n == t.name) {
            skipped += 1;
            continue;
        }
        let program = Program::Ebpf(EbpfProgram::new(t.program.clone()));
        let input = Input::Ebpf(EbpfInput::new(t.mem.clone()));
        if let Err(why) = engine.supports(&program, &input) {
            failures.push(format!("{}: not supported: {why}", t.name));
            continue;
        }
        let outcome: Result<Outcome, String> = match engine.load(&program) {
            Ok(mut loaded) => match loaded.run(&input) {
                Ok(o) => Ok(o),
                Err(RunError::Fault(f)) => Err(format!("fault: {f}")),
                Err(e) => {
                    failures.push(format!("{}: engine error: {e}", t.name));
                    continue;
                }
            },
            Err(LoadError::Rejected { reason, .. }) => Err(format!("rejected: {reason}")),
            Err(e) => {
                failures.push(format!("{}: load failed: {e}", t.name));
                continue;
            }
        };
        match (t.result, &t.error, outcome) {
            (Some(want), _, Ok(o)) => {
                if o.ret != Observed::Exact(want) || o.mem.is_some() {
                    failures.push(format!("{}: r0 {:?}, expected {want:#x}", t.name, o.ret));
                } else if o.memory.as_ref().map(Vec::len) != Some(t.mem.len()) {
                    failures.push(format!("{}: memory not reported", t.name));
                } else {
                    passed += 1;
                }
            }
            (None, Some(_), Err(_)) => passed += 1,
            (_, _, got) => failures.push(format!(
                "{}: expected {:?} / {:?}, got {got:?}",
                t.name, t.result, t.error
            )),
        }
    }
    println!(
        "bpf_conformance: {passed}/{} passed, {skipped} skipped",
        all.len()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(passed + skipped, all.len());
    assert!(!all.is_empty());
}
