//! `weft graph`: the Mermaid text is parsed back and checked against the model. Every node,
//! control edge, branch label and subgraph membership of the model appears in the chart (and
//! every data edge with `data`), nothing else does, and no name can break out of its label.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use weft_flow::graph::{GraphOptions, mermaid};
use weft_flow::{Flow, LoadOptions, Source, check_source};
use weft_spec::{CompId, Spec};

// ---------------------------------------------------------------------------------------------
// A parser for the subset of Mermaid that `mermaid` writes.

#[derive(Debug)]
struct Node {
    /// The label's lines, unescaped.
    label: Vec<String>,
    /// The opening bracket of the shape.
    shape: &'static str,
    /// The innermost subgraph the node is declared in.
    parent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `a --> b`
    Control,
    /// `a -.-> b`
    Data,
    /// `a -.- b`: an expanded node to the start of one of its subflows.
    Link,
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    kind: Kind,
    label: Option<String>,
}

#[derive(Debug)]
struct Subgraph {
    title: String,
    parent: Option<String>,
}

#[derive(Debug, Default)]
struct Chart {
    nodes: BTreeMap<String, Node>,
    edges: Vec<Edge>,
    subgraphs: BTreeMap<String, Subgraph>,
    /// Subgraph ids in the order they open.
    subgraph_order: Vec<String>,
}

impl Chart {
    fn edges(&self, kind: Kind) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.kind == kind)
    }
}

/// Characters a label may hold as themselves (besides non-ASCII text).
fn safe(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || " _-.,/()+=*'!?@^~".contains(c)
        || !(c.is_ascii() || c.is_control() || c.is_whitespace() || c == 'ﬂ' || c == '¶')
}

