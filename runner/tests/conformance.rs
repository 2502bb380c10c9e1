//! bpf_conformance imported directly: `bpfconf run` on `../shared/bpf_conformance/tests` passes
//! every test on the interpreter; on the kernel every test its verifier accepts passes and the
//! refusals are listed with the verifier's reason; `negative/` files are reported as malformed;
//! the selection options (CPU version, groups, regexes) work.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn conformance() -> Option<PathBuf> {
    let p = common::root().join("../shared/bpf_conformance");
    if p.join("tests").is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not present", p.display());
        None
    }
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("spawn bpfconf");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json_counts(out: &str) -> (u64, u64, u64, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_str(out).expect("JSON report");
    let c = &v["counts"];
    (
        c["passed"].as_u64().unwrap(),
        c["failed"].as_u64().unwrap(),
        c["skipped"].as_u64().unwrap(),
        v,
    )
}

fn passes_all_313(engine: &str) {
    let Some(dir) = conformance() else { return };
    let tests = dir.join("tests");
    let (ok, out) = run(&[
        "run",
        "--engine",
        engine,
        "--format",
        "json",
        tests.to_str().unwrap(),
    ]);
    let (pass, fail, skip, _) = json_counts(&out);
    assert!(ok, "{engine}: {out}");
    assert_eq!((pass, fail, skip), (313, 0, 0), "{engine}");
}

#[test]
fn interp_passes_all_313() {
    passes_all_313("interp");
}

/// Our JIT, isolated in `bpfconf serve` children as `bpfconf run` runs it.
#[cfg(target_arch = "x86_64")]
#[test]
fn jit_passes_all_313() {
    passes_all_313("jit");
}

#[test]
fn kernel_passes_what_its_verifier_accepts_and_lists_refusals() {
    let Some(dir) = conformance() else { return };
    if common::linux_engine().is_none() {
        return;
    }
    let tests = dir.join("tests");
    let (ok, out) = run(&[
        "run",
        "--engine",
        "linux",
        "--format",
        "json",
        tests.to_str().unwrap(),
    ]);
    let (pass, fail, skip, v) = json_counts(&out);
    assert!(ok, "{out}");
    assert_eq!(fail, 0);
    assert_eq!(pass + skip, 313);
    assert!(pass > 250, "only {pass} passed on the kernel");
    for r in v["results"].as_array().unwrap() {
        if r["verdict"] == "skip" {
            let why = r["detail"].as_str().unwrap();
            assert!(
                why.starts_with("refused by the engine's verifier:")
                    || why.contains("not supported"),
                "{}: {why}",
                r["case"]
            );
        }
    }
}

#[test]
fn negative_files_are_malformed_with_reasons() {
    let Some(dir) = conformance() else { return };
    let neg = dir.join("negative");
    let (ok, out) = run(&["run", "--engine", "interp", neg.to_str().unwrap()]);
    assert!(!ok, "malformed files must fail the run");
    let errors = out
        .lines()
        .filter(|l| l.starts_with("ERROR loading"))
        .count();
    // Two negative files are well-formed (they expect a wrong result or an error the program
    // never raises): they load and then fail when run.
    assert!(errors >= 58, "{errors} load errors:\n{out}");
    assert!(out.contains("negative/"), "{out}");
}

#[test]
fn selection_options() {
    let Some(dir) = conformance() else { return };
    let tests = dir.join("tests");
    let t = tests.to_str().unwrap();
    let (_, out) = run(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "--cpu-version",
        "1",
        t,
    ]);
    let (pass, fail, skip, v) = json_counts(&out);
    assert_eq!(fail, 0);
    assert!(skip > 0 && pass > 0 && pass + skip == 313, "{pass} {skip}");
    let why = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["verdict"] == "skip")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("needs CPU version"), "{why}");

    let (_, out) = run(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "--exclude-groups",
        "atomic32,atomic64",
        t,
    ]);
    let (_, _, skip, _) = json_counts(&out);
    assert!(skip > 0, "atomics tests exist and are skipped");

    let (_, out) = run(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "--filter",
        "^tests/lock_",
        "--exclude",
        "cmpxchg",
        t,
    ]);
    let (pass, _, _, v) = json_counts(&out);
    assert!(pass > 0);
    for r in v["results"].as_array().unwrap() {
        let name = r["case"].as_str().unwrap();
        assert!(
            name.starts_with("tests/lock_") && !name.contains("cmpxchg"),
            "{name}"
        );
    }
}
