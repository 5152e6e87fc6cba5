//! Python's text forms of JSON values: `json.dumps` with its defaults and `str()` / `repr()`.
//!
//! WayFlow is written in Python, so every value it writes into a prompt or a string output goes
//! through one of these two forms. They differ in quoting (`"` vs `'`), in the literals
//! (`true`/`null` vs `True`/`None`) and in how non-ASCII text is written (`\u00e9` vs `é`).

use std::fmt::{self, Write};

use serde_json::{Number, Value as Json};

/// Python's `json.dumps(v)` with its default arguments.
///
/// Separators are `", "` and `": "`, `ensure_ascii=True` (every character outside `' '..='~'` is
/// written `\uXXXX` in lowercase hex, astral characters as a surrogate pair), object members keep
/// their insertion order, and floats are written as Python's `repr` writes them (`2.0`, `1e+16`,
/// `1.5e-07`). JSON values cannot hold NaN or infinities, so those forms never occur.
///
/// ```
/// use serde_json::json;
/// let v = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
/// assert_eq!(weft_prompt::py_json_dumps(&v), r#"{"b": 1, "a": [1, 2.5, true, null], "\u00e9": "\u00fc"}"#);
/// ```
pub fn py_json_dumps(v: &Json) -> String {
    let mut out = String::with_capacity(64);
    write_json(&mut out, v, None, 0);
    out
}

/// Python's `json.dumps(v, indent=n)`: one member per line, item separator `","` and key separator
/// `": "` (Python drops the blank after the comma when an indent is given).
pub fn py_json_dumps_indent(v: &Json, indent: usize) -> String {
    let mut out = String::with_capacity(64);
    write_json(&mut out, v, Some(indent), 0);
    out
}

fn newline_indent(out: &mut String, indent: usize, level: usize) {
    out.push('\n');
    for _ in 0..indent * level {
        out.push(' ');
    }
}

fn write_json(out: &mut String, v: &Json, indent: Option<usize>, level: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => write_number(out, n),
        Json::String(s) => write_json_str(out, s),
        Json::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                if let Some(n) = indent {
                    newline_indent(out, n, level + 1);
                }
                write_json(out, item, indent, level + 1);
            }
            if let Some(n) = indent {
                newline_indent(out, n, level);
            }
            out.push(']');
        }
        Json::Object(members) => {
            if members.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                if let Some(n) = indent {
                    newline_indent(out, n, level + 1);
                }
                write_json_str(out, k);
                out.push_str(": ");
                write_json(out, item, indent, level + 1);
            }
            if let Some(n) = indent {
                newline_indent(out, n, level);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_py_float(out, f);
    }
}

/// A JSON string literal as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that read back to the same value, in positional
/// notation when the decimal exponent is in `-4..16` (with at least one digit after the point),
/// else in exponent notation with a sign and at least two exponent digits.
pub(crate) fn write_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "1.5e-7", "-2e16". When several strings of that
    // length read back to the same value it may not pick the one nearest the exact value, as
    // Python does; the correctly rounded string of the same length (ties to even) is that one.
    let mut sci = format!("{f:e}");
    let digits_len = sci.split('e').next().map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let nearest = format!("{:.*e}", digits_len.saturating_sub(1), f);
    if nearest != sci && nearest.parse::<f64>().is_ok_and(|g| g == f) {
        sci = nearest;
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if negative {
        out.push('-');
    }
    let decpt = exp + 1;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                out.push_str(&digits);
                for _ in digits.len()..decpt {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..decpt]);
                out.push('.');
                out.push_str(&digits[decpt..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
}

/// Python's `str()` of the value.
///
/// A string at the top level is returned verbatim. Everything else is written as Python writes
/// the corresponding object: `True`/`False`/`None`, integers as digits, floats as Python's `repr`
/// (`2.0`, `1e+16`), lists `[1, 2.5]` and dicts `{'a': 1}` with their strings in `repr` form
/// (single quotes unless the text contains `'` and no `"`, escapes as Python writes them).
/// Non-ASCII text is kept as is.
///
/// ```
/// use serde_json::json;
/// let v = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
/// assert_eq!(weft_prompt::py_str(&v), "{'b': 1, 'a': [1, 2.5, True, None], 'é': 'ü'}");
/// assert_eq!(weft_prompt::py_str(&json!("it's")), "it's");
/// ```
pub fn py_str(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        _ => {
            let mut out = String::with_capacity(32);
            write_py_repr(&mut out, v);
            out
        }
    }
}

