//! HTTP requests (AGENTS.md section 7): the ApiNode ([`ApiOp`]) and the RemoteTool
//! ([`RemoteTool`], called by tool nodes and agents as a tool whose call is a request).
//!
//! A request is rendered from the node's inputs (or the tool call's arguments) as WayFlow
//! renders it ([`HttpOp::request`]): every template of `url`, `http_method`, `data`,
//! `query_params`, `headers` and `sensitive_headers`; the URL's placeholders encoded as Python's
//! `quote_plus` does; `query_params` replacing the URL's query; the body as JSON (with
//! `Content-Type: application/json`), form-encoded under a form content type, or raw text. The
//! rendered URL is then checked (normalized as WayFlow normalizes it, against the
//! `url_allow_list` when there is one, and `http` only when the written URL is) before anything
//! is sent: a refused URL fails the node with an error naming `url_allow_list` and the URL.
//!
//! The answer becomes outputs as WayFlow's converter makes them: an ApiNode's output `o` is the
//! JSON body's member `o` (the default output `response` is the member `response`), its default
//! when the member is missing or null, `http_status_code` the status and `http_response` (a
//! string output) the body's text; a RemoteTool's result is the body's text. A non-2xx answer
//! fails the node (WayFlow's `error executing ... request to ...: status, body`). Weft reads the
//! body as JSON only when an output needs a member of it (WayFlow parses it for any declared
//! output, so a non-JSON body fails even an ApiNode whose only output is `http_response`).

use super::{At, mismatched_call};
use crate::check::{Checked, Place};
use crate::context::RunContext;
use crate::effect::{Effect, EffectResult, HttpCall as HttpEffect};
use crate::error::RunErrorKind;
use crate::event::Event;
use crate::plan::Compiler;
use crate::sched::{Res, Sched, excerpt, get_frame, node_error};
use crate::state::{Call, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{ApiNode, HttpCall, SensitiveHeaders};
use weft_guard::Secrets;
use weft_guard::allow_list::{UrlRefused, check_url};
use weft_guard::egress::without_credentials;
use weft_llm::http::{HttpError, HttpMeta, HttpRequest, HttpResponse, HttpRetry, HttpSend};
use weft_llm::retry::RetryPolicy;
use weft_spec::Property;
use weft_tools::ToolError;

/// Why a request cannot be sent: the message, and the exception class WayFlow raises for it
/// (for catch nodes).
pub(crate) struct Refused {
    pub(crate) message: String,
    pub(crate) class: &'static str,
}

impl Refused {
    fn value(message: String) -> Refused {
        Refused { message, class: "ValueError" }
    }
}

/// The exception class WayFlow's HTTP client raises when no answer came.
fn transport_class(kind: weft_llm::http::HttpErrorKind) -> &'static str {
    use weft_llm::http::HttpErrorKind as K;
    match kind {
        K::Connect | K::Tls => "ConnectError",
        K::Timeout => "ReadTimeout",
        K::Transport => "ReadError",
        K::Invalid => "ValueError",
        K::Refused | K::TooLarge | K::Unavailable => "Exception",
    }
}

/// A compiled request with the client that sends it (bound at plan time).
pub(crate) struct HttpOp {
    call: Arc<HttpCall>,
    retry: HttpRetry,
    client: Arc<dyn HttpSend>,
    secrets: Arc<Secrets>,
}

impl HttpOp {
    /// The request of an ApiNode or RemoteTool, its `retry_policy` read.
    pub(crate) fn plan(c: &mut Compiler<'_>, call: &Arc<HttpCall>) -> Option<HttpOp> {
        let retry = match &call.retry_policy {
            None => HttpRetry::Legacy,
            Some(policy) => match RetryPolicy::from_agent_spec(policy) {
                Ok(policy) => HttpRetry::Policy(policy),
                Err(problem) => {
                    let comp = c.comp(call.comp);
                    c.report(format!("{} at {}/retry_policy: {problem}", comp.label(), crate::plan::pointer(comp)));
                    return None;
                }
            },
        };
        Some(HttpOp { call: Arc::clone(call), retry, client: Arc::clone(&c.inputs.http), secrets: Arc::clone(&c.inputs.secrets) })
    }

