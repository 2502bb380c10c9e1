//! Entry state, region bounds (buffer and 512-byte stack, both edges), run-time faults and the
//! engine wrapper.

use super::{asm, fault, fault_of, r0, run_mem};
use bpfconf_engines::interp::ebpf::{self, Interpreter, MEM_BASE, STACK_BASE, STEP_LIMIT};
use bpfconf_engines::interp::Interp;
use bpfconf_engines::{ClassicInput, EbpfInput, EbpfProgram, Engine, Input, LoadError};
use bpfconf_engines::{Observed, Program, RunError};
use bpfconf_spec::case::Ctx;
use bpfconf_spec::ebpf::Insn;

#[test]
fn entry_registers() {
    let mem = [0u8; 8];
    assert_eq!(run_mem("mov %r0, %r1\nexit", &mem).ret, MEM_BASE);
    assert_eq!(run_mem("mov %r0, %r2\nexit", &mem).ret, 8);
    assert_eq!(r0("mov %r0, %r1\nexit"), 0);
    assert_eq!(r0("mov %r0, %r2\nexit"), 0);
    assert_eq!(r0("mov %r0, %r10\nexit"), STACK_BASE + 512);
    let others = "mov %r0, %r3\nor %r0, %r4\nor %r0, %r5\nor %r0, %r6\nor %r0, %r7\nor %r0, %r8\nor %r0, %r9\nexit";
    assert_eq!(run_mem(others, &mem).ret, 0);
    assert_eq!(r0("exit"), 0);
}

#[test]
fn stack_is_512_bytes_at_both_edges() {
    assert_eq!(r0("stb [%r10-512], 1\nldxb %r0, [%r10-512]\nexit"), 1);
    assert_eq!(
        r0("stxdw [%r10-512], %r10\nldxdw %r0, [%r10-512]\nexit"),
        STACK_BASE + 512
    );
    assert_eq!(r0("stdw [%r10-8], -1\nldxdw %r0, [%r10-8]\nexit"), u64::MAX);
    let below = STACK_BASE - 1;
    assert_eq!(
        fault("stb [%r10-513], 1\nexit", &[]),
        format!("out-of-bounds store of 1 bytes at {below:#x} (insn 0)")
    );
    let top = STACK_BASE + 512;
    assert_eq!(
        fault("ldxb %r0, [%r10+0]\nexit", &[]),
        format!("out-of-bounds load of 1 bytes at {top:#x} (insn 0)")
    );
    assert!(fault("ldxdw %r0, [%r10-4]\nexit", &[]).starts_with("out-of-bounds load of 8"));
    assert!(fault("stxdw [%r10-516], %r1\nexit", &[]).starts_with("out-of-bounds store of 8"));
}

