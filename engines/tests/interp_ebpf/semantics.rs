//! Edge values of the arithmetic, byte-swap, jump, load and atomic instructions.

use super::{asm, r0, run_mem};
use bpfconf_engines::interp::ebpf;

#[test]
fn division_by_zero_gives_zero_in_both_widths() {
    assert_eq!(
        r0("lddw %r0, 0x100000007\nmov %r1, 0\ndiv %r0, %r1\nexit"),
        0
    );
    assert_eq!(
        r0("lddw %r0, 0x100000007\nmov %r1, 0\ndiv32 %r0, %r1\nexit"),
        0
    );
    assert_eq!(r0("lddw %r0, 0x100000007\ndiv %r0, 0\nexit"), 0);
    assert_eq!(r0("lddw %r0, 0x100000007\ndiv32 %r0, 0\nexit"), 0);
    assert_eq!(r0("mov %r0, -7\nmov %r1, 0\nsdiv %r0, %r1\nexit"), 0);
    assert_eq!(r0("mov %r0, -7\nsdiv32 %r0, 0\nexit"), 0);
}

#[test]
fn modulo_by_zero_keeps_dst_and_alu_zero_extends() {
    let m64 = "lddw %r0, 0xffffffff00000007\nmov %r1, 0\nmod %r0, %r1\nexit";
    assert_eq!(r0(m64), 0xffff_ffff_0000_0007);
    let m32 = "lddw %r0, 0xffffffff00000007\nmov %r1, 0\nmod32 %r0, %r1\nexit";
    assert_eq!(r0(m32), 7);
    assert_eq!(r0("lddw %r0, 0xffffffff00000007\nmod32 %r0, 0\nexit"), 7);
    assert_eq!(r0("mov %r0, -7\nsmod %r0, 0\nexit"), -7i64 as u64);
    assert_eq!(r0("mov %r0, -7\nsmod32 %r0, 0\nexit"), 0xffff_fff9);
}

#[test]
fn signed_overflow_wraps_and_modulo_truncates() {
    let min64 = "lddw %r0, 0x8000000000000000\n";
    assert_eq!(r0(&format!("{min64}sdiv %r0, -1\nexit")), 1 << 63);
    assert_eq!(
        r0(&format!("{min64}mov %r1, -1\nsdiv %r0, %r1\nexit")),
        1 << 63
    );
    assert_eq!(r0(&format!("{min64}smod %r0, -1\nexit")), 0);
    assert_eq!(
        r0("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit"),
        0x8000_0000
    );
    assert_eq!(
        r0("mov32 %r0, 0x80000000\nmov %r1, -1\nsmod32 %r0, %r1\nexit"),
        0
    );
    assert_eq!(r0("mov %r0, -13\nsmod %r0, 3\nexit"), -1i64 as u64);
    assert_eq!(r0("mov %r0, 13\nsmod %r0, -3\nexit"), 1);
    assert_eq!(r0("mov %r0, -13\nsmod32 %r0, 3\nexit"), 0xffff_ffff);
    assert_eq!(r0("mov %r0, -7\nsdiv %r0, 2\nexit"), -3i64 as u64);
    // Unsigned division by a negative immediate: ALU64 sign-extends, ALU takes 32 bits.
    assert_eq!(r0("mov %r0, -1\ndiv %r0, -1\nexit"), 1);
    assert_eq!(r0("mov %r0, -1\ndiv32 %r0, -1\nexit"), 1);
    assert_eq!(r0("mov %r0, 5\ndiv %r0, -1\nexit"), 0);
    // INT_MIN * -1 wraps.
    assert_eq!(r0(&format!("{min64}mul %r0, -1\nexit")), 1 << 63);
    assert_eq!(r0("mov32 %r0, 0x80000000\nneg32 %r0\nexit"), 0x8000_0000);
}

#[test]
fn shifts_mask_their_amount() {
    assert_eq!(r0("mov %r0, 1\nlsh %r0, 63\nexit"), 1 << 63);
    assert_eq!(r0("mov %r0, 1\nmov %r1, 64\nlsh %r0, %r1\nexit"), 1);
    assert_eq!(r0("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit"), 2);
    assert_eq!(r0("mov %r0, 1\nmov %r1, 32\nlsh32 %r0, %r1\nexit"), 1);
    assert_eq!(r0("mov %r0, -1\nmov %r1, 64\nrsh %r0, %r1\nexit"), u64::MAX);
    assert_eq!(r0("mov %r0, -1\nrsh %r0, 63\nexit"), 1);
    assert_eq!(
        r0("lddw %r0, 0x8000000000000000\narsh %r0, 63\nexit"),
        u64::MAX
    );
    assert_eq!(r0("mov %r0, -1\narsh32 %r0, 31\nexit"), 0xffff_ffff);
    assert_eq!(
        r0("mov32 %r0, 0x80000000\nmov %r1, 33\narsh32 %r0, %r1\nexit"),
        0xc000_0000
    );
}