    /// The request rendered from `vars`, checked; the error says why nothing can be sent.
    pub(crate) fn request(&self, vars: &Map<String, Json>, meta: HttpMeta) -> Result<HttpRequest, Refused> {
        let call = &*self.call;
        let render_error = |field: &str, e: weft_prompt::TemplateError| Refused {
            message: format!("cannot render `{field}`: {e}"),
            class: e.wayflow_exception_name(),
        };
        // The URL's placeholders, encoded (WayFlow's `sanitize_url_param`).
        let mut url_vars = Map::new();
        for name in call.url.variables() {
            let Some(value) = vars.get(name) else { continue };
            let encoded = match value {
                Json::String(s) => quote_plus(s),
                Json::Number(_) | Json::Bool(_) => weft_prompt::py_str(value),
                other => {
                    return Err(Refused::value(format!(
                        "cannot put `{name}` in the URL: it is {}, and only text, numbers and booleans go in a URL",
                        weft_spec::text::type_name(other, weft_spec::text::TypeWords::Json)
                    )));
                }
            };
            url_vars.insert(name.to_owned(), Json::String(encoded));
        }
        let mut url = call.url.render(&url_vars).map_err(|e| render_error("url", e))?;
        let method = call.method.render(vars).map_err(|e| render_error("http_method", e))?.trim().to_ascii_uppercase();
        let mut headers: Vec<(String, String)> = match &call.headers {
            Some(t) => pairs(t.render(vars).map_err(|e| render_error("headers", e))?),
            None => Vec::new(),
        };
        let sensitive_headers = match &call.sensitive_headers {
            SensitiveHeaders::None => Vec::new(),
            SensitiveHeaders::Given(t) => pairs(t.render(vars).map_err(|e| render_error("sensitive_headers", e))?),
            SensitiveHeaders::Missing { key } => {
                return Err(Refused::value(format!(
                    "its `sensitive_headers` are a reference ({key}) whose value was not given, so the request cannot be sent: give it with --secret {key}='{{\"Authorization\": \"...\"}}' (a JSON object of header names to values) or the environment variable WEFT_SECRET_{}",
                    key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect::<String>()
                )));
            }
        };
        if let Some(query) = &call.query {
            let rendered = query.render(vars).map_err(|e| render_error("query_params", e))?;
            let encoded = form_encode(&rendered);
            if !encoded.is_empty() {
                // The client's `params` replace the URL's own query (WayFlow, observed).
                let end = url.find(['?', '#']).unwrap_or(url.len());
                url.truncate(end);
                url.push('?');
                url.push_str(&encoded);
            }
        }
        let body = match &call.data {
            None => None,
            Some(t) => {
                let rendered = t.render(vars).map_err(|e| render_error("data", e))?;
                let given_type = header(&headers, "content-type").or_else(|| header(&sensitive_headers, "content-type")).map(str::to_owned);
                let form = given_type.as_deref().is_some_and(|t| t.contains("application/x-www-form-urlencoded"));
                let (body, json) = body(rendered, form);
                if json && given_type.is_none() {
                    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
                }
                Some(body)
            }
        };
        let shown = without_credentials(&url);
        let scheme_http = url.trim_start().get(..5).is_some_and(|s| s.eq_ignore_ascii_case("http:"));
        if scheme_http && !call.http_allowed {
            return Err(Refused::value(format!(
                "refused to send to {shown}: the URL is plain http but the url written in the document is not (\"usage of unsecure http URL is not allowed\", as WayFlow says); write http:// in the document's url if plain HTTP is meant"
            )));
        }
        check_url(&url, call.allow_list.as_ref()).map_err(|refused| {
            Refused::value(match refused {
                UrlRefused::NotAllowed { .. } => format!("refused to send to {shown}, before any request: {refused}"),
                UrlRefused::Malformed { .. } => format!("refused to send to {shown}: {refused}"),
            })
        })?;
        Ok(HttpRequest { method, url, headers, sensitive_headers, body, retry: self.retry.clone(), meta })
    }

