//! Integration tests of the Linux kernel engine's eBPF side: programs loaded with `bpf()` and
//! run with `BPF_PROG_TEST_RUN`, checked against known results and the bpf_conformance suite.
//!
//! They need root (CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON or CAP_SYS_ADMIN). When the kernel
//! cannot run eBPF they print why and pass, unless `BPFCONF_REQUIRE_KERNEL=1` (set in CI), in
//! which case they fail. All tests take one lock: the fd-leak test counts `/proc/self/fd`,
//! which concurrent tests would disturb.

use bpfconf_engines::linux::ebpf::MAX_MEM;
use bpfconf_engines::linux::Linux;
use bpfconf_engines::{
    EbpfInput, EbpfProgram, Engine, Input, LoadError, Observed, Outcome, Program, RunError,
};
use bpfconf_spec::ebpf::data::load_data;
use bpfconf_spec::ebpf::{alu, class, jmp, mode, size, source, Insn};
use std::collections::BTreeMap;
use std::path::Path;

mod support;

use support::serial;

fn required() -> bool {
    support::required("BPFCONF_REQUIRE_KERNEL")
}

fn program(insns: &[Insn]) -> Program {
    Program::Ebpf(EbpfProgram::new(insns.to_vec()))
}

fn input(mem: &[u8]) -> Input {
    Input::Ebpf(EbpfInput::new(mem.to_vec()))
}

/// The engine, or `None` (after printing why) when the kernel cannot run eBPF here and that is
/// not required.
fn engine() -> Option<Linux> {
    let e = Linux::new();
    let availability = e.supports(&program(&[mov_k(0, 0), exit()]), &input(&[]));
    support::available(
        e,
        availability,
        "BPFCONF_REQUIRE_KERNEL",
        "the kernel eBPF engine",
    )
}

