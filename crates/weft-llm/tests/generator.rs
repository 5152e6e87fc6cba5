//! The schema → value rule of the simulated model: each keyword, `$ref`s, recursion, and that every
//! value validates against its schema.

use serde_json::{Value as Json, json};
use weft_llm::simulated::generate;

/// Generates with arrays of `array_len` items, checks that the value validates (formats
/// included), and returns it.
#[track_caller]
fn valid(schema: Json, array_len: usize) -> Json {
    let value = generate(&schema, array_len);
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).expect("a valid schema");
    let errors: Vec<String> = validator.iter_errors(&value).map(|error| error.to_string()).collect();
    assert!(errors.is_empty(), "{value} does not validate against {schema}: {errors:?}");
    value
}

#[track_caller]
fn check(schema: Json, expect: Json) {
    assert_eq!(valid(schema, 1), expect);
}

#[test]
fn const_and_enum() {
    check(json!({"const": {"a": 1}}), json!({"a": 1}));
    check(json!({"type": "string", "enum": ["spam", "ham"]}), json!("spam"));
    check(json!({"enum": [3, "x"]}), json!(3));
    // `const` comes before `type`.
    check(json!({"type": "string", "const": "fixed"}), json!("fixed"));
}

#[test]
fn any_of_one_of_all_of() {
    check(json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}), json!(0));
    check(json!({"oneOf": [{"type": "boolean"}, {"type": "string"}]}), json!(false));
    // Siblings of the branch still apply.
    check(
        json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["b"]}]}),
        json!({"a": "a", "b": "b"}),
    );
    // `allOf` merges the branches.
    check(
        json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 2}}},
            {"properties": {"b": {"type": "string"}, "a": {"maximum": 5}}, "required": ["a", "b"]}
        ]}),
        json!({"a": 2, "b": "b"}),
    );
    check(json!({"allOf": [{"type": "integer", "minimum": 3}, {"minimum": 7}]}), json!(7));
    check(json!({"allOf": [{"type": ["integer", "string"]}, {"type": ["string", "null"]}]}), json!("text"));
}

#[test]
fn types() {
    check(json!({"type": "boolean"}), json!(false));
    check(json!({"type": "null"}), json!(null));
    check(json!({"type": ["null", "integer"]}), json!(0));
    check(json!({"type": ["null"]}), json!(null));
    check(json!({"type": "string"}), json!("text"));
    check(json!({}), json!("text"));
    check(json!(true), json!("text"));
    // Without `type`, the keywords tell.
    check(json!({"properties": {"a": {}}}), json!({"a": "a"}));
    check(json!({"items": {"type": "integer"}}), json!([0]));
    check(json!({"minimum": 2}), json!(2.0));
}

#[test]
fn integers_and_numbers() {
    let integer = |bounds: Json| {
        let mut schema = json!({"type": "integer"});
        schema.as_object_mut().unwrap().extend(bounds.as_object().unwrap().clone());
        valid(schema, 1)
    };
    assert_eq!(integer(json!({})).to_string(), "0");
    assert_eq!(integer(json!({"minimum": 3})), json!(3));
    assert_eq!(integer(json!({"minimum": 2.5})), json!(3));
    assert_eq!(integer(json!({"exclusiveMinimum": 3})), json!(4));
    assert_eq!(integer(json!({"minimum": 1, "exclusiveMinimum": 3})), json!(4));
    assert_eq!(integer(json!({"maximum": -4})), json!(-4));
    assert_eq!(integer(json!({"exclusiveMaximum": -4})), json!(-5));
    assert_eq!(integer(json!({"minimum": 10, "maximum": 20})), json!(10));
    assert_eq!(integer(json!({"minimum": 1, "multipleOf": 5})), json!(5));
    assert_eq!(integer(json!({"minimum": -100, "maximum": -1, "multipleOf": 7})), json!(-98));

    let number = |bounds: Json| {
        let mut schema = json!({"type": "number"});
        schema.as_object_mut().unwrap().extend(bounds.as_object().unwrap().clone());
        valid(schema, 1)
    };
    assert_eq!(number(json!({})).to_string(), "0.0");
    assert_eq!(number(json!({"minimum": 0.5})), json!(0.5));
    assert_eq!(number(json!({"exclusiveMinimum": 2})), json!(3.0));
    assert_eq!(number(json!({"maximum": -1.5})), json!(-1.5));
    assert_eq!(number(json!({"minimum": 0, "exclusiveMaximum": 1})), json!(0.0));
    assert_eq!(number(json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1})), json!(0.5));
    assert_eq!(number(json!({"exclusiveMaximum": 0})), json!(-1.0));
    assert_eq!(number(json!({"minimum": 0.1, "multipleOf": 0.25})), json!(0.25));

    // Draft 4's boolean `exclusiveMinimum`.
    let draft4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "minimum": 5, "exclusiveMinimum": true});
    assert_eq!(valid(draft4, 1), json!(6));
}

