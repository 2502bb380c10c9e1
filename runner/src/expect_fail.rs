//! Expected-failure lists (`bpfconf run --expect-fail FILE`): known failures of an engine that
//! should not fail CI, each with the reason — while staying honest: an expected failure that
//! passes is an error, and an entry that matches nothing is reported.
//!
//! ```toml
//! [[expect_fail]]
//! engine = "linux"             # engine name (or plugin spec), exactly
//! case = "^ext/poff"           # regex searched in `group/name`
//! variant = "linux"            # optional: linux, bsd, netbsd or ebpf
//! verdict = "crash"            # optional: fail, error, crash or timeout
//! reason = "poff needs a flow dissector fix (6.x)"
//! ```
//!
//! The first matching entry applies to a result: a failure, engine error, crash or timeout
//! becomes `xfail` (not counted as a failure), a pass becomes `xpass` (counted as a failure,
//! naming the entry), a skip stays a skip. An entry with `verdict` covers only failures of that
//! kind (and passes, which become `xpass`): an expected crash that now fails differently stays a
//! failure, and the entry is reported in the warnings.

use crate::report::{Run, Status};
use regex::Regex;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Variants an entry may name.
const VARIANTS: [&str; 4] = ["linux", "bsd", "netbsd", "ebpf"];

/// Failing statuses an entry's `verdict` may name.
const VERDICTS: [Status; 4] = [Status::Fail, Status::Error, Status::Crash, Status::Timeout];

/// A malformed expected-failure file: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectFailError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExpectFailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expect-fail file {}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ExpectFailError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    expect_fail: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    engine: Spanned<String>,
    case: Spanned<String>,
    #[serde(default)]
    variant: Option<Spanned<String>>,
    #[serde(default)]
    verdict: Option<Spanned<String>>,
    reason: Spanned<String>,
}

/// One entry of an expected-failure list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line of the entry's `[[expect_fail]]` table.
    pub line: usize,
    /// Engine name.
    pub engine: String,
    /// The `case` pattern as written.
    pub pattern: String,
    /// The compiled pattern.
    pub case: Regex,
    /// Variant restriction, if any.
    pub variant: Option<String>,
    /// The failing status expected (`fail`, `error`, `crash`, `timeout`), if the entry names
    /// one.
    pub verdict: Option<Status>,
    /// Why the failure is expected.
    pub reason: String,
}

impl Entry {
    /// True when the entry covers this (engine, case, variant), whatever the result's status.
    pub fn matches(&self, engine: &str, case: &str, variant: &str) -> bool {
        self.engine == engine
            && self.variant.as_deref().is_none_or(|v| v == variant)
            && self.case.is_match(case)
    }

    /// True when the entry covers a result with this status: a failure of another kind than
    /// the entry's `verdict` is not covered.
    pub fn covers(&self, status: Status) -> bool {
        match self.verdict {
            Some(v) if status.is_own_failure() => status == v,
            _ => true,
        }
    }

    /// `engine = "…", case = "…"[, variant = "…"][, verdict = "…"]`, as written in the file.
    pub fn describe(&self) -> String {
        let mut s = format!("engine = {:?}, case = {:?}", self.engine, self.pattern);
        if let Some(v) = &self.variant {
            s += &format!(", variant = {v:?}");
        }
        if let Some(v) = self.verdict {
            s += &format!(", verdict = {:?}", v.name());
        }
        s
    }
}

/// A loaded expected-failure list.
#[derive(Debug, Clone)]
pub struct ExpectFail {
    /// The file it came from.
    pub file: PathBuf,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl ExpectFail {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<ExpectFail, ExpectFailError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExpectFailError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a file; `path` names it in errors. Engine names are checked against
    /// the engines this build knows (plugin specs, `jsonl:…` and `plugin:…`, are accepted).
    pub fn parse(path: &Path, text: &str) -> Result<ExpectFail, ExpectFailError> {
        let known: Vec<String> = bpfconf_engines::all_engines()
            .iter()
            .map(|e| e.name().to_string())
            .collect();
        Self::parse_with_engines(path, text, &known)
    }

    /// Like [`ExpectFail::parse`], checking engine names against `known_engines` (no check when
    /// it is empty).
    pub fn parse_with_engines(
        path: &Path,
        text: &str,
        known_engines: &[String],
    ) -> Result<ExpectFail, ExpectFailError> {
        let err = |offset: Option<usize>, message: String| ExpectFailError {
            file: path.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            message,
        };
        let doc: Doc = toml::from_str(text)
            .map_err(|e| err(e.span().map(|s| s.start), e.message().trim().to_string()))?;
        let mut entries = Vec::new();
        for raw in doc.expect_fail {
            let line = line_of(text, raw.span().start);
            let raw = raw.into_inner();
            let at = |s: &std::ops::Range<usize>| Some(s.start);
            let engine = raw.engine.get_ref().trim().to_string();
            // Plugin engines are named by their spec (`jsonl:…`, `plugin:…`).
            if !known_engines.is_empty()
                && !known_engines.contains(&engine)
                && !bpfconf_engines::plugin::is_plugin_spec(&engine)
            {
                return Err(err(
                    at(&raw.engine.span()),
                    format!(
                        "unknown engine `{engine}` (known: {})",
                        known_engines.join(", ")
                    ),
                ));
            }
            let pattern = raw.case.get_ref().clone();
            let case = Regex::new(&pattern).map_err(|e| {
                err(
                    at(&raw.case.span()),
                    format!("`case` is not a valid regex: {e}"),
                )
            })?;
            let variant = match raw.variant {
                Some(v) if !VARIANTS.contains(&v.get_ref().as_str()) => {
                    return Err(err(
                        at(&v.span()),
                        format!(
                            "unknown variant `{}` (one of: {})",
                            v.get_ref(),
                            VARIANTS.join(", ")
                        ),
                    ))
                }
                v => v.map(Spanned::into_inner),
            };
            let verdict = match raw.verdict {
                None => None,
                Some(v) => match VERDICTS.iter().find(|s| s.name() == v.get_ref().as_str()) {
                    Some(s) => Some(*s),
                    None => {
                        let names: Vec<&str> = VERDICTS.iter().map(|s| s.name()).collect();
                        return Err(err(
                            at(&v.span()),
                            format!(
                                "unknown verdict `{}` (one of: {})",
                                v.get_ref(),
                                names.join(", ")
                            ),
                        ));
                    }
                },
            };
            let reason = raw.reason.get_ref().trim().to_string();
            if reason.is_empty() {
                return Err(err(
                    at(&raw.reason.span()),
                    "`reason` is empty: say why the failure is expected".into(),
                ));
            }
            entries.push(Entry {
                line,
                engine,
                pattern,
                case,
                variant,
                verdict,
                reason,
            });
        }
        Ok(ExpectFail {
            file: path.to_path_buf(),
            entries,
        })
    }

    /// The first entry covering a result (of any status; see [`Entry::covers`]).
    pub fn find(&self, engine: &str, case: &str, variant: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.matches(engine, case, variant))
    }

