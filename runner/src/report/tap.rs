//! TAP version 13: the plan `1..N`, one test point per result (`ok`/`not ok N - group/name[variant]
//! on engine`), `# SKIP reason` for skips, `# TODO expected failure: reason` for expected failures
//! (TAP harnesses do not count TODO points as failures), and a YAML diagnostic block
//! (`message`, `severity` — `fail`, `error`, `crash`, `timeout` or `xpass` —, `engine`,
//! `variant`, `at`, `detail`) under each failure (crashes and timeouts are `not ok` points). Case files
//! that failed to load are `not ok` points at the end.

use super::{Record, Run, Status};
use std::fmt::Write;

/// Renders a run as a TAP version 13 stream.
pub fn render(run: &Run) -> String {
    let n = run.results.len() + run.load_errors.len();
    let mut s = format!("TAP version 13\n1..{n}\n");
    for (i, r) in run.results.iter().enumerate() {
        point(&mut s, i + 1, r);
    }
    for (i, e) in run.load_errors.iter().enumerate() {
        let first = e.lines().next().unwrap_or("");
        let _ = writeln!(
            s,
            "not ok {} - case file error: {}",
            run.results.len() + i + 1,
            escape_desc(first)
        );
        yaml(&mut s, first, "error", &[], e);
    }
    s
}

fn point(s: &mut String, n: usize, r: &Record) {
    let desc = escape_desc(&format!("{}[{}] on {}", r.case, r.variant, r.engine));
    let detail = r.detail.as_deref().unwrap_or("");
    let one_line = |t: &str| escape_desc(&t.replace(['\n', '\r'], " "));
    let at = format!("{}:{}", r.file.display(), r.line);
    let fields = [
        ("engine", r.engine.as_str()),
        ("variant", r.variant.as_str()),
        ("at", at.as_str()),
    ];
    match r.verdict {
        Status::Pass => {
            let _ = writeln!(s, "ok {n} - {desc}");
        }
        Status::Skip => {
            let _ = writeln!(s, "ok {n} - {desc} # SKIP {}", one_line(detail));
        }
        Status::Xfail => {
            let why = r.expect_fail.as_deref().unwrap_or("");
            let _ = writeln!(
                s,
                "not ok {n} - {desc} # TODO expected failure: {}",
                one_line(why)
            );
        }
        Status::Fail | Status::Error | Status::Crash | Status::Timeout | Status::Xpass => {
            let _ = writeln!(s, "not ok {n} - {desc}");
            let severity = r.verdict.name();
            yaml(s, r.summary(), severity, &fields, detail);
        }
    }
}

/// Escapes `#` (the directive marker) and backslashes in a test point description.
fn escape_desc(t: &str) -> String {
    t.replace('\\', "\\\\").replace('#', "\\#")
}

/// Writes a YAML diagnostic block.
fn yaml(s: &mut String, message: &str, severity: &str, fields: &[(&str, &str)], detail: &str) {
    s.push_str("  ---\n");
    let _ = writeln!(s, "  message: {}", quoted(message));
    let _ = writeln!(s, "  severity: {severity}");
    for (k, v) in fields {
        let _ = writeln!(s, "  {k}: {}", quoted(v));
    }
    let detail = detail.trim_end();
    let plain_block = !detail.is_empty()
        && !detail.starts_with([' ', '\t'])
        && !detail.chars().any(|c| c.is_control() && c != '\n');
    if plain_block {
        s.push_str("  detail: |-\n");
        for line in detail.lines() {
            if line.is_empty() {
                s.push('\n');
            } else {
                let _ = writeln!(s, "    {line}");
            }
        }
    } else {
        let _ = writeln!(s, "  detail: {}", quoted(detail));
    }
    s.push_str("  ...\n");
}

/// A YAML double-quoted scalar (JSON string syntax, which YAML accepts).
fn quoted(t: &str) -> String {
    serde_json::to_string(t).unwrap_or_else(|_| "\"\"".into())
}
