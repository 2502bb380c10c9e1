//! Integration tests of the `pcap` engine: libpcap's real `bpf_validate`/`bpf_filter`, its crash
//! isolation, and a seeded differential run against the reference interpreter's BSD dialect.
//!
//! When libpcap is missing the tests print why and pass, unless `BPFCONF_REQUIRE_PCAP=1` (set in
//! CI), in which case they fail. Every test takes one lock: some count descriptors and children,
//! which other tests' worker processes would disturb.

use bpfconf_engines::interp::classic;
use bpfconf_engines::pcap::{isolate, Pcap};
use bpfconf_engines::{
    ClassicInput, ClassicProgram, Engine, Input, LoadError, Observed, Program, RunError,
};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::check::{check, CheckConfig};
use bpfconf_spec::cbpf::{disasm, Insn};
use bpfconf_spec::Dialect;
use std::time::{Duration, Instant};

mod support;

use support::serial;

/// The engine (with `timeout`), or `None` after printing why it is unavailable.
fn engine_with(timeout: Duration) -> Option<Pcap> {
    let e = Pcap::with_timeout(timeout);
    let availability = e.availability();
    support::available(
        e,
        availability,
        "BPFCONF_REQUIRE_PCAP",
        "the pcap engine (libpcap)",
    )
}

fn engine() -> Option<Pcap> {
    engine_with(Duration::from_secs(5))
}

fn bsd(insns: Vec<Insn>) -> Program {
    Program::Classic(ClassicProgram {
        dialect: Dialect::Bsd,
        insns,
        cop_funcs: 0,
        memwords: 16,
    })
}

fn input(packet: &[u8], wirelen: Option<u32>) -> Input {
    Input::Classic(ClassicInput {
        packet: packet.to_vec(),
        ctx: Ctx {
            wirelen,
            ..Ctx::default()
        },
    })
}

fn asm(text: &str) -> Vec<Insn> {
    bpfconf_spec::cbpf::asm::assemble(text).expect("test program assembles")
}

