//! Realisability: which skb each kernel path presents to the filter, and whether one of them
//! matches what a case declares.
//!
//! Only what the program can observe is compared: the ancillary loads it contains, and the
//! link-layer / network header offsets when it has an absolute negative-offset load
//! (`SKF_LL_OFF`/`SKF_NET_OFF` bases, `ld` or `ldx msh`) that can reach into the packet.
//! `ld [x + k]` is not analysed (X is only known at run time). `poff` is derived by the
//! kernel's flow dissector and cannot be set: the declared value is accepted and the run
//! confirms or refutes it; a program reading it is taken to observe the protocol and the
//! network header, which the dissector starts from. `rand` cannot be fixed, so a program reading it needs `ctx.rand`
//! unset. `cpu` is realised on every path by pinning the injecting thread.

use bpfconf_spec::case::{Ctx, Dev};
use bpfconf_spec::cbpf::ext::{Ext, NegBase, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{Insn, Op};
use std::collections::BTreeSet;

/// The largest packet any path injects.
pub const MAX_PACKET: usize = 65535;
/// The largest frame the outgoing path sends: the TAP's default 1500-byte MTU plus the
/// Ethernet header (larger frames would also be non-linear skbs, on which `nla` returns 0).
pub const MAX_TX_FRAME: usize = 1514;
/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;
/// `ARPHRD_NONE` (TUN devices).
pub const ARPHRD_NONE: u16 = 0xfffe;
/// `PACKET_OUTGOING`.
pub const PACKET_OUTGOING: u8 = 4;
/// The MAC address the engine gives its TAP device (locally administered, unicast; the
/// bytes after `02` spell "bpfc"). Frames sent to it are `PACKET_HOST`.
pub const TAP_MAC: [u8; 6] = [0x02, b'b', b'p', b'f', b'c', 0x01];
/// The ifindex of `lo` in every network namespace (`LOOPBACK_IFINDEX`).
pub const LO_IFINDEX: u32 = 1;

/// The largest skb each path builds linear (measured on 6.18 x86-64; `nla`/`nlan` return 0 on
/// non-linear skbs, see [`linear_limit`]).
pub mod linear {
    /// AF_UNIX: `unix_dgram_sendmsg` puts bytes beyond `SKB_MAX_ALLOC` in page fragments.
    pub const UNIX: usize = 16064;
    /// TUN/TAP writes: `tun_alloc_skb` is linear only below a page (counting the headroom).
    pub const TUN_TAP: usize = 4031;
    /// Packet-socket sends (`packet_alloc_skb`): linear only below a page (with headroom).
    /// Tagged frames sent on lo are linear at every size (sent with `skb->protocol` 0x8100 or
    /// 0x88a8, they are linearised on transmit; lo's VLAN features lack scatter-gather).
    pub const PACKET_SND: usize = 4079;
}

/// One way of getting a packet in front of a socket filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// An `AF_UNIX` datagram: no device, no headers, everything zero.
    Unix,
    /// An Ethernet frame written to the engine's TAP device, seen on receive by an
    /// `AF_PACKET` socket bound to it.
    Tap,
    /// An IP-level packet written, with a `tun_pi` header fixing `skb->protocol`, to the
    /// engine's TUN device (`ARPHRD_NONE`, no link-layer header).
    Tun,
    /// An Ethernet frame sent on `lo` with an `AF_PACKET` socket, seen on receive after
    /// `loopback_xmit`; keeps the sender's `SO_MARK`.
    Lo,
    /// An Ethernet frame sent out of the TAP with an `AF_PACKET` socket, seen by another packet
    /// socket as `PACKET_OUTGOING`; `skb->protocol` and `skb->mark` are the sender's choice.
    TapOut,
}

impl Path {
    /// Every path, in the order they are tried (cheapest first).
    pub const ALL: [Path; 5] = [Path::Unix, Path::Tap, Path::Tun, Path::Lo, Path::TapOut];

