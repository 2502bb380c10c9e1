//! Human-readable text: failures (crashes and timeouts included) in full, expected failures in
//! one line each (with `-v`), skips grouped by reason, counts per engine (with crashes and
//! timeouts when there are any) and the closing `N passed, N failed, N skipped` line.

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
            Status::Fail | Status::Error | Status::Crash | Status::Timeout | Status::Xpass => {
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
            "{engine}: {} passed, {} failed, {} skipped{xf}{}",
            c.passed,
            c.failed,
            c.skipped,
            crashes(&c)
        );
    }
    let c = run.counts();
    let kinds: Vec<String> = [(c.crashed, "crash(es)"), (c.timed_out, "timeout(s)")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    if !kinds.is_empty() {
        let _ = writeln!(
            s,
            "{} (counted as failures; the process was restarted and the run went on)",
            kinds.join(", ")
        );
    }
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

/// `, N crashed, N timed out` for a per-engine line, or "" when there were none.
fn crashes(c: &super::Counts) -> String {
    let mut s = String::new();
    if c.crashed > 0 {
        s += &format!(", {} crashed", c.crashed);
    }
    if c.timed_out > 0 {
        s += &format!(", {} timed out", c.timed_out);
    }
    s
}
