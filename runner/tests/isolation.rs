//! Crash isolation from the command line: an engine run in `bpfconf serve` children
//! (`--isolate NAME`) gives the same results as in-process on the whole spec (classic contexts,
//! maps, tail calls); plugins that crash or hang give the verdicts `crash` and `timeout` while
//! later cases still run, in every report format and with `--expect-fail` entries naming them.
//!
//! Without python3 the plugin parts print why and pass, unless `BPFCONF_REQUIRE_PYTHON` is set.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Runs bpfconf in the workspace root with extra environment; (exit code, stdout, stderr).
fn bpfconf_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(common::root())
        .output()
        .expect("run bpfconf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bpfconf(args: &[&str]) -> (i32, String, String) {
    bpfconf_env(args, &[])
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

fn json(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// (case, variant, engine) → (verdict, detail) of a `run --format json` document.
fn verdicts(doc: &Value) -> BTreeMap<(String, String, String), (String, String)> {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (
                (s("case"), s("variant"), s("engine")),
                (s("verdict"), s("detail")),
            )
        })
        .collect()
}

/// The engine's facts in a JSON document, as `key=value` strings.
fn facts(doc: &Value) -> Vec<String> {
    doc["engines"][0]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}={}", f[0].as_str().unwrap(), f[1].as_str().unwrap()))
        .collect()
}

/// Runs `engine` on the classic and eBPF spec cases in-process and isolated, and checks that
/// every verdict and detail is the same.
fn same_isolated(engine: &str) {
    let paths = ["spec/cases/classic", "spec/cases/ebpf"];
    let base = ["run", "--engine", engine, "--format", "json"];
    let (c1, out1, err1) = bpfconf(&[&base[..], &paths[..]].concat());
    let (c2, out2, err2) = bpfconf(&[&base[..], &["--isolate", engine], &paths[..]].concat());
    let (inproc, isolated) = (json(&out1, &err1), json(&out2, &err2));
    assert_eq!(c1, c2, "{err2}");
    assert_eq!(inproc["counts"], isolated["counts"], "{engine}");
    let (a, b) = (verdicts(&inproc), verdicts(&isolated));
    assert_eq!(a.len(), b.len());
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{k:?} differs in-process / isolated");
    }
    assert!(!facts(&inproc).iter().any(|f| f.starts_with("isolated=")));
    assert!(
        facts(&isolated)
            .iter()
            .any(|f| f == &format!("isolated=child process: serve --engine {engine} --in-process")),
        "{:?}",
        facts(&isolated)
    );
    eprintln!("{engine}: {} in-process = isolated", inproc["counts"]);
}

#[test]
fn isolated_interp_gives_the_same_results_as_in_process() {
    same_isolated("interp");
    // Maps, their contents, tail calls and contexts really ran (nothing skipped, all passed).
    let (code, out, err) = bpfconf(&[
        "run",
        "--engine",
        "interp",
        "--isolate",
        "interp",
        "--format",
        "json",
        "spec/cases/classic",
        "spec/cases/ebpf",
    ]);
    let doc = json(&out, &err);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["counts"]["skipped"], 0);
    assert!(doc["counts"]["passed"].as_u64().unwrap() > 2000);
    let cases: Vec<&str> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    for group in [
        "maps_hash/",
        "maps_queue_stack/",
        "tail_call/",
        "skb/",
        "cop/",
    ] {
        assert!(cases.iter().any(|c| c.starts_with(group)), "{group}");
    }
}

#[test]
fn isolated_kernel_and_libpcap_give_the_same_results() {
    if common::linux_engine().is_some() {
        same_isolated("linux");
    }
    match bpfconf_engines::engine_by_name("pcap")
        .unwrap()
        .availability()
    {
        Ok(()) => {
            same_isolated("pcap");
            pcap_abort_is_a_crash_in_both();
        }
        Err(why) => eprintln!("SKIP pcap: {why}"),
    }
}

