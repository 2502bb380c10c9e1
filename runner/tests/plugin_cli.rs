//! Plugin engines from the command line: `bpfconf serve` answers the JSON-lines handshake and
//! load-only requests; a Python plugin forwarding to `bpfconf serve --engine interp` passes the
//! whole spec through `--engine jsonl:…`; a crashing bpf_conformance-protocol plugin yields
//! `crash` verdicts while the run goes on and the other engine's verdicts stand.
//!
//! Without python3 the Python parts print why and pass, unless `BPFCONF_REQUIRE_PYTHON` is set.

mod common;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bpfconf")
}

fn python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("BPFCONF_REQUIRE_PYTHON").is_some() {
            panic!("BPFCONF_REQUIRE_PYTHON is set but python3 is missing");
        }
        eprintln!("SKIP: python3 not found");
    }
    ok
}

fn bpfconf(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run bpfconf");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_speaks_protocol_version_1() {
    let mut child = Command::new(bin())
        .args(["serve", "--engine", "interp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = [
        r#"{"id":0,"hello":{"protocol":"bpfconf-jsonl","versions":[1,7]}}"#,
        r#"{"id":1,"hello":{"protocol":"bpfconf-jsonl","versions":[7]}}"#,
        r#"{"id":2,"load_only":true,"isa":"ebpf","asm":"mov %r0, 1\nexit"}"#,
        r#"{"id":3,"load_only":true,"isa":"ebpf","ebpf":[[183,0,1,0,1],[149,0,0,0,0]]}"#,
        r#"{"id":4,"load_only":true,"insns":[[6,0,0,7]]}"#,
        r#"{"id":5,"isa":"ebpf","asm":"mov %r0, %r2\nexit","mem":"010203"}"#,
    ];
    child
        .stdin
        .take()
        .unwrap()
        .write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), lines.len());
    assert_eq!(replies[0]["hello"]["version"], 1, "{}", replies[0]);
    assert_eq!(replies[0]["hello"]["protocol"], "bpfconf-jsonl");
    assert_eq!(replies[0]["hello"]["engine"], "interp");
    assert!(replies[1]["error"].is_string(), "{}", replies[1]);
    assert_eq!(replies[2]["accepted"], true, "{}", replies[2]);
    // src 1 on a mov: our validator names the rule.
    assert!(replies[3]["rejected"].is_string(), "{}", replies[3]);
    assert_eq!(replies[3]["rule"], "unused_field", "{}", replies[3]);
    assert_eq!(replies[4]["accepted"], true, "{}", replies[4]);
    assert_eq!(replies[5]["r0"], 3, "{}", replies[5]);
}

#[test]
fn python_jsonl_plugin_wrapping_serve_passes_the_spec() {
    if !python() {
        return;
    }
    let engine = format!("jsonl:python3 tests/plugins/jsonl_serve.py {}", bin());
    let (ok, stdout, stderr) = bpfconf(&["run", "--engine", &engine, "--format", "json", "spec/"]);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let c = &v["counts"];
    assert!(ok, "{c}\n{}", &stdout[..stdout.len().min(4000)]);
    assert_eq!(c["failed"], 0, "{c}");
    assert!(c["passed"].as_u64().unwrap() > 1000, "{c}");
}

#[test]
fn crashing_plugin_yields_errors_and_the_run_goes_on() {
    if !python() {
        return;
    }
    let conf = common::root().join("../shared/bpf_conformance/tests");
    if !conf.is_dir() {
        eprintln!("SKIP: {} is absent", conf.display());
        return;
    }
    let files: Vec<String> = ["add.data", "alu-arith.data", "exit.data"]
        .iter()
        .map(|f| conf.join(f).display().to_string())
        .collect();
    let engine = "plugin:python3 tests/plugins/misbehave.py conformance crash -- --always";
    let mut args = vec![
        "run",
        "--engine",
        "interp,plugin:python3 tests/plugins/misbehave.py conformance crash -- --always",
        "--format",
        "json",
    ];
    args.extend(files.iter().map(String::as_str));
    let (ok, stdout, stderr) = bpfconf(&args);
    assert!(!ok, "crashes fail the run");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "{stdout}");
    for r in results {
        if r["engine"] == "interp" {
            assert_eq!(r["verdict"], "pass", "{r}");
        } else {
            assert_eq!(r["engine"], engine, "{r}");
            assert_eq!(r["verdict"], "crash", "{r}");
            assert!(
                r["detail"]
                    .as_str()
                    .unwrap()
                    .contains("crashed: plugin killed by SIGSEGV"),
                "{r}"
            );
        }
    }
    // A malformed plugin spec is a usage error naming the problem.
    let (ok, _, stderr) = bpfconf(&["run", "--engine", "plugin:'unterminated", "spec/"]);
    assert!(!ok);
    assert!(stderr.contains("unterminated"), "{stderr}");
}
