//! Structure-aware mutation testing (proptest): documents of the conformance corpus, broken by
//! 1 to 4 random edits that keep them close to real documents (a dropped or misspelt key, a
//! swapped `component_type`, a `$component_ref` retargeted to another entry, a missing key or
//! its own enclosing entry, a duplicated id, a value wrapped in deep nesting or replaced by
//! another JSON type, a duplicated list item), written as JSON, YAML or a truncated text.
//!
//! Whatever the edits, `check_source` must not panic, and its result must be coherent: either
//! a flow and no error, or at least one error; every pointer is `""` or starts with `/`;
//! no message or hint is empty; every line number is inside the document.
//!
//! The case count defaults to [`DEFAULT_CASES`] (100,000); set `WEFT_MUTATION_CASES` (or
//! `PROPTEST_CASES`) to choose, e.g. `WEFT_MUTATION_CASES=1000000 cargo test --release -p
//! weft-flow --test mutation`.
//! Each case runs on a 2 MiB thread with a time limit, so a hang fails the test (with the
//! case) instead of stalling CI; a stack overflow still aborts the process.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value as Json, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, mpsc};
use std::time::{Duration, Instant};
use weft_flow::{Format, LoadOptions, Source, check_source};

/// Cases run by a plain `cargo test`. A case takes ~1.5 ms in the test profile (the loader
/// crates are built with opt-level 2 there, see the workspace Cargo.toml) and ~1 ms in
/// release, so 100,000 cases take about 2.5 minutes on 2 cores.
const DEFAULT_CASES: u32 = 100_000;

/// YAML nested deeper than this is written as JSON instead. It is past the loader's own limit
/// (128 levels), so documents on both sides of the limit are generated; the cap only keeps
/// this test's own recursive YAML writer shallow.
const MAX_YAML_DEPTH: usize = 200;

// ----- the corpus -----------------------------------------------------------------------

/// A corpus document: its name, its value, and the registry it needs (`X.refs.json`), if any.
struct Doc {
    name: String,
    value: Json,
    registry: Option<Source>,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/agentspec/corpus/valid"))
}

/// Every JSON document of the valid corpus (the YAML ones are the same documents).
static DOCS: LazyLock<Vec<Doc>> = LazyLock::new(|| {
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
static TYPES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut types: Vec<&'static str> = weft_spec::catalog::names().collect();
    types.extend(["LLMNode", "Node", "", "flow", "Flow ", "UnknownComponent"]);
    types
});

// ----- mutations ------------------------------------------------------------------------

/// One edit. The numbers pick where and how; they are reduced modulo whatever they index, so
/// every mutation applies to every document (or is a no-op when it has no target).
#[derive(Debug, Clone)]
enum Mutation {
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
}

