//! Record and replay of LLM exchanges (`--record run.jsonl`, `--replay run.jsonl`).
//!
//! [`Recorder`] wraps a model and appends one line per exchange to a [`RecordLog`] shared by every
//! model and tool of the process (tools are recorded by [`crate::tools::RecordingTool`] into
//! the same log); [`Replayer`] is a model serving a recording back with no network.
//!
//! The file format, the keys, secret redaction and how lines are written are described in
//! [`crate::log`], which both models and tools write through. An LLM line is
//!
//! ```json
//! {"kind":"llm","key":"<sha-256>","run":3,"node_path":"root/map[3]/work","occurrence":1,"model":"openai-compatible http://…",
//!  "request":{<RecordedRequest>},"response":{<RecordedResponse>}}
//! ```
//!
//! with `"error":{<RecordedError>}` in place of `response` for a failed call (after the client's
//! own retries: one line per [`ChatModel::chat`]). The line's types are the record file's own
//! ([`crate::format`]), converted from and to `weft_llm`'s, so a field added to a
//! [`ChatRequest`] changes neither recordings nor their keys.
//!
//! **Keys.** The key is the SHA-256 of the canonical JSON of what determines the answer:
//! [`request_content`], the request's messages, response format, tools and generation
//! parameters, secrets redacted. [`weft_llm::RequestMeta`] is left out: `call_index` depends on
//! scheduling, and the node is in the scope. The scope is the run and the node path: the run is
//! the index of a batch's run ([`weft_llm::RequestMeta::batch_index`], the line's `"run"`,
//! absent outside a batch), the node path (`root/map[3]/work`) holds branch and item indices,
//! so identical prompts of different runs, parallel branches or map items never collide and
//! replay depends neither on completion order nor on the concurrency of the recording or the
//! replay (a partial recording of a batch replays every run it holds whole). The occurrence
//! (from 1) tells apart the same request made again in the same scope (a loop). Occurrences are
//! counted per process: a run resumed in a new process counts from 1 again, so record and
//! replay a resumed run the same way.
//!
//! **Lines without a run** (outside a batch, or recorded by format 1, before runs were recorded)
//! are matched as they were recorded: by node path, key and occurrence counted over the whole
//! process, whichever run asks, when the recording has no line with a run.
//!
//! **Secrets.** Every string of a line, responses and error messages included, has the values
//! given to [`RecordLog::add_secrets`] replaced by `[REDACTED]`, and keys are computed on the
//! redacted request. A [`ChatRequest`] carries no HTTP headers, so the API key
//! (`Authorization`) is never part of a recorded exchange. When secrets can occur in prompts,
//! give the [`Replayer`] the same values ([`Replayer::with_secrets`]) so the keys match.

use std::fmt;
use std::sync::Arc;

use serde_json::Value as Json;

use weft_llm::{ChatModel, ChatRequest, ChatResponse, DeltaSink, LlmError, LlmErrorKind, Role};

use crate::format::{LlmLine, RecordedError, RecordedRequest, RecordedResponse};
use crate::log::{RecordLog, excerpt};
use crate::replay::{Kind, Names, Replay};

/// The LLM exchanges of a record file (lines of kind `llm`), served by [`Replayer`].
pub struct LlmExchanges;

impl Kind for LlmExchanges {
    type Answer = RecordedResponse;
    type Error = RecordedError;
    const NAMES: Names = Names { line: "llm", exchange: "LLM call", repeated: "request" };
}

/// What determines the answer to `request`, as hashed into its key: the request as recorded
/// without its `meta` ([`RecordedRequest::key_content`]).
pub fn request_content(request: &ChatRequest) -> Json {
    RecordedRequest::from(request).key_content()
}

/// A model wrapper that forwards every call to its model and records the exchange in a
/// [`RecordLog`]. Its name and endpoint are its model's.
pub struct Recorder {
    inner: Arc<dyn ChatModel>,
    log: Arc<RecordLog>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").field("model", &self.inner.name()).field("log", &self.log).finish()
    }
}

impl Recorder {
    /// Records the exchanges of `inner` into `log`.
    pub fn new(inner: Arc<dyn ChatModel>, log: Arc<RecordLog>) -> Recorder {
        Recorder { inner, log }
    }

    /// The key and occurrence of `request`, counted in its scope (its run and node path).
    fn start(&self, request: &ChatRequest) -> (String, u64) {
        self.log.stamp(LlmExchanges::NAMES.line, request.meta.batch_index, &request.meta.node_path, &request_content(request))
    }

    fn finish(&self, request: &ChatRequest, key: String, occurrence: u64, result: &Result<ChatResponse, LlmError>) {
        let (response, error) = match result {
            Ok(response) => (Some(RecordedResponse::from(response)), None),
            Err(error) => (None, Some(RecordedError::from(error.info()))),
        };
        self.log.append_line(&LlmLine {
            key,
            run: request.meta.batch_index,
            node_path: request.meta.node_path.clone(),
            occurrence,
            model: self.inner.name().to_owned(),
            request: RecordedRequest::from(request),
            response,
            error,
        });
    }
}

#[async_trait::async_trait]
impl ChatModel for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let (key, occurrence) = self.start(request);
        let result = self.inner.chat(request).await;
        self.finish(request, key, occurrence, &result);
        result
    }

    async fn chat_streaming(&self, request: &ChatRequest, on_delta: DeltaSink<'_>) -> Result<ChatResponse, LlmError> {
        let (key, occurrence) = self.start(request);
        let result = self.inner.chat_streaming(request, on_delta).await;
        self.finish(request, key, occurrence, &result);
        result
    }
}