#[test]
fn strings() {
    let object = |property: Json| valid(json!({"type": "object", "properties": {"summary": property}}), 1)["summary"].clone();
    assert_eq!(object(json!({"type": "string"})), json!("summary"));
    assert_eq!(object(json!({"type": "string", "minLength": 20})), json!("summarysummarysummar"));
    assert_eq!(object(json!({"type": "string", "maxLength": 3})), json!("sum"));
    assert_eq!(object(json!({"type": "string", "maxLength": 0})), json!(""));
    assert_eq!(object(json!({"type": "string", "minLength": 2, "maxLength": 40})), json!("summary"));
    check(json!({"type": "string", "minLength": 6}), json!("texttext"[..6]));

    for (format, expect) in [
        ("date-time", "2026-01-01T00:00:00Z"),
        ("date", "2026-01-01"),
        ("time", "00:00:00Z"),
        ("email", "user@example.com"),
        ("uri", "https://example.com/"),
        ("url", "https://example.com/"),
        ("uuid", "00000000-0000-4000-8000-000000000000"),
        ("ipv4", "192.0.2.1"),
        ("ipv6", "2001:db8::1"),
        ("hostname", "example.com"),
        ("duration", "P1D"),
    ] {
        assert_eq!(object(json!({"type": "string", "format": format})), json!(expect), "{format}");
    }
    // An unknown format keeps the name.
    assert_eq!(object(json!({"type": "string", "format": "phone"})), json!("summary"));
}

#[test]
fn arrays() {
    let tags = json!({"type": "array", "items": {"type": "string"}});
    assert_eq!(valid(json!({"type": "object", "properties": {"tags": tags}}), 3), json!({"tags": ["tags", "tags", "tags"]}));
    assert_eq!(valid(json!({"type": "array", "items": {"type": "integer"}}), 2), json!([0, 0]));
    assert_eq!(valid(json!({"type": "array", "items": {"type": "integer"}, "minItems": 4}), 2), json!([0, 0, 0, 0]));
    assert_eq!(valid(json!({"type": "array", "items": {"type": "integer"}, "maxItems": 1}), 5), json!([0]));
    assert_eq!(valid(json!({"type": "array", "items": {"type": "integer"}}), 0), json!([]));
    assert_eq!(valid(json!({"type": "array"}), 1), json!(["text"]));
    // Tuples: 2020-12 `prefixItems`, draft-7 `items` lists.
    assert_eq!(
        valid(json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": false}), 5),
        json!([0, false])
    );
    assert_eq!(valid(json!({"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "null"}}), 3), json!([0, null, null]));
    let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "items": [{"type": "integer"}, {"const": "x"}], "additionalItems": false});
    assert_eq!(valid(draft7, 4), json!([0, "x"]));
    // Duplicates are dropped when items must be unique.
    assert_eq!(valid(json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}), 3), json!(["text"]));
}

#[test]
fn objects() {
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "score": {"type": "number"},
            "author": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}}, "required": ["name"]},
            "labels": {"type": "array", "items": {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}}}
        },
        "required": ["title", "author", "extra"],
        "additionalProperties": {"type": "boolean"}
    });
    let value = valid(schema, 2);
    assert_eq!(
        value.to_string(),
        r#"{"title":"title","score":0.0,"author":{"name":"name","age":18},"labels":[{"label":"a"},{"label":"a"}],"extra":false}"#
    );
    // A dictionary is empty, unless it needs entries.
    check(json!({"type": "object", "additionalProperties": {"type": "integer"}}), json!({}));
    check(json!({"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2}), json!({"key1": 0, "key2": 0}));
}

#[test]
fn refs() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"$ref": "#/definitions/B", "description": "annotations beside a ref"},
            "c": {"$ref": "#/$defs/A", "required": ["more"]},
            "d": {"$ref": "#/$defs/with%20space"},
            "e": {"$ref": "#/$defs/Alias"}
        },
        "$defs": {"A": {"type": "integer", "minimum": 1}, "with space": {"const": 1}, "Alias": {"$ref": "#/$defs/A"}},
        "definitions": {"B": {"type": "string", "format": "date"}}
    });
    let value = generate(&schema, 1);
    assert_eq!(value, json!({"a": 1, "b": "2026-01-01", "c": 1, "d": 1, "e": 1}));
    // An external or broken ref is ignored.
    assert_eq!(generate(&json!({"$ref": "https://example.com/schema.json", "type": "boolean"}), 1), json!(false));
    assert_eq!(generate(&json!({"$ref": "#/$defs/missing"}), 1), json!("text"));
}

