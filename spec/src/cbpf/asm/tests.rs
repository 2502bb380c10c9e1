//! Tests for the bpf_asm assembler: encodings from linux/filter.h and filter.txt, errors, and
//! robustness against garbage input.

use super::*;
use rstest::rstest;

fn one(text: &str) -> Insn {
    let v = assemble(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(v.len(), 1, "{text:?}");
    v[0]
}

fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(code, jt, jf, k)
}

/// Every addressing mode of every mnemonic, with the opcode from linux/filter.h.
#[rstest]
#[case("ld #5", i(0x00, 0, 0, 5))]
#[case("ld 5", i(0x00, 0, 0, 5))]
#[case("ldi #5", i(0x00, 0, 0, 5))]
#[case("ldi 5", i(0x00, 0, 0, 5))]
#[case("ld [12]", i(0x20, 0, 0, 12))]
#[case("ldh [12]", i(0x28, 0, 0, 12))]
#[case("ldb [23]", i(0x30, 0, 0, 23))]
#[case("ld [x + 4]", i(0x40, 0, 0, 4))]
#[case("ldh [x+14]", i(0x48, 0, 0, 14))]
#[case("ldb [%x + 2]", i(0x50, 0, 0, 2))]
#[case("ldb [x]", i(0x50, 0, 0, 0))]
#[case("ld [x + -4]", i(0x40, 0, 0, 0xffff_fffc))]
#[case("ld [-1048576]", i(0x20, 0, 0, 0xfff0_0000))]
#[case("ld M[3]", i(0x60, 0, 0, 3))]
#[case("ld m[15]", i(0x60, 0, 0, 15))]
#[case("ld len", i(0x80, 0, 0, 0))]
#[case("ld #len", i(0x80, 0, 0, 0))]
#[case("ldx len", i(0x81, 0, 0, 0))]
#[case("ldx #len", i(0x81, 0, 0, 0))]
#[case("ldx #7", i(0x01, 0, 0, 7))]
#[case("ldx 7", i(0x01, 0, 0, 7))]
#[case("ldxi #7", i(0x01, 0, 0, 7))]
#[case("ldxi 7", i(0x01, 0, 0, 7))]
#[case("ldx M[2]", i(0x61, 0, 0, 2))]
#[case("ldxb 4*([14]&0xf)", i(0xb1, 0, 0, 14))]
#[case("ldx 4 * ( [ 14 ] & 15 )", i(0xb1, 0, 0, 14))]
#[case("st M[1]", i(0x02, 0, 0, 1))]
#[case("stx M[15]", i(0x03, 0, 0, 15))]
#[case("add #1", i(0x04, 0, 0, 1))]
#[case("add x", i(0x0c, 0, 0, 0))]
#[case("sub #-1", i(0x14, 0, 0, 0xffff_ffff))]
#[case("sub %x", i(0x1c, 0, 0, 0))]
#[case("mul #4", i(0x24, 0, 0, 4))]
#[case("mul x", i(0x2c, 0, 0, 0))]
#[case("div #3", i(0x34, 0, 0, 3))]
#[case("div x", i(0x3c, 0, 0, 0))]
#[case("or #0x10", i(0x44, 0, 0, 0x10))]
#[case("or x", i(0x4c, 0, 0, 0))]
#[case("and #0xfff", i(0x54, 0, 0, 0xfff))]
#[case("and x", i(0x5c, 0, 0, 0))]
#[case("lsh #2", i(0x64, 0, 0, 2))]
#[case("lsh x", i(0x6c, 0, 0, 0))]
#[case("rsh #2", i(0x74, 0, 0, 2))]
#[case("rsh x", i(0x7c, 0, 0, 0))]
#[case("neg", i(0x84, 0, 0, 0))]
#[case("mod #10", i(0x94, 0, 0, 10))]
#[case("mod x", i(0x9c, 0, 0, 0))]
#[case("xor #0xff", i(0xa4, 0, 0, 0xff))]
#[case("xor x", i(0xac, 0, 0, 0))]
#[case("ret #0xffff", i(0x06, 0, 0, 0xffff))]
#[case("ret #-1", i(0x06, 0, 0, 0xffff_ffff))]
#[case("ret a", i(0x16, 0, 0, 0))]
#[case("ret %a", i(0x16, 0, 0, 0))]
#[case("ret x", i(0x0e, 0, 0, 0))]
#[case("ret %x", i(0x0e, 0, 0, 0))]
#[case("tax", i(0x07, 0, 0, 0))]
#[case("txa", i(0x87, 0, 0, 0))]
#[case("cop #2", i(0x27, 0, 0, 2))]
#[case("copx", i(0x47, 0, 0, 0))]
#[case("LDH [12]", i(0x28, 0, 0, 12))]
#[case("RET A", i(0x16, 0, 0, 0))]
#[case(".insn 0xffff, 255, 7, 0xdeadbeef", i(0xffff, 255, 7, 0xdead_beef))]
#[case(".insn #8, 0, 0, -1", i(0x08, 0, 0, 0xffff_ffff))]
fn encodes(#[case] text: &str, #[case] want: Insn) {
    assert_eq!(one(text), want, "{text}");
}

