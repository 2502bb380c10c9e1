//! Disassembler to the kernel's `bpf_asm` syntax.
//! PLACEHOLDER: being written; API fixed below.

use super::Insn;

/// Disassembles one instruction at `pc` (jump targets printed as labels `lN`).
pub fn disasm_insn(insn: &Insn, pc: usize) -> String {
    format!("{pc}: {{ {:#04x}, {}, {}, {:#010x} }}", insn.code, insn.jt, insn.jf, insn.k)
}

/// Disassembles a program to text that [`super::asm::assemble`] turns back into the same
/// instructions.
pub fn disassemble(prog: &[Insn]) -> String {
    prog.iter()
        .enumerate()
        .map(|(pc, i)| disasm_insn(i, pc) + "\n")
        .collect()
}
