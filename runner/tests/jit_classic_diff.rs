//! The classic JIT (`jit`) against the reference interpreter on the fuzzer's own programs:
//! seeded `bpfconf fuzz` campaigns in every dialect and the checked-in cargo-fuzz seeds must
//! show no divergence (return value and memory store).
#![cfg(target_arch = "x86_64")]

mod common;

use arbitrary::Unstructured;
use bpfconf_engines::{Input, Program};
use bpfconf_runner::fuzz::{campaign, check_divergence, engines, Config, Isa};
use bpfconf_runner::gen::classic;
use bpfconf_spec::Dialect;

#[test]
fn classic_campaigns_find_no_divergence() {
    let (interp, jit) = engines("interp,jit").unwrap();
    for d in Dialect::ALL {
        for body in [8, 48] {
            let cfg = Config {
                isa: Isa::Classic(d),
                seed: 0x1a17,
                count: Some(2000),
                time: None,
                body,
                minimize: false,
                bar: false,
            };
            let s = campaign(&cfg, interp.as_ref(), jit.as_ref());
            assert_eq!(s.units, 2000);
            assert!(
                s.found.is_empty(),
                "{d:?} body {body}: {}",
                s.found.first().map_or(String::new(), |f| format!("{f:?}"))
            );
            assert!(s.matched > s.units / 2, "{d:?}: only {} matched", s.matched);
        }
    }
}

#[test]
fn classic_fuzz_seeds_agree_on_the_jit() {
    let pair = engines("interp,jit").unwrap();
    for (target, dialects) in [
        ("cbpf_diff", &Dialect::ALL[..]),
        ("cop_diff", &[Dialect::Netbsd][..]),
    ] {
        let dir = common::root().join("corpus").join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        for p in seeds {
            let bytes = std::fs::read(&p).unwrap();
            for &d in dialects {
                let mut u = Unstructured::new(&bytes);
                let Ok(body) = u.int_in_range(1..=32usize) else {
                    continue;
                };
                if let Ok((prog, input)) = classic::unit(&mut u, d, body) {
                    check_divergence(&pair, &Program::Classic(prog), &Input::Classic(input));
                }
            }
        }
    }
}
