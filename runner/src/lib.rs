//! bpfconf-runner: how we compare and report. The `bpfconf` binary is a thin CLI over this.
//!
//! - [`compare`]: one function comparing an expectation with what an engine observed.
//! - [`suite`]: running spec cases on engines, in parallel, into verdicts.
//! - [`report`]: renderings of a run (human, JSON, JUnit, TAP) and the JIT-porter checklist.
//! - [`expect_fail`]: expected-failure lists (`--expect-fail FILE`).
//! - [`serve`]: the JSON-lines protocol of `bpfconf serve`.
//! - [`isolate`]: running engines in `bpfconf serve` children (crash isolation).
//! - [`elf`]: eBPF programs from ELF objects (`bpfconf exec --elf FILE --section NAME`).
//! - [`input`]: pcap/pcapng packets and tcpdump expressions (`bpfconf exec --pcap/--expr`).

pub mod compare;
pub mod diff;
pub mod elf;
pub mod expect_fail;
pub mod fuzz;
pub mod gen;
pub mod input;
pub mod isolate;
pub mod minimize;
pub mod report;
pub mod serve;
pub mod suite;

use bpfconf_engines::Engine;

/// The engines `bpfconf run` uses when `--engine` is not given: ours and the kernel's, whose
/// failures are ours to fix. Third-party engines (rbpf…) are opt-in by name or with `all`.
pub const DEFAULT_ENGINES: &[&str] = &["interp", "jit", "linux", "pcap"];

/// Resolves a comma-separated engine list (`None` = [`DEFAULT_ENGINES`]; `all` = every engine
/// this build knows). Besides engine names, an entry may be an external plugin spec:
/// `plugin:<command>` (bpf_conformance plugin protocol) or `jsonl:<command>` (bpfconf JSON-lines
/// protocol); see [`bpfconf_engines::plugin`].
pub fn select_engines(list: Option<&str>) -> Result<Vec<Box<dyn Engine>>, String> {
    let all = bpfconf_engines::all_engines();
    let Some(list) = list else {
        return Ok(all
            .into_iter()
            .filter(|e| DEFAULT_ENGINES.contains(&e.name()))
            .collect());
    };
    if list.trim() == "all" {
        return Ok(all);
    }
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // External plugins (`plugin:<command>`, `jsonl:<command>`) are created from their spec.
        if bpfconf_engines::plugin::is_plugin_spec(name) {
            out.push(bpfconf_engines::plugin::from_spec(name)?);
            continue;
        }
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

/// [`select_engines`], then the isolation policy of `--in-process` / `--isolate LIST`
/// ([`isolate::apply`]): engines that need it (or are named) run in children of this
/// executable, `bpfconf serve --engine NAME --in-process`.
pub fn select_engines_isolated(
    list: Option<&str>,
    in_process: bool,
    isolate: Option<&str>,
) -> Result<Vec<Box<dyn Engine>>, String> {
    let policy = isolate::Policy::from_args(in_process, isolate)?;
    let engines = select_engines(list)?;
    // The executable is looked up only when there is something to isolate (or to check).
    if policy.force.is_empty() && !engines.iter().any(|e| policy.isolates(e.as_ref())) {
        return Ok(engines);
    }
    isolate::apply(engines, &policy, &isolate::current_exe()?)
}
