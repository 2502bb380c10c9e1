//! `bpfconf report --compare OLD.json NEW.json`: what got fixed or broke between two runs, per
//! (engine, case, variant).
//!
//! A result's *outcome* is `pass` (pass, or an expected failure that passed), `fail` (fail,
//! engine error, or an expected failure: the case did not do what the spec says) or `skip`.
//! fail → pass is **fixed**, pass → fail is **broke**; a result that is new and fails, or that
//! was skipped and now fails, is **newly failing**; new and removed results and run ↔ skip
//! changes are listed too. Broken or newly failing results make the comparison fail.

use super::{Run, Status};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What a result did, ignoring expected-failure bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The case behaved as the spec says.
    Pass,
    /// It did not (or the engine failed).
    Fail,
    /// It did not run.
    Skip,
}

impl Outcome {
    /// The outcome of a status.
    pub fn of(s: Status) -> Outcome {
        if s.case_passed() {
            Outcome::Pass
        } else if s.case_failed() {
            Outcome::Fail
        } else {
            Outcome::Skip
        }
    }

    fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}

/// `(engine, case, variant)`.
pub type Key = (String, String, String);

/// The differences between two runs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// fail → pass.
    pub fixed: Vec<Key>,
    /// pass → fail.
    pub broke: Vec<Key>,
    /// new or previously skipped, now failing.
    pub newly_failing: Vec<(Key, Option<Outcome>)>,
    /// ran before, skipped now.
    pub now_skipped: Vec<(Key, Outcome)>,
    /// skipped before, passes now.
    pub now_passing: Vec<Key>,
    /// in the new run only (not failing).
    pub added: Vec<(Key, Outcome)>,
    /// in the old run only.
    pub removed: Vec<(Key, Outcome)>,
    /// Results present in both with the same outcome.
    pub unchanged: usize,
}

impl Diff {
    /// True when something broke or newly fails.
    pub fn regressed(&self) -> bool {
        !self.broke.is_empty() || !self.newly_failing.is_empty()
    }
}

fn outcomes(run: &Run) -> BTreeMap<Key, Outcome> {
    run.results
        .iter()
        .map(|r| {
            (
                (r.engine.clone(), r.case.clone(), r.variant.clone()),
                Outcome::of(r.verdict),
            )
        })
        .collect()
}

/// Compares two runs.
pub fn diff(old: &Run, new: &Run) -> Diff {
    let (o, n) = (outcomes(old), outcomes(new));
    let mut d = Diff::default();
    for (k, &now) in &n {
        match o.get(k).copied() {
            None if now == Outcome::Fail => d.newly_failing.push((k.clone(), None)),
            None => d.added.push((k.clone(), now)),
            Some(before) if before == now => d.unchanged += 1,
            Some(Outcome::Fail) if now == Outcome::Pass => d.fixed.push(k.clone()),
            Some(Outcome::Pass) if now == Outcome::Fail => d.broke.push(k.clone()),
            Some(Outcome::Skip) if now == Outcome::Fail => {
                d.newly_failing.push((k.clone(), Some(Outcome::Skip)))
            }
            Some(Outcome::Skip) => d.now_passing.push(k.clone()),
            Some(before) => d.now_skipped.push((k.clone(), before)),
        }
    }
    for (k, &before) in &o {
        if !n.contains_key(k) {
            d.removed.push((k.clone(), before));
        }
    }
    d
}

fn key(k: &Key) -> String {
    format!("{}[{}] on {}", k.1, k.2, k.0)
}

/// Renders a diff as text: a section per kind of change and a closing counts line.
pub fn render(d: &Diff) -> String {
    let mut s = String::new();
    let mut section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            let _ = writeln!(s, "{title} ({}):", items.len());
            for i in items {
                let _ = writeln!(s, "  {i}");
            }
        }
    };
    section("BROKE (pass → fail)", d.broke.iter().map(key).collect());
    section(
        "NEWLY FAILING",
        d.newly_failing
            .iter()
            .map(|(k, b)| match b {
                Some(b) => format!("{} (was {})", key(k), b.word()),
                None => format!("{} (new)", key(k)),
            })
            .collect(),
    );
    section("FIXED (fail → pass)", d.fixed.iter().map(key).collect());
    section(
        "now passing (was skipped)",
        d.now_passing.iter().map(key).collect(),
    );
    section(
        "now skipped",
        d.now_skipped
            .iter()
            .map(|(k, b)| format!("{} (was {})", key(k), b.word()))
            .collect(),
    );
    section(
        "new",
        d.added
            .iter()
            .map(|(k, o)| format!("{} ({})", key(k), o.word()))
            .collect(),
    );
    section(
        "removed",
        d.removed
            .iter()
            .map(|(k, o)| format!("{} (was {})", key(k), o.word()))
            .collect(),
    );
    let _ = writeln!(
        s,
        "{} fixed, {} broke, {} newly failing, {} new, {} removed, {} unchanged",
        d.fixed.len(),
        d.broke.len(),
        d.newly_failing.len(),
        d.added.len(),
        d.removed.len(),
        d.unchanged
    );
    s
}
