//! Differential test of `weft validate` against `weft run`: whatever makes a run refuse a
//! document before its first call must already be reported by validate.
//!
//! For every valid corpus document and for mutations of them (the loader's generator,
//! `weft-flow/tests/support/mutate.rs`, with its `Garble` edit that breaks templates, jq queries
//! and reducers), in-process:
//!
//! - validate: `weft_flow::check_source` with the document's registry; rejected = an Error.
//! - run: when a flow was built, `Plan::new` as `tests/corpus.rs` does it (the simulated model
//!   for every LLM config, and every ServerTool name the document uses bound to a generic tool,
//!   so unbound tools, the tools file's business, never count; nor do stdio MCP servers, which
//!   only the user's `--allow-stdio-mcp` or tools file allows). A refusal line starting
//!   `not supported yet:` is an unsupported feature; any other is an error of the document.
//!   A flow with errors is compiled too (to compare pointers); if `Plan::new` panics on it, that
//!   is counted, not failed (the engine only promises to run checked flows).
//!
//! Asserted: for each refusal that is the document's error, validate reported an Error with a
//! non-empty pointer that is a prefix of (or equal to) the pointer the refusal names, or at least
//! inside the same component; for each `not supported yet` refusal, validate reported a
//! `not_runnable` diagnostic (a warning is fine) at that component or one of its fields.
//! On failure the report groups the discrepancies by refusal pattern, each with its smallest
//! example document.
//!
//! Also reported, never asserted: runs of valid flows (generated inputs, one `execute()`) that
//! fail before any LLM or tool call.
//!
//! `WEFT_DIFFERENTIAL_CASES` sets the number of mutated cases (default [`DEFAULT_CASES`]),
//! `WEFT_DIFFERENTIAL_SEED` the generator's seed (default 0, so every run draws the same cases).

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "a test fails loudly and prints its report")]

#[path = "../../weft-flow/tests/support/mutate.rs"]
mod mutate;

use mutate::{Case, DOCS, Output};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Map, Value as Json};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_exec::{Event, EventRecord, Plan, RunOptions, StartError, Status};
use weft_flow::{Code, Diagnostics, Flow, Severity, check_source};
use weft_llm::simulated::generate;
use weft_tools::{Tool, ToolError, ToolRegistry};

/// Mutated cases of a plain `cargo test`.
const DEFAULT_CASES: usize = 5_000;

/// The most of an example document a report prints.
const EXAMPLE_CHARS: usize = 4_000;

// ----- running a flow ---------------------------------------------------------------------

/// A server tool that answers values generated from its output schemas, and counts its calls.
struct Generic {
    outputs: Vec<Json>,
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Tool for Generic {
    async fn call(&self, _args: Map<String, Json>) -> Result<Json, ToolError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(match self.outputs.as_slice() {
            [one] => generate(one, 1),
            many => Json::Object(many.iter().map(|o| (o["title"].as_str().unwrap_or("output").to_owned(), generate(o, 1))).collect()),
        })
    }
}

/// Every ServerTool name the document uses, bound to a generic tool.
fn tools_for(flow: &Flow, calls: &Arc<AtomicUsize>) -> ToolRegistry {
    let mut registry = ToolRegistry::new();
    for (c, comp) in flow.spec().components.iter().enumerate() {
        if comp.is("ServerTool") {
            let outputs = flow.io(c).outputs.iter().map(|p| p.schema.clone()).collect();
            registry.register(comp.name.clone(), Generic { outputs, calls: Arc::clone(calls) });
        }
    }
    registry
}

/// Options as `tests/corpus.rs` has them: the simulated model for every LLM config, every server
/// tool bound, and the LLM requests and tool calls counted.
fn run_options(flow: &Flow, calls: &Arc<AtomicUsize>) -> RunOptions {
    let counted = Arc::clone(calls);
    let sink = move |r: &EventRecord<'_>| {
        if matches!(r.event, Event::LlmRequest { .. } | Event::ToolCall { .. } | Event::HttpRequest { .. }) {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    };
    // Requests of ApiNodes and RemoteTools are refused before a byte is sent: no test reaches the
    // internet.
    let http = weft_llm::http::HttpClient::new(weft_llm::http::HttpOptions {
        egress: weft_guard::EgressPolicy::parse(&["127.0.0.1"]).unwrap(),
        ..weft_llm::http::HttpOptions::default()
    })
    .unwrap();
    RunOptions { max_steps: 200, ..RunOptions::simulated() }
        .with_tools(tools_for(flow, calls))
        .with_events(Arc::new(sink))
        .with_http(Arc::new(http))
        // MCP transports go to a closed local port, never the internet.
        .with_mcp(weft_exec::McpOptions {
            rewrites: weft_llm::http::Rewrites::new(vec![
                ("https://".to_owned(), "http://127.0.0.1:9/".to_owned()),
                ("http://".to_owned(), "http://127.0.0.1:9/".to_owned()),
            ])
            .unwrap(),
            ..weft_exec::McpOptions::default()
        })
}

