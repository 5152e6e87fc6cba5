//! YAML read as PyYAML's `safe_load` reads it, which is how pyagentspec and WayFlow read YAML.
//!
//! The syntax is granit-parser's (the parser under serde-saphyr, re-exported by it); what the
//! scalars mean is PyYAML's YAML 1.1 resolver and `SafeConstructor`, reproduced here:
//! - booleans are exactly `yes no true false on off` in lower, capitalised and upper case (`y`,
//!   `n`, `Y`, `N` stay strings);
//! - integers in base 2 (`0b`), 8 (a leading `0`), 10, 16 (`0x`) and 60 (`1:30`), with `_`
//!   separators; floats need a dot (`1e3` is a string, `1.0e+3` a float, whose exponent needs
//!   its sign), sexagesimal floats, `.inf`, `.nan`;
//! - nulls are `~`, `null`, `Null`, `NULL` and the empty plain scalar;
//! - timestamps become the text Python's `str()` gives the `date` or `datetime` (what
//!   `json.dumps(..., default=str)` writes);
//! - merge keys (`<<`) with PyYAML's precedence and key order; the non-specific tag `!` resolves
//!   like a plain scalar, as in PyYAML; a plain `=` value is refused, as PyYAML refuses it.
//!
//! Mapping keys become JSON keys as `json.dumps` writes them (`1` as `"1"`, `yes` as `"true"`).
//! A value the JSON model cannot hold is refused with a message, never changed silently: `.inf`
//! and `.nan`, tags other than the core ones (`!!binary`, `!!set`, `!!omap`, local tags).
//! Integers outside 64 bits become floats (serde_json's model; Python's `json` reads them so too).
//!
//! The builder is iterative and bounded: nesting (aliases included) stops at [`MAX_DEPTH`], and
//! the nodes the document expands to, aliases counted at their full size, stop at [`MAX_NODES`].

use crate::source::MAX_DEPTH;
use serde_json::{Map, Number, Value as Json};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Tag};
use std::collections::HashMap;

/// The most nodes a document may expand to, aliases counted at their full size.
pub const MAX_NODES: usize = 2_000_000;

/// Why a YAML text was refused, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: &'static str,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

const SYNTAX_HINT: &str = "fix the YAML syntax at the given line and column";
const DEPTH_HINT: &str = "flatten the document: share deep components through `$referenced_components`";

/// A node under construction.
enum Frame {
    Seq { items: Vec<Json>, anchor: usize, size: usize, height: usize },
    Map { entries: Vec<Entry>, pending_key: Option<Key>, anchor: usize, size: usize, height: usize },
}

enum Key {
    Plain(String),
    Merge,
}

enum Entry {
    Pair(String, Json),
    Merge(Json, (usize, usize)),
}

/// A finished value with what the budgets need.
struct Built {
    value: Json,
    size: usize,
    height: usize,
    /// The key it forms when it is a mapping key (`None` for a merge key).
    key: Result<Option<String>, String>,
}

