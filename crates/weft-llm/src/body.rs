//! Reading a response body under a size cap and an idle timeout: the one reader of the LLM
//! providers and of plain HTTP requests ([`crate::http`]).

use std::time::Duration;

use bytes::Bytes;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It went past the cap (nothing more was read).
    TooLarge,
    /// No chunk came within the idle timeout.
    Idle,
    /// The connection failed while reading.
    Failed(reqwest::Error),
}

/// Reads a body, refusing it past `cap` bytes: at once when `Content-Length` says so, else as
/// soon as the chunks read go past it. Each chunk must come within `idle`.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize, idle: Duration) -> Result<Bytes, BodyError> {
    if response.content_length().is_some_and(|length| length > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        let Ok(chunk) = tokio::time::timeout(idle, response.chunk()).await else {
            return Err(BodyError::Idle);
        };
        match chunk {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(e) => return Err(BodyError::Failed(e)),
        }
    }
}

/// `32 MiB`, `1.5 KiB`, `100 bytes`.
pub(crate) fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}
