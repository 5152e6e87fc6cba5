//! The `--llm` grammar: every form parses and prints back; every error says what is wrong and what
//! is accepted; the script file is read relative to the right directory.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

#[path = "../src/llm_choice.rs"]
mod llm_choice;

use std::path::{Path, PathBuf};
use std::time::Duration;

use llm_choice::{ChoiceError, LlmChoice, SimulatedSpec};
use serde_json::json;
use weft_llm::providers::openai::{ApiProvider, ProviderOverride};

/// Parses `text`, checks it is `expect`, and that it prints back as `text`.
#[track_caller]
fn check(text: &str, expect: LlmChoice) {
    let parsed: LlmChoice = text.parse().unwrap_or_else(|error| panic!("{text}: {error}"));
    assert_eq!(parsed, expect, "{text}");
    assert_eq!(parsed.to_string(), text, "{text} prints back");
    assert_eq!(parsed.to_string().parse::<LlmChoice>().expect("prints back parseable"), parsed);
}

#[track_caller]
fn error(text: &str) -> String {
    text.parse::<LlmChoice>().expect_err("an error").to_string()
}

const GRAMMAR: &str = "expected flow, simulated[?latency_ms=N&array_len=N&script=FILE], or [CONFIG_ID:]PROVIDER=URL,model=ID with PROVIDER one of openai, openai-compatible, vllm, ollama";
const PROVIDER_GRAMMAR: &str = "expected [CONFIG_ID:]PROVIDER=URL,model=ID, like openai-compatible=http://localhost:8000/v1,model=qwen3";

fn simulated(latency_ms: u64, array_len: usize, script: Option<&str>) -> LlmChoice {
    LlmChoice::Simulated(SimulatedSpec { latency_ms, array_len, script: script.map(PathBuf::from) })
}

fn provider(config_id: Option<&str>, provider: ApiProvider, url: &str, model: &str) -> LlmChoice {
    LlmChoice::Provider(ProviderOverride {
        config_id: config_id.map(str::to_owned),
        provider,
        url: url.to_owned(),
        model: model.to_owned(),
    })
}

#[test]
fn every_form_parses_and_prints_back() {
    assert_eq!(LlmChoice::default(), LlmChoice::Flow);
    check("flow", LlmChoice::Flow);
    check("simulated", simulated(0, 1, None));
    check("simulated?latency_ms=250", simulated(250, 1, None));
    check("simulated?array_len=3", simulated(0, 3, None));
    check("simulated?script=replies.json", simulated(0, 1, Some("replies.json")));
    check("simulated?latency_ms=5&array_len=2&script=/tmp/a%26b%25.json", simulated(5, 2, Some("/tmp/a&b%.json")));
    check(
        "openai=https://api.openai.com/v1,model=gpt-4o-mini",
        provider(None, ApiProvider::OpenAi, "https://api.openai.com/v1", "gpt-4o-mini"),
    );
    check(
        "openai-compatible=http://localhost:8000/v1,model=Qwen/Qwen3-8B",
        provider(None, ApiProvider::OpenAiCompatible, "http://localhost:8000/v1", "Qwen/Qwen3-8B"),
    );
    check("vllm=http://gpu:8000/v1?x=1,model=m", provider(None, ApiProvider::Vllm, "http://gpu:8000/v1?x=1", "m"));
    check("ollama=http://localhost:11434,model=llama3.2:3b", provider(None, ApiProvider::Ollama, "http://localhost:11434", "llama3.2:3b"));
    check(
        "judge_llm:ollama=http://localhost:11434,model=qwen3",
        provider(Some("judge_llm"), ApiProvider::Ollama, "http://localhost:11434", "qwen3"),
    );
    check("urn:llm:1:vllm=http://h,model=m", provider(Some("urn:llm:1"), ApiProvider::Vllm, "http://h", "m"));
}

