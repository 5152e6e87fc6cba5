//! Lenient JSON, in the manner of the `json_repair` library WayFlow uses.

use serde_json::{Map, Value as Json};

/// Nesting deeper than this is not followed (the rest of the text is still scanned).
const MAX_DEPTH: usize = 256;

/// Reads JSON out of a model's answer the way WayFlow's JSON parser (the `json_repair` library,
/// version 0.64) does.
///
/// * Text that is valid JSON as a whole is parsed as it is (a bare number or string too).
/// * Otherwise the first `{` or `[` starts the value; the text around it (prose, a code fence
///   such as ```` ```json ````) is ignored, and scalars outside a container are not looked for.
/// * Defects are repaired: trailing or missing commas, single quotes, unquoted keys and values
///   (`{a: b}` gives `{"a": "b"}`), Python's `True`/`False`/`None`, comments, unescaped quotes
///   inside strings, an unterminated string, missing closing brackets at the end.
/// * Several top-level values give an array of them, as `json_repair` does; a value repeating the
///   structure (same keys, same types) of the one before replaces it.
///
/// Returns `None` when the text has no JSON value at all (`json_repair` then returns `""`).
///
/// ```
/// use serde_json::json;
/// use weft_prompt::parse_lenient;
/// assert_eq!(parse_lenient(r#"Sure: {"score": 5}"#), Some(json!({"score": 5})));
/// assert_eq!(parse_lenient("```json\n{\"a\": [1, 2,],}\n```"), Some(json!({"a": [1, 2]})));
/// assert_eq!(parse_lenient("{'a': True, b: None"), Some(json!({"a": true, "b": null})));
/// assert_eq!(parse_lenient("no JSON here"), None);
/// ```
pub fn parse_lenient(text: &str) -> Option<Json> {
    if let Ok(v) = serde_json::from_str::<Json>(text) {
        return Some(v);
    }
    let mut p = Parser { s: text, i: 0, depth: 0 };
    let first = p.top_value()?;
    let mut values = vec![first];
    while p.i < p.s.len() {
        let comma_separated = p.next_is_comma_separated();
        match p.top_value() {
            Some(v) if truthy(&v) => {
                let last = values.last();
                // A repeated structure is an update of the value before; an empty value is replaced.
                if last.is_some_and(|l| (!comma_separated && same_structure(l, &v)) || !truthy(l)) {
                    values.pop();
                }
                values.push(v);
            }
            Some(_) => {}
            None => break,
        }
    }
    if values.len() == 1 { values.pop() } else { Some(Json::Array(values)) }
}

/// Python's `bool()` of a JSON value (what `json_repair` returns at the top level, a retry
/// node's success condition).
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(m) => !m.is_empty(),
    }
}

