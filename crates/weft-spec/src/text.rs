//! Small text helpers for messages, shared by the whole workspace (each exists only here):
//! did-you-mean suggestions over an edit distance (`strsim`), the words naming a JSON value's
//! type, excerpts of long texts, and line/column of a byte offset.

use serde_json::Value as Json;

/// Edit distance (Levenshtein) between two strings, counted in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// The candidate with the lowest score, the first of equals; `score` returns `None` for a
/// candidate that is not close enough. Each caller's rule of closeness is its `score`.
pub fn closest<'a>(candidates: impl IntoIterator<Item = &'a str>, score: impl Fn(&str) -> Option<usize>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        if let Some(d) = score(cand)
            && best.is_none_or(|(bd, _)| d < bd)
        {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// The closest candidate to `wanted`, if it is close enough to be a likely typo: compared
/// without case, within a third of the longer name's characters (at least 1), never `wanted`
/// itself.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_lower = wanted.to_lowercase();
    closest(candidates, |cand| {
        if cand == wanted {
            return None;
        }
        let d = edit_distance(&wanted_lower, &cand.to_lowercase());
        let limit = (wanted.chars().count().max(cand.chars().count()) / 3).max(1);
        (d <= limit).then_some(d)
    })
}

/// The words naming a JSON value's type, by audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeWords {
    /// Weft's diagnostics on documents: "a list", "a number", "an object".
    Document,
    /// Messages about JSON data: "an array", "a number", "an object".
    Json,
    /// The OpenAI API's messages: "an array", "an integer", "a decimal".
    OpenAi,
    /// JSON Schema type names: "array", "integer", "number".
    Schema,
    /// The Python type `json.loads` produces: "list", "int", "float", "dict", "NoneType".
    Python,
}

/// The name of `v`'s type in `words`.
pub fn type_name(v: &Json, words: TypeWords) -> &'static str {
    // Columns: null, boolean, integer, decimal, string, array, object.
    const NAMES: [[&str; 7]; 5] = [
        ["null", "a boolean", "a number", "a number", "a string", "a list", "an object"],
        ["null", "a boolean", "a number", "a number", "a string", "an array", "an object"],
        ["null", "a boolean", "an integer", "a decimal", "a string", "an array", "an object"],
        ["null", "boolean", "integer", "number", "string", "array", "object"],
        ["NoneType", "bool", "int", "float", "str", "list", "dict"],
    ];
    let column = match v {
        Json::Null => 0,
        Json::Bool(_) => 1,
        Json::Number(n) if n.is_f64() => 3,
        Json::Number(_) => 2,
        Json::String(_) => 4,
        Json::Array(_) => 5,
        Json::Object(_) => 6,
    };
    NAMES[words as usize][column]
}

/// A short description of a value's JSON type in Weft's diagnostics ("a list", "an object").
pub fn describe(v: &Json) -> &'static str {
    type_name(v, TypeWords::Document)
}

/// The first `max` characters of `text`, and whether anything was cut off.
pub fn excerpt(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((cut, _)) => (&text[..cut], true),
        None => (text, false),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("sumarize", ["summarize", "end"]), Some("summarize"));
        assert_eq!(did_you_mean("LLMNode", ["LlmNode", "ToolNode"]), Some("LlmNode"));
        assert_eq!(did_you_mean("zzz", ["summarize", "end"]), None);
    }

    #[test]
    fn names_types_excerpts_and_positions() {
        assert_eq!(type_name(&json!(1), TypeWords::OpenAi), "an integer");
        assert_eq!(type_name(&json!(1.5), TypeWords::Schema), "number");
        assert_eq!(describe(&json!([])), "a list");
        assert_eq!(excerpt("héllo", 2), ("hé", true));
        assert_eq!(excerpt("hé", 2), ("hé", false));
        assert_eq!(line_column("ab\ncé\nd", 6), (2, 3));
    }
}
