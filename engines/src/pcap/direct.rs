//! libpcap's `bpf_filter` called in this process, without the forked worker: for benchmarks
//! (`bpfconf bench`), where a fork and two pipe transfers per packet would swamp the few tens
//! of nanoseconds the filter takes.
//!
//! The engine isolates runs because libpcap 1.10.3 aborts on opcodes its validator accepts but
//! its interpreter lacks, and loops forever on a `ja` that wraps around. [`Direct::new`]
//! therefore takes only programs on which `bpf_filter` can do neither: `bpf_validate` accepts
//! them, every opcode is one of the canonical BSD ones (no `ret x`, no NetBSD `cop`/`copx`),
//! and every `ja` lands inside the program. Programs compiled by `pcap_compile` always qualify.

use super::ffi::{libpcap, BpfInsn, Libpcap};
use bpfconf_spec::cbpf::{Insn, Op};

/// A program run in-process by libpcap's `bpf_filter`.
#[derive(Debug, Clone)]
pub struct Direct {
    lib: &'static Libpcap,
    insns: Vec<BpfInsn>,
}

impl Direct {
    /// Validates `insns` (libpcap's `bpf_validate`, then the checks above); `Err` says why the
    /// program cannot be run in-process, or that libpcap is unavailable.
    pub fn new(insns: &[Insn]) -> Result<Direct, String> {
        let lib = libpcap()?;
        for (pc, i) in insns.iter().enumerate() {
            match Op::decode(i.code) {
                None | Some(Op::RetX | Op::Cop | Op::Copx) => {
                    return Err(format!(
                        "insn {pc}: opcode {:#06x} is not run by libpcap's bpf_filter",
                        i.code
                    ))
                }
                Some(Op::Ja) if pc as u64 + 1 + i.k as u64 >= insns.len() as u64 => {
                    return Err(format!("insn {pc}: `ja` leaves the program"))
                }
                _ => {}
            }
        }
        let insns: Vec<BpfInsn> = insns.iter().map(BpfInsn::from).collect();
        if !lib.validate(&insns) {
            return Err("libpcap bpf_validate() refused the program".into());
        }
        Ok(Direct { lib, insns })
    }

    /// `bpf_filter(insns, pkt, wirelen, pkt.len())`: the filter's return value.
    pub fn filter(&self, pkt: &[u8], wirelen: u32) -> u32 {
        let buflen = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
        // SAFETY: the program passed bpf_validate and the checks of `new`, so bpf_filter
        // neither aborts nor loops; it only reads the program and min(buflen, pkt.len()) =
        // buflen bytes of `pkt` (a packet longer than 4 GiB is seen as its first 4 GiB - 1).
        unsafe { (self.lib.filter_fn())(self.insns.as_ptr(), pkt.as_ptr(), wirelen, buflen) }
    }

    /// The library's version string.
    pub fn version(&self) -> &str {
        self.lib.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfconf_spec::cbpf::Op;

    #[test]
    fn takes_only_programs_bpf_filter_can_run_in_process() {
        if libpcap().is_err() {
            eprintln!("skipped: libpcap unavailable");
            return;
        }
        let st = |op: Op, k| Insn::stmt(op.code(), k);
        let len_prog = [st(Op::LdLen, 0), st(Op::RetA, 0)];
        let d = Direct::new(&len_prog).unwrap();
        assert_eq!(d.filter(&[0; 10], 60), 60);
        for bad in [
            vec![st(Op::RetX, 0)],
            vec![st(Op::Ja, u32::MAX), st(Op::RetK, 1)],
            vec![st(Op::Ja, 1), st(Op::RetK, 1)],
            vec![Insn::stmt(0x0f, 0), st(Op::RetK, 1)],
        ] {
            assert!(Direct::new(&bad).is_err(), "{bad:?}");
        }
    }
}
