#!/usr/bin/env python3
"""Generate `crates/weft-spec/src/catalog/types.rs` from the reference implementations.

Run it with a Python that has pyagentspec 26.3.1 and wayflowcore 26.3.1 installed (see
`shared/agentspec/tools/README.md` for the venv):

    python tools/gen_catalog.py > crates/weft-spec/src/catalog/types.rs
    python tools/gen_catalog.py --check [--types PATH] [--corpus DIR]

The first form prints the Rust table (piped through `rustfmt --edition 2024` when rustfmt is on
PATH). `--check` instead compares the generated text with the file on disk and walks every
component of the corpus documents, reporting keys the table does not know, required or
always-written fields that are missing, fields written below their `since` version, field order
differences and wrong plugin names. It exits non-zero when it finds anything.

Everything is read from the pydantic classes: field order (`model_fields`, which is the order
the serializer writes), required/default, the JSON literal of defaults, `SensitiveField`
markers, the version-gated exclusions (`_versioned_model_fields_to_exclude`, evaluated at every
known version), the per-type floor (`min_agentspec_version`) and the abstract bases (by
`issubclass`). The few decisions that cannot be read off the classes are listed in OVERRIDES,
TY_OVERRIDES and COMMENTS below, each with its reason; that is the "reviewed by hand" part.
"""

from __future__ import annotations

import argparse
import enum
import glob
import json
import os
import shutil
import subprocess
import sys
import types as pytypes
import typing
import warnings
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

warnings.filterwarnings("ignore")

import pydantic  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

import pyagentspec  # noqa: E402
from pyagentspec import property as _pyprop  # noqa: E402
from pyagentspec._component_registry import BUILTIN_CLASS_MAP  # noqa: E402
from pyagentspec.a2aagent import A2AConnectionConfig  # noqa: E402
from pyagentspec.agent import Agent  # noqa: E402
from pyagentspec.agenticcomponent import AgenticComponent  # noqa: E402
from pyagentspec.auth import AuthConfig, OAuthClientConfig  # noqa: E402
from pyagentspec.component import Component, ComponentWithIO  # noqa: E402
from pyagentspec.datastores.datastore import Datastore  # noqa: E402
from pyagentspec.datastores.oracle import OracleDatabaseConnectionConfig  # noqa: E402
from pyagentspec.datastores.postgres import PostgresDatabaseConnectionConfig  # noqa: E402
from pyagentspec.flows.edges.controlflowedge import ControlFlowEdge  # noqa: E402
from pyagentspec.flows.edges.dataflowedge import DataFlowEdge  # noqa: E402
from pyagentspec.flows.flow import Flow  # noqa: E402
from pyagentspec.flows.node import Node  # noqa: E402
from pyagentspec.llms.geminiauthconfig import GeminiAuthConfig  # noqa: E402
from pyagentspec.llms.llmconfig import LlmConfig  # noqa: E402
from pyagentspec.llms.llmgenerationconfig import LlmGenerationConfig  # noqa: E402
from pyagentspec.llms.ociclientconfig import OciClientConfig  # noqa: E402
from pyagentspec.mcp.clienttransport import ClientTransport, RemoteTransport  # noqa: E402
from pyagentspec.mcp.tools import MCPToolSpec  # noqa: E402
from pyagentspec.retrypolicy import RetryPolicy  # noqa: E402
from pyagentspec.sensitive_field import SENSITIVE_FIELD_MARKER  # noqa: E402
from pyagentspec.specialized_agent import AgentSpecializationParameters  # noqa: E402
from pyagentspec.tools.servertool import ServerTool  # noqa: E402
from pyagentspec.tools.tool import Tool  # noqa: E402
from pyagentspec.tools.toolbox import ToolBox  # noqa: E402
from pyagentspec.transforms.transforms import MessageTransform  # noqa: E402
from pyagentspec.versioning import _LEGACY_AGENTSPEC_VERSIONS, AgentSpecVersionEnum  # noqa: E402

