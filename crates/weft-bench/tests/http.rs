//! `weft-bench --http` end to end: the binary runs workloads against the test server started as
//! a child process, the figures count what the workloads make, and the server child is gone
//! when weft-bench is done, interrupted included.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

const BENCH: &str = env!("CARGO_BIN_EXE_weft-bench");

/// The test server, built with weft-bench (a binary of the same package).
fn server_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-testkit-server"))
}

fn gone(pid: u64) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn every_workload_runs_over_http_and_the_server_is_gone_after() {
    let server = server_program();
    let dir = std::env::temp_dir().join(format!("weft-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(BENCH)
        .args(["--http", "--scale", "0.02", "--latency-ms", "5", "--threads", "2", "--json"])
        .arg(&json)
        .arg("--server")
        .arg(&server)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "weft-bench failed: {stderr}");
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(doc["mode"], "http");
    let workloads = doc["workloads"].as_array().unwrap();
    let names: Vec<&str> = workloads.iter().map(|w| w["workload"].as_str().unwrap()).collect();
    assert_eq!(names, ["fan-out", "guardrails", "orchestrator-workers", "fan-out-100x", "agents"]);
    // At scale 0.02: (runs or items, LLM calls). The orchestrator's planner gets 8 sections from
    // the server (its --array-len), so 1 + 8 + 1 calls per run; a guardrail run makes 2; an
    // agent conversation 4 (the server, deciding from each request, calls the three tools one
    // per turn and then submits; weft-bench checks that every conversation submitted its
    // outputs and that each native tool ran once per conversation).
    let expected = [(1, 5), (20, 40), (4, 40), (1, 512), (20, 80)];
    for (w, (runs, calls)) in workloads.iter().zip(expected) {
        let name = w["workload"].as_str().unwrap();
        assert_eq!(w["mode"], "http", "{name}");
        assert_eq!((w["runs"].as_u64().unwrap(), w["llm_calls"].as_u64().unwrap()), (runs, calls), "{name}");
        assert_eq!(w["shape"]["calls"].as_u64().unwrap(), calls, "{name}");
        assert_eq!(w["reasks"], 0, "{name}: the server's replies fit their schemas");
        // Every call went over HTTP to a server that waits 5 ms.
        assert!(w["model_latency_ms"].as_f64().unwrap() >= 5.0, "{name}: {}", w["model_latency_ms"]);
        assert!(w["cpu_ms_per_call"].as_f64().unwrap() > 0.0, "{name}");
        let pid = w["server_pid"].as_u64().unwrap();
        assert!(gone(pid), "{name}: the test server (pid {pid}) outlived weft-bench");
    }
}

#[test]
fn an_interrupted_workload_kills_its_server() {
    let server = server_program();
    // Calls that take ten minutes: the workload is still running when it is interrupted.
    let mut bench = Command::new(BENCH)
        .args(["fan-out", "--http", "--scale", "0.02", "--latency-ms", "600000", "--server"])
        .arg(&server)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(bench.stderr.take().unwrap());
    let mut line = String::new();
    let pid = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "weft-bench ended without starting the server");
        if let Some(rest) = line.trim().strip_suffix(')').and_then(|l| l.rsplit_once("(pid ")) {
            break rest.1.parse::<u64>().unwrap();
        }
    };
    assert!(!gone(pid));
    // SIGINT to weft-bench alone (Ctrl-C in a terminal reaches the server too, which would
    // hide a guard that does not kill it).
    let status = Command::new("kill").args(["-INT", &bench.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let exit = bench.wait().unwrap();
    assert!(!exit.success());
    assert!(rest.contains("interrupted (Ctrl-C)"), "{rest}");
    // Killed and waited for by weft-bench, so reaped before weft-bench exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(pid), "the test server (pid {pid}) outlived the interrupted weft-bench");
}