#[test]
fn alu32_zero_extends_and_immediates_sign_extend_for_alu64() {
    assert_eq!(r0("mov %r0, -1\nadd32 %r0, 1\nexit"), 0);
    assert_eq!(r0("mov %r0, -1\nexit"), u64::MAX);
    assert_eq!(r0("mov32 %r0, -1\nexit"), 0xffff_ffff);
    assert_eq!(
        r0("lddw %r0, 0x1ffffffff\nmov32 %r0, %r0\nexit"),
        0xffff_ffff
    );
    assert_eq!(r0("mov %r0, 0\nor %r0, -2\nexit"), -2i64 as u64);
    assert_eq!(r0("mov %r0, 3\nneg %r0\nexit"), -3i64 as u64);
    assert_eq!(r0("mov %r0, 3\nneg32 %r0\nexit"), 0xffff_fffd);
}

#[test]
fn movsx_sign_extends_every_width() {
    assert_eq!(r0("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit"), -128i64 as u64);
    assert_eq!(r0("mov %r1, 0x80\nmovsx832 %r0, %r1\nexit"), 0xffff_ff80);
    assert_eq!(
        r0("mov %r1, 0x8000\nmovsx1664 %r0, %r1\nexit"),
        -32768i64 as u64
    );
    assert_eq!(r0("mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit"), 0xffff_8000);
    assert_eq!(
        r0("mov32 %r1, 0x80000000\nmovsx3264 %r0, %r1\nexit"),
        0xffff_ffff_8000_0000
    );
    assert_eq!(r0("mov %r1, 0x17f\nmovsx864 %r0, %r1\nexit"), 0x7f);
}

#[test]
fn sign_extending_loads() {
    let mem = [0x80, 0x00, 0x00, 0x80, 0x7f];
    assert_eq!(run_mem("ldxsb %r0, [%r1]\nexit", &mem).ret, -128i64 as u64);
    assert_eq!(
        run_mem("ldxsh %r0, [%r1+2]\nexit", &mem).ret,
        0xffff_ffff_ffff_8000
    );
    assert_eq!(
        run_mem("ldxsw %r0, [%r1]\nexit", &mem).ret,
        0xffff_ffff_8000_0080
    );
    assert_eq!(run_mem("ldxsb %r0, [%r1+4]\nexit", &mem).ret, 0x7f);
    assert_eq!(run_mem("ldxw %r0, [%r1]\nexit", &mem).ret, 0x8000_0080);
    assert_eq!(run_mem("ldxb %r0, [%r1]\nexit", &mem).ret, 0x80);
}

#[test]
fn byte_swaps_at_every_width() {
    let v = "lddw %r0, 0x1122334455667788\n";
    let cases = [
        ("le16", 0x7788),
        ("le32", 0x5566_7788),
        ("le64", 0x1122_3344_5566_7788),
        ("be16", 0x8877),
        ("be32", 0x8877_6655),
        ("be64", 0x8877_6655_4433_2211),
        ("bswap16", 0x8877),
        ("bswap32", 0x8877_6655),
        ("bswap64", 0x8877_6655_4433_2211),
    ];
    for (op, want) in cases {
        assert_eq!(r0(&format!("{v}{op} %r0\nexit")), want, "{op}");
    }
}

#[test]
fn jmp32_compares_low_halves_only() {
    let taken = |cmp: &str| r0(&format!("mov %r0, 0\n{cmp}\nexit\nmov %r0, 1\nexit"));
    let set = "lddw %r1, 0x100000005\n";
    assert_eq!(taken(&format!("{set}jeq32 %r1, 5, +1")), 1);
    assert_eq!(taken(&format!("{set}jeq %r1, 5, +1")), 0);
    let neg = "lddw %r1, 0x80000000\n";
    assert_eq!(taken(&format!("{neg}jslt32 %r1, 0, +1")), 1);
    assert_eq!(taken(&format!("{neg}jslt %r1, 0, +1")), 0);
    assert_eq!(taken(&format!("{neg}mov %r2, 1\njsgt32 %r2, %r1, +1")), 1);
    let hi = "lddw %r1, 0xffffffff00000001\nmov %r2, 2\n";
    assert_eq!(taken(&format!("{hi}jlt32 %r1, %r2, +1")), 1);
    assert_eq!(taken(&format!("{hi}jlt %r1, %r2, +1")), 0);
    assert_eq!(taken(&format!("{hi}jset32 %r1, 0x2, +1")), 0);
    // JMP compares with the immediate sign-extended.
    assert_eq!(taken("mov %r1, -1\njeq %r1, -1, +1"), 1);
    assert_eq!(taken("mov32 %r1, -1\njeq %r1, -1, +1"), 0);
    assert_eq!(taken("mov32 %r1, -1\njeq32 %r1, -1, +1"), 1);
}

