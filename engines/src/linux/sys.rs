//! Thin, safe wrappers over the Linux system calls the kernel engine uses: sockets, filters,
//! TUN/TAP devices, interface ioctls, CPU affinity. Every descriptor is an [`OwnedFd`].

use bpfconf_spec::cbpf::Insn;
use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turns a `-1`-style return value into an `io::Result`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Same as [`cvt`] for `ssize_t` returns.
fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// The symbolic name of the errno values the engine reports, e.g. `EINVAL`.
pub fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::EMSGSIZE) => "EMSGSIZE",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::ENETDOWN) => "ENETDOWN",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::EPROTONOSUPPORT) => "EPROTONOSUPPORT",
        Some(libc::ENOPROTOOPT) => "ENOPROTOOPT",
        Some(n) => return format!("errno {n} ({e})"),
        None => return e.to_string(),
    };
    format!("{name} ({e})")
}

/// Opens a socket with `SOCK_CLOEXEC`.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative return is a fresh descriptor we own.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `AF_UNIX`/`SOCK_DGRAM` socket pair `(sender, receiver)`.
pub fn unix_dgram_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid, writable array of two ints as socketpair() requires.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors were just created by socketpair() and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `setsockopt` with an arbitrary plain-data value.
fn setsockopt_raw<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of exactly `size_of::<T>()` bytes for the whole call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `setsockopt` with an `int` value.
pub fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    setsockopt_raw(fd, level, name, &val)
}

/// Attaches a classic filter with `SO_ATTACH_FILTER`; the kernel runs its checker
/// (`bpf_check_classic`) and converts/JITs the program.
pub fn attach_filter(fd: &OwnedFd, insns: &[Insn]) -> io::Result<()> {
    let mut filter: Vec<libc::sock_filter> = insns
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len =
        u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_mut_ptr(),
    };
    setsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// Removes a socket's filter (`SO_DETACH_FILTER`); `Ok` also if it had none.
pub fn detach_filter(fd: &OwnedFd) -> io::Result<()> {
    match setsockopt_raw(
        fd,
        libc::SOL_SOCKET,
        libc::SO_DETACH_FILTER,
        &0 as &libc::c_int,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// `send(2)`.
pub fn send(fd: &OwnedFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes.
    cvt_size(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) })
}

/// `recv(2)`.
pub fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes.
    cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// `recvfrom(2)` on a packet socket: the datagram length (with `MSG_TRUNC`, the full length)
/// and the `sll_pkttype` of the link-layer address.
pub fn recv_ll(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<(usize, u8)> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    let mut alen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is writable for its length; `sll`/`alen` are valid out-parameters sized
    // for a sockaddr_ll.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut alen,
        )
    })?;
    Ok((n, sll.sll_pkttype))
}

/// `write(2)`.
pub fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// `read(2)`.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Sends `frame` out of interface `ifindex` on an `AF_PACKET`/`SOCK_RAW` socket, with
/// `skb->protocol` = `proto` (host order).
pub fn send_ll(fd: &OwnedFd, ifindex: u32, proto: u16, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    // SAFETY: `frame` is readable for its length and `sll` is a valid sockaddr_ll of the
    // size passed.
    cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
}

/// Binds a packet socket to every protocol (`ETH_P_ALL`) on interface `ifindex`.
pub fn bind_ll_all(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Waits until `fd` is readable or `timeout_ms` passes; `true` if readable.
pub fn poll_in(fd: &OwnedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd.
        match cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) }) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sets `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take no pointers.
    let fl = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) }).map(drop)
}

/// Opens a path with `O_CLOEXEC`.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by open() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming interface `name`.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut r: libc::ifreq = unsafe { zeroed() };
    if name.len() >= r.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// The interface name stored in an `ifreq`.
fn ifreq_name(r: &libc::ifreq) -> String {
    r.ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect()
}

/// `ioctl(fd, req, &ifreq)`.
fn ioctl_ifreq(fd: &OwnedFd, req: libc::c_ulong, r: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every request used here reads/writes one `struct ifreq`, which `r` is.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, r as *mut libc::ifreq) }).map(drop)
}

/// Creates a TUN or TAP device with `TUNSETIFF` (flags e.g. `IFF_TAP | IFF_NO_PI`) from a name
/// pattern such as `bpfc%d`; returns the queue descriptor and the device name. The device lives
/// until the descriptor is closed.
pub fn create_tun(pattern: &str, flags: libc::c_int) -> io::Result<(OwnedFd, String)> {
    let fd = open(c"/dev/net/tun", libc::O_RDWR)?;
    let mut r = ifreq(pattern)?;
    r.ifr_ifru.ifru_flags = flags as libc::c_short;
    ioctl_ifreq(&fd, libc::TUNSETIFF as libc::c_ulong, &mut r)?;
    Ok((fd, ifreq_name(&r)))
}

/// Sets an interface's flags (`SIOCSIFFLAGS`) through control socket `ctl`.
pub fn set_if_flags(ctl: &OwnedFd, name: &str, flags: libc::c_int) -> io::Result<()> {
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_flags = flags as libc::c_short;
    ioctl_ifreq(ctl, libc::SIOCSIFFLAGS, &mut r)
}

/// Sets an Ethernet interface's MAC address (`SIOCSIFHWADDR`).
pub fn set_if_mac(ctl: &OwnedFd, name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut r = ifreq(name)?;
    // SAFETY: sockaddr is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr = unsafe { zeroed() };
    sa.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in sa.sa_data.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    r.ifr_ifru.ifru_hwaddr = sa;
    ioctl_ifreq(ctl, libc::SIOCSIFHWADDR, &mut r)
}

/// The index of interface `name` (`if_nametoindex`).
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Moves the calling thread into a new network namespace.
pub fn unshare_netns() -> io::Result<()> {
    // SAFETY: unshare() takes no pointers and affects only the calling thread's namespaces.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map(drop)
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    u.release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect()
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = get_affinity()?;
    // SAFETY: CPU_ISSET only reads the set, and every index is below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
        .collect())
}

fn get_affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed; pid 0 = this thread.
    cvt(unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok(set)
}

fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 = this thread.
    cvt(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) }).map(drop)
}

/// Pins the calling thread to one CPU until dropped, then restores the previous affinity.
/// `sched_setaffinity` migrates the thread before it returns, so code after [`CpuPin::new`]
/// runs on `cpu`.
pub struct CpuPin {
    saved: libc::cpu_set_t,
}

impl CpuPin {
    /// Pins the calling thread to `cpu`.
    pub fn new(cpu: u32) -> io::Result<CpuPin> {
        let saved = get_affinity()?;
        if cpu as usize >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
        let mut one: libc::cpu_set_t = unsafe { zeroed() };
        // SAFETY: `cpu` was checked to be below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu as usize, &mut one) };
        set_affinity(&one)?;
        Ok(CpuPin { saved })
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        // Restoring can only fail if the saved set became invalid (CPU hot-unplug); the thread
        // then stays pinned, which is harmless.
        let _ = set_affinity(&self.saved);
    }
}

/// Reads a small text file, trimmed; `None` if unreadable.
pub fn read_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Writes a small text file (sysctls).
pub fn write_text(path: &str, text: &str) -> io::Result<()> {
    std::fs::write(path, text)
}
