//! Helpers shared by the engines' integration tests: a lock serialising tests that share a
//! kernel resource, and the "required in CI, else skip with the reason" rule for engines that
//! may be unavailable on a developer's machine.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the tests of one test binary (a panicking test does not poison the others).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when the environment variable `var` is `1` (CI sets `BPFCONF_REQUIRE_KERNEL`,
/// `BPFCONF_REQUIRE_PCAP`…): the engine's absence is then a failure, not a skip.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// `Some(engine)` when `availability` is `Ok`; otherwise panics if `var` requires the engine,
/// else prints why `what` is skipped and returns `None`.
pub fn available<E>(
    engine: E,
    availability: Result<(), String>,
    var: &str,
    what: &str,
) -> Option<E> {
    match availability {
        Ok(()) => Some(engine),
        Err(why) if required(var) => panic!("{var}=1 but {what} is unavailable: {why}"),
        Err(why) => {
            eprintln!("skipped: {what} unavailable: {why}");
            None
        }
    }
}
