//! The engine's private network namespace and the worker thread that lives in it.
//!
//! Network namespaces are per thread: a dedicated thread calls `unshare(CLONE_NEWNET)`, sets up
//! the devices, and then serves requests to create `AF_PACKET` sockets there (a socket belongs
//! to the namespace of the thread that creates it, and binds to devices of that namespace).
//! Descriptors, once created, work from any thread, so runs inject from the caller's thread,
//! serialised by the [`Wire`] lock.
//!
//! Setup, in the fresh namespace (which holds only `lo`, ifindex 1):
//! - IPv6 is disabled (`all` and `default` `disable_ipv6`) so no device sends
//!   router/neighbour solicitations of its own;
//! - TAP `bpfc0` (`IFF_TAP | IFF_NO_PI`, MAC [`TAP_MAC`], up, `IFF_NOARP`): ifindex 2;
//! - TUN `bpft0` (`IFF_TUN`, with the 4-byte `tun_pi` header, up, `IFF_NOARP`): ifindex 3;
//! - `lo` up, then its automatic 127.0.0.1/8 deleted (rtnetlink `RTM_DELADDR`) so that no
//!   injected frame is ever answered;
//! - one barrier socket per device (no filter), bound before any test socket (see `wire`);
//! - one unbound `AF_PACKET` sender socket for the lo and tap-out paths.

use super::realise::{Devices, LO_IFINDEX, TAP_MAC};
use super::sys;
use super::wire::{Sock, Wire};
use bpfconf_spec::cbpf::Insn;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// A request to the worker: create a test socket on a device, with a filter attached.
struct SocketRequest {
    ifindex: u32,
    ignore_outgoing: bool,
    insns: Vec<Insn>,
    reply: mpsc::Sender<io::Result<OwnedFd>>,
}

/// The engine's namespace: device facts, the injection state and the worker's request queue.
pub struct Netns {
    /// Facts about the devices.
    pub devs: Devices,
    /// Descriptors used to inject and observe, behind the lock that serialises runs.
    pub wire: Mutex<Wire>,
    /// Test sockets of dropped programs, per [`Sock`], kept with a drop-all filter for reuse:
    /// closing a packet socket waits for an RCU grace period (`packet_release()` calls
    /// `synchronize_net()`), tens of milliseconds each.
    pool: Mutex<[Vec<OwnedFd>; 3]>,
    requests: Option<mpsc::Sender<SocketRequest>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netns")
            .field("devs", &self.devs)
            .finish_non_exhaustive()
    }
}

