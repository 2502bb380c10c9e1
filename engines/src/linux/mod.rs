//! The Linux kernel engine: classic filters attached to sockets (`SO_ATTACH_FILTER`) and run by
//! the kernel on real packets, and eBPF programs through `bpf()` (see the [`ebpf`] module: XDP
//! test runs with a wrapper that recovers the full 64-bit r0).
//!
//! # Loading
//! [`Engine::load`] attaches the program to the receiving end of an `AF_UNIX` datagram pair:
//! the kernel's checker (`bpf_check_classic`, then conversion to eBPF and JIT) runs there.
//! Pairs are pooled and reused, the new filter replacing the last one (module `unix`: a load
//! succeeds or fails exactly as on a fresh pair), so a load costs one `SO_ATTACH_FILTER`.
//! `EINVAL` is a rejection (the kernel does not say which rule; a length outside 1..=4096 is
//! named since it is the kernel's first check); `ENOMEM` is an unsupported load (a limit of this
//! machine, not a rejection: the converted program, 96 + 8 bytes per eBPF instruction, is
//! charged to the socket's option memory, capped by `net.core.optmem_max`); anything else is an
//! engine error.
//!
//! # Running: paths
//! A run observes only what a socket delivers ([`Observed::Delivered`]): nothing if the
//! program returned 0, else `min(ret, len)` bytes; M[] is not observable. Which skb the filter
//! sees depends on how the packet reaches the socket; the engine has five *paths* and takes the
//! first that presents what the case declares, comparing only what the program can observe
//! (see [`realise`]):
//!
//! | path | how | device (ifindex, hatype) | protocol | pkt_type | mark | queue | vlan | LL / NET header |
//! |---|---|---|---|---|---|---|---|---|
//! | `unix` | AF_UNIX datagram | none | 0 | 0 | 0 | 0 | none | unset / 0 |
//! | `tap` | frame written to a TAP, received | (2, 1) | EtherType rule | from dst MAC | 0 | 1 | any 802.1Q/802.1ad tag | 0 / 14 |
//! | `tun` | `tun_pi` + packet written to a TUN | (3, 0xfffe) | any but 0x8100/0x88a8 | 0 | 0 | 1 | none | 0 / 0 |
//! | `lo` | frame sent on lo by a packet socket, received | (1, 772) | EtherType rule | from dst MAC | any | 0 | any 802.1Q/802.1ad tag | 0 / 14 |
//! | `tap-out` | frame sent out of the TAP, seen outgoing | (2, 1) | any but 0 and 3 | 4 | any | 0 | none | 0 / 14 |
//!
//! Packet lengths: `unix` 0..=65535, `tap`/`lo` 14..=65535 (16 with a tag), `tun` 1..=65535,
//! `tap-out` 14..=1514. `cpu` is realised on every path by pinning the injecting thread
//! (`sched_setaffinity`): the AF_UNIX filter runs in the sender's `sendmsg`; the TUN/TAP
//! `write()` runs the receive path synchronously (`tun_rx_batched` → `netif_receive_skb`); a
//! packet-socket send runs the transmit taps in the sender's context, and lo's backlog is
//! processed on the sending CPU. `rxhash` is 0 everywhere (no RPS, single queues). `poff` comes
//! from the flow dissector and is accepted as declared (the run confirms or refutes it). `rand`
//! cannot be fixed.
//!
//! The packet paths live in a private network namespace set up, on first use, by a worker
//! thread (module `netns`); runs are serialised and made deterministic with a barrier socket
//! (module `wire`). Without `CAP_NET_ADMIN`, `/dev/net/tun` or `unshare(CLONE_NEWNET)` only
//! those paths are unavailable, and cases needing them are skipped with the reason.
//!
//! # Measured on Linux 6.18 (x86_64, JIT on), asserted by `engines/tests/linux.rs`
//! - Delivered length: `ret >= len` delivers `len` bytes, `0 < ret < len` delivers `ret`, `ret 0`
//!   drops, on every path (AF_UNIX: `sk_filter_trim_cap(.., cap 1)` trims to `max(1, ret)`;
//!   AF_PACKET: `packet_rcv` snaplen `min(len, ret)`). A zero-length AF_UNIX datagram is
//!   delivered (0 bytes) for any non-zero return.
//! - Without a device (AF_UNIX), `ifidx` and `hatype` end the program returning the current A
//!   (the converted code exits with R0 = A).
//! - AF_UNIX: the skb has no headroom, so `SKF_NET_OFF + k` reads packet byte k (network header
//!   offset 0) and `SKF_LL_OFF + k` fails (MAC header unset: the program returns 0); `SO_MARK`
//!   on the sender does not reach `skb->mark` (0); `queue`, `rxhash`, `vlan_*`, `proto`, `type`
//!   are 0; `poff` is 0 (no protocol to dissect).
//! - Linearity: `nla`/`nlan` return 0 on a non-linear skb. AF_UNIX datagrams above 16064 bytes
//!   (`SKB_MAX_ALLOC`), TUN/TAP writes above 4031 bytes and packet-socket sends above 4079 bytes
//!   are non-linear (tagged frames sent on lo are linearised and stay linear at every size);
//!   cases whose program uses `nla`/`nlan` on larger packets are not realised. Packet loads,
//!   negative offsets included, read fragments (`bpf_skb_load_helper_convert_offset` +
//!   `skb_copy_bits`, since the 2025 change "bpf: support SKF_NET_OFF and SKF_LL_OFF on skb
//!   frags").
//! - TAP receive: ifindex 2 in a fresh namespace (lo is 1, the TUN 3); `queue` = 1
//!   (`skb_record_rx_queue(skb, 0)` stores index + 1); `rxhash` 0; `mark` 0; `pkt_type` 0/1/2/3
//!   for our MAC 02:62:70:66:63:01 / ff:ff:ff:ff:ff:ff / another multicast / another unicast;
//!   `proto` is the EtherType if >= 0x0600, else 1 (`ETH_P_802_3`) if the next two bytes are
//!   `ff ff`, else 4 (`ETH_P_802_2`, also for a bare 14-byte frame); frames shorter than 14
//!   bytes are refused by `write()` (`EINVAL`); a 9000-byte frame is fine. A frame carrying an
//!   802.1Q or 802.1ad tag is untagged before AF_PACKET sees it: the filter sees the frame
//!   without the tag, `len` excludes it, `vlan_tci` = the full TCI (PCP and DEI included; 0 is
//!   still a tag), `vlan_pr` = 1, `vlan_tpid` = 0x8100 or 0x88a8, `proto` = the inner
//!   EtherType, `SKF_LL_OFF`/`SKF_NET_OFF` at 0/14 of the untagged view; with two tags only
//!   the outer one is stripped (`proto` = 0x8100). Tagged frames with fewer than 2 bytes after
//!   the inner EtherType are dropped before any socket sees them. `poff` = 54 for
//!   Ethernet/IPv4/TCP and 62 for Ethernet/IPv6/UDP.
//! - TUN (with `tun_pi`): `skb->protocol` = the header's protocol, `hatype` 0xfffe, `pkt_type`
//!   0, no link header (`SKF_LL_OFF` and `SKF_NET_OFF` both at offset 0), `queue` 1; empty
//!   packets are dropped.
//! - lo: `mark` = the sender's `SO_MARK`; `hatype` 772; `queue` 0; lo's address and broadcast
//!   address are all-zero, so 00:00:00:00:00:00 is host (0) and ff:ff:ff:ff:ff:ff is
//!   `PACKET_MULTICAST` (2), never broadcast.
//! - TAP transmit: `pkt_type` 4, `mark` = `SO_MARK`, `proto` = `sll_protocol`, `queue` 0,
//!   `SKF_LL_OFF`/`SKF_NET_OFF` at 0/14.
//! - `cpu` = the pinned CPU on every path.
//! - Closing an `AF_PACKET` socket costs an RCU grace period (`packet_release()` →
//!   `synchronize_net()`, ~20 ms here), so test sockets are pooled, not closed, when a loaded
//!   program is dropped.
//!
//! [`realise`]: self::realise

