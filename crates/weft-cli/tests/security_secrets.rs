//! Issue 10, items 2, 3, 4 (the LLM response cap) and 6 (resume overrides), through the `weft`
//! binary against a real HTTP server on 127.0.0.1 (weft-testkit). Each test is named after the
//! attack it stops.

mod common;

use common::server;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use weft_testkit::{Fault, MockConfig};

/// A key with characters that every encoding changes: `/` and `+` (URL, base64), `"` (JSON),
/// `=` and `~`.
const KEY: &str = "sk-live/Secret+Key\"Q=~0123456789abcdef";

/// The id of the fixture's LLM config.
const CONFIG: &str = "cfg";

fn weft(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command.args(args).current_dir(dir).stdin(Stdio::null()).env_remove("OPENAI_API_KEY");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("WEFT_SECRET_")) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run weft")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The fixture flow (an input request, then one LLM node, no retries) with its config's url
/// set to `url`, written into `dir`.
fn flow(dir: &Path, url: &str) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ask_then_llm.json");
    let text = std::fs::read_to_string(fixture).expect("fixture").replace("http://LLM_HOST/v1", url);
    let path = dir.join("flow.json");
    std::fs::write(&path, text).expect("write");
    path
}

/// Every form of `secret` a leak could take, computed here independently of the scrubber:
/// raw, JSON-escaped, URL-encoded, base64 (without padding, so it is found inside longer text).
fn leaked_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("json");
    let url: String = secret
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let base64 = weft_guard::secrets::base64_standard(secret.as_bytes());
    let mut forms = vec![secret.to_owned(), json[1..json.len() - 1].to_owned(), url, base64.trim_end_matches('=').to_owned()];
    // The longest run of letters and digits: found whatever escaping was applied around it.
    let canary = secret.split(|c: char| !c.is_ascii_alphanumeric()).max_by_key(|run| run.len()).unwrap_or_default();
    assert!(canary.len() >= 10, "test secrets have a distinctive run of letters and digits");
    forms.push(canary.to_owned());
    forms
}

/// Searches both output streams and every file in `dir` for every form of every secret.
fn assert_nothing_leaked(dir: &Path, out: &Output, secrets: &[&str]) -> String {
    let mut everything = vec![("stdout".to_owned(), String::from_utf8_lossy(&out.stdout).into_owned()), ("stderr".to_owned(), stderr(out))];
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n != "flow.json") {
            everything.push((path.display().to_string(), std::fs::read_to_string(&path).expect("read")));
        }
    }
    for (what, text) in &everything {
        for secret in secrets {
            for form in leaked_forms(secret) {
                assert!(!text.contains(&form), "{form:?} (a form of {secret:?}) leaked into {what}:\n{text}");
            }
        }
    }
    everything.into_iter().map(|(what, text)| format!("== {what}\n{text}\n")).collect()
}

fn files_args() -> Vec<&'static str> {
    vec![
        "--answer",
        "hello",
        "--state",
        "run.state.json",
        "--events",
        "events.jsonl",
        "--record",
        "record.jsonl",
        "--usage-json",
        "usage.json",
    ]
}

#[test]
fn a_server_echoing_the_key_in_401_400_500_bodies_and_basic_headers_leaks_it_nowhere() {
    let secret_arg = format!("{CONFIG}.api_key={KEY}");
    let env_name = format!("WEFT_SECRET_{}_API_KEY", CONFIG.to_uppercase());
    for status in [401, 400, 500, 200] {
        // The key given three ways: --secret, WEFT_SECRET_*, and OPENAI_API_KEY (loopback).
        for how in ["--secret", "WEFT_SECRET", "OPENAI_API_KEY"] {
            let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::EchoAuth { status }));
            let dir = tempfile::tempdir().expect("tempdir");
            let flow = flow(dir.path(), &server.url());
            let flow = flow.to_string_lossy();
            let mut args = vec!["run", flow.as_ref()];
            args.extend(files_args());
            let env: Vec<(&str, &str)> = match how {
                "--secret" => {
                    args.extend(["--secret", secret_arg.as_str()]);
                    vec![]
                }
                "WEFT_SECRET" => vec![(env_name.as_str(), KEY)],
                _ => vec![("OPENAI_API_KEY", KEY)],
            };
            let out = weft(dir.path(), &args, &env);
            assert_eq!(out.status.code(), Some(if status == 200 { 0 } else { 1 }), "{status} {how}: {}", stderr(&out));
            // The key did go where it belongs, and came back.
            assert_eq!(server.received()[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()), "{status} {how}");
            let all = assert_nothing_leaked(dir.path(), &out, &[KEY]);
            assert!(all.contains("[REDACTED]"), "{status} {how}: the echo is masked, not lost:\n{all}");
            if status != 200 {
                let state = std::fs::read_to_string(dir.path().join("run.state.json")).expect("the failed run's state");
                assert!(state.contains("[REDACTED]"), "{state}");
                assert!(stderr(&out).contains(&format!("HTTP {status}")), "{}", stderr(&out));
            } else {
                assert!(String::from_utf8_lossy(&out.stdout).contains("[REDACTED]"), "{}", String::from_utf8_lossy(&out.stdout));
            }
        }
    }
}

