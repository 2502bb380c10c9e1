//! `bpfconf run --format junit|tap`: JUnit XML parsed back with a real XML parser and checked
//! for the elements and attributes of the common `junit-10.xsd` shape and for consistent
//! counts; TAP parsed for its plan and ok / not ok / SKIP / TODO counts. Both on a synthetic
//! run holding every status (and hostile text) and on real CLI output.

mod common;

use bpfconf_runner::report::{EngineFacts, Record, Run, RunFormat, Status};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// An element of a parsed XML document.
#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<El>,
    text: String,
}

impl El {
    fn kids<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn attr(&self, k: &str) -> &str {
        self.attrs
            .get(k)
            .unwrap_or_else(|| panic!("<{}> lacks attribute `{k}`: {:?}", self.name, self.attrs))
    }

    fn num(&self, k: &str) -> usize {
        self.attr(k).parse().unwrap()
    }
}

/// Parses a document into a tree with quick-xml (which checks that end tags match).
fn parse_xml(text: &str) -> El {
    assert!(
        !text
            .chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t')),
        "control characters XML 1.0 forbids"
    );
    let mut r = Reader::from_str(text);
    let mut stack = vec![El::default()];
    let element = |e: &quick_xml::events::BytesStart| El {
        name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().expect("valid escapes").into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    };
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => {
                let el = element(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.unescape().expect("valid escapes")),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

/// Checks a parsed JUnit document against the junit-10.xsd shape and returns (tests, failures,
/// errors, skipped) of the root.
fn check_junit(root: &El) -> (usize, usize, usize, usize) {
    assert_eq!(root.name, "testsuites");
    let mut sums = [0usize; 4];
    for suite in root.kids("testsuite") {
        for a in [
            "name",
            "tests",
            "failures",
            "errors",
            "skipped",
            "time",
            "timestamp",
            "hostname",
            "id",
            "package",
        ] {
            suite.attr(a);
        }
        let ts = suite.attr("timestamp");
        assert!(
            ts.len() == 19 && ts.as_bytes()[10] == b'T',
            "timestamp {ts}"
        );
        suite.attr("time").parse::<f64>().unwrap();
        assert_eq!(suite.kids("properties").count(), 1, "one <properties>");
        for p in suite.kids("properties").flat_map(|p| p.kids("property")) {
            p.attr("name");
            p.attr("value");
        }
        let cases: Vec<&El> = suite.kids("testcase").collect();
        let mut c = [cases.len(), 0, 0, 0];
        for tc in &cases {
            tc.attr("classname");
            tc.attr("name");
            tc.attr("time").parse::<f64>().unwrap();
            for f in tc.kids("failure").chain(tc.kids("error")) {
                f.attr("message");
                f.attr("type");
            }
            c[1] += tc.kids("failure").count();
            c[2] += tc.kids("error").count();
            c[3] += tc.kids("skipped").count();
            assert!(
                tc.kids("failure").count() + tc.kids("error").count() + tc.kids("skipped").count()
                    <= 1
            );
        }
        let attrs = [
            suite.num("tests"),
            suite.num("failures"),
            suite.num("errors"),
            suite.num("skipped"),
        ];
        assert_eq!(attrs, c, "suite {} counts", suite.attr("name"));
        for i in 0..4 {
            sums[i] += c[i];
        }
    }
    let root_counts = [
        root.num("tests"),
        root.num("failures"),
        root.num("errors"),
        root.num("skipped"),
    ];
    assert_eq!(root_counts, sums, "root counts are the sums of the suites");
    root.attr("time").parse::<f64>().unwrap();
    (sums[0], sums[1], sums[2], sums[3])
}

fn record(case: &str, engine: &str, verdict: Status, detail: Option<&str>) -> Record {
    Record {
        case: case.into(),
        file: PathBuf::from("spec/cases/classic/x.toml"),
        line: 3,
        variant: "linux".into(),
        engine: engine.into(),
        verdict,
        detail: detail.map(str::to_string),
        expect_fail: matches!(verdict, Status::Xfail | Status::Xpass)
            .then(|| "xf.toml:1: known <bug> & \"quirk\"".into()),
        failed_as: None,
        time: Some(0.001),
    }
}

/// A run with every status, and details full of markup and control characters.
fn synthetic() -> Run {
    let nasty =
        "ret 3 != 4 <A & X> \"quoted\" 'single' ]]> \u{1} bell\u{7}\n  program:\n    ret #3";
    Run {
        engines: vec![
            EngineFacts {
                name: "interp".into(),
                arch: "portable".into(),
                facts: vec![("version".into(), "0.1.0".into())],
            },
            EngineFacts {
                name: "linux".into(),
                arch: "x86_64".into(),
                facts: vec![("kernel".into(), "6.1 <test> & \"co\"".into())],
            },
        ],
        results: vec![
            record("alu/a", "interp", Status::Pass, None),
            record("alu/b", "interp", Status::Fail, Some(nasty)),
            record(
                "alu/c",
                "linux",
                Status::Skip,
                Some("needs <root> & a \"tap\""),
            ),
            record(
                "alu/d",
                "linux",
                Status::Error,
                Some("engine panicked: boom\nline 2"),
            ),
            record("alu/e", "linux", Status::Xfail, Some(nasty)),
            record(
                "alu/f",
                "linux",
                Status::Xpass,
                Some("expected failure passed"),
            ),
            record("alu/g#1", "linux", Status::Pass, None),
            record(
                "alu/h",
                "linux",
                Status::Crash,
                Some("crashed: killed by SIGSEGV; stderr: <oops>"),
            ),
            record(
                "alu/i",
                "linux",
                Status::Timeout,
                Some("timed out after 1.0s"),
            ),
        ],
        load_errors: vec!["bad.toml:6: case `bad/x`: unknown instruction `frob` <&>".into()],
        warnings: vec![],
    }
}

#[test]
fn junit_of_every_status_parses_with_the_schema_shape() {
    let run = synthetic();
    let xml = run.render(RunFormat::Junit, false);
    let root = parse_xml(&xml);
    let (tests, failures, errors, skipped) = check_junit(&root);
    // 9 results + 1 case-file error; fail → failure; error, crash, timeout, xpass, load
    // error → error; skip, xfail → skipped.
    assert_eq!((tests, failures, errors, skipped), (10, 1, 5, 2));
    let suites: Vec<&str> = root.kids("testsuite").map(|s| s.attr("name")).collect();
    assert_eq!(suites, ["interp", "linux", "case-files"]);
    let linux = root.kids("testsuite").nth(1).unwrap();
    let props: BTreeMap<&str, &str> = linux
        .kids("properties")
        .flat_map(|p| p.kids("property"))
        .map(|p| (p.attr("name"), p.attr("value")))
        .collect();
    assert_eq!(props["arch"], "x86_64");
    assert_eq!(props["kernel"], "6.1 <test> & \"co\"");
    // Escaping round-trips: the failure text is the detail (control characters replaced).
    let interp = root.kids("testsuite").next().unwrap();
    let failing = interp
        .kids("testcase")
        .find(|t| t.attr("name") == "alu/b[linux]")
        .unwrap();
    assert_eq!(failing.attr("classname"), "alu");
    let f = failing.kids("failure").next().unwrap();
    assert!(
        f.text.contains("<A & X> \"quoted\" 'single' ]]>"),
        "{}",
        f.text
    );
    assert!(f.text.contains("\n  program:\n    ret #3"));
    assert!(f.attr("message").starts_with("ret 3 != 4 <A & X>"));
    let skip = linux
        .kids("testcase")
        .find(|t| t.attr("name") == "alu/c[linux]")
        .unwrap();
    assert_eq!(
        skip.kids("skipped").next().unwrap().attr("message"),
        "needs <root> & a \"tap\""
    );
    let xfail = linux
        .kids("testcase")
        .find(|t| t.attr("name") == "alu/e[linux]")
        .unwrap();
    let s = xfail.kids("skipped").next().unwrap();
    assert_eq!(s.attr("type"), "xfail");
    assert!(s.attr("message").contains("known <bug> & \"quirk\""));
    let xpass = linux
        .kids("testcase")
        .find(|t| t.attr("name") == "alu/f[linux]")
        .unwrap();
    assert_eq!(xpass.kids("error").next().unwrap().attr("type"), "xpass");
    for (name, kind, message) in [
        (
            "alu/h[linux]",
            "crash",
            "crashed: killed by SIGSEGV; stderr: <oops>",
        ),
        ("alu/i[linux]", "timeout", "timed out after 1.0s"),
    ] {
        let t = linux.kids("testcase").find(|t| t.attr("name") == name);
        let e = t.unwrap().kids("error").next().unwrap();
        assert_eq!((e.attr("type"), e.attr("message")), (kind, message));
    }
}

#[test]
fn crashes_and_timeouts_are_failures_in_every_format() {
    let run = synthetic();
    let c = run.counts();
    // fail, error, crash, timeout, xpass.
    assert_eq!((c.failed, c.crashed, c.timed_out), (5, 1, 1));
    assert!(!run.success());
    let human = run.render(RunFormat::Human, false);
    assert!(human.contains("CRASH alu/h [linux] on linux\n  crashed: killed by SIGSEGV"));
    assert!(human.contains("TIMEOUT alu/i [linux] on linux\n  timed out after 1.0s"));
    assert!(
        human.contains(
            "linux: 1 passed, 4 failed, 1 skipped, 1 expected failures, 1 crashed, 1 timed out\n"
        ),
        "{human}"
    );
    assert!(human.contains("1 crash(es), 1 timeout(s)"));
    let json: serde_json::Value =
        serde_json::from_str(&run.render(RunFormat::Json, false)).unwrap();
    assert_eq!(json["results"][7]["verdict"], "crash");
    assert_eq!(json["results"][8]["verdict"], "timeout");
    assert_eq!(json["counts"]["crashed"], 1);
    assert_eq!(json["counts_by_engine"]["linux"]["timed_out"], 1);
    // Read back, the statuses survive.
    let back = bpfconf_runner::report::json::parse(&run.render(RunFormat::Json, false)).unwrap();
    assert_eq!(back.results[7].verdict, Status::Crash);
    assert_eq!(back.counts(), c);
}

fn bpfconf(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("spawn bpfconf");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory with one passing and one failing classic case.
fn failing_cases(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfconf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mix.toml"),
        "[[case]]\nname = \"good\"\ndialects = [\"linux\", \"bsd\"]\nasm = \"ret #3\"\n\
         packet = \"00\"\nexpect = { ret = 3 }\n\n\
         [[case]]\nname = \"wrong\"\ndialects = [\"linux\"]\nasm = \"ret #3\"\npacket = \"00\"\n\
         expect = { ret = 4 }\n",
    )
    .unwrap();
    dir
}

#[test]
fn junit_from_the_cli_agrees_with_json_counts() {
    let dir = failing_cases("junit");
    let d = dir.to_str().unwrap();
    let args = ["run", "--engine", "interp", "--filter", "^(alu/|mix/)"];
    let (ok, xml, _) =
        bpfconf(&[&args[..], &["--format", "junit", "spec/cases/classic", d]].concat());
    assert!(!ok, "a failing case fails the run");
    let root = parse_xml(&xml);
    let (tests, failures, errors, skipped) = check_junit(&root);
    let (_, json, _) =
        bpfconf(&[&args[..], &["--format", "json", "spec/cases/classic", d]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = &v["counts"];
    assert_eq!(tests as u64, v["results"].as_array().unwrap().len() as u64);
    assert_eq!(
        (failures + errors) as u64,
        c["failed"].as_u64().unwrap(),
        "{xml}"
    );
    assert_eq!(skipped as u64, c["skipped"].as_u64().unwrap());
    assert_eq!(failures, 1);
    assert!(tests > 100);
    // The JSON also records the engine's architecture.
    assert_eq!(v["engines"][0]["arch"], "portable");
    std::fs::remove_dir_all(&dir).ok();
}

/// TAP counts: (plan, ok, not ok, skip, todo), checking every failure has a YAML block.
fn parse_tap(text: &str) -> (usize, usize, usize, usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "TAP version 13");
    let plan: usize = lines[1].strip_prefix("1..").expect("plan").parse().unwrap();
    let (mut ok, mut not_ok, mut skip, mut todo) = (0, 0, 0, 0);
    let mut expect_num = 1;
    for (i, l) in lines.iter().enumerate() {
        let rest = if let Some(r) = l.strip_prefix("ok ") {
            ok += 1;
            if l.contains(" # SKIP ") {
                skip += 1;
            }
            r
        } else if let Some(r) = l.strip_prefix("not ok ") {
            if l.contains(" # TODO ") {
                todo += 1;
            } else {
                not_ok += 1;
                assert_eq!(lines[i + 1], "  ---", "YAML block after {l}");
                let end = lines[i + 1..].iter().position(|x| *x == "  ...");
                assert!(end.is_some(), "YAML block closed");
            }
            r
        } else {
            continue;
        };
        let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, expect_num, "test points numbered in order");
        expect_num += 1;
    }
    assert_eq!(ok + not_ok + todo, plan, "plan matches the test points");
    (plan, ok, not_ok, skip, todo)
}

#[test]
fn tap_of_every_status_has_plan_and_counts() {
    let tap = synthetic().render(RunFormat::Tap, false);
    let (plan, ok, not_ok, skip, todo) = parse_tap(&tap);
    // pass ×2, skip → ok; fail, error, crash, timeout, xpass, load error → not ok; xfail →
    // not ok # TODO.
    assert_eq!((plan, ok, not_ok, skip, todo), (10, 3, 6, 1, 1), "{tap}");
    // `#` in a description is escaped so it is not read as a directive.
    assert!(tap.contains("ok 7 - alu/g\\#1[linux] on linux\n"), "{tap}");
    assert!(tap.contains("  severity: xpass"));
    assert!(
        tap.contains("not ok 8 - alu/h[linux] on linux\n  ---\n"),
        "{tap}"
    );
    assert!(tap.contains("  severity: crash") && tap.contains("  severity: timeout"));
}

#[test]
fn tap_from_the_cli_matches_counts() {
    let dir = failing_cases("tap");
    let (ok, tap, _) = bpfconf(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "tap",
        "--filter",
        "^(jmp/|mix/)",
        "spec/cases/classic",
        dir.to_str().unwrap(),
    ]);
    assert!(!ok);
    let (plan, _ok, not_ok, skip, todo) = parse_tap(&tap);
    assert!(plan > 50, "{plan}");
    assert_eq!((not_ok, skip, todo), (1, 0, 0), "{tap}");
    assert!(tap.contains("not ok ") && tap.contains("mix/wrong[linux] on interp"));
    assert!(tap.contains("  message: \"ret: expected"), "{tap}");
    std::fs::remove_dir_all(&dir).ok();
}
