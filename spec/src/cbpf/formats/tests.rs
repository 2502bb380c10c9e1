//! Tests for the paste formats, with vectors from filter.txt and from tcpdump 4.99 / libpcap
//! (`tcpdump -y EN10MB -d/-dd/-ddd EXPR`), pasted as literals so tcpdump need not be installed.

use super::*;
use crate::cbpf::asm::Rng;

fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(code, jt, jf, k)
}

fn arp() -> Vec<Insn> {
    vec![
        i(0x28, 0, 0, 12),
        i(0x15, 0, 1, 0x806),
        i(0x06, 0, 0, 0xffff_ffff),
        i(0x06, 0, 0, 0),
    ]
}

/// `tcpdump -y EN10MB -ddd 'tcp port 22'`.
const PORT22_DDD: &str = "20
40 0 0 12
21 0 6 34525
48 0 0 20
21 0 15 6
40 0 0 54
21 12 0 22
40 0 0 56
21 10 11 22
21 0 10 2048
48 0 0 23
21 0 8 6
40 0 0 20
69 6 0 8191
177 0 0 14
72 0 0 14
21 2 0 22
72 0 0 16
21 0 1 22
6 0 0 262144
6 0 0 0
";

/// `tcpdump -y EN10MB -dd 'tcp port 22'`, wrapped in a declaration with comments.
const PORT22_DD: &str = "/* tcpdump -dd 'tcp port 22' */
struct sock_filter code[] = {
{ 0x28, 0, 0, 0x0000000c },
{ 0x15, 0, 6, 0x000086dd },
{ 0x30, 0, 0, 0x00000014 },
{ 0x15, 0, 15, 0x00000006 },
{ 0x28, 0, 0, 0x00000036 },
{ 0x15, 12, 0, 0x00000016 },
{ 0x28, 0, 0, 0x00000038 },
{ 0x15, 10, 11, 0x00000016 },
{ 0x15, 0, 10, 0x00000800 },
{ 0x30, 0, 0, 0x00000017 },
{ 0x15, 0, 8, 0x00000006 },
{ 0x28, 0, 0, 0x00000014 },
{ 0x45, 6, 0, 0x00001fff },
{ 0xb1, 0, 0, 0x0000000e },
{ 0x48, 0, 0, 0x0000000e },
{ 0x15, 2, 0, 0x00000016 }, // x + 14
{ 0x48, 0, 0, 0x00000010 },
{ 0x15, 0, 1, 0x00000016 },
{ 0x6, 0, 0, 0x00040000 },
{ 0x6, 0, 0, 0x00000000 },
};
struct sock_fprog bpf = {
.len = ARRAY_SIZE(code),
.filter = code,
};
";

fn port22() -> Vec<Insn> {
    parse_ddd(PORT22_DDD).unwrap()
}

#[test]
fn ddd_parses_tcpdump_output() {
    let p = port22();
    assert_eq!(p.len(), 20);
    assert_eq!(p[0], i(0x28, 0, 0, 12));
    assert_eq!(p[1], i(0x15, 0, 6, 0x86dd));
    assert_eq!(p[12], i(0x45, 6, 0, 0x1fff));
    assert_eq!(p[13], i(0xb1, 0, 0, 14));
    assert_eq!(p[18], i(0x06, 0, 0, 0x40000));
    assert_eq!(to_ddd(&p), PORT22_DDD);
    assert_eq!(parse_ddd("0\n").unwrap(), vec![]);
}

#[test]
fn dd_parses_tcpdump_output_and_declarations() {
    assert_eq!(parse_dd(PORT22_DD).unwrap(), port22());
    assert_eq!(detect(PORT22_DD), Format::Dd);
    // libpcap's bpf_dump format is what to_dd writes.
    let body: String = PORT22_DD
        .lines()
        .filter(|l| l.starts_with("{ 0x"))
        .map(|l| l.trim_end_matches(" // x + 14").to_string() + "\n")
        .collect();
    assert_eq!(to_dd(&port22()), body);
}

