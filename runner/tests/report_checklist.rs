//! `bpfconf report`: the JIT-porter checklist (Markdown with the per-architecture table and the
//! per-opcode rows for classic and eBPF, self-contained HTML, JSON), its groups and rows derived
//! from the programs, `--from` reusing a `run --format json` output, and `--compare`.

mod common;

use bpfconf_runner::report::checklist::features::{self, Section};
use bpfconf_runner::report::compare::{diff, Outcome};
use bpfconf_runner::report::{Record, Run, Status};
use bpfconf_spec::case::load_str;
use bpfconf_spec::ebpf::isa::ISA;
use std::path::{Path, PathBuf};
use std::process::Command;

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

const EBPF: &str = r#"
[[case]]
name = "add"
isa = "ebpf"
asm = """
mov %r0, 3
add %r0, 4
exit
"""
[case.expect]
r0 = 7

[[case]]
name = "lock"
isa = "ebpf"
asm = """
mov %r1, 5
stxdw [%r10-8], %r1
mov %r2, 2
lock add [%r10-8], %r2
ldxdw %r0, [%r10-8]
exit
"""
[case.expect]
r0 = 7
"#;

const CLASSIC: &str = r#"
[[case]]
name = "wrong"
dialects = ["linux"]
asm = "ret #3"
packet = "00"
expect = { ret = 4 }

[[case]]
name = "poff_and_neg"
dialects = ["linux"]
insns = [[0x20, 0, 0, 0xfffff034], [0x30, 0, 0, 0xfff00000], [0x07, 0, 0, 0], [0x06, 0, 0, 0]]
packet = "00"
expect = { any_ret = true }
"#;

/// A temporary directory with `ebpf/x.toml` (two passing eBPF cases) and `mix/mix.toml`
/// (one failing classic case, one using `poff` and a negative offset).
fn cases(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfconf-cl-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ebpf")).unwrap();
    std::fs::create_dir_all(dir.join("mix")).unwrap();
    std::fs::write(dir.join("ebpf/x.toml"), EBPF).unwrap();
    std::fs::write(dir.join("mix/mix.toml"), CLASSIC).unwrap();
    dir
}

/// The table rows (lines starting `| `\``) of a Markdown section.
fn section_rows<'a>(md: &'a str, heading: &str) -> Vec<&'a str> {
    let start = md.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    md[start + heading.len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("| `"))
        .collect()
}

fn engines() -> &'static str {
    if common::linux_engine().is_some() {
        "interp,linux"
    } else {
        "interp"
    }
}

