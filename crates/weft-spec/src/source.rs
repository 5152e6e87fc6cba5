//! Reading a document: bytes to a JSON value, with every failure as a `parse` diagnostic,
//! and pointers back to line and column for diagnostics.
//!
//! Parsing never panics and never recurses without bound: serde_json refuses nesting deeper
//! than 128 levels, and serde-saphyr runs under a budget (depth, nodes, aliases) that defeats
//! alias bombs.

use crate::diagnostic::{Code, Diagnostic};
pub use crate::text::describe;
use serde_json::Value as Json;
use std::collections::HashMap;

/// The syntax of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML, read as PyYAML's `safe_load` reads it (YAML 1.1 scalars, see [`crate::yaml`]), as
    /// pyagentspec and WayFlow do.
    Yaml,
}

impl Format {
    /// Picks the format from a file name, else from the first meaningful character.
    pub fn detect(name: &str, text: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return Format::Yaml;
        }
        if lower.ends_with(".json") {
            return Format::Json;
        }
        match text.trim_start_matches('\u{feff}').trim_start().chars().next() {
            Some('{') | Some('[') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// A document's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// How to name the document in messages (a path, or `<string>`).
    pub name: String,
    /// The text.
    pub text: String,
    /// Its syntax.
    pub format: Format,
}

/// The deepest nesting accepted in a document, in JSON and YAML alike.
pub const MAX_DEPTH: usize = 128;

impl Source {
    /// A source from raw bytes; text that is not UTF-8 is a `parse` diagnostic.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Source, Diagnostic> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => {
                let format = Format::detect(&name, &text);
                Ok(Source { name, text, format })
            }
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                Err(Diagnostic::new(
                    Code::Parse,
                    "",
                    format!("the file is not UTF-8 text (invalid byte at offset {at}); is it a binary file?"),
                )
                .hint("Agent Spec documents are JSON or YAML text files; check that you passed the right file"))
            }
        }
    }

    /// A source from text of a known format.
    pub fn new(name: impl Into<String>, text: impl Into<String>, format: Format) -> Source {
        Source { name: name.into(), text: text.into(), format }
    }

    /// Parses the text into a JSON value whose top level is an object.
    pub fn parse(&self) -> Result<Json, Diagnostic> {
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(&self.text);
        if text.trim().is_empty() {
            return Err(Diagnostic::new(Code::Parse, "", "the file is empty")
                .hint("an Agent Spec document is a JSON object or YAML mapping with a `component_type`"));
        }
        let value = match self.format {
            Format::Json => parse_json(text)?,
            Format::Yaml => parse_yaml(text)?,
        };
        if !value.is_object() {
            let d = Diagnostic::new(Code::Parse, "", format!("the top level of the document is {}, not an object", describe(&value)))
                .hint("an Agent Spec document is a single JSON object (YAML mapping) describing its root component");
            return Err(d);
        }
        Ok(value)
    }

    /// The 1-based line and column of the value at each of `pointers`, where they can be found.
    pub fn locate(&self, pointers: &[&str]) -> HashMap<String, (usize, usize)> {
        match self.format {
            Format::Json => locate_json(&self.text, pointers),
            Format::Yaml => crate::yaml_pos::locate_yaml(&self.text, pointers),
        }
    }
}

fn parse_json(text: &str) -> Result<Json, Diagnostic> {
    serde_json::from_str::<Json>(text).map_err(|e| {
        let msg = e.to_string();
        let (what, hint) = if msg.contains("recursion limit") {
            (
                format!("the document is nested more than {MAX_DEPTH} levels deep"),
                "flatten the document: share deep components through `$referenced_components`",
            )
        } else {
            (format!("invalid JSON: {}", strip_position(&msg)), "fix the JSON syntax at the given line and column")
        };
        let mut d = Diagnostic::new(Code::Parse, "", what).hint(hint);
        if e.line() > 0 {
            d.line = Some(e.line());
            // serde_json reports column 0 at the very start of a line (e.g. end of file).
            d.column = Some(e.column().max(1));
        }
        d
    })
}

fn strip_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

fn parse_yaml(text: &str) -> Result<Json, Diagnostic> {
    crate::yaml::parse(text).map_err(|e| {
        let mut d = Diagnostic::new(Code::Parse, "", e.message).hint(e.hint);
        d.line = e.line;
        d.column = e.column;
        d
    })
}

