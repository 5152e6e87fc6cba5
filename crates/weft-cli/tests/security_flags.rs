//! Issue 10, "no panic on any input", at the command line: every numeric flag is checked
//! against its range (usage error, exit 2, naming the flag and the range), a damaged or
//! out-of-range state file is refused (exit 2), and a panic that still happens is a message
//! asking for a bug report, exit 1, with the run's state stored.
//!
//! The flag parsers are the functions clap calls (`src/flags.rs`, included here as it is), so
//! the property tests call them directly, 10,000 generated values per flag; a few real
//! invocations check that the binary uses them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

#[path = "../src/flags.rs"]
mod flags;

mod common;

use common::{corpus, fixture};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Cases per property (issue 10 asks for at least 10,000 in CI).
const CASES: u32 = 10_000;

// ---------------------------------------------------------------------------------------------
// The parsers, as functions

/// Numeric-looking text: huge, tiny, negative, NaN, infinities, exponents, separators, garbage.
fn numeric_text() -> impl Strategy<Value = String> {
    let specials = [
        "NaN",
        "nan",
        "-NaN",
        "inf",
        "-inf",
        "+inf",
        "infinity",
        "-Infinity",
        "1e19",
        "2e19",
        "1.8446744073709552e19",
        "5e-20",
        "1e-300",
        "5e-324",
        "1e309",
        "-1e309",
        "-0",
        "0",
        "0.0",
        "+0",
        "-1",
        "1",
        "+1",
        "0.001",
        "0.000999",
        "1000000",
        "1000000.0000001",
        "31536000",
        "31536000.000001",
        "31536001",
        "18446744073709551615",
        "18446744073709551616",
        "-18446744073709551616",
        "340282366920938463463374607431768211456",
        " 1",
        "1 ",
        "",
        " ",
        "1_000",
        "1,000",
        "0x10",
        "1e",
        "e1",
        ".",
        "-.",
        ".5",
        "5.",
        "1e+2",
        "١",
        "½",
        "Ⅻ",
        "10\n",
    ];
    prop_oneof![
        proptest::sample::select(specials.to_vec()).prop_map(str::to_owned),
        any::<f64>().prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| format!("{x:e}")),
        (-400i32..400, any::<f64>()).prop_map(|(e, m)| format!("{}e{e}", m.fract())),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        (0u64..20).prop_map(|n| n.to_string()),
        "[-+0-9.eE_a-zA-Z ]{0,24}",
        any::<String>(),
    ]
}

