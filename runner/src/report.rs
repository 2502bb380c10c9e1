//! Rendering a suite run: human-readable text or JSON.

use crate::suite::{SuiteReport, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Output format of `bpfconf run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people: failures in full, skips grouped by reason, counts per engine.
    Human,
    /// One JSON document with every result and the counts.
    Json,
}

/// Renders a report as human-readable text. With `verbose`, every verdict gets a line.
pub fn human(report: &SuiteReport, verbose: bool) -> String {
    let mut s = String::new();
    for e in &report.load_errors {
        let _ = writeln!(s, "ERROR loading {e}");
    }
    for r in &report.results {
        let head = format!(
            "{:5} {} [{}] on {}",
            r.verdict.label(),
            r.case,
            r.variant,
            r.engine
        );
        match &r.verdict {
            Verdict::Fail(d) | Verdict::Error(d) => {
                let _ = writeln!(s, "{head}\n  {}", d.trim_end().replace('\n', "\n  "));
            }
            Verdict::Skip(reason) if verbose => {
                let _ = writeln!(s, "{head}: {reason}");
            }
            Verdict::Pass if verbose => {
                let _ = writeln!(s, "{head}");
            }
            _ => {}
        }
    }
    // Skips, grouped by engine and reason: a skip is never silent.
    let mut skips: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &report.results {
        if let Verdict::Skip(reason) = &r.verdict {
            *skips
                .entry((r.engine.as_str(), reason.as_str()))
                .or_default() += 1;
        }
    }
    if !skips.is_empty() {
        let _ = writeln!(s, "skips by reason:");
        for ((engine, reason), n) in &skips {
            let _ = writeln!(s, "  {engine}: {n} × {reason}");
        }
    }
    for (engine, c) in report.counts_by_engine() {
        let _ = writeln!(
            s,
            "{engine}: {} passed, {} failed, {} skipped",
            c.passed, c.failed, c.skipped
        );
    }
    let c = report.counts();
    if !report.load_errors.is_empty() {
        let _ = writeln!(s, "{} case file error(s)", report.load_errors.len());
    }
    let _ = writeln!(
        s,
        "{} passed, {} failed, {} skipped",
        c.passed,
        c.failed + report.load_errors.len(),
        c.skipped
    );
    s
}

/// Renders a report as a JSON document.
pub fn json(report: &SuiteReport) -> String {
    let by_engine: BTreeMap<String, crate::suite::Counts> =
        report.counts_by_engine().into_iter().collect();
    let doc = serde_json::json!({
        "results": report.results,
        "load_errors": report.load_errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "counts": report.counts(),
        "counts_by_engine": by_engine,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
