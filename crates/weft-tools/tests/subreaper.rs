//! When this process adopts a tool's orphans (it is PID 1 in a container, or, as here, a child
//! subreaper), a call that ends by itself reaps the processes of the tool's group it killed:
//! they are gone from /proc, not left as zombies. Its own test binary, as the subreaper
//! attribute is process-wide.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, json};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_tools::{CommandTool, Tool, ToolError};

/// Waits up to 5 s for `dir/name` to hold a PID.
async fn pid_in(dir: &Path, name: &str) -> u32 {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name))
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the script did not write a PID to {name}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that the process is gone within 2 s: killed and reaped, not even a zombie.
async fn assert_reaped(pid: u32, what: &str) {
    let start = Instant::now();
    while let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        assert!(start.elapsed() < Duration::from_secs(2), "{what} (process {pid}) is still there: {stat}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_adopted_grandchild_is_reaped_after_a_timeout_a_finished_call_and_the_output_cap() {
    rustix::process::set_child_subreaper(rustix::process::Pid::from_raw(1)).expect("become a child subreaper");
    let dir = tempfile::tempdir().unwrap();
    let tool = |script: &str| CommandTool::new(["sh", "-c", script]).with_cwd(dir.path()).with_timeout(Duration::from_secs(20));

    let err =
        tool("sleep 1000 & echo $! > timeout; sleep 1000").with_timeout(Duration::from_millis(300)).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
    assert_reaped(pid_in(dir.path(), "timeout").await, "the grandchild of a tool that timed out").await;

    let out = tool("sleep 1000 & echo $! > finished; echo 1").call(Map::new()).await.unwrap();
    assert_eq!(out, json!(1));
    assert_reaped(pid_in(dir.path(), "finished").await, "the grandchild of a finished tool").await;

    let err = tool("yes & echo $! > flood; exec yes").with_max_output(1024 * 1024).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::OutputTooLarge { .. }), "{err:?}");
    assert_reaped(pid_in(dir.path(), "flood").await, "the grandchild of a tool past its output cap").await;
}
