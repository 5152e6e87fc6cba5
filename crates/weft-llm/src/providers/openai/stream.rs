//! Streamed chat completions: the server-sent events of `chat.completion.chunk`s assembled into
//! one answer, text handed on as it arrives. A stream that ends before the answer is complete
//! (no `finish_reason`, no `[DONE]`) is an error, never an answer.

use serde_json::{Map, Value as Json};
use weft_guard::Secrets;

use super::wire::{arguments, error_text, excerpt, usage};
use crate::{ChatResponse, ToolCall, Usage};

/// A streamed answer being assembled.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    /// Bytes of a line not complete yet.
    pending: Vec<u8>,
    text: String,
    refusal: String,
    /// Tool calls by their index in the answer: id, name, the arguments' text so far.
    calls: Vec<(Option<String>, String, String)>,
    usage: Option<Usage>,
    /// A choice said why it finished.
    finished: bool,
    /// `data: [DONE]` came.
    done: bool,
}

impl Stream {
    /// Reads `bytes` of the event stream; each piece of text goes to `on_delta`. An event that
    /// is not JSON, or that reports an error, fails the stream.
    pub(crate) fn feed(&mut self, bytes: &[u8], on_delta: &mut (dyn FnMut(&str) + Send), secrets: &Secrets) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line, on_delta, secrets)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], on_delta: &mut (dyn FnMut(&str) + Send), secrets: &Secrets) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        // Comments (`: keep-alive`), `event:` and `id:` fields and blank lines carry nothing.
        let Some(data) = text.trim_end_matches(['\r', '\n']).strip_prefix("data:") else { return Ok(()) };
        let data = data.trim_start();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Json =
            serde_json::from_str(data).map_err(|e| format!("a streamed chunk is not JSON ({e}): {}", excerpt(data.as_bytes(), secrets)))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(format!("the stream reported an error: {}", error_text(error).unwrap_or_else(|| error.to_string())));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(Some(u)));
        }
        let Some(choice) = chunk.get("choices").and_then(Json::as_array).and_then(|c| c.first()) else { return Ok(()) };
        if let Some(delta) = choice.get("delta") {
            if let Some(piece) = delta.get("content").and_then(Json::as_str).filter(|p| !p.is_empty()) {
                self.text.push_str(piece);
                on_delta(piece);
            }
            if let Some(piece) = delta.get("refusal").and_then(Json::as_str) {
                self.refusal.push_str(piece);
            }
            for (position, call) in delta.get("tool_calls").and_then(Json::as_array).into_iter().flatten().enumerate() {
                let index = call.get("index").and_then(Json::as_u64).map_or(position, |i| usize::try_from(i).unwrap_or(usize::MAX));
                if index > self.calls.len() + 1024 {
                    return Err(format!("a streamed tool call has index {index}, far past the calls so far"));
                }
                while self.calls.len() <= index {
                    self.calls.push((None, String::new(), String::new()));
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call.get("id").and_then(Json::as_str) {
                    slot.0 = Some(id.to_owned());
                }
                let function = call.get("function");
                if let Some(name) = function.and_then(|f| f.get("name")).and_then(Json::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(args) = function.and_then(|f| f.get("arguments")).and_then(Json::as_str) {
                    slot.2.push_str(args);
                }
            }
        }
        if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
            self.finished = true;
        }
        Ok(())
    }

    /// The answer, once the stream ended; an error when it ended before the answer was
    /// complete.
    pub(crate) fn finish(mut self, secrets: &Secrets) -> Result<ChatResponse, String> {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.line(&last, &mut |_| {}, secrets)?;
        }
        if !self.done && !self.finished {
            return Err(format!(
                "the stream ended before the answer was complete (no finish_reason and no [DONE] after {} characters of text)",
                self.text.chars().count()
            ));
        }
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, (id, name, args)) in self.calls.into_iter().enumerate() {
            if name.is_empty() {
                return Err(format!("streamed tool call {index} has no function name"));
            }
            let id = id.unwrap_or_else(|| format!("call_{index}"));
            tool_calls.push(ToolCall { id, name, arguments: arguments(Some(&Json::String(args))) });
        }
        let text = if self.text.is_empty() { self.refusal } else { self.text };
        Ok(ChatResponse { text, tool_calls, usage: self.usage.unwrap_or_default() })
    }
}

/// What a streamed request adds to the body: `stream: true`, and usage in the final chunk.
pub(crate) fn streaming_body(mut body: Json) -> Json {
    if let Json::Object(m) = &mut body {
        m.insert("stream".into(), Json::Bool(true));
        let mut options = Map::new();
        options.insert("include_usage".into(), Json::Bool(true));
        m.insert("stream_options".into(), Json::Object(options));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(stream: &mut Stream, text: &str, seen: &mut Vec<String>) -> Result<(), String> {
        // Byte by byte: a line split anywhere still reads whole.
        for b in text.as_bytes() {
            stream.feed(std::slice::from_ref(b), &mut |d| seen.push(d.to_owned()), &Secrets::default())?;
        }
        Ok(())
    }

    #[test]
    fn text_and_tool_call_deltas_are_assembled_with_the_final_usage() {
        let events = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"ci\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\": \\\"Bern\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut stream = Stream::default();
        let mut seen = Vec::new();
        feed_all(&mut stream, events, &mut seen).unwrap();
        assert_eq!(seen, ["Hel", "lo"]);
        let answer = stream.finish(&Secrets::default()).unwrap();
        assert_eq!(answer.text, "Hello");
        assert_eq!(
            answer.tool_calls,
            vec![ToolCall { id: "c1".into(), name: "get".into(), arguments: serde_json::json!({"city": "Bern"}) }]
        );
        assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (7, 3));
    }

    #[test]
    fn a_stream_cut_before_the_end_is_an_error_and_an_error_event_fails_it() {
        let mut stream = Stream::default();
        feed_all(&mut stream, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hal\"}}]}\n\n", &mut Vec::new()).unwrap();
        let error = stream.finish(&Secrets::default()).unwrap_err();
        assert!(error.contains("the stream ended before the answer was complete"), "{error}");
        let mut stream = Stream::default();
        let error = feed_all(&mut stream, "data: {\"error\":{\"message\":\"overloaded\"}}\n", &mut Vec::new()).unwrap_err();
        assert!(error.contains("overloaded"), "{error}");
        let error = feed_all(&mut Stream::default(), "data: {not json\n", &mut Vec::new()).unwrap_err();
        assert!(error.contains("not JSON"), "{error}");
    }
}
