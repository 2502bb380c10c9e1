//! `bpfconf fuzz` and `bpfconf minimize` end to end: the injected bug of the test-only
//! `buggy-interp` engine is found within a bounded count, written as a loadable case, and
//! minimized again from a raw 64-instruction case.

use std::path::PathBuf;
use std::process::Command;

fn bpfconf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bpfconf"));
    c.env("BPFCONF_INJECT_BUG", "1");
    c
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfconf-fuzz-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn toml_files(dir: &PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    v.sort();
    v
}

#[test]
fn fuzz_finds_the_injected_bug_and_minimize_shrinks_it() {
    for isa in ["classic", "ebpf"] {
        let out = tmpdir(isa);
        let o = bpfconf()
            .args(["fuzz", "--engines", "interp,buggy-interp", "--isa", isa])
            .args([
                "--seed",
                "5",
                "--count",
                "1000",
                "--body",
                "64",
                "--no-minimize",
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(!o.status.success(), "{isa}: a divergence must fail the run");
        assert!(stdout.contains("divergence: unit"), "{isa}: {stdout}");
        let files = toml_files(&out);
        assert!(!files.is_empty(), "{isa}: no case written");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.starts_with("# Found by `bpfconf fuzz --engines interp,buggy-interp"));

        // The raw case reproduces, and minimizes to a handful of instructions.
        let min = out.join("min.toml");
        let o = bpfconf()
            .args(["minimize", "--engines", "interp,buggy-interp"])
            .arg(&files[0])
            .arg("--out")
            .arg(&min)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = bpfconf_spec::case::load_path(&min);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let n = r
            .cases
            .first()
            .map(|c| c.program.len())
            .unwrap_or_else(|| r.ebpf[0].program.len());
        assert!(n <= 5, "{isa}: minimized to {n} instructions");

        // The minimized case passes on the reference interpreter (its expectation).
        let o = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
            .args(["run", "--engine", "interp"])
            .arg(&min)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn buggy_engine_is_refused_without_the_switch() {
    let o = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .env_remove("BPFCONF_INJECT_BUG")
        .args(["fuzz", "--engines", "interp,buggy-interp", "--count", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("test-only"));
}

#[test]
fn seeded_campaigns_are_reproducible() {
    let run = || {
        let out = tmpdir("repro");
        let o = bpfconf()
            .args(["fuzz", "--engines", "interp,buggy-interp", "--seed", "9"])
            .args(["--count", "300", "--body", "32", "--dialect", "bsd"])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        let _ = std::fs::remove_dir_all(&out);
        s.lines()
            .filter(|l| l.starts_with("divergence"))
            .map(|l| l.split(" -> /").next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let a = run();
    assert!(!a.is_empty());
    assert_eq!(a, run());
}
