//! Inputs users already have: packets from pcap/pcapng capture files, and classic programs
//! compiled on the fly from a tcpdump filter expression by the installed libpcap.
//!
//! - [`read_capture`] reads a pcap (any byte order, µs or ns timestamps) or pcapng file (every
//!   Enhanced, Simple and obsolete Packet block, each with its interface's link type) with the
//!   `pcap-file` crate; the format is told by the file's magic number.
//! - [`compile_expr`] is `pcap_open_dead(linktype, 262144)` + `pcap_compile` (optimised, netmask
//!   unknown, as tcpdump does) + copying the `struct bpf_program` + `pcap_freecode`, through the
//!   `pcap` engine's libpcap binding.
//! - [`run_capture`] runs one loaded program on every packet (`bpfconf exec --pcap`), and
//!   [`render_line`] prints one line per packet.

use anyhow::{anyhow, bail, Context, Result};
use bpfconf_engines::pcap::ffi::libpcap;
use bpfconf_engines::{ClassicInput, Engine, Input, Observed, Program, RunError};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::cbpf::Insn;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::io::Read;
use std::path::Path;

/// `LINKTYPE_ETHERNET` / `DLT_EN10MB`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_RAW` in capture files (raw IPv4/IPv6).
pub const LINKTYPE_RAW: u32 = 101;
/// `DLT_RAW` as `pcap_open_dead` takes it on Linux (and most systems: 12, OpenBSD 14).
pub const DLT_RAW: i32 = 12;
/// Snapshot length expressions are compiled for (tcpdump's default, `MAXIMUM_SNAPLEN`).
pub const SNAPLEN: i32 = 262_144;

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The captured bytes (what the filter may read: `buflen`).
    pub data: Vec<u8>,
    /// The length on the wire (`wirelen`; at least the captured length in sane files).
    pub orig_len: u32,
    /// The link type (`LINKTYPE_*`) of the interface the packet was captured on.
    pub linktype: u32,
}

/// The packets of a capture file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// The packets.
    pub packets: Vec<Packet>,
    /// The link type of the file (pcap) or of its first interface (pcapng), if any.
    pub linktype: Option<u32>,
}

impl Capture {
    /// The link type every packet shares, if they share one (or the file's, when empty).
    pub fn common_linktype(&self) -> Option<u32> {
        let mut types = self.packets.iter().map(|p| p.linktype);
        match types.next() {
            None => self.linktype,
            Some(first) => types.all(|t| t == first).then_some(first),
        }
    }
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [u32; 4] = [0xa1b2_c3d4, 0xd4c3_b2a1, 0xa1b2_3c4d, 0x4d3c_b2a1];

/// Reads every packet of a pcap or pcapng file (`-`: standard input).
pub fn read_capture(path: &Path) -> Result<Capture> {
    let bytes = read_bytes(path)?;
    parse_capture(&bytes).with_context(|| format!("{}", path.display()))
}

/// Parses the bytes of a pcap or pcapng file.
pub fn parse_capture(bytes: &[u8]) -> Result<Capture> {
    let Some(magic) = bytes.get(..4) else {
        bail!("not a capture file: {} bytes", bytes.len());
    };
    if magic == PCAPNG_MAGIC {
        return parse_pcapng(bytes);
    }
    let m = u32::from_le_bytes(magic.try_into().expect("4 bytes"));
    if PCAP_MAGICS.contains(&m) {
        return parse_pcap(bytes);
    }
    bail!("not a pcap or pcapng file (magic {magic:02x?})")
}

fn parse_pcap(bytes: &[u8]) -> Result<Capture> {
    let mut r = PcapReader::new(bytes).map_err(|e| anyhow!("pcap header: {e}"))?;
    let linktype = u32::from(r.header().datalink);
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| anyhow!("pcap packet {}: {e}", packets.len()))?;
        packets.push(Packet {
            data: p.data.into_owned(),
            orig_len: p.orig_len,
            linktype,
        });
    }
    Ok(Capture {
        packets,
        linktype: Some(linktype),
    })
}

