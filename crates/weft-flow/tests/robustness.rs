//! Hostile and broken input: whatever the bytes, loading never panics, never overflows the
//! stack and never hangs, and each kind of defect gets one clear diagnostic (its code, and a
//! message that says what is wrong).
//!
//! Every test runs with the default test-thread stack (2 MiB): that is the point. A stack
//! overflow aborts the whole process, so each test body runs in a child process (this same
//! test binary, filtered to the one test): a crash then fails that test alone, with its exit
//! status, instead of taking every other test down with it.

use serde_json::{Value as Json, json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_flow::{Code, Diagnostic, Diagnostics, Flow, Format, LoadOptions, Source, check_source};

// ----- harness --------------------------------------------------------------------------

/// The environment variable that tells a child process which test body to run.
const CHILD: &str = "WEFT_ROBUSTNESS_CHILD";

/// How long a test body may take before it counts as a hang.
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs `body` in a child process running only the test `name`, and fails if the child fails,
/// crashes (stack overflow, abort, out of memory) or hangs.
fn isolated(name: &str, body: impl FnOnce()) {
    isolated_within(name, TIME_LIMIT, body);
}

/// [`isolated`], with a time limit after which the child is killed.
fn isolated_within(name: &str, limit: Duration, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the path of the test binary");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary as a child process");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child process") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        panic!("`{name}` did not finish within {limit:?} (a hang); killed.\n--- stdout\n{}\n--- stderr\n{}", tail(&stdout), tail(&stderr));
    };
    assert!(
        status.success(),
        "`{name}` crashed or failed in its child process ({status}):\n--- stdout\n{}\n--- stderr\n{}",
        tail(&stdout),
        tail(&stderr)
    );
    assert!(stdout.contains("1 passed"), "the child process did not run `{name}`:\n{stdout}");
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(4000);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    &s[start..]
}

fn corpus(file: &str) -> String {
    let path = format!("{}/../../../shared/agentspec/corpus/valid/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Checks `text` and verifies the invariants every result keeps.
fn check(text: impl Into<String>, format: Format) -> (Option<Flow>, Diagnostics) {
    let source = Source::new("<test>", text, format);
    let (flow, diags) = check_source(&source, &LoadOptions::default());
    for d in diags.iter() {
        assert!(!d.message.trim().is_empty(), "a diagnostic without a message: {d:?}");
        assert!(d.pointer.is_empty() || d.pointer.starts_with('/'), "a malformed pointer: {d:?}");
    }
    assert!(flow.is_some() || diags.has_errors(), "no flow, yet no error: {diags}");
    (flow, diags)
}

/// Asserts the document was rejected with an error of `code` whose message (or hint)
/// contains one of `words`, and returns that diagnostic.
fn rejected(result: &(Option<Flow>, Diagnostics), code: Code, words: &[&str]) -> Diagnostic {
    let (_, diags) = result;
    assert!(diags.has_errors(), "expected a `{}` error, got none:\n{diags}", code.as_str());
    let found = diags.iter().find(|d| d.is_error() && d.code == code);
    let Some(d) = found else {
        panic!("expected a `{}` error, got:\n{diags}", code.as_str());
    };
    let text = format!("{} {}", d.message, d.hint.as_deref().unwrap_or_default()).to_lowercase();
    assert!(
        words.iter().any(|w| text.contains(&w.to_lowercase())),
        "the `{}` message should say what is wrong (one of {words:?}): {:?} (hint {:?})",
        code.as_str(),
        d.message,
        d.hint
    );
    d.clone()
}

/// Asserts a parse failure: no flow, exactly one diagnostic, code `parse`.
fn parse_error(result: &(Option<Flow>, Diagnostics), words: &[&str]) -> Diagnostic {
    assert!(result.0.is_none(), "a document that does not parse produced a flow");
    assert_eq!(result.1.len(), 1, "a parse failure is one diagnostic:\n{}", result.1);
    rejected(result, Code::Parse, words)
}

/// Asserts the document loaded with no error.
fn loads(result: &(Option<Flow>, Diagnostics)) -> &Flow {
    assert!(!result.1.has_errors(), "expected no error, got:\n{}", result.1);
    result.0.as_ref().expect("no errors, so a flow")
}

/// A deterministic byte generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `text` with the first occurrence of `from` replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in the document");
    text.replacen(from, to, 1)
}

const DEEP: usize = 100_000;

fn deep_json_lists(n: usize) -> String {
    "[".repeat(n) + &"]".repeat(n)
}

fn deep_json_objects(n: usize) -> String {
    r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n)
}

