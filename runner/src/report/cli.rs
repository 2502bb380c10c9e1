//! The `bpfconf report` subcommand: write the JIT-porter checklist from a fresh run or from
//! `run --format json` outputs, or compare two such outputs.

use super::checklist::{self, features};
use super::{compare, json, Run};
use crate::expect_fail::ExpectFail;
use crate::select_engines_isolated;
use crate::suite::{self, Selection};
use anyhow::{anyhow, bail, Context, Result};
use bpfconf_spec::case;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bpfconf report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory to write checklist.md, checklist.html and checklist.json into (created if
    /// missing).
    #[arg(long, value_name = "DIR", required_unless_present = "compare")]
    pub out: Option<PathBuf>,
    /// Engines to run, comma-separated (default: interp,jit,linux,pcap; `all` for every engine).
    #[arg(long, conflicts_with = "from")]
    pub engine: Option<String>,
    /// Only cases whose `group/name` matches this regex.
    #[arg(long, conflicts_with = "from")]
    pub filter: Option<String>,
    /// Leave out cases whose `group/name` matches this regex.
    #[arg(long, conflicts_with = "from")]
    pub exclude: Option<String>,
    /// Run these engines (comma-separated) in `bpfconf serve` child processes (see `bpfconf
    /// run --isolate`).
    #[arg(long, value_name = "LIST", conflicts_with_all = ["from", "in_process"])]
    pub isolate: Option<String>,
    /// Run every engine in this process, even those isolated by default.
    #[arg(long, conflicts_with = "from")]
    pub in_process: bool,
    /// Expected-failure list (TOML) applied to the run.
    #[arg(long, value_name = "FILE")]
    pub expect_fail: Option<PathBuf>,
    /// Reuse `bpfconf run --format json` output instead of running (repeatable, e.g. one file
    /// per machine/architecture). Cases are re-read from PATHS, or from the files the results
    /// name.
    #[arg(long, value_name = "RESULTS.json")]
    pub from: Vec<PathBuf>,
    /// Compare two `run --format json` outputs: list what got fixed or broke; exit non-zero if
    /// anything broke or newly fails.
    #[arg(long, num_args = 2, value_names = ["OLD.json", "NEW.json"], conflicts_with_all = ["out", "from"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Case files or directories.
    pub paths: Vec<PathBuf>,
}

/// Runs `bpfconf report`.
pub fn main(a: ReportArgs) -> Result<ExitCode> {
    if let Some(files) = &a.compare {
        let old = json::load(&files[0]).map_err(|e| anyhow!(e))?;
        let new = json::load(&files[1]).map_err(|e| anyhow!(e))?;
        let d = compare::diff(&old, &new);
        print!("{}", compare::render(&d));
        return Ok(if d.regressed() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let out = a.out.clone().context("--out DIR is required")?;
    let xfail = a.expect_fail.as_deref().map(ExpectFail::load).transpose()?;
    let (runs, sources, cases) = if a.from.is_empty() {
        fresh_run(&a, xfail.as_ref())?
    } else {
        from_files(&a, xfail.as_ref())?
    };
    let feats = features::index(&cases.cases, &cases.ebpf);
    let list = checklist::build(&runs, &feats, sources);
    let written = list
        .write(&out)
        .with_context(|| format!("writing the checklist into {}", out.display()))?;
    for col in &list.columns {
        println!("{}", col.summary);
    }
    for w in &list.warnings {
        eprintln!("warning: {w}");
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the case paths, failing on a path that does not exist.
fn load_cases(paths: &[PathBuf]) -> Result<case::LoadReport> {
    let mut all = case::LoadReport::default();
    for p in paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
        let r = case::load_path(p);
        all.cases.extend(r.cases);
        all.ebpf.extend(r.ebpf);
        all.errors.extend(r.errors);
    }
    Ok(all)
}

type Loaded = (Vec<Run>, Vec<String>, case::LoadReport);

fn fresh_run(a: &ReportArgs, xfail: Option<&ExpectFail>) -> Result<Loaded> {
    if a.paths.is_empty() {
        bail!("give case PATHS to run (or --from RESULTS.json)");
    }
    let engines = select_engines_isolated(a.engine.as_deref(), a.in_process, a.isolate.as_deref())
        .map_err(|e| anyhow!(e))?;
    let regex = |r: &Option<String>, what: &str| {
        r.as_deref()
            .map(regex::Regex::new)
            .transpose()
            .with_context(|| what.to_string())
    };
    let sel = Selection {
        filter: regex(&a.filter, "--filter")?,
        exclude: regex(&a.exclude, "--exclude")?,
        ..Default::default()
    };
    let mut cases = load_cases(&a.paths)?;
    let errors = std::mem::take(&mut cases.errors);
    let units = suite::units(&cases.cases, &cases.ebpf, &sel);
    let run = Run::execute(&units, &engines, errors, xfail);
    let sources = a.paths.iter().map(|p| p.display().to_string()).collect();
    Ok((vec![run], sources, cases))
}

fn from_files(a: &ReportArgs, xfail: Option<&ExpectFail>) -> Result<Loaded> {
    let mut runs = Vec::new();
    for f in &a.from {
        let mut run = json::load(f).map_err(|e| anyhow!(e))?;
        if let Some(x) = xfail {
            x.apply(&mut run);
        }
        runs.push(run);
    }
    let cases = if a.paths.is_empty() {
        // The files the results name, each loaded once; missing ones are left out (their
        // results then count in the totals only, and the checklist says so).
        let mut files: Vec<&Path> = runs
            .iter()
            .flat_map(|r| r.results.iter().map(|x| x.file.as_path()))
            .collect();
        files.sort();
        files.dedup();
        let existing: Vec<PathBuf> = files
            .into_iter()
            .filter(|p| p.exists())
            .map(Path::to_path_buf)
            .collect();
        load_cases(&existing)?
    } else {
        load_cases(&a.paths)?
    };
    let sources = a.from.iter().map(|p| p.display().to_string()).collect();
    Ok((runs, sources, cases))
}