    /// The error of a non-2xx answer: WayFlow's text (the method and url as written), then where
    /// the request went and how often it was tried.
    pub(crate) fn status_error(&self, request: &HttpRequest, response: &HttpResponse) -> String {
        let call = &*self.call;
        let mut secrets = (*self.secrets).clone();
        secrets.extend(request.sensitive_headers.iter().map(|(_, v)| v.clone()).filter(|v| !v.is_empty()));
        let mut message = format!(
            "error executing {} request to {}: {}, {}",
            call.method_source,
            call.url_source,
            response.status,
            excerpt(&response.body, &secrets)
        );
        message.push_str(&format!(" (requested {}", without_credentials(&request.url)));
        if let Some(to) = &response.rewritten {
            message.push_str(&format!(", sent to {to} by --http-rewrite"));
        }
        message.push_str(&match response.attempts {
            0 | 1 => ", 1 attempt)".to_owned(),
            n => format!(", {n} attempts)"),
        });
        if (300..400).contains(&response.status) {
            message.push_str(&format!(
                "; redirects are not followed (as in WayFlow){}: give the final URL in the document, or --http-rewrite it",
                response.location.as_ref().map(|l| format!(", the server points to {l}")).unwrap_or_default()
            ));
        } else if self.retry == HttpRetry::Legacy && response.status >= 500 {
            message.push_str("; without a retry_policy a failed request is tried 3 times at once (WayFlow's legacy loop): give the node a retry_policy to wait between attempts");
        }
        message
    }
}

/// An event for a request that went out (or could not): what was asked, where it went, how it
/// ended.
pub(crate) fn report(run: &RunContext, path: &str, request: &HttpRequest, result: &Result<HttpResponse, HttpError>, took_ms: f64) {
    if !run.listening() {
        return;
    }
    let (status, attempts, rewritten, error) = match result {
        Ok(r) => (Some(r.status), r.attempts, r.rewritten.clone(), None),
        Err(e) => (None, e.attempts, e.rewritten.clone(), Some(e.message.clone())),
    };
    let event = Event::HttpRequest {
        node: request.meta.node.clone(),
        method: request.method.clone(),
        url: without_credentials(&request.url),
        rewritten,
        status,
        attempts,
        duration_ms: took_ms,
        error,
    };
    run.emit(path, &event);
}

/// An ApiNode.
pub(crate) struct ApiOp {
    http: HttpOp,
    /// Its outputs, under their internal titles.
    outputs: Vec<Property>,
}

