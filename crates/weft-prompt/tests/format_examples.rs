//! The examples of FORMAT.md 8.1, 11 and 11.1, one by one.

use serde_json::{Map, Value as Json, json};
use weft_prompt::{
    JSON_CONSTRAINED_GENERATION_PROMPT, OutputParser, ReplyError, Shape, Template, cast_to_input, coerce, extract_final_answer,
    native_schema, outputs_from_answer, outputs_from_answer_coerced, parse_lenient, prompt_schema, prompt_suffix,
    prompt_template_with_suffix, py_json_dumps, py_str, structured_output_needed, template_output,
};

fn vars(v: Json) -> Map<String, Json> {
    v.as_object().cloned().expect("an object")
}

// ---- 8.1 Rendering values into templates ----

#[test]
fn json_dumps_and_str_examples() {
    let v = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
    assert_eq!(py_json_dumps(&v), r#"{"b": 1, "a": [1, 2.5, true, null], "\u00e9": "\u00fc"}"#);
    assert_eq!(py_str(&v), "{'b': 1, 'a': [1, 2.5, True, None], 'é': 'ü'}");
}

#[test]
fn values_rendered_into_string_and_other_inputs() {
    let string = json!({"type": "string"});
    let t = Template::new("{{ x }}").unwrap();
    let render = |v: Json| t.render(&vars(json!({ "x": v }))).unwrap();
    // Into a string input: JSON-encoded.
    assert_eq!(
        render(cast_to_input(json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"}), &string)),
        r#"{"b": 1, "a": [1, 2.5, true, null], "\u00e9": "\u00fc"}"#
    );
    assert_eq!(render(cast_to_input(json!(5), &string)), "5");
    assert_eq!(render(cast_to_input(json!(true), &string)), "true");
    assert_eq!(render(cast_to_input(json!(2.0), &string)), "2.0");
    // Into an input that is not a string: Python's str().
    for schema in [json!({"type": "object"}), json!({}), json!({"anyOf": [{"type": "object"}, {"type": "null"}]})] {
        assert_eq!(
            render(cast_to_input(json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"}), &schema)),
            "{'b': 1, 'a': [1, 2.5, True, None], 'é': 'ü'}"
        );
    }
    assert_eq!(render(cast_to_input(json!(true), &json!({"type": "boolean"}))), "True");
    assert_eq!(render(cast_to_input(json!(2.0), &json!({"type": "number"}))), "2.0");
    assert_eq!(render(cast_to_input(json!(5), &json!({"type": "number"}))), "5.0");
    // null is never cast.
    assert_eq!(render(cast_to_input(json!(null), &string)), "None");
    // Strings verbatim, without escaping.
    assert_eq!(render(cast_to_input(json!("<b>\"x\" & 'y'</b>"), &string)), "<b>\"x\" & 'y'</b>");
}

#[test]
fn missing_variable_is_an_error_naming_it() {
    let t = Template::new("Hello {{ name }}, {{ other }}").unwrap();
    let err = t.render(&vars(json!({"name": "x"}))).unwrap_err();
    assert!(err.to_string().contains("`other`"), "{err}");
    assert_eq!(err.wayflow_exception_name(), "UndefinedError");
}

#[test]
fn if_and_filters_work() {
    let t = Template::new("{% if style %}Answer in a {{ style | upper }} style.{% endif %}").unwrap();
    assert_eq!(t.render(&vars(json!({"style": "short"}))).unwrap(), "Answer in a SHORT style.");
    assert_eq!(t.render(&vars(json!({"style": ""}))).unwrap(), "");
}

// ---- 8.1 LlmNode: structured output ----

#[test]
fn when_structured_output_is_needed() {
    assert!(!structured_output_needed(&[json!({"title": "generated_text", "type": "string"})]));
    assert!(!structured_output_needed(&[json!({"title": "anything", "type": "string", "description": "x"})]));
    assert!(structured_output_needed(&[json!({"title": "label", "type": "string", "enum": ["a", "b"]})]));
    assert!(structured_output_needed(&[json!({"title": "n", "type": "integer"})]));
    assert!(structured_output_needed(&[json!({"title": "a", "type": "string"}), json!({"title": "b", "type": "string"})]));
}

#[test]
fn single_object_output_schema() {
    let outputs = [
        json!({"title": "review", "type": "object", "properties": {"score": {"type": "integer"}, "summary": {"type": "string", "default": "none"}}}),
    ];
    let (schema, shape) = prompt_schema(&outputs);
    assert_eq!(shape, Shape::Single);
    assert_eq!(
        py_json_dumps(&schema),
        r#"{"type": "object", "additionalProperties": true, "properties": {"score": {"type": "integer"}, "summary": {"type": "string", "default": "none"}}, "required": ["score"]}"#
    );
    let (schema, shape) = prompt_schema(&[json!({"title": "empty", "type": "object", "properties": {}})]);
    assert_eq!(shape, Shape::Single);
    assert_eq!(py_json_dumps(&schema), r#"{"type": "object", "additionalProperties": true, "properties": {}, "required": []}"#);
}

#[test]
fn expected_output_wrapper() {
    let outputs = [json!({"title": "score", "type": "integer"}), json!({"title": "summary", "type": "string", "default": "none"})];
    let (schema, shape) = prompt_schema(&outputs);
    assert_eq!(shape, Shape::Wrapped);
    assert_eq!(
        schema,
        json!({
            "title": "expected_output",
            "description": "the expected output of the generation",
            "type": "object",
            "properties": {"score": {"type": "integer", "title": "score"}, "summary": {"type": "string", "title": "summary", "default": "none"}},
            "required": ["score"]
        })
    );
    assert_eq!(
        py_json_dumps(&schema),
        r#"{"title": "expected_output", "description": "the expected output of the generation", "type": "object", "properties": {"score": {"type": "integer", "title": "score"}, "summary": {"type": "string", "title": "summary", "default": "none"}}, "required": ["score"]}"#
    );
    // A single array or dictionary output is wrapped too; a bare object is "any".
    for single in [
        json!({"title": "tags", "type": "array", "items": {"type": "string"}}),
        json!({"title": "scores", "type": "object", "additionalProperties": {"type": "integer"}}),
        json!({"title": "x", "type": "object"}),
    ] {
        let (schema, shape) = prompt_schema(std::slice::from_ref(&single));
        assert_eq!(shape, Shape::Wrapped, "{single}");
        assert_eq!(schema["title"], "expected_output");
    }
}

#[test]
fn prompt_suffix_text() {
    assert_eq!(
        JSON_CONSTRAINED_GENERATION_PROMPT,
        "At the end of your answer, finish with <final_answer>$your_answer$</final_answer> with $your_answer$ being a properly formatted json that is valid against this JSON schema:"
    );
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
    assert_eq!(
        prompt_suffix(&schema),
        "\n\n\n## Additional instructions: \nAt the end of your answer, finish with <final_answer>$your_answer$</final_answer> with $your_answer$ being a properly formatted json that is valid against this JSON schema:{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [\"a\"]}"
    );
    // WayFlow renders template and suffix as one template: the template's trailing newline stays.
    let t = Template::new(&prompt_template_with_suffix("Rate {{ x }}\n", &schema)).unwrap();
    assert!(t.render(&vars(json!({"x": "it"}))).unwrap().starts_with("Rate it\n\n\n\n## Additional instructions: \n"));
}

#[test]
fn final_answer_extraction() {
    assert_eq!(extract_final_answer("Reasoning... <final_answer>$[1, 2]$</final_answer>"), "[1, 2]");
    assert_eq!(extract_final_answer("<final_answer>\n{\"a\": 1}\n"), "{\"a\": 1}");
    assert_eq!(extract_final_answer("{\"a\": 1}"), "{\"a\": 1}");
}

#[test]
fn bare_array_fills_a_single_array_output() {
    let outputs = [json!({"title": "tags", "type": "array", "items": {"type": "string"}})];
    assert_eq!(outputs_from_answer_coerced(r#"["a","b"]"#, &outputs)["tags"], json!(["a", "b"]));
    assert_eq!(outputs_from_answer_coerced(r#"<final_answer>["a","b"]</final_answer>"#, &outputs)["tags"], json!(["a", "b"]));
    assert_eq!(outputs_from_answer_coerced(r#"{"tags": ["a"]}"#, &outputs)["tags"], json!(["a"]));
    assert_eq!(outputs_from_answer(r#"["a","b"]"#, &outputs).unwrap()["tags"], json!(["a", "b"]));
}

#[test]
fn prompt_mode_coercion() {
    let outputs = [json!({"title": "score", "type": "integer"}), json!({"title": "summary", "type": "string", "default": "none"})];
    // Several outputs: a member missing from the JSON arrives as null and gets the zero value.
    let got = outputs_from_answer_coerced("<final_answer>{\"score\": 4}</final_answer>", &outputs);
    assert_eq!(Json::Object(got), json!({"score": 4, "summary": ""}));
    // Wrong types are cast where possible, else the zero value.
    let got = outputs_from_answer_coerced(r#"<final_answer>{"score": "4", "summary": 5}</final_answer>"#, &outputs);
    assert_eq!(Json::Object(got), json!({"score": 0, "summary": "5"}));
    // No JSON at all: every output takes its default, else its zero value.
    let got = outputs_from_answer_coerced("I cannot answer.", &outputs);
    assert_eq!(Json::Object(got), json!({"score": 0, "summary": "none"}));
    // A fenced block with a trailing comma parses.
    let got = outputs_from_answer_coerced("```json\n{\"score\": 5, \"summary\": \"ok\",}\n```", &outputs);
    assert_eq!(Json::Object(got), json!({"score": 5, "summary": "ok"}));
    // The first enum value for a value outside the enum.
    let label = [json!({"title": "label", "type": "string", "enum": ["pos", "neg"]})];
    assert_eq!(outputs_from_answer_coerced("<final_answer>\"maybe\"</final_answer>", &label)["label"], json!("pos"));
}

#[test]
fn strict_prompt_mode_lists_the_problems() {
    let outputs = [json!({"title": "score", "type": "integer"}), json!({"title": "summary", "type": "string", "default": "none"})];
    let ok = outputs_from_answer("Sure: <final_answer>{\"score\": 4}</final_answer>", &outputs).unwrap();
    assert_eq!(Json::Object(ok), json!({"score": 4, "summary": "none"}));
    let err = outputs_from_answer("<final_answer>{\"summary\": 3}</final_answer>", &outputs).unwrap_err();
    assert_eq!(err.violations(), ["score: missing required field", "summary: expected StringProperty, got int"]);
    assert!(err.to_string().starts_with("Structured output validation failed: "));
    assert_eq!(outputs_from_answer("no JSON here", &outputs).unwrap_err(), ReplyError::NotJson);
    let label = [json!({"title": "label", "type": "string", "enum": ["pos", "neg"]})];
    assert_eq!(outputs_from_answer("\"maybe\"", &label).unwrap_err().violations(), ["label: expected StringProperty, got str"]);
    // An integer is a valid number here, and comes back as a float.
    let n = [json!({"title": "n", "type": "number"}), json!({"title": "flag", "type": "boolean"})];
    assert_eq!(Json::Object(outputs_from_answer(r#"{"n": 5, "flag": true}"#, &n).unwrap()), json!({"n": 5.0, "flag": true}));
}

// ---- 11.1 ExtendedLlmNode with a prompt_template_object ----

fn review_format() -> Json {
    json!({"title": "review", "type": "object", "properties": {"score": {"type": "integer"}, "summary": {"type": "string", "default": "none"}}})
}

#[test]
fn native_schema_reserialization() {
    let rf = json!({"title": "keywords", "type": "array", "items": {"type": "string", "description": "One keyword or short key phrase"}, "description": "Keywords of the article, most relevant first"});
    assert_eq!(
        py_json_dumps(&native_schema(&rf)),
        r#"{"type": "array", "items": {"type": "string", "description": "One keyword or short key phrase"}, "title": "keywords", "description": "Keywords of the article, most relevant first"}"#
    );
    assert_eq!(
        native_schema(&review_format()),
        json!({"type": "object", "additionalProperties": false, "properties": {"score": {"type": "integer"}, "summary": {"type": "string", "default": "none"}}, "required": ["score", "summary"], "title": "review"})
    );
    let dict = json!({"title": "scores", "type": "object", "additionalProperties": {"type": "integer"}, "key_type": {"type": "string"}, "x_vector_property": false});
    assert_eq!(native_schema(&dict), json!({"type": "object", "additionalProperties": {"type": "integer"}, "title": "scores"}));
}

#[test]
fn observed_native_mode_outputs() {
    let rf = review_format();
    let out = |answer: &str, native: bool| template_output(answer, Some(&rf), native, false, &[]).unwrap();
    assert_eq!(out(r#"{"score": 4}"#, true), json!({"score": 4, "summary": "none"}));
    assert_eq!(py_json_dumps(&out(r#"{"score": "4", "extra": 1, "summary": 5}"#, true)), r#"{"score": 0, "extra": 1, "summary": "5"}"#);
    assert_eq!(out("not json", true), json!({"score": 0, "summary": ""}));
    assert_eq!(out("```json\n{\"score\": 4}\n```", true), json!({"score": 0, "summary": ""}));
    // Non-native: no default filling, so the zero value.
    assert_eq!(out(r#"{"score": 4}"#, false), json!({"score": 4, "summary": ""}));
}

#[test]
fn strict_native_mode() {
    let rf = review_format();
    let err = template_output(r#"{"score": "4"}"#, Some(&rf), true, true, &[]).unwrap_err();
    assert_eq!(err.to_string(), "Structured output validation failed: review.score: expected IntegerProperty, got str");
    let err = template_output("not json", Some(&rf), true, true, &[]).unwrap_err();
    assert!(err.to_string().contains("got str"), "{err}");
    assert_eq!(template_output(r#"{"score": 4}"#, Some(&rf), true, true, &[]).unwrap(), json!({"score": 4, "summary": "none"}));
    let strict_enum = json!({"title": "label", "type": "string", "enum": ["a"]});
    assert!(template_output("\"b\"", Some(&strict_enum), true, true, &[]).is_err());
}

#[test]
fn step_four_reading_by_title() {
    let array = json!({"title": "keywords", "type": "array", "items": {"type": "string"}});
    assert_eq!(template_output(r#"["a"]"#, Some(&array), true, false, &[]).unwrap(), json!(["a"]));
    assert_eq!(template_output(r#"{"keywords": ["a"]}"#, Some(&array), true, false, &[]).unwrap(), json!(["a"]));
    let string = json!({"title": "answer", "type": "string"});
    assert_eq!(template_output("plain words", Some(&string), true, false, &[]).unwrap(), json!("plain words"));
    // A dictionary format takes the bare dictionary (FORMAT's suggestion for Weft).
    let dict = json!({"title": "scores", "type": "object", "additionalProperties": {"type": "integer"}});
    assert_eq!(template_output(r#"{"a": 1}"#, Some(&dict), true, false, &[]).unwrap(), json!({"a": 1}));
    // No response format: the text after the parsers.
    assert_eq!(template_output("free text", None, true, false, &[]).unwrap(), json!("free text"));
}

// ---- 11 / 11.1 Output parsers ----

#[test]
fn json_output_parser() {
    let score = json!({"title": "r", "type": "object", "properties": {"score": {"type": "integer"}}});
    let plain = OutputParser::json(None).unwrap();
    assert_eq!(plain.apply(r#"Sure: {"score": 5}"#).unwrap(), r#"{"score": 5}"#);
    assert_eq!(plain.apply("no JSON").unwrap(), r#""""#);
    assert_eq!(
        template_output(r#"Sure: {"score": 5}"#, Some(&score), false, false, std::slice::from_ref(&plain)).unwrap(),
        json!({"score": 5})
    );
    assert_eq!(
        template_output("```json\n{\"score\": 5,}\n```", Some(&score), false, false, std::slice::from_ref(&plain)).unwrap(),
        json!({"score": 5})
    );
    assert_eq!(template_output("nothing useful", Some(&score), false, false, std::slice::from_ref(&plain)).unwrap(), json!({"score": 0}));
    let with_props = OutputParser::json(Some(&json!({"score": ".score", "first": ".items[0]", "bad": ".x.y.z"}))).unwrap();
    assert_eq!(with_props.apply(r#"Here: {"score": 5, "items": ["a", "b"], "x": 1}"#).unwrap(), r#"{"score": 5, "first": "a"}"#);
    let err = OutputParser::json(Some(&json!({"score": ".score |"}))).unwrap_err();
    assert!(err.to_string().contains("`score`"), "{err}");
}

#[test]
fn regex_output_parser() {
    let apply = |pattern: Json, strict: bool, text: &str| OutputParser::regex(&pattern, strict).unwrap().apply(text).unwrap();
    // A plain string is compiled with DOTALL.
    assert_eq!(apply(json!("Solution is: (.*)"), true, "Solution is: Bern\nis the capital"), "Bern\nis the capital");
    // A single pattern object, flags null meaning 0.
    assert_eq!(apply(json!({"pattern": "Solution is: (.*)", "match": "first", "flags": null}), true, "Solution is: Bern\nx"), "Bern");
    assert_eq!(apply(json!({"pattern": "(\\d+)", "match": "last"}), true, "1 22 333"), "333");
    assert_eq!(apply(json!({"pattern": "hello", "flags": 2}), true, "HELLO"), "HELLO");
    assert_eq!(apply(json!({"pattern": "^(\\w+)$", "flags": 8, "match": "last"}), true, "one\ntwo"), "two");
    // Several groups: the Python repr of the tuple.
    assert_eq!(apply(json!({"pattern": "(\\w)=(\\d)"}), true, "a=1 b=2"), "('a', '1')");
    // No match: "" when strict, else the text unchanged.
    assert_eq!(apply(json!("nomatch"), true, "some text"), "");
    assert_eq!(apply(json!("nomatch"), false, "some text"), "some text");
    // Named patterns: a JSON object of strings.
    assert_eq!(
        apply(json!({"thought": "THOUGHT: (.*) ACTION:", "action": "ACTION: (.*)"}), true, "THOUGHT: blah ACTION: doing"),
        r#"{"thought": "blah", "action": "doing"}"#
    );
    // An object with other members than pattern/match/flags is named patterns.
    assert_eq!(apply(json!({"pattern": "p(\\d)", "other": "o(\\d)"}), true, "p1 o2"), r#"{"pattern": "1", "other": "2"}"#);
    // Python syntax: lookbehind, backreferences, named groups.
    assert_eq!(apply(json!("(?<=\\$)\\d+"), true, "cost $12"), "12");
    assert_eq!(apply(json!("(?P<w>\\w)(?P=w)"), true, "abccd"), "c");
    // Errors name the problem.
    assert!(OutputParser::regex(&json!("(unclosed"), true).unwrap_err().to_string().contains("(unclosed"));
    assert!(OutputParser::regex(&json!({"pattern": "x", "match": "middle"}), true).is_err());
    assert!(OutputParser::regex(&json!(5), true).is_err());
}

#[test]
fn parsers_chain_like_wayflows_json_helper() {
    // adapt_prompt_template_for_json_structured_generation: a final-answer regex, then JSON.
    let parsers = [
        OutputParser::regex(&json!({"pattern": "<final_answer>\\s*\\$?(.*?)\\$?\\s*(?:</final_answer>|$)", "flags": 16}), false).unwrap(),
        OutputParser::json(None).unwrap(),
    ];
    let rf = json!({"title": "tags", "type": "array", "items": {"type": "string"}});
    let got = template_output("Thinking... <final_answer>$[\"x\", \"y\",]$</final_answer>", Some(&rf), false, false, &parsers).unwrap();
    assert_eq!(got, json!(["x", "y"]));
}

#[test]
fn lenient_json_examples() {
    assert_eq!(parse_lenient(r#"Sure: {"score": 5}"#), Some(json!({"score": 5})));
    assert_eq!(parse_lenient("```json\n{\"a\": 1,}\n```"), Some(json!({"a": 1})));
    assert_eq!(parse_lenient("{'a': 'b', c: True, d: None}"), Some(json!({"a": "b", "c": true, "d": null})));
    assert_eq!(parse_lenient("{\"a\": [1, 2"), Some(json!({"a": [1, 2]})));
    assert_eq!(parse_lenient("no JSON"), None);
}

#[test]
fn coerce_rules() {
    let s = |t: &str| json!({ "type": t });
    assert_eq!(coerce(None, &json!({"type": "string", "default": "d"}), true), json!("d"));
    assert_eq!(coerce(None, &json!({"type": "string", "default": "d"}), false), json!(""));
    assert_eq!(coerce(Some(&json!({"a": 1})), &s("string"), false), json!(r#"{"a": 1}"#));
    assert_eq!(coerce(Some(&json!(null)), &s("string"), false), json!(""));
    assert_eq!(py_json_dumps(&coerce(Some(&json!(5)), &s("number"), false)), "5.0");
    assert_eq!(coerce(Some(&json!(4.7)), &s("integer"), false), json!(4));
    assert_eq!(coerce(Some(&json!(2)), &s("boolean"), false), json!(true));
    assert_eq!(py_json_dumps(&coerce(Some(&json!(true)), &s("number"), false)), "1.0");
    assert_eq!(coerce(Some(&json!("x")), &s("integer"), false), json!(0));
    assert_eq!(coerce(Some(&json!("x")), &json!({"type": "integer", "enum": [3, 4]}), false), json!(3));
    assert_eq!(coerce(Some(&json!([1, "a"])), &json!({"type": "array", "items": {"type": "integer"}}), false), json!([]));
    assert_eq!(coerce(Some(&json!([1, 2.5])), &json!({"type": "array", "items": {"type": "integer"}}), false), json!([1, 2]));
    let obj = json!({"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": false});
    assert_eq!(coerce(Some(&json!({"b": 1, "a": 2})), &obj, false), json!({"a": 2.0}));
    for (t, zero) in [("string", json!("")), ("integer", json!(0)), ("number", json!(0.0)), ("boolean", json!(false)), ("array", json!([]))]
    {
        assert_eq!(coerce(None, &s(t), false), zero, "{t}");
    }
    assert_eq!(coerce(None, &json!({"type": "object", "additionalProperties": {}}), false), json!({}));
    assert_eq!(coerce(None, &json!({}), false), json!(null));
}
