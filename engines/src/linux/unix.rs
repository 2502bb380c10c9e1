//! The AF_UNIX path: a datagram socket pair with the filter on the receiver.
//!
//! `unix_dgram_sendmsg()` runs the receiver's filter in the sender's context
//! (`sk_filter(other, skb)`, i.e. `sk_filter_trim_cap(.., 1)`): a 0 return tosses the datagram
//! while `send()` still succeeds; any other return trims it to `max(1, ret)` bytes, which
//! for a non-empty datagram is `min(ret, len)`, and queues it before `send()` returns. So a
//! non-blocking `recv()` right after the `send()` is exact: `EAGAIN` means dropped.

use super::sys;
use bpfconf_spec::cbpf::Insn;
use std::io;
use std::os::fd::OwnedFd;

/// A connected `AF_UNIX`/`SOCK_DGRAM` pair whose receiver carries the filter.
pub struct UnixPair {
    sender: OwnedFd,
    receiver: OwnedFd,
}

impl UnixPair {
    /// Creates the pair (no filter yet).
    pub fn new() -> io::Result<UnixPair> {
        let (sender, receiver) = sys::unix_dgram_pair()?;
        // Room for the largest packet the engine sends (plus skb overhead) in both buffers.
        let room = 4 * super::realise::MAX_PACKET as libc::c_int;
        sys::setsockopt_int(&sender, libc::SOL_SOCKET, libc::SO_SNDBUF, room)?;
        sys::setsockopt_int(&receiver, libc::SOL_SOCKET, libc::SO_RCVBUF, room)?;
        Ok(UnixPair { sender, receiver })
    }

    /// Attaches `insns` to the receiver: this is where the kernel's checker runs.
    pub fn attach(&self, insns: &[Insn]) -> io::Result<()> {
        sys::attach_filter(&self.receiver, insns)
    }

    /// Sends `packet` and reports what the receiver got: `None` if the filter dropped it,
    /// else the delivered bytes (read into `buf`, which must hold `packet.len()` bytes).
    pub fn run(&self, packet: &[u8], buf: &mut [u8]) -> Result<Option<usize>, String> {
        // A stale datagram would be misread as this run's: there never is one, because every
        // run reads what it sent; drain defensively all the same.
        while sys::recv(&self.receiver, buf, libc::MSG_DONTWAIT).is_ok() {}
        let sent = sys::send(&self.sender, packet, libc::MSG_DONTWAIT)
            .map_err(|e| format!("send on the AF_UNIX pair failed: {}", sys::errno_name(&e)))?;
        if sent != packet.len() {
            return Err(format!(
                "short send on the AF_UNIX pair: {sent} of {}",
                packet.len()
            ));
        }
        self.receive(packet, buf)
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
