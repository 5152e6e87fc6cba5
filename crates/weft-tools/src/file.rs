//! The tools file (`--tools tools.toml`): binds ServerTool names to commands.
//!
//! ```toml
//! [tools.get_user_information]
//! command = ["python3", "tools/get_user_information.py"]   # argv, no shell
//! timeout_s = 30                                            # optional, seconds (number > 0)
//! max_output_mb = 64                                        # optional, MiB of stdout (integer > 0)
//! env = { API_TOKEN = "..." }                               # optional
//! ```
//!
//! - `command` (required): the program and its arguments, a non-empty list of strings. It is
//!   run without a shell; write `["sh", "-c", "..."]` to get one. See [`crate::command`] for
//!   how the program is called (JSON arguments on stdin, one JSON value on stdout).
//! - `timeout_s` (optional): seconds, an integer or a float greater than 0; the process is
//!   killed when a call takes longer. Default [`DEFAULT_TIMEOUT`] (60 s).
//! - `max_output_mb` (optional): the cap of the command's stdout, in MiB, an integer from 1 to
//!   [`MAX_OUTPUT_MB_LIMIT`]; a call printing more fails and its processes are killed. Default
//!   64 ([`DEFAULT_MAX_OUTPUT`](crate::command::DEFAULT_MAX_OUTPUT)).
//! - `env` (optional): a table of string values, set on top of the inherited environment.
//!
//! **Working directory.** Every command runs in the directory holding the tools file.
//! Relative program paths and arguments are left as written, so they resolve next to the tools
//! file: `["python3", "tools/x.py"]` runs `<dir of tools.toml>/tools/x.py` wherever weft is
//! started from, and so does `["./tools/x.sh"]`. A bare program name (`python3`) is looked up
//! on `PATH`.
//!
//! A RemoteTool whose name is bound here is run as this command instead of its HTTP request.
//!
//! ```toml
//! [http.rewrite]
//! "https://orders.example.com" = "http://127.0.0.1:8080"
//! ```
//!
//! - `[http.rewrite]` (optional): requests of ApiNodes and RemoteTools whose URL starts with a
//!   key go to its value followed by the rest of the URL (as `--http-rewrite PREFIX=URL` does;
//!   the flag wins for the same prefix). The document's `url_allow_list` still applies to the
//!   URL as written, `--allow-host` to the rewritten one.
//!
//! A ServerTool (or MCPTool) name can also be bound to a tool of a long-lived MCP server: one
//! process (or one session with a URL) serves every call of every run of the process.
//!
//! ```toml
//! [tools.get_weather]
//! mcp = { command = ["python3", "tools_server.py"] }   # or mcp = { url = "http://127.0.0.1:9000/mcp" }
//! tool = "weather"                                     # optional: the server's name for it
//!
//! [mcp]
//! allow_commands = ["python3"]   # StdioTransports of documents may start these commands
//! ```
//!
//! An empty file, or one without a `[tools]` table, is valid and binds nothing. Anything else
//! (unknown keys, wrong types) is an error naming the file, line and column, the key
//! (`tools.NAME.KEY`), what is wrong and how to fix it. The key `http` of a tool's table is
//! reserved for a future kind of tool and rejected for now.

use crate::ToolRegistry;
use crate::command::{CommandTool, DEFAULT_MAX_OUTPUT, MIB};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use weft_spec::text::{closest, edit_distance, line_column};

/// The timeout of a tool whose binding has no `timeout_s`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest `max_output_mb` accepted (1 TiB): a cap, not a reason to hold that much.
pub const MAX_OUTPUT_MB_LIMIT: u64 = 1024 * 1024;

/// The keys of a `[tools.NAME]` table.
const KNOWN_KEYS: [&str; 6] = ["command", "timeout_s", "max_output_mb", "env", "mcp", "tool"];
/// Keys reserved for future kinds of tools.
const RESERVED_KEYS: [&str; 1] = ["http"];
/// An example `command`, for messages.
const COMMAND_EXAMPLE: &str = "[\"python3\", \"tool.py\"]";

/// A loaded tools file.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsFile {
    /// Where it was read from (as given); commands run in its directory.
    pub path: PathBuf,
    /// The bindings by tool name.
    pub tools: BTreeMap<String, ToolBinding>,
    /// `[http.rewrite]`: URL prefix and where its requests go instead, in file order.
    pub http_rewrites: Vec<(String, String)>,
    /// `[mcp] allow_commands`: the commands documents' `StdioTransport`s may start.
    pub mcp_commands: Vec<String>,
}

