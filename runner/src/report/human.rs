//! Human-readable text: failures in full, expected failures in one line each (with `-v`), skips
//! grouped by reason, counts per engine and the closing `N passed, N failed, N skipped` line.

use super::{Run, Status};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Renders a run as text. With `verbose`, every verdict gets a line.
pub fn render(run: &Run, verbose: bool) -> String {
    let mut s = String::new();
    for e in &run.load_errors {
        let _ = writeln!(s, "ERROR loading {e}");
    }
    for r in &run.results {
        let head = format!(
            "{:5} {} [{}] on {}",
            r.verdict.label(),
            r.case,
            r.variant,
            r.engine
        );
        let detail = r.detail.as_deref().unwrap_or("").trim_end();
        match r.verdict {
            Status::Fail | Status::Error | Status::Xpass => {
                let _ = writeln!(s, "{head}\n  {}", detail.replace('\n', "\n  "));
            }
            Status::Xfail if verbose => {
                let why = r.expect_fail.as_deref().unwrap_or("");
                let _ = writeln!(s, "{head}: expected failure ({why}): {}", r.summary());
            }
            Status::Skip if verbose => {
                let _ = writeln!(s, "{head}: {detail}");
            }
            Status::Pass if verbose => {
                let _ = writeln!(s, "{head}");
            }
            _ => {}
        }
    }
    // Skips, grouped by engine and reason: a skip is never silent.
    let mut skips: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &run.results {
        if r.verdict == Status::Skip {
            let reason = r.detail.as_deref().unwrap_or("");
            *skips.entry((r.engine.as_str(), reason)).or_default() += 1;
        }
    }
    if !skips.is_empty() {
        let _ = writeln!(s, "skips by reason:");
        for ((engine, reason), n) in &skips {
            let _ = writeln!(s, "  {engine}: {n} × {reason}");
        }
    }
    for (engine, c) in run.counts_by_engine() {
        let xf = if c.xfailed > 0 {
            format!(", {} expected failures", c.xfailed)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{engine}: {} passed, {} failed, {} skipped{xf}",
            c.passed, c.failed, c.skipped
        );
    }
    let c = run.counts();
    if !run.load_errors.is_empty() {
        let _ = writeln!(s, "{} case file error(s)", run.load_errors.len());
    }
    if c.xfailed > 0 {
        let _ = writeln!(
            s,
            "{} expected failure(s) (xfail: not counted as failures{})",
            c.xfailed,
            if verbose { "" } else { "; -v lists them" }
        );
    }
    if c.xpassed > 0 {
        let _ = writeln!(
            s,
            "{} expected failure(s) passed (XPASS, counted as failures: update the expect-fail list)",
            c.xpassed
        );
    }
    let _ = writeln!(
        s,
        "{} passed, {} failed, {} skipped",
        c.passed,
        c.failed + run.load_errors.len(),
        c.skipped
    );
    s
}
