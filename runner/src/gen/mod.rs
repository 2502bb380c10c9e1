//! Program generators for differential testing, built on `arbitrary`: they turn any byte
//! string into a program that a verifier or checker accepts at a high rate, so fuzzers
//! (cargo-fuzz targets) and seeded tests share them.

pub mod classic;
pub mod ebpf;
pub mod maps;

/// A small deterministic byte source (SplitMix64) for seeded, reproducible generation without
/// a fuzzer: `bytes(seed, n)` always returns the same bytes for the same seed.
pub fn seeded_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()
    };
    let mut out = vec![0u8; n];
    let mut chunks = out.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&next());
    }
    let tail = chunks.into_remainder();
    let len = tail.len();
    tail.copy_from_slice(&next()[..len]);
    out
}

/// The seeded bytes of a fuzzing unit of `body` body instructions (`bpfconf fuzz`).
///
/// The generators use ~12 bytes per body instruction plus ~150 for registers, packet and
/// context (at most 331 over 3,000 classic and eBPF units of 16-instruction bodies), so the
/// budget leaves several times that; a test keeps consumption under half of it. Generating
/// bytes costs time per unit, and [`seeded_bytes`] streams are prefix-stable, so a larger
/// budget would generate exactly the same units.
pub fn unit_bytes(seed: u64, body: usize) -> Vec<u8> {
    seeded_bytes(seed, 1024 + 32 * body)
}

#[cfg(test)]
mod tests {
    use bpfconf_spec::Dialect;

    /// Bytes the generators take from a unit's budget stay under half of it.
    #[test]
    fn unit_budget_has_headroom() {
        for body in [1, 16, 64] {
            let budget = super::unit_bytes(0, body).len();
            for seed in 0..300u64 {
                let bytes = super::unit_bytes(seed, body);
                let mut u = arbitrary::Unstructured::new(&bytes);
                super::ebpf::program(&mut u, body).unwrap();
                assert!(
                    bytes.len() - u.len() < budget / 2,
                    "eBPF body {body} seed {seed}"
                );
                for d in [Dialect::Linux, Dialect::Bsd, Dialect::Netbsd] {
                    let mut u = arbitrary::Unstructured::new(&bytes);
                    super::classic::unit(&mut u, d, body).unwrap();
                    assert!(
                        bytes.len() - u.len() < budget / 2,
                        "{d:?} body {body} seed {seed}"
                    );
                }
            }
        }
    }

    #[test]
    fn seeded_bytes_are_reproducible() {
        assert_eq!(super::seeded_bytes(7, 33), super::seeded_bytes(7, 33));
        assert_ne!(super::seeded_bytes(7, 32), super::seeded_bytes(8, 32));
        assert_eq!(super::seeded_bytes(1, 5).len(), 5);
        // SplitMix64's first output for seed 0, little-endian; a shorter request is a prefix.
        assert_eq!(
            super::seeded_bytes(0, 8),
            0xe220_a839_7b1d_cdafu64.to_le_bytes()
        );
        assert_eq!(super::seeded_bytes(0, 3), super::seeded_bytes(0, 8)[..3]);
    }
}
