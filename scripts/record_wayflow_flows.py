#!/usr/bin/env python
"""Records what WayFlow 26.3.1 does with small Agent Spec flows, for Weft's comparison tests.

Usage (the reference environment's Python; `scripts/agentspec-venv.sh` prints its path):

    python scripts/record_wayflow_flows.py [--out crates/weft-exec/tests/fixtures/wayflow_flows.json]
                                           [--only NAME ...]

Each scenario is a flow built with WayFlow's Python API and exported with its Agent Spec
exporter (or, where WayFlow cannot export a feature, an exported document edited to add it);
ids are renumbered (`c1`, `c2`, ... in document order) so the file is the same on every run.
The document is then loaded back with `AgentSpecLoader` and run: what is recorded is what
WayFlow does with the document itself, not with the Python objects.

The LLM is a scripted OpenAI-compatible server started by this script on 127.0.0.1 (a free
port, chosen by the system): each request gets the scenario's next canned answer, as SSE when
the request streams. ServerTools are bound by name to the Python functions of `TOOLS`.

For each scenario the fixture holds: `document`, `inputs`, `answers` (the canned LLM answers),
`user` (messages appended before each `execute()` after the first), then the outcome: `status`
(`FinishedStatus`, `UserMessageRequestStatus`, or `error`), `outputs`, `end` (the EndNode
reached: its name and `branch_name`), `error` (exception class and message), `messages` (the
conversation: type and content), `requests` (every chat request body, exactly as sent), and
`datastores` (for datastore scenarios: every collection's rows after the run). pandas' `NaN` (a
missing number in a float column) is written as `null`, which is what Weft gives there.

Only 127.0.0.1 is used; the server is a thread of this process.
"""
import argparse
import copy
import http.server
import json
import logging
import os
import re
import socketserver
import sys
import threading
import warnings

# WayFlow's exporter orders some tables by Python sets: a fixed hash seed makes every run write
# the same file.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)

from wayflowcore.agentspec import AgentSpecExporter, AgentSpecLoader  # noqa: E402
from wayflowcore.controlconnection import ControlFlowEdge  # noqa: E402
from wayflowcore.dataconnection import DataFlowEdge  # noqa: E402
from wayflowcore.datastore import Entity, nullable  # noqa: E402
from wayflowcore.datastore.inmemory import InMemoryDatastore  # noqa: E402
from wayflowcore.flow import Flow  # noqa: E402
from wayflowcore.models import OpenAICompatibleModel  # noqa: E402
from wayflowcore.property import (  # noqa: E402
    AnyProperty,
    BooleanProperty,
    FloatProperty,
    IntegerProperty,
    StringProperty,
    UnionProperty,
    NullProperty,
)
from wayflowcore.steps import (  # noqa: E402
    ChoiceSelectionStep,
    CompleteStep,
    ExtractValueFromJsonStep,
    InputMessageStep,
    OutputMessageStep,
    PromptExecutionStep,
    RetryStep,
    StartStep,
)
from wayflowcore.messagelist import Message, MessageType  # noqa: E402
from wayflowcore.templates import PromptTemplate  # noqa: E402
from wayflowcore.templates.llamatemplates import _LlamaMergeToolRequestAndCallsTransform  # noqa: E402
from wayflowcore.templates.agenticpatterntemplate import ToolRequestAndCallsTransform  # noqa: E402
from wayflowcore.templates.reacttemplates import _ReactMergeToolRequestAndCallsTransform  # noqa: E402
from wayflowcore.transforms.canonicalizationtransform import CanonicalizationMessageTransform  # noqa: E402
from wayflowcore.tools import ToolRequest, ToolResult  # noqa: E402
from wayflowcore.transforms import (  # noqa: E402
    AppendTrailingSystemMessageToUserMessageTransform,
    CoalesceSystemMessagesTransform,
    RemoveEmptyNonUserMessageTransform,
    SplitPromptOnMarkerMessageTransform,
)
from wayflowcore.steps.datastoresteps import (  # noqa: E402
    DatastoreCreateStep,
    DatastoreDeleteStep,
    DatastoreListStep,
    DatastoreUpdateStep,
)

HOST = "127.0.0.1"
URL_PLACEHOLDER = "http://127.0.0.1:1"

# --------------------------------------------------------------------------------------------
# The scripted LLM server
# --------------------------------------------------------------------------------------------


class _State:
    lock = threading.Lock()
    requests = []
    answers = []


def _sse(answer, n):
    def chunk(delta, finish=None, usage=None):
        body = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 0, "model": "mock-model",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
                "usage": usage}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    return b"".join([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": answer}),
        chunk({}, "stop"),
        chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        b"data: [DONE]\n\n",
    ])