fn mov_k(dst: u8, imm: i32) -> Insn {
    Insn::new(class::ALU64 | alu::MOV | source::K, dst, 0, 0, imm)
}
fn exit() -> Insn {
    Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0)
}
fn lddw(dst: u8, v: u64) -> [Insn; 2] {
    [
        Insn::new(class::LD | mode::IMM | size::DW, dst, 0, 0, v as u32 as i32),
        Insn::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}
fn ldx(sz: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(class::LDX | mode::MEM | sz, dst, src, off, 0)
}
fn stx(sz: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(class::STX | mode::MEM | sz, dst, src, off, 0)
}

/// Loads and runs once.
fn run(e: &Linux, insns: &[Insn], mem: &[u8]) -> Result<Outcome, String> {
    let mut l = e.load(&program(insns)).map_err(|e| e.to_string())?;
    l.run(&input(mem)).map_err(|e| e.to_string())
}

fn ret(e: &Linux, insns: &[Insn], mem: &[u8]) -> u64 {
    match run(e, insns, mem).unwrap().ret {
        Observed::Exact(v) => v,
        other => panic!("not exact: {other:?}"),
    }
}

#[test]
fn full_64_bit_return_value() {
    let _g = serial();
    let Some(e) = engine() else { return };
    assert_eq!(ret(&e, &[mov_k(0, -1), exit()], &[]), u64::MAX);
    let mut p = lddw(0, 0x1234_5678_9abc_def0).to_vec();
    p.push(exit());
    assert_eq!(ret(&e, &p, &[]), 0x1234_5678_9abc_def0);
    // The high half alone, and 32-bit values with bit 31 set (no sign extension of retval).
    let mut p = lddw(0, 0x8000_0000_0000_0000).to_vec();
    p.push(exit());
    assert_eq!(ret(&e, &p, &[1, 2, 3]), 0x8000_0000_0000_0000);
    let mov32 = Insn::new(class::ALU | alu::MOV | source::K, 0, 0, 0, -2);
    assert_eq!(ret(&e, &[mov32, exit()], &[]), 0xffff_fffe);
}

#[test]
fn memory_through_r1_and_length_in_r2() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let mem: Vec<u8> = (1..=16).collect();
    // ldxdw r0, [r1+3]
    assert_eq!(
        ret(&e, &[ldx(size::DW, 0, 1, 3), exit()], &mem),
        u64::from_le_bytes(mem[3..11].try_into().unwrap())
    );
    // r0 = r2: the length, also for memories shorter than the test run's 14-byte minimum.
    let mov_r0_r2 = Insn::new(class::ALU64 | alu::MOV | source::X, 0, 2, 0, 0);
    for n in [0usize, 1, 13, 14, 100, MAX_MEM] {
        assert_eq!(ret(&e, &[mov_r0_r2, exit()], &vec![7; n]), n as u64);
    }
    // The last byte is readable, and with an empty memory R1 is 0.
    let last = [
        Insn::new(class::ALU64 | alu::ADD | source::X, 1, 2, 0, 0),
        ldx(size::B, 0, 1, -1),
        exit(),
    ];
    assert_eq!(ret(&e, &last, &[9, 8, 7]), 7);
    let r1 = Insn::new(class::ALU64 | alu::MOV | source::X, 0, 1, 0, 0);
    assert_eq!(ret(&e, &[r1, exit()], &[]), 0);
    // Stores are observed in the memory after the run.
    let st = [
        lddw(3, 0x1122_3344_5566_7788)[0],
        lddw(3, 0x1122_3344_5566_7788)[1],
        stx(size::DW, 1, 3, 2),
        mov_k(0, 5),
        exit(),
    ];
    let out = run(&e, &st, &[0; 12]).unwrap();
    assert_eq!(out.ret, Observed::Exact(5));
    assert_eq!(
        out.memory.unwrap(),
        [0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0]
    );
    // One program, several lengths: each run sees its own R2 and memory.
    let mut l = e.load(&program(&[mov_r0_r2, exit()])).unwrap();
    for n in [3usize, 40, 3, 0] {
        let out = l.run(&input(&vec![1; n])).unwrap();
        assert_eq!(out.ret, Observed::Exact(n as u64));
        assert_eq!(out.memory.unwrap(), vec![1; n]);
    }
    // Too long for the XDP test run: not realisable.
    let long = input(&vec![0; MAX_MEM + 1]);
    assert!(e.supports(&program(&[mov_r0_r2, exit()]), &long).is_err());
    assert!(matches!(l.run(&long), Err(RunError::Unsupported(_))));
}

#[test]
fn out_of_bounds_access_depends_on_the_length() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // Reading byte 8 is fine for 9 bytes, refused by the verifier for 8 (not run: skipped).
    let mut l = e.load(&program(&[ldx(size::B, 0, 1, 8), exit()])).unwrap();
    assert_eq!(l.run(&input(&[5; 9])).unwrap().ret, Observed::Exact(5));
    match l.run(&input(&[5; 8])) {
        Err(RunError::Refused(why)) => {
            assert!(why.contains("verifier"), "{why}");
            assert!(why.contains("memory of 8 bytes"), "{why}");
        }
        other => panic!("expected a verifier refusal, got {other:?}"),
    }
    // Arithmetic refused on a pointer is fine on the empty memory's R1 = 0: loaded for that.
    let mul = Insn::new(class::ALU64 | alu::MUL | source::K, 1, 0, 0, 2);
    let r0_r1 = Insn::new(class::ALU64 | alu::MOV | source::X, 0, 1, 0, 0);
    let mut l = e.load(&program(&[mul, r0_r1, exit()])).unwrap();
    assert_eq!(l.run(&input(&[])).unwrap().ret, Observed::Exact(0));
    match l.run(&input(&[1])) {
        Err(RunError::Refused(why)) => assert!(why.contains("pointer arithmetic"), "{why}"),
        other => panic!("expected a verifier refusal, got {other:?}"),
    }
    // Beyond any realisable memory: rejected at load.
    match e.load(&program(&[ldx(size::B, 0, 1, MAX_MEM as i16), exit()])) {
        Err(LoadError::Rejected { rule: None, reason }) => {
            assert!(reason.starts_with("verifier: "), "{reason}")
        }
        Err(other) => panic!("expected a rejection, got {other:?}"),
        Ok(_) => panic!("expected a rejection, got a loaded program"),
    };
}

