//! The `bpfconf` command line: a thin layer over the runner, spec and engines libraries.

mod bench;

use anyhow::{anyhow, bail, Context, Result};
use bpfconf_engines::{
    ClassicInput, ClassicProgram, EbpfInput, EbpfProgram, Input, Observed, Program,
};
use bpfconf_runner::compare::Actual;
use bpfconf_runner::expect_fail::ExpectFail;
use bpfconf_runner::report::{self, Format, RunFormat};
use bpfconf_runner::suite::{self, Selection, Verdict};
use bpfconf_runner::{input, select_engines, select_engines_isolated, serve};
use bpfconf_spec::case::{self, CtxSpec};
use bpfconf_spec::cbpf::{disasm, formats, Insn};
use bpfconf_spec::ebpf::isa::Group;
use bpfconf_spec::Dialect;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// bpfconf: a conformance suite and differential harness for BPF.
#[derive(Parser)]
#[command(name = "bpfconf", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run spec cases (TOML files or directories) on engines and report pass/fail/skip.
    Run(RunArgs),
    /// Run one program once and print the outcome.
    Exec(ExecArgs),
    /// Answer JSON-lines requests on stdin (see the serve module docs for the protocol).
    Serve {
        /// Engine to serve.
        #[arg(long, default_value = "interp")]
        engine: String,
        /// Run the engine in this process (always the case for serve, which is what `run`
        /// starts to isolate an engine; the flag makes such command lines explicit).
        #[arg(long)]
        in_process: bool,
    },
    /// Assemble bpf_asm text and print the instructions.
    Asm {
        /// Source file (`-` for stdin).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "ddd")]
        out: OutFormat,
    },
    /// Disassemble a program (bpf_asm, tcpdump -dd/-ddd or comma form) to bpf_asm text.
    Disasm {
        /// Program file (`-` for stdin).
        file: PathBuf,
    },
    /// List engines, their architecture and whether they can run here (and why not).
    Engines,
    /// Write the JIT-porter checklist (checklist.md, .html, .json) from a run or from
    /// `run --format json` outputs, or compare two such outputs (`--compare OLD NEW`).
    Report(report::cli::ReportArgs),
    /// Differential fuzzing: generate programs from a seed, run them on two engines, write
    /// every divergence (minimized) as a TOML case.
    Fuzz(bpfconf_runner::fuzz::cli::FuzzArgs),
    /// Shrink a diverging TOML case, keeping its divergence signature.
    Minimize(bpfconf_runner::fuzz::cli::MinimizeArgs),
    /// Compile a program with our JIT and print the x86-64 code, disassembled and interleaved
    /// with the BPF instruction each block came from (like the kernel's `bpf_jit_disasm -o`).
    JitDump(JitDumpArgs),
    /// Benchmarks: interpreter vs libpcap on tcpdump filters (ns/packet), interpreter vs the
    /// kernel on eBPF programs (ns/run), load time per instruction; ratios from one run.
    Bench(bench::BenchArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Isa {
    /// Classic BPF.
    Classic,
    /// eBPF.
    Ebpf,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    /// `tcpdump -ddd`: count, then `code jt jf k` lines.
    Ddd,
    /// `tcpdump -dd`: C array.
    Dd,
    /// bpf_asm comma form.
    Comma,
}

fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn load_program(path: &Path) -> Result<Vec<Insn>> {
    let text = read_input(path)?;
    formats::parse_any(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn parse_dialects(s: &str) -> Result<Vec<Dialect>> {
    s.split(',')
        .map(|d| d.trim().parse::<Dialect>().map_err(|e| anyhow!(e)))
        .collect()
}

fn parse_groups(s: &str) -> Result<Vec<Group>> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| Group::from_name(g).ok_or_else(|| anyhow!("unknown conformance group `{g}`")))
        .collect()
}

/// Options of `bpfconf run`.
#[derive(Args)]
struct RunArgs {
    /// Engines, comma-separated (default: interp,jit,linux,pcap; `all` for every engine).
    #[arg(long)]
    engine: Option<String>,
    /// Only cases whose `group/name` matches this regex.
    #[arg(long)]
    filter: Option<String>,
    /// Leave out cases whose `group/name` matches this regex.
    #[arg(long)]
    exclude: Option<String>,
    /// Only these classic dialects, comma-separated (linux, bsd, netbsd).
    #[arg(long)]
    dialect: Option<String>,
    /// eBPF: skip programs needing a newer CPU version than this (1-4).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    cpu_version: Option<u8>,
    /// eBPF: run only programs whose instructions belong to these conformance groups
    /// (comma-separated: base32, base64, atomic32, atomic64, divmul32, divmul64, packet, callx).
    #[arg(long)]
    include_groups: Option<String>,
    /// eBPF: skip programs using any of these conformance groups.
    #[arg(long)]
    exclude_groups: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: RunFormat,
    /// Expected-failure list (TOML `[[expect_fail]]` entries: engine, case regex, optional
    /// variant, reason). An expected failure that passes fails the run.
    #[arg(long, value_name = "FILE")]
    expect_fail: Option<PathBuf>,
    /// Print every verdict, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Run these engines (comma-separated) in `bpfconf serve` child processes, restarted after
    /// a crash or a timeout (verdicts `crash`, `timeout`); engines running generated machine
    /// code (the JIT) are isolated anyway.
    #[arg(long, value_name = "LIST", conflicts_with = "in_process")]
    isolate: Option<String>,
    /// Run every engine in this process, even those isolated by default (a crash then ends
    /// the run).
    #[arg(long)]
    in_process: bool,
    /// Case files or directories (TOML cases, bpf_conformance `.data` files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn cmd_run(a: RunArgs) -> Result<ExitCode> {
    let RunArgs {
        engine,
        filter,
        exclude,
        dialect,
        cpu_version,
        include_groups,
        exclude_groups,
        format,
        expect_fail,
        verbose,
        isolate,
        in_process,
        paths,
    } = a;
    let xfail = expect_fail.as_deref().map(ExpectFail::load).transpose()?;
    let engines = select_engines_isolated(engine.as_deref(), in_process, isolate.as_deref())
        .map_err(|e| anyhow!(e))?;
    let regex = |r: Option<String>, what: &str| {
        r.map(|f| regex::Regex::new(&f))
            .transpose()
            .with_context(|| what.to_string())
    };
    let sel = Selection {
        filter: regex(filter, "--filter")?,
        exclude: regex(exclude, "--exclude")?,
        dialects: dialect.map(|d| parse_dialects(&d)).transpose()?,
        cpu_version,
        include_groups: include_groups.map(|g| parse_groups(&g)).transpose()?,
        exclude_groups: exclude_groups
            .map(|g| parse_groups(&g))
            .transpose()?
            .unwrap_or_default(),
    };
    let mut cases = Vec::new();
    let mut ebpf = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
        let r = case::load_path(p);
        cases.extend(r.cases);
        ebpf.extend(r.ebpf);
        errors.extend(r.errors);
    }
    let units = suite::units(&cases, &ebpf, &sel);
    let run = report::Run::execute(&units, &engines, errors, xfail.as_ref());
    print!("{}", run.render(format, verbose));
    for w in &run.warnings {
        eprintln!("warning: {w}");
    }
    Ok(if run.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where a program comes from (`exec`, `jit-dump`).
#[derive(Args)]
struct ProgramArgs {
    /// Dialect (classic).
    #[arg(long, default_value = "linux")]
    dialect: Dialect,
    /// Program in bpf_asm syntax (classic) or bpf_conformance syntax (`--isa ebpf`).
    #[arg(long, group = "prog")]
    asm: Option<PathBuf>,
    /// Program as `code jt jf k` quads (tcpdump -ddd, -dd or bpf_asm comma form).
    #[arg(long, group = "prog")]
    quads: Option<PathBuf>,
    /// Program compiled from a tcpdump filter expression by libpcap, e.g. `tcp port 22`.
    #[arg(long, group = "prog")]
    expr: Option<String>,
    /// Link type --expr compiles for: a DLT number or name (EN10MB, RAW, LINUX_SLL…).
    /// Default: the --pcap file's link type, else EN10MB.
    #[arg(long, requires = "expr")]
    linktype: Option<String>,
    /// Instruction set of the program: classic or ebpf.
    #[arg(long, value_enum, default_value = "classic")]
    isa: Isa,
    /// eBPF: a bpf_conformance `.data` file (program and memory).
    #[arg(long, group = "prog")]
    data: Option<PathBuf>,
    /// eBPF: an ELF object built with `clang -target bpf`; uses section `--section`.
    #[arg(long, group = "prog", requires = "section")]
    elf: Option<PathBuf>,
    /// eBPF: the ELF section holding the program (with `--elf`).
    #[arg(long, requires = "elf")]
    section: Option<String>,
}

impl ProgramArgs {
    /// True for an eBPF program (`--isa ebpf`, `--data`, `--elf`).
    fn is_ebpf(&self) -> bool {
        self.isa == Isa::Ebpf || self.data.is_some() || self.elf.is_some()
    }

    /// The program and its input: eBPF memory from `mem` (or the `.data` file), a classic
    /// packet and context from `packet` and `ctx`; `capture` gives `--expr` its link type.
    fn load(
        self,
        mem: &str,
        packet: &str,
        ctx: Option<String>,
        capture: Option<&input::Capture>,
    ) -> Result<(Program, Input)> {
        if self.is_ebpf() {
            return ebpf_exec_input(&self, mem);
        }
        let compiled = match &self.expr {
            Some(expr) => Some(input::compile_expr(
                expr,
                exec_linktype(self.linktype.as_deref(), capture)?,
            )?),
            None => None,
        };
        classic_exec_input(self.asm, self.quads, compiled, self.dialect, packet, ctx)
    }
}

/// Options of `bpfconf exec`.
#[derive(Args)]
struct ExecArgs {
    /// Engine to run on.
    #[arg(long, default_value = "interp")]
    engine: String,
    #[command(flatten)]
    prog: ProgramArgs,
    /// Run on every packet of a pcap/pcapng file (`-`: stdin) instead of --packet, printing
    /// one line per packet: index, length, verdict and return value.
    #[arg(long, conflicts_with = "packet")]
    pcap: Option<PathBuf>,
    /// Packet bytes in hex (classic).
    #[arg(long, default_value = "")]
    packet: String,
    /// Memory buffer in hex (eBPF: R1 points to it, R2 holds its length).
    #[arg(long, default_value = "")]
    mem: String,
    /// Context as inline TOML, e.g. `{ protocol = 0x800, ifindex = 2 }`.
    #[arg(long)]
    ctx: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

/// Options of `bpfconf jit-dump`.
#[derive(Args)]
struct JitDumpArgs {
    /// Engine whose code to show (only `jit` generates machine code).
    #[arg(long, default_value = "jit")]
    engine: String,
    #[command(flatten)]
    prog: ProgramArgs,
}

fn cmd_jit_dump(a: JitDumpArgs) -> Result<ExitCode> {
    if a.engine != "jit" {
        bail!(
            "engine `{}` does not generate machine code here; jit-dump shows `--engine jit`",
            a.engine
        );
    }
    let (program, _) = a.prog.load("", "", None, None)?;
    let jit = bpfconf_engines::jit::Jit::new();
    bpfconf_engines::Engine::availability(&jit).map_err(|e| anyhow!("engine jit: {e}"))?;
    match jit.listing(&program) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Builds the eBPF program and input of `bpfconf exec --isa ebpf`.
fn ebpf_exec_input(a: &ProgramArgs, mem: &str) -> Result<(Program, Input)> {
    if let (Some(f), Some(section)) = (&a.elf, &a.section) {
        let data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let insns = bpfconf_runner::elf::load_section(&data, section)
            .map_err(|e| anyhow!("{}: {e}", f.display()))?;
        let mem = case::parse_hex(mem).map_err(|e| anyhow!("--mem: {e}"))?;
        return Ok((
            Program::Ebpf(EbpfProgram::new(insns)),
            Input::Ebpf(EbpfInput::new(mem)),
        ));
    }
    let (insns, mem) = match (&a.asm, &a.data) {
        (Some(f), None) => {
            let text = read_input(f)?;
            let insns = bpfconf_spec::ebpf::asm::assemble(&text)
                .map_err(|e| anyhow!("{}: {e}", f.display()))?;
            let mem = case::parse_hex(mem).map_err(|e| anyhow!("--mem: {e}"))?;
            (insns, mem)
        }
        (None, Some(f)) => {
            let t = bpfconf_spec::ebpf::data::load_data(f)
                .map_err(|e| anyhow!("{}:{}: {}", e.path.display(), e.line, e.message))?;
            (t.program, t.mem)
        }
        _ => bail!(
            "eBPF exec takes --asm FILE or --elf FILE --section NAME (with --mem HEX), or --data FILE"
        ),
    };
    Ok((
        Program::Ebpf(EbpfProgram::new(insns)),
        Input::Ebpf(EbpfInput::new(mem)),
    ))
}

fn cmd_exec(a: ExecArgs) -> Result<ExitCode> {
    let engines = select_engines(Some(&a.engine)).map_err(|e| anyhow!(e))?;
    let engine = &engines[0];
    if a.prog.is_ebpf() && (a.prog.expr.is_some() || a.pcap.is_some()) {
        bail!("--expr and --pcap are for classic programs");
    }
    let capture = a.pcap.as_deref().map(input::read_capture).transpose()?;
    let (program, input) = a.prog.load(&a.mem, &a.packet, a.ctx, capture.as_ref())?;
    match capture {
        Some(c) => exec_capture(engine.as_ref(), &program, &c, a.format),
        None => run_exec(engine.as_ref(), &program, &input, a.format),
    }
}

/// The DLT `--expr` compiles for: `--linktype`, else the capture's, else Ethernet.
fn exec_linktype(linktype: Option<&str>, capture: Option<&input::Capture>) -> Result<i32> {
    match (linktype, capture.and_then(input::Capture::common_linktype)) {
        (Some(l), _) => input::parse_linktype(l),
        (None, Some(t)) => Ok(input::linktype_to_dlt(t)),
        (None, None) => Ok(input::LINKTYPE_ETHERNET as i32),
    }
}

/// `exec --pcap`: the program on every packet, one line each (summary on stderr). Exit 1 if
/// any packet ended in an engine error, 2 if the engine cannot take the program.
fn exec_capture(
    engine: &dyn bpfconf_engines::Engine,
    program: &Program,
    capture: &input::Capture,
    format: Format,
) -> Result<ExitCode> {
    let json = matches!(format, Format::Json);
    let results = match input::run_capture(engine, program, capture) {
        Ok(r) => r,
        Err(why) if why.starts_with("rejected") => {
            if json {
                println!("{}", serde_json::json!({ "rejected": why }));
            } else {
                println!("{why}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(why) if why.starts_with("engine error") => bail!("{why}"),
        Err(why) => {
            println!("skipped: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    for r in &results {
        println!("{}", input::render_line(r, json));
    }
    eprintln!("{}", input::summary(&results));
    let errors = results.iter().any(|r| r.label() == "error");
    Ok(if errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn classic_exec_input(
    asm_file: Option<PathBuf>,
    quads: Option<PathBuf>,
    compiled: Option<Vec<Insn>>,
    dialect: Dialect,
    packet: &str,
    ctx: Option<String>,
) -> Result<(Program, Input)> {
    let insns = match (asm_file, quads) {
        (None, None) if compiled.is_some() => compiled.unwrap_or_default(),
        (Some(a), None) => {
            let text = read_input(&a)?;
            bpfconf_spec::cbpf::asm::assemble(&text).map_err(|e| anyhow!("{}: {e}", a.display()))?
        }
        (None, Some(q)) => load_program(&q)?,
        _ => bail!("give exactly one of --asm, --quads or --expr"),
    };
    let packet = case::parse_hex(packet).map_err(|e| anyhow!("--packet: {e}"))?;
    let ctx = match ctx {
        Some(t) => {
            let spec: CtxSpec = toml::from_str(&format!("v = {t}"))
                .map(|w: std::collections::BTreeMap<String, CtxSpec>| {
                    w.into_values().next().unwrap_or_default()
                })
                .map_err(|e| anyhow!("--ctx: {}", e.message()))?;
            spec.into_ctx().map_err(|e| anyhow!("--ctx: {e}"))?
        }
        None => Default::default(),
    };
    let program = Program::Classic(ClassicProgram {
        dialect,
        insns,
        cop_funcs: ctx.cop.len(),
        memwords: ctx.memwords(),
    });
    let input = Input::Classic(ClassicInput { packet, ctx });
    Ok((program, input))
}

fn run_exec(
    engine: &dyn bpfconf_engines::Engine,
    program: &Program,
    input: &Input,
    format: Format,
) -> Result<ExitCode> {
    engine
        .availability()
        .map_err(|e| anyhow!("engine {}: {e}", engine.name()))?;
    if let Err(r) = engine.supports(program, input) {
        println!("skipped: {r}");
        return Ok(ExitCode::from(2));
    }
    let actual = match suite::execute(engine, program, input, false) {
        Ok(a) => a,
        Err(Verdict::Skip(r)) => {
            println!("skipped: {r}");
            return Ok(ExitCode::from(2));
        }
        Err(v) => bail!("{v:?}"),
    };
    let value = match &actual {
        Actual::Ran(o) if matches!(program, Program::Ebpf(_)) => match o.ret {
            Observed::Exact(v) => serde_json::json!({
                "r0": v,
                "mem": o.memory.as_ref().map(|m| case::to_hex(m)),
            }),
            Observed::Delivered(d) => serde_json::json!({"delivered": d}),
        },
        Actual::Ran(o) => match o.ret {
            Observed::Exact(v) => serde_json::json!({"ret": v, "mem": o.mem}),
            Observed::Delivered(d) => serde_json::json!({"delivered": d}),
        },
        Actual::Rejected { reason, .. } => serde_json::json!({"rejected": reason}),
        Actual::Accepted => serde_json::json!({"accepted": true}),
        Actual::Fault(f) => serde_json::json!({"fault": f}),
    };
    match format {
        Format::Json => println!("{value}"),
        Format::Human => match actual {
            Actual::Ran(o) => {
                match (program, o.ret) {
                    (Program::Ebpf(_), Observed::Exact(v)) => println!("r0 = {v} ({v:#x})"),
                    (_, ret) => println!("{}", bpfconf_runner::compare::render_observed(&ret)),
                }
                if let Some(m) = o.mem {
                    println!("M[] = {m:?}");
                }
                if let Some(m) = o.memory.filter(|m| !m.is_empty()) {
                    println!("mem = {}", case::to_hex(&m));
                }
            }
            Actual::Rejected { reason, .. } => println!("rejected: {reason}"),
            Actual::Accepted => println!("accepted"),
            Actual::Fault(f) => println!("fault: {f}"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_engines() -> ExitCode {
    for e in bpfconf_engines::all_engines() {
        let info = e.info();
        let avail = match e.availability() {
            Ok(()) => "available".to_string(),
            Err(r) => format!("unavailable: {r}"),
        };
        println!("{:8} arch={:10} {avail}", info.name, info.arch);
        for (k, v) in info.facts {
            println!("         {k} = {v}");
        }
    }
    ExitCode::SUCCESS
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Exec(a) => cmd_exec(a),
        Cmd::Serve { engine, .. } => {
            let engines = select_engines(Some(&engine)).map_err(|e| anyhow!(e))?;
            let stdin = std::io::stdin();
            serve::serve(engines[0].as_ref(), stdin.lock(), std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Asm { file, out } => {
            let text = read_input(&file)?;
            let insns = bpfconf_spec::cbpf::asm::assemble(&text)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            print!(
                "{}",
                match out {
                    OutFormat::Ddd => formats::to_ddd(&insns),
                    OutFormat::Dd => formats::to_dd(&insns),
                    OutFormat::Comma => formats::to_comma(&insns) + "\n",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Disasm { file } => {
            let insns = load_program(&file)?;
            print!("{}", disasm::disassemble(&insns));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Engines => Ok(cmd_engines()),
        Cmd::Report(a) => report::cli::main(a),
        Cmd::Fuzz(a) => bpfconf_runner::fuzz::cli::fuzz_main(a),
        Cmd::Minimize(a) => bpfconf_runner::fuzz::cli::minimize_main(a),
        Cmd::Bench(a) => bench::main(a),
        Cmd::JitDump(a) => cmd_jit_dump(a),
    }
}

/// mimalloc: allocation-heavy fuzzing runs ~10% faster than on glibc's malloc (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match real_main() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bpfconf: {e:#}");
            ExitCode::FAILURE
        }
    }
}
