//! Command tools as an attacker (or a careless tool author) would write them: a tool that forks
//! a grandchild is killed with it on a timeout and when its call is dropped; a tool that exits
//! leaving a background process holding stdout is done at once with its output; a tool that
//! prints without end is stopped at its output cap. "No process left" is checked by PID: each
//! script writes the PIDs of its processes to files, and the test polls /proc.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, json};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_tools::{CommandTool, Tool, ToolError, ToolsFile};

/// A shell script run in `dir`, with a timeout long enough to never strike unless the test says so.
fn sh(dir: &Path, script: &str) -> CommandTool {
    CommandTool::new(["sh", "-c", script]).with_cwd(dir).with_timeout(Duration::from_secs(20))
}

/// The script of a tool that forks a grandchild (PID in `grandchild`), records its own PID (in
/// `pid`), then hangs.
const FORKS_AND_HANGS: &str = "sleep 1000 & echo $! > grandchild; echo $$ > pid; sleep 1000";

/// Waits up to 5 s for `dir/name` to hold a PID.
async fn pid_in(dir: &Path, name: &str) -> u32 {
    let file = dir.join(name);
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the script did not write a PID to {}", file.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The state letter of a process (`R`, `S`, `Z`...), or `None` when it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the command may hold spaces and parentheses, the state follows the last `)`.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Whether the process is running (it exists and is not a zombie).
fn running(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// Asserts that the process is dead within 2 s: gone, or a zombie waiting for whoever adopted it
/// (a killed grandchild is reaped by init, not by us).
async fn assert_killed(pid: u32, what: &str) {
    let start = Instant::now();
    while running(pid) {
        assert!(start.elapsed() < Duration::from_secs(2), "{what} (process {pid}) is still running: state {:?}", state(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that our own child is gone within 2 s, reaped: not even a zombie.
async fn assert_reaped(pid: u32, what: &str) {
    let start = Instant::now();
    while state(pid).is_some() {
        assert!(start.elapsed() < Duration::from_secs(2), "{what} (process {pid}) is still there: state {:?}", state(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_tool_that_forks_a_grandchild_is_killed_with_it_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let tool = sh(dir.path(), FORKS_AND_HANGS).with_timeout(Duration::from_millis(500));
    let start = Instant::now();
    let err = tool.call(Map::new()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
    let (pid, grandchild) = (pid_in(dir.path(), "pid").await, pid_in(dir.path(), "grandchild").await);
    assert_reaped(pid, "the tool").await;
    assert_killed(grandchild, "the tool's grandchild").await;
}

#[tokio::test]
async fn a_tool_that_forks_a_grandchild_is_killed_with_it_when_the_call_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let tool = sh(dir.path(), FORKS_AND_HANGS);
    let mut call = tool.call(Map::new());
    let (pid, grandchild) = tokio::select! {
        result = &mut call => panic!("the call ended: {result:?}"),
        pids = async { (pid_in(dir.path(), "pid").await, pid_in(dir.path(), "grandchild").await) } => pids,
    };
    assert!(running(pid) && running(grandchild), "both processes run before the call is dropped");
    drop(call);
    assert_killed(pid, "the tool").await;
    assert_killed(grandchild, "the tool's grandchild").await;
}

#[tokio::test]
async fn a_tool_that_exits_leaving_a_child_holding_stdout_is_done_at_once_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    // The background `sleep` inherits stdout and stderr and keeps them open for 1000 s.
    let tool = sh(dir.path(), r#"sleep 1000 & echo $! > grandchild; echo '{"ok": true}'"#).with_timeout(Duration::from_secs(10));
    let start = Instant::now();
    let out = tool.call(Map::new()).await;
    let took = start.elapsed();
    assert_eq!(out.unwrap(), json!({"ok": true}));
    assert!(took < Duration::from_secs(1), "the call took {took:?}");
    assert_killed(pid_in(dir.path(), "grandchild").await, "the background process holding stdout").await;
}

#[tokio::test]
async fn a_background_process_left_by_a_finished_tool_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    // Detached from the pipes, the background process does not delay the call; it still dies with it.
    let tool = sh(dir.path(), "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > grandchild; echo 7");
    assert_eq!(tool.call(Map::new()).await.unwrap(), json!(7));
    assert_killed(pid_in(dir.path(), "grandchild").await, "the tool's background process").await;
}

#[tokio::test]
async fn a_tool_printing_past_its_output_cap_is_stopped_with_the_cap_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tools.toml");
    // `yes` prints without end; a forked copy of it too.
    std::fs::write(
        &file,
        "[tools.flood]\ncommand = [\"sh\", \"-c\", \"yes & echo $! > grandchild; echo $$ > pid; exec yes\"]\nmax_output_mb = 1\ntimeout_s = 20\n",
    )
    .unwrap();
    let tools = ToolsFile::load(&file).unwrap();
    assert_eq!(tools.tools["flood"].max_output, 1024 * 1024);
    let registry = tools.registry();
    let start = Instant::now();
    let err = registry.get("flood").unwrap().call(Map::new()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "stopped at the cap, not at the timeout: {:?}", start.elapsed());
    assert!(matches!(err, ToolError::OutputTooLarge { limit: 1_048_576 }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "printed more than 1 MiB on stdout, the cap of a tool's output; its processes were killed (raise `max_output_mb` for this tool in the tools file if its output is really that large)"
    );
    assert_reaped(pid_in(dir.path(), "pid").await, "the tool").await;
    assert_killed(pid_in(dir.path(), "grandchild").await, "the tool's grandchild").await;
}

#[tokio::test]
async fn output_at_the_cap_is_accepted_and_one_byte_more_is_not() {
    let dir = tempfile::tempdir().unwrap();
    // A JSON string of exactly 1 MiB: 1048574 letters between two quotes.
    let script = "printf '\"'; head -c 1048574 /dev/zero | tr '\\0' a; printf '\"'";
    let out = sh(dir.path(), script).with_max_output(1024 * 1024).call(Map::new()).await.unwrap();
    assert_eq!(out.as_str().map(str::len), Some(1_048_574));
    let err = sh(dir.path(), script).with_max_output(1024 * 1024 - 1).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::OutputTooLarge { limit: 1_048_575 }), "{err:?}");
    assert!(err.to_string().starts_with("printed more than 1048575 bytes on stdout"), "{err}");
}
