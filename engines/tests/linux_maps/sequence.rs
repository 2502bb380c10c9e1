//! `BPF_MAP_TYPE_QUEUE` and `BPF_MAP_TYPE_STACK`: push/pop/peek order, full and empty
//! errors, the EXIST flag's overwrite, and the helpers the verifier refuses on them.

use super::*;

/// `map_push_elem(map 0, &value, flags)`; R0 = its result.
fn push(value: i32, flags: i32) -> String {
    format!(
        "
        stdw [%r10-8], {value}
        lddw_map_fd %r1, 0
        mov %r2, %r10
        add %r2, -8
        mov %r3, {flags}
        call 87
        exit"
    )
}

/// Pops (helper 88) or peeks (89) `n` times; R0 = the values, one per byte (low byte of
/// each, first one lowest), or after an error `0xee00_0000 | errno << 8 | value low byte`
/// with the value buffer's content (zeroed by the kernel on failure; it was 0xff..).
fn take(helper: i32, n: usize) -> String {
    let mut s = String::from("mov %r6, 0\nmov %r7, 0\n");
    for _ in 0..n {
        s.push_str(&format!(
            "
            stdw [%r10-8], -1
            lddw_map_fd %r1, 0
            mov %r2, %r10
            add %r2, -8
            call {helper}
            ldxdw %r1, [%r10-8]
            jne %r0, 0, fail
            and %r1, 0xff
            lsh %r1, %r7
            or %r6, %r1
            add %r7, 8
            "
        ));
    }
    s.push_str(
        "
        mov %r0, %r6
        exit
        fail:
        neg %r0
        lsh %r0, 8
        and %r1, 0xff
        or %r0, %r1
        lddw %r1, 0xee000000
        or %r0, %r1
        exit",
    );
    s
}

fn kinds() -> [MapDef; 2] {
    [def(MapKind::Queue, 0, 8, 3), def(MapKind::Stack, 0, 8, 3)]
}

#[test]
fn push_order_and_full() {
    let _g = serial();
    let Some(e) = engine() else { return };
    for d in kinds() {
        let m = [d.clone()];
        let k = &d.kind;
        let go =
            |src: &str, init: &[u64]| run(&e, &program(src, &m, &[]), &input(&[], vec![seq(init)]));
        // Pushed values go to the back of a queue / top of a stack: listed last either way.
        let out = go(&push(9, 0), &[1, 2]);
        assert_eq!((r0(&out), maps(&out)), (0, &[seq(&[1, 2, 9])][..]), "{k:?}");
        let out = go(&push(9, 0), &[]);
        assert_eq!((r0(&out), maps(&out)), (0, &[seq(&[9])][..]), "{k:?}");
        // Full: E2BIG, unless BPF_EXIST, which drops the oldest value (the front of a queue,
        // the *bottom* of a stack).
        let out = go(&push(9, 0), &[1, 2, 3]);
        assert_eq!(r0(&out), neg(libc::E2BIG), "{k:?}");
        assert_eq!(maps(&out), [seq(&[1, 2, 3])], "{k:?}");
        let out = go(&push(9, 2), &[1, 2, 3]);
        assert_eq!((r0(&out), maps(&out)), (0, &[seq(&[2, 3, 9])][..]), "{k:?}");
        // BPF_EXIST when not full: a plain push.
        let out = go(&push(9, 2), &[1]);
        assert_eq!((r0(&out), maps(&out)), (0, &[seq(&[1, 9])][..]), "{k:?}");
        // NOEXIST and unknown flags: EINVAL.
        for flags in [1, 3, 4] {
            let out = go(&push(9, flags), &[1]);
            assert_eq!(r0(&out), neg(libc::EINVAL), "{k:?} flags {flags}");
            assert_eq!(maps(&out), [seq(&[1])], "{k:?}");
        }
    }
}

#[test]
fn pop_and_peek() {
    let _g = serial();
    let Some(e) = engine() else { return };
    for d in kinds() {
        let m = [d.clone()];
        let k = d.kind;
        let go =
            |src: &str, init: &[u64]| run(&e, &program(src, &m, &[]), &input(&[], vec![seq(init)]));
        let (first, all) = match k {
            MapKind::Queue => (1, 0x03_02_01),
            _ => (3, 0x01_02_03),
        };
        // Pop: the front of a queue, the top of a stack, removed.
        let out = go(&take(88, 1), &[1, 2, 3]);
        assert_eq!(r0(&out), first, "{k:?}");
        let rest = if k == MapKind::Queue { [2, 3] } else { [1, 2] };
        assert_eq!(maps(&out), [seq(&rest)], "{k:?}");
        let out = go(&take(88, 3), &[1, 2, 3]);
        assert_eq!((r0(&out), maps(&out)), (all, &[seq(&[])][..]), "{k:?}");
        // Peek: the same value, left in place; twice gives it twice.
        let out = go(&take(89, 2), &[1, 2, 3]);
        assert_eq!(r0(&out), first | first << 8, "{k:?}");
        assert_eq!(maps(&out), [seq(&[1, 2, 3])], "{k:?}");
        // Empty: ENOENT, and the value buffer is zeroed.
        for helper in [88, 89] {
            let out = go(&take(helper, 1), &[]);
            assert_eq!(
                r0(&out),
                0xee00_0000 | (libc::ENOENT as u64) << 8,
                "{k:?} {helper}"
            );
            let out = go(&take(helper, 4), &[5, 6, 7]);
            let want = if helper == 88 {
                0xee00_0000 | 2 << 8
            } else {
                0x05050505
            };
            let want = if helper == 89 && k == MapKind::Stack {
                0x07070707
            } else {
                want
            };
            assert_eq!(r0(&out), want, "{k:?} {helper}");
        }
    }
}

#[test]
fn refused_helpers() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let q = [def(MapKind::Queue, 0, 8, 2)];
    // Keyed helpers read a zero-sized key: the verifier refuses them on queues and stacks.
    for helper in [1, 2, 3] {
        let src = format!(
            "
            stdw [%r10-8], 0
            lddw_map_fd %r1, 0
            mov %r2, %r10
            add %r2, -8
            mov %r3, %r10
            add %r3, -8
            mov %r4, 0
            call {helper}
            mov %r0, 0
            exit"
        );
        let r = reject(&e, &program(&src, &q, &[]));
        assert!(
            r.contains("invalid zero-sized read"),
            "helper {helper}: {r}"
        );
    }
    // Push/pop/peek on a hash or array map.
    for kind in [MapKind::Hash, MapKind::Array] {
        for helper in [87, 88, 89] {
            let src = format!(
                "
                stdw [%r10-8], 0
                lddw_map_fd %r1, 0
                mov %r2, %r10
                add %r2, -8
                mov %r3, 0
                call {helper}
                exit"
            );
            let r = reject(&e, &program(&src, &[def(kind, 4, 8, 2)], &[]));
            let want = format!("cannot pass map_type {} into func", kind.uapi());
            assert!(r.contains(&want), "{kind:?} helper {helper}: {r}");
        }
    }
}
