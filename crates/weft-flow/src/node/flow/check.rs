//! Flow rules (FORMAT.md 7.1-7.3): start and end nodes, edges, data edges and their types,
//! flow outputs, and what WayFlow additionally refuses (unknown or doubled branches,
//! unreachable nodes, outputs no EndNode produces).

use crate::check::Cx;
use crate::infer::Inferrer;
use crate::schema::{castable, same_type};
use std::collections::{HashMap, HashSet};
use weft_spec::diagnostic::{did_you_mean, join_index};
use weft_spec::{Code, CompId, Component};

pub(crate) fn check_flows(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>) {
    let spec = cx.spec;
    for (c, comp) in spec.components.iter().enumerate() {
        if (comp.is("Flow") || comp.is("ExtendedFlow")) && !cx.skip(c) {
            one_flow(cx, inf, c);
        }
    }
}

struct Edge {
    ptr: String,
    from: Option<CompId>,
    branch: Option<String>,
    to: Option<CompId>,
}

fn one_flow(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, f: CompId) {
    let spec = cx.spec;
    let flow = spec.get(f);
    let nodes = flow.comp_list("nodes");
    let nodes_ptr = format!("{}/nodes", flow.pointer);
    let node_ptr = |i: usize| join_index(&nodes_ptr, i);
    let index_of: HashMap<CompId, usize> = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // When a node or an edge of this flow failed to load (already reported), the structural
    // rules would only restate that failure: skip them.
    if cx.partial(f) || flow.comp_list("control_flow_connections").into_iter().any(|e| cx.partial(e) || cx.skip(e)) {
        data_edges(cx, inf, f, &index_of, false);
        return;
    }
    let mut structural = 0usize;

    // Rule 1: exactly one StartNode, and start_node is it.
    let starts: Vec<usize> = (0..nodes.len()).filter(|&i| spec.get(nodes[i]).is("StartNode")).collect();
    match starts.len() {
        0 => {
            structural += 1;
            cx.report(
                flow,
                Code::FlowStructure,
                nodes_ptr.clone(),
                format!("{}: `nodes` has no StartNode", flow.label()),
                Some("add the StartNode that `start_node` refers to to `nodes`".into()),
            );
        }
        1 => {}
        _ => {
            structural += 1;
            cx.report(
                flow,
                Code::FlowStructure,
                node_ptr(starts[1]),
                format!("{}: `nodes` has {} StartNodes; a flow has exactly one", flow.label(), starts.len()),
                Some("keep one StartNode and remove the others".into()),
            );
        }
    }
    let start = flow.comp_field("start_node");
    if let (Some(s), 1) = (start, starts.len())
        && nodes[starts[0]] != s
    {
        structural += 1;
        cx.report(
            flow,
            Code::FlowStructure,
            format!("{}/start_node", flow.pointer),
            format!("{}: `start_node` is not the StartNode listed in `nodes`", flow.label()),
            Some("make `start_node` a $component_ref to the StartNode of `nodes`".into()),
        );
    }
    // Rule 4: at least one EndNode.
    let ends: Vec<usize> = (0..nodes.len()).filter(|&i| spec.get(nodes[i]).is("EndNode")).collect();
    if ends.is_empty() {
        structural += 1;
        cx.report(
            flow,
            Code::FlowStructure,
            nodes_ptr.clone(),
            format!("{}: `nodes` has no EndNode; a flow needs at least one", flow.label()),
            Some("add an EndNode and a control edge into it".into()),
        );
    }

    // Control edges.
    let mut edges = Vec::new();
    for (i, e) in flow.comp_list("control_flow_connections").into_iter().enumerate() {
        let edge = spec.get(e);
        let _ = i;
        edges.push(Edge {
            ptr: edge.pointer.clone(),
            from: edge.comp_field("from_node"),
            branch: edge.str_field("from_branch").map(str::to_owned),
            to: edge.comp_field("to_node"),
        });
    }
    let mut incoming: HashMap<CompId, usize> = HashMap::new();
    let mut outgoing: HashMap<CompId, usize> = HashMap::new();
    let mut seen_branch: HashSet<(CompId, String)> = HashSet::new();
    let edge_comps = flow.comp_list("control_flow_connections");
    for (k, e) in edges.iter().enumerate() {
        let edge_comp = spec.get(edge_comps[k]);
        for (end, member) in [(e.from, "from_node"), (e.to, "to_node")] {
            if let Some(n) = end
                && !index_of.contains_key(&n)
            {
                structural += 1;
                cx.report(
                    edge_comp,
                    Code::FlowStructure,
                    format!("{}/{member}", e.ptr),
                    format!("{}: `{member}` is {}, which is not in the flow's `nodes`", edge_comp.label(), spec.get(n).label()),
                    Some("add the node to `nodes`, or point the edge at a node of this flow".into()),
                );
            }
        }
        let (Some(from), Some(to)) = (e.from, e.to) else { continue };
        *incoming.entry(to).or_default() += 1;
        *outgoing.entry(from).or_default() += 1;
        if spec.get(to).is("StartNode") {
            structural += 1;
            cx.report(
                edge_comp,
                Code::FlowStructure,
                e.ptr.clone(),
                format!("{}: a control edge goes into {}", edge_comp.label(), spec.get(to).label()),
                Some("nothing may transition back to the start; point the edge at the node after the start".into()),
            );
        }
        if spec.get(from).is("EndNode") {
            structural += 1;
            cx.report(
                edge_comp,
                Code::FlowStructure,
                e.ptr.clone(),
                format!("{}: a control edge leaves {}; reaching an EndNode ends the flow", edge_comp.label(), spec.get(from).label()),
                Some("remove this edge, or replace the EndNode by the node you meant".into()),
            );
            continue;
        }
        // WayFlow: from_branch must be a branch of from_node; one edge per (node, branch).
        if cx.skip(from) {
            continue;
        }
        let branch = e.branch.clone().unwrap_or_else(|| "next".into());
        // The branches the node really has: the inferred ones, unless the type leaves them free
        // (a wrong declared list is reported on the node itself).
        let inferred = inf.inferred(from);
        let from_branches = match inferred.branches {
            Some(b) if !inferred.branches_free_when_given => b,
            _ => inf.io(from).branches,
        };
        if !from_branches.contains(&branch) {
            let hint = match did_you_mean(&branch, from_branches.iter().map(String::as_str)) {
                Some(s) => format!("did you mean \"{s}\"? {} has the branches [{}]", spec.get(from).label(), from_branches.join(", ")),
                None => format!("{} has the branches [{}]", spec.get(from).label(), from_branches.join(", ")),
            };
            let ptr = if e.branch.is_some() { format!("{}/from_branch", e.ptr) } else { e.ptr.clone() };
            cx.report(
                edge_comp,
                Code::Branches,
                ptr,
                format!("{}: \"{branch}\" is not a branch of {}", edge_comp.label(), spec.get(from).label()),
                Some(hint),
            );
        } else if !seen_branch.insert((from, branch.clone())) {
            structural += 1;
            cx.report(
                edge_comp,
                Code::RuntimeStructure,
                e.ptr.clone(),
                format!("{}: a second control edge leaves {} on branch \"{branch}\"", edge_comp.label(), spec.get(from).label()),
                Some("keep one edge per branch; use a BranchingNode to choose between destinations".into()),
            );
        }
    }
    // Rule 2: one outgoing edge from the StartNode.
    if let Some(&si) = starts.first() {
        let s = nodes[si];
        let n = outgoing.get(&s).copied().unwrap_or(0);
        if n != 1 {
            structural += 1;
            cx.report(
                flow,
                Code::FlowStructure,
                node_ptr(si),
                format!("{}: {} has {n} outgoing control edges; it needs exactly one", flow.label(), spec.get(s).label()),
                Some("connect the StartNode to the first node with one ControlFlowEdge".into()),
            );
        }
    }
    // Rule 5: every EndNode is reached by an edge.
    for &ei in &ends {
        if incoming.get(&nodes[ei]).copied().unwrap_or(0) == 0 {
            structural += 1;
            cx.report(
                flow,
                Code::FlowStructure,
                node_ptr(ei),
                format!("{}: no control edge leads to {}", flow.label(), spec.get(nodes[ei]).label()),
                Some("add a ControlFlowEdge into it, or check for a loop that never exits".into()),
            );
        }
    }
    // WayFlow: every other node must be reached by some edge.
    for (i, &n) in nodes.iter().enumerate() {
        let node = spec.get(n);
        if node.is("StartNode") || node.is("EndNode") {
            continue;
        }
        if incoming.get(&n).copied().unwrap_or(0) == 0 {
            structural += 1;
            cx.report(
                flow,
                Code::RuntimeStructure,
                node_ptr(i),
                format!("{}: no control edge leads to {}; it can never run", flow.label(), node.label()),
                Some("connect it with a ControlFlowEdge, or remove it".into()),
            );
        }
    }
    // A loop with no way out: nodes reachable from the start that cannot reach an exit. Only
    // reported when nothing above already explains the flow's shape.
    if structural == 0
        && let Some(&si) = starts.first()
    {
        no_exit_loops(cx, inf, f, &nodes, nodes[si], &edges, &nodes_ptr);
    }
    data_edges(cx, inf, f, &index_of, true);
    flow_outputs(cx, inf, f, &nodes, &ends);
    map_iteration(cx, inf, f, &nodes);
}

