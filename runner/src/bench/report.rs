//! The results of `bpfconf bench`: per-row figures, geometric means, ratios against the
//! targets, agreement of the engines' results, and their human and JSON renderings.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One engine's figures for one row.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Nanoseconds per packet (classic) or per run (eBPF).
    pub ns: f64,
    /// Nanoseconds to prepare the program (check, validate, verify, compile).
    pub load_ns: f64,
    /// `load_ns` per instruction.
    pub load_ns_per_insn: f64,
    /// A hash of every result (classic: the return value on each frame; eBPF: R0 and the
    /// memory after the run): equal digests mean equal results.
    pub digest: String,
    /// The results in short (`accepted/frames`, `r0 = …`).
    pub summary: String,
}

impl Cell {
    /// A cell for a program of `insns` instructions.
    pub fn new(ns: f64, load: Duration, insns: usize, digest: String, summary: String) -> Cell {
        let load_ns = load.as_nanos() as f64;
        Cell {
            ns,
            load_ns,
            load_ns_per_insn: load_ns / insns.max(1) as f64,
            digest,
            summary,
        }
    }
}

/// An engine's entry in a row: figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Entry {
    /// Measured.
    Measured(Cell),
    /// Not measured: the engine could not prepare or run the program.
    Skipped {
        /// Why.
        skipped: String,
    },
}

impl Entry {
    fn cell(&self) -> Option<&Cell> {
        match self {
            Entry::Measured(c) => Some(c),
            Entry::Skipped { .. } => None,
        }
    }
}

/// One filter or program.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The tcpdump expression or program name.
    pub name: String,
    /// What the program does (eBPF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Instructions (slots).
    pub insns: usize,
    /// Why the row has no figures (the expression did not compile…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per engine.
    pub results: BTreeMap<String, Entry>,
    /// Whether every measured engine gave the same results.
    pub agree: bool,
}

impl Row {
    /// An empty row.
    pub fn new(name: &str, insns: usize) -> Row {
        Row {
            name: name.to_string(),
            description: None,
            insns,
            error: None,
            results: BTreeMap::new(),
            agree: true,
        }
    }

    /// A row that could not be measured at all.
    pub fn failed(name: &str, error: String) -> Row {
        Row {
            error: Some(error),
            ..Row::new(name, 0)
        }
    }

    /// Records an engine's figures (or why there are none).
    pub fn push(&mut self, engine: &str, r: Result<Cell, String>) {
        let e = match r {
            Ok(c) => Entry::Measured(c),
            Err(skipped) => Entry::Skipped { skipped },
        };
        self.results.insert(engine.to_string(), e);
    }

    fn ns(&self, engine: &str) -> Option<f64> {
        self.results.get(engine)?.cell().map(|c| c.ns)
    }

    fn summary(&self) -> &str {
        self.results
            .values()
            .find_map(|e| e.cell().map(|c| c.summary.as_str()))
            .unwrap_or("-")
    }
}

/// A speed ratio between two engines over the rows both measured.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The engine whose speed is expressed.
    pub engine: String,
    /// The engine it is compared with.
    pub baseline: String,
    /// Geometric mean of `baseline ns / engine ns`: how many times as fast `engine` is.
    pub ratio: f64,
    /// Rows in the mean.
    pub rows: usize,
    /// The ratio wanted, if the project has a target for this pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

/// One instruction set's benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// `classic` or `ebpf`.
    pub isa: &'static str,
    /// Unit of the figures.
    pub unit: &'static str,
    /// The workload.
    pub workload: String,
    /// The engines, in column order.
    pub engines: Vec<String>,
    /// Why the whole section was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The rows.
    pub rows: Vec<Row>,
    /// Per engine, the geometric mean of its figures over the rows it measured.
    pub geomean: BTreeMap<String, f64>,
    /// Per engine, the geometric mean of its load time per instruction.
    pub load_ns_per_insn: BTreeMap<String, f64>,
    /// Ratios between every pair of engines (measured in this run).
    pub ratios: Vec<Ratio>,
    /// Whether the engines agreed on every row.
    pub agree: bool,
}

impl Section {
    /// An empty section.
    pub fn new(
        isa: &'static str,
        unit: &'static str,
        workload: String,
        engines: Vec<String>,
    ) -> Self {
        Section {
            isa,
            unit,
            workload,
            engines,
            skipped: None,
            rows: Vec::new(),
            geomean: BTreeMap::new(),
            load_ns_per_insn: BTreeMap::new(),
            ratios: Vec::new(),
            agree: true,
        }
    }

    /// A section that could not run.
    pub fn skipped(
        isa: &'static str,
        unit: &'static str,
        engines: Vec<String>,
        why: String,
    ) -> Self {
        Section {
            skipped: Some(why),
            ..Section::new(isa, unit, String::new(), engines)
        }
    }