impl Netns {
    /// Starts the worker thread and sets the namespace up; `Err` says why it could not be.
    pub fn start() -> Result<Netns, String> {
        let (setup_tx, setup_rx) = mpsc::channel();
        let (req_tx, req_rx) = mpsc::channel::<SocketRequest>();
        let worker = std::thread::Builder::new()
            .name("bpfconf-netns".into())
            .spawn(move || {
                let ready = setup();
                let ok = ready.is_ok();
                if setup_tx.send(ready).is_err() || !ok {
                    return;
                }
                for req in req_rx {
                    let sock = packet_socket(req.ifindex, req.ignore_outgoing, Some(&req.insns));
                    let _ = req.reply.send(sock);
                }
            })
            .map_err(|e| format!("cannot start the namespace thread: {e}"))?;
        match setup_rx.recv() {
            Ok(Ok((devs, wire))) => Ok(Netns {
                devs,
                wire: Mutex::new(wire),
                pool: Mutex::new([Vec::new(), Vec::new(), Vec::new()]),
                requests: Some(req_tx),
                worker: Some(worker),
            }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => {
                let _ = worker.join();
                Err("the namespace thread died during setup".into())
            }
        }
    }

    /// A packet socket observing `sock`'s device through filter `insns`: a pooled one with
    /// the filter swapped in, or a new one created in the namespace.
    pub fn test_socket(&self, sock: Sock, insns: &[Insn]) -> Result<OwnedFd, String> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner())[sock as usize].pop();
        if let Some(fd) = pooled {
            // Detach first so the old filter's option-memory charge is gone before the new one
            // is charged. Frames let through meanwhile are drained before every run.
            match sys::detach_filter(&fd).and_then(|()| sys::attach_filter(&fd, insns)) {
                Ok(()) => return Ok(fd),
                Err(e) => {
                    self.recycle(sock, fd);
                    return Err(format!(
                        "cannot attach the filter to the {} test socket: {}",
                        sock.name(),
                        sys::errno_name(&e)
                    ));
                }
            }
        }
        self.new_test_socket(sock, insns)
    }

    /// Takes back a test socket: it gets a filter that drops everything (so it queues nothing)
    /// and waits in the pool.
    pub fn recycle(&self, sock: Sock, fd: OwnedFd) {
        let drop_all = [Insn::stmt(bpfconf_spec::cbpf::Op::RetK.code(), 0)];
        if sys::attach_filter(&fd, &drop_all).is_ok() {
            self.pool.lock().unwrap_or_else(|p| p.into_inner())[sock as usize].push(fd);
        }
    }

    fn new_test_socket(&self, sock: Sock, insns: &[Insn]) -> Result<OwnedFd, String> {
        let (tx, rx) = mpsc::channel();
        let ifindex = match sock {
            Sock::Tap => self.devs.tap_ifindex,
            Sock::Tun => self.devs.tun_ifindex,
            Sock::Lo => LO_IFINDEX,
        };
        let req = SocketRequest {
            ifindex,
            ignore_outgoing: sock.ignores_outgoing(),
            insns: insns.to_vec(),
            reply: tx,
        };
        let requests = self
            .requests
            .as_ref()
            .ok_or("the namespace thread is gone")?;
        requests
            .send(req)
            .map_err(|_| "the namespace thread is gone".to_string())?;
        rx.recv()
            .map_err(|_| "the namespace thread did not answer".to_string())?
            .map_err(|e| {
                format!(
                    "cannot create the {} test socket: {}",
                    sock.name(),
                    sys::errno_name(&e)
                )
            })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Closing the queue ends the worker's loop; joining makes sure its descriptors are gone
        // when the engine is.
        self.requests.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Creates a packet socket on device `ifindex`, with the filter (if any) attached before it
/// is bound, so no frame is ever seen unfiltered. Runs on the worker thread. A socket created
/// with protocol 0 receives nothing until bound.
fn packet_socket(
    ifindex: u32,
    ignore_outgoing: bool,
    insns: Option<&[Insn]>,
) -> io::Result<OwnedFd> {
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    if ignore_outgoing {
        sys::setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
    }
    if let Some(insns) = insns {
        sys::attach_filter(&fd, insns)?;
    }
    sys::bind_ll_all(&fd, ifindex)?;
    Ok(fd)
}

/// Wraps an I/O error with what was being done.
fn ctx_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {}", sys::errno_name(&e))
}

/// Disables IPv6 on every present and future device of the namespace. `Ok` also when the
/// kernel has no IPv6.
fn disable_ipv6() -> Result<(), String> {
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        for conf in ["all", "default"] {
            let p = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
            sys::write_text(&p, "1").map_err(|e| format!("cannot write {p}: {e}"))?;
        }
    }
    Ok(())
}

/// `Ok` if device `name` has IPv6 disabled (or the kernel has no IPv6).
fn ipv6_off(name: &str) -> Result<(), String> {
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        return Ok(());
    }
    let p = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match sys::read_text(&p).as_deref() {
        Some("1") => Ok(()),
        other => Err(format!(
            "IPv6 is still enabled on {name} ({p} = {other:?}), so it sends frames of its own"
        )),
    }
}

