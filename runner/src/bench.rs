//! `bpfconf bench`: how fast the engines run BPF, measured side by side in one run.
//!
//! - **classic**: tcpdump filter expressions compiled by libpcap (as `tcpdump -d` would for an
//!   Ethernet capture) over a fixed mix of a few hundred frames ([`frames`]); nanoseconds per
//!   packet for each [`ClassicBench`] engine: our interpreter (`interp::classic::run`) and
//!   libpcap's `bpf_filter`, both called directly in this process.
//! - **eBPF**: an ALU-heavy and a memory-heavy program ([`programs`]); nanoseconds per run for
//!   each [`EbpfBench`] engine: our interpreter, and the kernel through `BPF_PROG_TEST_RUN`
//!   with `repeat` (the time is the kernel's own `duration`).
//! - **load**: the time each engine takes to prepare a program (check, validate, verify,
//!   compile), per instruction.
//!
//! Every measurement is time-boxed (`--time-ms`, default 200 ms; `--quick` 10 ms) and is the
//! best of three rounds (one with `--quick`). Ratios between engines are computed from figures
//! taken in the same run, and printed against the project's targets; nothing is asserted on
//! time. What *is* checked is correctness: every engine must return the same value on every
//! frame (classic) and the same R0 and memory (eBPF), or the command fails.
//!
//! Adding an engine is one `impl` of [`ClassicBench`] or [`EbpfBench`] and one entry in
//! [`classic_engines`] or [`ebpf_engines`]; our JIT's are in [`jit`].

mod frames;
mod jit;
mod programs;
mod report;

use bpfconf_engines::interp::{classic, ebpf as interp_ebpf};
use bpfconf_engines::linux::ebpf::timed::Timed;
use bpfconf_engines::pcap::direct::Direct;
use bpfconf_engines::EbpfProgram;
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::check::{check, CheckConfig};
use bpfconf_spec::cbpf::{Insn, MEMWORDS};
use bpfconf_spec::{ebpf, Dialect};
use report::{Cell, Report, Row, Section};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A prepared classic program: runs it on one packet (wire length = captured length) and
/// returns its 32-bit return value.
pub type ClassicRun<'a> = Box<dyn FnMut(&[u8]) -> Result<u32, String> + 'a>;

/// A classic engine under benchmark.
pub trait ClassicBench {
    /// Column name.
    fn name(&self) -> &str;
    /// Prepares `insns` (the dialect's checks, compilation); `Err` if the engine cannot run
    /// the program. Its wall time is the engine's load time.
    fn prepare<'a>(&'a self, dialect: Dialect, insns: &[Insn]) -> Result<ClassicRun<'a>, String>;
}

/// A prepared eBPF program.
pub trait EbpfRun {
    /// Runs once on `mem` (R1 = `mem`, R2 = its length; R1 = R2 = 0 when empty), leaving the
    /// memory as the program left it; returns R0.
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String>;

    /// Mean nanoseconds per run over about `budget`, the runs one after the other on the same
    /// buffer (the benchmark programs are idempotent). The default times [`EbpfRun::run`] with
    /// the wall clock; engines that time themselves (the kernel) override it.
    fn time(&mut self, mem: &[u8], budget: Duration) -> Result<f64, String> {
        let mut buf = mem.to_vec();
        let start = Instant::now();
        let mut runs = 0u64;
        while runs == 0 || start.elapsed() < budget {
            black_box(self.run(black_box(&mut buf))?);
            runs += 1;
        }
        Ok(start.elapsed().as_nanos() as f64 / runs as f64)
    }

    /// The load time, when the engine measured it itself (the kernel: one `BPF_PROG_LOAD`);
    /// `None`: the wall time of [`EbpfBench::prepare`].
    fn load_time(&self) -> Option<Duration> {
        None
    }
}

/// An eBPF engine under benchmark.
pub trait EbpfBench {
    /// Column name.
    fn name(&self) -> &str;
    /// Prepares `insns` for runs on memories of `mem_len` bytes; `Err` if the engine cannot
    /// run the program here.
    fn prepare<'a>(
        &'a self,
        insns: &[ebpf::Insn],
        mem_len: usize,
    ) -> Result<Box<dyn EbpfRun + 'a>, String>;
}

