//! The helpers without maps, state between runs, map definitions the kernel refuses, map
//! references, and inputs the engine cannot realise.

use super::*;

#[test]
fn get_smp_processor_id_is_the_pinned_cpu() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let p = program("call 8\nexit", &[], &[]);
    let mut l = e.load(&p).unwrap();
    for n in [0usize, 14, 100] {
        for _ in 0..20 {
            let out = l.run(&input(&vec![0; n], vec![])).unwrap();
            assert_eq!(
                r0(&out),
                u64::from(bpfconf_engines::linux::ebpf::HELPER_CPU)
            );
        }
    }
    // In a tail-call target too.
    let p = program(
        "lddw_map_fd %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, 99\nexit",
        &[def(MapKind::ProgArray, 4, 4, 1)],
        &["call 8\nadd %r0, 1\nexit"],
    );
    let out = run(&e, &p, &input(&[], vec![slots(&[(0, 0)])]));
    assert_eq!(
        r0(&out),
        u64::from(bpfconf_engines::linux::ebpf::HELPER_CPU) + 1
    );
}

#[test]
fn nondeterministic_helpers_run() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // get_prandom_u32: a 32-bit value.
    let p = program("call 7\nrsh %r0, 32\nexit", &[], &[]);
    assert_eq!(r0(&run(&e, &p, &input(&[], vec![]))), 0);
    // ktime_get_ns: monotonic within a run, and not 0.
    let src = "
        call 5
        mov %r6, %r0
        call 5
        jlt %r0, %r6, +3
        jeq %r6, 0, +2
        mov %r0, 1
        exit
        mov %r0, 0
        exit";
    let p = program(src, &[], &[]);
    let mut l = e.load(&p).unwrap();
    for _ in 0..10 {
        assert_eq!(r0(&l.run(&input(&[], vec![])).unwrap()), 1);
    }
}

#[test]
fn every_run_starts_from_its_initial_contents() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // Adds 1 to array[0] and to hash[1] (inserting 1 if absent), pushes 5 to the queue and the
    // stack; R0 = the hash value before.
    let src = "
        stw [%r10-4], 0
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        ldxdw %r1, [%r0]
        add %r1, 1
        stxdw [%r0], %r1
        mov %r6, 0
        stw [%r10-4], 1
        lddw_map_fd %r1, 1
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, insert
        ldxdw %r6, [%r0]
        mov %r1, %r6
        add %r1, 1
        stxdw [%r0], %r1
        ja push
        insert:
        stdw [%r10-16], 1
        lddw_map_fd %r1, 1
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        push:
        stdw [%r10-16], 5
        lddw_map_fd %r1, 2
        mov %r2, %r10
        add %r2, -16
        mov %r3, 0
        call 87
        lddw_map_fd %r1, 3
        mov %r2, %r10
        add %r2, -16
        mov %r3, 0
        call 87
        mov %r0, %r6
        exit
        fail:
        mov %r0, -1
        exit";
    let defs = [
        def(MapKind::Array, 4, 8, 2),
        def(MapKind::Hash, 4, 8, 4),
        def(MapKind::Queue, 0, 8, 4),
        def(MapKind::Stack, 0, 8, 4),
    ];
    let p = program(src, &defs, &[]);
    let mut l = e.load(&p).unwrap();
    let empty = || vec![MapContents::Unknown; 4];
    let full = || {
        vec![
            array_of(&[10, 20]),
            keyed(&[(1, 100), (2, 200), (3, 300)]),
            seq(&[1, 2]),
            seq(&[3, 4]),
        ]
    };
    for (init, ret, after) in [
        (
            empty(),
            0,
            [array_of(&[1, 0]), keyed(&[(1, 1)]), seq(&[5]), seq(&[5])],
        ),
        (
            full(),
            100,
            [
                array_of(&[11, 20]),
                keyed(&[(1, 101), (2, 200), (3, 300)]),
                seq(&[1, 2, 5]),
                seq(&[3, 4, 5]),
            ],
        ),
        (
            empty(),
            0,
            [array_of(&[1, 0]), keyed(&[(1, 1)]), seq(&[5]), seq(&[5])],
        ),
        (
            vec![],
            0,
            [array_of(&[1, 0]), keyed(&[(1, 1)]), seq(&[5]), seq(&[5])],
        ),
        (
            full(),
            100,
            [
                array_of(&[11, 20]),
                keyed(&[(1, 101), (2, 200), (3, 300)]),
                seq(&[1, 2, 5]),
                seq(&[3, 4, 5]),
            ],
        ),
    ] {
        for n in [0usize, 16] {
            let out = l.run(&input(&vec![0; n], init.clone())).unwrap();
            assert_eq!(r0(&out), ret);
            assert_eq!(maps(&out), after);
        }
    }
}

