//! `bpfconf bench` end to end: the report's structure (human and JSON), and correctness —
//! every engine that ran a filter or program returned the same results. Timing is never
//! asserted. Without libpcap or the kernel their columns are skipped (with the reason), unless
//! `BPFCONF_REQUIRE_PCAP=1` / `BPFCONF_REQUIRE_KERNEL=1` (CI), which make them required.

use serde_json::Value;
use std::process::Command;

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn bench(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(["bench", "--quick", "--time-ms", "2"])
        .args(args)
        .output()
        .expect("run bpfconf bench");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The measured entries of a row, by engine: (ns, digest).
fn measured(row: &Value) -> Vec<(String, f64, String)> {
    let results = row["results"].as_object().expect("results object");
    results
        .iter()
        .filter(|(_, e)| e.get("skipped").is_none())
        .map(|(name, e)| {
            (
                name.clone(),
                e["ns"].as_f64().expect("ns"),
                e["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect()
}

#[test]
fn json_report_is_complete_and_engines_agree() {
    let (ok, out) = bench(&["--format", "json"]);
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(ok, "bench failed: {out}");
    assert_eq!(r["quick"], true);
    assert_eq!(r["agree"], true, "{out}");
    let sections = r["sections"].as_array().expect("sections");
    let isas: Vec<&str> = sections.iter().filter_map(|s| s["isa"].as_str()).collect();
    assert_eq!(isas, ["classic", "ebpf"]);
    for s in sections {
        let isa = s["isa"].as_str().unwrap();
        let engines: Vec<&str> = s["engines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(engines[0], "interp", "{isa}: the reference comes first");
        if let Some(why) = s.get("skipped").and_then(Value::as_str) {
            assert!(
                !(isa == "classic" && required("BPFCONF_REQUIRE_PCAP")),
                "classic skipped although libpcap is required: {why}"
            );
            eprintln!("SKIP {isa}: {why}");
            continue;
        }
        let rows = s["rows"].as_array().unwrap();
        assert!(rows.len() >= 2, "{isa}: {} rows", rows.len());
        for row in rows {
            let name = row["name"].as_str().unwrap();
            assert!(row.get("error").is_none(), "{isa}/{name}: {}", row["error"]);
            assert!(row["insns"].as_u64().unwrap() > 0);
            let results = row["results"].as_object().unwrap();
            assert_eq!(
                results.len(),
                engines.len(),
                "{isa}/{name}: one entry per engine"
            );
            let m = measured(row);
            assert!(
                m.iter().any(|(e, ..)| e == "interp"),
                "{isa}/{name}: the interpreter must always run: {row}"
            );
            // Correctness: every engine that ran it returned the same results.
            for (e, ns, digest) in &m {
                assert!(*ns > 0.0, "{isa}/{name}/{e}: {ns}");
                assert_eq!(digest, &m[0].2, "{isa}/{name}: {e} differs from {}", m[0].0);
            }
            assert_eq!(row["agree"], true);
            let needed = match isa {
                "classic" if required("BPFCONF_REQUIRE_PCAP") => Some("libpcap"),
                "ebpf" if required("BPFCONF_REQUIRE_KERNEL") => Some("kernel"),
                _ => None,
            };
            if let Some(n) = needed {
                assert!(
                    m.iter().any(|(e, ..)| e == n),
                    "{isa}/{name}: {n} is required but did not run: {}",
                    results[n]
                );
            }
        }
        let geomean = s["geomean"].as_object().unwrap();
        assert!(geomean.contains_key("interp"));
        let measured_engines = geomean.len();
        let ratios = s["ratios"].as_array().unwrap();
        assert_eq!(
            ratios.len(),
            measured_engines * (measured_engines - 1) / 2,
            "{isa}: one ratio per pair of measured engines"
        );
        for q in ratios {
            assert!(q["ratio"].as_f64().unwrap() > 0.0);
        }
        // The project's targets come with their ratios.
        let target = |engine: &str, baseline: &str| {
            ratios
                .iter()
                .find(|q| q["engine"] == engine && q["baseline"] == baseline)
                .map(|q| q["target"].clone())
        };
        if isa == "classic" && geomean.contains_key("libpcap") {
            assert_eq!(target("interp", "libpcap"), Some(1.5.into()));
        }
        if geomean.contains_key("jit") {
            assert_eq!(target("jit", "interp"), Some(5.0.into()), "{isa}");
        }
        if isa == "ebpf" && geomean.contains_key("kernel") {
            let t = target("jit", "kernel").expect("jit vs kernel");
            assert!((t.as_f64().unwrap() - 1.0 / 1.2).abs() < 1e-9, "{t}");
        }
    }
}

#[test]
fn human_report_has_tables_and_ratios() {
    let (ok, out) = bench(&["--isa", "ebpf"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("bpfconf bench: "), "{out}");
    assert!(
        !out.contains("\nclassic ("),
        "--isa ebpf runs only eBPF: {out}"
    );
    for want in [
        "\nebpf (ns/run)",
        "\n  empty ",
        "\n  alu ",
        "\n  memory ",
        "geometric mean",
        "load ns/insn",
        "results: every engine gave the same results on every row",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    if required("BPFCONF_REQUIRE_KERNEL") {
        assert!(out.contains("kernel vs interp: "), "{out}");
        assert!(out.contains("jit vs kernel: "), "{out}");
    }
    assert!(out.contains("jit vs interp: "), "{out}");
}
