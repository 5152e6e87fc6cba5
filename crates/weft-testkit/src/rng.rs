//! Draws of the test server: replies and faults drawn from the seed and the request index, so
//! the same request gets the same draw on every run. The generator is `weft_llm::rng::Rng`.

pub(crate) use weft_llm::rng::Rng;

/// The generator of request `index` under `seed`.
pub(crate) fn for_request(seed: u64, index: u64) -> Rng {
    stream(seed, index, 0)
}

/// The generator of request `index` under `seed`; `stream` separates independent draws.
pub(crate) fn stream(seed: u64, index: u64, stream: u64) -> Rng {
    let mut rng = Rng::seeded(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
    rng.next_u64();
    rng
}