    /// Short name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Path::Unix => "unix",
            Path::Tap => "tap",
            Path::Tun => "tun",
            Path::Lo => "lo",
            Path::TapOut => "tap-out",
        }
    }

    /// Whether the path needs the engine's network namespace.
    pub fn needs_netns(self) -> bool {
        self != Path::Unix
    }
}

/// What a program can observe besides the packet bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observes {
    /// Ancillary loads present in the program (`len` excluded: it is the packet length).
    pub exts: BTreeSet<Ext>,
    /// Some `SKF_LL_OFF`-based load can reach into the packet.
    pub mac_header: bool,
    /// Some `SKF_NET_OFF`-based load can reach into the packet.
    pub network_header: bool,
}

impl Observes {
    /// Scans a program for what it can observe of a packet of `len` bytes.
    pub fn of(insns: &[Insn], len: usize) -> Observes {
        let mut o = Observes::default();
        for i in insns {
            let (k, size) = match i.op() {
                Some(Op::LdAbs(s)) => (i.k, s.bytes()),
                Some(Op::LdxMsh) => (i.k, 1),
                _ => continue,
            };
            if i.op() != Some(Op::LdxMsh) && (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&k) {
                if let Some(e) = Ext::from_k(k) {
                    o.exts.insert(e);
                    if e == Ext::Poff {
                        // The flow dissector computes poff from skb->protocol and the headers
                        // at the network offset: a path presenting other values cannot give
                        // the declared payload offset.
                        o.exts.insert(Ext::Proto);
                        o.network_header = true;
                    }
                }
                continue;
            }
            if let Some((base, rel)) = NegBase::classify(k as i32) {
                // With the header at offset h >= 0 the load reads [h + rel, h + rel + size):
                // it can only succeed, and so only tell headers apart, if rel + size <= len.
                if rel as u64 + size as u64 <= len as u64 {
                    match base {
                        NegBase::Ll => o.mac_header = true,
                        NegBase::Net => o.network_header = true,
                    }
                }
            }
        }
        o
    }

    /// Whether the program reads extension `e`.
    pub fn has(&self, e: Ext) -> bool {
        self.exts.contains(&e)
    }
}

/// Facts about the engine's devices that the packet paths depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    /// ifindex of the TAP device in the engine's namespace.
    pub tap_ifindex: u32,
    /// ifindex of the TUN device.
    pub tun_ifindex: u32,
    /// Whether the outgoing path is usable (IPv6 could be disabled, so the TAP sends nothing
    /// of its own).
    pub tap_out: Result<(), String>,
    /// Whether the loopback path is usable (lo is up and has no addresses, so nothing answers
    /// injected frames).
    pub lo: Result<(), String>,
}

/// The EtherType-derived `skb->protocol`, as `eth_type_trans()` (and `vlan_set_encap_proto()`
/// after a tag is stripped) computes it: the EtherType if >= 0x0600, else `ETH_P_802_3` if the
/// two payload bytes are `ff ff` (raw IPX), else `ETH_P_802_2`.
pub fn eth_protocol(frame: &[u8]) -> u16 {
    let ty = u16::from_be_bytes([frame[12], frame[13]]);
    if ty >= 0x0600 {
        ty
    } else if frame.get(14..16) == Some(&[0xff, 0xff]) {
        0x0001
    } else {
        0x0004
    }
}

/// `pkt_type` from the destination MAC for a device with address `own` and broadcast
/// address `bcast`.
fn eth_pkt_type(frame: &[u8], own: [u8; 6], bcast: [u8; 6]) -> u8 {
    let dst = &frame[..6];
    if dst == own {
        0
    } else if dst[0] & 1 == 1 {
        if dst == bcast {
            1
        } else {
            2
        }
    } else {
        3
    }
}

fn is_vlan_tpid(t: u16) -> bool {
    t == 0x8100 || t == 0x88a8
}