/// A core map node iterates the `iterated_<p>` inputs whose source output is declared as a
/// list of `p` (FORMAT.md 8.1: decided from types, never from values); with none, WayFlow has
/// nothing to iterate and refuses the flow.
fn map_iteration(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, f: CompId, nodes: &[CompId]) {
    let spec = cx.spec;
    let flow = spec.get(f);
    let by_name = matches!(flow.field("data_flow_connections"), Some(weft_spec::Value::Json(serde_json::Value::Null)) | None);
    for &m in nodes {
        let map = spec.get(m);
        if !(map.is("MapNode") || map.is("ParallelMapNode")) || cx.skip(m) {
            continue;
        }
        let Some(sub) = map.comp_field("subflow") else { continue };
        let items = inf.io(sub).inputs;
        if items.is_empty() {
            continue;
        }
        // (input title, source output schema) for every value that can reach an iterated input.
        let mut sources: Vec<(String, serde_json::Value)> = Vec::new();
        if by_name {
            for &n in nodes {
                for o in inf.io(n).outputs {
                    if items.iter().any(|p| format!("iterated_{}", p.title()) == o.title()) {
                        sources.push((o.title().to_owned(), o.schema.clone()));
                    }
                }
            }
        } else {
            for e in flow.comp_list("data_flow_connections") {
                let edge = spec.get(e);
                if edge.comp_field("destination_node") != Some(m) {
                    continue;
                }
                let (Some(src), Some(out), Some(input)) =
                    (edge.comp_field("source_node"), edge.str_field("source_output"), edge.str_field("destination_input"))
                else {
                    continue;
                };
                if let Some(o) = inf.io(src).output(out) {
                    sources.push((input.to_owned(), o.schema.clone()));
                }
            }
        }
        let iterated = items.iter().any(|p| {
            let list = serde_json::json!({"type": "array", "items": p.schema});
            let title = format!("iterated_{}", p.title());
            sources.iter().any(|(t, s)| *t == title && same_type(s, &list))
        });
        if !iterated {
            let wanted: Vec<String> = items.iter().map(|p| format!("iterated_{} (a list of {})", p.title(), p.type_name())).collect();
            cx.report(
                map,
                Code::ComponentRule,
                map.pointer.clone(),
                format!(
                    "{}: no input is iterated: a map iterates an input fed by an output declared as a list of the item type, and none is",
                    map.label()
                ),
                Some(format!("connect a list-typed output to one of: {}", wanted.join(", "))),
            );
        }
    }
}

