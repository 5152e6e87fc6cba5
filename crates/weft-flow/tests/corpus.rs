//! The conformance corpus (`shared/agentspec/corpus`): every valid document loads with no
//! error, and every invalid one is rejected with the code and pointer its manifest gives.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use weft_flow::{Flow, LoadOptions, Source};

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus");
    assert!(
        dir.join("MANIFEST.json").is_file(),
        "the shared corpus is missing: expected {} (clone the project with shared/ beside it)",
        dir.display()
    );
    dir
}

fn manifest() -> Vec<Json> {
    let text = std::fs::read_to_string(corpus().join("MANIFEST.json")).expect("read MANIFEST.json");
    serde_json::from_str::<Json>(&text).expect("parse MANIFEST.json").as_array().expect("a list").clone()
}

/// Loads a corpus file with its registry (`X.refs.json`) when it has one.
fn options_for(path: &Path) -> LoadOptions {
    let mut options = LoadOptions::default();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or_default();
    let refs = path.with_file_name(format!("{stem}.refs.{ext}"));
    if refs.is_file() {
        let bytes = std::fs::read(&refs).expect("read registry");
        options.registries.push(Source::from_bytes(refs.display().to_string(), bytes).expect("utf-8 registry"));
    }
    options
}

fn source(path: &Path) -> Source {
    Source::from_bytes(path.display().to_string(), std::fs::read(path).expect("read corpus file")).expect("utf-8")
}

/// Whether `got` designates the defect at `want` (INDEX.md "Pointer conventions").
fn pointer_matches(doc: &Json, want: &str, got: &str) -> bool {
    if got == want || got.starts_with(&format!("{want}/")) {
        return true;
    }
    if !(want.starts_with(&format!("{got}/")) || got.is_empty()) {
        return false;
    }
    // `got` is an ancestor of `want`: accept it up to the innermost component containing `want`.
    let mut innermost = String::new();
    let tokens: Vec<&str> = want.split('/').skip(1).collect();
    let mut cur = doc;
    let mut path = String::new();
    if cur.get("component_type").is_some() {
        innermost.clear();
    }
    for t in tokens {
        let key = t.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Json::Object(m) => match m.get(&key) {
                Some(v) => v,
                None => break,
            },
            Json::Array(a) => match key.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => break,
            },
            _ => break,
        };
        path.push('/');
        path.push_str(t);
        if cur.get("component_type").is_some() && path != want {
            innermost = path.clone();
        }
    }
    got.len() >= innermost.len()
}

#[test]
fn every_valid_document_loads_without_errors() {
    let dir = corpus().join("valid");
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in manifest().iter().filter(|e| e["kind"] == "valid") {
        let file = entry["file"].as_str().expect("file");
        let path = dir.join(file);
        count += 1;
        if let Err(diags) = Flow::from_source(&source(&path), &options_for(&path)) {
            let errors: Vec<String> =
                diags.iter().filter(|d| d.is_error()).map(|d| format!("  {} {} {}", d.code, d.pointer, d.message)).collect();
            failures.push(format!("{file}:\n{}", errors.join("\n")));
        }
    }
    assert!(count >= 60, "expected the 60 valid documents of the corpus, found {count}");
    assert!(failures.is_empty(), "{} valid documents were rejected:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_invalid_document_gets_its_code_and_pointer() {
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in manifest().iter().filter(|e| e["kind"] != "valid") {
        let file = entry["file"].as_str().expect("file");
        let kind = entry["kind"].as_str().expect("kind");
        let want_code = entry["code"].as_str().expect("code");
        let want_ptr = entry["pointer"].as_str().expect("pointer");
        let path = corpus().join(kind).join(file);
        count += 1;
        let doc: Json = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        match Flow::from_source(&source(&path), &options_for(&path)) {
            Ok(_) => failures.push(format!("{kind}/{file}: accepted, expected {want_code} at {want_ptr}")),
            Err(diags) => {
                let hit = diags.iter().any(|d| d.is_error() && d.code.as_str() == want_code && pointer_matches(&doc, want_ptr, &d.pointer));
                if !hit {
                    let got: Vec<String> = diags
                        .iter()
                        .filter(|d| d.is_error())
                        .map(|d| format!("  got {} at {:?}: {}", d.code, d.pointer, d.message))
                        .collect();
                    failures.push(format!("{kind}/{file}: expected {want_code} at {want_ptr:?}\n{}", got.join("\n")));
                }
            }
        }
    }
    assert!(count >= 31, "expected the 31 rejected documents of the corpus, found {count}");
    assert!(failures.is_empty(), "{} documents did not get their diagnostic:\n{}", failures.len(), failures.join("\n"));
}