/// Constraints shared by the paths that receive an Ethernet frame: size, and tags the
/// kernel would strip.
fn eth_rx_frame(p: &[u8], ctx: &Ctx) -> Result<(), String> {
    if p.len() < ETH_HLEN {
        return Err(format!(
            "needs an Ethernet frame of at least 14 bytes (the packet has {})",
            p.len()
        ));
    }
    let ty = u16::from_be_bytes([p[12], p[13]]);
    if ctx.vlan_present {
        if !is_vlan_tpid(ctx.vlan_tpid) {
            return Err(format!(
                "ctx.vlan_tpid = {:#06x}: the receive path strips only 802.1Q (0x8100) and 802.1ad (0x88a8) tags",
                ctx.vlan_tpid
            ));
        }
        if p.len() < ETH_HLEN + 2 {
            return Err(
                "a tagged frame needs 2 bytes after the EtherType (skb_vlan_untag pulls VLAN_HLEN + 2 and drops shorter frames)"
                    .into(),
            );
        }
        if p.len() + 4 > MAX_PACKET {
            return Err(format!(
                "the packet has {} bytes; at most {} can carry a tag",
                p.len(),
                MAX_PACKET - 4
            ));
        }
    } else if is_vlan_tpid(ty) {
        return Err(format!(
            "bytes 12..14 are {ty:#06x}, a VLAN tag the receive path would strip before the filter runs (declare ctx.vlan_present instead)"
        ));
    }
    Ok(())
}

/// The `sll_protocol` the tap-out path sends with, which becomes `skb->protocol`: the declared
/// protocol, except 0 and `ETH_P_ALL`, which `packet_snd` would replace with the frame's
/// EtherType; those become 0x88b5 (IEEE local experimental), so a program that reads `proto`
/// cannot be realised with them.
pub fn tx_protocol(declared: u16) -> u16 {
    if declared == 0 || declared == 3 {
        0x88b5
    } else {
        declared
    }
}

/// The skb context the kernel presents on `path` for packet `p`, given the declared `ctx`
/// (settable fields take the declared value). `Err` if the path cannot carry this packet.
pub fn present(path: Path, p: &[u8], ctx: &Ctx, devs: Option<&Devices>) -> Result<Ctx, String> {
    if p.len() > MAX_PACKET {
        return Err(format!(
            "the packet has {} bytes; the engine injects at most {MAX_PACKET}",
            p.len()
        ));
    }
    let mut k = Ctx {
        cpu: ctx.cpu,
        poff: ctx.poff,
        ..Ctx::default()
    };
    if path == Path::Unix {
        // unix_dgram_sendmsg allocates the skb with no headroom: the network header offset is
        // 0 (skb->head == skb->data), the MAC header is unset.
        k.network_header = Some(0);
        return Ok(k);
    }
    let devs = devs.ok_or("the engine's network namespace is not set up")?;
    let vlan = |k: &mut Ctx| {
        k.vlan_present = ctx.vlan_present;
        k.vlan_tci = ctx.vlan_tci;
        k.vlan_tpid = ctx.vlan_tpid;
    };
    match path {
        Path::Unix => unreachable!(),
        Path::Tap => {
            eth_rx_frame(p, ctx)?;
            k.protocol = eth_protocol(p);
            k.pkt_type = eth_pkt_type(p, TAP_MAC, [0xff; 6]);
            k.dev = Some(Dev {
                ifindex: devs.tap_ifindex,
                hatype: ARPHRD_ETHER,
            });
            // tun_get_user: skb_record_rx_queue(skb, 0) stores queue index + 1.
            k.queue_mapping = 1;
            vlan(&mut k);
            k.mac_header = Some(0);
            k.network_header = Some(ETH_HLEN as u32);
        }
        Path::Tun => {
            if p.is_empty() {
                return Err("needs at least 1 byte (the TUN device drops empty packets)".into());
            }
            if is_vlan_tpid(ctx.protocol) {
                return Err(format!(
                    "ctx.protocol = {:#06x}: the receive path would try to strip a VLAN tag",
                    ctx.protocol
                ));
            }
            k.protocol = ctx.protocol;
            k.dev = Some(Dev {
                ifindex: devs.tun_ifindex,
                hatype: ARPHRD_NONE,
            });
            k.queue_mapping = 1;
            k.mac_header = Some(0);
            k.network_header = Some(0);
        }
        Path::Lo => {
            devs.lo.clone()?;
            eth_rx_frame(p, ctx)?;
            k.protocol = eth_protocol(p);
            // lo's address and broadcast address are both all-zero: ff:ff:ff:ff:ff:ff is
            // PACKET_MULTICAST there, never PACKET_BROADCAST.
            k.pkt_type = eth_pkt_type(p, [0; 6], [0; 6]);
            k.dev = Some(Dev {
                ifindex: LO_IFINDEX,
                hatype: ARPHRD_LOOPBACK,
            });
            k.mark = ctx.mark;
            vlan(&mut k);
            k.mac_header = Some(0);
            k.network_header = Some(ETH_HLEN as u32);
        }
        Path::TapOut => {
            devs.tap_out.clone()?;
            if p.len() < ETH_HLEN || p.len() > MAX_TX_FRAME {
                return Err(format!(
                    "sends frames of 14..={MAX_TX_FRAME} bytes (the packet has {})",
                    p.len()
                ));
            }
            k.protocol = tx_protocol(ctx.protocol);
            k.pkt_type = PACKET_OUTGOING;
            k.dev = Some(Dev {
                ifindex: devs.tap_ifindex,
                hatype: ARPHRD_ETHER,
            });
            k.mark = ctx.mark;
            k.mac_header = Some(0);
            k.network_header = Some(ETH_HLEN as u32);
        }
    }
    Ok(k)
}

