//! Test helpers shared by the eBPF spec-layer tests: the bpf_conformance files and a small PRNG.

use super::{load_data, DataTest};
use std::path::PathBuf;

/// The local copy of bpf_conformance's test files (`/work/shared/bpf_conformance` beside the
/// workspace), or `None` (with a skip message) when it is absent.
pub(crate) fn conformance_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bpf_conformance"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: bpf_conformance files not found at {}",
            dir.display()
        );
        None
    }
}

/// The `.data` files of a subdirectory (`tests` or `negative`), sorted.
pub(crate) fn data_files(sub: &str) -> Option<Vec<PathBuf>> {
    let dir = conformance_dir()?.join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    Some(files)
}

/// Every file of `tests/`, parsed (panics on a parse error).
pub(crate) fn conformance_tests() -> Option<Vec<DataTest>> {
    let files = data_files("tests")?;
    Some(
        files
            .iter()
            .map(|p| load_data(p).unwrap_or_else(|e| panic!("{e}")))
            .collect(),
    )
}

pub(crate) use crate::testrng::Rng;