import wayflowcore  # noqa: E402
from wayflowcore.agentspec.components import all_deserialization_plugin  # noqa: E402
from wayflowcore.agentspec.components.contextprovider import PluginContextProvider  # noqa: E402
from wayflowcore.agentspec.components.embeddingmodels import PluginEmbeddingConfig  # noqa: E402
from wayflowcore.agentspec.components.messagelist import PluginMessage  # noqa: E402
from wayflowcore.agentspec.components.outputparser import PluginOutputParser  # noqa: E402
from wayflowcore.agentspec.components.search import (  # noqa: E402
    PluginSearchConfig,
    PluginVectorConfig,
    PluginVectorRetrieverConfig,
)
from wayflowcore.agentspec.components.template import PluginPromptTemplate  # noqa: E402

Property = _pyprop.Property

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TYPES_RS = os.path.join(REPO, "crates", "weft-spec", "src", "catalog", "types.rs")
DEFAULT_CORPUS = "/work/shared/agentspec/corpus/valid"

# --------------------------------------------------------------------------------------------
# Data that is not in the classes
# --------------------------------------------------------------------------------------------

# Core types in the order of FORMAT.md section 2 (the table is written in this order; the
# generator checks it is exactly the set of concrete classes of pyagentspec's registry).
CORE_ORDER = """
Flow ControlFlowEdge DataFlowEdge
StartNode EndNode LlmNode ToolNode AgentNode FlowNode BranchingNode MapNode ParallelMapNode
ParallelFlowNode InputMessageNode OutputMessageNode ApiNode CatchExceptionNode
LlmConfig OpenAiCompatibleConfig VllmConfig OllamaConfig OpenAiConfig OciGenAiConfig GeminiConfig
DbmsVectorChainLlmConfig OciClientConfigWithApiKey OciClientConfigWithSecurityToken
OciClientConfigWithInstancePrincipal OciClientConfigWithResourcePrincipal
GeminiAIStudioAuthConfig GeminiVertexAIAuthConfig
ServerTool ClientTool RemoteTool BuiltinTool MCPTool MCPToolBox MCPToolSpec
StdioTransport SSETransport SSEmTLSTransport StreamableHTTPTransport StreamableHTTPmTLSTransport
OAuthConfig OAuthClientConfig
Agent A2AAgent A2AConnectionConfig OciAgent SpecializedAgent AgentSpecializationParameters Swarm
ManagerWorkers
MessageSummarizationTransform ConversationSummarizationTransform InMemoryCollectionDatastore
OracleDatabaseDatastore PostgresDatabaseDatastore TlsOracleDatabaseConnectionConfig
MTlsOracleDatabaseConnectionConfig TlsPostgresDatabaseConnectionConfig
""".split()

# Plugin types FORMAT.md names without describing them: fields are kept verbatim by Weft.
# (The datastore nodes and datastores are described: Weft runs them over an in-memory datastore.)
GENERIC = set(
    """
PluginOciGenAiEmbeddingConfig PluginOllamaEmbeddingConfig
PluginOpenAiEmbeddingConfig PluginVllmEmbeddingConfig PluginOpenAiCompatibleEmbeddingConfig
PluginSearchToolBox PluginSearchConfig PluginVectorRetrieverConfig PluginVectorConfig
""".split()
)