    /// Applies the list to a run: failures, engine errors, crashes and timeouts covered by an
    /// entry become `xfail`; passes covered by one become `xpass` (a failure naming the entry).
    /// Entries of engines that ran but matched no result, or only skipped ones, or only
    /// failures of another kind than their `verdict`, are added to the run's warnings. A run
    /// that already went through a list (read back from JSON) is first reset: this list
    /// replaces the old one.
    pub fn apply(&self, run: &mut Run) {
        for r in &mut run.results {
            match r.verdict {
                Status::Xfail => r.verdict = r.failed_as.take().unwrap_or(Status::Fail),
                Status::Xpass => {
                    r.verdict = Status::Pass;
                    r.detail = None;
                }
                _ => continue,
            }
            r.expect_fail = None;
        }
        // Per entry: results matched that ran (passed or failed), skipped ones, and failures
        // of another kind than the entry's verdict (by status name).
        let mut ran = vec![0usize; self.entries.len()];
        let mut skipped = vec![0usize; self.entries.len()];
        let mut other: Vec<Vec<&'static str>> = vec![Vec::new(); self.entries.len()];
        for r in &mut run.results {
            for (i, e) in self.entries.iter().enumerate() {
                if e.matches(&r.engine, &r.case, &r.variant) && !e.covers(r.verdict) {
                    other[i].push(r.verdict.name());
                }
            }
            let Some(i) = self
                .entries
                .iter()
                .position(|e| e.matches(&r.engine, &r.case, &r.variant) && e.covers(r.verdict))
            else {
                continue;
            };
            let e = &self.entries[i];
            let at = format!("{}:{}", self.file.display(), e.line);
            match r.verdict {
                s if s.is_own_failure() => {
                    ran[i] += 1;
                    // `fail` is the default when a reset reads it back.
                    r.failed_as = (s != Status::Fail).then_some(s);
                    r.verdict = Status::Xfail;
                    r.expect_fail = Some(format!("{at}: {}", e.reason));
                }
                Status::Pass => {
                    ran[i] += 1;
                    r.verdict = Status::Xpass;
                    r.expect_fail = Some(format!("{at}: {}", e.reason));
                    r.detail = Some(format!(
                        "expected failure passed: {}[{}] on {} is listed as failing by {at} \
                         ({}; reason: {}) but it passed — remove or narrow that entry \
                         (e.g. with `variant`) so the list stays honest",
                        r.case,
                        r.variant,
                        r.engine,
                        e.describe(),
                        e.reason
                    ));
                }
                _ => skipped[i] += 1,
            }
        }
        let engines_run: Vec<&str> = run.results.iter().map(|r| r.engine.as_str()).collect();
        for (i, e) in self.entries.iter().enumerate() {
            if ran[i] > 0 || !engines_run.contains(&e.engine.as_str()) {
                continue;
            }
            let what = if !other[i].is_empty() {
                let mut kinds = other[i].clone();
                kinds.sort_unstable();
                kinds.dedup();
                format!(
                    "expects verdict `{}` but its results failed otherwise ({} × {})",
                    e.verdict.map_or("", Status::name),
                    other[i].len(),
                    kinds.join(", ")
                )
            } else if skipped[i] > 0 {
                format!("matched only skipped results ({})", skipped[i])
            } else {
                "matched no result".to_string()
            };
            run.warnings.push(format!(
                "expect-fail {}:{} ({}) {what}",
                self.file.display(),
                e.line,
                e.describe()
            ));
        }
    }
}
