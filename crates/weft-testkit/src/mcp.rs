//! The reference MCP server for tests: `python/mcp_server.py`, the `mcp` package's FastMCP at
//! the version the reference environment pins (`scripts/agentspec-venv.sh` creates it; the
//! helpers never skip: without it they panic with the script's error).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference environment's python (created on first use by `scripts/agentspec-venv.sh`).
pub fn reference_python() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/agentspec-venv.sh")).output().expect("run scripts/agentspec-venv.sh");
    assert!(
        out.status.success(),
        "could not create the Agent Spec reference environment (scripts/agentspec-venv.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the script prints the python path").trim())
}

/// The server script.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mcp_server.py")
}

/// An HTTP MCP server process (streamable HTTP or SSE), killed on drop.
pub struct McpProcess {
    child: Child,
    port: u16,
}

impl McpProcess {
    /// Starts the server with `transport` (`"http"` or `"sse"`) on a free port, writing its PID
    /// to `pid_file` when given, and waits until it accepts connections.
    pub fn start(transport: &str, pid_file: Option<&Path>) -> McpProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut cmd = Command::new(reference_python());
        cmd.arg(server_script()).arg(transport).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(p) = pid_file {
            cmd.env("MCP_PID_FILE", p);
        }
        let child = cmd.spawn().expect("start the MCP server");
        let server = McpProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the MCP server did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for McpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` is alive (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The scripted MCP server on the `mcp` package's low-level `Server` (stdio): a listing in pages
/// (`nextCursor`), a tool that fails with "Unknown tool" before it works, every request logged to
/// `$MCP_LOG` (see the script's docstring).
pub fn paged_server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mcp_paged_server.py")
}
