//! `bpfconf fuzz`: a seeded, reproducible differential campaign on the stable toolchain.
//!
//! Unit `i` of a campaign with seed `s` is generated from [`unit_seed`]`(s, i)` by the
//! generators in [`crate::gen`], run on two engines and compared with [`crate::diff`]. Units run
//! in parallel (rayon) in chunks, so a time bound stops between chunks. Every divergence is
//! (optionally) minimized with [`crate::minimize`] and written as a TOML spec case.
//!
//! For testing the campaign itself there is [`BuggyInterp`] (`buggy-interp`): the reference
//! interpreter with one deliberately injected bug (`A ^= X` / 64-bit `xor` of registers computed
//! as `or`). It is only available when the environment variable [`INJECT_BUG_ENV`] is `1`, so it
//! cannot be selected by accident.

pub mod cli;

use crate::diff::{diff_unit, Diff};
use bpfconf_engines::{
    interp::Interp, ClassicProgram, EbpfInput, EbpfProgram, Engine, EngineInfo, Input, LoadError,
    Loaded, Program,
};
use bpfconf_spec::case::{to_hex, CtxSpec};
use bpfconf_spec::Dialect;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable that enables the test-only `buggy-interp` engine when set to `1`.
pub const INJECT_BUG_ENV: &str = "BPFCONF_INJECT_BUG";

/// The instruction set a campaign generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Classic BPF programs of one dialect.
    Classic(Dialect),
    /// eBPF programs.
    Ebpf,
}

/// The reference interpreter with one injected bug, for testing the fuzzer and minimizer:
/// classic `A ^= X` (`0xac`) and eBPF `xor dst, src` 64-bit (`0xaf`) are computed as `or`.
#[derive(Debug, Default)]
pub struct BuggyInterp {
    inner: Interp,
}

impl BuggyInterp {
    /// The buggy interpreter (always constructible from code; by name only with
    /// [`INJECT_BUG_ENV`]=1).
    pub fn new() -> Self {
        BuggyInterp {
            inner: Interp::new(),
        }
    }

    /// The program with the injected bug applied (what the inner interpreter really runs).
    fn inject(program: &Program) -> Program {
        use bpfconf_spec::cbpf::{class, op, src};
        match program {
            Program::Classic(p) => {
                let mut p = p.clone();
                for i in &mut p.insns {
                    if i.code == class::ALU | op::XOR | src::X {
                        i.code = class::ALU | op::OR | src::X;
                    }
                }
                Program::Classic(p)
            }
            Program::Ebpf(p) => {
                let mut p = p.clone();
                for i in &mut p.insns {
                    if i.code == 0xaf {
                        i.code = 0x4f;
                    }
                }
                Program::Ebpf(p)
            }
        }
    }
}

impl Engine for BuggyInterp {
    fn name(&self) -> &str {
        "buggy-interp"
    }

    fn info(&self) -> EngineInfo {
        let mut i = self.inner.info();
        i.name = self.name().into();
        i
    }

    fn availability(&self) -> Result<(), String> {
        self.inner.availability()
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        self.inner.supports(&Self::inject(program), input)
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        self.inner.load(&Self::inject(program))
    }
}

/// Two engines to compare: (A, B).
pub type EnginePair = (Box<dyn Engine>, Box<dyn Engine>);

/// Resolves one engine name for fuzzing (`buggy-interp` only when [`INJECT_BUG_ENV`] is `1`)
/// and checks that it can run here.
pub fn engine(name: &str) -> Result<Box<dyn Engine>, String> {
    let e: Box<dyn Engine> = if name == "buggy-interp" {
        if std::env::var(INJECT_BUG_ENV).as_deref() != Ok("1") {
            return Err(format!(
                "`buggy-interp` is a test-only engine (set {INJECT_BUG_ENV}=1)"
            ));
        }
        Box::new(BuggyInterp::new())
    } else {
        let mut v = crate::select_engines(Some(name))?;
        if v.len() != 1 {
            return Err(format!("`{name}` names {} engines, not one", v.len()));
        }
        v.remove(0)
    };
    e.availability()
        .map_err(|why| format!("engine {} unavailable: {why}", e.name()))?;
    Ok(e)
}