fn parse_pcapng(bytes: &[u8]) -> Result<Capture> {
    let mut r = PcapNgReader::new(bytes).map_err(|e| anyhow!("pcapng section header: {e}"))?;
    // (link type, snaplen) of the current section's interfaces, in order; every section
    // starts a new list.
    let mut ifaces: Vec<(u32, u32)> = Vec::new();
    let mut first_linktype = None;
    let mut packets = Vec::new();
    while let Some(b) = r.next_block() {
        let b = b.map_err(|e| anyhow!("pcapng block after packet {}: {e}", packets.len()))?;
        let n = packets.len();
        let iface = |id: u32| {
            ifaces
                .get(id as usize)
                .copied()
                .ok_or_else(|| anyhow!("packet {n} names unknown interface {id}"))
        };
        let (data, orig_len, linktype) = match b {
            Block::SectionHeader(_) => {
                ifaces.clear();
                continue;
            }
            Block::InterfaceDescription(i) => {
                let t = u32::from(i.linktype);
                first_linktype.get_or_insert(t);
                ifaces.push((t, i.snaplen));
                continue;
            }
            Block::EnhancedPacket(p) => {
                let (t, _) = iface(p.interface_id)?;
                (p.data.into_owned(), p.original_len, t)
            }
            Block::Packet(p) => {
                let (t, _) = iface(p.interface_id.into())?;
                (p.data.into_owned(), p.original_len, t)
            }
            Block::SimplePacket(p) => {
                // Interface 0; the block holds min(original length, snaplen) bytes (plus
                // padding the reader may leave).
                let (t, snap) = iface(0)?;
                let keep = match snap {
                    0 => p.original_len,
                    s => p.original_len.min(s),
                } as usize;
                let mut d = p.data.into_owned();
                d.truncate(keep);
                (d, p.original_len, t)
            }
            _ => continue,
        };
        packets.push(Packet {
            data,
            orig_len,
            linktype,
        });
    }
    Ok(Capture {
        packets,
        linktype: first_linktype,
    })
}

/// Maps a capture file's `LINKTYPE_*` to the `DLT_*` value `pcap_open_dead` takes. They are the
/// same numbers except for the few DLTs that differ between systems; of those only raw IP is
/// common in captures.
pub fn linktype_to_dlt(linktype: u32) -> i32 {
    match linktype {
        LINKTYPE_RAW => DLT_RAW,
        t => t as i32,
    }
}

/// Parses `--linktype`: a number (a DLT_ value) or a libpcap name (`EN10MB`, `RAW`,
/// `LINUX_SLL`…, with or without `DLT_`; names need libpcap).
pub fn parse_linktype(s: &str) -> Result<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let lib = libpcap().map_err(|e| anyhow!("--linktype {s}: {e}"))?;
    let name = s.strip_prefix("DLT_").unwrap_or(s);
    lib.datalink_by_name(name)
        .ok_or_else(|| anyhow!("--linktype {s}: unknown link type name"))
}

/// Compiles a tcpdump expression into a classic program for link type `dlt` (a DLT_ value),
/// with the installed libpcap. Fails with libpcap's message on a syntax error, or why libpcap is
/// unavailable.
pub fn compile_expr(expr: &str, dlt: i32) -> Result<Vec<Insn>> {
    let lib = libpcap().map_err(|e| anyhow!("--expr needs libpcap: {e}"))?;
    lib.compile(expr, dlt, SNAPLEN)
        .map_err(|e| anyhow!("--expr {expr:?}: {e}"))
}

/// What happened to one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketVerdict {
    /// The program returned (exactly, or as a socket observed it).
    Ran(Observed),
    /// The run faulted.
    Fault(String),
    /// The engine could not realise this packet.
    Skip(String),
    /// The engine failed (crash, timeout, I/O).
    Error(String),
}

/// The result of a program on one packet of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketResult {
    /// Position in the file, from 0.
    pub index: usize,
    /// Captured length.
    pub len: usize,
    /// Wire length.
    pub wirelen: u32,
    /// What happened.
    pub verdict: PacketVerdict,
}

impl PacketResult {
    /// `accept`, `reject`, `fault`, `skip` or `error`.
    pub fn label(&self) -> &'static str {
        match &self.verdict {
            PacketVerdict::Ran(Observed::Exact(0) | Observed::Delivered(None)) => "reject",
            PacketVerdict::Ran(_) => "accept",
            PacketVerdict::Fault(_) => "fault",
            PacketVerdict::Skip(_) => "skip",
            PacketVerdict::Error(_) => "error",
        }
    }

    /// Whether the packet was accepted (`None` when the run gave no return value).
    pub fn accepted(&self) -> Option<bool> {
        match self.label() {
            "accept" => Some(true),
            "reject" => Some(false),
            _ => None,
        }
    }
}

/// Runs a classic program on every packet of a capture, loading it once. `Err` is the load
/// failure (a checker rejection reads `rejected: …`).
pub fn run_capture(
    engine: &dyn Engine,
    program: &Program,
    capture: &Capture,
) -> Result<Vec<PacketResult>, String> {
    engine
        .availability()
        .map_err(|e| format!("engine {} unavailable: {e}", engine.name()))?;
    let input_of = |p: &Packet| {
        Input::Classic(ClassicInput {
            packet: p.data.clone(),
            ctx: Ctx {
                wirelen: Some(p.orig_len),
                ..Ctx::default()
            },
        })
    };
    if let Some(first) = capture.packets.first() {
        engine.supports(program, &input_of(first))?;
    }
    let mut loaded = engine.load(program).map_err(|e| e.to_string())?;
    Ok(capture
        .packets
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let input = input_of(p);
            let verdict = match engine.supports(program, &input) {
                Err(why) => PacketVerdict::Skip(why),
                Ok(()) => match loaded.run(&input) {
                    Ok(o) => PacketVerdict::Ran(o.ret),
                    Err(RunError::Fault(f)) => PacketVerdict::Fault(f),
                    Err(RunError::Unsupported(r)) => PacketVerdict::Skip(r),
                    Err(RunError::Refused(r)) => PacketVerdict::Error(format!("refused: {r}")),
                    // A dead or hung worker is an error line; its message says which.
                    Err(RunError::Engine(e) | RunError::Crash(e) | RunError::Timeout(e)) => {
                        PacketVerdict::Error(e)
                    }
                },
            };
            PacketResult {
                index,
                len: p.data.len(),
                wirelen: p.orig_len,
                verdict,
            }
        })
        .collect())
}

