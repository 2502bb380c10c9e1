//! `BPF_MAP_TYPE_HASH`: NULL on a miss, pointers that stay writable, update flags and their
//! errors, a full map, delete, odd key and value sizes.

use super::*;

/// `map_update_elem(map 0, &key, &value, flags)`; R0 = its result.
fn update(key: i32, value: i32, flags: i32) -> String {
    format!(
        "
        stw [%r10-4], {key}
        stdw [%r10-16], {value}
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, {flags}
        call 2
        exit"
    )
}

#[test]
fn lookup_update_modify() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let src = "
        # key 5 is missing: NULL
        stw [%r10-4], 5
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jne %r0, 0, fail
        # insert 5 = 100
        stdw [%r10-16], 100
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        jne %r0, 0, fail
        # add 1 through a pointer to 5
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        ldxdw %r1, [%r0]
        add %r1, 1
        stxdw [%r0], %r1
        # double key 2 (initially 20) through its pointer, keep the pointer in r6
        stw [%r10-4], 2
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        mov %r6, %r0
        ldxdw %r1, [%r6]
        lsh %r1, 1
        stxdw [%r6], %r1
        # another helper call in between: the pointer stays valid
        stw [%r10-4], 5
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        ldxdw %r0, [%r6]
        exit
        fail:
        mov %r0, -1
        exit";
    let p = program(src, &[def(MapKind::Hash, 4, 8, 8)], &[]);
    let out = run(&e, &p, &input(&[], vec![keyed(&[(2, 20), (9, 90)])]));
    assert_eq!(r0(&out), 40);
    assert_eq!(maps(&out), [keyed(&[(2, 40), (5, 101), (9, 90)])]);
}

#[test]
fn update_flags() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let h = [def(MapKind::Hash, 4, 8, 4)];
    let init = || vec![keyed(&[(1, 3)])];
    for (key, flags, want, after) in [
        (1, 0, 0, keyed(&[(1, 7)])),                     // ANY, present
        (2, 0, 0, keyed(&[(1, 3), (2, 7)])),             // ANY, absent
        (1, 1, neg(libc::EEXIST), keyed(&[(1, 3)])),     // NOEXIST, present
        (2, 1, 0, keyed(&[(1, 3), (2, 7)])),             // NOEXIST, absent
        (1, 2, 0, keyed(&[(1, 7)])),                     // EXIST, present
        (2, 2, neg(libc::ENOENT), keyed(&[(1, 3)])),     // EXIST, absent
        (1, 3, neg(libc::EINVAL), keyed(&[(1, 3)])),     // flags > EXIST
        (1, 4, neg(libc::EINVAL), keyed(&[(1, 3)])),     // BPF_F_LOCK without a spin lock
        (1, 1 | 4, neg(libc::EINVAL), keyed(&[(1, 3)])), // ... checked before NOEXIST
        (1, 8, neg(libc::EINVAL), keyed(&[(1, 3)])),
    ] {
        let out = run(
            &e,
            &program(&update(key, 7, flags), &h, &[]),
            &input(&[], init()),
        );
        assert_eq!(r0(&out), want, "key {key} flags {flags}");
        assert_eq!(maps(&out), [after], "key {key} flags {flags}");
    }
}

#[test]
fn full_map() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // Preallocated (flags 0) and BPF_F_NO_PREALLOC (1) behave the same.
    for map_flags in [0, 1] {
        let mut d = def(MapKind::Hash, 4, 8, 2);
        d.flags = map_flags;
        let h = [d];
        let full = || vec![keyed(&[(1, 1), (2, 2)])];
        for (key, flags, want, after) in [
            (3, 0, neg(libc::E2BIG), keyed(&[(1, 1), (2, 2)])), // a new key
            (3, 1, neg(libc::E2BIG), keyed(&[(1, 1), (2, 2)])), // NOEXIST, new
            (2, 0, 0, keyed(&[(1, 1), (2, 7)])),                // replacing works
            (2, 2, 0, keyed(&[(1, 1), (2, 7)])),
            (3, 2, neg(libc::ENOENT), keyed(&[(1, 1), (2, 2)])),
        ] {
            let p = program(&update(key, 7, flags), &h, &[]);
            let out = run(&e, &p, &input(&[], full()));
            assert_eq!(
                r0(&out),
                want,
                "map flags {map_flags}, key {key} flags {flags}"
            );
            assert_eq!(maps(&out), [after], "map flags {map_flags}, key {key}");
        }
        // Delete, then insert: room again.
        let src = "
            stw [%r10-4], 1
            lddw_map_fd %r1, 0
            mov %r2, %r10
            add %r2, -4
            call 3
            jne %r0, 0, exit
            stw [%r10-4], 3
            stdw [%r10-16], 33
            lddw_map_fd %r1, 0
            mov %r2, %r10
            add %r2, -4
            mov %r3, %r10
            add %r3, -16
            mov %r4, 1
            call 2
            exit";
        let out = run(&e, &program(src, &h, &[]), &input(&[], full()));
        assert_eq!(r0(&out), 0, "map flags {map_flags}");
        assert_eq!(maps(&out), [keyed(&[(2, 2), (3, 33)])]);
    }
}

#[test]
fn delete() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let del = |key: i32| {
        format!(
            "
            stw [%r10-4], {key}
            lddw_map_fd %r1, 0
            mov %r2, %r10
            add %r2, -4
            call 3
            exit"
        )
    };
    let h = [def(MapKind::Hash, 4, 8, 4)];
    let out = run(
        &e,
        &program(&del(1), &h, &[]),
        &input(&[], vec![keyed(&[(1, 5), (2, 6)])]),
    );
    assert_eq!(r0(&out), 0);
    assert_eq!(maps(&out), [keyed(&[(2, 6)])]);
    let out = run(
        &e,
        &program(&del(3), &h, &[]),
        &input(&[], vec![keyed(&[(1, 5)])]),
    );
    assert_eq!(r0(&out), neg(libc::ENOENT));
    assert_eq!(maps(&out), [keyed(&[(1, 5)])]);
}

#[test]
fn odd_key_and_value_sizes() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // Key 01 02 03 04 05 06, value cc bb aa.
    let src = "
        stw [%r10-8], 0x04030201
        sth [%r10-4], 0x0605
        stw [%r10-16], 0xaabbcc
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -8
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        exit";
    let out = run(
        &e,
        &program(src, &[def(MapKind::Hash, 6, 3, 4)], &[]),
        &input(&[], vec![]),
    );
    assert_eq!(r0(&out), 0);
    assert_eq!(
        maps(&out),
        [MapContents::Keyed(
            [(vec![1, 2, 3, 4, 5, 6], vec![0xcc, 0xbb, 0xaa])].into()
        )]
    );
}

#[test]
fn no_direct_value_address() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let p = program(
        "lddw_map_value %r1, 0, 0\nmov %r0, 0\nexit",
        &[def(MapKind::Hash, 4, 8, 1)],
        &[],
    );
    let r = reject(&e, &p);
    assert!(
        r.contains("no direct value access support for this map type"),
        "{r}"
    );
}
