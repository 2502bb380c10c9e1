//! Unit tests of the eBPF JIT against the reference interpreter.

use super::*;
use crate::interp::ebpf::Interpreter;
use bpfconf_spec::ebpf::asm::assemble;

fn both(src: &str, mem: &[u8]) -> (Result<EbpfResult, RunError>, Result<EbpfResult, RunError>) {
    let insns = assemble(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let p = EbpfProgram::new(insns.clone());
    let jit = Compiled::new(&p, Inject::default()).unwrap();
    let interp = Interpreter::for_program(&p).unwrap();
    (jit.run(mem), interp.run(mem))
}

#[track_caller]
fn same(src: &str, mem: &[u8]) -> u64 {
    let (j, i) = both(src, mem);
    match (&j, &i) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{src}"),
        (Err(RunError::Fault(_)), Err(RunError::Fault(_))) => {}
        _ => panic!("jit {j:?} vs interp {i:?}\n{src}"),
    }
    j.map(|r| r.ret).unwrap_or(u64::MAX)
}

#[test]
fn alu_edges_match_the_interpreter() {
    let vals: [i64; 8] = [0, 1, -1, i32::MIN as i64, i32::MAX as i64, i64::MIN, 31, 64];
    let ops = [
        "add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor", "lsh", "rsh",
        "arsh", "mov", "neg", "movsx8", "movsx16", "movsx32",
    ];
    for op in ops {
        for w in ["", "32"] {
            let op = match op {
                "movsx8" | "movsx16" | "movsx32" => {
                    format!("{op}{}", if w.is_empty() { "64" } else { "32" })
                }
                _ => format!("{op}{w}"),
            };
            let w = "";
            for &a in &vals {
                for &b in &vals {
                    let src = format!(
                        "lddw %r3, {a}\nlddw %r5, {b}\n{op}{w} %r3, %r5\nmov %r0, %r3\nexit"
                    );
                    if assemble(&src).is_ok() {
                        same(&src, &[]);
                    }
                    let k = b as i32;
                    let src = format!("lddw %r3, {a}\n{op}{w} %r3, {k}\nmov %r0, %r3\nexit");
                    if assemble(&src).is_ok() {
                        same(&src, &[]);
                    }
                }
            }
        }
    }
}

#[test]
fn division_involving_r0_and_r3_keeps_other_registers() {
    // The divide uses rax/rdx, which hold R0 and R3.
    let src = "mov %r0, 100\nmov %r3, 7\nmov %r4, 3\ndiv %r0, %r3\nmod %r3, %r4\nlsh %r0, 8\n\
               or %r0, %r3\nexit";
    assert_eq!(same(src, &[]), (14 << 8) | 1);
    let src = "mov %r3, 100\nmov %r0, 7\ndiv %r3, %r0\nmov %r0, %r3\nexit";
    assert_eq!(same(src, &[]), 14);
}

#[test]
fn shifts_by_r4_and_into_r4() {
    let src = "mov %r4, 3\nmov %r1, 1\nlsh %r1, %r4\nlsh %r4, %r1\nmov %r0, %r4\nexit";
    assert_eq!(same(src, &[]), 3 << 8);
}

#[test]
fn memory_stack_buffer_and_faults() {
    let mem: Vec<u8> = (0..16).collect();
    assert_eq!(same("ldxdw %r0, [%r1+8]\nexit", &mem), 0x0f0e0d0c0b0a0908);
    same("ldxdw %r0, [%r1+9]\nexit", &mem); // faults on both
    let src = "stdw [%r10-8], -2\nldxw %r0, [%r10-4]\nexit";
    assert_eq!(same(src, &mem), 0xffff_ffff);
    same("ldxb %r0, [%r10]\nexit", &mem);
    same("stb [%r1+16], 1\nexit", &mem);
}

