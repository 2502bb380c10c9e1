//! A progress bar over [`crate::suite::run_units_with`]: on a terminal, long runs draw one
//! (indicatif, on stderr); when stdout is not a terminal (CI, pipes, files) nothing is drawn.

use crate::suite::{run_units_with, SuiteReport, Unit};
use bpfconf_engines::Engine;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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

/// Runs every unit on every engine in parallel ([`run_units_with`]). Returns the report
/// (results in unit order, then engine order) and each result's duration in seconds. Draws a
/// progress bar when `bar` is true and the run is long enough (many tasks, running for a while).
pub fn run_units_timed(
    units: &[Unit],
    engines: &[Box<dyn Engine>],
    bar: bool,
) -> (SuiteReport, Vec<f64>) {
    let tasks = units.len() * engines.len();
    // The bar starts hidden and appears only once the run has taken a while, so quick runs do
    // not flicker.
    let pb = ProgressBar::with_draw_target(Some(tasks as u64), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta}",
    ) {
        pb.set_style(style);
    }
    let may_show = bar && tasks >= MIN_TASKS_FOR_BAR;
    let shown = AtomicBool::new(false);
    let t0 = Instant::now();
    let out = run_units_with(units, engines, &|| {
        if may_show && t0.elapsed() >= SHOW_AFTER && !shown.swap(true, Ordering::Relaxed) {
            pb.set_draw_target(ProgressDrawTarget::stderr());
        }
        pb.inc(1);
    });
    pb.finish_and_clear();
    out
}
