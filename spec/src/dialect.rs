//! The classic BPF dialects modelled by the spec.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A classic BPF dialect: one family of implementations sharing semantics and a checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Linux socket filters (`SO_ATTACH_FILTER`): ancillary loads, negative offsets, `bpf_check_classic`.
    Linux,
    /// BSD as implemented by libpcap's userland `bpf_filter()` and `bpf_validate()`.
    Bsd,
    /// NetBSD's `bpf_filter()` with the BPF_COP/BPF_COPX coprocessor and external memory.
    Netbsd,
}

impl Dialect {
    /// Every dialect, in a stable order.
    pub const ALL: [Dialect; 3] = [Dialect::Linux, Dialect::Bsd, Dialect::Netbsd];

    /// The lowercase name used in TOML files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Linux => "linux",
            Dialect::Bsd => "bsd",
            Dialect::Netbsd => "netbsd",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "linux" => Ok(Dialect::Linux),
            "bsd" | "libpcap" | "pcap" => Ok(Dialect::Bsd),
            "netbsd" => Ok(Dialect::Netbsd),
            other => Err(format!(
                "unknown dialect `{other}` (expected linux, bsd or netbsd)"
            )),
        }
    }
}
