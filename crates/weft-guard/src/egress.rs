//! Where a run may connect: the `--allow-host` allow list ([`EgressPolicy`]), and where the
//! `OPENAI_API_KEY` fallback may be sent ([`env_key_allowed`]).
//!
//! Every decision is made on the URL as the HTTP client parses it (the WHATWG URL standard, the
//! `url` crate that reqwest uses), so no parser difference lets a URL name one host here and
//! connect to another: `http://api.openai.com@evil.com` is `evil.com`, `http://evil.com\@x` is
//! `evil.com`, `http://0x7f.1` is `127.0.0.1`. Hosts are matched as names (lowercased, one
//! trailing dot dropped), not by the address they resolve to.
//!
//! A pattern is an exact host (`api.example.com`, `10.0.0.7`, `[::1]`) or `*.` and a domain
//! (`*.example.com`: any name below it, at any depth, but not `example.com` itself), each with
//! an optional `:port` (without one, any port).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use url::{Host, Url};

/// Where a request goes: the URL's scheme, host and port as the HTTP client sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// The host: a lowercase name without a trailing dot, or an IP address (IPv6 without
    /// brackets).
    pub host: String,
    /// The address when the host is an IP literal.
    pub ip: Option<IpAddr>,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// Whether the name was written with a trailing dot (`localhost.`): removed from `host`
    /// for matching, but such a name may be sent to DNS by the system's resolver.
    pub trailing_dot: bool,
}

impl Target {
    /// The target of `url`, or why it has none (not a URL, not HTTP, no host).
    pub fn parse(url: &str) -> Result<Target, String> {
        let parsed = Url::parse(url.trim()).map_err(|e| format!("{:?} is not a valid URL ({e})", without_credentials(url)))?;
        let scheme = parsed.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{:?} is not an http:// or https:// URL", without_credentials(url)));
        }
        let (host, ip, trailing_dot) = match parsed.host() {
            Some(Host::Domain(name)) => {
                let name = name.to_ascii_lowercase();
                let trailing_dot = name.ends_with('.');
                (name.strip_suffix('.').unwrap_or(&name).to_owned(), None, trailing_dot)
            }
            Some(Host::Ipv4(address)) => (address.to_string(), Some(IpAddr::V4(address)), false),
            Some(Host::Ipv6(address)) => (address.to_string(), Some(IpAddr::V6(address)), false),
            None => return Err(format!("{:?} has no host", without_credentials(url))),
        };
        let port = parsed.port_or_known_default().unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Target { scheme, host, ip, port, trailing_dot })
    }

    /// Whether the host is a loopback address: 127.0.0.0/8, `::1` (or 127.0.0.0/8 mapped into
    /// IPv6), or the name `localhost` exactly. `localhost.` (a trailing dot) is not: the system's
    /// resolver may send it to DNS, which can answer with any address.
    pub fn is_loopback(&self) -> bool {
        match self.ip {
            Some(IpAddr::V4(v4)) => v4.is_loopback(),
            Some(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4: Ipv4Addr| v4.is_loopback()),
            None => self.host == "localhost" && !self.trailing_dot,
        }
    }

    /// Whether this is OpenAI's own API: `https://api.openai.com` on port 443.
    pub fn is_openai_api(&self) -> bool {
        self.scheme == "https" && self.host == OPENAI_API_HOST && self.port == 443
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The host of OpenAI's API.
pub const OPENAI_API_HOST: &str = "api.openai.com";

/// Whether the `OPENAI_API_KEY` environment fallback may be sent to `url`: only to OpenAI's own
/// API (`https://api.openai.com`) and to loopback addresses. Any other host must be given its key
/// explicitly. An unparsable URL gets no key.
pub fn env_key_allowed(url: &str) -> bool {
    Target::parse(url).is_ok_and(|t| t.is_openai_api() || t.is_loopback())
}

/// Credentials written in a URL (`scheme://user:password@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, decoded.
    pub user: String,
    /// The password, decoded.
    pub password: String,
    /// `user:password` as written in the URL (percent-encoded).
    pub written: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    /// The values to keep secret: the password and `user:password`, decoded and as written.
    pub fn secret_values(&self) -> Vec<String> {
        let password_written = self.written.split_once(':').map_or("", |(_, p)| p).to_owned();
        vec![self.password.clone(), password_written, format!("{}:{}", self.user, self.password), self.written.clone()]
    }
}

