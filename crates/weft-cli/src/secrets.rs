//! Sensitive values from the command line: `--secret <id>.<field>=<value>` and the
//! environment variables `WEFT_SECRET_<ID>_<FIELD>`.

/// Splits `--secret <id>.<field>=<value>`.
pub fn parse_secret_arg(arg: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = arg.split_once('=') else {
        anyhow::bail!("--secret {arg:?} has no '=': write --secret <component id>.<field>=<value>, e.g. --secret 1234.api_key=sk-...");
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
        assert!(parse_secret_arg("a.b").is_err());
        assert!(parse_secret_arg("ab=c").is_err());
    }
}
