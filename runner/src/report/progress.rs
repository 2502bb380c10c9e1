//! Running units the way [`crate::suite::run_units`] does — every unit on every engine, in
//! parallel — while timing each result and, on a terminal, drawing a progress bar (indicatif,
//! on stderr). When stdout is not a terminal (CI, pipes, files) nothing is drawn.

use crate::suite::{run_unit, CaseResult, SuiteReport, Unit};
use bpfconf_engines::Engine;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs with fewer tasks than this finish too fast for a bar to help.
const MIN_TASKS_FOR_BAR: usize = 64;

/// The bar appears once a run has lasted this long.
const SHOW_AFTER: Duration = Duration::from_millis(700);

/// True when a progress bar should be drawn: stdout is a terminal.
pub fn wanted() -> bool {
    std::io::stdout().is_terminal()
}

/// Runs every unit on every engine in parallel. Returns the report (results in unit order, then
/// engine order, as `suite::run_units`) and each result's duration in seconds. Draws a progress
/// bar when `bar` is true and the run is long enough (many tasks, running for a while).
pub fn run_units_timed(
    units: &[Unit],
    engines: &[Box<dyn Engine>],
    bar: bool,
) -> (SuiteReport, Vec<f64>) {
    let avail: Vec<Result<(), String>> = engines.iter().map(|e| e.availability()).collect();
    let tasks: Vec<(usize, usize)> = (0..units.len())
        .flat_map(|u| (0..engines.len()).map(move |e| (u, e)))
        .collect();
    // The bar starts hidden and appears only once the run has taken a while, so quick runs do
    // not flicker.
    let pb = ProgressBar::with_draw_target(Some(tasks.len() as u64), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta}",
    ) {
        pb.set_style(style);
    }
    let may_show = bar && tasks.len() >= MIN_TASKS_FOR_BAR;
    let shown = AtomicBool::new(false);
    let t0 = Instant::now();
    let timed: Vec<(CaseResult, f64)> = tasks
        .par_iter()
        .map(|&(u, ei)| {
            let unit = &units[u];
            let start = Instant::now();
            let verdict = run_unit(unit, engines[ei].as_ref(), &avail[ei]);
            let secs = start.elapsed().as_secs_f64();
            if may_show && t0.elapsed() >= SHOW_AFTER && !shown.swap(true, Ordering::Relaxed) {
                pb.set_draw_target(ProgressDrawTarget::stderr());
            }
            pb.inc(1);
            (
                CaseResult {
                    case: unit.case.to_string(),
                    file: unit.file.to_path_buf(),
                    line: unit.line,
                    variant: unit.variant.clone(),
                    engine: engines[ei].name().to_string(),
                    verdict,
                },
                secs,
            )
        })
        .collect();
    pb.finish_and_clear();
    let (results, times) = timed.into_iter().unzip();
    (
        SuiteReport {
            results,
            load_errors: Vec::new(),
        },
        times,
    )
}