#[test]
fn credentials_in_an_llm_url_are_sent_as_basic_auth_and_never_printed_or_stored() {
    const PASSWORD: &str = "pa@ss/w+rd-0123456789";
    const WRITTEN: &str = "pa%40ss%2Fw%2Brd-0123456789";
    for status in [401, 200] {
        let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::EchoAuth { status }));
        let dir = tempfile::tempdir().expect("tempdir");
        let flow = flow(dir.path(), "http://127.0.0.1:9/v1");
        let llm = format!("openai-compatible={},model=m", server.url().replace("http://", &format!("http://alice:{WRITTEN}@")));
        let flow = flow.to_string_lossy();
        let mut args = vec!["run", flow.as_ref(), "--llm", llm.as_str()];
        args.extend(files_args());
        let out = weft(dir.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(if status == 200 { 0 } else { 1 }), "{}", stderr(&out));
        let sent = server.received()[0].authorization.clone().expect("authorization");
        assert_eq!(sent, format!("Basic {}", weft_guard::secrets::base64_standard(format!("alice:{PASSWORD}").as_bytes())));
        assert_nothing_leaked(dir.path(), &out, &[PASSWORD, WRITTEN, &format!("alice:{PASSWORD}"), &format!("alice:{WRITTEN}")]);
        if status == 401 {
            let state: Json =
                serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.state.json")).expect("state")).expect("json");
            assert_eq!(state["options"]["llm"], format!("openai-compatible={},model=m", server.url()));
        }
    }
    // A malformed --llm value with credentials is refused without showing them.
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = flow(dir.path(), "http://127.0.0.1:9/v1");
    let llm = format!("openai-compatible=alice:{WRITTEN}@gateway,model=m");
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--llm", &llm], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_nothing_leaked(dir.path(), &out, &[PASSWORD, WRITTEN]);
}

