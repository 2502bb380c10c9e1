//! eBPF programs from ELF objects: a tiny C program built with `clang -O2 -target bpf -c` runs
//! through `bpfconf exec --elf FILE --section NAME` on `interp` and on `linux`, including a
//! bpf-to-bpf call into `.text` (relocation applied); an `lddw` relocated against global data
//! is refused with a clear message.
//!
//! Without clang the test prints why and passes, unless `BPFCONF_REQUIRE_CLANG` is set (CI
//! installs clang). The kernel part follows `BPFCONF_REQUIRE_KERNEL` like the other tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = r#"
typedef unsigned long long u64;
typedef unsigned char u8;

/* Not inlined: clang emits a bpf-to-bpf call with an R_BPF_64_32 relocation into .text. */
__attribute__((noinline)) static u64 mix(u64 a, u64 b) { return a * 31 + b; }

/* A fixed-size fold of the first 8 bytes (unrolled by -O2), plus the length in R2. */
__attribute__((section("socket"), used))
u64 fold(u8 *mem, u64 len)
{
    u64 acc = 7;
    for (int i = 0; i < 8; i++)
        acc = acc * 31 + mem[i];
    return acc + len;
}

__attribute__((section("tc"), used))
u64 calls(u8 *mem, u64 len)
{
    return mix(len, mem[0]) + mix(mem[1], 3);
}

/* Global data: an lddw relocated against .rodata/.data, which bpfconf refuses. */
static volatile u64 table[4] = {1, 2, 3, 4};
__attribute__((section("data_ref"), used))
u64 read_table(u8 *mem, u64 len)
{
    return table[mem[0] & 3];
}
"#;

const MEM: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn expected_fold() -> u64 {
    MEM.iter()
        .fold(7u64, |acc, &b| acc.wrapping_mul(31).wrapping_add(b as u64))
        + MEM.len() as u64
}

fn expected_calls() -> u64 {
    let mix = |a: u64, b: u64| a * 31 + b;
    mix(MEM.len() as u64, MEM[0] as u64) + mix(MEM[1] as u64, 3)
}

/// Builds the object, or `None` (with a message) when clang is missing and not required.
fn build_object() -> Option<PathBuf> {
    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_clang {
        if std::env::var_os("BPFCONF_REQUIRE_CLANG").is_some() {
            panic!("BPFCONF_REQUIRE_CLANG is set but clang is not installed");
        }
        eprintln!("SKIP ELF test: clang not found (set BPFCONF_REQUIRE_CLANG to make this fail)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("bpfconf-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("prog.c");
    let obj = dir.join("prog.o");
    std::fs::write(&src, SOURCE).unwrap();
    let out = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run clang");
    assert!(
        out.status.success(),
        "clang failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(obj)
}

fn exec(engine: &str, obj: &Path, section: &str) -> (bool, String, String) {
    let mem: Vec<String> = MEM.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_bpfconf"))
        .args(["exec", "--engine", engine, "--isa", "ebpf", "--elf"])
        .arg(obj)
        .args([
            "--section",
            section,
            "--mem",
            &mem.join(""),
            "--format",
            "json",
        ])
        .output()
        .expect("run bpfconf");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn r0(engine: &str, obj: &Path, section: &str) -> u64 {
    let (ok, stdout, stderr) = exec(engine, obj, section);
    assert!(ok, "{engine} {section}: {stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{engine} {section}: {e}: {stdout}"));
    v["r0"]
        .as_u64()
        .unwrap_or_else(|| panic!("{engine} {section}: no r0 in {v}"))
}

#[test]
fn clang_object_runs_on_interp_and_linux() {
    let Some(obj) = build_object() else { return };
    assert_eq!(r0("interp", &obj, "socket"), expected_fold());
    assert_eq!(r0("interp", &obj, "tc"), expected_calls());

    // Refusals name what is missing.
    let (ok, _, stderr) = exec("interp", &obj, "data_ref");
    assert!(!ok);
    assert!(
        stderr.contains("lddw relocated against") && stderr.contains("not supported"),
        "{stderr}"
    );
    let (ok, _, stderr) = exec("interp", &obj, "nope");
    assert!(!ok);
    assert!(
        stderr.contains("no section `nope`") && stderr.contains("socket"),
        "{stderr}"
    );

    if common::linux_engine().is_some() {
        assert_eq!(r0("linux", &obj, "socket"), expected_fold());
        assert_eq!(r0("linux", &obj, "tc"), expected_calls());
    }
    let _ = std::fs::remove_dir_all(obj.parent().unwrap());
}

#[test]
fn not_an_elf_object_is_refused() {
    let dir = std::env::temp_dir().join(format!("bpfconf-elf-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("not.o");
    std::fs::write(&f, b"definitely not ELF").unwrap();
    let (ok, _, stderr) = exec("interp", &f, "socket");
    assert!(!ok);
    assert!(stderr.contains("not an ELF object"), "{stderr}");
    // A non-BPF ELF (this test binary itself) is refused too.
    let me = std::env::current_exe().unwrap();
    let (ok, _, stderr) = exec("interp", &me, ".text");
    assert!(!ok);
    assert!(stderr.contains("not a BPF object"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