/// Runs the dialect's checker on a benchmark filter (no coprocessor, 16 memory words), as our
/// engines do at load.
fn checked(dialect: Dialect, insns: &[Insn]) -> Result<(), String> {
    let cfg = CheckConfig {
        dialect,
        cop_funcs: 0,
        memwords: MEMWORDS,
    };
    check(insns, &cfg).map_err(|r| format!("checker: {r}"))
}

/// The reference interpreter on classic programs.
struct InterpClassic;

impl ClassicBench for InterpClassic {
    fn name(&self) -> &str {
        "interp"
    }

    fn prepare<'a>(&'a self, dialect: Dialect, insns: &[Insn]) -> Result<ClassicRun<'a>, String> {
        checked(dialect, insns)?;
        let prog = classic::Prepared::new(dialect, insns);
        let ctx = Ctx::default();
        Ok(Box::new(move |pkt: &[u8]| {
            prog.run_ret(pkt, &ctx).map_err(|t| t.to_string())
        }))
    }
}

/// libpcap's `bpf_filter`, in this process.
struct Libpcap;

impl ClassicBench for Libpcap {
    fn name(&self) -> &str {
        "libpcap"
    }

    fn prepare<'a>(&'a self, dialect: Dialect, insns: &[Insn]) -> Result<ClassicRun<'a>, String> {
        if dialect != Dialect::Bsd {
            return Err("libpcap implements the BSD dialect".into());
        }
        let d = Direct::new(insns)?;
        Ok(Box::new(move |pkt: &[u8]| {
            Ok(d.filter(pkt, pkt.len() as u32))
        }))
    }
}

/// The reference interpreter on eBPF programs.
struct InterpEbpf;

struct InterpEbpfRun(interp_ebpf::Interpreter);

impl EbpfRun for InterpEbpfRun {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        let r = self.0.run(mem).map_err(|e| e.to_string())?;
        mem.copy_from_slice(&r.mem);
        Ok(r.ret)
    }
}

impl EbpfBench for InterpEbpf {
    fn name(&self) -> &str {
        "interp"
    }

    fn prepare<'a>(
        &'a self,
        insns: &[ebpf::Insn],
        _mem_len: usize,
    ) -> Result<Box<dyn EbpfRun + 'a>, String> {
        let p = EbpfProgram::new(insns.to_vec());
        let i = interp_ebpf::Interpreter::for_program(&p).map_err(|e| e.to_string())?;
        Ok(Box::new(InterpEbpfRun(i)))
    }
}

/// The kernel: `BPF_PROG_LOAD` (verifier + JIT), `BPF_PROG_TEST_RUN` with `repeat`.
struct Kernel;

struct KernelRun {
    timed: Timed,
    load: Duration,
}

impl EbpfRun for KernelRun {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        let r = self.timed.run(mem, 1).map_err(|e| e.to_string())?;
        mem.copy_from_slice(&r.memory);
        Ok(r.r0)
    }

    fn time(&mut self, mem: &[u8], budget: Duration) -> Result<f64, String> {
        // Calibrate on a short loop, then one test run of about `budget`.
        let probe = self.timed.run(mem, 100).map_err(|e| e.to_string())?;
        let per_run = u128::from(probe.ns_per_run.max(1));
        let repeat = (budget.as_nanos() / per_run).clamp(1, 100_000_000) as u32;
        let r = self.timed.run(mem, repeat).map_err(|e| e.to_string())?;
        Ok(f64::from(r.ns_per_run))
    }

    fn load_time(&self) -> Option<Duration> {
        Some(self.load)
    }
}

impl EbpfBench for Kernel {
    fn name(&self) -> &str {
        "kernel"
    }

    fn prepare<'a>(
        &'a self,
        insns: &[ebpf::Insn],
        mem_len: usize,
    ) -> Result<Box<dyn EbpfRun + 'a>, String> {
        let p = EbpfProgram::new(insns.to_vec());
        let (timed, load) = Timed::load_for(&p, mem_len).map_err(|e| e.to_string())?;
        Ok(Box::new(KernelRun { timed, load }))
    }
}