/// The largest packet `path` delivers as a linear skb, in bytes of the packet as the case
/// declares it (a VLAN tag the engine inserts counts against the frame it writes).
pub fn linear_limit(path: Path, vlan: bool) -> usize {
    let tag = if vlan { 4 } else { 0 };
    match path {
        Path::Unix => linear::UNIX,
        Path::Tap => linear::TUN_TAP - tag,
        Path::Tun => linear::TUN_TAP,
        Path::Lo if vlan => MAX_PACKET - 4,
        Path::Lo => linear::PACKET_SND,
        Path::TapOut => MAX_TX_FRAME,
    }
}

/// `nla`/`nlan` return 0 on a non-linear skb (`bpf_skb_get_nlattr*`: `skb_is_nonlinear`), which
/// the declared context cannot express: such programs need a packet the path keeps linear.
/// (Packet loads, negative offsets included, read page fragments too since Linux 6.15.)
fn linear_check(path: Path, obs: &Observes, p: &[u8], ctx: &Ctx) -> Option<String> {
    let limit = linear_limit(
        path,
        ctx.vlan_present && matches!(path, Path::Tap | Path::Lo),
    );
    ((obs.has(Ext::Nla) || obs.has(Ext::Nlan)) && p.len() > limit).then(|| {
        format!(
            "the program uses nla/nlan, which return 0 on a non-linear skb, and the {} path builds skbs of more than {limit} bytes non-linear (the packet has {})",
            path.name(),
            p.len()
        )
    })
}

/// The value an ancillary load returns for context `c`; `None` = the program returns 0.
/// `None` for extensions that are not compared (computed from packet or registers, or
/// accepted as declared).
fn anc(c: &Ctx, e: Ext) -> Option<Option<u32>> {
    Some(match e {
        Ext::Proto => Some(c.protocol as u32),
        Ext::Type => Some(c.pkt_type as u32),
        Ext::Ifidx => c.dev.map(|d| d.ifindex),
        Ext::Hatype => c.dev.map(|d| d.hatype as u32),
        Ext::Mark => Some(c.mark),
        Ext::Queue => Some(c.queue_mapping as u32),
        Ext::Rxhash => Some(c.rxhash),
        Ext::VlanTci => Some(if c.vlan_present { c.vlan_tci as u32 } else { 0 }),
        Ext::VlanPr => Some(c.vlan_present as u32),
        Ext::VlanTpid => Some(if c.vlan_present {
            c.vlan_tpid as u32
        } else {
            0
        }),
        Ext::Len | Ext::Nla | Ext::Nlan | Ext::Cpu | Ext::XorX | Ext::Poff | Ext::Rand => {
            return None
        }
    })
}

