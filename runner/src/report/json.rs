//! The JSON rendering of a run, and reading it back (for `bpfconf report --from` and
//! `--compare`).
//!
//! The document: `engines` (name, arch, facts as `[key, value]` pairs), `results` (one object
//! per case × variant × engine: `case`, `file`, `line`, `variant`, `engine`, `verdict` — `pass`,
//! `fail`, `skip`, `error`, `crash`, `timeout`, `xfail`, `xpass` —, `detail`, `expect_fail`,
//! `failed_as` (for an xfail: `fail`, `error`, `crash` or `timeout`), `time`), `load_errors`,
//! `warnings`, `counts` and `counts_by_engine` (`passed`, `failed`, `skipped`, `xfailed`,
//! `xpassed`, `crashed`, `timed_out`; crashes and timeouts are counted in `failed` too).

use super::{Counts, Run};
use std::collections::BTreeMap;
use std::path::Path;

/// Renders a run as a pretty-printed JSON document.
pub fn render(run: &Run) -> String {
    let by_engine: BTreeMap<String, Counts> = run.counts_by_engine().into_iter().collect();
    let doc = serde_json::json!({
        "engines": run.engines,
        "results": run.results,
        "load_errors": run.load_errors,
        "warnings": run.warnings,
        "counts": run.counts(),
        "counts_by_engine": by_engine,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Parses a document written by [`render`] (extra fields such as `counts` are ignored; they are
/// recomputed from the results).
pub fn parse(text: &str) -> Result<Run, String> {
    serde_json::from_str(text).map_err(|e| format!("line {}: {e}", e.line()))
}

/// Reads and parses a `bpfconf run --format json` output file.
pub fn load(path: &Path) -> Result<Run, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(&text).map_err(|e| {
        format!(
            "{}: not a `bpfconf run --format json` output: {e}",
            path.display()
        )
    })
}