#[test]
fn map_definitions_the_kernel_refuses() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let ok = "mov %r0, 0\nexit";
    let with = |d: MapDef| program(ok, &[d], &[]);
    let mut no_prealloc_array = def(MapKind::Array, 4, 8, 1);
    no_prealloc_array.flags = 1;
    for (d, what) in [
        (no_prealloc_array, "flags 0x1"),
        (def(MapKind::Hash, 0, 8, 1), "key 0"),
        (def(MapKind::Array, 8, 8, 1), "key 8"),
        (def(MapKind::Queue, 4, 8, 1), "key 4"),
        (def(MapKind::ProgArray, 4, 8, 1), "value 8"),
        (def(MapKind::Hash, 4, 8, 0), "max_entries 0"),
    ] {
        let r = reject(&e, &with(d));
        assert!(r.starts_with("bpf(BPF_MAP_CREATE) refused map"), "{r}");
        assert!(r.contains(what) && r.contains("EINVAL"), "{r}");
    }
    // Names the kernel would refuse are made acceptable.
    let mut d = def(MapKind::Hash, 4, 8, 1);
    d.name = "a name with spaces, and too long for BPF_OBJ_NAME_LEN".into();
    let out = run(&e, &with(d), &input(&[], vec![]));
    assert_eq!(maps(&out), [keyed(&[])]);
}

#[test]
fn map_references() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // An index past the program's maps.
    let p = program(
        "lddw_map_fd %r1, 1\nmov %r0, 0\nexit",
        &[def(MapKind::Hash, 4, 8, 1)],
        &[],
    );
    let r = reject(&e, &p);
    assert!(
        r.contains("slot 0: lddw (src 1) refers to map 1, the program has 1 map(s)"),
        "{r}"
    );
    // In a target.
    let p = program(
        "mov %r0, 0\nexit",
        &[],
        &["lddw_map_value %r1, 3, 0\nmov %r0, 0\nexit"],
    );
    assert!(reject(&e, &p).starts_with("progs[0]: slot 0: lddw (src 2) refers to map 3"));
    // src 5 (BPF_PSEUDO_MAP_IDX) indexes the same list, through the load's fd_array.
    let src = "
        stw [%r10-4], 1
        stdw [%r10-16], 6
        lddw_map_idx %r1, 1
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        exit";
    let defs = [def(MapKind::Array, 4, 8, 1), def(MapKind::Hash, 4, 8, 1)];
    let out = run(&e, &program(src, &defs, &[]), &input(&[], vec![]));
    assert_eq!(r0(&out), 0);
    assert_eq!(maps(&out), [array_of(&[0]), keyed(&[(1, 6)])]);
    // A program without maps has an empty snapshot.
    let out = run(
        &e,
        &program("mov %r0, 0\nexit", &[], &[]),
        &input(&[], vec![]),
    );
    assert_eq!(out.maps, Some(vec![]));
}

#[test]
fn unrealisable_inputs() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let defs = [
        def(MapKind::Hash, 4, 8, 1),
        def(MapKind::Queue, 0, 8, 1),
        def(MapKind::Array, 4, 8, 2),
    ];
    let p = program("mov %r0, 0\nexit", &defs, &[]);
    let mut l = e.load(&p).unwrap();
    for bad in [
        vec![keyed(&[(1, 1), (2, 2)])],               // more than max_entries
        vec![seq(&[1])],                              // a sequence for a hash map
        vec![MapContents::Unknown, keyed(&[(0, 1)])], // keys for a queue
        vec![MapContents::Unknown, seq(&[1, 2])],     // over max_entries
        vec![MapContents::Unknown, MapContents::Unknown, keyed(&[(2, 1)])], // index 2
        vec![MapContents::Keyed([(vec![1], vec![0; 8])].into())], // key size
        vec![MapContents::Unknown; 4],                // a fourth map
    ] {
        let i = input(&[], bad.clone());
        assert!(e.supports(&p, &i).is_err(), "{bad:?}");
        match l.run(&i) {
            Err(RunError::Unsupported(_)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // The loaded program is still fine afterwards.
    let out = l.run(&input(&[], vec![keyed(&[(1, 1)])])).unwrap();
    assert_eq!(maps(&out)[0], keyed(&[(1, 1)]));
}
