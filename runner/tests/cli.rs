//! End-to-end tests of the `bpfconf` binary: run, exec, serve, asm/disasm, and bad input.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn bpfconf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bpfconf"));
    c.current_dir(common::root());
    c
}

fn run_ok(args: &[&str]) -> String {
    let out = bpfconf().args(args).output().expect("spawn bpfconf");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bpfconf {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Parses the closing `N passed, N failed, N skipped` line.
fn counts(out: &str) -> (usize, usize, usize) {
    let line = out
        .lines()
        .rev()
        .find(|l| l.ends_with("skipped") && !l.contains(':'))
        .expect("a closing counts line");
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn run_spec_on_interp_passes_everything() {
    let out = run_ok(&["run", "--engine", "interp", "spec/"]);
    let (pass, fail, skip) = counts(&out);
    assert!(pass > 100, "{out}");
    assert_eq!((fail, skip), (0, 0), "{out}");
}

#[test]
fn run_spec_on_interp_and_linux() {
    if common::linux_engine().is_none() {
        return;
    }
    let out = run_ok(&["run", "--engine", "interp,linux", "spec/"]);
    let (pass, fail, _skip) = counts(&out);
    assert_eq!(fail, 0, "{out}");
    assert!(pass > 150, "{out}");
    assert!(out.contains("linux: "), "{out}");
    // Skips are listed with their reasons.
    if out.contains("skipped") {
        assert!(
            out.contains("skips by reason:") || !out.contains(" skipped\n"),
            "{out}"
        );
    }
}

#[test]
fn json_format_is_valid_json_with_counts() {
    let out = run_ok(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "--filter",
        "^ext/",
        "spec/cases",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["counts"]["failed"], 0);
    let n = v["results"].as_array().unwrap().len();
    assert!(n > 10, "{n}");
    assert!(v["results"][0]["case"]
        .as_str()
        .unwrap()
        .starts_with("ext/"));
}

#[test]
fn malformed_case_file_is_reported_and_the_run_goes_on() {
    let dir = std::env::temp_dir().join(format!("bpfconf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("good.toml"),
        "[[case]]\nname = \"ok\"\ndialects = [\"linux\"]\nasm = \"ret #3\"\npacket = \"00\"\nexpect = { ret = 3 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "[[case]]\nname = \"broken\"\ndialects = [\"linux\"]\nasm = \"\"\"\nld [1]\nfrobnicate #2\n\"\"\"\nexpect = { ret = 3 }\n",
    )
    .unwrap();
    let out = bpfconf()
        .args(["run", "--engine", "interp"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    // The error names the file, the line, the case and the field.
    assert!(stdout.contains("bad.toml:6"), "{stdout}");
    assert!(stdout.contains("bad/broken"), "{stdout}");
    assert!(stdout.contains("asm"), "{stdout}");
    // The good case still ran.
    assert!(stdout.contains("1 passed"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn exec_prints_json_outcome() {
    let dir = std::env::temp_dir().join(format!("bpfconf-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("p.asm");
    std::fs::write(&f, "ldh [0]\nst M[3]\nret a\n").unwrap();
    let out = run_ok(&[
        "exec",
        "--engine",
        "interp",
        "--asm",
        f.to_str().unwrap(),
        "--packet",
        "0102",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ret"], 0x0102);
    assert_eq!(v["mem"][3], 0x0102);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn serve_answers_every_line_and_survives_garbage() {
    let mut child = bpfconf()
        .args(["serve", "--engine", "interp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        r#"{"id": 1, "dialect": "linux", "insns": [[6,0,0,7]], "packet": "00"}"#,
        r#"{"id": 2, "asm": "ld len\nret a", "packet": "010203"}"#,
        r#"this is not json"#,
        r#"{"id": 4, "insns": [[6,0,0,7]], "bogus": true}"#,
        r#"{"id": 5, "insns": [[52,0,0,0],[6,0,0,1]]}"#,
        r#"{"id": 6, "dialect": "netbsd", "asm": "cop #0\nret a", "packet": "aa", "ctx": {"cop": ["pkt_byte0"]}}"#,
        r#"[1,2,3]"#,
        r#"{"id": 8, "insns": [[99999,0,0,0]]}"#,
    ];
    {
        let stdin = child.stdin.as_mut().unwrap();
        for r in requests {
            writeln!(stdin, "{r}").unwrap();
        }
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each reply is JSON"))
        .collect();
    assert_eq!(replies.len(), requests.len());
    assert_eq!(replies[0]["ret"], 7);
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[1]["ret"], 3);
    assert!(replies[2]["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(replies[3]["id"], 4);
    assert!(replies[3]["error"].as_str().unwrap().contains("bogus"));
    assert_eq!(replies[4]["id"], 5);
    assert!(replies[4]["rejected"].is_string(), "{}", replies[4]);
    assert_eq!(replies[5]["ret"], 0xaa);
    assert!(replies[6]["error"].is_string());
    assert!(replies[7]["error"].as_str().unwrap().contains("insns[0]"));
}

#[test]
fn asm_and_disasm_round_trip_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("bpfconf-asm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("arp.asm");
    std::fs::write(&src, "ldh [12]\njne #0x806, drop\nret #-1\ndrop: ret #0\n").unwrap();
    let comma = run_ok(&["asm", "--out", "comma", src.to_str().unwrap()]);
    // filter.txt: `./bpf_asm foo` prints exactly this for the ARP example.
    assert_eq!(
        comma.trim().trim_end_matches(','),
        "4,40 0 0 12,21 0 1 2054,6 0 0 4294967295,6 0 0 0"
    );
    let ddd = dir.join("arp.ddd");
    std::fs::write(&ddd, run_ok(&["asm", src.to_str().unwrap()])).unwrap();
    let text = run_ok(&["disasm", ddd.to_str().unwrap()]);
    let again = dir.join("again.asm");
    std::fs::write(&again, &text).unwrap();
    assert_eq!(
        run_ok(&["asm", "--out", "comma", again.to_str().unwrap()]),
        comma
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn engines_lists_interp_and_linux() {
    let out = run_ok(&["engines"]);
    assert!(out.contains("interp") && out.contains("portable"), "{out}");
    assert!(out.contains("linux"), "{out}");
}

#[test]
fn serve_and_exec_accept_ebpf() {
    let mut child = bpfconf()
        .args(["serve", "--engine", "interp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        // mov64 r0, -1; exit
        r#"{"id": "a", "ebpf": [[183,0,0,0,-1],[149,0,0,0,0]]}"#,
        // lddw r0, 0x123456789abcdef0 as two entries, the second with the high half
        r#"{"id": "b", "ebpf": [[24,0,0,0,2596069104],[0,0,0,0,305419896],[149,0,0,0,0]]}"#,
        r#"{"id": "c", "asm": "ldxb %r0, [%r1+1]\nstb [%r1], 7\nexit", "mem": "0a0b"}"#,
        r#"{"id": "d", "asm": "ldxdw %r0, [%r1+8]\nexit", "mem": "00"}"#,
        r#"{"id": "e", "ebpf": [[255,0,0,0,0]]}"#,
        r#"{"id": "f", "ebpf": [[183,0,0,0]]}"#,
    ];
    {
        let stdin = child.stdin.as_mut().unwrap();
        for r in requests {
            writeln!(stdin, "{r}").unwrap();
        }
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), requests.len());
    assert_eq!(replies[0]["r0"], u64::MAX);
    assert_eq!(replies[1]["r0"], 0x1234_5678_9abc_def0u64);
    assert_eq!(replies[2]["r0"], 0x0b);
    assert_eq!(replies[2]["mem"], "070b");
    assert!(replies[3]["fault"].is_string(), "{}", replies[3]);
    assert!(replies[4]["rejected"].is_string(), "{}", replies[4]);
    assert!(
        replies[5]["error"]
            .as_str()
            .unwrap()
            .contains("instruction 0"),
        "{}",
        replies[5]
    );
}
