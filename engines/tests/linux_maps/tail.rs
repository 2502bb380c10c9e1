//! `bpf_tail_call` through `BPF_MAP_TYPE_PROG_ARRAY`: chains, the 33-call limit, indices that
//! fall through, what a target sees, and the engine's limits (module `wrap`).

use super::*;

/// `tail_call(ctx, map 0, idx)`, then R0 = 99 if it fell through.
fn tail_call(idx: &str) -> String {
    format!(
        "
        lddw_map_fd %r2, 0
        {idx}
        call 12
        mov %r0, 99
        exit"
    )
}

fn pa(max: u32) -> MapDef {
    def(MapKind::ProgArray, 4, 4, max)
}

/// Increments the u64 at index 0 of array map 1, then tail-calls slot 0 of map 0; R0 = 7 when
/// that falls through.
const COUNTER: &str = "
    stw [%r10-4], 0
    lddw_map_fd %r1, 1
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, +3
    ldxdw %r1, [%r0]
    add %r1, 1
    stxdw [%r0], %r1
    lddw_map_fd %r2, 0
    mov %r3, 0
    call 12
    mov %r0, 7
    exit";

#[test]
fn chain() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // entry → slot 0 = progs[1] → slot 1 = progs[0], which returns 43.
    let progs = [
        "mov %r0, 43\nexit",
        "lddw_map_fd %r2, 0\nmov %r3, 1\ncall 12\nmov %r0, 98\nexit",
    ];
    let p = program(&tail_call("mov %r3, 0"), &[pa(4)], &progs);
    let out = run(&e, &p, &input(&[], vec![slots(&[(0, 1), (1, 0)])]));
    assert_eq!(r0(&out), 43);
    // The snapshot gives program indices, as the case declared them.
    assert_eq!(maps(&out), [slots(&[(0, 1), (1, 0)])]);
}

#[test]
fn indices_that_fall_through() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let progs = ["mov %r0, 42\nexit"];
    let init = || vec![slots(&[(0, 0)])];
    for (idx, want) in [
        ("mov %r3, 0", 42),
        ("mov %r3, 1", 99),            // empty slot
        ("mov %r3, 4", 99),            // = max_entries
        ("mov %r3, -1", 99),           // 0xffffffff
        ("lddw %r3, 0x100000000", 42), // the index is R3's low 32 bits
        ("lddw %r3, 0xffffffff00000000", 42),
    ] {
        let out = run(
            &e,
            &program(&tail_call(idx), &[pa(4)], &progs),
            &input(&[], init()),
        );
        assert_eq!(r0(&out), want, "{idx}");
    }
    // No slot filled at all.
    let out = run(
        &e,
        &program(&tail_call("mov %r3, 0"), &[pa(4)], &progs),
        &input(&[], vec![]),
    );
    assert_eq!(r0(&out), 99);
    assert_eq!(maps(&out), [slots(&[])]);
}

#[test]
fn limit_of_33() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let maps_ = [pa(1), def(MapKind::Array, 4, 8, 1)];
    // A target that tail-calls itself: the entry program and 33 tail calls run, the 34th
    // call falls through.
    let out = run(
        &e,
        &program(COUNTER, &maps_, &[COUNTER]),
        &input(&[], vec![slots(&[(0, 0)])]),
    );
    assert_eq!(r0(&out), 7);
    assert_eq!(maps(&out)[1], array_of(&[34]));
    // Calls that fall through (an empty slot) do not count: 40 of them first, then the
    // same chain.
    let src = format!(
        "
        mov %r6, 0
        again:
        lddw_map_fd %r2, 0
        mov %r3, 1
        call 12
        add %r6, 1
        jlt %r6, 40, again
        {COUNTER}"
    );
    let maps2 = [pa(2), def(MapKind::Array, 4, 8, 1)];
    let out = run(
        &e,
        &program(&src, &maps2, &[COUNTER]),
        &input(&[], vec![slots(&[(0, 0)])]),
    );
    assert_eq!(r0(&out), 7);
    assert_eq!(maps(&out)[1], array_of(&[34]));
}

#[test]
fn what_a_target_sees() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // The target starts like any program: R1 = the memory (with the caller's writes), R2 =
    // its length. Its writes are in the memory after the run.
    let target = "
        stb [%r1+2], 88
        ldxb %r0, [%r1+1]
        lsh %r0, 32
        or %r0, %r2
        exit";
    let entry = format!("stb [%r1+1], 77\n{}", tail_call("mov %r3, 0"));
    let p = program(&entry, &[pa(1)], &[target]);
    let out = run(&e, &p, &input(&[1, 2, 3], vec![slots(&[(0, 0)])]));
    assert_eq!(r0(&out), 77 << 32 | 3);
    assert_eq!(out.memory.as_deref(), Some(&[1, 77, 88][..]));
    // Nothing else: R6 (set by the caller) is unreadable in the target.
    let p = program(&tail_call("mov %r3, 0"), &[pa(1)], &["mov %r0, %r6\nexit"]);
    let r = reject(&e, &p);
    assert!(r.starts_with("progs[0]: verifier: "), "{r}");
    assert!(r.contains("R6 !read_ok"), "{r}");
    // The R1 a program passes is ignored: the engine passes the context.
    let src = format!("mov %r1, 5\n{}", tail_call("mov %r3, 0"));
    let out = run(
        &e,
        &program(&src, &[pa(1)], &["mov %r0, 42\nexit"]),
        &input(&[], vec![slots(&[(0, 0)])]),
    );
    assert_eq!(r0(&out), 42);
}