# Abstract bases -> Rust `Kind`, in the order kinds are listed in a row. A type gets every kind
# whose class it is a subclass of; a component-typed field gets the first kind all of its
# accepted classes share (walking the MRO of the first one).
KIND_BASES: List[Tuple[type, str]] = [
    (Node, "Node"),
    (Flow, "Flow"),
    (Agent, "Agent"),
    (AgenticComponent, "Agentic"),
    (LlmConfig, "LlmConfig"),
    (Tool, "Tool"),
    (ServerTool, "ServerTool"),
    (ToolBox, "ToolBox"),
    (MCPToolSpec, "McpToolSpec"),
    (ClientTransport, "ClientTransport"),
    (RemoteTransport, "RemoteTransport"),
    (AuthConfig, "AuthConfig"),
    (OAuthClientConfig, "OAuthClientConfig"),
    (OciClientConfig, "OciClientConfig"),
    (GeminiAuthConfig, "GeminiAuthConfig"),
    (MessageTransform, "MessageTransform"),
    (Datastore, "Datastore"),
    (OracleDatabaseConnectionConfig, "OracleConnectionConfig"),
    (PostgresDatabaseConnectionConfig, "PostgresConnectionConfig"),
    (ControlFlowEdge, "ControlFlowEdge"),
    (DataFlowEdge, "DataFlowEdge"),
    (A2AConnectionConfig, "A2AConnectionConfig"),
    (AgentSpecializationParameters, "SpecializationParameters"),
    (PluginPromptTemplate, "PromptTemplate"),
    (PluginOutputParser, "OutputParser"),
    (PluginContextProvider, "ContextProvider"),
    (PluginEmbeddingConfig, "EmbeddingConfig"),
    (PluginSearchConfig, "SearchConfig"),
    (PluginVectorRetrieverConfig, "SearchConfig"),
    (PluginVectorConfig, "SearchConfig"),
]

# Per-type floors that are not the class attribute.
MIN_VERSION_OVERRIDES = {
    # `LlmConfig._infer_min_agentspec_version_from_configuration`: a bare LlmConfig is 26.1.2
    # (it was abstract before); the class attribute stays 25.4.1 for its subclasses.
    "LlmConfig": "26.1.2",
}

# (type, field) -> Rust `Ty` where the annotation has no exact `Ty` counterpart.
TY_OVERRIDES = {
    # Union[bool, HandoffMode]: legacy booleans are accepted next to the enum strings.
    ("Swarm", "handoff"): "Ty::Any",
    # Union[str, Dict[str, Any]]: a path or the credentials object.
    ("GeminiVertexAIAuthConfig", "credentials"): "Ty::Any",
    # Union[str, bytes, Any].
    ("ApiNode", "data"): "Ty::Any",
    ("RemoteTool", "data"): "Ty::Any",
    # List[List[str]]: [name, description(, display name)] triples.
    ("PluginChoiceNode", "next_branches"): "Ty::Any",
    # Union[PluginRegexPattern, str] / Union[Dict[str, ...], PluginRegexPattern, str].
    ("PluginRegexNode", "regex_pattern"): "Ty::Any",
    ("PluginRegexOutputParser", "regex_pattern"): "Ty::Any",
    # Union[Agent, LlmConfig]: no single kind covers both.
    ("PluginManagerWorkers", "group_manager"): "Ty::Comp(Kind::Component)",
    # List[Union[PluginMCPToolSpec, str]]: PluginMCPToolSpec is a Tool, not an MCPToolSpec.
    ("PluginMCPToolBox", "tool_filter"): "Ty::StrOrCompList(Kind::Tool)",
}

# (type, field) -> comment written above the field in types.rs.
COMMENTS = {
    ("MessageSummarizationTransform", "datastore"): (
        "Default: a generated InMemoryCollectionDatastore with the cache schema."
    ),
    ("ConversationSummarizationTransform", "datastore"): (
        "Default: a generated InMemoryCollectionDatastore with the cache schema."
    ),
    ("Swarm", "handoff"): '"never" | "optional" | "always", or a legacy boolean.',
    ("PluginManagerWorkers", "group_manager"): "An Agent or an LlmConfig.",
    ("PluginMCPToolBox", "tool_filter"): "Names or PluginMCPToolSpec (a Tool) components.",
    ("PluginChoiceNode", "next_branches"): "A list of [name, description(, display name)].",
    ("PluginRegexNode", "regex_pattern"): "A string or {pattern, match, flags}.",
    ("PluginRegexOutputParser", "regex_pattern"): (
        "A string, {pattern, match, flags}, or an object of named patterns."
    ),
    # The SensitiveField marker of these sits inside Optional[...], where pyagentspec's
    # exporter does not see it; FORMAT.md 3.5 still lists the OAuth ones as sensitive.
    ("OAuthClientConfig", "client_id"): (
        "Marker inside Optional: pyagentspec exports these 3 unredacted; FORMAT 3.5 lists them."
    ),
    ("TlsPostgresDatabaseConnectionConfig", "sslkey"): (
        "SensitiveField inside Optional, which pyagentspec 26.3.1 exports unredacted."
    ),
    ("OciClientConfigWithApiKey", "auth_type"): "Fixed by the type, but written (see corpus).",
    ("OciClientConfigWithSecurityToken", "auth_type"): "Fixed by the type, but written.",
    ("OciClientConfigWithInstancePrincipal", "auth_type"): "Fixed by the type, but written.",
    ("OciClientConfigWithResourcePrincipal", "auth_type"): "Fixed by the type, but written.",
    ("PluginSwarm", "relationships"): "PluginSwarm is not an AgenticComponent (no kinds).",
    ("PluginManagerWorkers", "workers"): "PluginManagerWorkers is not an AgenticComponent.",
}

