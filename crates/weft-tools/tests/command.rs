//! Command tools: the stdin/stdout protocol, failures, timeouts and cancellation.

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_tools::{CommandTool, Tool, ToolError};

fn sh(script: &str) -> CommandTool {
    CommandTool::new(["sh", "-c", script]).with_timeout(Duration::from_secs(20))
}

fn args(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn message(error: &ToolError) -> String {
    error.to_string()
}

/// Waits up to 2 s for the file to hold a PID.
async fn pid_from(file: &Path) -> u32 {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "the script did not write its PID to {}", file.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that the process is gone and reaped (no /proc entry, not even a zombie) within 2 s.
async fn assert_gone(pid: u32) {
    let proc = format!("/proc/{pid}");
    let start = Instant::now();
    while Path::new(&proc).exists() {
        let state = std::fs::read_to_string(format!("{proc}/stat")).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(2), "process {pid} is still there: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn echoes_the_arguments_back() {
    let input = json!({"name": "Ada", "n": 3, "nested": {"list": [1, 2, null]}, "text": "é\n\"q\""});
    let out = CommandTool::new(["cat"]).call(args(input.clone())).await.unwrap();
    assert_eq!(out, input);
}

#[tokio::test]
async fn stdin_is_one_json_object_then_eof() {
    // `wc -l` counts the newline after the object; reaching EOF proves stdin was closed.
    let out = sh("wc -l").call(args(json!({"a": 1}))).await.unwrap();
    assert_eq!(out, json!(1));
}

#[tokio::test]
async fn one_output_value_and_several_outputs_object() {
    let one = sh("cat >/dev/null; printf '\\n  42 \\n\\n'").call(Map::new()).await.unwrap();
    assert_eq!(one, json!(42));
    let text = sh("echo '\"hello\"'").call(Map::new()).await.unwrap();
    assert_eq!(text, json!("hello"));
    let several = sh(r#"echo '{"city": "Paris", "temperature": 21.5}'"#).call(Map::new()).await.unwrap();
    assert_eq!(several, json!({"city": "Paris", "temperature": 21.5}));
}

#[tokio::test]
async fn env_and_cwd_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let tool = sh(r#"printf '{"token": "%s", "dir": "%s"}' "$API_TOKEN" "$(pwd -P)""#).with_env("API_TOKEN", "s3cret").with_cwd(dir.path());
    let out = tool.call(Map::new()).await.unwrap();
    assert_eq!(out["token"], json!("s3cret"));
    assert_eq!(out["dir"], json!(dir.path().canonicalize().unwrap().to_str().unwrap()));
    // The rest of the environment is inherited.
    let path = sh(r#"printf '"%s"' "$PATH""#).with_env("X", "y").call(Map::new()).await.unwrap();
    assert_eq!(path, json!(std::env::var("PATH").unwrap()));
}

#[tokio::test]
async fn non_zero_exit_fails_with_the_status_and_stderr() {
    let err = sh("echo 'partial output'; echo 'Traceback: it broke' >&2; exit 3").call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Exited { .. }), "{err:?}");
    // What a model is told (an agent's tool result): the tool's own words, nothing added.
    assert_eq!(err.said(), "Traceback: it broke");
    let text = message(&err);
    assert!(text.contains("command `sh -c \"echo 'partial output'; echo 'Traceback: it broke' >&2; exit 3\"`"), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("Traceback: it broke"), "{text}");
    assert!(!text.contains("partial output;"), "{text}");

    let silent = sh("exit 1").call(Map::new()).await.unwrap_err();
    assert!(message(&silent).contains("exited with status 1; it wrote nothing on stderr"), "{silent}");
    assert_eq!(silent.said(), "exited with status 1");
}

#[tokio::test]
async fn a_signal_is_named() {
    let err = sh("kill -9 $$").call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Exited { .. }), "{err:?}");
    assert!(message(&err).contains("was killed by signal 9 (SIGKILL)"), "{err}");
}

#[tokio::test]
async fn only_the_end_of_stderr_is_quoted() {
    let err = sh("i=1; while [ $i -le 100 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 2").call(Map::new()).await.unwrap_err();
    let text = message(&err);
    assert!(text.contains("line 81\n"), "{text}");
    assert!(text.contains("line 100"), "{text}");
    assert!(!text.contains("line 80\n"), "{text}");
    assert!(text.contains("stderr ends with:"), "{text}");

    // Long lines: at most about 2 KB.
    let err = sh("head -c 100000 /dev/zero | tr '\\0' x >&2; echo >&2; echo THE-END >&2; exit 2").call(Map::new()).await.unwrap_err();
    let text = message(&err);
    assert!(text.contains("THE-END"), "{text}");
    assert!(text.len() < 2300, "{} bytes", text.len());
}

#[tokio::test]
async fn stdout_that_is_not_json_is_bad_output() {
    let err = sh("echo 'Hello, I am not JSON'").call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::BadOutput { .. }), "{err:?}");
    let text = message(&err);
    assert!(
        text.contains(
            "command `sh -c \"echo 'Hello, I am not JSON'\"` did not print valid JSON on stdout (expected value at line 1 column 1)"
        ),
        "{text}"
    );
    assert!(text.contains(r#"its stdout starts with "Hello, I am not JSON\n""#), "{text}");
    assert!(
        text.contains("the command must print one JSON value on stdout: for one output its value, for several an object keyed by output title; write logs to stderr"),
        "{text}"
    );

    // Two values, or a log line before the value, is not one JSON value either.
    let two = sh("echo 1; echo 2").call(Map::new()).await.unwrap_err();
    assert!(matches!(two, ToolError::BadOutput { .. }), "{two:?}");
    let logged = sh("echo 'loading model...'; echo '{\"a\": 1}'").call(Map::new()).await.unwrap_err();
    assert!(matches!(logged, ToolError::BadOutput { .. }), "{logged:?}");

    // The excerpt is the first 200 characters.
    let long = sh("head -c 5000 /dev/zero | tr '\\0' y").call(Map::new()).await.unwrap_err();
    let text = message(&long);
    assert!(text.contains(&format!("\"{}\"…", "y".repeat(200))), "{text}");
    assert!(!text.contains(&"y".repeat(201)), "{text}");

    let empty = sh("true").call(Map::new()).await.unwrap_err();
    assert!(matches!(empty, ToolError::BadOutput { .. }), "{empty:?}");
    assert!(message(&empty).contains("printed nothing on stdout; the command must print one JSON value"), "{empty}");
}

#[tokio::test]
async fn a_child_that_ignores_stdin_is_fine() {
    // Arguments much larger than a pipe buffer, and a child that exits without reading them.
    let big = "z".repeat(1 << 20);
    let out = sh("echo true").call(args(json!({"big": big}))).await.unwrap();
    assert_eq!(out, json!(true));
    let out = CommandTool::new(["echo", "[1, 2]"]).call(args(json!({"big": "z".repeat(1 << 20)}))).await.unwrap();
    assert_eq!(out, json!([1, 2]));
}

#[tokio::test]
async fn a_megabyte_of_stderr_does_not_deadlock() {
    let tool = sh("head -c 1048576 /dev/zero | tr '\\0' e >&2; cat >/dev/null; echo '\"done\"'").with_timeout(Duration::from_secs(10));
    let out = tool.call(args(json!({"big": "z".repeat(1 << 20)}))).await.unwrap();
    assert_eq!(out, json!("done"));
    // A megabyte of stdout too.
    let out = sh("printf '\"'; head -c 1048576 /dev/zero | tr '\\0' o; printf '\"'").call(Map::new()).await.unwrap();
    assert_eq!(out.as_str().unwrap().len(), 1 << 20);
}

#[tokio::test]
async fn a_hanging_tool_times_out_and_is_killed_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let tool = CommandTool::new(["sh", "-c", "echo $$ > pid; exec sleep 30"]).with_cwd(dir.path()).with_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = tool.call(Map::new()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(matches!(err, ToolError::Timeout { after } if after == Duration::from_millis(300)), "{err:?}");
    assert!(message(&err).contains("timed out after 0.3s; the process was killed"), "{err}");
    let pid = pid_from(&pid_file).await;
    // Killed and reaped by the call itself: gone at once, not even a zombie.
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} is left behind");
}