/// The classic engines, in column order. Add the JIT here.
pub fn classic_engines() -> Vec<Box<dyn ClassicBench>> {
    vec![
        Box::new(InterpClassic),
        Box::new(jit::JitClassic),
        Box::new(Libpcap),
    ]
}

/// The eBPF engines, in column order.
pub fn ebpf_engines() -> Vec<Box<dyn EbpfBench>> {
    vec![
        Box::new(InterpEbpf),
        Box::new(jit::JitEbpf),
        Box::new(Kernel),
    ]
}

/// `DLT_EN10MB`: the filters are compiled for Ethernet.
const DLT_EN10MB: i32 = bpfconf_runner::input::LINKTYPE_ETHERNET as i32;

/// Speed targets: (faster engine, slower engine, the ratio `slower ns / faster ns` wanted).
/// "JIT within 1.2× of the kernel" is a ratio of at least 1 / 1.2.
const TARGETS: &[(&str, &str, &str, f64)] = &[
    ("classic", "jit", "interp", 5.0),
    ("classic", "interp", "libpcap", 1.5),
    ("ebpf", "jit", "interp", 5.0),
    ("ebpf", "jit", "kernel", 1.0 / 1.2),
];

/// How long measurements take.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Per round of one measurement.
    round: Duration,
    /// Rounds per measurement; the best is kept.
    rounds: usize,
}

impl Budget {
    /// Runs `measure(round)` `rounds` times and keeps the smallest figure.
    fn best(
        &self,
        mut measure: impl FnMut(Duration) -> Result<f64, String>,
    ) -> Result<f64, String> {
        let mut best = f64::INFINITY;
        for _ in 0..self.rounds {
            best = best.min(measure(self.round)?);
        }
        Ok(best)
    }
}

/// Mean of the durations `f` reports, calling it for about `budget` (at least once).
fn mean_time(
    budget: Duration,
    mut f: impl FnMut() -> Result<Duration, String>,
) -> Result<Duration, String> {
    let start = Instant::now();
    let (mut n, mut total) = (0u32, Duration::ZERO);
    while n == 0 || start.elapsed() < budget {
        total += f()?;
        n += 1;
    }
    Ok(total / n)
}

/// FNV-1a, to summarise return values.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// One classic measurement: returns (digest, accepted, ns/packet, load).
fn classic_cell(
    engine: &dyn ClassicBench,
    insns: &[Insn],
    frames: &[Vec<u8>],
    budget: Budget,
) -> Result<Cell, String> {
    let load = mean_time(budget.round / 4, || {
        let t = Instant::now();
        let run = black_box(engine.prepare(Dialect::Bsd, insns)?);
        let d = t.elapsed();
        drop(run);
        Ok(d)
    })?;
    let mut run = engine.prepare(Dialect::Bsd, insns)?;
    let mut digest = FNV_START;
    let mut accepted = 0;
    for (i, f) in frames.iter().enumerate() {
        let r = run(f).map_err(|e| format!("frame {i}: {e}"))?;
        digest = fnv(digest, &r.to_le_bytes());
        accepted += usize::from(r != 0);
    }
    let ns = budget.best(|round| {
        let start = Instant::now();
        let mut passes = 0u64;
        while passes == 0 || start.elapsed() < round {
            for f in frames {
                black_box(run(black_box(f))?);
            }
            passes += 1;
        }
        Ok(start.elapsed().as_nanos() as f64 / (passes * frames.len() as u64) as f64)
    })?;
    Ok(Cell::new(
        ns,
        load,
        insns.len(),
        format!("{digest:016x}"),
        format!("{accepted}/{}", frames.len()),
    ))
}

