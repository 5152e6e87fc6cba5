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
//! **Process groups.** On Unix each call's process is the leader of a new process group, and
//! the processes it starts (grandchildren: `sh -c "worker &"`, a pipeline, a Python
//! subprocess) belong to that group unless they leave it on purpose (`setsid`). No process of
//! the group outlives the call: when the call ends (finished, failed or timed out) or its
//! future is dropped (the flow was cancelled, a sibling failed, Ctrl-C) the whole group gets
//! SIGKILL. The process itself is reaped by the call (or, when the future was dropped, in the
//! background by the tokio runtime); its descendants, orphaned once killed, are reaped by
//! whoever adopted them: init, or this process when it is PID 1 (in a container) or a child
//! subreaper, in which case a call that ends by itself reaps them (a dropped call cannot: its
//! process is not reaped yet, so they wait, as zombies, for this process to exit).
//!
//! **When a call is done.** When the process has exited and its stdout and stderr have reached
//! end of file, or [`EXIT_GRACE`] (200 ms) after the process exited, whichever comes first: a
//! program that printed its JSON and exited leaving a background process holding stdout open
//! is done with what it printed (and the background process is killed with its group).
//!
//! **Limits.** Stdout is capped ([`DEFAULT_MAX_OUTPUT`], 64 MiB, unless
//! [`CommandTool::with_max_output`] or `max_output_mb` in the tools file says otherwise): past
//! the cap the group is killed and the call fails with [`ToolError::OutputTooLarge`]. Of
//! stderr only the end is kept (about 16 KiB), for failure messages.
//!
//! **Secrets.** The excerpts of stderr and stdout a message quotes are cut from the text with
//! [`CommandTool::with_secrets`] masked, so a secret a tool printed is never cut in two (a half
//! no longer matches any scrubber).

use crate::{Tool, ToolError};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use weft_guard::Secrets;

/// One mebibyte, the unit of `max_output_mb`.
pub const MIB: u64 = 1024 * 1024;
/// The cap of a command's stdout when none is set: 64 MiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 64 * MIB;
/// How long a call waits, after its process exited, for stdout and stderr to reach end of
/// file (a background process of the tool may hold them open) before using what was read.
pub const EXIT_GRACE: Duration = Duration::from_millis(200);

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
    max_output: u64,
    secrets: Arc<Secrets>,
}

impl CommandTool {
    /// A command tool running `argv` (the program, then its arguments; no shell), with no
    /// timeout, the inherited environment and the current working directory.
    ///
    /// An empty `argv` is accepted here and fails every call with [`ToolError::Unavailable`].
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> CommandTool {
        CommandTool {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: None,
            env: BTreeMap::new(),
            cwd: None,
            max_output: DEFAULT_MAX_OUTPUT,
            secrets: Arc::default(),
        }
    }