/// One packet's line. Human: `INDEX len=LEN [wirelen=N] accept|reject ret=V|delivered=N|dropped`
/// (or `fault|skip|error: why`). JSON: one object per line with `index`, `len`, `wirelen`,
/// `verdict` and `ret`, `delivered` or `detail`.
pub fn render_line(r: &PacketResult, json: bool) -> String {
    if json {
        let mut v = serde_json::json!({
            "index": r.index,
            "len": r.len,
            "wirelen": r.wirelen,
            "verdict": r.label(),
        });
        match &r.verdict {
            PacketVerdict::Ran(Observed::Exact(ret)) => v["ret"] = (*ret).into(),
            PacketVerdict::Ran(Observed::Delivered(d)) => v["delivered"] = (*d).into(),
            PacketVerdict::Fault(m) | PacketVerdict::Skip(m) | PacketVerdict::Error(m) => {
                v["detail"] = m.as_str().into()
            }
        }
        return v.to_string();
    }
    let mut s = format!("{} len={}", r.index, r.len);
    if r.wirelen as usize != r.len {
        s += &format!(" wirelen={}", r.wirelen);
    }
    s += " ";
    s += r.label();
    match &r.verdict {
        PacketVerdict::Ran(Observed::Exact(ret)) => s += &format!(" ret={ret}"),
        PacketVerdict::Ran(Observed::Delivered(Some(n))) => s += &format!(" delivered={n}"),
        PacketVerdict::Ran(Observed::Delivered(None)) => s += " dropped",
        PacketVerdict::Fault(m) | PacketVerdict::Skip(m) | PacketVerdict::Error(m) => {
            s += &format!(": {m}")
        }
    }
    s
}

/// The closing line of `exec --pcap`: `N packets: A accepted, R rejected[, E errors…]`.
pub fn summary(results: &[PacketResult]) -> String {
    let count = |l: &str| results.iter().filter(|r| r.label() == l).count();
    let mut s = format!(
        "{} packets: {} accepted, {} rejected",
        results.len(),
        count("accept"),
        count("reject")
    );
    for (label, word) in [
        ("fault", "faults"),
        ("skip", "skipped"),
        ("error", "errors"),
    ] {
        let n = count(label);
        if n > 0 {
            s += &format!(", {n} {word}");
        }
    }
    s
}

/// Reads a whole file or stdin (`-`) as bytes.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_capture() {
        assert!(parse_capture(b"").is_err());
        let e = parse_capture(b"hello world").unwrap_err().to_string();
        assert!(e.contains("not a pcap or pcapng file"), "{e}");
    }

    #[test]
    fn linktypes() {
        assert_eq!(linktype_to_dlt(LINKTYPE_ETHERNET), 1);
        assert_eq!(linktype_to_dlt(LINKTYPE_RAW), DLT_RAW);
        assert_eq!(linktype_to_dlt(113), 113);
        assert_eq!(parse_linktype("1").unwrap(), 1);
    }

    #[test]
    fn lines() {
        let r = PacketResult {
            index: 3,
            len: 60,
            wirelen: 1514,
            verdict: PacketVerdict::Ran(Observed::Exact(262_144)),
        };
        assert_eq!(
            render_line(&r, false),
            "3 len=60 wirelen=1514 accept ret=262144"
        );
        let j: serde_json::Value = serde_json::from_str(&render_line(&r, true)).unwrap();
        assert_eq!(j["verdict"], "accept");
        assert_eq!(j["ret"], 262_144);
        let d = PacketResult {
            verdict: PacketVerdict::Ran(Observed::Delivered(None)),
            wirelen: 60,
            ..r.clone()
        };
        assert_eq!(render_line(&d, false), "3 len=60 reject dropped");
        let e = PacketResult {
            verdict: PacketVerdict::Error("crashed: SIGABRT (signal 6)".into()),
            ..r
        };
        assert_eq!(
            render_line(&e, false),
            "3 len=60 wirelen=1514 error: crashed: SIGABRT (signal 6)"
        );
        assert_eq!(
            summary(&[d, e]),
            "2 packets: 0 accepted, 1 rejected, 1 errors"
        );
    }
}
