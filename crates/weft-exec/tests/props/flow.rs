//! Generated programs: a shape drawn by proptest ([`Shape`]), resolved into a [`Program`] (every
//! step numbered, every read bound to a value in scope), and written as an Agent Spec document
//! ([`Program::document`]).
//!
//! A program is a sequence of steps; each step leaves one value (a string, or a list of strings
//! for a map) that later steps of the same sequence may read:
//!
//! | step | nodes |
//! |---|---|
//! | `Llm` | LlmNode `n<k>`, prompt `p\|k\|{{ctx}}\|{{i0}}...` |
//! | `Tpl` | PluginTemplateNode `n<k>`, `t<k><{{i0}}\|...>` |
//! | `Input` | InputMessageNode `n<k>`, message `ask\|k\|{{ctx}}\|{{i0}}` (a pause) |
//! | `Branch` | LlmNode router `r<k>` (answers `a`, `b` or `c`), BranchingNode `b<k>`, the arms inline, PluginTemplateNode join `j<k>` |
//! | `Loop` | PluginTemplateNodes `li<k>` (`s`) and `lc<k>` (`{{c}}i`, reading its own output), the body inline, BranchingNode `lx<k>` leaving when the counter is `s` + `i` x iterations, else back to `lc<k>` |
//! | `Par` | ParallelFlowNode or ExtendedParallelFlowNode `p<k>` (2 or 3 subflows), join `pj<k>` |
//! | `Map` | LlmNode `l<k>` answering the item list, a map node `m<k>` of one of five kinds over a subflow |
//! | `Sub` | FlowNode `u<k>` |
//!
//! Subflows take `ctx` (a map item, else the caller's ctx) and `arg` (a value of the caller) and
//! return `out` (`out<b>` for parallel branches).

use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;

/// Which parallel node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParKind {
    /// ParallelFlowNode: 20 branches at once.
    Core,
    /// ExtendedParallelFlowNode with `max_workers`.
    Extended(usize),
}

/// Which map node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// MapNode: one item at a time.
    Map,
    /// ParallelMapNode: 20 items at once.
    ParallelMap,
    /// ExtendedParallelMapNode with `max_workers`.
    ExtendedParallel(usize),
    /// ExtendedMapNode, sequential (`parallel_execution` false).
    ExtendedSequential,
    /// ExtendedMapNode with `parallel_execution` and `max_workers`.
    ExtendedConcurrent(usize),
}

impl ParKind {
    /// Branches in flight at once.
    pub fn bound(self) -> usize {
        match self {
            ParKind::Core => weft_exec::DEFAULT_MAX_WORKERS,
            ParKind::Extended(n) => n,
        }
    }
}

impl MapKind {
    /// Items in flight at once.
    pub fn bound(self) -> usize {
        match self {
            MapKind::Map | MapKind::ExtendedSequential => 1,
            MapKind::ParallelMap => weft_exec::DEFAULT_MAX_WORKERS,
            MapKind::ExtendedParallel(n) | MapKind::ExtendedConcurrent(n) => n,
        }
    }