impl ApiOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, api: &ApiNode) -> Option<ApiOp> {
        Some(ApiOp { http: HttpOp::plan(c, &api.call)?, outputs: api.outputs.clone() })
    }

    /// Renders and checks the request, and sends it.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        s.start_clock(state, at.fid);
        let effect = self.effect(state, at, &vars)?;
        s.perform(state, at.fid, at.node, Call::Http {}, effect);
        Ok(())
    }

    fn effect(&self, state: &RunState, at: At<'_>, vars: &Map<String, Json>) -> Res<Effect> {
        let frame = get_frame(state, at.fid)?;
        let meta = HttpMeta {
            node: at.node.name.clone(),
            node_path: format!("{}/{}", frame.path, at.node.name),
            batch_index: None,
            volatile: Vec::new(),
        };
        let request =
            self.http.request(vars, meta).map_err(|r| node_error(RunErrorKind::Http, at.node, &r.message).with_exception(r.class))?;
        Ok(Effect::Http(Box::new(HttpEffect { client: Arc::clone(&self.http.client), request })))
    }

    /// The answer: its outputs, or why the node fails.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let (Call::Http {}, EffectResult::Http(result)) = (call, result) else { return Err(mismatched_call()) };
        let response = result.map_err(|e| node_error(RunErrorKind::Http, at.node, &e.message).with_exception(transport_class(e.kind)))?;
        if !response.is_success() {
            // The request is rendered again for the message (the inputs have not changed).
            let vars = s.node_inputs(state, at.fid, at.node)?;
            let frame = get_frame(state, at.fid)?;
            let meta = HttpMeta {
                node: at.node.name.clone(),
                node_path: format!("{}/{}", frame.path, at.node.name),
                batch_index: None,
                volatile: Vec::new(),
            };
            let request =
                self.http.request(&vars, meta).map_err(|r| node_error(RunErrorKind::Http, at.node, &r.message).with_exception(r.class))?;
            return Err(
                node_error(RunErrorKind::Http, at.node, &self.http.status_error(&request, &response)).with_exception("RuntimeError")
            );
        }
        let outputs = self.outputs(at, &response, &s.plan.secrets)?;
        s.stop_clock(state, at.fid);
        s.done(state, at, outputs)
    }

    /// The outputs of a 2xx answer (see the module docs).
    fn outputs(&self, at: At<'_>, response: &HttpResponse, secrets: &Secrets) -> Res<Map<String, Json>> {
        let special = |p: &Property| p.title() == "http_status_code" || (p.title() == "http_response" && is_string(p));
        let needs_body = self.outputs.iter().any(|p| !special(p));
        let parsed = if needs_body {
            let names: Vec<&str> = self.outputs.iter().filter(|p| !special(p)).map(Property::title).collect();
            Some(serde_json::from_str::<Json>(&response.body).map_err(|e| {
                node_error(
                    RunErrorKind::Http,
                    at.node,
                    &format!(
                        "the response body is not JSON ({e}): {}; the outputs {} are read from it as its members (WayFlow's `.{}`); declare a string output `http_response` to get the body as text",
                        excerpt(&response.body, secrets),
                        names.join(", "),
                        names.first().copied().unwrap_or_default()
                    ),
                )
                .with_exception("JSONDecodeError")
            })?)
        } else {
            None
        };
        let mut out = Map::new();
        for p in &self.outputs {
            let title = p.title();
            let value = if title == "http_status_code" {
                Some(Json::from(response.status))
            } else if title == "http_response" && is_string(p) {
                Some(Json::String(response.body.clone()))
            } else {
                match &parsed {
                    Some(Json::Object(members)) => members.get(title).filter(|v| !v.is_null()).cloned(),
                    Some(Json::Null) | None => None,
                    Some(other) => {
                        return Err(node_error(
                            RunErrorKind::Http,
                            at.node,
                            &format!(
                                "the response body is {}, not a JSON object, so output \"{title}\" (its member `.{title}`) cannot be read from it; declare a string output `http_response` to get the body as text",
                                weft_spec::text::type_name(other, weft_spec::text::TypeWords::Json)
                            ),
                        )
                        .with_exception("ValueError"));
                    }
                }
            };
            // A missing member gives the output's default; without one the output is absent.
            if let Some(value) = value.or_else(|| p.default().cloned()) {
                out.insert(title.to_owned(), weft_prompt::cast_to_input(value, &p.schema));
            }
        }
        Ok(out)
    }

    /// The request again after a resume, from the node's inputs.
    pub(crate) fn remake(&self, state: &RunState, at: At<'_>, call: &Call, vars: Map<String, Json>) -> Res<Effect> {
        let Call::Http {} = call else { return Err(mismatched_call()) };
        self.effect(state, at, &vars)
    }

    /// Busy with its request.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } if matches!(**call, Call::Http {}) => Ok(()),
            other => place.unexpected(other),
        }
    }
}

/// A RemoteTool, as a tool node or an agent calls it: its request rendered from the call's
/// arguments; the body's text is its result, a non-2xx answer its error.
pub(crate) struct RemoteTool {
    http: HttpOp,
    /// The calling node's name (the scope of its exchanges in a recording).
    node: String,
}

