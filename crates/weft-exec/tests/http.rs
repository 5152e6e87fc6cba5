//! ApiNode and RemoteTool against the testkit's API server on 127.0.0.1 (AGENTS.md section 7):
//! the request as WayFlow renders it (URL placeholders encoded, query, headers, JSON and form
//! bodies), outputs from JSON and non-JSON bodies, 4xx and 5xx with and without a retry policy,
//! `Retry-After`, a timeout, a redirect, the size cap, `url_allow_list` (`/v1` does not allow
//! `/v10`), sensitive headers kept out of events, states and errors, RemoteTool in a tool node
//! and in an agent, and a request made again after a resume.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use serde_json::{Map, Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_exec::{EventRecord, Plan, RunErrorKind, RunOptions, Status};
use weft_llm::http::{HttpClient, HttpOptions, Rewrites};
use weft_llm::limit::Limiters;
use weft_llm::retry::RecordingSleeper;
use weft_testkit::api::{ApiReply, ApiServer};

const BASE: &str = "https://api.example.com";

/// A flow start -> api -> end, the start giving `inputs` (strings), the end taking the node's
/// `outputs`.
fn api_flow(api: Json, inputs: &[&str], outputs: &[Json]) -> weft_flow::Flow {
    let mut api = api;
    api["component_type"] = json!("ApiNode");
    api["id"] = json!("api");
    api["name"] = json!("api");
    if !outputs.is_empty() {
        api["outputs"] = Json::Array(outputs.to_vec());
    }
    let start_inputs: Vec<Json> = inputs.iter().map(|i| json!({"title": i, "type": "string"})).collect();
    let start = json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": start_inputs, "outputs": start_inputs});
    let titles: Vec<String> = if outputs.is_empty() {
        vec!["response".to_owned()]
    } else {
        outputs.iter().map(|o| o["title"].as_str().unwrap().to_owned()).collect()
    };
    let end_outputs: Vec<Json> = titles.iter().map(|t| json!({"title": t})).collect();
    let end = json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": end_outputs, "outputs": end_outputs});
    let mut data: Vec<(&str, &str, &str, &str)> = inputs.iter().map(|i| ("start", *i, "api", *i)).collect();
    for t in &titles {
        data.push(("api", t.as_str(), "end", t.as_str()));
    }
    let mut doc = common::flow_json("api_flow", vec![start, api, end], &[("start", "api"), ("api", "end")], &data);
    doc["agentspec_version"] = json!("26.1.2");
    match weft_flow::Flow::from_json(&doc.to_string()) {
        Ok(loaded) => loaded.flow,
        Err(e) => panic!("the test flow does not load: {e}"),
    }
}

struct Setup {
    server: ApiServer,
    sleeper: Arc<RecordingSleeper>,
    events: Arc<Mutex<Vec<Json>>>,
}

impl Setup {
    async fn new() -> Setup {
        Setup { server: ApiServer::start().await, sleeper: RecordingSleeper::new(), events: Arc::default() }
    }

    fn http(&self, configure: impl FnOnce(&mut HttpOptions)) -> Arc<HttpClient> {
        let mut options = HttpOptions {
            rewrites: Rewrites::new(vec![(BASE.to_owned(), self.server.url())]).unwrap(),
            sleeper: self.sleeper.clone(),
            limiters: Limiters::default(),
            ..HttpOptions::default()
        };
        configure(&mut options);
        Arc::new(HttpClient::new(options).unwrap())
    }

    fn options(&self, configure: impl FnOnce(&mut HttpOptions)) -> RunOptions {
        let events = Arc::clone(&self.events);
        let sink = move |r: &EventRecord<'_>| events.lock().unwrap().push(serde_json::to_value(r).unwrap());
        RunOptions::simulated().with_http(self.http(configure)).with_events(Arc::new(sink))
    }

    fn http_events(&self) -> Vec<Json> {
        self.events.lock().unwrap().iter().filter(|e| e["event"] == "http_request").cloned().collect()
    }
}

