//! `weft run` and `weft resume` with A2AAgents (issue 16, item 5) against the reference A2A
//! server: a2a-sdk 0.3's JSON-RPC app under uvicorn, with a trivial echoing agent
//! (`tests/fixtures/a2a_server.py`), started on 127.0.0.1 from the environment
//! `scripts/agentspec-venv.sh` creates (`scripts/test-servers-requirements.txt`). The corpus
//! document through `--http-rewrite`, its conversation going on in another process in the same
//! A2A context, record and replay with the server gone, `--allow-host`, an A2A agent in an
//! AgentNode (a task that needs input, then completes), a task not done when `message/send`
//! returns (polled until done) and a task that fails.

mod common;

use common::{corpus, stderr, wait_until, weft};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REMOTE: &str = "https://agents.example.com/researcher";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference_python() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/agentspec-venv.sh")).output().expect("run scripts/agentspec-venv.sh");
    assert!(
        out.status.success(),
        "could not create the reference environment (scripts/agentspec-venv.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the script prints the python path").trim())
}

/// The reference A2A server, killed when dropped.
struct A2AServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl A2AServer {
    fn start(dir: &Path, mode: &str) -> A2AServer {
        let port_file = dir.join(format!("a2a-{mode}.port"));
        let child = Command::new(reference_python())
            .arg(repo().join("crates/weft-cli/tests/fixtures/a2a_server.py"))
            .arg(&port_file)
            .args(["--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the A2A server");
        let mut server = A2AServer { child, port: 0, log: PathBuf::from(format!("{}.log", port_file.display())) };
        wait_until("the A2A server to listen", Duration::from_secs(60), || port_file.exists());
        server.port = std::fs::read_to_string(&port_file).expect("port").trim().parse().expect("a port");
        server
    }

    fn rewrite(&self) -> String {
        format!("{REMOTE}=http://127.0.0.1:{}", self.port)
    }

    /// The JSON-RPC requests it received, with their headers.
    fn received(&self) -> Vec<(Json, Json)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let line: Json = serde_json::from_str(l).expect("a log line");
                (serde_json::from_str(line["body"].as_str().expect("a body")).expect("a JSON body"), line["headers"].clone())
            })
            .collect()
    }

    fn methods(&self) -> Vec<String> {
        self.received().iter().map(|(b, _)| b["method"].as_str().expect("a method").to_owned()).collect()
    }
}

impl Drop for A2AServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_corpus_a2a_agent_talks_to_the_reference_server_resumes_in_another_process_and_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = A2AServer::start(dir.path(), "task");
    let flow = corpus("p_a2a_agent.json");
    let rewrite = server.rewrite();
    let out = weft(
        dir.path(),
        &[
            "run",
            &flow,
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--message",
            "hello there",
            "--state",
            "s.json",
            "--events",
            "events.jsonl",
            "--record",
            "run.jsonl",
        ],
    );
    // At the root the agent answers and waits for the user, as WayFlow's does.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: echo: hello there (turn 1)"), "{}", stderr(&out));
    assert!(stderr(&out).contains("usage: no LLM calls · 2 HTTP requests ·"), "{}", stderr(&out));
    let events: Vec<Json> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .filter(|e: &Json| e["event"] == "http_request")
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["url"], format!("{REMOTE}/"));
    assert_eq!(events[0]["rewritten"], format!("http://127.0.0.1:{}/", server.port));
    assert_eq!(events[0]["status"], 200);

    // Another process goes on with the conversation: the remote agent counts turns per context.
    let out = weft(dir.path(), &["resume", "s.json", "--answer", "and again"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: echo: and again (turn 2)"), "{}", stderr(&out));
    assert_eq!(server.methods(), ["message/send", "tasks/get", "message/send", "tasks/get"]);
    let received = server.received();
    let (first, second) = (&received[0].0["params"]["message"], &received[2].0["params"]["message"]);
    assert_eq!(first["contextId"], second["contextId"]);
    assert_eq!((first["messageId"].as_str(), second["messageId"].as_str()), (Some("0"), Some("2")));
    assert_eq!(second["parts"], json!([{"kind": "text", "text": "and again"}]));
    assert_eq!(received[0].1["x-team"], "r-and-d");
    let task = received[1].0["params"]["id"].as_str().expect("a task id");
    assert!(!task.is_empty());

    // The server is gone: the recording answers, though the run's context and request ids are new.
    drop(server);
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--message", "hello there", "--state", "r.json", "--replay", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: echo: hello there (turn 1)"), "{}", stderr(&out));
    let out = weft(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--message", "something else", "--state", "x.json", "--replay", "run.jsonl"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no recorded answer for the HTTP request at node path"), "{}", stderr(&out));
}

