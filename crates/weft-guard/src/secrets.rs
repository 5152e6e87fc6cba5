//! The secret scrubber.
//!
//! A [`Secrets`] holds secret values (API keys, passwords, `user:password` pairs) and, for each,
//! every form it is masked in:
//!
//! - the raw value;
//! - JSON-escaped (as serde_json writes it, with `/` as `\/`, and ASCII-only with `\uXXXX`),
//!   also escaped twice and three times (a message quoting an escaped message);
//! - each run of 12 or more characters that no encoding changes (`A-Z a-z 0-9 - . _ ~`), when the
//!   value has other characters: whatever escaping a text applied around them, the distinctive
//!   part of the value is masked;
//! - URL-encoded (every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX`, upper and lower case hex,
//!   and with `+` for spaces as in forms);
//! - base64, standard and URL-safe alphabets, padded and not; and the part of the encoding that
//!   depends only on the value at each of the three byte alignments, so the value is found
//!   inside a longer base64 text too (`Basic base64(user:key)` hides `key` at some alignment);
//!   every base64 form only when 8 characters or longer, so short ones do not mask unrelated
//!   text;
//! - at the edges of a cut: a prefix (at least 8 characters) of any form above at the very end
//!   of a text or just before a cut mark (`…` or `...`, quotes and spaces between), and a suffix
//!   of one at the very start of a text or just after a cut mark. A message that quotes the start
//!   of a body, or the end of a log, may have cut a secret in two; the half it kept is masked.
//!
//! A secret shorter than [`MIN_SECRET_LEN`] characters cannot be told apart from ordinary text
//! (the secret `1` is in every number with a 1): only its raw value is masked, and only in free
//! text ([`Secrets::redact_str`]: error messages, log lines), never in data
//! ([`Secrets::redact`], [`Secrets::redact_data_str`]: values, outputs, state, events).
//! [`Secrets::has_short`] says whether there is one, so a caller can warn.
//!
//! Every form found is replaced by [`REDACTED`], the mask record files have always used.
//! Credentials of a URL ([`Secrets::add_url_credentials`]) add the password and `user:password`
//! (decoded and as written in the URL), so HTTP Basic auth's `base64(user:password)` is masked
//! too; a user name alone is not secret.

use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The shortest run of unchanged characters masked on its own.
const MIN_PLAIN_FRAGMENT: usize = 12;

/// The shortest base64 form (of a value, alone or at an alignment inside longer base64 text)
/// that is masked; shorter ones would mask unrelated text.
const MIN_FRAGMENT: usize = 8;

/// The shortest secret masked in every form and in data; a shorter one is masked raw, in free
/// text only.
pub const MIN_SECRET_LEN: usize = 8;

/// The shortest part of a secret masked at the edge of a cut.
const MIN_EDGE: usize = 8;

/// What a text cut short is marked with, next to the cut.
const CUT_MARKS: [&str; 2] = ["…", "..."];

