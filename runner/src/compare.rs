//! Comparing an engine's result with a case's expectation, projected onto what the engine can
//! observe (a socket sees only `min(ret, len)`; the kernel cannot show M[]).

use bpfconf_engines::{LoadError, Observed, Outcome};
use bpfconf_spec::case::{EbpfExpected, Expected};
use bpfconf_spec::ebpf::maps::{first_difference, MapContents};
use std::fmt;

/// What an engine produced for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actual {
    /// The program loaded and ran.
    Ran(Outcome),
    /// The program loaded; it was not run (the case expects a rejection, so only the load
    /// matters).
    Accepted,
    /// The run faulted (a memory-safe engine caught an access or call the ISA forbids).
    Fault(String),
    /// The engine's checker rejected the program.
    Rejected {
        /// Rule name, when the engine can tell.
        rule: Option<String>,
        /// Reason text.
        reason: String,
    },
}

/// Why an actual result does not meet the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field that differs: `ret`, `mem[3]`, `load`, `rule`.
    pub field: String,
    /// The expected value, rendered.
    pub expected: String,
    /// The actual value, rendered.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.field, self.expected, self.actual
        )
    }
}

/// Renders an observed return value.
pub fn render_observed(o: &Observed) -> String {
    match o {
        Observed::Exact(v) => format!("ret {v} ({v:#x})"),
        Observed::Delivered(None) => "dropped (ret 0)".into(),
        Observed::Delivered(Some(n)) => format!("{n} bytes delivered"),
    }
}

/// Converts an engine load error to an [`Actual`] when it is a rejection.
pub fn rejected_from(e: &LoadError) -> Option<Actual> {
    match e {
        LoadError::Rejected { rule, reason } => Some(Actual::Rejected {
            rule: rule.clone(),
            reason: reason.clone(),
        }),
        _ => None,
    }
}

/// Compares an actual result with the expectation. `packet_len` is needed to project an exact
/// expected return value onto what a socket delivers.
pub fn compare(expected: &Expected, actual: &Actual, packet_len: usize) -> Result<(), Mismatch> {
    match (expected, actual) {
        (Expected::Reject { .. }, Actual::Ran(o)) => Err(Mismatch {
            field: "load".into(),
            expected: "rejected by the checker".into(),
            actual: format!("accepted and ran: {}", render_observed(&o.ret)),
        }),
        (Expected::Reject { .. }, Actual::Accepted) => Err(Mismatch {
            field: "load".into(),
            expected: "rejected by the checker".into(),
            actual: "accepted".into(),
        }),
        (Expected::Accept { .. }, Actual::Accepted) => Err(Mismatch {
            field: "ret".into(),
            expected: "a run".into(),
            actual: "loaded but not run".into(),
        }),
        (_, Actual::Fault(f)) => Err(Mismatch {
            field: "run".into(),
            expected: "a return value".into(),
            actual: format!("fault: {f}"),
        }),
        (Expected::Accept { .. }, Actual::Rejected { reason, .. }) => Err(Mismatch {
            field: "load".into(),
            expected: "accepted".into(),
            actual: format!("rejected: {reason}"),
        }),
        (
            Expected::Reject { rule: Some(want) },
            Actual::Rejected {
                rule: Some(got),
                reason,
            },
        ) if want != got => Err(Mismatch {
            field: "rule".into(),
            expected: format!("rejected by rule `{want}`"),
            actual: format!("rejected by rule `{got}` ({reason})"),
        }),
        (Expected::Reject { .. }, Actual::Rejected { .. }) => Ok(()),
        (Expected::Accept { ret, mem }, Actual::Ran(o)) => {
            if let Some(want) = ret {
                let want_obs = match o.ret {
                    Observed::Exact(_) => Observed::Exact(*want as u64),
                    Observed::Delivered(_) => Observed::delivered_for(*want, packet_len),
                };
                if want_obs != o.ret {
                    let expected = match want_obs {
                        Observed::Exact(_) => render_observed(&want_obs),
                        _ => format!("{} (ret {want:#x})", render_observed(&want_obs)),
                    };
                    return Err(Mismatch {
                        field: "ret".into(),
                        expected,
                        actual: render_observed(&o.ret),
                    });
                }
            }
            if let Some(got_mem) = &o.mem {
                for (slot, want) in mem {
                    let got = got_mem.get(*slot).copied();
                    if got != Some(*want) {
                        return Err(Mismatch {
                            field: format!("mem[{slot}]"),
                            expected: format!("{want:#x}"),
                            actual: got.map_or("missing".into(), |g| format!("{g:#x}")),
                        });
                    }
                }
            }
            Ok(())
        }
    }
}