#[tokio::test]
async fn a_tool_that_closes_stdout_but_hangs_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let tool = CommandTool::new(["sh", "-c", "echo $$ > pid; echo 1; exec >&- 2>&-; exec sleep 30"])
        .with_cwd(dir.path())
        .with_timeout(Duration::from_millis(300));
    let err = tool.call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
    let pid = pid_from(&dir.path().join("pid")).await;
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} is left behind");
}

#[tokio::test]
async fn dropping_the_call_kills_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let tool = CommandTool::new(["sh", "-c", "echo $$ > pid; exec sleep 30"]).with_cwd(dir.path());
    let pid_file = dir.path().join("pid");
    let mut call = Box::pin(tool.call(Map::new()));
    let pid = tokio::select! {
        result = &mut call => panic!("the call ended: {result:?}"),
        pid = pid_from(&pid_file) => pid,
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(call);
    assert_gone(pid).await;
}

#[tokio::test]
async fn an_outer_timeout_cancels_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let tool = CommandTool::new(["sh", "-c", "echo $$ > pid; exec sleep 30"]).with_cwd(dir.path());
    let outcome = tokio::time::timeout(Duration::from_millis(500), tool.call(Map::new())).await;
    assert!(outcome.is_err(), "{outcome:?}");
    let pid = pid_from(&dir.path().join("pid")).await;
    assert_gone(pid).await;
}