/// Sets the namespace up on the worker thread: see the module documentation.
fn setup() -> Result<(Devices, Wire), String> {
    sys::unshare_netns().map_err(ctx_err("unshare(CLONE_NEWNET)"))?;
    let v6 = disable_ipv6();
    let ctl = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(ctx_err("control socket"))?;
    let (tap, tap_name) = sys::create_tun("bpfc%d", libc::IFF_TAP | libc::IFF_NO_PI)
        .map_err(ctx_err("creating the TAP device (/dev/net/tun, TUNSETIFF)"))?;
    let (tun, tun_name) = sys::create_tun("bpft%d", libc::IFF_TUN)
        .map_err(ctx_err("creating the TUN device (/dev/net/tun, TUNSETIFF)"))?;
    sys::set_if_mac(&ctl, &tap_name, TAP_MAC).map_err(ctx_err("setting the TAP's MAC address"))?;
    let up = libc::IFF_UP | libc::IFF_NOARP;
    for name in [tap_name.as_str(), tun_name.as_str(), "lo"] {
        sys::set_if_flags(&ctl, name, up).map_err(ctx_err(&format!("bringing {name} up")))?;
    }
    let lo = v6.clone().and_then(|()| ipv6_off("lo")).and_then(|()| {
        del_lo_ipv4()
            .map_err(|e| format!("cannot remove 127.0.0.1 from lo: {}", sys::errno_name(&e)))
    });
    let tap_out = v6.and_then(|()| ipv6_off(&tap_name));
    for fd in [&tap, &tun] {
        sys::set_nonblocking(fd).map_err(ctx_err("O_NONBLOCK on the TUN/TAP queue"))?;
    }
    let tap_ifindex = sys::if_index(&tap_name).map_err(ctx_err("TAP ifindex"))?;
    let tun_ifindex = sys::if_index(&tun_name).map_err(ctx_err("TUN ifindex"))?;
    let barrier = |ifindex: u32, s: Sock| {
        packet_socket(ifindex, s.ignores_outgoing(), None).map_err(ctx_err("barrier socket"))
    };
    let barriers = [
        barrier(tap_ifindex, Sock::Tap)?,
        barrier(tun_ifindex, Sock::Tun)?,
        barrier(LO_IFINDEX, Sock::Lo)?,
    ];
    let sender =
        sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(ctx_err("sender socket"))?;
    let devs = Devices {
        tap_ifindex,
        tun_ifindex,
        tap_out,
        lo,
    };
    let wire = Wire::new(
        tap,
        tun,
        sender,
        barriers,
        [tap_ifindex, tun_ifindex, LO_IFINDEX],
    );
    Ok((devs, wire))
}

/// Deletes 127.0.0.1/8 from lo with an rtnetlink `RTM_DELADDR` request; `Ok` also if the
/// address is already absent.
fn del_lo_ipv4() -> io::Result<()> {
    let nl = sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    const NLMSG_HDRLEN: usize = 16;
    const IFADDRMSG_LEN: usize = 8;
    const IFA_LOCAL: u16 = 2;
    let attr_len = 4 + 4;
    let total = NLMSG_HDRLEN + IFADDRMSG_LEN + attr_len;
    let mut m = Vec::with_capacity(total);
    m.extend((total as u32).to_ne_bytes());
    m.extend(libc::RTM_DELADDR.to_ne_bytes());
    m.extend(((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    m.extend(1u32.to_ne_bytes()); // sequence number
    m.extend(0u32.to_ne_bytes()); // port id: the kernel
    m.extend([libc::AF_INET as u8, 8, 0, 0]); // ifaddrmsg: family, prefix length, flags, scope
    m.extend(LO_IFINDEX.to_ne_bytes());
    m.extend((attr_len as u16).to_ne_bytes());
    m.extend(IFA_LOCAL.to_ne_bytes());
    m.extend([127, 0, 0, 1]);
    sys::send(&nl, &m, 0)?;
    let mut ack = [0u8; 256];
    let n = sys::recv(&nl, &mut ack, 0)?;
    // The answer is an NLMSG_ERROR message: header, then the (negative) errno, 0 for success.
    if n < NLMSG_HDRLEN + 4 || u16::from_ne_bytes([ack[4], ack[5]]) != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
    }
    let err = i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]);
    match -err {
        0 | libc::EADDRNOTAVAIL | libc::ENOENT => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
