//! What a run must not leak, and where it may connect.
//!
//! - [`secrets`]: [`Secrets`], the registry of every value Weft knows to be secret (API keys,
//!   credentials in URLs), and the scrubber that masks them, raw and encoded (URL-encoded,
//!   JSON-escaped, base64 as in HTTP Basic auth), in any text or JSON value before it is written.
//! - [`egress`]: [`EgressPolicy`], the `--allow-host` allow list a request is checked against
//!   before a byte is sent, and the host rules of the `OPENAI_API_KEY` fallback
//!   ([`egress::env_key_allowed`]).
//! - [`allow_list`]: a document's `url_allow_list` ([`UrlAllowList`]): the URLs an ApiNode or
//!   RemoteTool may request, checked on the rendered URL before anything is sent.
//!
//! Invariant: no IO; both are plain values, shared with `Arc` or cloned.

pub mod allow_list;
pub mod egress;
pub mod secrets;

pub use allow_list::{AllowEntry, NormalizedUrl, UrlAllowList, UrlRefused};
pub use egress::{EgressError, EgressPolicy, HostPattern, Target};
pub use secrets::{REDACTED, Secrets};
