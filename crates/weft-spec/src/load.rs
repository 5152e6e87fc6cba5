//! The loader: a parsed document (and its registries) to a [`Spec`], resolving references.
//!
//! Resolution follows pyagentspec (FORMAT.md section 3.3): every `$referenced_components`
//! table in the document is collected first (a key defined twice is `ref_duplicate`); a
//! reference resolves to a table entry only once the table's owner is being loaded (lexical
//! scope, plus tables already visited); entries load lazily, once, and are shared; a reference
//! back into an entry still loading is `ref_cycle`. Every problem becomes a diagnostic and
//! loading goes on, so one pass reports everything.

use crate::catalog::{self, Default as FieldDefault, Field, Io, Kind, Support, Ty, TypeSpec};
use crate::diagnostic::{Code, Diagnostic, did_you_mean, join, join_index};
use crate::model::{CompId, Component, Origin, Property, SecretRef, Spec, Value, VersionSource};
use crate::source::{Source, describe};
use crate::version::Version;
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// Looks a sensitive value up by its reference key `<component id>.<field>`.
pub type SecretLookup = dyn Fn(&str) -> Option<String> + Sync;

/// What to load.
#[derive(Clone, Copy)]
pub struct LoadInput<'a> {
    /// The document.
    pub document: &'a Source,
    /// Disaggregated-component registries (`--refs`), each `{"$referenced_components": {...}}`.
    pub registries: &'a [Source],
    /// Values of sensitive fields, keyed `<component id>.<field>`.
    pub secrets: &'a HashMap<String, String>,
    /// Where to look for a sensitive value `secrets` lacks (the CLI reads the environment).
    pub secret_fallback: Option<&'a SecretLookup>,
}

impl std::fmt::Debug for LoadInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadInput")
            .field("document", &self.document.name)
            .field("registries", &self.registries.len())
            .finish_non_exhaustive()
    }
}

/// What loading produced: the model when the document could be read at all, and every
/// diagnostic found on the way (errors and warnings, unsorted).
#[derive(Debug)]
pub struct LoadOutput {
    /// The model; `None` when the document could not be parsed or has no usable root.
    pub spec: Option<Spec>,
    /// Components whose own fields had errors: later checks skip them to avoid cascades.
    pub incomplete: Vec<bool>,
    /// Components holding a nested component that failed to load (reported where it is):
    /// checks that would only restate that failure skip them.
    pub partial: Vec<bool>,
    /// Everything found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads a document.
pub fn load(input: LoadInput<'_>) -> LoadOutput {
    let mut diagnostics = Vec::new();
    let doc = match input.document.parse() {
        Ok(v) => v,
        Err(d) => {
            diagnostics.push(d);
            return LoadOutput { spec: None, incomplete: Vec::new(), partial: Vec::new(), diagnostics };
        }
    };
    let mut registries = Vec::new();
    for (i, reg) in input.registries.iter().enumerate() {
        match reg.parse() {
            Ok(v) => registries.push((i + 1, v)),
            Err(mut d) => {
                d.file = Some(reg.name.clone());
                diagnostics.push(d);
            }
        }
    }
    let mut sources = vec![input.document.name.clone()];
    sources.extend(input.registries.iter().map(|r| r.name.clone()));
    let mut loader = Loader::new(input.secrets.clone(), sources.clone());
    loader.fallback = input.secret_fallback;
    loader.diags = diagnostics;
    loader.scan_tables(&doc, "", 0);
    // Registry entries come after the document's tables: a key the document defines itself
    // keeps the document's definition, as pyagentspec does.
    for (src, reg) in &registries {
        loader.scan_registry(reg, *src);
    }
    let (version, version_source) = loader.read_version(&doc);
    let root = loader.load_slot(&doc, "", 0, Kind::Component, true);
    loader.report_unused();
    loader.check_duplicate_ids();
    let Loader { components, incomplete, partial, diags, .. } = loader;
    let spec = root.map(|root| Spec { components, root, version, version_source, sources });
    LoadOutput { spec, incomplete, partial, diagnostics: diags }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryState {
    Unloaded,
    Loading,
    Loaded(Option<CompId>),
}

struct Table {
    /// Pointer of the component (or reference object) owning the table.
    owner: String,
    visited: bool,
}

struct Entry<'a> {
    json: &'a Json,
    pointer: String,
    source: usize,
    table: usize,
    key: String,
    state: EntryState,
    used: bool,
}

struct Loader<'a> {
    components: Vec<Component>,
    incomplete: Vec<bool>,
    partial: Vec<bool>,
    diags: Vec<Diagnostic>,
    tables: Vec<Table>,
    /// Table index by (source, owner pointer).
    table_of: HashMap<(usize, String), usize>,
    entries: Vec<Entry<'a>>,
    keys: HashMap<String, usize>,
    secrets: HashMap<String, String>,
    fallback: Option<&'a SecretLookup>,
    sources: Vec<String>,
    /// How many components (or aliases) are being loaded inside each other right now.
    depth: usize,
    /// Whether the nesting limit was already reported.
    too_deep: bool,
}

/// The deepest nesting of components, counting nesting through references, that the loader
/// follows. It keeps the recursion bounded whatever the document's reference graph.
pub const MAX_COMPONENT_DEPTH: usize = 200;

/// Other names WayFlow's deserializer accepts for a field (pydantic aliases): `(type, field,
/// alias)`. Older WayFlow exports write `message_template` on PluginOutputMessageNode.
const FIELD_ALIASES: &[(&str, &str, &str)] = &[("PluginOutputMessageNode", "message", "message_template")];

/// Defaults the loader applies to fields the catalogue marks required, as WayFlow's runtime does
/// (`OutputMessageStep`'s message template is `{{ message }}`): `(type, field, default)`.
const LOADER_DEFAULTS: &[(&str, &str, &str)] = &[("PluginOutputMessageNode", "message", "{{ message }}")];

