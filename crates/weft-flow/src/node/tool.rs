//! Tool nodes: ToolNode and ExtendedToolNode, calling a ServerTool (bound by name when a run is
//! planned), a ClientTool (answered by the caller) or a RemoteTool (an HTTP request, unless a
//! tool is bound to its name).

use super::{Fields, HttpCall, Lowered, Lowerer, NodeKind, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, map_titles};
use serde_json::Value as Json;
use std::sync::Arc;
use weft_spec::{Code, CompId};

/// The types of the family.
pub const TYPES: &[&str] = &["ToolNode", "ExtendedToolNode"];

/// Who runs a node's tool.
#[derive(Debug, Clone)]
pub enum ToolKind {
    /// A ServerTool: an implementation bound by name (tools file, registry).
    Server,
    /// A ClientTool: the run waits for the caller's answer.
    Client,
    /// A RemoteTool: its request, unless an implementation is bound to its name.
    Remote(Arc<HttpCall>),
    /// An MCPTool: a call of the server's tool, unless an implementation is bound to its name.
    Mcp(Arc<super::McpTool>),
}

/// A tool node.
#[derive(Debug, Clone)]
pub struct ToolNode {
    /// The tool component.
    pub tool: CompId,
    /// The tool's name (what a registry binds).
    pub name: String,
    /// Who runs it.
    pub kind: ToolKind,
    /// `raise_exceptions`: whether a tool error fails the run (else its text is the output).
    pub raise_exceptions: bool,
    /// Output titles inside the node (after `output_mapping`).
    pub outputs: Vec<String>,
    /// The output schemas, in the same order (a client's answer is checked against them).
    pub output_schemas: Vec<Json>,
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    match lw.comp(n).ty.name {
        "ToolNode" | "ExtendedToolNode" => lower(lw, n).map(|t| Lowered::Kind(NodeKind::Tool(Box::new(t)))),
        _ => Some(Lowered::NotRunnable),
    }
}

fn lower(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<ToolNode> {
    let f = lw.fields(n);
    let tool = f.comp("tool")?;
    let tc = lw.comp(tool);
    let kind = match tc.ty.name {
        "ServerTool" => ToolKind::Server,
        "ClientTool" => ToolKind::Client,
        "RemoteTool" => ToolKind::Remote(lw.http_call(tool)?),
        ty if super::mcp::is_tool(ty) => ToolKind::Mcp(super::mcp::tool(lw, n, tool)?),
        other => {
            lw.block(n, tool, tc.pointer.clone(), format!("{other} (in a ToolNode)"));
            return None;
        }
    };
    let out_map = f.mapping("output_mapping");
    let io = lw.io(n);
    Some(ToolNode {
        tool,
        name: tc.name.clone(),
        kind,
        raise_exceptions: f.bool_where_present("raise_exceptions", true),
        outputs: io.outputs.iter().map(|p| super::internal_name(&out_map, p.title())).collect(),
        output_schemas: io.outputs.iter().map(|p| p.schema.clone()).collect(),
    })
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let f = Fields::of(inf.spec().get(c));
    let mut out = Inferred { branches: next(), ..Inferred::default() };
    if let Some(tool) = f.comp("tool") {
        let io = inf.io(tool);
        out.inputs = Some(map_titles(&f.mapping("input_mapping"), io.inputs));
        out.outputs = Some(map_titles(&f.mapping("output_mapping"), io.outputs));
    }
    Some(out)
}

pub(super) fn check(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    if !Fields::of(comp).bool_where_present("raise_exceptions", true) {
        let outputs = inf.io(c).outputs;
        if outputs.len() > 1 {
            let titles: Vec<&str> = outputs.iter().map(|p| p.title()).collect();
            cx.report(
                comp,
                Code::ComponentRule,
                format!("{}/raise_exceptions", comp.pointer),
                format!(
                    "{}: `raise_exceptions: false` puts a tool error's text into the tool's single output, but this tool has {} outputs ({})",
                    comp.label(),
                    outputs.len(),
                    titles.join(", ")
                ),
                Some("set `raise_exceptions: true`, or give the tool a single output".into()),
            );
        }
    }
}
