//! The one small generator of the workspace (SplitMix64): the retry layer's jitter, and
//! the test server's (`weft-testkit`) seeded replies and faults. Deterministic for a seed, so a
//! seeded draw is the same on every run and platform.

use std::time::SystemTime;

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator whose state starts at `seed`.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded with `seed`, else from the process's random hasher keys and the clock.
    pub fn new(seed: Option<u64>) -> Rng {
        use std::hash::{BuildHasher, Hasher};
        Rng(seed.unwrap_or_else(|| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
            hasher.finish()
        }))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
