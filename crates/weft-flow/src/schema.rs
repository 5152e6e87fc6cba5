//! Relations between property schemas: "same type" (FORMAT.md 5.2), castability (5.3) and
//! default compatibility (5.4), plus the checks every property gets (title, meta-schema).

use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The members of a union (`anyOf` members borrowed, a `type` list's members built), or the
/// schema itself when it is not one.
fn members(s: &Json) -> Vec<Cow<'_, Json>> {
    if is_union(s) { flatten(s) } else { vec![Cow::Borrowed(s)] }
}

/// The members of a flattened union: a check of nested unions borrows them rather than copying
/// every member schema at every level.
fn flatten(s: &Json) -> Vec<Cow<'_, Json>> {
    let mut out = Vec::new();
    if let Some(any_of) = s.get("anyOf").and_then(Json::as_array) {
        out.extend(any_of.iter().map(Cow::Borrowed));
    }
    if let Some(types) = s.get("type").and_then(Json::as_array) {
        for t in types {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), t.clone());
            match t.as_str() {
                Some("array") => {
                    if let Some(items) = s.get("items") {
                        m.insert("items".into(), items.clone());
                    }
                }
                Some("object") => {
                    if let Some(p) = s.get("properties") {
                        m.insert("properties".into(), p.clone());
                    }
                    m.insert("additionalProperties".into(), s.get("additionalProperties").cloned().unwrap_or(Json::Bool(false)));
                }
                _ => {}
            }
            out.push(Cow::Owned(Json::Object(m)));
        }
    }
    out
}

fn is_union(s: &Json) -> bool {
    s.get("anyOf").is_some() || s.get("type").is_some_and(Json::is_array)
}

fn is_any(s: &Json) -> bool {
    s.get("type").is_none() && s.get("anyOf").is_none()
}

fn type_of(s: &Json) -> Option<&str> {
    s.get("type").and_then(Json::as_str)
}

/// Whether two schemas have the same type (FORMAT.md 5.2).
pub fn same_type(a: &Json, b: &Json) -> bool {
    same_type_depth(a, b, 0)
}

fn same_type_depth(a: &Json, b: &Json, depth: usize) -> bool {
    if depth > 64 {
        return a == b;
    }
    if is_union(a) || is_union(b) {
        let (fa, fb) = (members(a), members(b));
        // Compare each pair once: checking both directions by recursing twice would double
        // the work at every nested union (exponential in the nesting).
        let same: Vec<Vec<bool>> = fa.iter().map(|x| fb.iter().map(|y| same_type_depth(x, y, depth + 1)).collect()).collect();
        return same.iter().all(|row| row.iter().any(|&v| v)) && (0..fb.len()).all(|j| same.iter().any(|row| row[j]));
    }
    if type_of(a) != type_of(b) {
        return false;
    }
    match (a.get("items"), b.get("items")) {
        (Some(x), Some(y)) => {
            if !same_type_depth(x, y, depth + 1) {
                return false;
            }
        }
        (None, None) => {}
        (Some(x), None) | (None, Some(x)) => {
            if !is_any(x) {
                return false;
            }
        }
    }
    let empty = serde_json::Map::new();
    let pa = a.get("properties").and_then(Json::as_object).unwrap_or(&empty);
    let pb = b.get("properties").and_then(Json::as_object).unwrap_or(&empty);
    if pa.len() != pb.len() || !pa.iter().all(|(k, x)| pb.get(k).is_some_and(|y| same_type_depth(x, y, depth + 1))) {
        return false;
    }
    let any = Json::Object(serde_json::Map::new());
    let aa = a.get("additionalProperties").unwrap_or(&any);
    let ab = b.get("additionalProperties").unwrap_or(&any);
    match (aa, ab) {
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Bool(_), _) | (_, Json::Bool(_)) => false,
        (x, y) => same_type_depth(x, y, depth + 1),
    }
}

/// Whether a value of schema `a` can flow into an input of schema `b` (FORMAT.md 5.3).
pub fn castable(a: &Json, b: &Json) -> bool {
    castable_depth(a, b, 0)
}

