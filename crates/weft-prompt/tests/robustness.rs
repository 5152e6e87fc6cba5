//! No input makes the crate panic.

use proptest::prelude::*;
use serde_json::{Map, Value as Json};
use weft_prompt::{
    OutputParser, Template, cast_to_input, coerce, extract_final_answer, outputs_from_answer, outputs_from_answer_coerced, parse_lenient,
    prompt_schema, py_json_dumps, py_str, template_output,
};

fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
        ".{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((".{0,6}", inner), 0..6).prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn any_schema() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(serde_json::json!({"type": "string"})),
        Just(serde_json::json!({"type": "integer"})),
        Just(serde_json::json!({"type": "number", "default": 1.5})),
        Just(serde_json::json!({"type": "boolean"})),
        Just(serde_json::json!({"type": "null"})),
        Just(serde_json::json!({})),
        Just(serde_json::json!({"type": "string", "enum": ["a", "b"]})),
        Just(serde_json::json!({"type": "string", "default": null})),
        Just(serde_json::json!({"type": ["integer", "string"]})),
        Just(serde_json::json!({"type": "strin"})),
        Just(serde_json::json!(true)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| serde_json::json!({"type": "array", "items": s})),
            inner.clone().prop_map(|s| serde_json::json!({"type": "object", "additionalProperties": s})),
            prop::collection::vec(("[a-c]", inner.clone()), 0..4)
                .prop_map(|kv| serde_json::json!({"type": "object", "properties": kv.into_iter().collect::<Map<_, _>>(), "additionalProperties": false})),
            prop::collection::vec(inner, 1..3).prop_map(|m| serde_json::json!({"anyOf": m})),
        ]
    })
}

/// Text that looks like a model's answer: JSON, damaged, with prose and tags around it.
fn answer_like() -> impl Strategy<Value = String> {
    (any_json(), 0usize..6, ".{0,8}", any::<u16>()).prop_map(|(v, how, noise, cut)| {
        let text = py_json_dumps(&v);
        match how {
            0 => text,
            1 => format!("Sure! {noise} <final_answer>{text}</final_answer>"),
            2 => format!("```json\n{}\n```", text.replace('}', ",}").replace(']', ",]")),
            3 => text.chars().take(cut as usize % (text.chars().count() + 1)).collect(),
            4 => text.replace('"', "'").replace("true", "True"),
            _ => format!("{noise}{text}{noise}"),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_dumps_reads_back(v in any_json()) {
        let text = py_json_dumps(&v);
        prop_assert!(text.is_ascii());
        let back: Json = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn str_never_panics(v in any_json()) {
        let s = py_str(&v);
        if let Json::String(original) = &v {
            prop_assert_eq!(&s, original);
        }
    }

    #[test]
    fn lenient_parser_never_panics(text in ".{0,200}") {
        let _ = parse_lenient(&text);
        let _ = extract_final_answer(&text);
    }

    #[test]
    fn lenient_parser_reads_valid_and_damaged_json(text in answer_like()) {
        let _ = parse_lenient(&text);
    }

    #[test]
    fn lenient_parser_reads_valid_json_exactly(v in any_json()) {
        prop_assert_eq!(parse_lenient(&py_json_dumps(&v)), Some(v));
    }

    #[test]
    fn coercion_never_panics(v in any_json(), schema in any_schema(), absent in any::<bool>(), default in any::<bool>()) {
        // (Not idempotent in general: as in WayFlow, the zero value of an enum member is `""`,
        // which a second coercion turns into the first enum value.)
        let got = coerce(if absent { None } else { Some(&v) }, &schema, default);
        let _ = coerce(Some(&got), &schema, default);
        let _ = cast_to_input(v, &schema);
    }

    #[test]
    fn coercion_gives_the_declared_type(v in any_json()) {
        use serde_json::json;
        let string = json!({"type": "string"});
        let number = json!({"type": "number"});
        let boolean = json!({"type": "boolean"});
        let array = json!({"type": "array", "items": {"type": "string"}});
        prop_assert!(coerce(Some(&v), &string, false).is_string());
        prop_assert!(coerce(Some(&v), &number, false).is_f64());
        prop_assert!(coerce(Some(&v), &boolean, false).is_boolean());
        prop_assert!(coerce(Some(&v), &array, false).is_array());
    }

    #[test]
    fn replies_never_panic(text in answer_like(), outputs in prop::collection::vec(any_schema(), 1..3), native in any::<bool>(), strict in any::<bool>()) {
        let outputs: Vec<Json> = outputs
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                if let Json::Object(m) = &mut s {
                    m.insert("title".into(), Json::String(format!("o{i}")));
                }
                s
            })
            .collect();
        let _ = prompt_schema(&outputs);
        let _ = outputs_from_answer(&text, &outputs);
        let _ = outputs_from_answer_coerced(&text, &outputs);
        let parsers = [OutputParser::json(None).unwrap()];
        let _ = template_output(&text, Some(&outputs[0]), native, strict, &parsers);
        let _ = template_output(&text, Some(&outputs[0]), native, strict, &[]);
    }

    #[test]
    fn templates_never_panic(source in ".{0,60}", v in any_json()) {
        if let Ok(t) = Template::new(&source) {
            let mut vars = Map::new();
            for name in ["x", "a", "items"] {
                vars.insert(name.to_owned(), v.clone());
            }
            let _ = t.render(&vars);
        }
    }

    #[test]
    fn templates_print_any_value(v in any_json()) {
        let t = Template::new("{{ x }}|{% for i in x %}{{ i }}{% endfor %}").unwrap();
        let mut vars = Map::new();
        vars.insert("x".into(), v.clone());
        if let Ok(out) = t.render(&vars) {
            prop_assert!(out.starts_with(&py_str(&v)));
        }
    }

    #[test]
    fn regex_parsers_never_panic(pattern in ".{0,16}", text in ".{0,40}", flags in 0i64..512, strict in any::<bool>()) {
        let spec = serde_json::json!({"pattern": pattern, "flags": flags, "match": "last"});
        if let Ok(p) = OutputParser::regex(&spec, strict) {
            let _ = p.apply(&text);
        }
        if let Ok(p) = OutputParser::regex(&Json::String(pattern), strict) {
            let _ = p.apply(&text);
        }
    }

    #[test]
    fn jq_parsers_never_panic(query in ".{0,16}", v in any_json()) {
        let props = serde_json::json!({"q": query});
        if let Ok(p) = OutputParser::json(Some(&props)) {
            let _ = p.apply(&py_json_dumps(&v));
        }
    }
}