    /// Whether items may run at once (then no step under it may wait for the user).
    pub fn concurrent(self) -> bool {
        !matches!(self, MapKind::Map | MapKind::ExtendedSequential)
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// A step as drawn: reads are picks, resolved modulo what is in scope.
#[derive(Debug, Clone)]
pub enum Shape {
    /// An LLM call reading up to two values.
    Llm(Vec<u8>),
    /// A template reading up to two values.
    Tpl(Vec<u8>),
    /// An input request reading up to one value (a template where the user cannot be asked).
    Input(Vec<u8>),
    /// A router call on a value, then 2 or 3 arms.
    Branch(u8, Vec<Vec<Shape>>),
    /// A body run 1 to 3 times.
    Loop(usize, Vec<Shape>),
    /// Parallel branches, given one value.
    Par(ParKind, u8, Vec<Vec<Shape>>),
    /// A list call reading up to one value, then a map over the list, given one string value.
    Map(MapKind, Vec<u8>, u8, Vec<Shape>),
    /// A subflow, given one value.
    Sub(u8, Vec<Shape>),
}

fn reads(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn par_kind() -> impl Strategy<Value = ParKind> {
    prop_oneof![Just(ParKind::Core), (1usize..=4).prop_map(ParKind::Extended)]
}

fn map_kind() -> impl Strategy<Value = MapKind> {
    prop_oneof![
        6 => Just(MapKind::Map),
        4 => Just(MapKind::ParallelMap),
        2 => (1usize..=4).prop_map(MapKind::ExtendedParallel),
        1 => Just(MapKind::ExtendedSequential),
        1 => (1usize..=4).prop_map(MapKind::ExtendedConcurrent),
    ]
}

fn leaf() -> impl Strategy<Value = Shape> {
    prop_oneof![4 => reads(2).prop_map(Shape::Llm), 2 => reads(2).prop_map(Shape::Tpl), 1 => reads(1).prop_map(Shape::Input)]
}

/// Any step, composite steps nested up to three levels.
pub fn shape() -> impl Strategy<Value = Shape> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        let seq = prop::collection::vec(inner.clone(), 0..=2);
        let seq1 = prop::collection::vec(inner, 1..=2);
        prop_oneof![
            3 => leaf(),
            1 => (any::<u8>(), prop::collection::vec(seq.clone(), 2..=3)).prop_map(|(on, arms)| Shape::Branch(on, arms)),
            1 => (1usize..=3, seq.clone()).prop_map(|(n, body)| Shape::Loop(n, body)),
            1 => (par_kind(), any::<u8>(), prop::collection::vec(seq.clone(), 2..=3)).prop_map(|(k, a, b)| Shape::Par(k, a, b)),
            2 => (map_kind(), reads(1), any::<u8>(), seq1).prop_map(|(k, r, a, body)| Shape::Map(k, r, a, body)),
            1 => (any::<u8>(), seq).prop_map(|(a, body)| Shape::Sub(a, body)),
        ]
    })
}

/// A chain of 2 or 3 maps, each body with steps around the inner map; the outermost level's
/// steps around it are returned with it.
fn nested_maps() -> impl Strategy<Value = Vec<Shape>> {
    let small = || prop::collection::vec(leaf(), 0..=1);
    let level = move || (map_kind(), reads(1), any::<u8>(), small(), small());
    (level(), level(), prop::option::of(level()), prop::collection::vec(leaf(), 1..=2)).prop_map(|(outer, middle, inner, core)| {
        let mut body = core;
        for (kind, r, arg, before, after) in [inner, Some(middle), Some(outer)].into_iter().flatten() {
            let mut around = before;
            around.push(Shape::Map(kind, r, arg, body));
            around.extend(after);
            body = around;
        }
        body
    })
}