#[test]
fn verifier_rejections() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let reject = |insns: &[Insn]| match e.load(&program(insns)) {
        Err(LoadError::Rejected { rule: None, reason }) => reason,
        Err(other) => panic!("expected a rejection, got {other:?}"),
        Ok(_) => panic!("expected a rejection, got a loaded program"),
    };
    // Reading an uninitialised register.
    let r = reject(&[
        Insn::new(class::ALU64 | alu::MOV | source::X, 0, 5, 0, 0),
        exit(),
    ]);
    assert!(
        r.starts_with("verifier: ") && r.contains("R5 !read_ok"),
        "{r}"
    );
    // Exit without setting R0.
    let r = reject(&[exit()]);
    assert!(r.contains("R0 !read_ok"), "{r}");
    // An unknown opcode.
    let r = reject(&[Insn::new(0xff, 0, 0, 0, 0), exit()]);
    assert!(r.contains("unknown opcode"), "{r}");
    // Falling off the end.
    let r = reject(&[mov_k(0, 0)]);
    assert!(r.starts_with("verifier: "), "{r}");
    // A jump before the program's first slot lands in the wrapper: still refused.
    let r = reject(&[
        Insn::new(class::JMP | jmp::JA, 0, 0, -3, 0),
        mov_k(0, 0),
        exit(),
    ]);
    assert!(r.contains("jump out of range"), "{r}");
    // A log longer than the first 1 MiB buffer (a bounded loop the verifier walks 100,000
    // times, then an uninitialised read): the reason is still the verifier's last words.
    let r = reject(&[
        mov_k(0, 0),
        Insn::new(class::ALU64 | alu::ADD | source::K, 0, 0, 0, 1),
        Insn::new(class::JMP | jmp::JLT | source::K, 0, 0, -2, 100_000),
        Insn::new(class::ALU64 | alu::MOV | source::X, 0, 5, 0, 0),
        exit(),
    ]);
    assert!(r.contains("R5 !read_ok"), "{r}");
    // Empty.
    assert!(reject(&[]).contains("empty"));
    // A reference to a map the program does not declare (maps: engines/tests/linux_maps.rs).
    let map = Insn::new(class::LD | mode::IMM | size::DW, 1, 1, 0, 3);
    let r = reject(&[map, Insn::default(), mov_k(0, 0), exit()]);
    assert!(r.contains("refers to map 3"), "{r}");
}

#[test]
fn helpers_and_local_calls() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // bpf_get_prandom_u32 (helper 7): allowed, its result is a 32-bit value.
    let call = Insn::new(class::JMP | jmp::CALL, 0, 0, 0, 7);
    let r = Insn::new(class::ALU64 | alu::RSH | source::K, 0, 0, 0, 32);
    assert_eq!(ret(&e, &[call, r, exit()], &[]), 0);
    // call local: the callee returns R1 + 1 (R1 = 41), inside the wrapper's own call.
    let p = [
        mov_k(1, 41),
        Insn::new(class::JMP | jmp::CALL, 0, 1, 0, 1),
        exit(),
        Insn::new(class::ALU64 | alu::MOV | source::X, 0, 1, 0, 0),
        Insn::new(class::ALU64 | alu::ADD | source::K, 0, 0, 0, 1),
        exit(),
    ];
    assert_eq!(ret(&e, &p, &[]), 42);
}

#[test]
fn engine_facts() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let info = e.info();
    let fact = |k: &str| info.facts.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    assert!(fact("ebpf").is_some_and(|v| v.contains("BPF_PROG_TYPE_XDP")));
    assert!(fact("unprivileged_bpf_disabled").is_some());
}