/// What schemars writes for `struct Report { title: String, sections: Vec<Section>, verdict:
/// Verdict, reviewer: Option<Person> }` and friends.
fn schemars_report() -> Json {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Report",
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "sections": {"type": "array", "items": {"$ref": "#/$defs/Section"}},
            "verdict": {"$ref": "#/$defs/Verdict"},
            "reviewer": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}]},
            "rating": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 255},
            "weight": {"type": ["number", "null"], "format": "double"},
            "kind": {"oneOf": [
                {"type": "object", "properties": {"Text": {"type": "string"}}, "required": ["Text"], "additionalProperties": false},
                {"type": "string", "const": "Empty"}
            ]}
        },
        "required": ["title", "sections", "verdict", "rating", "kind"],
        "$defs": {
            "Section": {
                "type": "object",
                "properties": {"heading": {"type": "string"}, "body": {"type": "string", "minLength": 1}},
                "required": ["heading", "body"]
            },
            "Verdict": {"type": "string", "enum": ["accept", "reject"]},
            "Person": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}}, "required": ["name"]}
        }
    })
}

#[test]
fn schemars_style_schema() {
    let value = valid(schemars_report(), 2);
    assert_eq!(
        value,
        json!({
            "title": "title",
            "sections": [{"heading": "heading", "body": "body"}, {"heading": "heading", "body": "body"}],
            "verdict": "accept",
            "reviewer": {"name": "name", "email": "user@example.com"},
            "rating": 0,
            "weight": 0.0,
            "kind": {"Text": "Text"}
        })
    );
}

