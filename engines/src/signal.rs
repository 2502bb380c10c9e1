//! Signal names for the verdicts of crash-isolated runs (libpcap workers, rbpf JIT children,
//! plugin processes).

/// The conventional name of a signal (`SIGABRT`), or `signal N` for others.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGALRM => "SIGALRM",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {sig}"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::signal_name(libc::SIGABRT), "SIGABRT");
        assert_eq!(super::signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(super::signal_name(64), "signal 64");
    }
}