fn inputs(pairs: &[(&str, &str)]) -> Map<String, Json> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()
}

async fn run(flow: &weft_flow::Flow, options: RunOptions, given: Map<String, Json>) -> Result<Map<String, Json>, weft_exec::RunError> {
    let plan = Plan::new(flow, options).unwrap_or_else(|e| panic!("plan: {e}"));
    let mut run = plan.start(given).unwrap();
    match run.execute().await? {
        Status::Finished { outputs, .. } => Ok(outputs),
        other => panic!("not finished: {other:?}"),
    }
}

#[tokio::test]
async fn the_request_is_rendered_as_wayflow_renders_it() {
    let setup = Setup::new().await;
    setup.server.route("*", "/orders/New+York%2FNY+%C3%A9%3F%26", [ApiReply::echo()]);
    let flow = api_flow(
        json!({
            "url": format!("{BASE}/orders/{{{{city}}}}?fixed=1"),
            "http_method": "{{verb}}",
            "data": {"status": "{{status}}", "n": 3, "nested": {"{{status}}_key": ["{{city}}"]}},
            "query_params": {"notify": "true", "who": "{{status}}"},
            "headers": {"X-Trace": "t-{{status}}"},
        }),
        &["city", "verb", "status"],
        &[json!({"title": "method"}), json!({"title": "query"}), json!({"title": "body"}), json!({"title": "headers"})],
    );
    let outputs =
        run(&flow, setup.options(|_| {}), inputs(&[("city", "New York/NY é?&"), ("verb", "patch"), ("status", "a b")])).await.unwrap();
    assert_eq!(outputs["method"], "PATCH");
    // query_params replace the URL's own query.
    assert_eq!(outputs["query"], "notify=true&who=a+b");
    assert_eq!(outputs["body"], r#"{"status":"a b","n":3,"nested":{"a b_key":["New York/NY é?&"]}}"#);
    assert_eq!(outputs["headers"]["x-trace"], "t-a b");
    assert_eq!(outputs["headers"]["content-type"], "application/json");
    let events = setup.http_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["url"], format!("{BASE}/orders/New+York%2FNY+%C3%A9%3F%26?notify=true&who=a+b"));
    assert_eq!(events[0]["rewritten"], format!("{}/orders/New+York%2FNY+%C3%A9%3F%26?notify=true&who=a+b", setup.server.url()));
    assert_eq!((events[0]["status"].as_u64(), events[0]["attempts"].as_u64()), (Some(200), Some(1)));
}