/// A model serving the LLM exchanges of a record file, with no network: each recorded exchange
/// answers the request with the same key in the same run (of a batch) at the same node path and
/// occurrence, once; a recording without runs (outside a batch, or of format 1) answers by node
/// path, key and occurrence alone ([`Replay`]). A recorded error is returned as an error of the
/// same kind with the same message. A request the recording does not have fails with an
/// [`LlmError`] of kind `Other` naming the node path, the occurrence and the start of the prompt.
///
/// Its name and endpoint are `replay <file>`.
pub type Replayer = Replay<LlmExchanges>;

impl Replay<LlmExchanges> {
    fn serve(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        match self.find(request.meta.batch_index, &request.meta.node_path, &request_content(request)) {
            Ok(Ok(response)) => Ok(response.clone().into()),
            Ok(Err(error)) => Err(error.clone().into()),
            Err(mut missing) => {
                if missing.outside_batch {
                    missing.reason.push_str(" (this recording was made by a batch: replay it with --batch)");
                }
                let shown = excerpt(&self.secrets().redact_str(prompt(request)));
                Err(LlmError::new(
                    LlmErrorKind::Other,
                    missing.message(
                        "the LLM call",
                        &format!(", prompt {shown}"),
                        "the flow or its inputs changed since the recording, or the recording stopped before this call: re-record with --record",
                    ),
                ))
            }
        }
    }
}

/// The text that best identifies a request in a message: its last user message, else its last
/// message.
fn prompt(request: &ChatRequest) -> &str {
    request.messages.iter().rev().find(|m| m.role == Role::User).or_else(|| request.messages.last()).map_or("", |m| m.content.as_str())
}

#[async_trait::async_trait]
impl ChatModel for Replayer {
    fn name(&self) -> &str {
        Replay::name(self)
    }

    fn endpoint(&self) -> &str {
        Replay::name(self)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.serve(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::content_key;
    use serde_json::json;
    use weft_llm::{ChatMessage, LlmErrorInfo, RequestMeta, ResponseFormat, SchemaDelivery, ToolSpec};

    fn request(path: &str, call_index: u64, prompt: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::System, "Be brief."), ChatMessage::new(Role::User, prompt)],
            meta: RequestMeta { node: "n".to_owned(), node_path: path.to_owned(), call_index, batch_index: None },
            ..ChatRequest::default()
        }
    }

    #[test]
    fn the_content_leaves_out_meta_only() {
        let mut a = request("root/a", 0, "hi");
        let b = request("root/b", 7, "hi");
        assert_eq!(request_content(&a), request_content(&b));
        assert!(request_content(&a).get("meta").is_none());
        for change in 0..4 {
            let mut c = a.clone();
            match change {
                0 => c.messages[1].content.push('!'),
                1 => {
                    c.response_format =
                        Some(ResponseFormat { name: "x".into(), schema: json!({}).into(), strict: false, delivery: SchemaDelivery::Native })
                }
                2 => c.tools.push(ToolSpec { name: "t".into(), description: None, parameters: json!({"type": "object"}).into() }),
                _ => {
                    c.generation.insert("temperature".into(), json!(0.5));
                }
            }
            assert_ne!(content_key(&request_content(&a)), content_key(&request_content(&c)), "change {change}");
        }
        a.generation.insert("top_p".into(), json!(1));
        a.generation.insert("max_tokens".into(), json!(10));
        let mut reordered = a.clone();
        reordered.generation = [("max_tokens".to_owned(), json!(10)), ("top_p".to_owned(), json!(1))].into_iter().collect();
        assert_eq!(content_key(&request_content(&a)), content_key(&request_content(&reordered)));
    }

    #[test]
    fn the_prompt_excerpt_is_the_last_user_message() {
        let mut r = request("p", 0, "question");
        r.messages.push(ChatMessage::new(Role::Assistant, "answer"));
        assert_eq!(prompt(&r), "question");
        r.messages.retain(|m| m.role != Role::User);
        assert_eq!(prompt(&r), "answer");
        assert_eq!(prompt(&ChatRequest::default()), "");
    }

    #[test]
    fn errors_keep_their_kind_and_data() {
        let mut info = LlmErrorInfo::new(LlmErrorKind::ContextTooLong, "too long");
        info.status = Some(400);
        info.provider_type = Some("invalid_request_error".into());
        info.provider_code = Some("context_length_exceeded".into());
        info.request_id = Some("req_1".into());
        for error in [LlmError::new(LlmErrorKind::Transient, "slow"), LlmError::new(LlmErrorKind::Other, "bad"), info.into()] {
            let line = serde_json::to_value(RecordedError::from(error.info())).unwrap();
            let back: LlmError = serde_json::from_value::<RecordedError>(line.clone()).unwrap().into();
            assert_eq!(back, error, "{line}");
        }
        assert_eq!(
            serde_json::to_value(RecordedError::from(LlmError::new(LlmErrorKind::Transient, "m").info())).unwrap(),
            json!({"kind": "transient", "message": "m"})
        );
        // Lines recorded before kinds existed.
        let old: RecordedError = serde_json::from_value(json!({"kind": "permanent", "message": "m"})).unwrap();
        assert_eq!(LlmErrorInfo::from(old), LlmErrorInfo::new(LlmErrorKind::Other, "m"));
        let old: RecordedError = serde_json::from_value(json!({"kind": "transient", "message": "m"})).unwrap();
        assert!(LlmErrorInfo::from(old).is_transient());
    }
}
