//! Tests of the ISA table: completeness against RFC 9669, encodings, groups, versions, lookup.

use super::*;
use crate::ebpf::{alu, atomic, class, jmp, mode, size, source};
use std::collections::{HashMap, HashSet};

/// A representative instance of a row: selector applied, registers and free fields non-zero.
pub(crate) fn instance(row: &IsaRow) -> Insn {
    let u = row.uses();
    let pick = |usage: Use, reg: u8, any: i64| match usage {
        Use::Zero | Use::Sel => 0,
        Use::Reg => reg as i64,
        Use::Any => any,
    };
    let mut i = Insn::new(
        row.code,
        pick(u.dst, 3, 0) as u8,
        pick(u.src, 7, 0) as u8,
        pick(u.off, 0, 2) as i16,
        pick(u.imm, 0, 5) as i32,
    );
    match row.sel {
        Sel::None => {}
        Sel::Src(s) => i.src = s,
        Sel::Off(o) => i.off = o,
        Sel::Imm(v) => i.imm = v,
    }
    i
}

#[test]
fn table_has_every_rfc9669_form_once() {
    // 72 ALU/ALU64 forms (12 ops x K/X x 2 classes, SDIV/SMOD x K/X x 2, NEG x 2, MOVSX 2 + 3,
    // END 9), 27 JMP (JA, 11 conditionals x K/X, 3 calls, EXIT), 23 JMP32 (JA, 22), 7 lddw
    // kinds, 6 packet loads, 7 LDX, 4 ST, 4 STX, 20 atomics, plus callx.
    assert_eq!(ISA.len(), 72 + 27 + 23 + 7 + 6 + 7 + 4 + 4 + 20 + 1);
    let names: HashSet<_> = ISA.iter().map(|r| r.name).collect();
    assert_eq!(names.len(), ISA.len(), "row names are unique");
    for r in ISA {
        assert!((1..=4).contains(&r.version), "{}", r.name);
        assert!(
            r.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            r.name
        );
    }
}

#[test]
fn every_row_classifies_to_itself_and_no_two_rows_overlap() {
    for r in ISA {
        let i = instance(r);
        assert_eq!(classify_insn(&i), Some(r), "{}", r.name);
        assert!(r.fits(&i), "{}", r.name);
        let matching: Vec<_> = ISA.iter().filter(|o| o.selects(&i)).collect();
        assert_eq!(matching, vec![r], "{} is ambiguous", r.name);
    }
}

