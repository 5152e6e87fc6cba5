//! Remote agents (A2AAgent; AGENTS.md section 8): Weft is a client of the A2A protocol version
//! WayFlow speaks (0.3, JSON-RPC 2.0 over HTTP POST to `agent_url`), at the root of a document
//! or in an AgentNode. (An ExtendedAgent's `agents` are Agents only, in pyagentspec as in Weft's
//! loader, so a remote agent is never called as a tool.)
//!
//! Each time the agent runs, the messages of its conversation the remote agent has not seen
//! (user and agent messages, in order) are sent, one `message/send` request each, in the A2A
//! context of the conversation (its `contextId`, made once per conversation and kept in
//! [`RunState::a2a`]); a result that names a task (the last history entry's `taskId`, or a
//! task's `id`) is then polled with `tasks/get` every `poll_interval` until its state is
//! `completed` or `input-required`, for at most the session's `timeout`, a failed poll tried
//! again up to `max_retries` times in a row. The tasks' history after its first entry (plus,
//! where WayFlow drops them, the task's status message and its artifacts) and plain message
//! results become messages of the conversation: `text` parts, and `data` parts as Python's
//! `str()`, joined by newlines.
//!
//! The two phases are two calls of the node (`Call::A2ASend`, `Call::A2APoll`), so a run
//! stopped while polling resumes polling, without sending its messages again. Every request
//! goes through the plan's HTTP client (`--http-rewrite`, `--allow-host`, the endpoint's
//! limiter, record and replay: the context id and request ids are the request's volatile texts)
//! and is an `http_request` event.
//!
//! Then: at the root the agent waits for the user, whatever the task's state (WayFlow's
//! `UserMessageRequestStatus`); in an AgentNode it waits while the remote task is
//! `input-required` and leaves through `next` once it completed (WayFlow cannot load an A2AAgent
//! in an AgentNode; in an ExtendedAgentNode it would wait after every answer, forever).
//!
//! Where Weft differs from WayFlow: a task that failed, was canceled or rejected fails the agent
//! at once (WayFlow polls it `max_retries` times more); `tasks/get` carries a request id (WayFlow
//! sends `null`, which a2a-sdk servers refuse); a JSON-RPC error counts as a failed poll (WayFlow
//! polls on until the timeout); a plain message result is an answer (WayFlow fails); each
//! message sent has its own `messageId` (its index in the conversation); redirects are not
//! followed (WayFlow's client follows them).

use super::{Answer, Answered, At, mismatched_call, mismatched_request};
use crate::check::{Checked, Place};
use crate::effect::{Effect, EffectResult, Site};
use crate::error::RunErrorKind;
use crate::plan::{Compiler, NodePlan};
use crate::sched::{Res, Sched, excerpt, get_frame, node_error};
use crate::state::{A2AConversation, Call, InputRequest, Position, RunState};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use weft_flow::node::A2AAgent;
use weft_guard::Secrets;
use weft_llm::http::{HttpErrorKind, HttpMeta, HttpRequest, HttpRetry, HttpSend};
use weft_llm::retry::RetryPolicy;

/// What the agent says when it has no message yet (WayFlow's `DEFAULT_RESPONSE`).
const DEFAULT_RESPONSE: &str = "Hi! How can I help you?";

/// Message types of the conversation.
const USER: &str = "USER";
const AGENT: &str = "AGENT";

/// Where a remote agent runs, which decides what it does once the remote agent answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// At the root of a document: it waits for the user after every answer (WayFlow).
    Root,
    /// In an AgentNode: it waits while the remote task needs input, and leaves once it
    /// completed.
    Node,
}

/// The remote agent and how to reach it, shared by the node and its calls in flight.
pub(crate) struct Remote {
    url: String,
    headers: Vec<(String, String)>,
    retry: HttpRetry,
    session_timeout: Duration,
    poll_interval: Duration,
    max_retries: u32,
    client: Arc<dyn HttpSend>,
    secrets: Arc<Secrets>,
}