COMMON_KEYS = {
    "component_type",
    "id",
    "name",
    "description",
    "metadata",
    "$referenced_components",
    "component_plugin_name",
    "component_plugin_version",
    "min_agentspec_version",
    "max_agentspec_version",
}
IO_KEYS = {"inputs", "outputs", "branches"}

VERSIONS = [v for v in AgentSpecVersionEnum if v.value not in _LEGACY_AGENTSPEC_VERSIONS]


def rust_version(v: str) -> str:
    return "Version::V" + v.replace(".", "_")


def vkey(v: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


# --------------------------------------------------------------------------------------------
# Introspection
# --------------------------------------------------------------------------------------------


def all_types() -> List[Tuple[str, type, Optional[Tuple[str, str]]]]:
    """(component_type, class, plugin) for every concrete core type, then every plugin type."""
    concrete = {n: c for n, c in BUILTIN_CLASS_MAP.items() if not c._is_abstract}
    if set(concrete) != set(CORE_ORDER) or len(CORE_ORDER) != len(set(CORE_ORDER)):
        raise SystemExit(
            "core registry differs from CORE_ORDER: "
            f"missing {sorted(set(concrete) - set(CORE_ORDER))}, "
            f"extra {sorted(set(CORE_ORDER) - set(concrete))}"
        )
    rows = [(n, concrete[n], None) for n in CORE_ORDER]
    for plugin in all_deserialization_plugin:
        for name, cls in plugin.component_types_and_models.items():
            if cls._is_abstract:
                continue
            rows.append((name, cls, (plugin.plugin_name, plugin.plugin_version)))
    names = [r[0] for r in rows]
    if len(names) != len(set(names)):
        raise SystemExit("duplicate component types")
    missing = GENERIC - set(names)
    if missing:
        raise SystemExit(f"GENERIC names unknown types: {sorted(missing)}")
    return rows


def strip_annotated(ann: Any) -> Tuple[Any, bool]:
    """Remove Annotated[...] layers; report whether a SensitiveField marker was among them."""
    sensitive = False
    while typing.get_origin(ann) is typing.Annotated:
        sensitive |= SENSITIVE_FIELD_MARKER in ann.__metadata__
        ann = typing.get_args(ann)[0]
    return ann, sensitive


def split_optional(ann: Any) -> Tuple[Any, bool, bool]:
    """(core annotation, accepts None, nested sensitive marker)."""
    ann, sensitive = strip_annotated(ann)
    if ann is Any:
        return ann, True, sensitive
    if typing.get_origin(ann) in (Union, pytypes.UnionType):
        args = []
        for a in typing.get_args(ann):
            a, s = strip_annotated(a)
            sensitive |= s
            args.append(a)
        non_none = [a for a in args if a is not type(None)]
        nullable = len(non_none) != len(args)
        if len(non_none) == 1:
            return non_none[0], nullable, sensitive
        return Union[tuple(non_none)], nullable, sensitive
    return ann, False, sensitive


def is_component_class(a: Any) -> bool:
    return isinstance(a, type) and issubclass(a, Component)


def kind_for(classes: List[type]) -> str:
    for base in classes[0].__mro__:
        for kbase, kind in KIND_BASES:
            if base is kbase and all(issubclass(c, kbase) for c in classes):
                return kind
    return "Component"


def union_members(a: Any) -> List[Any]:
    if typing.get_origin(a) in (Union, pytypes.UnionType):
        return [strip_annotated(x)[0] for x in typing.get_args(a)]
    return [a]


def ty_of(ann: Any, where: str) -> str:
    """Map a (non-Optional) annotation to a Rust `Ty`."""
    ann, _ = strip_annotated(ann)
    origin = typing.get_origin(ann)
    args = [strip_annotated(a)[0] for a in typing.get_args(ann)]
    if ann is str:
        return "Ty::Str"
    if ann is bool:
        return "Ty::Bool"
    if ann is int:
        return "Ty::Int"
    if ann is float:
        return "Ty::Num"
    if ann is Any:
        return "Ty::Any"
    if origin is Literal:
        return enum_ty([str(a) for a in args])
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return enum_ty([m.value for m in ann])
    if ann is RetryPolicy:
        return "Ty::RetryPolicy"
    if ann is LlmGenerationConfig:
        return "Ty::GenConfig"
    if ann is Property:
        return "Ty::Prop"
    if is_component_class(ann):
        return f"Ty::Comp(Kind::{kind_for([ann])})"
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return "Ty::Object"  # plain value objects (session parameters, OAuth endpoints, ...)
    if origin in (dict, Dict):
        key, val = args if args else (str, Any)
        if val is str:
            return "Ty::StrMap"
        if val is Property:
            return "Ty::PropMap"
        if is_component_class(val):
            return f"Ty::CompMap(Kind::{kind_for([val])})"
        return "Ty::Object"
    if origin in (list, List):
        item = args[0] if args else Any
        if item is str:
            return "Ty::StrList"
        if item is Property:
            return "Ty::Props"
        if item is PluginMessage:
            return "Ty::Messages"
        if is_component_class(item):
            return f"Ty::CompList(Kind::{kind_for([item])})"
        if isinstance(item, type) and issubclass(item, enum.Enum):
            return "Ty::StrList"  # list of enum strings
        item_origin = typing.get_origin(item)
        pair = [strip_annotated(a)[0] for a in typing.get_args(item)]
        if item_origin in (tuple, list) and pair and all(is_component_class(p) for p in pair):
            return f"Ty::Pairs(Kind::{kind_for(pair)})"
        members = union_members(item)
        if len(members) > 1 and str in members:
            comps = [m for m in members if m is not str]
            if all(is_component_class(c) for c in comps):
                return f"Ty::StrOrCompList(Kind::{kind_for(comps)})"
        return fallback(where, ann)
    if origin in (Union, pytypes.UnionType):
        members = union_members(ann)
        if set(map(str, members)) == {str(str), str(List[str])}:
            return "Ty::StrOrList"
        comps = [m for m in members if is_component_class(m)]
        lists = [
            m
            for m in members
            if typing.get_origin(m) in (list, List)
            and is_component_class(strip_annotated(typing.get_args(m)[0])[0])
        ]
        if len(comps) + len(lists) == len(members) and comps and lists:
            return f"Ty::CompOrList(Kind::{kind_for(comps)})"
        if comps and len(comps) == len(members):
            return f"Ty::Comp(Kind::{kind_for(comps)})"
        return fallback(where, ann)
    return fallback(where, ann)


def fallback(where: str, ann: Any) -> str:
    print(f"warning: {where}: no Ty for {ann!r}, using Ty::Any", file=sys.stderr)
    return "Ty::Any"


def enum_ty(values: List[str]) -> str:
    return "Ty::Enum(&[" + ", ".join(json.dumps(v) for v in values) + "])"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def contains_component(value: Any) -> bool:
    if isinstance(value, Component):
        return True
    if isinstance(value, (list, tuple)):
        return any(contains_component(v) for v in value)
    if isinstance(value, dict):
        return any(contains_component(v) for v in value.values())
    return False


def excluded_at(cls: type, version: AgentSpecVersionEnum) -> set:
    """The fields the serializer drops at `version` (the methods ignore instance state)."""
    instance = cls.__new__(cls)
    return set(instance._versioned_model_fields_to_exclude(version))


class FieldRow(typing.NamedTuple):
    name: str
    ty: str
    required: bool
    default: Optional[str]  # JSON literal, None for required or null default
    opt: bool  # default null
    nullable: bool
    since: Optional[str]
    sensitive: bool
    comment: Optional[str]


class TypeRow(typing.NamedTuple):
    name: str
    cls: type
    plugin: Optional[Tuple[str, str]]
    kinds: List[str]
    io: str
    min_version: str
    fields: List[FieldRow]
    generic: bool


def describe(name: str, cls: type, plugin: Optional[Tuple[str, str]]) -> TypeRow:
    kinds: List[str] = []
    for base, kind in KIND_BASES:
        if issubclass(cls, base) and kind not in kinds:
            kinds.append(kind)
    if issubclass(cls, Node):
        io = "Io::Node"
    elif issubclass(cls, ComponentWithIO):
        io = "Io::InputsOutputs"
    else:
        io = "Io::None"
    min_version = MIN_VERSION_OVERRIDES.get(
        name, to_jsonable(cls.model_fields["min_agentspec_version"].default)
    )
    generic = name in GENERIC
    fields: List[FieldRow] = []
    if not generic:
        skip = COMMON_KEYS | (IO_KEYS if issubclass(cls, ComponentWithIO) else set())
        exclusions = {v.value: excluded_at(cls, v) for v in VERSIONS}
        for fname, info in cls.model_fields.items():
            if fname in skip or info.exclude:
                continue
            fields_row = describe_field(name, cls, fname, info, exclusions, min_version)
            if fields_row is not None:
                fields.append(fields_row)
    return TypeRow(name, cls, plugin, kinds, io, min_version, fields, generic)


def describe_field(tname, cls, fname, info, exclusions, min_version) -> Optional[FieldRow]:
    written = [v for v, ex in exclusions.items() if fname not in ex]
    if not written:
        return None  # fixed by the type, never written
    since = min(written, key=vkey)
    later = [v for v in exclusions if vkey(v) >= vkey(since)]
    if any(fname in exclusions[v] for v in later):
        raise SystemExit(f"{tname}.{fname}: written only in a middle range of versions")
    if vkey(since) <= vkey(min_version):
        since = None
    ann = info.annotation
    core, accepts_none, nested_sensitive = split_optional(ann)
    ty = TY_OVERRIDES.get((tname, fname)) or ty_of(core, f"{tname}.{fname}")
    sensitive = SENSITIVE_FIELD_MARKER in info.metadata or nested_sensitive
    comment = COMMENTS.get((tname, fname))
    if info.is_required():
        return FieldRow(fname, ty, True, None, False, accepts_none, since, sensitive, comment)
    if info.default_factory is not None:
        value = info.default_factory()
    else:
        value = info.default
    if value is None:
        return FieldRow(fname, ty, False, None, True, True, since, sensitive, comment)
    if contains_component(value):
        if comment is None:
            raise SystemExit(f"{tname}.{fname}: component default needs a COMMENTS entry")
        return FieldRow(fname, ty, False, None, True, True, since, sensitive, comment)
    literal = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return FieldRow(fname, ty, False, literal, False, accepts_none, since, sensitive, comment)


def build_table() -> List[TypeRow]:
    return [describe(n, c, p) for n, c, p in all_types()]


# --------------------------------------------------------------------------------------------
# Rust output
# --------------------------------------------------------------------------------------------


def rust_str(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def render_field(f: FieldRow) -> str:
    text = f"field({rust_str(f.name)}, {f.ty})"
    if f.opt:
        text += ".opt()"
    elif f.default is not None:
        text += f".def({rust_str(f.default)})"
    if f.nullable and not f.opt:
        text += ".nullable()"
    if f.since:
        text += f".since({rust_version(f.since)})"
    if f.sensitive:
        text += ".sensitive()"
    return text


def wrap(expr: str, indent: int) -> List[str]:
    """One array item; a long method chain goes one call per line, as rustfmt would."""
    pad = " " * indent
    if len(pad) + len(expr) + 1 <= 100 or ")." not in expr:
        return [f"{pad}{expr},"]
    head, *calls = expr.split(").")
    lines = [f"{pad}{head})"]
    for i, call in enumerate(calls):
        last = i == len(calls) - 1
        lines.append(f"{pad}    .{call}{'' if last else ')'}{',' if last else ''}")
    return lines


def render(table: List[TypeRow]) -> str:
    out = [
        "//! Generated by tools/gen_catalog.py from pyagentspec "
        f"{pyagentspec.__version__} and wayflowcore {wayflowcore.__version__}; reviewed by hand.",
        "",
        "use super::{field, Io, Kind, Support, Ty, TypeSpec};",
        "use crate::version::Version;",
        "",
        "/// Every known `component_type`: the core types of FORMAT.md section 2, then the WayFlow",
        "/// plugin types, grouped by plugin.",
        "pub static TYPES: &[TypeSpec] = &[",
    ]
    section = None
    for t in table:
        label = "core types" if t.plugin is None else f"plugin {t.plugin[0]}"
        if label != section:
            out.append(f"    // --- {label} ---")
            section = label
        plugin = "None" if t.plugin is None else f"Some(({rust_str(t.plugin[0])}, {rust_str(t.plugin[1])}))"
        kinds = ", ".join(f"Kind::{k}" for k in t.kinds)
        out.append("    TypeSpec {")
        out.append(f"        name: {rust_str(t.name)},")
        out.append(f"        plugin: {plugin},")
        out.append(f"        kinds: &[{kinds}],")
        out.append(f"        io: {t.io},")
        out.append(f"        min_version: {rust_version(t.min_version)},")
        if t.fields:
            out.append("        fields: &[")
            for f in t.fields:
                if f.comment:
                    out.append(f"            // {f.comment}")
                out.extend(wrap(render_field(f), 12))
            out.append("        ],")
        else:
            out.append("        fields: &[],")
        support = "Support::Generic" if t.generic else "Support::Described"
        out.append(f"        support: {support},")
        out.append("    },")
    out.append("];")
    text = "\n".join(out) + "\n"
    return rustfmt(text)


def rustfmt(text: str) -> str:
    exe = shutil.which("rustfmt")
    if exe is None:
        print("warning: rustfmt not found, output left unformatted", file=sys.stderr)
        return text
    res = subprocess.run(
        [exe, "--edition", "2024", "--emit", "stdout"],
        input=text,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"rustfmt failed:\n{res.stderr}")
    return res.stdout


# --------------------------------------------------------------------------------------------
# Corpus check
# --------------------------------------------------------------------------------------------


def load_doc(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        if path.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(fh)
        return json.load(fh)


def check_corpus(table: List[TypeRow], corpus: str) -> List[str]:
    by_name = {t.name: t for t in table}
    problems: List[str] = []
    seen_types: set = set()

    def visit(obj: Any, path: str, version: str, fname: str) -> None:
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                visit(item, f"{path}/{i}", version, fname)
            return
        if not isinstance(obj, dict):
            return
        if "component_type" in obj:
            check_component(obj, path, version, fname)
        for key, value in obj.items():
            visit(value, f"{path}/{key}", version, fname)

    def check_component(obj: Dict[str, Any], path: str, version: str, fname: str) -> None:
        ct = obj["component_type"]
        where = f"{fname}:{path or '/'} ({ct})"
        t = by_name.get(ct)
        if t is None:
            problems.append(f"{where}: unknown component_type")
            return
        seen_types.add(ct)
        if t.plugin is not None and obj.get("component_plugin_name") not in (None, t.plugin[0]):
            problems.append(f"{where}: plugin name {obj['component_plugin_name']!r} != {t.plugin[0]!r}")
        if t.plugin is None and "component_plugin_name" in obj:
            problems.append(f"{where}: core type carries component_plugin_name")
        if t.generic:
            return
        skip = COMMON_KEYS | (IO_KEYS if t.io != "Io::None" else set()) | {"agentspec_version"}
        known = {f.name for f in t.fields}
        for key in obj:
            if key not in skip and key not in known:
                problems.append(f"{where}: key {key!r} not in table")
        for f in t.fields:
            present = f.name in obj
            applies = f.since is None or vkey(version) >= vkey(f.since)
            if present and not applies:
                problems.append(f"{where}: {f.name!r} present at {version} < since {f.since}")
            elif not present and applies:
                kind = "required field" if f.required else "field (exporters write all)"
                problems.append(f"{where}: missing {kind} {f.name!r} at {version}")
        order = [k for k in obj if k in known]
        expected = [f.name for f in t.fields if f.name in obj]
        if order != expected:
            problems.append(f"{where}: field order {order} != table {expected}")

    files = sorted(glob.glob(os.path.join(corpus, "*.json")) + glob.glob(os.path.join(corpus, "*.yaml")))
    for path in files:
        doc = load_doc(path)
        fname = os.path.basename(path)
        if isinstance(doc, dict) and set(doc) == {"$referenced_components"}:
            for key, entry in doc["$referenced_components"].items():
                version = entry.get("agentspec_version", "26.3.1")
                visit(entry, f"/$referenced_components/{key}", version, fname)
            continue
        version = doc.get("agentspec_version") or doc.get("air_version") or "26.3.1"
        if version == "25.4.0":
            version = "25.4.1"
        visit(doc, "", version, fname)
    print(
        f"checked {len(files)} documents, {len(seen_types)} of {len(table)} types seen",
        file=sys.stderr,
    )
    return problems


def check_floors(table: List[TypeRow]) -> List[str]:
    """Cross-check the per-type floors against FORMAT.md 4.2."""
    expected = {
        "25.4.2": "ParallelFlowNode ParallelMapNode BuiltinTool A2AAgent A2AConnectionConfig "
        "SpecializedAgent AgentSpecializationParameters ManagerWorkers Swarm",
        "26.1.2": "CatchExceptionNode GeminiConfig GeminiAIStudioAuthConfig GeminiVertexAIAuthConfig "
        "LlmConfig MessageSummarizationTransform ConversationSummarizationTransform "
        "InMemoryCollectionDatastore OracleDatabaseDatastore PostgresDatabaseDatastore "
        "TlsOracleDatabaseConnectionConfig MTlsOracleDatabaseConnectionConfig "
        "TlsPostgresDatabaseConnectionConfig OAuthConfig OAuthClientConfig",
        "26.3.1": "DbmsVectorChainLlmConfig",
    }
    want = {n: v for v, names in expected.items() for n in names.split()}
    return [
        f"{t.name}: min_version {t.min_version} != FORMAT 4.2 {want.get(t.name, '25.4.1')}"
        for t in table
        if t.plugin is None and t.min_version != want.get(t.name, "25.4.1")
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="check types.rs and the corpus")
    ap.add_argument("--types", default=DEFAULT_TYPES_RS, help="types.rs to compare (--check)")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="valid corpus dir (--check)")
    args = ap.parse_args()
    table = build_table()
    text = render(table)
    if not args.check:
        sys.stdout.write(text)
        return 0
    problems: List[str] = []
    try:
        with open(args.types, encoding="utf-8") as fh:
            if fh.read() != text:
                problems.append(f"{args.types} differs from the generator output")
    except FileNotFoundError:
        problems.append(f"{args.types} does not exist")
    problems += check_floors(table)
    problems += check_corpus(table, args.corpus)
    core = sum(t.plugin is None for t in table)
    generic = sum(t.generic for t in table)
    print(
        f"{len(table)} types: {core} core, {len(table) - core} plugin "
        f"({len(table) - core - generic} described, {generic} generic)",
        file=sys.stderr,
    )
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