fn no_exit_loops(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, f: CompId, nodes: &[CompId], start: CompId, edges: &[Edge], nodes_ptr: &str) {
    let spec = cx.spec;
    let mut succ: HashMap<CompId, Vec<CompId>> = HashMap::new();
    let mut pred: HashMap<CompId, Vec<CompId>> = HashMap::new();
    let mut used: HashMap<CompId, HashSet<String>> = HashMap::new();
    for e in edges {
        if let (Some(a), Some(b)) = (e.from, e.to) {
            succ.entry(a).or_default().push(b);
            pred.entry(b).or_default().push(a);
            used.entry(a).or_default().insert(e.branch.clone().unwrap_or_else(|| "next".into()));
        }
    }
    // Exits: EndNodes, and nodes with a branch that has no edge (WayFlow ends the flow there).
    let mut can_exit: HashSet<CompId> = HashSet::new();
    let mut stack = Vec::new();
    for &n in nodes {
        let node = spec.get(n);
        let branches = inf.io(n).branches;
        let open = branches.iter().any(|b| !used.get(&n).is_some_and(|u| u.contains(b)));
        if node.is("EndNode") || (open && !node.is("StartNode")) {
            can_exit.insert(n);
            stack.push(n);
        }
    }
    while let Some(n) = stack.pop() {
        for &p in pred.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            if can_exit.insert(p) {
                stack.push(p);
            }
        }
    }
    let mut reached = HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        for &s in succ.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            if reached.insert(s) {
                stack.push(s);
            }
        }
    }
    let flow = spec.get(f);
    for (i, &n) in nodes.iter().enumerate() {
        if reached.contains(&n) && !can_exit.contains(&n) {
            cx.report(
                flow,
                Code::FlowStructure,
                join_index(nodes_ptr, i),
                format!("{}: {} is in a loop that can never reach an EndNode", flow.label(), spec.get(n).label()),
                Some("add a branch out of the loop that leads to an EndNode".into()),
            );
            break;
        }
    }
}

