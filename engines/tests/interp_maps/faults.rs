//! Faults: what the kernel verifier would refuse ends the run here. Bad map arguments, key and
//! value pointers that do not reach `key_size`/`value_size` bytes, helpers on map types the
//! verifier does not allow them on, and dereferencing a map handle.

use super::*;

/// The fault of `text` run with `maps`.
fn fault_with(text: &str, maps: Vec<MapDef>) -> String {
    fault(&program(text, maps))
}

#[test]
fn map_argument_must_be_a_handle() {
    let cases = [
        // NULL, a handle plus 8, a stack pointer, a handle of a map that does not exist.
        "mov %r1, 0\ncall 1\nexit",
        "lddw_map_fd %r1, 0\nadd %r1, 8\nmov %r2, %r10\ncall 1\nexit",
        "mov %r1, %r10\nmov %r2, %r10\ncall 1\nexit",
        "lddw_map_fd %r1, 0\nadd %r1, 0x1000\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
    ];
    for text in cases {
        let msg = fault_with(text, vec![hash(1)]);
        assert!(msg.contains("is not a map"), "{text}: {msg}");
        assert!(
            msg.starts_with("helper 1 (map_lookup_elem): R1 = "),
            "{msg}"
        );
    }
    let msg = fault_with(
        "mov %r1, %r6\nmov %r2, 0\nmov %r3, 0\ncall 12\nexit",
        vec![hash(1)],
    );
    assert!(msg.contains("R2 = 0x0 is not a map"), "{msg}");
}

#[test]
fn map_handles_are_not_memory() {
    for text in [
        "lddw_map_fd %r1, 0\nldxb %r0, [%r1]\nexit",
        "lddw_map_fd %r1, 0\nstb [%r1-1], 0\nexit",
    ] {
        let msg = fault_with(text, vec![array(1)]);
        assert!(msg.contains("out-of-bounds"), "{msg}");
    }
}

#[test]
fn key_and_value_pointers_must_reach_their_sizes() {
    let cases = [
        // lookup: NULL key; a key straddling the top of the stack (2 of 4 bytes).
        (
            "lddw_map_fd %r1, 0\nmov %r2, 0\ncall 1\nexit",
            "key pointer must reach 4",
        ),
        (
            "lddw_map_fd %r1, 0\nmov %r2, %r10\nadd %r2, -2\ncall 1\nexit",
            "key pointer must reach 4",
        ),
        // update: an 8-byte value with only 4 bytes left in the frame.
        (
            "lddw_map_fd %r1, 0\nmov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -4\n\
             mov %r4, 0\ncall 2\nexit",
            "value pointer must reach 8",
        ),
        // delete: a key at the last byte of the memory buffer.
        (
            "mov %r2, %r1\nadd %r2, 255\nlddw_map_fd %r1, 0\ncall 3\nexit",
            "key pointer must reach 4",
        ),
    ];
    for (text, want) in cases {
        let msg = fault_with(text, vec![hash(4)]);
        assert!(msg.contains(want), "{text}: {msg}");
    }
    // A bad pointer faults even when the flags would have been refused.
    let msg = fault_with(
        "lddw_map_fd %r1, 0\nmov %r2, %r10\nadd %r2, -4\nmov %r3, 0\nmov %r4, 99\ncall 2\nexit",
        vec![array(2)],
    );
    assert!(msg.contains("value pointer must reach 8"), "{msg}");
}

#[test]
fn pop_and_peek_need_writable_room() {
    let q = def(MapKind::Queue, 0, 8, 2);
    for helper in [88, 89] {
        let text = format!("lddw_map_fd %r1, 0\nmov %r2, %r10\nadd %r2, -4\ncall {helper}\nexit");
        let msg = fault_with(&text, vec![q.clone()]);
        assert!(
            msg.contains("value pointer must reach 8 writable bytes"),
            "{msg}"
        );
    }
    let msg = fault_with(
        "lddw_map_fd %r1, 0\nmov %r2, 0\nmov %r3, 0\ncall 87\nexit",
        vec![q],
    );
    assert!(
        msg.contains("value pointer must reach 8 readable bytes"),
        "{msg}"
    );
}

#[test]
fn helpers_on_the_wrong_map_type_fault() {
    let q = def(MapKind::Queue, 0, 8, 2);
    let pa = def(MapKind::ProgArray, 4, 4, 2);
    let key = "mov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -16\nmov %r4, 0\n";
    let cases = [
        (1, q.clone(), "map_lookup_elem on queue map"),
        (2, q.clone(), "map_update_elem on queue map"),
        (
            3,
            def(MapKind::Stack, 0, 8, 2),
            "map_delete_elem on stack map",
        ),
        (1, pa.clone(), "map_lookup_elem on prog_array map"),
        (2, pa.clone(), "map_update_elem on prog_array map"),
        (3, pa, "map_delete_elem on prog_array map"),
        (87, hash(2), "map_push_elem on hash map"),
        (88, array(2), "map_pop_elem on array map"),
        (89, hash(2), "map_peek_elem on hash map"),
    ];
    for (helper, m, want) in cases {
        let text = format!("lddw_map_fd %r1, 0\n{key}call {helper}\nexit");
        let msg = fault_with(&text, vec![m]);
        assert!(msg.contains(want), "{msg}");
        assert!(msg.contains("the kernel verifier refuses"), "{msg}");
    }
    let msg = fault_with(
        "mov %r1, %r6\nlddw_map_fd %r2, 0\nmov %r3, 0\ncall 12\nexit",
        vec![array(1)],
    );
    assert!(msg.contains("tail_call on array map"), "{msg}");
}

#[test]
fn unresolvable_lddw_references_fault_in_map_less_interpreters() {
    use bpfconf_engines::interp::ebpf;
    let msg = match ebpf::run(&asm("lddw_map_value %r1, 0, 0\nexit"), &[]) {
        Err(RunError::Fault(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        msg,
        "`lddw_map_value` names map 0, but the program has 0 maps (insn 0)"
    );
}
