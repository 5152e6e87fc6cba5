//! Ctrl-C during a tool call kills the tool's whole process group: `weft run` is interrupted
//! while a command tool that forked a grandchild hangs, and neither process is left running.
//! "No process left" is checked by PID: the tool writes its own PID and its grandchild's to
//! files, and the test polls /proc.

#![cfg(unix)]

mod common;

use common::corpus;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The PID in `dir/name`, once written (waits up to 20 s).
fn pid_in(dir: &Path, name: &str) -> u32 {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name))
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the tool did not write its PID to {name}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the process is running (it exists and is not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|s| s != 'Z')
}

/// Asserts that the process stops running within 2 s.
fn assert_killed(pid: u32, what: &str) {
    let start = Instant::now();
    while running(pid) {
        assert!(start.elapsed() < Duration::from_secs(2), "{what} (process {pid}) is still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `p_tool_node_server.json` with its tool bound to a command that forks a grandchild and
/// hangs, sends SIGINT once both are up (to weft alone, or to weft's whole process group as a
/// terminal's Ctrl-C does), and checks that weft stops (exit 130) and leaves no process.
fn interrupt_a_forking_tool(to_the_group: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.get_weather]\ncommand = [\"sh\", \"-c\", \"sleep 1000 & echo $! > grandchild; echo $$ > pid; sleep 1000\"]\n",
    )
    .expect("write");
    let mut weft = Command::new(env!("CARGO_BIN_EXE_weft"));
    weft.args(["run", &corpus("p_tool_node_server.json"), "--tools", "tools.toml", "--input", "city=Paris"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if to_the_group {
        // Its own group, as a shell gives a foreground job, so the signal reaches no test process.
        weft.process_group(0);
    }
    let child = weft.spawn().expect("spawn weft");
    let (pid, grandchild) = (pid_in(dir.path(), "pid"), pid_in(dir.path(), "grandchild"));
    assert!(running(pid) && running(grandchild), "the tool and its grandchild run before Ctrl-C");
    let target = if to_the_group { format!("-{}", child.id()) } else { child.id().to_string() };
    let status = Command::new("kill").args(["-INT", "--", &target]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted (Ctrl-C): run state written to p_tool_node_server.state.json"), "{err}");
    assert!(out.stdout.is_empty(), "no outputs: {}", String::from_utf8_lossy(&out.stdout));
    assert_killed(pid, "the tool");
    assert_killed(grandchild, "the tool's grandchild");
}

#[test]
fn ctrl_c_sent_to_weft_kills_a_forking_tool_with_its_grandchild() {
    interrupt_a_forking_tool(false);
}

#[test]
fn ctrl_c_at_a_terminal_kills_a_forking_tool_with_its_grandchild() {
    interrupt_a_forking_tool(true);
}
