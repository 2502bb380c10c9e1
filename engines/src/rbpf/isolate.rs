//! Crash isolation for engines that run foreign code in-process: run a closure in a forked
//! child, with a deadline, and get its result back over a pipe.
//!
//! rbpf's interpreter has no instruction limit (an endless loop never returns) and its JIT does
//! no memory checks (a wild store can corrupt or kill the process). Running each execution in a
//! child keeps the runner alive whatever happens: a panic, a signal (`SIGSEGV`…), an endless
//! loop (the child is killed at the deadline) all become a [`ChildError`].
//!
//! The child only runs the closure (its panics are not printed: the process's panic hook is
//! wrapped once to stay quiet in children and inside [`quietly`]), writes one framed message (`tag`, `u64` length, payload) to
//! the pipe and calls `_exit`; it never returns into the caller's frames nor runs destructors or
//! `atexit` handlers. The parent polls the pipe and the child's status together, so a write end
//! inherited by a sibling child forked concurrently by another thread cannot delay the answer
//! past the child's exit.

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// What a child run produced.
pub type ChildResult = Result<(u64, Vec<u8>), String>;

/// Why a child produced no [`ChildResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildError {
    /// The closure panicked; the panic message.
    Panicked(String),
    /// The child was killed by this signal (e.g. `SIGSEGV` from JIT code).
    Signaled(i32),
    /// The child exited without a complete message (status code).
    Exited(i32),
    /// The deadline passed; the child was killed.
    TimedOut(Duration),
    /// Setting the child up failed (pipe, fork, wait).
    Io(String),
}

impl ChildError {
    /// The run error a failed child run of engine `name` amounts to: a panic or a setup
    /// failure is an engine error, a death [`crate::RunError::Crash`] (`crashed: …`), a
    /// deadline [`crate::RunError::Timeout`] (`timed out after …`).
    pub fn into_run_error(self, name: &str) -> crate::RunError {
        use crate::RunError;
        match self {
            ChildError::Panicked(m) => RunError::Engine(format!("rbpf panicked: {m}")),
            ChildError::Signaled(sig) => RunError::Crash(format!(
                "crashed: {name} run killed by {}",
                crate::signal::signal_name(sig)
            )),
            ChildError::Exited(c) => RunError::Crash(format!(
                "crashed: {name} child exited with status {c} without a result"
            )),
            ChildError::TimedOut(t) => RunError::Timeout(format!(
                "timed out after {:.1}s ({name} has no instruction limit)",
                t.as_secs_f64()
            )),
            ChildError::Io(e) => RunError::Engine(e),
        }
    }
}

const TAG_OK: u8 = 0;
const TAG_ERR: u8 = 1;
const TAG_PANIC: u8 = 2;

fn encode(r: std::thread::Result<ChildResult>) -> Vec<u8> {
    let (tag, payload) = match r {
        Ok(Ok((r0, mem))) => {
            let mut p = r0.to_le_bytes().to_vec();
            p.extend_from_slice(&mem);
            (TAG_OK, p)
        }
        Ok(Err(e)) => (TAG_ERR, e.into_bytes()),
        Err(p) => (TAG_PANIC, panic_message(&*p).into_bytes()),
    };
    let mut out = vec![tag];
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Decodes a complete message, or `None` while more bytes are needed.
fn decode(buf: &[u8]) -> Option<Result<ChildResult, ChildError>> {
    if buf.len() < 9 {
        return None;
    }
    let len = u64::from_le_bytes(buf[1..9].try_into().ok()?) as usize;
    let payload = buf.get(9..9usize.checked_add(len)?)?;
    Some(match buf[0] {
        TAG_OK if payload.len() >= 8 => {
            let r0 = u64::from_le_bytes(payload[..8].try_into().ok()?);
            Ok(Ok((r0, payload[8..].to_vec())))
        }
        TAG_ERR => Ok(Err(String::from_utf8_lossy(payload).into_owned())),
        TAG_PANIC => Err(ChildError::Panicked(
            String::from_utf8_lossy(payload).into_owned(),
        )),
        t => Err(ChildError::Io(format!("malformed child message (tag {t})"))),
    })
}

fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice; `fd` is the pipe's write end, open in this process.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n > 0 {
            buf = &buf[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            return;
        }
    }
}

/// Reaps `pid` (blocking) and returns its raw wait status.
fn reap(pid: libc::pid_t) -> Result<i32, ChildError> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(ChildError::Io(format!("waitpid: {e}")));
        }
    }
}

fn status_error(status: i32) -> ChildError {
    if libc::WIFSIGNALED(status) {
        ChildError::Signaled(libc::WTERMSIG(status))
    } else {
        ChildError::Exited(libc::WEXITSTATUS(status))
    }
}