/// The credentials written in `url`, when it has a password (a user name alone is not secret and
/// is left in place).
pub fn credentials(url: &str) -> Option<Credentials> {
    let parsed = Url::parse(url.trim()).ok()?;
    let password = parsed.password().filter(|p| !p.is_empty())?;
    let decode =
        |text: &str| url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned());
    let user = decode(parsed.username()).unwrap_or_default();
    let decoded = decode(password).unwrap_or_else(|| password.to_owned());
    Some(Credentials { user, password: decoded, written: format!("{}:{}", parsed.username(), password) })
}

/// `url` with any user name and password removed, as it may be printed and stored; the URL as
/// given when it cannot be parsed (the caller keeps it secret-free by other means).
pub fn without_credentials(url: &str) -> String {
    let trimmed = url.trim();
    // Text before the authority's `@` is user information, whatever the parser thinks.
    let Some((scheme, rest)) = trimmed.split_once("://") else { return trimmed.to_owned() };
    match userinfo_end(rest) {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => trimmed.to_owned(),
    }
}

/// `text` with the user information of a URL in it (`//user:password@`, or `user:password@`
/// before the first `/` when there is no scheme) replaced by `***`: for messages quoting what a
/// user typed, a URL or not (`http://***@host/v1`).
pub fn mask_userinfo(text: &str) -> String {
    let (head, rest) = match text.find("://") {
        Some(at) => text.split_at(at + 3),
        None => ("", text),
    };
    match userinfo_end(rest) {
        Some(at) => format!("{head}***{}", &rest[at..]),
        None => text.to_owned(),
    }
}

/// The index of the `@` ending the user information of `rest` (a URL after its `scheme://`), if
/// its authority has one: the last `@` before the first `/`, `?`, `#` or `\`.
fn userinfo_end(rest: &str) -> Option<usize> {
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    rest[..authority_end].rfind('@')
}

/// One `--allow-host` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this host (normalized as [`Target::host`]).
    Exact(String),
    /// Any name ending with this suffix (which starts with `.`).
    Below(String),
}

impl HostPattern {
    /// Whether the pattern allows `target`.
    pub fn allows(&self, target: &Target) -> bool {
        let host = match &self.host {
            HostMatch::Exact(host) => *host == target.host,
            HostMatch::Below(suffix) => target.ip.is_none() && target.host.len() > suffix.len() && target.host.ends_with(suffix.as_str()),
        };
        host && self.port.is_none_or(|port| port == target.port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for HostPattern {
    type Err = String;

    /// A pattern, or what is wrong with it and what to write instead.
    fn from_str(text: &str) -> Result<HostPattern, String> {
        const FORMS: &str = "write a host (api.example.com, 10.0.0.7, [::1]) or *.example.com, optionally with :PORT";
        let given = text.trim();
        let bad = |problem: &str| Err(format!("--allow-host {given:?}: {problem}; {FORMS}"));
        if given.is_empty() {
            return bad("the pattern is empty");
        }
        if given.contains("://") {
            return bad("give a host, not a URL");
        }
        if given.contains(['/', '@', '?', '#', '\\']) || given.chars().any(char::is_whitespace) {
            return bad("a pattern holds no path, user, query or spaces");
        }
        let (host, port) = if let Some(bracketed) = given.strip_prefix('[') {
            let Some((address, after)) = bracketed.split_once(']') else { return bad("an IPv6 address has no closing ']'") };
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return bad("only :PORT may follow an IPv6 address"),
                },
            };
            (format!("[{address}]"), port)
        } else {
            match given.matches(':').count() {
                0 => (given.to_owned(), None),
                1 => given.split_once(':').map(|(h, p)| (h.to_owned(), Some(p))).unwrap_or_default(),
                _ => return bad("write an IPv6 address in brackets, as [::1] or [::1]:8080"),
            }
        };
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return bad(&format!("the port {port:?} is not a number from 1 to 65535")),
            },
        };
        let host = host.to_ascii_lowercase();
        let (below, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, host.clone()),
        };
        if name.contains('*') {
            return bad("'*' is allowed only as the first label, as in *.example.com");
        }
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        if name.is_empty() || name.starts_with('.') || name.contains("..") {
            return bad("the host is empty or has an empty label");
        }
        let normalized = match Host::parse(&name) {
            Ok(Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Ok(Host::Ipv4(address)) if !below => address.to_string(),
            Ok(Host::Ipv6(address)) if !below => address.to_string(),
            Ok(_) => return bad("*. must be followed by a domain name, not an IP address"),
            Err(e) => return bad(&format!("{name:?} is not a valid host ({e})")),
        };
        if !below && name.starts_with('[') != matches!(Host::parse(&name), Ok(Host::Ipv6(_))) {
            return bad("write an IPv6 address in brackets, as [::1]");
        }
        let host = if below { HostMatch::Below(format!(".{normalized}")) } else { HostMatch::Exact(normalized) };
        Ok(HostPattern { host, port, text: given.to_owned() })
    }
}