/// Parses a YAML text holding one document into JSON, as PyYAML's `safe_load` would; an empty
/// stream is `Json::Null`.
pub fn parse(text: &str) -> Result<Json, YamlError> {
    let mut options = serde_saphyr::granit_parser::Options::default();
    options.emit_anchor_events = true;
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut anchor_names: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Json, usize, usize)> = HashMap::new();
    let mut total = 0usize;
    let mut root: Option<Json> = None;
    let mut documents = 0usize;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let mark = e.marker();
                let info = e.info().to_string();
                let lower = info.to_lowercase();
                if lower.contains("recursion") || lower.contains("nesting") || lower.contains("depth") {
                    return Err(YamlError {
                        message: format!("the document is nested more than {MAX_DEPTH} levels deep ({info})"),
                        hint: DEPTH_HINT,
                        line: Some(mark.line()),
                        column: Some(mark.col() + 1),
                    });
                }
                return Err(YamlError {
                    message: format!("invalid YAML: {info}"),
                    hint: SYNTAX_HINT,
                    line: Some(mark.line()),
                    column: Some(mark.col() + 1),
                });
            }
        };
        let at = (span.start.line(), span.start.col() + 1);
        let err = |message: String, hint: &'static str| YamlError { message, hint, line: Some(at.0), column: Some(at.1) };
        let built = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        "the file holds more than one YAML document (a second `---`)".into(),
                        "an Agent Spec file is one document: remove the second `---` and what follows, or split the file",
                    ));
                }
                continue;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq").map_err(|m| err(m, TAG_HINT))?;
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("the document is nested more than {MAX_DEPTH} levels deep"), DEPTH_HINT));
                }
                stack.push(Frame::Seq { items: Vec::new(), anchor, size: 1, height: 1 });
                continue;
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map").map_err(|m| err(m, TAG_HINT))?;
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("the document is nested more than {MAX_DEPTH} levels deep"), DEPTH_HINT));
                }
                stack.push(Frame::Map { entries: Vec::new(), pending_key: None, anchor, size: 1, height: 1 });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, anchor, size, height }) => {
                    let value = Json::Array(items);
                    remember(&mut anchors, anchor, &value, size, height);
                    Built { value, size, height, key: Err("a list".into()) }
                }
                _ => return Err(err("unbalanced YAML sequence".into(), SYNTAX_HINT)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { entries, anchor, size, height, .. }) => {
                    let value = Json::Object(flatten(entries).map_err(|(m, (l, c))| YamlError {
                        message: m,
                        hint: MERGE_HINT,
                        line: Some(l),
                        column: Some(c),
                    })?);
                    remember(&mut anchors, anchor, &value, size, height);
                    Built { value, size, height, key: Err("a mapping".into()) }
                }
                _ => return Err(err("unbalanced YAML mapping".into(), SYNTAX_HINT)),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let (value, key) = scalar(&text, style, tag.as_deref()).map_err(|(m, h)| err(m, h))?;
                remember(&mut anchors, anchor, &value, 1, 0);
                Built { value, size: 1, height: 0, key }
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((value, size, height)) => {
                    let key = key_of(value);
                    Built { value: value.clone(), size: *size, height: *height, key }
                }
                None => {
                    return Err(err(
                        "an alias refers to its own anchor, or to one not finished yet (a recursive structure)".into(),
                        "JSON has no recursive values: replace the alias by a copy of what it should hold",
                    ));
                }
            },
            // PyYAML refuses an anchor name defined twice in a document (YAML 1.2 allows it).
            Event::Anchor(_, name) => {
                if !anchor_names.insert(name.to_string()) {
                    return Err(err(
                        format!("the anchor &{name} is defined twice; PyYAML refuses it (found duplicate anchor)"),
                        "give each anchor its own name",
                    ));
                }
                continue;
            }
            // Comments and the like carry no data.
            _ => continue,
        };
        total = total.saturating_add(built.size);
        if total > MAX_NODES {
            return Err(err(
                format!("the document expands to more than {MAX_NODES} values (aliases counted at their full size)"),
                "anchors and aliases are limited to keep expansion bounded: write the repeated parts once",
            ));
        }
        if stack.len() + built.height > MAX_DEPTH {
            return Err(err(format!("the document is nested more than {MAX_DEPTH} levels deep (aliases included)"), DEPTH_HINT));
        }
        let as_key = matches!(stack.last(), Some(Frame::Map { pending_key: None, .. }));
        if !as_key && built.value.as_str() == Some(VALUE_MARK) {
            return Err(err(
                "a plain `=` as a value: PyYAML reads it as the YAML 1.1 `!!value` tag and refuses it".into(),
                "quote it: '='",
            ));
        }
        if !as_key && built.value.as_str() == Some(MERGE_MARK) {
            return Err(err("a plain `<<` as a value: PyYAML reads it as a merge key and refuses it here".into(), "quote it: '<<'"));
        }
        match stack.last_mut() {
            None => root = Some(built.value),
            Some(Frame::Seq { items, size, height, .. }) => {
                *size = size.saturating_add(built.size);
                *height = (*height).max(built.height + 1);
                items.push(built.value);
            }
            Some(Frame::Map { entries, pending_key, size, height, .. }) => match pending_key.take() {
                None => match built.key {
                    Ok(Some(k)) => *pending_key = Some(Key::Plain(k)),
                    Ok(None) => *pending_key = Some(Key::Merge),
                    Err(what) => {
                        return Err(err(
                            format!("a mapping key is {what}; PyYAML refuses it (found unhashable key) and JSON keys are strings"),
                            "write the key as a string",
                        ));
                    }
                },
                Some(key) => {
                    *size = size.saturating_add(built.size);
                    *height = (*height).max(built.height + 1);
                    entries.push(match key {
                        Key::Plain(k) => Entry::Pair(k, built.value),
                        Key::Merge => Entry::Merge(built.value, at),
                    });
                }
            },
        }
    }
    Ok(root.unwrap_or(Json::Null))
}

