//! Tests of the `.data` parser, over bpf_conformance's real files and crafted ones.

use super::testutil::{conformance_tests, data_files, Rng};
use super::*;
use crate::ebpf::{disasm::disassemble, validate::validate};

fn parse(text: &str) -> Result<DataTest, DataError> {
    parse_data(Path::new("t/x.data"), text)
}

#[test]
fn all_313_conformance_tests_parse() {
    let Some(tests) = conformance_tests() else {
        return;
    };
    assert_eq!(tests.len(), 313);
    let mut with_raw = 0;
    for t in &tests {
        assert!(!t.program.is_empty(), "{}", t.name);
        assert!(t.result.is_some() || t.error.is_some(), "{}", t.name);
        if let (Some(raw), Some(asm)) = (&t.raw, &t.asm_program) {
            with_raw += 1;
            assert_eq!(asm, raw, "{}: -- asm and -- raw differ", t.name);
        }
    }
    assert_eq!(with_raw, 1, "only lddw.data carries a raw section");
}

#[test]
fn real_files_have_the_expected_contents() {
    let Some(tests) = conformance_tests() else {
        return;
    };
    let get = |name: &str| tests.iter().find(|t| t.name == name).expect(name);
    // lddw.data: the raw words are little-endian slots.
    let lddw = get("lddw");
    let raw = lddw.raw.as_ref().unwrap();
    let words: Vec<u64> = raw
        .iter()
        .map(|i| u64::from_le_bytes(i.to_bytes()))
        .collect();
    assert_eq!(
        words,
        [0x5566778800000018, 0x1122334400000000, 0x0000000000000095]
    );
    assert_eq!(raw[0], Insn::new(0x18, 0, 0, 0, 0x55667788));
    assert_eq!(lddw.result, Some(0x1122334455667788));
    // mem-len.data: memory, and an empty no-register-offset section.
    let mem_len = get("mem-len");
    assert_eq!(mem_len.mem, [0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(mem_len.no_register_offset.as_deref(), Some(""));
    assert_eq!(mem_len.result, Some(8));
    // callx.data: the reason for no register offset; `call %r2` is callx.
    let callx = get("callx");
    assert_eq!(
        callx.no_register_offset.as_deref(),
        Some("call instruction")
    );
    assert_eq!(callx.program[2], Insn::new(0x8d, 2, 0, 0, 0));
    // prime.data keeps its C source; subnet.data has 74 bytes of packet.
    assert!(get("prime")
        .c_source
        .as_ref()
        .unwrap()
        .contains("uint64_t entry(uint64_t arg)"));
    let subnet = get("subnet");
    assert_eq!(subnet.mem.len(), 74);
    assert_eq!(&subnet.mem[12..14], &[0x08, 0x00]);
    assert_eq!(get("mov64-sign-extend").result, Some(0xFFFFFFFFFFFFFFF6));
    assert_eq!(
        get("exit").program,
        [Insn::new(0xb7, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)]
    );
}

/// The two negative files whose defect shows only when the program runs: a wrong expected value
/// and an expected error the program never raises. They are well-formed files.
const RUNTIME_NEGATIVE: [&str; 2] = ["error", "incorrect_return_value_high_bits"];

#[test]
fn negative_files_are_rejected_with_a_reason() {
    let Some(files) = data_files("negative") else {
        return;
    };
    assert_eq!(files.len(), 60);
    for path in &files {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let res = load_data(path);
        if RUNTIME_NEGATIVE.contains(&name) {
            let t = res.unwrap_or_else(|e| panic!("{e}"));
            assert!(validate(&t.program).is_ok(), "{name}");
            continue;
        }
        let e = res.expect_err(name);
        assert_eq!(e.path, *path);
        let expect = match name {
            "empty" | "empty_instructions" => "",
            _ if name.starts_with("unused-") => "no expectation",
            "invalid_imm32_dec_range" | "invalid_imm32_hex_range" => "out of 32-bit range",
            "invalid_label" => "undefined label `NOT_A_LABEL`",
            "invalid_lock" | "invalid_lock2" => "invalid number of operands for lock",
            "invalid_mnemonic" => "invalid mnemonic `ldxq`",
            "invalid_offset" => "expected a memory operand",
            "invalid_offset_range" => "out of 16-bit range",
            "invalid_operand_count" => "invalid number of operands for `lddw`",
            "invalid_register" => "invalid register `%r50`",
            "invalid_unknown_directive" => "unknown section `-- Unknown directive`",
            _ => panic!("unexpected negative file {name}: {e}"),
        };
        assert!(e.message.contains(expect), "{name}: {e}");
        assert!(e.line >= 1, "{name}: {e}");
    }
}

#[test]
fn empty_files_report_what_is_missing() {
    let e = parse("# nothing\n").unwrap_err();
    assert!(e.message.contains("no expectation"), "{e}");
    assert_eq!(e.line, 1);
    let e = parse("-- result\n0x0\n").unwrap_err();
    assert!(e.message.contains("no program"), "{e}");
    let e = parse("-- asm\n# only a comment\n-- result\n1\n").unwrap_err();
    assert!(e.message.contains("no program"), "{e}");
    assert_eq!(e.line, 1);
}

#[test]
fn sections_and_numbers() {
    let t = parse(
        "# header comment\n-- asm\nmov %r0, 1 # one\nexit\n-- mem\n0a ff 0x10\n-- result\n-1\n-- error\n\nbad thing # why\n",
    )
    .unwrap();
    assert_eq!(t.name, "x");
    assert_eq!(
        t.program,
        [Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)]
    );
    assert_eq!(t.asm.as_deref(), Some("mov %r0, 1 # one\nexit"));
    assert_eq!(t.mem, [0x0a, 0xff, 0x10]);
    assert_eq!(t.result, Some(u64::MAX));
    assert_eq!(t.error.as_deref(), Some("bad thing"));
    assert_eq!(t.raw, None);
    // Raw words win over asm; decimal words are allowed (149 = 0x95, exit).
    let t = parse("-- raw\n0x00000001000000b7 149\n-- asm\nexit\n-- result\n1\r\n").unwrap();
    assert_eq!(
        t.program,
        [Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)]
    );
    assert_eq!(
        t.asm_program.as_deref(),
        Some(&[Insn::new(0x95, 0, 0, 0, 0)][..])
    );
}