/// Python's `repr()` of the value (strings quoted).
pub(crate) fn write_py_repr(out: &mut String, v: &Json) {
    match v {
        Json::Null => out.push_str("None"),
        Json::Bool(true) => out.push_str("True"),
        Json::Bool(false) => out.push_str("False"),
        Json::Number(n) => write_number(out, n),
        Json::String(s) => write_py_str_repr(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_repr(out, item);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str_repr(out, k);
                out.push_str(": ");
                write_py_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(str)`.
pub(crate) fn write_py_str_repr<W: Write>(out: &mut W, s: &str) {
    let _ = try_write_py_str_repr(out, s);
}

/// Python's `repr(str)`, reporting the writer's errors.
pub(crate) fn try_write_py_str_repr<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
            c if (c as u32) < 0x7f => out.write_char(c)?,
            c if py_isprintable(c) => out.write_char(c)?,
            c if (c as u32) <= 0xff => write!(out, "\\x{:02x}", c as u32)?,
            c if (c as u32) <= 0xffff => write!(out, "\\u{:04x}", c as u32)?,
            c => write!(out, "\\U{:08x}", c as u32)?,
        }
    }
    out.write_char(quote)
}

/// Python's `str.isprintable()` for one non-ASCII character: false for the categories Cc, Cf,
/// Co, Zl, Zp, Zs and the noncharacters. Unassigned code points (Cn) other than the
/// noncharacters are treated as printable: that needs the Unicode database, which we do not carry.
fn py_isprintable(c: char) -> bool {
    let u = c as u32;
    let not_printable = matches!(u,
        0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f | 0x3000 | 0xe000..=0xf8ff
        | 0xfdd0..=0xfdef | 0xfeff | 0xfff9..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
        || (u & 0xfffe) == 0xfffe;
    !not_printable
}

/// Python's `==` between two JSON values: numbers compare by value whatever their kind
/// (`1 == 1.0`), booleans equal the numbers 1 and 0, dicts ignore member order.
pub fn py_eq(a: &Json, b: &Json) -> bool {
    fn num(v: &Json) -> Option<f64> {
        match v {
            Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Json::Bool(_) | Json::Number(_), Json::Bool(_) | Json::Number(_)) => num(a) == num(b),
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (Json::Object(x), Json::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w))),
        _ => false,
    }
}

/// Python's `in` for a list: membership with Python's `==`.
pub(crate) fn py_in(v: &Json, list: &[Json]) -> bool {
    list.iter().any(|item| py_eq(v, item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn float(f: f64) -> String {
        let mut s = String::new();
        write_py_float(&mut s, f);
        s
    }

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            (2.0, "2.0"),
            (2.5, "2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (123456789.125, "123456789.125"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-1234.5, "-1234.5"),
            (1e100, "1e+100"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
        ];
        for (f, want) in cases {
            assert_eq!(float(f), want, "{f}");
        }
    }

    #[test]
    fn json_dumps_examples() {
        let v = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
        assert_eq!(py_json_dumps(&v), r#"{"b": 1, "a": [1, 2.5, true, null], "\u00e9": "\u00fc"}"#);
        assert_eq!(py_json_dumps(&json!(5)), "5");
        assert_eq!(py_json_dumps(&json!(true)), "true");
        assert_eq!(py_json_dumps(&json!(2.0)), "2.0");
        assert_eq!(py_json_dumps(&json!("a\"b\\c\n\u{7f}\u{1}😀")), r#""a\"b\\c\n\u007f\u0001\ud83d\ude00""#);
        assert_eq!(py_json_dumps(&json!({"a": {}, "b": []})), r#"{"a": {}, "b": []}"#);
    }

    #[test]
    fn json_dumps_indent() {
        let v = json!({"a": [1, {"b": null}], "c": {}});
        assert_eq!(py_json_dumps_indent(&v, 2), "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}");
    }

    #[test]
    fn str_examples() {
        let v = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
        assert_eq!(py_str(&v), "{'b': 1, 'a': [1, 2.5, True, None], 'é': 'ü'}");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(2.0)), "2.0");
        assert_eq!(py_str(&json!(1e16)), "1e+16");
        assert_eq!(py_str(&json!("é\n")), "é\n");
        assert_eq!(
            py_str(&json!(["it's", "say \"hi\"", "both ' \"", "tab\t\u{0}\u{a0}\u{2028}"])),
            r#"["it's", 'say "hi"', 'both \' "', 'tab\t\x00\xa0\u2028']"#
        );
    }

    #[test]
    fn python_equality() {
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1.0})));
    }
}
