//! The eBPF benchmark's programs (bpf_conformance assembly): one dominated by ALU work, one by
//! memory traffic. Both are idempotent, so the kernel's `repeat` loop, which does not reset
//! the data between runs, measures the same work every time.

/// One eBPF benchmark program.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// Short name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The assembly.
    pub asm: &'static str,
    /// Length of the memory it runs on (R1 = the memory, R2 = its length).
    pub mem_len: usize,
}

/// 1000 iterations of mixed 64- and 32-bit arithmetic (add, mul, xor, shifts, or, 64-bit
/// division and 32-bit modulo by non-zero values), 17 instructions each.
const ALU: &str = "
    mov %r0, 0x12345
    mov %r1, 1000
    lddw %r3, 0x9e3779b97f4a7c15
    mov %r4, 0x2545
loop:
    add %r0, %r3
    mul %r0, %r4
    xor %r0, %r1
    mov32 %r5, %r0
    rsh32 %r5, 3
    add32 %r5, 0x55
    mul32 %r5, 7
    lsh %r5, 17
    xor %r0, %r5
    mov %r6, %r0
    rsh %r6, 40
    or %r6, 1
    div %r3, %r6
    add %r3, %r0
    mod32 %r4, 0x7fff
    add %r4, 3
    sub %r1, 1
    jne %r1, 0, loop
    exit
";

/// Four passes over the first half of a 1024-byte memory: 64 iterations of 8-byte, 4-byte,
/// 2-byte and 1-byte loads, a round trip through the stack and a store into the second half
/// (never read, so the program's result does not depend on earlier runs).
const MEMORY: &str = "
    mov %r0, 0
    mov %r9, 4
pass:
    mov %r6, %r1
    mov %r3, 0
loop:
    ldxdw %r4, [%r6+0]
    ldxw %r5, [%r6+4]
    ldxh %r7, [%r6+2]
    ldxb %r8, [%r6+7]
    stxdw [%r10-8], %r4
    stxw [%r10-12], %r5
    stxh [%r10-14], %r7
    stxb [%r10-15], %r8
    ldxdw %r2, [%r10-8]
    xor %r2, %r3
    add %r2, %r9
    stxdw [%r6+512], %r2
    ldxw %r5, [%r10-12]
    add %r0, %r4
    add %r0, %r5
    ldxh %r7, [%r10-14]
    add %r0, %r7
    ldxb %r8, [%r10-15]
    add %r0, %r8
    stxw [%r6+516], %r5
    add %r6, 8
    add %r3, 8
    jlt %r3, 512, loop
    sub %r9, 1
    jne %r9, 0, pass
    exit
";

/// The programs, in report order.
pub const PROGRAMS: &[Program] = &[
    Program {
        name: "empty",
        description: "`mov r0, 1; exit` on 1 KiB: the fixed cost of one run",
        asm: "mov %r0, 1\nexit\n",
        mem_len: 1024,
    },
    Program {
        name: "alu",
        description: "1000 iterations of mixed 64/32-bit ALU (17 insns each)",
        asm: ALU,
        mem_len: 0,
    },
    Program {
        name: "memory",
        description: "4 passes of 64 iterations of loads/stores over 1 KiB and the stack",
        asm: MEMORY,
        mem_len: 1024,
    },
];

/// The memory a program runs on: bytes 0, 1, 2, … (mod 251).
pub fn memory(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble_and_run_on_the_interpreter() {
        for p in PROGRAMS {
            let insns = bpfconf_spec::ebpf::asm::assemble(p.asm).unwrap();
            let mut mem = memory(p.mem_len);
            let first = bpfconf_engines::interp::ebpf::run(&insns, &mem).unwrap();
            // Idempotent: a second run on the first run's output gives the same result.
            mem.copy_from_slice(&first.mem);
            let second = bpfconf_engines::interp::ebpf::run(&insns, &mem).unwrap();
            assert_eq!(
                (first.ret, &first.mem),
                (second.ret, &second.mem),
                "{}",
                p.name
            );
        }
    }
}
