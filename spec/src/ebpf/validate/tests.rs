//! Tests of structural validation: real programs, bpf_conformance's unused-field files, each rule.

use super::*;
use crate::ebpf::asm::assemble;
use crate::ebpf::data::testutil::{conformance_tests, data_files, Rng};

fn prog(text: &str) -> Vec<Insn> {
    assemble(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn rule_of(p: &[Insn]) -> (usize, Rule) {
    let e = validate(p).expect_err("invalid");
    assert!(!e.message.is_empty());
    (e.pc, e.rule)
}

#[test]
fn every_conformance_program_is_structurally_valid() {
    let Some(tests) = conformance_tests() else {
        return;
    };
    for t in &tests {
        validate(&t.program).unwrap_or_else(|e| panic!("{}: {e}", t.name));
    }
    let version = |name: &str| max_version(&tests.iter().find(|t| t.name == name).unwrap().program);
    assert_eq!(version("add"), 1);
    assert_eq!(version("jle-imm"), 2);
    assert_eq!(version("jeq32-imm"), 3);
    assert_eq!(version("lock_cmpxchg"), 3);
    assert_eq!(version("call_local"), 3);
    assert_eq!(version("ja32"), 4);
    assert_eq!(version("sdiv64-imm"), 4);
    assert_eq!(version("rfc9669_ldxsb"), 4);
    let callx = tests.iter().find(|t| t.name == "callx").unwrap();
    assert_eq!(
        groups(&callx.program).into_iter().collect::<Vec<_>>(),
        [Group::Base32, Group::Base64, Group::Callx]
    );
}

/// The hex bytes of a negative file's `-- raw` section (these files write bytes, not words).
fn raw_bytes(text: &str) -> Vec<Insn> {
    let section: String = text
        .split("-- raw")
        .nth(1)
        .and_then(|s| s.split("\n--").next())
        .expect("-- raw section")
        .to_string();
    let bytes: Vec<u8> = section
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect(b))
        .collect();
    crate::ebpf::from_bytes(&bytes).unwrap()
}

/// bpf_conformance's `negative/unused-*.data` files each set one unused field of one
/// instruction; validation names that field.
#[test]
fn unused_field_files_are_rejected_for_the_named_field() {
    let Some(files) = data_files("negative") else {
        return;
    };
    let mut seen = 0;
    for path in files {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let Some(rest) = name.strip_prefix("unused-") else {
            continue;
        };
        seen += 1;
        let p = raw_bytes(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(p.len(), 2, "{name}");
        let field = match rest.rsplit('-').next().unwrap() {
            "offset" => Field::Off,
            "src" => Field::Src,
            "imm" => Field::Imm,
            "dst" => Field::Dst,
            other => panic!("{name}: {other}"),
        };
        let e = validate(&p).expect_err(&name);
        assert_eq!(e.pc, 0, "{name}: {e}");
        // `mov` with a register source selects MOVSX by its offset, so offset 1 is no variant.
        let want = if rest.starts_with("mov") && rest.ends_with("_reg-offset") {
            Rule::BadVariant(Field::Off)
        } else {
            Rule::UnusedField(field)
        };
        assert_eq!(e.rule, want, "{name}: {e}");
        // With the field cleared, the program is valid.
        let mut fixed = p.clone();
        match field {
            Field::Off => fixed[0].off = 0,
            Field::Src => fixed[0].src = 0,
            Field::Imm => fixed[0].imm = 0,
            _ => fixed[0].dst = 0,
        }
        validate(&fixed).unwrap_or_else(|e| panic!("{name} fixed: {e}"));
    }
    assert_eq!(seen, 45);
}

#[test]
fn each_rule_fires() {
    let i = Insn::new;
    let exit = i(0x95, 0, 0, 0, 0);
    let cases: Vec<(Vec<Insn>, usize, Rule)> = vec![
        (vec![], 0, Rule::EmptyProgram),
        (vec![i(0x00, 0, 0, 0, 0), exit], 0, Rule::UnknownOpcode),
        (
            vec![exit, i(0x38, 0, 0, 0, 0), exit],
            1,
            Rule::UnknownOpcode,
        ),
        (
            vec![i(0x18, 0, 7, 0, 0), i(0, 0, 0, 0, 0), exit],
            0,
            Rule::BadVariant(Field::Src),
        ),
        (
            vec![i(0x85, 0, 3, 0, 0), exit],
            0,
            Rule::BadVariant(Field::Src),
        ),
        (
            vec![i(0x3f, 0, 1, 2, 0), exit],
            0,
            Rule::BadVariant(Field::Off),
        ),
        (
            vec![i(0xbc, 0, 1, 32, 0), exit],
            0,
            Rule::BadVariant(Field::Off),
        ),
        (
            vec![i(0xdc, 0, 0, 0, 8), exit],
            0,
            Rule::BadVariant(Field::Imm),
        ),
        (
            vec![i(0xdb, 0, 1, 0, 0x02), exit],
            0,
            Rule::BadVariant(Field::Imm),
        ),
        (
            vec![i(0xb7, 0, 0, 8, 1), exit],
            0,
            Rule::UnusedField(Field::Off),
        ),
        (
            vec![i(0x06, 0, 0, 1, 0), exit],
            0,
            Rule::UnusedField(Field::Off),
        ),
        (
            vec![i(0x85, 1, 0, 0, 1), exit],
            0,
            Rule::UnusedField(Field::Dst),
        ),
        (
            vec![i(0x8d, 1, 0, 0, 1), exit],
            0,
            Rule::UnusedField(Field::Imm),
        ),
        (
            vec![i(0x20, 1, 0, 0, 1), exit],
            0,
            Rule::UnusedField(Field::Dst),
        ),
        (
            vec![i(0x18, 0, 0, 1, 1), i(0, 0, 0, 0, 0), exit],
            0,
            Rule::UnusedField(Field::Off),
        ),
        (
            vec![i(0xb7, 11, 0, 0, 1), exit],
            0,
            Rule::BadRegister(Field::Dst),
        ),
        (
            vec![i(0x0f, 0, 15, 0, 0), exit],
            0,
            Rule::BadRegister(Field::Src),
        ),
        (
            vec![i(0x40, 0, 12, 0, 0), exit],
            0,
            Rule::BadRegister(Field::Src),
        ),
        (
            vec![i(0xb7, 10, 0, 0, 1), exit],
            0,
            Rule::WritesR10(Field::Dst),
        ),
        (
            vec![i(0x79, 10, 1, 0, 0), exit],
            0,
            Rule::WritesR10(Field::Dst),
        ),
        (
            vec![i(0x18, 10, 0, 0, 0), i(0, 0, 0, 0, 0), exit],
            0,
            Rule::WritesR10(Field::Dst),
        ),
        (
            vec![i(0xdb, 1, 10, 0, 0x01), exit],
            0,
            Rule::WritesR10(Field::Src),
        ),
        (vec![exit, i(0x18, 0, 0, 0, 0)], 1, Rule::LddwTruncated),
        (
            vec![i(0x18, 0, 0, 0, 0), i(0x95, 0, 0, 0, 0)],
            1,
            Rule::LddwSecondSlot(Field::Code),
        ),
        (
            vec![i(0x18, 0, 0, 0, 0), i(0, 1, 0, 0, 0), exit],
            1,
            Rule::LddwSecondSlot(Field::Dst),
        ),
        (
            vec![i(0x18, 0, 0, 0, 0), i(0, 0, 0, 3, 0), exit],
            1,
            Rule::LddwSecondSlot(Field::Off),
        ),
        (vec![i(0x05, 0, 0, 1, 0), exit], 0, Rule::JumpOutOfRange),
        (
            vec![exit, i(0x15, 1, 0, -3, 0), exit],
            1,
            Rule::JumpOutOfRange,
        ),
        (vec![i(0x06, 0, 0, 0, 5), exit], 0, Rule::JumpOutOfRange),
        (vec![i(0x85, 0, 1, 0, -2), exit], 0, Rule::JumpOutOfRange),
        (
            vec![
                i(0x05, 0, 0, 1, 0),
                i(0x18, 0, 0, 0, 0),
                i(0, 0, 0, 0, 0),
                exit,
            ],
            0,
            Rule::JumpIntoLddw,
        ),
        (vec![i(0xb7, 0, 0, 0, 0)], 0, Rule::FallsOffEnd),
        (vec![exit, i(0x15, 0, 0, -2, 0)], 1, Rule::FallsOffEnd),
        (
            vec![exit, i(0x18, 0, 0, 0, 0), i(0, 0, 0, 0, 0)],
            1,
            Rule::FallsOffEnd,
        ),
    ];
    for (p, pc, rule) in cases {
        assert_eq!(rule_of(&p), (pc, rule), "{p:?}");
    }
}

#[test]
fn valid_programs_pass() {
    for text in [
        "exit",
        "ja +0\nexit",
        "mov %r0, 0\nja -2",
        "ja32 +0\nexit",
        "lddw %r0, 1\nexit",
        "lddw_map_value %r1, 3, 8\nexit",
        "ldxdw %r0, [%r10-8]\nstxdw [%r10-8], %r10\nexit",
        "lock add [%r10-8], %r10\nlock cmpxchg [%r10-8], %r1\nexit",
        "ldabsb 3\nldindw %r1, 4\nexit",
        "call local f\nexit\nf:\nexit",
        "jeq %r1, 0, exit\nmov %r0, 1\nexit",
        "mov %r0, %r10\nexit",
    ] {
        validate(&prog(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn versions_and_groups() {
    let p = prog("mov %r0, 0\njlt %r0, 1, +0\njeq32 %r0, 1, +0\nexit");
    assert_eq!(max_version(&p), 3);
    assert_eq!(check_version(&p, 3), Ok(()));
    let e = check_version(&p, 2).unwrap_err();
    assert_eq!((e.pc, e.rule), (2, Rule::VersionTooNew));
    let e = check_version(&p, 1).unwrap_err();
    assert_eq!((e.pc, e.rule), (1, Rule::VersionTooNew));
    assert_eq!(max_version(&[]), 1);
    assert_eq!(max_version(&prog("bswap16 %r0\nexit")), 4);
    // The second slot of lddw never counts, whatever it holds.
    let p = [
        Insn::new(0x18, 0, 0, 0, 0),
        Insn::new(0xd7, 0, 0, 0, 16),
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    assert_eq!(max_version(&p), 1);
    let g = groups(&prog(
        "lock add32 [%r10-4], %r1\nmul32 %r0, 3\nldabsw 1\nexit",
    ));
    assert_eq!(
        g.into_iter().collect::<Vec<_>>(),
        [
            Group::Base32,
            Group::Atomic32,
            Group::Divmul32,
            Group::Packet
        ]
    );
    assert_eq!(Rule::UnusedField(Field::Off).to_string(), "unused_field");
    assert_eq!(Rule::FallsOffEnd.name(), "falls_off_end");
}

#[test]
fn random_slots_never_panic() {
    let mut rng = Rng::new(5);
    for _ in 0..20_000 {
        let p: Vec<Insn> = (0..rng.below(8))
            .map(|_| {
                Insn::new(
                    rng.next() as u8,
                    rng.below(16) as u8,
                    rng.below(16) as u8,
                    rng.below(9) as i16 - 4,
                    if rng.one_in(2) {
                        rng.below(9) as i32 - 4
                    } else {
                        rng.next() as i32
                    },
                )
            })
            .collect();
        let _ = validate(&p);
        let _ = max_version(&p);
        let _ = check_version(&p, 2);
        let _ = groups(&p);
    }
}
