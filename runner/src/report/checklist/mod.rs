//! The JIT-porter checklist: for each engine × architecture, pass/fail/skip counts per group, a
//! per-opcode ✓/✗/– matrix (52 classic opcodes, Linux extensions, negative offsets, eBPF ISA
//! rows), a kernel-style summary line (`lib/test_bpf.c`'s "N PASSED, M FAILED" adapted), and
//! the failing cases with a one-line repro command each. Rendered as Markdown (for a patch cover
//! letter), a self-contained HTML page, and JSON.
//!
//! A case's groups and rows are derived from its program ([`features`]). A matrix cell is ✓ when
//! every result using the row passed (at least one ran), ✗ when any failed (expected failures
//! included: the checklist says what works, not what CI tolerates), – when none ran.

pub mod features;
pub mod html;
pub mod markdown;

use super::{Record, Run, Status};
use features::{RowDef, Section};
use serde::Serialize;
use std::collections::HashMap;

/// Pass/fail/skip counts of one cell. Expected failures that passed count as passed here (the
/// engine did what the spec says), expected failures as `xfailed`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Passed.
    pub passed: usize,
    /// Failed, engine error, crash or timeout.
    pub failed: usize,
    /// Expected failures.
    pub xfailed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Crashes (counted in `failed` too).
    pub crashed: usize,
    /// Timeouts (counted in `failed` too).
    pub timed_out: usize,
}

impl Tally {
    /// Adds one status.
    pub fn add(&mut self, s: Status) {
        match s {
            Status::Pass | Status::Xpass => self.passed += 1,
            Status::Fail | Status::Error => self.failed += 1,
            Status::Crash => {
                self.failed += 1;
                self.crashed += 1;
            }
            Status::Timeout => {
                self.failed += 1;
                self.timed_out += 1;
            }
            Status::Xfail => self.xfailed += 1,
            Status::Skip => self.skipped += 1,
        }
    }

    /// Results that ran (passed or failed).
    pub fn ran(&self) -> usize {
        self.passed + self.failed + self.xfailed
    }

    /// ✓ (all that ran passed), ✗ (any failed), – (none ran).
    pub fn mark(&self) -> &'static str {
        if self.failed + self.xfailed > 0 {
            "✗"
        } else if self.passed > 0 {
            "✓"
        } else {
            "–"
        }
    }

    /// CSS-friendly class of the mark: `pass`, `fail`, `none`.
    pub fn class(&self) -> &'static str {
        match self.mark() {
            "✗" => "fail",
            "✓" => "pass",
            _ => "none",
        }
    }

    /// `✓ 12/12`, `✗ 9/12`, `–`.
    pub fn cell(&self) -> String {
        if self.ran() == 0 {
            "–".into()
        } else {
            format!("{} {}/{}", self.mark(), self.passed, self.ran())
        }
    }

    /// [`Tally::cell`] plus the skip count, when there are skips.
    pub fn cell_with_skips(&self) -> String {
        match self.skipped {
            0 => self.cell(),
            n => format!("{} · {n} skipped", self.cell()),
        }
    }

    /// Pass rate over the results that ran, in percent.
    pub fn rate(&self) -> Option<f64> {
        (self.ran() > 0).then(|| 100.0 * self.passed as f64 / self.ran() as f64)
    }
}

/// One column: an engine on an architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Engine name.
    pub engine: String,
    /// Architecture (`portable` for interpreters).
    pub arch: String,
    /// Version facts.
    pub facts: Vec<(String, String)>,
    /// Totals over every result.
    pub total: Tally,
    /// The kernel-style summary line.
    pub summary: String,
}

impl Column {
    /// `engine (arch)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.engine, self.arch)
    }
}

/// A group's counts per column.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// `classic` or `ebpf`.
    pub isa: String,
    /// Group name.
    pub name: String,
    /// One tally per column.
    pub cells: Vec<Tally>,
}

/// A matrix row's counts per column.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    /// What the row is.
    #[serde(flatten)]
    pub def: RowDef,
    /// One tally per column.
    pub cells: Vec<Tally>,
}

/// A failing (or expected-failing) result with its repro command.
#[derive(Debug, Clone, Serialize)]
pub struct Failing {
    /// Engine.
    pub engine: String,
    /// Architecture.
    pub arch: String,
    /// `group/name`.
    pub case: String,
    /// Variant.
    pub variant: String,
    /// Status (`fail`, `error`, `xpass` or `xfail`).
    pub status: Status,
    /// First line of the detail.
    pub summary: String,
    /// The expected-failure entry, for xfail/xpass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_fail: Option<String>,
    /// One-line command reproducing it.
    pub repro: String,
}

/// The whole checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Checklist {
    /// `bpfconf <version>`.
    pub generator: String,
    /// Where the results came from (case paths or result files).
    pub sources: Vec<String>,
    /// Engine × architecture columns.
    pub columns: Vec<Column>,
    /// Group counts, classic groups then eBPF groups.
    pub groups: Vec<GroupRow>,
    /// The per-opcode matrix.
    pub matrix: Vec<MatrixRow>,
    /// Failures, engine errors and expected failures that passed.
    pub failing: Vec<Failing>,
    /// Expected failures.
    pub expected: Vec<Failing>,
    /// Case-file errors and warnings of the runs, and results whose case was not found.
    pub warnings: Vec<String>,
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command that reruns one result.
pub fn repro(r: &Record) -> String {
    let dialect = if r.variant == "ebpf" {
        String::new()
    } else {
        format!(" --dialect {}", shell_quote(&r.variant))
    };
    format!(
        "bpfconf run --engine {}{dialect} --filter {} {}",
        shell_quote(&r.engine),
        shell_quote(&format!("^{}$", regex::escape(&r.case))),
        shell_quote(&r.file.display().to_string())
    )
}