#[test]
fn allow_host_refuses_the_remote_agent_before_anything_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = A2AServer::start(dir.path(), "task");
    let rewrite = server.rewrite();
    let flow = corpus("p_a2a_agent.json");
    let out = weft(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--message", "hi", "--allow-host", "agents.example.com"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("127.0.0.1") && stderr(&out).contains("--allow-host"), "{}", stderr(&out));
    assert!(server.received().is_empty());
}

/// A flow start -> AgentNode running the corpus A2A agent -> end.
fn agent_node_flow(dir: &Path) -> String {
    let remote: Json = serde_json::from_str(&std::fs::read_to_string(corpus("p_a2a_agent.json")).expect("corpus")).expect("json");
    let mut remote = remote;
    remote.as_object_mut().expect("object").remove("agentspec_version");
    let edge = |id: &str, from: &str, to: &str| json!({"component_type": "ControlFlowEdge", "id": id, "name": id, "from_node": {"$component_ref": from}, "to_node": {"$component_ref": to}});
    let doc = json!({
        "component_type": "Flow", "id": "f", "name": "ask the researcher", "agentspec_version": "25.4.2",
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": "ask"}, {"$component_ref": "end"}],
        "control_flow_connections": [edge("e1", "start", "ask"), edge("e2", "ask", "end")],
        "data_flow_connections": [],
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start"},
            "ask": {"component_type": "AgentNode", "id": "ask", "name": "ask", "agent": remote},
            "end": {"component_type": "EndNode", "id": "end", "name": "end"}
        }
    });
    let path = dir.join("agent_node.json");
    std::fs::write(&path, doc.to_string()).expect("write");
    path.display().to_string()
}

#[test]
fn in_an_agent_node_a_task_needing_input_waits_and_a_completed_one_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = A2AServer::start(dir.path(), "ask");
    let flow = agent_node_flow(dir.path());
    let rewrite = server.rewrite();
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--message", "hello", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: echo: hello (turn 1)"), "{}", stderr(&out));
    let out = weft(dir.path(), &["resume", "s.json", "--answer", "done"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("echo: done (turn 2)"), "{}", stderr(&out));
    assert_eq!(server.methods(), ["message/send", "tasks/get", "message/send", "tasks/get"]);
}

#[test]
fn a_task_still_working_is_polled_until_done_and_a_failed_task_fails_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = agent_node_flow(dir.path());
    let slow = A2AServer::start(dir.path(), "slow");
    let rewrite = slow.rewrite();
    // The corpus agent polls every second: the task completes 1.5 s after message/send.
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--message", "take your time"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("echo: take your time (turn 1)"), "{}", stderr(&out));
    let methods = slow.methods();
    assert_eq!(methods[0], "message/send");
    assert!(methods.iter().filter(|m| *m == "tasks/get").count() >= 2, "{methods:?}");

    let failing = A2AServer::start(dir.path(), "fail");
    let rewrite = failing.rewrite();
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--message", "break"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("ended with state: failed: \"the remote agent broke\""), "{}", stderr(&out));
}
