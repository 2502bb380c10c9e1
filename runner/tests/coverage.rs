//! Coverage computed from the spec itself: every one of the 52 classic opcodes, every Linux
//! extension and both negative offset bases must appear in at least one case that a dialect
//! accepts and runs. A new opcode or extension without a case fails this test.

mod common;

use bpfconf_spec::case::{load_path, Case, Expected};
use bpfconf_spec::cbpf::ext::{Ext, NegBase, SKF_AD_MAX, SKF_AD_OFF};
use bpfconf_spec::cbpf::{Op, ALL_OPS};
use bpfconf_spec::Dialect;
use std::collections::BTreeSet;

fn executed_in(case: &Case) -> Vec<Dialect> {
    case.expect
        .iter()
        .filter(|(_, e)| matches!(e, Expected::Accept { .. }))
        .map(|(d, _)| *d)
        .collect()
}

#[test]
fn every_opcode_extension_and_offset_base_is_covered() {
    let rep = load_path(&common::root().join("spec/cases"));
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let mut ops = BTreeSet::new();
    let mut exts = BTreeSet::new();
    let mut bases = BTreeSet::new();
    for case in &rep.cases {
        let dialects = executed_in(case);
        if dialects.is_empty() {
            continue;
        }
        let linux = dialects.contains(&Dialect::Linux);
        for insn in &case.program {
            let Some(op) = insn.op() else { continue };
            ops.insert(op.name());
            if !linux {
                continue;
            }
            match op {
                Op::LdLen | Op::LdxLen => {
                    exts.insert(Ext::Len.name());
                }
                Op::LdAbs(_) if (SKF_AD_OFF..SKF_AD_OFF + SKF_AD_MAX).contains(&insn.k) => {
                    if let Some(e) = Ext::from_k(insn.k) {
                        exts.insert(e.name());
                    }
                }
                Op::LdAbs(_) | Op::LdxMsh => {
                    if let Some((b, _)) = NegBase::classify(insn.k as i32) {
                        bases.insert(format!("{b:?}"));
                    }
                }
                _ => {}
            }
        }
    }
    let missing_ops: Vec<String> = ALL_OPS
        .iter()
        .map(|o| o.name())
        .filter(|n| !ops.contains(n))
        .collect();
    let missing_exts: Vec<&str> = Ext::ALL
        .iter()
        .map(|e| e.name())
        .filter(|n| !exts.contains(n))
        .collect();
    let missing_bases: Vec<&str> = ["Net", "Ll"]
        .into_iter()
        .filter(|b| !bases.contains(*b))
        .collect();
    assert!(
        missing_ops.is_empty() && missing_exts.is_empty() && missing_bases.is_empty(),
        "uncovered opcodes: {missing_ops:?}\nuncovered extensions: {missing_exts:?}\nuncovered negative offset bases: {missing_bases:?}"
    );
    assert_eq!(ops.len(), 52);
    assert_eq!(exts.len(), Ext::ALL.len());
}
