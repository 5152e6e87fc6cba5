//! The reference: a plain recursive, sequential interpreter of a [`Program`], sharing nothing
//! with the engine. Parallel branches and map items run one after another in index order, a
//! loop runs its body the number of times its counter says, and every value read is the one the
//! program's structure says it is. What it computes is what any correct schedule must give:
//! the flow's outputs, the multiset of prompts sent to the model (each LLM node once per
//! visit, rendered from its inputs) and the multiset of questions asked.
//!
//! The model's failures are left out: the run is interpreted as if no call failed, so a case
//! fails exactly when one of these prompts is in the failure set.

use super::flow::{
    LOOP_INIT, Port, Program, Seq, Step, counter, input_template, join_template, list_template, llm_template, par_join_template,
    route_template, tpl_template,
};
use super::oracle;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

/// A value of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// A string.
    Str(String),
    /// A list of strings.
    List(Vec<String>),
}

impl Val {
    /// The value cast into a string input: lists as Python's `json.dumps` prints them.
    pub fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::List(l) => oracle::py_dumps(l),
        }
    }
}

/// What a correct run does.
#[derive(Debug, Default)]
pub struct Expected {
    /// The root flow's outputs.
    pub outputs: Map<String, Json>,
    /// Prompts, with how many times each is sent.
    pub prompts: BTreeMap<String, usize>,
    /// Questions asked (input requests' messages), with how many times each is asked.
    pub questions: BTreeMap<String, usize>,
    /// Calls in all.
    pub calls: usize,
    /// Map items started at depth two or more (items of a map inside a map's item).
    pub nested_items: usize,
}

/// Fills `{{name}}` placeholders from `vars`, in one pass (a value is never read again as a
/// template).
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or_else(|| panic!("unclosed placeholder in {template}"));
        let name = after[..close].trim();
        let value = vars.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no value for {name} in {template}"));
        out.push_str(&value.1);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Interprets the program with these flow inputs.
pub fn interpret(program: &Program, ctx: &str, arg: &str) -> Expected {
    let mut x = Expected::default();
    let mut env = Frame::start("start", ctx, arg);
    for step in &program.root.steps {
        run_step(&mut x, &mut env, step, 0);
        x.outputs.insert(format!("o{}", step.id()), Json::String(env.get(&step.value()).text()));
    }
    x
}

/// The values of one flow being run: the latest value of each node output.
struct Frame {
    values: HashMap<Port, Val>,
}

impl Frame {
    fn start(start: &str, ctx: &str, arg: &str) -> Frame {
        let mut values = HashMap::new();
        values.insert(Port { node: start.into(), output: "ctx".into() }, Val::Str(ctx.into()));
        values.insert(Port { node: start.into(), output: "arg".into() }, Val::Str(arg.into()));
        Frame { values }
    }

    fn get(&self, port: &Port) -> &Val {
        self.values.get(port).unwrap_or_else(|| panic!("the program reads {port:?} before it exists"))
    }

    fn set(&mut self, node: String, output: &str, value: Val) {
        self.values.insert(Port { node, output: output.into() }, value);
    }

    /// `ctx` and `i0`, `i1`... for a node reading `reads`.
    fn vars(&self, ctx: Option<&Port>, reads: &[Port]) -> Vec<(&'static str, String)> {
        const NAMES: [&str; 3] = ["i0", "i1", "i2"];
        let mut vars: Vec<(&str, String)> = ctx.map(|c| ("ctx", self.get(c).text())).into_iter().collect();
        vars.extend(reads.iter().zip(NAMES).map(|(r, n)| (n, self.get(r).text())));
        vars
    }
}

fn call(x: &mut Expected, prompt: String) -> String {
    let answer = oracle::answer(&prompt);
    *x.prompts.entry(prompt).or_default() += 1;
    x.calls += 1;
    answer
}

fn run_seq(x: &mut Expected, env: &mut Frame, seq: &Seq, depth: usize) {
    for step in &seq.steps {
        run_step(x, env, step, depth);
    }
}

