//! Real filters compiled by tcpdump/libpcap (spec/cases/classic/tcpdump.toml and the VLAN
//! variants in skb.toml) sent through `bpfconf serve` to the reference interpreter and to the
//! kernel: both must observe the same result on every crafted frame, and it must be the
//! expected one.

mod common;

use bpfconf_engines::Observed;
use bpfconf_spec::case::{load_file, Case, CtxSpec, Expected};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for f in ["tcpdump.toml", "skb.toml"] {
        let p = common::root().join("spec/cases/classic").join(f);
        if !p.exists() {
            continue;
        }
        let r = load_file(&p);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        v.extend(
            r.cases.into_iter().filter(|c| {
                c.name.starts_with("tcpdump/") || c.name.starts_with("skb/vlan_10_udp")
            }),
        );
    }
    v
}

fn serve(engine: &str, cases: &[Case]) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(["serve", "--engine", engine])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn bpfconf serve");
    {
        let stdin = child.stdin.as_mut().unwrap();
        for (i, c) in cases.iter().enumerate() {
            let insns: Vec<[u32; 4]> = c
                .program
                .iter()
                .map(|i| [i.code as u32, i.jt as u32, i.jf as u32, i.k])
                .collect();
            let req = json!({
                "id": i,
                "dialect": "linux",
                "insns": insns,
                "packet": bpfconf_spec::case::to_hex(&c.packet),
                "ctx": CtxSpec::from(&c.ctx),
            });
            writeln!(stdin, "{req}").unwrap();
        }
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), cases.len());
    replies
}

fn observed(reply: &Value, len: usize) -> Option<Observed> {
    if let Some(r) = reply.get("ret").and_then(Value::as_u64) {
        return Some(Observed::delivered_for(r as u32, len));
    }
    reply
        .get("delivered")
        .map(|d| Observed::Delivered(d.as_u64().map(|n| n as u32)))
}

#[test]
fn tcpdump_filters_agree_between_interp_and_kernel() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.dialects.contains(&bpfconf_spec::Dialect::Linux))
        .collect();
    assert!(
        cases.len() >= 19,
        "expected the tcpdump cases, got {}",
        cases.len()
    );
    let interp = serve("interp", &cases);
    for (c, r) in cases.iter().zip(&interp) {
        let Expected::Accept {
            ret: Some(want), ..
        } = c.expect[&bpfconf_spec::Dialect::Linux]
        else {
            panic!("{}: expected a return value", c.name)
        };
        assert_eq!(r["ret"].as_u64(), Some(want as u64), "{}: {r}", c.name);
    }
    let Some(_) = common::linux_engine() else {
        return;
    };
    let kernel = serve("linux", &cases);
    let mut compared = 0;
    for ((c, i), k) in cases.iter().zip(&interp).zip(&kernel) {
        if let Some(reason) = k.get("skipped") {
            eprintln!("SKIP {} on linux: {reason}", c.name);
            continue;
        }
        let oi = observed(i, c.packet.len()).unwrap();
        let ok = observed(k, c.packet.len()).unwrap_or_else(|| panic!("{}: {k}", c.name));
        assert_eq!(oi, ok, "{}: interp {i} vs kernel {k}", c.name);
        compared += 1;
    }
    // Every tcpdump case is realisable on the kernel (plain bytes on an AF_UNIX socket).
    let plain = cases
        .iter()
        .filter(|c| c.name.starts_with("tcpdump/"))
        .count();
    assert!(
        compared >= plain,
        "only {compared} of {} compared",
        cases.len()
    );
}
