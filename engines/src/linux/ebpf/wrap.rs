//! The XDP wrapper around a program under test: a main function that turns the XDP context
//! into bpf_conformance's calling convention (R1 = memory, R2 = its length), calls the program
//! as a bpf-to-bpf subprogram, and stores the callee's full 64-bit R0 in a one-entry array map.
//!
//! Layout for a memory of `n > 0` bytes (slot: instruction):
//!
//! ```text
//!  0: r2 = *(u32 *)(r1 + 0)      xdp_md.data
//!  1: r3 = *(u32 *)(r1 + 4)      xdp_md.data_end
//!  2: r1 = r2
//!  3: r4 = r2
//!  4: r4 += n
//!  5: if r4 > r3 goto 13         the verifier's proof that [data, data + n) is readable
//!  6: r2 = n
//!  7: call pc+7                  the program under test, a subprogram at slot 15
//!  8: r1 = map_value(map, 0)     lddw, BPF_PSEUDO_MAP_VALUE (two slots)
//! 10: *(u64 *)(r1 + 0) = r0
//! 11: r0 = XDP_PASS              "completed"
//! 12: exit
//! 13: r0 = XDP_DROP              "the test run gave fewer than n bytes" (never, see ebpf.rs)
//! 14: exit
//! 15: the program
//! ```
//!
//! For an empty memory slots 0–6 are `r1 = 0; r2 = 0` and there is no failure exit: the
//! program starts at slot 8.
//!
//! # Relocation
//! The program is moved as one block, so everything in it that is relative to its own slots
//! stays valid: jump offsets (`off`, and `imm` of `ja32`), `call` to a local function
//! (`src` = `BPF_PSEUDO_CALL`, `imm` relative to the next slot) and `lddw` of a function
//! address (`src` = `BPF_PSEUDO_FUNC`, also relative). eBPF has no absolute instruction
//! references in the instruction stream itself; the absolute ones live outside it (BTF
//! `func_info`/`line_info`, and the instruction-array maps of indirect jumps), which this
//! engine never passes. A jump that left the original program (before its first or after its
//! last slot) now lands in the wrapper or past the end; the verifier rejects both (it checks
//! that jumps stay inside their subprogram), as it rejected the original. Map references
//! (`lddw` with a map `src`) would need map descriptors: they are refused before loading.
//! The verifier log numbers slots of the wrapped program: subtract [`prologue_len`].

use bpfconf_spec::ebpf::{alu, class, jmp, mode, pseudo, size, source, Insn};
use std::os::fd::RawFd;

/// XDP verdict the wrapper returns after storing R0.
pub const XDP_PASS: u32 = 2;
/// XDP verdict of the wrapper's failure exit (memory shorter than the program was built for).
pub const XDP_DROP: u32 = 1;

/// `src` values of `lddw` that refer to maps (`BPF_PSEUDO_MAP_FD`, `_VALUE`, `_IDX`,
/// `_IDX_VALUE`).
const MAP_PSEUDOS: [u8; 4] = [pseudo::MAP_FD, pseudo::MAP_VALUE, 5, 6];

/// Why a program cannot be handed to the kernel as is, if it cannot.
pub fn unsupported(insns: &[Insn]) -> Option<String> {
    let mut i = 0;
    while i < insns.len() {
        let insn = &insns[i];
        if insn.is_lddw() {
            if MAP_PSEUDOS.contains(&insn.src) {
                return Some(format!(
                    "maps not supported yet (slot {i}: lddw with src {})",
                    insn.src
                ));
            }
            i += 1;
        }
        i += 1;
    }
    None
}

fn mov_k(dst: u8, imm: i32) -> Insn {
    Insn::new(class::ALU64 | alu::MOV | source::K, dst, 0, 0, imm)
}

fn mov_x(dst: u8, src: u8) -> Insn {
    Insn::new(class::ALU64 | alu::MOV | source::X, dst, src, 0, 0)
}

fn ldxw(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(class::LDX | mode::MEM | size::W, dst, src, off, 0)
}

fn exit() -> Insn {
    Insn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0)
}

/// Number of wrapper slots before the program for a memory of `mem_len` bytes.
pub fn prologue_len(mem_len: usize) -> usize {
    if mem_len == 0 {
        8
    } else {
        15
    }
}

/// The wrapped program for a memory of `mem_len` bytes (at most `MAX_PACKET_OFF` = 0xffff),
/// storing R0 into the single value of array map `map`.
pub fn wrap(program: &[Insn], mem_len: usize, map: RawFd) -> Vec<Insn> {
    let n = i32::try_from(mem_len).expect("memory length checked by the caller");
    let mut w = Vec::with_capacity(prologue_len(mem_len) + program.len());
    if n == 0 {
        w.push(mov_k(1, 0));
        w.push(mov_k(2, 0));
    } else {
        w.push(ldxw(2, 1, 0));
        w.push(ldxw(3, 1, 4));
        w.push(mov_x(1, 2));
        w.push(mov_x(4, 2));
        w.push(Insn::new(class::ALU64 | alu::ADD | source::K, 4, 0, 0, n));
        // Jump to the failure exit, 8 slots after this jump's successor.
        w.push(Insn::new(class::JMP | jmp::JGT | source::X, 4, 3, 7, 0));
        w.push(mov_k(2, n));
    }
    let call_at = w.len();
    let start = prologue_len(mem_len) as i32;
    w.push(Insn::new(
        class::JMP | jmp::CALL,
        0,
        pseudo::CALL,
        0,
        start - call_at as i32 - 1,
    ));
    w.push(Insn::new(
        class::LD | mode::IMM | size::DW,
        1,
        pseudo::MAP_VALUE,
        0,
        map,
    ));
    w.push(Insn::new(0, 0, 0, 0, 0));
    w.push(Insn::new(class::STX | mode::MEM | size::DW, 1, 0, 0, 0));
    w.push(mov_k(0, XDP_PASS as i32));
    w.push(exit());
    if n != 0 {
        w.push(mov_k(0, XDP_DROP as i32));
        w.push(exit());
    }
    debug_assert_eq!(w.len(), prologue_len(mem_len));
    w.extend_from_slice(program);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let prog = [mov_k(0, 7), exit()];
        for n in [0usize, 1, 64] {
            let w = wrap(&prog, n, 9);
            let p = prologue_len(n);
            assert_eq!(w.len(), p + 2);
            assert_eq!(&w[p..], &prog);
            let call = w
                .iter()
                .position(|i| i.code == class::JMP | jmp::CALL)
                .unwrap();
            assert_eq!(call as i32 + 1 + w[call].imm, p as i32);
            let lddw = &w[call + 1];
            assert!(lddw.is_lddw() && lddw.src == pseudo::MAP_VALUE && lddw.imm == 9);
            if n > 0 {
                let jgt = &w[5];
                assert_eq!(6 + jgt.off as usize, 13);
                assert_eq!(w[13], mov_k(0, XDP_DROP as i32));
            }
        }
    }

    #[test]
    fn map_references_are_refused() {
        let lddw = |src| Insn::new(class::LD | mode::IMM | size::DW, 1, src, 0, 3);
        for src in MAP_PSEUDOS {
            let p = [lddw(src), Insn::default(), exit()];
            assert!(unsupported(&p).unwrap().contains("maps not supported yet"));
        }
        // A plain lddw whose high half looks like a map lddw is not a map reference.
        let p = [lddw(0), lddw(1), exit()];
        assert!(unsupported(&p).is_none());
    }
}
