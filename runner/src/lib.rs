//! bpfconf-runner: how we compare and report. The `bpfconf` binary is a thin CLI over this.
//!
//! - [`compare`]: one function comparing an expectation with what an engine observed.
//! - [`suite`]: running spec cases on engines, in parallel, into verdicts.
//! - [`report`]: human and JSON renderings of a run.
//! - [`serve`]: the JSON-lines protocol of `bpfconf serve`.

pub mod compare;
pub mod gen;
pub mod report;
pub mod serve;
pub mod suite;

use bpfconf_engines::Engine;

/// Resolves a comma-separated engine list (`None` = every engine this build knows).
pub fn select_engines(list: Option<&str>) -> Result<Vec<Box<dyn Engine>>, String> {
    let all = bpfconf_engines::all_engines();
    let Some(list) = list else {
        return Ok(all);
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match bpfconf_engines::engine_by_name(name) {
            Some(e) => out.push(e),
            None => {
                let known: Vec<_> = all.iter().map(|e| e.name().to_string()).collect();
                return Err(format!(
                    "unknown engine `{name}` (known: {})",
                    known.join(", ")
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("no engine selected".into());
    }
    Ok(out)
}
