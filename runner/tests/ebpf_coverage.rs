//! Coverage of the eBPF ISA by the spec: every row of the ISA table must appear in at least one
//! eBPF case under `spec/cases` that is expected to load and run (an `r0` or `memory`
//! expectation). Rejection and fault cases do not count. Rows that no runnable case can cover
//! are listed in [`UNCOVERABLE`] with the reason, and that list is checked too: a listed row that
//! some case does cover fails the test, so the list cannot go stale.

mod common;

use bpfconf_spec::case::{load_path, EbpfExpected};
use bpfconf_spec::ebpf::isa::{classify, row_by_name, ISA};
use std::collections::{BTreeMap, BTreeSet};

/// Rows no runnable case can cover yet, with the reason.
const UNCOVERABLE: &[(&str, &str)] = &[
    (
        "call_kfunc",
        "the imm is the BTF id of a kernel function: nothing portable to call",
    ),
    (
        "callx",
        "not in RFC 9669 (bpf_conformance's own group); uBPF reads it as a helper call by \
         register, so it needs a shared helper table too, and Linux has no such instruction",
    ),
    (
        "lddw_map_idx",
        "a map by index into the load's fd_array (src 5): the reference interpreter does not \
         support fd_array references, and a case must pass on it",
    ),
    (
        "lddw_map_idx_value",
        "a map value by fd_array index (src 6): not supported by the reference interpreter, as \
         for lddw_map_idx",
    ),
    (
        "lddw_var_addr",
        "the address of a platform variable (RFC 9669 §5.4 var_addr; a BTF ksym on Linux): no \
         variable exists in every environment",
    ),
    (
        "lddw_code_addr",
        "a code address is only useful as a callback argument to a helper; its value is not \
         observable, and Linux accepts it only with BTF func_info",
    ),
];

#[test]
fn every_isa_row_is_covered_by_a_runnable_case() {
    let rep = load_path(&common::root().join("spec/cases"));
    assert!(
        rep.errors.is_empty(),
        "case file errors:\n{}",
        rep.errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Row name -> the first runnable case using it.
    let mut covered: BTreeMap<&str, &str> = BTreeMap::new();
    for case in &rep.ebpf {
        if !matches!(case.expect, EbpfExpected::Accept { .. }) {
            continue;
        }
        for pc in 0..case.program.len() {
            if let Some(row) = classify(&case.program, pc) {
                covered.entry(row.name).or_insert(&case.name);
            }
        }
    }

    let mut listed = BTreeSet::new();
    for (name, reason) in UNCOVERABLE {
        assert!(
            row_by_name(name).is_some(),
            "UNCOVERABLE names `{name}`, which is no ISA row"
        );
        assert!(
            !reason.trim().is_empty(),
            "UNCOVERABLE `{name}` has no reason"
        );
        assert!(listed.insert(*name), "UNCOVERABLE lists `{name}` twice");
    }

    let missing: Vec<&str> = ISA
        .iter()
        .map(|r| r.name)
        .filter(|n| !covered.contains_key(n) && !listed.contains(n))
        .collect();
    let stale: Vec<String> = UNCOVERABLE
        .iter()
        .filter_map(|(n, _)| covered.get(n).map(|case| format!("{n} (run by {case})")))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "ISA rows no runnable eBPF case covers: {missing:?}\n\
         rows listed as uncoverable although a runnable case covers them: {stale:?}"
    );
    assert_eq!(covered.len() + listed.len(), ISA.len());
}
