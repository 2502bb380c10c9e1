//! Shared helpers for the runner's integration tests: locating spec files and deciding whether
//! kernel-engine results are required.

#![allow(dead_code)]

use bpfconf_engines::Engine;
use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner has a parent")
        .to_path_buf()
}

/// True when CI demands the kernel engine (`BPFCONF_REQUIRE_KERNEL=1`).
pub fn kernel_required() -> bool {
    std::env::var("BPFCONF_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// The Linux engine if available; panics if it is required but unavailable; otherwise prints
/// why it is skipped and returns `None`.
pub fn linux_engine() -> Option<Box<dyn Engine>> {
    let e = bpfconf_engines::engine_by_name("linux").expect("linux engine is built in");
    match e.availability() {
        Ok(()) => Some(e),
        Err(reason) if kernel_required() => {
            panic!("BPFCONF_REQUIRE_KERNEL=1 but the linux engine is unavailable: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIP linux engine: {reason}");
            None
        }
    }
}