fn field_alias(ty: &str, field: &str) -> Option<&'static str> {
    FIELD_ALIASES.iter().find(|(t, f, _)| *t == ty && *f == field).map(|(_, _, a)| *a)
}

fn is_alias(ty: &str, key: &str) -> bool {
    FIELD_ALIASES.iter().any(|(t, _, a)| *t == ty && *a == key)
}

fn loader_default(ty: &str, field: &str) -> Option<&'static Json> {
    static VALUES: std::sync::LazyLock<Vec<Json>> =
        std::sync::LazyLock::new(|| LOADER_DEFAULTS.iter().map(|(_, _, v)| Json::String((*v).to_owned())).collect());
    let i = LOADER_DEFAULTS.iter().position(|(t, f, _)| *t == ty && *f == field)?;
    VALUES.get(i)
}

/// Whether a reference at `use_ptr` is part of a flow's structure (an item of a list such as
/// `nodes`, or an edge's or flow's node slot) rather than a component's own field.
fn structural_use(use_ptr: &str) -> bool {
    let last = use_ptr.rsplit('/').next().unwrap_or_default();
    last.bytes().all(|b| b.is_ascii_digit()) || matches!(last, "from_node" | "to_node" | "source_node" | "destination_node" | "start_node")
}

/// Keys every component may carry besides its type's fields.
const COMMON_KEYS: &[&str] = &[
    "component_type",
    "id",
    "name",
    "description",
    "metadata",
    "component_plugin_name",
    "component_plugin_version",
    "$referenced_components",
    "agentspec_version",
    "air_version",
    "min_agentspec_version",
    "max_agentspec_version",
];

impl<'a> Loader<'a> {
    fn new(secrets: HashMap<String, String>, sources: Vec<String>) -> Self {
        Loader {
            components: Vec::new(),
            incomplete: Vec::new(),
            partial: Vec::new(),
            diags: Vec::new(),
            tables: Vec::new(),
            table_of: HashMap::new(),
            entries: Vec::new(),
            keys: HashMap::new(),
            secrets,
            fallback: None,
            sources,
            depth: 0,
            too_deep: false,
        }
    }

    fn diag(&mut self, mut d: Diagnostic, source: usize) {
        if source > 0 {
            d.file = self.sources.get(source).cloned();
        }
        self.diags.push(d);
    }

    // ----- reference tables -------------------------------------------------------------

    fn scan_registry(&mut self, reg: &'a Json, source: usize) {
        let Some(table) = reg.get("$referenced_components").and_then(Json::as_object) else {
            self.diag(
                Diagnostic::new(Code::Parse, "", "a registry must be an object with a single `$referenced_components` table")
                    .hint("pass with --refs a file of the form {\"$referenced_components\": {\"<key>\": {...}}}"),
                source,
            );
            return;
        };
        let t = self.add_table(source, String::new(), true);
        let base = "/$referenced_components";
        for (key, entry) in table {
            let ptr = join(base, key);
            if !entry.is_object() {
                // A plain value: the value of a sensitive field, supplied by the registry.
                if let Some(s) = entry.as_str() {
                    self.secrets.entry(key.clone()).or_insert_with(|| s.to_owned());
                } else {
                    self.secrets.entry(key.clone()).or_insert_with(|| entry.to_string());
                }
                continue;
            }
            self.add_entry(key, entry, ptr.clone(), source, t);
            self.scan_tables(entry, &ptr, source);
        }
    }

    fn add_table(&mut self, source: usize, owner: String, visited: bool) -> usize {
        let idx = self.tables.len();
        self.table_of.insert((source, owner.clone()), idx);
        self.tables.push(Table { owner, visited });
        idx
    }

    fn add_entry(&mut self, key: &str, json: &'a Json, pointer: String, source: usize, table: usize) {
        if source > 0 && self.keys.get(key).is_some_and(|&first| self.entries[first].source == 0) {
            return;
        }
        if let Some(&first) = self.keys.get(key) {
            let first_ptr = self.entries[first].pointer.clone();
            let first_src = self.entries[first].source;
            let where_first = if first_src == source {
                format!("at {}", crate::diagnostic::display_pointer(&first_ptr))
            } else {
                format!("in {}", self.sources[first_src])
            };
            self.diag(
                Diagnostic::new(
                    Code::RefDuplicate,
                    pointer,
                    format!("the reference key \"{key}\" is defined twice: already {where_first}"),
                )
                .hint("define each shared component once, in the table of the lowest component that contains all its uses"),
                source,
            );
            return;
        }
        let idx = self.entries.len();
        self.keys.insert(key.to_owned(), idx);
        self.entries.push(Entry { json, pointer, source, table, key: key.to_owned(), state: EntryState::Unloaded, used: false });
    }

    /// Collects every `$referenced_components` table below `v`, depth first, keys in file order.
    ///
    /// The walk keeps the path as a stack of tokens and builds a pointer string only where a
    /// table is found: most documents are large and have few tables.
    fn scan_tables(&mut self, v: &'a Json, ptr: &str, source: usize) {
        let mut path: Vec<PathToken<'a>> = Vec::new();
        self.scan_tables_at(v, ptr, &mut path, source);
    }

