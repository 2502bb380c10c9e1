//! The bpf_conformance plugin protocol (`plugin:<command>`), as bpf_conformance's runner
//! (`src/bpf_conformance.cc`) drives plugins:
//!
//! - argv: the plugin's command, then the input memory as hex **if it is not empty** (each byte
//!   as two lowercase hex digits followed by two spaces, e.g. `"01  02  "`), then the plugin
//!   options (the words after `--` in the spec);
//! - stdin: the program's bytes in the same hex form, then a newline; stdin is then closed;
//! - stdout: `r0` in hex (bpf_conformance joins the lines and parses with `stoull(…, 16)`);
//! - a non-zero exit code means the program failed to load or run; stdout (or stderr if stdout
//!   is empty) says why.
//!
//! Mapped to bpfconf outcomes: exit 0 with a hex number → the run's `r0` (the memory buffer is not
//! observable); a non-zero exit → a *fault* (bpf_conformance's `-- error` tests pass on any
//! error, and so do ours); death by a signal → [`RunError::Crash`] (`crashed: …`); no answer by
//! the deadline → [`RunError::Timeout`] (`timed out after …`); during a load probe, the same
//! messages as [`LoadError::Engine`]; exit 0 with anything but one hex number (optionally
//! `0x`-prefixed, surrounding whitespace allowed) → `garbage reply: …`. That last check is
//! stricter than bpf_conformance, which would read `2a junk` as 0x2a.
//!
//! The protocol has no load-only step, so a rejection cannot be told from a run-time error.
//! When a case expects a rejection (the runner then only loads), [`Engine::load`] probes the
//! program — only if our own validator rejects it — by running it once with empty memory: a
//! non-zero exit counts as the plugin rejecting it, as any error does in bpf_conformance. Other
//! programs load without a probe.

use super::process::{describe_status, resolve_program, run_once, truncate, ProcError};
use crate::{Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome, Program, RunError};
use bpfconf_spec::ebpf::Insn;
use std::time::Duration;

/// A bpf_conformance-protocol plugin engine.
#[derive(Debug, Clone)]
pub struct ConformancePlugin {
    spec: String,
    command: Vec<String>,
    options: Vec<String>,
    timeout: Duration,
}

/// Encodes bytes as bpf_conformance does: two hex digits and two spaces per byte.
pub fn base16(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}  ")).collect()
}

/// Parses a plugin's stdout: one hex number, optionally `0x`-prefixed, lines joined.
pub fn parse_r0(stdout: &str) -> Option<u64> {
    let joined: String = stdout.lines().collect();
    let t = joined.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || t.len() > 16 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

/// What one plugin invocation amounted to.
enum Answer {
    R0(u64),
    Failed(String),
}

impl ConformancePlugin {
    /// A plugin engine named `spec`, running `command` with `options` after the memory
    /// argument; the deadline comes from `BPFCONF_PLUGIN_TIMEOUT_MS` (default 10 s).
    pub fn new(spec: &str, command: Vec<String>, options: Vec<String>) -> Self {
        ConformancePlugin {
            spec: spec.to_string(),
            command,
            options,
            timeout: super::timeout_from_env(),
        }
    }

    /// The same engine with another per-run deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn invoke(&self, insns: &[Insn], mem: &[u8]) -> Result<Answer, RunError> {
        let mut argv = self.command.clone();
        if !mem.is_empty() {
            argv.push(base16(mem));
        }
        argv.extend(self.options.iter().cloned());
        let stdin = format!("{}\n", base16(&bpfconf_spec::ebpf::to_bytes(insns)));
        let f = run_once(&argv, stdin.as_bytes(), self.timeout).map_err(|e| match e {
            ProcError::TimedOut(t) => {
                RunError::Timeout(format!("timed out after {:.1}s", t.as_secs_f64()))
            }
            e @ ProcError::Ended(_) => RunError::Crash(e.to_string()),
            other => RunError::Engine(other.to_string()),
        })?;
        let out = String::from_utf8_lossy(&f.stdout);
        let err = String::from_utf8_lossy(&f.stderr);
        match f.status.code() {
            None => Err(RunError::Crash(format!(
                "crashed: plugin {}{}",
                describe_status(f.status),
                match err.trim() {
                    "" => String::new(),
                    e => format!("; stderr: {}", truncate(e, 400)),
                }
            ))),
            Some(0) => parse_r0(&out).map(Answer::R0).ok_or_else(|| {
                RunError::Engine(format!(
                    "garbage reply: expected r0 in hex on stdout, got {:?}",
                    truncate(out.trim(), 200)
                ))
            }),
            Some(c) => {
                let why = match (out.trim(), err.trim()) {
                    ("", "") => "no output".to_string(),
                    ("", e) => e.to_string(),
                    (o, _) => o.to_string(),
                };
                Ok(Answer::Failed(format!(
                    "plugin exited with status {c}: {}",
                    truncate(&why, 400)
                )))
            }
        }
    }
}

