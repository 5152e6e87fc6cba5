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
//!   those fragments only when 8 characters or longer, so short ones do not mask unrelated text.
//!
//! Every form found is replaced by [`REDACTED`], the mask record files have always used.
//! Credentials of a URL ([`Secrets::add_url_credentials`]) add the password and `user:password`
//! (decoded and as written in the URL), so HTTP Basic auth's `base64(user:password)` is masked
//! too; a user name alone is not secret.

use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The shortest run of unchanged characters masked on its own.
const MIN_PLAIN_FRAGMENT: usize = 12;

/// The shortest base64 fragment (of a value at an alignment inside longer base64 text) that is
/// masked; shorter ones would mask unrelated text.
const MIN_FRAGMENT: usize = 8;

/// Secret values and the forms they are masked in. See the [module docs](self).
///
/// Its `Debug` output shows how many secrets there are, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// The values as given: non-empty, distinct, sorted.
    values: Vec<String>,
    /// Every form masked: non-empty, distinct, longest first (so a form containing another is
    /// replaced whole).
    patterns: Vec<String>,
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
        let mut patterns: Vec<String> = self.values.iter().flat_map(|v| forms(v)).collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        self.patterns = patterns;
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

    /// Whether `text` holds any form of any secret.
    pub fn leaks(&self, text: &str) -> bool {
        self.patterns.iter().any(|p| text.contains(p.as_str()))
    }

    /// `text` with every form of every secret replaced by [`REDACTED`].
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for pattern in &self.patterns {
            if text.contains(pattern.as_str()) {
                text = Cow::Owned(text.replace(pattern.as_str(), REDACTED));
            }
        }
        text
    }

    /// Replaces every form of every secret in every string of `value`, object keys included.
    pub fn redact(&self, value: &mut Json) {
        if self.patterns.is_empty() {
            return;
        }
        match value {
            Json::String(s) => {
                if let Cow::Owned(redacted) = self.redact_str(s) {
                    *s = redacted;
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|item| self.redact(item)),
            Json::Object(members) => {
                if members.keys().any(|k| matches!(self.redact_str(k), Cow::Owned(_))) {
                    let old = std::mem::take(members);
                    *members = old.into_iter().map(|(k, v)| (self.redact_str(&k).into_owned(), v)).collect();
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
        out.push(full.trim_end_matches('=').to_owned());
        out.push(full);
        for offset in 0..3 {
            let fragment = base64_fragment(bytes, offset, alphabet);
            if fragment.len() >= MIN_FRAGMENT {
                out.push(fragment);
            }
        }
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
        let secrets = Secrets::new(["hunter2", ""]);
        assert_eq!(format!("{secrets:?}"), "Secrets(1 values)");
        let mut value = serde_json::json!({"a": ["x hunter2 y", {"hunter2": 1}], "n": 3});
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
}