/// Ancillary loads keep the size bits of the mnemonic (bpf_exp.y: `ld` → BPF_W, `ldh` → BPF_H,
/// `ldb` → BPF_B, all BPF_ABS) and use k = SKF_AD_OFF + SKF_AD_*.
#[rstest]
#[case("ld proto", i(0x20, 0, 0, 0xffff_f000))]
#[case("ld #proto", i(0x20, 0, 0, 0xffff_f000))]
#[case("ldh proto", i(0x28, 0, 0, 0xffff_f000))]
#[case("ldb #proto", i(0x30, 0, 0, 0xffff_f000))]
#[case("ld type", i(0x20, 0, 0, 0xffff_f004))]
#[case("ld ifidx", i(0x20, 0, 0, 0xffff_f008))]
#[case("ld nla", i(0x20, 0, 0, 0xffff_f00c))]
#[case("ld nlan", i(0x20, 0, 0, 0xffff_f010))]
#[case("ld mark", i(0x20, 0, 0, 0xffff_f014))]
#[case("ld queue", i(0x20, 0, 0, 0xffff_f018))]
#[case("ld hatype", i(0x20, 0, 0, 0xffff_f01c))]
#[case("ld rxhash", i(0x20, 0, 0, 0xffff_f020))]
#[case("ld cpu", i(0x20, 0, 0, 0xffff_f024))]
#[case("ld xor_x", i(0x20, 0, 0, 0xffff_f028))]
#[case("ld vlan_tci", i(0x20, 0, 0, 0xffff_f02c))]
#[case("ld vlan_pr", i(0x20, 0, 0, 0xffff_f030))]
#[case("ld vlan_avail", i(0x20, 0, 0, 0xffff_f030))]
#[case("ld poff", i(0x20, 0, 0, 0xffff_f034))]
#[case("ld rand", i(0x20, 0, 0, 0xffff_f038))]
#[case("ld #vlan_tpid", i(0x20, 0, 0, 0xffff_f03c))]
#[case("LD PROTO", i(0x20, 0, 0, 0xffff_f000))]
fn extensions(#[case] text: &str, #[case] want: Insn) {
    assert_eq!(one(text), want, "{text}");
}

#[test]
fn every_ext_name_assembles_to_its_k() {
    for e in Ext::ALL {
        let got = one(&format!("ld {}", e.name()));
        match e.k() {
            Some(k) => assert_eq!(got, i(0x20, 0, 0, k), "{e:?}"),
            None => assert_eq!(got, i(0x80, 0, 0, 0)),
        }
    }
}

