//! Sensitive values from the command line: `--secret <id>.<field>=<value>` and the
//! environment variables `WEFT_SECRET_<ID>_<FIELD>`; and every value a command must keep secret
//! ([`from_environment`], [`from_flow`]), for the scrubber ([`crate::scrub`]).

use weft_guard::Secrets;
use weft_spec::Value;

/// Splits `--secret <id>.<field>=<value>`. Errors never quote the value.
pub fn parse_secret_arg(arg: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = arg.split_once('=') else {
        anyhow::bail!(
            "a --secret value has no '=' (not shown: it may be the secret itself): write --secret <component id>.<field>=<value>, e.g. --secret 1234.api_key=sk-..."
        );
    };
    if !key.contains('.') || key.starts_with('.') || key.ends_with('.') {
        anyhow::bail!("--secret key {key:?} must be <component id>.<field>, as in the document's {{\"$component_ref\": \"<id>.<field>\"}}");
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The environment variable that holds the value of reference `<id>.<field>`:
/// `WEFT_SECRET_` then the key uppercased, every non-alphanumeric character as `_`.
pub fn env_var_name(key: &str) -> String {
    let mangled: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("WEFT_SECRET_{mangled}")
}

/// The shortest `OPENAI_API_KEY` value treated as a secret. Shorter values are the placeholders
/// local servers are given (`EMPTY`, `dummy`, `ollama`); masking them would garble every output
/// holding that word, and they protect nothing. (Values named as secrets, `--secret` and
/// `WEFT_SECRET_*`, are secrets whatever their length; one shorter than 8 characters is masked
/// in free text only, with a warning: see [`crate::scrub`].)
const MIN_ENV_KEY_LEN: usize = 8;

/// The secrets of the environment: `OPENAI_API_KEY` (unless a short placeholder) and every
/// `WEFT_SECRET_*` variable.
pub fn from_environment() -> Secrets {
    let mut secrets = Secrets::default();
    for (name, value) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let value = value.to_string_lossy().into_owned();
        let openai_key = name == weft_llm::providers::openai::API_KEY_ENV && value.trim().len() >= MIN_ENV_KEY_LEN;
        if openai_key || name.starts_with("WEFT_SECRET_") {
            secrets.extend([value]);
        }
    }
    secrets
}

/// The values of `--secret` arguments (malformed ones are reported where they are parsed).
pub fn from_args(args: &[String]) -> Secrets {
    Secrets::new(args.iter().filter_map(|arg| parse_secret_arg(arg).ok()).map(|(_, value)| value))
}

/// The secrets a flow holds: the value of every sensitive field (API keys, sensitive headers and
/// each header's value; supplied or written in the document) and credentials in any URL field.
pub fn from_flow(flow: &weft_flow::Flow) -> Secrets {
    let mut secrets = Secrets::default();
    for component in &flow.spec().components {
        for (name, value) in &component.fields {
            let sensitive = component.ty.field(name).is_some_and(|f| f.sensitive);
            collect(value, sensitive, &mut secrets);
        }
    }
    secrets
}

fn collect(value: &Value, sensitive: bool, secrets: &mut Secrets) {
    match value {
        Value::Secret(secret) => {
            secrets.extend(secret.value.iter().cloned());
            // A JSON object (sensitive headers): each of its values is secret on its own.
            if let Some(serde_json::Value::Object(members)) = secret.value.as_deref().and_then(|v| serde_json::from_str(v).ok()) {
                members.values().for_each(|v| collect_json(v, true, secrets));
            }
        }
        Value::Json(json) => collect_json(json, sensitive, secrets),
        Value::List(items) => items.iter().for_each(|v| collect(v, sensitive, secrets)),
        Value::Map(members) => members.values().for_each(|v| collect(v, sensitive, secrets)),
        Value::Comp(_) | Value::Props(_) | Value::Prop(_) | Value::PropMap(_) => {}
    }
}

fn collect_json(json: &serde_json::Value, sensitive: bool, secrets: &mut Secrets) {
    match json {
        serde_json::Value::String(s) if sensitive => secrets.extend([s.clone()]),
        serde_json::Value::String(s) if s.contains('@') => secrets.add_url_credentials(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_json(v, sensitive, secrets)),
        serde_json::Value::Object(members) => members.values().for_each(|v| collect_json(v, sensitive, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_uppercased_and_mangled() {
        assert_eq!(env_var_name("c884-9717.api_key"), "WEFT_SECRET_C884_9717_API_KEY");
        assert_eq!(env_var_name("llm.é"), "WEFT_SECRET_LLM__");
    }

    #[test]
    fn secret_args_need_a_key_and_a_value() {
        assert_eq!(parse_secret_arg("a.b=c=d").unwrap(), ("a.b".into(), "c=d".into()));
        let error = parse_secret_arg("sk-typed-without-key").unwrap_err().to_string();
        assert!(!error.contains("sk-typed"), "{error}");
        assert!(parse_secret_arg("ab=c").is_err());
    }
}