thread_local! {
    /// Set while `Plan::new` runs on a flow with errors: its panics are expected and not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn install_quiet_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(Cell::get) {
            previous(info);
        }
    }));
}

// ----- refusals ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `not supported yet: ...`.
    Unsupported,
    /// Anything else: an error of the document.
    Document,
}

/// One line of a `StartError`, with the pointer it names.
#[derive(Debug, Clone)]
struct Refusal {
    line: String,
    kind: Kind,
    /// The pointer named (` at <pointer>`), unescaped, `""` for the root; `None` when the line
    /// names no component of the flow.
    pointer: Option<String>,
    /// The pointer of the component named, unescaped.
    component: Option<String>,
    /// The same, as the document writes it (RFC 6901), to show the component.
    at: Option<String>,
    /// The line with its variable parts replaced, for grouping.
    pattern: String,
}

/// RFC 6901 pointer to a plain string (`~1` to `/`, `~0` to `~`): comparisons by prefix only.
fn unescape(pointer: &str) -> String {
    pointer.replace("~1", "/").replace("~0", "~")
}

/// Whether `p` is `prefix` or inside it.
fn within(p: &str, prefix: &str) -> bool {
    p == prefix || (p.starts_with(prefix) && p[prefix.len()..].starts_with('/'))
}

/// The component pointers of a flow (unescaped), longest first.
fn component_pointers(flow: &Flow) -> Vec<String> {
    let mut out: Vec<String> = flow.spec().components.iter().filter(|c| c.source == 0).map(|c| unescape(&c.pointer)).collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out.dedup();
    out
}

/// The innermost component whose pointer contains `p`.
fn owner<'a>(components: &'a [String], p: &str) -> Option<&'a str> {
    components.iter().find(|c| within(p, c)).map(String::as_str)
}

/// Replaces `"..."` and `` `...` `` by an ellipsis.
fn blank_quotes(s: &str) -> String {
    let mut out = String::new();
    let mut open: Option<char> = None;
    for ch in s.chars() {
        match open {
            Some(q) if ch == q => {
                out.push('…');
                out.push(q);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(ch);
                if ch == '"' || ch == '`' {
                    open = Some(ch);
                }
            }
        }
    }
    out
}

/// A field path for a pattern: indices `<i>`, the member of a map of queries or reducers `*`.
fn field_pattern(field: &str) -> String {
    let mut out = Vec::new();
    let mut member = false;
    for seg in field.split('/') {
        if member {
            out.push("*".to_owned());
            member = false;
        } else if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push("<i>".to_owned());
        } else {
            member = matches!(seg, "unpack_input" | "reducers" | "properties");
            out.push(seg.to_owned());
        }
    }
    out.join("/")
}

