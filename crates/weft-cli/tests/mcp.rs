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

    // Recorded, the run replays without the flag: a replay starts no process.
    let record = [&args[..], &["--allow-stdio-mcp", "--record", "rec.jsonl"]].concat();
    let out = weft_command(dir.path(), &record).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&pids).unwrap().lines().count(), 2);
    let out = weft_command(dir.path(), &[&args[..], &["--replay", "rec.jsonl"]].concat()).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"listing": "/data: a.txt b.txt"}));
    assert_eq!(std::fs::read_to_string(&pids).unwrap().lines().count(), 2, "the replay started a process");

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

/// The lines of a JSON-lines file.
fn json_lines(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn mcp_calls_are_events_counted_recorded_and_replayed_with_the_server_gone() {
    let http = McpProcess::start("http", None);
    let dir = tempfile::tempdir().unwrap();
    // The corpus document, its transport given a sensitive header (sent, never shown).
    let secret = "Bearer mcp-secret-7f3a9c";
    let text = std::fs::read_to_string(corpus("p_mcp_tool_streamable_http.json")).unwrap();
    let text = text.replacen("\"sensitive_headers\": null", &format!("\"sensitive_headers\": {{\"Authorization\": {secret:?}}}"), 1);
    assert!(text.contains(secret));
    std::fs::write(dir.path().join("flow.json"), text).unwrap();
    let rewrite = format!("https://mcp.example.com={}", http.base());
    let record = ["run", "flow.json", "--llm", "simulated", "--http-rewrite", &rewrite, "--input", "text=hello"];
    let out = weft(dir.path(), &[&record[..], &["--record", "rec.jsonl", "--events", "events.jsonl"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"translation": "[en] hello"}));
    assert!(stderr(&out).contains("usage: no LLM calls · 1 MCP call ·"), "{}", stderr(&out));

    // One `mcp_call` event: the server as the document names it, the tool, attempts, duration.
    let events = json_lines(&dir.path().join("events.jsonl"));
    let mcp: Vec<&Json> = events.iter().filter(|e| e["event"] == "mcp_call").collect();
    assert_eq!(mcp.len(), 1, "{events:?}");
    assert_eq!(mcp[0]["server"], json!("http https://mcp.example.com/mcp"));
    assert_eq!((&mcp[0]["method"], &mcp[0]["tool"], &mcp[0]["attempts"]), (&json!("tools/call"), &json!("translate"), &json!(1)));
    assert!(mcp[0]["duration_ms"].as_f64().unwrap() > 0.0 && mcp[0]["error"].is_null(), "{}", mcp[0]);

    // The recording: the call and its result, keyed by the document's URL; no header at all.
    let lines = json_lines(&dir.path().join("rec.jsonl"));
    assert_eq!(lines[0], json!({"kind": "header", "format": "weft-record", "version": 4}));
    let recorded: Vec<&Json> = lines.iter().filter(|l| l["kind"] == "mcp").collect();
    assert_eq!(recorded.len(), 1, "{lines:?}");
    assert_eq!(recorded[0]["request"]["arguments"], json!({"text": "hello", "target_language": "en"}));
    assert_eq!(recorded[0]["response"]["result"]["content"][0]["text"], json!("[en] hello"));
    for file in ["rec.jsonl", "events.jsonl"] {
        let written = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!written.contains("mcp-secret") && !written.contains("Authorization"), "{file} shows the sensitive header: {written}");
    }

    // The server is gone: the replay answers from the file, without the rewrite.
    drop(http);
    let replay = ["run", "flow.json", "--llm", "simulated", "--replay", "rec.jsonl", "--events", "replay.jsonl"];
    let out = weft(dir.path(), &[&replay[..], &["--input", "text=hello"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"translation": "[en] hello"}));
    let replayed = json_lines(&dir.path().join("replay.jsonl"));
    let event = replayed.iter().find(|e| e["event"] == "mcp_call").expect("an mcp_call event on replay");
    assert_eq!((&event["tool"], &event["attempts"]), (&json!("translate"), &json!(0)));

    // A call the recording does not have fails, naming the tool.
    let out = weft(dir.path(), &[&replay[..], &["--input", "text=goodbye"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no recorded answer for the call of MCP tool \"translate\"")
            && err.contains("on http https://mcp.example.com/mcp")
            && err.contains("goodbye"),
        "{err}"
    );
    assert!(!err.contains("mcp-secret"), "{err}");
}

#[test]
fn an_agents_toolbox_listing_is_recorded_and_replayed_with_the_server_gone() {
    let http = McpProcess::start("http", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.lookup_user]\ncommand = [\"sh\", \"-c\", \"echo '{\\\"name\\\": \\\"Ada\\\"}'\"]\n",
    )
    .unwrap();
    let rewrite = format!("https://crm.example.com={}", http.base());
    let flow = corpus("p_agent_mcp_toolbox.json");
    let base = ["run", &flow, "--llm", "simulated", "--tools", "tools.toml", "--input", "company=Acme", "--message", "hello"];
    let out = weft(dir.path(), &[&base[..], &["--http-rewrite", &rewrite, "--record", "rec.jsonl", "--state", "a.json"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let listings = json_lines(&dir.path().join("rec.jsonl")).into_iter().filter(|l| l["kind"] == "mcp").collect::<Vec<_>>();
    // Listed before each of the agent's LLM calls, each listing an occurrence of the same request.
    assert!(!listings.is_empty());
    for (i, l) in listings.iter().enumerate() {
        assert_eq!((&l["request"]["method"], &l["occurrence"]), (&json!("tools/list"), &json!(i + 1)), "{}", l["request"]);
    }
    let names: Vec<&str> = listings[0]["response"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"get_customer"), "{names:?}");
    let recorded_out = String::from_utf8_lossy(&out.stdout).into_owned();

    drop(http);
    let out = weft(dir.path(), &[&base[..], &["--replay", "rec.jsonl", "--state", "b.json"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), recorded_out, "the replay waits for the user with the same message");
}
