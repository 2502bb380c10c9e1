//! Differential comparison: what two engines did with the same unit, projected onto what both
//! observe, classified as a match, a divergence in one field, or a reason not to compare.
//!
//! # Known dialect differences (not reported as bugs)
//!
//! - **Socket view of the return value.** The kernel engine sees a classic filter through a
//!   socket: the datagram is dropped (ret 0) or `min(ret, len)` bytes are delivered. An exact
//!   return value is projected the same way before comparing ([`Observed::delivered_for`]).
//! - **M[] visibility.** Engines that cannot read the memory store after a run (the kernel)
//!   report no M[]; M[] is compared only when both engines report it.
//! - **eBPF memory and maps** likewise: compared only when both engines report them.
//! - **Checker strictness.** One engine refusing a program the other runs is reported as
//!   [`Diff::OneRejected`], not as a divergence: dialect checkers differ on purpose (the kernel
//!   refuses unknown ancillary offsets, libpcap accepts `cop`, …). Verifier refusals for a
//!   particular input ([`RunError::Refused`]) count as rejections.
//! - **Unrealisable inputs.** An engine that cannot load or run a unit here (unsupported
//!   feature, missing privilege, engine failure) makes the pair [`Diff::Unsupported`].
//! - **Faults.** Two faults match whatever their messages; a fault against a value is a
//!   divergence in the `fault` field.

use bpfconf_engines::{Engine, Input, LoadError, Observed, Outcome, Program, RunError};
use std::fmt;

/// What one engine did with one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The program ran to an outcome.
    Ran(Outcome),
    /// The program faulted at run time.
    Fault(String),
    /// The checker/verifier refused the program (at load, or for this input).
    Rejected(String),
    /// The engine cannot load or run this unit here, or failed for an unrelated reason.
    Unsupported(String),
}

/// Runs `program` on `input` with `engine` (load, then one run).
pub fn run_side(engine: &dyn Engine, program: &Program, input: &Input) -> Side {
    if let Err(why) = engine.supports(program, input) {
        return Side::Unsupported(why);
    }
    let mut loaded = match engine.load(program) {
        Ok(l) => l,
        Err(LoadError::Rejected { reason, .. }) => return Side::Rejected(reason),
        Err(LoadError::Unsupported(r)) => return Side::Unsupported(r),
        Err(LoadError::Engine(r)) => return Side::Unsupported(format!("engine error: {r}")),
    };
    match loaded.run(input) {
        Ok(o) => Side::Ran(o),
        Err(RunError::Fault(f)) => Side::Fault(f),
        Err(RunError::Refused(r)) => Side::Rejected(r),
        Err(RunError::Unsupported(r)) => Side::Unsupported(r),
        Err(RunError::Engine(r)) => Side::Unsupported(format!("engine error: {r}")),
        Err(e @ (RunError::Crash(_) | RunError::Timeout(_))) => {
            Side::Unsupported(format!("engine error: {e}"))
        }
    }
}

/// Which of the two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Which {
    /// The first engine.
    A,
    /// The second engine.
    B,
}

/// The classification of a differential run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    /// Both engines observed the same thing (on every field both observe).
    Match,
    /// The engines disagree on `field` (`ret`, `mem`, `memory`, `maps`, `fault`).
    Divergence {
        /// The first differing field.
        field: &'static str,
        /// What the first engine observed, rendered.
        a: String,
        /// What the second engine observed, rendered.
        b: String,
    },
    /// At least one engine could not run the unit; nothing to compare.
    Unsupported(String),
    /// Both checkers refused the program.
    BothRejected,
    /// Exactly one checker refused the program.
    OneRejected {
        /// The engine that refused.
        which: Which,
        /// Its reason.
        reason: String,
    },
}

impl Diff {
    /// True for a divergence (the only classification that is a bug candidate).
    pub fn is_divergence(&self) -> bool {
        matches!(self, Diff::Divergence { .. })
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diff::Match => f.write_str("match"),
            Diff::Divergence { field, a, b } => write!(f, "divergence in {field}: {a} vs {b}"),
            Diff::Unsupported(r) => write!(f, "unsupported: {r}"),
            Diff::BothRejected => f.write_str("both rejected"),
            Diff::OneRejected { which, reason } => write!(f, "{which:?} rejected: {reason}"),
        }
    }
}