/// What a unit of work expects: a classic expectation for one dialect, or an eBPF one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitExpect {
    /// Classic: per-dialect expectation.
    Classic(Expected),
    /// eBPF expectation.
    Ebpf(EbpfExpected),
}

/// The one comparison entry point: expectation vs actual, for either family.
pub fn compare_unit(
    expected: &UnitExpect,
    actual: &Actual,
    packet_len: usize,
) -> Result<(), Mismatch> {
    match expected {
        UnitExpect::Classic(e) => compare(e, actual, packet_len),
        UnitExpect::Ebpf(e) => compare_ebpf(e, actual),
    }
}

/// Array maps always hold every index; an all-zero value is the same as an unlisted one.
fn normalize(c: &MapContents) -> MapContents {
    match c {
        MapContents::Keyed(m) => MapContents::Keyed(
            m.iter()
                .filter(|(_, v)| v.iter().any(|b| *b != 0))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn hex_or_none(m: &Option<Vec<u8>>) -> String {
    m.as_ref()
        .map_or("unobserved".into(), |m| bpfconf_spec::case::to_hex(m))
}

/// Compares an eBPF expectation with an actual result. A rejection whose rule is unknown (an
/// external verifier) matches an expected fault or error: refusing a program that would fault
/// is what a verifier is for.
pub fn compare_ebpf(expected: &EbpfExpected, actual: &Actual) -> Result<(), Mismatch> {
    let mismatch = |field: &str, e: String, a: String| {
        Err(Mismatch {
            field: field.into(),
            expected: e,
            actual: a,
        })
    };
    let describe = |a: &Actual| match a {
        Actual::Ran(o) => format!("ran: {}", render_observed(&o.ret)),
        Actual::Rejected { reason, .. } => format!("rejected: {reason}"),
        Actual::Accepted => "accepted".into(),
        Actual::Fault(f) => format!("fault: {f}"),
    };
    match (expected, actual) {
        (EbpfExpected::Accept { r0, memory, maps }, Actual::Ran(o)) => {
            if let Some(want) = r0 {
                if o.ret != Observed::Exact(*want) {
                    return mismatch("r0", format!("{want:#x}"), render_observed(&o.ret));
                }
            }
            if let (Some(want), Some(got)) = (memory, &o.memory) {
                if want != got {
                    let first = want
                        .iter()
                        .zip(got)
                        .position(|(a, b)| a != b)
                        .unwrap_or(want.len().min(got.len()));
                    return mismatch(
                        &format!("memory[{first}]"),
                        bpfconf_spec::case::to_hex(want),
                        hex_or_none(&Some(got.clone())),
                    );
                }
            }
            if let (false, Some(got_maps)) = (maps.is_empty(), &o.maps) {
                for (idx, want) in maps {
                    let got = got_maps.get(*idx).cloned().unwrap_or_default();
                    let (w, g) = (normalize(want), normalize(&got));
                    if let Some((at, e, a)) = first_difference(&w, &g) {
                        return mismatch(&format!("map {idx} {at}"), e, a);
                    }
                }
            }
            Ok(())
        }
        (EbpfExpected::Accept { .. }, a) => mismatch("load", "a run".into(), describe(a)),
        (
            EbpfExpected::Reject { rule: Some(want) },
            Actual::Rejected {
                rule: Some(got),
                reason,
            },
        ) if want != got => mismatch(
            "rule",
            format!("rejected by rule `{want}`"),
            format!("rejected by rule `{got}` ({reason})"),
        ),
        (EbpfExpected::Reject { .. }, Actual::Rejected { .. }) => Ok(()),
        (EbpfExpected::Reject { .. }, a) => {
            mismatch("load", "rejected by the validator".into(), describe(a))
        }
        (EbpfExpected::Fault, Actual::Fault(_))
        | (EbpfExpected::Fault, Actual::Rejected { rule: None, .. }) => Ok(()),
        (EbpfExpected::Fault, a) => mismatch("run", "a fault".into(), describe(a)),
        (EbpfExpected::Error(_), Actual::Fault(_) | Actual::Rejected { .. }) => Ok(()),
        (EbpfExpected::Error(e), a) => mismatch("run", format!("an error ({e})"), describe(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn accept(ret: u32) -> Expected {
        Expected::Accept {
            ret: Some(ret),
            mem: BTreeMap::new(),
        }
    }
    fn ran(ret: Observed, mem: Option<Vec<u32>>) -> Actual {
        Actual::Ran(Outcome::classic(ret, mem))
    }

    #[test]
    fn exact_values_compare_exactly() {
        assert!(compare(&accept(7), &ran(Observed::Exact(7), None), 3).is_ok());
        let m = compare(&accept(7), &ran(Observed::Exact(8), None), 3).unwrap_err();
        assert_eq!(m.field, "ret");
        assert!(m.to_string().contains("ret 7"), "{m}");
    }

    #[test]
    fn socket_observation_is_projected() {
        // ret 0x80000000 on a 10-byte packet: the socket delivers 10 bytes.
        let e = accept(0x8000_0000);
        assert!(compare(&e, &ran(Observed::Delivered(Some(10)), None), 10).is_ok());
        assert!(compare(&e, &ran(Observed::Delivered(Some(9)), None), 10).is_err());
        assert!(compare(&accept(0), &ran(Observed::Delivered(None), None), 10).is_ok());
        assert!(compare(&accept(0), &ran(Observed::Delivered(Some(0)), None), 0).is_err());
        assert!(compare(&accept(3), &ran(Observed::Delivered(Some(3)), None), 10).is_ok());
    }

    #[test]
    fn memory_is_compared_when_observable() {
        let e = Expected::Accept {
            ret: Some(1),
            mem: [(2, 5)].into(),
        };
        let mut m = vec![0; 16];
        assert!(compare(&e, &ran(Observed::Exact(1), Some(m.clone())), 0).is_err());
        m[2] = 5;
        assert!(compare(&e, &ran(Observed::Exact(1), Some(m)), 0).is_ok());
        assert!(compare(&e, &ran(Observed::Exact(1), None), 0).is_ok());
    }

    #[test]
    fn rejections() {
        let rej = |rule: Option<&str>| Actual::Rejected {
            rule: rule.map(String::from),
            reason: "x".into(),
        };
        let want = Expected::Reject {
            rule: Some("div_by_zero".into()),
        };
        assert!(compare(&want, &rej(Some("div_by_zero")), 0).is_ok());
        assert!(compare(&want, &rej(None), 0).is_ok());
        assert_eq!(
            compare(&want, &rej(Some("length")), 0).unwrap_err().field,
            "rule"
        );
        assert_eq!(
            compare(&want, &ran(Observed::Exact(0), None), 0)
                .unwrap_err()
                .field,
            "load"
        );
        assert_eq!(
            compare(&accept(0), &rej(None), 0).unwrap_err().field,
            "load"
        );
    }
}

#[cfg(test)]
mod ebpf_tests {
    use super::*;

    fn ran(r0: u64, memory: Option<Vec<u8>>) -> Actual {
        Actual::Ran(Outcome {
            ret: Observed::Exact(r0),
            mem: None,
            memory,
            maps: None,
        })
    }

    #[test]
    fn r0_and_memory() {
        let e = EbpfExpected::Accept {
            r0: Some(u64::MAX),
            memory: Some(vec![1, 2, 3]),
            maps: Default::default(),
        };
        assert!(compare_ebpf(&e, &ran(u64::MAX, Some(vec![1, 2, 3]))).is_ok());
        assert!(compare_ebpf(&e, &ran(u64::MAX, None)).is_ok());
        let m = compare_ebpf(&e, &ran(0xffff_ffff, None)).unwrap_err();
        assert_eq!(m.field, "r0");
        let m = compare_ebpf(&e, &ran(u64::MAX, Some(vec![1, 9, 3]))).unwrap_err();
        assert_eq!(m.field, "memory[1]");
    }

    #[test]
    fn faults_errors_and_rejections() {
        let fault = Actual::Fault("oob".into());
        let verifier = Actual::Rejected {
            rule: None,
            reason: "verifier".into(),
        };
        let ours = Actual::Rejected {
            rule: Some("unused_field".into()),
            reason: "x".into(),
        };
        assert!(compare_ebpf(&EbpfExpected::Fault, &fault).is_ok());
        assert!(compare_ebpf(&EbpfExpected::Fault, &verifier).is_ok());
        assert!(compare_ebpf(&EbpfExpected::Fault, &ran(0, None)).is_err());
        assert!(compare_ebpf(&EbpfExpected::Error("e".into()), &ours).is_ok());
        assert!(compare_ebpf(&EbpfExpected::Error("e".into()), &ran(0, None)).is_err());
        let want = EbpfExpected::Reject {
            rule: Some("unused_field".into()),
        };
        assert!(compare_ebpf(&want, &ours).is_ok());
        assert!(compare_ebpf(&want, &fault).is_err());
        let accept = EbpfExpected::Accept {
            r0: Some(1),
            memory: None,
            maps: Default::default(),
        };
        assert_eq!(compare_ebpf(&accept, &fault).unwrap_err().field, "load");
    }
}