#[tokio::test]
async fn forms_raw_text_and_explicit_content_types() {
    let setup = Setup::new().await;
    setup.server.route("POST", "/form", [ApiReply::echo()]);
    let form = api_flow(
        json!({"url": format!("{BASE}/form"), "http_method": "POST", "data": {"q": "{{q}}", "page": 2},
               "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        &["q"],
        &[json!({"title": "body"}), json!({"title": "headers"})],
    );
    let outputs = run(&form, setup.options(|_| {}), inputs(&[("q", "v w&x")])).await.unwrap();
    assert_eq!(outputs["body"], "q=v+w%26x&page=2");
    assert_eq!(outputs["headers"]["content-type"], "application/x-www-form-urlencoded");
    let raw = api_flow(
        json!({"url": format!("{BASE}/form"), "http_method": "POST", "data": "hello {{q}}"}),
        &["q"],
        &[json!({"title": "body"}), json!({"title": "headers"})],
    );
    let outputs = run(&raw, setup.options(|_| {}), inputs(&[("q", "there")])).await.unwrap();
    assert_eq!(outputs["body"], "hello there");
    assert!(outputs["headers"].get("content-type").is_none(), "{}", outputs["headers"]);
}

#[tokio::test]
async fn outputs_come_from_json_members_defaults_status_and_text() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/w", [ApiReply::json(200, json!({"response": {"t": 21}, "count": 3, "empty": null}))]);
    let flow = api_flow(
        json!({"url": format!("{BASE}/w"), "http_method": "GET"}),
        &[],
        &[
            json!({"title": "response"}),
            json!({"title": "count", "type": "string"}),
            json!({"title": "empty", "type": "string", "default": "none"}),
            json!({"title": "http_status_code", "type": "integer"}),
            json!({"title": "http_response", "type": "string"}),
        ],
    );
    let outputs = run(&flow, setup.options(|_| {}), Map::new()).await.unwrap();
    assert_eq!(outputs["response"], json!({"t": 21}), "the default output is the body's `response` member");
    assert_eq!(outputs["count"], "3", "cast to the declared type");
    assert_eq!(outputs["empty"], "none");
    assert_eq!(outputs["http_status_code"], 200);
    assert_eq!(outputs["http_response"], r#"{"response":{"t":21},"count":3,"empty":null}"#);
}

#[tokio::test]
async fn non_json_bodies() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/text", [ApiReply::text(200, "plain words")]);
    let text_only = api_flow(
        json!({"url": format!("{BASE}/text"), "http_method": "GET"}),
        &[],
        &[json!({"title": "http_response", "type": "string"}), json!({"title": "http_status_code", "type": "integer"})],
    );
    let outputs = run(&text_only, setup.options(|_| {}), Map::new()).await.unwrap();
    assert_eq!((outputs["http_response"].as_str(), outputs["http_status_code"].as_u64()), (Some("plain words"), Some(200)));
    let member = api_flow(json!({"url": format!("{BASE}/text"), "http_method": "GET"}), &[], &[]);
    let error = run(&member, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Http);
    assert!(error.message.contains("the response body is not JSON"), "{}", error.message);
    assert!(error.message.contains("\"plain words\""), "{}", error.message);
    assert!(error.message.contains("declare a string output `http_response`"), "{}", error.message);
}

#[tokio::test]
async fn failures_without_and_with_a_retry_policy() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/down", [ApiReply::text(500, "down for maintenance")]);
    setup.server.route("GET", "/missing", [ApiReply::text(404, "no such order")]);
    setup.server.route(
        "GET",
        "/busy",
        [ApiReply::status(429).with_header("Retry-After", "3"), ApiReply::json(200, json!({"response": "ok"}))],
    );
    let down = api_flow(json!({"url": format!("{BASE}/down"), "http_method": "GET"}), &[], &[]);
    let error = run(&down, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert_eq!(setup.server.hits("/down"), 3, "WayFlow's legacy loop: 3 tries");
    assert!(
        error.message.contains(&format!("error executing GET request to {BASE}/down: 500, \"down for maintenance\"")),
        "{}",
        error.message
    );
    assert!(error.message.contains("3 attempts"), "{}", error.message);
    assert!(error.message.contains("ApiNode \"api\""), "{}", error.message);

    let policy = json!({"max_attempts": 2, "jitter": null, "initial_retry_delay": 0.5});
    let missing = api_flow(json!({"url": format!("{BASE}/missing"), "http_method": "GET", "retry_policy": policy}), &[], &[]);
    let error = run(&missing, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert_eq!(setup.server.hits("/missing"), 1, "a 404 is never retried by a policy");
    assert!(error.message.contains(": 404, \"no such order\""), "{}", error.message);
    let down = api_flow(json!({"url": format!("{BASE}/down"), "http_method": "GET", "retry_policy": policy}), &[], &[]);
    run(&down, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert_eq!(setup.server.hits("/down"), 3 + 3, "2 retries of a 500");
    let busy = api_flow(json!({"url": format!("{BASE}/busy"), "http_method": "GET", "retry_policy": policy}), &[], &[]);
    let outputs = run(&busy, setup.options(|_| {}), Map::new()).await.unwrap();
    assert_eq!(outputs["response"], "ok");
    assert_eq!(
        setup.sleeper.delays(),
        vec![Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(3)],
        "the 500's delays, then Retry-After"
    );
}

#[tokio::test]
async fn timeouts_redirects_and_the_size_cap() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/slow", [ApiReply::json(200, json!({"response": 1})).after(Duration::from_secs(3))]);
    setup.server.route("GET", "/moved", [ApiReply::redirect(301, "https://elsewhere.example/new")]);
    setup.server.route("GET", "/huge", [ApiReply::oversized(2_000_000, false)]);
    let slow = api_flow(json!({"url": format!("{BASE}/slow"), "http_method": "GET"}), &[], &[]);
    let t0 = std::time::Instant::now();
    let error = run(&slow, setup.options(|o| o.legacy_timeout = Duration::from_millis(300)), Map::new()).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(error.message.contains("no answer within 0.3 s (the attempt timeout"), "{}", error.message);
    assert_eq!(setup.server.hits("/slow"), 1, "a request without an answer is not retried without a policy");

    let moved = api_flow(json!({"url": format!("{BASE}/moved"), "http_method": "GET", "retry_policy": {}}), &[], &[]);
    let error = run(&moved, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert!(error.message.contains(": 301, "), "{}", error.message);
    assert!(error.message.contains("redirects are not followed"), "{}", error.message);
    assert!(error.message.contains("https://elsewhere.example/new"), "{}", error.message);
    assert_eq!(setup.server.hits("/moved"), 1);

    let huge = api_flow(json!({"url": format!("{BASE}/huge"), "http_method": "GET"}), &[], &[]);
    let error = run(&huge, setup.options(|o| o.max_response_bytes = 1_000_000), Map::new()).await.unwrap_err();
    assert!(error.message.contains("larger than 1000000 bytes"), "{}", error.message);
}

#[tokio::test]
async fn the_allow_list_is_checked_before_any_request() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/v10/items", [ApiReply::json(200, json!({"response": "leaked"}))]);
    setup.server.route("GET", "/v1/items", [ApiReply::json(200, json!({"response": "fine"}))]);
    let flow = api_flow(
        json!({"url": format!("{BASE}/{{{{version}}}}/items"), "http_method": "GET", "url_allow_list": [format!("{BASE}/v1")]}),
        &["version"],
        &[],
    );
    let outputs = run(&flow, setup.options(|_| {}), inputs(&[("version", "v1")])).await.unwrap();
    assert_eq!(outputs["response"], "fine");
    let error = run(&flow, setup.options(|_| {}), inputs(&[("version", "v10")])).await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Http);
    assert!(error.message.contains("url_allow_list"), "{}", error.message);
    assert!(error.message.contains(&format!("{BASE}/v10/items")), "{}", error.message);
    assert_eq!(setup.server.hits("/v10/items"), 0, "nothing was sent");
    // A climb out of the allowed path, encoded in the value, is refused too.
    let error = run(&flow, setup.options(|_| {}), inputs(&[("version", "v1/../v10")])).await.unwrap_err();
    assert!(error.message.contains("url_allow_list"), "{}", error.message);
    assert_eq!(setup.server.total(), 1);
}

#[tokio::test]
async fn sensitive_headers_are_sent_and_shown_nowhere() {
    let setup = Setup::new().await;
    let secret = "Bearer sk-sensitive-7f3a9c1e5b";
    setup.server.route("GET", "/slow", [ApiReply::json(200, json!({"response": "ok"})).after(Duration::from_millis(300))]);
    setup.server.route("GET", "/leaky", [ApiReply::text(500, &format!("denied for token {secret}"))]);
    let api = |path: &str| json!({"url": format!("{BASE}{path}"), "http_method": "GET", "sensitive_headers": {"Authorization": secret}, "headers": {"X-Plain": "p"}});
    let flow = api_flow(api("/slow"), &[], &[]);
    let plan = Plan::new(&flow, setup.options(|_| {})).unwrap();
    let mut running = plan.start(Map::new()).unwrap();
    // The state of a run busy with the request holds no header.
    assert!(tokio::time::timeout(Duration::from_millis(100), running.execute()).await.is_err());
    let state = serde_json::to_string(running.state()).unwrap();
    assert!(state.contains("\"kind\":\"http\"") && !state.contains("sk-sensitive"), "{state}");
    let mut resumed = plan.resume(running.into_state()).unwrap();
    let Status::Finished { .. } = resumed.execute().await.unwrap() else { panic!() };
    let sent = setup.server.received();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.header("authorization") == Some(secret) && r.header("x-plain") == Some("p")), "{sent:?}");
    let events = serde_json::to_string(&*setup.events.lock().unwrap()).unwrap();
    assert!(events.contains("http_request") && !events.contains("sk-sensitive"), "{events}");
    let model = plan.flow().model();
    let shown: String = (0..plan.flow().spec().components.len()).map(|c| format!("{:?}", model.node(c))).collect();
    assert!(shown.contains("Given(<redacted>)") && !shown.contains("sk-sensitive"), "the model's Debug redacts them");

    let leaky = api_flow(api("/leaky"), &[], &[]);
    let secrets = Arc::new(weft_guard::Secrets::new([secret.to_owned()]));
    let error = run(&leaky, setup.options(|_| {}).with_secrets(secrets), Map::new()).await.unwrap_err();
    assert!(!error.message.contains("sk-sensitive"), "{}", error.message);
    assert!(error.message.contains("denied for token [REDACTED]"), "{}", error.message);
    // Masked even when the caller did not name it a secret: the node knows its own.
    let error = run(&leaky, setup.options(|_| {}), Map::new()).await.unwrap_err();
    assert!(!error.message.contains("sk-sensitive"), "{}", error.message);
    assert!(error.message.contains("denied for token [REDACTED]"), "{}", error.message);
}