/// Splits a `StartError` into refusals and finds the pointer each names among the flow's
/// component pointers (printed as the engine prints them: `/` for the root).
fn refusals(flow: &Flow, error: &StartError) -> Vec<Refusal> {
    let spec = flow.spec();
    let mut printed: Vec<(String, String)> = spec
        .components
        .iter()
        .filter(|c| c.source == 0)
        .map(|c| (if c.pointer.is_empty() { "/".to_owned() } else { c.pointer.clone() }, unescape(&c.pointer)))
        .collect();
    printed.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    error
        .problems()
        .iter()
        .flat_map(|p| p.lines())
        // Starting a stdio MCP server is the user's decision, not the document's.
        .filter(|line| !line.contains("--allow-stdio-mcp"))
        .map(|line| {
            let kind = if line.starts_with("not supported yet:") { Kind::Unsupported } else { Kind::Document };
            let mut found = None;
            for (at, _) in line.match_indices(" at /") {
                let rest = &line[at + 4..];
                // The root (printed `/`) owns every pointer no other component owns.
                let hit = printed.iter().find(|(p, _)| {
                    p == "/"
                        || rest.starts_with(p.as_str())
                            && (rest.len() == p.len() || [":", " (", "/"].iter().any(|end| rest[p.len()..].starts_with(end)))
                });
                if let Some((p, plain)) = hit {
                    let after = if p == "/" { rest } else { &rest[p.len()..] };
                    let field = if after.starts_with('/') {
                        let end = [": ", " ("].iter().filter_map(|e| after.find(e)).min().unwrap_or(after.len());
                        &after[..end]
                    } else {
                        ""
                    };
                    let field = if p == "/" { field.trim_start_matches('/') } else { field };
                    let field = if p == "/" && !field.is_empty() { format!("/{field}") } else { field.to_owned() };
                    found = Some((at + 4, p.clone(), plain.clone(), field));
                    break;
                }
            }
            let (pointer, component, at, pattern) = match found {
                Some((start, printed_ptr, plain, field)) => {
                    let head = blank_quotes(&line[..start]);
                    // A field of the root is printed without the root's own `/`.
                    let root_field = printed_ptr == "/" && !field.is_empty();
                    let tail_start = start + if root_field { 0 } else { printed_ptr.len() } + field.len();
                    let tail = line.get(tail_start..).unwrap_or("");
                    // Keep the problem's first clause: `: the template does not compile: <why>`.
                    let tail = match tail.strip_prefix(": ") {
                        Some(t) => format!(": {}", t.split(": ").next().unwrap_or("")),
                        None => tail.to_owned(),
                    };
                    let mut pattern = format!("{head}<ptr>{}{}", field_pattern(&field), blank_quotes(&tail));
                    // A root that is not a flow: one group, whatever its type (see `variant`).
                    if printed_ptr == "/" && kind == Kind::Unsupported && tail.contains("whose root is a Flow") {
                        pattern = format!("not supported yet: <root type> at <ptr>{}", blank_quotes(&tail));
                    }
                    let at = if printed_ptr == "/" { String::new() } else { printed_ptr };
                    (Some(format!("{plain}{field}")), Some(plain), Some(at), pattern)
                }
                None => (None, None, None, blank_quotes(line)),
            };
            Refusal { line: line.to_owned(), kind, pointer, component, at, pattern }
        })
        .collect()
}

/// Whether validate's diagnostics account for the refusal.
fn reported(r: &Refusal, diags: &Diagnostics, components: &[String]) -> bool {
    diags.iter().filter(|d| d.file.is_none()).any(|d| {
        let p = unescape(&d.pointer);
        let same_component = || r.component.as_deref().is_some_and(|c| owner(components, &p) == Some(c));
        match r.kind {
            Kind::Document => {
                d.severity == Severity::Error
                    && !d.pointer.is_empty()
                    && match &r.pointer {
                        Some(rp) => within(rp, &p) || within(&p, rp) || same_component(),
                        None => true,
                    }
            }
            Kind::Unsupported => {
                d.code == Code::NotRunnable && r.pointer.as_deref().is_some_and(|rp| within(&p, rp) || within(rp, &p)) && same_component()
            }
        }
    })
}

// ----- one case -----------------------------------------------------------------------------

/// What went wrong in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// A document error the run refuses, no Error from validate at all.
    Accepted,
    /// A document error the run refuses; validate rejects, but nowhere near.
    Elsewhere,
    /// `not supported yet` with no `not_runnable` there.
    NotFlagged,
    /// `Plan::new` panicked on a flow validate accepted.
    PlanPanicked,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Accepted => "run refuses the document, validate accepts it",
            Class::Elsewhere => "run refuses the document, validate rejects it but not at the refusal's pointer or component",
            Class::NotFlagged => "run says `not supported yet`, validate has no `not_runnable` there",
            Class::PlanPanicked => "Plan::new panicked on a document validate accepts",
        }
    }
}

struct Finding {
    class: Class,
    /// What varies inside the group: the root's type for a root that is not a flow.
    variant: Option<String>,
    pattern: String,
    line: String,
    pointer: String,
    /// The component the refusal names, as an RFC 6901 pointer.
    at: Option<String>,
}

#[derive(Default)]
struct Outcome {
    findings: Vec<Finding>,
    validate_rejected: bool,
    plan_built: bool,
    plan_refused_document: bool,
    plan_refused_unsupported: bool,
    plan_panicked_on_invalid: bool,
    /// A valid flow's run that failed before any call: its message.
    early_run_failure: Option<String>,
    diags: String,
}

