//! A document's `url_allow_list` (ApiNode, RemoteTool; AGENTS.md 7.2): the URLs a node's
//! rendered request URL must match before anything is sent.
//!
//! WayFlow's rules, with two of its defects fixed:
//!
//! - Every rendered URL is normalized first, with or without an allow list, and one that cannot
//!   be is refused ([`NormalizedUrl::parse`]): a NUL, `%00` or a `%` not followed by two hex
//!   digits, a control or format character (WayFlow strips those before its check but sends the
//!   URL as written; Weft refuses it), a scheme other than `http` or `https`, a host that is not
//!   an IP literal and not made of `a-z`, `0-9`, `-` and `.` (so underscores are refused), or a
//!   host with `..`. The path is percent-decoded, runs of `/` collapsed and `.`/`..` segments
//!   resolved, so an encoded `%2F..%2F` cannot climb out of an allowed path.
//! - An entry allows a URL when the scheme, the host, the **effective port** (explicit or the
//!   scheme's default: WayFlow compares `host:None` with `host`, so `https://h:443/x` does not
//!   match `https://h`) and the credentials are the same, and the URL's path starts with the
//!   entry's path **segment by segment** (`/v1` allows `/v1` and `/v1/x`, not `/v10`; WayFlow
//!   compares strings). Query, parameters and fragment are ignored; paths compare
//!   case-sensitively.
//! - Entries are checked when the document is loaded ([`AllowEntry::parse`]): no wildcards, a
//!   scheme and a host, `http` or `https`.
//!
//! The URL is parsed as the HTTP client parses it (the WHATWG standard, the `url` crate
//! reqwest uses), so no parser difference lets a URL name an allowed host here and connect to
//! another (`https://evil.example\@allowed.example/` is a URL of `allowed.example` for WayFlow's
//! `urlparse`, but the client connects to `evil.example`).

use std::fmt;

use url::{Host, Url};

/// A URL as the allow list compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `user:password`, percent-decoded; empty without credentials.
    pub userinfo: String,
    /// The host: a lowercase name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path, percent-decoded, with `//` collapsed and dot segments resolved; `/` at least.
    pub path: String,
}

impl NormalizedUrl {
    /// The normalized form of `url`, or why it has none.
    pub fn parse(url: &str) -> Result<NormalizedUrl, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("it is empty".to_owned());
        }
        if url.contains('\0') || url.contains("%00") {
            return Err("it holds a NUL character (or %00)".to_owned());
        }
        if let Some(c) = url.chars().find(|&c| c.is_control() || is_format_char(c)) {
            return Err(format!("it holds the control or format character U+{:04X}", u32::from(c)));
        }
        let bytes = url.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) {
                return Err("it holds a `%` not followed by two hexadecimal digits".to_owned());
            }
        }
        let parsed = Url::parse(url).map_err(|e| format!("it is not a valid URL ({e})"))?;
        let scheme = parsed.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(format!("its scheme is {scheme:?}, not http or https"));
        }
        let host = match parsed.host() {
            Some(Host::Domain(name)) => {
                let name = name.to_ascii_lowercase();
                if name.contains("..") {
                    return Err(format!("its host {name:?} holds `..`"));
                }
                if !valid_host_name(&name) {
                    return Err(format!(
                        "its host {name:?} is not a host name of letters, digits, `-` and `.` (underscores and other characters are refused, as WayFlow refuses them)"
                    ));
                }
                name
            }
            Some(Host::Ipv4(address)) => address.to_string(),
            Some(Host::Ipv6(address)) => format!("[{address}]"),
            None => return Err("it has no host".to_owned()),
        };
        let port = parsed.port_or_known_default().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let userinfo = match (parsed.username(), parsed.password()) {
            ("", None) => String::new(),
            (user, None) => decode(user),
            (user, Some(password)) => format!("{}:{}", decode(user), decode(password)),
        };
        Ok(NormalizedUrl { scheme, userinfo, host, port, path: normalize_path(parsed.path()) })
    }

    /// Whether the path starts with `prefix` segment by segment: equal, or `prefix` followed by
    /// `/` (a prefix ending with `/` allows what is below it, not itself without the slash).
    fn path_within(&self, prefix: &str) -> bool {
        if prefix == "/" || self.path == prefix {
            return true;
        }
        match self.path.strip_prefix(prefix) {
            Some(rest) => prefix.ends_with('/') || rest.starts_with('/'),
            None => false,
        }
    }
}