/// A remote agent's operation.
pub(crate) struct A2AOp {
    remote: Arc<Remote>,
    mode: Mode,
}

/// Why an exchange failed: the message, and the exception class WayFlow raises for it.
pub(crate) struct A2AFailure {
    pub(crate) message: String,
    pub(crate) class: &'static str,
}

/// One effect of a remote agent: its `message/send` requests, or its polling.
pub(crate) struct A2ACall {
    remote: Arc<Remote>,
    work: Work,
    /// The node's name and path (the scope of its exchanges in a recording).
    node: String,
    node_path: String,
    context_id: String,
}

enum Work {
    /// Each message: its role (`user`, `agent`), text and id.
    Send(Vec<(&'static str, String, String)>),
    /// The tasks to poll.
    Poll(Vec<String>),
}

impl A2AOp {
    /// The remote agent's operation; its `retry_policy` read.
    pub(crate) fn plan(c: &mut Compiler<'_>, agent: &A2AAgent, mode: Mode) -> Option<A2AOp> {
        let comp = c.comp(agent.agent);
        let retry = match &agent.retry_policy {
            None => HttpRetry::Once(agent.timeout),
            Some(policy) => match RetryPolicy::from_agent_spec(policy) {
                // WayFlow's retrying client takes the policy's request timeout, else the
                // connection's.
                Ok(policy) => HttpRetry::Policy(RetryPolicy { request_timeout: policy.request_timeout.or(Some(agent.timeout)), ..policy }),
                Err(problem) => {
                    let line = format!("{} at {}/connection_config/retry_policy: {problem}", comp.label(), crate::plan::pointer(comp));
                    c.report(line);
                    return None;
                }
            },
        };
        let remote = Remote {
            url: agent.url.clone(),
            headers: agent.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")).cloned().collect(),
            retry,
            session_timeout: agent.session_timeout,
            poll_interval: agent.poll_interval,
            max_retries: agent.max_retries,
            client: Arc::clone(&c.inputs.http),
            secrets: Arc::clone(&c.inputs.secrets),
        };
        Some(A2AOp { remote: Arc::new(remote), mode })
    }

    /// Where this agent's conversation with the remote agent is kept: by frame and node.
    fn key(at: At<'_>) -> String {
        format!("{}/{}", at.fid, at.node.id)
    }

    /// The node is entered, or the user answered: the messages the remote agent has not seen
    /// are sent; with none, the agent waits for the user.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, _vars: Map<String, Json>) -> Res<()> {
        let key = Self::key(at);
        let len = state.conversation(at.fid).len();
        let fresh = match state.a2a.get(&key) {
            Some(c) => c.seen > len,
            None => true,
        };
        if fresh {
            // A context id of its own, the same every time this state is run from here.
            let mut hash = Sha256::new();
            hash.update(format!("{}\u{0}{key}\u{0}{}", state.run_id, state.seq).as_bytes());
            let context_id = uuid(&hash.finalize());
            state.a2a.insert(key.clone(), A2AConversation { context_id, seen: 0 });
        }
        let effect = self.send_effect(state, at, &key)?;
        match effect {
            Some(effect) => {
                s.start_clock(state, at.fid);
                s.perform(state, at.fid, at.node, Call::A2ASend {}, effect);
                Ok(())
            }
            None => self.answered(s, state, at, &key, false),
        }
    }

    /// The `message/send` requests of the messages not seen yet; `None` when there are none.
    fn send_effect(&self, state: &RunState, at: At<'_>, key: &str) -> Res<Option<Effect>> {
        let conversation = state.a2a.get(key).ok_or_else(mismatched_call)?;
        let messages: Vec<(&'static str, String, String)> = state
            .conversation(at.fid)
            .iter()
            .enumerate()
            .skip(conversation.seen)
            .filter_map(|(i, m)| {
                let role = match m.message_type.as_str() {
                    USER => "user",
                    AGENT => "agent",
                    _ => return None,
                };
                Some((role, m.content.clone(), i.to_string()))
            })
            .collect();
        if messages.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.effect(state, at, conversation.context_id.clone(), Work::Send(messages))?))
    }