/// Renders an observed return value.
fn show_ret(r: &Observed) -> String {
    match r {
        Observed::Exact(v) => format!("{v:#x}"),
        Observed::Delivered(None) => "dropped".into(),
        Observed::Delivered(Some(n)) => format!("delivered {n}"),
    }
}

/// Projects two return values onto what both observe: if either engine sees only a socket's
/// delivery, the other's exact value is projected onto it for a packet of `len` bytes.
fn project(a: Observed, b: Observed, len: usize) -> (Observed, Observed) {
    let to_socket = |o: Observed| match o {
        Observed::Exact(v) => Observed::delivered_for(v as u32, len),
        d => d,
    };
    match (a, b) {
        (Observed::Exact(_), Observed::Exact(_)) => (a, b),
        _ => (to_socket(a), to_socket(b)),
    }
}

/// Compares two sides of one unit. `len` is the classic packet length (used to project return
/// values onto a socket's view; ignored for eBPF, whose engines report exact r0).
pub fn compare(a: &Side, b: &Side, len: usize) -> Diff {
    match (a, b) {
        (Side::Unsupported(r), _) => Diff::Unsupported(format!("A: {r}")),
        (_, Side::Unsupported(r)) => Diff::Unsupported(format!("B: {r}")),
        (Side::Rejected(_), Side::Rejected(_)) => Diff::BothRejected,
        (Side::Rejected(r), _) => Diff::OneRejected {
            which: Which::A,
            reason: r.clone(),
        },
        (_, Side::Rejected(r)) => Diff::OneRejected {
            which: Which::B,
            reason: r.clone(),
        },
        (Side::Fault(_), Side::Fault(_)) => Diff::Match,
        (Side::Fault(f), Side::Ran(o)) => Diff::Divergence {
            field: "fault",
            a: format!("fault: {f}"),
            b: show_ret(&o.ret),
        },
        (Side::Ran(o), Side::Fault(f)) => Diff::Divergence {
            field: "fault",
            a: show_ret(&o.ret),
            b: format!("fault: {f}"),
        },
        (Side::Ran(x), Side::Ran(y)) => compare_outcomes(x, y, len),
    }
}

/// Compares two outcomes field by field on what both observe.
pub fn compare_outcomes(x: &Outcome, y: &Outcome, len: usize) -> Diff {
    let (ra, rb) = project(x.ret, y.ret, len);
    if ra != rb {
        return Diff::Divergence {
            field: "ret",
            a: show_ret(&ra),
            b: show_ret(&rb),
        };
    }
    if let (Some(ma), Some(mb)) = (&x.mem, &y.mem) {
        if ma != mb {
            return Diff::Divergence {
                field: "mem",
                a: format!("{ma:x?}"),
                b: format!("{mb:x?}"),
            };
        }
    }
    if let (Some(ma), Some(mb)) = (&x.memory, &y.memory) {
        if ma != mb {
            return Diff::Divergence {
                field: "memory",
                a: bpfconf_spec::case::to_hex(ma),
                b: bpfconf_spec::case::to_hex(mb),
            };
        }
    }
    if let (Some(ma), Some(mb)) = (&x.maps, &y.maps) {
        if ma != mb {
            return Diff::Divergence {
                field: "maps",
                a: format!("{ma:?}"),
                b: format!("{mb:?}"),
            };
        }
    }
    Diff::Match
}

/// True if the two sides differ in `field`, whether or not it is the first differing field
/// (the minimizer keeps a `mem` divergence even when the return value diverges too).
pub fn differs_in(a: &Side, b: &Side, len: usize, field: &str) -> bool {
    match (a, b) {
        (Side::Ran(x), Side::Ran(y)) => match field {
            "ret" => {
                let (ra, rb) = project(x.ret, y.ret, len);
                ra != rb
            }
            "mem" => matches!((&x.mem, &y.mem), (Some(p), Some(q)) if p != q),
            "memory" => matches!((&x.memory, &y.memory), (Some(p), Some(q)) if p != q),
            "maps" => matches!((&x.maps, &y.maps), (Some(p), Some(q)) if p != q),
            _ => false,
        },
        _ => matches!(compare(a, b, len), Diff::Divergence { field: f, .. } if f == field),
    }
}