#[test]
fn recursive_refs_terminate() {
    // A tree: each node has children of its own type.
    let tree = json!({
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, "required": ["name"]}}
    });
    let value = valid(tree, 1);
    let mut depth = 0;
    let mut node = &value;
    while let Some(child) = node.get("children").and_then(|children| children.get(0)) {
        node = child;
        depth += 1;
    }
    assert!((5..=10).contains(&depth), "depth {depth}");

    // The root itself, and a required recursive property made nullable.
    valid(json!({"type": "object", "properties": {"next": {"$ref": "#"}}}), 3);
    valid(json!({"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "required": ["next"]}), 2);
    // A list whose items are lists of the same: wide and deep, yet bounded.
    valid(json!({"$defs": {"L": {"type": "array", "items": {"$ref": "#/$defs/L"}}}, "$ref": "#/$defs/L"}), 3);
    // Unsatisfiable recursion still ends.
    generate(&json!({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}), 1);
    generate(&json!({"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}), 1);
    generate(&json!({"$defs": {"A": {"allOf": [{"$ref": "#/$defs/A"}, {"type": "object"}]}}, "$ref": "#/$defs/A"}), 1);
    generate(&json!({"allOf": [{"$ref": "#"}]}), 1);
    generate(&json!({"anyOf": [{"$ref": "#"}]}), 1);
    generate(&json!({"type": "object", "properties": {"next": {"type": ["object", "null"], "$ref": "#"}}, "required": ["next"]}), 1);
}

#[test]
fn odd_schemas_never_panic() {
    let odd = [
        json!(null),
        json!(false),
        json!(true),
        json!(42),
        json!("string"),
        json!([1, 2]),
        json!({"type": 7}),
        json!({"type": "nonsense"}),
        json!({"type": []}),
        json!({"type": [1, null]}),
        json!({"enum": []}),
        json!({"anyOf": []}),
        json!({"anyOf": "x"}),
        json!({"allOf": [false]}),
        json!({"allOf": [true, 3]}),
        json!({"$ref": 5}),
        json!({"$ref": "#/%zz"}),
        json!({"$ref": "#/"}),
        json!({"type": "string", "minLength": -3, "maxLength": 1.5}),
        json!({"type": "string", "minLength": 1e300}),
        json!({"type": "string", "minLength": 5, "maxLength": 2}),
        json!({"type": "integer", "minimum": 1e300}),
        json!({"type": "integer", "minimum": -1e300, "maximum": -1e300}),
        json!({"type": "integer", "multipleOf": 0}),
        json!({"type": "integer", "multipleOf": -2}),
        json!({"type": "integer", "multipleOf": 0.5}),
        json!({"type": "number", "minimum": 5, "maximum": 1}),
        json!({"type": "number", "multipleOf": 1e-300}),
        json!({"type": "array", "minItems": 1e12}),
        json!({"type": "array", "minItems": u64::MAX}),
        json!({"type": "array", "items": 3, "prefixItems": "x"}),
        json!({"type": "object", "properties": [1], "required": "a"}),
        json!({"type": "object", "required": [1, "a"], "additionalProperties": false}),
        json!({"type": "object", "minProperties": u64::MAX, "additionalProperties": 3}),
        json!({"properties": {"": {"type": "string"}}}),
    ];
    for schema in odd {
        generate(&schema, 3);
    }
    // Huge lengths are capped rather than honoured.
    assert_eq!(generate(&json!({"type": "array", "minItems": u64::MAX}), 1).as_array().map(Vec::len), Some(1024));
    assert_eq!(generate(&json!({"type": "string", "minLength": 1e300}), 1).as_str().map(str::len), Some(65_536));
    assert_eq!(generate(&json!(false), 1), json!(null));
    // An empty name reads as `text`.
    assert_eq!(generate(&json!({"properties": {"": {"type": "string"}}}), 1), json!({"": "text"}));
}

#[test]
fn deep_nesting_ends() {
    let mut schema = json!({"type": "string"});
    for _ in 0..400 {
        schema = json!({"type": "object", "properties": {"a": schema}});
    }
    let value = generate(&schema, 1);
    assert!(value.is_object());
}

#[test]
fn many_schemas_validate() {
    let schemas = [
        json!({"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["answer", "confidence"], "additionalProperties": false}),
        json!({"type": "object", "properties": {"is_safe": {"type": "boolean"}, "reason": {"type": "string", "minLength": 10}}}),
        json!({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "at": {"type": "string", "format": "date-time"}}}, "minItems": 2, "maxItems": 2}),
        json!({"type": "object", "properties": {"route": {"type": "string", "enum": ["billing", "tech", "other"]}, "priority": {"type": "integer", "minimum": 1, "maximum": 5}}}),
        json!({"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "properties": {"x-a": {"type": "string"}}}),
        json!({"type": ["string", "null"], "maxLength": 2}),
        json!({"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]}),
        json!({"type": "object", "properties": {"links": {"type": "array", "items": {"type": "string", "format": "uri"}, "minItems": 1}}, "required": ["links"]}),
        json!({"type": "object", "properties": {"ip": {"format": "ipv4"}, "host": {"format": "hostname"}, "t": {"type": "string", "format": "time"}}}),
        json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001}),
        json!({"type": "integer", "exclusiveMinimum": -10, "exclusiveMaximum": -8}),
        json!({"type": "object", "properties": {"nested": {"type": "object", "properties": {"deeper": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}}}}}),
        json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"P": {"type": "object", "properties": {"x": {"type": "integer"}}}}, "type": "array", "items": {"$ref": "#/definitions/P"}}),
        json!({"allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}], "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}),
        json!({"type": "object", "required": ["name"]}),
        json!({"type": "object", "properties": {"list": {"type": "array", "uniqueItems": true, "items": {"enum": ["a", "b"]}}}}),
        schemars_report(),
    ];
    for schema in schemas {
        for array_len in [0, 1, 3] {
            valid(schema.clone(), array_len);
        }
    }
}
