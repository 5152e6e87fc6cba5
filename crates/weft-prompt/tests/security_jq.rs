//! A flow document's jq queries are untrusted: filters that reach outside the query's input are
//! refused when the query is compiled, and every evaluation is bounded and interruptible.

#![allow(clippy::unwrap_used)]

use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weft_prompt::{Interrupt, JqError, JqFailure, JqQuery, OutputParser, with_interrupt};

fn refused(query: &str) -> String {
    match JqQuery::compile(query) {
        Err(JqError::Refused { name, .. }) => name,
        other => panic!("`{query}` should be refused, got {other:?}"),
    }
}

#[test]
fn jq_halt_is_refused() {
    assert_eq!(refused("halt"), "halt");
    assert_eq!(refused(".a | halt"), "halt");
}

#[test]
fn jq_halt_error_is_refused() {
    assert_eq!(refused("halt_error(3)"), "halt_error");
    assert_eq!(refused("\"bye\" | halt_error"), "halt_error");
}

#[test]
fn jq_env_is_refused() {
    assert_eq!(refused("env.OPENAI_API_KEY"), "env");
    assert_eq!(refused("env | .HOME"), "env");
}

#[test]
fn jq_dollar_env_is_refused() {
    assert_eq!(refused("$ENV.OPENAI_API_KEY"), "$ENV");
}

#[test]
fn jq_input_and_inputs_are_refused() {
    assert_eq!(refused("input"), "input");
    assert_eq!(refused("[inputs]"), "inputs");
    assert_eq!(refused("input_filename"), "input_filename");
}

#[test]
fn jq_debug_and_stderr_are_refused() {
    assert_eq!(refused("debug"), "debug");
    assert_eq!(refused("debug(\"x\")"), "debug");
    assert_eq!(refused(".a | stderr"), "stderr");
}

#[test]
fn jq_clock_and_local_time_are_refused() {
    assert_eq!(refused("now"), "now");
    assert_eq!(refused("0 | localtime"), "localtime");
}

#[test]
fn jq_alias_through_def_is_refused() {
    assert_eq!(refused("def h: halt; h"), "halt");
    assert_eq!(refused("def e: env; e.HOME"), "env");
    assert_eq!(refused("def f($x): $x | halt_error(1); f(.)"), "halt_error");
}

#[test]
fn jq_location_and_program_variables_are_refused() {
    assert_eq!(refused("$__loc__"), "$__loc__");
    assert_eq!(refused("$__prog_args"), "$__prog_args");
}

#[test]
fn jq_modules_cannot_be_loaded() {
    for q in ["include \"/etc/passwd\"; .", "import \"x\" as x; .", "import \"/etc/hosts\" as $h; $h"] {
        let e = JqQuery::compile(q).unwrap_err();
        assert!(e.to_string().contains("cannot include or import modules"), "{q}: {e}");
    }
}

#[test]
fn jq_fields_named_like_refused_filters_are_data() {
    let input = json!({"halt": 1, "env": {"HOME": "x"}, "input": 3, "debug": true, "now": 5});
    for (q, want) in [(".halt", json!(1)), (".env.HOME", json!("x")), (".input", json!(3)), (".debug", json!(true)), (".now", json!(5))] {
        assert_eq!(JqQuery::compile(q).unwrap().first(&input), Some(want), "{q}");
    }
    assert_eq!(JqQuery::compile("{halt: .halt}").unwrap().first(&input), Some(json!({"halt": 1})));
}

#[test]
fn jq_data_queries_still_work() {
    let input = json!({"items": [{"name": "a", "n": 2}, {"name": "b", "n": 5}], "text": "Hello World"});
    let cases = [
        ("[.items[] | select(.n > 3) | .name]", json!(["b"])),
        (".items | map(.n) | add", json!(7)),
        (".text | ascii_downcase | split(\" \")", json!(["hello", "world"])),
        (".text | test(\"wor\"; \"i\")", json!(true)),
        (".items | sort_by(-.n) | .[0].name", json!("b")),
        ("[range(3)]", json!([0, 1, 2])),
        (".items | length", json!(2)),
        ("(.items | tojson | fromjson)[1].n", json!(5)),
        ("[.items[] | .n] | max", json!(5)),
        (".items | to_entries | map(.key)", json!([0, 1])),
        ("try error(\"x\") catch .", json!("x")),
        ("[limit(3; repeat(1))]", json!([1, 1, 1])),
        ("1700000000 | todate", json!("2023-11-14T22:13:20Z")),
        ("4 | sqrt", json!(2)),
    ];
    for (q, want) in cases {
        assert_eq!(JqQuery::compile(q).unwrap().eval_first(&input), Ok(Some(want)), "{q}");
    }
}

