//! weft-prompt against outputs recorded from WayFlow 26.3.1 and json_repair 0.64.5
//! (`fixtures/wayflow_reference.json`, produced by `fixtures/gen_wayflow_reference.py`).

use serde_json::{Value as Json, json};
use weft_prompt::{
    OutputParser, Template, coerce, native_schema, outputs_from_answer_coerced, parse_lenient, prompt_schema, py_json_dumps, py_str,
    template_output,
};

/// Cases where Weft knowingly differs from WayFlow.
const KNOWN_TEMPLATE_DIFFERENCES: &[&str] = &[
    // Python's `%` string formatting is not available in minijinja.
    "{{ '%s-%s' % (a, b) }}",
];

/// json_repair turns some truncated objects into arrays of strings; Weft keeps an object.
const KNOWN_REPAIR_DIFFERENCES: &[&str] =
    &["Here is the result:\n{\n  \"score\": 5,\n  \"data\": {\n    \"score\"", "```json\n{\n  \"score\": 0,\n  \"data\": {\n    \"a\n```"];

fn reference() -> Json {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wayflow_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn cases<'a>(r: &'a Json, key: &str) -> &'a [Json] {
    r[key].as_array().map(Vec::as_slice).expect("cases")
}

#[test]
fn json_dumps_and_str_match_python() {
    let r = reference();
    for c in cases(&r, "fmt") {
        let v = &c["v"];
        assert_eq!(py_json_dumps(v), c["dumps"].as_str().unwrap(), "json.dumps({v})");
        assert_eq!(py_str(v), c["str"].as_str().unwrap(), "str({v})");
    }
}

#[test]
fn coercion_matches_wayflow() {
    let r = reference();
    for c in cases(&r, "coerce") {
        let got = coerce(Some(&c["v"]), &c["schema"], true);
        assert_eq!(py_json_dumps(&got), py_json_dumps(&c["out"]), "coerce {} into {}", c["v"], c["schema"]);
    }
}

#[test]
fn strict_validation_messages_match_wayflow() {
    let r = reference();
    for c in cases(&r, "strict") {
        let got = template_output(&py_json_dumps(&c["v"]), Some(&c["schema"]), false, true, &[]);
        assert_eq!(got.err().map(|e| e.to_string()).as_deref(), c["msg"].as_str(), "strict {} against {}", c["v"], c["schema"]);
    }
}

#[test]
fn templates_render_like_wayflow() {
    let r = reference();
    for c in cases(&r, "templates") {
        let src = c["t"].as_str().unwrap();
        if KNOWN_TEMPLATE_DIFFERENCES.contains(&src) {
            continue;
        }
        let got = Template::new(src).and_then(|t| t.render(c["v"].as_object().unwrap()));
        match c.get("out") {
            Some(want) => assert_eq!(got.as_deref().ok(), want.as_str(), "template {src:?} with {}", c["v"]),
            None => assert!(got.is_err(), "template {src:?} should fail like WayFlow ({}), got {got:?}", c["err"]),
        }
    }
}

#[test]
fn regex_parser_matches_wayflow() {
    let r = reference();
    for c in cases(&r, "regex") {
        let parser = OutputParser::regex(&c["pattern"], c["strict"].as_bool().unwrap()).unwrap();
        assert_eq!(
            parser.apply(c["text"].as_str().unwrap()).unwrap(),
            c["out"].as_str().unwrap(),
            "pattern {} on {}",
            c["pattern"],
            c["text"]
        );
    }
}

#[test]
fn json_parser_matches_wayflow() {
    let r = reference();
    for c in cases(&r, "jsonparser") {
        let parser = OutputParser::json(Some(&c["props"])).unwrap();
        assert_eq!(
            parser.apply(c["text"].as_str().unwrap()).unwrap(),
            c["out"].as_str().unwrap(),
            "properties {} on {}",
            c["props"],
            c["text"]
        );
    }
}

#[test]
fn prompt_mode_outputs_match_wayflow() {
    let r = reference();
    for c in cases(&r, "pipeline") {
        let got = Json::Object(outputs_from_answer_coerced(c["text"].as_str().unwrap(), c["outputs"].as_array().unwrap()));
        assert_eq!(py_json_dumps(&got), py_json_dumps(&c["out"]), "outputs {} from {}", c["outputs"], c["text"]);
    }
}

#[test]
fn schemas_match_wayflow() {
    let r = reference();
    for c in cases(&r, "schemas") {
        let outputs = c["outputs"].as_array().unwrap();
        assert_eq!(py_json_dumps(&prompt_schema(outputs).0), c["prompt"].as_str().unwrap(), "prompt schema of {outputs:?}");
        for (o, want) in outputs.iter().zip(c["native"].as_array().unwrap()) {
            assert_eq!(py_json_dumps(&native_schema(o)), want.as_str().unwrap(), "native schema of {o}");
        }
    }
}

#[test]
fn template_outputs_match_wayflow() {
    let r = reference();
    for c in cases(&r, "template_output") {
        let got = template_output(
            c["answer"].as_str().unwrap(),
            Some(&c["rf"]),
            c["native"].as_bool().unwrap(),
            c["strict"].as_bool().unwrap(),
            &[],
        );
        let want = &c["res"];
        let what = format!("{} from {} (native {}, strict {})", c["rf"], c["answer"], c["native"], c["strict"]);
        match (got, want.get("ok"), want.get("err")) {
            (Ok(v), Some(w), _) => assert_eq!(py_json_dumps(&v), py_json_dumps(w), "{what}"),
            (Err(e), _, Some(w)) => assert_eq!(e.to_string(), w.as_str().unwrap(), "{what}"),
            (got, _, _) => panic!("{what}: got {got:?}, WayFlow {want}"),
        }
    }
}

#[test]
fn lenient_json_matches_json_repair_on_model_like_answers() {
    let r = reference();
    for c in cases(&r, "repair") {
        let text = c["text"].as_str().unwrap();
        if KNOWN_REPAIR_DIFFERENCES.contains(&text) {
            continue;
        }
        let got = parse_lenient(text).unwrap_or(json!(""));
        assert_eq!(py_json_dumps(&got), py_json_dumps(&c["out"]), "repair {text:?}");
    }
}