/// How an ancillary value is shown in messages: the ctx field behind it and its value.
fn describe(c: &Ctx, e: Ext) -> String {
    let dev = |f: &str, v: Option<u32>| match v {
        Some(v) => format!("ctx.{f} = {v}"),
        None => "no device (ctx.ifindex unset)".to_string(),
    };
    match e {
        Ext::Proto => format!("ctx.protocol = {:#06x}", c.protocol),
        Ext::Type => format!("ctx.pkt_type = {}", c.pkt_type),
        Ext::Ifidx => dev("ifindex", c.dev.map(|d| d.ifindex)),
        Ext::Hatype => dev("hatype", c.dev.map(|d| d.hatype as u32)),
        Ext::Mark => format!("ctx.mark = {}", c.mark),
        Ext::Queue => format!("ctx.queue_mapping = {}", c.queue_mapping),
        Ext::Rxhash => format!("ctx.rxhash = {:#x}", c.rxhash),
        Ext::VlanTci => format!(
            "ctx.vlan_tci = {:#06x}",
            if c.vlan_present { c.vlan_tci } else { 0 }
        ),
        Ext::VlanPr => format!("ctx.vlan_present = {}", c.vlan_present),
        Ext::VlanTpid => format!(
            "ctx.vlan_tpid = {:#06x}",
            if c.vlan_present { c.vlan_tpid } else { 0 }
        ),
        _ => format!("ctx ({})", e.name()),
    }
}

/// Why `path` presents the value it does for extension `e`.
fn why(path: Path, e: Ext) -> &'static str {
    use Ext::*;
    use Path::*;
    match (path, e) {
        (Unix, Ifidx | Hatype) => "an AF_UNIX skb has no device: the load ends the program, returning A",
        (Unix, VlanTci | VlanPr | VlanTpid) => "an AF_UNIX skb carries no VLAN tag",
        (Unix, _) => "an AF_UNIX datagram has every skb field zero",
        (Tap | Lo, Proto) => "eth_type_trans() derives it from the frame's EtherType",
        (Tap, Type) => "derived from the destination MAC (02:62:70:66:63:01 host, ff:..:ff broadcast, multicast bit, else other host)",
        (Lo, Type) => "derived from the destination MAC (00:00:00:00:00:00 host, multicast bit incl. ff:..:ff multicast, else other host)",
        (Tap | TapOut, Ifidx | Hatype) => "the engine's TAP device (Ethernet)",
        (Tun, Ifidx | Hatype) => "the engine's TUN device (ARPHRD_NONE)",
        (Lo, Ifidx | Hatype) => "the loopback device (ARPHRD_LOOPBACK)",
        (Tap | Tun, Mark) => "frames written to a TUN/TAP carry no mark",
        (Tap | Tun, Queue) => "tun_get_user records receive queue 0, stored as queue_mapping 1",
        (Lo | TapOut, Queue) => "a single-queue transmit leaves queue_mapping 0",
        (_, Rxhash) => "no flow hash is computed on this path (no RPS, single queue)",
        (Tun | TapOut, VlanTci | VlanPr | VlanTpid) => "no VLAN tag is stripped on this path",
        (Tun, Type) => "a TUN device delivers every packet as PACKET_HOST",
        (TapOut, Type) => "frames seen on transmit are PACKET_OUTGOING",
        (Tun, Proto) => "set from the tun_pi header; 0x8100/0x88a8 would be taken for a VLAN tag",
        (TapOut, Proto) => "the sender's sll_protocol; 0 and ETH_P_ALL would be replaced by the EtherType",
        _ => "fixed on this path",
    }
}