fn data_edges(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, f: CompId, index_of: &HashMap<CompId, usize>, check_membership: bool) {
    let spec = cx.spec;
    let flow = spec.get(f);
    for e in flow.comp_list("data_flow_connections") {
        let edge = spec.get(e);
        if cx.skip(e) {
            continue;
        }
        let (Some(src), Some(dst)) = (edge.comp_field("source_node"), edge.comp_field("destination_node")) else { continue };
        for (n, member) in [(src, "source_node"), (dst, "destination_node")] {
            // A context provider feeds the flow from outside its nodes (WayFlow adds it to the
            // flow's context providers).
            let provider = member == "source_node" && super::is_provider(spec.get(n));
            if check_membership && !index_of.contains_key(&n) && !provider {
                cx.report(
                    edge,
                    Code::FlowStructure,
                    format!("{}/{member}", edge.pointer),
                    format!("{}: `{member}` is {}, which is not in the flow's `nodes`", edge.label(), spec.get(n).label()),
                    Some("add the node to `nodes`, or connect a node of this flow".into()),
                );
            }
        }
        if cx.skip(src) || cx.skip(dst) {
            continue;
        }
        let out_name = edge.str_field("source_output").unwrap_or("");
        let in_name = edge.str_field("destination_input").unwrap_or("");
        let src_io = inf.io(src);
        let dst_io = inf.io(dst);
        let out = src_io.output(out_name);
        let input = dst_io.input(in_name);
        if out.is_none() {
            unknown(cx, edge, "source_output", out_name, spec.get(src), src_io.outputs.iter().map(|p| p.title()).collect());
        }
        if input.is_none() {
            unknown(cx, edge, "destination_input", in_name, spec.get(dst), dst_io.inputs.iter().map(|p| p.title()).collect());
        }
        if let (Some(o), Some(i)) = (out, input)
            && !castable(&o.schema, &i.schema)
        {
            cx.report(
                edge,
                Code::DataEdge,
                edge.pointer.clone(),
                format!(
                    "{}: output \"{out_name}\" of {} ({}) cannot be cast to input \"{in_name}\" of {} ({})",
                    edge.label(),
                    spec.get(src).label(),
                    o.type_name(),
                    spec.get(dst).label(),
                    i.type_name()
                ),
                Some("change one of the two types so they match; anything casts to string, numbers and booleans cast to each other".into()),
            );
        }
    }
}

