//! The `bpfconf fuzz` and `bpfconf minimize` subcommands.

use super::{campaign, engines, write_case, Config, Isa};
use anyhow::{anyhow, bail, Result};
use bpfconf_engines::{EbpfInput, EbpfProgram, Input, Program};
use bpfconf_spec::Dialect;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Instruction set of `bpfconf fuzz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsaArg {
    /// Classic BPF (dialect from `--dialect`).
    Classic,
    /// eBPF.
    Ebpf,
}

/// Options of `bpfconf fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// The two engines to compare, comma-separated.
    #[arg(long, default_value = "interp,linux")]
    pub engines: String,
    /// Instruction set to generate.
    #[arg(long, value_enum, default_value = "classic")]
    pub isa: IsaArg,
    /// Classic dialect.
    #[arg(long, default_value = "linux")]
    pub dialect: Dialect,
    /// Campaign seed (the same seed and bounds give the same units).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of programs to run (default 10000 when no --time).
    #[arg(long, conflicts_with = "time")]
    pub count: Option<u64>,
    /// Run for this many seconds.
    #[arg(long)]
    pub time: Option<u64>,
    /// Body instructions per generated program.
    #[arg(long, default_value_t = 16)]
    pub body: usize,
    /// Directory the divergences are written to as TOML cases.
    #[arg(long, default_value = "corpus/regressions")]
    pub out: PathBuf,
    /// Write divergences as found, without minimizing them.
    #[arg(long)]
    pub no_minimize: bool,
    /// Worker threads (default: one per core). `--jobs 1` measures one core's throughput.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

/// Runs `bpfconf fuzz`; exits with failure when a divergence was found.
pub fn fuzz_main(a: FuzzArgs) -> Result<ExitCode> {
    let (ea, eb) = engines(&a.engines).map_err(|e| anyhow!(e))?;
    let isa = match a.isa {
        IsaArg::Classic => Isa::Classic(a.dialect),
        IsaArg::Ebpf => Isa::Ebpf,
    };
    let cfg = Config {
        isa,
        seed: a.seed,
        count: a.count,
        time: a.time.map(Duration::from_secs),
        body: a.body,
        minimize: !a.no_minimize,
        bar: std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs.unwrap_or(0) as usize)
        .build()?;
    let threads = pool.current_num_threads().max(1);
    let cpu_before = super::process_cpu_time();
    let s = pool.install(|| campaign(&cfg, ea.as_ref(), eb.as_ref()));
    let cpu = super::process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    for f in &s.found {
        let path = write_case(&a.out, ea.as_ref(), eb.as_ref(), &cfg, f)?;
        println!(
            "divergence: unit {} (seed {:#x}): {} [{} -> {} insns] -> {}",
            f.index,
            f.unit_seed,
            f.diff,
            f.original_len,
            super::program_len(&f.program),
            path.display()
        );
    }
    println!(
        "{} vs {}: {} programs in {:.2}s: {}: {} match, {} divergent, {} one rejected, {} both rejected, {} unsupported",
        ea.name(),
        eb.name(),
        s.units,
        s.elapsed.as_secs_f64(),
        super::throughput(s.units, s.elapsed, threads, cpu),
        s.matched,
        s.found.len(),
        s.one_rejected,
        s.both_rejected,
        s.unsupported
    );
    Ok(if s.found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Options of `bpfconf minimize`.
#[derive(Debug, clap::Args)]
pub struct MinimizeArgs {
    /// The TOML case file (its first case, or `--case`).
    pub case: PathBuf,
    /// The two engines whose divergence to keep.
    #[arg(long, default_value = "interp,linux")]
    pub engines: String,
    /// Name (or `group/name`) of the case in the file.
    #[arg(long = "case")]
    pub name: Option<String>,
    /// Dialect of a classic case (default: its first).
    #[arg(long)]
    pub dialect: Option<Dialect>,
    /// Write the minimized case here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `bpfconf minimize`.
pub fn minimize_main(a: MinimizeArgs) -> Result<ExitCode> {
    let (ea, eb) = engines(&a.engines).map_err(|e| anyhow!(e))?;
    let r = bpfconf_spec::case::load_path(&a.case);
    if let Some(e) = r.errors.first() {
        bail!("{e}");
    }
    let wanted = |n: &str| {
        a.name
            .as_deref()
            .is_none_or(|w| n == w || n.rsplit('/').next() == Some(w))
    };
    let (name, program, input) = if let Some(c) = r.cases.iter().find(|c| wanted(&c.name)) {
        let d = a
            .dialect
            .or_else(|| c.dialects.first().copied())
            .ok_or_else(|| anyhow!("{}: no dialect", c.name))?;
        (
            c.name.clone(),
            crate::suite::program_for(c, d),
            crate::suite::input_for(c),
        )
    } else if let Some(c) = r.ebpf.iter().find(|c| wanted(&c.name)) {
        let mut p = EbpfProgram::new(c.program.clone());
        p.maps = c.maps.clone();
        p.progs = c.progs.clone();
        let mut i = EbpfInput::new(c.mem.clone());
        i.maps = c.map_init.clone();
        (c.name.clone(), Program::Ebpf(p), Input::Ebpf(i))
    } else {
        bail!("{}: no such case", a.case.display());
    };
    let Some(m) = crate::minimize::minimize(ea.as_ref(), eb.as_ref(), &program, &input) else {
        bail!(
            "{name}: {} and {} do not diverge on it",
            ea.name(),
            eb.name()
        );
    };
    let header = format!(
        "Minimized by `bpfconf minimize {} --engines {},{}` from {name} ({} -> {} instructions, {} runs).\n\
         Signature: {}\n{} vs {}: {}",
        a.case.display(),
        ea.name(),
        eb.name(),
        super::program_len(&program),
        super::program_len(&m.program),
        m.tries,
        m.signature,
        ea.name(),
        eb.name(),
        m.diff
    );
    let short = name.rsplit('/').next().unwrap_or(&name);
    let side = crate::diff::run_side(ea.as_ref(), &m.program, &m.input);
    let text = super::case_toml(
        &format!("{short}_min"),
        &header,
        &m.program,
        &m.input,
        &side,
    );
    match &a.out {
        Some(p) => {
            std::fs::write(p, &text)?;
            eprintln!("{}", header.lines().next().unwrap_or(""));
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