/// One `[tools.NAME]` binding.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolBinding {
    /// The program and its arguments (never empty).
    pub command: Vec<String>,
    /// `timeout_s`, or [`DEFAULT_TIMEOUT`] when absent.
    pub timeout: Duration,
    /// The cap of stdout in bytes: `max_output_mb` MiB, or
    /// [`DEFAULT_MAX_OUTPUT`](crate::command::DEFAULT_MAX_OUTPUT) when absent.
    pub max_output: u64,
    /// Environment variables set on top of the inherited environment (for an MCP server
    /// process: on top of `PATH` and `HOME` only).
    pub env: BTreeMap<String, String>,
    /// A tool of a long-lived MCP server instead of a command.
    pub mcp: Option<McpBinding>,
}

/// `mcp = { command = [...] }` or `mcp = { url = "..." }`, with `tool`.
#[derive(Debug, Clone, PartialEq)]
pub struct McpBinding {
    /// The server: a command it is started as (stdio), or its streamable-HTTP URL.
    pub server: McpServerRef,
    /// The server's name for the tool (`tool`; the binding's name when absent).
    pub tool: String,
}

/// Where a tools-file MCP server is.
#[derive(Debug, Clone, PartialEq)]
pub enum McpServerRef {
    /// A process started once, speaking MCP on stdio.
    Command(Vec<String>),
    /// A streamable-HTTP endpoint.
    Url(String),
}

impl ToolBinding {
    /// The MCP server of an `mcp` binding (a command runs in `dir`).
    fn mcp_server(&self, mcp: &McpBinding, dir: &Path) -> crate::mcp::Server {
        let shown = match &mcp.server {
            McpServerRef::Command(argv) => format!("stdio {}", argv.join(" ")),
            McpServerRef::Url(url) => format!("http {}", weft_guard::egress::without_credentials(url)),
        };
        let transport = match &mcp.server {
            McpServerRef::Command(argv) => crate::mcp::Transport::Stdio {
                command: argv[0].clone(),
                args: argv[1..].to_vec(),
                env: self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                cwd: Some(dir.display().to_string()),
            },
            McpServerRef::Url(url) => crate::mcp::Transport::Http {
                url: url.clone(),
                sse: false,
                headers: Vec::new(),
                sensitive_headers: Vec::new(),
                timeout: self.timeout,
            },
        };
        crate::mcp::Server {
            label: format!("the MCP server of tool {:?} (tools file)", mcp.tool),
            transport,
            read_timeout: self.timeout,
            shown,
        }
    }

    /// The command tool of this binding, run in `cwd`.
    pub fn command_tool(&self, cwd: &Path) -> CommandTool {
        CommandTool::new(self.command.iter().cloned())
            .with_timeout(self.timeout)
            .with_max_output(self.max_output)
            .with_envs(self.env.clone())
            .with_cwd(cwd)
    }
}

