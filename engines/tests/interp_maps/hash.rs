//! Hash maps: update flags and their errnos, full maps, delete, lookups, value pointers that stay
//! valid and writable, and what an update or delete does to a pointer already handed out.

use super::*;

#[test]
fn update_flags_and_errnos() {
    let text = [
        START,
        &update(0, 1, 10, 1, 0),  // NOEXIST, new key: created
        &update(0, 1, 11, 1, 1),  // NOEXIST, present: -EEXIST
        &update(0, 2, 20, 2, 2),  // EXIST, missing: -ENOENT
        &update(0, 1, 12, 2, 3),  // EXIST, present: replaced
        &update(0, 3, 30, 0, 4),  // ANY, new
        &update(0, 3, 31, 0, 5),  // ANY, present
        &update(0, 4, 40, 3, 6),  // flags above EXIST: -EINVAL
        &update(0, 4, 40, 4, 7),  // BPF_F_LOCK without a spin lock: -EINVAL
        &update(0, 1, 13, 5, 8),  // NOEXIST | F_LOCK on a present key: -EINVAL (lock first)
        &update(0, 4, 40, -1, 9), // every bit: -EINVAL
        &lookup(0, 2, 10),        // never created: NULL
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![hash(8)]), &[]);
    assert_eq!(
        slots(&r)[..11],
        [0, EEXIST, ENOENT, 0, 0, 0, EINVAL, EINVAL, EINVAL, EINVAL, 0]
    );
    assert_eq!(r.maps, vec![keyed(&[(1, 12), (3, 31)])]);
}

#[test]
fn full_map_refuses_new_keys_only() {
    for flags in [0, bpfconf_engines::interp::ebpf::maps::BPF_F_NO_PREALLOC] {
        let mut m = hash(2);
        m.flags = flags;
        let text = [
            START,
            &update(0, 1, 10, 0, 0),
            &update(0, 2, 20, 0, 1),
            &update(0, 3, 30, 0, 2), // full, new key: -E2BIG
            &update(0, 1, 11, 0, 3), // full, existing key: fine
            &update(0, 3, 30, 2, 4), // EXIST on the missing key: -ENOENT before -E2BIG
            &delete(0, 2, 5),
            &update(0, 3, 30, 1, 6), // room again
            &delete(0, 2, 7),        // already gone: -ENOENT
            END,
        ]
        .concat();
        let r = run(&program(&text, vec![m]), &[]);
        assert_eq!(slots(&r)[..8], [0, 0, E2BIG, 0, ENOENT, 0, 0, ENOENT]);
        assert_eq!(r.maps, vec![keyed(&[(1, 11), (3, 30)])]);
    }
}

#[test]
fn lookup_finds_initial_contents_and_misses_return_null() {
    let text = [
        START,
        &lookup(0, 5, 0),
        "ldxdw %r1, [%r0]\nstxdw [%r6+8], %r1\n",
        &lookup(0, 6, 2),
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![hash(4)]), &[keyed(&[(5, 0x55)])]);
    assert_ne!(slots(&r)[0], 0);
    assert_eq!(slots(&r)[1..3], [0x55, 0]);
}

#[test]
fn value_pointers_are_stable_and_writable() {
    // p = lookup(7); *p += 1 through an atomic; q = lookup(7): q == p and *q sees the write.
    let text = [
        START,
        &update(0, 7, 100, 0, 0),
        &lookup(0, 7, 1),
        "mov %r7, %r0\nmov %r1, 1\nlock add [%r7+0], %r1\nstw [%r7+4], 2\n",
        &lookup(0, 7, 2),
        "ldxdw %r1, [%r0]\nstxdw [%r6+24], %r1\n",
        &lookup(0, 8, 4),
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![hash(4)]), &[]);
    let s = slots(&r);
    assert_ne!(s[1], 0);
    assert_eq!(s[2], s[1], "the same key gives the same pointer");
    assert_eq!(s[3], 0x2_0000_0065);
    assert_eq!(s[4], 0);
    assert_eq!(r.maps, vec![keyed(&[(7, 0x2_0000_0065)])]);
}

#[test]
fn update_detaches_a_pointer_already_handed_out() {
    // The kernel links a new element and unlinks the old one: the old pointer keeps the old
    // value and writes through it no longer reach the map.
    let text = [
        START,
        &update(0, 1, 10, 0, 0),
        &lookup(0, 1, 1),
        "mov %r7, %r0\n",
        &update(0, 1, 20, 0, 2),
        "ldxdw %r1, [%r7]\nstxdw [%r6+24], %r1\nstdw [%r7], 99\n",
        &lookup(0, 1, 4),
        "ldxdw %r1, [%r0]\nstxdw [%r6+40], %r1\n",
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![hash(1)]), &[]);
    let s = slots(&r);
    assert_eq!(s[3], 10, "the detached value keeps the old bytes");
    assert_ne!(s[4], s[1], "the key's next lookup gives a new pointer");
    assert_eq!(s[5], 20);
    assert_eq!(r.maps, vec![keyed(&[(1, 20)])]);
}

#[test]
fn delete_detaches_and_the_key_can_come_back() {
    let text = [
        START,
        &lookup(0, 1, 0),
        "mov %r7, %r0\n",
        &delete(0, 1, 1),
        "stdw [%r7], 77\nldxdw %r1, [%r7]\nstxdw [%r6+16], %r1\n",
        &lookup(0, 1, 3),
        &update(0, 1, 5, 1, 4),
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![hash(1)]), &[keyed(&[(1, 3)])]);
    let s = slots(&r);
    assert_ne!(s[0], 0);
    assert_eq!(s[1..5], [0, 77, 0, 0]);
    assert_eq!(r.maps, vec![keyed(&[(1, 5)])]);
}

#[test]
fn keys_of_any_size_are_compared_bytewise() {
    // A 3-byte key taken from the memory buffer, a 1-byte value.
    let text = "mov %r6, %r1\nlddw_map_fd %r1, 0\nmov %r2, %r6\nstb [%r10-1], 0x42\n\
                mov %r3, %r10\nadd %r3, -1\nmov %r4, 0\ncall 2\nmov %r0, 0\nexit";
    let p = program(text, vec![def(MapKind::Hash, 3, 1, 2)]);
    let r = interp(&p).run(&[9, 8, 7, 0]).unwrap();
    assert_eq!(
        r.maps,
        vec![MapContents::Keyed([(vec![9, 8, 7], vec![0x42])].into())]
    );
}