#[tokio::test]
async fn a_remote_tool_in_a_tool_node_and_in_an_agent() {
    let setup = Setup::new().await;
    setup.server.fallback([ApiReply::json(200, json!({"temperature": 21.5, "summary": "sunny"}))]);
    let corpus = |name: &str| {
        common::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(name))
    };
    let flow = corpus("p_tool_node_remote.json");
    let outputs = run(&flow, setup.options(|_| {}), inputs(&[("city", "Oslo"), ("units", "metric")])).await.unwrap();
    assert_eq!(outputs["weather"], json!({"temperature": 21.5, "summary": "sunny"}));
    let got = &setup.server.received()[0];
    assert_eq!(got.query.as_deref(), Some("units=metric&lang=en"));
    assert_eq!(got.header("x-request-source"), Some("agentspec-corpus"));

    // In an agent: the simulated model calls it; the model sees the body's text, JSON-quoted.
    let agent = corpus("p_agent_tools_toplevel.json");
    let plan = Plan::new(&agent, setup.options(|_| {}).with_tools(common::tools_for(&agent))).unwrap();
    let mut running = plan.start(Map::new()).unwrap();
    let _ = running.execute().await.unwrap();
    let remote_calls = setup.http_events();
    assert!(!remote_calls.is_empty(), "the agent called its RemoteTool");
    let results: Vec<&str> =
        running.state().messages.iter().filter(|m| m.message_type == "TOOL_RESULT").map(|m| m.content.as_str()).collect();
    let quoted = json!(r#"{"temperature":21.5,"summary":"sunny"}"#).to_string();
    assert!(results.contains(&quoted.as_str()), "{results:?}");
    let sent = setup.server.received();
    assert!(
        sent[1..].iter().all(|r| r.path.starts_with("/v1/weather/") && r.query.as_deref().is_some_and(|q| q.ends_with("&lang=en"))),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_request_in_flight_is_made_again_after_a_resume() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/slow", [ApiReply::json(200, json!({"response": "done"})).after(Duration::from_millis(400))]);
    let flow = api_flow(json!({"url": format!("{BASE}/slow"), "http_method": "GET"}), &[], &[]);
    let plan = Plan::new(&flow, setup.options(|_| {})).unwrap();
    let mut running = plan.start(Map::new()).unwrap();
    // Stopped while the request is in flight: the state says so, and a resume sends it again.
    assert!(tokio::time::timeout(Duration::from_millis(100), running.execute()).await.is_err());
    let stored = serde_json::to_string(running.state()).unwrap();
    assert!(stored.contains("\"kind\":\"http\""), "{stored}");
    let state: weft_exec::RunState = serde_json::from_str(&stored).unwrap();
    let mut resumed = plan.resume(state).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!() };
    assert_eq!(outputs["response"], "done");
    assert_eq!(setup.server.hits("/slow"), 2);
}