/// Reads whatever is available on the (non-blocking) pipe into `buf`; `true` at end of file.
fn drain(fd: i32, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        // SAFETY: `chunk` is a writable buffer of the given length; `fd` is open.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            buf.extend_from_slice(&chunk[..n as usize]);
        } else if n == 0 {
            return true;
        } else {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
    }
}

/// Set in forked children only: the panic hook stays quiet there.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while [`quietly`] runs a closure on this thread.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the process's panic hook (once, in the parent) so that it prints nothing in a forked
/// child or inside [`quietly`]: the caller reports those panics itself. Replacing the hook *in*
/// the child instead could deadlock, as the hook's lock may be held by another thread of the
/// parent at the moment of the fork.
fn install_quiet_child_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CHILD.load(Ordering::Relaxed) && !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f` in this process, catching a panic without printing it (the caller reports it).
pub fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    install_quiet_child_hook();
    let was = QUIET.with(|q| q.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    r
}

/// Runs `f` in a forked child and returns its result, or why there is none. The child is
/// killed when `timeout` passes.
///
/// The child inherits a copy of a multi-threaded process, so it must not wait on locks other
/// threads may have held at the fork: `f` should only compute and allocate (glibc's allocator is
/// fork-safe), not print or lock. The deadline covers what slips through.
pub fn run_isolated<F>(timeout: Duration, f: F) -> Result<ChildResult, ChildError>
where
    F: FnOnce() -> ChildResult,
{
    install_quiet_child_hook();
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(ChildError::Io(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: pipe2 just returned these two descriptors; each is owned exactly once here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fork has no memory-safety preconditions. The child below only runs `f` (under
    // catch_unwind, with a silent panic hook), writes to the pipe and `_exit`s: it never
    // returns into the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ChildError::Io(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        drop(rd);
        // Die by the signal itself (the parent reports it) rather than through Rust's
        // stack-overflow handler, which prints and aborts.
        // SAFETY: resetting signal dispositions to their defaults in this single-purpose child.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
        IN_CHILD.store(true, Ordering::Relaxed);
        let msg = encode(catch_unwind(AssertUnwindSafe(f)));
        // The pipe was opened non-blocking; the child wants blocking writes.
        // SAFETY: plain fcntl calls on an fd this process owns.
        unsafe {
            let fl = libc::fcntl(wr.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(wr.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
        write_all(wr.as_raw_fd(), &msg);
        // SAFETY: `_exit` ends the child at once, running no destructors of the parent's state.
        unsafe { libc::_exit(0) }
    }
    drop(wr);
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        let eof = drain(rd.as_raw_fd(), &mut buf);
        if let Some(r) = decode(&buf) {
            // A complete message wins, however the child ends afterwards.
            reap(pid)?;
            return r;
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        let w = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if w == pid {
            drain(rd.as_raw_fd(), &mut buf);
            return match decode(&buf) {
                Some(r) => r,
                None => Err(status_error(status)),
            };
        }
        if eof {
            // Closed without a full message: the child is exiting; wait for its status.
            let status = reap(pid)?;
            return Err(status_error(status));
        }
        let now = Instant::now();
        if now >= deadline {
            // SAFETY: `pid` is our own child, not yet reaped, so the id is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid)?;
            return Err(ChildError::TimedOut(timeout));
        }
        let wait_ms = (deadline - now).as_millis().clamp(1, 20) as i32;
        let mut p = libc::pollfd {
            fd: rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd.
        unsafe { libc::poll(&mut p, 1, wait_ms) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_panic_signal_and_timeout() {
        let t = Duration::from_secs(5);
        assert_eq!(
            run_isolated(t, || Ok((7, vec![1, 2]))),
            Ok(Ok((7, vec![1, 2])))
        );
        assert_eq!(run_isolated(t, || Err("no".into())), Ok(Err("no".into())));
        assert_eq!(
            run_isolated(t, || panic!("boom")),
            Err(ChildError::Panicked("boom".into()))
        );
        let r = run_isolated(t, || {
            // SAFETY: deliberately kills this (child) process.
            unsafe { libc::raise(libc::SIGSEGV) };
            Ok((0, vec![]))
        });
        assert_eq!(r, Err(ChildError::Signaled(libc::SIGSEGV)));
        let short = Duration::from_millis(100);
        let r = run_isolated(short, || loop {
            std::thread::sleep(Duration::from_millis(10));
        });
        assert_eq!(r, Err(ChildError::TimedOut(short)));
        let big = vec![0xa5u8; 300_000];
        let b2 = big.clone();
        assert_eq!(run_isolated(t, move || Ok((1, b2))), Ok(Ok((1, big))));
    }
}