    fn effect(&self, state: &RunState, at: At<'_>, context_id: String, work: Work) -> Res<Effect> {
        let frame = get_frame(state, at.fid)?;
        Ok(Effect::A2A(Box::new(A2ACall {
            remote: Arc::clone(&self.remote),
            work,
            node: at.node.name.clone(),
            node_path: format!("{}/{}", frame.path, at.node.name),
            context_id,
        })))
    }

    /// The requests returned: tasks are polled next; without any, the answers are in.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let key = Self::key(at);
        let EffectResult::A2A(result) = result else { return Err(mismatched_call()) };
        let results = result.map_err(|f| node_error(RunErrorKind::Http, at.node, &f.message).with_exception(f.class))?;
        match call {
            Call::A2ASend {} => {
                let len = state.conversation(at.fid).len();
                let conversation = state.a2a.get_mut(&key).ok_or_else(mismatched_call)?;
                conversation.seen = len;
                let context_id = conversation.context_id.clone();
                let mut tasks = Vec::new();
                let mut replies = Vec::new();
                for result in results {
                    match task_id(&result) {
                        Some(task) => tasks.push(task),
                        None => replies.push(result),
                    }
                }
                if tasks.is_empty() {
                    return self.finish(s, state, at, &key, replies);
                }
                let effect = self.effect(state, at, context_id, Work::Poll(tasks.clone()))?;
                s.perform(state, at.fid, at.node, Call::A2APoll { tasks, replies }, effect);
                Ok(())
            }
            Call::A2APoll { mut replies, .. } => {
                replies.extend(results);
                self.finish(s, state, at, &key, replies)
            }
            _ => Err(mismatched_call()),
        }
    }

    /// The remote agent's answers join the conversation; then the agent waits for the user,
    /// leaves, or ends its frame (see the module docs).
    fn finish(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, key: &str, replies: Vec<Json>) -> Res<()> {
        let mut input_required = false;
        for reply in &replies {
            if reply.pointer("/status/state").and_then(Json::as_str) == Some("input-required") {
                input_required = true;
            }
            for (role, text) in
                messages_of(reply).map_err(|e| node_error(RunErrorKind::Http, at.node, &e).with_exception("NotImplementedError"))?
            {
                let message_type = if role == "user" { USER } else { AGENT };
                s.post(state, at.fid, at.node, message_type, &text);
            }
        }
        let len = state.conversation(at.fid).len();
        if let Some(c) = state.a2a.get_mut(key) {
            c.seen = len;
        }
        self.answered(s, state, at, key, !input_required)
    }

    /// The remote agent answered (`completed`: its task is done): what the mode does next.
    fn answered(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, key: &str, completed: bool) -> Res<()> {
        s.stop_clock(state, at.fid);
        let last = state.conversation(at.fid).last().map_or_else(|| DEFAULT_RESPONSE.to_owned(), |m| m.content.clone());
        match self.mode {
            Mode::Node if completed => {
                // A fresh conversation next time the node is entered (WayFlow 2.6).
                state.a2a.remove(key);
                s.done(state, at, Map::new())
            }
            Mode::Root | Mode::Node => {
                s.wait(state, at.fid, at.node, InputRequest::Message { node: at.node.name.clone(), message: Some(last) })
            }
        }
    }

    /// The user answered: their message joins the conversation and the node runs again.
    pub(crate) fn submit(
        &self,
        s: &mut Sched<'_>,
        state: &mut RunState,
        fid: u64,
        node: &NodePlan,
        request: &InputRequest,
        answer: Json,
    ) -> Answered {
        let InputRequest::Message { .. } = request else { return Err(mismatched_request()) };
        let text = match answer {
            Json::String(t) => t,
            other => weft_prompt::py_str(&other),
        };
        s.post(state, fid, node, USER, &text);
        Ok(Answer::Again)
    }

    /// The call again after a resume: the messages not seen yet, or the polling of the tasks.
    pub(crate) fn remake(&self, state: &RunState, at: At<'_>, call: &Call) -> Res<Effect> {
        let key = Self::key(at);
        let context_id = state.a2a.get(&key).map(|c| c.context_id.clone()).ok_or_else(mismatched_call)?;
        match call {
            Call::A2ASend {} => self.send_effect(state, at, &key)?.ok_or_else(mismatched_call),
            Call::A2APoll { tasks, .. } => self.effect(state, at, context_id, Work::Poll(tasks.clone())),
            _ => Err(mismatched_call()),
        }
    }

    /// Busy with its requests or its polling, or waiting for the user.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } if matches!(**call, Call::A2ASend {} | Call::A2APoll { .. }) => Ok(()),
            Position::Waiting { .. } => Ok(()),
            other => place.unexpected(other),
        }
    }

    /// It asks the user for messages.
    pub(crate) fn asks(&self, request: &InputRequest) -> bool {
        matches!(request, InputRequest::Message { .. })
    }
}