#[rstest]
#[case("ret #0x1F", 0x1f)]
#[case("ret #0X1f", 0x1f)]
#[case("ret #0b1011", 11)]
#[case("ret #017", 15)]
#[case("ret #0", 0)]
#[case("ret #00", 0)]
#[case("ret #+7", 7)]
#[case("ret #-2147483648", 0x8000_0000)]
#[case("ret #4294967295", 0xffff_ffff)]
fn numbers(#[case] text: &str, #[case] k: u32) {
    assert_eq!(one(text).k, k, "{text}");
}

#[test]
fn conditional_jump_forms() {
    let t = |s: &str| assemble(&format!("{s}\nl1: ret #1\nl2: ret #2\nl3: ret #3")).unwrap()[0];
    // jeq/jgt/jge/jset with two targets, or one (false falls through: jf = 0).
    assert_eq!(t("jeq #0x800, l2, l3"), i(0x15, 1, 2, 0x800));
    assert_eq!(t("jeq #0x800, l2"), i(0x15, 1, 0, 0x800));
    assert_eq!(t("jeq x, l3, l1"), i(0x1d, 2, 0, 0));
    assert_eq!(t("jeq %x, l3"), i(0x1d, 2, 0, 0));
    assert_eq!(t("jgt #1, l1, l2"), i(0x25, 0, 1, 1));
    assert_eq!(t("jgt x, l1, l2"), i(0x2d, 0, 1, 0));
    assert_eq!(t("jge #1, l3"), i(0x35, 2, 0, 1));
    assert_eq!(t("jge %x, l3, l2"), i(0x3d, 2, 1, 0));
    assert_eq!(t("jset #0x1fff, l2, l1"), i(0x45, 1, 0, 0x1fff));
    assert_eq!(t("jset x, l2"), i(0x4d, 1, 0, 0));
    // jneq/jne: jeq with the label in jf (bpf_exp.y: JFL) and jt = 0.
    assert_eq!(t("jneq #6, l3"), i(0x15, 0, 2, 6));
    assert_eq!(t("jne #6, l3"), i(0x15, 0, 2, 6));
    assert_eq!(t("jne x, l2"), i(0x1d, 0, 1, 0));
    // jlt = jge with the label in jf; jle = jgt with the label in jf.
    assert_eq!(t("jlt #10, l2"), i(0x35, 0, 1, 10));
    assert_eq!(t("jlt %x, l2"), i(0x3d, 0, 1, 0));
    assert_eq!(t("jle #10, l3"), i(0x25, 0, 2, 10));
    assert_eq!(t("jle x, l3"), i(0x2d, 0, 2, 0));
    // Three-operand forms of the swapped mnemonics exchange the targets.
    assert_eq!(t("jne #6, l2, l3"), i(0x15, 2, 1, 6));
    assert_eq!(t("jlt #6, l2, l3"), i(0x35, 2, 1, 6));
    assert_eq!(t("jle x, l1, l3"), i(0x2d, 2, 0, 0));
    // Numeric targets are raw relative offsets.
    assert_eq!(t("jeq #1, 0, +2"), i(0x15, 0, 2, 1));
    assert_eq!(t("jeq #1, 255, 200"), i(0x15, 255, 200, 1));
    assert_eq!(t("ja l3"), i(0x05, 0, 0, 2));
    assert_eq!(t("jmp l1"), i(0x05, 0, 0, 0));
    assert_eq!(t("ja +70000"), i(0x05, 0, 0, 70000));
    assert_eq!(t("ja 4294967295"), i(0x05, 0, 0, u32::MAX));
}

/// The filter.txt ARP example and its `bpf_asm` output `4,40 0 0 12,21 0 1 2054,6 0 0
/// 4294967295,6 0 0 0,`.
#[test]
fn filter_txt_arp() {
    let p = assemble("ldh [12]\njne #0x806, drop\nret #-1\ndrop: ret #0\n").unwrap();
    assert_eq!(
        p,
        vec![
            i(40, 0, 0, 12),
            i(21, 0, 1, 2054),
            i(6, 0, 0, 4_294_967_295),
            i(6, 0, 0, 0)
        ]
    );
}