/// One entry of a `url_allow_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// The entry as written.
    pub text: String,
    url: NormalizedUrl,
}

impl AllowEntry {
    /// An entry, or what is wrong with it (for the loader's diagnostic).
    pub fn parse(text: &str) -> Result<AllowEntry, String> {
        if text.contains('*') {
            return Err("wildcards are not supported: list each allowed URL, such as \"https://api.example.com/v1\"".to_owned());
        }
        if !text.contains("://") {
            return Err("it needs a scheme and a host, such as \"https://api.example.com/v1\"".to_owned());
        }
        let url = NormalizedUrl::parse(text)?;
        Ok(AllowEntry { text: text.to_owned(), url })
    }

    /// Whether this entry allows `url`.
    pub fn allows(&self, url: &NormalizedUrl) -> bool {
        let e = &self.url;
        e.scheme == url.scheme && e.host == url.host && e.port == url.port && e.userinfo == url.userinfo && url.path_within(&e.path)
    }
}

/// A `url_allow_list`: a URL is allowed when any entry allows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlAllowList {
    entries: Vec<AllowEntry>,
}

impl UrlAllowList {
    /// The list of these entries.
    pub fn new(entries: Vec<AllowEntry>) -> UrlAllowList {
        UrlAllowList { entries }
    }

    /// The entries as written.
    pub fn texts(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.text.as_str()).collect()
    }

    /// Whether any entry allows `url`.
    pub fn allows(&self, url: &NormalizedUrl) -> bool {
        self.entries.iter().any(|e| e.allows(url))
    }
}

/// Why a rendered URL was refused before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRefused {
    /// It cannot be normalized.
    Malformed {
        /// Why.
        why: String,
    },
    /// No entry of the allow list allows it.
    NotAllowed {
        /// The entries, as written.
        allowed: Vec<String>,
    },
}

impl fmt::Display for UrlRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlRefused::Malformed { why } => write!(f, "the URL cannot be checked: {why}"),
            UrlRefused::NotAllowed { allowed } => write!(
                f,
                "the URL is not in the node's url_allow_list ({}): an entry allows a URL with the same scheme, host, port and credentials whose path starts with the entry's path, whole segments only",
                allowed.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Checks a rendered URL: normalized, then matched against `allow_list` when there is one.
pub fn check_url(url: &str, allow_list: Option<&UrlAllowList>) -> Result<NormalizedUrl, UrlRefused> {
    let normalized = NormalizedUrl::parse(url).map_err(|why| UrlRefused::Malformed { why })?;
    match allow_list {
        Some(list) if !list.allows(&normalized) => {
            Err(UrlRefused::NotAllowed { allowed: list.texts().into_iter().map(str::to_owned).collect() })
        }
        _ => Ok(normalized),
    }
}

/// WayFlow's host rule: `^[a-z0-9]([a-z0-9\-\.]*[a-z0-9])?$`.
fn valid_host_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-' || *b == b'.')
}