def _json(answer, n):
    return json.dumps({
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        req = json.loads(raw)
        with _State.lock:
            _State.requests.append(req)
            n = len(_State.requests)
            answer = _State.answers.pop(0) if _State.answers else "(no answer scripted)"
        stream = bool(req.get("stream"))
        body = _sse(answer, n) if stream else _json(answer, n)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if stream else "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def start_server():
    srv = _Server((HOST, 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://{HOST}:{srv.server_address[1]}"


# --------------------------------------------------------------------------------------------
# Tools bound by name (the Rust test registers the same functions)
# --------------------------------------------------------------------------------------------


def current_time(zone: str = "UTC") -> str:
    return f"12:00 {zone}"


_COUNTER = [40]


def counter_value() -> int:
    """41, then 42, ...: a new value at each call (reset before each scenario)."""
    _COUNTER[0] += 1
    return _COUNTER[0]


def forecast(city: str, days: int) -> str:
    return f"sunny in {city} for {days} days"


TOOLS = {"current_time": current_time, "counter_value": counter_value, "forecast": forecast}

# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def renumber(doc):
    """Replaces generated ids (uuids, also as `$component_ref` targets and table keys) with
    `c1`, `c2`... in order of first appearance, and generated names ending in `__auto`; drops the
    creation times of prompt messages, so the document is the same at every run."""
    mapping = {}

    def new_id(old):
        if old not in mapping:
            mapping[old] = f"c{len(mapping) + 1}"
        return mapping[old]

    def walk(x):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if k in ("time_created", "time_updated"):
                    continue  # when the message object was made: optional, and different at every run
                key = new_id(k) if UUID.match(k) else k
                if isinstance(v, str) and UUID.match(v):
                    out[key] = new_id(v)
                elif k == "name" and isinstance(v, str) and v.endswith("__auto"):
                    out[key] = re.sub(r"[0-9a-f]{8}__auto$", "auto", v)
                else:
                    out[key] = walk(v)
            return out
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(doc)


def retarget(x, url):
    """Points every LLM config at `url`."""
    if isinstance(x, dict):
        if "url" in x and str(x.get("component_type", "")).endswith("Config"):
            x["url"] = url
        for v in x.values():
            retarget(v, url)
    elif isinstance(x, list):
        for v in x:
            retarget(v, url)


def export(flow):
    return renumber(json.loads(AgentSpecExporter().to_json(flow)))


def llm(url):
    return OpenAICompatibleModel(model_id="mock-model", base_url=url)


def components(doc):
    """Every component of a document, by id (inline ones and table entries)."""
    found = {}

    def walk(x):
        if isinstance(x, dict):
            if "component_type" in x and "id" in x:
                found[x["id"]] = x
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return found


def by_name(doc, name):
    """The component named `name` (its table entry when it has one)."""
    found = [c for c in components(doc).values() if c.get("name") == name]
    if len(found) != 1:
        raise SystemExit(f"{len(found)} components named {name!r}")
    return found[0]


def add_data_edges(doc, flow, edges):
    """Adds data edges `(source node, output, destination node, input)` (by node name) to the flow
    named `flow`: WayFlow's exporter leaves out the edges into an EndNode of a flow given
    `output_descriptors`, and its loader then refuses the document."""
    f = by_name(doc, flow)
    for i, (src, out, dst, inp) in enumerate(edges):
        f["data_flow_connections"].append({
            "component_type": "DataFlowEdge", "id": f"{flow}_extra_edge_{i}", "name": f"{src}_{out}_to_{dst}_{inp}",
            "description": None, "metadata": {}, "source_node": {"$component_ref": by_name(doc, src)["id"]},
            "source_output": out, "destination_node": {"$component_ref": by_name(doc, dst)["id"]}, "destination_input": inp,
        })


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(name, description):
    def deco(f):
        SCENARIOS[name] = (description, f)
        return f

    return deco


def choice_flow(url):
    choice = ChoiceSelectionStep(
        llm=llm(url),
        next_steps=[("billing", "Questions about invoices and payments"),
                    ("tech", "Technical problems", "TECH_SUPPORT"),
                    ("sales", "Buying a new plan")],
        name="route",
    )
    ends = {b: CompleteStep(name=f"end_{b}") for b in ("billing", "tech", "sales", "default")}
    start = StartStep(input_descriptors=[StringProperty("input")], name="start")
    edges = [ControlFlowEdge(start, choice)] + [
        ControlFlowEdge(choice, ends[b], source_branch=b) for b in ends
    ]
    data = [DataFlowEdge(start, "input", choice, "input")]
    return Flow(begin_step=start, control_flow_edges=edges, data_flow_edges=data, name="router")


@scenario("choice_named_branch", "PluginChoiceNode: the answer names a branch among other words")
def _(url):
    return {"flow": choice_flow(url), "inputs": {"input": "my invoice is wrong"},
            "answers": ["I would pick billing, or maybe sales"]}


@scenario("choice_displayed_name", "PluginChoiceNode: a displayed name differs from its branch name")
def _(url):
    return {"flow": choice_flow(url), "inputs": {"input": "the app crashes"}, "answers": ["TECH_SUPPORT"]}


@scenario("choice_default", "PluginChoiceNode: nothing matches (case-sensitive), the default branch")
def _(url):
    return {"flow": choice_flow(url), "inputs": {"input": "hello"}, "answers": ["Billing? tech?"]}


def retry_flow(url, trials):
    attempt = PromptExecutionStep(prompt_template="Attempt the task: {{ task }}", llm=llm(url), name="attempt")
    check = ExtractValueFromJsonStep(output_values={AnyProperty("done"): ".done", AnyProperty("note"): ".note"}, name="check",
                                     input_mapping={ExtractValueFromJsonStep.TEXT: PromptExecutionStep.OUTPUT})
    sub_start = StartStep(input_descriptors=[StringProperty("task")], name="sub_start")
    sub_end = CompleteStep(name="sub_end")
    sub = Flow(
        begin_step=sub_start,
        control_flow_edges=[ControlFlowEdge(sub_start, attempt), ControlFlowEdge(attempt, check),
                            ControlFlowEdge(check, sub_end)],
        data_flow_edges=[DataFlowEdge(sub_start, "task", attempt, "task"),
                         DataFlowEdge(attempt, PromptExecutionStep.OUTPUT, check, PromptExecutionStep.OUTPUT)],
        output_descriptors=[AnyProperty("done"), AnyProperty("note")],
        name="attempt_flow",
    )
    retry = RetryStep(flow=sub, success_condition="done", max_num_trials=trials, name="retry")
    start = StartStep(input_descriptors=[StringProperty("task")], name="start")
    ok, failed = CompleteStep(name="end_ok"), CompleteStep(name="end_failed")
    edges = [ControlFlowEdge(start, retry), ControlFlowEdge(retry, ok, source_branch="sub_end"),
             ControlFlowEdge(retry, failed, source_branch=RetryStep.BRANCH_FAILURE)]
    data = [DataFlowEdge(start, "task", retry, "task")]
    return Flow(begin_step=start, control_flow_edges=edges, data_flow_edges=data, name="retrier",
                output_descriptors=[AnyProperty("note"), IntegerProperty(RetryStep.NUM_RETRIES_VAR),
                                    BooleanProperty(RetryStep.SUCCESS_VAR)])


def retry_edges(doc):
    add_data_edges(doc, "attempt_flow", [("check", "done", "sub_end", "done"), ("check", "note", "sub_end", "note")])
    add_data_edges(doc, "retrier", [("retry", "note", end, "note") for end in ("end_ok", "end_failed")])


@scenario("retry_third_trial_succeeds", "PluginRetryNode: two falsy trials (false, then 0), the third succeeds")
def _(url):
    return {"flow": retry_flow(url, 3), "edit": retry_edges, "inputs": {"task": "book a room"},
            "answers": ['{"done": false, "note": "busy"}', '{"done": 0, "note": "retry"}',
                        'Sure: {"done": "yes", "note": "booked"}']}


@scenario("retry_all_trials_fail", "PluginRetryNode: every trial fails (an empty list, an empty string, an empty object), the failure branch")
def _(url):
    return {"flow": retry_flow(url, 3), "edit": retry_edges, "inputs": {"task": "book a room"},
            "answers": ['{"done": [], "note": "no"}', '{"done": "", "note": "still no"}', '{"done": {}, "note": "never"}']}


@scenario("retry_error_propagates", "PluginRetryNode: an error inside the subflow (a jq query with no result) is not retried")
def _(url):
    return {"flow": retry_flow(url, 3), "edit": retry_edges, "inputs": {"task": "x"}, "answers": ['{"note": "no done"}']}


@scenario("retry_first_trial_succeeds", "PluginRetryNode: the string \"false\" is truthy, one trial")
def _(url):
    return {"flow": retry_flow(url, 3), "edit": retry_edges, "inputs": {"task": "x"}, "answers": ['{"done": "false", "note": "odd"}']}


# ---- datastores --------------------------------------------------------------------------------


def documents_store():
    entity = Entity(properties={
        "id": IntegerProperty(),
        "content": StringProperty(default_value="Empty..."),
        "tag": nullable(StringProperty()),
        "score": nullable(FloatProperty()),
        "rank": nullable(IntegerProperty()),
    })
    return InMemoryDatastore({"documents": entity, "notes": Entity(properties={"text": StringProperty()})})


def ds_flow(name, steps):
    """start -> steps... -> end; the start's inputs are the steps' inputs, each fed by name."""
    steps = [s for s, _ in steps]
    inputs = {}
    for step in steps:
        for d in step.input_descriptors:
            inputs.setdefault(d.name, d)
    start = StartStep(input_descriptors=list(inputs.values()), name="start")
    end = CompleteStep(name="end")
    chain = [start] + steps + [end]
    edges = [ControlFlowEdge(a, b) for a, b in zip(chain, chain[1:])]
    data = [DataFlowEdge(start, d.name, step, d.name) for step in steps for d in step.input_descriptors]
    return Flow(begin_step=start, control_flow_edges=edges, data_flow_edges=data, name=name)


@scenario("datastore_crud", "create (defaults first), list with a templated integer filter, update, delete, list again")
def _(url):
    ds = documents_store()
    create = DatastoreCreateStep(ds, "documents", name="create", output_mapping={"created_entity": "made"})
    create2 = DatastoreCreateStep(ds, "{{ coll }}", name="create2", input_mapping={"entity": "second"},
                                  output_mapping={"created_entity": "made2"})
    get = DatastoreListStep(ds, "documents", where={"id": "{{ target }}"}, limit=1, unpack_single_entity_from_list=True,
                            input_descriptors=[IntegerProperty("target")], name="get", output_mapping={"entities": "got"})
    upd = DatastoreUpdateStep(ds, "documents", where={"tag": "{{ tag }}"}, name="update", output_mapping={"entities": "updated"})
    dele = DatastoreDeleteStep(ds, "documents", where={"id": 1}, name="delete")
    everything = DatastoreListStep(ds, "documents", name="list_all", output_mapping={"entities": "rest"})
    flow = ds_flow("crud", [(create, []), (create2, []), (get, []), (upd, []), (dele, []), (everything, [])])
    return {"flow": flow, "inputs": {"entity": {"id": 1, "tag": "a", "rank": 3}, "second": {"id": 2, "tag": "a", "score": 0.5},
                                     "coll": "documents", "target": 2, "tag": "a", "update": {"content": "done", "rank": 7}},
            "answers": [], "datastores": [ds]}


@scenario("datastore_dtypes", "pandas dtypes: a number column with a missing value is float; an empty filter, a null filter and a limit")
def _(url):
    ds = documents_store()
    creates = [DatastoreCreateStep(ds, "documents", name=f"create{i}", input_mapping={"entity": f"e{i}"},
                                   output_mapping={"created_entity": f"made{i}"}) for i in (1, 2, 3)]
    lst = DatastoreListStep(ds, "documents", where={}, name="list_empty_where", output_mapping={"entities": "none"})
    lst_null = DatastoreListStep(ds, "documents", where={"tag": None}, name="list_null", output_mapping={"entities": "nulls"})
    lst_limit = DatastoreListStep(ds, "documents", limit=-1, name="list_limit", output_mapping={"entities": "limited"})
    flow = ds_flow("dtypes", [(c, []) for c in creates] + [(lst, []), (lst_null, []), (lst_limit, [])])
    return {"flow": flow, "inputs": {"e1": {"id": 1, "rank": 2}, "e2": {"id": 2, "rank": None, "score": 1.5}, "e3": {"id": 3}},
            "answers": [], "datastores": [ds]}


@scenario("datastore_bad_entity", "an entity missing a required property: DatastoreEntityError")
def _(url):
    ds = documents_store()
    create = DatastoreCreateStep(ds, "documents", name="create")
    flow = ds_flow("bad", [(create, [])])
    return {"flow": flow, "inputs": {"entity": {"content": "no id"}}, "answers": [], "datastores": [ds]}


@scenario("datastore_unpack_none", "unpack_single_entity_from_list with nothing matching: RuntimeError")
def _(url):
    ds = documents_store()
    get = DatastoreListStep(ds, "notes", where={"text": "{{ t }}"}, limit=1, unpack_single_entity_from_list=True, name="get")
    create = DatastoreCreateStep(ds, "notes", name="create")
    flow = ds_flow("unpack", [(create, []), (get, [])])
    return {"flow": flow, "inputs": {"entity": {"text": "a"}, "t": "b"}, "answers": [], "datastores": [ds]}


# ---- rephrase -----------------------------------------------------------------------------------


@scenario("rephrase_output_message", "PluginOutputMessageNode with rephrase: the rephrasing prompt, the message posted, the output")
def _(url):
    out = OutputMessageStep("Your order {{ order }} has shipped.", rephrase=True, llm=llm(url), name="tell")
    start = StartStep(input_descriptors=[StringProperty("order")], name="start")
    end = CompleteStep(name="end")
    flow = Flow(begin_step=start, control_flow_edges=[ControlFlowEdge(start, out), ControlFlowEdge(out, end)],
                data_flow_edges=[DataFlowEdge(start, "order", out, "order")], name="rephraser")
    return {"flow": flow, "inputs": {"order": "A-17"}, "answers": ["Good news: A-17 is on its way!"]}


@scenario("rephrase_input_message", "PluginInputMessageNode with rephrase: the question is rephrased, then the user answers")
def _(url):
    ask = InputMessageStep("What is your {{ thing }}?", rephrase=True, llm=llm(url), name="ask",
                           output_mapping={InputMessageStep.USER_PROVIDED_INPUT: "answer"})
    start = StartStep(input_descriptors=[StringProperty("thing")], name="start")
    end = CompleteStep(name="end")
    flow = Flow(begin_step=start, control_flow_edges=[ControlFlowEdge(start, ask), ControlFlowEdge(ask, end)],
                data_flow_edges=[DataFlowEdge(start, "thing", ask, "thing")],
                name="asker")
    return {"flow": flow, "inputs": {"thing": "name"}, "answers": ["May I have your name?"], "user": ["Ada"]}


# ---- context providers (WayFlow's exporter cannot write tool and flow providers: hand-written) --
# A data edge may start at a context provider only in an ExtendedFlow that lists it in
# `context_providers` (pyagentspec refuses an edge from a component that is not in the flow).


PLUGIN = {"component_plugin_name": None, "component_plugin_version": "26.3.1"}


def comp(ty, cid, plugin=None, **fields):
    c = {"component_type": ty, "id": cid, "name": cid, "description": None, "metadata": {}}
    c.update(fields)
    if plugin:
        c.update({"component_plugin_name": plugin, "component_plugin_version": "26.3.1"})
    return c


def sprop(title, **kw):
    return {"title": title, "type": "string", **kw}


def ref(cid):
    return {"$component_ref": cid}


def hand_flow(name, nodes, control, data, extra=(), inputs=(), outputs=(), extended=None, start_id="start"):
    """A flow document: `nodes` (components, ids = names), control edges `(from, to)`, data edges
    `(source, output, destination, input)`; `extended` makes it an ExtendedFlow with these
    fields (`context_providers`, `state`)."""
    table = {n["id"]: n for n in list(nodes) + list(extra)}
    doc = comp("ExtendedFlow" if extended is not None else "Flow", name, plugin="FlowPlugin" if extended is not None else None,
               inputs=list(inputs), outputs=list(outputs), start_node=ref(start_id), nodes=[ref(n["id"]) for n in nodes],
               control_flow_connections=[comp("ControlFlowEdge", f"{name}_c{i}", from_node=ref(a), from_branch=None, to_node=ref(b))
                                         for i, (a, b) in enumerate(control)],
               data_flow_connections=None if data is None else [
                   comp("DataFlowEdge", f"{name}_d{i}", source_node=ref(a), source_output=o, destination_node=ref(b), destination_input=i_)
                   for i, (a, o, b, i_) in enumerate(data)])
    if extended is not None:
        doc.update(extended)
    doc["$referenced_components"] = table
    doc["agentspec_version"] = "26.1.2"
    return doc


def start(inputs=(), cid="start"):
    return comp("StartNode", cid, inputs=list(inputs), outputs=list(inputs), branches=["next"])


def end(outputs, name="end"):
    return comp("EndNode", name, inputs=list(outputs), outputs=list(outputs), branches=[], branch_name="next")


def message(cid, text, inputs):
    return comp("PluginOutputMessageNode", cid, plugin="NodesPlugin", inputs=[sprop(i) for i in inputs],
                outputs=[sprop(f"{cid}_out")], branches=["next"], message=text, input_mapping={},
                output_mapping={"output_message": f"{cid}_out"}, message_type="AGENT", rephrase=False, llm_config=None,
                expose_message_as_output=True)


def tool_provider(cid, tool, output, tool_inputs=(), tool_output_type="string"):
    tool_comp = comp("ServerTool", tool, inputs=list(tool_inputs), outputs=[{"title": output, "type": tool_output_type}])
    return comp("PluginToolContextProvider", cid, plugin="ContextProviderPlugin", inputs=[],
                outputs=[{"title": output, "type": tool_output_type}], branches=["next"], tool=tool_comp, output_name=output)


@scenario("tool_provider_edges", "PluginToolContextProvider on data edges: the tool is called at every read")
def _(url):
    # The message node's outputs are renamed so each is a flow output of its own.
    a, b = message("first", "count {{ n }}", ["n"]), message("second", "count again {{ n }}", ["n"])
    outs = [sprop("first_out"), sprop("second_out")]
    doc = hand_flow("counting", [start(), a, b, end(outs)], [("start", "first"), ("first", "second"), ("second", "end")],
                    [("counter", "n", "first", "n"), ("counter", "n", "second", "n"),
                     ("first", "first_out", "end", "first_out"), ("second", "second_out", "end", "second_out")],
                    extra=[tool_provider("counter", "counter_value", "n", tool_output_type="integer")], outputs=outs,
                    extended={"context_providers": [ref("counter")], "state": []})
    return {"document": doc, "inputs": {}, "answers": []}


@scenario("tool_provider_by_name", "ExtendedFlow.context_providers, no data edges: a tool provider (its input defaults as arguments) feeds the input of its name (WayFlow wires providers by name only when no node output matches a node input by name)")
def _(url):
    msg = message("tell", "It is {{ now }}", ["now"])
    msg["outputs"], msg["output_mapping"], msg["expose_message_as_output"] = [], {}, False
    doc = hand_flow("clock", [start(), msg, end([])], [("start", "tell"), ("tell", "end")], None,
                    extended={"context_providers": [tool_provider("clock_provider", "current_time", "now",
                                                                  tool_inputs=[sprop("zone", default="CET")])],
                              "state": []})
    return {"document": doc, "inputs": {}, "answers": []}


@scenario("flow_provider", "PluginFlowContextProvider: its flow runs at the read, posting to the same conversation; its one output is the value")
def _(url):
    inner_msg = message("inner_note", "Looked it up", [])
    inner_tpl = comp("PluginTemplateNode", "inner_value", plugin="NodesPlugin", inputs=[], outputs=[sprop("value")],
                     branches=["next"], template="forty-two", input_mapping={}, output_mapping={"output": "value"})
    inner_outs = [sprop("value")]
    inner = hand_flow("lookup", [start(cid="inner_start"), inner_msg, inner_tpl, end(inner_outs, name="inner_end")],
                      [("inner_start", "inner_note"), ("inner_note", "inner_value"), ("inner_value", "inner_end")],
                      [("inner_value", "value", "inner_end", "value")], outputs=inner_outs, start_id="inner_start")
    del inner["agentspec_version"]
    provider = comp("PluginFlowContextProvider", "lookup_provider", plugin="ContextProviderPlugin", inputs=[],
                    outputs=[sprop("value")], branches=["next"], flow=inner, output_names=["value"])
    msg = message("answer", "The answer is {{ value }}", ["value"])
    outs = [sprop("answer_out")]
    doc = hand_flow("asking", [start(), msg, end(outs)], [("start", "answer"), ("answer", "end")],
                    [("lookup_provider", "value", "answer", "value"), ("answer", "answer_out", "end", "answer_out")],
                    extra=[provider], outputs=outs, extended={"context_providers": [ref("lookup_provider")], "state": []})
    return {"document": doc, "inputs": {}, "answers": []}


@scenario("constant_provider_by_name", "ExtendedFlow.context_providers with explicit data edges: an input fed by the start node and named like a provider's output reads the provider")
def _(url):
    msg = message("greet", "{{ greeting }}, {{ who }}!", ["greeting", "who"])
    outs = [sprop("greet_out")]
    constant = comp("PluginConstantContextProvider", "hello", plugin="ContextProviderPlugin", inputs=[],
                    outputs=[sprop("greeting")], branches=["next"], value="Bonjour")
    doc = hand_flow("greeter", [start([sprop("who"), sprop("greeting")]), msg, end(outs)], [("start", "greet"), ("greet", "end")],
                    [("start", "who", "greet", "who"), ("start", "greeting", "greet", "greeting"), ("greet", "greet_out", "end", "greet_out")],
                    inputs=[sprop("who"), sprop("greeting")], outputs=outs, extended={"context_providers": [constant], "state": []})
    return {"document": doc, "inputs": {"who": "Ada", "greeting": "Hi"}, "answers": []}


# ---- prompt templates ---------------------------------------------------------------------------


def prompt_flow(url, template, before=(), inputs=None):
    """steps `before` (asking and telling, to make a conversation), then a PromptExecutionStep
    on `template`."""
    step = PromptExecutionStep(prompt_template=template, llm=llm(url), name="answer")
    return Flow.from_steps(list(before) + [step], name="prompted")


@scenario("template_post_transforms", "post_rendering_transforms: empty non-user messages removed, leading system messages coalesced, a message split on the marker")
def _(url):
    tpl = PromptTemplate(messages=[
        Message(content="\nYou are terse.\n", message_type=MessageType.SYSTEM),
        Message(content="{% if extra %}{{ extra }}{% endif %}", message_type=MessageType.SYSTEM),
        Message(content="Style: {{ style }}", message_type=MessageType.SYSTEM),
        Message(content="", message_type=MessageType.AGENT),
        Message(content="{% if extra %}{{ extra }}{% endif %}", message_type=MessageType.USER),
        Message(content="Question about {{ topic }}:\n---\nWhat is it?\n--- \n---", message_type=MessageType.USER),
        Message(content="Be brief.", message_type=MessageType.SYSTEM),
    ], post_rendering_transforms=[RemoveEmptyNonUserMessageTransform(), CoalesceSystemMessagesTransform(),
                                  SplitPromptOnMarkerMessageTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"topic": "cats", "style": "plain", "extra": ""}, "answers": ["A small feline."]}


def tool_messages():
    return [
        Message(content="You can call tools.", message_type=MessageType.SYSTEM),
        Message(content="What time is it in {{ city }}?", message_type=MessageType.USER),
        Message(content="", tool_requests=[ToolRequest(name="get_time", args={"city": "Paris", "utc": False}, tool_request_id="t1"),
                                         ToolRequest(name="get_weather", args={"city": "Paris"}, tool_request_id="t2")],
                role="assistant"),
        Message(tool_result=ToolResult(content={"time": "12:00", "note": "<noon> & more"}, tool_request_id="t1"), role="user"),
        Message(tool_result=ToolResult(content="sunny", tool_request_id="t2"), role="user"),
        Message(content="Now answer.", message_type=MessageType.USER),
    ]


@scenario("template_tool_messages", "a template with a recorded tool request and its results, sent natively (assistant tool_calls, tool messages)")
def _(url):
    tpl = PromptTemplate(messages=tool_messages())
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


@scenario("template_llama_merge", "PluginLlamaMergeToolRequestAndCallsTransform: tool requests and results rewritten as text messages")
def _(url):
    tpl = PromptTemplate(messages=tool_messages(), post_rendering_transforms=[_LlamaMergeToolRequestAndCallsTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


@scenario("template_react_merge", "PluginReactMergeToolRequestAndCallsTransform: tool requests as Thoughts and an indented JSON Action, results as one Observation message")
def _(url):
    messages = tool_messages()
    messages[2] = Message(content="Let me look.", tool_requests=messages[2].tool_requests, role="assistant")
    tpl = PromptTemplate(messages=messages, post_rendering_transforms=[_ReactMergeToolRequestAndCallsTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


@scenario("template_append_trailing_system", "PluginAppendTrailingSystemMessageToUserMessageTransform: a trailing system message becomes a second text part of the user message before it")
def _(url):
    tpl = PromptTemplate(messages=[
        Message(content="You are terse.", message_type=MessageType.SYSTEM),
        Message(content="What is a {{ animal }}?", message_type=MessageType.USER),
        Message(content="Answer in {{ language }}.", message_type=MessageType.SYSTEM),
    ], post_rendering_transforms=[AppendTrailingSystemMessageToUserMessageTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"animal": "cat", "language": "French"}, "answers": ["Un félin."]}


@scenario("template_canonicalization", "PluginCanonicalizationMessageTransform: system messages merged first, a dummy user message before a leading agent message, consecutive user and agent messages merged (WayFlow raises on tool results in a template)")
def _(url):
    messages = [
        Message(content="You are terse.", message_type=MessageType.SYSTEM),
        Message(content="Hello, how can I help?", message_type=MessageType.AGENT),
        Message(content="Be brief.", message_type=MessageType.SYSTEM),
        Message(content="What time is it in {{ city }}?", message_type=MessageType.USER),
        Message(content="Quickly.", message_type=MessageType.USER),
        Message(content="First thought.", message_type=MessageType.AGENT),
        Message(content="Second thought.", message_type=MessageType.AGENT),
        Message(content="Now answer.", message_type=MessageType.USER),
    ]
    tpl = PromptTemplate(messages=messages, post_rendering_transforms=[CanonicalizationMessageTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


@scenario("template_canonicalization_tool_results", "PluginCanonicalizationMessageTransform over a template with tool results: WayFlow raises ValueError")
def _(url):
    tpl = PromptTemplate(messages=tool_messages(), post_rendering_transforms=[CanonicalizationMessageTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


@scenario("template_tool_request_and_calls", "PluginToolRequestAndCallsTransform: messages headed by their sender, tool requests as JSON lines in an agent message, results as user messages headed by the call")
def _(url):
    messages = tool_messages()
    messages.insert(2, Message(content="Checking the time and weather for you now, hold on.", message_type=MessageType.AGENT))
    messages[4] = Message(tool_result=ToolResult(content={"time": "12:00", "note": "<noon> & more"}, tool_request_id="t1"), role="user")
    tpl = PromptTemplate(messages=messages, post_rendering_transforms=[ToolRequestAndCallsTransform()])
    return {"flow": prompt_flow(url, tpl), "inputs": {"city": "Paris"}, "answers": ["It is noon."]}


# ---- tools in the prompt (native_tool_calling false) and the tool output parsers ----------------


def prompt_tools():
    from wayflowcore.tools import ServerTool
    zone = StringProperty("zone", description="an IANA zone or UTC", default_value="UTC")
    days = IntegerProperty("days", description="how many days ahead")
    return [
        ServerTool(name="current_time", description="The time in a zone", func=current_time, input_descriptors=[zone],
                   output_descriptors=[StringProperty("time")]),
        ServerTool(name="forecast", description="The weather in a city", func=forecast,
                   input_descriptors=[StringProperty("city"), days], output_descriptors=[StringProperty("weather")]),
    ]


TOOLS_SYSTEM = ("You may call these tools:\n{% for tool in __TOOLS__ %}- {{ tool | tojson }}\n{% endfor %}"
                "{% if not __TOOLS__ %}no tools{% endif %}")


def parser_flow(url, parser, send_message=True, tools=True):
    from wayflowcore.outputparser import JsonToolOutputParser, PythonToolOutputParser
    from wayflowcore.templates.reacttemplates import ReactToolOutputParser
    parsers = {"json": JsonToolOutputParser, "python": PythonToolOutputParser, "react": ReactToolOutputParser}
    tpl = PromptTemplate(
        messages=[Message(content=TOOLS_SYSTEM, message_type=MessageType.SYSTEM),
                  Message(content="{{ question }}", message_type=MessageType.USER)],
        tools=prompt_tools() if tools else None, native_tool_calling=False, output_parser=parsers[parser](),
    )
    step = PromptExecutionStep(prompt_template=tpl, llm=llm(url), name="answer", send_message=send_message)
    return Flow.from_steps([step], name="prompted")


def parser_scenario(name, parser, answer, description, send_message=True, tools=True):
    @scenario(name, description)
    def _(url):
        return {"flow": parser_flow(url, parser, send_message, tools), "inputs": {"question": "What time is it in Paris?"},
                "answers": [answer]}


parser_scenario("tools_json_parser_call", "json", '{"name": "current_time", "parameters": {"zone": "Europe/Paris"}}',
                "native_tool_calling false: __TOOLS__ lists the tools in OpenAI format, the request has no tools; a JSON call is parsed (the output is the empty thoughts, the message a tool request)")
parser_scenario("tools_json_parser_repaired", "json",
                'Sure! ```json\n[{"name": "forecast", "parameters": {"city": "Paris", "days": "3", "unit": "C"}}, {"name": "current_time", "parameters": {}},]\n```',
                "JsonToolOutputParser: JSON repaired out of prose and a fence, two calls, arguments corrected to the tool's types, an unknown argument dropped")
parser_scenario("tools_json_parser_text", "json", "It is noon in Paris.",
                "JsonToolOutputParser: an answer without a call stays text", send_message=False)
parser_scenario("tools_json_parser_bad_call", "json", 'Calling {"name": "current_time", "arguments": {"zone": "UTC"}}',
                "JsonToolOutputParser: a call without `parameters` is not a call; the text is the output")
parser_scenario("tools_python_parser_call", "python", 'forecast("Paris", days=2)\ncurrent_time(zone=get_zone(city="Paris"))',
                "PythonToolOutputParser: calls in Python syntax, nested calls first, positional arguments as arg0..., expressions as their source")
parser_scenario("tools_python_parser_values", "python",
                "lookup('Rome', -1, days=-1, unit=None, extra=[1, 'two', {'k': (3, 4.5)}], flag=True, big=10**3, s=\"it's\", f=1.50, n=a.b, **more); forecast(city=42, days='7')",
                "PythonToolOutputParser: a tool not offered keeps every argument: constants as values, other expressions unparsed as Python writes them; an offered tool's arguments corrected to its types")
parser_scenario("tools_python_parser_text", "python", "The time is 12:00, I think.",
                "PythonToolOutputParser: text that is not Python is no call")
parser_scenario("tools_react_parser_call", "react",
                '## Thought: I need the time in Paris\n## Action:\n```json\n{"name": "current_time", "parameters": {"zone": "Europe/Paris"}}\n```\n## Observation: 12:00',
                "ReactToolOutputParser: the thought becomes the output, the action the call")
parser_scenario("tools_react_parser_no_fence", "react",
                'Thinking aloud.\n{"name": "forecast", "parameters": {"city": "Oslo", "days": 1.0}}',
                "ReactToolOutputParser: without `## Action:` and a fence the whole text is read as JSON; no thoughts")
parser_scenario("tools_react_parser_text", "react", "## Thought: nothing to call\nIt is noon.",
                "ReactToolOutputParser: no call, the text unchanged")
parser_scenario("tools_parser_no_tools", "json", '{"name": "anything", "parameters": {"x": 1}}',
                "a tool parser in a template without tools: __TOOLS__ is empty, a call to any name is still parsed, its arguments kept", tools=False)


@scenario("tools_native", "a template with tools and native_tool_calling (the default): the request carries them in OpenAI's format (titled parameters, `required` only for a tool with parameters); a text answer is the output")
def _(url):
    tpl = PromptTemplate(messages=[Message(content="You can call tools.", message_type=MessageType.SYSTEM),
                                   Message(content="{{ question }}", message_type=MessageType.USER)],
                         tools=prompt_tools() + [no_argument_tool()])
    step = PromptExecutionStep(prompt_template=tpl, llm=llm(url), name="answer")
    return {"flow": Flow.from_steps([step], name="native"), "inputs": {"question": "What time is it in Paris?"},
            "answers": ["It is noon."]}


def no_argument_tool():
    from wayflowcore.tools import ServerTool
    return ServerTool(name="counter_value", description="The counter's value", func=counter_value, input_descriptors=[],
                      output_descriptors=[IntegerProperty("value")])


def history_template(placeholder):
    messages = [Message(content="You are terse.", message_type=MessageType.SYSTEM)]
    if placeholder:
        messages.append(PromptTemplate.CHAT_HISTORY_PLACEHOLDER)
    else:
        messages.append(Message(content="Conversation:\n{% for m in __CHAT_HISTORY__ %}{{ m.message_type }}: {{ m.content }}\n{% endfor %}",
                                message_type=MessageType.USER))
    messages.append(Message(content="Answer the last question about {{ topic }}.", message_type=MessageType.USER))
    return PromptTemplate(messages=messages, pre_rendering_transforms=[RemoveEmptyNonUserMessageTransform()],
                          post_rendering_transforms=[CoalesceSystemMessagesTransform()])


def history_document(url, placeholder):
    """WayFlow cannot export a PromptExecutionStep whose template reads the chat history (FORMAT.md
    11): the document is the export of the same flow without it, with the template's history
    message put back and its `inputs` left to inference."""
    flow = prompt_flow(url, PromptTemplate(
        messages=[Message(content="You are terse.", message_type=MessageType.SYSTEM),
                  Message(content="Answer the last question about {{ topic }}.", message_type=MessageType.USER)],
        pre_rendering_transforms=[RemoveEmptyNonUserMessageTransform()],
        post_rendering_transforms=[CoalesceSystemMessagesTransform()]), before=history_steps())
    doc = export(flow)
    tpl = next(c for c in components(doc).values() if c["component_type"] == "PluginPromptTemplate")
    inserted = copy.deepcopy(tpl["messages"][0])
    if placeholder:
        inserted["contents"] = [{"type": "text", "content": "$$__CHAT_HISTORY_PLACEHOLDER__$$"}]
    else:
        inserted["role"] = "user"
        inserted["contents"] = [{"type": "text", "content": history_template(False).messages[1].content}]
        node = by_name(doc, "answer")
        node["inputs"].append({"title": "__CHAT_HISTORY__"})
    tpl["messages"].insert(1, inserted)
    tpl["inputs"] = None
    return doc


def history_steps():
    return [InputMessageStep("What do you want to know?", name="ask"), OutputMessageStep("", name="empty_note"),
            OutputMessageStep("Let me think.", name="say")]


@scenario("template_chat_history_placeholder", "the chat history placeholder: the conversation (user and agent messages; an empty one removed by a pre-rendering transform) where the marker is. Recorded from the Python flow: WayFlow's loader leaves the history empty")
def _(url):
    flow = prompt_flow(url, history_template(True), before=history_steps())
    return {"run_python": flow, "document": history_document(url, True), "inputs": {"topic": "cats"},
            "answers": ["A feline."], "user": ["what is a cat?"]}


@scenario("template_chat_history_variable", "the chat history as the template variable __CHAT_HISTORY__ (a list of message_type and content). Recorded from the Python flow: WayFlow cannot load it")
def _(url):
    flow = prompt_flow(url, history_template(False), before=history_steps())
    return {"run_python": flow, "document": history_document(url, False), "inputs": {"topic": "cats"},
            "answers": ["A feline."], "user": ["what is a cat?"]}


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def message_summary(conv):
    """Type and content of each message; a tool request's calls too (name and arguments)."""
    def summary(m):
        out = {"type": m.message_type.value, "content": m.content}
        if m.tool_requests:
            out["tool_requests"] = [{"name": r.name, "args": r.args} for r in m.tool_requests]
        return out

    return [summary(m) for m in conv.get_messages()]


def end_of(doc, status):
    name = getattr(status, "complete_step_name", None)
    for c in components(doc).values():
        if c.get("component_type") == "EndNode" and c.get("name") == name:
            return {"name": name, "branch": c.get("branch_name") or "next"}
    return None


def run(name, url):
    description, build = SCENARIOS[name]
    spec = build(url)
    doc = spec.get("document") or export(spec["flow"])
    if "edit" in spec:
        spec["edit"](doc)
    retarget(doc, url)
    with _State.lock:
        _State.requests.clear()
        _State.answers[:] = list(spec.get("answers", []))
    _COUNTER[0] = 40
    loader = AgentSpecLoader(tool_registry=TOOLS)
    record = {"scenario": name, "description": description, "inputs": spec.get("inputs", {}),
              "answers": spec.get("answers", []), "user": spec.get("user", [])}
    flow = None
    try:
        flow = spec.get("run_python") or loader.load_json(json.dumps(doc))
        conv = flow.start_conversation(inputs=spec.get("inputs", {}))
        status = conv.execute()
        for message in spec.get("user", []):
            conv.append_user_message(message)
            status = conv.execute()
        record["status"] = type(status).__name__
        record["outputs"] = getattr(status, "output_values", None)
        record["end"] = end_of(doc, status)
        record["messages"] = message_summary(conv)
    except Exception as e:  # the flow failed: its error is the outcome
        record["status"] = "error"
        record["error"] = {"class": type(e).__name__, "message": str(e)}
    if flow is not None:
        stores = {}
        for step in flow.steps.values():
            ds = getattr(step, "datastore", None)
            if ds is not None:
                stores[ds.id] = {c: ds.list(c) for c in ds.describe()}
        if stores:
            record["datastores"] = stores
    with _State.lock:
        record["requests"] = copy.deepcopy(_State.requests)
    retarget(doc, URL_PLACEHOLDER)
    record["document"] = doc
    return record


def no_nan(x):
    """pandas' NaN (a missing number) as null: JSON has no NaN, and Weft gives null there."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [no_nan(v) for v in x]
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=os.path.join(root, "crates/weft-exec/tests/fixtures/wayflow_flows.json"))
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    url = start_server()
    names = args.only or list(SCENARIOS)
    records = [run(n, url) for n in names]
    for r in records:
        print(f"{r['scenario']}: {r['status']} {r.get('end') or r.get('error') or ''}", file=sys.stderr)
    # Scenarios running the same document share it (`"document": "<name of the first>"`).
    documents = {}
    for r in records:
        same = next((k for k, d in documents.items() if d == r["document"]), None)
        if same is None:
            documents[r["scenario"]] = r["document"]
            same = r["scenario"]
        r["document"] = same
    out = no_nan({"wayflowcore_version": "26.3.1", "documents": documents, "scenarios": records})
    with open(args.out, "w") as f:
        f.write("{\n")
        for key in ("wayflowcore_version", "documents", "scenarios"):
            value = out[key]
            f.write(f"{json.dumps(key)}: ")
            if isinstance(value, dict):
                f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False, allow_nan=False)}" for k, v in value.items()) + "\n}")
            elif isinstance(value, list):
                f.write("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False, allow_nan=False, default=repr) for v in value) + "\n]")
            else:
                f.write(json.dumps(value))
            f.write(",\n" if key != "scenarios" else "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
