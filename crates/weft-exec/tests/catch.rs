//! Catch nodes: CatchExceptionNode and PluginCatchExceptionNode. What they catch (tool, LLM and
//! value failures, node timeouts) and what they never catch (the step budget, a cancellation);
//! the calls of the failed subflow are cancelled; a run resumed inside one still catches; and
//! WayFlow's exported documents give WayFlow's outputs, branches and uncaught errors.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_exec::{Plan, RunErrorKind, RunOptions, RunSettings, RunState, Status};
use weft_flow::Flow;
use weft_flow::builder::{FlowBuilder, Property, ServerTool};
use weft_tools::{CommandTool, ToolRegistry};

fn inputs(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

fn build(b: &FlowBuilder) -> Flow {
    b.build().unwrap_or_else(|e| panic!("test flow is invalid:\n{e}"))
}

/// Sets its flag when dropped: a tool call whose future is dropped before it ends was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `boom` fails when its input `x` is "fail" (after 50 ms), else answers `x`; `slow` answers
/// after 30 s unless its call is dropped first (then `cancelled` is set).
fn tools(cancelled: &Arc<AtomicBool>, slow_calls: &Arc<AtomicUsize>) -> ToolRegistry {
    let mut tools = ToolRegistry::new();
    tools.register_fn("boom", |args: Map<String, Json>| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match args["x"].as_str() {
            Some("fail") => Err("the service refused the request".to_owned()),
            other => Ok(json!(other.unwrap_or_default())),
        }
    });
    // `probe` answers, 100 ms after it is called, whether `slow` was cancelled by then.
    let flag = cancelled.clone();
    tools.register_fn("probe", move |_: Map<String, Json>| {
        let flag = flag.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<Json, String>(json!(flag.load(Ordering::SeqCst)))
        }
    });
    let (flag, calls) = (cancelled.clone(), slow_calls.clone());
    tools.register_fn("slow", move |_: Map<String, Json>| {
        let guard = DropFlag(flag.clone());
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            std::mem::forget(guard);
            Ok::<Json, String>(json!("late"))
        }
    });
    tools
}

/// A subflow running `boom` and `slow` in parallel branches; its output `result` (default
/// "none") is `boom`'s answer.
fn guarded_subflow() -> FlowBuilder {
    let boom = ServerTool::new("boom", vec![Property::string("x")], vec![Property::string("result")]);
    let slow = ServerTool::new("slow", vec![Property::string("x")], vec![Property::string("late")]);
    let mut a = FlowBuilder::new("boom_branch");
    let s = a.start(&[Property::string("x")]);
    let t = a.tool("call_boom", &boom);
    let e = a.end("end", &[Property::string("result")]);
    a.edge(s, t);
    a.edge(t, e);
    a.data(s, "x", t, "x");
    a.data(t, "result", e, "result");
    let mut b = FlowBuilder::new("slow_branch");
    let s = b.start(&[Property::string("x")]);
    let t = b.tool("call_slow", &slow);
    let e = b.end("end", &[Property::string("late")]);
    b.edge(s, t);
    b.edge(t, e);
    b.data(s, "x", t, "x");
    b.data(t, "late", e, "late");
    let mut sub = FlowBuilder::new("guarded");
    let s = sub.start(&[Property::string("x")]);
    let p = sub.parallel_flows("both", &[&a, &b], None);
    let e = sub.end("end", &[Property::string("result").with_default(json!("none"))]);
    sub.edge(s, p);
    sub.edge(p, e);
    sub.data(s, "x", p, "x");
    sub.data(p, "result", e, "result");
    sub
}

