//! Inputs users already have: `bpfconf exec --expr EXPR --pcap FILE` on crafted capture files
//! (pcap and pcapng, written here with `pcap-file`), on `interp` (both dialects), `pcap` (BSD)
//! and `linux` (Linux) — every engine must accept and reject the same packets — and the whole
//! spec's BSD cases on the `pcap` engine.
//!
//! libpcap is needed for `--expr` and the `pcap` engine: without it these tests print why and
//! pass, unless `BPFCONF_REQUIRE_PCAP=1` (set in CI), in which case they fail.

mod common;

use bpfconf_runner::input::{self, LINKTYPE_RAW};
use bpfconf_runner::suite::{run_suite, Selection, Verdict};
use bpfconf_spec::case::load_path;
use bpfconf_spec::Dialect;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn pcap_required() -> bool {
    std::env::var("BPFCONF_REQUIRE_PCAP").is_ok_and(|v| v == "1")
}

/// True if libpcap is loadable; panics if it is required but missing.
fn have_libpcap() -> bool {
    match bpfconf_engines::pcap::ffi::libpcap() {
        Ok(_) => true,
        Err(e) if pcap_required() => {
            panic!("BPFCONF_REQUIRE_PCAP=1 but libpcap is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIP: libpcap unavailable: {e}");
            false
        }
    }
}

// Frame layouts of spec/cases/tools/frames.py.
const DST: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SRC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&DST[..], &SRC, &ethertype.to_be_bytes(), payload].concat()
}

fn ip4(proto: u8, payload: &[u8], frag: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend((20 + payload.len() as u16).to_be_bytes());
    h.extend([0, 0]);
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    [h, payload.to_vec()].concat()
}

fn ip6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = 0x6000_0000u32.to_be_bytes().to_vec();
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    [h, payload.to_vec()].concat()
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend([0; 8]);
    t.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(10u16.to_be_bytes());
    u.extend([0, 0, b'h', b'i']);
    u
}

/// A captured frame: bytes, wire length, and whether `tcp port 22` accepts it.
struct Frame {
    name: &'static str,
    data: Vec<u8>,
    wirelen: u32,
    port22: bool,
}

fn frames() -> Vec<Frame> {
    let f = |name, data: Vec<u8>, port22| Frame {
        name,
        wirelen: data.len() as u32,
        data,
        port22,
    };
    let syn22 = eth(0x800, &ip4(6, &tcp(1234, 22, 0x02), 0x4000));
    let mut truncated = f("v4_tcp_dport22_snap30", syn22[..30].to_vec(), false);
    truncated.wirelen = syn22.len() as u32;
    let mut snapped = f("v4_tcp_dport22_snap40", syn22[..40].to_vec(), true);
    snapped.wirelen = syn22.len() as u32;
    vec![
        f("v4_tcp_dport22_syn", syn22.clone(), true),
        f(
            "v4_tcp_sport22_ack",
            eth(0x800, &ip4(6, &tcp(22, 1234, 0x10), 0x4000)),
            true,
        ),
        f(
            "v4_tcp_80_syn",
            eth(0x800, &ip4(6, &tcp(1234, 80, 0x02), 0x4000)),
            false,
        ),
        f(
            "v4_udp_22",
            eth(0x800, &ip4(17, &udp(1234, 22), 0x4000)),
            false,
        ),
        // A non-first fragment has no TCP header: `port` requires fragment offset 0.
        f(
            "v4_tcp_22_frag",
            eth(0x800, &ip4(6, &tcp(1234, 22, 0x02), 0x2001)),
            false,
        ),
        f(
            "v6_tcp_dport22",
            eth(0x86dd, &ip6(6, &tcp(1234, 22, 0x02))),
            true,
        ),
        f(
            "arp",
            eth(
                0x806,
                &[
                    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0,
                    0, 2,
                ],
            ),
            false,
        ),
        truncated,
        snapped,
    ]
}

/// A fresh temporary directory for this test.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfconf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_pcap(path: &Path, datalink: DataLink, frames: &[Frame]) {
    let file = std::fs::File::create(path).unwrap();
    // tcpdump -r compiles for the file's snapshot length: make it the one --expr uses.
    let header = PcapHeader {
        datalink,
        snaplen: input::SNAPLEN as u32,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.wirelen, &f.data))
            .unwrap();
    }
}

fn write_pcapng(path: &Path, frames: &[Frame]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapNgWriter::new(file).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0))
        .unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_millis(i as u64),
            original_len: f.wirelen,
            data: f.data.as_slice().into(),
            options: vec![],
        })
        .unwrap();
    }
}

fn bpfconf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(args)
        .output()
        .expect("run bpfconf")
}

