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
    let mut out = vec![0u8; n];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
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