/// Resolves a comma-separated list of exactly two engines (see [`engine`]).
pub fn engines(list: &str) -> Result<EnginePair, String> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.len() != 2 {
        return Err(format!(
            "--engines needs exactly two engines, got {}",
            names.len()
        ));
    }
    Ok((engine(names[0])?, engine(names[1])?))
}

/// The seed of unit `i` of a campaign seeded with `seed` (a SplitMix64 step of both).
pub fn unit_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .wrapping_add(1);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Generates the unit of a seed: a program of about `body` body instructions and its input.
pub fn unit(isa: Isa, seed: u64, body: usize) -> (Program, Input) {
    match isa {
        Isa::Classic(d) => {
            let (p, i) = crate::gen::classic::seeded_unit(seed, d, body);
            (Program::Classic(p), Input::Classic(i))
        }
        Isa::Ebpf => {
            let bytes = crate::gen::unit_bytes(seed, body);
            let mut u = arbitrary::Unstructured::new(&bytes);
            let insns = crate::gen::ebpf::program(&mut u, body).unwrap_or_else(|_| {
                vec![
                    bpfconf_spec::ebpf::Insn::new(0xb7, 0, 0, 0, 0),
                    bpfconf_spec::ebpf::Insn::new(0x95, 0, 0, 0, 0),
                ]
            });
            (
                Program::Ebpf(EbpfProgram::new(insns)),
                Input::Ebpf(EbpfInput::new(Vec::new())),
            )
        }
    }
}

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to generate.
    pub isa: Isa,
    /// Campaign seed.
    pub seed: u64,
    /// Stop after this many units (if set).
    pub count: Option<u64>,
    /// Stop after this long (if set; checked between chunks).
    pub time: Option<Duration>,
    /// Body instructions per program.
    pub body: usize,
    /// Minimize divergences before writing them.
    pub minimize: bool,
    /// Draw a progress bar (the caller decides: only on a terminal).
    pub bar: bool,
}

/// One divergence a campaign found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Unit index in the campaign.
    pub index: u64,
    /// The unit's seed.
    pub unit_seed: u64,
    /// The (possibly minimized) program.
    pub program: Program,
    /// The (possibly minimized) input.
    pub input: Input,
    /// The divergence.
    pub diff: Diff,
    /// Instructions before minimization.
    pub original_len: usize,
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Units run.
    pub units: u64,
    /// Units where both engines agreed.
    pub matched: u64,
    /// Units one engine refused.
    pub one_rejected: u64,
    /// Units both engines refused.
    pub both_rejected: u64,
    /// Units at least one engine could not run.
    pub unsupported: u64,
    /// The divergences, in unit order.
    pub found: Vec<Found>,
    /// Wall-clock time of the campaign.
    pub elapsed: Duration,
}