/// The kernel-style summary line of a column.
fn summary_line(engine: &str, arch: &str, facts: &[(String, String)], t: &Tally) -> String {
    // Crashes and timeouts are failures; say how many, as `2 FAILED (1 CRASHED, 1 TIMED OUT)`.
    let kinds: Vec<String> = [(t.crashed, "CRASHED"), (t.timed_out, "TIMED OUT")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    let how = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", kinds.join(", "))
    };
    let mut s = format!(
        "bpfconf: {engine} ({arch}): {} PASSED, {} FAILED{how}, {} SKIPPED",
        t.passed, t.failed, t.skipped
    );
    if t.xfailed > 0 {
        s += &format!(", {} XFAIL", t.xfailed);
    }
    let shown: Vec<String> = facts
        .iter()
        .filter(|(k, _)| {
            ["kernel", "version", "bpf_jit_enable", "bpf_jit_harden"].contains(&k.as_str())
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !shown.is_empty() {
        s += &format!(" [{}]", shown.join(", "));
    }
    s
}

/// Builds the checklist from one or more runs (several runs: e.g. the same suite on several
/// machines) and the features of their cases.
pub fn build(runs: &[Run], features: &features::Index, sources: Vec<String>) -> Checklist {
    // Columns, in first-seen order.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut facts: Vec<Vec<(String, String)>> = Vec::new();
    for run in runs {
        for r in &run.results {
            let key = (r.engine.clone(), run.arch_of(&r.engine).to_string());
            if !keys.contains(&key) {
                let f = run.engines.iter().find(|e| e.name == r.engine);
                facts.push(f.map(|e| e.facts.clone()).unwrap_or_default());
                keys.push(key);
            }
        }
    }
    let ncol = keys.len();
    let classic_groups = features::classic_groups();
    let ebpf_groups = features::ebpf_groups();
    let mut groups: Vec<GroupRow> = classic_groups
        .iter()
        .map(|g| ("classic", g))
        .chain(ebpf_groups.iter().map(|g| ("ebpf", g)))
        .map(|(isa, name)| GroupRow {
            isa: isa.into(),
            name: name.clone(),
            cells: vec![Tally::default(); ncol],
        })
        .collect();
    let group_index: HashMap<(String, String), usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.isa.clone(), g.name.clone()), i))
        .collect();
    let mut matrix: Vec<MatrixRow> = features::all_rows()
        .into_iter()
        .map(|def| MatrixRow {
            def,
            cells: vec![Tally::default(); ncol],
        })
        .collect();
    let row_index: HashMap<(Section, String), usize> = matrix
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.def.section, m.def.name.clone()), i))
        .collect();
    let mut totals = vec![Tally::default(); ncol];
    let mut failing = Vec::new();
    let mut expected = Vec::new();
    let mut warnings = Vec::new();
    let mut unknown = 0usize;
    for run in runs {
        warnings.extend(
            run.load_errors
                .iter()
                .map(|e| format!("case file error: {e}")),
        );
        warnings.extend(run.warnings.iter().cloned());
        for r in &run.results {
            let arch = run.arch_of(&r.engine).to_string();
            let col = keys
                .iter()
                .position(|k| k.0 == r.engine && k.1 == arch)
                .unwrap_or(0);
            totals[col].add(r.verdict);
            match features.get(&(r.case.clone(), r.variant == "ebpf")) {
                Some(f) => {
                    let isa = if f.ebpf { "ebpf" } else { "classic" };
                    for g in f.groups_for(&r.variant) {
                        if let Some(&i) = group_index.get(&(isa.to_string(), g)) {
                            groups[i].cells[col].add(r.verdict);
                        }
                    }
                    for key in &f.rows {
                        if let Some(&i) = row_index.get(key) {
                            matrix[i].cells[col].add(r.verdict);
                        }
                    }
                }
                None => unknown += 1,
            }
            if r.verdict.is_failure() || r.verdict == Status::Xfail {
                let item = Failing {
                    engine: r.engine.clone(),
                    arch,
                    case: r.case.clone(),
                    variant: r.variant.clone(),
                    status: r.verdict,
                    summary: r.summary().to_string(),
                    expect_fail: r.expect_fail.clone(),
                    repro: repro(r),
                };
                if r.verdict == Status::Xfail {
                    expected.push(item);
                } else {
                    failing.push(item);
                }
            }
        }
    }
    if unknown > 0 {
        warnings.push(format!(
            "{unknown} result(s) name cases that were not loaded (pass the case paths): they count \
             in the totals only, not in groups or the matrix"
        ));
    }
    let columns = keys
        .into_iter()
        .zip(facts)
        .zip(totals)
        .map(|(((engine, arch), facts), total)| Column {
            summary: summary_line(&engine, &arch, &facts, &total),
            engine,
            arch,
            facts,
            total,
        })
        .collect();
    Checklist {
        generator: format!("bpfconf {}", env!("CARGO_PKG_VERSION")),
        sources,
        columns,
        groups,
        matrix,
        failing,
        expected,
        warnings,
    }
}

impl Checklist {
    /// The matrix rows of one section, in order.
    pub fn rows(&self, section: Section) -> Vec<&MatrixRow> {
        self.matrix
            .iter()
            .filter(|m| m.def.section == section)
            .collect()
    }

    /// The checklist as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes `checklist.md`, `checklist.html` and `checklist.json` into `dir` (created if
    /// missing). Returns the paths written.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            ("checklist.md", markdown::render(self)),
            ("checklist.html", html::render(self)),
            ("checklist.json", self.to_json()),
        ];
        let mut out = Vec::new();
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            out.push(p);
        }
        Ok(out)
    }
}
