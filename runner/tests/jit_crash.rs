//! Crash isolation of the JIT from the command line: with test-only fault injection
//! (`BPFCONF_JIT_INJECT=crash,hang`) generated code that dies by SIGSEGV gets the verdict
//! `crash`, code that never ends gets `timeout`, and the run completes: the cases before and
//! after still pass and the exit code is 1. `bpfconf run` isolates the JIT by default.

mod common;

use serde_json::Value;
use std::process::Command;

fn run(env: &[(&str, &str)]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args([
            "run",
            "--engine",
            "jit",
            "--format",
            "json",
            "runner/tests/data/jit_faults.toml",
        ])
        .envs(env.iter().copied())
        .current_dir(common::root())
        .output()
        .expect("run bpfconf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), doc)
}

fn verdict(doc: &Value, case: &str) -> (String, String) {
    let r = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case"].as_str().unwrap().ends_with(case))
        .unwrap_or_else(|| panic!("no result for {case}: {doc}"));
    (
        r["verdict"].as_str().unwrap().to_string(),
        r["detail"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn injected_crash_and_hang_become_verdicts_and_the_run_completes() {
    let (code, doc) = run(&[
        ("BPFCONF_JIT_INJECT", "crash,hang"),
        ("BPFCONF_PLUGIN_TIMEOUT_MS", "1500"),
    ]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(verdict(&doc, "/before").0, "pass");
    let (v, detail) = verdict(&doc, "/ebpf_crash");
    assert_eq!(v, "crash", "{detail}");
    assert!(detail.contains("SIGSEGV"), "{detail}");
    assert_eq!(verdict(&doc, "/classic_crash").0, "crash");
    let (v, detail) = verdict(&doc, "/ebpf_hang");
    assert_eq!(v, "timeout", "{detail}");
    assert_eq!(verdict(&doc, "/after").0, "pass");
    // The engine ran isolated, and said so.
    let facts = doc["engines"][0]["facts"].to_string();
    assert!(facts.contains("isolated"), "{facts}");
}

#[test]
fn without_injection_the_same_cases_pass() {
    let (code, doc) = run(&[]);
    assert_eq!(code, 0, "{doc}");
    for case in [
        "/before",
        "/ebpf_crash",
        "/classic_crash",
        "/ebpf_hang",
        "/after",
    ] {
        assert_eq!(verdict(&doc, case).0, "pass", "{case}");
    }
}