/// How the mutated document is handed to the loader.
#[derive(Debug, Clone, Copy)]
enum Output {
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
struct Case {
    doc: usize,
    mutations: Vec<Mutation>,
    output: Output,
}

fn mutation() -> impl Strategy<Value = Mutation> {
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

fn output() -> impl Strategy<Value = Output> {
    prop_oneof![
        3 => Just(Output::Pretty),
        2 => Just(Output::Compact),
        2 => Just(Output::Yaml),
        1 => Just(Output::JsonAsYaml),
        1 => any::<u32>().prop_map(Output::Truncated),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (0..DOCS.len(), proptest::collection::vec(mutation(), 1..=4), output()).prop_map(|(doc, mutations, output)| Case {
        doc,
        mutations,
        output,
    })
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

type Path = Vec<Seg>;

/// A step of a path borrowed from the document, for walking without allocating.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Calls `f` on every value of `v` (the root included), depth first, with its path; stops
/// when `f` returns `true`.
fn walk<'a>(v: &'a Json, mut f: impl FnMut(&[Step<'a>], &'a Json) -> bool) {
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

fn owned(path: &[Step<'_>]) -> Path {
    path.iter()
        .map(|s| match *s {
            Step::Key(k) => Seg::Key(k.to_owned()),
            Step::Index(i) => Seg::Index(i),
        })
        .collect()
}

/// The path of the `at`-th value (modulo their number) for which `want` holds.
fn nth(doc: &Json, at: u32, want: impl Fn(&[Step<'_>], &Json) -> bool) -> Option<Path> {
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
fn paths_where(doc: &Json, want: impl Fn(&[Step<'_>], &Json) -> bool) -> Vec<Path> {
    let mut out = Vec::new();
    walk(doc, |p, v| {
        if want(p, v) {
            out.push(owned(p));
        }
        false
    });
    out
}

fn any_value(_: &[Step<'_>], _: &Json) -> bool {
    true
}

fn is_key(p: &[Step<'_>], _: &Json) -> bool {
    matches!(p.last(), Some(Step::Key(_)))
}

fn get<'a>(v: &'a Json, path: &[Seg]) -> Option<&'a Json> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}

fn get_mut<'a>(v: &'a mut Json, path: &[Seg]) -> Option<&'a mut Json> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k),
        Seg::Index(i) => v.get_mut(i),
    })
}

fn pick<T>(items: &[T], at: u32) -> Option<&T> {
    if items.is_empty() { None } else { items.get(at as usize % items.len()) }
}

/// A plausible misspelling of `key`.
fn respell(key: &str, how: u8) -> String {
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
fn table_keys(doc: &Json) -> Vec<String> {
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
fn objects_with(doc: &Json, key: &str) -> Vec<Path> {
    paths_where(doc, |_, v| v.get(key).is_some())
}

/// Splits a path to a key into the path of its object and the key.
fn split_key(path: Path) -> Option<(Path, String)> {
    let mut path = path;
    match path.pop() {
        Some(Seg::Key(k)) => Some((path, k)),
        _ => None,
    }
}

fn apply(doc: &mut Json, m: &Mutation) {
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
fn enclosing_entry(path: &[Seg]) -> Option<String> {
    path.windows(2).rev().find_map(|w| match w {
        [Seg::Key(table), Seg::Key(key)] if table == "$referenced_components" => Some(key.clone()),
        _ => None,
    })
}

// ----- writing ----------------------------------------------------------------------------

fn depth(v: &Json) -> usize {
    match v {
        Json::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Json::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn yaml_scalar(v: &Json) -> String {
    match v {
        Json::Object(_) => "{}".into(),
        Json::Array(_) => "[]".into(),
        // JSON strings, numbers, booleans and null are valid YAML 1.2 flow scalars.
        other => other.to_string(),
    }
}

fn is_empty_container(v: &Json) -> bool {
    v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
}

/// Block-style YAML: mappings and sequences one entry per line, scalars as JSON.
fn to_yaml(v: &Json, indent: usize, out: &mut String) {
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

fn write(doc: &Json, output: Output) -> (String, Format) {
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

// ----- the property ---------------------------------------------------------------------

/// How long one case may take before it counts as a hang. Cases take milliseconds.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The first case that hung. A hung check cannot be stopped, so once one is found every later
/// case (proptest's shrinking included) passes at once, and the test reports that case.
static HUNG: Mutex<Option<String>> = Mutex::new(None);

/// Loads the mutated document and checks the result's invariants; `Err` says what is wrong.
fn check_case(case: &Case) -> Result<(), String> {
    let doc = &DOCS[case.doc];
    let mut value = doc.value.clone();
    for m in &case.mutations {
        apply(&mut value, m);
    }
    let (text, format) = write(&value, case.output);
    let source = Source::new(doc.name.clone(), text, format);
    let options = LoadOptions { registries: doc.registry.iter().cloned().collect(), ..LoadOptions::default() };
    let (flow, diags) = check_source(&source, &options);

    if !diags.has_errors() && flow.is_none() {
        return Err(format!("no error, yet no flow:\n{diags}"));
    }
    let lines = source.text.matches('\n').count() + 1;
    for d in diags.iter() {
        if d.message.trim().is_empty() {
            return Err(format!("a diagnostic without a message: {d:?}"));
        }
        if !(d.pointer.is_empty() || d.pointer.starts_with('/')) {
            return Err(format!("a malformed pointer: {d:?}"));
        }
        if d.hint.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(format!("an empty hint: {d:?}"));
        }
        // The end of a text ending with a newline is on the line after the last one.
        if d.file.is_none() && d.line.is_some_and(|l| l == 0 || l > lines) {
            return Err(format!("a line out of the document ({lines} lines): {d:?}"));
        }
    }
    Ok(())
}

/// A thread with the default test stack (2 MiB) that runs cases one by one, so that a case
/// that hangs can be given up on.
struct Worker {
    cases: mpsc::Sender<Case>,
    results: mpsc::Receiver<Result<(), String>>,
}

impl Worker {
    fn new() -> Worker {
        let (cases, case_rx) = mpsc::channel::<Case>();
        let (result_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("mutation-cases".into())
            .stack_size(2 << 20)
            .spawn(move || {
                for case in case_rx {
                    let result = std::panic::catch_unwind(|| check_case(&case)).unwrap_or_else(|e| {
                        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()));
                        Err(format!("check_source panicked: {}", msg.unwrap_or_default()))
                    });
                    if result_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the case thread");
        Worker { cases, results }
    }

    /// Runs one case, catching panics and giving up after [`CASE_TIME_LIMIT`].
    fn run(&self, case: Case) -> Result<(), TestCaseError> {
        if HUNG.lock().map(|h| h.is_some()).unwrap_or(true) {
            return Ok(());
        }
        let shown = format!("{case:#?}");
        self.cases.send(case).map_err(|_| TestCaseError::fail("the case thread is gone"))?;
        match self.results.recv_timeout(CASE_TIME_LIMIT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestCaseError::fail(e)),
            Err(_) => {
                if let Ok(mut hung) = HUNG.lock() {
                    *hung = Some(shown);
                }
                Err(TestCaseError::fail(format!("the check took more than {CASE_TIME_LIMIT:?} (a hang)")))
            }
        }
    }
}

fn cases() -> u32 {
    ["WEFT_MUTATION_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("the case count must be a number, not {v:?}")))
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn mutated_corpus_documents_never_panic() {
    let config =
        Config { cases: cases(), failure_persistence: None, max_shrink_iters: 2_000, max_shrink_time: 60_000, ..Config::default() };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let worker = Worker::new();
    let started = Instant::now();
    let result = runner.run(&case(), |case| worker.run(case));
    if let Some(case) = HUNG.lock().ok().and_then(|h| h.clone()) {
        panic!("check_source hung (over {CASE_TIME_LIMIT:?}) on this case:\n{case}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    let elapsed = started.elapsed();
    println!("{cases} cases in {elapsed:.1?} ({:.0?} per case)", elapsed / cases.max(1));
}

#[test]
fn unmutated_corpus_documents_load_in_every_output() {
    for (i, doc) in DOCS.iter().enumerate() {
        for output in [Output::Pretty, Output::Compact, Output::Yaml, Output::JsonAsYaml] {
            let (text, format) = write(&doc.value, output);
            let options = LoadOptions { registries: doc.registry.iter().cloned().collect(), ..LoadOptions::default() };
            let (flow, diags) = check_source(&Source::new(doc.name.clone(), text, format), &options);
            assert!(flow.is_some() && !diags.has_errors(), "document {i} ({}) as {output:?} does not load:\n{diags}", doc.name);
        }
    }
}

#[test]
fn each_mutation_changes_something() {
    let doc = &DOCS.iter().find(|d| d.name == "p_llm_flow_minimal.json").expect("the minimal flow is in the corpus").value;
    let kinds: [fn(u8) -> Mutation; 10] = [
        |i| Mutation::DropKey(u32::from(i)),
        |i| Mutation::RenameKey(u32::from(i), i),
        |i| Mutation::SwapType(u32::from(i), u16::from(i)),
        |i| Mutation::Retarget(u32::from(i), 0, u16::from(i)),
        |i| Mutation::Retarget(u32::from(i), 1, u16::from(i)),
        |i| Mutation::Retarget(u32::from(i), 2, u16::from(i)),
        |i| Mutation::DuplicateId(u32::from(i), u32::from(i) + 1),
        |i| Mutation::Nest(u32::from(i), 3, i % 2 == 0),
        |i| Mutation::Replace(u32::from(i), i),
        |i| Mutation::DuplicateItem(u32::from(i), u32::from(i)),
    ];
    for kind in kinds {
        let changed = (0..20).filter(|&i| {
            let mut v = doc.clone();
            apply(&mut v, &kind(i));
            &v != doc
        });
        assert!(changed.count() >= 10, "{:?} rarely changes the document", kind(0));
    }
    // Retargeting a reference inside a table entry to that entry makes a cycle.
    let doc = &DOCS.iter().find(|d| d.name == "p_shared_components.json").expect("a corpus document with nested references").value;
    let refs = objects_with(doc, "$component_ref");
    let inside = refs.iter().position(|p| enclosing_entry(p).is_some()).expect("a reference inside a table entry");
    let mut v = doc.clone();
    apply(&mut v, &Mutation::Retarget(u32::try_from(inside).expect("a small index"), 2, 0));
    let (_, diags) = check_source(&Source::new("x.json", v.to_string(), Format::Json), &LoadOptions::default());
    assert!(diags.iter().any(|d| d.code.as_str() == "ref_cycle"), "{diags}");
}