#[test]
fn opcodes_match_the_encoding_constants() {
    let alu_ops = [
        ("add", alu::ADD),
        ("sub", alu::SUB),
        ("mul", alu::MUL),
        ("div", alu::DIV),
        ("sdiv", alu::DIV),
        ("or", alu::OR),
        ("and", alu::AND),
        ("lsh", alu::LSH),
        ("rsh", alu::RSH),
        ("mod", alu::MOD),
        ("smod", alu::MOD),
        ("xor", alu::XOR),
        ("mov", alu::MOV),
        ("arsh", alu::ARSH),
    ];
    for (cls, prefix) in [(class::ALU, "alu"), (class::ALU64, "alu64")] {
        for (op, code) in alu_ops {
            for (src, s) in [(source::K, "k"), (source::X, "x")] {
                let r = row_by_name(&format!("{prefix}_{op}_{s}")).expect(op);
                assert_eq!(r.code, cls | code | src, "{}", r.name);
            }
        }
        assert_eq!(
            row_by_name(&format!("{prefix}_neg")).unwrap().code,
            cls | alu::NEG
        );
    }
    let jmp_ops = [
        ("jeq", jmp::JEQ),
        ("jgt", jmp::JGT),
        ("jge", jmp::JGE),
        ("jset", jmp::JSET),
        ("jne", jmp::JNE),
        ("jsgt", jmp::JSGT),
        ("jsge", jmp::JSGE),
        ("jlt", jmp::JLT),
        ("jle", jmp::JLE),
        ("jslt", jmp::JSLT),
        ("jsle", jmp::JSLE),
    ];
    for (cls, prefix) in [(class::JMP, "jmp"), (class::JMP32, "jmp32")] {
        for (op, code) in jmp_ops {
            for (src, s) in [(source::K, "k"), (source::X, "x")] {
                let r = row_by_name(&format!("{prefix}_{op}_{s}")).unwrap();
                assert_eq!(r.code, cls | code | src, "{}", r.name);
            }
        }
        assert_eq!(
            row_by_name(&format!("{prefix}_ja")).unwrap().code,
            cls | jmp::JA
        );
    }
    assert_eq!(row_by_name("exit").unwrap().code, class::JMP | jmp::EXIT);
    assert_eq!(
        row_by_name("call_helper").unwrap().code,
        class::JMP | jmp::CALL
    );
    assert_eq!(
        row_by_name("callx").unwrap().code,
        class::JMP | jmp::CALL | source::X
    );
    let sizes = [
        ("w", size::W),
        ("h", size::H),
        ("b", size::B),
        ("dw", size::DW),
    ];
    for (s, sz) in sizes {
        let code = |n: String| row_by_name(&n).unwrap().code;
        assert_eq!(code(format!("ldx{s}")), class::LDX | mode::MEM | sz);
        assert_eq!(code(format!("st{s}")), class::ST | mode::MEM | sz);
        assert_eq!(code(format!("stx{s}")), class::STX | mode::MEM | sz);
        if s != "dw" {
            assert_eq!(code(format!("ldxs{s}")), class::LDX | mode::MEMSX | sz);
            assert_eq!(code(format!("ldabs{s}")), class::LD | mode::ABS | sz);
            assert_eq!(code(format!("ldind{s}")), class::LD | mode::IND | sz);
        }
    }
    let at = [
        ("add", atomic::ADD),
        ("or", atomic::OR),
        ("and", atomic::AND),
        ("xor", atomic::XOR),
    ];
    for (w, sz) in [("32", size::W), ("64", size::DW)] {
        for (op, imm) in at {
            let plain = row_by_name(&format!("atomic{w}_{op}")).unwrap();
            let fetch = row_by_name(&format!("atomic{w}_fetch_{op}")).unwrap();
            assert_eq!(plain.code, class::STX | mode::ATOMIC | sz);
            assert_eq!(
                (plain.sel, fetch.sel),
                (Sel::Imm(imm), Sel::Imm(imm | atomic::FETCH))
            );
        }
        let xchg = row_by_name(&format!("atomic{w}_xchg")).unwrap();
        let cmpxchg = row_by_name(&format!("atomic{w}_cmpxchg")).unwrap();
        assert_eq!((xchg.sel, cmpxchg.sel), (Sel::Imm(0xe1), Sel::Imm(0xf1)));
    }
}

