//! Map mismatch reports: when an engine's map snapshot differs from a case's expectation, the
//! report names the map, the first differing key (or queue/stack position) and both values —
//! through the comparison API (`compare_unit`, `failure_detail`) on crafted outcomes, and
//! end to end through `bpfconf run` on a deliberately wrong case in a temporary directory.

mod common;

use bpfconf_engines::{Observed, Outcome};
use bpfconf_runner::compare::{compare_unit, Actual, UnitExpect};
use bpfconf_runner::suite::{failure_detail, Selection, Unit};
use bpfconf_spec::case::{load_file, EbpfExpected};
use bpfconf_spec::ebpf::maps::MapContents;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn key(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn val(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn keyed(pairs: &[(u32, u64)]) -> MapContents {
    MapContents::Keyed(pairs.iter().map(|&(k, v)| (key(k), val(v))).collect())
}

fn seq(values: &[u64]) -> MapContents {
    MapContents::Sequence(values.iter().map(|&v| val(v)).collect())
}

fn expect(maps: Vec<(usize, MapContents)>) -> UnitExpect {
    UnitExpect::Ebpf(EbpfExpected::Accept {
        r0: Some(0),
        memory: None,
        maps: maps.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

fn ran(maps: Vec<MapContents>) -> Actual {
    Actual::Ran(Outcome {
        ret: Observed::Exact(0),
        mem: None,
        memory: Some(vec![]),
        maps: Some(maps),
    })
}

/// The mismatch line for `want` against `got` (map snapshots by index).
fn mismatch(want: Vec<(usize, MapContents)>, got: Vec<MapContents>) -> Option<String> {
    compare_unit(&expect(want), &ran(got), 0)
        .err()
        .map(|m| m.to_string())
}

#[test]
fn the_first_differing_key_and_both_values() {
    let want = keyed(&[(1, 10), (2, 5), (3, 7)]);
    // Keys 2 and 3 differ: key 2 (first in byte order) is reported.
    let got = keyed(&[(1, 10), (2, 6), (3, 8)]);
    assert_eq!(
        mismatch(vec![(0, want.clone())], vec![got]).as_deref(),
        Some("map 0 key 02000000: expected 0500000000000000, got 0600000000000000")
    );
    // A key missing on one side is `absent`.
    let got = keyed(&[(1, 10), (3, 7)]);
    assert_eq!(
        mismatch(vec![(0, want.clone())], vec![got]).as_deref(),
        Some("map 0 key 02000000: expected 0500000000000000, got absent")
    );
    let got = keyed(&[(0, 1), (1, 10), (2, 5), (3, 7)]);
    assert_eq!(
        mismatch(vec![(0, want.clone())], vec![got]).as_deref(),
        Some("map 0 key 00000000: expected absent, got 0100000000000000")
    );
    // The map index is the one that differs; maps not listed are not compared.
    let got = vec![keyed(&[(9, 9)]), want.clone()];
    assert_eq!(mismatch(vec![(1, want.clone())], got.clone()), None);
    assert_eq!(
        mismatch(vec![(0, keyed(&[])), (1, want)], got).as_deref(),
        Some("map 0 key 09000000: expected absent, got 0900000000000000")
    );
}

#[test]
fn queue_and_stack_positions() {
    assert_eq!(
        mismatch(vec![(0, seq(&[1, 2]))], vec![seq(&[1, 3])]).as_deref(),
        Some("map 0 position 1: expected 0200000000000000, got 0300000000000000")
    );
    assert_eq!(
        mismatch(vec![(0, seq(&[1, 2]))], vec![seq(&[1])]).as_deref(),
        Some("map 0 position 1: expected 0200000000000000, got absent")
    );
    assert_eq!(
        mismatch(vec![(0, seq(&[]))], vec![seq(&[4])]).as_deref(),
        Some("map 0 position 0: expected absent, got 0400000000000000")
    );
}

#[test]
fn array_snapshots_compare_non_zero_entries() {
    // An engine lists every array element; the case lists the non-zero ones.
    let got = keyed(&[(0, 0), (1, 5), (2, 0), (3, 0)]);
    assert_eq!(
        mismatch(vec![(0, keyed(&[(1, 5)]))], vec![got.clone()]),
        None
    );
    assert_eq!(
        mismatch(vec![(0, keyed(&[(1, 5), (2, 7)]))], vec![got]).as_deref(),
        Some("map 0 key 02000000: expected 0700000000000000, got absent")
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bpfconf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A hash-map case whose program sets key 2 to 6 while the expectation says 5.
const WRONG: &str = r#"
[[case]]
name = "wrong_value"
description = "deliberately wrong: the program stores 6 at key 2, the case expects 5"
isa = "ebpf"
asm = """
stw [%r10-4], 2
stdw [%r10-16], 6
lddw_map_fd %r1, 0
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, 0
call 2
exit
"""
[[case.maps]]
name = "h"
type = "hash"
key_size = 4
value_size = 8
max_entries = 4
init = [["01000000", "0a00000000000000"], ["02000000", "0100000000000000"]]
[case.expect]
r0 = 0
maps.h = [["01000000", "0a00000000000000"], ["02000000", "0500000000000000"]]
"#;

const LINE: &str = "map 0 key 02000000: expected 0500000000000000, got 0600000000000000";

#[test]
fn failure_detail_of_a_loaded_case() {
    let dir = temp_dir("maps-report-detail");
    let file = dir.join("bad.toml");
    std::fs::write(&file, WRONG).unwrap();
    let loaded = load_file(&file);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let unit = Unit::ebpf(&loaded.ebpf[0], &Selection::default());
    let actual = ran(vec![keyed(&[(1, 10), (2, 6)])]);
    let m = compare_unit(&unit.expect, &actual, 0).unwrap_err();
    let text = failure_detail(&unit, &m, &actual);
    assert!(text.starts_with(LINE), "{text}");
    assert!(text.contains("bad.toml"), "{text}");
    assert!(text.contains("call 2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bpfconf_run_reports_the_key_on_every_engine() {
    let dir = temp_dir("maps-report-run");
    let file = dir.join("bad.toml");
    std::fs::write(&file, WRONG).unwrap();
    let mut engines = vec!["interp"];
    if common::linux_engine().is_some() {
        engines.push("linux");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args([
            "run",
            "--engine",
            &engines.join(","),
            file.to_str().unwrap(),
        ])
        .output()
        .expect("spawn bpfconf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failing case must fail the run:\n{stdout}"
    );
    for e in &engines {
        let head = format!("FAIL  bad/wrong_value [ebpf] on {e}");
        let at = stdout
            .find(&head)
            .unwrap_or_else(|| panic!("no `{head}` in:\n{stdout}"));
        let detail = stdout[at + head.len()..].trim_start();
        assert!(detail.starts_with(LINE), "{e}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