/// filter.txt: the port 22 `-dd` listing (older tcpdump, `0x06` style) and `bpf_asm -c` output
/// for the ARP example, where `%#010x` prints zero as `0000000000` (an octal literal).
#[test]
fn dd_filter_txt_vectors() {
    let asm_c = "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000806 },\n\
                 { 0x06, 0, 0, 0xffffffff },\n{ 0x06, 0, 0, 0000000000 },\n";
    assert_eq!(parse_dd(asm_c).unwrap(), arp());
    let dbg_dump = "/* { op, jt, jf, k }, */\n{ 0x28,  0,  0, 0x0000000c },\n\
                    { 0x15,  0,  3, 0x00000800 },\n{ 0x30,  0,  0, 0x00000017 },\n\
                    { 0x15,  0,  1, 0x00000001 },\n{ 0x06,  0,  0, 0x0000ffff },\n\
                    { 0x06,  0,  0, 0000000000 },\n";
    let p = parse_any(dbg_dump).unwrap();
    assert_eq!(p[1], i(0x15, 0, 3, 0x800));
    assert_eq!(p[4], i(0x06, 0, 0, 0xffff));
    let filter_txt_port22 = "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 8, 0x000086dd },\n\
                             { 0x06, 0, 0, 0x0000ffff },\n{ 0x06, 0, 0, 0x00000000 },";
    assert_eq!(
        parse_dd(filter_txt_port22).unwrap()[1],
        i(0x15, 0, 8, 0x86dd)
    );
    // Decimal, suffixes and a negative k as C allows them.
    assert_eq!(
        parse_dd("{ 6, 0, 0, -1 }, { 0x16U, 0, 0, 0UL }").unwrap(),
        vec![i(6, 0, 0, u32::MAX), i(0x16, 0, 0, 0)]
    );
}

#[test]
fn comma_form() {
    let s = "4,40 0 0 12,21 0 1 2054,6 0 0 4294967295,6 0 0 0,";
    assert_eq!(parse_comma(s).unwrap(), arp());
    assert_eq!(to_comma(&arp()), s);
    assert_eq!(parse_comma(s.trim_end_matches(',')).unwrap(), arp());
    assert_eq!(
        parse_comma("4,\n40 0 0 12,\n21 0 1 2054,\n6 0 0 4294967295,\n6 0 0 0,\n").unwrap(),
        arp()
    );
    // `tcpdump -ddd 'vlan 10' | tr '\n' ','`.
    let vlan = "9,40 0 0 12,21 2 0 33024,21 1 0 34984,21 0 4 37120,40 0 0 14,84 0 0 4095,\
                21 0 1 10,6 0 0 262144,6 0 0 0,";
    let p = parse_any(vlan).unwrap();
    assert_eq!(p.len(), 9);
    assert_eq!(p[5], i(0x54, 0, 0, 0xfff));
    // bpf_dbg's `load bpf` sample from filter.txt.
    let p = parse_any("6,40 0 0 12,21 0 3 2048,48 0 0 23,21 0 1 1,6 0 0 65535,6 0 0 0").unwrap();
    assert_eq!(p[1], i(0x15, 0, 3, 0x800));
    assert_eq!(parse_comma(&to_comma(&port22())).unwrap(), port22());
}

#[test]
fn detection() {
    assert_eq!(detect(PORT22_DDD), Format::Ddd);
    assert_eq!(detect("  4,40 0 0 12,"), Format::Comma);
    assert_eq!(detect("4 ,40 0 0 12,"), Format::Comma);
    assert_eq!(detect("{ 0x6, 0, 0, 0 },"), Format::Dd);
    assert_eq!(detect("ldh [12]\nret #0"), Format::Asm);
    assert_eq!(detect("/* 4, { 1 } */ ldh [12]"), Format::Asm);
    assert_eq!(detect("# 4,\nret #0"), Format::Asm);
    assert_eq!(detect(".insn 6, 0, 0, 0"), Format::Asm);
    assert_eq!(detect(""), Format::Asm);
    assert_eq!(
        parse_any("ldh [12]\njne #0x806, drop\nret #-1\ndrop: ret #0").unwrap(),
        arp()
    );
    assert_eq!(parse_any(&to_dd(&arp())).unwrap(), arp());
    assert_eq!(parse_any(&to_ddd(&arp())).unwrap(), arp());
    assert_eq!(parse_any(&to_comma(&arp())).unwrap(), arp());
    // Assembly errors keep their line.
    let e = parse_any("ret #0\nbogus").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("bogus"), "{e}");
}