#[test]
fn atomics_match() {
    for op in ["add", "or", "and", "xor", "xchg", "cmpxchg"] {
        for fetch in ["", "fetch_"] {
            if matches!(op, "xchg" | "cmpxchg") && fetch.is_empty() {
                continue;
            }
            for (w, sz) in [("32", "w"), ("", "dw")] {
                for src_reg in ["%r2", "%r0"] {
                    let name = if matches!(op, "xchg" | "cmpxchg") {
                        format!("{op}{w}")
                    } else {
                        format!("{fetch}{op}{w}")
                    };
                    let src = format!(
                        "lddw %r0, 0x1234567887654321\nlddw %r2, 0x0ff00ff0f00ff00f\n\
                         stdw [%r10-8], 0x5a5a5a5a\nlock {name} [%r10-8], {src_reg}\n\
                         ldx{sz} %r3, [%r10-8]\nxor %r0, %r3\nxor %r0, %r2\nexit"
                    );
                    if assemble(&src).is_ok() {
                        same(&src, &[]);
                    }
                }
            }
        }
    }
}

#[test]
fn local_calls_frames_and_depth_limit() {
    let src = "mov %r6, 5\nstdw [%r10-8], 7\nmov %r1, %r10\ncall local +4\nadd %r0, %r6\n\
               ldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n\
               ldxdw %r0, [%r1-8]\nmov %r6, 100\nstdw [%r10-8], 9\nexit";
    same(src, &[]);
    // Unbounded recursion hits the frame limit.
    same("call local -1\nexit", &[]);
    assert!(both("call local -1\nexit", &[]).0.is_err());
}

#[test]
fn loops_hit_the_step_limit_like_the_interpreter() {
    let p = EbpfProgram::new(assemble("mov %r0, 0\nadd %r0, 1\nja -2\nexit").unwrap());
    let r = Compiled::new(&p, Inject::default()).unwrap().run(&[]);
    assert!(
        matches!(r, Err(RunError::Fault(ref m)) if m.contains("step limit")),
        "{r:?}"
    );
    // Exactly the limit passes, one more faults: a 3-instruction block run n times.
    let src = "mov %r1, 0\nadd %r1, 1\njlt %r1, 10, -2\nmov %r0, %r1\nexit";
    let p = EbpfProgram::new(assemble(src).unwrap());
    let exact = 1 + 2 * 10 + 2;
    let ok = Compiled::new(&p, Inject::default())
        .unwrap()
        .with_step_limit(exact);
    assert_eq!(ok.run(&[]).unwrap().ret, 10);
    let short = Compiled::new(&p, Inject::default())
        .unwrap()
        .with_step_limit(exact - 1);
    assert!(short.run(&[]).is_err());
    let i = Interpreter::for_program(&p).unwrap();
    assert_eq!(i.clone().with_step_limit(exact).run(&[]).unwrap().ret, 10);
    assert!(i.with_step_limit(exact - 1).run(&[]).is_err());
}

#[test]
fn conditional_jump_over_more_than_32k_of_code() {
    // 4000 lddw (10 bytes of code each) between a jeq and its target.
    let mut src = String::from("mov %r0, 1\njeq %r0, 1, +8001\n");
    for _ in 0..4000 {
        src.push_str("lddw %r0, 0x1122334455667788\n");
    }
    src.push_str("mov %r0, 2\nexit\n");
    assert_eq!(same(&src, &[]), 1);
    let p = EbpfProgram::new(assemble(&src).unwrap());
    let c = Compiled::new(&p, Inject::default()).unwrap();
    assert!(c.assembled().code.len() > 40_000);
    assert!(c.assembled().near_branches > 0);
}

#[test]
fn fault_injection_flips_jeq() {
    let p =
        EbpfProgram::new(assemble("mov %r0, 1\njeq %r0, 1, +1\nexit\nmov %r0, 2\nexit").unwrap());
    let good = Compiled::new(&p, Inject::default()).unwrap();
    assert_eq!(good.run(&[]).unwrap().ret, 2);
    let bad = Compiled::new(
        &p,
        Inject {
            flip_jeq: true,
            ..Inject::default()
        },
    )
    .unwrap();
    assert_eq!(bad.run(&[]).unwrap().ret, 1);
}

#[test]
fn listing_names_instructions() {
    let p = EbpfProgram::new(assemble("mov %r0, 1\nexit").unwrap());
    let c = Compiled::new(&p, Inject::default()).unwrap();
    let l = c.listing();
    assert!(l.contains("; insn 0: mov %r0, 1"), "{l}");
    assert!(l.contains("; insn 1: exit"), "{l}");
    assert!(l.contains("; prologue") && l.contains("; epilogue"), "{l}");
}