#[test]
fn filter_txt_examples() {
    let tcp = "ldh [12]\njne #0x800, drop\nldb [23]\njneq #6, drop\nret #-1\ndrop: ret #0";
    assert_eq!(
        assemble(tcp).unwrap(),
        vec![
            i(0x28, 0, 0, 12),
            i(0x15, 0, 3, 0x800),
            i(0x30, 0, 0, 23),
            i(0x15, 0, 1, 6),
            i(0x06, 0, 0, 0xffff_ffff),
            i(0x06, 0, 0, 0),
        ]
    );
    let vlan = "ld vlan_tci\njneq #10, drop\nret #-1\ndrop: ret #0";
    assert_eq!(
        assemble(vlan).unwrap(),
        vec![
            i(0x20, 0, 0, 0xffff_f02c),
            i(0x15, 0, 1, 10),
            i(0x06, 0, 0, 0xffff_ffff),
            i(0x06, 0, 0, 0),
        ]
    );
    let seccomp = "\
ld [4]                  /* offsetof(struct seccomp_data, arch) */
jne #0xc000003e, bad    /* AUDIT_ARCH_X86_64 */
ld [0]                  /* offsetof(struct seccomp_data, nr) */
jeq #15, good           /* __NR_rt_sigreturn */
jeq #231, good          /* __NR_exit_group */
jeq #60, good           /* __NR_exit */
jeq #0, good            /* __NR_read */
jeq #1, good            /* __NR_write */
jeq #5, good            /* __NR_fstat */
jeq #9, good            /* __NR_mmap */
jeq #14, good           /* __NR_rt_sigprocmask */
jeq #13, good           /* __NR_rt_sigaction */
jeq #35, good           /* __NR_nanosleep */
bad: ret #0             /* SECCOMP_RET_KILL */
good: ret #0x7fff0000   /* SECCOMP_RET_ALLOW */
";
    let p = assemble(seccomp).unwrap();
    assert_eq!(p.len(), 15);
    assert_eq!(p[0], i(0x20, 0, 0, 4));
    assert_eq!(p[1], i(0x15, 0, 11, 0xc000_003e));
    assert_eq!(p[3], i(0x15, 10, 0, 15));
    assert_eq!(p[12], i(0x15, 1, 0, 35));
    assert_eq!(p[13], i(0x06, 0, 0, 0));
    assert_eq!(p[14], i(0x06, 0, 0, 0x7fff_0000));
}

/// `tcpdump -dd 'tcp port 22'` (tcpdump 4.99, EN10MB) written by hand in bpf_asm syntax.
#[test]
fn tcpdump_port_22_by_hand() {
    let text = "
        ldh [12]
        jeq #0x86dd, ip6, ip4
ip6:    ldb [20]
        jeq #0x6, l4, drop
l4:     ldh [54]
        jeq #0x16, pass, l6
l6:     ldh [56]
        jeq #0x16, pass, drop
ip4:    jeq #0x800, l9, drop
l9:     ldb [23]
        jeq #0x6, l11, drop
l11:    ldh [20]
        jset #0x1fff, drop, l13
l13:    ldxb 4*([14]&0xf)
        ldh [x + 14]
        jeq #0x16, pass, l16
l16:    ldh [x + 16]
        jeq #0x16, pass, drop
pass:   ret #262144
drop:   ret #0
";
    let want = [
        (0x28, 0, 0, 0x0000000c),
        (0x15, 0, 6, 0x000086dd),
        (0x30, 0, 0, 0x00000014),
        (0x15, 0, 15, 0x00000006),
        (0x28, 0, 0, 0x00000036),
        (0x15, 12, 0, 0x00000016),
        (0x28, 0, 0, 0x00000038),
        (0x15, 10, 11, 0x00000016),
        (0x15, 0, 10, 0x00000800),
        (0x30, 0, 0, 0x00000017),
        (0x15, 0, 8, 0x00000006),
        (0x28, 0, 0, 0x00000014),
        (0x45, 6, 0, 0x00001fff),
        (0xb1, 0, 0, 0x0000000e),
        (0x48, 0, 0, 0x0000000e),
        (0x15, 2, 0, 0x00000016),
        (0x48, 0, 0, 0x00000010),
        (0x15, 0, 1, 0x00000016),
        (0x6, 0, 0, 0x00040000),
        (0x6, 0, 0, 0x00000000),
    ]
    .map(|(c, t, f, k)| i(c, t, f, k));
    assert_eq!(assemble(text).unwrap(), want);
}

