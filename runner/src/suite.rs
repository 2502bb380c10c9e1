//! Running spec cases on engines: one verdict per (case, variant, engine), in parallel. A
//! variant is a classic dialect or `ebpf`.

use crate::compare::{compare_unit, rejected_from, render_observed, Actual, Mismatch, UnitExpect};
use bpfconf_engines::{
    ClassicInput, ClassicProgram, EbpfInput, EbpfProgram, Engine, Input, LoadError, Program,
    RunError,
};
use bpfconf_spec::case::{Case, CaseError, Ctx, EbpfCase, EbpfExpected, Expected};
use bpfconf_spec::ebpf::isa::Group;
use bpfconf_spec::Dialect;
use rayon::prelude::*;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
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
    /// The process running the case died (killed by a signal, or exited without a result):
    /// generated code that faulted, a library that aborted. Only out-of-process engines
    /// (isolated engines, plugins, forked workers) can report it; the process is restarted and
    /// the run goes on. Counted as a failure. The detail starts with `crashed:`.
    Crash(String),
    /// The case did not finish by its deadline; the process running it was killed (and is
    /// restarted). Counted as a failure. The detail starts with `timed out`.
    Timeout(String),
}

impl Verdict {
    /// Short label: PASS, FAIL, SKIP, ERROR, CRASH, TIMEOUT.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip(_) => "SKIP",
            Verdict::Error(_) => "ERROR",
            Verdict::Crash(_) => "CRASH",
            Verdict::Timeout(_) => "TIMEOUT",
        }
    }

    /// True for the verdicts counted as failures: fail, error, crash, timeout.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Verdict::Pass | Verdict::Skip(_))
    }

    /// The detail (failure, skip reason, error message), if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Verdict::Pass => None,
            Verdict::Fail(d)
            | Verdict::Skip(d)
            | Verdict::Error(d)
            | Verdict::Crash(d)
            | Verdict::Timeout(d) => Some(d),
        }
    }
}

/// The result of one (case, variant, engine).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// `group/name`.
    pub case: String,
    /// File the case came from.
    pub file: PathBuf,
    /// Line of its `[[case]]` header.
    pub line: usize,
    /// What was run: a classic dialect (`linux`, `bsd`, `netbsd`) or `ebpf`.
    pub variant: String,
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
    /// Leave out cases whose name matches.
    pub exclude: Option<Regex>,
    /// Only these classic dialects (`None` = all).
    pub dialects: Option<Vec<Dialect>>,
    /// eBPF: skip programs that need a newer CPU version than this (1..=4).
    pub cpu_version: Option<u8>,
    /// eBPF: run only programs whose instructions all belong to these conformance groups.
    pub include_groups: Option<Vec<Group>>,
    /// eBPF: skip programs using any of these conformance groups.
    pub exclude_groups: Vec<Group>,
}

impl Selection {
    fn wants(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.is_match(name))
            && !self.exclude.as_ref().is_some_and(|f| f.is_match(name))
    }

    /// Why an eBPF program is outside the selected CPU version / groups, if it is.
    pub fn ebpf_skip(&self, prog: &[bpfconf_spec::ebpf::Insn]) -> Option<String> {
        use bpfconf_spec::ebpf::validate::{groups, max_version};
        if let Some(limit) = self.cpu_version {
            let v = max_version(prog);
            if v > limit {
                return Some(format!("needs CPU version v{v} (--cpu-version {limit})"));
            }
        }
        let used = groups(prog);
        if let Some(inc) = &self.include_groups {
            if let Some(g) = used.iter().find(|g| !inc.iter().any(|i| i.includes(**g))) {
                return Some(format!("uses group {} (not in --include-groups)", g.name()));
            }
        }
        if let Some(g) = used.iter().find(|g| self.exclude_groups.contains(g)) {
            return Some(format!("uses group {} (--exclude-groups)", g.name()));
        }
        None
    }
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
    /// Failed (including engine errors, crashes and timeouts).
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Crashes (counted in `failed` too).
    pub crashed: usize,
    /// Timeouts (counted in `failed` too).
    pub timed_out: usize,
}

impl Counts {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) | Verdict::Error(_) => self.failed += 1,
            Verdict::Crash(_) => {
                self.failed += 1;
                self.crashed += 1;
            }
            Verdict::Timeout(_) => {
                self.failed += 1;
                self.timed_out += 1;
            }
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
/// result, or the verdict to record when there is none (skip/error/crash/timeout).
pub fn execute(
    engine: &dyn Engine,
    program: &Program,
    input: &Input,
    load_only: bool,
) -> Result<Actual, Verdict> {
    execute_staged(engine, program, input, load_only).map(|(a, _)| a)
}