/// Where a run may connect: anywhere (the default), or only to hosts an `--allow-host` pattern
/// allows. Checked before every request (no byte is sent to a refused host) and when a model is
/// built (a refused endpoint stops the run at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// `None`: unrestricted.
    allowed: Option<Vec<HostPattern>>,
}

impl EgressPolicy {
    /// No restriction.
    pub fn unrestricted() -> EgressPolicy {
        EgressPolicy { allowed: None }
    }

    /// Only these hosts; an empty list is no restriction (no `--allow-host` given).
    pub fn allow_only(patterns: Vec<HostPattern>) -> EgressPolicy {
        EgressPolicy { allowed: (!patterns.is_empty()).then_some(patterns) }
    }

    /// The policy of these `--allow-host` values, or the first bad one's problem.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<EgressPolicy, String> {
        let patterns = patterns.iter().map(|p| p.as_ref().parse()).collect::<Result<Vec<HostPattern>, String>>()?;
        Ok(EgressPolicy::allow_only(patterns))
    }

    /// Whether an allow list is in force.
    pub fn is_restricted(&self) -> bool {
        self.allowed.is_some()
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> Vec<String> {
        self.allowed.iter().flatten().map(ToString::to_string).collect()
    }

    /// Whether a request to `target` may be sent.
    pub fn check(&self, target: &Target) -> Result<(), EgressError> {
        match &self.allowed {
            Some(patterns) if !patterns.iter().any(|p| p.allows(target)) => {
                Err(EgressError { authority: target.authority(), host: target.host.clone(), allowed: self.patterns() })
            }
            _ => Ok(()),
        }
    }

    /// Whether a request to `url` may be sent; a URL with no host is refused under an allow
    /// list.
    pub fn check_url(&self, url: &str) -> Result<(), EgressError> {
        if !self.is_restricted() {
            return Ok(());
        }
        match Target::parse(url) {
            Ok(target) => self.check(&target),
            Err(_) => Err(EgressError { authority: without_credentials(url), host: without_credentials(url), allowed: self.patterns() }),
        }
    }
}

/// A request refused by the allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressError {
    /// `host:port` refused.
    pub authority: String,
    /// The host refused.
    pub host: String,
    /// The patterns in force.
    pub allowed: Vec<String>,
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused to connect to {}: the host is not allowed by --allow-host ({}); add --allow-host {} if this run may reach it",
            self.authority,
            self.allowed.join(", "),
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
        )
    }
}

impl std::error::Error for EgressError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_http_clients_parse() {
        let t = |url: &str| Target::parse(url).map(|t| t.authority());
        assert_eq!(t("https://API.OpenAI.com./v1"), Ok("api.openai.com:443".into()));
        assert_eq!(t("http://api.openai.com@evil.com/v1"), Ok("evil.com:80".into()));
        assert_eq!(t("http://evil.com\\@api.openai.com/v1"), Ok("evil.com:80".into()));
        assert_eq!(t("http://0x7f.1:8000"), Ok("127.0.0.1:8000".into()));
        assert_eq!(t("http://[::1]:9/v1"), Ok("[::1]:9".into()));
        assert!(t("ftp://h").is_err());
        assert!(t("no url").is_err());
    }

    #[test]
    fn credentials_are_split_out() {
        let c = credentials("http://al%20ice:p%40ss@h/v1").expect("credentials");
        assert_eq!((c.user.as_str(), c.password.as_str(), c.written.as_str()), ("al ice", "p@ss", "al%20ice:p%40ss"));
        assert!(!format!("{c:?}").contains("p@ss"));
        assert_eq!(credentials("http://user@h/v1"), None);
        assert_eq!(without_credentials("http://u:p@h:1/v1"), "http://h:1/v1");
        assert_eq!(without_credentials("http://h/v1?a=b@c"), "http://h/v1?a=b@c");
    }
}