/// Secret values and the forms they are masked in. See the [module docs](self).
///
/// Its `Debug` output shows how many secrets there are, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// The values as given: non-empty, distinct, sorted.
    values: Vec<String>,
    /// Every form masked, of the values at least [`MIN_SECRET_LEN`] long: non-empty, distinct,
    /// longest first (so a form containing another is replaced whole).
    patterns: Vec<String>,
    /// The values shorter than [`MIN_SECRET_LEN`], longest first: masked raw, in free text only.
    short: Vec<String>,
    /// Every run of [`MIN_EDGE`] bytes of every pattern: a text's edge that is none of these
    /// holds no part of a secret worth masking, so most edges are checked at once.
    windows: HashSet<[u8; MIN_EDGE]>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// These secret values (empty strings are ignored).
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.extend(values);
        secrets
    }

    /// Adds secret values (empty strings are ignored).
    pub fn extend<S: Into<String>>(&mut self, values: impl IntoIterator<Item = S>) {
        let before = self.values.len();
        self.values.extend(values.into_iter().map(Into::into).filter(|v| !v.is_empty()));
        if self.values.len() == before {
            return;
        }
        self.values.sort();
        self.values.dedup();
        let longest_first = |a: &String, b: &String| b.len().cmp(&a.len()).then_with(|| a.cmp(b));
        let (long, short): (Vec<&String>, Vec<&String>) = self.values.iter().partition(|v| v.chars().count() >= MIN_SECRET_LEN);
        let mut patterns: Vec<String> = long.into_iter().flat_map(|v| forms(v)).collect();
        patterns.sort_by(longest_first);
        patterns.dedup();
        self.windows =
            patterns.iter().flat_map(|p| p.as_bytes().windows(MIN_EDGE).filter_map(|w| <[u8; MIN_EDGE]>::try_from(w).ok())).collect();
        self.patterns = patterns;
        let mut short: Vec<String> = short.into_iter().cloned().collect();
        short.sort_by(longest_first);
        self.short = short;
    }

    /// Adds the secrets of another registry.
    pub fn merge(&mut self, other: &Secrets) {
        self.extend(other.values.iter().cloned());
    }

    /// Adds the credentials written in `url` (`scheme://user:password@host/...`): the password
    /// and `user:password`, decoded and as written. A URL without a password adds nothing.
    pub fn add_url_credentials(&mut self, url: &str) {
        if let Some(credentials) = crate::egress::credentials(url) {
            self.extend(credentials.secret_values());
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many secret values there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether one of the values is shorter than [`MIN_SECRET_LEN`] (masked raw, in free text
    /// only: it cannot be reliably scrubbed).
    pub fn has_short(&self) -> bool {
        !self.short.is_empty()
    }

    /// Whether `text` holds any form of any secret (for a short one: its raw value).
    pub fn leaks(&self, text: &str) -> bool {
        self.patterns.iter().chain(&self.short).any(|p| text.contains(p.as_str()))
    }

    /// Free text (an error message, a log line) with every form of every secret replaced by
    /// [`REDACTED`], a part of one at the edge of a cut too, and the raw value of a short one.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = self.redact_data_str(text);
        for short in &self.short {
            if text.contains(short.as_str()) {
                text = Cow::Owned(text.replace(short.as_str(), REDACTED));
            }
        }
        text
    }

    /// Data (a value, an output) with every form of every secret at least [`MIN_SECRET_LEN`]
    /// long replaced by [`REDACTED`], a part of one at the edge of a cut too. Short secrets are
    /// left alone: masking them would garble the data.
    pub fn redact_data_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for pattern in &self.patterns {
            if text.contains(pattern.as_str()) {
                text = Cow::Owned(text.replace(pattern.as_str(), REDACTED));
            }
        }
        match self.mask_edges(&text) {
            Some(masked) => Cow::Owned(masked),
            None => text,
        }
    }

    /// `text` with the part of a secret at each edge of a cut masked, or `None` when there is
    /// none.
    fn mask_edges(&self, text: &str) -> Option<String> {
        if self.patterns.is_empty() || text.len() < MIN_EDGE {
            return None;
        }
        let skip = |c: char| c == '"' || c == '\'' || c.is_whitespace();
        // Where a kept text ends (a secret's prefix may end there) and where one starts (a
        // suffix may start there).
        let mut ends = vec![text.len()];
        let mut starts = vec![0];
        for mark in CUT_MARKS {
            for (at, _) in text.match_indices(mark) {
                ends.push(text[..at].trim_end_matches(skip).len());
                let after = &text[at + mark.len()..];
                starts.push(text.len() - after.trim_start_matches(skip).len());
            }
        }
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let known = |bytes: &[u8]| <[u8; MIN_EDGE]>::try_from(bytes).is_ok_and(|w| self.windows.contains(&w));
        for &end in &ends {
            let before = &text[..end];
            if end < MIN_EDGE || !known(&before.as_bytes()[end - MIN_EDGE..]) {
                continue;
            }
            let longest = self
                .patterns
                .iter()
                .filter_map(|p| (MIN_EDGE..p.len()).rev().find(|&k| p.is_char_boundary(k) && before.ends_with(&p[..k])))
                .max();
            if let Some(k) = longest {
                ranges.push((end - k, end));
            }
        }
        for &start in &starts {
            let after = &text[start..];
            if after.len() < MIN_EDGE || !known(&after.as_bytes()[..MIN_EDGE]) {
                continue;
            }
            let longest = self
                .patterns
                .iter()
                .filter_map(|p| {
                    (MIN_EDGE..p.len()).rev().find(|&k| p.is_char_boundary(p.len() - k) && after.starts_with(&p[p.len() - k..]))
                })
                .max();
            if let Some(k) = longest {
                ranges.push((start, start + k));
            }
        }
        if ranges.is_empty() {
            return None;
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut done = 0;
        for (from, to) in ranges {
            if to <= done {
                continue;
            }
            out.push_str(&text[done..from.max(done)]);
            if from >= done {
                out.push_str(REDACTED);
            }
            done = to;
        }
        out.push_str(&text[done..]);
        Some(out)
    }

    /// Replaces every form of every secret at least [`MIN_SECRET_LEN`] long in every string of
    /// `value`, object keys included ([`Secrets::redact_data_str`]: data, so short secrets are
    /// left alone).
    pub fn redact(&self, value: &mut Json) {
        if self.patterns.is_empty() {
            return;
        }
        match value {
            Json::String(s) => {
                if let Cow::Owned(redacted) = self.redact_data_str(s) {
                    *s = redacted;
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|item| self.redact(item)),
            Json::Object(members) => {
                if members.keys().any(|k| matches!(self.redact_data_str(k), Cow::Owned(_))) {
                    let old = std::mem::take(members);
                    *members = old.into_iter().map(|(k, v)| (self.redact_data_str(&k).into_owned(), v)).collect();
                }
                members.values_mut().for_each(|v| self.redact(v));
            }
            Json::Null | Json::Bool(_) | Json::Number(_) => {}
        }
    }

    /// `value` serialized, with every secret redacted ([`Secrets::redact`] on a copy).
    pub fn redacted<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<Json, serde_json::Error> {
        let mut json = serde_json::to_value(value)?;
        self.redact(&mut json);
        Ok(json)
    }
}

/// Every form of `value` that is masked.
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    // Runs no encoding changes.
    let unchanged = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    out.extend(value.split(|c| !unchanged(c)).filter(|run| run.len() >= MIN_PLAIN_FRAGMENT && run.len() < value.len()).map(str::to_owned));
    // JSON-escaped, once to three times.
    let mut json = value.to_owned();
    for level in 0..3 {
        let quoted = Json::String(json).to_string();
        json = quoted[1..quoted.len() - 1].to_owned();
        if level == 0 {
            out.push(json.replace('/', "\\/"));
            out.push(ascii_json(&json));
        }
        out.push(json.clone());
    }
    // URL-encoded.
    out.push(percent_encode(value, false, b"0123456789ABCDEF"));
    out.push(percent_encode(value, false, b"0123456789abcdef"));
    out.push(percent_encode(value, true, b"0123456789ABCDEF"));
    // base64.
    let bytes = value.as_bytes();
    for alphabet in [STANDARD, URL_SAFE] {
        let full = base64(bytes, alphabet);
        let mut encoded = vec![full.trim_end_matches('=').to_owned(), full];
        encoded.extend((0..3).map(|offset| base64_fragment(bytes, offset, alphabet)));
        out.extend(encoded.into_iter().filter(|form| form.len() >= MIN_FRAGMENT));
    }
    out.retain(|form| !form.is_empty());
    out
}

/// serde_json's escaping with every non-ASCII character as `\uXXXX` (UTF-16, as JSON writes
/// them when asked for ASCII).
fn ascii_json(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Every byte outside the unreserved set as `%XX`; a space as `+` when `plus`.
fn percent_encode(value: &str, plus: bool, hex: &[u8; 16]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            b' ' if plus => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(hex[usize::from(byte >> 4)]));
                out.push(char::from(hex[usize::from(byte & 0xf)]));
            }
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64 with the standard alphabet and padding, as HTTP Basic auth uses.
pub fn base64_standard(bytes: &[u8]) -> String {
    base64(bytes, STANDARD)
}

/// The characters of the base64 encoding of `offset` bytes then `value` that depend on
/// `value`'s bits only: what any base64 text holding `value` at that alignment contains.
fn base64_fragment(value: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(value);
    let encoded = base64(&bytes, alphabet);
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + value.len())) / 6;
    encoded.get(first..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, output) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")] {
            assert_eq!(base64_standard(input.as_bytes()), output);
        }
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8=");
    }

    #[test]
    fn a_key_inside_longer_base64_is_found_at_every_alignment() {
        let key = "sk-test-0123456789abcdef";
        let secrets = Secrets::new([key]);
        for prefix in ["", "u", "us", "user:", "a-longer-user:"] {
            for suffix in ["", "x", ":tail"] {
                let encoded = base64_standard(format!("{prefix}{key}{suffix}").as_bytes());
                assert!(secrets.leaks(&encoded), "{prefix}|{suffix}: {encoded}");
                assert!(!secrets.redact_str(&format!("Basic {encoded}")).contains(&encoded));
            }
        }
    }

    #[test]
    fn every_encoding_is_redacted() {
        let key = "sk-a/b+c d\"é";
        let secrets = Secrets::new([key]);
        let forms = [
            key.to_owned(),
            "sk-a/b+c d\\\"é".to_owned(),
            "sk-a\\/b+c d\\\"é".to_owned(),
            "sk-a/b+c d\\\"\\u00e9".to_owned(),
            "sk-a%2Fb%2Bc%20d%22%C3%A9".to_owned(),
            "sk-a%2fb%2bc%20d%22%c3%a9".to_owned(),
            "sk-a%2Fb%2Bc+d%22%C3%A9".to_owned(),
            base64_standard(key.as_bytes()),
            base64(key.as_bytes(), URL_SAFE).trim_end_matches('=').to_owned(),
        ];
        for form in forms {
            let text = format!("echo: <{form}>");
            assert_eq!(secrets.redact_str(&text), format!("echo: <{REDACTED}>"), "{form}");
        }
    }

    #[test]
    fn nested_escapes_leave_no_distinctive_part() {
        let key = "sk-live/Secret+Key\"Q=~0123456789abcdef";
        let secrets = Secrets::new([key]);
        let twice = format!("{:?}", format!("{key:?}"));
        let redacted = secrets.redact_str(&twice);
        assert!(!redacted.contains("0123456789abcdef") && !redacted.contains("Secret+Key"), "{redacted}");
    }

    #[test]
    fn json_values_are_redacted_keys_included() {
        let secrets = Secrets::new(["hunter22", ""]);
        assert_eq!(format!("{secrets:?}"), "Secrets(1 values)");
        let mut value = serde_json::json!({"a": ["x hunter22 y", {"hunter22": 1}], "n": 3});
        secrets.redact(&mut value);
        assert_eq!(value, serde_json::json!({"a": ["x [REDACTED] y", {"[REDACTED]": 1}], "n": 3}));
    }

    #[test]
    fn url_credentials_mask_the_password_and_basic_auth_not_the_user() {
        let mut secrets = Secrets::default();
        secrets.add_url_credentials("http://alice:p%40ss-word-99@host:8000/v1");
        assert!(secrets.leaks("p@ss-word-99"));
        assert!(secrets.leaks("p%40ss-word-99"));
        assert!(secrets.leaks(&base64_standard(b"alice:p@ss-word-99")));
        assert!(!secrets.leaks("alice"));
        let mut none = Secrets::default();
        none.add_url_credentials("http://host/v1");
        none.add_url_credentials("not a url");
        assert!(none.is_empty());
    }

    #[test]
    fn short_secrets_do_not_mask_unrelated_base64() {
        let secrets = Secrets::new(["pw"]);
        assert_eq!(secrets.redact_str("SGVsbG8gd29ybGQ="), "SGVsbG8gd29ybGQ=");
    }

    /// A 60-character key of only unreserved characters: no run of it is a separate fragment.
    const KEY60: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop";

    /// Every run of 8 characters of `secret` that `text` holds.
    fn pieces(text: &str, secret: &str) -> Vec<String> {
        secret.as_bytes().windows(8).map(|w| String::from_utf8_lossy(w).into_owned()).filter(|w| text.contains(w.as_str())).collect()
    }

    #[test]
    fn a_secret_cut_at_the_edge_of_a_text_is_masked_whatever_half_is_kept() {
        assert_eq!(KEY60.len(), 60);
        let secrets = Secrets::new([KEY60]);
        for cut in [8, 9, 30, 52, 59] {
            let (head, tail) = KEY60.split_at(cut);
            let heads = [
                // The start of a body, cut in the key, as is and inside a longer message.
                format!("the body is not JSON: Authorization: Bearer {head}"),
                format!("the body is not JSON: Authorization: Bearer {head}…, after 1 attempt"),
                format!("value {:?}... (900 characters in all)", format!("x {head}")),
            ];
            let tails = [
                // The end of a log, cut in the key.
                format!("{tail} was rejected"),
                format!("; stderr ends with:\n  …{tail} was rejected\n  done"),
                format!("... {tail}"),
            ];
            let texts = heads.into_iter().filter(|_| head.len() >= 8).chain(tails.into_iter().filter(|_| tail.len() >= 8));
            for text in texts {
                let redacted = secrets.redact_str(&text);
                let left = pieces(&redacted, KEY60);
                assert!(left.is_empty(), "cut {cut}: {left:?} left in {redacted}");
                assert!(redacted.contains(REDACTED), "cut {cut}: {redacted}");
                assert_eq!(secrets.redact_data_str(&text), redacted, "data is masked at its edges too");
            }
        }
        // Not at an edge, or shorter than 8 characters: left alone.
        let inner = format!("x {} y", &KEY60[..20]);
        assert_eq!(secrets.redact_str(&inner), inner);
        let seven = format!("key {}", &KEY60[..7]);
        assert_eq!(secrets.redact_str(&seven), seven);
        assert_eq!(secrets.redact_str("sk-proj-"), REDACTED, "a text that is the start of a key");
    }

    #[test]
    fn short_secrets_are_masked_raw_in_free_text_only() {
        let secrets = Secrets::new(["1", "x", "pw-12345678"]);
        assert!(secrets.has_short());
        assert!(!Secrets::new(["pw-12345678"]).has_short());
        assert_eq!(secrets.redact_str("status 1, after 1 attempt"), "status [REDACTED], after [REDACTED] attempt");
        assert_eq!(secrets.redact_data_str("item 1 of 10"), "item 1 of 10");
        let mut value = serde_json::json!({"1": ["x", "frame 1", "eA", "eA=="], "n": 1});
        let before = value.clone();
        secrets.redact(&mut value);
        assert_eq!(value, before, "data keeps short secrets");
        // No encoded form of a short secret: `x` is `eA` in base64, found in many texts.
        assert_eq!(secrets.redact_str("eA eA== eA%3D%3D"), "eA eA== eA%3D%3D");
        // The long one is masked everywhere still.
        let mut value = serde_json::json!(["a pw-12345678 b"]);
        secrets.redact(&mut value);
        assert_eq!(value, serde_json::json!(["a [REDACTED] b"]));
    }

    #[test]
    fn base64_forms_shorter_than_8_are_not_masked() {
        // 8 characters: every base64 form is 11 characters or more.
        let secrets = Secrets::new(["abcdefgh"]);
        assert!(secrets.patterns.iter().all(|p| p.len() >= MIN_FRAGMENT), "{:?}", secrets.patterns);
        assert!(secrets.leaks(&base64_standard(b"abcdefgh")));
        // A short password of a URL: only `user:password` (long enough) is masked in data.
        let mut url = Secrets::default();
        url.add_url_credentials("http://alice:pw@host/v1");
        assert!(url.has_short());
        assert_eq!(url.redact_data_str("pw cGw"), "pw cGw");
        assert_eq!(url.redact_data_str(&base64_standard(b"alice:pw")), REDACTED);
    }
}
