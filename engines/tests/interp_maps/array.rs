//! Array maps: every element exists and is zero-filled, out-of-range lookups give NULL, the
//! update errnos in arraymap.c's order, delete is refused, element pointers are fixed, and
//! `lddw_map_value` points into element 0.

use super::*;

#[test]
fn update_errnos_in_kernel_order() {
    let text = [
        START,
        &update(0, 1, 10, 0, 0),  // ANY: fine
        &update(0, 1, 11, 1, 1),  // NOEXIST: every element exists, -EEXIST
        &update(0, 2, 20, 2, 2),  // EXIST: fine
        &update(0, 3, 30, 0, 3),  // index = max_entries: -E2BIG
        &update(0, -1, 30, 2, 4), // index 0xffffffff: -E2BIG
        &update(0, 1, 12, 3, 5),  // flags above EXIST: -EINVAL
        &update(0, 9, 12, 3, 6),  // bad flags win over a bad index
        &update(0, 9, 12, 4, 7),  // F_LOCK is checked after the index: -E2BIG
        &update(0, 1, 12, 5, 8),  // NOEXIST | F_LOCK: -EEXIST comes before the lock check
        &update(0, 1, 12, 4, 9),  // F_LOCK, no spin lock: -EINVAL
        &delete(0, 1, 10),        // elements cannot be deleted: -EINVAL
        &delete(0, 7, 11),        // whatever the index
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![array(3)]), &[]);
    assert_eq!(
        slots(&r)[..12],
        [0, EEXIST, 0, E2BIG, E2BIG, EINVAL, EINVAL, E2BIG, EEXIST, EINVAL, EINVAL, EINVAL]
    );
    assert_eq!(r.maps, vec![keyed(&[(0, 0), (1, 10), (2, 20)])]);
}

#[test]
fn lookups_give_fixed_pointers_and_null_out_of_range() {
    let text = [
        START,
        &lookup(0, 1, 0),
        "ldxdw %r1, [%r0]\nstxdw [%r6+8], %r1\n",
        &update(0, 1, 42, 0, 2),
        &lookup(0, 1, 3),
        // The first pointer sees the update: arrays update in place.
        "ldxdw %r1, [%r6+0]\nldxdw %r1, [%r1]\nstxdw [%r6+32], %r1\n",
        &lookup(0, 4, 5), // index = max_entries
        &lookup(0, -1, 6),
        &lookup(0, 0, 7),
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![array(4)]), &[]);
    let s = slots(&r);
    assert_ne!(s[0], 0);
    assert_eq!(s[1], 0, "elements start zero-filled");
    assert_eq!(s[2], 0);
    assert_eq!(s[3], s[0], "an array element's pointer never changes");
    assert_eq!(s[4], 42);
    assert_eq!(s[5..7], [0, 0]);
    assert_ne!(s[7], 0);
    assert_ne!(s[7], s[0]);
}

#[test]
fn snapshot_lists_every_index_and_initial_contents_apply() {
    let text = [
        START,
        &lookup(0, 2, 0),
        "ldxdw %r1, [%r0]\nadd %r1, 1\nstxdw [%r0], %r1\n",
        END,
    ]
    .concat();
    let r = run(
        &program(&text, vec![array(5)]),
        &[keyed(&[(2, 41), (4, 7)])],
    );
    assert_eq!(
        r.maps,
        vec![keyed(&[(0, 0), (1, 0), (2, 42), (3, 0), (4, 7)])]
    );
}

#[test]
fn lddw_map_value_points_into_element_zero() {
    // value_size 16: lddw_map_value at offset 8 reaches bytes 8..16 of element 0, the same memory
    // a lookup of key 0 returns.
    let text = [
        START,
        "lddw_map_value %r7, 0, 8\nstdw [%r7], 0x1234\nstxdw [%r6+0], %r7\n",
        &lookup(0, 0, 1),
        "ldxdw %r1, [%r0+8]\nstxdw [%r6+16], %r1\nldxdw %r1, [%r7-8]\nstxdw [%r6+24], %r1\n",
        END,
    ]
    .concat();
    let one = def(MapKind::Array, 4, 16, 1);
    let mut init = vec![0u8; 16];
    init[0] = 5;
    let r = run(
        &program(&text, vec![one]),
        &[MapContents::Keyed([(vec![0; 4], init)].into())],
    );
    let s = slots(&r);
    assert_eq!(s[0], s[1] + 8);
    assert_eq!(s[2..4], [0x1234, 5]);
    let mut want = vec![5u8, 0, 0, 0, 0, 0, 0, 0, 0x34, 0x12];
    want.resize(16, 0);
    assert_eq!(
        r.maps,
        vec![MapContents::Keyed([(vec![0; 4], want)].into())]
    );
}

#[test]
fn accesses_past_an_element_fault() {
    for access in [
        "ldxdw %r1, [%r0+8]",
        "ldxw %r1, [%r0+6]",
        "ldxb %r1, [%r0-1]",
    ] {
        let text = [START, &lookup(0, 0, 0), access, "\n", END].concat();
        let msg = fault(&program(&text, vec![array(2)]));
        assert!(msg.contains("out-of-bounds load"), "{access}: {msg}");
    }
    let msg = fault(&program(
        &[START, "lddw_map_value %r7, 0, 4\nstdw [%r7], 1\n", END].concat(),
        vec![array(1)],
    ));
    assert!(msg.contains("out-of-bounds store of 8 bytes"), "{msg}");
}