impl Summary {
    /// Units per second over the campaign.
    pub fn rate(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Units per parallel chunk.
const CHUNK: u64 = 2048;

/// Runs a campaign of `cfg` on engines `a` and `b`.
pub fn campaign(cfg: &Config, a: &dyn Engine, b: &dyn Engine) -> Summary {
    let start = Instant::now();
    let mut s = Summary::default();
    let limit = cfg
        .count
        .unwrap_or(if cfg.time.is_some() { u64::MAX } else { 10_000 });
    let pb = if cfg.bar {
        let pb = match cfg.count {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        if let Ok(st) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos} {msg}")
        {
            pb.set_style(st);
        }
        Some(pb)
    } else {
        None
    };
    let mut next = 0u64;
    while next < limit {
        if cfg.time.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let end = next.saturating_add(CHUNK).min(limit);
        let results: Vec<(u64, Diff)> = (next..end)
            .into_par_iter()
            .map(|i| {
                let (p, inp) = unit(cfg.isa, unit_seed(cfg.seed, i), cfg.body);
                (i, diff_unit(a, b, &p, &inp))
            })
            .collect();
        for (i, d) in results {
            s.units += 1;
            match d {
                Diff::Match => s.matched += 1,
                Diff::OneRejected { .. } => s.one_rejected += 1,
                Diff::BothRejected => s.both_rejected += 1,
                Diff::Unsupported(_) => s.unsupported += 1,
                Diff::Divergence { .. } => {
                    let us = unit_seed(cfg.seed, i);
                    let (p, inp) = unit(cfg.isa, us, cfg.body);
                    let original_len = program_len(&p);
                    let (p, inp, d) = if cfg.minimize {
                        crate::minimize::minimize(a, b, &p, &inp)
                            .map_or((p, inp, d), |m| (m.program, m.input, m.diff))
                    } else {
                        (p, inp, d)
                    };
                    s.found.push(Found {
                        index: i,
                        unit_seed: us,
                        program: p,
                        input: inp,
                        diff: d,
                        original_len,
                    });
                }
            }
        }
        next = end;
        if let Some(pb) = &pb {
            pb.set_position(next);
            pb.set_message(format!("{} divergences", s.found.len()));
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    s.elapsed = start.elapsed();
    s
}

/// The CPU time (user + system, every thread) this process has used so far, from
/// `/proc/self/stat` (in `USER_HZ` = 100 ticks per second); `None` where that file is absent.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so split after its `)`): state is
    // field 3, utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Renders a campaign's throughput: programs per second, per core (the rate over the cores the
/// threads could use: `min(threads, cores)`) and, when known, per CPU-second the process used
/// (`cpu`; kernel work done in other tasks, e.g. freeing JIT images in a kworker, is not in it).
pub fn throughput(units: u64, elapsed: Duration, threads: usize, cpu: Option<Duration>) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let used = threads.clamp(1, cores);
    let rate = units as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut t = format!(
        "{rate:.0} programs/s, {:.0} programs/s per core ({threads} thread{} on {cores} core{})",
        rate / used as f64,
        if threads == 1 { "" } else { "s" },
        if cores == 1 { "" } else { "s" },
    );
    if let Some(cpu) = cpu.filter(|c| !c.is_zero()) {
        let _ = write!(
            t,
            ", {:.0} programs per CPU-second",
            units as f64 / cpu.as_secs_f64()
        );
    }
    t
}

/// Number of instructions (slots) of a program.
pub fn program_len(p: &Program) -> usize {
    match p {
        Program::Classic(c) => c.insns.len(),
        Program::Ebpf(e) => e.insns.len(),
    }
}

/// Renders a unit as a TOML spec case named `name`, with `header` as its comment (one `#`
/// line per line). The expectation is engine A's observation (`a_side`), the reference.
pub fn case_toml(
    name: &str,
    header: &str,
    program: &Program,
    input: &Input,
    a_side: &crate::diff::Side,
) -> String {
    use crate::diff::Side;
    use bpfconf_engines::Observed;
    let mut t = String::new();
    for line in header.lines() {
        let _ = writeln!(t, "# {line}");
    }
    let _ = writeln!(t, "[[case]]\nname = \"{name}\"");
    let mut ctx_toml = None;
    match (program, input) {
        (Program::Classic(ClassicProgram { dialect, insns, .. }), Input::Classic(ci)) => {
            let _ = writeln!(t, "dialects = [\"{dialect}\"]");
            let rows: Vec<String> = insns
                .iter()
                .map(|i| format!("[{:#04x}, {}, {}, {:#x}]", i.code, i.jt, i.jf, i.k))
                .collect();
            let _ = writeln!(t, "insns = [{}]", rows.join(", "));
            let _ = writeln!(t, "packet = \"{}\"", to_hex(&ci.packet));
            let spec = CtxSpec::from(&ci.ctx);
            if spec != CtxSpec::default() {
                ctx_toml = toml::to_string(&spec).ok();
            }
        }
        (Program::Ebpf(p), inp) => {
            let _ = writeln!(t, "isa = \"ebpf\"");
            let rows: Vec<String> = p
                .insns
                .iter()
                .map(|i| {
                    format!(
                        "[{:#04x}, {}, {}, {}, {}]",
                        i.code, i.dst, i.src, i.off, i.imm
                    )
                })
                .collect();
            let _ = writeln!(t, "insns = [{}]", rows.join(", "));
            if let Input::Ebpf(e) = inp {
                if !e.mem.is_empty() {
                    let _ = writeln!(t, "mem = \"{}\"", to_hex(&e.mem));
                }
            }
        }
        _ => {}
    }
    if let Some(c) = ctx_toml {
        let _ = writeln!(t, "[case.ctx]\n{}", c.trim_end());
    }
    let _ = writeln!(t, "[case.expect]");
    let ebpf = matches!(program, Program::Ebpf(_));
    match a_side {
        Side::Ran(o) => match o.ret {
            Observed::Exact(v) if ebpf => {
                let _ = writeln!(t, "r0 = \"{v:#x}\"");
            }
            Observed::Exact(v) => {
                let _ = writeln!(t, "ret = {}", v as u32);
                if let Some(m) = &o.mem {
                    let slots: Vec<String> = m
                        .iter()
                        .enumerate()
                        .map(|(i, w)| format!("{i} = {w}"))
                        .collect();
                    let _ = writeln!(t, "mem = {{ {} }}", slots.join(", "));
                }
            }
            Observed::Delivered(_) => {
                let _ = writeln!(t, "any_ret = true");
            }
        },
        Side::Fault(_) => {
            let _ = writeln!(t, "fault = true");
        }
        _ => {
            let _ = writeln!(t, "any_ret = true");
        }
    }
    t
}

/// Writes a found divergence as `DIR/fuzz-<a>-<b>-<seed>-<index>.toml`; returns the path.
pub fn write_case(
    dir: &Path,
    a: &dyn Engine,
    b: &dyn Engine,
    cfg: &Config,
    f: &Found,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = format!("fuzz_{}_{}_{}_{}", a.name(), b.name(), cfg.seed, f.index)
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    let isa = match cfg.isa {
        Isa::Classic(d) => format!("classic --dialect {d}"),
        Isa::Ebpf => "ebpf".into(),
    };
    let header = format!(
        "Found by `bpfconf fuzz --engines {},{} --isa {isa} --seed {} --body {}` (unit {}, unit seed {:#x}).\n\
         {} vs {}: {}\n\
         {} instructions (from {}). Expectation: what {} observed.",
        a.name(),
        b.name(),
        cfg.seed,
        cfg.body,
        f.index,
        f.unit_seed,
        a.name(),
        b.name(),
        f.diff,
        program_len(&f.program),
        f.original_len,
        a.name()
    );
    let side = crate::diff::run_side(a, &f.program, &f.input);
    let text = case_toml(&name, &header, &f.program, &f.input, &side);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The engines of a cargo-fuzz differential target: `BPFCONF_FUZZ_ENGINES` (comma-separated
/// names, at least two), else `default`. A name ending in `?` is taken only when the engine is
/// available here (`interp,jit,linux?`: the kernel joins when running as root). The first
/// engine is the reference every other one is compared with. When fewer than two usable
/// engines remain, the reference interpreter against itself (with a warning), so a target
/// never fails to start.
pub fn engines_from_env(default: &str) -> Vec<Box<dyn Engine>> {
    let list = std::env::var("BPFCONF_FUZZ_ENGINES").unwrap_or_else(|_| default.to_string());
    let mut out: Vec<Box<dyn Engine>> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, optional) = match name.strip_suffix('?') {
            Some(n) => (n, true),
            None => (name, false),
        };
        match engine(name) {
            Ok(e) => out.push(e),
            Err(why) if optional => eprintln!("bpfconf fuzz target: leaving out {name}: {why}"),
            Err(why) => eprintln!("bpfconf fuzz target: {why}"),
        }
    }
    if out.len() < 2 {
        eprintln!(
            "bpfconf fuzz target: fewer than two engines in `{list}`; comparing interp with itself"
        );
        return vec![Box::new(Interp::new()), Box::new(Interp::new())];
    }
    out
}

/// The check of a cargo-fuzz differential target: runs the unit on the first engine and each
/// other one, and panics on a divergence (so libFuzzer keeps the input as an artifact). With
/// `BPFCONF_FUZZ_OUT=DIR` the unit is first written there as a TOML case for
/// `bpfconf minimize`.
pub fn check_divergences(engines: &[Box<dyn Engine>], program: &Program, input: &Input) {
    for other in engines.iter().skip(1) {
        check_divergence_of(engines[0].as_ref(), other.as_ref(), program, input);
    }
}

/// [`check_divergences`] for a pair of engines.
pub fn check_divergence(pair: &EnginePair, program: &Program, input: &Input) {
    check_divergence_of(pair.0.as_ref(), pair.1.as_ref(), program, input);
}

fn check_divergence_of(a: &dyn Engine, b: &dyn Engine, program: &Program, input: &Input) {
    let d = diff_unit(a, b, program, input);
    if !d.is_divergence() {
        return;
    }
    if let Ok(dir) = std::env::var("BPFCONF_FUZZ_OUT") {
        let _ = std::fs::create_dir_all(&dir);
        let side = crate::diff::run_side(a, program, input);
        let name = format!("libfuzzer_{}_{}", a.name(), b.name())
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let header = format!(
            "Found by a cargo-fuzz target.\n{} vs {}: {d}",
            a.name(),
            b.name()
        );
        let path = Path::new(&dir).join(format!("{name}_{}.toml", std::process::id()));
        let _ = std::fs::write(&path, case_toml(&name, &header, program, input, &side));
    }
    panic!("{} vs {}: {d}", a.name(), b.name());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(isa: Isa, count: u64) -> Config {
        Config {
            isa,
            seed: 1,
            count: Some(count),
            time: None,
            body: 16,
            minimize: false,
            bar: false,
        }
    }

    #[test]
    fn interp_agrees_with_itself() {
        let e = Interp::new();
        for isa in [
            Isa::Classic(Dialect::Linux),
            Isa::Classic(Dialect::Netbsd),
            Isa::Ebpf,
        ] {
            let s = campaign(&cfg(isa, 300), &e, &e);
            assert_eq!(s.units, 300);
            assert!(s.found.is_empty(), "{isa:?}: {:?}", s.found.first());
        }
    }

    #[test]
    fn finds_the_injected_bug_and_writes_loadable_cases() {
        let a = Interp::new();
        let b = BuggyInterp::new();
        for isa in [Isa::Classic(Dialect::Bsd), Isa::Ebpf] {
            let s = campaign(&cfg(isa, 2000), &a, &b);
            assert!(!s.found.is_empty(), "{isa:?}: injected bug not found");
            let dir = std::env::temp_dir().join(format!(
                "bpfconf-fuzz-test-{}-{}",
                std::process::id(),
                matches!(isa, Isa::Ebpf)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let path = write_case(&dir, &a, &b, &cfg(isa, 2000), &s.found[0]).unwrap();
            let r = bpfconf_spec::case::load_path(&path);
            assert!(
                r.errors.is_empty(),
                "{:?}\n{}",
                r.errors,
                std::fs::read_to_string(&path).unwrap()
            );
            assert_eq!(r.cases.len() + r.ebpf.len(), 1);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn buggy_interp_needs_the_env_switch() {
        if std::env::var(INJECT_BUG_ENV).as_deref() != Ok("1") {
            assert!(engines("interp,buggy-interp").is_err());
        }
        assert!(engines("interp").is_err());
    }

    #[test]
    fn campaigns_are_reproducible() {
        assert_eq!(unit_seed(3, 4), unit_seed(3, 4));
        assert_eq!(
            unit(Isa::Classic(Dialect::Linux), 9, 8),
            unit(Isa::Classic(Dialect::Linux), 9, 8)
        );
    }
}