/// bpf_conformance's test files, run on the kernel: every program the verifier accepts must
/// give the file's result.
#[test]
fn bpf_conformance_suite() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bpf_conformance/tests"
    ));
    let Ok(entries) = std::fs::read_dir(dir) else {
        if required() {
            panic!("bpf_conformance tests not found at {}", dir.display());
        }
        eprintln!("skipped: no bpf_conformance tests at {}", dir.display());
        return;
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    let mut passed = Vec::new();
    let mut wrong = Vec::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    let mut other = Vec::new();
    for f in &files {
        let t = load_data(f).unwrap_or_else(|err| panic!("{err}"));
        let Some(want) = t.result else {
            other.push(format!("{}: no result", t.name));
            continue;
        };
        let p = program(&t.program);
        let inp = input(&t.mem);
        if let Err(why) = e.supports(&p, &inp) {
            other.push(format!("{}: unsupported: {why}", t.name));
            continue;
        }
        let mut l = match e.load(&p) {
            Ok(l) => l,
            Err(LoadError::Rejected { reason, .. }) => {
                refused.insert(t.name.clone(), reason);
                continue;
            }
            Err(err) => {
                other.push(format!("{}: {err}", t.name));
                continue;
            }
        };
        match l.run(&inp) {
            Ok(out) if out.ret == Observed::Exact(want) => passed.push(t.name.clone()),
            Ok(out) => wrong.push(format!("{}: got {:?}, want {want:#x}", t.name, out.ret)),
            Err(RunError::Refused(why)) if why.contains("verifier") => {
                refused.insert(t.name.clone(), why);
            }
            Err(err) => other.push(format!("{}: {err}", t.name)),
        }
    }
    eprintln!(
        "bpf_conformance on the kernel: {} files, {} accepted and passing, {} refused by the verifier, {} wrong, {} other",
        files.len(),
        passed.len(),
        refused.len(),
        wrong.len(),
        other.len()
    );
    for (name, why) in &refused {
        eprintln!("  refused {name}: {why}");
    }
    for o in &other {
        eprintln!("  other {o}");
    }
    assert!(wrong.is_empty(), "accepted but wrong: {wrong:#?}");
    assert!(other.is_empty(), "neither run nor refused: {other:#?}");
    // Linux 6.18 x86_64: 300 of 313 (the 13 refusals: 12 shifts by an immediate outside the
    // operand width, "invalid shift", and `callx`, "unknown opcode 8d").
    assert!(passed.len() >= 300, "only {} passed", passed.len());
}

/// Load + run cycles do not leak descriptors (programs, maps), rejected loads included.
#[test]
fn no_fd_leaks() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // Warm up (the availability probe and lazy statics).
    let _ = run(&e, &[mov_k(0, 1), exit()], &[]);
    let base = open_fds();
    let mov_r0_r2 = Insn::new(class::ALU64 | alu::MOV | source::X, 0, 2, 0, 0);
    for i in 0..5000u32 {
        if i.is_multiple_of(100) {
            // Rejected at load, and refused for one length at run time.
            assert!(e.load(&program(&[exit()])).is_err());
            let mut l = e.load(&program(&[ldx(size::B, 0, 1, 8), exit()])).unwrap();
            assert!(matches!(l.run(&input(&[0; 4])), Err(RunError::Refused(_))));
        }
        let n = (i % 40) as usize;
        let mut l = e.load(&program(&[mov_r0_r2, exit()])).unwrap();
        assert_eq!(
            l.run(&input(&vec![0; n])).unwrap().ret,
            Observed::Exact(n as u64)
        );
        if i.is_multiple_of(7) {
            assert_eq!(l.run(&input(&[1; 3])).unwrap().ret, Observed::Exact(3));
        }
    }
    assert_eq!(open_fds(), base, "descriptors leaked");
}