/// `exec --pcap` lines: (index, accepted).
fn verdicts(stdout: &str) -> Vec<(usize, bool)> {
    stdout
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let index = w.next().unwrap().parse().unwrap();
            let accepted = match w.find(|t| !t.starts_with("len=") && !t.starts_with("wirelen=")) {
                Some("accept") => true,
                Some("reject") => false,
                other => panic!("unexpected verdict {other:?} in {l:?}"),
            };
            (index, accepted)
        })
        .collect()
}

/// Runs `exec --expr 'tcp port 22' --pcap FILE` on each available engine and checks every
/// packet's verdict.
fn check_expr_on_engines(file: &Path, frames: &[Frame]) {
    let want: Vec<(usize, bool)> = frames.iter().map(|f| f.port22).enumerate().collect();
    let mut engines = vec![("interp", "linux"), ("interp", "bsd"), ("pcap", "bsd")];
    if common::linux_engine().is_some() {
        engines.push(("linux", "linux"));
    }
    let file = file.to_str().unwrap();
    for (engine, dialect) in engines {
        let out = bpfconf(&[
            "exec",
            "--engine",
            engine,
            "--dialect",
            dialect,
            "--expr",
            "tcp port 22",
            "--pcap",
            file,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{engine}/{dialect}: {stdout}\n{stderr}"
        );
        let got = verdicts(&stdout);
        for ((i, w), (_, g)) in want.iter().zip(&got) {
            assert_eq!(
                w, g,
                "{engine}/{dialect}: packet {i} ({})\n{stdout}",
                frames[*i].name
            );
        }
        assert_eq!(got.len(), want.len(), "{engine}/{dialect}:\n{stdout}");
        let accepted = want.iter().filter(|(_, a)| *a).count();
        assert!(
            stderr.contains(&format!(
                "{} packets: {accepted} accepted, {} rejected",
                want.len(),
                want.len() - accepted
            )),
            "{engine}/{dialect}: {stderr}"
        );
        eprintln!("{engine}/{dialect}:\n{stdout}");
    }
}

#[test]
fn expr_on_a_pcap_file() {
    if !have_libpcap() {
        return;
    }
    let dir = tmpdir("pcap");
    let frames = frames();
    let file = dir.join("frames.pcap");
    write_pcap(&file, DataLink::ETHERNET, &frames);
    check_expr_on_engines(&file, &frames);
    // The exact lines on libpcap: tcpdump's programs return the snapshot length.
    let out = bpfconf(&[
        "exec",
        "--engine",
        "pcap",
        "--dialect",
        "bsd",
        "--expr",
        "tcp port 22",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0 len=54 accept ret=262144");
    assert_eq!(lines[2], "2 len=54 reject ret=0");
    assert_eq!(lines[7], "7 len=30 wirelen=54 reject ret=0");
    assert_eq!(lines[8], "8 len=40 wirelen=54 accept ret=262144");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn expr_on_a_pcapng_file() {
    if !have_libpcap() {
        return;
    }
    let dir = tmpdir("pcapng");
    let frames = frames();
    let file = dir.join("frames.pcapng");
    write_pcapng(&file, &frames);
    let cap = input::read_capture(&file).unwrap();
    assert_eq!(cap.packets.len(), frames.len());
    assert_eq!(cap.common_linktype(), Some(1));
    for (p, f) in cap.packets.iter().zip(&frames) {
        assert_eq!((&p.data, p.orig_len), (&f.data, f.wirelen), "{}", f.name);
    }
    check_expr_on_engines(&file, &frames);
    let _ = std::fs::remove_dir_all(dir);
}

/// Raw-IP captures: `--expr` compiles for the file's link type (LINKTYPE_RAW → DLT_RAW) unless
/// `--linktype` says otherwise.
#[test]
fn expr_follows_the_capture_link_type() {
    if !have_libpcap() {
        return;
    }
    let dir = tmpdir("raw");
    let raw: Vec<Frame> = frames()
        .into_iter()
        .filter(|f| f.data.len() == f.wirelen as usize && f.name.starts_with("v4"))
        .map(|f| Frame {
            data: f.data[14..].to_vec(),
            wirelen: f.wirelen - 14,
            ..f
        })
        .collect();
    let file = dir.join("raw.pcap");
    write_pcap(&file, DataLink::from(LINKTYPE_RAW), &raw);
    let cap = input::read_capture(&file).unwrap();
    assert_eq!(cap.common_linktype(), Some(LINKTYPE_RAW));
    let f = file.to_str().unwrap();
    for extra in [&[][..], &["--linktype", "RAW"]] {
        let mut args = vec![
            "exec",
            "--engine",
            "pcap",
            "--dialect",
            "bsd",
            "--expr",
            "tcp port 22",
            "--pcap",
            f,
        ];
        args.extend_from_slice(extra);
        let out = bpfconf(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        let want: Vec<(usize, bool)> = raw.iter().map(|f| f.port22).enumerate().collect();
        assert_eq!(verdicts(&stdout), want, "{stdout}");
    }
    // Compiled for Ethernet instead, the program looks for an EtherType at offset 12: nothing
    // matches.
    let out = bpfconf(&[
        "exec",
        "--engine",
        "pcap",
        "--dialect",
        "bsd",
        "--expr",
        "tcp port 22",
        "--pcap",
        f,
        "--linktype",
        "EN10MB",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(verdicts(&stdout).iter().all(|(_, a)| !a), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--expr` compiles what tcpdump compiles (when tcpdump is installed).
#[test]
fn expr_matches_tcpdump() {
    if !have_libpcap() {
        return;
    }
    let dir = tmpdir("tcpdump");
    let file = dir.join("frames.pcap");
    write_pcap(&file, DataLink::ETHERNET, &frames());
    for expr in [
        "tcp port 22",
        "ip6 and udp",
        "vlan 10 and udp",
        "ether broadcast",
    ] {
        let Ok(out) = Command::new("tcpdump")
            .args(["-ddd", "-r", file.to_str().unwrap(), expr])
            .output()
        else {
            eprintln!("SKIP: tcpdump not installed");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs =
            bpfconf_spec::cbpf::formats::parse_any(&String::from_utf8_lossy(&out.stdout)).unwrap();
        let ours = input::compile_expr(expr, 1).unwrap();
        assert_eq!(ours, theirs, "{expr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn expr_errors_and_programs_from_files() {
    if !have_libpcap() {
        return;
    }
    let out = bpfconf(&["exec", "--expr", "tcp port", "--packet", "00"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--expr \"tcp port\""), "{stderr}");
    // --expr on a single --packet, like --asm.
    let syn22 = eth(0x800, &ip4(6, &tcp(1234, 22, 0x02), 0x4000));
    let hex: String = syn22.iter().map(|b| format!("{b:02x}")).collect();
    let out = bpfconf(&[
        "exec",
        "--dialect",
        "bsd",
        "--expr",
        "tcp dst port 22",
        "--packet",
        &hex,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some("ret 262144 (0x40000)"),
        "{stdout}"
    );
    // --pcap with a program from a file, JSON lines.
    let dir = tmpdir("asm");
    let pcap = dir.join("f.pcap");
    write_pcap(&pcap, DataLink::ETHERNET, &frames());
    let prog = dir.join("len.bpf");
    std::fs::write(&prog, "ld len\nret a\n").unwrap();
    let out = bpfconf(&[
        "exec",
        "--engine",
        "pcap",
        "--dialect",
        "bsd",
        "--asm",
        prog.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), frames().len());
    // ld len reads the wire length on libpcap, also for the truncated frames.
    for (l, f) in lines.iter().zip(frames()) {
        assert_eq!(l["ret"], f.wirelen, "{l}");
        assert_eq!(l["len"], f.data.len(), "{l}");
    }
    // A program libpcap aborts on: every packet is an error line, the run is a failure, the
    // runner survives.
    std::fs::write(&prog, "ret x\n").unwrap();
    let out = bpfconf(&[
        "exec",
        "--engine",
        "pcap",
        "--dialect",
        "bsd",
        "--asm",
        prog.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert_eq!(stdout.lines().count(), frames().len(), "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.contains("error: crashed: SIGABRT")),
        "{stdout}"
    );
    // A program the checker refuses: one line.
    std::fs::write(&prog, "ld #1\n").unwrap();
    let out = bpfconf(&[
        "exec",
        "--engine",
        "pcap",
        "--dialect",
        "bsd",
        "--asm",
        prog.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("rejected:"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn not_a_capture_file() {
    let dir = tmpdir("garbage");
    let f = dir.join("x.pcap");
    std::fs::write(&f, "hello, world").unwrap();
    let out = bpfconf(&["exec", "--asm", "-", "--pcap", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a pcap or pcapng file"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 7 acceptance: every BSD-dialect case of the spec passes on libpcap (none skipped).
#[test]
fn spec_bsd_cases_pass_on_pcap() {
    if !have_libpcap() {
        return;
    }
    let loaded = load_path(&common::root().join("spec/cases"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let sel = Selection {
        dialects: Some(vec![Dialect::Bsd]),
        ..Selection::default()
    };
    let engine = bpfconf_engines::engine_by_name("pcap").expect("pcap engine is built in");
    let rep = run_suite(&loaded.cases, &[engine], &sel);
    let bad: Vec<String> = rep
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| format!("{} ({}): {:?}", r.case, r.variant, r.verdict))
        .collect();
    assert!(
        rep.results.len() > 400,
        "only {} bsd cases",
        rep.results.len()
    );
    assert!(
        bad.is_empty(),
        "{} not passing:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