/// Runs a subflow with `ctx` and `arg`: its `out`, as the end node casts it to a string.
fn run_sub(x: &mut Expected, seq: &Seq, start: String, ctx: &str, arg: &str, depth: usize) -> String {
    let mut env = Frame::start(&start, ctx, arg);
    run_seq(x, &mut env, seq, depth);
    env.get(&seq.value()).text()
}

/// `depth`: how many maps the step is under.
fn run_step(x: &mut Expected, env: &mut Frame, step: &Step, depth: usize) {
    match step {
        Step::Llm { id, ctx, reads } => {
            let prompt = fill(&llm_template(*id, reads.len()), &env.vars(Some(ctx), reads));
            let answer = call(x, prompt);
            env.set(format!("n{id}"), "v", Val::Str(answer));
        }
        Step::Tpl { id, reads } => {
            let text = fill(&tpl_template(*id, reads.len()), &env.vars(None, reads));
            env.set(format!("n{id}"), "output", Val::Str(text));
        }
        Step::Input { id, ctx, reads } => {
            let message = fill(&input_template(*id, reads.len()), &env.vars(Some(ctx), reads));
            let answer = oracle::user_answer(&message);
            *x.questions.entry(message).or_default() += 1;
            env.set(format!("n{id}"), "user_input", Val::Str(answer));
        }
        Step::Branch { id, ctx, on, arms } => {
            let prompt = fill(&route_template(*id), &env.vars(Some(ctx), std::slice::from_ref(on)));
            let label = call(x, prompt);
            env.set(format!("r{id}"), "v", Val::Str(label.clone()));
            let arm = match (label.as_str(), arms.len()) {
                ("a", _) => 0,
                ("b", 3) => 1,
                _ => arms.len() - 1,
            };
            run_seq(x, env, &arms[arm], depth);
            let joined = fill(&join_template(*id), &[("x", env.get(&arms[arm].value()).text())]);
            env.set(format!("j{id}"), "output", Val::Str(joined));
        }
        Step::Loop { id, iters, body } => {
            env.set(format!("li{id}"), "output", Val::Str(LOOP_INIT.into()));
            for k in 1..=*iters {
                env.set(format!("lc{id}"), "output", Val::Str(counter(k)));
                run_seq(x, env, body, depth);
            }
        }
        Step::Par { id, ctx, arg, branches, .. } => {
            let (ctx, arg) = (env.get(ctx).text(), env.get(arg).text());
            let outs: Vec<String> =
                branches.iter().enumerate().map(|(b, seq)| run_sub(x, seq, format!("s{id}_{b}"), &ctx, &arg, depth)).collect();
            let names: Vec<String> = (0..outs.len()).map(|b| format!("o{b}")).collect();
            let vars: Vec<(&str, String)> = names.iter().map(String::as_str).zip(outs).collect();
            env.set(format!("pj{id}"), "output", Val::Str(fill(&par_join_template(*id, branches.len()), &vars)));
        }
        Step::Map { id, ctx, read, arg, body, .. } => {
            let reads: Vec<Port> = read.iter().cloned().collect();
            let prompt = fill(&list_template(*id, reads.len()), &env.vars(Some(ctx), &reads));
            let items = oracle::list(&prompt);
            call(x, prompt);
            env.set(format!("l{id}"), "items", Val::List(items.clone()));
            let arg = env.get(arg).text();
            if depth >= 1 {
                x.nested_items += items.len();
            }
            let outs = items.iter().map(|item| run_sub(x, body, format!("s{id}"), item, &arg, depth + 1)).collect();
            env.set(format!("m{id}"), "collected_out", Val::List(outs));
        }
        Step::Sub { id, ctx, arg, body } => {
            let (ctx, arg) = (env.get(ctx).text(), env.get(arg).text());
            let out = run_sub(x, body, format!("s{id}"), &ctx, &arg, depth);
            env.set(format!("u{id}"), "out", Val::Str(out));
        }
    }
}