pub mod ebpf;
mod netns;
pub mod realise;
mod sys;
mod unix;
mod wire;

use crate::{
    ClassicInput, ClassicProgram, Engine, EngineInfo, Input, LoadError, Loaded, Observed, Outcome,
    Program, RunError,
};
use bpfconf_spec::cbpf::check::linux_ebpf_len;
use bpfconf_spec::cbpf::ext::Ext;
use bpfconf_spec::cbpf::{Insn, Op, MAXINSNS, MEMWORDS};
use bpfconf_spec::Dialect;
use netns::Netns;
use realise::{Devices, Observes, Path};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use unix::{TakeError, UnixPair, UnixPool};
use wire::Sock;

/// The Linux kernel as a BPF engine.
#[derive(Default)]
pub struct Linux {
    netns: OnceLock<Result<Netns, String>>,
    /// AF_UNIX pairs of dropped programs, reused by the next loads (see `unix`).
    unix_pool: UnixPool,
}

impl std::fmt::Debug for Linux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linux")
            .field("netns", &self.netns.get())
            .finish()
    }
}

impl Linux {
    /// Creates the engine. Nothing is set up until it is used.
    pub fn new() -> Self {
        Linux::default()
    }

    /// The private network namespace, set up on first use.
    fn netns(&self) -> Result<&Netns, String> {
        self.netns
            .get_or_init(Netns::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Facts about the packet paths' devices, or why those paths are unavailable. Sets the
    /// namespace up on first use.
    pub fn devices(&self) -> Result<Devices, String> {
        self.netns().map(|n| n.devs.clone())
    }

    /// The path a run of `insns` on `input` would take, or why none fits.
    pub fn path_for(&self, insns: &[Insn], input: &Input) -> Result<Path, String> {
        let Input::Classic(inp) = input else {
            return Err("a classic program needs a classic input".into());
        };
        realise::choose(insns, &inp.packet, &inp.ctx, || self.devices())
    }

    /// Diagnostic: loads `insns` and runs them once on `path`, *without* checking that the
    /// path presents the declared context. Settable fields (mark, VLAN tag, TUN/tap-out
    /// protocol, CPU) are taken from `input.ctx`; everything else is what the path presents.
    /// Used to measure what the kernel does where a case could not be realised; returns what
    /// the socket delivered (`None`: dropped).
    pub fn probe(
        &self,
        path: Path,
        insns: &[Insn],
        input: &ClassicInput,
    ) -> Result<Option<u32>, String> {
        let mut l = self.load_filter(insns).map_err(|e| e.to_string())?;
        let pin =
            Some(input.ctx.cpu).filter(|_| Observes::of(insns, input.packet.len()).has(Ext::Cpu));
        l.run_on(path, input, pin).map_err(|e| e.to_string())
    }

    fn load_filter(&self, insns: &[Insn]) -> Result<LoadedFilter<'_>, LoadError> {
        let unix = self.unix_pool.take(insns).map_err(|e| match e {
            TakeError::Create(e) => LoadError::Engine(format!(
                "cannot create an AF_UNIX socket pair: {}",
                sys::errno_name(&e)
            )),
            TakeError::Attach(e) => load_error(&e, insns),
        })?;
        Ok(LoadedFilter {
            engine: self,
            insns: insns.to_vec(),
            unix: Some(unix),
            packet: [None, None, None],
            buf: Vec::new(),
        })
    }
}

fn classic(program: &Program) -> Result<&ClassicProgram, String> {
    let Program::Classic(p) = program else {
        return Err("not a classic program".into());
    };
    if p.dialect != Dialect::Linux {
        return Err("the kernel implements only the Linux dialect".into());
    }
    if p.memwords != MEMWORDS {
        return Err(format!(
            "the kernel's memory store has {MEMWORDS} words (the program asks for {})",
            p.memwords
        ));
    }
    Ok(p)
}

/// Maps an `SO_ATTACH_FILTER` failure to a load error.
fn load_error(e: &std::io::Error, insns: &[Insn]) -> LoadError {
    match e.raw_os_error() {
        Some(libc::EINVAL) => {
            let reason = if insns.is_empty() || insns.len() > MAXINSNS {
                format!(
                    "kernel rejected the filter (EINVAL): {} instructions, outside 1..={MAXINSNS}",
                    insns.len()
                )
            } else {
                "kernel rejected the filter (EINVAL)".to_string()
            };
            LoadError::Rejected { rule: None, reason }
        }
        Some(libc::ENOMEM) => {
            // __sk_filter_charge: the converted program (a 96-byte header plus 8 bytes per eBPF
            // instruction) must stay below net.core.optmem_max.
            let bytes = 96 + 8 * linux_ebpf_len(insns);
            let optmem = sys::read_text("/proc/sys/net/core/optmem_max");
            let why = match optmem.as_deref().and_then(|s| s.parse::<usize>().ok()) {
                Some(max) if bytes >= max => format!(
                    "the converted program takes {bytes} bytes, at least net.core.optmem_max = {max}"
                ),
                Some(max) => format!(
                    "an allocation failed (the converted program takes {bytes} bytes, below net.core.optmem_max = {max})"
                ),
                None => format!("the converted program takes {bytes} bytes; net.core.optmem_max is unreadable"),
            };
            LoadError::Unsupported(format!("kernel could not take the filter (ENOMEM): {why}"))
        }
        _ => LoadError::Engine(format!("SO_ATTACH_FILTER failed: {}", sys::errno_name(e))),
    }
}

impl Engine for Linux {
    fn name(&self) -> &str {
        "linux"
    }

