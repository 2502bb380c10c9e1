//! Through the `interp` engine: outcomes carry every map's snapshot, the helper table depends on
//! whether the program declares maps, the nondeterministic helpers are reproducible, and the
//! load-time checks of definitions, references, targets and initial contents.

use super::*;
use bpfconf_engines::interp::ebpf::{HelperState, Helpers};
use bpfconf_engines::interp::Interp;
use bpfconf_engines::{EbpfInput, Engine, Input, LoadError, Observed, Program};

fn input(mem: &[u8], maps: Vec<MapContents>) -> Input {
    Input::Ebpf(EbpfInput {
        mem: mem.to_vec(),
        maps,
    })
}

fn load_error(p: EbpfProgram) -> LoadError {
    match Interp::new().load(&Program::Ebpf(p)) {
        Err(e) => e,
        Ok(_) => panic!("expected a load error"),
    }
}

fn rule_of(p: EbpfProgram) -> (Option<String>, String) {
    match load_error(p) {
        LoadError::Rejected { rule, reason } => (rule, reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn outcomes_carry_every_snapshot() {
    let text = [
        START,
        &update(0, 0x100, 30, 0, 0),
        &update(0, 1, 10, 0, 1),
        &update(1, 1, 11, 0, 2),
        &push(2, 5, 0, 3),
        END,
    ]
    .concat();
    let maps = vec![
        hash(4),
        array(2),
        def(MapKind::Stack, 0, 8, 4),
        def(MapKind::ProgArray, 4, 4, 3),
    ];
    let mut p = program(&text, maps);
    p.progs = vec![asm("mov %r0, 0\nexit")];
    let e = Interp::new();
    let mut loaded = e.load(&Program::Ebpf(p)).unwrap();
    let slot2 = MapContents::Keyed([(2u32.to_le_bytes().to_vec(), vec![0; 4])].into());
    let init = vec![
        MapContents::Unknown,
        MapContents::Unknown,
        sequence(&[4]),
        slot2.clone(),
    ];
    let want = vec![
        // Sorted by key bytes: 00 01 00 00 (0x100) before 01 00 00 00 (1).
        MapContents::Keyed(
            [
                (vec![0, 1, 0, 0], 30u64.to_le_bytes().to_vec()),
                (vec![1, 0, 0, 0], 10u64.to_le_bytes().to_vec()),
            ]
            .into(),
        ),
        keyed(&[(0, 0), (1, 11)]),
        sequence(&[4, 5]),
        slot2,
    ];
    // The same loaded program twice: every run starts from the input's contents again.
    for _ in 0..2 {
        let o = loaded.run(&input(&[0; 64], init.clone())).unwrap();
        assert_eq!(o.ret, Observed::Exact(0));
        assert_eq!(o.maps.as_ref(), Some(&want));
    }
    let o = loaded.run(&input(&[0; 64], vec![])).unwrap();
    assert_eq!(o.maps.unwrap()[3], keyed(&[]), "no initial contents: empty");
    // A map-less program reports an empty list.
    let plain = Program::Ebpf(EbpfProgram::new(asm("mov %r0, 0\nexit")));
    let o = e.load(&plain).unwrap().run(&input(&[], vec![])).unwrap();
    assert_eq!(o.maps, Some(vec![]));
}

#[test]
fn helper_5_is_unwind_without_maps_and_ktime_with_them() {
    let e = Interp::new();
    let text = "mov %r1, 0\ncall 5\nmov %r7, %r0\ncall 5\nsub %r0, %r7\nexit";
    let plain = Program::Ebpf(EbpfProgram::new(asm(text)));
    // bpf_conformance's unwind: R1 = 0 ends the program with 0.
    let o = e.load(&plain).unwrap().run(&input(&[], vec![])).unwrap();
    assert_eq!(o.ret, Observed::Exact(0));
    let with_map = Program::Ebpf(program(text, vec![array(1)]));
    let o = e.load(&with_map).unwrap().run(&input(&[], vec![])).unwrap();
    assert_eq!(
        o.ret,
        Observed::Exact(1_000),
        "ktime_get_ns advances 1 µs per call"
    );
    let first = program("call 5\nexit", vec![array(1)]);
    assert_eq!(run(&first, &[]).ret, 1_000_000_000);
    // The other kernel helpers are there in both tables.
    for p in [
        EbpfProgram::new(asm("mov %r0, 9\ncall 8\nexit")),
        program("mov %r0, 9\ncall 8\nexit", vec![array(1)]),
    ] {
        let o = e
            .load(&Program::Ebpf(p))
            .unwrap()
            .run(&input(&[], vec![]))
            .unwrap();
        assert_eq!(o.ret, Observed::Exact(0), "get_smp_processor_id is CPU 0");
    }
    assert_eq!(
        Helpers::for_program(&EbpfProgram::new(vec![]))
            .get(5)
            .unwrap()
            .name,
        "unwind"
    );
    let mut p = EbpfProgram::new(vec![]);
    p.progs.push(asm("exit"));
    assert_eq!(
        Helpers::for_program(&p).get(5).unwrap().name,
        "ktime_get_ns"
    );
}

#[test]
fn prandom_is_reproducible_per_seed() {
    let text = "call 7\nmov %r6, %r0\ncall 7\nlsh %r0, 32\nor %r0, %r6\nexit";
    let p = EbpfProgram::new(asm(text));
    let a = interp(&p).run(&[]).unwrap().ret;
    let b = interp(&p).run(&[]).unwrap().ret;
    assert_eq!(a, b, "every run restarts the generator");
    let mut s = HelperState::default();
    let (lo, hi) = (s.next_prandom() as u64, s.next_prandom() as u64);
    assert_eq!(a, hi << 32 | lo);
    assert_ne!(lo, hi);
    let c = interp(&p).with_seed(7).run(&[]).unwrap().ret;
    assert_ne!(a, c);
    let one = interp(&EbpfProgram::new(asm("call 7\nexit")))
        .run(&[])
        .unwrap()
        .ret;
    assert!(one <= u32::MAX as u64, "a u32, zero-extended");
}

#[test]
fn definitions_are_checked_at_load() {
    let with = |m: MapDef| program("mov %r0, 0\nexit", vec![m]);
    let (rule, reason) = rule_of(with(def(MapKind::Array, 8, 8, 1)));
    assert_eq!(rule.as_deref(), Some("map_definition"));
    assert!(reason.contains("4-byte keys"), "{reason}");
    assert_eq!(
        rule_of(with(def(MapKind::Hash, 4, 8, 0))).0.as_deref(),
        Some("map_definition")
    );
    assert_eq!(
        rule_of(with(def(MapKind::Hash, 513, 8, 1))).0.as_deref(),
        Some("map_definition")
    );
    let mut no_prealloc_array = array(1);
    no_prealloc_array.flags = 1;
    assert_eq!(
        rule_of(with(no_prealloc_array)).0.as_deref(),
        Some("map_definition")
    );
    // What the interpreter does not model is a skip, said up front by `supports`.
    let e = Interp::new();
    let mut rdonly = hash(1);
    rdonly.flags = 1 << 7;
    let huge = def(MapKind::Array, 4, 1 << 20, 1 << 12);
    for p in [with(rdonly), with(huge)] {
        let prog = Program::Ebpf(p);
        assert!(e.supports(&prog, &input(&[], vec![])).is_err());
        assert!(matches!(
            e.load(&prog).err(),
            Some(LoadError::Unsupported(_))
        ));
    }
}

#[test]
fn lddw_references_are_checked_at_load() {
    let one = def(MapKind::Array, 4, 8, 1);
    let cases = [
        ("lddw_map_fd %r1, 2\nexit", vec![one.clone()], "has 1 maps"),
        (
            "lddw_map_fd %r1, 0, 1\nexit",
            vec![one.clone()],
            "must be 0",
        ),
        (
            "lddw_map_value %r1, 0, 8\nexit",
            vec![one.clone()],
            "offset 8",
        ),
        (
            "lddw_map_value %r1, 0, 0\nexit",
            vec![array(2)],
            "max_entries = 1",
        ),
        (
            "lddw_map_value %r1, 0, 0\nexit",
            vec![hash(1)],
            "needs an array",
        ),
        (
            "lddw_map_value %r1, 1, 0\nexit",
            vec![one.clone()],
            "has 1 maps",
        ),
    ];
    for (text, maps, want) in cases {
        let (rule, reason) = rule_of(program(text, maps));
        assert_eq!(rule.as_deref(), Some("map_reference"), "{text}");
        assert!(reason.contains(want), "{text}: {reason}");
    }
    // `src` 7 is no `lddw` variant: the validator refuses it (and `supports` does not object).
    let bad = program(".insn 0x18, 0, 7, 0, 0\n.insn 0, 0, 0, 0, 0\nexit", vec![]);
    let e = Interp::new();
    assert_eq!(
        e.supports(&Program::Ebpf(bad.clone()), &input(&[], vec![])),
        Ok(())
    );
    assert_eq!(rule_of(bad).0.as_deref(), Some("bad_variant"));
    // Tail-call targets are checked too.
    let mut p = program("mov %r0, 0\nexit", vec![one]);
    p.progs = vec![asm("mov %r0, 0\nexit"), asm("lddw_map_fd %r1, 5\nexit")];
    let (_, reason) = rule_of(p);
    assert!(reason.starts_with("progs[1] insn 0"), "{reason}");
    assert_eq!(
        Interpreter::for_program(&program("lddw_map_value %r1, 0, 7\nexit", vec![array(1)]))
            .map(|i| i.maps().len())
            .ok(),
        Some(1)
    );
}

#[test]
fn targets_are_validated() {
    let mut p = EbpfProgram::new(asm("mov %r0, 0\nexit"));
    p.progs = vec![asm("mov %r0, 0")];
    let (rule, reason) = rule_of(p);
    assert_eq!(rule.as_deref(), Some("falls_off_end"));
    assert!(reason.starts_with("progs[0]: "), "{reason}");
}

#[test]
fn bad_initial_contents_are_engine_errors() {
    let p = program(
        END,
        vec![
            hash(1),
            array(2),
            def(MapKind::Queue, 0, 8, 1),
            def(MapKind::ProgArray, 4, 4, 2),
        ],
    );
    let bytes = |k: &[u8], v: &[u8]| MapContents::Keyed([(k.to_vec(), v.to_vec())].into());
    let cases: Vec<(Vec<MapContents>, &str)> = vec![
        (vec![bytes(&[1, 0], &[0; 8])], "2 key bytes"),
        (vec![bytes(&[1, 0, 0, 0], &[0; 7])], "7 value bytes"),
        (vec![keyed(&[(1, 1), (2, 2)])], "2 keys, max_entries is 1"),
        (vec![sequence(&[1])], "a keyed map takes"),
        (vec![sequence(&[])], "a keyed map takes"),
        (vec![MapContents::Unknown, keyed(&[(2, 1)])], "index 2"),
        (
            vec![
                MapContents::Unknown,
                MapContents::Unknown,
                sequence(&[1, 2]),
            ],
            "2 values",
        ),
        (
            vec![MapContents::Unknown, MapContents::Unknown, keyed(&[(0, 1)])],
            "takes a sequence",
        ),
        (
            vec![MapContents::Unknown, MapContents::Unknown, keyed(&[])],
            "takes a sequence",
        ),
        (
            vec![
                MapContents::Unknown,
                MapContents::Unknown,
                MapContents::Unknown,
                bytes(&[0; 4], &[1, 0, 0, 0]),
            ],
            "program 1, but there are 0",
        ),
        (vec![MapContents::Unknown; 5], "for 5 maps"),
    ];
    for (init, want) in cases {
        match interp(&p).run_with_maps(&[], &init) {
            Err(RunError::Engine(m)) => assert!(m.contains(want), "{want}: {m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
}