fn castable_depth(a: &Json, b: &Json, depth: usize) -> bool {
    if depth > 64 {
        return a == b;
    }
    if a == b || is_any(b) || type_of(b) == Some("string") {
        return true;
    }
    if is_union(a) || is_union(b) {
        let (fa, fb) = (members(a), members(b));
        return fa.iter().all(|x| fb.iter().any(|y| castable_depth(x, y, depth + 1)));
    }
    let scalar = |t: Option<&str>| matches!(t, Some("number" | "integer" | "boolean"));
    let (ta, tb) = (type_of(a), type_of(b));
    if scalar(ta) && scalar(tb) {
        return true;
    }
    if ta == Some("array") && tb == Some("array") {
        let any = Json::Object(serde_json::Map::new());
        return castable_depth(a.get("items").unwrap_or(&any), b.get("items").unwrap_or(&any), depth + 1);
    }
    if ta == Some("object") && tb == Some("object") {
        let empty = serde_json::Map::new();
        let pa = a.get("properties").and_then(Json::as_object).unwrap_or(&empty);
        let pb = b.get("properties").and_then(Json::as_object).unwrap_or(&empty);
        if !pb.iter().all(|(k, y)| pa.get(k).is_some_and(|x| castable_depth(x, y, depth + 1))) {
            return false;
        }
        let any = Json::Object(serde_json::Map::new());
        let aa = a.get("additionalProperties").unwrap_or(&any);
        let ab = b.get("additionalProperties").unwrap_or(&any);
        return match (aa, ab) {
            (Json::Bool(x), Json::Bool(y)) => x == y,
            (Json::Bool(_), _) | (_, Json::Bool(_)) => false,
            (x, y) => castable_depth(x, y, depth + 1),
        };
    }
    false
}

/// Whether `value` is an acceptable default for `schema` (FORMAT.md 5.4, lenient as
/// pyagentspec is).
pub fn default_compatible(schema: &Json, value: &Json) -> bool {
    default_depth(schema, value, 0)
}

fn default_depth(schema: &Json, value: &Json, depth: usize) -> bool {
    if depth > 64 {
        return true;
    }
    if is_union(schema) {
        return flatten(schema).iter().any(|m| default_depth(m, value, depth + 1));
    }
    match type_of(schema) {
        Some("null") => value.is_null(),
        Some("number" | "integer" | "boolean") => value.is_number() || value.is_boolean(),
        Some("array") => match value.as_array() {
            Some(items) => match schema.get("items") {
                Some(is) => items.iter().all(|v| default_depth(is, v, depth + 1)),
                None => true,
            },
            None => false,
        },
        Some("object") => {
            let Some(obj) = value.as_object() else { return false };
            let empty = serde_json::Map::new();
            let props = schema.get("properties").and_then(Json::as_object).unwrap_or(&empty);
            for (k, ps) in props {
                match obj.get(k) {
                    Some(v) => {
                        if !default_depth(ps, v, depth + 1) {
                            return false;
                        }
                    }
                    None => {
                        if ps.get("default").is_none() {
                            return false;
                        }
                    }
                }
            }
            for (k, v) in obj {
                if props.contains_key(k) {
                    continue;
                }
                match schema.get("additionalProperties") {
                    Some(Json::Bool(false)) => return false,
                    Some(ap @ Json::Object(_)) if !default_depth(ap, v, depth + 1) => {
                        return false;
                    }
                    _ => {}
                }
            }
            true
        }
        _ => true,
    }
}

/// Characters a title must not contain, besides blanks (FORMAT.md 5.1).
const FORBIDDEN: &[char] = &['.', ',', '{', '}', '\'', '"', '\n'];

/// Why a title is refused, if it is.
pub fn title_problem(title: &str) -> Option<String> {
    if title.is_empty() {
        return Some("a property title must not be empty".into());
    }
    if let Some(c) = title.chars().find(|c| c.is_whitespace() || FORBIDDEN.contains(c)) {
        let shown = match c {
            '\n' => "a newline".to_owned(),
            c if c.is_whitespace() => "a blank".to_owned(),
            c => format!("`{c}`"),
        };
        return Some(format!("the property title \"{title}\" contains {shown}; titles must not contain blanks or any of . , {{ }} ' \""));
    }
    None
}

/// Every nested schema whose title must also be valid: `(relative pointer, title)`.
pub fn nested_titles(schema: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    nested_titles_into(schema, "", &mut out, 0);
    out
}

