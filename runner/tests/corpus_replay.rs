//! Replays every cargo-fuzz seed in corpus/<target>/ on the stable toolchain, through the same
//! generators and checks the targets use: parser seeds must not panic (and what assembles must
//! round-trip), differential seeds must not diverge between the reference interpreter and the
//! kernel (or the interpreter with itself where the kernel is unavailable or cannot run the
//! dialect).

mod common;

use arbitrary::Unstructured;
use bpfconf_engines::{EbpfInput, EbpfProgram, Input, Program};
use bpfconf_runner::fuzz::{check_divergence, engines, EnginePair};
use bpfconf_runner::gen::classic;
use bpfconf_spec::Dialect;
use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = common::root().join("corpus").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn pair(with_kernel: bool) -> EnginePair {
    if with_kernel && common::linux_engine().is_some() {
        engines("interp,linux").unwrap()
    } else {
        engines("interp,interp").unwrap()
    }
}

#[test]
fn parser_seeds_never_panic() {
    use bpfconf_spec::cbpf::{asm, disasm, formats};
    for (p, b) in seeds("asm_parse") {
        let text = String::from_utf8_lossy(&b);
        let _ = formats::parse_any(&text);
        if let Ok(prog) = asm::assemble(&text) {
            let again = asm::assemble(&disasm::disassemble(&prog)).unwrap();
            assert_eq!(again, prog, "{}", p.display());
        }
    }
    for (p, b) in seeds("toml_case") {
        let r = bpfconf_spec::case::load_str(&p, &String::from_utf8_lossy(&b));
        assert!(r.errors.is_empty(), "{}: {:?}", p.display(), r.errors);
    }
    for (p, b) in seeds("conformance_data") {
        let _ = bpfconf_spec::ebpf::data::parse_data(&p, &String::from_utf8_lossy(&b));
    }
}

#[test]
fn differential_seeds_agree() {
    let kernel = pair(true);
    for (p, b) in seeds("cbpf_diff") {
        let mut u = Unstructured::new(&b);
        let Ok(body) = u.int_in_range(1..=32usize) else {
            continue;
        };
        if let Ok((prog, input)) = classic::unit(&mut u, Dialect::Linux, body) {
            eprintln!("replaying {}", p.display());
            check_divergence(&kernel, &Program::Classic(prog), &Input::Classic(input));
        }
    }
    for (p, b) in seeds("ebpf_diff") {
        let mut u = Unstructured::new(&b);
        let Ok(body) = u.int_in_range(1..=32usize) else {
            continue;
        };
        if let Ok(insns) = bpfconf_runner::gen::ebpf::program(&mut u, body) {
            eprintln!("replaying {}", p.display());
            check_divergence(
                &kernel,
                &Program::Ebpf(EbpfProgram::new(insns)),
                &Input::Ebpf(EbpfInput::new(Vec::new())),
            );
        }
    }
    // NetBSD coprocessor programs: the kernel cannot run them; the seeds must at least generate
    // and run deterministically on the interpreter.
    let interp = pair(false);
    for (p, b) in seeds("cop_diff") {
        let mut u = Unstructured::new(&b);
        let Ok(body) = u.int_in_range(1..=32usize) else {
            continue;
        };
        if let Ok((prog, input)) = classic::unit(&mut u, Dialect::Netbsd, body) {
            eprintln!("replaying {}", p.display());
            check_divergence(&interp, &Program::Classic(prog), &Input::Classic(input));
        }
    }
}