#[test]
fn buffer_accesses_are_bounds_checked() {
    let mem = [1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(
        run_mem("ldxdw %r0, [%r1]\nexit", &mem).ret,
        0x0807_0605_0403_0201
    );
    assert_eq!(
        fault("ldxdw %r0, [%r1+4]\nexit", &mem),
        "out-of-bounds load of 8 bytes at 0x100000004 (insn 0)"
    );
    assert_eq!(
        fault("mov %r0, 0\nstw [%r1+5], 0\nexit", &mem),
        "out-of-bounds store of 4 bytes at 0x100000005 (insn 1)"
    );
    assert_eq!(
        fault("mov %r2, 1\nlock add [%r1+1], %r2\nexit", &mem),
        "out-of-bounds atomic access of 8 bytes at 0x100000001 (insn 1)"
    );
    assert!(fault("ldxb %r0, [%r1-1]\nexit", &mem).contains("0xffffffff"));
    // No buffer: R1 is 0 and nothing is mapped there.
    assert_eq!(
        fault("ldxb %r0, [%r1]\nexit", &[]),
        "out-of-bounds load of 1 bytes at 0x0 (insn 0)"
    );
    // Address arithmetic wraps; the wrapped address is checked like any other.
    assert!(fault("lddw %r1, -1\nldxb %r0, [%r1+1]\nexit", &mem).contains("at 0x0 "));
    // Stores land in the reported buffer, and only there.
    let out = run_mem("stb [%r1+7], 0xee\nsth [%r10-2], 1\nexit", &mem);
    assert_eq!(out.mem, [1, 2, 3, 4, 5, 6, 7, 0xee]);
}

#[test]
fn control_flow_faults() {
    let raw = |insns: &[Insn]| fault_of(&Interpreter::new(insns), &[]);
    let ja = |off| Insn::new(0x05, 0, 0, off, 0);
    let exit = Insn::new(0x95, 0, 0, 0, 0);
    assert_eq!(
        raw(&[Insn::new(0xb7, 0, 0, 0, 1)]),
        "ran past the end of the program (1 slots) (insn 1)"
    );
    assert_eq!(
        raw(&[ja(5), exit]),
        "jump to slot 6, outside the program (0..2) (insn 0)"
    );
    assert_eq!(
        raw(&[ja(-2), exit]),
        "jump to slot -1, outside the program (0..2) (insn 0)"
    );
    let lddw = [Insn::new(0x18, 0, 0, 0, 1), Insn::default()];
    let into = [ja(1), lddw[0], lddw[1], exit];
    assert_eq!(
        raw(&into),
        "slot 2 is the second half of an `lddw` (insn 2)"
    );
    assert!(raw(&[lddw[0]]).contains("no second slot"));
    assert!(raw(&[Insn::new(0xff, 0, 0, 0, 0)]).starts_with("unknown instruction: opcode 0xff"));
    assert!(raw(&[Insn::new(0x34, 0, 0, 2, 1), exit]).starts_with("unknown instruction"));
    assert!(raw(&[Insn::new(0xb7, 11, 0, 0, 1), exit]).contains("register r11"));
    assert!(raw(&[Insn::new(0xb7, 10, 0, 0, 1), exit]).contains("writes r10"));
    let looping = asm("ja -1\nexit");
    let limited = Interpreter::new(&looping).with_step_limit(1000);
    assert_eq!(
        fault_of(&limited, &[]),
        "step limit of 1000 instructions exceeded (insn 0)"
    );
    let msg = fault_of(&Interpreter::new(&looping), &[]);
    assert_eq!(
        msg,
        format!("step limit of {STEP_LIMIT} instructions exceeded (insn 0)")
    );
    // Loops are legal below the limit.
    let count = "mov %r0, 0\nadd %r0, 1\njlt %r0, 100000, -2\nexit";
    assert_eq!(r0(count), 100_000);
}

#[test]
fn unused_fields_are_ignored_at_run_time() {
    // `exit` with dst = 3 is rejected by the validator but runs in the raw interpreter.
    let prog = [Insn::new(0xb7, 0, 0, 0, 4), Insn::new(0x95, 3, 0, 0, 0)];
    assert_eq!(ebpf::run(&prog, &[]).unwrap().ret, 4);
}

fn program(text: &str) -> Program {
    Program::Ebpf(EbpfProgram::new(asm(text)))
}

fn input(mem: &[u8]) -> Input {
    Input::Ebpf(EbpfInput::new(mem.to_vec()))
}

#[test]
fn engine_validates_loads_and_reports_outcomes() {
    let e = Interp::new();
    let p = program("stb [%r1], 9\nmov %r0, -1\nexit");
    assert_eq!(e.supports(&p, &input(&[1, 2])), Ok(()));
    let o = e.load(&p).unwrap().run(&input(&[1, 2])).unwrap();
    assert_eq!(o.ret, Observed::Exact(u64::MAX));
    assert_eq!((o.mem, o.memory), (None, Some(vec![9, 2])));

    let bad = Program::Ebpf(EbpfProgram::new(vec![Insn::new(0x95, 1, 0, 0, 0)]));
    match e.load(&bad) {
        Err(LoadError::Rejected { rule, .. }) => assert_eq!(rule.as_deref(), Some("unused_field")),
        other => panic!("expected a rejection, got {:?}", other.err()),
    }
    // A reference to a map the program does not declare is refused at load, like the kernel's
    // EBADF; `src` 3-6 references are not supported (maps: tests/interp_maps.rs).
    let map = program("lddw_map_fd %r1, 3\nmov %r0, 0\nexit");
    assert_eq!(e.supports(&map, &input(&[])), Ok(()));
    match e.load(&map) {
        Err(LoadError::Rejected { rule, .. }) => assert_eq!(rule.as_deref(), Some("map_reference")),
        other => panic!("expected a rejection, got {:?}", other.err()),
    }
    let var = program("lddw_var_addr %r1, 3\nmov %r0, 0\nexit");
    assert!(e.supports(&var, &input(&[])).is_err());
    assert!(matches!(
        e.load(&var).err(),
        Some(LoadError::Unsupported(_))
    ));

    let classic = Input::Classic(ClassicInput {
        packet: vec![],
        ctx: Ctx::default(),
    });
    assert!(e.supports(&p, &classic).is_err());
    assert!(matches!(
        e.load(&p).unwrap().run(&classic),
        Err(RunError::Engine(_))
    ));
    let oob = program("ldxdw %r0, [%r1]\nexit");
    assert!(matches!(
        e.load(&oob).unwrap().run(&input(&[0; 4])),
        Err(RunError::Fault(_))
    ));
}
