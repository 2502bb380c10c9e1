//! Injecting a frame on a packet path and observing, deterministically, whether the test
//! socket's filter let it through.
//!
//! Determinism: every device has a *barrier* socket, an `AF_PACKET` socket with no filter bound
//! to it when the namespace is set up, before any test socket. `dev_add_pack()` inserts at the
//! head of the device's `ptype_all` list, and both the receive path
//! (`__netif_receive_skb_core`) and the transmit tap (`dev_queue_xmit_nit`) hand a frame to
//! the sockets of that list one after the other, in list order, in one call. Test sockets are
//! bound later, so they come first: once the barrier holds the frame, the test socket's filter
//! has run and the frame is either queued on the test socket or never will be. (In practice
//! the TUN/TAP write and the packet socket send process the frame synchronously anyway;
//! the barrier makes the run independent of that.)
//!
//! All runs go through one [`Wire`] behind a lock; every test socket of every loaded program
//! sees every frame on its device, so each run first drains its own test socket and the
//! barrier. Frames that are not the one injected (there should be none: nothing in the
//! namespace has an address or IPv6) are recognised by content and direction and skipped.

use super::realise::{eth_protocol, tx_protocol, Path, LO_IFINDEX, PACKET_OUTGOING};
use super::sys;
use bpfconf_spec::case::Ctx;
use std::io;
use std::os::fd::OwnedFd;

/// How long to wait for the barrier to see an injected frame before declaring an engine error.
const BARRIER_TIMEOUT_MS: i32 = 2000;

/// The devices a test socket can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sock {
    /// The TAP: frames received (tap path) and sent (tap-out path).
    Tap = 0,
    /// The TUN: packets received.
    Tun = 1,
    /// lo: frames received.
    Lo = 2,
}

impl Sock {
    /// The test socket a path uses.
    pub fn for_path(p: Path) -> Option<Sock> {
        match p {
            Path::Unix => None,
            Path::Tap | Path::TapOut => Some(Sock::Tap),
            Path::Tun => Some(Sock::Tun),
            Path::Lo => Some(Sock::Lo),
        }
    }

    /// Whether the socket ignores frames the device transmits (`PACKET_IGNORE_OUTGOING`):
    /// the TAP socket must see them for the tap-out path; on lo every frame sent is also
    /// received, and only the received copy is wanted.
    pub fn ignores_outgoing(self) -> bool {
        self != Sock::Tap
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Sock::Tap => "TAP",
            Sock::Tun => "TUN",
            Sock::Lo => "lo",
        }
    }
}

/// The injection side of the namespace: TUN/TAP queues, the sender, the barriers.
pub struct Wire {
    tap: OwnedFd,
    tun: OwnedFd,
    sender: OwnedFd,
    sender_mark: u32,
    barriers: [OwnedFd; 3],
    ifindex: [u32; 3],
    frame: Vec<u8>,
    rbuf: Vec<u8>,
}