#[test]
fn labels_and_layout() {
    // Label on its own line, several labels on one instruction, several instructions per line
    // (bpf_asm's grammar is a token stream), every comment style.
    let text = "# a comment in column 0\n\
                start:\n  ldh [12] ; trailing\n\
                a1: a2: jeq #1, done // also a comment\n\
                /* block\n comment */ ldb [0] ret a\n\
                done: ret #0";
    let p = assemble(text).unwrap();
    assert_eq!(
        p,
        vec![
            i(0x28, 0, 0, 12),
            i(0x15, 2, 0, 1),
            i(0x30, 0, 0, 0),
            i(0x16, 0, 0, 0),
            i(0x06, 0, 0, 0),
        ]
    );
    // Jumps to the last instruction, jt == jf, jt = 0.
    let p = assemble("jeq #1, end, end\nja end\nend: ret a").unwrap();
    assert_eq!(
        p,
        vec![i(0x15, 1, 1, 1), i(0x05, 0, 0, 0), i(0x16, 0, 0, 0)]
    );
    // Labels are case-sensitive.
    let p = assemble("ja L\nl: ret #1\nL: ret #2").unwrap();
    assert_eq!(p[0], i(0x05, 0, 0, 1));
    assert_eq!(assemble("").unwrap(), vec![]);
    assert_eq!(assemble("  /* nothing */ \n; nothing\n").unwrap(), vec![]);
}

#[test]
fn long_jumps() {
    let mut text = String::from("jeq #1, far, 0\n");
    for _ in 0..255 {
        text.push_str("ret #1\n");
    }
    text.push_str("far: ret #0\n");
    assert_eq!(assemble(&text).unwrap()[0], i(0x15, 255, 0, 1));
    let text = text.replacen("ret #1\n", "ret #1\nret #1\n", 1);
    let e = assemble(&text).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains("256") && e.message.contains("255"),
        "{e}"
    );
    // Unconditional jumps are not limited to 8 bits.
    let mut text = String::from("ja far\n");
    for _ in 0..300 {
        text.push_str("ret #1\n");
    }
    text.push_str("far: ret #0\n");
    assert_eq!(assemble(&text).unwrap()[0], i(0x05, 0, 0, 300));
}

#[rstest]
#[case("frob #1", 1, "unknown mnemonic 'frob'")]
#[case("ret #0\n\nfoo [1]", 3, "unknown mnemonic 'foo'")]
#[case("ld x", 1, "bad operand")]
#[case("ldh #5", 1, "bad operand")]
#[case("ldh len", 1, "ld len")]
#[case("ldx proto", 1, "ancillary")]
#[case("st [1]", 1, "M[k]")]
#[case("add a", 1, "bad operand")]
#[case("ret", 1, "bad operand")]
#[case("ret #0\nja nowhere", 2, "undefined label 'nowhere'")]
#[case(
    "x1: ret #0\nx1: ret #1",
    2,
    "duplicate label 'x1' (first defined on line 1)"
)]
#[case("back: ret #0\njeq #1, back, back", 2, "backward jump")]
#[case("self: ja self", 1, "backward jump")]
#[case("ja -1", 1, "forward")]
#[case("jeq #1, 256, 0", 1, "at most 255")]
#[case("ret #0\nend:", 2, "label 'end' is not followed by an instruction")]
#[case("ret #0x100000000", 1, "out of range")]
#[case("ret #-2147483649", 1, "out of range")]
#[case("ret #-0x1", 1, "decimal")]
#[case("ret #09", 1, "octal")]
#[case("ldxb 3*([14]&0xf)", 1, "4*([k]&0xf)")]
#[case("ldx 4*([14]&0xe)", 1, "4*([k]&0xf)")]
#[case("ld [x + 1", 1, "expected ']'")]
#[case("jeq #1 l1", 1, "expected ','")]
#[case(".insn 0x10000, 0, 0, 0", 1, "16 bits")]
#[case(".insn 0, 256, 0, 0", 1, "8 bits")]
#[case(".foo 1", 1, "unknown directive")]
#[case("ret #0\n/* open", 2, "unterminated")]
#[case("ret #0 $", 1, "unexpected character")]
#[case("42", 1, "expected an instruction")]
fn errors(#[case] text: &str, #[case] line: usize, #[case] needle: &str) {
    let e = assemble(text).unwrap_err();
    assert_eq!(e.line, line, "{text:?}: {e}");
    assert!(e.message.contains(needle), "{text:?}: {e}");
}