const TAG_HINT: &str = "remove the tag, or use one of the core tags !!str, !!int, !!float, !!bool, !!null, !!seq, !!map";
const MERGE_HINT: &str = "a merge key `<<` takes a mapping (`<<: *base`) or a list of mappings (`<<: [*a, *b]`)";

fn remember(anchors: &mut HashMap<usize, (Json, usize, usize)>, anchor: usize, value: &Json, size: usize, height: usize) {
    if anchor != 0 {
        anchors.insert(anchor, (value.clone(), size, height));
    }
}

/// A mapping's entries after PyYAML's `flatten_mapping`: merged pairs first (the first merged
/// mapping wins over later ones), then the mapping's own; a key keeps its first position and
/// takes its last value, as a Python dict built from those pairs does.
fn flatten(entries: Vec<Entry>) -> Result<Map<String, Json>, (String, (usize, usize))> {
    let mut merged: Vec<(String, Json)> = Vec::new();
    let mut own: Vec<(String, Json)> = Vec::new();
    for entry in entries {
        match entry {
            Entry::Pair(k, v) => own.push((k, v)),
            Entry::Merge(Json::Object(map), _) => merged.extend(map),
            Entry::Merge(Json::Array(items), merge_at) => {
                let mut maps = Vec::new();
                for item in items {
                    match item {
                        Json::Object(map) => maps.push(map),
                        other => {
                            return Err((format!("a merge key's list holds {}, not a mapping", crate::text::describe(&other)), merge_at));
                        }
                    }
                }
                for map in maps.into_iter().rev() {
                    merged.extend(map);
                }
            }
            Entry::Merge(other, merge_at) => {
                return Err((
                    format!("a merge key `<<` holds {}, not a mapping or a list of mappings", crate::text::describe(&other)),
                    merge_at,
                ));
            }
        }
    }
    let mut map = Map::new();
    for (k, v) in merged.into_iter().chain(own) {
        map.insert(k, v);
    }
    Ok(map)
}

fn check_collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if non_specific(t) => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix() == kind => Ok(()),
        Some(t) => Err(format!(
            "the tag {} is not supported on a {} (PyYAML's safe loader gives no JSON value for it)",
            show_tag(t),
            if kind == "seq" { "sequence" } else { "mapping" }
        )),
    }
}

/// The non-specific tag `!`.
fn non_specific(t: &Tag) -> bool {
    !t.is_yaml_core_schema() && format!("{}{}", t.original_handle(), t.suffix()) == "!"
}

fn show_tag(t: &Tag) -> String {
    if t.is_yaml_core_schema() { format!("!!{}", t.suffix()) } else { format!("{}{}", t.original_handle(), t.suffix()) }
}