#[test]
fn errors_name_the_line_or_item() {
    let cases: &[(&str, Format, usize, &str)] = &[
        ("", Format::Ddd, 1, "empty"),
        ("2\n40 0 0 12\n", Format::Ddd, 1, "count says 2"),
        ("1\n40 0 0 12\n6 0 0 0\n", Format::Ddd, 1, "count says 1"),
        ("2\n40 0 0 12\n6 0 0\n", Format::Ddd, 3, "4 numbers"),
        ("1\n\n65536 0 0 0\n", Format::Ddd, 3, "out of range"),
        ("1\n6 256 0 0\n", Format::Ddd, 2, "jt"),
        ("1\n6 0 0 4294967296\n", Format::Ddd, 2, "k"),
        ("1\n6 0 0 0x1\n", Format::Ddd, 2, "not a decimal"),
        ("x\n", Format::Ddd, 1, "count"),
        ("2,6 0 0 0,", Format::Comma, 1, "count says 2"),
        ("2,6 0 0 0,6 0 x 0", Format::Comma, 3, "item 3"),
        ("2,6 0 0 0,6 0 0", Format::Comma, 3, "item 3"),
        ("", Format::Comma, 1, "empty"),
        ("{ 0x6, 0, 0 },", Format::Dd, 1, "3 fields"),
        (
            "{ 0x6, 0, 0, 0 },\n{ 0x6, 0, 0, 0x1zz },",
            Format::Dd,
            2,
            "k",
        ),
        ("{ 0x10000, 0, 0, 0 }", Format::Dd, 1, "out of range"),
        ("{ 6, 0, 0, 0 }\n}", Format::Dd, 2, "matching"),
        ("/* open\n{ 6, 0, 0, 0 }", Format::Dd, 1, "unterminated"),
        ("int x = 1;", Format::Dd, 1, "no '{"),
        ("{ 6, 0, 0, 0 }\n{ 7,", Format::Dd, 2, "never closed"),
    ];
    for &(text, fmt, line, needle) in cases {
        let e = parse(text, fmt).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn never_panics() {
    let samples = [
        PORT22_DDD.to_string(),
        PORT22_DD.to_string(),
        to_comma(&port22()),
    ];
    for s in &samples {
        let chars: Vec<char> = s.chars().collect();
        for n in 0..=chars.len() {
            let t: String = chars[..n].iter().collect();
            for f in [Format::Ddd, Format::Dd, Format::Comma, Format::Asm] {
                let _ = parse(&t, f);
            }
            let _ = parse_any(&t);
        }
    }
    let alphabet: Vec<char> = "0123456789xX ,{}/*\n-uL.abc".chars().collect();
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let n = rng.below(30) as usize;
        let s: String = (0..n)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let _ = parse_any(&s);
        let _ = parse_dd(&s);
        let _ = parse_ddd(&s);
        let _ = parse_comma(&s);
    }
}

#[test]
fn writers_round_trip_random_programs() {
    let mut rng = Rng::new(9);
    for _ in 0..500 {
        let n = rng.below(20) as usize;
        let p: Vec<Insn> = (0..n)
            .map(|_| {
                let r = rng.next();
                Insn::new(r as u16, (r >> 16) as u8, (r >> 24) as u8, (r >> 32) as u32)
            })
            .collect();
        assert_eq!(parse_ddd(&to_ddd(&p)).unwrap(), p);
        assert_eq!(parse_comma(&to_comma(&p)).unwrap(), p);
        if !p.is_empty() {
            assert_eq!(parse_dd(&to_dd(&p)).unwrap(), p);
        }
        assert_eq!(parse_any(&to_ddd(&p)).unwrap(), p);
        assert_eq!(parse_any(&to_comma(&p)).unwrap(), p);
    }
}
