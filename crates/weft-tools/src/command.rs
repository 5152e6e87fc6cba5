//! Command tools: an external program called once per tool call.
//!
//! The protocol, for a tool author:
//!
//! - the program is started directly from its argv, without a shell (no globbing, pipes or
//!   `$VARS`: write `["sh", "-c", "..."]` to get a shell);
//! - it reads the arguments as one JSON object (keyed by input title) on stdin, followed by a
//!   newline, and stdin is then closed. A program that does not read its stdin is fine;
//! - it prints one JSON value on stdout: for a tool with one output, that output's value; for
//!   several, an object keyed by output title. Whitespace around the value is allowed; logs go
//!   to stderr;
//! - it exits with status 0. A non-zero exit (or death by a signal) fails the call with the
//!   end of stderr (the last 20 lines, at most 2 KB) in the message.
//!
//! The environment is inherited, with [`CommandTool::with_env`] variables added on top.
//!
//! When the call times out the process is killed (SIGKILL) and reaped before
//! [`ToolError::Timeout`] is returned. When the call's future is dropped (the flow was
//! cancelled), the process is killed too (`kill_on_drop`) and reaped in the background by the
//! tokio runtime. Only the process itself is killed: processes it spawned (grandchildren) are
//! its own business. A program that leaves a background process holding its stdout open makes
//! the call last until that process exits or the timeout strikes.

use crate::{Tool, ToolError};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};

/// How many lines of stderr a failure message quotes, at most.
const STDERR_LINES: usize = 20;
/// How many bytes of stderr a failure message quotes, at most.
const STDERR_BYTES: usize = 2048;
/// How many bytes of stderr are kept while reading (the end of it).
const STDERR_KEEP: usize = 8 * 1024;
/// How many characters of bad stdout a message quotes.
const STDOUT_EXCERPT_CHARS: usize = 200;
/// What a command must print, said when it did not.
const OUTPUT_HINT: &str = "the command must print one JSON value on stdout: for one output its value, for several an object keyed by output title; write logs to stderr";

/// An external program called once per tool call; see the [module docs](self) for the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTool {
    argv: Vec<String>,
    timeout: Option<Duration>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
}

impl CommandTool {
    /// A command tool running `argv` (the program, then its arguments; no shell), with no
    /// timeout, the inherited environment and the current working directory.
    ///
    /// An empty `argv` is accepted here and fails every call with [`ToolError::Unavailable`].
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> CommandTool {
        CommandTool { argv: argv.into_iter().map(Into::into).collect(), timeout: None, env: BTreeMap::new(), cwd: None }
    }

    /// Kills the process and fails with [`ToolError::Timeout`] when a call takes longer than `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> CommandTool {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an environment variable for the process, on top of the inherited environment.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandTool {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets environment variables for the process, on top of the inherited environment.
    pub fn with_envs<K: Into<String>, V: Into<String>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> CommandTool {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Runs the process in `cwd`. A relative program path containing a `/` (such as
    /// `./tool.sh`) is then resolved against `cwd` too (on Linux).
    pub fn with_cwd(mut self, cwd: impl Into<PathBuf>) -> CommandTool {
        self.cwd = Some(cwd.into());
        self
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The timeout of a call, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The environment variables set on top of the inherited environment.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The working directory, if not the current one.
    pub fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The argv as one line for messages: items joined by spaces, an item with spaces or
    /// quotes (or an empty one) quoted.
    pub fn command_line(&self) -> String {
        let shown: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') { format!("{a:?}") } else { a.clone() }
            })
            .collect();
        shown.join(" ")
    }

    fn spawn_error(&self, program: &str, error: &std::io::Error) -> ToolError {
        let command = self.command_line();
        let in_dir = match &self.cwd {
            Some(dir) => format!(" (working directory {})", dir.display()),
            None => String::new(),
        };
        let message = match error.kind() {
            ErrorKind::NotFound if self.cwd.as_ref().is_some_and(|dir| !dir.is_dir()) => format!(
                "cannot start command `{command}`: its working directory {} does not exist ({error})",
                self.cwd.as_deref().unwrap_or(Path::new(".")).display()
            ),
            ErrorKind::NotFound if program.contains('/') => format!(
                "cannot start command `{command}`: program `{program}` was not found{in_dir} ({error}); check the path (a relative path is resolved against the working directory)"
            ),
            ErrorKind::NotFound => format!(
                "cannot start command `{command}`: program `{program}` was not found on PATH ({error}); install it, or give its full path as the first item of `command`"
            ),
            ErrorKind::PermissionDenied => format!(
                "cannot start command `{command}`: permission denied for program `{program}`{in_dir} ({error}); make it executable (`chmod +x {program}`) or run it through its interpreter, such as [\"python3\", \"{program}\"]"
            ),
            _ => format!("cannot start command `{command}`: program `{program}`{in_dir}: {error}"),
        };
        ToolError::Unavailable { message }
    }
}

#[async_trait::async_trait]
impl Tool for CommandTool {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        let command = self.command_line();
        let Some((program, rest)) = self.argv.split_first() else {
            return Err(ToolError::Unavailable {
                message: "the command is empty: give the program and its arguments as an argv list such as [\"python3\", \"tool.py\"]"
                    .into(),
            });
        };
        let mut input = serde_json::to_vec(&Json::Object(args))
            .map_err(|e| ToolError::Failed { message: format!("cannot encode the arguments of command `{command}` as JSON: {e}") })?;
        input.push(b'\n');