    fn scan_tables_at(&mut self, v: &'a Json, base: &str, path: &mut Vec<PathToken<'a>>, source: usize) {
        match v {
            Json::Object(map) => {
                for (k, child) in map {
                    if k == "$referenced_components" {
                        let owner = pointer_of(base, path);
                        let child_ptr = join(&owner, k);
                        if let Json::Object(table) = child {
                            let t = self.add_table(source, owner, false);
                            for (key, entry) in table {
                                let entry_ptr = join(&child_ptr, key);
                                self.add_entry(key, entry, entry_ptr.clone(), source, t);
                                self.scan_tables(entry, &entry_ptr, source);
                            }
                        } else if !child.is_null() {
                            self.diag(
                                Diagnostic::new(
                                    Code::BadValue,
                                    child_ptr,
                                    format!(
                                        "`$referenced_components` must be an object mapping keys to components, not {}",
                                        describe(child)
                                    ),
                                ),
                                source,
                            );
                        }
                    } else if child.is_object() || child.is_array() {
                        path.push(PathToken::Key(k));
                        self.scan_tables_at(child, base, path, source);
                        path.pop();
                    }
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if item.is_object() || item.is_array() {
                        path.push(PathToken::Index(i));
                        self.scan_tables_at(item, base, path, source);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }

    fn enter_table(&mut self, source: usize, owner: &str) {
        if let Some(&t) = self.table_of.get(&(source, owner.to_owned())) {
            self.tables[t].visited = true;
        }
    }

    fn resolve(&mut self, key: &str, use_ptr: &str, source: usize, kind: Kind) -> Option<CompId> {
        let Some(&ei) = self.keys.get(key) else {
            let hint = match did_you_mean(key, self.keys.keys().map(String::as_str)) {
                Some(k) => format!("did you mean \"{k}\"? Otherwise define it in a `$referenced_components` table or pass the registry that defines it with --refs"),
                None => "define it in a `$referenced_components` table of this component or an ancestor, or pass the registry that defines it with --refs".to_owned(),
            };
            self.diag(
                Diagnostic::new(
                    Code::RefMissing,
                    use_ptr,
                    format!("`$component_ref` \"{key}\" is not defined in any `$referenced_components` table or registry"),
                )
                .hint(hint),
                source,
            );
            return None;
        };
        let table = self.entries[ei].table;
        if !self.tables[table].visited {
            let owner = crate::diagnostic::display_pointer(&self.tables[table].owner).to_owned();
            self.diag(
                Diagnostic::new(
                    Code::RefMissing,
                    use_ptr,
                    format!("`$component_ref` \"{key}\" is defined in the table of {owner}, which is not in scope here"),
                )
                .hint("a reference sees only the tables of its own component and of its ancestors: move the definition up to a common ancestor"),
                source,
            );
            return None;
        }
        self.entries[ei].used = true;
        let result = match self.entries[ei].state {
            EntryState::Loading => {
                self.diag(
                    Diagnostic::new(
                        Code::RefCycle,
                        use_ptr,
                        format!("`$component_ref` \"{key}\" refers back to a component that is still being loaded (a reference cycle)"),
                    )
                    .hint("a component cannot contain itself: break the cycle by removing one of the references"),
                    source,
                );
                return None;
            }
            EntryState::Loaded(c) => c,
            EntryState::Unloaded => {
                if !self.descend(use_ptr, source) {
                    return None;
                }
                self.entries[ei].state = EntryState::Loading;
                let json = self.entries[ei].json;
                let ptr = self.entries[ei].pointer.clone();
                let src = self.entries[ei].source;
                let r = match json.get("$component_ref").and_then(Json::as_str) {
                    Some(alias) => {
                        self.enter_table(src, &ptr);
                        self.resolve(alias, &join(&ptr, "$component_ref"), src, Kind::Component)
                    }
                    None => match json {
                        Json::Object(obj) => {
                            let origin = if src == 0 { Origin::Table(key.to_owned()) } else { Origin::Registry(key.to_owned()) };
                            self.load_component(obj, &ptr, src, origin)
                        }
                        other => {
                            self.diag(
                                Diagnostic::new(
                                    Code::BadValue,
                                    ptr.clone(),
                                    format!("the table entry \"{key}\" must be a component object, not {}", describe(other)),
                                ),
                                src,
                            );
                            None
                        }
                    },
                };
                self.entries[ei].state = EntryState::Loaded(r);
                self.depth -= 1;
                r
            }
        };
        if result.is_none() && self.entries[ei].json.get("$component_ref").is_none() && !structural_use(use_ptr) {
            // The entry exists but did not load (its own errors are reported where it is): the
            // component using it in one of its fields (a node's tool, subflow or LLM config)
            // cannot be complete either, so say so here too, where a reader of this component
            // (and a check of it) looks. Uses by a flow's node list and edges are left out: they
            // only repeat the entry's own error.
            let at = crate::diagnostic::display_pointer(&self.entries[ei].pointer).to_owned();
            self.diag(
                Diagnostic::new(
                    Code::RefType,
                    use_ptr,
                    format!("`$component_ref` \"{key}\" refers to a component that could not be loaded"),
                )
                .hint(format!("fix the errors reported at {at}")),
                source,
            );
        }
        if let Some(c) = result {
            let ty = self.components[c].ty;
            if !ty.is_a(kind) {
                let name = self.components[c].name.clone();
                let id = self.components[c].id.clone();
                self.diag(
                    Diagnostic::new(
                        Code::RefType,
                        use_ptr,
                        format!(
                            "`$component_ref` \"{key}\" resolves to {} \"{name}\", but {} is expected here",
                            ty.name,
                            kind_phrase(kind)
                        ),
                    )
                    .hint(format!("reference a component that is {}", kind_phrase(kind)))
                    .component(Some(&name), Some(&id)),
                    source,
                );
                return None;
            }
        }
        result
    }

    // ----- components ---------------------------------------------------------------------

    /// Enters one more level of nested components; false (reported once) past the limit.
    fn descend(&mut self, ptr: &str, source: usize) -> bool {
        if self.depth >= MAX_COMPONENT_DEPTH {
            if !self.too_deep {
                self.too_deep = true;
                self.diag(
                    Diagnostic::new(
                        Code::BadValue,
                        ptr,
                        format!("components are nested more than {MAX_COMPONENT_DEPTH} levels deep (counting nesting through references)"),
                    )
                    .hint("flatten the document: no real flow nests components this deeply; look for a reference chain"),
                    source,
                );
            }
            return false;
        }
        self.depth += 1;
        true
    }

    /// Loads whatever fills a component slot: an inline component or a reference object.
    fn load_slot(&mut self, v: &'a Json, ptr: &str, source: usize, kind: Kind, is_root: bool) -> Option<CompId> {
        let Json::Object(obj) = v else {
            self.diag(
                Diagnostic::new(
                    Code::BadValue,
                    ptr,
                    format!(
                        "expected {} (an object with a `component_type`, or {{\"$component_ref\": ...}}), found {}",
                        kind_phrase(kind),
                        describe(v)
                    ),
                ),
                source,
            );
            return None;
        };
        if let Some(r) = obj.get("$component_ref") {
            self.enter_table(source, ptr);
            let Some(key) = r.as_str() else {
                self.diag(
                    Diagnostic::new(
                        Code::BadValue,
                        join(ptr, "$component_ref"),
                        format!("`$component_ref` must be a string key, not {}", describe(r)),
                    ),
                    source,
                );
                return None;
            };
            let _ = is_root;
            return self.resolve(key, ptr, source, kind);
        }
        if !self.descend(ptr, source) {
            return None;
        }
        let c = self.load_component(obj, ptr, source, Origin::Inline);
        self.depth -= 1;
        let c = c?;
        let ty = self.components[c].ty;
        if !ty.is_a(kind) {
            let comp = &self.components[c];
            let d = Diagnostic::new(
                Code::WrongType,
                join(ptr, "component_type"),
                format!("{} \"{}\" cannot be used here: {} is expected", ty.name, comp.name, kind_phrase(kind)),
            )
            .hint(format!("put {} in this field", kind_phrase(kind)))
            .component(Some(&comp.name), Some(&comp.id));
            self.diag(d, source);
            return None;
        }
        Some(c)
    }

    fn load_component(&mut self, obj: &'a Map<String, Json>, ptr: &str, source: usize, origin: Origin) -> Option<CompId> {
        let name_hint = obj.get("name").and_then(Json::as_str).map(str::to_owned);
        let id_hint = obj.get("id").and_then(Json::as_str).map(str::to_owned);
        let ty: &'static TypeSpec = match obj.get("component_type") {
            None => {
                self.diag(
                    Diagnostic::new(Code::MissingField, ptr, "this component has no `component_type`")
                        .hint("add \"component_type\" with the exact class name, e.g. \"LlmNode\"")
                        .component(name_hint.as_deref(), id_hint.as_deref()),
                    source,
                );
                return None;
            }
            Some(Json::String(t)) => match catalog::lookup(t) {
                Some(ty) => ty,
                None => {
                    let hint = match did_you_mean(t, catalog::names()) {
                        Some(s) => format!("did you mean \"{s}\"? Type names are exact, case-sensitive class names"),
                        None => "use one of the Agent Spec component types (FORMAT.md section 2) or a WayFlow plugin type".to_owned(),
                    };
                    self.diag(
                        Diagnostic::new(Code::UnknownType, join(ptr, "component_type"), format!("unknown component_type \"{t}\""))
                            .hint(hint)
                            .component(name_hint.as_deref(), id_hint.as_deref()),
                        source,
                    );
                    return None;
                }
            },
            Some(other) => {
                self.diag(
                    Diagnostic::new(
                        Code::BadValue,
                        join(ptr, "component_type"),
                        format!("`component_type` must be a string, not {}", describe(other)),
                    )
                    .component(name_hint.as_deref(), id_hint.as_deref()),
                    source,
                );
                return None;
            }
        };
        self.enter_table(source, ptr);
        let mut ctx = Ctx { ptr: ptr.to_owned(), source, ty, name: name_hint.clone(), id: id_hint.clone(), broken: false, partial: false };

        let id = match obj.get("id") {
            Some(Json::String(s)) => s.clone(),
            None | Some(Json::Null) => generated_id(source, ptr),
            Some(other) => {
                self.field_error(&mut ctx, Code::BadValue, "id", format!("`id` must be a string, not {}", describe(other)), None);
                generated_id(source, ptr)
            }
        };
        ctx.id = Some(id.clone());
        let name = match obj.get("name") {
            Some(Json::String(s)) => s.clone(),
            None => {
                self.missing(&mut ctx, "name");
                String::new()
            }
            Some(other) => {
                self.field_error(&mut ctx, Code::BadValue, "name", format!("`name` must be a string, not {}", describe(other)), None);
                String::new()
            }
        };
        let description = match obj.get("description") {
            Some(Json::String(s)) => Some(s.clone()),
            None | Some(Json::Null) => None,
            Some(other) => {
                self.field_error(
                    &mut ctx,
                    Code::BadValue,
                    "description",
                    format!("`description` must be a string or null, not {}", describe(other)),
                    None,
                );
                None
            }
        };
        let metadata = match obj.get("metadata") {
            None => Some(Json::Object(Map::new())),
            Some(Json::Null) => None,
            Some(m @ Json::Object(_)) => Some(m.clone()),
            Some(other) => {
                self.field_error(
                    &mut ctx,
                    Code::BadValue,
                    "metadata",
                    format!("`metadata` must be an object, not {}", describe(other)),
                    None,
                );
                None
            }
        };
        let (inputs, outputs) =
            if ty.io == Io::None { (None, None) } else { (self.io_list(&mut ctx, obj, "inputs"), self.io_list(&mut ctx, obj, "outputs")) };
        let branches = if ty.io == Io::Node { self.branches(&mut ctx, obj) } else { None };

        let mut fields = IndexMap::new();
        for f in ty.fields {
            let given = obj.get(f.name).or_else(|| field_alias(ty.name, f.name).and_then(|a| obj.get(a)));
            let given = given.or_else(|| loader_default(ty.name, f.name));
            if let Some(v) = self.field(&mut ctx, f, given) {
                fields.insert(f.name, v);
            }
        }
        let mut extra = IndexMap::new();
        for (k, v) in obj {
            if COMMON_KEYS.contains(&k.as_str())
                || ty.field(k).is_some()
                || is_alias(ty.name, k)
                || (ty.io != Io::None && (k == "inputs" || k == "outputs"))
                || (ty.io == Io::Node && k == "branches")
            {
                continue;
            }
            if ty.support == Support::Generic {
                extra.insert(k.clone(), v.clone());
                continue;
            }
            let mut candidates: Vec<&str> = ty.fields.iter().map(|f| f.name).collect();
            candidates.extend(["inputs", "outputs", "branches", "description", "metadata"]);
            let hint = match did_you_mean(k, candidates) {
                Some(s) => format!("did you mean `{s}`? pyagentspec ignores unknown keys, so this value has no effect"),
                None => format!("{} has no field `{k}`; pyagentspec ignores it, so it has no effect: remove it", ty.name),
            };
            let d = Diagnostic::new(Code::UnknownKey, join(ptr, k), format!("unknown key `{k}` for {}", ty.name))
                .hint(hint)
                .component(Some(&name), Some(&id));
            self.diag(d, source);
        }
        let idx = self.components.len();
        self.components.push(Component {
            ty,
            id,
            name,
            description,
            metadata,
            inputs,
            outputs,
            branches,
            fields,
            extra,
            origin,
            pointer: ptr.to_owned(),
            source,
        });
        self.incomplete.push(ctx.broken);
        self.partial.push(ctx.partial);
        Some(idx)
    }

    fn missing(&mut self, ctx: &mut Ctx, field: &str) {
        ctx.broken = true;
        let d = Diagnostic::new(Code::MissingField, ctx.ptr.clone(), format!("{} is missing the required field `{field}`", ctx.label()))
            .hint(format!("add `{field}` to this {}", ctx.ty.name))
            .component(ctx.name.as_deref(), ctx.id.as_deref());
        self.diag(d, ctx.source);
    }

    fn field_error(&mut self, ctx: &mut Ctx, code: Code, field: &str, msg: String, hint: Option<String>) {
        self.value_error(ctx, code, join(&ctx.ptr, field), msg, hint);
    }

    fn value_error(&mut self, ctx: &mut Ctx, code: Code, ptr: String, msg: String, hint: Option<String>) {
        ctx.broken = true;
        let d = Diagnostic::new(code, ptr, format!("{}: {msg}", ctx.label()))
            .maybe_hint(hint)
            .component(ctx.name.as_deref(), ctx.id.as_deref());
        self.diag(d, ctx.source);
    }

    fn io_list(&mut self, ctx: &mut Ctx, obj: &Map<String, Json>, key: &str) -> Option<Vec<Property>> {
        match obj.get(key) {
            None | Some(Json::Null) => None,
            Some(v) => self.props(ctx, v, &join(&ctx.ptr, key)),
        }
    }

    fn props(&mut self, ctx: &mut Ctx, v: &Json, ptr: &str) -> Option<Vec<Property>> {
        let Json::Array(items) = v else {
            self.value_error(
                ctx,
                Code::BadValue,
                ptr.to_owned(),
                format!("expected a list of properties (JSON Schemas), found {}", describe(v)),
                None,
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = join_index(ptr, i);
            match item {
                Json::Object(_) => out.push(Property { schema: item.clone(), pointer: p }),
                other => self.value_error(
                    ctx,
                    Code::Schema,
                    p,
                    format!("a property must be a JSON Schema object, not {}", describe(other)),
                    None,
                ),
            }
        }
        Some(out)
    }

    fn branches(&mut self, ctx: &mut Ctx, obj: &Map<String, Json>) -> Option<Vec<String>> {
        match obj.get("branches") {
            None => None,
            Some(Json::Null) => {
                self.field_error(
                    ctx,
                    Code::BadValue,
                    "branches",
                    "`branches` must be a list of strings, not null".into(),
                    Some("remove `branches` to let it be inferred, or list the branches".into()),
                );
                None
            }
            Some(Json::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => self.value_error(
                            ctx,
                            Code::BadValue,
                            join_index(&join(&ctx.ptr, "branches"), i),
                            format!("a branch name must be a string, not {}", describe(item)),
                            None,
                        ),
                    }
                }
                if out.is_empty() { None } else { Some(out) }
            }
            Some(other) => {
                self.field_error(
                    ctx,
                    Code::BadValue,
                    "branches",
                    format!("`branches` must be a list of strings, not {}", describe(other)),
                    None,
                );
                None
            }
        }
    }

    fn field(&mut self, ctx: &mut Ctx, f: &'static Field, v: Option<&'a Json>) -> Option<Value> {
        let ptr = join(&ctx.ptr, f.name);
        let Some(v) = v else {
            return match f.default {
                FieldDefault::Required => {
                    self.missing(ctx, f.name);
                    None
                }
                FieldDefault::Null => Some(Value::Json(Json::Null)),
                FieldDefault::Json(lit) => Some(default_value(f.ty, lit)),
            };
        };
        if v.is_null() {
            if f.nullable || f.default == FieldDefault::Null || f.ty == Ty::Any {
                return Some(Value::Json(Json::Null));
            }
            self.value_error(
                ctx,
                Code::BadValue,
                ptr,
                format!("`{}` must not be null", f.name),
                Some(format!("give `{}` a value, or remove it to use its default", f.name)),
            );
            return None;
        }
        if f.sensitive {
            if let Some(key) = v.get("$component_ref").and_then(Json::as_str) {
                let value = self.secrets.get(key).cloned().or_else(|| self.fallback.and_then(|f| f(key)));
                return Some(Value::Secret(SecretRef { key: key.to_owned(), value }));
            }
            // A secret written in clear in the document: keep it as a secret whose value came
            // from the document, so that it is never exported as a value.
            let falsy = match v {
                Json::String(s) => s.is_empty(),
                Json::Object(m) => m.is_empty(),
                Json::Array(a) => a.is_empty(),
                Json::Bool(b) => !b,
                _ => false,
            };
            if !falsy {
                let key = format!("{}.{}", ctx.id.as_deref().unwrap_or_default(), f.name);
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                return Some(Value::Secret(SecretRef { key, value: Some(value) }));
            }
        }
        match f.ty {
            Ty::Str => self.expect(ctx, v, ptr, Json::is_string, "a string"),
            Ty::Bool => self.expect(ctx, v, ptr, Json::is_boolean, "a boolean"),
            Ty::Int => self.expect(ctx, v, ptr, is_integer, "an integer"),
            Ty::Num => self.expect(ctx, v, ptr, Json::is_number, "a number"),
            Ty::Any => Some(Value::Json(v.clone())),
            Ty::Object => self.expect(ctx, v, ptr, Json::is_object, "an object"),
            Ty::StrMap => self.expect(
                ctx,
                v,
                ptr,
                |v| v.as_object().is_some_and(|m| m.values().all(Json::is_string)),
                "an object whose values are strings",
            ),
            Ty::StrList => self.expect(ctx, v, ptr, |v| v.as_array().is_some_and(|a| a.iter().all(Json::is_string)), "a list of strings"),
            Ty::StrOrList => self.expect(
                ctx,
                v,
                ptr,
                |v| v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Json::is_string)),
                "a string or a list of strings",
            ),
            Ty::Enum(allowed) => match v.as_str() {
                Some(s) if allowed.contains(&s) => Some(Value::Json(v.clone())),
                _ => {
                    let shown = v.as_str().map_or_else(|| v.to_string(), |s| format!("\"{s}\""));
                    let hint = match v.as_str().and_then(|s| did_you_mean(s, allowed.iter().copied())) {
                        Some(s) => format!("did you mean \"{s}\"?"),
                        None => format!("use one of: {}", allowed.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")),
                    };
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` is {shown}, which is not one of its allowed values", f.name),
                        Some(hint),
                    );
                    None
                }
            },
            // A nested component that fails to load is reported where it is; its parent stays
            // checkable, so independent problems elsewhere are still found.
            Ty::Comp(kind) => self.child(ctx, v, &ptr, kind).map(Value::Comp),
            Ty::CompList(kind) => {
                let Json::Array(items) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be a list of components, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(c) = self.child(ctx, item, &join_index(&ptr, i), kind) {
                        out.push(Value::Comp(c));
                    }
                }
                Some(Value::List(out))
            }
            Ty::CompOrList(kind) => match v {
                Json::Array(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = self.child(ctx, item, &join_index(&ptr, i), kind) {
                            out.push(Value::Comp(c));
                        }
                    }
                    Some(Value::List(out))
                }
                _ => self.child(ctx, v, &ptr, kind).map(Value::Comp),
            },
            Ty::CompMap(kind) => {
                let Json::Object(m) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be an object of components, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                let mut out = IndexMap::new();
                for (k, item) in m {
                    if let Some(c) = self.child(ctx, item, &join(&ptr, k), kind) {
                        out.insert(k.clone(), Value::Comp(c));
                    }
                }
                Some(Value::Map(out))
            }
            Ty::Pairs(kind) => {
                let Json::Array(items) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be a list of [caller, recipient] pairs, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let item_ptr = join_index(&ptr, i);
                    match item {
                        Json::Array(pair) if pair.len() == 2 => {
                            let a = self.child(ctx, &pair[0], &join_index(&item_ptr, 0), kind);
                            let b = self.child(ctx, &pair[1], &join_index(&item_ptr, 1), kind);
                            if let (Some(a), Some(b)) = (a, b) {
                                out.push(Value::List(vec![Value::Comp(a), Value::Comp(b)]));
                            }
                        }
                        other => self.value_error(
                            ctx,
                            Code::BadValue,
                            item_ptr,
                            format!("each relationship must be a [caller, recipient] pair, not {}", describe(other)),
                            None,
                        ),
                    }
                }
                Some(Value::List(out))
            }
            Ty::StrOrCompList(kind) => {
                let Json::Array(items) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be a list of names or components, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if item.is_string() {
                        out.push(Value::Json(item.clone()));
                    } else if let Some(c) = self.child(ctx, item, &join_index(&ptr, i), kind) {
                        out.push(Value::Comp(c));
                    }
                }
                Some(Value::List(out))
            }
            Ty::Props => self.props(ctx, v, &ptr).map(Value::Props),
            Ty::Prop => match v {
                Json::Object(_) => Some(Value::Prop(Property { schema: v.clone(), pointer: ptr })),
                other => {
                    self.value_error(
                        ctx,
                        Code::Schema,
                        ptr,
                        format!("`{}` must be a JSON Schema object, not {}", f.name, describe(other)),
                        None,
                    );
                    None
                }
            },
            Ty::PropMap => {
                let Json::Object(m) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be an object of JSON Schemas, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                let mut out = IndexMap::new();
                for (k, s) in m {
                    if s.is_object() {
                        out.insert(k.clone(), Property { schema: s.clone(), pointer: join(&ptr, k) });
                    } else {
                        self.value_error(
                            ctx,
                            Code::Schema,
                            join(&ptr, k),
                            format!("a schema must be an object, not {}", describe(s)),
                            None,
                        );
                    }
                }
                Some(Value::PropMap(out))
            }
            Ty::RetryPolicy => {
                if !v.is_object() {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be a RetryPolicy object, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                }
                let mut problems = crate::plain::check_retry_policy(v);
                if problems.is_empty() {
                    problems = crate::plain::check_retry_policy_wayflow(v);
                }
                for (member, msg, hint) in problems {
                    self.value_error(ctx, Code::BadValue, join(&ptr, member), msg, Some(hint));
                }
                Some(Value::Json(v.clone()))
            }
            Ty::GenConfig => {
                if !v.is_object() {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be an LlmGenerationConfig object, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                }
                for (member, msg) in crate::plain::check_generation_config(v) {
                    self.value_error(ctx, Code::BadValue, join(&ptr, member), msg, None);
                }
                Some(Value::Json(v.clone()))
            }
            Ty::Messages => {
                let Json::Array(items) = v else {
                    self.value_error(
                        ctx,
                        Code::BadValue,
                        ptr,
                        format!("`{}` must be a list of messages, not {}", f.name, describe(v)),
                        None,
                    );
                    return None;
                };
                for (i, m) in items.iter().enumerate() {
                    for (sub, code, msg, hint) in crate::plain::check_message(m) {
                        let p = if sub.is_empty() { join_index(&ptr, i) } else { join(&join_index(&ptr, i), sub) };
                        self.value_error(ctx, code, p, msg, Some(hint));
                    }
                }
                Some(Value::Json(v.clone()))
            }
        }
    }

    /// Loads a nested component slot; a failure (reported where it is) marks the parent partial.
    fn child(&mut self, ctx: &mut Ctx, v: &'a Json, ptr: &str, kind: Kind) -> Option<CompId> {
        let r = self.load_slot(v, ptr, ctx.source, kind, false);
        if r.is_none() {
            ctx.partial = true;
        }
        r
    }

    fn expect(&mut self, ctx: &mut Ctx, v: &Json, ptr: String, ok: impl Fn(&Json) -> bool, what: &str) -> Option<Value> {
        if ok(v) {
            Some(Value::Json(v.clone()))
        } else {
            let field = ptr.rsplit('/').next().unwrap_or_default().to_owned();
            self.value_error(ctx, Code::BadValue, ptr, format!("`{field}` must be {what}, not {}", describe(v)), None);
            None
        }
    }

    // ----- document level -------------------------------------------------------------

    fn read_version(&mut self, doc: &Json) -> (Version, VersionSource) {
        let (key, source) = if doc.get("agentspec_version").is_some() {
            ("agentspec_version", VersionSource::AgentspecVersion)
        } else if doc.get("air_version").is_some() {
            ("air_version", VersionSource::AirVersion)
        } else {
            self.diags.push(
                Diagnostic::new(
                    Code::NoVersion,
                    "",
                    format!("the document has no `agentspec_version`; assuming the current version {}", Version::CURRENT),
                )
                .hint(format!("add \"agentspec_version\": \"{}\" (or the version the document was written for)", Version::CURRENT)),
            );
            return (Version::CURRENT, VersionSource::Missing);
        };
        let ptr = join("", key);
        let value = &doc[key];
        let Some(text) = value.as_str() else {
            self.diags.push(Diagnostic::new(
                Code::Version,
                ptr,
                format!("`{key}` must be a version string such as \"{}\", not {}", Version::CURRENT, describe(value)),
            ));
            return (Version::CURRENT, source);
        };
        if let Some((stamped, lower)) = Version::between_releases(text) {
            self.diags.push(
                Diagnostic::new(
                    Code::LegacyVersion,
                    ptr,
                    format!("{key} {stamped} is not a released version (a pyagentspec development build writes such values); it is read as {lower}, the nearest released version below it"),
                )
                .hint(format!("declare \"{lower}\" (or \"{}\", the newest) to silence this warning", Version::CURRENT)),
            );
            return (lower, source);
        }
        let Some(v) = Version::parse(text) else {
            let known: Vec<String> = Version::KNOWN.iter().map(ToString::to_string).collect();
            self.diags.push(
                Diagnostic::new(Code::Version, ptr, format!("unknown {key} \"{text}\""))
                    .hint(format!("use one of the released versions: {}", known.join(", "))),
            );
            return (Version::CURRENT, source);
        };
        if source == VersionSource::AirVersion {
            self.diags.push(
                Diagnostic::new(Code::LegacyVersion, ptr.clone(), "`air_version` is the legacy name of `agentspec_version`")
                    .hint("rename the key to `agentspec_version`"),
            );
        }
        if v == Version::V25_4_0 {
            self.diags.push(
                Diagnostic::new(Code::LegacyVersion, ptr, "25.4.0 is a pre-release version; it is read as 25.4.1")
                    .hint("declare \"25.4.1\" or later"),
            );
            return (Version::V25_4_1, source);
        }
        if v < Version::V25_4_0 {
            self.diags
                .push(Diagnostic::new(Code::LegacyVersion, ptr, format!("{v} is a legacy version")).hint("declare \"25.4.1\" or later"));
        }
        (v, source)
    }

    fn report_unused(&mut self) {
        let unused: Vec<(String, String, usize)> =
            self.entries.iter().filter(|e| !e.used && e.source == 0).map(|e| (e.key.clone(), e.pointer.clone(), e.source)).collect();
        for (key, ptr, source) in unused {
            self.diag(
                Diagnostic::new(Code::UnusedRef, ptr, format!("the `$referenced_components` entry \"{key}\" is never referenced"))
                    .hint("remove it, or refer to it with {\"$component_ref\": \"...\"}; entries nothing refers to are not even checked"),
                source,
            );
        }
    }

    /// Two different components with one id: WayFlow resolves the wrong one (FORMAT.md 3.3).
    fn check_duplicate_ids(&mut self) {
        let mut by_id: HashMap<&str, Vec<CompId>> = HashMap::new();
        for (i, c) in self.components.iter().enumerate() {
            by_id.entry(c.id.as_str()).or_default().push(i);
        }
        let mut found = Vec::new();
        for (id, comps) in by_id {
            if comps.len() < 2 {
                continue;
            }
            // Report the inline definitions that reuse an id defined elsewhere; if all are
            // table entries, report every one after the first.
            let mut sorted = comps.clone();
            sorted.sort_by_key(|&c| (self.components[c].origin == Origin::Inline, c));
            for &c in &sorted[1..] {
                let comp = &self.components[c];
                let first = &self.components[sorted[0]];
                found.push(
                    Diagnostic::new(
                        Code::RuntimeStructure,
                        join(&comp.pointer, "id"),
                        format!("{} reuses the id \"{id}\" of {} at {}", comp.label(), first.label(), crate::diagnostic::display_pointer(&first.pointer)),
                    )
                    .hint("give every component its own id (a fresh UUID); to share one component, define it once in `$referenced_components` and refer to it")
                    .component(Some(&comp.name), Some(&comp.id)),
                );
            }
        }
        found.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        self.diags.extend(found);
    }
}

/// One step of a JSON path, kept unformatted until a pointer is needed.
enum PathToken<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer_of(base: &str, path: &[PathToken<'_>]) -> String {
    let mut p = base.to_owned();
    for t in path {
        match t {
            PathToken::Key(k) => {
                p.push('/');
                p.push_str(&crate::diagnostic::escape_token(k));
            }
            PathToken::Index(i) => {
                p.push('/');
                p.push_str(&i.to_string());
            }
        }
    }
    p
}

struct Ctx {
    ptr: String,
    source: usize,
    ty: &'static TypeSpec,
    name: Option<String>,
    id: Option<String>,
    broken: bool,
    partial: bool,
}

impl Ctx {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} \"{n}\"", self.ty.name),
            None => self.ty.name.to_owned(),
        }
    }
}

fn is_integer(v: &Json) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn default_value(ty: Ty, lit: &str) -> Value {
    let json: Json = serde_json::from_str(lit).unwrap_or(Json::Null);
    match (ty, &json) {
        (Ty::CompList(_) | Ty::Pairs(_) | Ty::StrOrCompList(_) | Ty::CompOrList(_), Json::Array(a)) if a.is_empty() => {
            Value::List(Vec::new())
        }
        (Ty::CompMap(_), Json::Object(m)) if m.is_empty() => Value::Map(IndexMap::new()),
        (Ty::Props, Json::Array(a)) if a.is_empty() => Value::Props(Vec::new()),
        (Ty::PropMap, Json::Object(m)) if m.is_empty() => Value::PropMap(IndexMap::new()),
        _ => Value::Json(json),
    }
}

/// A stable id for a component the document gave none: a UUID-shaped hash of its position.
fn generated_id(source: usize, ptr: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in source.to_le_bytes().iter().chain(ptr.as_bytes()) {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    let s = format!("{h:032x}");
    format!("{}-{}-4{}-8{}-{}", &s[0..8], &s[8..12], &s[13..16], &s[17..20], &s[20..32])
}

/// "a Node", "an LLM config"... for messages.
pub fn kind_phrase(kind: Kind) -> &'static str {
    match kind {
        Kind::Component => "a component",
        Kind::Node => "a node",
        Kind::Flow => "a Flow",
        Kind::Agentic => "an agentic component (Agent, Flow, Swarm, ...)",
        Kind::Agent => "an Agent",
        Kind::LlmConfig => "an LLM config",
        Kind::Tool => "a tool",
        Kind::ToolBox => "a toolbox",
        Kind::ServerTool => "a ServerTool",
        Kind::McpToolSpec => "an MCPToolSpec",
        Kind::ClientTransport => "an MCP client transport",
        Kind::RemoteTransport => "a remote MCP transport",
        Kind::AuthConfig => "an auth config",
        Kind::OAuthClientConfig => "an OAuthClientConfig",
        Kind::OciClientConfig => "an OCI client config",
        Kind::GeminiAuthConfig => "a Gemini auth config",
        Kind::MessageTransform => "a message transform",
        Kind::Datastore => "a datastore",
        Kind::OracleConnectionConfig => "an Oracle database connection config",
        Kind::PostgresConnectionConfig => "a PostgreSQL connection config",
        Kind::ControlFlowEdge => "a ControlFlowEdge",
        Kind::DataFlowEdge => "a DataFlowEdge",
        Kind::A2AConnectionConfig => "an A2AConnectionConfig",
        Kind::SpecializationParameters => "AgentSpecializationParameters",
        Kind::PromptTemplate => "a PluginPromptTemplate",
        Kind::OutputParser => "an output parser",
        Kind::ContextProvider => "a context provider",
        Kind::EmbeddingConfig => "an embedding config",
        Kind::SearchConfig => "a search config",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;

    fn run(text: &str) -> LoadOutput {
        let src = Source::new("t.json", text, Format::Json);
        let secrets = HashMap::new();
        load(LoadInput { document: &src, registries: &[], secrets: &secrets, secret_fallback: None })
    }

    #[test]
    fn long_alias_chains_are_bounded_not_a_stack_overflow() {
        let n = 50_000;
        let mut table = serde_json::Map::new();
        for i in 0..n {
            table.insert(format!("k{i}"), serde_json::json!({"$component_ref": format!("k{}", i + 1)}));
        }
        table.insert(format!("k{n}"), serde_json::json!({"component_type": "VllmConfig", "name": "x", "model_id": "m", "url": "u"}));
        let doc = serde_json::json!({"$component_ref": "k0", "$referenced_components": table});
        let out = run(&doc.to_string());
        assert!(out.diagnostics.iter().any(|d| d.message.contains("nested more than")), "{:?}", out.diagnostics.first());
    }

    #[test]
    fn a_root_given_as_a_reference_loads() {
        let doc = r#"{"$component_ref": "root", "$referenced_components": {"root": {"component_type": "VllmConfig", "name": "x", "model_id": "m", "url": "u"}}, "agentspec_version": "25.4.1"}"#;
        let out = run(doc);
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        assert_eq!(out.spec.expect("spec").root().name, "x");
    }

    #[test]
    fn references_see_only_tables_in_scope() {
        // The second node's table defines "cfg"; the first node cannot see it yet.
        let doc = r#"{"component_type": "Agent", "name": "a", "system_prompt": "hi",
            "llm_config": {"$component_ref": "cfg"},
            "tools": [{"component_type": "ServerTool", "name": "t", "$referenced_components": {"cfg": {"component_type": "VllmConfig", "name": "x", "model_id": "m", "url": "u"}}}],
            "agentspec_version": "25.4.1"}"#;
        let out = run(doc);
        let d = out.diagnostics.iter().find(|d| d.code == Code::RefMissing).expect("ref_missing");
        assert!(d.message.contains("not in scope"), "{}", d.message);
    }
}