/// Compares what `path` presents with what the case declares, on the observable fields only.
/// Returns every declared field the path cannot realise, each naming the field and why.
fn compare(path: Path, obs: &Observes, declared: &Ctx, kernel: &Ctx) -> Vec<String> {
    let mut bad = Vec::new();
    for &e in &obs.exts {
        let (Some(want), Some(got)) = (anc(declared, e), anc(kernel, e)) else {
            continue;
        };
        if want != got {
            let shown = match got {
                Some(v) => format!("{v:#x}"),
                None => "no device".into(),
            };
            bad.push(format!(
                "{}: the {} path presents {} = {} ({})",
                describe(declared, e),
                path.name(),
                e.name(),
                shown,
                why(path, e)
            ));
        }
    }
    let headers = [
        (
            obs.mac_header,
            "mac_header",
            "SKF_LL_OFF",
            declared.mac_header,
            kernel.mac_header,
        ),
        (
            obs.network_header,
            "network_header",
            "SKF_NET_OFF",
            declared.network_header,
            kernel.network_header,
        ),
    ];
    for (observed, field, base, want, got) in headers {
        if observed && want != got {
            let show = |v: Option<u32>| v.map_or("unset".to_string(), |v| v.to_string());
            bad.push(format!(
                "ctx.{field} = {}: the program loads relative to {base}, and on the {} path the header is {}",
                show(want),
                path.name(),
                match got {
                    Some(v) => format!("at packet offset {v}"),
                    None => "unset (such loads make the program return 0)".into(),
                }
            ));
        }
    }
    bad
}

/// Checks that don't depend on the path: `rand` and `cpu`.
pub fn common(obs: &Observes, ctx: &Ctx) -> Result<(), String> {
    if obs.has(Ext::Rand) {
        if let Some(v) = ctx.rand {
            return Err(format!(
                "ctx.rand = {v:#x}: the kernel's prandom_u32() cannot be fixed"
            ));
        }
    }
    if obs.has(Ext::Cpu) {
        let cpus = super::sys::allowed_cpus()
            .map_err(|e| format!("ctx.cpu: sched_getaffinity failed: {e}"))?;
        if !cpus.contains(&(ctx.cpu as usize)) {
            return Err(format!(
                "ctx.cpu = {}: this thread may only run on CPUs {:?}",
                ctx.cpu, cpus
            ));
        }
    }
    Ok(())
}

/// Picks the first path that realises the case. `devs` is consulted only when the unix path
/// does not fit; it is `Err` with the reason when the packet paths are unavailable.
pub fn choose(
    insns: &[Insn],
    packet: &[u8],
    ctx: &Ctx,
    devs: impl FnOnce() -> Result<Devices, String>,
) -> Result<Path, String> {
    let obs = Observes::of(insns, packet.len());
    common(&obs, ctx)?;
    let attempt = |path: Path, d: Option<&Devices>| match present(path, packet, ctx, d) {
        Ok(k) => {
            let mut bad = compare(path, &obs, ctx, &k);
            bad.extend(linear_check(path, &obs, packet, ctx));
            bad
        }
        Err(e) => vec![e],
    };
    let mut failures: Vec<(&str, Vec<String>)> = Vec::new();
    let unix = attempt(Path::Unix, None);
    if unix.is_empty() {
        return Ok(Path::Unix);
    }
    failures.push((Path::Unix.name(), unix));
    match devs() {
        Ok(d) => {
            for path in Path::ALL.into_iter().filter(|p| p.needs_netns()) {
                let bad = attempt(path, Some(&d));
                if bad.is_empty() {
                    return Ok(path);
                }
                failures.push((path.name(), bad));
            }
        }
        Err(e) => failures.push(("packet paths", vec![format!("unavailable: {e}")])),
    }
    Err(explain(&failures))
}

/// One message from the per-path failures: the first problem of the path that comes closest
/// (fewest problems; earlier paths win ties), then the first problem of each other path.
fn explain(failures: &[(&str, Vec<String>)]) -> String {
    let Some(best) = (0..failures.len()).min_by_key(|&i| failures[i].1.len()) else {
        return "no kernel path fits".into();
    };
    let others: Vec<String> = failures
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, (p, bad))| format!("[{p}] {}", bad[0]))
        .collect();
    let (path, bad) = &failures[best];
    format!("{} [{path}]; other paths: {}", bad[0], others.join("; "))
}