/// `json_repair`'s `ObjectComparer.is_strictly_empty`: an empty string, array or object.
fn strictly_empty(v: &Json) -> bool {
    match v {
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// `json_repair`'s `ObjectComparer.is_same_object`: same Python types and keys, recursively.
fn same_structure(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_structure(v, w))),
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_structure(v, w)),
        (Json::Number(x), Json::Number(y)) => x.is_f64() == y.is_f64(),
        (Json::Null, Json::Null) | (Json::Bool(_), Json::Bool(_)) | (Json::String(_), Json::String(_)) => true,
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Key,
    Value,
    Item,
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.s.get(self.i + offset..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
    }

    /// Skips blanks and `#`, `//` and `/* */` comments.
    fn skip_ws_comments(&mut self) {
        loop {
            self.skip_ws();
            match (self.peek(), self.peek_at(1)) {
                (Some('#'), _) | (Some('/'), Some('/')) => match self.s[self.i..].find('\n') {
                    Some(n) => self.i += n + 1,
                    None => self.i = self.s.len(),
                },
                (Some('/'), Some('*')) => match self.s[self.i + 2..].find("*/") {
                    Some(n) => self.i += 2 + n + 2,
                    None => self.i = self.s.len(),
                },
                _ => return,
            }
        }
    }

    /// Whether the next top-level value is separated from the previous one by a comma.
    fn next_is_comma_separated(&self) -> bool {
        let rest = self.s[self.i..].trim_start();
        if rest.starts_with(',') {
            return true;
        }
        self.s[..self.i].trim_end().ends_with(',')
    }

    /// The next top-level value: the first object or array from here on.
    fn top_value(&mut self) -> Option<Json> {
        loop {
            let c = self.peek()?;
            if c == '{' || c == '[' {
                // A valid JSON prefix is taken as it is.
                let mut stream = serde_json::Deserializer::from_str(&self.s[self.i..]).into_iter::<Json>();
                if let Some(Ok(v)) = stream.next() {
                    self.i += stream.byte_offset();
                    return Some(v);
                }
                self.i += 1;
                return Some(if c == '{' { self.object() } else { self.array() });
            }
            self.i += c.len_utf8();
        }
    }

    fn value(&mut self, ctx: Ctx) -> Option<Json> {
        self.skip_ws_comments();
        let c = self.peek()?;
        match c {
            '{' | '[' => {
                if self.depth >= MAX_DEPTH {
                    self.i += 1;
                    return None;
                }
                self.i += 1;
                self.depth += 1;
                let v = if c == '{' { self.object() } else { self.array() };
                self.depth -= 1;
                Some(v)
            }
            '"' | '\'' | '\u{201c}' | '\u{201d}' => Some(Json::String(self.string(ctx))),
            c if c.is_ascii_digit() || c == '-' || c == '.' => Some(self.number(ctx)),
            c if c.is_alphabetic() || c == '_' => Some(self.word(ctx)),
            _ => None,
        }
    }

    fn object(&mut self) -> Json {
        let mut m = Map::new();
        loop {
            self.skip_ws_comments();
            let Some(c) = self.peek() else { break };
            match c {
                '}' => {
                    self.i += 1;
                    break;
                }
                ',' | ']' | ':' => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let (key, quoted) = match c {
                '"' | '\'' | '\u{201c}' | '\u{201d}' => {
                    let (key, terminated) = self.string_terminated(Ctx::Key);
                    if !terminated {
                        // A key cut off by the end of the text: the member is dropped.
                        break;
                    }
                    (key, true)
                }
                c if c.is_alphanumeric() || c == '_' || c == '$' => (self.unquoted(&[':', ',', '}', ']', '\n']), false),
                _ => {
                    self.bump();
                    continue;
                }
            };
            self.skip_ws_comments();
            if self.peek() == Some(':') {
                self.i += 1;
            } else if !quoted {
                // Bare words without a colon are prose, not a member.
                continue;
            }
            self.skip_ws_comments();
            let value = match self.peek() {
                Some(',' | '}' | ']') | None => Json::String(String::new()),
                _ => {
                    let before = self.i;
                    match self.value(Ctx::Value) {
                        Some(v) => v,
                        None => {
                            if self.i == before {
                                self.bump();
                            }
                            Json::String(String::new())
                        }
                    }
                }
            };
            m.insert(key, value);
        }
        Json::Object(m)
    }

    fn array(&mut self) -> Json {
        let mut items = Vec::new();
        loop {
            self.skip_ws_comments();
            let Some(c) = self.peek() else { break };
            match c {
                ']' => {
                    self.i += 1;
                    break;
                }
                '}' => break,
                ',' | ':' => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let before = self.i;
            match self.value(Ctx::Item) {
                // json_repair drops an empty item not directly followed by `]` or `,`.
                Some(v) if strictly_empty(&v) && !matches!(self.peek(), Some(']' | ',')) => {
                    self.bump();
                }
                Some(v) => items.push(v),
                None => {
                    if self.i == before {
                        self.bump();
                    }
                }
            }
        }
        Json::Array(items)
    }

    /// Whether a quote just consumed closes the string, judging by what follows it.
    fn closes(&self, ctx: Ctx, quote: char) -> bool {
        if self.s[self.i..].trim_start_matches([' ', '\t', '\r']).starts_with('\n') {
            return true;
        }
        let rest = self.s[self.i..].trim_start();
        let Some(n) = rest.chars().next() else { return true };
        match ctx {
            Ctx::Key => true,
            Ctx::Value | Ctx::Item => {
                if matches!(n, ',' | '}' | ']') {
                    return true;
                }
                if n == quote || matches!(n, '"' | '\'') {
                    // A missing comma before the next key or item.
                    if ctx == Ctx::Item {
                        return true;
                    }
                    let inner = &rest[n.len_utf8()..];
                    if let Some(end) = inner.find(n) {
                        return inner[end + n.len_utf8()..].trim_start().starts_with(':');
                    }
                }
                false
            }
        }
    }

    fn string(&mut self, ctx: Ctx) -> String {
        self.string_terminated(ctx).0
    }

    /// A quoted string, and whether its closing quote was found.
    fn string_terminated(&mut self, ctx: Ctx) -> (String, bool) {
        let open = self.bump().unwrap_or('"');
        let close = if open == '\u{201c}' { '\u{201d}' } else { open };
        let mut out = String::new();
        while let Some(c) = self.bump() {
            if c == '\\' {
                let Some(e) = self.bump() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => out.push(self.unicode_escape()),
                    '"' | '\\' | '/' | '\'' => out.push(e),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            } else if c == close {
                if ctx == Ctx::Key || self.closes(ctx, close) {
                    return (out, true);
                }
                out.push(c);
            } else {
                out.push(c);
            }
        }
        // Unterminated: up to the end of the text, without trailing blanks.
        out.truncate(out.trim_end().len());
        (out, false)
    }

    /// After `\u`: four hex digits, joined with a following low surrogate when needed.
    fn unicode_escape(&mut self) -> char {
        let hex = |p: &Self, at: usize| -> Option<u32> { p.s.get(at..at + 4).and_then(|h| u32::from_str_radix(h, 16).ok()) };
        let Some(hi) = hex(self, self.i) else { return '\u{fffd}' };
        self.i += 4;
        if (0xd800..0xdc00).contains(&hi)
            && self.s[self.i..].starts_with("\\u")
            && let Some(lo) = hex(self, self.i + 2)
            && (0xdc00..0xe000).contains(&lo)
        {
            self.i += 6;
            return char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)).unwrap_or('\u{fffd}');
        }
        char::from_u32(hi).unwrap_or('\u{fffd}')
    }

    /// Text up to one of the stop characters, trimmed.
    fn unquoted(&mut self, stops: &[char]) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                break;
            }
            self.i += c.len_utf8();
        }
        self.s[start..self.i].trim().to_owned()
    }

    fn stops(ctx: Ctx) -> &'static [char] {
        match ctx {
            Ctx::Item => &[',', ']', '}', '\n'],
            _ => &[',', '}', ']'],
        }
    }

    fn number(&mut self, ctx: Ctx) -> Json {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E') {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.i = start;
            return Json::String(self.unquoted(Self::stops(ctx)));
        }
        let text = self.s[start..self.i].trim_end_matches(['-', '+', 'e', 'E']);
        if text.contains(['.', 'e', 'E']) {
            return text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Json::from).unwrap_or_else(|| Json::String(String::new()));
        }
        if let Ok(i) = text.parse::<i64>() {
            return Json::from(i);
        }
        if let Ok(u) = text.parse::<u64>() {
            return Json::from(u);
        }
        text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Json::from).unwrap_or_else(|| Json::String(String::new()))
    }

    fn word(&mut self, ctx: Ctx) -> Json {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        match &self.s[start..self.i] {
            "true" | "True" => return Json::Bool(true),
            "false" | "False" => return Json::Bool(false),
            "null" | "None" => return Json::Null,
            _ => {}
        }
        self.i = start;
        Json::String(self.unquoted(Self::stops(ctx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_json_repair() {
        let cases: &[(&str, Option<Json>)] = &[
            (r#"Sure: {"score": 5}"#, Some(json!({"score": 5}))),
            ("```json\n{\"a\": 1, \"b\": [1,2,],}\n```", Some(json!({"a": 1, "b": [1, 2]}))),
            ("no json here", None),
            ("5", Some(json!(5))),
            ("The answer is 5", None),
            ("\"abc\"", Some(json!("abc"))),
            ("{'a': 'b', c: True, d: None}", Some(json!({"a": "b", "c": true, "d": null}))),
            ("{\"a\": [1, 2", Some(json!({"a": [1, 2]}))),
            ("[\"a\",\"b\"]", Some(json!(["a", "b"]))),
            ("{\"a\":1} {\"b\":2}", Some(json!([{"a": 1}, {"b": 2}]))),
            ("{\"a\":1} and {\"a\":1}", Some(json!({"a": 1}))),
            ("True", None),
            ("", None),
            ("[1, 2] {\"a\": 1}", Some(json!([[1, 2], {"a": 1}]))),
            ("{\"a\": 01}", Some(json!({"a": 1}))),
            ("{\"a\": .5}", Some(json!({"a": 0.5}))),
            ("{\"a\": 1e5}", Some(json!({"a": 100000.0}))),
            ("text [1,2] more", Some(json!([1, 2]))),
            ("{\"a\": \"unterminated", Some(json!({"a": "unterminated"}))),
            ("{\"a\": tru}", Some(json!({"a": "tru"}))),
            ("{'a': \"it's\"}", Some(json!({"a": "it's"}))),
            ("{\"a\": 1 // comment\n}", Some(json!({"a": 1}))),
            ("{a: b}", Some(json!({"a": "b"}))),
            ("{\"a\": \"b\" \"c\": 1}", Some(json!({"a": "b", "c": 1}))),
            ("{\"a\":1}}", Some(json!({"a": 1}))),
            ("[[1,2]", Some(json!([[1, 2]]))),
            ("{\"a\": -}", Some(json!({"a": ""}))),
            ("{\"a\": 1.}", Some(json!({"a": 1.0}))),
            ("{\"key\": \"value with \"quotes\" inside\"}", Some(json!({"key": "value with \"quotes\" inside"}))),
            ("{\"a\": [1, 2, 3}", Some(json!({"a": [1, 2, 3]}))),
            ("```\n[1,2]\n```", Some(json!([1, 2]))),
            ("json {\"x\": 2}", Some(json!({"x": 2}))),
            ("{\"a\": True, \"b\": False, \"c\": None}", Some(json!({"a": true, "b": false, "c": null}))),
            ("{\"a\": 12abc}", Some(json!({"a": "12abc"}))),
            ("[1, \"a\", {\"b\": 2}, ]", Some(json!([1, "a", {"b": 2}]))),
            ("{\"a\": {\"b\": 1}", Some(json!({"a": {"b": 1}}))),
            ("{\"a\": }", Some(json!({"a": ""}))),
            ("{,\"a\":1}", Some(json!({"a": 1}))),
            ("{\"a\": \"\\u00e9\\ud83d\\ude00\"}", Some(json!({"a": "é😀"}))),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_lenient(text), want, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let text = format!("x {}", "[".repeat(100_000));
        assert!(parse_lenient(&text).is_some());
        let text = format!("x {}", "{\"a\": ".repeat(50_000));
        assert!(parse_lenient(&text).is_some());
    }
}
