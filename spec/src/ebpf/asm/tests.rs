//! Tests of the assembler: encodings from RFC 9669, bpf_conformance's syntax rules and files.

use super::*;
use crate::ebpf::data::testutil::{conformance_tests, Rng};
use crate::ebpf::to_bytes;

fn bytes(text: &str) -> Vec<u8> {
    to_bytes(&assemble(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn err(text: &str) -> AsmError {
    assemble(text).expect_err(text)
}

/// Every `-- asm` section of bpf_conformance's tests assembles, to the file's `-- raw` slots when
/// it has them.
#[test]
fn assembles_every_conformance_file() {
    let Some(tests) = conformance_tests() else {
        return;
    };
    assert_eq!(tests.len(), 313);
    for t in &tests {
        let asm = t
            .asm_program
            .as_ref()
            .expect("every tests/ file has -- asm");
        assert!(!asm.is_empty(), "{}", t.name);
        if let Some(raw) = &t.raw {
            assert_eq!(to_bytes(asm), to_bytes(raw), "{}", t.name);
        }
    }
}

#[test]
fn encodings_match_rfc9669() {
    // (assembly, the 8 or 16 bytes RFC 9669's encoding gives, little-endian)
    let cases = [
        ("mov32 %r0, 1", "b4 00 00 00 01 00 00 00"),
        ("mov %r1, -2", "b7 01 00 00 fe ff ff ff"),
        ("add %r1, %r2", "0f 21 00 00 00 00 00 00"),
        ("add32 %r1, 0x11223344", "04 01 00 00 44 33 22 11"),
        ("sub32 %r3, %r4", "1c 43 00 00 00 00 00 00"),
        ("mul %r1, 3", "27 01 00 00 03 00 00 00"),
        ("div32 %r1, %r2", "3c 21 00 00 00 00 00 00"),
        ("sdiv %r0, %r1", "3f 10 01 00 00 00 00 00"),
        ("sdiv32 %r0, -3", "34 00 01 00 fd ff ff ff"),
        ("mod %r0, 7", "97 00 00 00 07 00 00 00"),
        ("smod32 %r0, 3", "94 00 01 00 03 00 00 00"),
        ("smod %r0, %r9", "9f 90 01 00 00 00 00 00"),
        ("or %r0, %r10", "4f a0 00 00 00 00 00 00"),
        ("and32 %r0, 0xff", "54 00 00 00 ff 00 00 00"),
        ("lsh %r0, 63", "67 00 00 00 3f 00 00 00"),
        ("rsh32 %r0, %r1", "7c 10 00 00 00 00 00 00"),
        ("arsh %r0, 1", "c7 00 00 00 01 00 00 00"),
        ("xor32 %r2, %r3", "ac 32 00 00 00 00 00 00"),
        ("neg %r0", "87 00 00 00 00 00 00 00"),
        ("neg32 %r5", "84 05 00 00 00 00 00 00"),
        ("movsx832 %r0, %r1", "bc 10 08 00 00 00 00 00"),
        ("movsx1632 %r0, %r1", "bc 10 10 00 00 00 00 00"),
        ("movsx864 %r0, %r1", "bf 10 08 00 00 00 00 00"),
        ("movsx1664 %r0, %r1", "bf 10 10 00 00 00 00 00"),
        ("movsx3264 %r0, %r9", "bf 90 20 00 00 00 00 00"),
        ("le16 %r0", "d4 00 00 00 10 00 00 00"),
        ("le64 %r0", "d4 00 00 00 40 00 00 00"),
        ("be16 %r3", "dc 03 00 00 10 00 00 00"),
        ("be32 %r0", "dc 00 00 00 20 00 00 00"),
        ("bswap16 %r0", "d7 00 00 00 10 00 00 00"),
        ("swap32 %r0", "d7 00 00 00 20 00 00 00"),
        ("bswap64 %r1", "d7 01 00 00 40 00 00 00"),
        ("ldxdw %r0, [%r1+8]", "79 10 08 00 00 00 00 00"),
        ("ldxdw %r0, [%r10-8]", "79 a0 f8 ff 00 00 00 00"),
        ("ldxb %r8, [%r0+0x1]", "71 08 01 00 00 00 00 00"),
        ("ldxh %r0, [%r1]", "69 10 00 00 00 00 00 00"),
        ("ldxw %r0, [%r1+0xffff]", "61 10 ff ff 00 00 00 00"),
        ("ldxsb %r0, [%r10-1]", "91 a0 ff ff 00 00 00 00"),
        ("ldxsh %r0, [%r10-2]", "89 a0 fe ff 00 00 00 00"),
        ("ldxsw %r0, [%r10-4]", "81 a0 fc ff 00 00 00 00"),
        ("stxw [%r10-4], %r1", "63 1a fc ff 00 00 00 00"),
        ("stxb [%r1+2], %r3", "73 31 02 00 00 00 00 00"),
        ("stdw [%r1+0], 5", "7a 01 00 00 05 00 00 00"),
        ("stw [%r10-4], 0x80000001", "62 0a fc ff 01 00 00 80"),
        ("sth [%r1+2], -1", "6a 01 02 00 ff ff ff ff"),
        ("lock add [%r10-8], %r1", "db 1a f8 ff 00 00 00 00"),
        ("lock add32 [%r10-4], %r1", "c3 1a fc ff 00 00 00 00"),
        ("lock fetch add [%r10-8], %r1", "db 1a f8 ff 01 00 00 00"),
        ("lock or [%r10-8], %r1", "db 1a f8 ff 40 00 00 00"),
        ("lock fetch or [%r10-8], %r3", "db 3a f8 ff 41 00 00 00"),
        ("lock and32 [%r10-8], %r1", "c3 1a f8 ff 50 00 00 00"),
        ("lock fetch xor32 [%r10-4], %r3", "c3 3a fc ff a1 00 00 00"),
        ("lock xchg [%r10-8], %r1", "db 1a f8 ff e1 00 00 00"),
        ("lock fetch xchg [%r10-8], %r1", "db 1a f8 ff e1 00 00 00"),
        ("lock cmpxchg [%r10-8], %r1", "db 1a f8 ff f1 00 00 00"),
        ("lock cmpxchg32 [%r10-8], %r1", "c3 1a f8 ff f1 00 00 00"),
        ("ja +1", "05 00 01 00 00 00 00 00"),
        ("ja -1", "05 00 ff ff 00 00 00 00"),
        ("ja32 +1", "06 00 00 00 01 00 00 00"),
        ("ja32 -70000", "06 00 00 00 90 ee fe ff"),
        ("jeq %r1, 3, +2", "15 01 02 00 03 00 00 00"),
        ("jeq %r1, %r2, +2", "1d 21 02 00 00 00 00 00"),
        ("jne32 %r6, 0xffffff80, -3", "56 06 fd ff 80 ff ff ff"),
        ("jsle32 %r1, 0xfffffffd, +0x1", "d6 01 01 00 fd ff ff ff"),
        ("jlt %r1, %r2, +0", "ad 21 00 00 00 00 00 00"),
        ("jset32 %r1, 8, +4", "46 01 04 00 08 00 00 00"),
        ("call 1", "85 00 00 00 01 00 00 00"),
        ("call helper 5", "85 00 00 00 05 00 00 00"),
        ("call local +2", "85 10 00 00 02 00 00 00"),
        ("call runtime 7", "85 20 00 00 07 00 00 00"),
        ("call %r2", "8d 02 00 00 00 00 00 00"),
        ("call helper %r3", "8d 03 00 00 00 00 00 00"),
        ("exit", "95 00 00 00 00 00 00 00"),
        (
            "lddw %r0, 0x123456789abcdef0",
            "18 00 00 00 f0 de bc 9a 00 00 00 00 78 56 34 12",
        ),
        (
            "lddw %r1, -1",
            "18 01 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff",
        ),
        (
            "lddw %r0, 2147483648",
            "18 00 00 00 00 00 00 80 00 00 00 00 00 00 00 00",
        ),
        // bpfconf extensions.
        (
            "lddw_map_fd %r1, 5",
            "18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            "lddw_map_value %r2, 3, 16",
            "18 22 00 00 03 00 00 00 00 00 00 00 10 00 00 00",
        ),
        (
            "lddw_map_idx_value %r2, 0, 8",
            "18 62 00 00 00 00 00 00 00 00 00 00 08 00 00 00",
        ),
        ("ldabsb 3", "30 00 00 00 03 00 00 00"),
        ("ldabsw 0x10", "20 00 00 00 10 00 00 00"),
        ("ldindw %r1, 4", "40 10 00 00 04 00 00 00"),
        ("ldindh %r7, -2", "48 70 00 00 fe ff ff ff"),
        (".insn 0x07, 0, 0, 1, 1", "07 00 01 00 01 00 00 00"),
        (".insn 255, 15, 15, -1, -1", "ff ff ff ff ff ff ff ff"),
        ("add %r15, %r11", "0f bf 00 00 00 00 00 00"),
    ];
    for (text, want) in cases {
        assert_eq!(bytes(text), hex(want), "{text}");
    }
}

#[test]
fn labels_resolve_to_slot_displacements() {
    // ja32.data's shape: ja32 keeps its displacement in imm.
    let p =
        assemble("mov %r1, 0\nja32 L2\nL1:\nmov %r2, 0\nexit\nL2:\nmov %r0, 0\nja32 L1\n").unwrap();
    assert_eq!((p[1].imm, p[1].off), (2, 0));
    assert_eq!(p[5].imm, -4);
    // Labels count slots, so an lddw counts twice; backward jumps are negative.
    let p = assemble("top:\nlddw %r0, 1\njeq %r0, 1, done\nja top\ndone:\nexit\n").unwrap();
    assert_eq!(p[2].off, 1);
    assert_eq!(p[3].off, -4);
    // call local takes a label into imm (call_local.data).
    let p = assemble("call local f\nexit\nf:\nmov %r0, 1\nexit\n").unwrap();
    assert_eq!((p[0].src, p[0].imm), (1, 1));
    // The first exit is the label `exit`, wherever it is.
    let p = assemble("jne %r1, 0, exit\nmov %r0, 2\nexit\nmov %r0, 3\nexit\n").unwrap();
    assert_eq!(p[0].off, 1);
    // A label at the very end is the slot after the program.
    let p = assemble("ja end\nexit\nend:\n").unwrap();
    assert_eq!(p[0].off, 1);
}

#[test]
fn comments_commas_and_blank_lines() {
    let a = bytes("  # comment line\n\nadd %r1, %r2   # trailing\n\tadd %r1 %r2\n");
    assert_eq!(a, hex("0f 21 00 00 00 00 00 00 0f 21 00 00 00 00 00 00"));
    assert!(assemble("").unwrap().is_empty());
    assert!(assemble("# only\n\n").unwrap().is_empty());
}

#[test]
fn immediates_follow_bpf_conformance_ranges() {
    let imm = |t: &str| assemble(&format!("mov32 %r0, {t}")).map(|p| p[0].imm);
    assert_eq!(imm("0xffffffff"), Ok(-1));
    assert_eq!(imm("0x7fffffff"), Ok(i32::MAX));
    assert_eq!(imm("2147483647"), Ok(i32::MAX));
    assert_eq!(imm("-2147483648"), Ok(i32::MIN));
    assert_eq!(imm("+5"), Ok(5));
    assert_eq!(imm("-0x10"), Ok(-16));
    assert_eq!(imm("0XFF"), Ok(255));
    for bad in [
        "2147483648",
        "-2147483649",
        "0x100000000",
        "4294967295",
        "-0x80000001",
    ] {
        assert!(
            imm(bad)
                .unwrap_err()
                .message
                .contains("out of 32-bit range"),
            "{bad}"
        );
    }
    for bad in ["5abc", "0x", "--1", "++1", "1.0", "0x+5", "%r"] {
        assert!(imm(bad).is_err(), "{bad}");
    }
    let off = |t: &str| assemble(&format!("ldxb %r0, [%r1{t}]")).map(|p| p[0].off);
    assert_eq!(off("+32767"), Ok(i16::MAX));
    assert_eq!(off("-32768"), Ok(i16::MIN));
    assert_eq!(off("+0xffff"), Ok(-1));
    assert_eq!(off("-0x8000"), Ok(i16::MIN));
    for bad in ["+32768", "-32769", "+0x10000", "-0x8001"] {
        assert!(off(bad).unwrap_err().message.contains("16-bit"), "{bad}");
    }
    let lddw = |t: &str| {
        assemble(&format!("lddw %r0, {t}"))
            .map(|p| (p[1].imm as u32 as u64) << 32 | p[0].imm as u32 as u64)
    };
    assert_eq!(lddw("0xFFFFFFFFFFFFFFFF"), Ok(u64::MAX));
    assert_eq!(lddw("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(lddw("-9223372036854775808"), Ok(1 << 63));
    assert!(lddw("18446744073709551616").is_err());
    assert!(lddw("0x10000000000000000").is_err());
    assert!(lddw("-9223372036854775809").is_err());
}

#[test]
fn errors_name_the_line_and_problem() {
    let cases = [
        ("exit\nldxq %r0, %r1\n", 2, "invalid mnemonic `ldxq`"),
        ("or %r0, %r50\n", 1, "invalid register `%r50`"),
        ("or %r0, %r16\n", 1, "invalid register"),
        ("or %r0, r1\n", 1, "invalid number `r1`"),
        ("mov %r01, 1\n", 1, "invalid register"),
        ("lddw %r0\n", 1, "invalid number of operands for `lddw`"),
        ("exit %r0\n", 1, "invalid number of operands for `exit`"),
        ("add %r1, 2, 3\n", 1, "invalid number of operands"),
        ("ldxb %r0, %r1\n", 1, "expected a memory operand"),
        ("ldxb %r0, [%r1+0x10000]\n", 1, "out of 16-bit range"),
        ("stxb [%r1+1, %r2\n", 1, "expected a memory operand"),
        ("ja NOT_A_LABEL\nexit\n", 1, "undefined label `NOT_A_LABEL`"),
        ("ja 2\n", 1, "undefined label `2`"),
        ("lock\n", 1, "invalid number of operands for lock"),
        (
            "lock or [%r10-8]\n",
            1,
            "invalid number of operands for lock",
        ),
        ("lock fetch\n", 1, "invalid number of operands for lock"),
        (
            "lock sub [%r10-8], %r1\n",
            1,
            "invalid atomic operation `sub`",
        ),
        ("call not_a_valid_mode 1\n", 1, "invalid call mode"),
        ("call\n", 1, "invalid number of operands for `call`"),
        ("call local\n", 1, "missing target after `call local`"),
        ("a:\na:\n", 2, "duplicate label `a`"),
        ("exit\nexit:\n", 2, "duplicate label `exit`"),
        ("L1: exit\n", 1, "must stand alone"),
        (":\n", 1, "empty label"),
        (".insn 1, 2, 3\n", 1, "expected 5"),
        (".insn 256, 0, 0, 0, 0\n", 1, "out of range"),
        (".insn 0, 16, 0, 0, 0\n", 1, "out of range"),
        ("mov32 %r0, 2147483648\nexit\n", 1, "out of 32-bit range"),
        ("lddw_map_fd %r1\n", 1, "expected 2 or 3"),
        ("swapx %r0\n", 1, "invalid mnemonic `swapx`"),
    ];
    for (text, line, msg) in cases {
        let e = err(text);
        assert_eq!(
            (e.line, e.message.contains(msg)),
            (line, true),
            "{text:?}: {e}"
        );
    }
    // A label out of 16-bit reach is an error, not a silent truncation.
    let far = format!("ja far\n{}far:\nexit\n", "exit\n".repeat(40_000));
    assert!(err(&far).message.contains("beyond a 16-bit offset"));
    // ja32 reaches it.
    let far32 = far.replacen("ja far", "ja32 far", 1);
    assert_eq!(assemble(&far32).unwrap()[0].imm, 40_000);
}

#[test]
fn token_soup_never_panics() {
    let words = [
        "mov",
        "mov32",
        "lddw",
        "ldxb",
        "stxdw",
        "stw",
        "lock",
        "fetch",
        "add",
        "xchg",
        "cmpxchg32",
        "call",
        "local",
        "helper",
        "runtime",
        "ja",
        "ja32",
        "jeq",
        "jsle32",
        "exit",
        "be16",
        "swap64",
        "neg",
        ".insn",
        "L1:",
        "L1",
        "exit:",
        "%r0",
        "%r10",
        "%r15",
        "%r16",
        "[%r1+8]",
        "[%r10-0x8000]",
        "[%r1]",
        "[",
        "]",
        "+1",
        "-1",
        "0x",
        "0xffffffff",
        "99999999999999999999",
        ",",
        "#",
        ":",
        "+",
        "-",
        "é",
        "lddw_map_value",
        "ldindw",
        "movsx832",
    ];
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..rng.below(6) {
            for _ in 0..rng.below(6) {
                text.push_str(words[rng.below(words.len() as u64) as usize]);
                text.push(if rng.one_in(3) { ',' } else { ' ' });
            }
            text.push('\n');
        }
        let _ = assemble(&text);
    }
}
