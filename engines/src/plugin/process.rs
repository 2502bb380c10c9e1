//! Plugin processes with deadlines: every write and read waits at most until a deadline, so a
//! plugin that hangs, floods or dies never hangs the runner.
//!
//! A plugin runs in its own process group; when it must be stopped (deadline, garbage, drop) the
//! whole group is killed with `SIGKILL` — only while its leader is unreaped, so the group id is
//! still ours — and the leader is reaped. Pipes are non-blocking and driven by `poll(2)`.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most bytes kept of a plugin's stdout or stderr (the rest is read and dropped).
pub const OUTPUT_CAP: usize = 1 << 20;

/// How much of stderr a persistent plugin's error messages quote.
const STDERR_TAIL: usize = 2048;

/// Why talking to a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcError {
    /// The program could not be started.
    Spawn(String),
    /// The deadline passed.
    TimedOut(Duration),
    /// The plugin ended (closed its output) before answering; how it ended, and its stderr tail.
    Ended(String),
    /// An I/O error on a pipe.
    Io(String),
}

impl std::fmt::Display for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcError::Spawn(e) => write!(f, "cannot start plugin: {e}"),
            ProcError::TimedOut(t) => write!(f, "timed out after {:.1}s", t.as_secs_f64()),
            ProcError::Ended(how) => write!(f, "crashed: {how}"),
            ProcError::Io(e) => write!(f, "plugin I/O error: {e}"),
        }
    }
}

/// Describes an exit status: `exited with status N` or `killed by SIGSEGV`.
pub fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        _ => "ended".into(),
    }
}

pub use crate::signal::signal_name;

/// Finds the program a command's first word names: a path, or a name looked up in `PATH`.
pub fn resolve_program(word: &str) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if word.contains('/') {
        let p = std::path::PathBuf::from(word);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!("`{word}` is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(word))
        .find(|p| executable(p))
        .ok_or_else(|| format!("`{word}` not found in PATH"))
}

fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor owned by a live std pipe handle.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Spawns `argv` in its own process group with piped stdin, stdout and stderr (non-blocking).
pub fn spawn(argv: &[String]) -> Result<Child, ProcError> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| ProcError::Spawn("empty command".into()))?;
    let child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| ProcError::Spawn(format!("{prog}: {e}")))?;
    let fds = [
        child.stdin.as_ref().map(|s| s.as_raw_fd()),
        child.stdout.as_ref().map(|s| s.as_raw_fd()),
        child.stderr.as_ref().map(|s| s.as_raw_fd()),
    ];
    let mut child = child;
    for fd in fds.into_iter().flatten() {
        if let Err(e) = set_nonblocking(fd) {
            stop(&mut child);
            return Err(ProcError::Io(e.to_string()));
        }
    }
    Ok(child)
}

/// True once `child` has exited; it is left unreaped (a zombie keeps its group id ours).
fn exited(child: &Child) -> bool {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; the pid is our own child; WNOWAIT leaves it
    // waitable.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info`; si_pid is meaningful for the SIGCHLD-style info it returns.
    r == 0 && unsafe { info.si_pid() } != 0
}

/// Kills the child's whole process group (stragglers included) and reaps the leader. Call it
/// once per child, and only on a child nothing else has reaped: an unreaped leader (even a
/// zombie) keeps the group id ours, so the kill cannot reach anyone else's processes.
pub fn stop(child: &mut Child) -> Option<ExitStatus> {
    // SAFETY: the leader is not reaped (this function's contract), so its pid, which is the group
    // id, still names the group we created.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    child.wait().ok()
}

/// Waits until `deadline` for any of `fds` to be ready for `events`; false on timeout.
fn wait_ready(fds: &mut [libc::pollfd], deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let ms = (deadline - now).as_millis().clamp(1, 50) as i32;
    // SAFETY: `fds` is a valid slice of pollfd structures of the given length.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    r >= 0 || io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
}

/// Reads what is available from a non-blocking reader into `buf` (at most `cap` kept).
/// Returns `Ok(true)` at end of file.
fn pump(r: &mut impl Read, buf: &mut Vec<u8>, cap: usize) -> io::Result<bool> {
    let mut chunk = [0u8; 16384];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What a one-shot plugin run produced.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output (at most [`OUTPUT_CAP`] bytes).
    pub stdout: Vec<u8>,
    /// Its standard error (at most [`OUTPUT_CAP`] bytes).
    pub stderr: Vec<u8>,
}

