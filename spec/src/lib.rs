//! bpfconf-spec: what BPF is — instruction models, encodings, assemblers, checkers and test cases.
//!
//! Layers, bottom up:
//! - [`dialect`]: the classic BPF dialects we model (Linux, BSD/libpcap, NetBSD).
//! - [`cbpf`]: the classic instruction model, its assembler/disassembler, the textual formats users
//!   paste (tcpdump `-dd`/`-ddd`, bpf_asm comma form) and the per-dialect checker.
//! - [`ebpf`]: the eBPF instruction model, encodings, assembler and ISA table.
//! - [`cop`]: the standard NetBSD coprocessor table used by the spec cases.
//! - [`case`]: the TOML case schema and its loader.

pub mod case;
pub mod cbpf;
pub mod cop;
pub mod dialect;
pub mod ebpf;
#[cfg(test)]
mod testrng;

pub use dialect::Dialect;
