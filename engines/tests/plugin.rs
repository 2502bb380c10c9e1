//! External plugin engines, with the Python plugins of tests/plugins/: a correct
//! bpf_conformance-protocol plugin passes the conformance files its tiny interpreter covers; a
//! JSON-lines plugin serves runs, several threads at once; plugins that crash, hang, print
//! garbage or exit become `crashed` / `timed out` / `garbage reply` engine errors, and a
//! persistent plugin is restarted for the next request.
//!
//! Without python3 the tests print why and pass, unless `BPFCONF_REQUIRE_PYTHON` is set (CI).

#[path = "third_party/mod.rs"]
mod third_party;

use bpfconf_engines::plugin::conformance::ConformancePlugin;
use bpfconf_engines::plugin::jsonl::JsonlPlugin;
use bpfconf_engines::plugin::{from_spec, split_command};
use bpfconf_engines::{
    EbpfInput, EbpfProgram, Engine, Input, LoadError, Observed, Outcome, Program, RunError,
};
use bpfconf_spec::ebpf::asm::assemble;
use bpfconf_spec::ebpf::isa::{classify_insn, slot_starts, Form, Sel};
use std::time::Duration;
use third_party::{judge, Counts, Verdict};

fn python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("BPFCONF_REQUIRE_PYTHON").is_some() {
            panic!("BPFCONF_REQUIRE_PYTHON is set but python3 is missing");
        }
        eprintln!("SKIP plugin tests: python3 not found");
    }
    ok
}

fn script(name: &str) -> String {
    third_party::root()
        .join("tests/plugins")
        .join(name)
        .display()
        .to_string()
}

fn argv(s: &str) -> Vec<String> {
    split_command(s).unwrap()
}

fn ebpf(text: &str) -> Program {
    Program::Ebpf(EbpfProgram::new(assemble(text).unwrap()))
}

fn input(mem: &[u8]) -> Input {
    Input::Ebpf(EbpfInput::new(mem.to_vec()))
}

fn run(e: &dyn Engine, text: &str, mem: &[u8]) -> Result<Outcome, RunError> {
    let p = ebpf(text);
    e.supports(&p, &input(mem)).unwrap();
    let mut l = e
        .load(&p)
        .map_err(|e| RunError::Engine(format!("load: {e}")))?;
    l.run(&input(mem))
}

/// The kind (`crash`, `timeout`, `engine`) and message of a failed run.
fn run_error(r: Result<Outcome, RunError>) -> (&'static str, String) {
    match r {
        Err(RunError::Crash(m)) => ("crash", m),
        Err(RunError::Timeout(m)) => ("timeout", m),
        Err(RunError::Engine(m)) => ("engine", m),
        other => panic!("expected a crash, timeout or engine error, got {other:?}"),
    }
}

/// True when mini_ebpf (tests/plugins/mini_ebpf.py) implements every instruction of `p`.
fn mini_covers(p: &[bpfconf_spec::ebpf::Insn]) -> bool {
    let starts = slot_starts(p);
    p.iter().zip(starts).filter(|(_, s)| *s).all(|(i, _)| {
        classify_insn(i).is_some_and(|r| {
            let unsupported = matches!(
                r.form,
                Form::Atomic
                    | Form::Call
                    | Form::CallLocal
                    | Form::Callx
                    | Form::LdAbs
                    | Form::LdInd
                    | Form::Ja32
            ) || matches!(r.sel, Sel::Off(o) if o != 0)
                || (r.form == Form::Lddw && i.src != 0)
                || (r.form == Form::End && r.code == 0xd7)
                || matches!(r.code, 0x81 | 0x89 | 0x91);
            !unsupported
        })
    })
}

