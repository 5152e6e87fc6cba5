//! weft-spec's YAML reader against PyYAML's safe loader (issue 17): texts from
//! `fixtures/gen_pyyaml_parity.py` (scalars of every class PyYAML resolves, in values, list items,
//! flow collections and keys, and small documents with nested collections, anchors, aliases and
//! merge keys), with what `json.dumps(yaml.safe_load(text), default=str)` gave for each
//! (`fixtures/pyyaml_parity.json`, recorded in the reference environment).
//!
//! Equal means the same JSON text, key order included. Where PyYAML refuses a text, Weft must
//! refuse it too; where PyYAML produces a value JSON cannot hold (`Infinity`, `NaN`), Weft refuses
//! the text with a message instead of changing the value.

use serde_json::Value as Json;

fn cases() -> Vec<(String, Option<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pyyaml_parity.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

#[test]
fn yaml_reads_as_pyyaml_safe_load_reads_it() {
    let cases = cases();
    assert!(cases.len() >= 5000, "the fixture holds {} cases", cases.len());
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        let ours = weft_spec::yaml::parse(text);
        let expected = expected.as_deref().filter(|e| !e.contains("Infinity") && !e.contains("NaN"));
        match (expected, ours) {
            (None, Err(_)) => {}
            (None, Ok(_)) if known_syntax_difference(text) => {}
            (None, Ok(v)) => failures.push(format!("{text:?}: PyYAML refuses it, Weft read {v}")),
            (Some(_), Err(_)) if known_refusal(text) => {}
            (Some(e), Err(err)) => failures.push(format!("{text:?}: PyYAML read {e}, Weft refused it: {}", err.message)),
            (Some(e), Ok(v)) => {
                let e: Json = serde_json::from_str(e).expect("PyYAML's JSON");
                if !same(&e, &v) {
                    failures.push(format!("{text:?}: PyYAML {e}, Weft {v}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Equal values with keys in the same order; floats equal to the last bits of a double (the
/// fixture's floats go through serde_json's parser, which is not always correctly rounded).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
        }
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Json::Object(x), Json::Object(y)) => x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && same(a, b)),
        _ => a == b,
    }
}

/// Texts PyYAML reads and Weft refuses, knowingly: `!!binary` (bytes, which JSON has not; PyYAML's
/// `str()` of them is `b'...'`), and a flow item `-` (granit-parser takes it for a list marker).
fn known_refusal(text: &str) -> bool {
    let b = text.as_bytes();
    text.contains("!!binary") || b.windows(3).any(|w| matches!(w[0], b' ' | b'[') && w[1] == b'-' && matches!(w[2], b',' | b']' | b'}'))
}

/// PyYAML's scanner refuses a tab used as a separator anywhere outside quotes (YAML 1.2 allows
/// some); Weft refuses a tab inside an unquoted value, as PyYAML does, and reads the others.
/// PyYAML also refuses an empty implicit key (`: 1`), which granit-parser reads as a null key.
fn known_syntax_difference(text: &str) -> bool {
    text.contains('\t') || text.trim_start().starts_with(':')
}
