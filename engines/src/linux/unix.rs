//! The AF_UNIX path: a datagram socket pair with the filter on the receiver.
//!
//! `unix_dgram_sendmsg()` runs the receiver's filter in the sender's context
//! (`sk_filter(other, skb)`, i.e. `sk_filter_trim_cap(.., 1)`): a 0 return tosses the datagram
//! while `send()` still succeeds; any other return trims it to `max(1, ret)` bytes, which
//! for a non-empty datagram is `min(ret, len)`, and queues it before `send()` returns. So a
//! non-blocking `recv()` right after the `send()` is exact: `EAGAIN` means dropped.
//!
//! Pairs are reused ([`UnixPool`]): creating, sizing and closing a pair cost three times as
//! much as attaching a filter, and `SO_ATTACH_FILTER` on a socket that has one replaces it
//! (`__sk_attach_prog`: the new program is published, then the old one uncharged and freed
//! after an RCU grace period). Replacement is only different from a fresh socket when the
//! option-memory charge of both programs together exceeds `net.core.optmem_max` (the new one is
//! charged before the old one is released): that `ENOMEM` is retried after `SO_DETACH_FILTER`,
//! so a load succeeds or fails exactly as on a fresh socket. A pair is only ever reached by its
//! own sender (it has no address), so once a run has read its datagram, or seen `EAGAIN`, the
//! receive queue is empty; after an error it is drained before the next run.

use super::sys;
use bpfconf_spec::cbpf::Insn;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// A connected `AF_UNIX`/`SOCK_DGRAM` pair whose receiver carries the filter.
pub struct UnixPair {
    sender: OwnedFd,
    receiver: OwnedFd,
    /// Whether the receiver has a filter attached (a pooled pair keeps its last one).
    attached: bool,
    /// Whether the receive queue is known to be empty.
    clean: bool,
}

impl UnixPair {
    /// Creates the pair (no filter yet).
    pub fn new() -> io::Result<UnixPair> {
        let (sender, receiver) = sys::unix_dgram_pair()?;
        // Room for the largest packet the engine sends (plus skb overhead) in both buffers.
        let room = 4 * super::realise::MAX_PACKET as libc::c_int;
        sys::setsockopt_int(&sender, libc::SOL_SOCKET, libc::SO_SNDBUF, room)?;
        sys::setsockopt_int(&receiver, libc::SOL_SOCKET, libc::SO_RCVBUF, room)?;
        Ok(UnixPair {
            sender,
            receiver,
            attached: false,
            clean: true,
        })
    }

    /// Attaches `insns` to the receiver, replacing any filter it had: this is where the
    /// kernel's checker runs. On failure the receiver may keep its previous filter.
    pub fn attach(&mut self, insns: &[Insn]) -> io::Result<()> {
        match sys::attach_filter(&self.receiver, insns) {
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && self.attached => {
                // The old program's charge is still counted against optmem_max: drop it and
                // try again, as on a fresh socket.
                sys::detach_filter(&self.receiver)?;
                self.attached = false;
                sys::attach_filter(&self.receiver, insns)?;
            }
            r => r?,
        }
        self.attached = true;
        Ok(())
    }

    /// Sends `packet` and reports what the receiver got: `None` if the filter dropped it,
    /// else the delivered bytes (read into `buf`, which must hold `packet.len()` bytes).
    pub fn run(&mut self, packet: &[u8], buf: &mut [u8]) -> Result<Option<usize>, String> {
        if !self.clean {
            // A stale datagram would be misread as this run's: after a failed run, drain.
            while sys::recv(&self.receiver, buf, libc::MSG_DONTWAIT).is_ok() {}
        }
        self.clean = false;
        let sent = sys::send(&self.sender, packet, libc::MSG_DONTWAIT)
            .map_err(|e| format!("send on the AF_UNIX pair failed: {}", sys::errno_name(&e)))?;
        if sent != packet.len() {
            return Err(format!(
                "short send on the AF_UNIX pair: {sent} of {}",
                packet.len()
            ));
        }
        let r = self.receive(packet, buf)?;
        self.clean = true;
        Ok(r)
    }

    fn receive(&self, packet: &[u8], buf: &mut [u8]) -> Result<Option<usize>, String> {
        match sys::recv(&self.receiver, buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
            Ok(n) => {
                if n > packet.len() || buf[..n] != packet[..n] {
                    return Err(format!(
                        "the AF_UNIX receiver got {n} bytes that are not a prefix of the packet sent"
                    ));
                }
                Ok(Some(n))
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
            Err(e) => Err(format!(
                "recv on the AF_UNIX pair failed: {}",
                sys::errno_name(&e)
            )),
        }
    }
}

/// Pairs of dropped programs, kept for the next load (at most [`UnixPool::MAX`]; more are
/// closed). A pooled pair keeps its last filter until the next attach replaces it.
#[derive(Default)]
pub struct UnixPool {
    pairs: Mutex<Vec<UnixPair>>,
}

impl UnixPool {
    /// Pairs kept at most: enough for every thread's live programs in a campaign or a run.
    pub const MAX: usize = 64;

    /// A pair with `insns` attached: a pooled one, or a new one. On a refusal the pair goes
    /// back to the pool.
    pub fn take(&self, insns: &[Insn]) -> Result<UnixPair, TakeError> {
        let pooled = self.pairs.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut pair = match pooled {
            Some(p) => p,
            None => UnixPair::new().map_err(TakeError::Create)?,
        };
        match pair.attach(insns) {
            Ok(()) => Ok(pair),
            Err(e) => {
                self.put(pair);
                Err(TakeError::Attach(e))
            }
        }
    }

    /// Takes back a pair.
    pub fn put(&self, pair: UnixPair) {
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        if pairs.len() < Self::MAX {
            pairs.push(pair);
        }
    }
}

/// Why [`UnixPool::take`] failed.
#[derive(Debug)]
pub enum TakeError {
    /// No pair could be created.
    Create(io::Error),
    /// `SO_ATTACH_FILTER` failed (the kernel refused the program, or could not take it).
    Attach(io::Error),
}
