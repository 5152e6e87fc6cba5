//! `weft run` with MCP tools and toolboxes (issue 16, items 3 and 4) against the reference MCP
//! server (`weft_testkit::mcp`: FastMCP as the reference environment pins it): the corpus
//! documents through `--http-rewrite`, a stdio transport refused without `--allow-stdio-mcp` (no
//! process started) and gone after the run, and a tools-file MCP binding serving a batch of 200
//! runs from one process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

mod common;

use common::{corpus, stderr, weft, weft_command};
use serde_json::{Value as Json, json};
use std::path::Path;
use weft_testkit::mcp::{McpProcess, alive, reference_python, server_script};

fn stdout_json(out: &std::process::Output) -> Json {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

#[test]
fn the_corpus_mcp_tools_run_against_local_servers() {
    let http = McpProcess::start("http", None);
    let sse = McpProcess::start("sse", None);
    let dir = tempfile::tempdir().unwrap();
    let rewrite = format!("https://mcp.example.com={}", http.base());
    let flow = corpus("p_mcp_tool_streamable_http.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--input", "text=hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"translation": "[en] hello"}));
    let rewrite = format!("https://mcp.example.com={}", sse.base());
    let flow = corpus("p_mcp_tool_sse.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--input", "query=rust"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"results": "3 pages about rust"}));
    // Without the rewrite the document's host is not reachable from here: a clear tool error.
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--allow-host", "127.0.0.1", "--input", "query=rust"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("SSETransport \"sse_transport\"") && stderr(&out).contains("mcp.example.com"), "{}", stderr(&out));
}

#[test]
fn the_corpus_agent_with_an_mcp_toolbox_lists_its_tools() {
    let http = McpProcess::start("http", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.lookup_user]\ncommand = [\"sh\", \"-c\", \"echo '{\\\"name\\\": \\\"Ada\\\"}'\"]\n",
    )
    .unwrap();
    let rewrite = format!("https://crm.example.com={}", http.base());
    let flow = corpus("p_agent_mcp_toolbox.json");
    let args = ["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--tools", "tools.toml", "--input", "company=Acme"];
    let out = weft(dir.path(), &[&args[..], &["--message", "hello"]].concat());
    // The agent asks the user (exit 3) after one LLM call whose tools came from the server.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // A toolbox whose server lacks a filtered tool fails clearly.
    let flow_text = std::fs::read_to_string(&flow).unwrap().replace("\"get_customer\"", "\"get_client\"");
    std::fs::write(dir.path().join("bad.json"), flow_text).unwrap();
    let args = ["run", "bad.json", "--llm", "simulated", "--http-rewrite", &rewrite, "--tools", "tools.toml", "--input", "company=Acme"];
    let out = weft(dir.path(), &[&args[..], &["--message", "hello"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Expected MCP tool(s) ['get_client']"), "{}", stderr(&out));
}

/// A `python` on `PATH` (the reference environment's) that appends its PID to `pids` first.
fn python_wrapper(dir: &Path, pids: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!("#!/bin/sh\necho $$ >> '{}'\nexec '{}' \"$@\"\n", pids.display(), reference_python().display());
    std::fs::write(bin.join("python"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("python"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn a_stdio_transport_needs_the_users_permission_and_its_server_is_gone_after_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let bin = python_wrapper(dir.path(), &pids);
    // The document runs `python -m my_mcp_server` in ./servers.
    std::fs::create_dir_all(dir.path().join("servers")).unwrap();
    std::fs::copy(server_script(), dir.path().join("servers/my_mcp_server.py")).unwrap();
    let flow = corpus("p_mcp_stdio_transport.json");
    let args = ["run", &flow, "--llm", "simulated", "--input", "directory=/data"];
    let out = weft_command(dir.path(), &args).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("StdioTransport \"local_server\"") && stderr(&out).contains("--allow-stdio-mcp"), "{}", stderr(&out));
    assert!(!pids.exists(), "a process was started without permission");

    let out = weft_command(dir.path(), &[&args[..], &["--allow-stdio-mcp"]].concat()).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"listing": "/data: a.txt b.txt"}));
    let started = std::fs::read_to_string(&pids).unwrap();
    let started: Vec<u32> = started.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(started.len(), 1, "one server process");
    assert!(!alive(started[0]), "the stdio server {} outlived the run", started[0]);

    // The tools file may allow the command instead of the flag.
    std::fs::write(dir.path().join("tools.toml"), "[mcp]\nallow_commands = [\"python\"]\n").unwrap();
    let out = weft_command(dir.path(), &[&args[..], &["--tools", "tools.toml"]].concat()).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A flow calling ServerTool `shout` (input `text`, output `out`).
fn server_tool_flow() -> Json {
    let io = json!([{"title": "text", "type": "string"}]);
    let out = json!([{"title": "out", "type": "string"}]);
    json!({
        "component_type": "Flow", "id": "flow", "name": "shout_flow", "inputs": io, "outputs": out,
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": "tool"}, {"$component_ref": "end"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "e1", "name": "e1", "from_node": {"$component_ref": "start"}, "to_node": {"$component_ref": "tool"}},
            {"component_type": "ControlFlowEdge", "id": "e2", "name": "e2", "from_node": {"$component_ref": "tool"}, "to_node": {"$component_ref": "end"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "d1", "name": "d1", "source_node": {"$component_ref": "start"}, "source_output": "text",
                "destination_node": {"$component_ref": "tool"}, "destination_input": "text"},
            {"component_type": "DataFlowEdge", "id": "d2", "name": "d2", "source_node": {"$component_ref": "tool"}, "source_output": "out",
                "destination_node": {"$component_ref": "end"}, "destination_input": "out"}
        ],
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start", "inputs": io, "outputs": io},
            "end": {"component_type": "EndNode", "id": "end", "name": "end", "inputs": out, "outputs": out},
            "tool": {"component_type": "ToolNode", "id": "tool", "name": "tool_node", "inputs": io, "outputs": out,
                "tool": {"component_type": "ServerTool", "id": "shout", "name": "shout", "description": "", "inputs": io, "outputs": out}}
        },
        "agentspec_version": "26.1.0"
    })
}

#[test]
fn a_tools_file_mcp_binding_serves_a_batch_of_200_runs_from_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::write(dir.path().join("flow.json"), server_tool_flow().to_string()).unwrap();
    let tools = format!(
        "[tools.shout]\nmcp = {{ command = [{:?}, {:?}, \"stdio\"] }}\ntool = \"echo\"\nenv = {{ MCP_PID_FILE = {:?} }}\n",
        reference_python().display().to_string(),
        server_script().display().to_string(),
        pids.display().to_string()
    );
    std::fs::write(dir.path().join("tools.toml"), tools).unwrap();
    let lines: Vec<String> = (0..200).map(|i| json!({"text": format!("n{i}")}).to_string()).collect();
    std::fs::write(dir.path().join("inputs.jsonl"), lines.join("\n") + "\n").unwrap();
    let args = ["run", "flow.json", "--llm", "simulated", "--tools", "tools.toml", "--batch", "inputs.jsonl", "--concurrency", "20"];
    let out = weft(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 200);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["outputs"]["out"], json!(format!("echo:n{i}")), "line {i}: {r}");
    }
    let started: Vec<u32> = std::fs::read_to_string(&pids).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(started.len(), 1, "one server process for the whole batch: {started:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(started[0]) {
        assert!(std::time::Instant::now() < deadline, "the tools-file MCP server {} outlived weft", started[0]);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
