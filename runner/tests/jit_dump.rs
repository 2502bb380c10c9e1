//! `bpfconf jit-dump`: the JIT's x86-64 code for classic and eBPF programs, disassembled and
//! interleaved with the BPF instructions, as a porter reads it.

mod common;

use std::process::Command;

fn dump(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .arg("jit-dump")
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run bpfconf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn write(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("bpfconf-jit-dump-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn classic_listing_interleaves_bpf_and_x86() {
    let f = write(
        "c.s",
        "ldh [12]\njeq #0x800, ok, drop\nok: ret #-1\ndrop: ret #0\n",
    );
    let (code, out) = dump(&["--asm", &f]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{out}"))
    };
    // Every BPF instruction heads its block, in order, and real x86 follows each.
    let (i0, i1, i2, i3) = (
        at("; insn 0: ldh [12]"),
        at("; insn 1: jeq #0x800"),
        at("; insn 2: ret #0xffffffff"),
        at("; insn 3: ret #0"),
    );
    assert!(
        at("; prologue") < i0 && i0 < i1 && i1 < i2 && i2 < i3,
        "{out}"
    );
    assert!(
        lines[i0 + 1..i1].iter().any(|l| l.contains("movzx")),
        "{out}"
    );
    assert!(lines[i1 + 1..i2].iter().any(|l| l.contains("cmp")), "{out}");
    assert!(lines.last().unwrap().contains("layout passes"), "{out}");
}

#[test]
fn ebpf_listing_and_errors() {
    let f = write("e.s", "mov %r0, 1\nldxdw %r2, [%r1+8]\nexit\n");
    let (code, out) = dump(&["--isa", "ebpf", "--asm", &f]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("; insn 0: mov %r0, 1"), "{out}");
    assert!(out.contains("; insn 1: ldxdw %r2, [%r1+8]"), "{out}");
    assert!(out.contains("; memory slow path"), "{out}");
    // A rejected program says why, with a failing exit code; other engines have no dump.
    let bad = write("bad.s", "ret a\nret #0\nld #1\n");
    let (code, out) = dump(&["--asm", &bad]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rejected"), "{out}");
    let (code, out) = dump(&["--engine", "interp", "--asm", &f]);
    assert_ne!(code, 0);
    assert!(out.contains("machine code"), "{out}");
}