#[test]
fn malformed_files_name_the_line() {
    let cases = [
        ("-- asm\nexit\n-- result\n0x1g\n", 4, "not a 64-bit number"),
        ("-- asm\nexit\n-- result\n1\n2\n", 5, "more than one value"),
        (
            "-- asm\nexit\n-- result\n18446744073709551616\n",
            4,
            "not a 64-bit",
        ),
        (
            "-- asm\nexit\n-- mem\n100\n-- result\n1\n",
            4,
            "not a hex byte",
        ),
        ("-- raw\n0x95 x\n-- result\n1\n", 2, "not a 64-bit number"),
        ("-- raw\n+5\n-- result\n1\n", 2, "not a 64-bit number"),
        (
            "-- asm\nexit\n-- asm\nexit\n-- result\n1\n",
            3,
            "duplicate section",
        ),
        (
            "stray\n-- asm\nexit\n-- result\n1\n",
            1,
            "outside any section",
        ),
        (
            "-- asm\nmov %r0, 1\nfoo %r1\n-- result\n1\n",
            3,
            "invalid mnemonic `foo`",
        ),
        ("-- asm\nja nowhere\n-- result\n1\n", 2, "undefined label"),
        ("-- results\n1\n", 1, "unknown section"),
    ];
    for (text, line, msg) in cases {
        let e = parse(text).unwrap_err();
        assert_eq!(
            (e.line, e.message.contains(msg)),
            (line, true),
            "{text:?}: {e}"
        );
        assert!(e.to_string().starts_with("t/x.data:"), "{e}");
    }
}

/// Random damage to real files: parsing (and the layers behind it) never panics.
#[test]
fn mutated_files_never_panic() {
    let Some(mut files) = data_files("tests") else {
        return;
    };
    files.extend(data_files("negative").unwrap_or_default());
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let junk = [
        "-- asm",
        "-- raw",
        "-- result",
        "-- mem",
        "-- error",
        "lock",
        "fetch",
        "[%r1+",
        "]",
        "%r",
        "0x",
        "-",
        "+",
        ":",
        ",",
        "#",
        "call",
        "local",
        "lddw",
        "\r",
        "\n",
        "\t",
        "ja32",
        "18446744073709551615",
        "-9223372036854775809",
        "0xffffffffffffffffff",
        ".insn",
        "é",
    ];
    let mut rng = Rng::new(7);
    for _ in 0..4000 {
        let mut t: Vec<char> = texts[rng.below(texts.len() as u64) as usize]
            .chars()
            .collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(t.len() as u64 + 1) as usize;
            match rng.below(5) {
                0 => t.truncate(at),
                1 if at < t.len() => {
                    t[at] = char::from_u32(rng.below(0x80) as u32).unwrap_or('x');
                }
                2 if at < t.len() => {
                    let end = (at + rng.below(20) as usize).min(t.len());
                    t.drain(at..end);
                }
                _ => {
                    let j = junk[rng.below(junk.len() as u64) as usize];
                    t.splice(at..at, j.chars());
                }
            }
        }
        let text: String = t.into_iter().collect();
        if let Ok(d) = parse(&text) {
            let _ = validate(&d.program);
            let _ = disassemble(&d.program);
        }
    }
}