/// Loads and runs once.
fn run(e: &Pcap, insns: Vec<Insn>, packet: &[u8], wirelen: Option<u32>) -> Result<u64, String> {
    let mut l = e.load(&bsd(insns)).map_err(|e| e.to_string())?;
    match l.run(&input(packet, wirelen)) {
        Ok(o) => {
            assert_eq!(o.mem, None, "M[] is not observable on libpcap");
            match o.ret {
                Observed::Exact(v) => Ok(v),
                other => panic!("pcap observes exact values, got {other:?}"),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn reports_version_and_arch() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let info = e.info();
    assert_eq!(info.name, "pcap");
    assert_eq!(info.arch, std::env::consts::ARCH);
    let version = info
        .facts
        .iter()
        .find(|(k, _)| k == "libpcap")
        .map(|(_, v)| v.clone())
        .expect("libpcap fact");
    assert!(version.starts_with("libpcap version "), "{version}");
    eprintln!("{:?}", info.facts);
}

#[test]
fn only_the_bsd_dialect() {
    let _g = serial();
    let e = Pcap::new();
    let mut p = bsd(asm("ret #1"));
    assert_eq!(e.supports(&p, &input(&[], None)), Ok(()));
    for d in [Dialect::Linux, Dialect::Netbsd] {
        let Program::Classic(c) = &mut p else {
            unreachable!()
        };
        c.dialect = d;
        assert_eq!(
            e.supports(&p, &input(&[], None)),
            Err("libpcap implements the BSD dialect".into())
        );
        assert!(matches!(e.load(&p), Err(LoadError::Unsupported(_))));
    }
    let ebpf = Program::Ebpf(Default::default());
    assert!(e.supports(&ebpf, &input(&[], None)).is_err());
}

#[test]
fn validator_verdicts() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let rejected = |insns: Vec<Insn>| {
        matches!(
            e.load(&bsd(insns)),
            Err(LoadError::Rejected { rule: None, .. })
        )
    };
    assert!(rejected(vec![]), "empty program");
    assert!(rejected(asm("ld #1\nadd #1")), "last not ret");
    assert!(rejected(asm("div #0\nret a")), "division by constant 0");
    assert!(rejected(asm("ld M[16]\nret a")), "M[] index out of range");
    assert!(
        rejected(vec![Insn::new(0x15, 3, 0, 0), Insn::new(0x06, 0, 0, 0)]),
        "jump past the end"
    );
    // libpcap 1.10.3 has neither a shift-amount nor an uninitialised-memory rule.
    assert!(e.load(&bsd(asm("lsh #32\nret a"))).is_ok());
    assert!(e.load(&bsd(asm("ld M[3]\nret #1"))).is_ok());
}

#[test]
fn runs_what_libpcap_computes() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let pkt = [0xde, 0xad, 0xbe, 0xef, 0x45, 0x0f];
    assert_eq!(run(&e, asm("ret #7"), &pkt, None), Ok(7));
    assert_eq!(run(&e, asm("ld [0]\nret a"), &pkt, None), Ok(0xdead_beef));
    assert_eq!(run(&e, asm("ldh [4]\nret a"), &pkt, None), Ok(0x450f));
    // Out of the buffer: the program ends with 0.
    assert_eq!(run(&e, asm("ld [3]\nret #1"), &pkt, None), Ok(0));
    // ld len reads the wire length, loads stay bounded by the buffer.
    assert_eq!(run(&e, asm("ld len\nret a"), &pkt, Some(1500)), Ok(1500));
    assert_eq!(run(&e, asm("ld len\nret a"), &pkt, None), Ok(6));
    // Shift by X >= 32 gives 0 (Linux masks the count instead).
    assert_eq!(
        run(&e, asm("ld #3\nldx #33\nlsh x\nret a"), &pkt, None),
        Ok(0)
    );
    // X + k overflow ends the program (Linux wraps the sum).
    assert_eq!(
        run(&e, asm("ldx #0xffffffff\nldb [x + 2]\nret #1"), &pkt, None),
        Ok(0)
    );
    // An empty packet: nothing to load, ret still works.
    assert_eq!(run(&e, asm("ldb [0]\nret #1"), &[], None), Ok(0));
    assert_eq!(run(&e, asm("ret #9"), &[], None), Ok(9));
}

/// Programs libpcap 1.10.3 validates but whose run aborts or never ends: each becomes an engine
/// error, and the engine (and this process) keep working.
#[test]
fn crashes_and_hangs_become_verdicts() {
    let _g = serial();
    let Some(e) = engine_with(Duration::from_millis(300)) else {
        return;
    };
    let aborts = [
        ("ret x", vec![Insn::new(0x0e, 0, 0, 0)]),
        (
            "NetBSD cop #0",
            vec![Insn::new(0x27, 0, 0, 0), Insn::new(0x06, 0, 0, 1)],
        ),
        (
            "code 0xffff",
            vec![Insn::new(0xffff, 0, 0, 0), Insn::new(0x06, 0, 0, 1)],
        ),
    ];
    for (what, insns) in aborts {
        let Err(err) = run(&e, insns.clone(), &[1, 2, 3], None) else {
            panic!("{what}: expected a crash");
        };
        // Note: whether 1.10.3 accepted it is part of what is checked: a rejection would
        // come back as "rejected: …".
        if err.starts_with("rejected") {
            panic!("{what}: libpcap refused it ({err}); is this libpcap newer than 1.10?");
        }
        assert!(err.contains("crashed: SIGABRT"), "{what}: {err}");
    }
    let t = Instant::now();
    let err = run(&e, ja_self(), &[], None).unwrap_err();
    assert!(err.contains("timed out after 300 ms"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    eprintln!("ja -1: {:?} to time out", t.elapsed());
    // Still alive and well.
    assert_eq!(run(&e, asm("ret #5"), &[], None), Ok(5));
    // Every child was reaped.
    // SAFETY: waitpid with WNOHANG on any child only reports; status is writable.
    let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    assert!(r <= 0, "an unreaped child: {r}");
}

#[test]
fn engine_errors_are_run_errors() {
    let _g = serial();
    let Some(e) = engine_with(Duration::from_millis(300)) else {
        return;
    };
    let mut l = e.load(&bsd(vec![Insn::new(0x0e, 0, 0, 0)])).unwrap();
    match l.run(&input(&[], None)) {
        Err(RunError::Crash(m)) => assert!(m.starts_with("crashed: SIGABRT"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn isolation_reports_exit_paths() {
    let _g = serial();
    let t = Duration::from_secs(5);
    // SAFETY: the closures only compute or call async-signal-safe libc functions.
    unsafe {
        assert_eq!(
            isolate::run_once(t, b"abc", 9, |p, w| p.len() as u32 + w),
            Ok(12)
        );
        assert_eq!(
            isolate::run_once(t, &[], 0, |_, _| libc::_exit(3)),
            Err(isolate::Failure::Exited(3))
        );
        assert_eq!(
            isolate::run_once(t, &[], 0, |_, _| libc::abort()),
            Err(isolate::Failure::Signal(libc::SIGABRT))
        );
        // One worker, many calls; inputs up to its buffer size.
        let mut w =
            isolate::Worker::spawn(10, t, |p, w| p.iter().map(|&b| b as u32).sum::<u32>() + w)
                .unwrap();
        for i in 0..50u32 {
            let input = vec![1u8; i as usize * 1000];
            assert!(w.fits(input.len()));
            assert_eq!(w.call(&input, i, t), Ok(i * 1000 + i));
        }
        assert!(!w.fits(1 << 20));
        // A call that never returns: killed at the timeout, the worker is gone.
        let mut w = isolate::Worker::spawn(0, t, |p, _| {
            if p.is_empty() {
                loop {
                    std::hint::spin_loop();
                }
            }
            1
        })
        .unwrap();
        assert_eq!(w.call(b"x", 0, t), Ok(1));
        let short = Duration::from_millis(100);
        assert_eq!(
            w.call(b"", 0, short),
            Err(isolate::Failure::TimedOut(short))
        );
        assert!(!w.alive());
    }
    assert_eq!(
        isolate::Failure::Signal(libc::SIGABRT).to_string(),
        "crashed: SIGABRT (signal 6)"
    );
}

/// `ja -1` (a jump to itself; libpcap 1.10.3 accepts it) and the `ret` every program ends with.
fn ja_self() -> Vec<Insn> {
    vec![Insn::new(0x05, 0, 0, 0xffff_ffff), Insn::new(0x06, 0, 0, 0)]
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn no_descriptor_leaks() {
    let _g = serial();
    let Some(e) = engine_with(Duration::from_millis(200)) else {
        return;
    };
    let before = open_fds();
    {
        let mut ok = e.load(&bsd(asm("ld len\nret a"))).unwrap();
        let mut bad = e.load(&bsd(vec![Insn::new(0x0e, 0, 0, 0)])).unwrap();
        for i in 0..100u32 {
            let pkt = vec![0u8; i as usize];
            assert_eq!(
                ok.run(&input(&pkt, None)).unwrap().ret,
                Observed::Exact(i as u64)
            );
            assert!(bad.run(&input(&pkt, None)).is_err());
        }
        // A packet larger than the worker's buffer: a bigger worker replaces it.
        let big = vec![0u8; 1 << 20];
        assert_eq!(
            ok.run(&input(&big, None)).unwrap().ret,
            Observed::Exact(1 << 20)
        );
        assert!(e
            .load(&bsd(ja_self()))
            .unwrap()
            .run(&input(&[], None))
            .is_err());
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
}

/// Fork-per-run cost, printed (run with --nocapture to see it). The bound only catches a
/// pathological regression.
#[test]
fn run_cost() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let mut l = e
        .load(&bsd(asm("ldh [12]\njeq #0x800, ok\nret #0\nok: ret #-1")))
        .unwrap();
    let pkt = vec![0u8; 64];
    let n = 500;
    let t = Instant::now();
    for _ in 0..n {
        l.run(&input(&pkt, None)).unwrap();
    }
    let per = t.elapsed() / n;
    eprintln!("pcap: {per:?} per run of a loaded program (one worker, {n} runs)");
    assert!(per < Duration::from_millis(50), "{per:?} per run");
    // As the spec runs it: load, fork a worker, run once, kill it.
    let t = Instant::now();
    for _ in 0..n {
        let mut l = e.load(&bsd(asm("ld len\nret a"))).unwrap();
        l.run(&input(&pkt, None)).unwrap();
    }
    let per = t.elapsed() / n;
    eprintln!("pcap: {per:?} per load + first run (a fresh worker each, {n} runs)");
    assert!(per < Duration::from_millis(50), "{per:?} per load and run");
    let t = Instant::now();
    for _ in 0..20 {
        let mut l = e.load(&bsd(vec![Insn::new(0x0e, 0, 0, 0)])).unwrap();
        assert!(l.run(&input(&pkt, None)).is_err());
    }
    eprintln!("pcap: {:?} per aborting run", t.elapsed() / 20);
}

/// libpcap 1.10.x does not bound backward jumps: a loop of 100 backward `ja`s runs to the end
/// and returns 100. (libpcap master ends a run with 0 after MAX_BACKWARD_JUMPS = 64 backward
/// jumps; the reference interpreter's BSD dialect currently models master here, and returns 0.)
#[test]
fn backward_jumps_are_unbounded_in_libpcap_1_10() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let version = bpfconf_engines::pcap::ffi::libpcap()
        .unwrap()
        .version()
        .to_string();
    if !version.starts_with("libpcap version 1.10.") {
        eprintln!("skipped: {version} is not 1.10.x");
        return;
    }
    let prog = vec![
        Insn::stmt(0x01, 0),                // ldx #0
        Insn::stmt(0x87, 0),                // loop: txa
        Insn::stmt(0x04, 1),                // add #1
        Insn::stmt(0x07, 0),                // tax
        Insn::new(0x15, 1, 0, 100),         // jeq #100, done
        Insn::new(0x05, 0, 0, 0xffff_fffb), // ja loop (pc 5 + 1 - 5)
        Insn::stmt(0x16, 0),                // done: ret a
    ];
    assert_eq!(run(&e, prog, &[], None), Ok(100));
}

use support::SplitMix64 as Rng;

/// A k biased to the boundaries that matter: small offsets, packet-length neighbours,
/// shift counts around 32, wrap-around values.
fn k(r: &mut Rng, pkt_len: u32) -> u32 {
    match r.below(9) {
        0 | 1 => r.below(8) as u32,
        2 => pkt_len.wrapping_add(r.below(9) as u32).wrapping_sub(4),
        3 => r.pick(&[31, 32, 33, 63, 64]),
        4 => 0u32.wrapping_sub(r.below(8) as u32 + 1),
        5 => r.pick(&[0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0xffff_f000]),
        // Linux's negative offsets (SKF_LL_OFF, SKF_NET_OFF) and ancillary range.
        6 => r.pick(&[0xffe0_0000, 0xfff0_0000, 0xffff_f000]) + r.below(64) as u32,
        _ => r.next() as u32,
    }
}

/// Opcodes libpcap 1.10.3's `bpf_filter` implements (its switch cases), minus jumps and
/// returns, which the generator places itself.
const STRAIGHT: [u16; 40] = [
    0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, // ld
    0x01, 0x61, 0x81, 0xb1, // ldx
    0x02, 0x03, // st, stx
    0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x94, 0xa4, // alu k
    0x0c, 0x1c, 0x2c, 0x3c, 0x4c, 0x5c, 0x6c, 0x7c, 0x9c, 0xac, // alu x
    0x84, 0x07, 0x87, // neg, tax, txa
    0x06, 0x16, // ret k, ret a (mid-program)
];
const JUMPS: [u16; 9] = [0x05, 0x15, 0x25, 0x35, 0x45, 0x1d, 0x2d, 0x3d, 0x4d];

/// A random program over the implemented opcodes: M[] fully initialised first (libpcap 1.10.3
/// leaves it uninitialised, the interpreter zeroes it), forward jumps only, a return at the end.
fn random_program(r: &mut Rng, pkt_len: u32) -> Vec<Insn> {
    let mut p = Vec::new();
    for i in 0..16 {
        p.push(Insn::stmt(0x00, r.next() as u32));
        p.push(Insn::stmt(0x02, i));
    }
    p.push(Insn::stmt(0x01, k(r, pkt_len)));
    let body = 1 + r.below(14) as usize;
    let start = p.len();
    let total = start + body + 1;
    for pc in start..start + body {
        let left = (total - pc - 2) as u64; // instructions strictly after this one, minus one
        if r.below(5) == 0 {
            let code = r.pick(&JUMPS);
            if code == 0x05 {
                p.push(Insn::new(code, 0, 0, r.below(left + 1) as u32));
            } else {
                let (jt, jf) = (r.below(left + 1) as u8, r.below(left + 1) as u8);
                p.push(Insn::new(code, jt, jf, k(r, pkt_len)));
            }
            continue;
        }
        let code = r.pick(&STRAIGHT);
        let k = match code {
            0x60 | 0x61 | 0x02 | 0x03 => r.below(16) as u32,
            0x34 | 0x94 => k(r, pkt_len).max(1),
            _ => k(r, pkt_len),
        };
        p.push(Insn::stmt(code, k));
    }
    p.push(Insn::stmt(
        if r.below(2) == 0 { 0x16 } else { 0x06 },
        k(r, pkt_len),
    ));
    p
}

/// Seeded programs over every implemented opcode and boundary-biased operands: libpcap's
/// validator and interpreter must agree with the reference checker and interpreter (BSD
/// dialect) on every one.
#[test]
fn differential_against_the_reference_interpreter() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let cfg = CheckConfig {
        dialect: Dialect::Bsd,
        cop_funcs: 0,
        memwords: 16,
    };
    let mut r = Rng(0x6263_6170);
    let mut runs = 0;
    let mut mismatches = Vec::new();
    for _ in 0..1500 {
        let len = r.pick(&[0u32, 1, 2, 4, 14, 20, 33, 60]);
        let prog = random_program(&mut r, len);
        let ours = check(&prog, &cfg);
        let theirs = e.load(&bsd(prog.clone()));
        let mut loaded = match (ours, theirs) {
            (Ok(()), Ok(l)) => l,
            (Err(_), Err(LoadError::Rejected { .. })) => continue,
            (o, t) => {
                mismatches.push(format!(
                    "checker: ours {:?}, libpcap {:?}\n{}",
                    o,
                    t.err(),
                    disasm::disassemble(&prog)
                ));
                continue;
            }
        };
        for _ in 0..3 {
            let pkt: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            let wirelen = match r.below(3) {
                0 => None,
                1 => Some(len + r.below(100) as u32),
                _ => Some(r.next() as u32),
            };
            let ctx = Ctx {
                wirelen,
                ..Ctx::default()
            };
            let want = classic::run(Dialect::Bsd, &prog, &pkt, &ctx).map(|o| o.ret as u64);
            let got = loaded.run(&input(&pkt, wirelen)).map(|o| o.ret);
            runs += 1;
            if want.as_ref().ok().map(|&v| Observed::Exact(v)) != got.as_ref().ok().copied() {
                mismatches.push(format!(
                    "run: ours {want:?}, libpcap {got:?} on {:02x?} wirelen {wirelen:?}\n{}",
                    pkt,
                    disasm::disassemble(&prog)
                ));
            }
        }
    }
    eprintln!("{runs} differential runs");
    assert!(runs > 1000, "too few programs loaded: {runs}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first:\n{}",
        mismatches.len(),
        mismatches[0]
    );
}
