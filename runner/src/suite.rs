//! Running spec cases on engines: one verdict per (case, dialect, engine), in parallel.

use crate::compare::{compare, rejected_from, render_observed, Actual, Mismatch};
use bpfconf_engines::{ClassicInput, ClassicProgram, Engine, Input, LoadError, Program, RunError};
use bpfconf_spec::case::{Case, CaseError, Ctx, Expected};
use bpfconf_spec::Dialect;
use rayon::prelude::*;
use regex::Regex;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// The verdict for one (case, dialect, engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "lowercase")]
pub enum Verdict {
    /// The engine met the expectation.
    Pass,
    /// The engine did not meet the expectation.
    Fail(String),
    /// The engine could not run the case; the reason says why. Never counted as a pass.
    Skip(String),
    /// The engine failed (I/O, syscall, panic, trap) — counted as a failure.
    Error(String),
}

impl Verdict {
    /// Short label: PASS, FAIL, SKIP, ERROR.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip(_) => "SKIP",
            Verdict::Error(_) => "ERROR",
        }
    }
}

/// The result of one (case, dialect, engine).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// `group/name`.
    pub case: String,
    /// File the case came from.
    pub file: PathBuf,
    /// Line of its `[[case]]` header.
    pub line: usize,
    /// Dialect run.
    pub dialect: Dialect,
    /// Engine name.
    pub engine: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Which cases and engines to run.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Only cases whose name matches.
    pub filter: Option<Regex>,
    /// Only these dialects (`None` = all).
    pub dialects: Option<Vec<Dialect>>,
}

/// Everything a run produced.
#[derive(Debug, Default, Serialize)]
pub struct SuiteReport {
    /// One entry per (case, dialect, engine), in case order.
    pub results: Vec<CaseResult>,
    /// Cases that failed to load (malformed files), each naming file, case and line.
    #[serde(serialize_with = "ser_errors")]
    pub load_errors: Vec<CaseError>,
}

fn ser_errors<S: serde::Serializer>(v: &[CaseError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|e| e.to_string()))
}

/// Pass/fail/skip/error counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed (including engine errors).
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) | Verdict::Error(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
    }
}

impl SuiteReport {
    /// Counts over all results.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.results {
            c.add(&r.verdict);
        }
        c
    }

    /// Counts per engine, in first-seen order.
    pub fn counts_by_engine(&self) -> Vec<(String, Counts)> {
        let mut out: Vec<(String, Counts)> = Vec::new();
        for r in &self.results {
            match out.iter_mut().find(|(e, _)| *e == r.engine) {
                Some((_, c)) => c.add(&r.verdict),
                None => {
                    let mut c = Counts::default();
                    c.add(&r.verdict);
                    out.push((r.engine.clone(), c));
                }
            }
        }
        out
    }

    /// True when nothing failed and every case file loaded.
    pub fn success(&self) -> bool {
        self.counts().failed == 0 && self.load_errors.is_empty()
    }
}

/// Builds the engine program for a case in a dialect.
pub fn program_for(case: &Case, dialect: Dialect) -> Program {
    Program::Classic(ClassicProgram {
        dialect,
        insns: case.program.clone(),
        cop_funcs: case.ctx.cop.len(),
        memwords: case.ctx.memwords(),
    })
}

/// Builds the engine input for a case.
pub fn input_for(case: &Case) -> Input {
    Input::Classic(ClassicInput {
        packet: case.packet.clone(),
        ctx: case.ctx.clone(),
    })
}

/// Loads and runs a program on an engine, turning panics into errors. Returns the actual
/// result, or the verdict to record when there is none (skip/error).
pub fn execute(
    engine: &dyn Engine,
    program: &Program,
    input: &Input,
    load_only: bool,
) -> Result<Actual, Verdict> {
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<Actual, Verdict> {
        let mut loaded = match engine.load(program) {
            Ok(l) => l,
            Err(e) => {
                return match rejected_from(&e) {
                    Some(a) => Ok(a),
                    None => Err(match e {
                        LoadError::Unsupported(r) => Verdict::Skip(r),
                        other => Verdict::Error(other.to_string()),
                    }),
                };
            }
        };
        if load_only {
            return Ok(Actual::Accepted);
        }
        match loaded.run(input) {
            Ok(o) => Ok(Actual::Ran(o)),
            Err(RunError::Fault(f)) => Ok(Actual::Fault(f)),
            Err(RunError::Unsupported(r)) => Err(Verdict::Skip(r)),
            Err(RunError::Engine(e)) => Err(Verdict::Error(e)),
        }
    }));
    match r {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Verdict::Error(format!("engine panicked: {msg}")))
        }
    }
}