/// Unicode format characters (category Cf) that can hide in a URL: soft hyphen, bidirectional
/// controls, zero-width characters, the byte order mark, tags.
fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Percent-decodes `text` (invalid UTF-8 replaced).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// WayFlow's path normalization: decoded, `//` collapsed, `.` and `..` resolved, a trailing
/// slash kept.
fn normalize_path(path: &str) -> String {
    let decoded = decode(if path.is_empty() { "/" } else { path });
    let trailing = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> UrlAllowList {
        UrlAllowList::new(entries.iter().map(|e| AllowEntry::parse(e).expect("entry")).collect())
    }

    fn allowed(entries: &[&str], url: &str) -> bool {
        check_url(url, Some(&list(entries))).is_ok()
    }

    #[test]
    fn paths_match_whole_segments() {
        assert!(allowed(&["https://api.example.com/v1"], "https://api.example.com/v1"));
        assert!(allowed(&["https://api.example.com/v1"], "https://api.example.com/v1/orders?x=1#f"));
        assert!(!allowed(&["https://api.example.com/v1"], "https://api.example.com/v10"));
        assert!(!allowed(&["https://api.example.com/v1"], "https://api.example.com/v10/x"));
        assert!(allowed(&["https://api.example.com/orders/"], "https://api.example.com/orders/1"));
        assert!(!allowed(&["https://api.example.com/orders/"], "https://api.example.com/orders"));
        assert!(allowed(&["https://api.example.com"], "https://api.example.com/anything/at/all"));
        assert!(!allowed(&["https://api.example.com/V1"], "https://api.example.com/v1"));
    }

    #[test]
    fn ports_compare_by_their_effective_value() {
        assert!(allowed(&["https://h.example"], "https://h.example:443/x"));
        assert!(allowed(&["https://h.example:443"], "https://h.example/x"));
        assert!(!allowed(&["https://h.example"], "https://h.example:8443/x"));
        assert!(allowed(&["http://127.0.0.1:8080/api"], "http://127.0.0.1:8080/api/x"));
        assert!(!allowed(&["http://127.0.0.1:8080/api"], "http://127.0.0.1:8081/api/x"));
        assert!(!allowed(&["https://h.example"], "http://h.example/x"));
    }

    #[test]
    fn hosts_credentials_and_encoded_climbs() {
        assert!(allowed(&["https://H.Example/"], "https://h.EXAMPLE/x"));
        assert!(!allowed(&["https://h.example"], "https://other.example"));
        assert!(!allowed(&["https://h.example"], "https://u:p@h.example/x"));
        assert!(allowed(&["https://u:p@h.example"], "https://u:p@h.example/x"));
        // An encoded slash decodes into a separator, and `..` climbs out of the allowed path.
        assert!(!allowed(&["https://h.example/api/"], "https://h.example/api/..%2Fadmin"));
        assert!(!allowed(&["https://h.example/api/"], "https://h.example/api/%2e%2e/admin"));
        assert!(allowed(&["https://h.example/api/"], "https://h.example//api//x"));
        // The client's parse decides the host: a backslash ends the authority.
        assert!(!allowed(&["https://allowed.example"], "https://evil.example\\@allowed.example/"));
        assert!(allowed(&["https://allowed.example"], "https://allowed.example\\@evil.example/"));
    }

    #[test]
    fn malformed_urls_are_refused_with_or_without_a_list() {
        for bad in [
            "https://h.example/a%00b",
            "https://h.example/a%zz",
            "https://h.example/a%",
            "https://my_host.example/x",
            "ftp://h.example/x",
            "https://h.example/\u{200B}x",
            "not a url",
            "",
        ] {
            assert!(matches!(check_url(bad, None), Err(UrlRefused::Malformed { .. })), "{bad:?}");
        }
        assert!(check_url("https://h.example/a%20b", None).is_ok());
        assert!(check_url("http://[::1]:9/x", None).is_ok());
    }

    #[test]
    fn entries_need_a_scheme_and_a_host_and_no_wildcard() {
        for bad in ["https://*.example.com", "http://", "api.example.com", "ftp://h.example"] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad}");
        }
        let refused = check_url("https://b.example/x", Some(&list(&["https://a.example/v1"]))).unwrap_err().to_string();
        assert!(refused.contains("url_allow_list (\"https://a.example/v1\")"), "{refused}");
    }
}
