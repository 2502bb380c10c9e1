//! Crash isolation: engines that run generated machine code (a JIT), or are asked to with
//! `--isolate`, run in child processes — `bpfconf serve --engine NAME --in-process`, spoken to
//! over the JSON-lines protocol (docs/plugin-protocol.md) — so that a case whose code crashes or
//! hangs gets the verdict `crash` or `timeout`, its child is restarted, and the run goes on.
//!
//! An [`Isolated`] engine keeps the name, facts and `supports` answers of the engine it wraps
//! (computed in-process: they run nothing), so reports, `skip` tables of cases and
//! expected-failure entries see the same engine; loads and runs go to a pool of children (one per
//! parallel worker), each with a deadline (10 s, or `BPFCONF_PLUGIN_TIMEOUT_MS`). `bpfconf run`
//! and `bpfconf report` isolate the engines whose [`Engine::needs_isolation`] is true unless
//! `--in-process` is given, and any engine named by `--isolate`; `bpfconf fuzz` never isolates
//! (a crash there is a finding).

use bpfconf_engines::plugin::jsonl::JsonlPlugin;
use bpfconf_engines::{Engine, EngineInfo, Input, LoadError, Loaded, Program};
use std::path::Path;

/// Which engines run in child processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Run every engine in-process, even those that need isolation (`--in-process`).
    pub in_process: bool,
    /// Engines to isolate whether or not they need it (`--isolate a,b`).
    pub force: Vec<String>,
}

impl Policy {
    /// The policy of the `--in-process` and `--isolate LIST` options.
    pub fn from_args(in_process: bool, isolate: Option<&str>) -> Result<Policy, String> {
        let force: Vec<String> = isolate
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if in_process && !force.is_empty() {
            return Err("--in-process and --isolate exclude each other".into());
        }
        Ok(Policy { in_process, force })
    }

    /// True when `engine` is to run in a child process.
    pub fn isolates(&self, engine: &dyn Engine) -> bool {
        self.force.iter().any(|n| n == engine.name())
            || (!self.in_process && engine.needs_isolation())
    }
}

/// An engine run in `bpfconf serve` child processes, under the wrapped engine's name.
pub struct Isolated {
    inner: Box<dyn Engine>,
    child: JsonlPlugin,
    command: Vec<String>,
}

impl Isolated {
    /// Wraps `inner`, whose children run `exe serve --engine NAME --in-process` (`exe` is the
    /// `bpfconf` binary).
    pub fn new(inner: Box<dyn Engine>, exe: &Path) -> Isolated {
        let command = vec![
            exe.display().to_string(),
            "serve".into(),
            "--engine".into(),
            inner.name().to_string(),
            "--in-process".into(),
        ];
        let child = JsonlPlugin::new(inner.name(), command.clone()).with_role("isolation child");
        Isolated {
            inner,
            child,
            command,
        }
    }

    /// How many child processes were started so far (restarts after crashes and timeouts
    /// included).
    pub fn processes_started(&self) -> usize {
        self.child.processes_started()
    }
}

impl Engine for Isolated {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn info(&self) -> EngineInfo {
        let mut info = self.inner.info();
        info.facts.push((
            "isolated".into(),
            format!("child process: {}", self.command[1..].join(" ")),
        ));
        info
    }

    fn availability(&self) -> Result<(), String> {
        self.inner.availability()?;
        self.child
            .availability()
            .map_err(|e| format!("cannot start the isolation child: {e}"))
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        self.inner.supports(program, input)?;
        self.child.supports(program, input)
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        self.child.load(program)
    }

    fn needs_isolation(&self) -> bool {
        false
    }
}

/// Applies a policy: the engines it isolates are wrapped in [`Isolated`] (children run `exe`),
/// the others are returned as they are. Fails when `--isolate` names an engine that is not
/// among `engines`, or an external plugin (already a process of its own).
pub fn apply(
    engines: Vec<Box<dyn Engine>>,
    policy: &Policy,
    exe: &Path,
) -> Result<Vec<Box<dyn Engine>>, String> {
    for name in &policy.force {
        if bpfconf_engines::plugin::is_plugin_spec(name) {
            return Err(format!(
                "--isolate {name}: a plugin engine already runs in its own process"
            ));
        }
        if !engines.iter().any(|e| e.name() == name) {
            let run: Vec<&str> = engines.iter().map(|e| e.name()).collect();
            return Err(format!(
                "--isolate {name}: not among the engines run ({})",
                run.join(", ")
            ));
        }
    }
    Ok(engines
        .into_iter()
        .map(|e| {
            if policy.isolates(e.as_ref()) {
                Box::new(Isolated::new(e, exe)) as Box<dyn Engine>
            } else {
                e
            }
        })
        .collect())
}

/// The `bpfconf` binary to start children from: this process's executable.
pub fn current_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the bpfconf executable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{execute, Verdict};
    use bpfconf_engines::{ClassicInput, ClassicProgram};

    /// An engine whose loads fail with a fixed message.
    struct FailingLoad(&'static str);

    impl Engine for FailingLoad {
        fn name(&self) -> &str {
            "failing"
        }
        fn info(&self) -> EngineInfo {
            EngineInfo {
                name: "failing".into(),
                arch: "portable".into(),
                facts: vec![],
            }
        }
        fn availability(&self) -> Result<(), String> {
            Ok(())
        }
        fn supports(&self, _: &Program, _: &Input) -> Result<(), String> {
            Ok(())
        }
        fn load(&self, _: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
            Err(LoadError::Engine(self.0.into()))
        }
    }

    #[test]
    fn a_child_dying_during_a_load_is_a_crash_verdict() {
        let p = Program::Classic(ClassicProgram {
            dialect: bpfconf_spec::Dialect::Linux,
            insns: vec![],
            cop_funcs: 0,
            memwords: 16,
        });
        let i = Input::Classic(ClassicInput {
            packet: vec![],
            ctx: Default::default(),
        });
        let v = |m| execute(&FailingLoad(m), &p, &i, false).unwrap_err();
        let crash = "crashed: killed by SIGSEGV (the isolation child will be restarted)";
        assert_eq!(v(crash), Verdict::Crash(crash.into()));
        assert_eq!(
            v("timed out after 1.0s"),
            Verdict::Timeout("timed out after 1.0s".into())
        );
        assert_eq!(
            v("no socket"),
            Verdict::Error("engine error: no socket".into())
        );
    }

    #[test]
    fn policy() {
        let interp = bpfconf_engines::engine_by_name("interp").unwrap();
        let p = Policy::from_args(false, Some(" interp, ")).unwrap();
        assert_eq!(p.force, vec!["interp"]);
        assert!(p.isolates(interp.as_ref()));
        assert!(!Policy::default().isolates(interp.as_ref()));
        assert!(Policy::from_args(true, Some("interp")).is_err());
        let exe = Path::new("/bin/false");
        let e = apply(vec![interp], &p, exe).unwrap();
        assert_eq!(e[0].name(), "interp");
        assert!(e[0].info().facts.iter().any(|(k, _)| k == "isolated"));
        let bad = Policy::from_args(false, Some("pcap")).unwrap();
        let interp = bpfconf_engines::engine_by_name("interp").unwrap();
        assert!(apply(vec![interp], &bad, exe)
            .err()
            .unwrap()
            .contains("not among"));
    }
}