#[tokio::test]
async fn a_program_that_cannot_start_is_unavailable() {
    let err = CommandTool::new(["weft-no-such-program-xyz", "--flag"]).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Unavailable { .. }), "{err:?}");
    let text = message(&err);
    assert!(text.contains("cannot start command `weft-no-such-program-xyz --flag`"), "{text}");
    assert!(text.contains("program `weft-no-such-program-xyz` was not found on PATH"), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
    assert!(text.contains("give its full path"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let err = CommandTool::new(["./missing.sh"]).with_cwd(dir.path()).call(Map::new()).await.unwrap_err();
    let text = message(&err);
    assert!(text.contains("program `./missing.sh` was not found (working directory"), "{text}");

    let script = dir.path().join("tool.sh");
    std::fs::write(&script, "#!/bin/sh\necho 1\n").unwrap();
    let err = CommandTool::new(["./tool.sh"]).with_cwd(dir.path()).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Unavailable { .. }), "{err:?}");
    let text = message(&err);
    assert!(text.contains("permission denied for program `./tool.sh`"), "{text}");
    assert!(text.contains("chmod +x ./tool.sh"), "{text}");

    let err = CommandTool::new(["sh"]).with_cwd(dir.path().join("nope")).call(Map::new()).await.unwrap_err();
    assert!(message(&err).contains("nope does not exist"), "{err}");

    let err = CommandTool::new(Vec::<String>::new()).call(Map::new()).await.unwrap_err();
    assert!(matches!(err, ToolError::Unavailable { .. }), "{err:?}");
    assert!(message(&err).contains("the command is empty"), "{err}");
}

#[tokio::test]
async fn a_relative_program_resolves_against_the_working_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tools")).unwrap();
    let script = dir.path().join("tools/x.sh");
    std::fs::write(&script, "#!/bin/sh\necho '\"ran\"'\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = CommandTool::new(["./tools/x.sh"]).with_cwd(dir.path()).call(Map::new()).await.unwrap();
    assert_eq!(out, json!("ran"));
    let out = CommandTool::new(["tools/x.sh"]).with_cwd(dir.path()).call(Map::new()).await.unwrap();
    assert_eq!(out, json!("ran"));
}

#[test]
fn accessors_and_command_line() {
    let tool = CommandTool::new(["python3", "my tool.py", ""]).with_timeout(Duration::from_secs(5)).with_env("A", "1").with_cwd("/tmp");
    assert_eq!(tool.argv(), ["python3", "my tool.py", ""]);
    assert_eq!(tool.timeout(), Some(Duration::from_secs(5)));
    assert_eq!(tool.env().get("A").map(String::as_str), Some("1"));
    assert_eq!(tool.cwd(), Some(Path::new("/tmp")));
    assert_eq!(tool.command_line(), r#"python3 "my tool.py" """#);
}