#[tokio::test]
async fn catch_exception_node_catches_a_failed_tool_and_cancels_the_calls_still_running() {
    let sub = guarded_subflow();
    let mut f = FlowBuilder::new("outer");
    let s = f.start(&[Property::string("x")]);
    let c = f.catch_errors("guard", &sub);
    // A flow's outputs are those every end gives.
    let outputs = [Property::string("result"), Property::new("caught_exception_info", json!({})), Property::boolean("cancelled")];
    let ok = f.end("ok", &outputs);
    let failed = f.end_with_branch("failed", "failed", &outputs);
    let probe = f.tool("probe", &ServerTool::new("probe", vec![], vec![Property::boolean("cancelled")]));
    f.edge(s, c);
    f.edge(c, ok);
    f.edge_on(c, "caught_exception_branch", probe);
    f.edge(probe, failed);
    f.data(probe, "cancelled", failed, "cancelled");
    f.data(s, "x", c, "x");
    for end in [ok, failed] {
        f.data(c, "result", end, "result");
        f.data(c, "caught_exception_info", end, "caught_exception_info");
    }
    let flow = build(&f);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();

    let t0 = Instant::now();
    let status = plan.start(inputs(json!({"x": "fail"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "failed");
    assert_eq!(outputs["result"], json!("none"), "the subflow's output takes its default");
    let info = outputs["caught_exception_info"].as_str().unwrap();
    assert!(info.contains("tool \"boom\" failed") && info.contains("the service refused the request"), "{info}");
    assert_eq!(slow_calls.load(Ordering::SeqCst), 1);
    assert_eq!(outputs["cancelled"], json!(true), "the sibling call still running was cancelled while the run went on");
    assert!(t0.elapsed() < Duration::from_secs(10), "the run did not wait for the cancelled call: {:?}", t0.elapsed());
}

#[tokio::test]
async fn catch_exception_node_without_an_error_leaves_through_the_subflows_branch_with_null_info() {
    // No parallel slow call here: only the tool that succeeds.
    let boom = ServerTool::new("boom", vec![Property::string("x")], vec![Property::string("result")]);
    let mut sub = FlowBuilder::new("guarded");
    let s = sub.start(&[Property::string("x")]);
    let t = sub.tool("call_boom", &boom);
    let e = sub.end_with_branch("end", "done", &[Property::string("result").with_default(json!("none"))]);
    sub.edge(s, t);
    sub.edge(t, e);
    sub.data(s, "x", t, "x");
    sub.data(t, "result", e, "result");
    let mut f = FlowBuilder::new("outer");
    let s = f.start(&[Property::string("x")]);
    let c = f.catch_errors("guard", &sub);
    let outputs = [Property::string("result"), Property::new("caught_exception_info", json!({}))];
    let done = f.end_with_branch("done", "done", &outputs);
    let failed = f.end_with_branch("failed", "failed", &outputs);
    f.edge_on(s, "next", c);
    f.edge_on(c, "done", done);
    f.edge_on(c, "caught_exception_branch", failed);
    f.data(s, "x", c, "x");
    for end in [done, failed] {
        f.data(c, "result", end, "result");
        f.data(c, "caught_exception_info", end, "caught_exception_info");
    }
    let flow = build(&f);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    let status = plan.start(inputs(json!({"x": "fine"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "done");
    assert_eq!(outputs, inputs(json!({"result": "fine", "caught_exception_info": null})));
}

/// A PluginCatchExceptionNode around a subflow calling `tool` with the input `x`.
fn plugin_catch(tool: &str, except_on: &[(&str, &str)], catch_all: bool) -> Flow {
    let t = ServerTool::new(tool, vec![Property::string("x")], vec![Property::string("result")]);
    let mut sub = FlowBuilder::new("guarded");
    let s = sub.start(&[Property::string("x")]);
    let n = sub.tool("call", &t);
    let e = sub.end("end", &[Property::string("result")]);
    sub.edge(s, n);
    sub.edge(n, e);
    sub.data(s, "x", n, "x");
    sub.data(n, "result", e, "result");
    let mut f = FlowBuilder::new("outer");
    let s = f.start(&[Property::string("x")]);
    let c = f.catch_exceptions("guard", &sub, except_on, catch_all);
    f.edge(s, c);
    f.data(s, "x", c, "x");
    let mut branches: Vec<&str> = except_on.iter().map(|(_, b)| *b).collect();
    if catch_all {
        branches.push("default_exception_branch");
    }
    branches.push("next");
    let outputs = [Property::string("result"), Property::string("exception_name"), Property::string("exception_payload_name")];
    for branch in branches {
        let end = f.end_with_branch(&format!("end_{branch}"), branch, &outputs);
        f.edge_on(c, branch, end);
        for o in &outputs {
            f.data(c, o.title(), end, o.title());
        }
    }
    build(&f)
}

#[tokio::test]
async fn a_node_timeout_inside_is_caught_as_timeout_error() {
    let flow = plugin_catch("slow", &[("TimeoutError", "late")], false);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let options = RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls)).with_node_timeout(Duration::from_millis(300));
    let plan = Plan::new(&flow, options).unwrap();
    let status = plan.start(inputs(json!({"x": "a"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "late");
    assert_eq!(outputs["exception_name"], json!("TimeoutError"));
    assert_eq!(outputs["result"], json!(""), "no default: the type's zero value");
    let payload = outputs["exception_payload_name"].as_str().unwrap();
    assert!(payload.contains("did not finish within the node timeout of 300 ms"), "{payload}");
    assert!(cancelled.load(Ordering::SeqCst), "the timed-out call was cancelled");
}

#[tokio::test]
async fn an_error_no_key_names_is_not_caught_without_catch_all() {
    let flow = plugin_catch("boom", &[("ValueError", "bad_value")], false);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    let error = plan.start(inputs(json!({"x": "fail"}))).unwrap().execute().await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Tool);
    assert_eq!(error.exception().0, "Exception", "a native tool's failure is a plain Exception");
    assert!(error.message.contains("tool \"boom\" failed"), "{}", error.message);
    // The same with catch_all: caught, through default_exception_branch.
    let flow = plugin_catch("boom", &[("ValueError", "bad_value")], true);
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    let status = plan.start(inputs(json!({"x": "fail"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "default_exception_branch");
    assert_eq!(outputs["exception_name"], json!("Exception"));
}

#[tokio::test]
async fn the_step_budget_and_a_cancellation_are_never_caught() {
    let flow = plugin_catch("slow", &[], true);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    // Start, the catch node, the subflow's start: the tool node is the fourth step.
    let settings = RunSettings { max_steps: 3, ..RunSettings::default() };
    let error = plan.start_with(inputs(json!({"x": "a"})), settings).unwrap().execute().await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::StepBudget, "{}", error.message);

    let mut run = plan.start(inputs(json!({"x": "a"}))).unwrap();
    let handle = run.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        handle.cancel();
    });
    let error = run.execute().await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Cancelled, "{}", error.message);
    assert!(cancelled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_run_resumed_inside_a_catch_subflow_still_catches() {
    let boom = ServerTool::new("boom", vec![Property::string("x")], vec![Property::string("result")]);
    let mut sub = FlowBuilder::new("guarded");
    let s = sub.start(&[]);
    let ask = sub.input_message("ask", "What should I send?");
    let t = sub.tool("call", &boom);
    let e = sub.end("end", &[Property::string("result")]);
    sub.edge(s, ask);
    sub.edge(ask, t);
    sub.edge(t, e);
    sub.data(ask, "user_input", t, "x");
    sub.data(t, "result", e, "result");
    let mut f = FlowBuilder::new("outer");
    let s = f.start(&[]);
    let c = f.catch_exceptions("guard", &sub, &[], true);
    let end = f.end_with_branch("end", "caught", &[Property::string("exception_name")]);
    let ok = f.end("ok", &[Property::string("exception_name")]);
    f.edge(s, c);
    f.edge_on(c, "default_exception_branch", end);
    f.edge(c, ok);
    f.data(c, "exception_name", end, "exception_name");
    f.data(c, "exception_name", ok, "exception_name");
    let flow = build(&f);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    let mut run = plan.start(Map::new()).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::InputRequired { .. }));
    // Stored and read back, as `weft resume` does in another process.
    let stored = serde_json::to_string(run.state()).unwrap();
    let state: RunState = serde_json::from_str(&stored).unwrap();
    let mut resumed = plan.resume(state).unwrap();
    resumed.submit(json!("fail")).unwrap();
    let status = resumed.execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!((end_branch.as_str(), &outputs["exception_name"]), ("caught", &json!("Exception")));
    assert!(resumed.pending().is_empty());
}

#[tokio::test]
async fn an_outer_catch_takes_what_the_inner_one_does_not_name() {
    let t = ServerTool::new("boom", vec![Property::string("x")], vec![Property::string("result")]);
    let mut inner = FlowBuilder::new("inner");
    let s = inner.start(&[Property::string("x")]);
    let n = inner.tool("call", &t);
    let e = inner.end("end", &[Property::string("result").with_default(json!("none"))]);
    inner.edge(s, n);
    inner.edge(n, e);
    inner.data(s, "x", n, "x");
    inner.data(n, "result", e, "result");
    let mut middle = FlowBuilder::new("middle");
    let s = middle.start(&[Property::string("x")]);
    let c = middle.catch_exceptions("inner_guard", &inner, &[("ValueError", "bad_value")], false);
    let e = middle.end("end", &[Property::string("result").with_default(json!("none"))]);
    let bad = middle.end_with_branch("bad", "bad_value", &[]);
    middle.edge(s, c);
    middle.edge(c, e);
    middle.edge_on(c, "bad_value", bad);
    middle.data(s, "x", c, "x");
    middle.data(c, "result", e, "result");
    let mut f = FlowBuilder::new("outer");
    let s = f.start(&[Property::string("x")]);
    let c = f.catch_errors("outer_guard", &middle);
    let outputs = [Property::new("caught_exception_info", json!({}))];
    let caught = f.end_with_branch("caught", "caught", &outputs);
    let end = f.end("end", &outputs);
    f.edge(s, c);
    f.edge(c, end);
    f.edge_on(c, "bad_value", end);
    f.edge_on(c, "caught_exception_branch", caught);
    f.data(s, "x", c, "x");
    for e in [caught, end] {
        f.data(c, "caught_exception_info", e, "caught_exception_info");
    }
    let flow = build(&f);
    let (cancelled, slow_calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools(&cancelled, &slow_calls))).unwrap();
    let status = plan.start(inputs(json!({"x": "fail"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "caught");
    assert!(outputs["caught_exception_info"].as_str().unwrap().contains("the service refused the request"));
}

/// PluginCatchExceptionNode against WayFlow's CatchExceptionStep (`fixtures/wayflow_catch.json`,
/// made by `fixtures/gen_wayflow_catch.py`): the documents WayFlow exported, run on the same
/// inputs with the same Python tool (run here as a command), give the same outputs and end, and
/// an error no rule catches fails the run with the class WayFlow raised.
#[tokio::test]
async fn plugin_catch_node_gives_wayflows_outputs_and_branches_on_its_exported_documents() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let reference: Json = serde_json::from_str(&std::fs::read_to_string(fixtures.join("wayflow_catch.json")).unwrap()).unwrap();
    let mut tools = ToolRegistry::new();
    tools.register("act", CommandTool::new(["python3", "catch_tool.py"]).with_cwd(&fixtures).with_timeout(Duration::from_secs(60)));
    let mut checked = 0;
    for (i, case) in reference["catch"].as_array().unwrap().iter().enumerate() {
        let flow = match Flow::from_json(&case["document"].to_string()) {
            Ok(l) => l.flow,
            Err(e) => panic!("WayFlow's export {i} does not load: {e}"),
        };
        let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools.clone())).unwrap();
        for run in case["runs"].as_array().unwrap() {
            let result = plan.start(inputs(run["inputs"].clone())).unwrap().execute().await;
            let what = format!("document {i} on {}", run["inputs"]);
            match (result, run.get("error")) {
                (Ok(Status::Finished { outputs, end_branch }), None) => {
                    assert_eq!(Json::Object(outputs), run["outputs"], "{what}");
                    assert_eq!(json!(end_branch), run["end"], "{what}");
                }
                (Err(e), Some(class)) => {
                    assert_eq!(e.kind, RunErrorKind::Tool, "{what}: {}", e.message);
                    assert_eq!(json!(e.exception().0), *class, "{what}: {}", e.message);
                }
                (other, _) => panic!("{what}: WayFlow gave {run}, Weft {other:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
}
