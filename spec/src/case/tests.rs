//! Tests of the case loader: schema errors name file, case and field; overrides resolve.

use super::*;
use std::path::Path;

fn load(text: &str) -> LoadReport {
    load_str(Path::new("spec/cases/demo.toml"), text)
}

#[test]
fn loads_a_minimal_case_with_group_name() {
    let r = load(
        r#"
[[case]]
name = "ret_k"
dialects = ["linux", "bsd"]
insns = [[6, 0, 0, 7]]
expect = { ret = 7 }
"#,
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.cases.len(), 1);
    let c = &r.cases[0];
    assert_eq!(c.name, "demo/ret_k");
    assert_eq!(c.line, 2);
    assert_eq!(c.program, vec![Insn::new(6, 0, 0, 7)]);
    assert_eq!(
        c.expect[&Dialect::Bsd],
        Expected::Accept {
            ret: Some(7),
            mem: Default::default()
        }
    );
}

#[test]
fn per_dialect_override_replaces_outcome() {
    let r = load(
        r#"
[[case]]
name = "shift"
dialects = ["linux", "bsd", "netbsd"]
insns = [[6, 0, 0, 0]]
packet = "01 02"
[case.expect]
ret = 5
mem = { 3 = 9 }
[case.expect.bsd]
ret = 0
[case.expect.netbsd]
rejected = "cop_out_of_range"
"#,
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &r.cases[0];
    assert_eq!(c.packet, vec![1, 2]);
    let m: BTreeMap<usize, u32> = [(3, 9)].into();
    assert_eq!(
        c.expect[&Dialect::Linux],
        Expected::Accept {
            ret: Some(5),
            mem: m.clone()
        }
    );
    assert_eq!(
        c.expect[&Dialect::Bsd],
        Expected::Accept {
            ret: Some(0),
            mem: m
        }
    );
    assert_eq!(
        c.expect[&Dialect::Netbsd],
        Expected::Reject {
            rule: Some("cop_out_of_range".into())
        }
    );
}

#[test]
fn unknown_field_is_an_error_with_line() {
    let r = load("[[case]]\nname = \"x\"\ndialects = [\"linux\"]\ninsns = [[6,0,0,0]]\nexpect = { ret = 0 }\nbogus = 1\n");
    assert_eq!(r.cases.len(), 0);
    assert_eq!(r.errors.len(), 1);
    let e = r.errors[0].to_string();
    assert!(e.contains("demo.toml"), "{e}");
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn bad_case_does_not_hide_good_ones() {
    let r = load(
        r#"
[[case]]
name = "bad_hex"
dialects = ["linux"]
insns = [[6, 0, 0, 0]]
packet = "0g"
expect = { ret = 0 }

[[case]]
name = "good"
dialects = ["linux"]
insns = [[6, 0, 0, 1]]
expect = { ret = 1 }

[[case]]
name = "no_expectation"
dialects = ["linux"]
insns = [[6, 0, 0, 1]]
expect = {}
"#,
    );
    assert_eq!(r.cases.len(), 1);
    assert_eq!(r.cases[0].name, "demo/good");
    assert_eq!(r.errors.len(), 2);
    let e0 = r.errors[0].to_string();
    assert!(e0.contains("demo/bad_hex") && e0.contains("packet"), "{e0}");
    assert_eq!(r.errors[0].line, Some(2));
    let e1 = r.errors[1].to_string();
    assert!(
        e1.contains("demo/no_expectation") && e1.contains("expect"),
        "{e1}"
    );
}

#[test]
fn structural_errors_are_reported() {
    for (text, needle) in [
        ("[[case]]\nname = \"a\"\ndialects = []\ninsns = [[6,0,0,0]]\nexpect = { ret = 0 }\n", "dialects"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\nexpect = { ret = 0 }\n", "exactly one"),
        ("[[case]]\nname = \"a\"\ndialects = [\"vms\"]\ninsns = [[6,0,0,0]]\nexpect = { ret = 0 }\n", "vms"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\ninsns = [[70000,0,0,0]]\nexpect = { ret = 0 }\n", "16 bits"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\ninsns = [[6,0,0,0]]\nexpect = { ret = 0, mem = { 16 = 1 } }\n", "slot 16"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\ninsns = [[6,0,0,0]]\nexpect = { ret = 0, rejected = true }\n", "excludes"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\ninsns = [[6,0,0,0]]\nexpect = { ret = 0, bsd = { ret = 1 } }\n", "not in `dialects`"),
        ("[[case]]\nname = \"a\"\ndialects = [\"linux\"]\ninsns = [[6,0,0,0]]\nctx = { hatype = 1 }\nexpect = { ret = 0 }\n", "ifindex"),
        ("[[case]]\nname = \"a\"\ndialects = [\"netbsd\"]\ninsns = [[6,0,0,0]]\nctx = { cop = [\"launch\"] }\nexpect = { ret = 0 }\n", "launch"),
        ("this is not toml", "expected"),
    ] {
        let r = load(text);
        assert!(r.cases.is_empty(), "{text}");
        let msg = r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    }
}

#[test]
fn hex_parsing() {
    assert_eq!(parse_hex("0x0a0B").unwrap(), vec![10, 11]);
    assert_eq!(
        parse_hex("de:ad be_ef").unwrap(),
        vec![0xde, 0xad, 0xbe, 0xef]
    );
    assert!(parse_hex("abc").is_err());
    assert!(parse_hex("zz").is_err());
    assert_eq!(to_hex(&[1, 0xff]), "01ff");
}

#[test]
fn ctx_spec_round_trips() {
    let r = load(
        r#"
[[case]]
name = "c"
dialects = ["linux", "netbsd"]
insns = [[6, 0, 0, 0]]
ctx = { protocol = 0x800, ifindex = 2, vlan_present = true, vlan_tci = 10, cpu = 1, mac_header = 0, network_header = 14, cop = ["ret_a", "set_m0"], extmem = [1, 2] }
expect = { ret = 0 }
"#,
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let ctx = &r.cases[0].ctx;
    assert_eq!(
        ctx.dev,
        Some(Dev {
            ifindex: 2,
            hatype: 1
        })
    );
    assert_eq!(ctx.vlan_tpid, 0x8100);
    let spec = CtxSpec::from(ctx);
    assert_eq!(&spec.clone().into_ctx().unwrap(), ctx);
    assert_eq!(CtxSpec::from(&Ctx::default()), CtxSpec::default());
}

#[test]
fn ebpf_r0_takes_full_64_bit_values() {
    for (r0, want) in [
        ("r0 = -1", u64::MAX),
        ("r0 = \"0xffffffffffffffff\"", u64::MAX),
        ("r0 = \"18446744073709551615\"", u64::MAX),
        ("r0 = 0x7fffffffffffffff", i64::MAX as u64),
        ("r0 = \"0x8000_0000_0000_0000\"", 1 << 63),
    ] {
        let text = format!(
            "[[case]]\nname = \"a\"\nisa = \"ebpf\"\nasm = \"mov %r0, -1\\nexit\"\nexpect = {{ {r0} }}\n"
        );
        let r = load(&text);
        assert!(r.errors.is_empty(), "{r0}: {:?}", r.errors);
        match &r.ebpf[0].expect {
            EbpfExpected::Accept { r0: Some(v), .. } => assert_eq!(*v, want, "{r0}"),
            other => panic!("{r0}: {other:?}"),
        }
    }
    let r =
        load("[[case]]\nname = \"a\"\nisa = \"ebpf\"\nasm = \"exit\"\nexpect = { r0 = \"0xg\" }\n");
    assert!(
        r.errors[0].to_string().contains("expect.r0"),
        "{:?}",
        r.errors
    );
}

#[test]
fn ebpf_maps_schema() {
    let r = load(
        r#"
[[case]]
name = "m"
isa = "ebpf"
asm = "mov %r0, 0\nexit"
[[case.maps]]
name = "h"
type = "hash"
key_size = 4
value_size = 8
max_entries = 4
init = [["01000000", "0200000000000000"]]
[[case.maps]]
name = "q"
type = "queue"
value_size = 4
max_entries = 2
init = ["01000000"]
[[case.progs]]
asm = "mov %r0, 7\nexit"
[case.expect]
r0 = 0
maps.h = [["01000000", "0300000000000000"]]
maps.q = []
"#,
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &r.ebpf[0];
    assert_eq!(c.maps.len(), 2);
    assert_eq!(c.maps[1].key_size, 0);
    assert_eq!(c.progs.len(), 1);
    use crate::ebpf::maps::MapContents;
    assert_eq!(c.map_init[1], MapContents::Sequence(vec![vec![1, 0, 0, 0]]));
    let EbpfExpected::Accept { maps, .. } = &c.expect else {
        panic!()
    };
    assert_eq!(maps[&1], MapContents::Sequence(vec![]));
    for (bad, needle) in [
        ("init = [[\"01\", \"0200000000000000\"]]", "key_size"),
        ("init = [[\"01000000\", \"02\"]]", "value_size"),
        ("init = [\"0200000000000000\"]", "contents are"),
    ] {
        let text = format!(
            "[[case]]\nname = \"m\"\nisa = \"ebpf\"\nasm = \"exit\"\n[[case.maps]]\nname = \"h\"\ntype = \"hash\"\nkey_size = 4\nvalue_size = 8\nmax_entries = 4\n{bad}\n[case.expect]\nr0 = 0\n"
        );
        let r = load(&text);
        assert!(
            r.errors.iter().any(|e| e.to_string().contains(needle)),
            "{bad}: {:?}",
            r.errors
        );
    }
}
