//! Tests for the disassembler: exact text for every opcode, bpf_dbg's sample from filter.txt, and
//! the round trip `assemble(disassemble(p)) == p` over all opcodes and random programs.

use super::*;
use crate::cbpf::asm::{assemble, Rng};
use crate::cbpf::ALL_OPS;
use rstest::rstest;

fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(code, jt, jf, k)
}

fn round_trip(p: &[Insn]) {
    let text = disassemble(p);
    match assemble(&text) {
        Ok(back) => assert_eq!(back, p, "text:\n{text}"),
        Err(e) => panic!("{e}\ntext:\n{text}"),
    }
}

/// filter.txt's bpf_dbg session: `load bpf 6,40 0 0 12,21 0 3 2048,48 0 0 23,21 0 1 1,6 0 0
/// 65535,6 0 0 0` then `disassemble`.
fn dbg_sample() -> Vec<Insn> {
    vec![
        i(40, 0, 0, 12),
        i(21, 0, 3, 2048),
        i(48, 0, 0, 23),
        i(21, 0, 1, 1),
        i(6, 0, 0, 65535),
        i(6, 0, 0, 0),
    ]
}

#[test]
fn single_lines_match_bpf_dbg() {
    let want = [
        "l0: ldh [12]",
        "l1: jeq #0x800, l2, l5",
        "l2: ldb [23]",
        "l3: jeq #0x1, l4, l5",
        "l4: ret #0xffff",
        "l5: ret #0",
    ];
    for (pc, (insn, w)) in dbg_sample().iter().zip(want).enumerate() {
        assert_eq!(disasm_insn(insn, pc), w);
    }
}

#[test]
fn whole_program_labels_only_targets() {
    let text = disassemble(&dbg_sample());
    assert_eq!(
        text,
        "    ldh [12]\n    jeq #0x800, l2, l5\nl2: ldb [23]\n    jeq #0x1, l4, l5\n\
         l4: ret #0xffff\nl5: ret #0\n"
    );
    round_trip(&dbg_sample());
    assert_eq!(disassemble(&[]), "");
    assert_eq!(disassemble(&[i(6, 0, 0, 0)]), "ret #0\n");
}

/// The text for every one of the 52 opcodes.
#[rstest]
#[case(i(0x20, 0, 0, 12), "ld [12]")]
#[case(i(0x28, 0, 0, 12), "ldh [12]")]
#[case(i(0x30, 0, 0, 0xfff0_0000), "ldb [-1048576]")]
#[case(i(0x40, 0, 0, 4), "ld [x + 4]")]
#[case(i(0x48, 0, 0, 0xffff_fffe), "ldh [x + -2]")]
#[case(i(0x50, 0, 0, 0), "ldb [x + 0]")]
#[case(i(0x80, 0, 0, 0), "ld len")]
#[case(i(0x00, 0, 0, 0x1234), "ld #0x1234")]
#[case(i(0x00, 0, 0, 0), "ld #0")]
#[case(i(0x60, 0, 0, 15), "ld M[15]")]
#[case(i(0x81, 0, 0, 0), "ldx len")]
#[case(i(0xb1, 0, 0, 14), "ldxb 4*([14]&0xf)")]
#[case(i(0x01, 0, 0, 0xffff_ffff), "ldx #0xffffffff")]
#[case(i(0x61, 0, 0, 3), "ldx M[3]")]
#[case(i(0x02, 0, 0, 1), "st M[1]")]
#[case(i(0x03, 0, 0, 2), "stx M[2]")]
#[case(i(0x04, 0, 0, 1), "add #1")]
#[case(i(0x0c, 0, 0, 0), "add x")]
#[case(i(0x14, 0, 0, 0xffff_ffff), "sub #-1")]
#[case(i(0x1c, 0, 0, 0), "sub x")]
#[case(i(0x24, 0, 0, 4), "mul #4")]
#[case(i(0x2c, 0, 0, 0), "mul x")]
#[case(i(0x34, 0, 0, 0), "div #0")]
#[case(i(0x3c, 0, 0, 0), "div x")]
#[case(i(0x94, 0, 0, 7), "mod #7")]
#[case(i(0x9c, 0, 0, 0), "mod x")]
#[case(i(0x54, 0, 0, 0xfff), "and #0xfff")]
#[case(i(0x5c, 0, 0, 0), "and x")]
#[case(i(0x44, 0, 0, 0x10), "or #0x10")]
#[case(i(0x4c, 0, 0, 0), "or x")]
#[case(i(0xa4, 0, 0, 0xff), "xor #0xff")]
#[case(i(0xac, 0, 0, 0), "xor x")]
#[case(i(0x64, 0, 0, 2), "lsh #2")]
#[case(i(0x6c, 0, 0, 0), "lsh x")]
#[case(i(0x74, 0, 0, 40), "rsh #40")]
#[case(i(0x7c, 0, 0, 0), "rsh x")]
#[case(i(0x84, 0, 0, 0), "neg")]
#[case(i(0x05, 0, 0, 2), "ja l3")]
#[case(i(0x15, 0, 1, 0x800), "jeq #0x800, l1, l2")]
#[case(i(0x1d, 3, 3, 0), "jeq x, l4, l4")]
#[case(i(0x25, 0, 0, 0), "jgt #0, l1, l1")]
#[case(i(0x2d, 1, 0, 0), "jgt x, l2, l1")]
#[case(i(0x35, 255, 0, 1), "jge #0x1, l256, l1")]
#[case(i(0x3d, 0, 0, 0), "jge x, l1, l1")]
#[case(i(0x45, 0, 0, 0x1fff), "jset #0x1fff, l1, l1")]
#[case(i(0x4d, 0, 0, 0), "jset x, l1, l1")]
#[case(i(0x06, 0, 0, 0x40000), "ret #0x40000")]
#[case(i(0x16, 0, 0, 0), "ret a")]
#[case(i(0x0e, 0, 0, 0), "ret x")]
#[case(i(0x07, 0, 0, 0), "tax")]
#[case(i(0x87, 0, 0, 0), "txa")]
#[case(i(0x27, 0, 0, 3), "cop #3")]
#[case(i(0x47, 0, 0, 0), "copx")]
// Ancillary loads keep their size: the name follows the mnemonic.
#[case(i(0x20, 0, 0, 0xffff_f000), "ld proto")]
#[case(i(0x28, 0, 0, 0xffff_f02c), "ldh vlan_tci")]
#[case(i(0x30, 0, 0, 0xffff_f030), "ldb vlan_pr")]
#[case(i(0x20, 0, 0, 0xffff_f028), "ld xor_x")]
#[case(i(0x20, 0, 0, 0xffff_f040), "ld [-4032]")]
// Anything not expressible with mnemonics.
#[case(i(0x08, 0, 0, 0), ".insn 0x08, 0, 0, 0")]
#[case(i(0xffff, 9, 8, 0xdead_beef), ".insn 0xffff, 9, 8, 0xdeadbeef")]
#[case(i(0x28, 1, 0, 12), ".insn 0x28, 1, 0, 0xc")]
#[case(i(0x07, 0, 0, 1), ".insn 0x07, 0, 0, 0x1")]
#[case(i(0x1d, 0, 0, 5), ".insn 0x1d, 0, 0, 0x5")]
#[case(i(0x05, 0, 2, 0), ".insn 0x05, 0, 2, 0")]
#[case(i(0x84, 0, 0, 1), ".insn 0x84, 0, 0, 0x1")]
#[case(i(0x80, 0, 0, 4), ".insn 0x80, 0, 0, 0x4")]
fn text_of_each_opcode(#[case] insn: Insn, #[case] want: &str) {
    assert_eq!(disasm_insn(&insn, 0), format!("l0: {want}"));
    // Every one of these reassembles on its own when its targets exist.
    let mut p = vec![insn];
    p.extend(vec![i(0x06, 0, 0, 0); 256]);
    round_trip(&p);
}

