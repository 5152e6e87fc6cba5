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
//!
//! The generator (corpus, mutations, writers) is `tests/support/mutate.rs`, shared with
//! `weft-exec`'s differential test.

#[path = "support/mutate.rs"]
mod mutate;

use mutate::{Case, DOCS, Mutation, Output, apply, case, enclosing_entry, objects_with, write};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};
use weft_flow::{Format, LoadOptions, Source, check_source};

/// Cases run by a plain `cargo test`. A case takes ~1.5 ms in the test profile (the loader
/// crates are built with opt-level 2 there, see the workspace Cargo.toml) and ~1 ms in
/// release, so 100,000 cases take about 2.5 minutes on 2 cores.
const DEFAULT_CASES: u32 = 100_000;

// ----- the property ---------------------------------------------------------------------

/// How long one case may take before it counts as a hang. Cases take milliseconds.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The first case that hung. A hung check cannot be stopped, so once one is found every later
/// case (proptest's shrinking included) passes at once, and the test reports that case.
static HUNG: Mutex<Option<String>> = Mutex::new(None);

/// Loads the mutated document and checks the result's invariants; `Err` says what is wrong.
fn check_case(case: &Case) -> Result<(), String> {
    let source = case.source();
    let (flow, diags) = check_source(&source, &case.doc().options());

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
            let (flow, diags) = check_source(&Source::new(doc.name.clone(), text, format), &doc.options());
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
