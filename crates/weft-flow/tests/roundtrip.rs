//! Export round trips: for every valid corpus document, load, export (JSON and YAML), load
//! again: the two models are equal, and a second export is byte-identical to the first.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use weft_flow::export::{ExportOptions, export};
use weft_flow::{Flow, Format, LoadOptions, Source};
use weft_spec::{CompId, Value};

fn valid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid")
}

fn load(source: &Source, options: &LoadOptions) -> Flow {
    match Flow::from_source(source, options) {
        Ok(l) => l.flow,
        Err(d) => panic!("{} does not load:\n{d}", source.name),
    }
}

fn options_for(path: &Path) -> LoadOptions {
    let mut options = LoadOptions::default();
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default();
    if let Some((stem, ext)) = name.rsplit_once('.') {
        let refs = path.with_file_name(format!("{stem}.refs.{ext}"));
        if refs.is_file() {
            options.registries.push(Source::from_bytes(refs.display().to_string(), std::fs::read(&refs).expect("read")).expect("utf-8"));
        }
    }
    options
}

/// Structural equality of two models, pairing components by position from the roots.
fn same_model(a: &Flow, b: &Flow) -> Result<(), String> {
    let mut pairs = vec![(a.spec().root, b.spec().root, String::from("root"))];
    let mut seen = std::collections::HashSet::new();
    while let Some((x, y, at)) = pairs.pop() {
        if !seen.insert((x, y)) {
            continue;
        }
        let (cx, cy) = (a.spec().get(x), b.spec().get(y));
        let same_head = cx.ty.name == cy.ty.name
            && cx.id == cy.id
            && cx.name == cy.name
            && cx.description == cy.description
            && cx.metadata == cy.metadata;
        if !same_head {
            return Err(format!("{at}: {} \"{}\" vs {} \"{}\"", cx.ty.name, cx.name, cy.ty.name, cy.name));
        }
        let (ia, ib) = (a.io(x), b.io(y));
        let schemas = |ps: &[weft_spec::Property]| ps.iter().map(|p| p.schema.clone()).collect::<Vec<Json>>();
        if schemas(&ia.inputs) != schemas(&ib.inputs) || schemas(&ia.outputs) != schemas(&ib.outputs) || ia.branches != ib.branches {
            return Err(format!("{at} ({}): interface differs", cx.name));
        }
        if cx.fields.len() != cy.fields.len() || cx.extra != cy.extra {
            return Err(format!("{at} ({}): field sets differ", cx.name));
        }
        for ((ka, va), (kb, vb)) in cx.fields.iter().zip(&cy.fields) {
            if ka != kb {
                return Err(format!("{at}: field {ka} vs {kb}"));
            }
            same_value(va, vb, &format!("{at}/{ka}"), &mut pairs)?;
        }
    }
    Ok(())
}

fn same_value(a: &Value, b: &Value, at: &str, pairs: &mut Vec<(CompId, CompId, String)>) -> Result<(), String> {
    match (a, b) {
        (Value::Comp(x), Value::Comp(y)) => {
            pairs.push((*x, *y, at.to_owned()));
            Ok(())
        }
        (Value::List(x), Value::List(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().try_for_each(|(i, (p, q))| same_value(p, q, &format!("{at}/{i}"), pairs))
        }
        (Value::Map(x), Value::Map(y)) if x.len() == y.len() => x.iter().zip(y).try_for_each(|((k, p), (l, q))| {
            if k == l { same_value(p, q, &format!("{at}/{k}"), pairs) } else { Err(format!("{at}: key {k} vs {l}")) }
        }),
        (Value::Props(x), Value::Props(y)) if x.len() == y.len() => {
            if x.iter().zip(y).all(|(p, q)| p.schema == q.schema) {
                Ok(())
            } else {
                Err(format!("{at}: properties differ"))
            }
        }
        (Value::Prop(x), Value::Prop(y)) => {
            if x.schema == y.schema {
                Ok(())
            } else {
                Err(format!("{at}: property differs"))
            }
        }
        (Value::PropMap(x), Value::PropMap(y)) => {
            if x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && p.schema == q.schema) {
                Ok(())
            } else {
                Err(format!("{at}: property map differs"))
            }
        }
        (Value::Secret(x), Value::Secret(y)) => {
            if x.key == y.key {
                Ok(())
            } else {
                Err(format!("{at}: secret key {} vs {}", x.key, y.key))
            }
        }
        (Value::Json(x), Value::Json(y)) => {
            if x == y {
                Ok(())
            } else {
                Err(format!("{at}: {x} vs {y}"))
            }
        }
        _ => Err(format!("{at}: values differ in shape")),
    }
}

#[test]
fn every_valid_document_round_trips_through_json_and_yaml() {
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(valid_dir()).expect("corpus/valid") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        if name.contains(".refs.") {
            continue;
        }
        count += 1;
        let original =
            load(&Source::from_bytes(path.display().to_string(), std::fs::read(&path).expect("read")).expect("utf-8"), &options_for(&path));
        for format in [Format::Json, Format::Yaml] {
            let text = export(&original, &ExportOptions { format, version: None }).expect("export");
            // The export is self-contained: it loads with no registry.
            let again = match Flow::from_source(&Source::new("export", text.clone(), format), &LoadOptions::default()) {
                Ok(l) => l.flow,
                Err(d) => {
                    failures.push(format!("{name} ({format:?}): the export does not load:\n{d}"));
                    continue;
                }
            };
            if let Err(e) = same_model(&original, &again) {
                failures.push(format!("{name} ({format:?}): models differ: {e}"));
            }
            let text2 = export(&again, &ExportOptions { format, version: None }).expect("export");
            if text != text2 {
                failures.push(format!("{name} ({format:?}): a second export differs from the first"));
            }
        }
    }
    assert!(count >= 59, "expected the valid corpus, found {count} documents");
    assert!(failures.is_empty(), "{} round trips failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn sensitive_values_are_exported_as_references_never_values() {
    let doc = r#"{"component_type": "OpenAiCompatibleConfig", "id": "llm1", "name": "local",
        "model_id": "m", "url": "http://127.0.0.1:8000", "api_key": "sk-very-secret",
        "agentspec_version": "25.4.2"}"#;
    let flow = Flow::from_json(doc).expect("valid").flow;
    let text = export(&flow, &ExportOptions::default()).expect("export");
    assert!(!text.contains("sk-very-secret"), "{text}");
    let v: Json = serde_json::from_str(&text).expect("json");
    assert_eq!(v["api_key"], serde_json::json!({"$component_ref": "llm1.api_key"}));
}

#[test]
fn export_refuses_a_version_below_the_minimum() {
    let text = std::fs::read_to_string(valid_dir().join("p_parallel_flow_node.json")).expect("read");
    let flow = Flow::from_json(&text).expect("valid").flow;
    let err = export(&flow, &ExportOptions { format: Format::Json, version: Some(weft_spec::Version::V25_4_1) }).unwrap_err();
    assert!(err.to_string().contains("needs at least 25.4.2"), "{err}");
}