type ScalarResult = Result<(Json, Result<Option<String>, String>), (String, &'static str)>;

/// A scalar's value and the key it forms, per PyYAML's resolver and constructors.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarResult {
    if style == ScalarStyle::Plain && text.contains('\t') {
        return Err((
            "a tab inside an unquoted value; PyYAML refuses it (found character '\\t' that cannot start any token)".into(),
            "quote the value, or use spaces instead of the tab",
        ));
    }
    let kind = match tag {
        None if style == ScalarStyle::Plain => resolve(text),
        None => "str",
        // PyYAML resolves a scalar with the non-specific tag `!` as if it were plain, quoted or not.
        Some(t) if non_specific(t) => resolve(text),
        Some(t) if t.is_yaml_core_schema() => match t.suffix() {
            s @ ("str" | "int" | "float" | "bool" | "null" | "timestamp") => s,
            _ => {
                return Err((
                    format!("the tag {} is not supported on a scalar (PyYAML's safe loader gives no JSON value for it)", show_tag(t)),
                    TAG_HINT,
                ));
            }
        },
        Some(t) => {
            return Err((
                format!("the tag {} is not supported (PyYAML's safe loader refuses tags it has no constructor for)", show_tag(t)),
                TAG_HINT,
            ));
        }
    };
    let bad = |what: &str| {
        (format!("`{text}` is not a valid {what} (PyYAML refuses it)"), "quote the value to make it a string, or fix the number or date")
    };
    let value = match kind {
        "str" => Json::String(text.to_owned()),
        "null" => Json::Null,
        "bool" => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Json::Bool(true),
            "no" | "false" | "off" => Json::Bool(false),
            _ => return Err(bad("boolean")),
        },
        "int" => {
            let (value, digits) = construct_int(text).ok_or_else(|| bad("integer"))?;
            return Ok((value, Ok(Some(digits))));
        }
        "float" => construct_float(text).ok_or_else(|| bad("float"))?,
        // A date is a string in JSON, but a key `json.dumps` refuses.
        "timestamp" => {
            let value = Json::String(construct_timestamp(text).ok_or_else(|| bad("date or timestamp"))?);
            return Ok((value, Err("a date or timestamp".into())));
        }
        "merge" => return Ok((Json::String(MERGE_MARK.to_owned()), Ok(None))),
        // PyYAML has a constructor for `=` only as a mapping key (a string there); the builder
        // refuses it where it lands as a value.
        "value" => return Ok((Json::String(VALUE_MARK.to_owned()), Ok(Some("=".to_owned())))),
        _ => Json::String(text.to_owned()),
    };
    let key = key_of(&value);
    Ok((value, key))
}

/// Stands for a plain `=` until the builder knows whether it is a key (fine) or a value (refused).
pub(crate) const VALUE_MARK: &str = "\u{0}weft:yaml-value\u{0}";
/// Stands for a plain `<<` until the builder knows whether it is a key (a merge) or a value
/// (refused: PyYAML has no constructor for the merge tag).
pub(crate) const MERGE_MARK: &str = "\u{0}weft:yaml-merge\u{0}";

/// The JSON key a value forms, as `json.dumps` writes a dict key.
fn key_of(value: &Json) -> Result<Option<String>, String> {
    match value {
        Json::String(s) if s == VALUE_MARK => Ok(Some("=".into())),
        Json::String(s) if s == MERGE_MARK => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Null => Ok(Some("null".into())),
        Json::Bool(b) => Ok(Some(b.to_string())),
        Json::Number(n) => Ok(Some(match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => py_float_repr(f),
            _ => n.to_string(),
        })),
        Json::Array(_) => Err("a list".into()),
        Json::Object(_) => Err("a mapping".into()),
    }
}

/// Which of PyYAML's implicit resolvers claims a plain scalar.
fn resolve(s: &str) -> &'static str {
    if is_bool(s) {
        "bool"
    } else if is_float(s) {
        "float"
    } else if is_int(s) {
        "int"
    } else if s == "<<" {
        "merge"
    } else if matches!(s, "" | "~" | "null" | "Null" | "NULL") {
        "null"
    } else if is_timestamp(s) {
        "timestamp"
    } else if s == "=" {
        "value"
    } else {
        "str"
    }
}