#[test]
fn named_rows_match_rfc9669() {
    let check = |name: &str, code: u8, sel: Sel, group: Group, version: u8, mnemonic: &str| {
        let r = row_by_name(name).unwrap_or_else(|| panic!("no row {name}"));
        assert_eq!(
            (r.code, r.sel, r.group, r.version, r.mnemonic),
            (code, sel, group, version, mnemonic),
            "{name}"
        );
    };
    check("alu64_add_k", 0x07, Sel::None, Group::Base64, 1, "add");
    check("alu_add_x", 0x0c, Sel::None, Group::Base32, 1, "add32");
    check(
        "alu_sdiv_x",
        0x3c,
        Sel::Off(1),
        Group::Divmul32,
        4,
        "sdiv32",
    );
    check("alu64_div_k", 0x37, Sel::Off(0), Group::Divmul64, 1, "div");
    check(
        "alu64_smod_k",
        0x97,
        Sel::Off(1),
        Group::Divmul64,
        4,
        "smod",
    );
    check("alu_mul_k", 0x24, Sel::None, Group::Divmul32, 1, "mul32");
    check("alu64_mov_k", 0xb7, Sel::None, Group::Base64, 1, "mov");
    check("alu64_mov_x", 0xbf, Sel::Off(0), Group::Base64, 1, "mov");
    check(
        "alu_movsx8_x",
        0xbc,
        Sel::Off(8),
        Group::Base32,
        4,
        "movsx832",
    );
    check(
        "alu64_movsx32_x",
        0xbf,
        Sel::Off(32),
        Group::Base64,
        4,
        "movsx3264",
    );
    check("alu_neg", 0x84, Sel::None, Group::Base32, 1, "neg32");
    check("be16", 0xdc, Sel::Imm(16), Group::Base32, 1, "be16");
    check("le64", 0xd4, Sel::Imm(64), Group::Base64, 1, "le64");
    check("bswap32", 0xd7, Sel::Imm(32), Group::Base32, 4, "bswap32");
    check("bswap64", 0xd7, Sel::Imm(64), Group::Base64, 4, "bswap64");
    check("jmp_ja", 0x05, Sel::None, Group::Base32, 1, "ja");
    check("jmp32_ja", 0x06, Sel::None, Group::Base32, 4, "ja32");
    check("jmp_jeq_k", 0x15, Sel::None, Group::Base64, 1, "jeq");
    check("jmp_jlt_x", 0xad, Sel::None, Group::Base64, 2, "jlt");
    check("jmp32_jsle_x", 0xde, Sel::None, Group::Base32, 3, "jsle32");
    check("call_helper", 0x85, Sel::Src(0), Group::Base32, 1, "call");
    check(
        "call_local",
        0x85,
        Sel::Src(1),
        Group::Base32,
        3,
        "call local",
    );
    check(
        "call_kfunc",
        0x85,
        Sel::Src(2),
        Group::Base32,
        3,
        "call runtime",
    );
    check("callx", 0x8d, Sel::None, Group::Callx, 1, "call");
    check("exit", 0x95, Sel::None, Group::Base32, 1, "exit");
    check("lddw", 0x18, Sel::Src(0), Group::Base64, 1, "lddw");
    check(
        "lddw_map_idx_value",
        0x18,
        Sel::Src(6),
        Group::Base64,
        1,
        "lddw_map_idx_value",
    );
    check("ldabsb", 0x30, Sel::None, Group::Packet, 1, "ldabsb");
    check("ldindw", 0x40, Sel::None, Group::Packet, 1, "ldindw");
    check("ldxdw", 0x79, Sel::None, Group::Base64, 1, "ldxdw");
    check("ldxsb", 0x91, Sel::None, Group::Base32, 4, "ldxsb");
    check("stw", 0x62, Sel::None, Group::Base32, 1, "stw");
    check("stxdw", 0x7b, Sel::None, Group::Base64, 1, "stxdw");
    check(
        "atomic32_fetch_add",
        0xc3,
        Sel::Imm(0x01),
        Group::Atomic32,
        3,
        "lock fetch add32",
    );
    check(
        "atomic64_cmpxchg",
        0xdb,
        Sel::Imm(0xf1),
        Group::Atomic64,
        3,
        "lock cmpxchg",
    );
}

#[test]
fn group_and_version_rules_hold_for_every_row() {
    for r in ISA {
        let cls = r.code & 0x07;
        let dw = matches!(cls, 0..=3) && r.code & 0x18 == size::DW;
        let expect_group = match r.form {
            Form::Atomic if r.code & 0x18 == size::W => Group::Atomic32,
            Form::Atomic => Group::Atomic64,
            Form::LdAbs | Form::LdInd => Group::Packet,
            Form::Callx => Group::Callx,
            Form::End => {
                if r.sel == Sel::Imm(64) {
                    Group::Base64
                } else {
                    Group::Base32
                }
            }
            _ if matches!(r.code & 0xf0, 0x20 | 0x30 | 0x90) && matches!(cls, 4 | 7) => {
                if cls == 4 {
                    Group::Divmul32
                } else {
                    Group::Divmul64
                }
            }
            Form::Ja | Form::Call | Form::CallLocal | Form::Exit => Group::Base32,
            _ if cls == class::ALU64 || cls == class::JMP || dw => Group::Base64,
            _ => Group::Base32,
        };
        assert_eq!(r.group, expect_group, "{}", r.name);
        let v4 = matches!(r.sel, Sel::Off(1 | 8 | 16 | 32))
            || r.code == 0xd7
            || r.code == 0x06
            || r.code & 0xe0 == mode::MEMSX && cls == class::LDX;
        let expect_version = if v4 {
            4
        } else if cls == class::JMP32
            || r.form == Form::Atomic
            || r.code == 0x85 && matches!(r.sel, Sel::Src(1 | 2))
        {
            3
        } else if cls == class::JMP && matches!(r.code & 0xf0, 0xa0..=0xd0) {
            2
        } else {
            1
        };
        assert_eq!(r.version, expect_version, "{}", r.name);
    }
}

