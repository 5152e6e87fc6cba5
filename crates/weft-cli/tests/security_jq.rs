//! A flow document's jq queries cannot reach outside their input or run without end, in an output
//! parser (`PluginJsonOutputParser.properties`) or a map's `unpack_input`, in one run or a batch.
//! Each test is named after the attack it stops.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A secret the environment holds: no output may ever contain it.
const KEY: &str = "sk-weft-test-environment-key-0123456789";

/// Where a query sits, with the corpus document that has it.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// `PluginJsonOutputParser.properties.label` of an ExtendedLlmNode's prompt template.
    OutputParser,
    /// `unpack_input.section_name` of an ExtendedParallelMapNode.
    UnpackInput,
}

impl Place {
    const ALL: [Place; 2] = [Place::OutputParser, Place::UnpackInput];

    fn document(self) -> &'static str {
        match self {
            Place::OutputParser => "w_prompt_template_json_mode.json",
            Place::UnpackInput => "w_prompt_template_orchestrator.json",
        }
    }

    fn member(self) -> (&'static str, &'static str) {
        match self {
            Place::OutputParser => ("properties", "label"),
            Place::UnpackInput => ("unpack_input", "section_name"),
        }
    }

    fn component(self) -> &'static str {
        match self {
            Place::OutputParser => "PluginJsonOutputParser",
            Place::UnpackInput => "ExtendedParallelMapNode",
        }
    }

    fn input(self) -> &'static str {
        match self {
            Place::OutputParser => "email",
            Place::UnpackInput => "topic",
        }
    }
}

fn corpus_valid() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid")
}

/// Replaces the query at `place` with `query`, wherever the component sits in the document.
fn with_query(doc: &mut Json, place: Place, query: &str) -> usize {
    let (field, member) = place.member();
    let mut replaced = 0;
    match doc {
        Json::Object(m) => {
            let component = m.get("component_type").and_then(Json::as_str).unwrap_or_default().to_owned();
            if place.component() == component
                && let Some(Json::Object(queries)) = m.get_mut(field)
                && let Some(q) = queries.get_mut(member)
            {
                *q = Json::String(query.to_owned());
                replaced += 1;
            }
            for v in m.values_mut() {
                replaced += with_query(v, place, query);
            }
        }
        Json::Array(items) => {
            for v in items {
                replaced += with_query(v, place, query);
            }
        }
        _ => {}
    }
    replaced
}

/// Writes the document with `query` at `place` into `dir` and returns its path.
fn document(dir: &Path, place: Place, query: &str) -> PathBuf {
    let text = std::fs::read_to_string(corpus_valid().join(place.document())).unwrap();
    let mut doc: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(with_query(&mut doc, place, query), 1, "{place:?}: the document has one such query");
    let path = dir.join(format!("{place:?}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(dir)
        .env("OPENAI_API_KEY", KEY)
        .env("HOME", KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file the run left in `dir` and both streams, none holding the environment's key.
fn assert_no_key_anywhere(dir: &Path, out: &Output) {
    assert!(!text(&out.stdout).contains(KEY), "stdout holds the key");
    assert!(!text(&out.stderr).contains(KEY), "stderr holds the key");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let content = std::fs::read(&path).unwrap_or_default();
        assert!(!text(&content).contains(KEY), "{} holds the key", path.display());
    }
}

fn run_args<'a>(place: Place, file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let input = match place {
        Place::OutputParser => "email=hello",
        Place::UnpackInput => "topic=rust",
    };
    let mut args = vec!["run", file, "--llm", "simulated", "--input", input];
    args.extend_from_slice(extra);
    args
}

/// Checks that `query` is refused at `place`: by `weft validate` (bad_value at the query's
/// pointer), and by `weft run` and a batch, which exit 1 with nothing on stdout.
fn assert_refused(query: &str, name: &str) {
    for place in Place::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = document(dir.path(), place, query);
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();

        let out = weft(dir.path(), &["validate", "--format", "json", &file]);
        assert_eq!(out.status.code(), Some(1), "{place:?} `{query}`: {}", text(&out.stderr));
        let line: Json = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        let diagnostics = line["diagnostics"].as_array().unwrap();
        let (field, member) = place.member();
        let d = diagnostics
            .iter()
            .find(|d| d["pointer"].as_str().unwrap().ends_with(&format!("/{field}/{member}")))
            .unwrap_or_else(|| panic!("{place:?} `{query}`: no diagnostic at the query: {diagnostics:?}"));
        assert_eq!(d["code"], "bad_value");
        assert_eq!(d["severity"], "error");
        let message = d["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{name}` is not allowed")), "{message}");
        assert!(d["hint"].as_str().unwrap().contains("may only compute on the value"), "{d}");

        let out = weft(dir.path(), &run_args(place, &file, &[]));
        assert_eq!(out.status.code(), Some(1), "{place:?} `{query}`: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{place:?} `{query}` printed outputs: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("is not allowed"), "{}", text(&out.stderr));
        assert_no_key_anywhere(dir.path(), &out);

        let lines = format!("{{\"{0}\": \"a\"}}\n{{\"{0}\": \"b\"}}\n{{\"{0}\": \"c\"}}\n", place.input());
        std::fs::write(dir.path().join("lines.jsonl"), lines).unwrap();
        let out = weft(dir.path(), &["run", &file, "--llm", "simulated", "--batch", "lines.jsonl"]);
        assert_eq!(out.status.code(), Some(1), "{place:?} `{query}` batch: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{place:?} `{query}` batch printed outputs: {}", text(&out.stdout));
        assert_no_key_anywhere(dir.path(), &out);
    }
}

