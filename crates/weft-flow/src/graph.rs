//! Mermaid flowcharts of flows (`weft graph`).
//!
//! [`mermaid`] draws a `flowchart TD` whose text cannot be broken by what the document names
//! things:
//!
//! * Node ids are generated (`n0`, `n1`, ... in drawing order) and subgraph ids too (`s0`,
//!   `s1`, ...), so a node named `end`, `subgraph` or `x[y]` is only ever label text.
//! * Every label is a double-quoted string in which only letters, digits, spaces and
//!   `_ - . , / ( ) + = * ' ! ? @ ^ ~` appear as themselves. `"` is written `#quot;` and every
//!   other ASCII character (`#`, `<`, `>`, `&`, `[`, `]`, `{`, `}`, `|`, `:`, `;`, `%`, `` ` ``,
//!   `$`, `\`, control characters...) as a Mermaid entity code `#<decimal>;`, as are non-ASCII
//!   whitespace and control characters and the two characters Mermaid uses internally for its
//!   own entity encoding (`ﬂ`, `¶`). Other non-ASCII text is kept as is.
//! * A node's label is its name and its type on a second line (`"generate<br/>LlmNode"`); the
//!   `<br/>` is the only markup the chart emits.
//!
//! Shapes: StartNode and EndNode are stadiums (`(["..."])`), BranchingNode a rhombus
//! (`{"..."}`), nodes that hold subflows a subroutine box (`[["..."]]`), every other node a
//! rectangle (`["..."]`). A document whose root is not a flow (an agent, a tool...) is one
//! rectangle.
//!
//! Edges: a control edge is `a --> b`, labelled with its branch (`a -->|"SMALL"| b`) unless the
//! branch is `next` and the source node has no other branch. With [`GraphOptions::data`], each
//! data edge is a dotted arrow labelled `output → input` (`a -.->|"user_info → user_info"| b`).
//! A flow with `data_flow_connections: null` wires by name at run time and has no edges to draw.
//!
//! Subflows: ParallelFlowNode, ExtendedParallelFlowNode and the map nodes (MapNode,
//! ParallelMapNode, ExtendedMapNode, ExtendedParallelMapNode) are always expanded; FlowNode,
//! CatchExceptionNode, PluginRetryNode and PluginCatchExceptionNode only with
//! [`GraphOptions::expand`]. An expanded node stays an ordinary node of its flow (its control
//! edges are untouched); next to it comes a subgraph titled `name (Type)` holding one nested
//! subgraph per subflow, titled the same way, with that subflow's nodes and edges. A dotted
//! open link (`a -.- b`, no arrow head, no label) joins the node to the start node of each of
//! its subflows. Every drawing of a subflow gets fresh node ids, so a subflow used twice is
//! drawn twice. A subflow that contains itself (only in an invalid document) is drawn as one
//! node where it recurs; beyond 64 levels of nesting, or once 20 000 nodes are drawn, nodes are
//! no longer expanded.
//!
//! Edges whose endpoint is missing from the flow's `nodes` (invalid documents) are still drawn:
//! the endpoint is declared where the edge is. The output only depends on the document, so the
//! same document always gives the same text.

use crate::Flow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use weft_spec::{CompId, Component, Spec};

/// Options for [`mermaid`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// Draw data edges too (dotted, labelled `output → input`).
    pub data: bool,
    /// Expand FlowNode subflows (and those of CatchExceptionNode, PluginRetryNode and
    /// PluginCatchExceptionNode) as subgraphs.
    pub expand: bool,
}

/// Nesting levels of subgraphs beyond which nodes are no longer expanded.
const MAX_DEPTH: usize = 64;

/// Drawn nodes beyond which nodes are no longer expanded (a document sharing subflows can
/// otherwise ask for exponentially many drawings).
const MAX_NODES: usize = 20_000;

/// A Mermaid flowchart (`flowchart TD`) of the flow (see the module documentation for the
/// layout and the escaping of labels).
pub fn mermaid(flow: &Flow, options: GraphOptions) -> String {
    let spec = flow.spec();
    let mut chart = Chart { flow, spec, options, out: String::from("flowchart TD\n"), nodes: 0, subgraphs: 0, stack: Vec::new() };
    let root = spec.root;
    if is_flow(spec.get(root)) {
        chart.draw_flow(root, 1);
    } else {
        chart.declare(root, 1);
    }
    chart.out
}

/// The chart being written.
struct Chart<'a> {
    flow: &'a Flow,
    spec: &'a Spec,
    options: GraphOptions,
    out: String,
    /// Node ids handed out so far.
    nodes: usize,
    /// Subgraph ids handed out so far.
    subgraphs: usize,
    /// The flows being drawn, outermost first.
    stack: Vec<CompId>,
}

