//! Queue and stack maps: push flags and errnos, FIFO and LIFO order, overwriting the oldest value
//! when full, pop and peek on empty maps (which zero the output), and the snapshot order.

use super::*;

fn queue(max_entries: u32) -> MapDef {
    def(MapKind::Queue, 0, 8, max_entries)
}

fn stack(max_entries: u32) -> MapDef {
    def(MapKind::Stack, 0, 8, max_entries)
}

#[test]
fn queue_is_fifo_and_bounded() {
    let text = [
        START,
        &push(0, 1, 0, 0),
        &push(0, 2, 0, 1),
        &push(0, 3, 0, 2),
        &push(0, 4, 0, 3), // full: -E2BIG
        &push(0, 4, 1, 4), // NOEXIST: -EINVAL
        &push(0, 4, 3, 5), // NOEXIST | EXIST: -EINVAL
        &push(0, 4, 4, 6), // above EXIST: -EINVAL
        &push(0, 4, 2, 7), // EXIST when full: drops the oldest (1)
        &pop(89, 0, 8),    // peek: 2, not removed
        &pop(88, 0, 10),   // pop: 2
        &pop(88, 0, 12),   // pop: 3
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![queue(3)]), &[]);
    assert_eq!(
        slots(&r)[..14],
        [0, 0, 0, E2BIG, EINVAL, EINVAL, EINVAL, 0, 0, 2, 0, 2, 0, 3]
    );
    assert_eq!(r.maps, vec![sequence(&[4])]);
}

#[test]
fn stack_is_lifo_and_overwrite_drops_the_bottom() {
    let text = [
        START,
        &push(0, 1, 0, 0),
        &push(0, 2, 0, 1),
        &push(0, 3, 0, 2),
        &push(0, 4, 0, 3), // full: -E2BIG
        &push(0, 4, 2, 4), // EXIST: the oldest (bottom) value 1 goes
        &pop(89, 0, 5),    // peek: 4
        &pop(88, 0, 7),    // pop: 4
        END,
    ]
    .concat();
    let r = run(&program(&text, vec![stack(3)]), &[]);
    assert_eq!(slots(&r)[..9], [0, 0, 0, E2BIG, 0, 0, 4, 0, 4]);
    assert_eq!(r.maps, vec![sequence(&[2, 3])], "bottom first");
}

#[test]
fn empty_pop_and_peek_zero_the_output() {
    for m in [queue(2), stack(2)] {
        let text = [START, &pop(88, 0, 0), &pop(89, 0, 2), END].concat();
        let r = run(&program(&text, vec![m]), &[]);
        assert_eq!(slots(&r)[..4], [ENOENT, 0, ENOENT, 0]);
        assert_eq!(r.maps, vec![MapContents::Sequence(vec![])]);
    }
}

#[test]
fn initial_contents_are_oldest_first() {
    // Queue [5, 6]: pop gives 5. Stack [5, 6]: pop gives 6.
    for (m, want, left) in [(queue(4), 5, 6), (stack(4), 6, 5)] {
        let text = [START, &pop(88, 0, 0), &push(0, 7, 0, 2), END].concat();
        let r = run(&program(&text, vec![m]), &[sequence(&[5, 6])]);
        assert_eq!(slots(&r)[..3], [0, want, 0]);
        assert_eq!(r.maps, vec![sequence(&[left, 7])]);
    }
}

#[test]
fn values_of_any_size_round_trip() {
    // value_size 3: push three bytes from the buffer, peek them back to the stack.
    let text = "mov %r6, %r1\nlddw_map_fd %r1, 0\nmov %r2, %r6\nmov %r3, 0\ncall 87\n\
                lddw_map_fd %r1, 0\nmov %r2, %r10\nadd %r2, -3\ncall 89\n\
                ldxb %r0, [%r10-1]\nexit";
    let p = program(text, vec![def(MapKind::Queue, 0, 3, 1)]);
    let r = interp(&p).run(&[1, 2, 3]).unwrap();
    assert_eq!(r.ret, 3);
    assert_eq!(r.maps, vec![MapContents::Sequence(vec![vec![1, 2, 3]])]);
}
