//! Tests of the disassembler: golden output and `assemble(disassemble(p)) == p`.

use super::*;
use crate::ebpf::asm::assemble;
use crate::ebpf::data::testutil::{conformance_tests, Rng};
use crate::ebpf::isa::{Use, ISA};

fn round_trip(prog: &[Insn]) {
    let text = disassemble(prog);
    let back = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, prog, "\n{text}");
}

/// A random instance of `row` (fields per [`IsaRow::uses`]), as one or two slots.
fn random_instance(row: &IsaRow, rng: &mut Rng) -> Vec<Insn> {
    let u = row.uses();
    let mut field = |usage: Use, bits: u32| -> i64 {
        match usage {
            Use::Zero | Use::Sel => 0,
            Use::Reg => rng.below(11) as i64,
            Use::Any if rng.one_in(3) => rng.below(5) as i64 - 2,
            Use::Any => (rng.next() as i64) >> (64 - bits),
        }
    };
    let mut i = Insn::new(
        row.code,
        field(u.dst, 4) as u8,
        field(u.src, 4) as u8,
        field(u.off, 16) as i16,
        field(u.imm, 32) as i32,
    );
    match row.sel {
        Sel::None => {}
        Sel::Src(s) => i.src = s,
        Sel::Off(o) => i.off = o,
        Sel::Imm(v) => i.imm = v,
    }
    let mut v = vec![i];
    if row.is_wide() {
        v.push(Insn::new(0, 0, 0, 0, rng.next() as i32));
    }
    v
}

#[test]
fn every_isa_row_round_trips_with_its_mnemonic() {
    let mut rng = Rng::new(1);
    for row in ISA {
        for _ in 0..50 {
            let mut prog = random_instance(row, &mut rng);
            prog.push(Insn::new(0x95, 0, 0, 0, 0));
            let text = disassemble(&prog);
            let first = text.lines().find(|l| !l.ends_with(':')).unwrap();
            assert!(
                first.starts_with(row.mnemonic) && !first.starts_with(".insn"),
                "{}: {first}",
                row.name
            );
            round_trip(&prog);
        }
    }
}

#[test]
fn random_programs_round_trip() {
    let mut rng = Rng::new(2);
    for _ in 0..3000 {
        let len = 1 + rng.below(12) as usize;
        let mut prog = Vec::new();
        while prog.len() < len {
            match rng.below(4) {
                // Raw noise: any opcode, any fields.
                0 => prog.push(Insn::new(
                    rng.next() as u8,
                    rng.below(16) as u8,
                    rng.below(16) as u8,
                    rng.next() as i16,
                    rng.next() as i32,
                )),
                // A valid form with one field possibly disturbed.
                _ => {
                    let row = &ISA[rng.below(ISA.len() as u64) as usize];
                    let mut slots = random_instance(row, &mut rng);
                    if rng.one_in(4) {
                        let at = rng.below(slots.len() as u64) as usize;
                        let s = &mut slots[at];
                        match rng.below(4) {
                            0 => s.dst = rng.below(16) as u8,
                            1 => s.src = rng.below(16) as u8,
                            2 => s.off = rng.next() as i16,
                            _ => s.imm = rng.next() as i32,
                        }
                    }
                    // Short jumps so that some targets land on lines and get labels.
                    if matches!(row.form, Form::JmpK | Form::JmpX | Form::Ja) && rng.one_in(2) {
                        slots[0].off = rng.below(12) as i16 - 6;
                    }
                    if matches!(row.form, Form::Ja32 | Form::CallLocal) && rng.one_in(2) {
                        slots[0].imm = rng.below(12) as i32 - 6;
                    }
                    prog.extend(slots);
                }
            }
        }
        round_trip(&prog);
    }
}

#[test]
fn conformance_programs_round_trip() {
    let Some(tests) = conformance_tests() else {
        return;
    };
    for t in &tests {
        let text = disassemble(&t.program);
        assert!(!text.contains(".insn"), "{}:\n{text}", t.name);
        round_trip(&t.program);
    }
}

#[test]
fn golden_listing() {
    let prog = assemble(
        "mov %r0, 0\n\
         lddw %r1, 0x1122334455667788\n\
         top:\n\
         jeq %r1, 0, out\n\
         ldxdw %r2, [%r10-8]\n\
         stdw [%r1+0], 5\n\
         lock fetch add [%r10-8], %r1\n\
         and32 %r2, 0xffff0000\n\
         call local fn\n\
         ja top\n\
         out:\n\
         exit\n\
         fn:\n\
         call %r2\n\
         call runtime 9\n\
         jne32 %r1, %r2, +100\n\
         exit\n",
    )
    .unwrap();
    let want = "\
mov %r0, 0
lddw %r1, 0x1122334455667788
L3:
jeq %r1, 0, L10
ldxdw %r2, [%r10-8]
stdw [%r1+0], 5
lock fetch add [%r10-8], %r1
and32 %r2, 0xffff0000
call local L11
ja L3
L10:
exit
L11:
call %r2
call runtime 9
jne32 %r1, %r2, +100
exit
";
    assert_eq!(disassemble(&prog), want);
}

#[test]
fn undecodable_slots_use_the_raw_escape() {
    let prog = [
        Insn::new(0x07, 0, 0, 1, 1), // add with off = 1
        Insn::new(0x18, 1, 0, 0, 5), // lddw whose second slot is not 0,0,0,0
        Insn::new(0x95, 0, 0, 0, 7), // exit with imm set
        Insn::new(0x18, 0, 0, 0, 1), // lddw in the last slot
    ];
    assert_eq!(
        disassemble(&prog),
        ".insn 0x07, 0, 0, 1, 1\n.insn 0x18, 1, 0, 0, 5\n.insn 0x95, 0, 0, 0, 7\n.insn 0x18, 0, 0, 0, 1\n"
    );
    round_trip(&prog);
    // A jump into the middle of an lddw has no label to name.
    let prog = [
        Insn::new(0x05, 0, 0, 1, 0),
        Insn::new(0x18, 0, 0, 0, 1),
        Insn::new(0, 0, 0, 0, 2),
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    assert_eq!(disassemble(&prog), "ja +1\nlddw %r0, 0x200000001\nexit\n");
    round_trip(&prog);
    assert_eq!(
        render_insn(&Insn::new(0x18, 2, 1, 0, 3), 4),
        "lddw_map_fd %r2, 3, 4"
    );
    assert_eq!(render_insn(&Insn::new(0x06, 0, 0, 0, -2), 0), "ja32 -2");
    assert_eq!(
        render_insn(&Insn::new(0x00, 0, 0, 0, 0), 0),
        ".insn 0x00, 0, 0, 0, 0"
    );
    assert_eq!(disassemble(&[]), "");
}