#[test]
fn jq_halt_cannot_end_the_process() {
    assert_refused("halt", "halt");
}

#[test]
fn jq_halt_error_cannot_fake_an_exit_code() {
    assert_refused("halt_error(3)", "halt_error");
}

#[test]
fn jq_env_cannot_read_the_environment() {
    assert_refused("env.OPENAI_API_KEY", "env");
}

#[test]
fn jq_dollar_env_cannot_read_the_environment() {
    assert_refused("$ENV.HOME", "$ENV");
}

#[test]
fn jq_input_cannot_read_more_input() {
    assert_refused("input", "input");
}

#[test]
fn jq_debug_cannot_write_to_stderr() {
    assert_refused("debug", "debug");
}

#[test]
fn jq_alias_through_def_is_refused() {
    assert_refused("def h: halt; h", "halt");
}

#[test]
fn jq_field_named_halt_is_accepted() {
    for place in Place::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = document(dir.path(), place, ".halt");
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let out = weft(dir.path(), &["validate", &file]);
        assert_eq!(out.status.code(), Some(0), "{place:?}: {}", text(&out.stderr));
        let out = weft(dir.path(), &run_args(place, &file, &[]));
        assert_eq!(out.status.code(), Some(0), "{place:?}: {}", text(&out.stderr));
        let outputs: Json = serde_json::from_slice(&out.stdout).unwrap();
        assert!(outputs.is_object());
    }
}

/// A query that never ends on its own fails its node with a clear error, in a run and in every
/// line of a batch.
fn assert_stopped(query: &str) {
    for place in Place::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = document(dir.path(), place, query);
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let out = weft(dir.path(), &["validate", &file]);
        assert_eq!(out.status.code(), Some(0), "a valid program: {}", text(&out.stderr));

        let out = weft(dir.path(), &run_args(place, &file, &[]));
        assert_eq!(out.status.code(), Some(1), "{place:?} `{query}`: {}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("the jq query `{query}` was stopped")), "{stderr}");

        let lines: String = (0..5).map(|i| format!("{{\"{}\": \"line {i}\"}}\n", place.input())).collect();
        std::fs::write(dir.path().join("lines.jsonl"), lines).unwrap();
        let out = weft(dir.path(), &["run", &file, "--llm", "simulated", "--batch", "lines.jsonl"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let results: Vec<Json> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(results.len(), 5, "every line is reported: {}", text(&out.stdout));
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r["index"], i);
            assert!(r["error"]["message"].as_str().unwrap().contains("was stopped"), "{r}");
            assert_eq!(r["error"]["kind"], "query", "{r}");
        }
    }
}

#[test]
fn jq_endless_recursion_is_stopped() {
    assert_stopped("def f: f; f");
}

#[test]
fn jq_huge_range_is_stopped() {
    assert_stopped("[range(1e9)] | length");
}

/// The peak resident memory of a process, watched through /proc until it exits.
fn run_watching_memory(dir: &Path, args: &[&str]) -> (Output, Duration, u64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = t.elapsed();
    let output = Output { status, stdout: out.join().unwrap().into_bytes(), stderr: err.join().unwrap().into_bytes() };
    (output, elapsed, peak_kb * 1024)
}

#[test]
fn jq_never_ending_batch_of_50_lines_is_bounded_in_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = document(dir.path(), Place::OutputParser, "def f: [f, f]; f");
    let file = path.file_name().unwrap().to_str().unwrap().to_owned();
    let lines: String = (0..50).map(|i| format!("{{\"email\": \"message {i}\"}}\n")).collect();
    std::fs::write(dir.path().join("lines.jsonl"), lines).unwrap();
    let (out, elapsed, peak) =
        run_watching_memory(dir.path(), &["run", &file, "--llm", "simulated", "--batch", "lines.jsonl", "--node-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let results: Vec<Json> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 50);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert!(r["error"]["message"].as_str().unwrap().contains("was stopped"), "{r}");
        assert_eq!(r["error"]["kind"], "query", "{r}");
    }
    // 50 lines at the default concurrency of 16 are 4 waves: at most 2 s each, plus 2 s.
    assert!(elapsed < Duration::from_secs(4 * 2 + 2), "the batch took {elapsed:?}");
    assert!(peak < 500 << 20, "peak RSS {} MB", peak >> 20);
    eprintln!("50 never-ending lines: {elapsed:?}, peak RSS {} MB", peak >> 20);
}
