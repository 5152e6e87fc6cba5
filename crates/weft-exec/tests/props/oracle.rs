//! What the test's model answers, how long it takes and when it fails: deterministic functions
//! of the prompt (and of a case's seeds), used by the model the engine calls and by the
//! interpreter that predicts the run.
//!
//! Every prompt the generated flows send starts `<kind>|<node number>|<ctx>|`, where `ctx` names
//! the map items the call is under (`r/m3.0/m7.2`: item 0 of map 3, then item 2 of map 7), so
//! the model can tell which fan-out instances a call belongs to.

use std::time::Duration;

/// The part of an LLM node's prompt that WayFlow appends for structured output.
pub const STRUCTURED_SUFFIX: &str = "\n\n\n## Additional instructions";

/// FNV-1a over the text, then a SplitMix64 finish, keyed by `seed`.
pub fn hash(seed: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The fields every generated prompt starts with.
pub struct Head<'a> {
    /// `p` (a plain LLM node), `route` (a branch's router) or `list` (a map's list).
    pub kind: &'a str,
    /// The step number.
    pub id: u32,
    /// The map items the call is under.
    pub ctx: &'a str,
}

/// Reads a prompt's head; `None` for a prompt the generated flows never send.
pub fn head(prompt: &str) -> Option<Head<'_>> {
    let mut parts = prompt.splitn(4, '|');
    let kind = parts.next()?;
    let id = parts.next()?.parse().ok()?;
    let ctx = parts.next()?;
    Some(Head { kind, id, ctx })
}

/// The branch label a router answers: `a`, `b` or `c` (`c` is in no mapping: the default arm).
pub fn route(prompt: &str) -> &'static str {
    ["a", "b", "c"][(hash(1, prompt) % 3) as usize]
}

/// The items a list node answers: 0 to 3 of them, each naming its map and index under the
/// caller's ctx.
pub fn list(prompt: &str) -> Vec<String> {
    let Some(h) = head(prompt) else { return Vec::new() };
    let n = match hash(2, prompt) % 8 {
        0 => 0,
        1 | 2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    (0..n).map(|k| format!("{}/m{}.{k}", h.ctx, h.id)).collect()
}

/// The text the model answers to a (generated part of a) prompt.
pub fn answer(prompt: &str) -> String {
    match head(prompt).map(|h| h.kind) {
        Some("route") => route(prompt).to_owned(),
        Some("list") => py_dumps(&list(prompt)),
        _ => format!("x{:08x}", hash(3, prompt) & 0xffff_ffff),
    }
}

/// The user's answer to an input request.
pub fn user_answer(message: &str) -> String {
    format!("u{:06x}", hash(4, message) & 0x00ff_ffff)
}

/// How long the model takes for this prompt in a case with this seed: 0 to 4 ms, 0 often, so
/// completions come back in every order and several at the same instant.
pub fn latency(seed: u64, prompt: &str) -> Duration {
    let h = hash(seed, prompt);
    Duration::from_millis(if h.is_multiple_of(3) { 0 } else { h % 5 })
}

/// A case's failure set: prompts whose hash under `seed` is divisible by `modulus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// The hash's key.
    pub seed: u64,
    /// One prompt in `modulus`, on average, fails.
    pub modulus: u64,
}

impl Failures {
    /// Whether the model refuses this prompt.
    pub fn fails(self, prompt: &str) -> bool {
        self.modulus > 0 && hash(self.seed, prompt).is_multiple_of(self.modulus)
    }
}

/// A list of strings as Python's `json.dumps` prints it (separators `", "`), which is how the
/// engine casts a list into a string input (FORMAT.md 8.1).
pub fn py_dumps(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let mut q = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        })
        .collect();
    format!("[{}]", quoted.join(", "))
}