/// Like [`execute`], also saying whether the program was loaded: `true` when the actual result
/// comes from the run (so a rejection is a refusal for this input, [`RunError::Refused`]).
pub fn execute_staged(
    engine: &dyn Engine,
    program: &Program,
    input: &Input,
    load_only: bool,
) -> Result<(Actual, bool), Verdict> {
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(Actual, bool), Verdict> {
        let mut loaded = match engine.load(program) {
            Ok(l) => l,
            Err(e) => {
                return match rejected_from(&e) {
                    Some(a) => Ok((a, false)),
                    None => Err(match e {
                        LoadError::Unsupported(r) => Verdict::Skip(r),
                        // A plugin or isolation child that died or hung while loading.
                        LoadError::Engine(m) if e.is_crash() => Verdict::Crash(m),
                        LoadError::Engine(m) if e.is_timeout() => Verdict::Timeout(m),
                        other => Verdict::Error(other.to_string()),
                    }),
                };
            }
        };
        if load_only {
            return Ok((Actual::Accepted, false));
        }
        match loaded.run(input) {
            Ok(o) => Ok((Actual::Ran(o), true)),
            Err(RunError::Fault(f)) => Ok((Actual::Fault(f), true)),
            Err(RunError::Refused(reason)) => Ok((Actual::Rejected { rule: None, reason }, true)),
            Err(RunError::Unsupported(r)) => Err(Verdict::Skip(r)),
            Err(RunError::Engine(e)) => Err(Verdict::Error(e)),
            Err(RunError::Crash(e)) => Err(Verdict::Crash(e)),
            Err(RunError::Timeout(e)) => Err(Verdict::Timeout(e)),
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

/// One unit of work: a program, an input and an expectation, from a classic case in one dialect
/// or from an eBPF case.
#[derive(Debug, Clone)]
pub struct Unit<'a> {
    /// `group/name`.
    pub case: &'a str,
    /// File of the case.
    pub file: &'a Path,
    /// Line of the case.
    pub line: usize,
    /// Dialect name or `ebpf`.
    pub variant: String,
    /// The program to load.
    pub program: Program,
    /// The input to run it on.
    pub input: Input,
    /// What must happen.
    pub expect: UnitExpect,
    /// Engines the case skips, with reasons.
    pub skip: &'a BTreeMap<String, String>,
    /// A reason every engine must skip this unit (selection by CPU version or group).
    pub selected_out: Option<String>,
}

impl<'a> Unit<'a> {
    /// The unit for a classic case in one dialect.
    pub fn classic(case: &'a Case, dialect: Dialect) -> Unit<'a> {
        Unit {
            case: &case.name,
            file: &case.file,
            line: case.line,
            variant: dialect.to_string(),
            program: program_for(case, dialect),
            input: input_for(case),
            expect: UnitExpect::Classic(case.expect[&dialect].clone()),
            skip: &case.skip,
            selected_out: None,
        }
    }

    /// The unit for an eBPF case.
    pub fn ebpf(case: &'a EbpfCase, sel: &Selection) -> Unit<'a> {
        Unit {
            case: &case.name,
            file: &case.file,
            line: case.line,
            variant: "ebpf".into(),
            program: Program::Ebpf(EbpfProgram {
                insns: case.program.clone(),
                maps: case.maps.clone(),
                progs: case.progs.clone(),
            }),
            input: Input::Ebpf(EbpfInput {
                mem: case.mem.clone(),
                maps: case.map_init.clone(),
            }),
            expect: UnitExpect::Ebpf(case.expect.clone()),
            skip: &case.skip,
            selected_out: sel.ebpf_skip(&case.program),
        }
    }
}

/// Runs one unit on one engine whose availability is already known.
pub fn run_unit(unit: &Unit, engine: &dyn Engine, availability: &Result<(), String>) -> Verdict {
    if let Some(reason) = &unit.selected_out {
        return Verdict::Skip(reason.clone());
    }
    if let Some(reason) = unit.skip.get(engine.name()) {
        return Verdict::Skip(format!("case skips this engine: {reason}"));
    }
    if let Err(reason) = availability {
        return Verdict::Skip(format!("engine unavailable: {reason}"));
    }
    let reject_expected = matches!(
        unit.expect,
        UnitExpect::Classic(Expected::Reject { .. })
            | UnitExpect::Ebpf(EbpfExpected::Reject { .. })
    );
    let mut input = unit.input.clone();
    if let Err(reason) = engine.supports(&unit.program, &input) {
        // A classic rejection only needs the loader: retry with a context every engine can
        // realise.
        let plain = match &unit.input {
            Input::Classic(i) => Input::Classic(ClassicInput {
                packet: i.packet.clone(),
                ctx: Ctx::default(),
            }),
            other => other.clone(),
        };
        if !reject_expected || engine.supports(&unit.program, &plain).is_err() {
            return Verdict::Skip(reason);
        }
        input = plain;
    }
    let actual = match execute(engine, &unit.program, &input, reject_expected) {
        Ok(a) => a,
        Err(v) => return v,
    };
    // An external verifier (it cannot name our rules) refusing an eBPF program the spec says
    // runs is listed as a skip with the verifier's reason, as bpf_conformance does: kernels
    // refuse much that the ISA allows.
    if let (
        UnitExpect::Ebpf(EbpfExpected::Accept { .. }),
        Actual::Rejected { rule: None, reason },
    ) = (&unit.expect, &actual)
    {
        return Verdict::Skip(format!("refused by the engine's verifier: {reason}"));
    }
    match compare_unit(&unit.expect, &actual, unit.input.data_len()) {
        Ok(()) => Verdict::Pass,
        Err(m) => Verdict::Fail(failure_detail(unit, &m, &actual)),
    }
}

/// A failure report: what differs, the program, the input, the context.
pub fn failure_detail(unit: &Unit, m: &Mismatch, actual: &Actual) -> String {
    let mut s = format!("{m}\n");
    s += &format!(
        "  at {}:{} ({})\n",
        unit.file.display(),
        unit.line,
        unit.variant
    );
    s += "  program:\n";
    match &unit.program {
        Program::Classic(p) => {
            for (pc, insn) in p.insns.iter().enumerate() {
                s += &format!(
                    "    {}\n",
                    bpfconf_spec::cbpf::disasm::disasm_insn(insn, pc)
                );
            }
        }
        Program::Ebpf(p) => {
            for line in bpfconf_spec::ebpf::disasm::disassemble(&p.insns).lines() {
                s += &format!("    {line}\n");
            }
        }
    }
    match &unit.input {
        Input::Classic(i) => {
            s += &format!(
                "  packet ({} bytes): {}\n",
                i.packet.len(),
                bpfconf_spec::case::to_hex(&i.packet)
            );
            if i.ctx != Ctx::default() {
                s += &format!("  ctx: {:?}\n", i.ctx);
            }
        }
        Input::Ebpf(i) => {
            s += &format!(
                "  mem ({} bytes): {}\n",
                i.mem.len(),
                bpfconf_spec::case::to_hex(&i.mem)
            );
        }
    }
    match actual {
        Actual::Ran(o) => {
            s += &format!("  actual: {}", render_observed(&o.ret));
            if let Some(m) = &o.mem {
                s += &format!(", mem {m:?}");
            }
            if let Some(m) = &o.memory {
                s += &format!(", memory {}", bpfconf_spec::case::to_hex(m));
            }
            s += "\n";
        }
        Actual::Rejected { reason, .. } => s += &format!("  actual: rejected: {reason}\n"),
        Actual::Accepted => s += "  actual: accepted by the checker\n",
        Actual::Fault(f) => s += &format!("  actual: fault: {f}\n"),
    }
    s
}

/// Builds the units a selection asks for: each classic case once per (selected) dialect, each
/// eBPF case once.
pub fn units<'a>(cases: &'a [Case], ebpf: &'a [EbpfCase], sel: &Selection) -> Vec<Unit<'a>> {
    let mut out = Vec::new();
    for case in cases.iter().filter(|c| sel.wants(&c.name)) {
        for d in &case.dialects {
            if sel.dialects.as_ref().is_none_or(|ds| ds.contains(d)) {
                out.push(Unit::classic(case, *d));
            }
        }
    }
    for case in ebpf.iter().filter(|c| sel.wants(&c.name)) {
        out.push(Unit::ebpf(case, sel));
    }
    out
}

/// Runs units on the given engines, in parallel.
pub fn run_units(units: &[Unit], engines: &[Box<dyn Engine>]) -> SuiteReport {
    run_units_with(units, engines, &|| {}).0
}

/// Runs every unit on every engine in parallel, calling `done` after each result (for progress
/// bars). Returns the report (results in unit order, then engine order) and each result's
/// duration in seconds, in the same order.
pub fn run_units_with(
    units: &[Unit],
    engines: &[Box<dyn Engine>],
    done: &(dyn Fn() + Sync),
) -> (SuiteReport, Vec<f64>) {
    let avail: Vec<Result<(), String>> = engines.iter().map(|e| e.availability()).collect();
    let tasks: Vec<(usize, usize)> = (0..units.len())
        .flat_map(|u| (0..engines.len()).map(move |e| (u, e)))
        .collect();
    let timed: Vec<(CaseResult, f64)> = tasks
        .par_iter()
        .map(|&(u, ei)| {
            let unit = &units[u];
            let start = std::time::Instant::now();
            let verdict = run_unit(unit, engines[ei].as_ref(), &avail[ei]);
            let secs = start.elapsed().as_secs_f64();
            done();
            let result = CaseResult {
                case: unit.case.to_string(),
                file: unit.file.to_path_buf(),
                line: unit.line,
                variant: unit.variant.clone(),
                engine: engines[ei].name().to_string(),
                verdict,
            };
            (result, secs)
        })
        .collect();
    let (results, times) = timed.into_iter().unzip();
    (
        SuiteReport {
            results,
            load_errors: Vec::new(),
        },
        times,
    )
}

/// Runs the selected classic cases on the given engines, in parallel.
pub fn run_suite(cases: &[Case], engines: &[Box<dyn Engine>], sel: &Selection) -> SuiteReport {
    run_units(&units(cases, &[], sel), engines)
}