    /// Masks `secrets` in the excerpts of stderr and stdout that failure messages quote, before
    /// they are cut.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> CommandTool {
        self.secrets = secrets;
        self
    }

    /// Caps stdout at `bytes` (default [`DEFAULT_MAX_OUTPUT`]): a call whose process prints
    /// more is stopped (its process group killed) and fails with [`ToolError::OutputTooLarge`].
    pub fn with_max_output(mut self, bytes: u64) -> CommandTool {
        self.max_output = bytes;
        self
    }

    /// The cap of stdout, in bytes.
    pub fn max_output(&self) -> u64 {
        self.max_output
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
        // A new process group led by the child: its descendants can be killed with it.
        #[cfg(unix)]
        process.process_group(0);
        if let Some(cwd) = &self.cwd {
            process.current_dir(cwd);
        }
        let mut child = process.spawn().map_err(|e| self.spawn_error(program, &e))?;
        // Declared after `child`, so dropped before it: when the call's future is dropped, the
        // group is killed, then `kill_on_drop` kills the child (already dying) and hands it to
        // the runtime to reap.
        let mut group = ProcessGroup::led_by(&child);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        let mut out = Vec::new();
        let mut err = Tail::default();
        let talk =
            talk(&mut child, Pipes { stdin, input: &input, stdout, out: &mut out, max_output: self.max_output, stderr, err: &mut err });
        let finished = match self.timeout {
            None => Some(talk.await),
            Some(limit) => tokio::time::timeout(limit, talk).await.ok(),
        };
        // Whatever is left of the group (everything after a timeout or past the output cap, a
        // background process otherwise) is killed now.
        group.kill();
        let (written, stdout_read, status) = match finished {
            None | Some(Talk::OutputTooLarge) => {
                // Reap the child too: no process or zombie is left behind. An error means it is
                // gone already.
                let _ = child.kill().await;
                group.reap_adopted_once_reaped(&mut child);
                return Err(match finished {
                    None => ToolError::Timeout { after: self.timeout.unwrap_or_default() },
                    Some(_) => ToolError::OutputTooLarge { limit: self.max_output },
                });
            }
            Some(Talk::Exited { written, stdout, status }) => {
                group.reap_adopted_once_reaped(&mut child);
                (written, stdout, status)
            }
        };

        let status = status.map_err(|e| ToolError::Failed { message: format!("cannot wait for command `{command}`: {e}") })?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err.kept);
            let stderr = self.secrets.redact_str(&stderr);
            let said = if stderr.trim().is_empty() { describe_exit(status) } else { stderr.trim().to_owned() };
            return Err(ToolError::Exited {
                message: format!(
                    "command `{command}` {}{}",
                    describe_exit(status),
                    stderr_excerpt(&err.kept, err.truncated, &self.secrets)
                ),
                said,
            });
        }
        written
            .map_err(|e| ToolError::Failed { message: format!("cannot write the arguments to the stdin of command `{command}`: {e}") })?;
        stdout_read.map_err(|e| ToolError::Failed { message: format!("cannot read the stdout of command `{command}`: {e}") })?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Err(ToolError::BadOutput { message: format!("command `{command}` printed nothing on stdout; {OUTPUT_HINT}") });
        }
        serde_json::from_slice(&out).map_err(|e| ToolError::BadOutput {
            message: format!(
                "command `{command}` did not print valid JSON on stdout ({e}); its stdout starts with {}; {OUTPUT_HINT}",
                stdout_excerpt(&out, &self.secrets)
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

/// The process group a call's child leads; [`ProcessGroup::kill`] (or dropping it) sends
/// SIGKILL to every process in it.
pub(crate) struct ProcessGroup {
    #[cfg(unix)]
    id: Option<rustix::process::Pid>,
    killed: bool,
}

impl ProcessGroup {
    /// The group of `child`, spawned with `process_group(0)` (its id is the child's PID).
    pub(crate) fn led_by(child: &Child) -> ProcessGroup {
        #[cfg(unix)]
        {
            // Never 0 or 1: kill(0) and kill(-1) would reach far more than the tool's group.
            let id = child.id().and_then(|id| i32::try_from(id).ok()).filter(|&id| id > 1).and_then(rustix::process::Pid::from_raw);
            ProcessGroup { id, killed: false }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            ProcessGroup { killed: false }
        }
    }

    /// Kills every process of the group, once. An error means the group is empty already.
    ///
    /// While the leader is not reaped its PID, hence the group's id, cannot be reused; after
    /// that, the id stays taken as long as a process of the group lives. Only if the group had
    /// emptied and its id had been given to a new group leader since could the signal reach
    /// another group; PIDs are handed out in turn, so that needs the whole PID space to wrap
    /// around within the microseconds between the reaping and this call.
    pub(crate) fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        #[cfg(unix)]
        if let Some(id) = self.id {
            let _ = rustix::process::kill_process_group(id, rustix::process::Signal::KILL);
        }
    }

    /// Reaps the killed processes of the group that this process adopted, which happens when it
    /// is PID 1 (in a container) or a child subreaper; usually init adopts them and there is
    /// nothing to do. Does nothing unless the leader is reaped already: this would reap it
    /// behind the runtime's back. They are dying, not necessarily dead: a thread waits for them.
    fn reap_adopted_once_reaped(&self, leader: &mut Child) {
        // `try_wait` on a reaped child answers its stored status without a system call.
        if !matches!(leader.try_wait(), Ok(Some(_))) {
            return;
        }
        #[cfg(unix)]
        if let (Some(id), true) = (self.id, self.killed) {
            use rustix::process::{WaitOptions, waitpgid};
            // An error (ECHILD) means no child of ours is left in the group: the usual case.
            if waitpgid(id, WaitOptions::NOHANG).is_ok() {
                let reaper = std::thread::Builder::new()
                    .name("weft-tool-reaper".into())
                    .spawn(move || while waitpgid(id, WaitOptions::empty()).is_ok() {});
                // Without a thread they stay zombies until this process exits: harmless.
                drop(reaper);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pipes of a call and where their bytes go.
struct Pipes<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    stdout: Option<tokio::process::ChildStdout>,
    out: &'a mut Vec<u8>,
    max_output: u64,
    stderr: Option<tokio::process::ChildStderr>,
    err: &'a mut Tail,
}

/// How the exchange with a process ended.
enum Talk {
    /// The process exited, and its stdout reached end of file or [`EXIT_GRACE`] passed (what
    /// was read is in the buffer either way).
    Exited {
        /// Writing the arguments.
        written: std::io::Result<()>,
        /// Reading stdout, if it ended.
        stdout: std::io::Result<()>,
        /// The exit status.
        status: std::io::Result<ExitStatus>,
    },
    /// Stdout went past the cap.
    OutputTooLarge,
}

/// Writes the arguments, reads stdout and stderr and waits for the process, all at once (a
/// child blocked writing stderr while we wait on stdout, or blocked reading stdin while we wait
/// on it, would deadlock otherwise), until the process has exited and both pipes are at end of
/// file, or [`EXIT_GRACE`] after it exited.
async fn talk(child: &mut Child, pipes: Pipes<'_>) -> Talk {
    let Pipes { stdin, input, stdout, out, max_output, stderr, err } = pipes;
    let write = write_input(stdin, input);
    let read_out = read_capped(stdout, out, max_output);
    let read_err = read_tail(stderr, err);
    let wait = child.wait();
    let grace = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(write, read_out, read_err, wait, grace);
    let mut written = None;
    let mut stdout_done = None;
    let mut stderr_done = false;
    let mut status = None;
    loop {
        tokio::select! {
            result = &mut write, if written.is_none() => written = Some(result),
            result = &mut read_out, if stdout_done.is_none() => match result {
                Ok(Capped::Over) => return Talk::OutputTooLarge,
                Ok(Capped::Eof) => stdout_done = Some(Ok(())),
                Err(e) => stdout_done = Some(Err(e)),
            },
            // A stderr that cannot be read only loses the excerpt of a failure message.
            _ = &mut read_err, if !stderr_done => stderr_done = true,
            result = &mut wait, if status.is_none() => {
                status = Some(result);
                grace.as_mut().reset(tokio::time::Instant::now() + EXIT_GRACE);
            }
            () = &mut grace, if status.is_some() => break,
        }
        if status.is_some() && stdout_done.is_some() && stderr_done {
            break;
        }
    }
    Talk::Exited {
        // Arguments still unwritten when the process exited were not wanted.
        written: written.unwrap_or(Ok(())),
        stdout: stdout_done.unwrap_or(Ok(())),
        status: status.unwrap_or_else(|| Err(std::io::Error::other("the process did not exit"))),
    }
}

/// How reading a capped pipe ended.
enum Capped {
    /// At end of file, within the cap.
    Eof,
    /// More than the cap was printed (the buffer holds the cap's worth at most).
    Over,
}

/// Reads the pipe to its end into `buf`, stopping as soon as it holds more than `max` bytes.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, buf: &mut Vec<u8>, max: u64) -> std::io::Result<Capped> {
    let Some(mut pipe) = pipe else { return Ok(Capped::Eof) };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Capped::Eof);
        }
        if (buf.len() + n) as u64 > max {
            return Ok(Capped::Over);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The end of a stream: the last [`STDERR_KEEP`] bytes or so, and whether earlier bytes were
/// dropped.
#[derive(Default)]
struct Tail {
    kept: Vec<u8>,
    truncated: bool,
}

/// Reads the pipe to its end into `tail`, keeping only its last bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, tail: &mut Tail) -> std::io::Result<()> {
    let Some(mut pipe) = pipe else { return Ok(()) };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        tail.kept.extend_from_slice(&chunk[..n]);
        if tail.kept.len() > 2 * STDERR_KEEP {
            tail.kept.drain(..tail.kept.len() - STDERR_KEEP);
            tail.truncated = true;
        }
    }
}

/// A byte count for messages: `64 MiB` when it is a whole number of MiB, else `1500 bytes`.
pub(crate) fn describe_bytes(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
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
/// `secrets` are masked in what was kept before it is cut (and a part of one at the start of
/// what was kept, cut off when reading, is masked too).
fn stderr_excerpt(stderr: &[u8], truncated: bool, secrets: &Secrets) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = secrets.redact_str(&text);
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
fn stdout_excerpt(stdout: &[u8], secrets: &Secrets) -> String {
    let text = String::from_utf8_lossy(stdout);
    let text = secrets.redact_str(&text);
    let mut chars = text.trim_start().chars();
    let head: String = chars.by_ref().take(STDOUT_EXCERPT_CHARS).collect();
    if chars.next().is_some() { format!("{head:?}…") } else { format!("{head:?}") }
}
