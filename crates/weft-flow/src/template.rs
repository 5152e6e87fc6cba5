//! Inputs inferred from templates: pyagentspec's plain `{{ name }}` placeholders (FORMAT.md
//! section 6) and WayFlow's Jinja-aware scan (section 11, PluginPromptTemplate).

use serde_json::{Value as Json, json};
use std::collections::BTreeSet;

/// Distinct `{{ name }}` placeholders of a text, in order of first use. `name` is a run of word
/// characters, optionally surrounded by spaces; anything else inside braces is not one.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let trimmed = after.trim_start_matches(' ');
        let name_len: usize = trimmed.chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum();
        if name_len > 0 {
            let name = &trimmed[..name_len];
            if trimmed[name_len..].trim_start_matches(' ').starts_with("}}") && !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
        rest = after;
    }
    out
}

/// Placeholders of every string found in a JSON value, keys included (ApiNode `data`,
/// `headers`, `query_params`).
pub fn json_placeholders(v: &Json, out: &mut Vec<String>) {
    let push = |s: &str, out: &mut Vec<String>| {
        for p in placeholders(s) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    };
    match v {
        Json::String(s) => push(s, out),
        Json::Array(items) => items.iter().for_each(|i| json_placeholders(i, out)),
        Json::Object(m) => {
            for (k, v) in m {
                push(k, out);
                json_placeholders(v, out);
            }
        }
        _ => {}
    }
}

/// Variables a Jinja template reads, as WayFlow infers them: every undeclared variable (loop
/// targets excluded), typed `string` when used as a plain `{{name}}`, with `default: ""` when
/// tested by `{% if name %}` and the like. `None` when the text is not valid Jinja.
pub fn jinja_inputs(texts: &[&str]) -> Option<Vec<Json>> {
    let mut order: Vec<String> = Vec::new();
    let mut schemas: std::collections::HashMap<String, Json> = std::collections::HashMap::new();
    for text in texts {
        let env = minijinja::Environment::new();
        let tmpl = env.template_from_str(text).ok()?;
        let vars: BTreeSet<String> = tmpl.undeclared_variables(false).into_iter().collect();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut typed = Vec::new();
        let mut untyped = Vec::new();
        for v in vars {
            let mut schema = serde_json::Map::new();
            schema.insert("title".into(), json!(v));
            let is_plain = compact.contains(&format!("{{{{{v}}}}}"));
            if is_plain {
                schema.insert("type".into(), json!("string"));
            }
            if optional_test(text, &v) {
                schema.insert("default".into(), json!(""));
            }
            if is_plain { typed.push((v, schema)) } else { untyped.push((v, schema)) }
        }
        for (v, schema) in typed.into_iter().chain(untyped) {
            if !order.contains(&v) {
                order.push(v.clone());
            }
            schemas.insert(v, Json::Object(schema));
        }
    }
    Some(order.into_iter().filter_map(|v| schemas.remove(&v)).collect())
}

/// `{% if name %}`, `{% if not name %}`, `{% if name is none %}`, `{% if name is not none %}`.
fn optional_test(text: &str, name: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("{%") {
        let after = &rest[i + 2..];
        if after.starts_with('-') {
            rest = after;
            continue;
        }
        if let Some(end) = after.find("%}") {
            let words: Vec<&str> = after[..end].split_whitespace().collect();
            let hit = matches!(words.as_slice(),
                ["if", n] if *n == name)
                || matches!(words.as_slice(), ["if", "not", n] if *n == name)
                || matches!(words.as_slice(), ["if", n, "is", "none"] if *n == name)
                || matches!(words.as_slice(), ["if", n, "is", "not", "none"] if *n == name);
            if hit {
                return true;
            }
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_placeholders_only() {
        assert_eq!(placeholders("{{a}} {{ b }} {{a}} {{ c.d }} {{ x | upper }} {% if y %}"), vec!["a", "b"]);
        assert_eq!(placeholders("{{ é }}"), vec!["é"]);
    }

    #[test]
    fn jinja_scan_types_and_defaults() {
        let inputs = jinja_inputs(&[
            "You are {{ persona }}.{% if style %} Answer in a {{ style }} style.{% endif %}",
            "{% for excerpt in documents %}{{ excerpt }}{% endfor %} {{ question }}",
        ])
        .unwrap();
        let find = |t: &str| inputs.iter().find(|p| p["title"] == t).cloned().unwrap();
        assert_eq!(find("persona")["type"], "string");
        assert_eq!(find("style")["default"], "");
        assert!(find("documents").get("type").is_none());
        assert!(inputs.iter().all(|p| p["title"] != "excerpt"));
    }
}