fn unknown(cx: &mut Cx<'_>, edge: &Component, member: &str, name: &str, node: &Component, names: Vec<&str>) {
    let (kind, plural) = if member == "source_output" { ("output", "outputs") } else { ("input", "inputs") };
    let hint = match did_you_mean(name, names.iter().copied()) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None if names.is_empty() => format!("{} has no {plural}", node.label()),
        None => format!("{} has the {plural}: {}", node.label(), names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")),
    };
    cx.report(
        edge,
        Code::DataEdge,
        format!("{}/{member}", edge.pointer),
        format!("{}: {} has no {kind} named \"{name}\"", edge.label(), node.label()),
        Some(hint),
    );
}

fn flow_outputs(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, f: CompId, nodes: &[CompId], ends: &[usize]) {
    let spec = cx.spec;
    let flow = spec.get(f);
    let end_ios: Vec<(CompId, crate::infer::Io)> = ends.iter().map(|&i| (nodes[i], inf.io(nodes[i]))).collect();
    // Rule 8: EndNode outputs sharing a title have the same type.
    let mut by_title: HashMap<String, (CompId, serde_json::Value)> = HashMap::new();
    for (n, io) in &end_ios {
        for p in &io.outputs {
            match by_title.get(p.title()) {
                Some((m, s)) if !same_type(s, &p.schema) => {
                    let end = spec.get(*n);
                    cx.report(
                        end,
                        Code::IoMismatch,
                        p.pointer.clone(),
                        format!(
                            "{}: output \"{}\" is {} here but {} in {}",
                            end.label(),
                            p.title(),
                            p.type_name(),
                            weft_spec::model::type_name(s),
                            spec.get(*m).label()
                        ),
                        Some("give outputs of the same name the same type in every EndNode".into()),
                    );
                }
                Some(_) => {}
                None => {
                    by_title.insert(p.title().to_owned(), (*n, p.schema.clone()));
                }
            }
        }
    }
    let Some(outputs) = &flow.outputs else { return };
    if end_ios.is_empty() {
        return;
    }
    for p in outputs {
        let in_all = end_ios.iter().all(|(_, io)| io.output(p.title()).is_some_and(|o| same_type(&o.schema, &p.schema)));
        if in_all {
            continue;
        }
        let in_some = end_ios.iter().any(|(_, io)| io.output(p.title()).is_some());
        if p.default().is_none() {
            let missing: Vec<String> = end_ios
                .iter()
                .filter(|(_, io)| io.output(p.title()).is_none_or(|o| !same_type(&o.schema, &p.schema)))
                .map(|(n, _)| spec.get(*n).label())
                .collect();
            cx.report(
                flow,
                Code::IoMismatch,
                p.pointer.clone(),
                format!(
                    "{}: flow output \"{}\" has no default and is not produced, with type {}, by {}",
                    flow.label(),
                    p.title(),
                    p.type_name(),
                    missing.join(", ")
                ),
                Some("wire it into every EndNode (and list it in their outputs), give it a default, or remove it".into()),
            );
        } else if !in_some {
            cx.report(
                flow,
                Code::RuntimeStructure,
                p.pointer.clone(),
                format!(
                    "{}: flow output \"{}\" is produced by no EndNode; WayFlow refuses outputs that only exist as defaults",
                    flow.label(),
                    p.title()
                ),
                Some("wire it into the EndNodes, or remove it from the flow's outputs".into()),
            );
        }
    }
}