fn judge(source: &weft_flow::Source, options: &weft_flow::LoadOptions, rt: &tokio::runtime::Runtime) -> Outcome {
    let (flow, diags) = check_source(source, options);
    let mut out = Outcome { validate_rejected: diags.has_errors(), diags: diags.to_string(), ..Outcome::default() };
    let Some(flow) = flow else { return out };
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = run_options(&flow, &calls);
    QUIET.with(|q| q.set(out.validate_rejected));
    let planned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Plan::new(&flow, opts)));
    QUIET.with(|q| q.set(false));
    let plan = match planned {
        Err(_) if out.validate_rejected => {
            out.plan_panicked_on_invalid = true;
            return out;
        }
        Err(panic) => {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()));
            let line = format!("Plan::new panicked: {}", msg.unwrap_or_default());
            out.findings.push(Finding {
                class: Class::PlanPanicked,
                variant: None,
                pattern: blank_quotes(&line),
                line,
                pointer: String::new(),
                at: None,
            });
            return out;
        }
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) => {
            let components = component_pointers(&flow);
            for r in refusals(&flow, &e) {
                match r.kind {
                    Kind::Document => out.plan_refused_document = true,
                    Kind::Unsupported => out.plan_refused_unsupported = true,
                }
                if reported(&r, &diags, &components) {
                    continue;
                }
                let class = match r.kind {
                    Kind::Unsupported => Class::NotFlagged,
                    Kind::Document if diags.has_errors() => Class::Elsewhere,
                    Kind::Document => Class::Accepted,
                };
                let variant =
                    r.pattern.starts_with("not supported yet: <root type>").then(|| flow.spec().get(flow.spec().root).ty.name.to_owned());
                out.findings.push(Finding {
                    class,
                    variant,
                    pattern: r.pattern,
                    pointer: r.pointer.unwrap_or_else(|| "?".into()),
                    line: r.line,
                    at: r.at,
                });
            }
            return out;
        }
    };
    out.plan_built = true;
    if out.validate_rejected {
        return out;
    }
    // A valid flow: one execute() with generated inputs; a failure before any call is reported.
    let inputs: Map<String, Json> = plan.inputs().iter().map(|p| (p.title().to_owned(), generate(&p.schema, 1))).collect();
    let result = match plan.start(inputs) {
        Err(e) => Some(format!("start: {e}")),
        Ok(mut run) => match rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), run.execute()).await }) {
            Ok(Err(e)) => Some(format!("{:?}: {}", e.kind, e.message)),
            Ok(Ok(Status::Finished { .. } | Status::InputRequired { .. })) | Err(_) => None,
        },
    };
    if calls.load(Ordering::Relaxed) == 0 {
        out.early_run_failure = result;
    }
    out
}

// ----- the test ---------------------------------------------------------------------------

fn env_number(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{key} must be a number, not {v:?}"))).unwrap_or(default)
}

/// A case to report: a corpus document (no edit) or a mutated one.
enum Input {
    Corpus(usize),
    /// The n-th case drawn from the seed.
    Mutated(u64, Case),
}

impl Input {
    fn describe(&self) -> String {
        match self {
            Input::Corpus(i) => format!("{} (unmutated)", DOCS[*i].name),
            Input::Mutated(n, c) => format!("case {n}: {} with {:?} written as {:?}", c.doc().name, c.mutations, c.output),
        }
    }

    fn value(&self) -> Json {
        match self {
            Input::Corpus(i) => DOCS[*i].value.clone(),
            Input::Mutated(_, c) => c.value(),
        }
    }
}

struct Group {
    count: usize,
    variants: BTreeMap<String, usize>,
    example: String,
    size: usize,
    line: String,
    pointer: String,
    case: String,
    diags: String,
    /// The component the refusal names, pretty.
    component: String,
}

#[derive(Default)]
struct Tally {
    cases: usize,
    rejected: usize,
    built: usize,
    refused_document: usize,
    refused_unsupported: usize,
    panicked_on_invalid: usize,
    discrepant_cases: usize,
    groups: BTreeMap<(Class, String), Group>,
    early: BTreeMap<String, (usize, String, String)>,
}

