//! The mutation generator of the loader's tests, shared by every test that mutates corpus
//! documents: `weft-flow`'s `tests/mutation.rs` (the loader never panics and stays coherent)
//! and `weft-exec`'s `tests/differential.rs` (whatever a run refuses, validate reported).
//! Included with `#[path]` (one file, no copy), so it needs only what both test crates have:
//! proptest, serde_json, weft-spec and weft-flow.
//!
//! Documents of the conformance corpus (`shared/agentspec/corpus/valid`, found from the
//! including crate's manifest directory, two levels under the workspace) are broken by random
//! edits that keep them close to real documents (a dropped or misspelt key, a swapped
//! `component_type`, a `$component_ref` retargeted to another entry, a missing key or its own
//! enclosing entry, a duplicated id, a value wrapped in deep nesting or replaced by another JSON
//! type, a duplicated list item, and, for the differential test, a template, jq query or
//! reducer garbled with a snippet only a run used to compile), then written as JSON, YAML or a
//! truncated text.

#![allow(dead_code, reason = "each including test uses part of the generator")]

use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;
use weft_flow::{Format, LoadOptions, Source};

/// YAML nested deeper than this is written as JSON instead. It is past the loader's own limit
/// (128 levels), so documents on both sides of the limit are generated; the cap only keeps
/// this generator's own recursive YAML writer shallow.
pub const MAX_YAML_DEPTH: usize = 200;

// ----- the corpus -----------------------------------------------------------------------

/// A corpus document: its name, its value, and the registry it needs (`X.refs.json`), if any.
pub struct Doc {
    /// The file name (`p_llm_flow_minimal.json`).
    pub name: String,
    /// The document.
    pub value: Json,
    /// Its registry (`X.refs.json`), if the corpus has one.
    pub registry: Option<Source>,
}

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/agentspec/corpus/valid"))
}

/// Every JSON document of the valid corpus (the YAML ones are the same documents).
pub static DOCS: LazyLock<Vec<Doc>> = LazyLock::new(|| {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the shared corpus (shared/agentspec/corpus/valid) is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".refs.json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "the corpus looks incomplete: {} documents", paths.len());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a corpus document");
            let value: Json = serde_json::from_str(&text).expect("corpus documents are JSON");
            let refs = path.with_extension("refs.json");
            let registry = refs.is_file().then(|| {
                let bytes = std::fs::read(&refs).expect("read a registry");
                Source::from_bytes(refs.display().to_string(), bytes).expect("registries are UTF-8")
            });
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Doc { name, value, registry }
        })
        .collect()
});

/// Every concrete `component_type`, plus a few that do not exist.
pub static TYPES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut types: Vec<&'static str> = weft_spec::catalog::names().collect();
    types.extend(["LLMNode", "Node", "", "flow", "Flow ", "UnknownComponent"]);
    types
});

// ----- mutations ------------------------------------------------------------------------

/// One edit. The numbers pick where and how; they are reduced modulo whatever they index, so
/// every mutation applies to every document (or is a no-op when it has no target).
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove a key of an object.
    DropKey(u32),
    /// Misspell a key (see [`respell`]).
    RenameKey(u32, u8),
    /// Set a `component_type` to another known type or an unknown one.
    SwapType(u32, u16),
    /// Point a `$component_ref` at another table key, a missing key, or its own enclosing
    /// table entry (a cycle).
    Retarget(u32, u8, u16),
    /// Give a component the id of another.
    DuplicateId(u32, u32),
    /// Wrap a value in `depth` levels of lists or objects.
    Nest(u32, u8, bool),
    /// Replace a value by one of another JSON type.
    Replace(u32, u8),
    /// Repeat an item of a list.
    DuplicateItem(u32, u32),
    /// Replace (or, when the flag is set, extend) a string where a run compiles something (a
    /// template, a jq query, a reducer name; any string when the document has none) with one
    /// of [`SNIPPETS`]. Only [`runtime_mutation`] generates it, so the loader's mutation test
    /// draws exactly what it drew before.
    Garble(u32, u8, bool),
}