#[test]
fn checklist_has_the_arch_table_and_per_opcode_rows() {
    let dir = cases("md");
    let out = dir.join("out");
    let (ok, stdout, stderr) = bpfconf(&[
        "report",
        "--engine",
        engines(),
        "--out",
        out.to_str().unwrap(),
        "spec/cases/classic",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("bpfconf: interp (portable): "), "{stdout}");
    let md = std::fs::read_to_string(out.join("checklist.md")).unwrap();
    // One table of pass rates per engine × architecture.
    assert!(md.contains("## Pass rates per engine and architecture"));
    assert!(md.contains("| engine | arch | passed | failed | xfail | skipped | pass rate |"));
    assert!(md.contains("\n| interp | portable | "), "{md}");
    if engines().contains("linux") {
        let arch = std::env::consts::ARCH;
        assert!(md.contains(&format!("\n| linux | {arch} | ")), "{md}");
        assert!(md.contains(&format!("| linux ({arch}) |")));
        assert!(md.contains(&format!("bpfconf: linux ({arch}): ")));
    }
    // Per-opcode rows: the 52 classic opcodes, the extensions, the eBPF ISA rows.
    let classic = section_rows(&md, "### Classic opcodes (52)");
    assert_eq!(classic.len(), 52);
    assert!(
        classic
            .iter()
            .any(|l| l.starts_with("| `ret_a` | 0x16 | ✓ ")),
        "{classic:?}"
    );
    // mix/wrong (`ret #3`, expecting 4) fails on every engine that runs it.
    assert!(
        classic
            .iter()
            .any(|l| l.starts_with("| `ret_k` | 0x06 | ✗ ")),
        "{classic:?}"
    );
    assert!(classic
        .iter()
        .any(|l| l.starts_with("| `misc_cop` | 0x27 | ✓ ")));
    let ext = section_rows(&md, "### Linux extensions (17)");
    assert!(ext
        .iter()
        .any(|l| l.starts_with("| `poff` |") && l.contains("✓")));
    let neg = section_rows(&md, "### Linux negative offsets (2)");
    assert!(neg
        .iter()
        .any(|l| l.starts_with("| `SKF_NET_OFF` |") && l.contains("✓")));
    let ebpf = section_rows(&md, &format!("### eBPF ISA rows ({})", ISA.len()));
    assert_eq!(ebpf.len(), ISA.len());
    let row = |name: &str| {
        *ebpf
            .iter()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap()
    };
    assert!(
        row("alu64_add_k").contains("| ✓ 1/1"),
        "{}",
        row("alu64_add_k")
    );
    assert!(
        row("alu64_mov_k").contains("| ✓ 2/2"),
        "{}",
        row("alu64_mov_k")
    );
    assert!(
        row("atomic64_add").contains("| ✓ 1/1"),
        "{}",
        row("atomic64_add")
    );
    assert!(
        row("atomic64_cmpxchg").contains(" | – |"),
        "{}",
        row("atomic64_cmpxchg")
    );
    // Groups: classic and eBPF.
    assert!(md.contains("| classic | ext poff | ✓ "), "{md}");
    assert!(
        md.contains("| classic | ret | ✗ "),
        "the failing case uses ret: {md}"
    );
    assert!(md.contains("| ebpf | atomic64 | ✓ 1/1"), "{md}");
    assert!(md.contains("| ebpf | maps | – |"));
    // The failing case, with a repro command that reproduces it.
    assert!(md.contains("## Failing cases (1)"), "{md}");
    let repro = "bpfconf run --engine interp --dialect linux --filter '^mix/wrong$' ";
    let line = md.lines().find(|l| l.contains(repro)).expect("repro line");
    let cmd = line.trim().trim_matches('`');
    let sh = cmd.replacen("bpfconf", env!("CARGO_BIN_EXE_bpfconf"), 1);
    let o = Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .current_dir(common::root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && text.ends_with("0 passed, 1 failed, 0 skipped\n"),
        "{text}"
    );

    // HTML: one self-contained page.
    let html = std::fs::read_to_string(out.join("checklist.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<style>"));
    for external in [
        "<script", "<link", "src=", "href=", "http://", "https://", "url(",
    ] {
        assert!(!html.contains(external), "external asset `{external}`");
    }
    assert!(
        html.contains("<h3 id=\"classic\">Classic opcodes (52)</h3>") && html.contains("mix/wrong")
    );
    // JSON: the same data.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checklist.json")).unwrap())
            .unwrap();
    assert_eq!(v["columns"][0]["arch"], "portable");
    assert_eq!(
        v["matrix"].as_array().unwrap().len(),
        52 + 17 + 2 + ISA.len()
    );
    assert_eq!(v["failing"][0]["case"], "mix/wrong");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn report_from_a_json_run_matches_a_fresh_report() {
    let dir = cases("from");
    let d = dir.to_str().unwrap();
    let (_, json, _) = bpfconf(&[
        "run",
        "--engine",
        "interp",
        "--format",
        "json",
        "spec/cases/classic",
        d,
    ]);
    let results = dir.join("results.json");
    std::fs::write(&results, json).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (ok1, _, e1) = bpfconf(&[
        "report",
        "--engine",
        "interp",
        "--out",
        a.to_str().unwrap(),
        "spec/cases/classic",
        d,
    ]);
    // Without PATHS, the cases are re-read from the files the results name.
    let (ok2, _, e2) = bpfconf(&[
        "report",
        "--from",
        results.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
    ]);
    assert!(ok1 && ok2, "{e1}\n{e2}");
    let load = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("checklist.json")).unwrap()).unwrap()
    };
    let (va, vb) = (load(&a), load(&b));
    for key in ["groups", "matrix", "failing", "columns"] {
        assert_eq!(va[key], vb[key], "{key}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn groups_and_rows_come_from_the_program() {
    let r = load_str(Path::new("mix.toml"), CLASSIC);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let f = features::classic(&r.cases[1]);
    let groups: Vec<&str> = f.groups.iter().map(String::as_str).collect();
    // The ancillary load counts as its extension, not as a load; the negative offset as both.
    assert_eq!(
        groups,
        [
            "ext poff",
            "load",
            "misc",
            "negative offsets (SKF_NET_OFF)",
            "ret"
        ]
    );
    assert!(f.rows.contains(&(Section::Ext, "poff".into())));
    assert!(f.rows.contains(&(Section::Classic, "ld_abs_w".into())));
    assert!(f.rows.contains(&(Section::Negoff, "SKF_NET_OFF".into())));
    let e = load_str(Path::new("x.toml"), EBPF);
    let f = features::ebpf(&e.ebpf[1]);
    let groups: Vec<&str> = f.groups.iter().map(String::as_str).collect();
    assert_eq!(
        groups,
        ["atomic64", "atomics", "base32", "base64", "memory"]
    );
    assert!(f.rows.contains(&(Section::Ebpf, "atomic64_add".into())));
    assert!(f.rows.contains(&(Section::Ebpf, "exit".into())));
}

fn run_of(items: &[(&str, Status)]) -> Run {
    Run {
        results: items
            .iter()
            .map(|(case, verdict)| Record {
                case: case.to_string(),
                file: "f.toml".into(),
                line: 1,
                variant: "linux".into(),
                engine: "linux".into(),
                verdict: *verdict,
                detail: None,
                expect_fail: None,
                failed_as: None,
                time: None,
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn compare_finds_fixed_and_broken_cases() {
    use Status::*;
    let old = run_of(&[
        ("a/fixed", Fail),
        ("a/broke", Pass),
        ("a/same", Pass),
        ("a/gone", Pass),
        ("a/xf", Xfail),
        ("a/unskip", Skip),
    ]);
    let new = run_of(&[
        ("a/fixed", Pass),
        ("a/broke", Error),
        ("a/same", Pass),
        ("a/new", Pass),
        ("a/xf", Fail),
        ("a/unskip", Fail),
    ]);
    let d = diff(&old, &new);
    let names = |v: &[(String, String, String)]| v.iter().map(|k| k.1.clone()).collect::<Vec<_>>();
    assert_eq!(names(&d.fixed), ["a/fixed"]);
    assert_eq!(names(&d.broke), ["a/broke"]);
    assert_eq!(d.newly_failing.len(), 1);
    assert_eq!(d.newly_failing[0].0 .1, "a/unskip");
    assert_eq!(d.added[0].0 .1, "a/new");
    assert_eq!(
        d.removed[0],
        (
            ("linux".into(), "a/gone".into(), "linux".into()),
            Outcome::Pass
        )
    );
    // An xfail that is now a plain failure did not change: the case fails either way.
    assert_eq!(d.unchanged, 2);
    assert!(d.regressed());
    assert!(!diff(&new, &new).regressed());
}

#[test]
fn compare_on_the_command_line_exits_non_zero_when_something_broke() {
    let dir = cases("cmp");
    let not_json = dir.join("mix/mix.toml");
    let run = |name: &str, fix: bool| {
        if fix {
            std::fs::write(
                dir.join("mix/mix.toml"),
                CLASSIC.replace("ret = 4", "ret = 3"),
            )
            .unwrap();
        }
        let (_, json, _) = bpfconf(&[
            "run",
            "--engine",
            "interp",
            "--format",
            "json",
            dir.to_str().unwrap(),
        ]);
        let p = dir.join(name);
        std::fs::write(&p, json).unwrap();
        p.display().to_string()
    };
    let failing = run("old.json", false);
    let fixed = run("new.json", true);
    let (ok, out, _) = bpfconf(&["report", "--compare", &failing, &fixed]);
    assert!(ok, "{out}");
    assert!(
        out.contains("FIXED (fail → pass) (1):\n  mix/wrong[linux] on interp"),
        "{out}"
    );
    assert!(
        out.ends_with("1 fixed, 0 broke, 0 newly failing, 0 new, 0 removed, 3 unchanged\n"),
        "{out}"
    );
    let (ok, out, _) = bpfconf(&["report", "--compare", &fixed, &failing]);
    assert!(!ok, "something broke: {out}");
    assert!(
        out.contains("BROKE (pass → fail) (1):\n  mix/wrong[linux] on interp"),
        "{out}"
    );
    // A file that is not a run's JSON output is a clear error.
    let (ok, _, err) = bpfconf(&["report", "--compare", not_json.to_str().unwrap(), &fixed]);
    assert!(
        !ok && err.contains("not a `bpfconf run --format json` output"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn crashes_and_timeouts_are_failures_in_the_checklist_and_compare() {
    use Status::*;
    let old = run_of(&[("a/x", Pass), ("a/y", Crash), ("a/z", Pass)]);
    let new = run_of(&[("a/x", Crash), ("a/y", Pass), ("a/z", Timeout)]);
    let d = diff(&old, &new);
    let names = |v: &[(String, String, String)]| v.iter().map(|k| k.1.clone()).collect::<Vec<_>>();
    assert_eq!(names(&d.broke), ["a/x", "a/z"]);
    assert_eq!(names(&d.fixed), ["a/y"]);
    assert!(d.regressed());
    let feats = features::index(&[], &[]);
    let list = bpfconf_runner::report::checklist::build(&[new], &feats, vec![]);
    assert_eq!(
        list.columns[0].summary,
        "bpfconf: linux (?): 1 PASSED, 2 FAILED (1 CRASHED, 1 TIMED OUT), 0 SKIPPED"
    );
    let md = bpfconf_runner::report::checklist::markdown::render(&list);
    assert!(md.contains("`a/x` [linux] CRASH"), "{md}");
    assert!(md.contains("`a/z` [linux] TIMEOUT"), "{md}");
}