fn stopped(query: &str) -> (JqFailure, Duration) {
    let q = JqQuery::compile(query).unwrap();
    let t = Instant::now();
    let r = q.eval_first(&json!({"a": 1}));
    let took = t.elapsed();
    match r {
        Err(e) => (e, took),
        Ok(v) => panic!("`{query}` should be stopped, gave {v:?}"),
    }
}

#[test]
fn jq_endless_recursion_is_stopped() {
    for q in ["def f: f; f", "def f: 1 + f; f", "def f: [f]; f", "def f: f | f; f", "last(repeat(.))", "[recurse(.)]"] {
        let (e, took) = stopped(q);
        assert!(matches!(e, JqFailure::Steps { .. } | JqFailure::Depth { .. } | JqFailure::Bytes { .. }), "{q}: {e}");
        assert!(took < Duration::from_secs(10), "{q} took {took:?}");
    }
}

#[test]
fn jq_huge_range_is_stopped() {
    let (e, took) = stopped("[range(1e9)] | length");
    assert!(matches!(e, JqFailure::Steps { .. } | JqFailure::Bytes { .. }), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (e, _) = stopped("reduce range(1e12) as $i (0; . + $i)");
    assert!(matches!(e, JqFailure::Steps { .. }), "{e}");
}

#[test]
fn jq_exponential_growth_is_stopped() {
    for q in [
        "reduce range(64) as $i (\"x\"; . + .)",
        "reduce range(64) as $i ([1]; . + .)",
        "\"x\" * 1000000000000",
        "reduce range(40) as $i ([\"x\"]; [tostring])",
        "reduce range(40) as $i (\"x\"; tojson)",
        "[\"ab\" * 100000000]",
    ] {
        let (e, took) = stopped(q);
        assert!(matches!(e, JqFailure::Bytes { .. }), "{q}: {e}");
        assert!(took < Duration::from_secs(5), "{q} took {took:?}");
    }
}

#[test]
fn jq_deep_nesting_does_not_overflow_the_stack() {
    // A value nested a million levels deep is stopped by the step budget; one a few hundred
    // thousand deep is built, then dropped on the evaluation's own large stack.
    let q = JqQuery::compile("reduce range(300000) as $i (null; [.])").unwrap();
    assert!(matches!(q.eval_first(&json!(null)), Err(JqFailure::ResultTooDeep { .. })), "too deep to return, not an overflow");
    let q = JqQuery::compile("reduce range(10) as $i (null; [.])").unwrap();
    assert_eq!(q.eval_first(&json!(null)), Ok(Some(json!([[[[[[[[[[null]]]]]]]]]]))));
    // A deeply nested query compiles on the large stack (here: 5,000 levels of parentheses).
    let deep = format!("{}.{}", "(".repeat(5000), ")".repeat(5000));
    assert!(JqQuery::compile(&deep).is_ok());
}

#[test]
fn jq_budget_errors_cannot_be_caught() {
    for q in ["try (def f: f; f) catch 0", "(def f: f; f)?", "[.[]?, (def f: f; f)?]", "(def f: f; f) // 1", "first((def f: f; f), 1)"] {
        let (e, _) = stopped(q);
        assert!(matches!(e, JqFailure::Steps { .. } | JqFailure::Depth { .. }), "{q}: {e}");
    }
    let (e, _) = stopped("[range(1e9) | try (if . > 1e7 then error(\"x\") else . end) catch 0] | length");
    assert!(matches!(e, JqFailure::Steps { .. } | JqFailure::Bytes { .. }), "{e}");
}

#[test]
fn jq_stops_within_100ms_of_its_deadline() {
    let q = JqQuery::compile("def f: f; f").unwrap().with_limits(weft_prompt::JqLimits { steps: u64::MAX, bytes: u64::MAX });
    let deadline = Instant::now() + Duration::from_millis(300);
    let r = with_interrupt(Interrupt { deadline: Some(deadline), cancel: None }, || q.eval_first(&json!(1)));
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(matches!(r, Err(JqFailure::Interrupted { .. })), "{r:?}");
    assert!(late < Duration::from_millis(100), "stopped {late:?} after its deadline");
}

#[test]
fn jq_stops_within_100ms_of_a_cancellation() {
    let q = JqQuery::compile("[range(1e15)] | length").unwrap().with_limits(weft_prompt::JqLimits { steps: u64::MAX, bytes: u64::MAX });
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let r = with_interrupt(Interrupt { deadline: None, cancel: Some(cancel) }, || q.eval_first(&json!(1)));
    let ended = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    assert!(matches!(r, Err(JqFailure::Interrupted { .. })), "{r:?}");
    assert!(ended.saturating_duration_since(cancelled_at) < Duration::from_millis(100));
}

#[test]
fn jq_output_parser_reports_a_stopped_query() {
    let parser = OutputParser::json(Some(&json!({"x": "def f: f; f"}))).unwrap();
    let e = parser.apply("{\"a\": 1}").unwrap_err();
    assert!(e.to_string().contains("def f: f; f"), "{e}");
    let refused = OutputParser::json(Some(&json!({"x": "env.HOME"}))).unwrap_err();
    assert!(refused.to_string().contains("`env` is not allowed"), "{refused}");
}

#[test]
fn jq_overlong_query_is_refused() {
    let q = format!(".a{}", " ".repeat(weft_prompt::MAX_QUERY_BYTES));
    assert!(matches!(JqQuery::compile(&q), Err(JqError::TooLong(_))));
}

#[test]
fn jq_builtins_that_grow_their_input_are_charged() {
    // Each filter here allocates more than it was given, inside a native filter.
    let escape10 = format!("\"'\" * 1000 | {} | length", vec!["escape_sh"; 14].join(" | "));
    for q in [
        escape10.as_str(),
        "[range(100000)] as $a | [range(500000) | $a | reverse] | length",
        "[range(100000)] as $a | [range(500000) | $a | .[0] = 1] | length",
        "[range(100000)] as $a | [range(500000) | $a + [1]] | length",
        "(\"x\" * 100000) as $s | [range(100000) | $s | explode] | length",
        "(\"x\" * 100000) as $s | [range(100000) | $s / \"\"] | length",
    ] {
        let (e, took) = stopped(q);
        assert!(matches!(e, JqFailure::Bytes { .. } | JqFailure::Steps { .. }), "{q}: {e}");
        assert!(took < Duration::from_secs(10), "{q} took {took:?}");
    }
}

#[test]
fn jq_shared_values_cannot_expand_outside_the_budget() {
    // Forty levels of `[., .]` share their halves: small in memory, 2^40 leaves when expanded.
    let dag = "reduce range(40) as $_ (0; [., .])";
    for q in [
        dag.to_owned(),
        format!("{dag} | tojson | length"),
        format!("{dag} | tostring | length"),
        format!("{dag} | [..] | length"),
        format!("{dag} | last(..)"),
        format!("({dag}) as $a | ({dag}) as $b | $a == $b"),
        format!("({dag}) as $a | ({dag}) as $b | [$a, $b] | sort | length"),
        format!("{dag} | {{(tojson): 1}}"),
    ] {
        let (e, took) = stopped(&q);
        assert!(matches!(e, JqFailure::Bytes { .. } | JqFailure::Steps { .. }), "{q}: {e}");
        assert!(took < Duration::from_secs(10), "{q} took {took:?}");
    }
}

#[test]
fn jq_fromjson_of_deep_nesting_does_not_overflow_the_stack() {
    let q = JqQuery::compile("\"[\" * 3000000 | fromjson").unwrap();
    assert_eq!(q.eval_first(&json!(null)), Ok(None), "a parse error, not a crash");
    let q = JqQuery::compile("\"[\" * 100 + \"]\" * 100 | fromjson | flatten").unwrap();
    assert_eq!(q.eval_first(&json!(null)), Ok(Some(json!([]))));
}

#[test]
fn jq_indices_cannot_search_without_end() {
    let (e, took) = stopped("(\"a\" * 1000000) as $s | $s | indices($s[0:500000]) | length");
    assert!(matches!(e, JqFailure::Steps { .. }), "{e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn jq_ordinary_work_on_large_inputs_fits_the_budget() {
    // A 10,000-item input, joined, sorted and grouped: well inside the defaults.
    let items: Vec<Json> = (0..10_000).map(|i| json!({"name": format!("item {i}"), "n": i % 7})).collect();
    let input = json!({"items": items});
    for (q, want) in [
        ("[.items[].name] | join(\", \") | length", json!(108_888)),
        (".items | sort_by(.n) | .[0].n", json!(0)),
        (".items | group_by(.n) | length", json!(7)),
        ("[.items[] | select(.n == 3)] | length", json!(1429)),
        (".items | map(.name | ascii_upcase) | unique | length", json!(10_000)),
    ] {
        assert_eq!(JqQuery::compile(q).unwrap().eval_first(&input), Ok(Some(want)), "{q}");
    }
}