impl Tally {
    fn add(&mut self, input: &Input, out: Outcome) {
        self.cases += 1;
        self.rejected += usize::from(out.validate_rejected);
        self.built += usize::from(out.plan_built);
        self.refused_document += usize::from(out.plan_refused_document);
        self.refused_unsupported += usize::from(out.plan_refused_unsupported);
        self.panicked_on_invalid += usize::from(out.plan_panicked_on_invalid);
        self.discrepant_cases += usize::from(!out.findings.is_empty());
        if let Some(why) = out.early_run_failure {
            let key = blank_quotes(why.split(": ").take(2).collect::<Vec<_>>().join(": ").as_str());
            let e = self.early.entry(key).or_insert_with(|| (0, input.describe(), why.clone()));
            e.0 += 1;
        }
        if out.findings.is_empty() {
            return;
        }
        let value = input.value();
        let example = serde_json::to_string_pretty(&value).unwrap_or_default();
        for f in out.findings {
            let g = self.groups.entry((f.class, f.pattern)).or_insert_with(|| Group {
                count: 0,
                variants: BTreeMap::new(),
                example: String::new(),
                size: usize::MAX,
                line: String::new(),
                pointer: String::new(),
                case: String::new(),
                diags: String::new(),
                component: String::new(),
            });
            g.count += 1;
            if let Some(v) = f.variant {
                *g.variants.entry(v).or_default() += 1;
            }
            if example.len() < g.size {
                g.size = example.len();
                g.example = example.clone();
                g.line = f.line;
                g.pointer = f.pointer;
                g.case = input.describe();
                g.diags = out.diags.clone();
                g.component =
                    f.at.as_deref()
                        .and_then(|at| value.pointer(at))
                        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
                        .unwrap_or_default();
            }
        }
    }

    fn report(&self, elapsed: Duration) -> String {
        let mut s = String::new();
        let findings: usize = self.groups.values().map(|g| g.count).sum();
        let _ = writeln!(
            s,
            "{} cases in {elapsed:.1?}: validate rejected {}, plans built {}, refused by the document {}, refused as not supported {}, Plan::new panicked on {} invalid flows",
            self.cases, self.rejected, self.built, self.refused_document, self.refused_unsupported, self.panicked_on_invalid
        );
        let _ = writeln!(s, "{} discrepancies in {} cases, {} groups", findings, self.discrepant_cases, self.groups.len());
        let _ = writeln!(s, "\ngroups (count, class, refusal pattern, example pointer):");
        for ((c, pattern), g) in &self.groups {
            let _ = writeln!(s, "  {:>5} × [{c:?}] {pattern}  e.g. {}", g.count, if g.pointer.is_empty() { "\"\"" } else { &g.pointer });
        }
        let mut class = None;
        for ((c, pattern), g) in &self.groups {
            if class != Some(*c) {
                let _ = writeln!(s, "\n=== {} ===", c.describe());
                class = Some(*c);
            }
            let _ = writeln!(s, "\n--- {} × {pattern}", g.count);
            let _ = writeln!(s, "    pointer: {}", g.pointer);
            if !g.variants.is_empty() {
                let v: Vec<String> = g.variants.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let _ = writeln!(s, "    of which: {}", v.join(", "));
            }
            let _ = writeln!(s, "    refusal: {}", g.line);
            let _ = writeln!(s, "    case: {}", g.case);
            let diags = if g.diags.is_empty() { "(none)\n".to_owned() } else { g.diags.clone() };
            let _ = write!(s, "    validate said: {}", diags.lines().take(8).collect::<Vec<_>>().join("\n      "));
            if !g.component.is_empty() {
                let (comp, cut) = weft_spec::text::excerpt(&g.component, EXAMPLE_CHARS / 2);
                let _ = write!(s, "\n    the component it names{}:\n{comp}", if cut { " (cut)" } else { "" });
            }
            let (doc, cut) = weft_spec::text::excerpt(&g.example, EXAMPLE_CHARS);
            let _ = writeln!(s, "\n    smallest example ({} bytes{}):\n{doc}", g.size, if cut { ", cut" } else { "" });
        }
        if !self.early.is_empty() {
            let _ = writeln!(s, "\n=== not asserted: valid flows whose run failed before any LLM or tool call ===");
            for (pattern, (count, case, why)) in &self.early {
                let _ = writeln!(s, "{count} × {pattern}\n    e.g. {case}\n    {why}");
            }
        }
        s
    }
}

