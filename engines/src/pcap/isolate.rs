//! Crash isolation: C calls made in a forked worker process, so that an `abort()`, a fault or an
//! endless loop in them becomes a result instead of taking the caller down.
//!
//! libpcap 1.10.3's `bpf_filter` calls `abort()` on opcodes its validator lets through but its
//! interpreter has no case for (`ret x`, NetBSD's `cop`, non-canonical codes) and loops forever on
//! `ja -1`. So every call runs in a [`Worker`]: a child forked with the program already in its
//! memory, which reads requests (a packet and its wire length) from a socket, makes the call and
//! writes the 4-byte result back. One worker serves many calls (`exec --pcap` runs a program on
//! every packet of a capture through one fork); when a call crashes or runs out of time the
//! worker is reaped (or killed) and the next call forks a fresh one.
//!
//! How a call can end: a result; the socket reports end-of-file (the worker died: its wait
//! status says of which signal); or nothing within the timeout (the worker is killed). The
//! worker also arms `alarm()` around each call, so a looping worker dies on its own even if the
//! caller is gone, and it has no core limit (`RLIMIT_CORE` = 0), so an abort leaves no core
//! file behind.
//!
//! The caller may be multi-threaded (rayon): only the forking thread exists in the child, and
//! any lock another thread held at the fork stays held there. So the child runs nothing but the
//! given call and async-signal-safe system calls (`close_range`, `setrlimit`, `sigaction`,
//! `alarm`, `read`, `write`, `_exit`): no allocation, no Rust runtime. The first thing it does
//! is close every descriptor it inherited except its own socket end, so that descriptors of
//! workers other threads fork concurrently never linger in it (they would delay the end-of-file
//! those workers' callers wait for).

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How a call ended without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The worker was killed by a signal of its own (SIGABRT from `abort()`, SIGSEGV…).
    Signal(i32),
    /// The worker exited without answering.
    Exited(i32),
    /// The call did not return within the timeout; the worker was killed.
    TimedOut(Duration),
    /// fork, socketpair, I/O or wait failed.
    Os(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Signal(s) => write!(f, "crashed: {} (signal {s})", signal_name(*s)),
            Failure::Exited(c) => write!(f, "crashed: worker exited with status {c} and no result"),
            Failure::TimedOut(d) => write!(f, "timed out after {} ms", d.as_millis()),
            Failure::Os(e) => write!(f, "isolation failed: {e}"),
        }
    }
}

impl Failure {
    /// The run error a failed call amounts to: a dead worker is [`crate::RunError::Crash`], a
    /// killed one [`crate::RunError::Timeout`] (messages as [`Failure`]'s `Display`: `crashed:
    /// SIGABRT (signal 6)`, `timed out after N ms`), a failure to isolate an engine error.
    pub fn into_run_error(self) -> crate::RunError {
        use crate::RunError;
        match self {
            Failure::Signal(_) | Failure::Exited(_) => RunError::Crash(self.to_string()),
            Failure::TimedOut(_) => RunError::Timeout(self.to_string()),
            Failure::Os(_) => RunError::Engine(self.to_string()),
        }
    }
}

pub use crate::signal::signal_name;