fn is_eagain(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

impl Wire {
    /// Assembles the wire from the descriptors created at setup; `barriers` and `ifindex` are
    /// indexed by [`Sock`].
    pub fn new(
        tap: OwnedFd,
        tun: OwnedFd,
        sender: OwnedFd,
        barriers: [OwnedFd; 3],
        ifindex: [u32; 3],
    ) -> Wire {
        Wire {
            tap,
            tun,
            sender,
            sender_mark: 0,
            barriers,
            ifindex,
            frame: Vec::new(),
            rbuf: vec![0; super::realise::MAX_PACKET + 64],
        }
    }

    /// Builds the bytes put on the wire for `path`: the packet, with a VLAN tag inserted after
    /// the MAC addresses when the receive path is to strip one, or after a `tun_pi` header.
    fn build(&mut self, path: Path, packet: &[u8], ctx: &Ctx) {
        self.frame.clear();
        match path {
            Path::Tap | Path::Lo if ctx.vlan_present => {
                self.frame.extend_from_slice(&packet[..12]);
                self.frame.extend_from_slice(&ctx.vlan_tpid.to_be_bytes());
                self.frame.extend_from_slice(&ctx.vlan_tci.to_be_bytes());
                self.frame.extend_from_slice(&packet[12..]);
            }
            Path::Tun => {
                // struct tun_pi: flags (0), then the protocol in network order.
                self.frame.extend_from_slice(&[0, 0]);
                self.frame.extend_from_slice(&ctx.protocol.to_be_bytes());
                self.frame.extend_from_slice(packet);
            }
            _ => self.frame.extend_from_slice(packet),
        }
    }

    fn set_mark(&mut self, mark: u32) -> Result<(), String> {
        if self.sender_mark != mark {
            sys::setsockopt_int(
                &self.sender,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                mark as libc::c_int,
            )
            .map_err(|e| format!("SO_MARK {mark:#x} on the sender: {}", sys::errno_name(&e)))?;
            self.sender_mark = mark;
        }
        Ok(())
    }

    /// Puts the frame on the wire; the kernel runs the filters before this returns or, on lo,
    /// in the softirq that follows on the same CPU.
    fn inject(&mut self, path: Path, ctx: &Ctx) -> Result<(), String> {
        let sent = match path {
            Path::Tap => sys::write(&self.tap, &self.frame),
            Path::Tun => sys::write(&self.tun, &self.frame),
            Path::Lo => {
                self.set_mark(ctx.mark)?;
                let proto = eth_protocol(&self.frame);
                sys::send_ll(&self.sender, LO_IFINDEX, proto, &self.frame)
            }
            Path::TapOut => {
                self.set_mark(ctx.mark)?;
                sys::send_ll(
                    &self.sender,
                    self.ifindex[Sock::Tap as usize],
                    tx_protocol(ctx.protocol),
                    &self.frame,
                )
            }
            Path::Unix => unreachable!("the unix path does not use the wire"),
        }
        .map_err(|e| {
            format!(
                "injecting on the {} path failed: {}",
                path.name(),
                sys::errno_name(&e)
            )
        })?;
        if sent != self.frame.len() {
            return Err(format!(
                "short injection on the {} path: {sent} of {}",
                path.name(),
                self.frame.len()
            ));
        }
        Ok(())
    }

    /// Discards whatever is queued on a socket.
    fn drain(fd: &OwnedFd, buf: &mut [u8]) -> Result<(), String> {
        loop {
            match sys::recv(fd, buf, libc::MSG_DONTWAIT) {
                Ok(_) => continue,
                Err(e) if is_eagain(&e) => return Ok(()),
                Err(e) => return Err(format!("draining a packet socket: {}", sys::errno_name(&e))),
            }
        }
    }

    /// Runs one packet through `path` with `test` (the loaded program's socket for that path's
    /// device). `Ok(None)` if the filter dropped it, else the number of bytes delivered. The
    /// caller pins the thread when the program reads `cpu`.
    pub fn run(
        &mut self,
        path: Path,
        test: &OwnedFd,
        packet: &[u8],
        ctx: &Ctx,
    ) -> Result<Option<usize>, String> {
        let sock = Sock::for_path(path).ok_or("the unix path does not use the wire")?;
        let barrier = sock as usize;
        Self::drain(test, &mut self.rbuf)?;
        Self::drain(&self.barriers[barrier], &mut self.rbuf)?;
        self.build(path, packet, ctx);
        self.inject(path, ctx)?;
        let outgoing = path == Path::TapOut;
        let ours = |n: usize, pkttype: u8, got: &[u8], full: bool| {
            (pkttype == PACKET_OUTGOING) == outgoing
                && if full {
                    n == packet.len()
                } else {
                    n <= packet.len()
                }
                && got[..n] == packet[..n]
        };
        // Wait until the barrier has the frame, as the filter-less barrier sees it (the
        // packet, untagged); skip anything else.
        loop {
            if !sys::poll_in(&self.barriers[barrier], BARRIER_TIMEOUT_MS)
                .map_err(|e| format!("poll: {e}"))?
            {
                return Err(format!(
                    "the frame injected on the {} path never reached the barrier socket",
                    path.name()
                ));
            }
            match sys::recv_ll(
                &self.barriers[barrier],
                &mut self.rbuf,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            ) {
                Ok((n, t)) if n <= self.rbuf.len() && ours(n, t, &self.rbuf, true) => break,
                Ok(_) => continue,
                Err(e) if is_eagain(&e) => continue,
                Err(e) => return Err(format!("barrier recv: {}", sys::errno_name(&e))),
            }
        }
        // The test socket's filter has run. Frames in the other direction are not ours (only
        // possible on the TAP, whose socket sees both); a frame in our direction that is not a
        // prefix of the packet means the model of this path is wrong: say so rather than
        // report a drop.
        let mut strangers = 0;
        let delivered = loop {
            match sys::recv_ll(test, &mut self.rbuf, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
                Ok((n, t)) if n <= self.rbuf.len() && ours(n, t, &self.rbuf, false) => {
                    break Some(n)
                }
                Ok((_, t)) if (t == PACKET_OUTGOING) == outgoing => strangers += 1,
                Ok(_) => continue,
                Err(e) if is_eagain(&e) => break None,
                Err(e) => return Err(format!("test socket recv: {}", sys::errno_name(&e))),
            }
        };
        if delivered.is_none() && strangers > 0 {
            return Err(format!(
                "the test socket on the {} path received {strangers} frame(s) that are not a prefix of the injected packet",
                path.name()
            ));
        }
        if outgoing {
            // The TAP queues what it transmits for its reader: keep that queue empty.
            loop {
                match sys::read(&self.tap, &mut self.rbuf) {
                    Ok(_) => continue,
                    Err(e) if is_eagain(&e) => break,
                    Err(e) => {
                        return Err(format!("draining the TAP queue: {}", sys::errno_name(&e)))
                    }
                }
            }
        }
        Ok(delivered)
    }
}