fn is_bool(s: &str) -> bool {
    matches!(
        s,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(f)
}

fn digit_us(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// `(?::[0-5]?[0-9])+` over the parts after the first colon.
fn sexagesimal_tail<'a>(parts: impl Iterator<Item = &'a str>) -> bool {
    let mut any = false;
    for p in parts {
        any = true;
        let b = p.as_bytes();
        let ok = match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

fn is_int(s: &str) -> bool {
    let t = strip_sign(s);
    let b = t.as_bytes();
    if b.is_empty() {
        return false;
    }
    if let Some(rest) = t.strip_prefix("0b")
        && !rest.is_empty()
        && all(rest, |c| matches!(c, b'0' | b'1' | b'_'))
    {
        return true;
    }
    if let Some(rest) = t.strip_prefix("0x")
        && !rest.is_empty()
        && all(rest, |c| c.is_ascii_hexdigit() || c == b'_')
    {
        return true;
    }
    if b[0] == b'0' && b.len() > 1 && all(&t[1..], |c| matches!(c, b'0'..=b'7' | b'_')) {
        return true;
    }
    if t == "0" || ((b'1'..=b'9').contains(&b[0]) && all(&t[1..], digit_us)) {
        return true;
    }
    if (b'1'..=b'9').contains(&b[0]) && t.contains(':') {
        let mut parts = t.split(':');
        let head = parts.next().unwrap_or_default();
        return all(head, digit_us) && sexagesimal_tail(parts);
    }
    false
}

fn is_exponent(e: &str) -> bool {
    // `[eE][-+][0-9]+`
    let b = e.as_bytes();
    b.len() >= 3 && matches!(b[0], b'e' | b'E') && matches!(b[1], b'-' | b'+') && all(&e[2..], |c| c.is_ascii_digit())
}

fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `\.[0-9][0-9_]*(exp)?` takes no sign.
    let unsigned = t.len() == s.len();
    let b = t.as_bytes();
    if b.is_empty() {
        return false;
    }
    let split_exp = |frac: &str| -> bool {
        // `[0-9_]*` then an optional exponent.
        match frac.find(['e', 'E']) {
            Some(i) => all(&frac[..i], digit_us) && is_exponent(&frac[i..]),
            None => all(frac, digit_us),
        }
    };
    if b[0] == b'.' {
        return unsigned && b.len() > 1 && b[1].is_ascii_digit() && split_exp(&t[1..]);
    }
    if !b[0].is_ascii_digit() {
        return false;
    }
    let Some(dot) = t.find('.') else { return false };
    let (head, frac) = (&t[..dot], &t[dot + 1..]);
    if all(head, digit_us) {
        return split_exp(frac);
    }
    // Sexagesimal: `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`.
    if !all(frac, digit_us) {
        return false;
    }
    let mut parts = head.split(':');
    let first = parts.next().unwrap_or_default();
    all(first, digit_us) && sexagesimal_tail(parts)
}

/// An integer as Python's `json` writes it (exact digits), read back by serde_json: exact within
/// 64 bits, the nearest float beyond.
fn int_json(negative: bool, digits: &str) -> Option<(Json, String)> {
    let digits = digits.trim_start_matches('0');
    let text = match (digits.is_empty(), negative) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{digits}"),
        (false, false) => digits.to_owned(),
    };
    let value: Json = serde_json::from_str(&text).ok()?;
    Some((value, text))
}

/// PyYAML's `construct_yaml_int`: the value and its exact decimal text. Integers in base 2, 8, 16
/// or 60 wider than 128 bits are refused (decimal ones of any width are read).
fn construct_int(text: &str) -> Option<(Json, String)> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let negative = cleaned.starts_with('-');
    let v = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    let magnitude: u128 = if v == "0" {
        0
    } else if let Some(bin) = v.strip_prefix("0b") {
        u128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = v.strip_prefix("0x") {
        u128::from_str_radix(hex, 16).ok()?
    } else if v.starts_with('0') {
        u128::from_str_radix(v, 8).ok()?
    } else if v.contains(':') {
        let mut total: u128 = 0;
        for part in v.split(':') {
            total = total.checked_mul(60)?.checked_add(part.parse::<u128>().ok()?)?;
        }
        total
    } else {
        if !v.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        return int_json(negative, v);
    };
    int_json(negative, &magnitude.to_string())
}

/// Python's `float()` of a text the float resolver accepted.
fn py_float(text: &str) -> Option<f64> {
    let mut t = text.to_owned();
    if t.starts_with('.') {
        t.insert(0, '0');
    }
    if let Some(i) = t.find('.') {
        let after = t.as_bytes().get(i + 1).copied();
        if !after.is_some_and(|c| c.is_ascii_digit()) {
            t.insert(i + 1, '0');
        }
    }
    t.parse::<f64>().ok()
}

/// PyYAML's `construct_yaml_float`; infinities and NaN have no JSON form and are refused.
fn construct_float(text: &str) -> Option<Json> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
    let negative = cleaned.starts_with('-');
    let v = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    let magnitude = if v == ".inf" || v == ".nan" {
        return None;
    } else if v.contains(':') {
        let mut total = 0.0f64;
        for part in v.split(':') {
            total = total * 60.0 + py_float(part)?;
        }
        total
    } else {
        py_float(v)?
    };
    let value = if negative { -magnitude } else { magnitude };
    Number::from_f64(value).map(Json::Number)
}

