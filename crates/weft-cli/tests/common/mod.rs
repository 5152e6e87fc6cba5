//! Helpers shared by the command-line tests.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]
#![allow(clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use std::path::Path;

/// The absolute path of a valid corpus document.
pub fn corpus(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(file);
    path.canonicalize().expect("corpus file").to_string_lossy().into_owned()
}

/// The absolute path of a file in `tests/fixtures`.
pub fn fixture(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    path.canonicalize().expect("fixture file").to_string_lossy().into_owned()
}

/// A testkit server on its own runtime, alive as long as the returned runtime.
pub fn server(config: weft_testkit::MockConfig) -> (tokio::runtime::Runtime, weft_testkit::MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = rt.block_on(weft_testkit::MockServer::start(config));
    (rt, server)
}

/// A testkit API server (for ApiNode and RemoteTool) on its own runtime, alive as long as the
/// returned runtime.
pub fn api_server() -> (tokio::runtime::Runtime, weft_testkit::api::ApiServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = rt.block_on(weft_testkit::api::ApiServer::start());
    (rt, server)
}

/// Runs the `weft` binary in `dir` to its end (no stdin, no `OPENAI_API_KEY`).
pub fn weft(dir: &Path, args: &[&str]) -> std::process::Output {
    weft_command(dir, args).output().expect("run weft")
}

/// The `weft` binary with `args`, in `dir`, stdin closed, stdout and stderr piped.
pub fn weft_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// A process's stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends `signal` (`TERM`, `INT`, `KILL`...) to a process.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits until `ready` holds, polling every 10 ms, failing after `within`.
pub fn wait_until(what: &str, within: std::time::Duration, mut ready: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !ready() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