/// A UUID (version 4 layout) made of the first 16 bytes of `bytes`.
fn uuid(bytes: &[u8]) -> String {
    let mut b = [0u8; 16];
    for (to, from) in b.iter_mut().zip(bytes) {
        *to = *from;
    }
    b[6] = 0x40 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The task a `message/send` result names: its last history entry's `taskId` (WayFlow), else
/// the id of a result that is a task.
fn task_id(result: &Json) -> Option<String> {
    let from_history =
        result.get("history").and_then(Json::as_array).and_then(|h| h.last()).and_then(|m| m.get("taskId")).and_then(Json::as_str);
    let own = (result.get("kind").and_then(Json::as_str) == Some("task")).then(|| result.get("id").and_then(Json::as_str)).flatten();
    from_history.or(own).map(str::to_owned)
}

/// The messages of a result, as (role, text): a task's history after its first entry, then its
/// status message and its artifacts when the history does not hold them; a message itself.
fn messages_of(result: &Json) -> Result<Vec<(String, String)>, String> {
    let mut entries: Vec<&Json> = Vec::new();
    match result.get("kind").and_then(Json::as_str) {
        Some("message") => entries.push(result),
        _ => {
            let history = result.get("history").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
            entries.extend(history.iter().skip(1).filter(|e| e.get("role").is_some()));
            entries.extend(result.pointer("/status/message"));
            entries.extend(result.get("artifacts").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default());
        }
    }
    // The first history entry is the message sent; a status message also in the history is
    // read once.
    let mut seen: Vec<&str> = result.pointer("/history/0/messageId").and_then(Json::as_str).into_iter().collect();
    let mut out = Vec::new();
    for entry in entries {
        let Some(parts) = entry.get("parts").and_then(Json::as_array) else { continue };
        if let Some(id) = entry.get("messageId").and_then(Json::as_str) {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
        }
        let role = entry.get("role").and_then(Json::as_str).unwrap_or("agent").to_owned();
        out.push((role, text_of(parts)?));
    }
    Ok(out)
}

/// The text of a message's parts: `text` parts as they are, `data` parts as Python's `str()`,
/// joined by newlines (WayFlow's message content); a `file` part cannot be read.
fn text_of(parts: &[Json]) -> Result<String, String> {
    let mut texts = Vec::new();
    for part in parts {
        match part.get("kind").and_then(Json::as_str) {
            Some("text") => {
                texts.push(part.get("text").map_or_else(String::new, |t| t.as_str().map_or_else(|| weft_prompt::py_str(t), str::to_owned)))
            }
            Some("data") => texts.push(part.get("data").map_or_else(String::new, weft_prompt::py_str)),
            other => {
                return Err(format!(
                    "the remote agent answered with a {} part, which Weft cannot read (WayFlow neither: \"part is not supported yet\"); only text and data parts become messages",
                    other.unwrap_or("kind-less")
                ));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// The exception class WayFlow's HTTP client raises when no answer came.
fn transport_class(kind: HttpErrorKind) -> &'static str {
    match kind {
        HttpErrorKind::Connect | HttpErrorKind::Tls => "ConnectError",
        HttpErrorKind::Timeout => "ReadTimeout",
        HttpErrorKind::Transport => "ReadError",
        HttpErrorKind::Invalid => "ValueError",
        HttpErrorKind::Refused | HttpErrorKind::TooLarge | HttpErrorKind::Unavailable => "Exception",
    }
}

/// Performs an A2A effect: every `message/send` in order, or the polling of every task in
/// order; the results, one per request or task.
pub(crate) async fn exchange(call: &A2ACall, site: &Site) -> Result<Vec<Json>, A2AFailure> {
    let mut out = Vec::new();
    match &call.work {
        Work::Send(messages) => {
            for (role, text, id) in messages {
                let params = format!(
                    "{{\"message\":{{\"role\":{},\"parts\":[{{\"kind\":\"text\",\"text\":{}}}],\"kind\":\"message\",\"messageId\":{},\"contextId\":{}}}}}",
                    Json::from(*role),
                    Json::from(text.as_str()),
                    Json::from(id.as_str()),
                    Json::from(call.context_id.as_str())
                );
                out.push(rpc(call, site, "message/send", &params).await?);
            }
        }
        Work::Poll(tasks) => {
            for task in tasks {
                out.push(poll(call, site, task).await?);
            }
        }
    }
    Ok(out)
}

/// Polls `task` until it completed or needs input (see the module docs).
async fn poll(call: &A2ACall, site: &Site, task: &str) -> Result<Json, A2AFailure> {
    let remote = &call.remote;
    let started = tokio::time::Instant::now();
    let mut failures = 0u32;
    let params = format!("{{\"id\":{}}}", Json::from(task));
    while started.elapsed() < remote.session_timeout {
        match rpc(call, site, "tasks/get", &params).await {
            Ok(result) => {
                failures = 0;
                let state = result.pointer("/status/state").and_then(Json::as_str).unwrap_or("");
                match state {
                    "completed" | "input-required" => return Ok(result),
                    "failed" | "canceled" | "rejected" => {
                        let said = result
                            .pointer("/status/message/parts")
                            .and_then(Json::as_array)
                            .and_then(|p| text_of(p).ok())
                            .filter(|t| !t.is_empty())
                            .map(|t| format!(": {}", excerpt(&t, &remote.secrets)))
                            .unwrap_or_default();
                        return Err(A2AFailure { message: format!("task {task} ended with state: {state}{said}"), class: "RuntimeError" });
                    }
                    _ => {}
                }
            }
            Err(failure) => {
                failures += 1;
                if failures > remote.max_retries {
                    return Err(A2AFailure {
                        message: format!(
                            "failed to poll task {task} after {} retries: {} (session_parameters.max_retries)",
                            remote.max_retries, failure.message
                        ),
                        class: "ConnectionError",
                    });
                }
            }
        }
        tokio::time::sleep(remote.poll_interval).await;
    }
    Err(A2AFailure {
        message: format!(
            "task {task} did not complete within {} seconds (session_parameters.timeout)",
            remote.session_timeout.as_secs_f64()
        ),
        class: "TimeoutError",
    })
}

/// One JSON-RPC request: its `result`, or why there is none.
async fn rpc(call: &A2ACall, site: &Site, method: &str, params: &str) -> Result<Json, A2AFailure> {
    let remote = &call.remote;
    let id = crate::context::new_run_id();
    let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":{},\"params\":{params}}}", Json::from(id.as_str()), Json::from(method));
    let mut headers = remote.headers.clone();
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    let request = HttpRequest {
        method: "POST".to_owned(),
        url: remote.url.clone(),
        headers,
        sensitive_headers: Vec::new(),
        body: Some(body),
        retry: remote.retry.clone(),
        meta: HttpMeta {
            node: call.node.clone(),
            node_path: call.node_path.clone(),
            batch_index: site.run.index.and_then(|i| u64::try_from(i).ok()),
            volatile: vec![call.context_id.clone(), id],
        },
    };
    let t = std::time::Instant::now();
    let result = remote.client.send(&request).await;
    super::http::report(&site.run, &site.path, &request, &result, t.elapsed().as_secs_f64() * 1000.0);
    let what = format!("{method} to {}", weft_guard::egress::without_credentials(&remote.url));
    let response = result.map_err(|e| A2AFailure { message: e.message, class: transport_class(e.kind) })?;
    // Any status but 2xx: a redirect is not followed (WayFlow's client follows it).
    if !response.is_success() {
        let to = response.location.as_ref().map(|l| format!(" (redirected to {l}, not followed)")).unwrap_or_default();
        return Err(A2AFailure {
            message: format!("{what}: HTTP {}{to}: {}", response.status, excerpt(&response.body, &remote.secrets)),
            class: "UnexpectedResponseError",
        });
    }
    let value: Json = serde_json::from_str(&response.body).map_err(|e| A2AFailure {
        message: format!("{what}: the answer is not JSON ({e}): {}", excerpt(&response.body, &remote.secrets)),
        class: "ValidationError",
    })?;
    match (value.get("result"), value.get("error")) {
        (Some(result @ Json::Object(_)), _) => Ok(result.clone()),
        (_, Some(error)) => Err(A2AFailure {
            message: format!(
                "{what}: JSON-RPC error {}: {}",
                error.get("code").map_or_else(|| "without a code".to_owned(), ToString::to_string),
                excerpt(error.get("message").and_then(Json::as_str).unwrap_or(""), &remote.secrets)
            ),
            class: "RuntimeError",
        }),
        _ => Err(A2AFailure {
            message: format!(
                "{what}: the answer has neither a `result` object nor an `error` (WayFlow: \"Unable to parse server response due to missing `result` or `history` data.\"): {}",
                excerpt(&response.body, &remote.secrets)
            ),
            class: "RuntimeError",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_become_messages() {
        let task = json!({"kind": "task", "id": "t1", "history": [
            {"role": "user", "messageId": "0", "parts": [{"kind": "text", "text": "hi"}]},
            {"role": "agent", "messageId": "a", "taskId": "t1", "parts": [{"kind": "text", "text": "one"}, {"kind": "data", "data": {"x": 1}}]}
        ], "status": {"state": "completed", "message": {"role": "agent", "messageId": "a", "parts": [{"kind": "text", "text": "one"}]}},
        "artifacts": [{"artifactId": "r", "parts": [{"kind": "text", "text": "result"}]}]});
        assert_eq!(task_id(&task).as_deref(), Some("t1"));
        assert_eq!(
            messages_of(&task).expect("messages"),
            vec![("agent".into(), "one\n{'x': 1}".into()), ("agent".into(), "result".into())]
        );
        let message = json!({"kind": "message", "role": "agent", "messageId": "m", "parts": [{"kind": "text", "text": "hello"}]});
        assert_eq!(task_id(&message), None);
        assert_eq!(messages_of(&message).expect("messages"), vec![("agent".into(), "hello".into())]);
        let file = json!({"kind": "message", "role": "agent", "parts": [{"kind": "file", "file": {}}]});
        assert!(messages_of(&file).unwrap_err().contains("file part"));
    }

    #[test]
    fn context_ids_look_like_uuids() {
        let id = uuid(&Sha256::digest(b"run/key"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