/// libpcap 1.10.3 aborts on a reached `ret x`: its forked worker dies, a crash verdict. Isolated,
/// the `bpfconf serve` child survives and says so (`"kind": "crash"`): the same verdict.
fn pcap_abort_is_a_crash_in_both() {
    let dir = std::env::temp_dir().join(format!("bpfconf-iso-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pc.toml");
    std::fs::write(
        &file,
        "[[case]]\nname = \"aborts\"\ndialects = [\"bsd\"]\nasm = \"ldx #1\\nret x\"\n\
         packet = \"00\"\nexpect = { ret = 1 }\n\n[[case]]\nname = \"fine\"\n\
         dialects = [\"bsd\"]\nasm = \"ret #1\"\npacket = \"00\"\nexpect = { ret = 1 }\n",
    )
    .unwrap();
    for isolate in [&[][..], &["--isolate", "pcap"][..]] {
        let args = [
            &["run", "--engine", "pcap", "--format", "json"][..],
            isolate,
        ]
        .concat();
        let (code, out, err) = bpfconf(&[&args[..], &[file.to_str().unwrap()]].concat());
        assert_eq!(code, 1, "{err}");
        let v = verdicts(&json(&out, &err));
        let got: Vec<(&str, &str)> = v
            .iter()
            .map(|(k, (verdict, d))| {
                (
                    k.0.as_str(),
                    if d.is_empty() {
                        verdict.as_str()
                    } else {
                        d.as_str()
                    },
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("pc/aborts", "crashed: SIGABRT (signal 6)"),
                ("pc/fine", "pass")
            ],
            "{isolate:?}"
        );
        assert_eq!(
            v[&("pc/aborts".into(), "bsd".into(), "pcap".into())].0,
            "crash"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A temporary directory holding `iso.toml`: three eBPF cases, the middle one triggering
/// tests/plugins/misbehave.py (immediate 0xbad).
fn trigger_cases(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfconf-iso-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let case = |name: &str, imm: &str| {
        format!(
            "[[case]]\nname = \"{name}\"\nisa = \"ebpf\"\nasm = \"\"\"\nmov %r0, {imm}\nexit\n\"\"\"\n\
             [case.expect]\nr0 = {imm}\n\n"
        )
    };
    let text = case("a_before", "1") + &case("b_trigger", "0xbad") + &case("c_after", "2");
    std::fs::write(dir.join("iso.toml"), text).unwrap();
    dir
}

fn misbehaving(mode: &str) -> String {
    format!("jsonl:python3 tests/plugins/misbehave.py jsonl {mode}")
}

#[test]
fn crashing_and_hanging_plugins_give_crash_and_timeout_verdicts() {
    if !python() {
        return;
    }
    let dir = trigger_cases("verdicts");
    let file = dir.join("iso.toml");
    let file = file.to_str().unwrap();
    let env = [("BPFCONF_PLUGIN_TIMEOUT_MS", "700")];
    for (mode, verdict, detail) in [
        ("crash", "crash", "crashed: killed by SIGSEGV"),
        ("exit", "crash", "crashed: exited with status 3"),
        ("hang", "timeout", "timed out after 0.7s"),
    ] {
        let engine = misbehaving(mode);
        let (code, out, err) = bpfconf_env(
            &["run", "--engine", &engine, "--format", "json", file],
            &env,
        );
        assert_eq!(code, 1, "{mode}: a {verdict} fails the run\n{err}");
        let doc = json(&out, &err);
        let got: Vec<(&str, &str)> = doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["case"].as_str().unwrap(), r["verdict"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("iso/a_before", "pass"),
                ("iso/b_trigger", verdict),
                ("iso/c_after", "pass")
            ],
            "{mode}: later cases still run"
        );
        let d = doc["results"][1]["detail"].as_str().unwrap();
        assert!(d.starts_with(detail), "{mode}: {d}");
        let c = &doc["counts"];
        assert_eq!(
            (c["passed"].as_u64(), c["failed"].as_u64()),
            (Some(2), Some(1))
        );
        let kind = if verdict == "crash" {
            "crashed"
        } else {
            "timed_out"
        };
        assert_eq!(c[kind], 1, "{mode}: {c}");
        // Human: the label, the per-engine count, the closing line.
        let (code, out, _) = bpfconf_env(&["run", "--engine", &engine, file], &env);
        assert_eq!(code, 1);
        let label = verdict.to_uppercase();
        assert!(
            out.contains(&format!("{label} iso/b_trigger [ebpf] on {engine}\n")),
            "{out}"
        );
        let word = if verdict == "crash" {
            "1 crashed"
        } else {
            "1 timed out"
        };
        assert!(
            out.contains(&format!("2 passed, 1 failed, 0 skipped, {word}\n")),
            "{out}"
        );
        assert!(out.ends_with("2 passed, 1 failed, 0 skipped\n"), "{out}");
        // JUnit: an <error> of that type; TAP: a `not ok` point with that severity.
        let (_, xml, _) = bpfconf_env(
            &["run", "--engine", &engine, "--format", "junit", file],
            &env,
        );
        assert!(xml.contains(&format!("type=\"{verdict}\"")), "{xml}");
        assert!(xml.contains("failures=\"0\" errors=\"1\""), "{xml}");
        let (_, tap, _) = bpfconf_env(&["run", "--engine", &engine, "--format", "tap", file], &env);
        assert!(tap.contains("not ok 2 - iso/b_trigger[ebpf]"), "{tap}");
        assert!(tap.contains(&format!("  severity: {verdict}\n")), "{tap}");
        assert!(tap.contains("ok 3 - iso/c_after[ebpf]"), "{tap}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn expect_fail_entries_name_crashes() {
    if !python() {
        return;
    }
    let dir = trigger_cases("xfail");
    let file = dir.join("iso.toml");
    let engine = misbehaving("crash");
    let xf = dir.join("xf.toml");
    let entry = |verdict: &str, case: &str| {
        format!(
            "[[expect_fail]]\nengine = \"{engine}\"\ncase = \"{case}\"\nverdict = \"{verdict}\"\n\
             reason = \"the plugin crashes on 0xbad\"\n"
        )
    };
    let run = |xf_text: String| {
        std::fs::write(&xf, xf_text).unwrap();
        bpfconf(&[
            "run",
            "--engine",
            &engine,
            "--format",
            "json",
            "--expect-fail",
            xf.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    };
    // An expected crash: xfail, the run succeeds.
    let (code, out, err) = run(entry("crash", "b_trigger"));
    assert_eq!(code, 0, "{err}");
    let doc = json(&out, &err);
    assert_eq!(doc["results"][1]["verdict"], "xfail");
    assert_eq!(doc["results"][1]["failed_as"], "crash");
    // Expecting a timeout does not cover a crash: it stays one, and the entry is reported.
    let (code, out, err) = run(entry("timeout", "b_trigger"));
    assert_eq!(code, 1);
    assert_eq!(json(&out, &err)["results"][1]["verdict"], "crash");
    assert!(err.contains("expects verdict `timeout`"), "{err}");
    // An expected crash that passes is an xpass, failing the run.
    let (code, out, err) = run(entry("crash", "a_before"));
    assert_eq!(code, 1);
    let doc = json(&out, &err);
    assert_eq!(doc["results"][0]["verdict"], "xpass");
    assert_eq!(doc["results"][1]["verdict"], "crash");
    // A verdict that is not a failing one is a malformed file.
    let (code, _, err) = run(entry("pass", "a_before"));
    assert_eq!(code, 1);
    assert!(err.contains("unknown verdict `pass`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn isolation_options_are_checked() {
    let (code, _, err) = bpfconf(&["run", "--engine", "interp", "--isolate", "pcap", "spec/"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--isolate pcap: not among the engines run"),
        "{err}"
    );
    let (code, _, err) = bpfconf(&["run", "--isolate", "interp", "--in-process", "spec/"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = bpfconf(&[
        "run",
        "--engine",
        "jsonl:bpfconf serve",
        "--isolate",
        "jsonl:bpfconf serve",
        "spec/",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already runs in its own process"), "{err}");
    // report takes the same options.
    let (code, _, err) = bpfconf(&[
        "report",
        "--out",
        "/nonexistent-dir-for-bpfconf",
        "--isolate",
        "pcap",
        "--engine",
        "interp",
        "spec/",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not among the engines run"), "{err}");
}

#[test]
fn serve_announces_and_carries_maps() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(["serve", "--engine", "interp", "--in-process"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = [
        r#"{"id":0,"hello":{"protocol":"bpfconf-jsonl","versions":[1]}}"#,
        // lddw r1, map 0; mov r0, 1; exit: the map's initial contents come back as its snapshot.
        r#"{"id":1,"isa":"ebpf","ebpf":[[24,1,1,0,0],[0,0,0,0,0],[183,0,0,0,1],[149,0,0,0,0]],"maps":[{"name":"a","type":"array","value_size":4,"max_entries":2}],"map_init":[[["00000000","2a000000"]]],"mem":""}"#,
        r#"{"id":2,"isa":"ebpf","ebpf":[[183,0,0,0,1],[149,0,0,0,0]],"maps":[{"name":"q","type":"queue","value_size":1,"max_entries":2}],"map_init":[["07"]]}"#,
        r#"{"id":3,"isa":"ebpf","ebpf":[[183,0,0,0,1],[149,0,0,0,0]],"maps":[{"name":"a","type":"array","value_size":4,"max_entries":1}],"map_init":[[["00","2a000000"]]]}"#,
    ];
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        replies[0]["hello"]["features"],
        serde_json::json!(["maps", "progs"])
    );
    assert_eq!(replies[1]["r0"], 1);
    let arr = &replies[1]["maps"][0];
    assert!(
        arr.as_array()
            .unwrap()
            .contains(&serde_json::json!(["00000000", "2a000000"])),
        "{}",
        replies[1]
    );
    assert_eq!(replies[2]["maps"], serde_json::json!([["07"]]));
    let e = replies[3]["error"].as_str().unwrap();
    assert!(e.contains("map_init") && e.contains("key"), "{e}");
}