/// Text a run compiles, broken or not: Jinja that does not compile, jq that does not compile
/// or that the sandbox refuses, unknown reducers, and a few valid ones for contrast.
pub const SNIPPETS: &[&str] = &[
    // Jinja.
    "{% if x %}",
    "{{ x | }}",
    "{{ x ",
    "{% for %}{% endfor %}",
    "{% endif %}",
    "{{ }}",
    "{# x",
    "{{ x }}",
    "{% if x %}y{% endif %}",
    // jq.
    ".[",
    "env",
    "halt",
    "$ENV.HOME",
    "input",
    "debug",
    ". |",
    "def f: env; f",
    ".",
    ".items | map(.x)",
    // Reducers.
    "concat",
    "Sum",
    "sum",
];

/// The keys whose string value a run compiles: template fields, and the members of output
/// parsers' `properties`, maps' `unpack_input` and `reducers`.
const COMPILED_FIELDS: &[&str] = &["prompt_template", "message", "message_template", "template", "content"];
const COMPILED_MAPS: &[&str] = &["properties", "unpack_input", "reducers"];

fn is_compiled_string(p: &[Step<'_>], v: &Json) -> bool {
    if !v.is_string() {
        return false;
    }
    match p {
        [.., Step::Key(k)] if COMPILED_FIELDS.contains(k) => true,
        [.., Step::Key(map), Step::Key(_)] => COMPILED_MAPS.contains(map),
        _ => false,
    }
}

fn is_string_value(p: &[Step<'_>], v: &Json) -> bool {
    v.is_string() && !p.is_empty()
}

/// How the mutated document is handed to the loader.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// Indented JSON.
    Pretty,
    /// JSON on one line.
    Compact,
    /// Block-style YAML.
    Yaml,
    /// JSON read as YAML (JSON is flow-style YAML).
    JsonAsYaml,
    /// Indented JSON cut short at a random character.
    Truncated(u32),
}

#[derive(Debug, Clone)]
pub struct Case {
    /// The index of the document in [`DOCS`].
    pub doc: usize,
    /// The edits, applied in order.
    pub mutations: Vec<Mutation>,
    /// How the result is written.
    pub output: Output,
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u32>().prop_map(Mutation::DropKey),
        (any::<u32>(), any::<u8>()).prop_map(|(at, how)| Mutation::RenameKey(at, how)),
        (any::<u32>(), any::<u16>()).prop_map(|(at, to)| Mutation::SwapType(at, to)),
        (any::<u32>(), any::<u8>(), any::<u16>()).prop_map(|(at, how, to)| Mutation::Retarget(at, how, to)),
        (any::<u32>(), any::<u32>()).prop_map(|(from, to)| Mutation::DuplicateId(from, to)),
        (any::<u32>(), 1..=200u8, any::<bool>()).prop_map(|(at, depth, lists)| Mutation::Nest(at, depth, lists)),
        (any::<u32>(), any::<u8>()).prop_map(|(at, with)| Mutation::Replace(at, with)),
        (any::<u32>(), any::<u32>()).prop_map(|(at, which)| Mutation::DuplicateItem(at, which)),
    ]
}

pub fn output() -> impl Strategy<Value = Output> {
    prop_oneof![
        3 => Just(Output::Pretty),
        2 => Just(Output::Compact),
        2 => Just(Output::Yaml),
        1 => Just(Output::JsonAsYaml),
        1 => any::<u32>().prop_map(Output::Truncated),
    ]
}

/// The mutations of [`mutation`] and, as often, [`Mutation::Garble`]: what the differential
/// test draws.
pub fn runtime_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => mutation(),
        1 => (any::<u32>(), any::<u8>(), any::<bool>()).prop_map(|(at, snippet, append)| Mutation::Garble(at, snippet, append)),
    ]
}

/// Cases for the differential test: 1 or 2 edits of [`runtime_mutation`], written whole (as
/// JSON or YAML, never truncated: a document that does not parse has nothing to compare).
pub fn runtime_case() -> impl Strategy<Value = Case> {
    let output = prop_oneof![2 => Just(Output::Pretty), 1 => Just(Output::Compact), 1 => Just(Output::Yaml)];
    (0..DOCS.len(), proptest::collection::vec(runtime_mutation(), 1..=2), output).prop_map(|(doc, mutations, output)| Case {
        doc,
        mutations,
        output,
    })
}