// ----- not JSON, empty, garbage -----------------------------------------------------------

#[test]
fn not_json_is_a_parse_error_with_a_position() {
    isolated("not_json_is_a_parse_error_with_a_position", || {
        for text in
            ["this is not JSON", "{\"component_type\": \"Flow\",}", "{'a': 1}", "{\"a\": 1", "{\"a\": 1} trailing", "{\"a\" 1}", "{,}"]
        {
            let r = check(text, Format::Json);
            let d = parse_error(&r, &["invalid JSON"]);
            assert!(d.line.is_some() && d.column.is_some(), "a JSON syntax error has a position: {d:?}");
        }
        // Broken YAML.
        for text in ["a: [unclosed", "key: \"unterminated", "a: b: c", "- a\nb: c", "a:\n\t- tab"] {
            let r = check(text, Format::Yaml);
            parse_error(&r, &["invalid YAML"]);
        }
        // Prose handed in as a file with no extension: detected as YAML, read as a string.
        let source = Source::from_bytes("notes.txt", b"hello, this is a README".to_vec()).expect("UTF-8");
        let r = check_source(&source, &LoadOptions::default());
        parse_error(&r, &["a string, not an object"]);
    });
}

/// Library bug (reported): `Diagnostic::column` is documented 1-based, but a JSON syntax error
/// at the very start of a line (typically EOF after a trailing newline, i.e. any truncated
/// file) reports column 0, as serde_json gives it.
#[test]
fn json_syntax_errors_have_one_based_positions() {
    isolated("json_syntax_errors_have_one_based_positions", || {
        for text in ["{\"a\":\n", "{\n", "{\"a\": 1,\n", "\n\n{"] {
            let d = parse_error(&check(text, Format::Json), &["invalid JSON"]);
            let (line, column) = (d.line.expect("a line"), d.column.expect("a column"));
            assert!(line >= 1 && column >= 1, "{text:?}: position {line}:{column} is not 1-based");
        }
    });
}

#[test]
fn empty_files_say_they_are_empty() {
    isolated("empty_files_say_they_are_empty", || {
        for text in ["", " ", "\n\n", " \t\r\n ", "\u{feff}", "\u{feff}\n  "] {
            for format in [Format::Json, Format::Yaml] {
                let r = check(text, format);
                parse_error(&r, &["empty"]);
            }
        }
        let source = Source::from_bytes("flow.json", Vec::new()).expect("empty is UTF-8");
        parse_error(&check_source(&source, &LoadOptions::default()), &["empty"]);
        // A YAML file holding only comments or a document marker has no content either.
        for text in ["# only a comment\n", "---\n", "---\n...\n", "~", "null"] {
            let r = check(text, Format::Yaml);
            parse_error(&r, &["empty", "null, not an object", "not an object"]);
        }
    });
}

