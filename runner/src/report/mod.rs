//! Reports of a suite run: the [`Run`] model (verdicts plus expected-failure status and engine
//! facts) and its renderings — human text, JSON, JUnit XML, TAP — and the JIT-porter checklist.
//!
//! - [`human`], [`json`], [`junit`], [`tap`]: `bpfconf run --format …`.
//! - [`checklist`]: `bpfconf report --out DIR` (Markdown, HTML, JSON).
//! - [`compare`]: `bpfconf report --compare OLD.json NEW.json`.
//! - [`progress`]: running units with timing and a progress bar on terminals.
//! - [`cli`]: the `bpfconf report` subcommand.

pub mod checklist;
pub mod cli;
pub mod compare;
pub mod human;
pub mod json;
pub mod junit;
pub mod progress;
pub mod tap;

use crate::expect_fail::ExpectFail;
use crate::suite::{SuiteReport, Unit, Verdict};
use bpfconf_engines::{Engine, EngineInfo};
use bpfconf_spec::case::CaseError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Output format of `bpfconf exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people.
    Human,
    /// JSON.
    Json,
}

/// Output format of `bpfconf run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// Text for people: failures in full, skips grouped by reason, counts per engine.
    Human,
    /// One JSON document with every result, the engines' facts and the counts (the input of
    /// `bpfconf report --from` and `--compare`).
    Json,
    /// JUnit XML: one `<testsuite>` per engine, for CI systems (Jenkins, GitLab…).
    Junit,
    /// TAP version 13, with YAML diagnostics for failures.
    Tap,
}

/// The status of one (case, variant, engine) after expected failures are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met the expectation.
    Pass,
    /// Did not meet the expectation.
    Fail,
    /// Could not run; the detail says why. Never counted as a pass.
    Skip,
    /// The engine failed (I/O, syscall, panic) — counted as a failure.
    Error,
    /// Failed, as an expected-failure entry says it does: not counted as a failure.
    Xfail,
    /// Passed although an expected-failure entry says it fails: counted as a failure, so that
    /// expected-failure lists stay honest.
    Xpass,
    /// The process running the case died (signal, or exit without a result); it was restarted
    /// and the run went on — counted as a failure.
    Crash,
    /// The case did not finish by its deadline; the process running it was killed and
    /// restarted — counted as a failure.
    Timeout,
}

impl Status {
    /// Short label: PASS, FAIL, SKIP, ERROR, CRASH, TIMEOUT, XFAIL, XPASS.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Error => "ERROR",
            Status::Crash => "CRASH",
            Status::Timeout => "TIMEOUT",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
        }
    }

    /// The name used in JSON and in expected-failure files: `pass`, `fail`, `skip`, `error`,
    /// `crash`, `timeout`, `xfail`, `xpass`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
            Status::Crash => "crash",
            Status::Timeout => "timeout",
            Status::Xfail => "xfail",
            Status::Xpass => "xpass",
        }
    }

    /// True for the statuses that fail a run: fail, error, crash, timeout, xpass.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Fail | Status::Error | Status::Crash | Status::Timeout | Status::Xpass
        )
    }

    /// True for the ways a case can fail on its own: fail, error, crash, timeout (what an
    /// expected-failure entry turns into an xfail).
    pub fn is_own_failure(self) -> bool {
        matches!(
            self,
            Status::Fail | Status::Error | Status::Crash | Status::Timeout
        )
    }

    /// True when the case itself behaved as expected by the spec (pass, or an xpass).
    pub fn case_passed(self) -> bool {
        matches!(self, Status::Pass | Status::Xpass)
    }

    /// True when the case itself did not behave as the spec says (fail, error, crash, timeout,
    /// or an xfail).
    pub fn case_failed(self) -> bool {
        self.is_own_failure() || self == Status::Xfail
    }
}

/// One (case, variant, engine) result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `group/name`.
    pub case: String,
    /// File the case came from.
    pub file: PathBuf,
    /// Line of its header.
    pub line: usize,
    /// A classic dialect (`linux`, `bsd`, `netbsd`) or `ebpf`.
    pub variant: String,
    /// Engine name.
    pub engine: String,
    /// The status.
    pub verdict: Status,
    /// Failure detail or skip reason (for xpass: what the expected-failure entry said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For xfail and xpass: the expected-failure entry that matched (`FILE:LINE: reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_fail: Option<String>,
    /// For xfail: how the case failed when not simply `fail` (`error`, `crash` or `timeout`),
    /// so that a list applied again (to a run read back from JSON) sees the original status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_as: Option<Status>,
    /// Seconds the engine took (load and run), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
}

impl Record {
    /// The group (the part of the case name before `/`).
    pub fn group(&self) -> &str {
        self.case.split('/').next().unwrap_or(&self.case)
    }

    /// The first line of the detail, or "".
    pub fn summary(&self) -> &str {
        self.detail
            .as_deref()
            .and_then(|d| d.lines().next())
            .unwrap_or("")
    }
}

/// An engine's name, architecture and version facts, as recorded in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFacts {
    /// Engine name.
    pub name: String,
    /// `portable` for interpreters, else the machine architecture (`x86_64`, `aarch64`…).
    pub arch: String,
    /// Key/value facts (kernel release, JIT settings, versions), in the engine's order.
    pub facts: Vec<(String, String)>,
}

impl From<EngineInfo> for EngineFacts {
    fn from(i: EngineInfo) -> Self {
        EngineFacts {
            name: i.name,
            arch: i.arch,
            facts: i.facts,
        }
    }
}

