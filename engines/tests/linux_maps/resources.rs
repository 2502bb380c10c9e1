//! Descriptors: 100,000 kernel runs with maps (issue 4, acceptance 4) do not grow
//! `/proc/self/fd`.
//!
//! The runs cycle through two program sets — four maps of every data kind (array, hash, queue,
//! stack) updated by the program, and a self-tail-calling target counting through an array
//! (prog_array + array, 34 programs run per run) — loading a fresh set every 50 runs, with
//! three memory lengths (three verified variants per load) and changing initial contents.
//! Every 1,000 runs it adds the failure paths: a map definition the kernel refuses, a program
//! the verifier refuses after its maps were created, a target refused, an input that cannot be
//! realised, and one loaded set run at 20 lengths (more than the 16 variants it keeps, so
//! variants are dropped while its prog_array still holds their targets).
//!
//! Measured on Linux 6.18 (x86_64, 2 CPUs): 100,000 runs (2,000 loads of 3 variants each,
//! 100 failure rounds) in 5.1 s with the debug build (51 µs/run), 3.7 s with `--release`
//! (37 µs/run), so the full count is the default. `BPFCONF_FD_RUNS=N` changes it, e.g.
//! `BPFCONF_FD_RUNS=1000000 cargo test --release -p bpfconf-engines --test linux_maps fd`
//! for a long run.

use super::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Array[0] += 1, hash[1] = the run's value, push to queue and stack; R0 = array[0] before.
const UPDATER: &str = "
    stw [%r10-4], 0
    lddw_map_fd %r1, 0
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, fail
    ldxdw %r6, [%r0]
    mov %r1, %r6
    add %r1, 1
    stxdw [%r0], %r1
    stw [%r10-4], 1
    stxdw [%r10-16], %r6
    lddw_map_fd %r1, 1
    mov %r2, %r10
    add %r2, -4
    mov %r3, %r10
    add %r3, -16
    mov %r4, 0
    call 2
    lddw_map_fd %r1, 2
    mov %r2, %r10
    add %r2, -16
    mov %r3, 2
    call 87
    lddw_map_fd %r1, 3
    mov %r2, %r10
    add %r2, -16
    mov %r3, 2
    call 87
    mov %r0, %r6
    exit
    fail:
    mov %r0, -1
    exit";

/// Counts in array map 1 and tail-calls slot 0 of map 0 until the limit.
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

fn updater() -> Program {
    program(
        UPDATER,
        &[
            def(MapKind::Array, 4, 8, 4),
            def(MapKind::Hash, 4, 8, 8),
            def(MapKind::Queue, 0, 8, 2),
            def(MapKind::Stack, 0, 8, 2),
        ],
        &[],
    )
}

fn counter() -> Program {
    program(
        COUNTER,
        &[
            def(MapKind::ProgArray, 4, 4, 2),
            def(MapKind::Array, 4, 8, 1),
        ],
        &[COUNTER],
    )
}

/// The failure paths, once.
fn failures(e: &Linux) {
    // BPF_MAP_CREATE refused (after the result map and the first map were created).
    let mut bad = def(MapKind::Array, 4, 8, 1);
    bad.flags = 1;
    let p = program("mov %r0, 0\nexit", &[def(MapKind::Hash, 4, 8, 1), bad], &[]);
    assert!(matches!(e.load(&p), Err(LoadError::Rejected { .. })));
    // The verifier refuses the entry program, then a target.
    let p = program(
        "lddw_map_fd %r2, 0\nmov %r3, 0\ncall 12\nexit",
        &[def(MapKind::ProgArray, 4, 4, 1)],
        &["mov %r0, 0\nexit"],
    );
    assert!(matches!(e.load(&p), Err(LoadError::Rejected { .. })));
    let p = program(
        "mov %r0, 0\nexit",
        &[def(MapKind::ProgArray, 4, 4, 1)],
        &["mov %r0, %r7\nexit"],
    );
    assert!(matches!(e.load(&p), Err(LoadError::Rejected { .. })));
    // An input that cannot be realised, and one length the verifier refuses.
    let mut l = e.load(&updater()).unwrap();
    assert!(matches!(
        l.run(&input(&[], vec![seq(&[1])])),
        Err(RunError::Unsupported(_))
    ));
    let p = program(
        "ldxb %r0, [%r1+8]\nexit",
        &[def(MapKind::Hash, 4, 8, 1)],
        &[],
    );
    let mut l = e.load(&p).unwrap();
    assert!(l.run(&input(&[0; 4], vec![])).is_err());
    assert!(l.run(&input(&[0; 9], vec![keyed(&[(1, 1)])])).is_ok());
    // More lengths than kept variants, with a prog_array.
    let mut l = e.load(&counter()).unwrap();
    for n in 0..20 {
        let out = l.run(&input(&vec![0; n], vec![slots(&[(0, 0)])])).unwrap();
        assert_eq!(maps(&out)[1], array_of(&[34]));
    }
}

#[test]
fn fd_count_is_stable_across_100000_runs() {
    let _g = serial();
    let Some(e) = engine() else { return };
    let runs: usize = std::env::var("BPFCONF_FD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // Warm up: the availability probe, lazy statics.
    failures(&e);
    let base = open_fds();
    let start = std::time::Instant::now();
    let (updater, counter) = (updater(), counter());
    let mut loaded = None;
    let mut loads = 0;
    for i in 0..runs {
        let set = (i / 50) % 2;
        if i.is_multiple_of(50) {
            // Drop the previous set before loading the next one.
            drop(loaded.take());
            loaded = Some(e.load(if set == 0 { &updater } else { &counter }).unwrap());
            loads += 1;
        }
        if i.is_multiple_of(1000) {
            failures(&e);
        }
        let l = loaded.as_mut().unwrap();
        let n = [0usize, 16, 33][i % 3];
        let k = (i % 7) as u64;
        if set == 0 {
            let init = vec![
                array_of(&[k, 0, 0, k]),
                keyed(&[(9, k)]),
                seq(&[k]),
                seq(&[k, k + 1]),
            ];
            let out = l.run(&input(&vec![0; n], init)).unwrap();
            assert_eq!(r0(&out), k);
            assert_eq!(
                maps(&out),
                [
                    array_of(&[k + 1, 0, 0, k]),
                    keyed(&[(1, k), (9, k)]),
                    seq(&[k, k]),
                    seq(&[k + 1, k]),
                ]
            );
        } else {
            let out = l
                .run(&input(&vec![0; n], vec![slots(&[(0, 0)]), array_of(&[k])]))
                .unwrap();
            assert_eq!(r0(&out), 7);
            assert_eq!(maps(&out)[1], array_of(&[k + 34]));
        }
    }
    drop(loaded);
    let took = start.elapsed();
    eprintln!(
        "{runs} runs with maps, {loads} loads (+{} failure rounds) in {took:.2?} ({:.1} µs/run)",
        runs.div_ceil(1000),
        took.as_secs_f64() * 1e6 / runs.max(1) as f64
    );
    assert_eq!(open_fds(), base, "descriptors leaked");
}