/// An ApiNode inside a PluginCatchExceptionNode: each failure is caught by the exception name
/// WayFlow raises for it.
#[tokio::test]
async fn catch_nodes_see_wayflows_exception_names() {
    let setup = Setup::new().await;
    setup.server.route("GET", "/down", [ApiReply::text(500, "down")]);
    setup.server.route("GET", "/text", [ApiReply::text(200, "not json")]);
    let cases = [
        (format!("{BASE}/down"), vec![], "RuntimeError"),
        (format!("{BASE}/text"), vec![], "JSONDecodeError"),
        (format!("{BASE}/down"), vec![format!("{BASE}/up")], "ValueError"),
    ];
    for (url, allow, name) in cases {
        let mut api = json!({"component_type": "ApiNode", "id": "api", "name": "api", "url": url, "http_method": "GET"});
        if !allow.is_empty() {
            api["url_allow_list"] = json!(allow);
        }
        let inner_start = json!({"component_type": "StartNode", "id": "in_start", "name": "in_start"});
        let inner_end = json!({"component_type": "EndNode", "id": "in_end", "name": "in_end"});
        let inner = common::flow_json("inner", vec![inner_start, api, inner_end], &[("in_start", "api"), ("api", "in_end")], &[]);
        let catch = json!({
            "component_type": "PluginCatchExceptionNode", "id": "catch", "name": "catch",
            "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.1.0",
            "flow": inner, "except_on": {(name): "caught"}, "catch_all_exceptions": false,
        });
        let start = json!({"component_type": "StartNode", "id": "start", "name": "start"});
        let end = json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "exception_name"}], "outputs": [{"title": "exception_name"}]});
        let mut doc = common::flow_json(
            "outer",
            vec![start, catch, end],
            &[("start", "catch"), ("catch", "end")],
            &[("catch", "exception_name", "end", "exception_name")],
        );
        // Both branches of the catch node go to the end.
        let edges = doc["control_flow_connections"].as_array_mut().unwrap();
        edges[1]["from_branch"] = json!("caught");
        edges.push(json!({"component_type": "ControlFlowEdge", "id": "c_next", "name": "c_next", "from_node": {"$component_ref": "catch"}, "from_branch": "next", "to_node": {"$component_ref": "end"}}));
        doc["agentspec_version"] = json!("26.1.2");
        let flow = match weft_flow::Flow::from_json(&doc.to_string()) {
            Ok(loaded) => loaded.flow,
            Err(e) => panic!("the catch flow does not load: {e}"),
        };
        let outputs = run(&flow, setup.options(|_| {}), Map::new()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outputs["exception_name"], name, "{outputs:?}");
    }
}

/// A run cancelled while its request is in flight stops at once, abandoning the request, and
/// resumes by making it again.
#[tokio::test]
async fn a_cancelled_run_abandons_its_request() {
    let setup = Setup::new().await;
    setup.server.route(
        "GET",
        "/slow",
        [ApiReply::json(200, json!({"response": "late"})).after(Duration::from_secs(3)), ApiReply::json(200, json!({"response": "done"}))],
    );
    let flow = api_flow(json!({"url": format!("{BASE}/slow"), "http_method": "GET"}), &[], &[]);
    let plan = Plan::new(&flow, setup.options(|_| {})).unwrap();
    let mut running = plan.start(Map::new()).unwrap();
    let cancel = running.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        cancel.cancel();
    });
    let t0 = std::time::Instant::now();
    let error = running.execute().await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Cancelled);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let mut resumed = plan.resume(running.into_state()).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!() };
    assert_eq!(outputs["response"], "done");
    assert_eq!(setup.server.hits("/slow"), 2);
}
