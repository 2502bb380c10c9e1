//! `BPF_MAP_TYPE_ARRAY`: lookups return pointers into the map that stay writable, updates and
//! their errors, delete, and direct value addresses (`lddw` src 2).

use super::*;

/// `map_update_elem(map 0, &key, &7u64, flags)`; R0 = its result.
fn update(key: i32, flags: i32) -> String {
    format!(
        "
        stw [%r10-4], {key}
        stdw [%r10-16], 7
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
fn lookup_returns_a_writable_pointer() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let src = "
        # index 1: add 5 through the pointer
        stw [%r10-4], 1
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        ldxdw %r1, [%r0]
        add %r1, 5
        stxdw [%r0], %r1
        # index 3: store 7 through its pointer
        stw [%r10-4], 3
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        stdw [%r0], 7
        # index 4 = max_entries: NULL
        stw [%r10-4], 4
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jne %r0, 0, fail
        # index 1 again: the stored value
        stw [%r10-4], 1
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        ldxdw %r0, [%r0]
        exit
        fail:
        mov %r0, -1
        exit";
    let p = program(src, &[def(MapKind::Array, 4, 8, 4)], &[]);
    let out = run(&e, &p, &input(&[], vec![keyed(&[(1, 10)])]));
    assert_eq!(r0(&out), 15);
    // Every index is in the snapshot, zeros included.
    assert_eq!(maps(&out), [array_of(&[0, 15, 0, 7])]);
}

#[test]
fn update_results_and_error_order() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let a = [def(MapKind::Array, 4, 8, 2)];
    let init = || vec![keyed(&[(1, 3)])];
    // (index, flags) → R0, value at index 1 afterwards.
    for (key, flags, want, at1) in [
        (1, 0, 0, 7),                     // BPF_ANY
        (1, 2, 0, 7),                     // BPF_EXIST: every element exists
        (1, 1, neg(libc::EEXIST), 3),     // BPF_NOEXIST: never
        (2, 0, neg(libc::E2BIG), 3),      // index >= max_entries
        (2, 1, neg(libc::E2BIG), 3),      // ... checked before NOEXIST
        (1, 3, neg(libc::EINVAL), 3),     // flags > BPF_EXIST
        (2, 3, neg(libc::EINVAL), 3),     // ... checked before the index
        (1, 4, neg(libc::EINVAL), 3),     // BPF_F_LOCK: no spin lock in the value
        (2, 4, neg(libc::E2BIG), 3),      // ... checked after the index
        (1, 1 | 4, neg(libc::EEXIST), 3), // ... and after NOEXIST
        (1, 8, neg(libc::EINVAL), 3),
    ] {
        let out = run(
            &e,
            &program(&update(key, flags), &a, &[]),
            &input(&[], init()),
        );
        assert_eq!(r0(&out), want, "index {key} flags {flags}");
        assert_eq!(
            maps(&out),
            [array_of(&[0, at1])],
            "index {key} flags {flags}"
        );
    }
}

#[test]
fn delete_is_refused() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let src = "
        stw [%r10-4], 0
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 3
        exit";
    let p = program(src, &[def(MapKind::Array, 4, 8, 2)], &[]);
    let out = run(&e, &p, &input(&[], vec![keyed(&[(0, 1)])]));
    assert_eq!(r0(&out), neg(libc::EINVAL));
    assert_eq!(maps(&out), [array_of(&[1, 0])]);
}

#[test]
fn direct_value_address() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // lddw src 2: map 0, offset 8 into its (only) value.
    let src = "
        lddw_map_value %r1, 0, 8
        ldxdw %r0, [%r1]
        stdw [%r1], 5
        ldxdw %r2, [%r1-8]
        add %r0, %r2
        exit";
    let one = def(MapKind::Array, 4, 16, 1);
    let mut init = [0u8; 16];
    init[..8].copy_from_slice(&30u64.to_le_bytes());
    init[8..].copy_from_slice(&12u64.to_le_bytes());
    let c = MapContents::Keyed([(vec![0; 4], init.to_vec())].into());
    let out = run(
        &e,
        &program(src, std::slice::from_ref(&one), &[]),
        &input(&[], vec![c]),
    );
    assert_eq!(r0(&out), 42);
    let mut want = [0u8; 16];
    want[..8].copy_from_slice(&30u64.to_le_bytes());
    want[8..].copy_from_slice(&5u64.to_le_bytes());
    assert_eq!(
        maps(&out),
        [MapContents::Keyed([(vec![0; 4], want.to_vec())].into())]
    );
    // Only one-entry arrays have direct value addresses (array_map_direct_value_addr:
    // ENOTSUPP otherwise), and the offset must be inside the value.
    let two = def(MapKind::Array, 4, 16, 2);
    let r = reject(&e, &program(src, &[two], &[]));
    assert!(
        r.contains("invalid access to map value pointer, value_size=16 off=8"),
        "{r}"
    );
    let r = reject(
        &e,
        &program("lddw_map_value %r1, 0, 16\nmov %r0, 0\nexit", &[one], &[]),
    );
    assert!(r.contains("value_size=16 off=16"), "{r}");
}

#[test]
fn odd_value_sizes() {
    let _g = serial();
    let Some(e) = engine() else { return };
    // A 3-byte value: update from the stack, then a byte written through the pointer.
    let src = "
        stw [%r10-4], 2
        stw [%r10-16], 0xaabbcc
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, +2
        stb [%r0+2], 0x11
        mov %r0, 0
        exit";
    let out = run(
        &e,
        &program(src, &[def(MapKind::Array, 4, 3, 3)], &[]),
        &input(&[], vec![]),
    );
    assert_eq!(r0(&out), 0);
    let idx = |i: u32| i.to_le_bytes().to_vec();
    assert_eq!(
        maps(&out),
        [MapContents::Keyed(
            [
                (idx(0), vec![0, 0, 0]),
                (idx(1), vec![0, 0, 0]),
                (idx(2), vec![0xcc, 0xbb, 0x11]),
            ]
            .into()
        )]
    );
}