#[test]
fn after_a_failed_tail_call() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // R0 is unreadable after bpf_tail_call (it returns void)...
    let p = program(
        "lddw_map_fd %r2, 0\nmov %r3, 0\ncall 12\nexit",
        &[pa(1)],
        &["mov %r0, 1\nexit"],
    );
    assert!(reject(&e, &p).contains("R0 !read_ok"));
    // ... and so are R1-R5; R6-R9 and the stack survive. 512 bytes of stack are fine in a
    // program that tail-calls (it is the XDP main function).
    let src = "
        mov %r6, 6
        stdw [%r10-512], 500
        lddw_map_fd %r2, 0
        mov %r3, 1
        call 12
        ldxdw %r0, [%r10-512]
        add %r0, %r6
        exit";
    let p = program(src, &[pa(2)], &["mov %r0, 1\nexit"]);
    let out = run(&e, &p, &input(&[], vec![slots(&[(0, 0)])]));
    assert_eq!(r0(&out), 506);
    let p = program(
        "lddw_map_fd %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, %r3\nexit",
        &[pa(1)],
        &["mov %r0, 1\nexit"],
    );
    assert!(reject(&e, &p).contains("R3 !read_ok"));
}

#[test]
fn local_calls_around_tail_calls() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // The tail-calling main function has a subprogram; the target has one too.
    let entry = "
        call local f
        mov %r6, %r0
        lddw_map_fd %r2, 0
        mov %r3, 0
        call 12
        mov %r0, %r6
        exit
        f:
        mov %r0, 5
        exit";
    let target = "
        call local g
        add %r0, 1
        exit
        g:
        mov %r0, 41
        exit";
    let p = program(entry, &[pa(1)], &[target]);
    let out = run(&e, &p, &input(&[], vec![slots(&[(0, 0)])]));
    assert_eq!(r0(&out), 42);
    let mut l = e.load(&p).unwrap();
    assert_eq!(r0(&l.run(&input(&[], vec![])).unwrap()), 5);
}

#[test]
fn engine_limits() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // A tail call in a subprogram: the context cannot reach it.
    let src = "
        call local f
        exit
        f:
        lddw_map_fd %r2, 0
        mov %r3, 0
        call 12
        mov %r0, 1
        exit";
    let p = program(src, &[pa(1)], &["mov %r0, 1\nexit"]);
    let why = unsupported(&e, &p);
    assert!(
        why.contains("bpf_tail_call in a subprogram (slot 5)"),
        "{why}"
    );
    assert_eq!(e.supports(&p, &input(&[], vec![])), Err(why));
    // The same in a target names it.
    let p = program(&tail_call("mov %r3, 0"), &[pa(1)], &[src]);
    assert!(unsupported(&e, &p).starts_with("progs[0]: bpf_tail_call in a subprogram"));
    // R6-R9 all named in a main function that tail-calls.
    let src = "
        mov %r6, 1
        mov %r7, 1
        mov %r8, 1
        mov %r9, 1
        lddw_map_fd %r2, 0
        mov %r3, 0
        call 12
        mov %r0, 1
        exit";
    let why = unsupported(&e, &program(src, &[pa(1)], &[]));
    assert!(why.contains("R6-R9"), "{why}");
    // Only a prog_array works.
    let p = program(
        &tail_call("mov %r3, 0"),
        &[def(MapKind::Array, 4, 4, 1)],
        &[],
    );
    assert!(reject(&e, &p).contains("expected prog array map for tail call"));
}

#[test]
fn targets_follow_the_run() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // One loaded program, runs with different lengths (a verified variant each, targets
    // included) and different prog_array contents.
    let progs = ["mov %r0, %r2\nexit", "mov %r0, 1000\nexit"];
    let p = program(&tail_call("mov %r3, 2"), &[pa(4)], &progs);
    let mut l = e.load(&p).unwrap();
    for (n, init, want) in [
        (0usize, slots(&[(2, 0)]), 0u64),
        (7, slots(&[(2, 0)]), 7),
        (7, slots(&[(2, 1)]), 1000),
        (20, slots(&[(0, 1)]), 99),
        (20, slots(&[(2, 0), (3, 1)]), 20),
        (0, MapContents::Unknown, 99),
        (7, slots(&[(2, 0)]), 7),
    ] {
        let out = l.run(&input(&vec![0; n], vec![init.clone()])).unwrap();
        assert_eq!(r0(&out), want, "length {n}, {init}");
        let init = if init == MapContents::Unknown {
            slots(&[])
        } else {
            init
        };
        assert_eq!(maps(&out), [init]);
    }
}

#[test]
fn prog_array_inputs_are_checked() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let p = program(&tail_call("mov %r3, 0"), &[pa(2)], &["mov %r0, 1\nexit"]);
    // A program index without a program, a slot past max_entries.
    for bad in [slots(&[(0, 1)]), slots(&[(2, 0)])] {
        let i = input(&[], vec![bad]);
        assert!(e.supports(&p, &i).is_err());
        let mut l = e.load(&p).unwrap();
        assert!(matches!(l.run(&i), Err(RunError::Unsupported(_))));
    }
}
