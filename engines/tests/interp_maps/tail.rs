//! Tail calls: chains through prog_array maps, what the target starts with, the 33-call limit,
//! fall-through for out-of-range indices and empty slots (R0 unchanged), the 32-bit index, and
//! tail calls made from a subprogram.

use super::*;

fn prog_array(max_entries: u32) -> MapDef {
    def(MapKind::ProgArray, 4, 4, max_entries)
}

/// prog_array contents: slot → target index.
fn targets(pairs: &[(u32, u32)]) -> MapContents {
    MapContents::Keyed(
        pairs
            .iter()
            .map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
            .collect(),
    )
}

/// Assembly: `tail_call(r1 = ctx in r6, map 0, index)`.
fn tail_call(index: i32) -> String {
    format!("mov %r1, %r6\nlddw_map_fd %r2, 0\nmov %r3, {index}\ncall 12\n")
}

fn with_targets(main: &str, progs: &[&str], maps: Vec<MapDef>) -> EbpfProgram {
    EbpfProgram {
        insns: asm(main),
        maps,
        progs: progs.iter().map(|t| asm(t)).collect(),
    }
}

#[test]
fn chain_passes_the_context_and_registers_with_a_fresh_stack() {
    // main: writes its stack, sets R7, tail-calls slot 0 (progs[1]); progs[1] records what it
    // sees, tail-calls slot 1 (progs[0]), which returns R7 + 1.
    let main = [
        START,
        "stdw [%r10-8], 0x77\nmov %r7, 40\n",
        &tail_call(0),
        "mov %r0, 99\nexit\n",
    ]
    .concat();
    let last = "mov %r0, %r7\nadd %r0, 1\nexit";
    let middle = [
        "ldxdw %r1, [%r10-8]\nstxdw [%r6+0], %r1\nstxdw [%r6+8], %r7\n",
        "mov %r1, %r6\nlddw_map_fd %r2, 0\nmov %r3, 1\ncall 12\nmov %r0, 98\nexit",
    ]
    .concat();
    let p = with_targets(&main, &[last, &middle], vec![prog_array(4)]);
    let r = run(&p, &[targets(&[(0, 1), (1, 0)])]);
    assert_eq!(r.ret, 41);
    assert_eq!(
        slots(&r)[..2],
        [0, 40],
        "fresh zeroed stack; registers kept"
    );
    assert_eq!(r.maps, vec![targets(&[(0, 1), (1, 0)])]);
}

#[test]
fn at_most_33_tail_calls_per_run() {
    // progs[0] counts its runs in mem[0] and tail-calls itself; the 34th call falls through.
    let body = [
        "mov %r6, %r1\nldxdw %r0, [%r6]\nadd %r0, 1\nstxdw [%r6], %r0\n",
        &tail_call(0),
        "ldxdw %r0, [%r6]\nexit",
    ]
    .concat();
    let main = [START, &tail_call(0), "mov %r0, 1000\nexit\n"].concat();
    let p = with_targets(&main, &[&body], vec![prog_array(1)]);
    let r = run(&p, &[targets(&[(0, 0)])]);
    assert_eq!(bpfconf_spec::ebpf::maps::MAX_TAIL_CALL_CNT, 33);
    assert_eq!(r.ret, 33, "main's call plus 32 self-calls succeed");
}

#[test]
fn failed_tail_calls_fall_through_leaving_r0() {
    // Index = max_entries, index 0xffffffff, an empty slot: each falls through with R0 as set
    // before the call.
    let main = [
        START,
        "mov %r0, 5\n",
        &tail_call(2),
        "stxdw [%r6+0], %r0\nmov %r0, 6\n",
        &tail_call(-1),
        "stxdw [%r6+8], %r0\nmov %r0, 7\n",
        &tail_call(1),
        "stxdw [%r6+16], %r0\nexit\n",
    ]
    .concat();
    let p = with_targets(&main, &["mov %r0, 1\nexit"], vec![prog_array(2)]);
    let r = run(&p, &[targets(&[(0, 0)])]);
    assert_eq!(r.ret, 7);
    assert_eq!(slots(&r)[..3], [5, 6, 7]);
}

#[test]
fn failed_calls_do_not_use_up_the_budget() {
    // 40 calls to an empty slot, then one to a filled slot: it still succeeds.
    let main = [
        START,
        "mov %r8, 40\nagain:\n",
        &tail_call(1),
        "sub %r8, 1\njne %r8, 0, again\n",
        &tail_call(0),
        "mov %r0, 0\nexit\n",
    ]
    .concat();
    let p = with_targets(&main, &["mov %r0, 3\nexit"], vec![prog_array(2)]);
    assert_eq!(run(&p, &[targets(&[(0, 0)])]).ret, 3);
}

#[test]
fn index_is_the_low_32_bits_of_r3() {
    let main = [
        START,
        "mov %r1, %r6\nlddw_map_fd %r2, 0\nlddw %r3, 0x100000001\ncall 12\nmov %r0, 0\nexit\n",
    ]
    .concat();
    let p = with_targets(&main, &["mov %r0, 11\nexit"], vec![prog_array(2)]);
    assert_eq!(run(&p, &[targets(&[(1, 0)])]).ret, 11);
}

#[test]
fn tail_call_from_a_subprogram_returns_to_its_caller() {
    // main calls f; f tail-calls progs[0], whose exit returns to main after the call.
    let main = [
        START,
        "mov %r7, 1\ncall local f\nadd %r0, %r7\nexit\nf:\nmov %r7, 50\n",
        &tail_call(0),
        "mov %r0, 0\nexit\n",
    ]
    .concat();
    let target = "stdw [%r10-8], 1\nmov %r0, 100\nexit";
    let p = with_targets(&main, &[target], vec![prog_array(1)]);
    // R7 is callee-saved: main sees its own 1 again.
    assert_eq!(run(&p, &[targets(&[(0, 0)])]).ret, 101);
}

#[test]
fn targets_share_the_maps() {
    // main puts 1 in the hash map, the target adds 2 to it.
    let main = [START, &update(1, 9, 1, 0, 0), &tail_call(0), END].concat();
    let target = [
        "mov %r6, %r1\n",
        &lookup(1, 9, 1),
        "ldxdw %r1, [%r0]\nadd %r1, 2\nstxdw [%r0], %r1\nmov %r0, 0\nexit",
    ]
    .concat();
    let p = with_targets(&main, &[&target], vec![prog_array(1), hash(2)]);
    let r = run(&p, &[targets(&[(0, 0)])]);
    assert_eq!(r.maps[1], keyed(&[(9, 3)]));
}

#[test]
fn faults_in_targets_name_the_target() {
    let p = with_targets(
        &[START, &tail_call(0), END].concat(),
        &["mov %r0, 0\nldxdw %r0, [%r0]\nexit"],
        vec![prog_array(1)],
    );
    let msg = interp(&p)
        .run_with_maps(&[0; 8], &[targets(&[(0, 0)])])
        .unwrap_err()
        .to_string();
    assert!(msg.ends_with("(progs[0] insn 1)"), "{msg}");
}