/// Runs one unit on two engines and compares.
pub fn diff_unit(a: &dyn Engine, b: &dyn Engine, program: &Program, input: &Input) -> Diff {
    let len = input.data_len();
    compare(
        &run_side(a, program, input),
        &run_side(b, program, input),
        len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(ret: Observed, mem: Option<Vec<u32>>) -> Side {
        Side::Ran(Outcome::classic(ret, mem))
    }

    #[test]
    fn exact_values_compare_exactly() {
        let a = ran(Observed::Exact(5), None);
        assert_eq!(compare(&a, &a, 10), Diff::Match);
        let b = ran(Observed::Exact(6), None);
        assert!(matches!(
            compare(&a, &b, 10),
            Diff::Divergence { field: "ret", .. }
        ));
    }

    #[test]
    fn socket_view_projects_exact_values() {
        // ret 100 on a 10-byte packet delivers 10 bytes.
        let exact = ran(Observed::Exact(100), Some(vec![0; 16]));
        let sock = ran(Observed::Delivered(Some(10)), None);
        assert_eq!(compare(&exact, &sock, 10), Diff::Match);
        assert_eq!(compare(&sock, &exact, 10), Diff::Match);
        let dropped = ran(Observed::Delivered(None), None);
        assert!(matches!(
            compare(&exact, &dropped, 10),
            Diff::Divergence { field: "ret", .. }
        ));
        assert_eq!(
            compare(&ran(Observed::Exact(0), None), &dropped, 10),
            Diff::Match
        );
    }

    #[test]
    fn memory_store_only_when_both_observe_it() {
        let a = ran(Observed::Exact(1), Some(vec![1; 16]));
        let b = ran(Observed::Exact(1), Some(vec![2; 16]));
        let none = ran(Observed::Exact(1), None);
        assert!(matches!(
            compare(&a, &b, 4),
            Diff::Divergence { field: "mem", .. }
        ));
        assert_eq!(compare(&a, &none, 4), Diff::Match);
    }

    #[test]
    fn ebpf_memory_and_maps() {
        let mut x = Outcome::classic(Observed::Exact(0), None);
        x.memory = Some(vec![1, 2]);
        let mut y = x.clone();
        y.memory = Some(vec![1, 3]);
        assert!(matches!(
            compare_outcomes(&x, &y, 2),
            Diff::Divergence {
                field: "memory",
                ..
            }
        ));
        y.memory = None;
        assert_eq!(compare_outcomes(&x, &y, 2), Diff::Match);
    }

    #[test]
    fn differs_in_looks_past_the_first_field() {
        let a = ran(Observed::Exact(1), Some(vec![1; 16]));
        let b = ran(Observed::Exact(2), Some(vec![2; 16]));
        assert!(differs_in(&a, &b, 4, "ret"));
        assert!(differs_in(&a, &b, 4, "mem"));
        assert!(!differs_in(&a, &a, 4, "mem"));
        let f = Side::Fault("x".into());
        assert!(differs_in(&a, &f, 4, "fault"));
    }

    #[test]
    fn rejections_faults_and_unsupported() {
        let r = Side::Rejected("no".into());
        let ok = ran(Observed::Exact(1), None);
        let f = Side::Fault("oob".into());
        assert_eq!(compare(&r, &r, 0), Diff::BothRejected);
        assert_eq!(
            compare(&ok, &r, 0),
            Diff::OneRejected {
                which: Which::B,
                reason: "no".into()
            }
        );
        assert_eq!(compare(&f, &Side::Fault("x".into()), 0), Diff::Match);
        assert!(matches!(
            compare(&f, &ok, 0),
            Diff::Divergence { field: "fault", .. }
        ));
        assert!(matches!(
            compare(&Side::Unsupported("u".into()), &ok, 0),
            Diff::Unsupported(_)
        ));
    }

    #[test]
    fn interp_matches_itself_on_generated_units() {
        let e = bpfconf_engines::interp::Interp::new();
        for seed in 0..50 {
            let (p, i) = crate::gen::classic::seeded_unit(seed, bpfconf_spec::Dialect::Bsd, 16);
            let d = diff_unit(&e, &e, &Program::Classic(p), &Input::Classic(i));
            assert!(!d.is_divergence(), "seed {seed}: {d}");
        }
    }
}
