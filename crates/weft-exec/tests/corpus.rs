//! Every valid corpus document either runs to `Finished` on the simulated model (with native
//! tools bound for its server tools, generated inputs and answers where it asks), or fails at
//! start with "not supported yet" only. The documents the issue lists must finish.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod common;

use serde_json::{Map, Value as Json, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_exec::{InputRequest, Plan, RunOptions, Status};
use weft_llm::http::{HttpClient, HttpOptions, Rewrites};
use weft_llm::simulated::generate;
use weft_testkit::api::{ApiReply, ApiServer};

const MUST_FINISH: &[&str] = &[
    "p_llm_flow_minimal.json",
    "p_llm_flow_minimal.yaml",
    "p_loop_input_until_confirmed.json",
    "p_loop_input_until_confirmed.yaml",
    "p_tool_node_server.json",
    "p_tool_node_client.json",
    "p_flow_node_branches.json",
    "p_input_output_messages.json",
    "p_llm_openai.json",
    "p_llm_openai_compatible.json",
    "p_llm_ollama.json",
    "p_llm_oci_genai_principals.json",
    "p_llm_gemini_aistudio.json",
    "p_llm_gemini_vertex.json",
    "p_llm_dbms_vector_chain.json",
    "p_explicit_latest_version.json",
    "p_property_types.json",
    "w_branching_loop.json",
    "w_extended_tool_and_llm_nodes.json",
    "w_prompt_template_object.json",
    "w_prompt_template_array.json",
    "w_prompt_template_system_user.json",
    "w_prompt_template_json_mode.json",
    // Parallel branches and maps (issue 4).
    "p_parallel_flow_node.json",
    "seed_parallel_marketing.json",
    "p_map_node_append.json",
    "p_parallel_map_node.json",
    "w_map_step.json",
    "w_map_variants.json",
    "w_prompt_template_orchestrator.json",
    // Flow variables, regex, extract and chat history nodes (issue 17).
    "w_flow_variables.json",
    "w_text_processing_nodes.json",
    "w_constants_and_chat_history.json",
    "p_catch_exception_node.json",
    // ApiNode and RemoteTool (issue 16), against a local server.
    "p_api_node.json",
    "p_tool_node_remote.json",
    "p_agent_node_with_tools.json",
    "p_agent_tools_toplevel.json",
    "p_agent_tools_toplevel.yaml",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid")
}

enum Result_ {
    Finished(Map<String, Json>),
    Unsupported(String),
    /// Still asking after 20 answers: an agent that talks to the user and has no outputs never
    /// finishes (AGENTS.md 2.7); the run waits, resumable, as WayFlow's does.
    Waiting(String),
}

async fn run(path: &Path, http: &Arc<HttpClient>, mcp: &weft_exec::McpOptions) -> Result_ {
    let flow = common::load(path);
    let options = RunOptions::simulated().with_tools(common::tools_for(&flow)).with_http(http.clone()).with_mcp(mcp.clone());
    let plan = match Plan::new(&flow, options) {
        Ok(p) => p,
        Err(e) => {
            for p in &e.problems() {
                // A stdio MCP server is started only with the user's permission (tests/mcp.rs).
                assert!(
                    p.starts_with("not supported yet: ") || p.contains("--allow-stdio-mcp"),
                    "{}: unexpected start error: {p}",
                    path.display()
                );
            }
            return Result_::Unsupported(e.to_string());
        }
    };
    let inputs: Map<String, Json> = plan.inputs().iter().map(|p| (p.title().to_owned(), generate(&p.schema, 1))).collect();
    let mut run = plan.start(inputs).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Answers that leave the corpus loops: "yes" confirms, "open sesame" is a password.
    for round in 0..20 {
        match run.execute().await {
            Ok(Status::Finished { outputs, .. }) => return Result_::Finished(outputs),
            Ok(Status::InputRequired { request }) => {
                let answer = match &request {
                    InputRequest::Message { .. } => Json::String(if round % 2 == 0 { "yes" } else { "open sesame" }.into()),
                    InputRequest::Tool { tool, .. } => {
                        let spec = plan.flow().spec();
                        let c = spec.components.iter().position(|c| c.is("ClientTool") && &c.name == tool).expect("the client tool");
                        let schemas: Vec<Json> = plan.flow().io(c).outputs.iter().map(|p| p.schema.clone()).collect();
                        common::generated_outputs(&schemas)
                    }
                    InputRequest::ClientTools { calls, .. } => {
                        let spec = plan.flow().spec();
                        let mut by_id = Map::new();
                        for call in calls {
                            let c =
                                spec.components.iter().position(|c| c.is("ClientTool") && c.name == call.tool).expect("the client tool");
                            let schemas: Vec<Json> = plan.flow().io(c).outputs.iter().map(|p| p.schema.clone()).collect();
                            by_id.insert(call.tool_request_id.clone(), common::generated_outputs(&schemas));
                        }
                        Json::Object(by_id)
                    }
                    InputRequest::Confirmation { .. } => Json::String("approve".into()),
                };
                run.submit(answer).unwrap();
            }
            Err(e) => panic!("{}: run failed: {e}", path.display()),
        }
    }
    Result_::Waiting(format!("{:?}", run.pending().values().next()))
}

#[tokio::test]
async fn valid_documents_run_or_say_not_supported() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".refs.json") && matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "yaml")))
        .collect();
    entries.sort();
    assert!(entries.len() >= 60, "corpus not found at {}", corpus().display());
    let mut finished = Vec::new();
    let mut report = String::new();
    // Every HTTP request of an ApiNode, RemoteTool or A2A agent goes to a local server, never the
    // internet.
    let server = ApiServer::start().await;
    server.fallback([ApiReply::json(200, json!({"response": "ok", "temperature": 21.5, "summary": "sunny"}))]);
    // The A2A agent's remote agent answers with a message.
    let message = json!({"kind": "message", "role": "agent", "messageId": "m", "parts": [{"kind": "text", "text": "ok"}]});
    server.route("POST", "/agents.example.com/researcher/", [ApiReply::json(200, json!({"jsonrpc": "2.0", "id": "1", "result": message}))]);
    let http = Arc::new(
        HttpClient::new(HttpOptions {
            rewrites: Rewrites::new(vec![
                ("https://".to_owned(), format!("{}/", server.url())),
                ("http://".to_owned(), format!("{}/", server.url())),
            ])
            .unwrap(),
            egress: weft_guard::EgressPolicy::parse(&["127.0.0.1"]).unwrap(),
            ..HttpOptions::default()
        })
        .unwrap(),
    );
    // Every MCP server the documents name is the reference server, on 127.0.0.1.
    let (mcp_http, mcp_sse) = (weft_testkit::mcp::McpProcess::start("http", None), weft_testkit::mcp::McpProcess::start("sse", None));
    let mcp = weft_exec::McpOptions {
        rewrites: Rewrites::new(vec![
            ("https://mcp.example.com/sse".to_owned(), format!("{}/sse", mcp_sse.base())),
            ("https://mcp.example.com".to_owned(), mcp_http.base()),
            ("https://crm.example.com".to_owned(), mcp_http.base()),
        ])
        .unwrap(),
        egress: weft_guard::EgressPolicy::parse(&["127.0.0.1"]).unwrap(),
        ..weft_exec::McpOptions::default()
    };
    for path in &entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match run(path, &http, &mcp).await {
            Result_::Finished(outputs) => {
                report.push_str(&format!("{name}: finished {}\n", Json::Object(outputs)));
                finished.push(name);
            }
            Result_::Unsupported(why) => report.push_str(&format!("{name}: {}\n", why.replace('\n', " | "))),
            Result_::Waiting(request) => report.push_str(&format!("{name}: still waiting after 20 answers: {request}\n")),
        }
    }
    for must in MUST_FINISH {
        assert!(finished.iter().any(|f| f == must), "{must} did not finish:\n{report}");
    }
    eprintln!("{report}");
}