/// The classic section.
fn classic_section(budget: Budget) -> Section {
    let engines = classic_engines();
    let names: Vec<String> = engines.iter().map(|e| e.name().to_string()).collect();
    let lib = match bpfconf_engines::pcap::ffi::libpcap() {
        Ok(lib) => lib,
        Err(why) => {
            return Section::skipped(
                "classic",
                "ns/packet",
                names,
                format!("the filters are compiled by libpcap: {why}"),
            )
        }
    };
    let frames = frames::frames();
    let sizes = frames.iter().map(Vec::len);
    let (min, max) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
    let mut s = Section::new(
        "classic",
        "ns/packet",
        format!(
            "{} tcpdump filters compiled by {} for EN10MB (optimised, as tcpdump -d), BSD dialect; {} frames of {min}..{max} bytes ({})",
            frames::EXPRESSIONS.len(),
            lib.version(),
            frames.len(),
            frames::DESCRIPTION
        ),
        names,
    );
    for expr in frames::EXPRESSIONS {
        let insns = match bpfconf_runner::input::compile_expr(expr, DLT_EN10MB) {
            Ok(i) => i,
            Err(e) => {
                s.rows.push(Row::failed(expr, format!("{e:#}")));
                continue;
            }
        };
        let mut row = Row::new(expr, insns.len());
        for e in &engines {
            row.push(e.name(), classic_cell(e.as_ref(), &insns, &frames, budget));
        }
        s.rows.push(row);
    }
    s
}

/// One eBPF measurement.
fn ebpf_cell(
    engine: &dyn EbpfBench,
    insns: &[ebpf::Insn],
    mem: &[u8],
    budget: Budget,
) -> Result<Cell, String> {
    let load = mean_time(budget.round / 4, || {
        let t = Instant::now();
        let run = black_box(engine.prepare(insns, mem.len())?);
        let d = t.elapsed();
        Ok(run.load_time().unwrap_or(d))
    })?;
    let mut run = engine.prepare(insns, mem.len())?;
    let mut out = mem.to_vec();
    let r0 = run.run(&mut out)?;
    let digest = fnv(fnv(FNV_START, &r0.to_le_bytes()), &out);
    let ns = budget.best(|round| run.time(mem, round))?;
    Ok(Cell::new(
        ns,
        load,
        insns.len(),
        format!("{digest:016x}"),
        format!("r0 = {r0:#x}"),
    ))
}

/// The eBPF section.
fn ebpf_section(budget: Budget) -> Section {
    let engines = ebpf_engines();
    let names = engines.iter().map(|e| e.name().to_string()).collect();
    let mut s = Section::new(
        "ebpf",
        "ns/run",
        "an ALU-heavy and a memory-heavy program; the kernel's time is BPF_PROG_TEST_RUN's duration with repeat (XDP, with bpfconf's wrapper)".into(),
        names,
    );
    for p in programs::PROGRAMS {
        let insns = match ebpf::asm::assemble(p.asm) {
            Ok(i) => i,
            Err(e) => {
                s.rows.push(Row::failed(p.name, e.to_string()));
                continue;
            }
        };
        let mem = programs::memory(p.mem_len);
        let mut row = Row::new(p.name, insns.len());
        row.description = Some(p.description.to_string());
        for e in &engines {
            row.push(e.name(), ebpf_cell(e.as_ref(), &insns, &mem, budget));
        }
        s.rows.push(row);
    }
    s
}

/// Output format of `bpfconf bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFormat {
    /// Tables and ratios.
    Human,
    /// One JSON object.
    Json,
}

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchIsa {
    /// Classic filters only.
    Classic,
    /// eBPF programs only.
    Ebpf,
}

/// Options of `bpfconf bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A short run: 10 ms per measurement, one round (for tests and a first look).
    #[arg(long)]
    pub quick: bool,
    /// Time per round of each measurement, in milliseconds (default 200; 10 with --quick).
    #[arg(long)]
    pub time_ms: Option<u64>,
    /// Only one instruction set.
    #[arg(long, value_enum)]
    pub isa: Option<BenchIsa>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: BenchFormat,
}

/// Runs `bpfconf bench`; fails if two engines disagree on a result.
pub fn main(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let budget = Budget {
        round: Duration::from_millis(a.time_ms.unwrap_or(if a.quick { 10 } else { 200 })),
        rounds: if a.quick { 1 } else { 3 },
    };
    let mut r = Report::new(a.quick, budget.round, budget.rounds);
    if a.isa != Some(BenchIsa::Ebpf) {
        r.sections.push(classic_section(budget));
    }
    if a.isa != Some(BenchIsa::Classic) {
        r.sections.push(ebpf_section(budget));
    }
    r.finish(TARGETS);
    match a.format {
        BenchFormat::Human => print!("{}", r.human()),
        BenchFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
    }
    Ok(if r.agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