fn os_err(what: &str) -> Failure {
    Failure::Os(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// `errno == EINTR`. Safe in a forked child: reading errno allocates nothing.
fn interrupted() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
}

/// The smallest input buffer a worker gets (larger packets get a worker of their size).
const MIN_BUFFER: usize = 64 * 1024;

/// A forked process that makes one kind of call on request.
#[derive(Debug)]
pub struct Worker {
    pid: libc::pid_t,
    sock: OwnedFd,
    /// Largest input the worker's buffer holds.
    cap: usize,
    /// Whether the child still has to be reaped.
    alive: bool,
}

/// Child side: reads exactly `buf.len()` bytes; false on end-of-file or error.
///
/// # Safety
/// Async-signal-safe (only `read`); `fd` is an open descriptor.
unsafe fn child_read_exact(fd: RawFd, buf: *mut u8, len: usize) -> bool {
    let mut done = 0;
    while done < len {
        // SAFETY: buf is valid for len bytes (caller), so buf + done for len - done.
        let n = unsafe { libc::read(fd, buf.add(done).cast(), len - done) };
        if n > 0 {
            done += n as usize;
        } else if n == 0 || !interrupted() {
            return false;
        }
    }
    true
}

/// Child side: closes every inherited descriptor above stderr except `keep`.
///
/// # Safety
/// Async-signal-safe (`close_range`, `close`); run only in a freshly forked child.
unsafe fn child_close_others(keep: RawFd) {
    let keep = keep as libc::c_uint;
    let ranges = [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range only closes descriptors of this (child) process.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if r != 0 {
            // Kernels before 5.9: close one by one, up to a bound.
            for fd in first..last.min(65_536) {
                // SAFETY: as above; EBADF for unused numbers is harmless.
                unsafe { libc::close(fd as libc::c_int) };
            }
        }
    }
}

impl Worker {
    /// Forks a worker whose buffer holds inputs of up to `cap` bytes (at least 64 KiB) and
    /// which answers each request with `call(input, wirelen)`, aborting a call after `timeout`
    /// (plus a second) on its own with `alarm()`.
    ///
    /// # Safety
    /// `call` runs in a child forked from a possibly multi-threaded process: it must be
    /// async-signal-safe in effect — no allocation, no locks, no I/O through Rust's runtime, no
    /// panics — and may only read memory that exists in the caller at the time of this call (the
    /// child works on a copy-on-write snapshot). Calling a C function on prepared buffers
    /// qualifies.
    pub unsafe fn spawn<F: Fn(&[u8], u32) -> u32>(
        cap: usize,
        timeout: Duration,
        call: F,
    ) -> Result<Worker, Failure> {
        let cap = cap.max(MIN_BUFFER);
        let mut buf = vec![0u8; cap];
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a writable array of two ints. SOCK_CLOEXEC keeps the sockets out of
        // programs other threads execute.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(os_err("socketpair"));
        }
        // SAFETY: socketpair returned two fresh descriptors that nothing else owns.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let alarm_secs = (timeout.as_secs() + 2).min(u32::MAX as u64) as libc::c_uint;
        let buf_ptr = buf.as_mut_ptr();
        // SAFETY: fork has no memory-safety preconditions; the child branch keeps to the
        // contract stated in the module docs.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os_err("fork"));
        }
        if pid == 0 {
            // SAFETY: in the child. Everything below is an async-signal-safe system call, a read
            // of the snapshot (buf_ptr, valid for cap bytes) or `call`, async-signal-safe by the
            // caller's contract. The loop ends only in _exit, so no destructor or atexit handler
            // runs in the child.
            unsafe {
                let fd = theirs.as_raw_fd();
                child_close_others(fd);
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::signal(libc::SIGALRM, libc::SIG_DFL);
                loop {
                    let mut header = [0u8; 8];
                    if !child_read_exact(fd, header.as_mut_ptr(), 8) {
                        libc::_exit(0);
                    }
                    let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
                    let wirelen = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
                    let len = len as usize;
                    if len > cap || !child_read_exact(fd, buf_ptr, len) {
                        libc::_exit(3);
                    }
                    libc::alarm(alarm_secs);
                    let ret = call(std::slice::from_raw_parts(buf_ptr, len), wirelen);
                    libc::alarm(0);
                    let out = ret.to_ne_bytes();
                    if libc::write(fd, out.as_ptr().cast(), out.len()) != 4 {
                        libc::_exit(4);
                    }
                }
            }
        }
        // The child has its own copy of the buffer and of its socket end.
        drop(buf);
        drop(theirs);
        Ok(Worker {
            pid,
            sock: ours,
            cap,
            alive: true,
        })
    }

    /// Whether the worker can take another request (it has not crashed or been killed).
    pub fn alive(&self) -> bool {
        self.alive
    }

    /// Whether an input of `len` bytes fits the worker's buffer.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.cap
    }

    /// Sends one request and waits at most `timeout` for the result. After a failure the
    /// worker is dead (reaped) and [`Worker::alive`] is false.
    pub fn call(&mut self, input: &[u8], wirelen: u32, timeout: Duration) -> Result<u32, Failure> {
        assert!(self.alive, "a dead worker takes no requests");
        assert!(
            self.fits(input.len()),
            "input larger than the worker's buffer"
        );
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&(input.len() as u32).to_ne_bytes());
        header[4..].copy_from_slice(&wirelen.to_ne_bytes());
        if !self.send_all(&header) || !self.send_all(input) {
            // The worker is gone (EPIPE/ECONNRESET): say how it ended.
            return Err(self.reap_failure());
        }
        match self.wait_readable(timeout)? {
            false => {
                self.kill();
                Err(Failure::TimedOut(timeout))
            }
            true => {
                let mut out = [0u8; 4];
                // SAFETY: out is writable for 4 bytes; MSG_WAITALL gathers a split answer.
                let n = unsafe {
                    libc::recv(
                        self.sock.as_raw_fd(),
                        out.as_mut_ptr().cast(),
                        4,
                        libc::MSG_WAITALL,
                    )
                };
                if n == 4 {
                    Ok(u32::from_ne_bytes(out))
                } else {
                    Err(self.reap_failure())
                }
            }
        }
    }

    /// Writes all of `data` to the worker; false if the worker is gone. MSG_NOSIGNAL: a dead
    /// worker gives EPIPE, never a SIGPIPE to this process.
    fn send_all(&self, data: &[u8]) -> bool {
        let mut done = 0;
        while done < data.len() {
            // SAFETY: the range is inside `data`.
            let n = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    data[done..].as_ptr().cast(),
                    data.len() - done,
                    libc::MSG_NOSIGNAL,
                )
            };
            if n > 0 {
                done += n as usize;
            } else if n < 0 && interrupted() {
                continue;
            } else {
                return false;
            }
        }
        true
    }

    /// Polls the socket until it is readable (an answer or end-of-file) or the timeout passes.
    fn wait_readable(&self, timeout: Duration) -> Result<bool, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so that a sub-millisecond remainder does not spin.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n > 0 {
                return Ok(true);
            }
            if n == 0 {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                continue;
            }
            if !interrupted() {
                return Err(os_err("poll"));
            }
        }
    }

    /// Reaps a worker that closed its socket and turns its wait status into a failure.
    fn reap_failure(&mut self) -> Failure {
        match self.reap() {
            Ok(status) if libc::WIFSIGNALED(status) => Failure::Signal(libc::WTERMSIG(status)),
            Ok(status) => Failure::Exited(libc::WEXITSTATUS(status)),
            Err(f) => f,
        }
    }

    /// Waits for the worker to end (blocking) and returns its wait status.
    fn reap(&mut self) -> Result<libc::c_int, Failure> {
        self.alive = false;
        loop {
            let mut status = 0;
            // SAFETY: status is writable; pid is our child, not yet reaped.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return Ok(status);
            }
            if !interrupted() {
                return Err(os_err("waitpid"));
            }
        }
    }

    /// Kills and reaps the worker.
    fn kill(&mut self) {
        if self.alive {
            // SAFETY: pid is our child and not yet reaped, so the pid cannot have been reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `call` once in a fresh worker (`input` and `wirelen` are passed to it) and returns its
/// result, or how the worker ended.
///
/// # Safety
/// As for [`Worker::spawn`].
pub unsafe fn run_once<F: Fn(&[u8], u32) -> u32>(
    timeout: Duration,
    input: &[u8],
    wirelen: u32,
    call: F,
) -> Result<u32, Failure> {
    // SAFETY: forwarded to the caller.
    let mut w = unsafe { Worker::spawn(input.len(), timeout, call)? };
    w.call(input, wirelen, timeout)
}