/// Runs one case in one dialect on one engine whose availability is already known.
pub fn run_one(
    case: &Case,
    dialect: Dialect,
    engine: &dyn Engine,
    availability: &Result<(), String>,
) -> Verdict {
    if let Some(reason) = case.skip.get(engine.name()) {
        return Verdict::Skip(format!("case skips this engine: {reason}"));
    }
    if let Err(reason) = availability {
        return Verdict::Skip(format!("engine unavailable: {reason}"));
    }
    let expected = &case.expect[&dialect];
    let program = program_for(case, dialect);
    let mut input = input_for(case);
    let reject_expected = matches!(expected, Expected::Reject { .. });
    if let Err(reason) = engine.supports(&program, &input) {
        // A rejection only needs the loader: retry with a context every engine can realise.
        let plain = Input::Classic(ClassicInput {
            packet: case.packet.clone(),
            ctx: Ctx::default(),
        });
        if !reject_expected || engine.supports(&program, &plain).is_err() {
            return Verdict::Skip(reason);
        }
        input = plain;
    }
    let actual = match execute(engine, &program, &input, reject_expected) {
        Ok(a) => a,
        Err(v) => return v,
    };
    match compare(expected, &actual, case.packet.len()) {
        Ok(()) => Verdict::Pass,
        Err(m) => Verdict::Fail(failure_detail(case, dialect, &m, &actual)),
    }
}

/// A failure report: what differs, the program, the packet, the context.
pub fn failure_detail(case: &Case, dialect: Dialect, m: &Mismatch, actual: &Actual) -> String {
    let mut s = format!("{m}\n");
    s += &format!(
        "  at {}:{} (dialect {dialect})\n",
        case.file.display(),
        case.line
    );
    s += "  program:\n";
    for (pc, insn) in case.program.iter().enumerate() {
        s += &format!(
            "    {}\n",
            bpfconf_spec::cbpf::disasm::disasm_insn(insn, pc)
        );
    }
    s += &format!(
        "  packet ({} bytes): {}\n",
        case.packet.len(),
        bpfconf_spec::case::to_hex(&case.packet)
    );
    if case.ctx != Ctx::default() {
        s += &format!("  ctx: {:?}\n", case.ctx);
    }
    match actual {
        Actual::Ran(o) => {
            s += &format!("  actual: {}", render_observed(&o.ret));
            if let Some(m) = &o.mem {
                s += &format!(", mem {m:?}");
            }
            s += "\n";
        }
        Actual::Rejected { reason, .. } => s += &format!("  actual: rejected: {reason}\n"),
        Actual::Accepted => s += "  actual: accepted by the checker\n",
        Actual::Fault(f) => s += &format!("  actual: fault: {f}\n"),
    }
    s
}

/// Runs the selected cases on the given engines, in parallel.
pub fn run_suite(cases: &[Case], engines: &[Box<dyn Engine>], sel: &Selection) -> SuiteReport {
    let avail: Vec<Result<(), String>> = engines.iter().map(|e| e.availability()).collect();
    let mut tasks = Vec::new();
    for case in cases {
        if let Some(f) = &sel.filter {
            if !f.is_match(&case.name) {
                continue;
            }
        }
        for d in &case.dialects {
            if let Some(ds) = &sel.dialects {
                if !ds.contains(d) {
                    continue;
                }
            }
            for (ei, _) in engines.iter().enumerate() {
                tasks.push((case, *d, ei));
            }
        }
    }
    let results = tasks
        .par_iter()
        .map(|(case, d, ei)| CaseResult {
            case: case.name.clone(),
            file: case.file.clone(),
            line: case.line,
            dialect: *d,
            engine: engines[*ei].name().to_string(),
            verdict: run_one(case, *d, engines[*ei].as_ref(), &avail[*ei]),
        })
        .collect();
    SuiteReport {
        results,
        load_errors: Vec::new(),
    }
}