impl RemoteTool {
    pub(crate) fn plan(c: &mut Compiler<'_>, node: &str, call: &Arc<HttpCall>) -> Option<RemoteTool> {
        Some(RemoteTool { http: HttpOp::plan(c, call)?, node: node.to_owned() })
    }

    /// Calls the tool: renders, checks and sends the request, reporting its event at `path`.
    pub(crate) async fn call(&self, args: Map<String, Json>, run: &RunContext, path: &str) -> Result<Json, ToolError> {
        let batch_index = run.index.and_then(|i| u64::try_from(i).ok());
        let meta = HttpMeta { node: self.node.clone(), node_path: format!("{path}/{}", self.node), batch_index, volatile: Vec::new() };
        let request = self.http.request(&args, meta).map_err(|r| ToolError::Failed { message: r.message })?;
        let t = std::time::Instant::now();
        let result = self.http.client.send(&request).await;
        report(run, path, &request, &result, t.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(response) if response.is_success() => Ok(Json::String(response.body)),
            Ok(response) => Err(ToolError::Failed { message: self.http.status_error(&request, &response) }),
            Err(e) => Err(ToolError::Failed { message: e.message }),
        }
    }
}

/// A rendered object of headers as name and value pairs, in order (values are strings: the
/// loader refused others, and a template renders text).
fn pairs(rendered: Json) -> Vec<(String, String)> {
    match rendered {
        Json::Object(members) => members
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => s,
                    other => weft_prompt::py_str(&other),
                };
                (k, v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A header's value, its name in any case.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The body of rendered `data`, and whether it is JSON (`Content-Type: application/json` unless
/// the document gives a content type): an object or a string holding JSON is sent as JSON (form-
/// encoded under a form content type), another string as it is, any other value as JSON.
fn body(rendered: Json, form: bool) -> (String, bool) {
    let value = match rendered {
        Json::String(text) => match serde_json::from_str::<Json>(&text) {
            Ok(value) => value,
            Err(_) => return (text, false),
        },
        other => other,
    };
    match (&value, form) {
        (Json::Object(_), true) => (form_encode(&value), false),
        (_, true) => (value.to_string(), false),
        (_, false) => (value.to_string(), true),
    }
}

/// `a=v+w&b=1`: an object's members form-encoded as WayFlow's HTTP client encodes them (`true`
/// and `false` in lower case, `null` empty, a list as the key repeated).
fn form_encode(value: &Json) -> String {
    let Json::Object(members) = value else { return String::new() };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Null => String::new(),
        other => weft_prompt::py_str(other),
    };
    for (k, v) in members {
        match v {
            Json::Array(items) => {
                for item in items {
                    out.append_pair(k, &text(item));
                }
            }
            other => {
                out.append_pair(k, &text(other));
            }
        }
    }
    out.finish()
}

/// Python's `urllib.parse.quote_plus(text)`: every byte but `A-Z a-z 0-9 _ . - ~` percent-encoded,
/// space as `+`.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Whether a property is typed `string`.
fn is_string(p: &Property) -> bool {
    p.schema.get("type").and_then(Json::as_str) == Some("string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_values_are_encoded_as_quote_plus() {
        assert_eq!(quote_plus("New York/NY é?&"), "New+York%2FNY+%C3%A9%3F%26");
        assert_eq!(quote_plus("a_b.c-d~e"), "a_b.c-d~e");
    }

    #[test]
    fn bodies_and_forms() {
        assert_eq!(body(json!({"city": "Oslo", "n": 3}), false), ("{\"city\":\"Oslo\",\"n\":3}".to_owned(), true));
        assert_eq!(body(json!("{\"a\": 1}"), false), ("{\"a\":1}".to_owned(), true));
        assert_eq!(body(json!("plain text"), false), ("plain text".to_owned(), false));
        assert_eq!(body(json!([1, 2]), false), ("[1,2]".to_owned(), true));
        assert_eq!(body(json!({"a": "v w", "b": true, "c": [1, 2], "d": null}), true), ("a=v+w&b=true&c=1&c=2&d=".to_owned(), false));
    }
}
