//! Shared helpers of the third-party engine tests (rbpf, plugins): loading the eBPF spec cases
//! and bpf_conformance files, and judging an engine's result against a case's expectation the
//! way the runner does (a small mirror of `bpfconf_runner::compare` for eBPF, since the engines
//! crate cannot depend on the runner).

#![allow(dead_code)]

use bpfconf_engines::{
    EbpfInput, EbpfProgram, Engine, Input, LoadError, Observed, Program, RunError,
};
use bpfconf_spec::case::{EbpfCase, EbpfExpected};
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engines has a parent")
        .to_path_buf()
}

/// bpf_conformance's test files (beside the checkout, in `shared/`).
pub fn conformance_dir() -> PathBuf {
    root().join("../shared/bpf_conformance/tests")
}

/// Loads every eBPF case under `path` (TOML cases and `.data` files); panics on load errors.
pub fn load_ebpf(path: &Path) -> Vec<EbpfCase> {
    if !path.exists() {
        eprintln!("SKIP {}: absent", path.display());
        return Vec::new();
    }
    let r = bpfconf_spec::case::load_path(path);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.ebpf
}

/// What happened to one case on one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Met the expectation.
    Pass,
    /// Did not; what differs.
    Fail(String),
    /// Could not run it; why.
    Skip(String),
    /// The engine failed (crash, timeout, garbage, panic…).
    Error(String),
}

/// Loads and runs a case on an engine and judges the result (as `bpfconf run` does).
pub fn judge(engine: &dyn Engine, case: &EbpfCase) -> Verdict {
    if let Some(why) = case.skip.get(engine.name()) {
        return Verdict::Skip(format!("case skips this engine: {why}"));
    }
    let program = Program::Ebpf(EbpfProgram {
        insns: case.program.clone(),
        maps: case.maps.clone(),
        progs: case.progs.clone(),
    });
    let input = Input::Ebpf(EbpfInput {
        mem: case.mem.clone(),
        maps: case.map_init.clone(),
    });
    if let Err(why) = engine.supports(&program, &input) {
        return Verdict::Skip(why);
    }
    let expect_reject = matches!(case.expect, EbpfExpected::Reject { .. });
    let may_fail = matches!(case.expect, EbpfExpected::Fault | EbpfExpected::Error(_));
    let mut loaded = match engine.load(&program) {
        Ok(l) => l,
        Err(LoadError::Rejected { reason, .. }) => {
            return if expect_reject || may_fail {
                Verdict::Pass
            } else {
                Verdict::Skip(format!("refused by the engine's verifier: {reason}"))
            }
        }
        Err(LoadError::Unsupported(why)) => return Verdict::Skip(why),
        Err(LoadError::Engine(e)) => return Verdict::Error(e),
    };
    if expect_reject {
        return Verdict::Fail("expected a rejection, the program loaded".into());
    }
    match (loaded.run(&input), &case.expect) {
        (Err(RunError::Fault(_) | RunError::Refused(_)), _) if may_fail => Verdict::Pass,
        (Err(RunError::Fault(f)), _) => Verdict::Fail(format!("unexpected fault: {f}")),
        (Err(RunError::Refused(f)), _) => Verdict::Skip(format!("refused: {f}")),
        (Err(RunError::Unsupported(why)), _) => Verdict::Skip(why),
        (Err(RunError::Engine(e) | RunError::Crash(e) | RunError::Timeout(e)), _) => {
            Verdict::Error(e)
        }
        (Ok(o), EbpfExpected::Accept { r0, memory, .. }) => {
            if let Some(want) = r0 {
                if o.ret != Observed::Exact(*want) {
                    return Verdict::Fail(format!("r0: expected {want:#x}, got {:?}", o.ret));
                }
            }
            if let (Some(want), Some(got)) = (memory, &o.memory) {
                if want != got {
                    return Verdict::Fail(format!("memory: expected {want:02x?}, got {got:02x?}"));
                }
            }
            Verdict::Pass
        }
        (Ok(o), _) => Verdict::Fail(format!("expected a fault, ran: {:?}", o.ret)),
    }
}

/// Counts of verdicts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
    /// Errors.
    pub error: usize,
}

impl Counts {
    /// Adds one verdict.
    pub fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.pass += 1,
            Verdict::Fail(_) => self.fail += 1,
            Verdict::Skip(_) => self.skip += 1,
            Verdict::Error(_) => self.error += 1,
        }
    }
}