/// Checks `parse` over generated text: a value only when `reference` accepts the text (and
/// then the same value), else an error that names `flag` and says the range.
fn property<T: PartialEq + std::fmt::Debug>(
    flag: &str,
    range_words: &[&str],
    parse: fn(&str) -> Result<T, String>,
    reference: fn(&str) -> Option<T>,
) {
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let result = runner.run(&numeric_text(), |text| {
        match (parse(&text), reference(&text)) {
            (Ok(value), Some(expected)) => prop_assert_eq!(value, expected),
            (Ok(value), None) => prop_assert!(false, "{flag} {text:?} gave {value:?}, which is out of range"),
            (Err(message), expected) => {
                prop_assert!(expected.is_none(), "{flag} {text:?} refused: {message}");
                prop_assert!(message.starts_with(&format!("{flag} takes ")), "{message}");
                for word in range_words {
                    prop_assert!(message.contains(word), "{flag}: {message:?} does not say {word:?}");
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn whole_at_least_one(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|n| *n >= 1)
}

#[test]
fn node_timeout_values_are_seconds_in_0_to_365_days() {
    property("--node-timeout", &["greater than 0", "31536000"], flags::node_timeout, |t| {
        float(t).filter(|x| *x > 0.0 && *x <= 31_536_000.0)
    });
}

#[test]
fn network_timeouts_are_seconds_in_0_to_365_days() {
    let within = |t: &str| float(t).filter(|x| *x > 0.0 && *x <= 31_536_000.0);
    property("--connect-timeout", &["greater than 0", "31536000"], flags::connect_timeout, within);
    property("--idle-timeout", &["greater than 0", "31536000"], flags::idle_timeout, within);
    property("--call-timeout", &["greater than 0", "31536000"], flags::call_timeout, within);
}

#[test]
fn rps_values_are_from_one_per_1000_seconds_to_a_million() {
    property("--rps", &["0.001", "1000000"], flags::rps, |t| float(t).filter(|x| (0.001..=1_000_000.0).contains(x)));
}

#[test]
fn max_in_flight_values_are_whole_numbers_at_least_1() {
    property("--max-in-flight", &["from 1 to"], flags::max_in_flight, whole_at_least_one);
}

#[test]
fn concurrency_values_are_whole_numbers_at_least_1() {
    property("--concurrency", &["from 1 to"], flags::concurrency, |t| whole_at_least_one(t).map(|n| n as usize));
}

#[test]
fn max_steps_values_are_whole_numbers_at_least_1() {
    property("--max-steps", &["from 1 to"], flags::max_steps, whole_at_least_one);
}

#[test]
fn checkpoint_calls_values_are_whole_numbers_at_least_1() {
    property("--checkpoint-calls", &["from 1 to"], flags::checkpoint_calls, whole_at_least_one);
}

#[test]
fn checkpoint_secs_values_are_seconds_from_a_tenth_to_a_day() {
    property("--checkpoint-secs", &["0.1", "86400"], flags::checkpoint_secs, |t| float(t).filter(|x| (0.1..=86_400.0).contains(x)));
    assert_eq!(flags::checkpoint_secs("0.1"), Ok(0.1));
    assert_eq!(flags::checkpoint_secs("86400"), Ok(86_400.0));
    for bad in ["0.09", "86400.5", "0", "-1", "NaN", "inf", "soon"] {
        let e = flags::checkpoint_secs(bad).unwrap_err();
        assert!(e.starts_with("--checkpoint-secs takes a number of seconds from 0.1 to 86400 (a day)"), "{bad}: {e}");
    }
}

#[test]
fn every_range_holds_at_its_bounds_and_not_just_past_them() {
    // --node-timeout: (0, 31,536,000].
    assert_eq!(flags::node_timeout("31536000"), Ok(31_536_000.0));
    assert_eq!(flags::node_timeout("5e-324"), Ok(5e-324));
    assert_eq!(flags::node_timeout("0.25"), Ok(0.25));
    for bad in ["0", "-0", "31536000.00001", "31536001", "1e19", "2e19", "-1", "NaN", "inf", "-inf", "thirty"] {
        let e = flags::node_timeout(bad).unwrap_err();
        assert!(e.starts_with("--node-timeout takes a number of seconds greater than 0 and at most 31536000 (365 days)"), "{bad}: {e}");
    }
    // --rps: [0.001, 1,000,000].
    assert_eq!(flags::rps("0.001"), Ok(0.001));
    assert_eq!(flags::rps("1000000"), Ok(1_000_000.0));
    for bad in ["0.000999", "1000000.5", "0", "5e-20", "-1", "NaN", "inf", ""] {
        let e = flags::rps(bad).unwrap_err();
        assert!(e.starts_with("--rps takes a number of requests per second from 0.001 to 1000000"), "{bad}: {e}");
    }
    // --max-in-flight, --concurrency, --max-steps: at least 1.
    let max = u64::MAX.to_string();
    assert_eq!(flags::max_in_flight("1"), Ok(1));
    assert_eq!(flags::max_in_flight(&max), Ok(u64::MAX));
    assert_eq!(flags::concurrency("1"), Ok(1));
    assert_eq!(flags::concurrency(&max), Ok(usize::MAX));
    assert_eq!(flags::max_steps("1"), Ok(1));
    assert_eq!(flags::max_steps(&max), Ok(u64::MAX));
    for (flag, parse) in [
        ("--max-in-flight", flags::max_in_flight as fn(&str) -> Result<u64, String>),
        ("--max-steps", flags::max_steps),
        ("--concurrency", |t: &str| flags::concurrency(t).map(|n| n as u64)),
    ] {
        for bad in ["0", "-1", "18446744073709551616", "1.5", "1e3", "many"] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("{flag} takes ")) && e.contains("a whole number from 1 to 18446744073709551615"), "{bad}: {e}");
        }
    }
    // What a state file stores is checked with the same ranges.
    assert!(flags::check_node_timeout(1e19).is_err());
    assert!(flags::check_node_timeout(f64::NAN).is_err());
    assert!(flags::check_rps(5e-20).is_err());
    assert!(flags::check_max_steps(0).is_err());
    assert_eq!(flags::check_max_steps(1), Ok(1));
}

// ---------------------------------------------------------------------------------------------
// The binary

fn weft_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command.args(args).current_dir(dir).stdin(Stdio::null()).env_remove("WEFT_TEST_PANIC");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run weft")
}

fn weft(dir: &Path, args: &[&str]) -> Output {
    weft_with(dir, args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_panic(out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked") && out.status.code() != Some(101), "{err}");
}

#[test]
fn out_of_range_flags_are_usage_errors_naming_the_flag_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let flow = fixture("typed_inputs.json");
    let inputs = ["--input", "text=a", "--input", "count=1", "--input", "tags=[]"];
    let batch = dir.path().join("in.jsonl");
    std::fs::write(&batch, "{}\n").unwrap();
    let batch = batch.to_string_lossy().into_owned();
    for (args, says) in [
        (vec!["--node-timeout", "1e19"], "--node-timeout takes a number of seconds greater than 0 and at most 31536000"),
        (vec!["--node-timeout", "2e19"], "--node-timeout takes"),
        (vec!["--node-timeout=-1"], "--node-timeout takes"),
        (vec!["--node-timeout", "NaN"], "--node-timeout takes"),
        (vec!["--rps", "5e-20"], "--rps takes a number of requests per second from 0.001 to 1000000"),
        (vec!["--rps", "inf"], "--rps takes"),
        (vec!["--max-in-flight", "0"], "--max-in-flight takes the number of LLM calls in flight per endpoint, a whole number from 1"),
        (vec!["--max-steps", "0"], "--max-steps takes the number of steps per execution path, a whole number from 1"),
        (vec!["--batch", &batch, "--concurrency", "0"], "--concurrency takes the number of runs at once, a whole number from 1"),
        (vec!["--llm", "simulated?array_len=5000"], "option array_len has value \"5000\": expected a whole number from 1 to 1024"),
        (vec!["--llm", "simulated?latency_ms=99999999999"], "option latency_ms has value"),
    ] {
        let mut all = vec!["run", flow.as_str()];
        all.extend(inputs);
        all.extend(args.iter().copied());
        let out = weft(dir.path(), &all);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    // At the bounds, the run goes.
    let mut all = vec!["run", flow.as_str()];
    all.extend(inputs);
    all.extend(["--node-timeout", "31536000", "--rps", "0.001", "--max-in-flight", "1", "--max-steps", "10"]);
    let out = weft(dir.path(), &all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `weft run` of a flow that waits for input: the state file it writes.
fn waiting_state(dir: &Path) -> Json {
    let out = weft(dir, &["run", &corpus("p_loop_input_until_confirmed.json")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(dir.join("p_loop_input_until_confirmed.state.json")).unwrap()).unwrap()
}

/// An edit of a state file.
type Edit = dyn Fn(&mut Json);

#[test]
fn a_damaged_state_file_is_refused_with_exit_2_naming_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let state = waiting_state(dir.path());
    let edits: Vec<(&str, Box<Edit>, &str)> = vec![
        ("parent.json", Box::new(|s| s["state"]["frames"]["0"]["parent"] = json!([5, "x"])), "damaged at /state/frames/0/parent"),
        (
            "node.json",
            Box::new(|s| s["state"]["frames"]["0"]["position"]["node"] = json!("gone")),
            "damaged at /state/frames/0/position/node",
        ),
        ("pending.json", Box::new(|s| s["state"]["pending"] = json!({})), "damaged at /state/pending"),
        ("next.json", Box::new(|s| s["state"]["next_frame"] = json!(0)), "damaged at /state/next_frame"),
        ("timeout.json", Box::new(|s| s["options"]["limits"]["node_timeout"] = json!(1e19)), "--node-timeout takes"),
        ("rps.json", Box::new(|s| s["options"]["limits"]["rps"] = json!(5e-20)), "--rps takes"),
        ("steps.json", Box::new(|s| s["options"]["max_steps"] = json!(0)), "--max-steps takes"),
    ];
    for (name, edit, says) in edits {
        let mut damaged = state.clone();
        edit(&mut damaged);
        std::fs::write(dir.path().join(name), damaged.to_string()).unwrap();
        let out = weft(dir.path(), &["resume", name, "--answer", "yes"]);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
        if says.starts_with("--") {
            assert!(stderr(&out).contains(&format!("in the state file {name}")), "{}", stderr(&out));
        } else {
            assert!(stderr(&out).contains("restore the file weft wrote, or start a new run"), "{}", stderr(&out));
        }
    }
}

const ISSUES: &str = "https://github.com/weft-rs/weft/issues";

#[test]
fn a_panic_in_the_scheduler_is_a_bug_report_message_exit_1_and_the_state_stored() {
    let dir = tempfile::tempdir().unwrap();
    let flow = corpus("p_llm_flow_minimal.json");
    // The second node to start panics, on the command's thread, inside the scheduler.
    let out = weft_with(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--input", "question=why", "--state", "crash.json"],
        &[("WEFT_TEST_PANIC", "node_started:2")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: weft panicked"), "{err}");
    assert!(err.contains(&format!("This is a bug in weft, not in your flow: please report it at {ISSUES}")), "{err}");
    assert!(err.contains("the run's state when weft panicked is in crash.json"), "{err}");
    let stored: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("crash.json")).unwrap()).unwrap();
    assert_eq!(stored["weft_state"], 2);
    assert!(stored["state"]["frames"]["0"].is_object());
}

#[test]
fn a_panic_in_a_call_task_is_a_bug_report_message_exit_1_and_the_state_stored() {
    let dir = tempfile::tempdir().unwrap();
    let flow = corpus("p_llm_flow_minimal.json");
    // The LLM call's tokio task panics as it reports the response.
    let out = weft_with(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--input", "question=why", "--state", "crash.json"],
        &[("WEFT_TEST_PANIC", "llm_response")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: weft panicked"), "{err}");
    assert!(err.contains(ISSUES), "{err}");
    assert!(err.contains("is in crash.json"), "{err}");
    assert!(dir.path().join("crash.json").exists());
}

#[test]
fn a_panic_in_one_batch_run_still_reports_every_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..6).map(|i| format!("{}\n", json!({"items": [format!("a{i}"), format!("b{i}")]}))).collect();
    std::fs::write(dir.path().join("in.jsonl"), lines).unwrap();
    let out = weft_with(
        dir.path(),
        &["run", &fixture("fan_out.json"), "--llm", "simulated", "--batch", "in.jsonl", "--concurrency", "1"],
        &[("WEFT_TEST_PANIC", "node_started:5")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(ISSUES), "{err}");
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 6, "every line is reported: {results:?}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }
    let failed: Vec<&Json> = results.iter().filter(|r| r.get("error").is_some()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert!(failed[0]["error"]["message"].as_str().unwrap().contains("this is a bug in weft"), "{failed:?}");
}
