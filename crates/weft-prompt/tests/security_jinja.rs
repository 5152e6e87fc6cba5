//! A flow document's Jinja templates and regular expressions are untrusted: each render and each
//! search is bounded, and a template reaches nothing but the values it is given.

#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};
use weft_prompt::{OutputParser, RegexPattern, Template};

fn vars() -> Map<String, Json> {
    json!({"name": "Ana", "items": [1, 2, 3]}).as_object().unwrap().clone()
}

/// Renders `source`; it must fail (at compile or render time), quickly.
fn refused(source: &str) -> String {
    let t = Instant::now();
    let result = Template::new(source).and_then(|tpl| tpl.render(&vars()));
    let took = t.elapsed();
    // A liveness bound, not a speed measure: what is refused would run for hours or forever;
    // printing 64 MiB in a debug build on a loaded 2-core machine has taken 12 s.
    assert!(took < Duration::from_secs(60), "`{source}` took {took:?}");
    match result {
        Err(e) => e.to_string(),
        Ok(text) => panic!("`{source}` should fail, rendered {} bytes", text.len()),
    }
}

#[test]
fn jinja_huge_range_is_bounded() {
    // WayFlow's environment has no `range`; the calls fail at once.
    refused("{% for i in range(1000000000) %}{{ i }}{% endfor %}");
    refused("{{ range(1000000000) | list | length }}");
}

#[test]
fn jinja_endless_loops_run_out_of_fuel() {
    let e = refused("{% for i in name * 100000 %}{% for j in name * 100000 %}{{ j }}{% endfor %}{% endfor %}");
    assert!(e.contains("ran too long"), "{e}");
}

#[test]
fn jinja_endless_recursion_is_stopped() {
    refused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
    refused("{% macro f(n) %}{{ f(n + 1) }}x{% endmacro %}{{ f(0) }}");
}

#[test]
fn jinja_huge_strings_are_bounded() {
    refused("{{ 'x' * 1000000000000 }}");
    // Doubling through a recursive macro, and tenfold concatenations: each a few instructions.
    let doubling =
        "{% macro d(s, n) %}{% if n > 0 %}{{ d(s ~ s, n - 1) }}{% else %}{{ s | length }}{% endif %}{% endmacro %}{{ d('x', 60) }}";
    let tenfold =
        (0..12).map(|i| format!("{{% set s{} = s{i}~s{i}~s{i}~s{i}~s{i}~s{i}~s{i}~s{i}~s{i}~s{i} %}}", i + 1)).collect::<String>();
    let tenfold = format!("{{% set s0 = 'xxxxxxxxxx' %}}{tenfold}{{{{ s12 | length }}}}");
    // A list sharing its halves, forty levels deep, printed: 2^40 items of text.
    let shared = format!(
        "{{% set l0 = [1] %}}{}{{{{ l40 }}}}",
        (0..40).map(|i| format!("{{% set l{} = [l{i}, l{i}] %}}", i + 1)).collect::<String>()
    );
    for source in [doubling, tenfold.as_str(), shared.as_str()] {
        let e = refused(source);
        assert!(e.contains("built more than 64 MiB of text"), "{e}");
    }
}

#[test]
fn jinja_reaches_no_attribute_outside_the_values() {
    for source in [
        "{{ name.__class__ }}",
        "{{ name.__class__.__mro__ }}",
        "{{ range.__globals__ }}",
        "{{ self.__init__ }}",
        "{{ items.__len__() }}",
        "{{ config }}",
        "{{ env }}",
        "{{ lipsum.__globals__.os }}",
        "{% include '/etc/passwd' %}",
        "{% import '/etc/passwd' as p %}",
        "{% extends '/etc/passwd' %}",
    ] {
        refused(source);
    }
    // What a prompt does need still works.
    let t = Template::new("{{ name | upper }} has {{ items | length }} items: {{ items | join(', ') }}").unwrap();
    assert_eq!(t.render(&vars()).unwrap(), "ANA has 3 items: 1, 2, 3");
}

#[test]
fn regex_catastrophic_backtracking_is_bounded() {
    // (a+)+$ against a long run of a's and one b: exponential for a backtracking engine.
    let p = RegexPattern::new("(a+)+$", 0, false).unwrap();
    let text = format!("{}b", "a".repeat(64));
    let t = Instant::now();
    assert!(p.findall(&text).is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    // The same through a regex output parser: no match, so the text comes back unchanged.
    let parser = OutputParser::regex(&json!("(a+)+c"), false).unwrap();
    let t = Instant::now();
    assert_eq!(parser.apply(&text).unwrap(), text);
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}