#[test]
fn binary_garbage_is_rejected_as_not_utf8() {
    isolated("binary_garbage_is_rejected_as_not_utf8", || {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut not_utf8 = 0;
        for round in 0..500 {
            let len = 1 + rng.below(4096);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 {
                // Sprinkle NULs and make sure at least one byte can never be UTF-8.
                for _ in 0..len / 8 {
                    let i = rng.below(len);
                    bytes[i] = 0;
                }
                let i = rng.below(len);
                bytes[i] = 0xFF;
            }
            match Source::from_bytes("garbage.bin", bytes) {
                Err(d) => {
                    not_utf8 += 1;
                    assert_eq!(d.code, Code::Parse);
                    assert!(d.is_error());
                    assert!(d.message.contains("UTF-8"), "{}", d.message);
                }
                // Rarely, random bytes are valid UTF-8: they must still be rejected cleanly.
                Ok(source) => {
                    let r = check_source(&source, &LoadOptions::default());
                    assert!(r.0.is_none() && r.1.has_errors(), "garbage loaded:\n{}", r.1);
                }
            }
        }
        assert!(not_utf8 >= 250, "most garbage is not UTF-8 ({not_utf8})");

        // UTF-16 (as Windows editors save "Unicode" text) is not UTF-8 either.
        let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain("{\"a\": 1}".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let d = Source::from_bytes("flow.json", utf16).expect_err("UTF-16 is not UTF-8");
        assert!(d.message.contains("UTF-8") && d.message.contains("offset 0"), "{}", d.message);

        // Valid UTF-8 full of NULs and control characters, read as JSON and as YAML.
        let alphabet: Vec<char> = "\0\u{1}\u{7}\u{1b}\u{7f}{}[]\":,-&*!|>%@`#'\\ \n\tax0\u{feff}\u{fffd}\u{10ffff}é".chars().collect();
        for _ in 0..500 {
            let len = 1 + rng.below(512);
            let text: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            for format in [Format::Json, Format::Yaml] {
                let r = check(text.clone(), format);
                assert!(r.0.is_none(), "garbage loaded as a flow: {text:?}");
            }
        }
        // NULs with a JSON look.
        let r = check("{\"component_type\": \"Fl\0ow\"}", Format::Json);
        parse_error(&r, &["control character", "invalid JSON"]);
        let r = check("\0\0\0\0", Format::Json);
        parse_error(&r, &["invalid JSON"]);
        let r = check("\0\0\0\0", Format::Yaml);
        assert!(r.0.is_none());
        rejected(&r, Code::Parse, &["YAML", "not an object"]);
    });
}

#[test]
fn a_top_level_that_is_not_an_object_is_named() {
    isolated("a_top_level_that_is_not_an_object_is_named", || {
        let cases = [
            ("[]", "a list"),
            ("[{\"component_type\": \"Flow\"}]", "a list"),
            ("\"Flow\"", "a string"),
            ("42", "a number"),
            ("-1.5e300", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ];
        for (text, what) in cases {
            let r = check(text, Format::Json);
            parse_error(&r, &[&format!("{what}, not an object")]);
        }
        let yaml = [("- component_type: Flow\n", "a list"), ("just words\n", "a string"), ("42\n", "a number"), ("true\n", "a boolean")];
        for (text, what) in yaml {
            let r = check(text, Format::Yaml);
            parse_error(&r, &[&format!("{what}, not an object")]);
        }
    });
}

// ----- deep nesting ---------------------------------------------------------------------

#[test]
fn json_nested_100000_levels_is_a_parse_error() {
    isolated("json_nested_100000_levels_is_a_parse_error", || {
        for text in [deep_json_lists(DEEP), deep_json_objects(DEEP), "[".repeat(DEEP), r#"{"a":"#.repeat(DEEP)] {
            let r = check(text, Format::Json);
            parse_error(&r, &["nested"]);
        }
        // Inside an otherwise valid document, in its metadata and in a node's description slot.
        let doc = corpus("p_llm_flow_minimal.json");
        for deep in [deep_json_lists(DEEP), deep_json_objects(DEEP)] {
            let text = replace_once(&doc, r#""metadata": {},"#, &format!(r#""metadata": {{"deep": {deep}}},"#));
            let d = parse_error(&check(text, Format::Json), &["nested"]);
            assert!(d.message.contains("128"), "the limit is named: {}", d.message);
            let text =
                replace_once(&doc, r#""prompt_template": "Answer concisely: {{question}}""#, &format!(r#""prompt_template": {deep}"#));
            parse_error(&check(text, Format::Json), &["nested"]);
        }
    });
}

#[test]
fn json_nesting_below_the_limit_still_loads() {
    isolated("json_nesting_below_the_limit_still_loads", || {
        let doc = corpus("p_llm_flow_minimal.json");
        let text = replace_once(&doc, r#""metadata": {},"#, &format!(r#""metadata": {{"deep": {}}},"#, deep_json_objects(100)));
        let r = check(text, Format::Json);
        let flow = loads(&r);
        let meta = flow.spec().root().metadata.as_ref().expect("metadata is kept");
        let mut depth = 0;
        let mut v = &meta["deep"];
        while let Some(inner) = v.get("a") {
            depth += 1;
            v = inner;
        }
        assert_eq!(depth, 100);
    });
}

/// The words a message about too deep a nesting should use.
const DEPTH_WORDS: &[&str] = &["nested", "depth", "deep"];

/// Library bug (reported): past serde-saphyr's own flow nesting limit (255) the message is
/// "recursion limit exceeded", with a hint about anchors and aliases, instead of the clear
/// "nested more than 128 levels deep" JSON gets.
#[test]
fn yaml_flow_nested_100000_levels_is_a_parse_error() {
    isolated("yaml_flow_nested_100000_levels_is_a_parse_error", || {
        let flow_seq = deep_json_lists(DEEP);
        let flow_map = "{a: ".repeat(DEEP) + "1" + &"}".repeat(DEEP);
        for text in [flow_seq, flow_map, "[".repeat(DEEP)] {
            parse_error(&check(text, Format::Yaml), DEPTH_WORDS);
        }
        // Inside the metadata of a valid YAML document.
        let doc = corpus("p_llm_flow_minimal.yaml");
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata: {{deep: {}}}\n", deep_json_lists(DEEP)));
        parse_error(&check(text, Format::Yaml), DEPTH_WORDS);
    });
}

/// Library bug (reported): block collections are deserialized recursively by serde-saphyr
/// before its depth budget (128) trips, with frames large enough that ~110 levels of block
/// mappings (~125 of block sequences) overflow a 2 MiB stack in the test profile: the process
/// aborts instead of reporting `parse`.
#[test]
fn yaml_block_nested_100000_levels_is_a_parse_error() {
    isolated("yaml_block_nested_100000_levels_is_a_parse_error", || {
        // Compact block sequences: `- - - - x` nests one level per dash.
        let block_seq = "- ".repeat(DEEP) + "x\n";
        // Block mappings, one more space of indentation per level (quadratic size: fewer levels).
        let block_map: String = (0..3_000).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>() + &" ".repeat(3_000) + "b: 1\n";
        for text in [block_seq, block_map] {
            parse_error(&check(text, Format::Yaml), DEPTH_WORDS);
        }
        let doc = corpus("p_llm_flow_minimal.yaml");
        let block = "metadata:\n  deep:\n".to_owned() + &"  - ".repeat(DEEP) + "x\n";
        let text = replace_once(&doc, "metadata: {}\n", &block);
        parse_error(&check(text, Format::Yaml), DEPTH_WORDS);
    });
}

/// Library bug (reported), the smallest reproductions: YAML nested just past the 128-level
/// limit, in any style, overflows a 2 MiB stack in the test profile (e.g.
/// `Flow::from_yaml(&"- ".repeat(130))`, or 129 `[` and 129 `]`).
#[test]
fn yaml_nested_just_past_the_limit_does_not_overflow_the_stack() {
    isolated("yaml_nested_just_past_the_limit_does_not_overflow_the_stack", || {
        for n in [129, 200, 255] {
            let block_seq = "- ".repeat(n) + "x\n";
            let block_map: String = (0..n).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>() + &" ".repeat(n) + "b: 1\n";
            let flow_seq = deep_json_lists(n);
            let flow_map = "{a: ".repeat(n) + "1" + &"}".repeat(n);
            for text in [block_seq, block_map, flow_seq, flow_map] {
                parse_error(&check(text, Format::Yaml), DEPTH_WORDS);
            }
        }
    });
}

/// Library bug (reported): the same crash below the limit, where the document is valid.
#[test]
fn yaml_nested_120_levels_loads() {
    isolated("yaml_nested_120_levels_loads", || {
        let doc = corpus("p_llm_flow_minimal.yaml");
        let block: String = (0..120).map(|i| format!("{}a:\n", " ".repeat(2 + i))).collect::<String>() + &" ".repeat(122) + "b: 1\n";
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata:\n{block}"));
        loads(&check(text, Format::Yaml));
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata: {{deep: {}}}\n", deep_json_lists(120)));
        loads(&check(text, Format::Yaml));
    });
}

/// Library bug (reported): when a YAML document has any diagnostic, even a warning, its
/// positions are looked up by reading it again into a tree of `Spanned` nodes
/// (`weft_spec::yaml_pos::locate_yaml`), recursively, with frames so large that ~70 levels of
/// nesting overflow a 2 MiB stack in the test profile, well below the 128-level limit.
#[test]
fn a_yaml_document_nested_80_levels_with_a_warning_loads() {
    isolated("a_yaml_document_nested_80_levels_with_a_warning_loads", || {
        let doc = corpus("p_llm_flow_minimal.yaml");
        let block: String = (0..80).map(|i| format!("{}a:\n", " ".repeat(2 + i))).collect::<String>() + &" ".repeat(82) + "b: 1\n";
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata:\n{block}unknown_key: 1\n"));
        let r = check(text, Format::Yaml);
        loads(&r);
        assert!(r.1.iter().any(|d| d.code == Code::UnknownKey), "{}", r.1);
    });
}

#[test]
fn yaml_nesting_below_the_limit_still_loads() {
    isolated("yaml_nesting_below_the_limit_still_loads", || {
        let doc = corpus("p_llm_flow_minimal.yaml");
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata: {{deep: {}}}\n", deep_json_lists(100)));
        loads(&check(text, Format::Yaml));
    });
}

// ----- references -----------------------------------------------------------------------

/// A flow `start -> middle -> end` (no inputs or outputs), with every node in its own
/// `$referenced_components` table, as pyagentspec exports it. `middle` is a node, or a
/// reference to one defined elsewhere.
fn flow_around(id: &str, middle: Json) -> Json {
    let (middle_key, middle_def) = match middle.get("$component_ref").and_then(Json::as_str) {
        Some(key) => (key.to_owned(), None),
        None => (middle["id"].as_str().expect("the middle node has an id").to_owned(), Some(middle)),
    };
    let start = format!("{id}-start");
    let end = format!("{id}-end");
    let r = |k: &str| json!({ "$component_ref": k });
    let mut doc = json!({
        "component_type": "Flow",
        "id": id,
        "name": id,
        "start_node": r(&start),
        "nodes": [r(&start), r(&middle_key), r(&end)],
        "control_flow_connections": [
            { "component_type": "ControlFlowEdge", "id": format!("{id}-e1"), "name": "e1", "from_node": r(&start), "to_node": r(&middle_key) },
            { "component_type": "ControlFlowEdge", "id": format!("{id}-e2"), "name": "e2", "from_node": r(&middle_key), "to_node": r(&end) },
        ],
        "data_flow_connections": [],
        "$referenced_components": {
            start.clone(): { "component_type": "StartNode", "id": start, "name": "start", "inputs": [], "outputs": [] },
            end.clone(): { "component_type": "EndNode", "id": end, "name": "end", "inputs": [], "outputs": [] },
        },
    });
    if let Some(def) = middle_def {
        doc["$referenced_components"][middle_key] = def;
    }
    doc
}

fn flow_node(id: &str, subflow: Json) -> Json {
    json!({ "component_type": "FlowNode", "id": id, "name": id, "subflow": subflow })
}

fn with_version(mut doc: Json) -> Json {
    doc["agentspec_version"] = json!("25.4.1");
    doc
}

fn llm_node(id: &str, llm_config: Json) -> Json {
    json!({
        "component_type": "LlmNode", "id": id, "name": id,
        "outputs": [{ "title": "generated_text", "type": "string" }],
        "llm_config": llm_config, "prompt_template": "Say hello",
    })
}

fn vllm(id: &str) -> Json {
    json!({ "component_type": "VllmConfig", "id": id, "name": id, "model_id": "m", "url": "http://vllm:8000" })
}

#[test]
fn the_reference_helpers_build_valid_documents() {
    isolated("the_reference_helpers_build_valid_documents", || {
        let inner = flow_around("inner", llm_node("llm", vllm("cfg")));
        let doc = with_version(flow_around("outer", flow_node("fnode", inner)));
        loads(&check(doc.to_string(), Format::Json));
    });
}

#[test]
fn a_reference_cycle_is_ref_cycle() {
    isolated("a_reference_cycle_is_ref_cycle", || {
        // A FlowNode whose subflow contains the FlowNode itself: sub -> inner -> sub.
        let mut doc = with_version(flow_around("outer", flow_node("sub", json!({ "$component_ref": "inner" }))));
        doc["$referenced_components"]["inner"] = flow_around("inner", json!({ "$component_ref": "sub" }));
        let r = check(doc.to_string(), Format::Json);
        let d = rejected(&r, Code::RefCycle, &["cycle"]);
        assert_eq!(d.pointer, "/$referenced_components/inner/nodes/1", "the cycle is reported where it closes");

        // A's field refers to B and B's to A: two flows nested in each other through FlowNodes.
        let mut doc = with_version(flow_around("root", flow_node("root-fn", json!({ "$component_ref": "A" }))));
        doc["$referenced_components"]["A"] = flow_around("A", flow_node("A-fn", json!({ "$component_ref": "B" })));
        doc["$referenced_components"]["B"] = flow_around("B", flow_node("B-fn", json!({ "$component_ref": "A" })));
        let r = check(doc.to_string(), Format::Json);
        rejected(&r, Code::RefCycle, &["cycle"]);

        // An alias entry pointing to itself, and two aliases pointing to each other.
        for table in [
            json!({ "self": { "$component_ref": "self" } }),
            json!({ "self": { "$component_ref": "b" }, "b": { "$component_ref": "self" } }),
        ] {
            let mut doc = with_version(flow_around("root", llm_node("llm", json!({ "$component_ref": "self" }))));
            for (k, v) in table.as_object().expect("a table") {
                doc["$referenced_components"][k] = v.clone();
            }
            let r = check(doc.to_string(), Format::Json);
            rejected(&r, Code::RefCycle, &["cycle"]);
        }
        // The root referring to itself.
        let doc = json!({ "$component_ref": "me", "$referenced_components": { "me": { "$component_ref": "me" } }, "agentspec_version": "25.4.1" });
        let r = check(doc.to_string(), Format::Json);
        rejected(&r, Code::RefCycle, &["cycle"]);
    });
}

/// `n` alias entries, each referring to the next, the last one a VllmConfig: resolving the
/// first walks the whole chain. The JSON itself is flat (depth 4).
fn alias_chain(n: usize) -> String {
    let mut doc = with_version(flow_around("root", llm_node("llm", json!({ "$component_ref": "alias-0" }))));
    let table = doc["$referenced_components"].as_object_mut().expect("a table");
    for i in 0..n {
        table.insert(format!("alias-{i}"), json!({ "$component_ref": format!("alias-{}", i + 1) }));
    }
    table.insert(format!("alias-{n}"), vllm("cfg"));
    doc.to_string()
}

#[test]
fn a_short_alias_chain_loads() {
    isolated("a_short_alias_chain_loads", || {
        loads(&check(alias_chain(50), Format::Json));
    });
}

/// Library bug (reported): `Loader::resolve` recurses once per alias, so a flat document whose
/// `$referenced_components` chains 100,000 aliases overflows the stack (SIGABRT). The JSON is
/// only 4 levels deep, so the parser's depth limit does not help.
#[test]
fn a_100000_alias_chain_does_not_overflow_the_stack() {
    isolated("a_100000_alias_chain_does_not_overflow_the_stack", || {
        let r = check(alias_chain(DEEP), Format::Json);
        // Loading it, or refusing it as too deep, are both fine; crashing is not.
        if r.1.has_errors() {
            rejected(&r, Code::BadValue, &["deep", "nest", "chain", "long"]);
        }
    });
}

/// `n` flows, each with a FlowNode running the next one: nesting through references, flat in
/// the JSON (every flow is an entry of the root table).
fn flow_chain(n: usize) -> String {
    let mut doc = with_version(flow_around("root", flow_node("root-fn", json!({ "$component_ref": "flow-0" }))));
    let table = doc["$referenced_components"].as_object_mut().expect("a table");
    for i in 0..n {
        let next = if i + 1 < n {
            flow_node(&format!("fn-{i}"), json!({ "$component_ref": format!("flow-{}", i + 1) }))
        } else {
            llm_node("leaf", vllm("cfg"))
        };
        table.insert(format!("flow-{i}"), flow_around(&format!("flow-{i}"), next));
    }
    doc.to_string()
}

#[test]
fn a_short_flow_chain_loads() {
    isolated("a_short_flow_chain_loads", || {
        loads(&check(flow_chain(20), Format::Json));
    });
}

/// Library bug (reported): flows nested through references (Flow -> FlowNode -> Flow -> ...)
/// are loaded, inferred and checked recursively, one set of frames per level, with no depth
/// limit: 10,000 levels overflow the stack.
#[test]
fn a_10000_flow_chain_does_not_overflow_the_stack() {
    isolated("a_10000_flow_chain_does_not_overflow_the_stack", || {
        let r = check(flow_chain(10_000), Format::Json);
        if r.1.has_errors() {
            rejected(&r, Code::BadValue, &["deep", "nest", "chain", "long"]);
        }
    });
}

/// `n` flows nested in the JSON itself (each flow's table holds a FlowNode whose subflow is
/// the next flow, inline): 3 levels of JSON per level of flow.
fn inline_flow_chain(n: usize) -> String {
    let mut inner = llm_node("leaf", vllm("cfg"));
    for i in (0..n).rev() {
        inner = flow_node(&format!("fn-{i}"), flow_around(&format!("flow-{i}"), inner));
    }
    with_version(flow_around("root", inner)).to_string()
}

/// Flows nested inline as deep as the JSON depth limit allows (40 levels) load; one more is a
/// clear `parse` error. (In the test profile this uses most of a 2 MiB stack.)
#[test]
fn inline_flows_nested_up_to_the_json_limit_load() {
    isolated("inline_flows_nested_up_to_the_json_limit_load", || {
        loads(&check(inline_flow_chain(40), Format::Json));
        parse_error(&check(inline_flow_chain(41), Format::Json), &["nested"]);
    });
}

/// Each level's flow runs the next level's flow twice (two FlowNodes sharing one subflow):
/// 2^30 paths, 30 flows. Anything that walks uses instead of components never finishes.
#[test]
fn a_reference_bomb_is_checked_in_linear_time() {
    isolated("a_reference_bomb_is_checked_in_linear_time", || {
        let levels = 30;
        let mut doc = with_version(flow_around("root", flow_node("root-fn", json!({ "$component_ref": "flow-0" }))));
        let table = doc["$referenced_components"].as_object_mut().expect("a table");
        for i in 0..levels {
            let id = format!("flow-{i}");
            let f = if i + 1 < levels {
                let sub = json!({ "$component_ref": format!("flow-{}", i + 1) });
                let mut f = flow_around(&id, flow_node(&format!("{id}-a"), sub.clone()));
                let b = format!("{id}-b");
                f["$referenced_components"][&b] = flow_node(&b, sub);
                f["nodes"].as_array_mut().expect("nodes").insert(2, json!({ "$component_ref": b }));
                // start -> a -> b -> end
                f["control_flow_connections"][1]["to_node"] = json!({ "$component_ref": b });
                let edges = f["control_flow_connections"].as_array_mut().expect("edges");
                edges.push(json!({ "component_type": "ControlFlowEdge", "id": format!("{id}-e3"), "name": "e3", "from_node": { "$component_ref": b }, "to_node": { "$component_ref": format!("{id}-end") } }));
                f
            } else {
                flow_around(&id, llm_node("leaf", vllm("cfg")))
            };
            table.insert(id, f);
        }
        let started = Instant::now();
        let r = check(doc.to_string(), Format::Json);
        loads(&r);
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    });
}

/// `{"anyOf": [{"anyOf": [... {"type": "string"} ...]}]}`, `levels` deep, titled `title`.
fn nested_any_of(levels: usize, title: &str) -> Json {
    let mut schema = json!({ "type": "string" });
    for _ in 0..levels {
        schema = json!({ "anyOf": [schema] });
    }
    schema["title"] = json!(title);
    schema
}

/// Library bug (reported): `schema::same_type` recurses twice per union level (both
/// directions of the "same members" test), so comparing two schemas made of nested
/// single-member unions costs 2^depth: on this valid document (the minimal flow, whose
/// `generated_text` is `anyOf` nested 40 deep in the flow's outputs and its EndNode) the
/// flow-output check never finishes. 20 levels already take ~12 s in the test profile; the
/// depth cap of 64 does not help. The same happens with `"type": [[[...]]]` (list nesting
/// mutations found it).
#[test]
fn nested_unions_are_compared_in_reasonable_time() {
    isolated_within("nested_unions_are_compared_in_reasonable_time", Duration::from_secs(60), || {
        let mut doc: Json = serde_json::from_str(&corpus("p_llm_flow_minimal.json")).expect("the corpus is JSON");
        let schema = nested_any_of(40, "generated_text");
        let end = "699dbb27-6150-4582-95f3-8bb6e0732ce7";
        doc["outputs"][0] = schema.clone();
        doc["$referenced_components"][end]["inputs"][0] = schema.clone();
        doc["$referenced_components"][end]["outputs"][0] = schema;
        let started = Instant::now();
        loads(&check(doc.to_string(), Format::Json));
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    });
}

// ----- alias bombs ----------------------------------------------------------------------

fn billion_laughs() -> String {
    let mut s = String::from("lol0: &lol0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*lol{}", i - 1);
        s.push_str(&format!("lol{i}: &lol{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    s
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    isolated("a_yaml_alias_bomb_is_refused_quickly", || {
        let started = Instant::now();
        let r = check(billion_laughs(), Format::Yaml);
        parse_error(&r, &["alias", "budget", "limit", "exceed"]);
        // Inside the metadata of a valid document.
        let doc = corpus("p_llm_flow_minimal.yaml");
        let bomb: String = billion_laughs().lines().map(|l| format!("  {l}\n")).collect();
        let text = replace_once(&doc, "metadata: {}\n", &format!("metadata:\n{bomb}"));
        parse_error(&check(text, Format::Yaml), &["alias", "budget", "limit", "exceed"]);
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    });
}

#[test]
fn yaml_aliases_within_the_budget_load() {
    isolated("yaml_aliases_within_the_budget_load", || {
        let doc = corpus("p_llm_flow_minimal.yaml");
        let text = replace_once(&doc, "metadata: {}\n", "metadata:\n  a: &a {x: 1}\n  b: *a\n");
        let r = check(text, Format::Yaml);
        let flow = loads(&r);
        let meta = flow.spec().root().metadata.as_ref().expect("metadata");
        assert_eq!(meta["b"], json!({ "x": 1 }));
    });
}

// ----- 50 MB documents -----------------------------------------------------------------

const BIG: usize = 50 * 1024 * 1024;

#[test]
fn a_50_mb_description_loads() {
    isolated("a_50_mb_description_loads", || {
        let doc = corpus("p_llm_flow_minimal.json");
        let huge = "x".repeat(BIG);
        let text = replace_once(&doc, r#""description": null,"#, &format!(r#""description": "{huge}","#));
        let started = Instant::now();
        let r = check(text, Format::Json);
        let flow = loads(&r);
        assert_eq!(flow.spec().root().description.as_deref().map(str::len), Some(BIG));
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    });
}

#[test]
fn a_50_mb_prompt_template_loads() {
    isolated("a_50_mb_prompt_template_loads", || {
        // A prompt with a placeholder at the far end: the template scan must be linear.
        let doc = corpus("p_llm_flow_minimal.json");
        let huge = "lorem ipsum ".repeat(BIG / 12);
        let text = replace_once(&doc, "Answer concisely: {{question}}", &format!("{huge}{{{{question}}}}"));
        let started = Instant::now();
        loads(&check(text, Format::Json));
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    });
}

#[test]
fn a_50_mb_table_of_unused_entries_loads_with_warnings() {
    isolated("a_50_mb_table_of_unused_entries_loads_with_warnings", || {
        let doc = corpus("p_llm_flow_minimal.json");
        let mut entries = String::with_capacity(BIG + 1024);
        let mut n = 0usize;
        while entries.len() < BIG {
            entries.push_str(&format!(
                r#""unused-{n}": {{"component_type": "VllmConfig", "id": "unused-{n}", "name": "unused {n}", "model_id": "m", "url": "http://vllm:8000"}},"#
            ));
            n += 1;
        }
        let text = replace_once(&doc, r#""$referenced_components": {"#, &format!(r#""$referenced_components": {{{entries}"#));
        let started = Instant::now();
        let r = check(text, Format::Json);
        loads(&r);
        let unused = r.1.iter().filter(|d| d.code == Code::UnusedRef).count();
        assert_eq!(unused, n, "one unused_ref warning per unused entry");
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    });
}

#[test]
fn a_50_mb_yaml_document_loads_or_is_refused_clearly() {
    isolated("a_50_mb_yaml_document_loads_or_is_refused_clearly", || {
        let doc = corpus("p_llm_flow_minimal.yaml");
        let huge = "x".repeat(BIG);
        let text = replace_once(&doc, "description: null\n", &format!("description: {huge}\n"));
        let started = Instant::now();
        let r = check(text, Format::Yaml);
        assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
        if r.1.has_errors() {
            parse_error(&r, &["budget", "limit", "large", "exceed"]);
        } else {
            assert_eq!(loads(&r).spec().root().description.as_deref().map(str::len), Some(BIG));
        }
    });
}

#[test]
fn a_50_mb_string_at_the_top_level_is_not_an_object() {
    isolated("a_50_mb_string_at_the_top_level_is_not_an_object", || {
        let text = format!("\"{}\"", "x".repeat(BIG));
        parse_error(&check(text, Format::Json), &["a string, not an object"]);
    });
}
