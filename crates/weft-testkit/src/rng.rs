//! A small seeded generator (SplitMix64): replies and faults drawn from the seed and the
//! request index, so the same request gets the same draw on every run.

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The generator of request `index` under `seed`; `stream` separates independent draws.
    pub(crate) fn for_request(seed: u64, index: u64) -> Rng {
        Rng::stream(seed, index, 0)
    }

    pub(crate) fn stream(seed: u64, index: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