/// Runs `argv` once: writes `input` to its stdin and closes it, collects stdout and stderr
/// until both close and the process exits, all before `timeout` (then the group is killed).
pub fn run_once(argv: &[String], input: &[u8], timeout: Duration) -> Result<Finished, ProcError> {
    let deadline = Instant::now() + timeout;
    let mut child = spawn(argv)?;
    let r = drive(&mut child, input, deadline);
    let status = stop(&mut child);
    let (stdout, stderr) = match r {
        Ok(x) => x,
        Err(ProcError::TimedOut(_)) => return Err(ProcError::TimedOut(timeout)),
        Err(e) => return Err(e),
    };
    let status = status.ok_or_else(|| ProcError::Io("lost the plugin's exit status".into()))?;
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

fn drive(
    child: &mut Child,
    input: &[u8],
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), ProcError> {
    let mut stdin: Option<ChildStdin> = child.stdin.take();
    let mut stdout: Option<ChildStdout> = child.stdout.take();
    let mut stderr: Option<ChildStderr> = child.stderr.take();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut written = 0;
    if input.is_empty() {
        stdin = None;
    }
    loop {
        if let Some(w) = stdin.as_mut() {
            match w.write(&input[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The plugin closed its stdin (EPIPE): it has read all it wants.
                Err(_) => written = input.len(),
            }
            if written >= input.len() {
                stdin = None;
            }
        }
        if let Some(r) = stdout.as_mut() {
            if pump(r, &mut out, OUTPUT_CAP).map_err(|e| ProcError::Io(e.to_string()))? {
                stdout = None;
            }
        }
        if let Some(r) = stderr.as_mut() {
            if pump(r, &mut err, OUTPUT_CAP).map_err(|e| ProcError::Io(e.to_string()))? {
                stderr = None;
            }
        }
        if stdout.is_none() && stderr.is_none() && exited(child) {
            return Ok((out, err));
        }
        let mut fds = Vec::with_capacity(3);
        if let Some(w) = &stdin {
            fds.push(libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        for fd in [
            stdout.as_ref().map(|s| s.as_raw_fd()),
            stderr.as_ref().map(|s| s.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if fds.is_empty() {
            // Output closed, process not yet exited: poll its status until the deadline.
            if Instant::now() >= deadline {
                return Err(ProcError::TimedOut(Duration::ZERO));
            }
            std::thread::sleep(Duration::from_millis(2));
        } else if !wait_ready(&mut fds, deadline) {
            return Err(ProcError::TimedOut(Duration::ZERO));
        }
    }
}

/// A persistent plugin speaking a line protocol: one request line out, one reply line in.
pub struct LineProcess {
    child: Child,
    /// Set once [`stop`] has reaped the child.
    stopped: bool,
    stdin: ChildStdin,
    stdout: ChildStdout,
    buf: Vec<u8>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
}

impl LineProcess {
    /// Starts `argv`; its stderr is drained in the background (the last bytes are kept for
    /// error messages).
    pub fn start(argv: &[String]) -> Result<LineProcess, ProcError> {
        let mut child = spawn(argv)?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            stop(&mut child);
            return Err(ProcError::Spawn("pipes missing".into()));
        };
        let tail = Arc::new(Mutex::new(Vec::new()));
        let t2 = Arc::clone(&tail);
        let fd = stderr.as_raw_fd();
        // SAFETY: plain fcntl calls on the stderr pipe this handle owns (back to blocking: the
        // drain thread simply blocks on it).
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut t = t2.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&chunk[..n]);
                if t.len() > STDERR_TAIL {
                    let cut = t.len() - STDERR_TAIL;
                    t.drain(..cut);
                }
            }
        });
        Ok(LineProcess {
            child,
            stopped: false,
            stdin,
            stdout,
            buf: Vec::new(),
            stderr_tail: tail,
        })
    }

    /// The last bytes the plugin wrote to stderr, as text.
    pub fn stderr_tail(&self) -> String {
        let t = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&t).trim().to_string()
    }

    /// How the process ended, if it has (waits up to 200 ms for it after its output closed).
    fn ended(&mut self) -> ProcError {
        let until = Instant::now() + Duration::from_millis(200);
        while !exited(&self.child) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Give the stderr drain thread a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(10));
        let how = match exited(&self.child) && !self.stopped {
            true => {
                self.stopped = true;
                stop(&mut self.child).map_or("ended".into(), describe_status)
            }
            false => "closed its output".into(),
        };
        let tail = self.stderr_tail();
        ProcError::Ended(if tail.is_empty() {
            how
        } else {
            format!("{how}; stderr: {}", truncate(&tail, 400))
        })
    }

    /// Sends one line (a newline is appended) and reads one reply line, before `timeout`.
    pub fn request(&mut self, line: &str, timeout: Duration) -> Result<String, ProcError> {
        let deadline = Instant::now() + timeout;
        let msg = format!("{line}\n");
        let bytes = msg.as_bytes();
        let mut written = 0;
        while written < bytes.len() {
            match self.stdin.write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut p = [libc::pollfd {
                        fd: self.stdin.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    if !wait_ready(&mut p, deadline) {
                        return Err(ProcError::TimedOut(timeout));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.ended()),
            }
        }
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            if self.buf.len() > OUTPUT_CAP {
                return Err(ProcError::Io(format!(
                    "reply line longer than {OUTPUT_CAP} bytes"
                )));
            }
            match pump(&mut self.stdout, &mut self.buf, OUTPUT_CAP + 1) {
                Ok(true) => return Err(self.ended()),
                Ok(false) => {}
                Err(e) => return Err(ProcError::Io(e.to_string())),
            }
            if self.buf.contains(&b'\n') {
                continue;
            }
            let mut p = [libc::pollfd {
                fd: self.stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if !wait_ready(&mut p, deadline) {
                return Err(ProcError::TimedOut(timeout));
            }
        }
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        if !self.stopped {
            stop(&mut self.child);
        }
    }
}

/// Shortens `s` to at most `n` characters for messages.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n).collect();
        format!("{t}…")
    }
}