#[test]
fn the_environment_key_is_refused_for_a_host_the_flow_names_and_nothing_is_sent() {
    let (_rt, server) = server(MockConfig::default().with_text("ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    // 0.0.0.0 reaches the server listening on 127.0.0.1 (Linux), yet it is not a loopback
    // address a key may be sent to: the flow names it, the user's environment key stays home.
    let foreign = server.url().replace("127.0.0.1", "0.0.0.0");
    let flow = flow(dir.path(), &foreign);
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--answer", "hi"], &[("OPENAI_API_KEY", KEY)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("OPENAI_API_KEY is only sent to OpenAI's API"), "{err}");
    assert!(err.contains(&format!("--secret {CONFIG}.api_key=... or WEFT_SECRET_CFG_API_KEY")), "{err}");
    assert_eq!(server.stats().requests, 0, "a request reached the server");
    assert!(out.stdout.is_empty());
    assert_nothing_leaked(dir.path(), &out, &[KEY]);

    // Given explicitly for that config, the key goes there.
    let secret = format!("{CONFIG}.api_key=sk-for-this-server");
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--answer", "hi", "--secret", &secret], &[("OPENAI_API_KEY", KEY)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received()[0].authorization.as_deref(), Some("Bearer sk-for-this-server"));

    // A loopback server gets the environment key.
    let flow = self::flow(dir.path(), &server.url());
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--answer", "hi"], &[("OPENAI_API_KEY", KEY)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received()[1].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
}

#[test]
fn allow_host_refuses_a_request_before_it_is_sent() {
    let (_rt, server) = server(MockConfig::default().with_text("ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = flow(dir.path(), &server.url());
    let flow = flow.to_string_lossy();
    let out = weft(dir.path(), &["run", &flow, "--answer", "hi", "--allow-host", "api.example.com", "--allow-host", "*.example.org"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let port = server.addr().port();
    assert!(err.contains(&format!("refused to connect to 127.0.0.1:{port}")) && err.contains("--allow-host 127.0.0.1"), "{err}");
    assert_eq!(server.stats().requests, 0, "a request reached the server");

    // In a batch too.
    std::fs::write(dir.path().join("in.jsonl"), "{}\n{}\n").expect("write");
    let out = weft(dir.path(), &["run", &flow, "--batch", "in.jsonl", "--allow-host", "api.example.com"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(server.stats().requests, 0, "a request reached the server");

    // The allowed host is reached.
    let allowed = format!("127.0.0.1:{port}");
    let out = weft(dir.path(), &["run", &flow, "--answer", "hi", "--allow-host", "api.example.com", "--allow-host", &allowed], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.stats().requests, 1);

    // A bad pattern is a usage error.
    for bad in ["https://api.example.com", "a.*.com", "h:0", ""] {
        let out = weft(dir.path(), &["run", &flow, "--answer", "hi", "--allow-host", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--allow-host"), "{}", stderr(&out));
    }
    assert_eq!(server.stats().requests, 1);
}

#[test]
fn resume_keeps_the_allow_list_and_overrides_llm_tools_and_allow_host() {
    let (_rt, server) = server(MockConfig::default().with_text("resumed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = flow(dir.path(), &server.url());
    let flow = flow.to_string_lossy();
    let endpoint = format!("openai-compatible={},model=m", server.url());
    let allowed = format!("127.0.0.1:{}", server.addr().port());

    // A run on the simulated model, restricted, waits; its state keeps the allow list.
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--state", "s.json", "--allow-host", "api.example.com"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("state")).expect("json");
    assert_eq!(state["options"]["allow_hosts"], serde_json::json!(["api.example.com"]));
    // Resumed with --llm aimed at the server: the stored allow list refuses it, nothing is sent.
    let out = weft(dir.path(), &["resume", "s.json", "--answer", "hi", "--llm", &endpoint], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow-host 127.0.0.1"), "{}", stderr(&out));
    assert_eq!(server.stats().requests, 0);
    // --allow-host on resume replaces the list.
    let out = weft(dir.path(), &["resume", "s.json", "--answer", "hi", "--llm", &endpoint, "--allow-host", &allowed], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(server.stats().requests, 1);

    // A state naming the server, resumed with --allow-host elsewhere: refused, nothing sent.
    let out = weft(dir.path(), &["run", &flow, "--state", "s2.json"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = weft(dir.path(), &["resume", "s2.json", "--answer", "hi", "--allow-host", "api.example.com"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(server.stats().requests, 1);
    // --llm on resume replaces the state's endpoint (the simulated model: no request). The run
    // finishes, so s2.json is marked finished: the checks after it use a copy of the waiting state.
    std::fs::copy(dir.path().join("s2.json"), dir.path().join("s3.json")).expect("copy");
    let out = weft(dir.path(), &["resume", "s2.json", "--answer", "hi", "--llm", "simulated"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Simulated reply"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(server.stats().requests, 1);
    // --tools on resume replaces the state's tools file: a missing one is an error naming it.
    let out = weft(dir.path(), &["resume", "s3.json", "--answer", "hi", "--tools", "missing.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
    // A bad pattern on resume is a usage error.
    let out = weft(dir.path(), &["resume", "s3.json", "--answer", "hi", "--allow-host", "http://x"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn an_llm_response_past_32_mib_fails_the_run_clearly() {
    let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::Oversized { bytes: Some(33 << 20), declared: false }));
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = flow(dir.path(), &server.url());
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--answer", "hi"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the response body is larger than 32 MiB"), "{err}");
    assert!(err.contains("not retried"), "{err}");
}

#[test]
fn a_short_secret_garbles_no_state_or_output_and_resume_works() {
    let (_rt, server) = server(MockConfig::default().with_text("reply 1 of 10, item 11"));
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = flow(dir.path(), &server.url());
    let flow = flow.to_string_lossy();
    // `1` is in frame ids, counters, the flow's hash and every number; the folder's path (a
    // long secret) is in the flow path and every file path the state names.
    let folder = dir.path().to_string_lossy().into_owned();
    for key in ["1", folder.as_str()] {
        let secret = format!("{CONFIG}.api_key={key}");
        let state = format!("s{}.json", key.len());
        let out = weft(dir.path(), &["run", &flow, "--secret", &secret, "--state", &state, "--events", "events.jsonl"], &[]);
        assert_eq!(out.status.code(), Some(3), "{key}: {}", stderr(&out));
        let warnings = stderr(&out).matches("shorter than 8 characters").count();
        assert_eq!(warnings, usize::from(key.len() < 8), "{key}: warned once for a short secret only: {}", stderr(&out));
        let text = std::fs::read_to_string(dir.path().join(&state)).expect("state");
        let stored: Json = serde_json::from_str(&text).expect("json");
        assert_eq!(stored["flow"], Json::String(flow.to_string()), "{key}: the flow path is kept:\n{text}");
        assert_eq!(stored["flow_hash"], stored["state"]["flow_hash"], "{key}");
        assert!(stored["flow_hash"].as_str().is_some_and(|h| !h.contains("REDACTED")), "{key}:\n{text}");
        assert!(stored["options"]["events"].as_str().is_some_and(|p| p.starts_with(&folder)), "{key}:\n{text}");

        let out = weft(dir.path(), &["resume", &state, "--answer", "question 1 of 1", "--secret", &secret], &[]);
        assert_eq!(out.status.code(), Some(0), "{key}: {}", stderr(&out));
        let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
        assert_eq!(outputs, serde_json::json!({"generated_text": "reply 1 of 10, item 11"}), "{key}");
        // The key went where it belongs.
        let sent = server.received().last().and_then(|r| r.authorization.clone());
        assert_eq!(sent.as_deref(), Some(format!("Bearer {key}").as_str()), "{key}");
    }
    // The long secret is still masked in the state's data (the answer quoting it, in values,
    // the conversation and the failed call), while its structure keeps it.
    let fault = Fault::Status { status: 400, message: "no".into() };
    let (_rt2, failing) = self::server(MockConfig::default().with_random_fault(1.0, fault));
    let flow = self::flow(dir.path(), &failing.url());
    let flow = flow.to_string_lossy();
    let secret = format!("{CONFIG}.api_key={folder}");
    let answer = format!("my folder is {folder}/x");
    let out = weft(dir.path(), &["run", &flow, "--secret", &secret, "--answer", &answer, "--state", "f.json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("f.json")).expect("the failed run's state");
    let stored: Json = serde_json::from_str(&text).expect("json");
    assert_eq!(stored["flow"], Json::String(flow.to_string()), "{text}");
    assert!(text.contains("my folder is [REDACTED]/x"), "{text}");
    assert_eq!(text.matches(folder.as_str()).count(), 1, "only in the flow path:\n{text}");
}

/// A 60-character key of only the characters no encoding changes (`A-Za-z0-9-._~`).
const PLAIN_KEY: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop";

#[test]
fn a_key_echoed_across_the_cut_of_a_long_non_json_body_leaves_no_part_of_itself_anywhere() {
    assert_eq!(PLAIN_KEY.len(), 60);
    let secret_arg = format!("{CONFIG}.api_key={PLAIN_KEY}");
    // The error quotes the first 300 characters of the body: the key at 270 is cut in two by a
    // cut made before masking.
    for status in [502, 401, 200] {
        let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::EchoAuthText { status, offset: 270 }));
        let dir = tempfile::tempdir().expect("tempdir");
        let flow = flow(dir.path(), &server.url());
        let flow = flow.to_string_lossy();
        let mut args = vec!["run", flow.as_ref(), "--secret", secret_arg.as_str()];
        args.extend(files_args());
        let out = weft(dir.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(1), "{status}: {}", stderr(&out));
        assert_eq!(server.received()[0].authorization.as_deref(), Some(format!("Bearer {PLAIN_KEY}").as_str()));
        let all = assert_nothing_leaked(dir.path(), &out, &[]);
        let left: Vec<&str> = (0..=PLAIN_KEY.len() - 8).map(|i| &PLAIN_KEY[i..i + 8]).filter(|piece| all.contains(piece)).collect();
        assert!(left.is_empty(), "{status}: {left:?} of the key left in:\n{all}");
        assert!(stderr(&out).contains("[REDACTED] (end"), "{status}: masked before the cut:\n{}", stderr(&out));
    }
}
