//! Integration tests of the eBPF reference interpreter (`interp`): the whole bpf_conformance
//! suite, edge values of every instruction family, calls and memory safety, and random programs
//! that must never panic.

use bpfconf_engines::interp::ebpf::{self, EbpfResult, Interpreter};
use bpfconf_engines::RunError;
use bpfconf_spec::ebpf::asm::assemble;
use bpfconf_spec::ebpf::Insn;

mod support;

#[path = "interp_ebpf/calls.rs"]
mod calls;
#[path = "interp_ebpf/conformance.rs"]
mod conformance;
#[path = "interp_ebpf/memory.rs"]
mod memory;
#[path = "interp_ebpf/random.rs"]
mod random;
#[path = "interp_ebpf/semantics.rs"]
mod semantics;

/// Assembles bpf_conformance-syntax text, panicking on errors (test programs are fixed).
fn asm(text: &str) -> Vec<Insn> {
    assemble(text).unwrap_or_else(|e| panic!("bad test assembly: {e}\n{text}"))
}

/// Runs `text` on `mem`; the run must succeed.
fn run_mem(text: &str, mem: &[u8]) -> EbpfResult {
    ebpf::run(&asm(text), mem).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// R0 after running `text` on empty memory.
fn r0(text: &str) -> u64 {
    run_mem(text, &[]).ret
}

/// The fault message of running `prog` on `mem`; the run must fault.
fn fault_of(interp: &Interpreter, mem: &[u8]) -> String {
    match interp.run(mem) {
        Err(RunError::Fault(m)) => m,
        other => panic!("expected a fault, got {other:?}"),
    }
}

/// The fault message of running `text` on `mem`.
fn fault(text: &str, mem: &[u8]) -> String {
    fault_of(&Interpreter::new(&asm(text)), mem)
}