#[test]
fn covers_all_52_ops() {
    for op in ALL_OPS {
        let text = disasm_insn(&Insn::stmt(op.code(), 0), 0);
        assert!(!text.contains(".insn"), "{}: {text}", op.name());
    }
}

#[test]
fn targets_past_the_end_are_offsets() {
    let p = [i(0x15, 1, 7, 0x1), i(0x05, 0, 0, 100), i(0x06, 0, 0, 0)];
    assert_eq!(
        disassemble(&p),
        "    jeq #0x1, l2, +7\n    ja +100\nl2: ret #0\n"
    );
    round_trip(&p);
    // A jump just past the end, and the largest ja.
    round_trip(&[i(0x15, 0, 0, 0)]);
    round_trip(&[i(0x05, 0, 0, u32::MAX)]);
    // Single lines never overflow, whatever the pc.
    assert_eq!(
        disasm_insn(&i(0x05, 0, 0, u32::MAX), usize::MAX),
        format!("l{}: ja l{}", usize::MAX, u64::MAX)
    );
}

/// Field values that stress the printer: zero, small, the sign boundary, all ones, and
/// extension offsets.
const KS: [u32; 9] = [
    0,
    1,
    14,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0xffff_f000,
    0xffff_f03c,
    0xfff0_0000,
];

#[test]
fn round_trip_every_op_and_field_combination() {
    for op in ALL_OPS {
        for k in KS {
            for (jt, jf) in [(0, 0), (0, 1), (1, 0), (2, 2), (255, 254), (3, 0)] {
                let mut p = vec![Insn::new(op.code(), jt, jf, k)];
                // Sometimes let targets fall inside, sometimes past the end.
                let pad = usize::from(jt.max(jf)) / 2 + 1;
                p.extend(vec![i(0x16, 0, 0, 0); pad]);
                round_trip(&p);
            }
        }
    }
}

#[test]
fn round_trip_every_opcode_value() {
    for code in 0..=u16::MAX {
        if code > 0x100 && code % 97 != 0 {
            continue;
        }
        round_trip(&[Insn::new(code, 0, 0, 0), Insn::new(code, 1, 0, 0x11)]);
    }
}

#[test]
fn round_trip_random_programs() {
    let mut rng = Rng::new(42);
    for _ in 0..3000 {
        let n = 1 + rng.below(40) as usize;
        let p: Vec<Insn> = (0..n)
            .map(|_| {
                let code = match rng.below(10) {
                    0 => rng.below(0x1_0000) as u16,
                    1 => rng.below(0x100) as u16,
                    _ => ALL_OPS[rng.below(52) as usize].code(),
                };
                let field = |rng: &mut Rng, max: u64| match rng.below(4) {
                    0 | 1 => 0,
                    2 => rng.below(8),
                    _ => rng.below(max + 1),
                };
                let jt = field(&mut rng, 255) as u8;
                let jf = field(&mut rng, 255) as u8;
                let k = match rng.below(6) {
                    0 => KS[rng.below(KS.len() as u64) as usize],
                    1 => rng.next() as u32,
                    2 => rng.below(n as u64 + 3) as u32,
                    _ => 0,
                };
                Insn::new(code, jt, jf, k)
            })
            .collect();
        round_trip(&p);
    }
}