        let mut process = Command::new(program);
        process.args(rest).envs(&self.env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            process.current_dir(cwd);
        }
        let mut child = process.spawn().map_err(|e| self.spawn_error(program, &e))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        // Everything at once: a child blocked writing stderr while we wait on stdout (or
        // blocked reading stdin while we wait on it) would deadlock otherwise.
        let run = async { tokio::join!(write_input(stdin, &input), read_all(stdout), read_tail(stderr), child.wait()) };
        let finished = match self.timeout {
            None => Some(run.await),
            Some(limit) => tokio::time::timeout(limit, run).await.ok(),
        };
        let Some((written, out, err, status)) = finished else {
            // Kill and reap: no process or zombie is left behind. An error means it is gone already.
            let _ = child.kill().await;
            return Err(ToolError::Timeout { after: self.timeout.unwrap_or_default() });
        };

        let status = status.map_err(|e| ToolError::Failed { message: format!("cannot wait for command `{command}`: {e}") })?;
        if !status.success() {
            let (stderr, stderr_truncated) = err.unwrap_or_default();
            return Err(ToolError::Failed {
                message: format!("command `{command}` {}{}", describe_exit(status), stderr_excerpt(&stderr, stderr_truncated)),
            });
        }
        written
            .map_err(|e| ToolError::Failed { message: format!("cannot write the arguments to the stdin of command `{command}`: {e}") })?;
        let out = out.map_err(|e| ToolError::Failed { message: format!("cannot read the stdout of command `{command}`: {e}") })?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Err(ToolError::BadOutput { message: format!("command `{command}` printed nothing on stdout; {OUTPUT_HINT}") });
        }
        serde_json::from_slice(&out).map_err(|e| ToolError::BadOutput {
            message: format!(
                "command `{command}` did not print valid JSON on stdout ({e}); its stdout starts with {}; {OUTPUT_HINT}",
                stdout_excerpt(&out)
            ),
        })
    }
}

/// Writes the arguments and closes stdin. A child that exits without reading is not an error.
async fn write_input(stdin: Option<ChildStdin>, input: &[u8]) -> std::io::Result<()> {
    let Some(mut stdin) = stdin else { return Ok(()) };
    match stdin.write_all(input).await {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
    // `stdin` is dropped here, which closes the pipe.
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Reads the pipe to its end, keeping only the last [`STDERR_KEEP`] bytes or so; true when
/// earlier bytes were dropped.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut pipe) = pipe else { return Ok((kept, truncated)) };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > 2 * STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
            truncated = true;
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                3 => " (SIGQUIT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    format!("failed ({status})")
}

/// `; stderr ends with:` and the last lines of stderr, indented, or a note that it was empty.
fn stderr_excerpt(stderr: &[u8], truncated: bool) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if text.trim_start().is_empty() {
        return "; it wrote nothing on stderr".to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.len().saturating_sub(STDERR_LINES);
    let mut tail = lines[first..].join("\n");
    let mut cut = truncated || first > 0;
    if tail.len() > STDERR_BYTES {
        let mut start = tail.len() - STDERR_BYTES;
        while !tail.is_char_boundary(start) {
            start += 1;
        }
        tail = tail[start..].to_string();
        cut = true;
    }
    let mut excerpt = String::from(if cut { "; stderr ends with:\n  …" } else { "; stderr:" });
    for line in tail.lines() {
        excerpt.push_str("\n  ");
        excerpt.push_str(line);
    }
    excerpt
}

/// The first [`STDOUT_EXCERPT_CHARS`] characters of stdout, quoted.
fn stdout_excerpt(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let mut chars = text.trim_start().chars();
    let head: String = chars.by_ref().take(STDOUT_EXCERPT_CHARS).collect();
    if chars.next().is_some() { format!("{head:?}…") } else { format!("{head:?}") }
}