#[test]
fn lenient_spellings_print_canonically() {
    for (given, printed) in [
        ("  flow ", "flow"),
        ("simulated?", "simulated"),
        ("simulated?latency_ms=0&array_len=1", "simulated"),
        ("simulated?&latency_ms=7&", "simulated?latency_ms=7"),
        ("simulated?array_len=2&latency_ms=1", "simulated?latency_ms=1&array_len=2"),
        ("simulated?script=my%20file.json", "simulated?script=my file.json"),
        ("simulated?script=100%", "simulated?script=100%25"),
    ] {
        let parsed: LlmChoice = given.parse().unwrap();
        assert_eq!(parsed.to_string(), printed, "{given}");
        assert_eq!(printed.parse::<LlmChoice>().unwrap(), parsed, "{given}");
    }
}

#[test]
fn unknown_values() {
    assert_eq!(error("simulatd"), format!(r#"unknown --llm value "simulatd" (did you mean "simulated"?): {GRAMMAR}"#));
    assert_eq!(error("Flow"), format!(r#"unknown --llm value "Flow" (did you mean "flow"?): {GRAMMAR}"#));
    assert_eq!(error("gpt-4o"), format!(r#"unknown --llm value "gpt-4o": {GRAMMAR}"#));
    assert_eq!(error(""), format!(r#"unknown --llm value "": {GRAMMAR}"#));
    assert_eq!(
        error("simulate?latency_ms=5"),
        format!(r#"unknown --llm value "simulate?latency_ms=5" (did you mean "simulated"?): {GRAMMAR}"#)
    );
    assert_eq!(error("http://localhost:8000/v1"), format!(r#"unknown --llm value "http://localhost:8000/v1": {GRAMMAR}"#));
}

#[test]
fn simulated_option_errors() {
    let options = "simulated takes latency_ms, array_len and script, as in simulated?latency_ms=N&array_len=N&script=FILE";
    assert_eq!(
        error("simulated?latency=5"),
        format!(r#"--llm "simulated?latency=5": unknown option "latency" (did you mean "latency_ms"?): {options}"#)
    );
    assert_eq!(
        error("simulated?arraylen=5"),
        format!(r#"--llm "simulated?arraylen=5": unknown option "arraylen" (did you mean "array_len"?): {options}"#)
    );
    assert_eq!(error("simulated?seed=1"), format!(r#"--llm "simulated?seed=1": unknown option "seed": {options}"#));
    assert_eq!(
        error("simulated?latency_ms=-5"),
        r#"--llm "simulated?latency_ms=-5": option latency_ms has value "-5": expected a whole number of milliseconds from 0 to 3600000 (one hour)"#
    );
    assert_eq!(
        error("simulated?latency_ms=1.5"),
        r#"--llm "simulated?latency_ms=1.5": option latency_ms has value "1.5": expected a whole number of milliseconds from 0 to 3600000 (one hour)"#
    );
    assert_eq!(
        error("simulated?array_len=0"),
        r#"--llm "simulated?array_len=0": option array_len has value "0": expected a whole number from 1 to 1024 (items per generated array)"#
    );
    assert_eq!(
        error("simulated?array_len=many"),
        r#"--llm "simulated?array_len=many": option array_len has value "many": expected a whole number from 1 to 1024 (items per generated array)"#
    );
    // Issue 10: the bounds, at and just past them.
    check("simulated?latency_ms=3600000", simulated(3_600_000, 1, None));
    check("simulated?array_len=1024", simulated(0, 1024, None));
    for (value, option) in [
        ("simulated?latency_ms=3600001", "latency_ms"),
        ("simulated?latency_ms=18446744073709551616", "latency_ms"),
        ("simulated?array_len=1025", "array_len"),
        ("simulated?array_len=18446744073709551615", "array_len"),
        ("simulated?array_len=1e3", "array_len"),
        ("simulated?latency_ms=NaN", "latency_ms"),
    ] {
        let text = error(value);
        assert!(text.contains(&format!("option {option} has value")) && text.contains(" from "), "{text}");
    }
    assert_eq!(
        error("simulated?script="),
        r#"--llm "simulated?script=": option script has value "": expected the path of a JSON file of scripted replies"#
    );
    assert_eq!(error("simulated?latency_ms"), r#"--llm "simulated?latency_ms": option latency_ms needs a value, as in latency_ms=N"#);
    assert_eq!(error("simulated?script"), r#"--llm "simulated?script": option script needs a value, as in script=FILE"#);
    assert_eq!(
        error("simulated?array_len=2&array_len=3"),
        r#"--llm "simulated?array_len=2&array_len=3": option array_len is given twice; give it once"#
    );
}

#[test]
fn provider_errors() {
    let known = "expected one of openai, openai-compatible, vllm, ollama, as in [CONFIG_ID:]PROVIDER=URL,model=ID, like openai-compatible=http://localhost:8000/v1,model=qwen3";
    assert_eq!(
        error("olama=http://h,model=m"),
        format!(r#"--llm "olama=http://h,model=m": unknown provider "olama" (did you mean "ollama"?): {known}"#)
    );
    assert_eq!(
        error("anthropic=https://h,model=m"),
        format!(r#"--llm "anthropic=https://h,model=m": unknown provider "anthropic": {known}"#)
    );
    assert_eq!(
        error("id:openia=http://h,model=m"),
        format!(r#"--llm "id:openia=http://h,model=m": unknown provider "openia" (did you mean "openai"?): {known}"#)
    );
    for (given, problem) in [
        ("openai", "a provider needs =URL,model=ID"),
        ("cfg:vllm", "a provider needs =URL,model=ID"),
        ("openai=", "missing URL after '='"),
        ("openai=,model=m", "missing URL after '='"),
        ("openai=api.openai.com,model=m", r#"URL "api.openai.com" does not start with http:// or https://"#),
        ("openai=https://,model=m", r#"URL "https://" does not start with http:// or https://"#),
        ("openai=https://h", "missing model=ID"),
        ("openai=https://h,model=", "empty model"),
        ("openai=https://h,model=a,model=b", "model is given twice"),
        ("openai=https://h,model=a,temperature=0", r#"unknown setting "temperature" (the only setting is model)"#),
        ("openai=https://h,gpt-4o", r#"unknown setting "gpt-4o" (the only setting is model)"#),
        (":openai=https://h,model=m", "empty CONFIG_ID before ':'"),
    ] {
        assert_eq!(error(given), format!("--llm {given:?}: {problem}: {PROVIDER_GRAMMAR}"));
    }
}

#[test]
fn errors_are_typed() {
    assert_eq!(
        "simulatd".parse::<LlmChoice>(),
        Err(ChoiceError::UnknownValue { value: "simulatd".to_owned(), suggestion: Some("simulated") })
    );
}

#[test]
fn options_read_the_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("replies.json"), r#"{"classify": ["spam", {"x": 1}]}"#).unwrap();
    let spec = SimulatedSpec { latency_ms: 20, array_len: 2, script: Some(PathBuf::from("replies.json")) };
    let options = spec.into_options(Some(dir.path())).unwrap();
    assert_eq!(options.latency, Duration::from_millis(20));
    assert_eq!(options.array_len, 2);
    assert_eq!(options.script.replies("classify"), Some(&[json!("spam"), json!({"x": 1})][..]));

    // An absolute path ignores the base directory.
    let absolute = SimulatedSpec { script: Some(dir.path().join("replies.json")), ..SimulatedSpec::default() };
    assert!(absolute.into_options(Some(Path::new("/nonexistent"))).is_ok());

    // No script: an empty one.
    assert!(SimulatedSpec::default().into_options(None).unwrap().script.is_empty());
}

#[test]
fn script_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = SimulatedSpec { script: Some(PathBuf::from("missing.json")), ..SimulatedSpec::default() };
    let message = missing.into_options(Some(dir.path())).unwrap_err().to_string();
    let path = dir.path().join("missing.json");
    assert!(message.starts_with(&format!("--llm simulated script {}: cannot read it: ", path.display())), "{message}");

    std::fs::write(dir.path().join("bad.json"), "[1, 2]").unwrap();
    let bad = SimulatedSpec { script: Some(PathBuf::from("bad.json")), ..SimulatedSpec::default() };
    let message = bad.into_options(Some(dir.path())).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "--llm simulated script {}: found an array; expected a JSON object",
            dir.path().join("bad.json").display()
        )),
        "{message}"
    );
}