impl Doc {
    /// Load options with the document's registry, if it has one.
    pub fn options(&self) -> LoadOptions {
        LoadOptions { registries: self.registry.iter().cloned().collect(), ..LoadOptions::default() }
    }
}

impl Case {
    /// The corpus document the case edits.
    pub fn doc(&self) -> &'static Doc {
        &DOCS[self.doc]
    }

    /// The document after the edits.
    pub fn value(&self) -> Json {
        let mut value = self.doc().value.clone();
        for m in &self.mutations {
            apply(&mut value, m);
        }
        value
    }

    /// The edited document as the loader is given it.
    pub fn source(&self) -> Source {
        let (text, format) = write(&self.value(), self.output);
        Source::new(self.doc().name.clone(), text, format)
    }
}

pub fn case() -> impl Strategy<Value = Case> {
    (0..DOCS.len(), proptest::collection::vec(mutation(), 1..=4), output()).prop_map(|(doc, mutations, output)| Case {
        doc,
        mutations,
        output,
    })
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub type Path = Vec<Seg>;

/// A step of a path borrowed from the document, for walking without allocating.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Calls `f` on every value of `v` (the root included), depth first, with its path; stops
/// when `f` returns `true`.
pub fn walk<'a>(v: &'a Json, mut f: impl FnMut(&[Step<'a>], &'a Json) -> bool) {
    let mut path: Vec<Step<'a>> = Vec::new();
    let mut stack: Vec<(usize, Option<Step<'a>>, &'a Json)> = vec![(0, None, v)];
    while let Some((depth, step, v)) = stack.pop() {
        path.truncate(depth);
        if let Some(step) = step {
            path.push(step);
        }
        if f(&path, v) {
            return;
        }
        match v {
            Json::Object(m) => stack.extend(m.iter().rev().map(|(k, child)| (path.len(), Some(Step::Key(k.as_str())), child))),
            Json::Array(items) => stack.extend(items.iter().enumerate().rev().map(|(i, child)| (path.len(), Some(Step::Index(i)), child))),
            _ => {}
        }
    }
}

pub fn owned(path: &[Step<'_>]) -> Path {
    path.iter()
        .map(|s| match *s {
            Step::Key(k) => Seg::Key(k.to_owned()),
            Step::Index(i) => Seg::Index(i),
        })
        .collect()
}

/// The path of the `at`-th value (modulo their number) for which `want` holds.
pub fn nth(doc: &Json, at: u32, want: impl Fn(&[Step<'_>], &Json) -> bool) -> Option<Path> {
    let mut count = 0usize;
    walk(doc, |p, v| {
        count += usize::from(want(p, v));
        false
    });
    if count == 0 {
        return None;
    }
    let mut target = at as usize % count;
    let mut found = None;
    walk(doc, |p, v| {
        if want(p, v) {
            if target == 0 {
                found = Some(owned(p));
                return true;
            }
            target -= 1;
        }
        false
    });
    found
}

/// Every path for which `want` holds.
pub fn paths_where(doc: &Json, want: impl Fn(&[Step<'_>], &Json) -> bool) -> Vec<Path> {
    let mut out = Vec::new();
    walk(doc, |p, v| {
        if want(p, v) {
            out.push(owned(p));
        }
        false
    });
    out
}

pub fn any_value(_: &[Step<'_>], _: &Json) -> bool {
    true
}

pub fn is_key(p: &[Step<'_>], _: &Json) -> bool {
    matches!(p.last(), Some(Step::Key(_)))
}

pub fn get<'a>(v: &'a Json, path: &[Seg]) -> Option<&'a Json> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}

pub fn get_mut<'a>(v: &'a mut Json, path: &[Seg]) -> Option<&'a mut Json> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k),
        Seg::Index(i) => v.get_mut(i),
    })
}

pub fn pick<T>(items: &[T], at: u32) -> Option<&T> {
    if items.is_empty() { None } else { items.get(at as usize % items.len()) }
}

/// A plausible misspelling of `key`.
pub fn respell(key: &str, how: u8) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    match how % 7 {
        // Case change: `LlmNode` habits applied to field names.
        0 => {
            if let Some(c) = chars.first_mut() {
                *c = if c.is_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() };
            }
        }
        // A letter missing.
        1 => {
            chars.pop();
        }
        // A plural.
        2 => chars.push('s'),
        // snake_case to camelCase.
        3 => {
            let mut out = Vec::new();
            let mut upper = false;
            for c in chars {
                if c == '_' {
                    upper = true;
                } else {
                    out.push(if upper { c.to_ascii_uppercase() } else { c });
                    upper = false;
                }
            }
            chars = out;
        }
        // Two letters swapped.
        4 => {
            if chars.len() >= 2 {
                let i = usize::from(how) % (chars.len() - 1);
                chars.swap(i, i + 1);
            }
        }
        // A stray space.
        5 => chars.push(' '),
        // The `$` lost (`component_ref`, `referenced_components`).
        _ => {
            if chars.first() == Some(&'$') {
                chars.remove(0);
            } else {
                chars.insert(0, '$');
            }
        }
    }
    chars.into_iter().collect()
}

/// Keys of every `$referenced_components` table.
pub fn table_keys(doc: &Json) -> Vec<String> {
    let mut keys = Vec::new();
    walk(doc, |p, v| {
        if let (Some(Step::Key("$referenced_components")), Json::Object(m)) = (p.last(), v) {
            keys.extend(m.keys().cloned());
        }
        false
    });
    keys
}

/// Paths of the objects having key `key`.
pub fn objects_with(doc: &Json, key: &str) -> Vec<Path> {
    paths_where(doc, |_, v| v.get(key).is_some())
}

/// Splits a path to a key into the path of its object and the key.
pub fn split_key(path: Path) -> Option<(Path, String)> {
    let mut path = path;
    match path.pop() {
        Some(Seg::Key(k)) => Some((path, k)),
        _ => None,
    }
}

pub fn apply(doc: &mut Json, m: &Mutation) {
    match *m {
        Mutation::DropKey(at) => {
            if let Some((parent, key)) = nth(doc, at, is_key).and_then(split_key)
                && let Some(Json::Object(map)) = get_mut(doc, &parent)
            {
                map.shift_remove(&key);
            }
        }
        Mutation::RenameKey(at, how) => {
            if let Some((parent, key)) = nth(doc, at, is_key).and_then(split_key)
                && let Some(Json::Object(map)) = get_mut(doc, &parent)
            {
                let index = map.keys().position(|k| *k == key).unwrap_or(0);
                if let Some(v) = map.shift_remove(&key) {
                    map.shift_insert(index.min(map.len()), respell(&key, how), v);
                }
            }
        }
        Mutation::SwapType(at, to) => {
            let path = nth(doc, at, |_, v| v.get("component_type").is_some());
            if let (Some(path), Some(ty)) = (path, pick(&TYPES, u32::from(to)))
                && let Some(v) = get_mut(doc, &path)
            {
                v["component_type"] = json!(ty);
            }
        }
        Mutation::Retarget(at, how, to) => {
            let Some(path) = nth(doc, at, |_, v| v.get("$component_ref").is_some()) else { return };
            let keys = table_keys(doc);
            let target = match how % 3 {
                // Another entry (often of the wrong kind, or out of scope).
                0 => pick(&keys, u32::from(to)).cloned().unwrap_or_else(|| "missing".into()),
                // A key defined nowhere, sometimes a near miss.
                1 => {
                    let base = pick(&keys, u32::from(to)).cloned().unwrap_or_default();
                    if to % 2 == 0 { respell(&base, how) } else { format!("missing-{to}") }
                }
                // The table entry the reference is in: a cycle.
                _ => enclosing_entry(&path).or_else(|| pick(&keys, u32::from(to)).cloned()).unwrap_or_default(),
            };
            if let Some(v) = get_mut(doc, &path) {
                v["$component_ref"] = json!(target);
            }
        }
        Mutation::DuplicateId(from, to) => {
            let with_id = |_: &[Step<'_>], v: &Json| v.get("id").is_some();
            let id = nth(doc, from, with_id).and_then(|p| get(doc, &p).map(|v| v["id"].clone()));
            if let (Some(id), Some(path)) = (id, nth(doc, to, with_id))
                && let Some(v) = get_mut(doc, &path)
            {
                v["id"] = id;
            }
        }
        Mutation::Nest(at, depth, lists) => {
            if let Some(v) = nth(doc, at, any_value).and_then(|p| get_mut(doc, &p)) {
                let mut inner = v.take();
                for _ in 0..depth {
                    inner = if lists { Json::Array(vec![inner]) } else { json!({ "a": inner }) };
                }
                *v = inner;
            }
        }
        Mutation::Replace(at, with) => {
            if let Some(v) = nth(doc, at, any_value).and_then(|p| get_mut(doc, &p)) {
                *v = match with % 8 {
                    0 => Json::Null,
                    1 => json!(-1),
                    2 => json!(1.5e300),
                    3 => json!(""),
                    4 => json!("{{ x }}"),
                    5 => json!([]),
                    6 => json!({}),
                    _ => json!(true),
                };
            }
        }
        Mutation::Garble(at, snippet, append) => {
            let path = nth(doc, at, is_compiled_string).or_else(|| nth(doc, at, is_string_value));
            let snippet = pick(SNIPPETS, u32::from(snippet)).copied().unwrap_or_default();
            if let Some(Json::String(s)) = path.and_then(|p| get_mut(doc, &p)) {
                if append {
                    s.push_str(snippet);
                } else {
                    *s = snippet.to_owned();
                }
            }
        }
        Mutation::DuplicateItem(at, which) => {
            let path = nth(doc, at, |_, v| v.as_array().is_some_and(|a| !a.is_empty()));
            if let Some(Json::Array(items)) = path.and_then(|p| get_mut(doc, &p)) {
                let i = which as usize % items.len();
                let item = items[i].clone();
                items.insert(i + 1, item);
            }
        }
    }
}

/// The key of the innermost `$referenced_components` entry containing `path`.
pub fn enclosing_entry(path: &[Seg]) -> Option<String> {
    path.windows(2).rev().find_map(|w| match w {
        [Seg::Key(table), Seg::Key(key)] if table == "$referenced_components" => Some(key.clone()),
        _ => None,
    })
}

// ----- writing ----------------------------------------------------------------------------

pub fn depth(v: &Json) -> usize {
    match v {
        Json::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Json::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub fn yaml_scalar(v: &Json) -> String {
    match v {
        Json::Object(_) => "{}".into(),
        Json::Array(_) => "[]".into(),
        // JSON strings, numbers, booleans and null are valid YAML 1.2 flow scalars.
        other => other.to_string(),
    }
}

pub fn is_empty_container(v: &Json) -> bool {
    v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
}

/// Block-style YAML: mappings and sequences one entry per line, scalars as JSON.
pub fn to_yaml(v: &Json, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Json::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = Json::String(k.clone());
                if child.is_object() && !is_empty_container(child) || child.is_array() && !is_empty_container(child) {
                    let _ = writeln!(out, "{pad}{key}:");
                    to_yaml(child, indent + 2, out);
                } else {
                    let _ = writeln!(out, "{pad}{key}: {}", yaml_scalar(child));
                }
            }
        }
        Json::Array(items) if !items.is_empty() => {
            for item in items {
                if is_empty_container(item) || !(item.is_object() || item.is_array()) {
                    let _ = writeln!(out, "{pad}- {}", yaml_scalar(item));
                } else {
                    let _ = writeln!(out, "{pad}-");
                    to_yaml(item, indent + 2, out);
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(other));
        }
    }
}

pub fn write(doc: &Json, output: Output) -> (String, Format) {
    let yaml_ok = depth(doc) <= MAX_YAML_DEPTH;
    match output {
        Output::Yaml if yaml_ok => {
            let mut s = String::new();
            to_yaml(doc, 0, &mut s);
            (s, Format::Yaml)
        }
        Output::JsonAsYaml if yaml_ok => (doc.to_string(), Format::Yaml),
        Output::Compact => (doc.to_string(), Format::Json),
        Output::Truncated(at) => {
            let text = serde_json::to_string_pretty(doc).expect("a value serializes");
            let mut cut = at as usize % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (text[..cut].to_owned(), Format::Json)
        }
        _ => (serde_json::to_string_pretty(doc).expect("a value serializes"), Format::Json),
    }
}