/// Why a tools file cannot be used. The message names the file and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ToolsFileError {
    /// The file cannot be read.
    #[error("cannot read the tools file {}: {source}; check the path given to --tools", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// The file is valid TOML but not a valid tools file.
    #[error("{}:{line}:{column}: `{key}`: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The offending key, such as `tools.get_user.timeout_s`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ToolsFile {
    /// Reads and parses the tools file at `path`.
    pub fn load(path: &Path) -> Result<ToolsFile, ToolsFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ToolsFileError::Read { path: path.to_path_buf(), source })?;
        ToolsFile::parse(&text, path)
    }

    /// Parses the text of a tools file read from `path` (used in messages and as the
    /// commands' working directory).
    pub fn parse(text: &str, path: &Path) -> Result<ToolsFile, ToolsFileError> {
        let checker = Checker { text, path };
        let root = DeTable::parse(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            let mut message = e.message().trim_end().to_string();
            let key = e.span().and_then(|s| text.get(s)).map(str::trim).filter(|k| !k.is_empty() && !k.contains('\n'));
            if let (Some(key), "duplicate key") = (key, message.as_str()) {
                message = format!("duplicate key `{key}`; a key (or table) may be defined only once");
            }
            ToolsFileError::Syntax { path: path.to_path_buf(), line, column, message }
        })?;
        let mut tools = BTreeMap::new();
        let mut http_rewrites = Vec::new();
        let mut mcp_commands = Vec::new();
        for (key, value) in in_file_order(root.get_ref()) {
            if key.get_ref() == "http" {
                http_rewrites = checker.http(value)?;
                continue;
            }
            if key.get_ref() == "mcp" {
                mcp_commands = checker.mcp_commands(value)?;
                continue;
            }
            if key.get_ref() != "tools" {
                let hint = did_you_mean(key.get_ref(), &["tools", "http", "mcp"]);
                return Err(checker.invalid(
                    key.span(),
                    key_path(&[key.get_ref()]),
                    format!("unknown top-level key{hint}; a tools file holds one [tools.NAME] table per tool, such as [tools.my_tool] followed by command = {COMMAND_EXAMPLE}"),
                ));
            }
            let DeValue::Table(table) = value.get_ref() else {
                return Err(checker.invalid(
                    value.span(),
                    "tools".into(),
                    format!("must be a table of tools, found {}; write one [tools.NAME] table per tool", checker.found(value)),
                ));
            };
            for (name, binding) in in_file_order(table) {
                tools.insert(name.get_ref().to_string(), checker.binding(name.get_ref(), binding)?);
            }
        }
        Ok(ToolsFile { path: path.to_path_buf(), tools, http_rewrites, mcp_commands })
    }

    /// The directory the commands run in: the tools file's directory (made absolute when
    /// possible, so a later change of the current directory does not matter).
    pub fn dir(&self) -> PathBuf {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
    }

    /// A registry binding every tool to its [`CommandTool`], run in [`ToolsFile::dir`].
    pub fn registry(&self) -> ToolRegistry {
        self.registry_with_secrets(&std::sync::Arc::default())
    }

    /// [`ToolsFile::registry`], each tool masking `secrets` in the excerpts its failure messages
    /// quote ([`CommandTool::with_secrets`]).
    pub fn registry_with_secrets(&self, secrets: &std::sync::Arc<weft_guard::Secrets>) -> ToolRegistry {
        let dir = self.dir();
        let mut registry = ToolRegistry::new();
        // One session per MCP server for every binding and every run of the process.
        let sessions = std::sync::Arc::new(crate::mcp::Sessions::new());
        for (name, binding) in &self.tools {
            match &binding.mcp {
                Some(mcp) => {
                    let server = binding.mcp_server(mcp, &dir);
                    registry.register(name.clone(), crate::mcp::McpTool::new(server, &mcp.tool, std::sync::Arc::clone(&sessions)));
                }
                None => {
                    registry.register(name.clone(), binding.command_tool(&dir).with_secrets(std::sync::Arc::clone(secrets)));
                }
            }
        }
        registry
    }
}

