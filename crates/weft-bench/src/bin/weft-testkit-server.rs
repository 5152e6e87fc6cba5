//! `weft-testkit-server`: the test server as a process of its own, for benchmarks that must not
//! count its CPU time in the measured process (`weft-bench --http`).
//!
//! ```text
//! weft-testkit-server [--latency-ms MS] [--array-len N] [--tools auto|agent] [--threads N]
//! ```
//!
//! It starts a [`weft_testkit::MockServer`] on 127.0.0.1 with a random port, schema-valid
//! replies after `MS` milliseconds, `N` items per generated array and no request recording
//! (its memory stays flat however many requests it serves), tool calls by the rule `--tools`
//! names ([`ToolReply::Auto`] by default; `agent` for an agent's model: each offered tool once,
//! one per turn, then `submit_result`, decided from each request alone), prints its base URL
//! (`http://127.0.0.1:PORT/v1`) as the first line on stdout, and serves until it is killed or
//! its stdin is closed: a parent that dies in any way (even SIGKILL) closes the pipe, so the
//! server never outlives it.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command that reports its URL and its usage errors")]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use weft_testkit::{MockConfig, MockServer, ToolReply};

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Options {
    latency: Duration,
    array_len: usize,
    tools: ToolReply,
    threads: Option<usize>,
}

const USAGE: &str = "usage: weft-testkit-server [--latency-ms MS] [--array-len N] [--tools auto|agent] [--threads N]";

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options { latency: Duration::ZERO, array_len: 1, tools: ToolReply::Auto, threads: None };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut number = |min: u64| -> Result<u64, String> {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match value.parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("{flag}: {value:?} is not a whole number of at least {min}")),
            }
        };
        match flag.as_str() {
            "--latency-ms" => options.latency = Duration::from_millis(number(0)?),
            "--array-len" => options.array_len = usize::try_from(number(1)?).map_err(|e| e.to_string())?,
            "--tools" => {
                options.tools = match args.next().as_deref() {
                    Some("auto") => ToolReply::Auto,
                    Some("agent") => ToolReply::Agent,
                    Some(other) => return Err(format!("--tools: {other:?} is not auto or agent")),
                    None => return Err("--tools needs a value".to_owned()),
                }
            }
            "--threads" => options.threads = Some(usize::try_from(number(1)?).map_err(|e| e.to_string())?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("weft-testkit-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("weft-testkit-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(options: &Options) -> Result<(), String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = options.threads {
        builder.worker_threads(n);
    }
    let runtime = builder.build().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let config = MockConfig { array_len: options.array_len, tools: options.tools.clone(), ..MockConfig::default() }
            .with_latency(options.latency)
            .without_recording();
        let server = MockServer::try_start(config).await.map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", server.url()).and_then(|()| stdout.flush()).map_err(|e| format!("cannot print the URL: {e}"))?;
        drop(stdout);
        // Reading stdin to its end blocks, so on a blocking thread; an error reading it ends the
        // server as its end does.
        let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())).await;
        server.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_line_parses() {
        assert_eq!(parse(args(&[])).unwrap(), Options { latency: Duration::ZERO, array_len: 1, tools: ToolReply::Auto, threads: None });
        assert_eq!(
            parse(args(&["--latency-ms", "50", "--array-len", "8", "--tools", "agent", "--threads", "2"])).unwrap(),
            Options { latency: Duration::from_millis(50), array_len: 8, tools: ToolReply::Agent, threads: Some(2) }
        );
        assert!(parse(args(&["--tools", "all"])).is_err());
        assert!(parse(args(&["--tools"])).is_err());
        assert!(parse(args(&["--array-len", "0"])).is_err());
        assert!(parse(args(&["--latency-ms"])).is_err());
        assert!(parse(args(&["--latency-ms", "-1"])).is_err());
        assert!(parse(args(&["--port", "1"])).is_err());
    }
}