/// Counts over records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed: failures, engine errors, crashes, timeouts and expected failures that passed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Expected failures (not counted in `failed`).
    #[serde(default)]
    pub xfailed: usize,
    /// Expected failures that passed (counted in `failed` too).
    #[serde(default)]
    pub xpassed: usize,
    /// Crashes (counted in `failed` too).
    #[serde(default)]
    pub crashed: usize,
    /// Timeouts (counted in `failed` too).
    #[serde(default)]
    pub timed_out: usize,
}

impl Counts {
    /// Adds one status.
    pub fn add(&mut self, s: Status) {
        match s {
            Status::Pass => self.passed += 1,
            Status::Fail | Status::Error => self.failed += 1,
            Status::Crash => {
                self.failed += 1;
                self.crashed += 1
            }
            Status::Timeout => {
                self.failed += 1;
                self.timed_out += 1
            }
            Status::Xpass => {
                self.failed += 1;
                self.xpassed += 1
            }
            Status::Skip => self.skipped += 1,
            Status::Xfail => self.xfailed += 1,
        }
    }
}

/// A run ready to render: engines, records, case-file errors and warnings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The engines of the run, with their architecture and facts.
    #[serde(default)]
    pub engines: Vec<EngineFacts>,
    /// One record per (case, variant, engine), in case order.
    pub results: Vec<Record>,
    /// Case files that failed to load (each names file, line, case and field).
    #[serde(default)]
    pub load_errors: Vec<String>,
    /// Warnings (expected-failure entries that matched nothing…).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Run {
    /// Builds a run from a suite report. `engines` are the facts of the engines that ran;
    /// `times` (if given) holds each result's duration in seconds, in result order.
    pub fn from_suite(rep: &SuiteReport, engines: Vec<EngineFacts>, times: Option<&[f64]>) -> Run {
        let results = rep
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (verdict, detail) = match &r.verdict {
                    Verdict::Pass => (Status::Pass, None),
                    Verdict::Fail(d) => (Status::Fail, Some(d.clone())),
                    Verdict::Skip(d) => (Status::Skip, Some(d.clone())),
                    Verdict::Error(d) => (Status::Error, Some(d.clone())),
                    Verdict::Crash(d) => (Status::Crash, Some(d.clone())),
                    Verdict::Timeout(d) => (Status::Timeout, Some(d.clone())),
                };
                Record {
                    case: r.case.clone(),
                    file: r.file.clone(),
                    line: r.line,
                    variant: r.variant.clone(),
                    engine: r.engine.clone(),
                    verdict,
                    detail,
                    expect_fail: None,
                    failed_as: None,
                    time: times.and_then(|t| t.get(i).copied()),
                }
            })
            .collect();
        Run {
            engines,
            results,
            load_errors: rep.load_errors.iter().map(|e| e.to_string()).collect(),
            warnings: Vec::new(),
        }
    }

    /// Runs units on engines (in parallel, timed, with a progress bar when stdout is a
    /// terminal), records the engines' facts and the case-file errors, and applies the
    /// expected-failure list if any.
    pub fn execute(
        units: &[Unit],
        engines: &[Box<dyn Engine>],
        load_errors: Vec<CaseError>,
        expect_fail: Option<&ExpectFail>,
    ) -> Run {
        let (mut rep, times) = progress::run_units_timed(units, engines, progress::wanted());
        rep.load_errors = load_errors;
        let facts = engines
            .iter()
            .map(|e| EngineFacts::from(e.info()))
            .collect();
        let mut run = Run::from_suite(&rep, facts, Some(&times));
        if let Some(x) = expect_fail {
            x.apply(&mut run);
        }
        run
    }

    /// Counts over all records.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.results {
            c.add(r.verdict);
        }
        c
    }

    /// Counts per engine, in the order engines are listed (then first-seen order).
    pub fn counts_by_engine(&self) -> Vec<(String, Counts)> {
        let mut out: Vec<(String, Counts)> = self
            .engines
            .iter()
            .map(|e| (e.name.clone(), Counts::default()))
            .collect();
        for r in &self.results {
            match out.iter_mut().find(|(e, _)| *e == r.engine) {
                Some((_, c)) => c.add(r.verdict),
                None => {
                    let mut c = Counts::default();
                    c.add(r.verdict);
                    out.push((r.engine.clone(), c));
                }
            }
        }
        out
    }

    /// The architecture recorded for an engine (`?` when the run did not record it).
    pub fn arch_of(&self, engine: &str) -> &str {
        self.engines
            .iter()
            .find(|e| e.name == engine)
            .map(|e| e.arch.as_str())
            .unwrap_or("?")
    }

    /// True when nothing failed (expected failures excepted) and every case file loaded.
    pub fn success(&self) -> bool {
        self.counts().failed == 0 && self.load_errors.is_empty()
    }

    /// Renders the run in a `bpfconf run` format.
    pub fn render(&self, format: RunFormat, verbose: bool) -> String {
        match format {
            RunFormat::Human => human::render(self, verbose),
            RunFormat::Json => json::render(self) + "\n",
            RunFormat::Junit => junit::render(self),
            RunFormat::Tap => tap::render(self),
        }
    }
}

/// Renders a suite report as human-readable text (no engine facts, no expected failures).
/// With `verbose`, every verdict gets a line.
pub fn human(report: &SuiteReport, verbose: bool) -> String {
    human::render(&Run::from_suite(report, Vec::new(), None), verbose)
}

/// Renders a suite report as a JSON document (no engine facts, no expected failures).
pub fn json(report: &SuiteReport) -> String {
    json::render(&Run::from_suite(report, Vec::new(), None))
}

/// Escapes text for XML and HTML content and double-quoted attributes. Characters XML 1.0
/// forbids (most C0 controls) become U+FFFD, so any engine message yields a well-formed document.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Like [`xml_escape`], for attribute values: newlines and tabs become character references
/// so that parsers do not normalise them to spaces.
pub fn xml_attr(s: &str) -> String {
    xml_escape(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}