/// The entries of a table in the order they appear in the file.
fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Spanned<std::borrow::Cow<'i, str>>, &'t Spanned<DeValue<'i>>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, span: Range<usize>, key: String, message: String) -> ToolsFileError {
        let (line, column) = line_column(self.text, span.start);
        ToolsFileError::Invalid { path: self.path.to_path_buf(), line, column, key, message }
    }

    /// A value for messages: its type and its text in the file, such as `integer 30`.
    fn found(&self, value: &Spanned<DeValue<'_>>) -> String {
        let source = self.text.get(value.span()).unwrap_or("").trim();
        let kind = match value.get_ref() {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a float",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a datetime",
            DeValue::Array(_) => "an array",
            DeValue::Table(_) => return "a table".to_string(),
        };
        if source.is_empty() || source.contains('\n') || source.chars().count() > 60 {
            kind.to_string()
        } else {
            format!("{kind}, {source}")
        }
    }

    /// The `[http]` table: its `rewrite` table of URL prefixes to URLs.
    fn http(&self, value: &Spanned<DeValue<'_>>) -> Result<Vec<(String, String)>, ToolsFileError> {
        const EXAMPLE: &str = "[http.rewrite] followed by \"https://orders.example.com\" = \"http://127.0.0.1:8080\"";
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.invalid(
                value.span(),
                "http".into(),
                format!("must be a table, found {}; write {EXAMPLE}", self.found(value)),
            ));
        };
        let mut rewrites = Vec::new();
        for (key, value) in in_file_order(table) {
            if key.get_ref() != "rewrite" {
                let hint = did_you_mean(key.get_ref(), &["rewrite"]);
                return Err(self.invalid(
                    key.span(),
                    key_path(&["http", key.get_ref()]),
                    format!("unknown key{hint}; the [http] table holds `rewrite`: {EXAMPLE}"),
                ));
            }
            let DeValue::Table(rules) = value.get_ref() else {
                return Err(self.invalid(
                    value.span(),
                    "http.rewrite".into(),
                    format!("must be a table, found {}; write {EXAMPLE}", self.found(value)),
                ));
            };
            for (prefix, target) in in_file_order(rules) {
                let prefix: &str = prefix.get_ref();
                let path = key_path(&["http", "rewrite", prefix]);
                let DeValue::String(url) = target.get_ref() else {
                    return Err(self.invalid(
                        target.span(),
                        path,
                        format!("must be a URL string, found {}; write {EXAMPLE}", self.found(target)),
                    ));
                };
                if prefix.is_empty() {
                    return Err(self.invalid(
                        target.span(),
                        path,
                        "the prefix is empty: give the start of the URLs to send elsewhere, such as \"https://orders.example.com\"".into(),
                    ));
                }
                if let Err(problem) = weft_guard::Target::parse(url) {
                    return Err(self.invalid(target.span(), path, format!("{problem}; give a URL such as \"http://127.0.0.1:8080\"")));
                }
                rewrites.push((prefix.to_owned(), url.to_string()));
            }
        }
        Ok(rewrites)
    }

    fn binding(&self, name: &str, value: &Spanned<DeValue<'_>>) -> Result<ToolBinding, ToolsFileError> {
        let table_path = key_path(&["tools", name]);
        let DeValue::Table(table) = value.get_ref() else {
            let example = match value.get_ref() {
                DeValue::Array(_) | DeValue::String(_) => format!(
                    "; did you mean the `command`? Write [{table_path}] followed by command = {}",
                    self.text
                        .get(value.span())
                        .filter(|s| matches!(value.get_ref(), DeValue::Array(_)) && !s.contains('\n'))
                        .unwrap_or(COMMAND_EXAMPLE)
                ),
                _ => format!("; write [{table_path}] followed by command = {COMMAND_EXAMPLE}"),
            };
            return Err(self.invalid(value.span(), table_path, format!("must be a table, found {}{example}", self.found(value))));
        };
        let mut command = None;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut max_output = DEFAULT_MAX_OUTPUT;
        let mut env = BTreeMap::new();
        let mut mcp = None;
        let mut tool = None;
        for (key, value) in in_file_order(table) {
            let key_name: &str = key.get_ref();
            let path = key_path(&["tools", name, key_name]);
            match key_name {
                "command" => command = Some(self.command(&path, value)?),
                "mcp" => mcp = Some(self.mcp(&path, value)?),
                "tool" => match value.get_ref() {
                    DeValue::String(t) if !t.is_empty() => tool = Some(t.to_string()),
                    _ => {
                        return Err(self.invalid(
                            value.span(),
                            path,
                            format!("must be the MCP server's name of the tool, a non-empty string, found {}", self.found(value)),
                        ));
                    }
                },
                "timeout_s" => timeout = self.timeout(&path, value)?,
                "max_output_mb" => max_output = self.max_output_mb(&path, value)? * MIB,
                "env" => env = self.env(&path, value)?,
                reserved if RESERVED_KEYS.contains(&reserved) => {
                    return Err(self.invalid(
                        key.span(),
                        path,
                        format!("`{reserved}` tools are not supported yet; bind the tool to a program with command = {COMMAND_EXAMPLE}"),
                    ));
                }
                unknown => {
                    let hint = did_you_mean(unknown, &KNOWN_KEYS);
                    return Err(self.invalid(key.span(), path, format!("unknown key{hint}; the known keys are {}", KNOWN_KEYS.join(", "))));
                }
            }
        }
        if let Some(server) = mcp {
            if command.is_some() {
                return Err(self.invalid(
                    value.span(),
                    table_path,
                    "has both `command` and `mcp`: a tool is either a command or a tool of an MCP server".into(),
                ));
            }
            let tool = tool.unwrap_or_else(|| name.to_owned());
            return Ok(ToolBinding { command: Vec::new(), timeout, max_output, env, mcp: Some(McpBinding { server, tool }) });
        }
        if tool.is_some() {
            return Err(self.invalid(value.span(), table_path, "has `tool` without `mcp`: `tool` names a tool of an MCP server".into()));
        }
        let Some(command) = command else {
            return Err(self.invalid(
                value.span(),
                table_path,
                format!("has no `command`; add the program and its arguments, such as command = {COMMAND_EXAMPLE}"),
            ));
        };
        Ok(ToolBinding { command, timeout, max_output, env, mcp: None })
    }

    /// `mcp = { command = [...] }` or `mcp = { url = "..." }`.
    fn mcp(&self, path: &str, value: &Spanned<DeValue<'_>>) -> Result<McpServerRef, ToolsFileError> {
        const EXAMPLE: &str = "mcp = { command = [\"python3\", \"tools_server.py\"] } or mcp = { url = \"http://127.0.0.1:9000/mcp\" }";
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.invalid(value.span(), path.to_string(), format!("must be a table: {EXAMPLE}, found {}", self.found(value))));
        };
        let entries = in_file_order(table);
        match entries.as_slice() {
            [(key, v)] if key.get_ref() == "command" => Ok(McpServerRef::Command(self.command(&format!("{path}.command"), v)?)),
            [(key, v)] if key.get_ref() == "url" => match v.get_ref() {
                DeValue::String(url) if weft_guard::Target::parse(url).is_ok() => Ok(McpServerRef::Url(url.to_string())),
                _ => Err(self.invalid(v.span(), format!("{path}.url"), format!("must be an http:// or https:// URL; write {EXAMPLE}"))),
            },
            _ => Err(self.invalid(value.span(), path.to_string(), format!("must hold exactly one of `command` and `url`: {EXAMPLE}"))),
        }
    }

    /// The `[mcp]` table: `allow_commands`, the commands documents' stdio MCP servers may be.
    fn mcp_commands(&self, value: &Spanned<DeValue<'_>>) -> Result<Vec<String>, ToolsFileError> {
        const EXAMPLE: &str = "[mcp] followed by allow_commands = [\"python3\", \"npx\"]";
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.invalid(value.span(), "mcp".into(), format!("must be a table, found {}; write {EXAMPLE}", self.found(value))));
        };
        let mut out = Vec::new();
        for (key, value) in in_file_order(table) {
            if key.get_ref() != "allow_commands" {
                let hint = did_you_mean(key.get_ref(), &["allow_commands"]);
                return Err(self.invalid(key.span(), key_path(&["mcp", key.get_ref()]), format!("unknown key{hint}; write {EXAMPLE}")));
            }
            let DeValue::Array(items) = value.get_ref() else {
                return Err(self.invalid(
                    value.span(),
                    "mcp.allow_commands".into(),
                    format!("must be a list of commands; write {EXAMPLE}"),
                ));
            };
            for item in items {
                match item.get_ref() {
                    DeValue::String(c) if !c.is_empty() => out.push(c.to_string()),
                    _ => {
                        return Err(self.invalid(
                            item.span(),
                            "mcp.allow_commands".into(),
                            format!("every item must be a command name, a non-empty string; write {EXAMPLE}"),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    fn command(&self, path: &str, value: &Spanned<DeValue<'_>>) -> Result<Vec<String>, ToolsFileError> {
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::String(line) => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let simple = !words.is_empty() && !line.contains(|c: char| "\"'\\$`|&;<>(){}*?~".contains(c));
                let here = if simple { format!(" (here: command = {:?})", words) } else { String::new() };
                return Err(self.invalid(
                    value.span(),
                    path.to_string(),
                    format!("must be a list, not a string: use an argv list such as {COMMAND_EXAMPLE}; commands run without a shell{here}"),
                ));
            }
            _ => {
                return Err(self.invalid(
                    value.span(),
                    path.to_string(),
                    format!("must be an argv list such as {COMMAND_EXAMPLE}, found {}", self.found(value)),
                ));
            }
        };
        if items.is_empty() {
            return Err(self.invalid(
                value.span(),
                path.to_string(),
                format!("is empty; give the program and its arguments, such as {COMMAND_EXAMPLE}"),
            ));
        }
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let DeValue::String(arg) = item.get_ref() else {
                let source = self.text.get(item.span()).unwrap_or("").trim();
                return Err(self.invalid(
                    item.span(),
                    item_path,
                    format!("must be a string, found {}; quote every item of the argv list, such as \"{source}\"", self.found(item)),
                ));
            };
            if i == 0 && arg.is_empty() {
                return Err(self.invalid(item.span(), item_path, "the program name is empty; give a program such as \"python3\"".into()));
            }
            if arg.contains('\0') {
                return Err(self.invalid(item.span(), item_path, "contains a NUL character, which cannot be passed to a program".into()));
            }
            argv.push(arg.to_string());
        }
        Ok(argv)
    }

    fn timeout(&self, path: &str, value: &Spanned<DeValue<'_>>) -> Result<Duration, ToolsFileError> {
        let seconds = match value.get_ref() {
            DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix()).ok().map(|n| n as f64),
            DeValue::Float(x) => x.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match seconds.filter(|s| s.is_finite() && *s > 0.0).map(Duration::try_from_secs_f64) {
            Some(Ok(timeout)) if !timeout.is_zero() => Ok(timeout),
            _ => Err(self.invalid(
                value.span(),
                path.to_string(),
                format!(
                    "must be a positive number of seconds, such as 30 or 0.5, found {}; leave it out for the default of {} s",
                    self.found(value),
                    DEFAULT_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    fn max_output_mb(&self, path: &str, value: &Spanned<DeValue<'_>>) -> Result<u64, ToolsFileError> {
        let mb = match value.get_ref() {
            DeValue::Integer(n) => u64::from_str_radix(n.as_str(), n.radix()).ok(),
            _ => None,
        };
        match mb.filter(|mb| (1..=MAX_OUTPUT_MB_LIMIT).contains(mb)) {
            Some(mb) => Ok(mb),
            None => Err(self.invalid(
                value.span(),
                path.to_string(),
                format!(
                    "must be a whole number of MiB from 1 to {MAX_OUTPUT_MB_LIMIT}, such as 128, found {}; leave it out for the default of {} MiB",
                    self.found(value),
                    DEFAULT_MAX_OUTPUT / MIB
                ),
            )),
        }
    }

    fn env(&self, path: &str, value: &Spanned<DeValue<'_>>) -> Result<BTreeMap<String, String>, ToolsFileError> {
        let DeValue::Table(vars) = value.get_ref() else {
            return Err(self.invalid(
                value.span(),
                path.to_string(),
                format!("must be a table of strings, such as env = {{ API_TOKEN = \"...\" }}, found {}", self.found(value)),
            ));
        };
        let mut env = BTreeMap::new();
        for (name, value) in in_file_order(vars) {
            let name: &str = name.get_ref();
            let var_path = format!("{path}.{}", key_path(&[name]));
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(self.invalid(
                    value.span(),
                    var_path,
                    "is not a valid environment variable name (empty, or with `=` or NUL)".into(),
                ));
            }
            let DeValue::String(text) = value.get_ref() else {
                let source = self.text.get(value.span()).unwrap_or("").trim();
                return Err(self.invalid(
                    value.span(),
                    var_path,
                    format!(
                        "must be a string, found {}; environment values are strings: quote it, such as \"{source}\"",
                        self.found(value)
                    ),
                ));
            };
            if text.contains('\0') {
                return Err(self.invalid(value.span(), var_path, "contains a NUL character, which cannot be passed to a program".into()));
            }
            env.insert(name.to_string(), text.to_string());
        }
        Ok(env)
    }
}

/// A dotted key path, with the parts that are not bare TOML keys quoted.
fn key_path(parts: &[&str]) -> String {
    let quoted: Vec<String> = parts
        .iter()
        .map(|p| {
            if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                p.to_string()
            } else {
                format!("{p:?}")
            }
        })
        .collect();
    quoted.join(".")
}

/// ` (did you mean `y`?)` when a known key is close to `key`, else nothing.
fn did_you_mean(key: &str, known: &[&str]) -> String {
    let alias = match key {
        "cmd" | "argv" | "args" | "run" | "exec" | "program" => Some("command"),
        "timeout" | "timeout_secs" | "timeout_seconds" | "timeout_sec" => Some("timeout_s"),
        "max_output" | "max_output_mib" | "max_output_bytes" | "output_limit" | "max_stdout_mb" => Some("max_output_mb"),
        "environment" | "envs" | "vars" => Some("env"),
        _ => None,
    }
    .filter(|alias| known.contains(alias));
    let close = alias.or_else(|| {
        // Ties go to the first key in alphabetical order.
        let mut sorted = known.to_vec();
        sorted.sort_unstable();
        let key = key.to_lowercase();
        closest(sorted, |k| {
            let d = edit_distance(&key, k);
            (d <= 2 && d < k.chars().count()).then_some(d)
        })
    });
    close.map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"))
}