/// The text of `repr(float)` in Python: the shortest round-trip digits, in scientific notation
/// below 1e-4 and from 1e16 up.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn digits(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n < min {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    // `YYYY-MM-DD` exactly.
    if b.len() == 10
        && all(&s[..4], |c| c.is_ascii_digit())
        && b[4] == b'-'
        && all(&s[5..7], |c| c.is_ascii_digit())
        && b[7] == b'-'
        && all(&s[8..], |c| c.is_ascii_digit())
    {
        return true;
    }
    parse_timestamp(s).is_some_and(|t| t.time.is_some())
}

struct Timestamp {
    year: u32,
    month: u32,
    day: u32,
    /// hour, minute, second, microsecond, and the offset in minutes when one was given.
    time: Option<(u32, u32, u32, u32, Option<i32>)>,
}

/// PyYAML's `timestamp_regexp` (the constructor's, which also takes one-digit months and days).
fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let (year, rest) = digits(s, 4, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (month, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = digits(rest, 1, 2)?;
    if rest.is_empty() {
        return Some(Timestamp { year, month, day, time: None });
    }
    let rest = if let Some(r) = rest.strip_prefix(['T', 't']) {
        r
    } else {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if trimmed.len() == rest.len() {
            return None;
        }
        trimmed
    };
    let (hour, rest) = digits(rest, 1, 2)?;
    let (minute, rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
    let (second, mut rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
    let mut micro = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        let mut frac: String = r[..n].chars().take(6).collect();
        if !frac.is_empty() {
            while frac.len() < 6 {
                frac.push('0');
            }
            micro = frac.parse().ok()?;
        }
        rest = &r[n..];
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let offset = if rest.is_empty() {
        None
    } else if rest == "Z" {
        Some(0)
    } else {
        let negative = rest.starts_with('-');
        let r = rest.strip_prefix(['-', '+'])?;
        let (h, r) = digits(r, 1, 2)?;
        let (m, r) = match r.strip_prefix(':') {
            Some(r) => digits(r, 2, 2)?,
            None => (0, r),
        };
        if !r.is_empty() {
            return None;
        }
        let total = (h * 60 + m) as i32;
        Some(if negative { -total } else { total })
    };
    Some(Timestamp { year, month, day, time: Some((hour, minute, second, micro, offset)) })
}

/// `str()` of the `date` or `datetime` PyYAML builds; `None` where Python raises.
fn construct_timestamp(s: &str) -> Option<String> {
    let t = parse_timestamp(s)?;
    let leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
    let days = match t.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if t.year == 0 || t.day == 0 || t.day > days {
        return None;
    }
    let mut out = format!("{:04}-{:02}-{:02}", t.year, t.month, t.day);
    if let Some((h, m, sec, micro, offset)) = t.time {
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        out.push_str(&format!(" {h:02}:{m:02}:{sec:02}"));
        if micro != 0 {
            out.push_str(&format!(".{micro:06}"));
        }
        if let Some(off) = offset {
            if off.abs() >= 24 * 60 {
                return None;
            }
            let sign = if off < 0 { '-' } else { '+' };
            out.push_str(&format!("{sign}{:02}:{:02}", off.abs() / 60, off.abs() % 60));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn y(text: &str) -> Json {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    #[test]
    fn booleans_are_pyyamls() {
        assert_eq!(
            y("[y, n, Y, N, yes, No, ON, off, True, FALSE, tRUE]"),
            json!(["y", "n", "Y", "N", true, false, true, false, true, false, "tRUE"])
        );
        assert_eq!(y("n: 1\ny: 2\nyes: 3"), json!({"n": 1, "y": 2, "true": 3}));
    }

    #[test]
    fn numbers_are_pyyamls() {
        assert_eq!(
            y("[1e3, 1.0e+3, 1.0e3, .5, 1., 0x1F, 0b101, 017, 08, 1_000, '1', 1:30, 1:30.5, -0, +12, 0_7, .inf_, 1__0.5]"),
            json!(["1e3", 1000.0, "1.0e3", 0.5, 1.0, 31, 5, 15, "08", 1000, "1", 90, 90.5, 0, 12, 7, ".inf_", 10.5])
        );
        assert!(parse("x: .inf").is_err());
        assert!(parse("x: .NaN").is_err());
    }

    #[test]
    fn nulls_timestamps_and_tags() {
        assert_eq!(y("[~, null, NULL, nULL, '', ]"), json!([null, null, null, "nULL", ""]));
        assert_eq!(y("a:\nb: !!str 12\nc: !!int '12'\nd: ! 12"), json!({"a": null, "b": "12", "c": 12, "d": 12}));
        assert_eq!(
            y("[2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10 -5, 2002-12-14 2:59:43Z, 2001-1-1, 2001-02-30x]"),
            json!([
                "2001-12-14",
                "2001-12-14 21:59:43.100000-05:00",
                "2001-12-14 21:59:43.100000-05:00",
                "2002-12-14 02:59:43+00:00",
                "2001-1-1",
                "2001-02-30x"
            ])
        );
        assert!(parse("x: 2001-02-30").is_err());
        assert!(parse("x: !foo 1").is_err());
        assert!(parse("x: !!binary aGk=").is_err());
    }

    #[test]
    fn merge_keys_and_anchors() {
        let doc = "base: &b {a: 1, b: 2}\nother: &o {b: 3, c: 4}\nm:\n  <<: [*b, *o]\n  c: 5\n  d: 6\none:\n  <<: *b\n  a: 9\n";
        assert_eq!(
            y(doc),
            json!({"base": {"a": 1, "b": 2}, "other": {"b": 3, "c": 4}, "m": {"b": 2, "c": 5, "a": 1, "d": 6}, "one": {"a": 9, "b": 2}})
        );
        assert!(parse("a: &a [1, *a]").is_err());
        assert!(parse("<<: 1").is_err());
    }

    #[test]
    fn keys_follow_json_dumps() {
        assert_eq!(y("{1: a, 1.5: b, ~: c, 1e16: d, 1.0e+16: e}"), json!({"1": "a", "1.5": "b", "null": "c", "1e16": "d", "1e+16": "e"}));
        assert!(parse("[1, 2]: x").is_err());
    }

    #[test]
    fn single_document_and_bounds() {
        assert!(parse("a: 1\n---\nb: 2").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        let deeper = "{a: ".repeat(100_000) + "1" + &"}".repeat(100_000);
        assert!(parse(&deeper).unwrap_err().message.contains("nested"));
        let block: String = (0..300).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
        assert!(parse(&block).unwrap_err().message.contains("nested"));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..10 {
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                p = if i == 0 { "a".into() } else { format!("b{}", i - 1) }
            ));
        }
        assert!(parse(&bomb).unwrap_err().message.contains("expands"));
    }
}
