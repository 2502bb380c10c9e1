//! `bpfconf run --expect-fail FILE`: an expected failure is not a failure; an expected failure
//! that passes fails the run, naming the entry; an entry matching nothing is a warning; a
//! malformed list is an error naming the line.

mod common;

use bpfconf_runner::expect_fail::ExpectFail;
use bpfconf_runner::report::{Record, Run, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn bpfconf(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("spawn bpfconf");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory with `mix.toml`: `mix/good` passes in linux and bsd, `mix/wrong`
/// fails (its expectation is wrong on purpose), and the given expect-fail list as `xf.toml`.
fn setup(tag: &str, xfail: &str) -> (PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("bpfconf-xf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cases")).unwrap();
    std::fs::write(
        dir.join("cases/mix.toml"),
        "[[case]]\nname = \"good\"\ndialects = [\"linux\", \"bsd\"]\nasm = \"ret #3\"\n\
         packet = \"00\"\nexpect = { ret = 3 }\n\n\
         [[case]]\nname = \"wrong\"\ndialects = [\"linux\"]\nasm = \"ret #3\"\npacket = \"00\"\n\
         expect = { ret = 4 }\n",
    )
    .unwrap();
    std::fs::write(dir.join("xf.toml"), xfail).unwrap();
    let cases = dir.join("cases").display().to_string();
    let xf = dir.join("xf.toml").display().to_string();
    (dir, cases, xf)
}

fn closing(out: &str) -> &str {
    out.lines().last().unwrap_or("")
}

#[test]
fn an_expected_failure_is_not_a_failure() {
    let (dir, cases, xf) = setup(
        "xfail",
        "[[expect_fail]]\nengine = \"interp\"\ncase = \"^mix/wrong$\"\nreason = \"the spec is wrong on purpose\"\n",
    );
    let without = bpfconf(&["run", "--engine", "interp", &cases]);
    assert!(!without.ok, "{}", without.stdout);
    assert_eq!(closing(&without.stdout), "2 passed, 1 failed, 0 skipped");

    let with = bpfconf(&["run", "--engine", "interp", "--expect-fail", &xf, &cases]);
    assert!(with.ok, "{}\n{}", with.stdout, with.stderr);
    assert_eq!(closing(&with.stdout), "2 passed, 0 failed, 0 skipped");
    assert!(
        with.stdout.contains("1 expected failure(s)"),
        "{}",
        with.stdout
    );
    assert!(with.stderr.is_empty(), "no warning: {}", with.stderr);

    // JSON records the xfail with the entry that matched.
    let json = bpfconf(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "--expect-fail",
        &xf,
        &cases,
    ]);
    assert!(json.ok);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["counts"]["failed"], 0);
    assert_eq!(v["counts"]["xfailed"], 1);
    let r = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["verdict"] == "xfail")
        .unwrap();
    assert_eq!(r["case"], "mix/wrong");
    assert!(r["expect_fail"]
        .as_str()
        .unwrap()
        .ends_with("xf.toml:1: the spec is wrong on purpose"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_expected_failure_that_passes_fails_the_run_naming_the_entry() {
    let (dir, cases, xf) = setup(
        "xpass",
        "# known failures\n\n[[expect_fail]]\nengine = \"interp\"\ncase = \"^mix/\"\n\
         reason = \"listed too broadly\"\n",
    );
    let out = bpfconf(&["run", "--engine", "interp", "--expect-fail", &xf, &cases]);
    assert!(!out.ok, "an xpass fails the run:\n{}", out.stdout);
    // mix/good passes in two dialects: two XPASS errors; mix/wrong is an xfail.
    assert_eq!(closing(&out.stdout), "0 passed, 2 failed, 0 skipped");
    assert!(
        out.stdout.contains("XPASS mix/good [linux] on interp"),
        "{}",
        out.stdout
    );
    // The message names the entry: file, line, pattern and reason.
    assert!(out.stdout.contains("xf.toml:3"), "{}", out.stdout);
    assert!(out.stdout.contains("case = \"^mix/\""), "{}", out.stdout);
    assert!(out.stdout.contains("listed too broadly"), "{}", out.stdout);
    assert!(
        out.stdout.contains("expected failure passed"),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_entry_matching_nothing_is_a_warning() {
    let (dir, cases, xf) = setup(
        "unmatched",
        "[[expect_fail]]\nengine = \"interp\"\ncase = \"^mix/wrong$\"\nreason = \"r\"\n\n\
         [[expect_fail]]\nengine = \"interp\"\ncase = \"^nothing/here$\"\nreason = \"stale\"\n",
    );
    let out = bpfconf(&["run", "--engine", "interp", "--expect-fail", &xf, &cases]);
    assert!(out.ok, "a warning does not fail the run");
    assert!(
        out.stderr.contains("warning: expect-fail")
            && out.stderr.contains("xf.toml:6")
            && out.stderr.contains("matched no result"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_list_is_an_error_with_its_line() {
    let cases = [
        ("[[expect_fail]]\nengine = \"interp\"\ncase = \"(\"\nreason = \"r\"\n", 3, "regex"),
        ("[[expect_fail]]\nengine = \"interp\"\ncase = \"x\"\nreason = \"r\"\ncolour = 1\n", 5, "colour"),
        ("[[expect_fail]]\nengine = \"jit9\"\ncase = \"x\"\nreason = \"r\"\n", 2, "unknown engine"),
        ("\n[[expect_fail]]\nengine = \"interp\"\ncase = \"x\"\nvariant = \"solaris\"\nreason = \"r\"\n", 5, "variant"),
        ("[[expect_fail]]\nengine = \"interp\"\ncase = \"x\"\n", 1, "reason"),
        ("[[expect_fail]]\nengine = \"interp\"\ncase = \"x\"\nreason = \"  \"\n", 4, "reason"),
        ("[[expect_fail]\n", 1, ""),
    ];
    for (text, line, word) in cases {
        let e = ExpectFail::parse(Path::new("xf.toml"), text).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.line, Some(line), "{text:?}: {msg}");
        assert!(msg.contains(&format!("xf.toml:{line}: ")), "{msg}");
        assert!(msg.contains(word), "{text:?}: {msg}");
    }
    // On the command line: a clear error, before anything runs.
    let (dir, cases, xf) = setup(
        "bad",
        "[[expect_fail]]\nengine = \"interp\"\ncase = \"[\"\nreason = \"r\"\n",
    );
    let out = bpfconf(&["run", "--engine", "interp", "--expect-fail", &xf, &cases]);
    assert!(!out.ok);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("xf.toml:3: `case` is not a valid regex"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn variant_narrows_an_entry_and_the_first_match_wins() {
    let xf = ExpectFail::parse(
        Path::new("xf.toml"),
        "[[expect_fail]]\nengine = \"interp\"\ncase = \"^a/\"\nvariant = \"bsd\"\nreason = \"one\"\n\n\
         [[expect_fail]]\nengine = \"interp\"\ncase = \"^a/x$\"\nreason = \"two\"\n",
    )
    .unwrap();
    let rec = |variant: &str, verdict| Record {
        case: "a/x".into(),
        file: "a.toml".into(),
        line: 1,
        variant: variant.into(),
        engine: "interp".into(),
        verdict,
        detail: None,
        expect_fail: None,
        failed_as: None,
        time: None,
    };
    let mut run = Run {
        results: vec![
            rec("bsd", Status::Fail),
            rec("linux", Status::Fail),
            rec("netbsd", Status::Skip),
        ],
        ..Default::default()
    };
    xf.apply(&mut run);
    let got: Vec<_> = run
        .results
        .iter()
        .map(|r| (r.verdict, r.expect_fail.clone().unwrap_or_default()))
        .collect();
    assert_eq!(got[0], (Status::Xfail, "xf.toml:1: one".into()));
    assert_eq!(got[1], (Status::Xfail, "xf.toml:7: two".into()));
    assert_eq!(got[2].0, Status::Skip);
    assert!(run.success());
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    // Applying a list again (a run read back from JSON) replaces the old decisions.
    let none = ExpectFail::parse(Path::new("empty.toml"), "").unwrap();
    none.apply(&mut run);
    assert_eq!(run.results[0].verdict, Status::Fail);
    assert!(!run.success());
}