/// A program's top-level steps: half of them contain a chain of maps nested two or three
/// levels.
pub fn program() -> impl Strategy<Value = Vec<Shape>> {
    let steps = prop::collection::vec(shape(), 1..=3);
    prop_oneof![
        1 => steps,
        1 => (prop::collection::vec(shape(), 0..=2), nested_maps(), prop::collection::vec(shape(), 0..=1)).prop_map(|(mut a, m, b)| {
            a.extend(m);
            a.extend(b);
            a
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Programs

/// An output of a node: where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// The node's id.
    pub node: String,
    /// The output's title.
    pub output: String,
}

impl Port {
    fn new(node: impl Into<String>, output: &str) -> Port {
        Port { node: node.into(), output: output.to_owned() }
    }
}

/// The type of a step's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A string.
    Str,
    /// A list of strings (a map's collected output).
    List,
}

/// A resolved step.
#[derive(Debug, Clone)]
pub enum Step {
    /// LlmNode `n<id>`.
    Llm { id: u32, ctx: Port, reads: Vec<Port> },
    /// PluginTemplateNode `n<id>`.
    Tpl { id: u32, reads: Vec<Port> },
    /// InputMessageNode `n<id>`.
    Input { id: u32, ctx: Port, reads: Vec<Port> },
    /// Router `r<id>` on `on`, BranchingNode `b<id>`, arms, join `j<id>`.
    Branch { id: u32, ctx: Port, on: Port, arms: Vec<Seq> },
    /// Counter loop `li<id>`, `lc<id>`, body, `lx<id>`.
    Loop { id: u32, iters: usize, body: Seq },
    /// Parallel node `p<id>` and join `pj<id>`.
    Par { id: u32, kind: ParKind, ctx: Port, arg: Port, branches: Vec<Seq> },
    /// List node `l<id>` and map node `m<id>`.
    Map { id: u32, kind: MapKind, ctx: Port, read: Option<Port>, arg: Port, body: Seq },
    /// FlowNode `u<id>`.
    Sub { id: u32, ctx: Port, arg: Port, body: Seq },
}

/// A resolved sequence: its steps, and the value it leaves when it has none.
#[derive(Debug, Clone)]
pub struct Seq {
    /// The steps.
    pub steps: Vec<Step>,
    /// The value of an empty sequence.
    pub entry: Port,
    /// Its type.
    pub entry_ty: Ty,
}

impl Seq {
    /// The value the sequence leaves.
    pub fn value(&self) -> Port {
        self.steps.last().map_or_else(|| self.entry.clone(), Step::value)
    }

    /// The type of that value.
    pub fn ty(&self) -> Ty {
        self.steps.last().map_or(self.entry_ty, Step::ty)
    }
}

impl Step {
    /// The step's number.
    pub fn id(&self) -> u32 {
        match self {
            Step::Llm { id, .. }
            | Step::Tpl { id, .. }
            | Step::Input { id, .. }
            | Step::Branch { id, .. }
            | Step::Loop { id, .. }
            | Step::Par { id, .. }
            | Step::Map { id, .. }
            | Step::Sub { id, .. } => *id,
        }
    }

    /// Where the step's value is read from.
    pub fn value(&self) -> Port {
        match self {
            Step::Llm { id, .. } => Port::new(format!("n{id}"), "v"),
            Step::Tpl { id, .. } => Port::new(format!("n{id}"), "output"),
            Step::Input { id, .. } => Port::new(format!("n{id}"), "user_input"),
            Step::Branch { id, .. } => Port::new(format!("j{id}"), "output"),
            Step::Loop { body, .. } => body.value(),
            Step::Par { id, .. } => Port::new(format!("pj{id}"), "output"),
            Step::Map { id, .. } => Port::new(format!("m{id}"), "collected_out"),
            Step::Sub { id, .. } => Port::new(format!("u{id}"), "out"),
        }
    }

    /// The type of the step's value.
    pub fn ty(&self) -> Ty {
        match self {
            Step::Map { .. } => Ty::List,
            Step::Loop { body, .. } => body.ty(),
            _ => Ty::Str,
        }
    }
}

/// An enclosing fan-out of an LLM node, from the root inwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// Under an item of map `id`.
    Map { id: u32, bound: usize },
    /// In branch `branch` of parallel node `id`.
    Par { id: u32, branch: usize, bound: usize },
}

/// A resolved program and what the model needs to know about it.
#[derive(Debug, Clone)]
pub struct Program {
    /// The root flow's steps.
    pub root: Seq,
    /// For each LLM node's step number (routers and list nodes included), its enclosing
    /// fan-outs.
    pub chains: HashMap<u32, Vec<Enc>>,
    /// Maps nested in maps, at most (1 for a map in no map).
    pub map_depth: usize,
    /// Fan-outs (maps and parallel nodes) nested in fan-outs, at most.
    pub fanout_depth: usize,
}

/// The state of resolving.
struct Resolver {
    next: u32,
    chains: HashMap<u32, Vec<Enc>>,
    map_depth: usize,
    fanout_depth: usize,
}

/// Where a sequence is resolved.
#[derive(Clone)]
struct Scope {
    ctx: Port,
    values: Vec<(Port, Ty)>,
    /// Under a parallel branch or a concurrent map (no input requests).
    parallel: bool,
    chain: Vec<Enc>,
    maps: usize,
}

impl Scope {
    fn pick(&self, p: u8) -> Port {
        self.values[usize::from(p) % self.values.len()].0.clone()
    }

    fn pick_str(&self, p: u8) -> Port {
        let strs: Vec<&Port> = self.values.iter().filter(|(_, t)| *t == Ty::Str).map(|(p, _)| p).collect();
        strs[usize::from(p) % strs.len()].clone()
    }

    /// The scope of a subflow started by `start`.
    fn sub(&self, start: &str, parallel: bool, chain: Vec<Enc>, maps: usize) -> Scope {
        let ctx = Port::new(start, "ctx");
        Scope { values: vec![(ctx.clone(), Ty::Str), (Port::new(start, "arg"), Ty::Str)], ctx, parallel, chain, maps }
    }
}

impl Program {
    /// Resolves a drawn program.
    pub fn resolve(shapes: &[Shape]) -> Program {
        let mut r = Resolver { next: 1, chains: HashMap::new(), map_depth: 0, fanout_depth: 0 };
        let scope = Scope { ctx: Port::new("start", "ctx"), values: Vec::new(), parallel: false, chain: Vec::new(), maps: 0 };
        let mut scope = scope.sub("start", false, Vec::new(), 0);
        let root = r.seq(shapes, &mut scope);
        Program { root, chains: r.chains, map_depth: r.map_depth, fanout_depth: r.fanout_depth }
    }
}

impl Resolver {
    fn id(&mut self) -> u32 {
        self.next += 1;
        self.next - 1
    }

    fn seq(&mut self, shapes: &[Shape], scope: &mut Scope) -> Seq {
        let (entry, entry_ty) = scope.values.last().cloned().unwrap_or((scope.ctx.clone(), Ty::Str));
        let mut steps = Vec::new();
        for s in shapes {
            let step = self.step(s, scope);
            scope.values.push((step.value(), step.ty()));
            steps.push(step);
        }
        Seq { steps, entry, entry_ty }
    }

    fn step(&mut self, shape: &Shape, scope: &Scope) -> Step {
        let id = self.id();
        let reads = |picks: &[u8]| picks.iter().map(|&p| scope.pick(p)).collect::<Vec<_>>();
        match shape {
            Shape::Llm(p) => {
                self.chains.insert(id, scope.chain.clone());
                Step::Llm { id, ctx: scope.ctx.clone(), reads: reads(p) }
            }
            Shape::Tpl(p) => Step::Tpl { id, reads: reads(p) },
            Shape::Input(p) if scope.parallel => Step::Tpl { id, reads: reads(p) },
            Shape::Input(p) => Step::Input { id, ctx: scope.ctx.clone(), reads: reads(p) },
            Shape::Branch(on, arms) => {
                self.chains.insert(id, scope.chain.clone());
                let mut inner = scope.clone();
                inner.values.push((Port::new(format!("r{id}"), "v"), Ty::Str));
                let arms = arms.iter().map(|a| self.seq(a, &mut inner.clone())).collect();
                Step::Branch { id, ctx: scope.ctx.clone(), on: scope.pick(*on), arms }
            }
            Shape::Loop(iters, body) => {
                let mut inner = scope.clone();
                inner.values.push((Port::new(format!("lc{id}"), "output"), Ty::Str));
                let body = self.seq(body, &mut inner);
                Step::Loop { id, iters: *iters, body }
            }
            Shape::Par(kind, arg, branches) => {
                let branches = branches
                    .iter()
                    .enumerate()
                    .map(|(b, shapes)| {
                        let mut chain = scope.chain.clone();
                        chain.push(Enc::Par { id, branch: b, bound: kind.bound() });
                        self.fanout_depth = self.fanout_depth.max(chain.len());
                        let mut inner = scope.sub(&format!("s{id}_{b}"), true, chain, scope.maps);
                        self.seq(shapes, &mut inner)
                    })
                    .collect();
                Step::Par { id, kind: *kind, ctx: scope.ctx.clone(), arg: scope.pick(*arg), branches }
            }
            Shape::Map(kind, read, arg, body) => {
                self.chains.insert(id, scope.chain.clone());
                let mut chain = scope.chain.clone();
                chain.push(Enc::Map { id, bound: kind.bound() });
                self.fanout_depth = self.fanout_depth.max(chain.len());
                self.map_depth = self.map_depth.max(scope.maps + 1);
                let mut inner = scope.sub(&format!("s{id}"), scope.parallel || kind.concurrent(), chain, scope.maps + 1);
                let body = self.seq(body, &mut inner);
                let read = read.first().map(|&p| scope.pick(p));
                Step::Map { id, kind: *kind, ctx: scope.ctx.clone(), read, arg: scope.pick_str(*arg), body }
            }
            Shape::Sub(arg, body) => {
                let mut inner = scope.sub(&format!("s{id}"), scope.parallel, scope.chain.clone(), scope.maps);
                let body = self.seq(body, &mut inner);
                Step::Sub { id, ctx: scope.ctx.clone(), arg: scope.pick(*arg), body }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates (shared with the interpreter, which fills them its own way)

/// The prompt template of LLM node `n<id>` reading `n` values.
pub fn llm_template(id: u32, n: usize) -> String {
    let mut t = format!("p|{id}|{{{{ctx}}}}");
    for i in 0..n {
        t.push_str(&format!("|{{{{i{i}}}}}"));
    }
    t
}

/// The template of PluginTemplateNode `n<id>` reading `n` values.
pub fn tpl_template(id: u32, n: usize) -> String {
    let vars: Vec<String> = (0..n).map(|i| format!("{{{{i{i}}}}}")).collect();
    format!("t{id}<{}>", vars.join("|"))
}

/// The message of InputMessageNode `n<id>` reading `n` values.
pub fn input_template(id: u32, n: usize) -> String {
    let mut t = format!("ask|{id}|{{{{ctx}}}}|");
    for i in 0..n {
        t.push_str(&format!("{{{{i{i}}}}}"));
    }
    t
}

/// The router's prompt of branch `<id>`.
pub fn route_template(id: u32) -> String {
    format!("route|{id}|{{{{ctx}}}}|{{{{i0}}}}")
}

/// The list node's prompt of map `<id>`, reading `n` (0 or 1) values.
pub fn list_template(id: u32, n: usize) -> String {
    let mut t = format!("list|{id}|{{{{ctx}}}}|");
    for i in 0..n {
        t.push_str(&format!("{{{{i{i}}}}}"));
    }
    t
}

/// The join template of branch `<id>`.
pub fn join_template(id: u32) -> String {
    format!("j{id}:{{{{x}}}}")
}

/// The join template of parallel node `<id>` with `n` branches.
pub fn par_join_template(id: u32, n: usize) -> String {
    let vars: Vec<String> = (0..n).map(|b| format!("{{{{o{b}}}}}")).collect();
    format!("pj{id}<{}>", vars.join("|"))
}

/// The loop counter's start value and template.
pub const LOOP_INIT: &str = "s";
/// The loop counter's template: one more `i` per iteration.
pub const LOOP_COUNTER: &str = "{{c}}i";

/// The counter's value after `k` iterations have started.
pub fn counter(k: usize) -> String {
    format!("{LOOP_INIT}{}", "i".repeat(k))
}

// ---------------------------------------------------------------------------------------------
// Documents

const PLUGIN_VERSION: &str = "26.3.1";

fn string(title: &str) -> Json {
    json!({"title": title, "type": "string"})
}

fn string_list(title: &str) -> Json {
    json!({"title": title, "type": "array", "items": {"type": "string"}})
}

fn plugin(mut node: Json) -> Json {
    node["component_plugin_name"] = json!("NodesPlugin");
    node["component_plugin_version"] = json!(PLUGIN_VERSION);
    node["input_mapping"] = json!({});
    node["output_mapping"] = node.get("output_mapping").cloned().unwrap_or(json!({}));
    node
}

/// One flow being written: nodes, control edges, data edges, and the exits still to connect.
struct FlowDoc {
    id: String,
    nodes: Vec<Json>,
    control: Vec<(String, Option<String>, String)>,
    data: Vec<(Port, String, String)>,
    pending: Vec<(String, Option<String>)>,
}

impl FlowDoc {
    fn new(id: String) -> FlowDoc {
        FlowDoc { id, nodes: Vec::new(), control: Vec::new(), data: Vec::new(), pending: Vec::new() }
    }

    /// Adds a node, reached from every pending exit; its `next` is pending.
    fn node(&mut self, node: Json) {
        let id = node["id"].as_str().unwrap_or_default().to_owned();
        for (from, branch) in std::mem::take(&mut self.pending) {
            self.control.push((from, branch, id.clone()));
        }
        self.pending.push((id, None));
        self.nodes.push(node);
    }

    fn edge(&mut self, from: &Port, to: &str, input: &str) {
        let e = (from.clone(), to.to_owned(), input.to_owned());
        if !self.data.contains(&e) {
            self.data.push(e);
        }
    }

    fn into_json(self) -> Json {
        let mut table = Map::new();
        let mut refs = Vec::new();
        for n in self.nodes {
            let id = n["id"].as_str().unwrap_or_default().to_owned();
            refs.push(json!({"$component_ref": id}));
            table.insert(id, n);
        }
        let fid = &self.id;
        let control: Vec<Json> = self
            .control
            .iter()
            .enumerate()
            .map(|(i, (f, b, t))| {
                json!({"component_type": "ControlFlowEdge", "id": format!("{fid}_c{i}"), "name": format!("c{i}"),
                "from_node": {"$component_ref": f}, "from_branch": b, "to_node": {"$component_ref": t}})
            })
            .collect();
        let data: Vec<Json> = self
            .data
            .iter()
            .enumerate()
            .map(|(i, (s, d, n))| {
                json!({"component_type": "DataFlowEdge", "id": format!("{fid}_d{i}"), "name": format!("d{i}"),
                "source_node": {"$component_ref": s.node}, "source_output": s.output,
                "destination_node": {"$component_ref": d}, "destination_input": n})
            })
            .collect();
        let mut flow = json!({"component_type": "Flow", "id": fid, "name": fid, "start_node": refs[0]});
        flow["nodes"] = Json::Array(refs);
        flow["control_flow_connections"] = Json::Array(control);
        flow["data_flow_connections"] = Json::Array(data);
        flow["$referenced_components"] = Json::Object(table);
        flow
    }
}

/// `node` with `field` set to `value` (moved).
fn with(mut node: Json, field: &str, value: Json) -> Json {
    node[field] = value;
    node
}

fn llm_node(id: &str, prompt: String, output: Json) -> Json {
    json!({"component_type": "LlmNode", "id": id, "name": id, "llm_config": {"$component_ref": "llm"}, "prompt_template": prompt, "outputs": [output]})
}

fn template_node(id: &str, template: String) -> Json {
    plugin(json!({"component_type": "PluginTemplateNode", "id": id, "name": id, "template": template}))
}

fn branching_node(id: &str, mapping: Json) -> Json {
    json!({"component_type": "BranchingNode", "id": id, "name": id, "mapping": mapping})
}

impl Program {
    /// The Agent Spec document of the program: a root flow taking `ctx` and `arg` whose outputs
    /// are `o<k>`, the value of each top-level step `k`.
    pub fn document(&self) -> String {
        let mut root = FlowDoc::new("root".into());
        root.node(json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [string("ctx"), string("arg")]}));
        write_seq(&mut root, &self.root);
        let outputs: Vec<Json> = self.root.steps.iter().map(|s| string(&format!("o{}", s.id()))).collect();
        for s in &self.root.steps {
            root.edge(&s.value(), "end", &format!("o{}", s.id()));
        }
        root.node(json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": outputs, "outputs": outputs}));
        let mut doc = root.into_json();
        doc["agentspec_version"] = json!(PLUGIN_VERSION);
        doc["$referenced_components"]["llm"] =
            json!({"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000", "model_id": "m"});
        doc.to_string()
    }
}

/// A subflow `f<name>` with start `s<name>` (`ctx`, `arg`) and end `e<name>` (`out`).
fn subflow(name: &str, seq: &Seq, out: &str) -> Json {
    let mut f = FlowDoc::new(format!("f{name}"));
    f.node(json!({"component_type": "StartNode", "id": format!("s{name}"), "name": "start", "inputs": [string("ctx"), string("arg")]}));
    write_seq(&mut f, seq);
    let end = format!("e{name}");
    f.edge(&seq.value(), &end, out);
    f.node(json!({"component_type": "EndNode", "id": end, "name": "end", "inputs": [string(out)], "outputs": [string(out)]}));
    f.into_json()
}

fn write_seq(f: &mut FlowDoc, seq: &Seq) {
    for step in &seq.steps {
        write_step(f, step);
    }
}

fn bind(f: &mut FlowDoc, node: &str, ctx: Option<&Port>, reads: &[Port]) {
    if let Some(ctx) = ctx {
        f.edge(ctx, node, "ctx");
    }
    for (i, r) in reads.iter().enumerate() {
        f.edge(r, node, &format!("i{i}"));
    }
}

fn write_step(f: &mut FlowDoc, step: &Step) {
    match step {
        Step::Llm { id, ctx, reads } => {
            let n = format!("n{id}");
            f.node(llm_node(&n, llm_template(*id, reads.len()), string("v")));
            bind(f, &n, Some(ctx), reads);
        }
        Step::Tpl { id, reads } => {
            let n = format!("n{id}");
            f.node(template_node(&n, tpl_template(*id, reads.len())));
            bind(f, &n, None, reads);
        }
        Step::Input { id, ctx, reads } => {
            let n = format!("n{id}");
            f.node(json!({"component_type": "InputMessageNode", "id": n, "name": n, "message": input_template(*id, reads.len())}));
            bind(f, &n, Some(ctx), reads);
        }
        Step::Branch { id, ctx, on, arms } => {
            let (r, b, j) = (format!("r{id}"), format!("b{id}"), format!("j{id}"));
            f.node(llm_node(&r, route_template(*id), string("v")));
            bind(f, &r, Some(ctx), std::slice::from_ref(on));
            let mapping = if arms.len() == 3 { json!({"a": "a", "b": "b"}) } else { json!({"a": "a"}) };
            f.node(branching_node(&b, mapping));
            f.edge(&Port::new(r.clone(), "v"), &b, "branching_mapping_key");
            f.pending.clear();
            let mut exits = Vec::new();
            for (k, arm) in arms.iter().enumerate() {
                let label = if k + 1 == arms.len() { "default" } else { ["a", "b"][k] };
                f.pending = vec![(b.clone(), Some(label.to_owned()))];
                write_seq(f, arm);
                exits.append(&mut f.pending);
            }
            f.pending = exits;
            f.node(template_node(&j, join_template(*id)));
            for arm in arms {
                f.edge(&arm.value(), &j, "x");
            }
        }
        Step::Loop { id, iters, body } => {
            let (i, c, x) = (format!("li{id}"), format!("lc{id}"), format!("lx{id}"));
            f.node(template_node(&i, LOOP_INIT.to_owned()));
            f.node(template_node(&c, LOOP_COUNTER.to_owned()));
            f.edge(&Port::new(i, "output"), &c, "c");
            f.edge(&Port::new(c.clone(), "output"), &c, "c");
            write_seq(f, body);
            f.node(branching_node(&x, json!({ counter(*iters): "exit" })));
            f.edge(&Port::new(c.clone(), "output"), &x, "branching_mapping_key");
            f.control.push((x.clone(), Some("default".into()), c));
            f.pending = vec![(x, Some("exit".into()))];
        }
        Step::Par { id, kind, ctx, arg, branches } => {
            let p = format!("p{id}");
            let flows: Vec<Json> =
                branches.iter().enumerate().map(|(b, seq)| subflow(&format!("{id}_{b}"), seq, &format!("out{b}"))).collect();
            // Subflows are moved in, not written through `json!` (which would copy them).
            let node = match kind {
                ParKind::Core => with(json!({"component_type": "ParallelFlowNode", "id": p, "name": p}), "subflows", Json::Array(flows)),
                ParKind::Extended(n) => with(
                    plugin(json!({"component_type": "ExtendedParallelFlowNode", "id": p, "name": p, "max_workers": n})),
                    "flows",
                    Json::Array(flows),
                ),
            };
            f.node(node);
            f.edge(ctx, &p, "ctx");
            f.edge(arg, &p, "arg");
            let j = format!("pj{id}");
            f.node(template_node(&j, par_join_template(*id, branches.len())));
            for b in 0..branches.len() {
                f.edge(&Port::new(p.clone(), &format!("out{b}")), &j, &format!("o{b}"));
            }
        }
        Step::Map { id, kind, ctx, read, arg, body } => {
            let l = format!("l{id}");
            let reads: Vec<Port> = read.iter().cloned().collect();
            f.node(llm_node(&l, list_template(*id, reads.len()), string_list("items")));
            bind(f, &l, Some(ctx), &reads);
            let m = format!("m{id}");
            let sub = subflow(&id.to_string(), body, "out");
            let items = Port::new(l, "items");
            let extended = |ty: &str, extra: Json| {
                let mut node = plugin(json!({"component_type": ty, "id": m, "name": m,
                    "inputs": [string_list("iterated_ctx"), string("arg")], "outputs": [string_list("collected_out")],
                    "unpack_input": {"ctx": "."}, "output_mapping": {"out": "collected_out"}}));
                node["input_mapping"] = json!({"iterated_input": "iterated_ctx"});
                if let (Json::Object(node), Json::Object(extra)) = (&mut node, extra) {
                    node.extend(extra);
                }
                node
            };
            let core = |ty: &str| json!({"component_type": ty, "id": m, "name": m, "reducers": {"out": "append"}});
            let node = match kind {
                MapKind::Map => with(core("MapNode"), "subflow", sub),
                MapKind::ParallelMap => with(core("ParallelMapNode"), "subflow", sub),
                MapKind::ExtendedParallel(n) => with(extended("ExtendedParallelMapNode", json!({"max_workers": n})), "flow", sub),
                MapKind::ExtendedSequential => with(extended("ExtendedMapNode", json!({"parallel_execution": false})), "flow", sub),
                MapKind::ExtendedConcurrent(n) => {
                    with(extended("ExtendedMapNode", json!({"parallel_execution": true, "max_workers": n})), "flow", sub)
                }
            };
            f.node(node);
            f.edge(&items, &m, "iterated_ctx");
            let core = matches!(kind, MapKind::Map | MapKind::ParallelMap);
            f.edge(arg, &m, if core { "iterated_arg" } else { "arg" });
        }
        Step::Sub { id, ctx, arg, body } => {
            let u = format!("u{id}");
            f.node(with(json!({"component_type": "FlowNode", "id": u, "name": u}), "subflow", subflow(&id.to_string(), body, "out")));
            f.edge(ctx, &u, "ctx");
            f.edge(arg, &u, "arg");
        }
    }
}