fn nested_titles_into(s: &Json, ptr: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 64 {
        return;
    }
    let visit = |child: &Json, child_ptr: String, out: &mut Vec<(String, String)>| {
        if let Some(t) = child.get("title").and_then(Json::as_str) {
            out.push((format!("{child_ptr}/title"), t.to_owned()));
        }
        nested_titles_into(child, &child_ptr, out, depth + 1);
    };
    if let Some(items) = s.get("items").filter(|v| v.is_object()) {
        visit(items, format!("{ptr}/items"), out);
    }
    if let Some(any_of) = s.get("anyOf").and_then(Json::as_array) {
        for (i, m) in any_of.iter().enumerate() {
            visit(m, format!("{ptr}/anyOf/{i}"), out);
        }
    }
    if let Some(props) = s.get("properties").and_then(Json::as_object) {
        for (k, m) in props {
            visit(m, format!("{ptr}/properties/{}", weft_spec::diagnostic::escape_token(k)), out);
        }
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        visit(ap, format!("{ptr}/additionalProperties"), out);
    }
}

static META: LazyLock<jsonschema::meta::MetaValidator<'static>> = LazyLock::new(jsonschema::draft202012::meta::validator);

static META_CACHE: LazyLock<Mutex<HashMap<String, Option<String>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Why a schema fails the Draft 2020-12 meta-schema, if it does.
pub fn schema_problem(schema: &Json) -> Option<String> {
    if trivially_valid(schema) {
        return None;
    }
    let key = schema.to_string();
    if let Ok(cache) = META_CACHE.lock()
        && let Some(hit) = cache.get(&key)
    {
        return hit.clone();
    }
    let result = META.validate(schema).err().map(|e| {
        format!(
            "{e} (at {})",
            if e.instance_path().as_str().is_empty() { "the schema root".to_owned() } else { e.instance_path().to_string() }
        )
    });
    if let Ok(mut cache) = META_CACHE.lock()
        && cache.len() < 100_000
    {
        cache.insert(key, result.clone());
    }
    result
}

const SIMPLE_TYPES: &[&str] = &["string", "integer", "number", "boolean", "null", "array", "object"];

/// A fast path: the common flat schemas (title, type, description, default) need no
/// meta-schema run.
fn trivially_valid(schema: &Json) -> bool {
    let Some(obj) = schema.as_object() else { return false };
    obj.iter().all(|(k, v)| match k.as_str() {
        "title" | "description" => v.is_string(),
        "default" => true,
        "type" => v.as_str().is_some_and(|t| SIMPLE_TYPES.contains(&t)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn castability_follows_the_spec_order() {
        let s = json!({"type": "string"});
        let i = json!({"type": "integer"});
        let n = json!({"type": "number"});
        assert!(castable(&i, &s));
        assert!(!castable(&s, &i));
        assert!(castable(&i, &n));
        assert!(castable(&json!({"type": "array", "items": i}), &json!({"type": "array", "items": n})));
        assert!(!castable(&json!({"type": "array"}), &json!({"type": "object"})));
        assert!(castable(&json!({"anyOf": [i, n]}), &n));
        assert!(castable(&json!({"type": "object"}), &json!({})));
        assert!(!castable(&json!({"type": "object"}), &json!({"type": "object", "additionalProperties": false})));
    }

    #[test]
    fn deeply_nested_unions_compare_in_linear_time() {
        let mut s = json!({"type": "string"});
        for _ in 0..200 {
            s = json!({"anyOf": [s]});
        }
        let started = std::time::Instant::now();
        assert!(same_type(&s, &s.clone()));
        assert!(castable(&s, &s.clone()));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn same_type_flattens_unions() {
        assert!(same_type(&json!({"type": ["string", "null"]}), &json!({"anyOf": [{"type": "null"}, {"type": "string"}]})));
        assert!(!same_type(&json!({"type": "string"}), &json!({"type": "integer"})));
    }

    #[test]
    fn titles_and_schemas() {
        assert!(title_problem("generated text").is_some());
        assert!(title_problem("a.b").is_some());
        assert!(title_problem("ok_name").is_none());
        assert!(schema_problem(&json!({"type": "strin"})).is_some());
        assert!(schema_problem(&json!({"type": "array", "items": {"type": "string"}})).is_none());
    }

    #[test]
    fn defaults_are_lenient_like_pyagentspec() {
        assert!(default_compatible(&json!({"type": "string"}), &json!(3)));
        assert!(!default_compatible(&json!({"type": "null"}), &json!(3)));
        assert!(!default_compatible(&json!({"type": "array", "items": {"type": "null"}}), &json!([1])));
        assert!(default_compatible(&json!({"anyOf": [{"type": "null"}, {"type": "integer"}]}), &json!(null)));
    }
}