    fn info(&self) -> EngineInfo {
        let mut facts = vec![("kernel".to_string(), sys::kernel_release())];
        for key in [
            "bpf_jit_enable",
            "bpf_jit_harden",
            "bpf_jit_kallsyms",
            "optmem_max",
        ] {
            if let Some(v) = sys::read_text(&format!("/proc/sys/net/core/{key}")) {
                facts.push((key.to_string(), v));
            }
        }
        facts.extend(ebpf::facts());
        EngineInfo {
            name: "linux".into(),
            arch: std::env::consts::ARCH.into(),
            facts,
        }
    }

    fn availability(&self) -> Result<(), String> {
        let mut pair = UnixPair::new().map_err(|e| {
            format!(
                "cannot create an AF_UNIX socket pair: {}",
                sys::errno_name(&e)
            )
        })?;
        let accept_all = [Insn::stmt(Op::RetK.code(), u32::MAX)];
        pair.attach(&accept_all).map_err(|e| {
            format!(
                "SO_ATTACH_FILTER on an AF_UNIX socket failed: {}",
                sys::errno_name(&e)
            )
        })
    }

    fn supports(&self, program: &Program, input: &Input) -> Result<(), String> {
        if let Program::Ebpf(p) = program {
            return ebpf::supports(p, input);
        }
        let p = classic(program)?;
        self.path_for(&p.insns, input).map(drop)
    }