#[test]
fn whatever_run_refuses_validate_reports() {
    let cases = env_number("WEFT_DIFFERENTIAL_CASES", DEFAULT_CASES as u64);
    let seed = env_number("WEFT_DIFFERENTIAL_SEED", 0);
    install_quiet_hook();
    // One thread with a large stack (the engine compiles nested flows recursively) and one
    // runtime for the runs; check_source runs on its own large-stack thread anyway.
    let worker = std::thread::Builder::new().name("differential".into()).stack_size(64 << 20).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let started = Instant::now();
        let mut tally = Tally::default();
        for (i, doc) in DOCS.iter().enumerate() {
            let (text, format) = mutate::write(&doc.value, Output::Pretty);
            let out = judge(&weft_flow::Source::new(doc.name.clone(), text, format), &doc.options(), &rt);
            tally.add(&Input::Corpus(i), out);
        }
        let mut runner = TestRunner::new(Config { rng_seed: RngSeed::Fixed(seed), ..Config::default() });
        let strategy = mutate::runtime_case();
        for n in 0..cases {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            let out = judge(&case.source(), &case.doc().options(), &rt);
            tally.add(&Input::Mutated(n, case), out);
        }
        (tally, started.elapsed())
    });
    let (tally, elapsed) = worker.unwrap().join().unwrap();
    let report = tally.report(elapsed);
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-report.txt");
    let _ = std::fs::write(&file, &report);
    if tally.groups.is_empty() {
        eprintln!("{}", report.lines().take(2).collect::<Vec<_>>().join("\n"));
    }
    assert!(
        tally.groups.is_empty(),
        "validate misses what run refuses (seed {seed}; this report is also in {}):\n{report}",
        file.display()
    );
}

/// The refusal parser finds the pointers the engine prints.
#[test]
fn refusal_lines_are_parsed() {
    // The SSE document with client certificates, which Weft does not run yet.
    let doc = DOCS.iter().find(|d| d.name == "p_mcp_tool_sse.json").unwrap();
    let text = doc.value.to_string().replace(
        "\"component_type\":\"SSETransport\",",
        "\"component_type\":\"SSEmTLSTransport\",\"key_file\":\"k.pem\",\"cert_file\":\"c.pem\",\"ca_file\":\"ca.pem\",",
    );
    assert!(text.contains("SSEmTLSTransport"), "the SSE transport was not found");
    let flow = Flow::from_source(&weft_flow::Source::new("x.json", text, weft_flow::Format::Json), &doc.options()).unwrap().flow;
    let calls = Arc::new(AtomicUsize::new(0));
    let e = Plan::new(&flow, run_options(&flow, &calls)).unwrap_err();
    let rs = refusals(&flow, &e);
    assert!(!rs.is_empty(), "{e}");
    assert!(rs.iter().all(|r| r.kind == Kind::Unsupported && r.pointer.is_some()), "{rs:#?}");
    let r0 = rs
        .iter()
        .find(|r| r.pattern.starts_with("not supported yet: SSEmTLSTransport (an MCP transport with client certificates) at <ptr>"))
        .unwrap_or_else(|| panic!("{rs:#?}"));
    assert!(r0.pointer.as_deref().unwrap().starts_with('/'), "{rs:#?}");
    // A field of the root.
    let line = format!("not supported yet: Flow with something at /state (\"{}\")", flow.spec().get(flow.spec().root).name);
    let r = refusals(&flow, &StartError { diagnostics: vec![weft_spec::Diagnostic::new(weft_spec::Code::NotRunnable, "/state", line)] })
        .remove(0);
    assert_eq!(r.pointer.as_deref(), Some("/state"), "{r:#?}");
    assert_eq!(r.component.as_deref(), Some(""), "{r:#?}");
    // A field after the component's pointer.
    let comp = flow.spec().components.iter().find(|c| c.is("MCPTool")).unwrap();
    let line = format!("{} at {}/unpack_input/x: the jq query does not compile: oops: deep", comp.label(), comp.pointer);
    let r = refusals(&flow, &StartError { diagnostics: vec![weft_spec::Diagnostic::new(weft_spec::Code::Unbound, "", line)] }).remove(0);
    assert_eq!(r.kind, Kind::Document);
    assert_eq!(r.pointer, Some(format!("{}/unpack_input/x", comp.pointer)));
    assert_eq!(r.pattern, "MCPTool \"…\" at <ptr>/unpack_input/*: the jq query does not compile");
}
