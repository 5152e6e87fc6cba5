//! Native tools: argument deserialization, error mapping and the parameters schema.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use weft_tools::{Tool, ToolError, ToolRegistry, native};

#[derive(Deserialize, schemars::JsonSchema)]
struct WeatherArgs {
    /// The city to look up.
    city: String,
    /// How many days ahead.
    days: u32,
    #[serde(default)]
    units: Option<String>,
}

#[derive(Serialize)]
struct Forecast {
    city: String,
    temperatures: Vec<f64>,
}

async fn weather(args: WeatherArgs) -> Result<Forecast, String> {
    if args.city == "Atlantis" {
        return Err(format!("no weather station in {}", args.city));
    }
    let base = if args.units.as_deref() == Some("F") { 70.0 } else { 21.0 };
    Ok(Forecast { city: args.city, temperatures: (0..args.days).map(|d| base + f64::from(d)).collect() })
}

fn args(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn arguments_are_deserialized_and_the_result_serialized() {
    let tool = native(weather);
    let out = tool.call(args(json!({"city": "Paris", "days": 2}))).await.unwrap();
    assert_eq!(out, json!({"city": "Paris", "temperatures": [21.0, 22.0]}));
    let out = tool.call(args(json!({"city": "Austin", "days": 1, "units": "F"}))).await.unwrap();
    assert_eq!(out, json!({"city": "Austin", "temperatures": [70.0]}));
}

#[tokio::test]
async fn arguments_that_do_not_fit_name_the_argument() {
    let tool = native(weather);
    let err = tool.call(args(json!({"city": "Paris", "days": "two"}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the arguments do not fit the tool's parameters: argument `days`: invalid type: string \"two\", expected u32"
    );
    let err = tool.call(args(json!({"days": 1}))).await.unwrap_err();
    assert_eq!(err.to_string(), "the arguments do not fit the tool's parameters: missing field `city`");
    let err = tool.call(args(json!({"city": "Paris", "days": -1}))).await.unwrap_err();
    assert!(err.to_string().contains("argument `days`: invalid value: integer `-1`, expected u32"), "{err}");
}

#[tokio::test]
async fn unknown_arguments_are_ignored_unless_denied() {
    let tool = native(weather);
    assert!(tool.call(args(json!({"city": "Paris", "days": 0, "extra": true}))).await.is_ok());

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        #[allow(dead_code)]
        a: i64,
    }
    let strict = native(|_: Strict| async { Ok::<_, String>(true) });
    let err = strict.call(args(json!({"a": 1, "b": 2}))).await.unwrap_err();
    assert!(err.to_string().contains("unknown field `b`, expected `a`"), "{err}");
}

#[tokio::test]
async fn the_function_error_is_a_failure_with_its_message() {
    let err = native(weather).call(args(json!({"city": "Atlantis", "days": 1}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
    assert_eq!(err.to_string(), "no weather station in Atlantis");

    let boxed =
        native(|_: BTreeMap<String, Json>| async { Err::<Json, Box<dyn std::error::Error + Send + Sync>>("database is down".into()) });
    assert_eq!(boxed.call(Map::new()).await.unwrap_err().to_string(), "database is down");
}

#[tokio::test]
async fn a_result_that_is_not_json_is_bad_output() {
    let tool = native(|_: BTreeMap<String, Json>| async {
        let mut map = BTreeMap::new();
        map.insert(vec![1u8], 2);
        Ok::<_, String>(map)
    });
    let err = tool.call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::BadOutput { .. }), "{err:?}");
    assert!(err.to_string().starts_with("the tool's result cannot be represented as JSON: "), "{err}");
}

#[tokio::test]
async fn other_argument_shapes() {
    // A map of everything.
    let echo = native(|a: Map<String, Json>| async move { Ok::<_, String>(Json::Object(a)) });
    assert_eq!(echo.call(args(json!({"x": [1]}))).await.unwrap(), json!({"x": [1]}));
    // No arguments.
    let unit = native(|(): ()| async { Ok::<_, String>("pong") });
    assert_eq!(unit.call(Map::new()).await.unwrap(), json!("pong"));
    let err = unit.call(args(json!({"x": 1}))).await.unwrap_err();
    assert!(err.to_string().contains("the tool takes no arguments, found `x`"), "{err}");
    // Nested structures keep serde's messages.
    #[derive(Deserialize, schemars::JsonSchema)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Deserialize, schemars::JsonSchema)]
    struct Inner {
        n: u8,
    }
    let nested = native(|o: Outer| async move { Ok::<_, String>(o.inner.n) });
    assert_eq!(nested.call(args(json!({"inner": {"n": 7}}))).await.unwrap(), json!(7));
    let err = nested.call(args(json!({"inner": {"n": 700}}))).await.unwrap_err();
    assert!(err.to_string().contains("argument `inner`: invalid value: integer `700`, expected u8"), "{err}");
}

#[test]
fn the_parameters_schema_is_the_arguments_type_schema() {
    let tool = native(weather);
    let schema = tool.parameters_schema();
    assert_eq!(schema["$schema"], json!("https://json-schema.org/draft/2020-12/schema"));
    assert_eq!(schema["type"], json!("object"));
    assert_eq!(schema["title"], json!("WeatherArgs"));
    assert_eq!(schema["properties"]["city"]["type"], json!("string"));
    assert_eq!(schema["properties"]["city"]["description"], json!("The city to look up."));
    assert_eq!(schema["properties"]["days"]["type"], json!("integer"));
    assert_eq!(schema["required"], json!(["city", "days"]));
    assert!(format!("{tool:?}").contains("WeatherArgs"));
}

#[tokio::test]
async fn register_fn_binds_a_native_tool() {
    let mut registry = ToolRegistry::new();
    registry.register_fn("weather", weather).register_fn("add", |p: (i64, i64)| async move { Ok::<_, String>(p.0 + p.1) });
    assert_eq!(registry.names().collect::<Vec<_>>(), ["add", "weather"]);
    let out = registry.get("weather").unwrap().call(args(json!({"city": "Oslo", "days": 1}))).await.unwrap();
    assert_eq!(out["city"], json!("Oslo"));
    // A tuple cannot be built from an object.
    let err = registry.get("add").unwrap().call(args(json!({"a": 1}))).await.unwrap_err();
    assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
}