const VALID: &str = "\
start: ldh [12]
  jeq #0x800, v4, drop ; comment
v4: ldb [23]
  jneq #6, drop
  ldxb 4*([14]&0xf)
  ld [x + 14]
  ld proto
  ld #len
  /* c */ add #-1
  jlt x, drop, keep
keep: st M[3]
  .insn 0x08, 1, 2, 3
  cop #1
  ret #-1
drop: ret %a
";

#[test]
fn never_panics_on_truncations_and_garbage() {
    assert_eq!(assemble(VALID).unwrap().len(), 15);
    // Every prefix of a valid program either assembles or errors.
    let chars: Vec<char> = VALID.chars().collect();
    for n in 0..=chars.len() {
        let s: String = chars[..n].iter().collect();
        if let Err(e) = assemble(&s) {
            assert!(e.line >= 1 && e.line <= 16, "{s:?}: {e}");
        }
    }
    let garbage = [
        "",
        " ",
        "\n\n\n",
        ":",
        "::",
        ",",
        "#",
        "%",
        "[",
        "]",
        "M[",
        "ld [",
        "ld [x +",
        "ld [x +]",
        "jeq",
        "jeq #",
        "jeq #1,",
        "jeq #1, ,",
        "jeq #1, l, ",
        "ja",
        "ja ,",
        ".",
        ".insn",
        ".insn 1,",
        ".insn 1,2,3,",
        "-",
        "+",
        "-0x",
        "0x",
        "ldx 4*",
        "ldx 4*(",
        "ldxb 4*([1]&",
        "ret #-",
        "ret #+",
        "\u{0}",
        "ld\u{7f}",
        "ldh [99999999999999999999]",
        "/*/",
        "*/",
        "a:b:c:",
        "ld #proto #proto",
        "ret %",
        "ret %%x",
        "ld M[M[1]]",
        "lab: lab:",
        "é:",
        "jeq #1, x, y",
        "ld [x + x]",
        "ldx #",
        "ldx len len",
        "4*([14]&0xf)",
        "ldx -",
    ];
    for g in garbage {
        let _ = assemble(g);
    }
    // Random strings over the assembler's alphabet.
    let alphabet: Vec<char> = "ldhbxjeqnrtaM#%[]()+-*&,:;/ \n0123456789fkl_.insn"
        .chars()
        .collect();
    let words = [
        "ld", "ldh", "jeq", "jneq", "ret", "ldxb", "ja", ".insn", "M", "x", "%x", "#", "4*([",
        "]&0xf)", "[x + ", "proto", "len", "l1:", "l1", ",", "0x", "-", "+", "/*", "*/", "\n",
    ];
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let n = rng.below(40) as usize;
        let s: String = if rng.below(2) == 0 {
            (0..n)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect()
        } else {
            (0..n)
                .map(|_| words[rng.below(words.len() as u64) as usize].to_string() + " ")
                .collect()
        };
        let _ = assemble(&s);
    }
}