/// Scans JSON text once and records the position of the value at each wanted pointer.
///
/// The scanner is iterative (an explicit stack), so it is safe on any nesting depth, and it
/// tolerates malformed input by stopping early.
pub fn locate_json(text: &str, pointers: &[&str]) -> HashMap<String, (usize, usize)> {
    let wanted: std::collections::HashSet<&str> = pointers.iter().copied().collect();
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    enum Frame {
        Object { len: usize },
        Array { len: usize, index: usize },
    }
    let bytes = text.as_bytes();
    let mut i = 0usize;
    let mut line = 1usize;
    let mut col = 1usize;
    let mut path = String::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Whether the next value starts a new value at `path`.
    let mut expect_value = true;
    macro_rules! advance {
        () => {{
            let c = bytes[i];
            if c == b'\n' {
                line += 1;
                col = 1;
            } else if (c & 0xC0) != 0x80 {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' => {
                if c == b',' {
                    if let Some(Frame::Array { len, index }) = stack.last_mut() {
                        *index += 1;
                        path.truncate(*len);
                        path.push('/');
                        path.push_str(&index.to_string());
                        expect_value = true;
                    } else if let Some(Frame::Object { len }) = stack.last() {
                        path.truncate(*len);
                    }
                }
                if c == b':' {
                    expect_value = true;
                }
                advance!();
            }
            b'"' => {
                let start = (line, col);
                // Read the string, decoding escapes only if it is an object key.
                let is_key = matches!(stack.last(), Some(Frame::Object { .. })) && !expect_value;
                let mut s = String::new();
                advance!();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        if is_key {
                            match bytes[i + 1] {
                                b'n' => s.push('\n'),
                                b't' => s.push('\t'),
                                b'r' => s.push('\r'),
                                b'/' => s.push('/'),
                                b'\\' => s.push('\\'),
                                b'"' => s.push('"'),
                                _ => {}
                            }
                        }
                        advance!();
                        advance!();
                        continue;
                    }
                    if is_key {
                        let ch_len = utf8_len(bytes[i]);
                        if let Some(chunk) = text.get(i..i + ch_len) {
                            s.push_str(chunk);
                        }
                        for _ in 0..ch_len {
                            if i < bytes.len() {
                                advance!();
                            }
                        }
                        continue;
                    }
                    advance!();
                }
                if i < bytes.len() {
                    advance!();
                }
                if is_key {
                    if let Some(Frame::Object { len }) = stack.last() {
                        path.truncate(*len);
                        path.push('/');
                        path.push_str(&crate::diagnostic::escape_token(&s));
                    }
                } else {
                    if expect_value && wanted.contains(path.as_str()) {
                        found.entry(path.clone()).or_insert(start);
                    }
                    expect_value = false;
                }
            }
            b'{' | b'[' => {
                if expect_value && wanted.contains(path.as_str()) {
                    found.entry(path.clone()).or_insert((line, col));
                }
                let len = path.len();
                if c == b'{' {
                    stack.push(Frame::Object { len });
                    expect_value = false;
                } else {
                    stack.push(Frame::Array { len, index: 0 });
                    path.push_str("/0");
                    expect_value = true;
                }
                advance!();
            }
            b'}' | b']' => {
                if let Some(frame) = stack.pop() {
                    let len = match frame {
                        Frame::Object { len } | Frame::Array { len, .. } => len,
                    };
                    path.truncate(len);
                }
                expect_value = false;
                advance!();
            }
            _ => {
                // A scalar: number, true, false, null.
                if expect_value && wanted.contains(path.as_str()) {
                    found.entry(path.clone()).or_insert((line, col));
                }
                expect_value = false;
                while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                    advance!();
                }
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

/// Writes a JSON value as YAML that PyYAML's `safe_load` (YAML 1.1) reads back identically.
pub fn to_yaml(value: &Json) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_values_by_pointer() {
        let text = "{\n  \"a\": {\"b\": [1, {\"c/d\": true}]},\n  \"e\": \"x\"\n}";
        let found = locate_json(text, &["", "/a", "/a/b/1", "/a/b/1/c~1d", "/e", "/a/b/0"]);
        assert_eq!(found[""], (1, 1));
        assert_eq!(found["/a"], (2, 8));
        assert_eq!(found["/a/b/0"], (2, 15));
        assert_eq!(found["/a/b/1"], (2, 18));
        assert_eq!(found["/a/b/1/c~1d"], (2, 26));
        assert_eq!(found["/e"], (3, 8));
    }

    #[test]
    fn rejects_non_objects_and_empty_files() {
        let empty = Source::new("x.json", "  \n", Format::Json).parse().unwrap_err();
        assert!(empty.message.contains("empty"));
        let list = Source::new("x.json", "[1]", Format::Json).parse().unwrap_err();
        assert!(list.message.contains("a list, not an object"));
    }

    #[test]
    fn deep_json_is_a_parse_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let d = Source::new("x.json", deep, Format::Json).parse().unwrap_err();
        assert_eq!(d.code, Code::Parse);
        assert!(d.message.contains("nested"), "{}", d.message);
    }
}