#[test]
fn lddw_loads_64_bits_and_unresolvable_map_references_fault() {
    assert_eq!(
        r0("lddw %r0, 0x1122334455667788\nexit"),
        0x1122_3344_5566_7788
    );
    assert_eq!(r0("lddw %r0, -1\nexit"), u64::MAX);
    assert_eq!(r0("lddw %r0, 0x80000000\nexit"), 0x8000_0000);
    // A map-less interpreter has no map 3 (maps themselves: tests/interp_maps.rs).
    let prog = asm("lddw_map_fd %r1, 3\nmov %r0, 0\nexit");
    let msg = super::fault_of(&ebpf::Interpreter::new(&prog), &[]);
    assert_eq!(
        msg,
        "`lddw_map_fd` names map 3, but the program has 0 maps (insn 0)"
    );
    let prog = asm("lddw_var_addr %r1, 3\nmov %r0, 0\nexit");
    let msg = super::fault_of(&ebpf::Interpreter::new(&prog), &[]);
    assert!(msg.contains("is not supported"), "{msg}");
}

/// Runs one atomic on an 8-byte buffer holding `mem`, with `%r2 = src` and `%r0 = r0`, and
/// returns (R0, R2, the buffer).
fn atomic(op: &str, mem: u64, src: u64, r0: u64) -> (u64, u64, u64) {
    let text = format!(
        "lddw %r2, {src:#x}\nlddw %r0, {r0:#x}\n{op} [%r1+0], %r2\n\
         stxdw [%r10-8], %r0\nmov %r0, %r2\nldxdw %r7, [%r10-8]\n\
         stxdw [%r1+8], %r7\nexit"
    );
    let mut buf = mem.to_le_bytes().to_vec();
    buf.extend([0; 8]);
    let out = run_mem(&text, &buf);
    let word = |i: usize| u64::from_le_bytes(out.mem[i..i + 8].try_into().unwrap());
    (word(8), out.ret, word(0))
}

#[test]
fn atomics_64() {
    let (m, s) = (0x1111_1111_8000_0001u64, 0xffff_ffff_0000_0003u64);
    let r = 0x77;
    assert_eq!(atomic("lock add", m, s, r), (r, s, m.wrapping_add(s)));
    assert_eq!(atomic("lock or", m, s, r), (r, s, m | s));
    assert_eq!(atomic("lock and", m, s, r), (r, s, m & s));
    assert_eq!(atomic("lock xor", m, s, r), (r, s, m ^ s));
    assert_eq!(atomic("lock fetch add", m, s, r), (r, m, m.wrapping_add(s)));
    assert_eq!(atomic("lock fetch or", m, s, r), (r, m, m | s));
    assert_eq!(atomic("lock fetch and", m, s, r), (r, m, m & s));
    assert_eq!(atomic("lock fetch xor", m, s, r), (r, m, m ^ s));
    assert_eq!(atomic("lock xchg", m, s, r), (r, m, s));
    assert_eq!(atomic("lock cmpxchg", m, s, m), (m, s, s));
    assert_eq!(atomic("lock cmpxchg", m, s, r), (m, s, m));
}

#[test]
fn atomics_32_touch_the_low_word_and_zero_extend() {
    let (m, s) = (0x1111_1111_8000_0001u64, 0xffff_ffff_0000_0003u64);
    let hi = m & !0xffff_ffff;
    let lo = |v: u64| v & 0xffff_ffff;
    let r = 0x77;
    let with = |v: u64| hi | lo(v);
    assert_eq!(
        atomic("lock add32", m, s, r),
        (r, s, with(m.wrapping_add(s)))
    );
    assert_eq!(atomic("lock or32", m, s, r), (r, s, with(m | s)));
    assert_eq!(atomic("lock and32", m, s, r), (r, s, with(m & s)));
    assert_eq!(atomic("lock xor32", m, s, r), (r, s, with(m ^ s)));
    assert_eq!(atomic("lock fetch add32", m, s, r), (r, lo(m), with(m + 3)));
    assert_eq!(atomic("lock fetch or32", m, s, r), (r, lo(m), with(m | s)));
    assert_eq!(atomic("lock fetch and32", m, s, r), (r, lo(m), with(m & s)));
    assert_eq!(atomic("lock fetch xor32", m, s, r), (r, lo(m), with(m ^ s)));
    assert_eq!(atomic("lock xchg32", m, s, r), (r, lo(m), with(s)));
    // CMPXCHG32 compares R0's low half; R0 receives the old word zero-extended either way.
    let r0_match = 0xdead_beef_0000_0000 | lo(m);
    assert_eq!(
        atomic("lock cmpxchg32", m, s, r0_match),
        (lo(m), s, with(s))
    );
    assert_eq!(atomic("lock cmpxchg32", m, s, r), (lo(m), s, m));
}