struct LoadedPlugin<'a> {
    engine: &'a ConformancePlugin,
    insns: Vec<Insn>,
}

impl Loaded for LoadedPlugin<'_> {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Ebpf(inp) = input else {
            return Err(RunError::Engine(
                "an eBPF program needs an eBPF input".into(),
            ));
        };
        match self.engine.invoke(&self.insns, &inp.mem)? {
            Answer::R0(r0) => Ok(Outcome {
                ret: Observed::Exact(r0),
                mem: None,
                memory: None,
                maps: None,
            }),
            Answer::Failed(why) => Err(RunError::Fault(why)),
        }
    }
}

impl Engine for ConformancePlugin {
    fn name(&self) -> &str {
        &self.spec
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: self.spec.clone(),
            arch: "external".into(),
            facts: vec![
                ("protocol".into(), "bpf_conformance plugin".into()),
                ("command".into(), self.command.join(" ")),
                ("options".into(), self.options.join(" ")),
                ("timeout".into(), format!("{:?}", self.timeout)),
            ],
        }
    }

    fn availability(&self) -> Result<(), String> {
        resolve_program(&self.command[0]).map(drop)
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        match (program, input) {
            (Program::Classic(_), _) => {
                Err("the bpf_conformance plugin protocol carries eBPF programs only".into())
            }
            (Program::Ebpf(p), Input::Ebpf(_)) => {
                if !p.maps.is_empty() || !p.progs.is_empty() {
                    Err("the bpf_conformance plugin protocol carries no maps".into())
                } else {
                    Ok(())
                }
            }
            _ => Err("an eBPF program needs an eBPF input".into()),
        }
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        let Program::Ebpf(p) = program else {
            return Err(LoadError::Unsupported(
                "the bpf_conformance plugin protocol carries eBPF programs only".into(),
            ));
        };
        if bpfconf_spec::ebpf::validate::validate(&p.insns).is_err() {
            match self.engine_probe(&p.insns)? {
                Answer::R0(_) => {}
                Answer::Failed(why) => {
                    return Err(LoadError::Rejected {
                        rule: None,
                        reason: format!(
                            "{why} (on a probe run with empty memory: this protocol cannot tell \
                             a rejection from a run-time error)"
                        ),
                    })
                }
            }
        }
        Ok(Box::new(LoadedPlugin {
            engine: self,
            insns: p.insns.clone(),
        }))
    }
}

impl ConformancePlugin {
    fn engine_probe(&self, insns: &[Insn]) -> Result<Answer, LoadError> {
        self.invoke(insns, &[]).map_err(|e| match e {
            RunError::Unsupported(m) => LoadError::Unsupported(m),
            other => LoadError::Engine(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_parsing() {
        assert_eq!(base16(&[1, 0xab]), "01  ab  ");
        assert_eq!(parse_r0("2a\n"), Some(0x2a));
        assert_eq!(parse_r0(" 0xFFFFffffFFFFffff \r\n"), Some(u64::MAX));
        assert_eq!(parse_r0("1\n2\n"), Some(0x12));
        assert_eq!(parse_r0(""), None);
        assert_eq!(parse_r0("2a junk"), None);
        assert_eq!(parse_r0("10000000000000000"), None);
        assert_eq!(parse_r0("-1"), None);
    }
}