    /// Computes agreement, means and ratios (`targets`: isa, engine, baseline, wanted ratio).
    fn finish(&mut self, targets: &[(&str, &str, &str, f64)]) {
        for row in &mut self.rows {
            let mut digests = row
                .results
                .values()
                .filter_map(|e| e.cell().map(|c| &c.digest));
            let first = digests.next();
            row.agree = digests.all(|d| Some(d) == first);
            self.agree &= row.agree;
        }
        for e in &self.engines {
            let cells: Vec<&Cell> = self
                .rows
                .iter()
                .filter_map(|r| r.results.get(e)?.cell())
                .collect();
            if let Some(g) = geomean(cells.iter().map(|c| c.ns)) {
                self.geomean.insert(e.clone(), g);
            }
            if let Some(g) = geomean(cells.iter().map(|c| c.load_ns_per_insn)) {
                self.load_ns_per_insn.insert(e.clone(), g);
            }
        }
        for (i, a) in self.engines.iter().enumerate() {
            for b in &self.engines[i + 1..] {
                let target = |x: &str, y: &str| {
                    targets
                        .iter()
                        .find(|t| t.0 == self.isa && t.1 == x && t.2 == y)
                        .map(|t| t.3)
                };
                // The orientation of a target if there is one, else the later column against
                // the earlier one.
                let (engine, baseline) = if target(a, b).is_some() {
                    (a, b)
                } else {
                    (b, a)
                };
                let pairs: Vec<f64> = self
                    .rows
                    .iter()
                    .filter_map(|r| Some(r.ns(baseline)? / r.ns(engine)?))
                    .collect();
                let Some(ratio) = geomean(pairs.iter().copied()) else {
                    continue;
                };
                let target = target(engine, baseline);
                self.ratios.push(Ratio {
                    engine: engine.clone(),
                    baseline: baseline.clone(),
                    ratio,
                    rows: pairs.len(),
                    target,
                    met: target.map(|t| ratio >= t),
                });
            }
        }
    }

    fn human(&self, out: &mut String) {
        let _ = writeln!(out, "\n{} ({})", self.isa, self.unit);
        if let Some(why) = &self.skipped {
            let _ = writeln!(out, "  skipped: {why}");
            return;
        }
        let _ = writeln!(out, "  {}", self.workload);
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .chain([16])
            .max()
            .unwrap_or(16);
        let sum_w = self
            .rows
            .iter()
            .map(|r| r.summary().len())
            .chain([8])
            .max()
            .unwrap_or(8);
        let col_w = self
            .engines
            .iter()
            .map(String::len)
            .chain([9])
            .max()
            .unwrap_or(9);
        let summary_title = if self.isa == "classic" {
            "accepted"
        } else {
            "result"
        };
        let mut head = format!("  {:name_w$}  {:>5}  {summary_title:>sum_w$}", "", "insns");
        for e in &self.engines {
            let _ = write!(head, "  {e:>col_w$}");
        }
        let _ = writeln!(out, "{head}");
        for r in &self.rows {
            if let Some(e) = &r.error {
                let _ = writeln!(out, "  {:name_w$}  error: {e}", r.name);
                continue;
            }
            let mut line = format!(
                "  {:name_w$}  {:>5}  {:>sum_w$}",
                r.name,
                r.insns,
                r.summary()
            );
            for e in &self.engines {
                let v = r.ns(e).map_or("-".to_string(), fmt_ns);
                let _ = write!(line, "  {v:>col_w$}");
            }
            if !r.agree {
                line.push_str("  <- RESULTS DIFFER");
            }
            let _ = writeln!(out, "{line}");
        }
        for (title, map) in [
            ("geometric mean", &self.geomean),
            ("load ns/insn (geometric mean)", &self.load_ns_per_insn),
        ] {
            let mut line = format!("  {title:<w$}", w = name_w + sum_w + 9);
            for e in &self.engines {
                let v = map.get(e).map_or("-".to_string(), |v| fmt_ns(*v));
                let _ = write!(line, "  {v:>col_w$}");
            }
            let _ = writeln!(out, "{line}");
        }
        for (e, skipped) in self.skipped_engines() {
            let _ = writeln!(out, "  {e}: not measured: {skipped}");
        }
        for r in &self.ratios {
            let target = match (r.target, r.met) {
                (Some(t), Some(met)) => format!(
                    "; target ≥ {t:.2}×: {}",
                    if met { "met" } else { "not met" }
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} vs {}: {:.2}× as fast ({} ns / {} ns, geometric mean over {} rows{target})",
                r.engine, r.baseline, r.ratio, r.baseline, r.engine, r.rows
            );
        }
        let _ = writeln!(
            out,
            "  results: {}",
            if self.agree {
                "every engine gave the same results on every row"
            } else {
                "ENGINES DISAGREE (rows marked above)"
            }
        );
    }

