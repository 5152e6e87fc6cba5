//! Issue 10, item 2, at command tools: a secret a tool printed is masked in the excerpt of its
//! stderr (or stdout) that a failure message quotes before the excerpt is cut, so no part of it
//! survives the cut.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::Map;
use std::sync::Arc;
use std::time::Duration;
use weft_guard::Secrets;
use weft_tools::{CommandTool, Tool, ToolError};

/// A 60-character key of only the characters no encoding changes.
const KEY: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop";

/// Every run of 8 characters of `KEY` that `text` holds.
fn pieces(text: &str) -> Vec<String> {
    KEY.as_bytes().windows(8).map(|w| String::from_utf8_lossy(w).into_owned()).filter(|w| text.contains(w.as_str())).collect()
}

fn message(error: ToolError) -> String {
    match error {
        ToolError::Failed { message } | ToolError::BadOutput { message } | ToolError::Unavailable { message } => message,
        // What the model is told is masked too.
        ToolError::Exited { message, said } => {
            assert!(!said.contains(KEY), "the key reached what a model is told: {said}");
            message
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[tokio::test]
async fn a_key_a_tool_printed_across_the_stderr_cut_is_masked_before_the_cut() {
    assert_eq!(KEY.len(), 60);
    // One line: the key, then 2,030 more characters. The message quotes the last 2,048 bytes,
    // so a cut made before masking keeps the key's last 18 characters.
    // The key comes from the environment, so the command line quoted does not hold it.
    let script = "printf '%s%s\\n' \"$K\" \"$(head -c 2030 /dev/zero | tr '\\000' x)\" >&2; exit 3";
    let secrets = Arc::new(Secrets::new([KEY]));
    let tool = CommandTool::new(["sh", "-c", script]).with_env("K", KEY).with_timeout(Duration::from_secs(20)).with_secrets(secrets);
    let text = message(tool.call(Map::new()).await.expect_err("exits 3"));
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(pieces(&text).is_empty(), "{:?} of the key left in: {text}", pieces(&text));
    // Masked first, then cut: the mask fits in the 2,048 bytes, and nothing was cut.
    assert!(text.contains("[REDACTED]xxxx"), "{text}");
    assert!(!text.contains('…'), "{text}");

    // Bad stdout: the first 200 characters are quoted, the key (at 180) across that cut.
    let script = "printf '%0180d%s and more' 0 \"$K\"";
    let tool = CommandTool::new(["sh", "-c", script]).with_env("K", KEY).with_secrets(Arc::new(Secrets::new([KEY])));
    let text = message(tool.call(Map::new()).await.expect_err("not JSON"));
    assert!(pieces(&text).is_empty(), "{:?} of the key left in: {text}", pieces(&text));
    assert!(text.contains("[REDACTED] and more"), "{text}");
}
