//! From an Open Agent Spec document to a checked [`Flow`]: inference of inputs, outputs and
//! branches, and every validation rule, with all diagnostics reported at once.
//!
//! ```
//! let text = include_str!("../../../examples/flows/seed_parallel_marketing.json");
//! let loaded = weft_flow::Flow::from_json(text).expect("the seed example is valid");
//! assert_eq!(loaded.flow.spec().root().ty.name, "Flow");
//! assert!(loaded.warnings.is_empty());
//! ```

pub mod builder;
mod check;
pub mod export;
pub mod graph;
pub mod infer;
pub mod node;
pub mod sample;
pub mod schema;
pub mod template;

pub use builder::{FlowBuilder, typed_outputs};
pub use check::version_floor;
pub use infer::Io;
pub use weft_spec::{Code, Diagnostic, Diagnostics, Format, Severity, Source, Spec};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Looks up a sensitive value by its reference key `<component id>.<field>`.
pub type SecretFallback = dyn Fn(&str) -> Option<String> + Send + Sync;

/// How to load a document.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Registries of disaggregated components (`--refs`).
    pub registries: Vec<Source>,
    /// Values of sensitive fields, keyed `<component id>.<field>`.
    pub secrets: HashMap<String, String>,
    /// Treat warnings as errors.
    pub strict: bool,
    /// Looks up a sensitive value missing from `secrets` (the CLI reads `WEFT_SECRET_*`).
    pub secret_fallback: Option<std::sync::Arc<SecretFallback>>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("registries", &self.registries.iter().map(|r| &r.name).collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// A checked document, shared by every run that uses it.
#[derive(Debug, Clone)]
pub struct Flow {
    spec: Arc<Spec>,
    io: Arc<Vec<Io>>,
    model: Arc<node::Model>,
}

/// A successful load: the flow, and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked flow.
    pub flow: Flow,
    /// Warnings (never errors), sorted by position.
    pub warnings: Vec<Diagnostic>,
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The document is invalid; every diagnostic is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl Flow {
    /// Loads and checks JSON text.
    pub fn from_json(text: &str) -> Result<Loaded, Diagnostics> {
        Flow::from_source(&Source::new("<string>", text, Format::Json), &LoadOptions::default())
    }

    /// Loads and checks YAML text.
    pub fn from_yaml(text: &str) -> Result<Loaded, Diagnostics> {
        Flow::from_source(&Source::new("<string>", text, Format::Yaml), &LoadOptions::default())
    }

    /// Reads, loads and checks a file (JSON or YAML, by extension or content).
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Loaded, LoadError> {
        let path = path.as_ref();
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io { path: display.clone(), source })?;
        let source = Source::from_bytes(display, bytes).map_err(|d| LoadError::Invalid(Diagnostics(vec![d])))?;
        Flow::from_source(&source, options).map_err(LoadError::Invalid)
    }

    /// Loads and checks a source.
    pub fn from_source(source: &Source, options: &LoadOptions) -> Result<Loaded, Diagnostics> {
        let (flow, diagnostics) = check_source(source, options);
        match flow {
            Some(flow) if !diagnostics.has_errors() => Ok(Loaded { flow, warnings: diagnostics.0 }),
            _ => Err(diagnostics),
        }
    }

    /// The model.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The resolved interface of component `c`.
    pub fn io(&self, c: weft_spec::CompId) -> &Io {
        &self.io[c]
    }

    /// The typed model of the flows and nodes it runs.
    pub fn model(&self) -> &node::Model {
        &self.model
    }

    /// The resolved interfaces of every component, by index.
    pub fn ios(&self) -> &[Io] {
        &self.io
    }
}

/// Loads and checks a document, returning the flow when it could be built (even if it has
/// errors, for tools that want to draw or inspect an invalid document) and every diagnostic,
/// sorted by position, with line and column filled in where the parser can give them.
pub fn check_source(source: &Source, options: &LoadOptions) -> (Option<Flow>, Diagnostics) {
    // Loading, checking and locating recurse over the document's nesting (JSON depth is capped
    // at 128 and component nesting at 200, references included). Run them on a thread whose
    // stack is sized for those caps, so no input can overflow the caller's stack, whatever
    // thread it is on. The stack is virtual memory: only the pages used are committed.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("weft-load".into())
            .stack_size(LOADER_STACK)
            .spawn_scoped(scope, || check_source_here(source, options));
        match worker {
            Ok(handle) => match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No thread could be started (resource limits): do the work here.
            Err(_) => check_source_here(source, options),
        }
    })
}

/// Stack for the loader thread: generous for the depth caps of the parser and the loader.
const LOADER_STACK: usize = 64 * 1024 * 1024;

fn check_source_here(source: &Source, options: &LoadOptions) -> (Option<Flow>, Diagnostics) {
    let fallback = options.secret_fallback.as_deref().map(|f| f as &(dyn Fn(&str) -> Option<String> + Sync));
    let out = weft_spec::load(weft_spec::LoadInput {
        document: source,
        registries: &options.registries,
        secrets: &options.secrets,
        secret_fallback: fallback,
    });
    let mut diags = out.diagnostics;
    let flow = out.spec.map(|spec| {
        let (io, model) = check::run(&spec, &out.incomplete, &out.partial, &mut diags);
        Flow { spec: Arc::new(spec), io: Arc::new(io), model: Arc::new(model) }
    });
    if options.strict {
        for d in &mut diags {
            d.severity = Severity::Error;
        }
    }
    locate(source, &options.registries, &mut diags);
    sort(&mut diags);
    (flow, Diagnostics(diags))
}

/// Fills in line and column from the sources.
fn locate(source: &Source, registries: &[Source], diags: &mut [Diagnostic]) {
    let mut by_file: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, d) in diags.iter().enumerate() {
        if d.line.is_none() {
            by_file.entry(d.file.as_deref()).or_default().push(i);
        }
    }
    let mut updates = Vec::new();
    for (file, idxs) in by_file {
        let src = match file {
            None => source,
            Some(name) => match registries.iter().find(|r| r.name == name) {
                Some(r) => r,
                None => continue,
            },
        };
        let pointers: Vec<&str> = idxs.iter().map(|&i| diags[i].pointer.as_str()).collect();
        let found = src.locate(&pointers);
        for &i in &idxs {
            if let Some(&(l, c)) = found.get(&diags[i].pointer) {
                updates.push((i, l, c));
            }
        }
    }
    for (i, l, c) in updates {
        diags[i].line = Some(l);
        diags[i].column = Some(c);
    }
}

fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        (b.severity, a.file.is_some(), a.line.unwrap_or(usize::MAX), a.column.unwrap_or(0), &a.pointer).cmp(&(
            a.severity,
            b.file.is_some(),
            b.line.unwrap_or(usize::MAX),
            b.column.unwrap_or(0),
            &b.pointer,
        ))
    });
    diags.dedup();
}