    fn load(&self, program: &Program) -> Result<Box<dyn Loaded + '_>, LoadError> {
        if let Program::Ebpf(_) = program {
            return ebpf::load(program);
        }
        let p = classic(program).map_err(LoadError::Unsupported)?;
        Ok(Box::new(self.load_filter(&p.insns)?))
    }
}

/// A program attached in the kernel: to an AF_UNIX receiver from the start, and to a packet
/// socket per device once a run needs one.
struct LoadedFilter<'a> {
    engine: &'a Linux,
    insns: Vec<Insn>,
    /// Always `Some` until dropped (then it goes back to the engine's pool).
    unix: Option<UnixPair>,
    packet: [Option<OwnedFd>; 3],
    buf: Vec<u8>,
}

impl LoadedFilter<'_> {
    /// Runs on `path`, pinned to CPU `pin` if given (the whole run: the filter runs in the
    /// injecting thread's context); `None` if dropped, else the bytes delivered.
    fn run_on(
        &mut self,
        path: Path,
        inp: &ClassicInput,
        pin: Option<u32>,
    ) -> Result<Option<u32>, RunError> {
        let _pin = match pin {
            Some(cpu) => Some(sys::CpuPin::new(cpu).map_err(|e| {
                RunError::Unsupported(format!(
                    "ctx.cpu = {cpu}: cannot pin to it: {}",
                    sys::errno_name(&e)
                ))
            })?),
            None => None,
        };
        let delivered = match path {
            Path::Unix => {
                self.buf.resize(inp.packet.len(), 0);
                self.unix
                    .as_mut()
                    .ok_or_else(|| RunError::Engine("the AF_UNIX pair is gone".into()))?
                    .run(&inp.packet, &mut self.buf)
                    .map_err(RunError::Engine)?
            }
            _ => self.run_packet(path, inp)?,
        };
        Ok(delivered.map(|n| n as u32))
    }

    fn run_packet(&mut self, path: Path, inp: &ClassicInput) -> Result<Option<usize>, RunError> {
        let ns = self.engine.netns().map_err(RunError::Unsupported)?;
        let sock = Sock::for_path(path)
            .ok_or_else(|| RunError::Engine("no socket for this path".into()))?;
        let slot = &mut self.packet[sock as usize];
        if slot.is_none() {
            *slot = Some(
                ns.test_socket(sock, &self.insns)
                    .map_err(RunError::Engine)?,
            );
        }
        let test = slot
            .as_ref()
            .ok_or_else(|| RunError::Engine("test socket missing".into()))?;
        let mut wire = ns
            .wire
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        wire.run(path, test, &inp.packet, &inp.ctx)
            .map_err(RunError::Engine)
    }
}

impl Drop for LoadedFilter<'_> {
    fn drop(&mut self) {
        if let Some(pair) = self.unix.take() {
            self.engine.unix_pool.put(pair);
        }
        if let Some(Ok(ns)) = self.engine.netns.get() {
            for (i, sock) in [Sock::Tap, Sock::Tun, Sock::Lo].into_iter().enumerate() {
                if let Some(fd) = self.packet[i].take() {
                    ns.recycle(sock, fd);
                }
            }
        }
    }
}

impl Loaded for LoadedFilter<'_> {
    fn run(&mut self, input: &Input) -> Result<Outcome, RunError> {
        let Input::Classic(inp) = input else {
            return Err(RunError::Engine(
                "a classic program needs a classic input".into(),
            ));
        };
        let path = self
            .engine
            .path_for(&self.insns, input)
            .map_err(RunError::Unsupported)?;
        let pin = Observes::of(&self.insns, inp.packet.len())
            .has(Ext::Cpu)
            .then_some(inp.ctx.cpu);
        Ok(Outcome::classic(
            Observed::Delivered(self.run_on(path, inp, pin)?),
            None,
        ))
    }
}
