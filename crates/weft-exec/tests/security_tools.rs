//! A tool's whole process group dies when a sibling fails: the engine drops the calls still in
//! flight, and a command tool that forked a grandchild takes it down with it. "No process left"
//! is checked by PID: each tool appends its own PID and its grandchild's to files, and the test
//! polls /proc.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_exec::{Plan, RunErrorKind, RunOptions};
use weft_flow::Flow;
use weft_tools::{CommandTool, ToolRegistry};

mod common;
use common::flow_json;

fn root(mut flow: Json) -> Flow {
    flow["agentspec_version"] = json!("26.3.1");
    match Flow::from_json(&flow.to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("test flow is invalid:\n{d}"),
    }
}

fn string(title: &str) -> Json {
    json!({"title": title, "type": "string"})
}

/// start(inputs) → ToolNode calling ServerTool `tool` → end(`out`), as a subflow named `name`.
fn tool_flow(name: &str, tool: &str, inputs: Json, out: &str) -> Json {
    let wired: Vec<(String, String, String, String)> = inputs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap().to_owned();
            (format!("{name}_s"), title.clone(), format!("{name}_t"), title)
        })
        .chain([(format!("{name}_t"), out.to_owned(), format!("{name}_e"), out.to_owned())])
        .collect();
    let data: Vec<(&str, &str, &str, &str)> = wired.iter().map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str())).collect();
    let server_tool =
        json!({"component_type": "ServerTool", "id": format!("{name}_tool"), "name": tool, "inputs": inputs, "outputs": [string(out)]});
    flow_json(
        name,
        vec![
            json!({"component_type": "StartNode", "id": format!("{name}_s"), "name": "start", "inputs": inputs}),
            json!({"component_type": "ToolNode", "id": format!("{name}_t"), "name": format!("call_{tool}"), "tool": server_tool}),
            json!({"component_type": "EndNode", "id": format!("{name}_e"), "name": "end", "inputs": [string(out)], "outputs": [string(out)]}),
        ],
        &[(&format!("{name}_s"), &format!("{name}_t")), (&format!("{name}_t"), &format!("{name}_e"))],
        &data,
    )
}

/// A tool run in `dir` that forks a grandchild, appends both PIDs to `dir/pids`, and hangs.
fn forking_tool(dir: &Path) -> CommandTool {
    let script = "sleep 1000 & echo $! >> pids; echo $$ >> pids; sleep 1000";
    CommandTool::new(["sh", "-c", script]).with_cwd(dir).with_timeout(Duration::from_secs(30))
}

/// The PIDs in `dir/pids`, once it holds `n` of them (waits up to 10 s).
fn pids(dir: &Path, n: usize) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= n {
            return pids;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "only {} of {n} PIDs were written: {text:?}", pids.len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the process is running (it exists and is not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|s| s != 'Z')
}

/// Asserts that none of the processes is running within 2 s.
async fn assert_all_killed(pids: &[u32]) {
    let start = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| running(p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "processes {left:?} of {pids:?} are still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sibling_branch_failing_kills_a_forking_tool_with_its_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    // Branch 0 forks a grandchild and hangs; branch 1 fails once branch 0's processes are up.
    let parallel = json!({"component_type": "ParallelFlowNode", "id": "par", "name": "par", "subflows": [
        tool_flow("hanging", "hang", json!([]), "r0"),
        tool_flow("failing", "fail", json!([]), "r1"),
    ]});
    let flow = root(flow_json(
        "root",
        vec![
            json!({"component_type": "StartNode", "id": "s", "name": "start", "inputs": []}),
            parallel,
            json!({"component_type": "EndNode", "id": "e", "name": "end", "inputs": [], "outputs": []}),
        ],
        &[("s", "par"), ("par", "e")],
        &[],
    ));
    let wait_then_fail =
        "while [ \"$(wc -l < pids 2>/dev/null || echo 0)\" -lt 2 ]; do sleep 0.02; done; echo 'the service is down' >&2; exit 1";
    let mut tools = ToolRegistry::new();
    tools.register("hang", forking_tool(dir.path()));
    tools.register("fail", CommandTool::new(["sh", "-c", wait_then_fail]).with_cwd(dir.path()).with_timeout(Duration::from_secs(30)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools)).unwrap();
    let t0 = Instant::now();
    let err = plan.start(Map::new()).unwrap().execute().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20), "failed fast: {:?}", t0.elapsed());
    assert_eq!(err.kind, RunErrorKind::Tool, "{}", err.message);
    assert!(err.message.starts_with("ParallelFlowNode \"par\" branch 1 (\"failing\"): ToolNode \"call_fail\""), "{}", err.message);
    assert!(err.message.contains("the service is down"), "{}", err.message);
    assert_all_killed(&pids(dir.path(), 2)).await;
}

#[tokio::test]
async fn a_failing_map_item_kills_the_forking_tools_of_its_siblings_with_their_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    // Every item runs the same tool; item "bad" fails once the 3 other items' tools (and their
    // grandchildren) are up, the others fork a grandchild and hang.
    let script = "read -r args; case \"$args\" in *bad*) \
        while [ \"$(wc -l < pids 2>/dev/null || echo 0)\" -lt 6 ]; do sleep 0.02; done; echo 'item refused' >&2; exit 3;; esac; \
        sleep 1000 & echo $! >> pids; echo $$ >> pids; sleep 1000";
    let map = json!({"component_type": "ParallelMapNode", "id": "map", "name": "map",
        "subflow": tool_flow("item", "work", json!([string("x")]), "r"), "reducers": {"r": "append"}});
    let flow = root(flow_json(
        "root",
        vec![
            json!({"component_type": "StartNode", "id": "s", "name": "start", "inputs": [{"title": "items", "type": "array", "items": {"type": "string"}}]}),
            map,
            json!({"component_type": "EndNode", "id": "e", "name": "end", "inputs": [{"title": "collected_r", "type": "array", "items": {"type": "string"}}], "outputs": [{"title": "collected_r", "type": "array", "items": {"type": "string"}}]}),
        ],
        &[("s", "map"), ("map", "e")],
        &[("s", "items", "map", "iterated_x"), ("map", "collected_r", "e", "collected_r")],
    ));
    let mut tools = ToolRegistry::new();
    tools.register("work", CommandTool::new(["sh", "-c", script]).with_cwd(dir.path()).with_timeout(Duration::from_secs(30)));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(tools)).unwrap();
    let mut inputs = Map::new();
    inputs.insert("items".into(), json!(["a", "b", "bad", "c"]));
    let t0 = Instant::now();
    let err = plan.start(inputs).unwrap().execute().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20), "failed fast: {:?}", t0.elapsed());
    assert_eq!(err.kind, RunErrorKind::Tool, "{}", err.message);
    assert!(err.message.starts_with("ParallelMapNode \"map\" item 2: ToolNode \"call_work\""), "{}", err.message);
    assert!(err.message.contains("item refused"), "{}", err.message);
    assert_all_killed(&pids(dir.path(), 6)).await;
}
