//! Swarm and ManagerWorkers on the command line: every such document of the corpus runs on the
//! simulated model with a tools file, makes LLM calls and waits for the user with its state
//! stored, then takes the user's answer in another process; and a Swarm against the testkit
//! server, its billing agent asking the user a question through the front agent, paused and
//! resumed in another process with its threads' conversations kept.

mod common;

use common::{corpus, server, stderr, weft};
use serde_json::{Value as Json, json};
use weft_testkit::MockConfig;

fn state(dir: &std::path::Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("s.json")).expect("state")).expect("json")
}

/// LLM calls made, from the usage line.
fn calls(err: &str) -> u64 {
    let line = err.lines().find(|l| l.starts_with("usage: ")).unwrap_or_else(|| panic!("no usage line in {err}"));
    line.trim_start_matches("usage: ").split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn every_swarm_and_manager_workers_document_of_the_corpus_runs_and_waits_for_the_user() {
    for doc in ["w_swarm.json", "w_manager_workers.json", "p_manager_workers.json"] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tools.toml"),
            "[tools.lookup_user]\ncommand = [\"python3\", \"-c\", \"import json,sys; print(json.dumps({'name': 'Ann'}))\"]\n",
        )
        .expect("write");
        let flow = corpus(doc);
        let args = ["run", &flow, "--llm", "simulated", "--tools", "tools.toml", "--message", "Hello team", "--state", "s.json"];
        let out = weft(dir.path(), &args);
        assert_eq!(out.status.code(), Some(3), "{doc}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(calls(&err) >= 1, "{doc}: {err}");
        assert!(err.contains("waiting for input"), "{doc}: {err}");
        let messages = state(dir.path())["state"]["messages"].as_array().expect("the conversation").clone();
        assert_eq!(messages[0]["content"], "Hello team", "{doc}");
        assert!(messages.iter().any(|m| m["message_type"] == "AGENT"), "{doc}: {messages:?}");

        let out = weft(dir.path(), &["resume", "s.json", "--answer", "And now?"]);
        assert_eq!(out.status.code(), Some(3), "{doc}: {}", stderr(&out));
        let after = state(dir.path())["state"]["messages"].as_array().expect("the conversation").clone();
        assert!(after.len() > messages.len() && after.iter().any(|m| m["content"] == "And now?"), "{doc}: {after:?}");
    }
}

fn call(name: &str, args: Json) -> String {
    json!({"name": name, "parameters": args}).to_string()
}

#[test]
fn a_swarm_paused_for_the_user_resumes_in_another_process() {
    let config = MockConfig::default()
        .with_reply(
            0,
            format!("Ask billing.\n{}", call("send_message", json!({"message": "Status of invoice 9?", "recipient": "billing"}))),
        )
        .with_reply(1, "Which customer?")
        .with_reply(2, call("talk_to_user", json!({"text": "Which customer is it?"})))
        .with_reply(3, format!("Tell billing.\n{}", call("send_message", json!({"message": "Customer Ann", "recipient": "billing"}))))
        .with_reply(4, "Paid for Ann.")
        .with_reply(5, call("talk_to_user", json!({"text": "Invoice 9 is paid."})));
    let (_rt, server) = server(config);
    let llm = |id: &str| json!({"component_type": "OpenAiCompatibleConfig", "id": id, "name": id, "model_id": "m", "url": server.url()});
    let agent = |name: &str, description: &str| {
        json!({"component_type": "Agent", "id": name, "name": name, "description": description, "llm_config": llm(&format!("llm_{name}")),
               "system_prompt": format!("You are {name}."), "tools": [], "human_in_the_loop": true})
    };
    let doc = json!({"component_type": "Swarm", "id": "desk", "name": "desk", "agentspec_version": "26.1.2",
        "first_agent": {"$component_ref": "front"},
        "relationships": [[{"$component_ref": "front"}, {"$component_ref": "billing"}]],
        "$referenced_components": {"front": agent("front", "Front desk"), "billing": agent("billing", "Billing")}});
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("swarm.json"), doc.to_string()).expect("write");
    let out = weft(dir.path(), &["run", "swarm.json", "--message", "Is invoice 9 paid?", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: Which customer is it?"), "{}", stderr(&out));
    // The billing agent's thread is part of the stored state.
    let stored = state(dir.path());
    let threads = stored["state"]["conversations"].as_object().expect("the threads");
    assert_eq!(threads.len(), 1, "{threads:?}");

    let out = weft(dir.path(), &["resume", "s.json", "--answer", "Ann"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: Invoice 9 is paid."), "{}", stderr(&out));
    let sent = server.requests();
    assert_eq!(sent.len(), 6);
    // The second process sent billing its whole thread: the first question, its answer, the
    // new message.
    let billing: Vec<String> = sent[4]["messages"].as_array().expect("messages")[1..]
        .iter()
        .map(|m| m["content"].as_array().expect("parts").iter().map(|p| p["text"].as_str().unwrap_or_default()).collect())
        .collect();
    assert_eq!(billing[0], "--- MESSAGE: From: front ---\nStatus of invoice 9?");
    assert_eq!(billing[1], "--- MESSAGE: From: billing ---\nWhich customer?");
    assert!(billing[2].starts_with("--- MESSAGE: From: front ---\nCustomer Ann--- SYSTEM REMINDER ---"), "{}", billing[2]);
    // And front its answer to the user and the user's reply.
    let front = sent[3]["messages"].to_string();
    assert!(
        front.contains("Which customer is it?")
            && front.contains("--- MESSAGE: From: HUMAN USER ---\\n\"},{\"type\":\"text\",\"text\":\"Ann\""),
        "{front}"
    );
}