#[test]
fn conformance_protocol_plugin_passes_conformance_files() {
    if !python() {
        return;
    }
    let e = ConformancePlugin::new(
        "plugin:test",
        argv(&format!("python3 {}", script("conformance_plugin.py"))),
        vec![],
    );
    e.availability().unwrap();
    let cases: Vec<_> = third_party::load_ebpf(&third_party::conformance_dir())
        .into_iter()
        .filter(|c| mini_covers(&c.program))
        .take(60)
        .collect();
    if cases.is_empty() {
        return;
    }
    let mut counts = Counts::default();
    let mut bad = Vec::new();
    for c in &cases {
        let v = judge(&e, c);
        counts.add(&v);
        if v != Verdict::Pass {
            bad.push(format!("{}: {v:?}", c.name));
        }
    }
    assert!(bad.is_empty(), "{counts:?}\n{}", bad.join("\n"));
    assert!(counts.pass >= 40, "{counts:?}");

    // The protocol has no load step: a program our validator refuses is probed once, and the
    // plugin's failure counts as a rejection.
    let bad_opcode = Program::Ebpf(EbpfProgram::new(vec![
        bpfconf_spec::ebpf::Insn::new(0x8e, 0, 0, 0, 0),
        bpfconf_spec::ebpf::Insn::new(0x95, 0, 0, 0, 0),
    ]));
    match e.load(&bad_opcode) {
        Err(LoadError::Rejected { rule: None, reason }) => {
            assert!(reason.contains("status 1"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A non-zero exit on a run is a fault (bpf_conformance's `-- error`).
    assert!(matches!(
        run(&e, "ldxb %r0, [%r1+8]\nexit", &[1]),
        Err(RunError::Fault(m)) if m.contains("out-of-bounds")
    ));
    // Classic programs cannot travel over this protocol.
    let classic = Program::Classic(bpfconf_engines::ClassicProgram {
        dialect: bpfconf_spec::Dialect::Linux,
        insns: vec![],
        cop_funcs: 0,
        memwords: 16,
    });
    assert!(e.supports(&classic, &input(&[])).is_err());
}

#[test]
fn misbehaving_conformance_plugins_become_verdicts() {
    if !python() {
        return;
    }
    let t = Duration::from_millis(1500);
    let mk = |mode: &str| {
        ConformancePlugin::new(
            "plugin:misbehave",
            argv(&format!(
                "python3 {} conformance {mode}",
                script("misbehave.py")
            )),
            vec!["--always".into()],
        )
        .with_timeout(t)
    };
    let prog = "mov %r0, 1\nexit";
    let (k, m) = run_error(run(&mk("crash"), prog, &[1, 2]));
    assert!(
        k == "crash" && m.starts_with("crashed") && m.contains("SIGSEGV"),
        "{m}"
    );
    let (k, m) = run_error(run(&mk("hang"), prog, &[]));
    assert!(k == "timeout" && m.starts_with("timed out"), "{m}");
    let (k, m) = run_error(run(&mk("garbage"), prog, &[]));
    assert!(k == "engine" && m.starts_with("garbage reply"), "{m}");
    // The memory argument comes first, then the options (as bpf_conformance passes them): the
    // well-behaved path of the same script sees both.
    let ok = ConformancePlugin::new(
        "plugin:misbehave",
        argv(&format!(
            "python3 {} conformance crash",
            script("misbehave.py")
        )),
        vec![],
    );
    let o = run(&ok, "ldxb %r0, [%r1+1]\nexit", &[5, 6]).unwrap();
    assert_eq!(o.ret, Observed::Exact(6));
    // A program that cannot be started is unavailable, with the reason.
    let missing = from_spec("plugin:/nonexistent/plugin").unwrap();
    assert!(missing
        .availability()
        .unwrap_err()
        .contains("not an executable"));
}

fn jsonl(mode: &str) -> JsonlPlugin {
    JsonlPlugin::new(
        &format!("jsonl:misbehave {mode}"),
        argv(&format!("python3 {} jsonl {mode}", script("misbehave.py"))),
    )
    .with_timeout(Duration::from_millis(1500))
}

#[test]
fn jsonl_plugin_runs_and_is_restarted_after_misbehaving() {
    if !python() {
        return;
    }
    let good = "mov %r0, %r2\nstb [%r1+0], 7\nexit";
    let trigger = "mov %r0, 0xbad\nexit";
    for mode in ["crash", "hang", "garbage", "exit"] {
        let e = jsonl(mode);
        e.availability().unwrap();
        let o = run(&e, good, &[1, 2, 3]).unwrap();
        assert_eq!(o.ret, Observed::Exact(3), "{mode}");
        assert_eq!(o.memory, Some(vec![7, 2, 3]), "{mode}");
        let (kind, m) = run_error(run(&e, trigger, &[]));
        let want = match mode {
            "crash" => ("crash", "crashed: killed by SIGSEGV"),
            "hang" => ("timeout", "timed out"),
            "garbage" => ("engine", "garbage reply"),
            _ => ("crash", "crashed: exited with status 3"),
        };
        assert!(
            kind == want.0 && m.starts_with(want.1),
            "{mode}: {kind} {m}"
        );
        // The next request gets a fresh process.
        let before = e.processes_started();
        let o = run(&e, good, &[1, 2]).unwrap();
        assert_eq!(o.ret, Observed::Exact(2), "{mode}");
        assert_eq!(e.processes_started(), before + 1, "{mode}");
        // Faults and skips travel as such.
        assert!(matches!(
            run(&e, "ldxb %r0, [%r1+4]\nexit", &[1]),
            Err(RunError::Fault(_))
        ));
        assert!(matches!(
            run(&e, "lock add [%r10-8], %r1\nexit", &[]),
            Err(RunError::Unsupported(_))
        ));
    }
}

#[test]
fn jsonl_plugin_serves_threads_in_parallel() {
    if !python() {
        return;
    }
    let e = jsonl("crash");
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let e = &e;
            s.spawn(move || {
                for i in 0..5u8 {
                    let mem = vec![t, i, 9];
                    let o = run(
                        e,
                        "ldxb %r0, [%r1+0]\nldxb %r3, [%r1+1]\nadd %r0, %r3\nexit",
                        &mem,
                    )
                    .unwrap();
                    assert_eq!(o.ret, Observed::Exact((t + i) as u64));
                }
            });
        }
    });
    assert!(e.processes_started() <= 5, "{}", e.processes_started());
}

#[test]
fn jsonl_handshake_is_checked() {
    // `cat` echoes the hello request: right id and protocol, but no version chosen.
    let e = JsonlPlugin::new("jsonl:cat", vec!["cat".into()]);
    let why = e.availability().unwrap_err();
    assert!(
        why.contains("handshake") && why.contains("version"),
        "{why}"
    );
    // `true` exits at once.
    let e = JsonlPlugin::new("jsonl:true", vec!["true".into()])
        .with_timeout(Duration::from_millis(500));
    let why = e.availability().unwrap_err();
    assert!(
        why.contains("handshake") && why.contains("crashed"),
        "{why}"
    );
    // Loading through an unavailable plugin is an engine error, not a hang.
    assert!(matches!(e.load(&ebpf("exit")), Err(LoadError::Engine(_))));
}