impl Chart<'_> {
    /// Writes one line at nesting level `depth`.
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Declares a new drawing of node `c` and returns its id.
    fn declare(&mut self, c: CompId, depth: usize) -> String {
        let comp = self.spec.get(c);
        let id = format!("n{}", self.nodes);
        self.nodes += 1;
        let mut label = String::new();
        if !comp.name.is_empty() {
            label.push_str(&escape(&comp.name));
            label.push_str("<br/>");
        }
        label.push_str(&escape(comp.ty.name));
        let (open, close) = self.shape(c, comp);
        self.line(depth, &format!("{id}{open}\"{label}\"{close}"));
        id
    }

    /// The opening and closing brackets of a node's shape.
    fn shape(&self, c: CompId, comp: &Component) -> (&'static str, &'static str) {
        if comp.is("StartNode") || comp.is("EndNode") {
            ("([", "])")
        } else if comp.is("BranchingNode") {
            ("{", "}")
        } else if self.held(c).is_some() {
            ("[[", "]]")
        } else {
            ("[", "]")
        }
    }

    /// The subflows a node is drawn with, if it is expanded.
    fn held(&self, c: CompId) -> Option<Vec<CompId>> {
        let (flows, only_expanded) = crate::node::held_flows(self.spec, c)?;
        (!only_expanded || self.options.expand).then_some(flows)
    }

    /// Draws flow `f` (nodes, edges, expanded nodes) at `depth`, and returns the id of its start
    /// node (or of its first node when it has no drawn start node).
    fn draw_flow(&mut self, f: CompId, depth: usize) -> Option<String> {
        self.stack.push(f);
        let model = self.flow.model();
        let empty = crate::node::FlowGraph::default();
        let graph = model.flow(f).unwrap_or(&empty);
        let mut ids: HashMap<CompId, String> = HashMap::new();
        let mut order = Vec::new();
        for &n in &graph.nodes {
            if let Entry::Vacant(slot) = ids.entry(n) {
                slot.insert(self.declare(n, depth));
                order.push(n);
            }
        }
        for e in &graph.control {
            let a = self.id_in(&mut ids, e.from, depth);
            let b = self.id_in(&mut ids, e.to, depth);
            let only_next = self.flow.io(e.from).branches.iter().all(|b| b == "next");
            if e.branch == "next" && only_next {
                self.line(depth, &format!("{a} --> {b}"));
            } else {
                self.line(depth, &format!("{a} -->|\"{}\"| {b}", escape(&e.branch)));
            }
        }
        if self.options.data {
            let named = graph.data.iter().flatten().map(|e| (e.source, e.output.as_str(), e.destination, e.input.as_str()));
            let unnamed = graph.unnamed_data.iter().map(|&(source, destination)| (source, "?", destination, "?"));
            for (source, output, destination, input) in named.chain(unnamed) {
                let a = self.id_in(&mut ids, source, depth);
                let b = self.id_in(&mut ids, destination, depth);
                self.line(depth, &format!("{a} -.->|\"{} → {}\"| {b}", escape(output), escape(input)));
            }
        }
        for &n in &order {
            if let Some(id) = ids.get(&n) {
                let id = id.clone();
                self.draw_held(n, &id, depth);
            }
        }
        self.stack.pop();
        let start = graph.start.and_then(|s| ids.get(&s));
        start.or_else(|| order.first().and_then(|n| ids.get(n))).cloned()
    }

    /// The id of node `c` in the flow being drawn, declaring it there if the flow's `nodes` do
    /// not list it.
    fn id_in(&mut self, ids: &mut HashMap<CompId, String>, c: CompId, depth: usize) -> String {
        if let Some(id) = ids.get(&c) {
            return id.clone();
        }
        let id = self.declare(c, depth);
        ids.insert(c, id.clone());
        id
    }

    /// Draws the subflows of node `n` (drawn as `id`), if it is expanded: a subgraph for the
    /// node holding one subgraph per subflow, then the links from the node to each subflow.
    fn draw_held(&mut self, n: CompId, id: &str, depth: usize) {
        let comp = self.spec.get(n);
        let Some(subflows) = self.held(n) else {
            return;
        };
        if subflows.is_empty() || depth > MAX_DEPTH || self.nodes > MAX_NODES {
            return;
        }
        let outer = self.subgraph_id();
        self.line(depth, &format!("subgraph {outer} [\"{}\"]", title(comp)));
        let mut entries = Vec::new();
        for f in subflows {
            let inner = self.subgraph_id();
            let sub = self.spec.get(f);
            self.line(depth + 1, &format!("subgraph {inner} [\"{}\"]", title(sub)));
            let entry =
                if is_flow(sub) && !self.stack.contains(&f) { self.draw_flow(f, depth + 2) } else { Some(self.declare(f, depth + 2)) };
            self.line(depth + 1, "end");
            entries.extend(entry);
        }
        self.line(depth, "end");
        for entry in entries {
            self.line(depth, &format!("{id} -.- {entry}"));
        }
    }

    /// A new subgraph id.
    fn subgraph_id(&mut self) -> String {
        let id = format!("s{}", self.subgraphs);
        self.subgraphs += 1;
        id
    }
}

/// Whether a component is drawn as a flow.
fn is_flow(comp: &Component) -> bool {
    comp.is("Flow") || comp.is("ExtendedFlow")
}

/// A subgraph title: `name (Type)`, escaped.
fn title(comp: &Component) -> String {
    if comp.name.is_empty() { escape(comp.ty.name) } else { format!("{} ({})", escape(&comp.name), escape(comp.ty.name)) }
}

/// Escapes text for a double-quoted Mermaid label (see the module documentation).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("#quot;"),
            'a'..='z'
            | 'A'..='Z'
            | '0'..='9'
            | ' '
            | '_'
            | '-'
            | '.'
            | ','
            | '/'
            | '('
            | ')'
            | '+'
            | '='
            | '*'
            | '\''
            | '!'
            | '?'
            | '@'
            | '^'
            | '~' => out.push(ch),
            c if c.is_ascii() || c.is_control() || c.is_whitespace() || c == 'ﬂ' || c == '¶' => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_everything_mermaid_reads() {
        assert_eq!(escape("a\"b"), "a#quot;b");
        assert_eq!(escape("x[y]"), "x#91;y#93;");
        assert_eq!(escape("end"), "end");
        assert_eq!(escape("#quot; <b>&|%:;`$\\"), "#35;quot#59; #60;b#62;#38;#124;#37;#58;#59;#96;#36;#92;");
        assert_eq!(escape("é\n\u{2028}ﬂ¶"), "é#10;#8232;#64258;#182;");
    }
}
