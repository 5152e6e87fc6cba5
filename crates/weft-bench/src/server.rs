//! The OpenAI-compatible test server of `--http` mode, run as a child process
//! (`weft-testkit-server`) so that its CPU time and memory are not counted in the measured
//! process's figures.
//!
//! The child lives in a [`ServerChild`] guard: dropping it kills the child and waits for it,
//! so it goes when the measurement ends, fails or is interrupted (Ctrl-C and SIGTERM end the
//! measurement as an error, so the guard is dropped). As a second line of defence the child
//! serves only while its stdin is open, and that pipe's other end is held by this process: if
//! this process dies without unwinding (SIGKILL, an abort), the kernel closes the pipe and the
//! server exits by itself.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The server program's file name.
pub const PROGRAM: &str = "weft-testkit-server";

/// The server program beside this executable (`target/release/weft-testkit-server` for
/// `target/release/weft-bench`; a test binary under `deps/` looks one folder up too).
pub fn default_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's folder to look for the test server")?;
    let folder = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [Some(folder.join(PROGRAM)), folder.parent().filter(|_| folder.ends_with("deps")).map(|up| up.join(PROGRAM))];
    match candidates.into_iter().flatten().find(|p| p.is_file()) {
        Some(path) => Ok(path),
        None => bail!(
            "the test server program {PROGRAM} is not in {}: build it with `cargo build --release -p weft-bench` (it is a binary of weft-bench), or give its path with --server",
            folder.display()
        ),
    }
}

/// What the server answers with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerOptions {
    /// Waited before every answer.
    pub latency: Duration,
    /// Items per generated array (the orchestrator's sections).
    pub array_len: usize,
    /// Answer as an agent's model (`--tools agent`): each offered tool once, one per turn, then
    /// `submit_result`.
    pub agent_tools: bool,
}

/// A running server child; dropping it kills the child and waits for it.
#[derive(Debug)]
pub struct ServerChild {
    child: Child,
    /// Held open: the server serves while its stdin is open.
    stdin: Option<ChildStdin>,
    /// Held open so that nothing the server prints later meets a closed pipe.
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl ServerChild {
    /// Starts `program` and waits for the base URL it prints.
    pub fn start(program: &Path, options: ServerOptions) -> anyhow::Result<ServerChild> {
        let mut child = Command::new(program)
            .arg("--latency-ms")
            .arg(options.latency.as_millis().to_string())
            .arg("--array-len")
            .arg(options.array_len.to_string())
            .arg("--tools")
            .arg(if options.agent_tools { "agent" } else { "auto" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the test server {}", program.display()))?;
        // From here on the guard owns the child: an early return below kills it.
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let Some(mut stdout) = stdout else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the test server's stdout was not captured");
        };
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let mut guard = ServerChild { child, stdin, _stdout: stdout, url: String::new() };
        match read {
            Ok(n) if n > 0 && line.trim().starts_with("http://") => {
                guard.url = line.trim().to_owned();
                Ok(guard)
            }
            Ok(_) => bail!("the test server {} printed no URL (it said {:?})", program.display(), line.trim()),
            Err(e) => Err(e).with_context(|| format!("cannot read the test server's URL from {}", program.display())),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // An error means the child has already exited; waiting reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