    /// Engines that measured no row, with the first reason.
    fn skipped_engines(&self) -> Vec<(&str, &str)> {
        self.engines
            .iter()
            .filter_map(|e| {
                let mut reasons = self.rows.iter().filter_map(|r| r.results.get(e));
                if reasons.clone().any(|x| x.cell().is_some()) {
                    return None;
                }
                reasons.find_map(|x| match x {
                    Entry::Skipped { skipped } => Some((e.as_str(), skipped.as_str())),
                    Entry::Measured(_) => None,
                })
            })
            .collect()
    }
}

/// A whole `bpfconf bench` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `release` or `debug` (debug figures say little).
    pub build: &'static str,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Milliseconds per round of a measurement.
    pub round_ms: f64,
    /// Rounds per measurement (the best is kept).
    pub rounds: usize,
    /// The machine.
    pub machine: BTreeMap<String, String>,
    /// The instruction sets.
    pub sections: Vec<Section>,
    /// Whether the engines agreed everywhere.
    pub agree: bool,
}

impl Report {
    /// An empty report.
    pub fn new(quick: bool, round: Duration, rounds: usize) -> Report {
        let mut machine = BTreeMap::new();
        machine.insert("arch".into(), std::env::consts::ARCH.to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        machine.insert("cores".into(), cores.to_string());
        if let Some(cpu) = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        }) {
            machine.insert("cpu".into(), cpu);
        }
        for (key, path) in [
            ("kernel", "/proc/sys/kernel/osrelease"),
            ("bpf_jit_enable", "/proc/sys/net/core/bpf_jit_enable"),
        ] {
            if let Ok(v) = std::fs::read_to_string(path) {
                machine.insert(key.into(), v.trim().to_string());
            }
        }
        Report {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            quick,
            round_ms: round.as_secs_f64() * 1e3,
            rounds,
            machine,
            sections: Vec::new(),
            agree: true,
        }
    }

    /// Computes every section's means, ratios and agreement.
    pub fn finish(&mut self, targets: &[(&str, &str, &str, f64)]) {
        for s in &mut self.sections {
            s.finish(targets);
            self.agree &= s.agree;
        }
    }

    /// The human rendering.
    pub fn human(&self) -> String {
        let mut out = format!(
            "bpfconf bench: {} build, {} ms per measurement, best of {}",
            self.build, self.round_ms, self.rounds
        );
        if self.build == "debug" {
            out.push_str(" (debug build: build with --release for meaningful figures)");
        }
        let machine: Vec<String> = self
            .machine
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "\nmachine: {}", machine.join(", "));
        for s in &self.sections {
            s.human(&mut out);
        }
        out
    }
}

/// The geometric mean of positive values; `None` if there are none.
fn geomean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = v
        .filter(|x| *x > 0.0 && x.is_finite())
        .fold((0usize, 0.0f64), |(n, s), x| (n + 1, s + x.ln()));
    (n > 0).then(|| (sum / n as f64).exp())
}

/// A figure in nanoseconds: one decimal below 100.
fn fmt_ns(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ns: f64, digest: &str) -> Result<Cell, String> {
        Ok(Cell::new(
            ns,
            Duration::from_nanos(100),
            10,
            digest.into(),
            "s".into(),
        ))
    }

    #[test]
    fn ratios_follow_targets_and_disagreement_is_seen() {
        let mut s = Section::new(
            "classic",
            "ns/packet",
            "w".into(),
            vec!["a".into(), "b".into()],
        );
        for (x, y) in [(10.0, 40.0), (20.0, 20.0)] {
            let mut r = Row::new("f", 4);
            r.push("a", cell(x, "d"));
            r.push("b", cell(y, "d"));
            s.rows.push(r);
        }
        s.finish(&[("classic", "a", "b", 1.5)]);
        assert!(s.agree);
        let r = &s.ratios[0];
        assert_eq!((r.engine.as_str(), r.baseline.as_str()), ("a", "b"));
        assert!((r.ratio - 2.0).abs() < 1e-9, "{}", r.ratio);
        assert_eq!(r.met, Some(true));
        // Without a target: the later column against the earlier one.
        s.ratios.clear();
        s.finish(&[]);
        assert_eq!(s.ratios[0].engine, "b");
        let mut r = Row::new("g", 4);
        r.push("a", cell(1.0, "x"));
        r.push("b", cell(1.0, "y"));
        s.rows.push(r);
        s.finish(&[]);
        assert!(!s.agree);
        assert!(s.rows.last().is_some_and(|r| !r.agree));
    }
}