#[test]
fn mnemonics_name_at_most_a_k_x_pair() {
    let mut by: HashMap<&str, Vec<&IsaRow>> = HashMap::new();
    for r in ISA {
        by.entry(r.mnemonic).or_default().push(r);
    }
    for (m, rows) in by {
        match rows.as_slice() {
            [_] => {}
            [a, b] => {
                let pair = [a.form, b.form];
                assert!(
                    pair == [Form::AluK, Form::AluX]
                        || pair == [Form::JmpK, Form::JmpX]
                        || pair == [Form::Call, Form::Callx],
                    "{m}: {pair:?}"
                );
            }
            _ => panic!("{m} names {} rows", rows.len()),
        }
    }
}

#[test]
fn classify_knows_lddw_second_slots_and_selectors() {
    let prog = [
        Insn::new(0x18, 1, 0, 0, 5),
        Insn::new(0x95, 0, 0, 0, 0), // looks like exit, but is lddw's second half
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    assert_eq!(classify(&prog, 0).unwrap().name, "lddw");
    assert_eq!(classify(&prog, 1), None);
    assert_eq!(classify(&prog, 2).unwrap().name, "exit");
    assert_eq!(classify(&prog, 3), None);
    assert_eq!(classify(&prog, 100), None);
    assert_eq!(classify(&[], 0), None);
    assert_eq!(slot_starts(&prog), vec![true, false, true]);
    // Selecting fields that match no row.
    assert_eq!(classify_insn(&Insn::new(0x18, 0, 7, 0, 0)), None);
    assert_eq!(classify_insn(&Insn::new(0x85, 0, 3, 0, 0)), None);
    assert_eq!(classify_insn(&Insn::new(0x3f, 0, 1, 2, 0)), None);
    assert_eq!(classify_insn(&Insn::new(0xd4, 0, 0, 0, 8)), None);
    assert_eq!(classify_insn(&Insn::new(0xdb, 0, 0, 0, 0x02)), None);
    assert!(opcode_known(0xdb) && !opcode_known(0x00) && !opcode_known(0x38));
    // MOV K has no selector: off is an unused field, not a variant.
    assert_eq!(
        classify_insn(&Insn::new(0xb7, 0, 0, 8, 1)).unwrap().name,
        "alu64_mov_k"
    );
    assert!(!row_by_name("alu64_mov_k")
        .unwrap()
        .fits(&Insn::new(0xb7, 0, 0, 8, 1)));
}

#[test]
fn groups_nest_as_rfc9669_says() {
    assert!(Group::Base64.includes(Group::Base32));
    assert!(!Group::Base32.includes(Group::Base64));
    assert!(Group::Atomic64.includes(Group::Atomic32));
    assert!(Group::Divmul64.includes(Group::Divmul32));
    assert!(!Group::Packet.includes(Group::Base32));
    for g in Group::ALL {
        assert!(g.includes(g));
        assert_eq!(Group::from_name(g.name()), Some(g));
        assert_eq!(g.to_string(), g.name());
    }
    assert_eq!(Group::from_name("legacy"), None);
}

#[test]
fn jump_targets_and_writes() {
    let ja = row_by_name("jmp_ja").unwrap();
    assert_eq!(ja.jump_target(&Insn::new(0x05, 0, 0, -3, 0), 5), Some(3));
    let ja32 = row_by_name("jmp32_ja").unwrap();
    assert_eq!(
        ja32.jump_target(&Insn::new(0x06, 0, 0, 0, 70000), 0),
        Some(70001)
    );
    assert_eq!(
        row_by_name("exit")
            .unwrap()
            .jump_target(&Insn::default(), 0),
        None
    );
    assert!(row_by_name("atomic64_fetch_add").unwrap().writes_src());
    assert!(row_by_name("atomic64_xchg").unwrap().writes_src());
    assert!(!row_by_name("atomic64_cmpxchg").unwrap().writes_src());
    assert!(!row_by_name("atomic64_add").unwrap().writes_src());
    assert!(row_by_name("lddw").unwrap().writes_dst());
    assert!(!row_by_name("stxdw").unwrap().writes_dst());
}
