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

/// SplitMix64: a deterministic, dependency-free generator for seeded random tests.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One element of `v`.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// xorshift64*: a second deterministic generator (the sequences some tests were seeded with).
pub struct XorShift64Star(pub u64);

impl XorShift64Star {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One element of `v`.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}