/// Unescapes the text of a quoted label, checking that it holds only safe characters and
/// entity codes.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '#' {
            let end = rest.find(';').unwrap_or_else(|| panic!("unterminated entity in {text:?}"));
            let code = &rest[1..end];
            let ch = if code == "quot" {
                '"'
            } else {
                char::from_u32(code.parse().unwrap_or_else(|_| panic!("bad entity {code:?} in {text:?}"))).expect("a char")
            };
            assert!(!safe(ch), "{ch:?} needlessly escaped in {text:?}");
            out.push(ch);
            rest = &rest[end + 1..];
        } else {
            assert!(safe(c), "unescaped {c:?} in label {text:?}");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Reads `"text"` at the start of `s`, returning the raw text and what follows.
fn quoted(s: &str) -> (&str, &str) {
    let s = s.strip_prefix('"').unwrap_or_else(|| panic!("expected a quoted string at {s:?}"));
    let end = s.find('"').unwrap_or_else(|| panic!("unterminated string at {s:?}"));
    (&s[..end], &s[end + 1..])
}

fn is_id(s: &str, prefix: char) -> bool {
    s.strip_prefix(prefix).is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn parse(text: &str) -> Chart {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart TD"));
    assert!(text.ends_with('\n'));
    let mut chart = Chart::default();
    let mut stack: Vec<String> = Vec::new();
    for line in lines {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let depth = if t == "end" { stack.len().saturating_sub(1) } else { stack.len() };
        assert_eq!(indent, 4 * (depth + 1), "indentation of {line:?}");
        let parent = stack.last().cloned();
        if t == "end" {
            stack.pop().expect("an open subgraph");
        } else if let Some(rest) = t.strip_prefix("subgraph ") {
            let (id, rest) = rest.split_once(' ').expect("subgraph id and title");
            assert!(is_id(id, 's'), "subgraph id {id:?}");
            let (title, rest) = quoted(rest.strip_prefix('[').expect("["));
            assert_eq!(rest, "]", "{line:?}");
            let sub = Subgraph { title: unescape(title), parent };
            assert!(chart.subgraphs.insert(id.to_owned(), sub).is_none(), "subgraph {id} twice");
            chart.subgraph_order.push(id.to_owned());
            stack.push(id.to_owned());
        } else if let Some((from, rest)) = t.split_once(' ').filter(|(from, _)| from.bytes().all(|b| b.is_ascii_alphanumeric())) {
            let arrow_end = rest.find(['|', ' ']).expect("an arrow");
            let (arrow, rest) = rest.split_at(arrow_end);
            let (label, to) = match rest.strip_prefix('|') {
                Some(rest) => {
                    let (label, after) = quoted(rest);
                    (Some(unescape(label)), after.strip_prefix("| ").expect("| after an edge label").to_owned())
                }
                None => (None, rest[1..].to_owned()),
            };
            let kind = match arrow {
                "-->" => Kind::Control,
                "-.->" => Kind::Data,
                "-.-" => Kind::Link,
                _ => panic!("unknown arrow in {line:?}"),
            };
            assert!(is_id(from, 'n') && is_id(&to, 'n'), "{line:?}");
            for end in [from, to.as_str()] {
                assert!(chart.nodes.contains_key(end), "edge to undeclared node in {line:?}");
            }
            if kind == Kind::Link {
                assert!(label.is_none());
            }
            if kind == Kind::Data {
                assert!(label.is_some());
            }
            chart.edges.push(Edge { from: from.to_owned(), to, kind, label });
        } else {
            let split = t.find(|c: char| !c.is_ascii_alphanumeric()).expect("a shape");
            let (id, rest) = t.split_at(split);
            assert!(is_id(id, 'n'), "node id {id:?}");
            let (shape, close) = [("([", "])"), ("[[", "]]"), ("[", "]"), ("{", "}")]
                .into_iter()
                .find(|(open, _)| rest.starts_with(&format!("{open}\"")))
                .unwrap_or_else(|| panic!("unknown shape in {line:?}"));
            let (label, rest) = quoted(&rest[shape.len()..]);
            assert_eq!(rest, close, "{line:?}");
            let label = label.split("<br/>").map(unescape).collect();
            assert!(chart.nodes.insert(id.to_owned(), Node { label, shape, parent }).is_none(), "node {id} declared twice");
        }
    }
    assert!(stack.is_empty(), "unclosed subgraph");
    chart
}

// ---------------------------------------------------------------------------------------------
// The model, checked against the chart.

/// Walks the model as the chart should draw it, ticking off what it finds.
struct Checker<'a> {
    spec: &'a Spec,
    flow: &'a Flow,
    chart: &'a Chart,
    options: GraphOptions,
    nodes: usize,
    control: usize,
    data: usize,
    links: usize,
    subgraphs: usize,
}

impl<'a> Checker<'a> {
    fn run(flow: &'a Flow, chart: &'a Chart, options: GraphOptions) {
        let spec = flow.spec();
        let mut c = Checker { spec, flow, chart, options, nodes: 0, control: 0, data: 0, links: 0, subgraphs: 0 };
        c.flow(spec.root, None);
        assert_eq!(c.nodes, chart.nodes.len(), "node count");
        assert_eq!(c.control, chart.edges(Kind::Control).count(), "control edge count");
        assert_eq!(c.data, chart.edges(Kind::Data).count(), "data edge count");
        assert_eq!(c.links, chart.edges(Kind::Link).count(), "link count");
        assert_eq!(c.subgraphs, chart.subgraphs.len(), "subgraph count");
    }

    fn held(&self, c: CompId) -> Option<&'static str> {
        match self.spec.get(c).ty.name {
            "ParallelFlowNode" => Some("subflows"),
            "ExtendedParallelFlowNode" => Some("flows"),
            "MapNode" | "ParallelMapNode" => Some("subflow"),
            "ExtendedMapNode" | "ExtendedParallelMapNode" => Some("flow"),
            "FlowNode" | "CatchExceptionNode" if self.options.expand => Some("subflow"),
            "PluginRetryNode" | "PluginCatchExceptionNode" if self.options.expand => Some("flow"),
            _ => None,
        }
    }

    /// The node declared in `scope` for component `c`.
    fn node(&self, c: CompId, scope: Option<&str>) -> String {
        let comp = self.spec.get(c);
        let want = if comp.name.is_empty() { vec![comp.ty.name.to_owned()] } else { vec![comp.name.clone(), comp.ty.name.to_owned()] };
        let found: Vec<&String> =
            self.chart.nodes.iter().filter(|(_, n)| n.parent.as_deref() == scope && n.label == want).map(|(id, _)| id).collect();
        assert_eq!(found.len(), 1, "{} in {scope:?}: {found:?}", comp.label());
        let id = found[0].clone();
        let shape = match comp.ty.name {
            "StartNode" | "EndNode" => "([",
            "BranchingNode" => "{",
            _ if self.held(c).is_some() => "[[",
            _ => "[",
        };
        assert_eq!(self.chart.nodes[&id].shape, shape, "shape of {}", comp.label());
        id
    }

    /// Checks flow `f` drawn in subgraph `scope`; returns the node ids.
    fn flow(&mut self, f: CompId, scope: Option<&str>) -> HashMap<CompId, String> {
        let flow = self.spec.get(f);
        let mut ids = HashMap::new();
        if !(flow.is("Flow") || flow.is("ExtendedFlow")) {
            ids.insert(f, self.node(f, scope));
            self.nodes += 1;
            return ids;
        }
        let mut order = Vec::new();
        for n in flow.comp_list("nodes") {
            if let Entry::Vacant(slot) = ids.entry(n) {
                slot.insert(self.node(n, scope));
                order.push(n);
                self.nodes += 1;
            }
        }
        for e in flow.comp_list("control_flow_connections") {
            let edge = self.spec.get(e);
            let from = &ids[&edge.comp_field("from_node").expect("from_node")];
            let to = &ids[&edge.comp_field("to_node").expect("to_node")];
            let branch = edge.str_field("from_branch").unwrap_or("next");
            // `next` goes unlabelled when the node has no other branch.
            let from_branches = &self.flow.io(edge.comp_field("from_node").expect("from_node")).branches;
            let label = (branch != "next" || from_branches.iter().any(|b| b != "next")).then_some(branch);
            let found = self.chart.edges(Kind::Control).any(|c| &c.from == from && &c.to == to && c.label.as_deref() == label);
            assert!(found, "control edge {} ({branch}) missing", edge.name);
            self.control += 1;
        }
        if self.options.data {
            for e in flow.comp_list("data_flow_connections") {
                let edge = self.spec.get(e);
                let from = &ids[&edge.comp_field("source_node").expect("source_node")];
                let to = &ids[&edge.comp_field("destination_node").expect("destination_node")];
                let label = format!(
                    "{} → {}",
                    edge.str_field("source_output").expect("output"),
                    edge.str_field("destination_input").expect("input")
                );
                let found = self.chart.edges(Kind::Data).any(|c| &c.from == from && &c.to == to && c.label.as_deref() == Some(&label));
                assert!(found, "data edge {} ({label}) missing", edge.name);
                self.data += 1;
            }
        }
        for n in order {
            let Some(field) = self.held(n) else { continue };
            let holder = self.spec.get(n);
            let subflows = holder.comp_list(field);
            assert!(!subflows.is_empty());
            let title = format!("{} ({})", holder.name, holder.ty.name);
            let outer: Vec<&String> =
                self.chart.subgraphs.iter().filter(|(_, s)| s.parent.as_deref() == scope && s.title == title).map(|(id, _)| id).collect();
            assert_eq!(outer.len(), 1, "subgraph {title:?} in {scope:?}");
            let outer = outer[0].clone();
            self.subgraphs += 1;
            let inner: Vec<String> = self
                .chart
                .subgraph_order
                .iter()
                .filter(|id| self.chart.subgraphs[*id].parent.as_deref() == Some(&outer))
                .cloned()
                .collect();
            assert_eq!(inner.len(), subflows.len(), "subflows of {title:?}");
            assert!(self.chart.nodes.values().all(|node| node.parent.as_deref() != Some(&outer)), "{title:?} holds only subgraphs");
            for (sub, sid) in subflows.into_iter().zip(inner) {
                let sub_comp = self.spec.get(sub);
                assert_eq!(self.chart.subgraphs[&sid].title, format!("{} ({})", sub_comp.name, sub_comp.ty.name));
                self.subgraphs += 1;
                let sub_ids = self.flow(sub, Some(&sid));
                let start = sub_comp.comp_field("start_node").unwrap_or(sub);
                let (from, to) = (&ids[&n], &sub_ids[&start]);
                assert!(self.chart.edges(Kind::Link).any(|l| &l.from == from && &l.to == to), "link from {title:?} to {}", sub_comp.name);
                self.links += 1;
            }
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// The documents.

fn corpus(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/agentspec/corpus")).join(name)
}

fn load_path(path: &Path) -> Flow {
    match Flow::load(path, &LoadOptions::default()) {
        Ok(loaded) => loaded.flow,
        Err(e) => panic!("{} does not load: {e}", path.display()),
    }
}

fn seed() -> Flow {
    load_path(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flows/seed_parallel_marketing.json")))
}

fn odd() -> Flow {
    match Flow::from_json(include_str!("fixtures/graph/odd_names.json")) {
        Ok(loaded) => {
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            loaded.flow
        }
        Err(e) => panic!("the fixture does not load: {e}"),
    }
}

const ALL: [GraphOptions; 4] = [
    GraphOptions { data: false, expand: false },
    GraphOptions { data: true, expand: false },
    GraphOptions { data: false, expand: true },
    GraphOptions { data: true, expand: true },
];

/// Draws with every option, parses back, and checks against the model.
fn check(flow: &Flow) -> Vec<Chart> {
    ALL.iter()
        .map(|&options| {
            let text = mermaid(flow, options);
            assert_eq!(text, mermaid(flow, options), "deterministic");
            let chart = parse(&text);
            Checker::run(flow, &chart, options);
            chart
        })
        .collect()
}

fn labels(chart: &Chart) -> Vec<Vec<String>> {
    chart.nodes.values().map(|n| n.label.clone()).collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn seed_example() {
    let flow = seed();
    let charts = check(&flow);
    // One subgraph for the parallel node, holding four subflows.
    assert_eq!(charts[0].subgraphs.len(), 5);
    assert_eq!(charts[0].edges(Kind::Link).count(), 4);
    assert_eq!(charts[1].edges(Kind::Data).count(), 18);
    assert!(labels(&charts[0]).contains(&vec!["parallel_flow_step".to_owned(), "ExtendedParallelFlowNode".to_owned()]));
}

#[test]
fn seed_snapshot() {
    insta::assert_snapshot!("seed_parallel_marketing", mermaid(&seed(), GraphOptions::default()));
}

#[test]
fn odd_names_stay_labels() {
    let flow = odd();
    let charts = check(&flow);
    let all = labels(&charts[0]);
    for name in ["end", "a\"b", "x[y]", "subgraph", "%%{init: {}}%% style n0 fill:#f00; click n0 call x()"] {
        assert!(all.iter().any(|l| l[0] == name), "{name:?} in {all:?}");
    }
    let branches: Vec<&str> = charts[0].edges(Kind::Control).filter_map(|e| e.label.as_deref()).collect();
    for branch in ["go|left", "say \"hi\" #quot; <b>&amp;</b>", "end", "[par]", "default"] {
        assert!(branches.contains(&branch), "{branch:?} in {branches:?}");
    }
    // The subflow drawn twice: two subgraphs, distinct nodes.
    let inner: Vec<&Subgraph> = charts[0].subgraphs.values().filter(|s| s.title == "x[y] (Flow)").collect();
    assert_eq!(inner.len(), 2);
    assert_eq!(charts[0].nodes.values().filter(|n| n.label == ["end", "EndNode"]).count(), 3);
}

#[test]
fn parallel_flow_node() {
    let charts = check(&load_path(&corpus("valid/p_parallel_flow_node.json")));
    assert_eq!(charts[0].subgraphs.len(), 5);
}

#[test]
fn map_nodes() {
    let charts = check(&load_path(&corpus("valid/w_map_variants.json")));
    assert_eq!(charts[0].subgraphs.len(), 4);
    let charts = check(&load_path(&corpus("valid/p_map_node_append.json")));
    assert_eq!(charts[0].subgraphs.len(), 2);
    check(&load_path(&corpus("valid/p_parallel_map_node.json")));
}

#[test]
fn flow_node_expanded_on_request() {
    let flow = load_path(&corpus("valid/p_flow_node_branches.json"));
    let charts = check(&flow);
    assert!(charts[0].subgraphs.is_empty());
    assert!(!charts[2].subgraphs.is_empty());
    let plain = mermaid(&flow, GraphOptions::default());
    assert!(!plain.contains("[[") && plain.contains(r#"-->|"SMALL"|"#));
    // CatchExceptionNode and the WayFlow control nodes expand the same way.
    for name in ["valid/p_catch_exception_node.json", "valid/w_plugin_control_nodes.json"] {
        let charts = check(&load_path(&corpus(name)));
        assert!(charts[0].subgraphs.is_empty() && !charts[2].subgraphs.is_empty(), "{name}");
    }
}

#[test]
fn root_that_is_not_a_flow() {
    let flow = load_path(&corpus("valid/p_agent_tools_toplevel.json"));
    let root = flow.spec().root();
    let text = mermaid(&flow, GraphOptions { data: true, expand: true });
    let chart = parse(&text);
    assert_eq!(chart.nodes.len(), 1);
    assert!(chart.edges.is_empty());
    let node = chart.nodes.values().next().expect("one node");
    assert_eq!(node.label, [root.name.clone(), root.ty.name.to_owned()]);
}

/// Every document of the corpus, valid or not, draws without panicking into text that parses.
#[test]
fn whole_corpus_draws() {
    let mut drawn = 0;
    for dir in ["valid", "invalid", "runtime_invalid"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus(dir)).expect("corpus dir").map(|e| e.expect("entry").path()).collect();
        paths.sort();
        for path in paths {
            let Ok(source) = Source::from_bytes(path.display().to_string(), std::fs::read(&path).expect("read")) else {
                continue;
            };
            let (Some(flow), diagnostics) = check_source(&source, &LoadOptions::default()) else {
                continue;
            };
            for options in ALL {
                let chart = parse(&mermaid(&flow, options));
                if dir == "valid" && !diagnostics.has_errors() && !path.to_string_lossy().contains(".refs.") {
                    Checker::run(&flow, &chart, options);
                }
            }
            drawn += 1;
        }
    }
    assert!(drawn > 50, "only {drawn} documents drawn");
}

/// A map holding a flow with a parallel node and a FlowNode, drawn twice (by a MapNode and a
/// ParallelMapNode), the parallel node holding the same leaf flow twice.
#[test]
fn nested_subflows() {
    let flow = match Flow::from_json(include_str!("fixtures/graph/nested.json")) {
        Ok(loaded) => loaded.flow,
        Err(e) => panic!("the fixture does not load: {e}"),
    };
    let charts = check(&flow);
    // Two maps, each holding middle_flow, whose parallel node holds leaf_flow twice.
    assert_eq!(charts[0].subgraphs.len(), 2 * (2 + 3));
    assert_eq!(charts[0].nodes.values().filter(|n| n.label[0] == "leaf_start").count(), 4);
    // With --expand the FlowNode holds leaf_flow once more in each drawing of middle_flow.
    assert_eq!(charts[2].subgraphs.len(), 2 * (2 + 3 + 2));
    assert_eq!(charts[2].nodes.values().filter(|n| n.label[0] == "leaf_start").count(), 6);
}

/// Documents with errors still draw: flows that refer to themselves, edges to nodes the flow
/// does not list, edges with missing fields, subflows that are not flows.
#[test]
fn invalid_documents_still_draw() {
    let doc = r#"{
      "component_type": "Flow", "id": "loop", "name": "loop",
      "start_node": {"$component_ref": "s"},
      "nodes": [{"$component_ref": "s"}, {"$component_ref": "m"}, {"$component_ref": "p"}],
      "control_flow_connections": [
        {"component_type": "ControlFlowEdge", "id": "e1", "name": "e1", "from_node": {"$component_ref": "s"}, "to_node": {"$component_ref": "m"}},
        {"component_type": "ControlFlowEdge", "id": "e2", "name": "e2", "from_node": {"$component_ref": "m"}, "to_node": {"$component_ref": "stray"}},
        {"component_type": "ControlFlowEdge", "id": "e3", "name": "e3", "from_node": {"$component_ref": "m"}}
      ],
      "data_flow_connections": [
        {"component_type": "DataFlowEdge", "id": "d1", "name": "d1", "source_node": {"$component_ref": "s"}, "destination_node": {"$component_ref": "stray"}}
      ],
      "$referenced_components": {
        "s": {"component_type": "StartNode", "id": "s", "name": "start"},
        "m": {"component_type": "MapNode", "id": "m", "name": "map", "subflow": {"$component_ref": "inner"}},
        "inner": {"component_type": "Flow", "id": "inner", "name": "inner", "start_node": {"$component_ref": "is"},
          "nodes": [{"$component_ref": "is"}, {"$component_ref": "im"}], "control_flow_connections": []},
        "is": {"component_type": "StartNode", "id": "is", "name": "inner_start"},
        "im": {"component_type": "MapNode", "id": "im", "name": "inner_map", "subflow": {"$component_ref": "inner"}},
        "p": {"component_type": "ParallelFlowNode", "id": "p", "name": "par", "subflows": [{"$component_ref": "loop"}, {"component_type": "LlmNode", "id": "x", "name": "not a flow"}]},
        "stray": {"component_type": "EndNode", "id": "stray", "name": "stray"}
      }
    }"#;
    let (flow, diagnostics) = check_source(&Source::new("<loop>", doc, weft_flow::Format::Json), &LoadOptions::default());
    assert!(diagnostics.has_errors());
    let flow = flow.expect("a model despite the errors");
    for options in ALL {
        let text = mermaid(&flow, options);
        let chart = parse(&text);
        assert!(chart.nodes.values().any(|n| n.label == ["stray", "EndNode"]), "{text}");
        assert_eq!(chart.edges(Kind::Data).count(), usize::from(options.data));
    }
}
