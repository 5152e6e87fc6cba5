//! The tools file: parsing, every error message, and the registry it builds.

use serde_json::{Map, json};
use std::path::Path;
use std::time::Duration;
use weft_tools::file::DEFAULT_TIMEOUT;
use weft_tools::{ToolsFile, ToolsFileError};

fn parse(text: &str) -> Result<ToolsFile, ToolsFileError> {
    ToolsFile::parse(text, Path::new("conf/tools.toml"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(file) => panic!("accepted: {file:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_binding() {
    let file = parse(
        r#"
[tools.get_user_information]
command = ["python3", "tools/get_user_information.py"]   # argv, no shell
timeout_s = 30
env = { API_TOKEN = "abc", MODE = "test" }

[tools.quick]
command = ["./quick.sh"]
timeout_s = 0.5
"#,
    )
    .unwrap();
    assert_eq!(file.path, Path::new("conf/tools.toml"));
    let user = &file.tools["get_user_information"];
    assert_eq!(user.command, ["python3", "tools/get_user_information.py"]);
    assert_eq!(user.timeout, Duration::from_secs(30));
    assert_eq!(user.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(), [("API_TOKEN", "abc"), ("MODE", "test")]);
    let quick = &file.tools["quick"];
    assert_eq!(quick.timeout, Duration::from_millis(500));
    assert!(quick.env.is_empty());
    let registry = file.registry();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["get_user_information", "quick"]);
}

#[test]
fn the_default_timeout_is_60_s() {
    assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(60));
    let file = parse("[tools.t]\ncommand = [\"true\"]\n").unwrap();
    assert_eq!(file.tools["t"].timeout, DEFAULT_TIMEOUT);
    assert_eq!(file.tools["t"].command_tool(Path::new("/x")).timeout(), Some(DEFAULT_TIMEOUT));
}

#[test]
fn an_empty_file_binds_nothing() {
    for text in ["", "\n# only a comment\n", "[tools]\n"] {
        let file = parse(text).unwrap();
        assert!(file.tools.is_empty(), "{text:?}");
        assert_eq!(file.registry().names().count(), 0);
    }
}

#[test]
fn other_toml_forms_of_the_same_binding() {
    let file =
        parse("[tools]\na.command = [\"x\"]\nc = { command = ['z'] }\n[tools.b]\ncommand = [\n  \"y\",\n  \"--flag\",\n]\n").unwrap();
    assert_eq!(file.tools.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(file.tools["b"].command, ["y", "--flag"]);
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = ToolsFile::load(&missing).unwrap_err();
    assert!(matches!(err, ToolsFileError::Read { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("cannot read the tools file {}: ", missing.display())), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
    assert!(text.ends_with("check the path given to --tools"), "{text}");

    let err = ToolsFile::load(dir.path()).unwrap_err();
    assert!(matches!(err, ToolsFileError::Read { .. }), "{err:?}");
}

#[test]
fn toml_syntax_error_with_line_and_column() {
    let err = parse("[tools.a]\ncommand = [\"x\"\n").unwrap_err();
    assert!(matches!(err, ToolsFileError::Syntax { line: 2, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("conf/tools.toml:2:"), "{text}");
    assert!(text.contains(": invalid TOML: "), "{text}");

    let err = parse("[tools.a]\ncommand = [\"x\"]\ntimeout_s = = 3\n").unwrap_err();
    assert!(matches!(err, ToolsFileError::Syntax { line: 3, column: 13, .. }), "{err:?}");

    let duplicate = parse("[tools.a]\ncommand = [\"x\"]\ncommand = [\"y\"]\n").unwrap_err();
    assert_eq!(
        duplicate.to_string(),
        "conf/tools.toml:3:1: invalid TOML: duplicate key `command`; a key (or table) may be defined only once"
    );
}

#[test]
fn a_tool_without_command() {
    let text = error("[tools.a]\ncommand = [\"x\"]\n\n[tools.weather]\ntimeout_s = 5\n");
    assert_eq!(
        text,
        "conf/tools.toml:4:1: `tools.weather`: has no `command`; add the program and its arguments, such as command = [\"python3\", \"tool.py\"]"
    );
}

#[test]
fn an_empty_command() {
    let text = error("[tools.weather]\ncommand = []\n");
    assert_eq!(
        text,
        "conf/tools.toml:2:11: `tools.weather.command`: is empty; give the program and its arguments, such as [\"python3\", \"tool.py\"]"
    );
    let text = error("[tools.weather]\ncommand = [\"\", \"x\"]\n");
    assert!(text.contains("`tools.weather.command[0]`: the program name is empty"), "{text}");
}

#[test]
fn a_command_given_as_a_string() {
    let text = error("[tools.weather]\ncommand = \"python3 tools/weather.py --city x\"\n");
    assert_eq!(
        text,
        "conf/tools.toml:2:11: `tools.weather.command`: must be a list, not a string: use an argv list such as [\"python3\", \"tool.py\"]; \
         commands run without a shell (here: command = [\"python3\", \"tools/weather.py\", \"--city\", \"x\"])"
    );
    // No suggestion when the string uses shell syntax.
    let text = error("[tools.weather]\ncommand = \"python3 w.py | jq .\"\n");
    assert!(text.ends_with("commands run without a shell"), "{text}");
    // Neither a string nor a list.
    let text = error("[tools.weather]\ncommand = 3\n");
    assert!(
        text.contains("`tools.weather.command`: must be an argv list such as [\"python3\", \"tool.py\"], found an integer, 3"),
        "{text}"
    );
}

#[test]
fn a_non_string_argv_item() {
    let text = error("[tools.weather]\ncommand = [\"python3\", \"w.py\", 3]\n");
    assert_eq!(
        text,
        "conf/tools.toml:2:31: `tools.weather.command[2]`: must be a string, found an integer, 3; quote every item of the argv list, such as \"3\""
    );
    let text = error("[tools.weather]\ncommand = [\"python3\", [\"w.py\"]]\n");
    assert!(text.contains("`tools.weather.command[1]`: must be a string, found an array"), "{text}");
}

#[test]
fn timeout_not_a_positive_number() {
    for (value, found) in [
        ("0", "an integer, 0"),
        ("-5", "an integer, -5"),
        ("0.0", "a float, 0.0"),
        ("\"30\"", "a string, \"30\""),
        ("nan", "a float, nan"),
        ("inf", "a float, inf"),
        ("true", "a boolean, true"),
    ] {
        let text = error(&format!("[tools.weather]\ncommand = [\"w\"]\ntimeout_s = {value}\n"));
        assert_eq!(
            text,
            format!(
                "conf/tools.toml:3:13: `tools.weather.timeout_s`: must be a positive number of seconds, such as 30 or 0.5, found {found}; leave it out for the default of 60 s"
            ),
            "{value}"
        );
    }
    // Hex integers and underscores are numbers too.
    let file = parse("[tools.w]\ncommand = [\"w\"]\ntimeout_s = 0x10\n[tools.v]\ncommand = [\"v\"]\ntimeout_s = 1_000\n").unwrap();
    assert_eq!(file.tools["w"].timeout, Duration::from_secs(16));
    assert_eq!(file.tools["v"].timeout, Duration::from_secs(1000));
}

#[test]
fn max_output_mb_sets_the_cap_of_stdout_and_defaults_to_64() {
    let file = parse("[tools.big]\ncommand = [\"w\"]\nmax_output_mb = 512\n[tools.plain]\ncommand = [\"v\"]\n").unwrap();
    assert_eq!(file.tools["big"].max_output, 512 * 1024 * 1024);
    assert_eq!(file.tools["plain"].max_output, 64 * 1024 * 1024);
    assert_eq!(weft_tools::command::DEFAULT_MAX_OUTPUT, 64 * 1024 * 1024);
    let tool = file.tools["big"].command_tool(Path::new("."));
    assert_eq!(tool.max_output(), 512 * 1024 * 1024);
    let file = parse("[tools.w]\ncommand = [\"w\"]\nmax_output_mb = 1_048_576\n").unwrap();
    assert_eq!(file.tools["w"].max_output, 1 << 40);
}

#[test]
fn max_output_mb_not_a_positive_integer() {
    for (value, found) in [
        ("0", "an integer, 0"),
        ("-1", "an integer, -1"),
        ("1.5", "a float, 1.5"),
        ("\"64\"", "a string, \"64\""),
        ("1048577", "an integer, 1048577"),
        ("99999999999999999999", "an integer, 99999999999999999999"),
        ("true", "a boolean, true"),
    ] {
        let text = match parse(&format!("[tools.flood]\ncommand = [\"w\"]\nmax_output_mb = {value}\n")) {
            Ok(file) => panic!("accepted {value}: {file:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            text,
            format!(
                "conf/tools.toml:3:17: `tools.flood.max_output_mb`: must be a whole number of MiB from 1 to 1048576, such as 128, found {found}; leave it out for the default of 64 MiB"
            ),
            "{value}"
        );
    }
    let text = error("[tools.flood]\ncommand = [\"w\"]\nmax_output = 5\n");
    assert!(text.contains("`tools.flood.max_output`: unknown key (did you mean `max_output_mb`?)"), "{text}");
}

#[test]
fn env_values_not_strings() {
    let text = error("[tools.weather]\ncommand = [\"w\"]\nenv = { PORT = 8080 }\n");
    assert_eq!(
        text,
        "conf/tools.toml:3:16: `tools.weather.env.PORT`: must be a string, found an integer, 8080; environment values are strings: quote it, such as \"8080\""
    );
    let text = error("[tools.weather]\ncommand = [\"w\"]\nenv = [\"A=1\"]\n");
    assert!(
        text.contains("`tools.weather.env`: must be a table of strings, such as env = { API_TOKEN = \"...\" }, found an array"),
        "{text}"
    );
    let text = error("[tools.weather]\ncommand = [\"w\"]\n[tools.weather.env]\n\"A=B\" = \"1\"\n");
    assert!(text.contains("`tools.weather.env.\"A=B\"`: is not a valid environment variable name"), "{text}");
}

#[test]
fn unknown_keys_with_did_you_mean() {
    let text = error("[tools.weather]\ncommand = [\"w\"]\ntimeout = 30\n");
    assert_eq!(
        text,
        "conf/tools.toml:3:1: `tools.weather.timeout`: unknown key (did you mean `timeout_s`?); the known keys are command, timeout_s, max_output_mb, env, mcp, tool"
    );
    let text = error("[tools.weather]\ncomand = [\"w\"]\n");
    assert!(text.contains("`tools.weather.comand`: unknown key (did you mean `command`?)"), "{text}");
    let text = error("[tools.weather]\ncmd = [\"w\"]\n");
    assert!(text.contains("(did you mean `command`?)"), "{text}");
    let text = error("[tools.weather]\ncommand = [\"w\"]\nenvironment = {}\n");
    assert!(text.contains("(did you mean `env`?)"), "{text}");
    let text = error("[tools.weather]\ncommand = [\"w\"]\nretries = 3\n");
    assert_eq!(
        text,
        "conf/tools.toml:3:1: `tools.weather.retries`: unknown key; the known keys are command, timeout_s, max_output_mb, env, mcp, tool"
    );
}

#[test]
fn mcp_bindings_and_allowed_commands() {
    let file = weft_tools::ToolsFile::parse(
        "[tools.weather]\nmcp = { command = [\"python3\", \"server.py\"] }\ntool = \"forecast\"\ntimeout_s = 5\n\n[tools.docs]\nmcp = { url = \"http://127.0.0.1:9000/mcp\" }\n\n[mcp]\nallow_commands = [\"npx\"]\n",
        std::path::Path::new("conf/tools.toml"),
    )
    .unwrap();
    let weather = file.tools["weather"].mcp.as_ref().unwrap();
    assert_eq!(weather.tool, "forecast");
    assert_eq!(weather.server, weft_tools::file::McpServerRef::Command(vec!["python3".into(), "server.py".into()]));
    let docs = file.tools["docs"].mcp.as_ref().unwrap();
    assert_eq!((docs.tool.as_str(), &docs.server), ("docs", &weft_tools::file::McpServerRef::Url("http://127.0.0.1:9000/mcp".into())));
    assert_eq!(file.mcp_commands, ["npx"]);
    let text = error("[tools.weather]\nmcp = { command = [\"a\"], url = \"http://x\" }\n");
    assert!(text.contains("`tools.weather.mcp`: must hold exactly one of `command` and `url`"), "{text}");
    let text = error("[tools.weather]\ncommand = [\"a\"]\nmcp = { url = \"http://x\" }\n");
    assert!(text.contains("has both `command` and `mcp`"), "{text}");
    let text = error("[tools.weather]\ncommand = [\"a\"]\ntool = \"b\"\n");
    assert!(text.contains("has `tool` without `mcp`"), "{text}");
    let text = error("[mcp]\nallow_command = [\"a\"]\n");
    assert!(text.contains("`mcp.allow_command`: unknown key (did you mean `allow_commands`?)"), "{text}");
}

#[test]
fn http_is_reserved() {
    let text = error("[tools.weather]\nhttp = { url = \"http://x\" }\n");
    assert_eq!(
        text,
        "conf/tools.toml:2:1: `tools.weather.http`: `http` tools are not supported yet; bind the tool to a program with command = [\"python3\", \"tool.py\"]"
    );
}

#[test]
fn wrong_shapes_of_tools_and_tool() {
    let text = error("[tool.weather]\ncommand = [\"w\"]\n");
    assert!(text.starts_with("conf/tools.toml:1:2: `tool`: unknown top-level key (did you mean `tools`?)"), "{text}");
    let text = error("tools = [\"a\"]\n");
    assert!(text.contains("`tools`: must be a table of tools, found an array"), "{text}");
    let text = error("[tools]\nweather = [\"python3\", \"w.py\"]\n");
    assert_eq!(
        text,
        "conf/tools.toml:2:11: `tools.weather`: must be a table, found an array, [\"python3\", \"w.py\"]; \
         did you mean the `command`? Write [tools.weather] followed by command = [\"python3\", \"w.py\"]"
    );
    let text = error("[tools]\n\"my tool\" = 3\n");
    assert!(
        text.contains("`tools.\"my tool\"`: must be a table, found an integer, 3; write [tools.\"my tool\"] followed by command"),
        "{text}"
    );
}

#[test]
fn the_first_error_in_the_file_is_reported() {
    let text = error("[tools.zeta]\ncommand = 1\n[tools.alpha]\ncommand = 2\n");
    assert!(text.starts_with("conf/tools.toml:2:"), "{text}");
}

#[tokio::test]
async fn commands_run_in_the_tools_file_directory_with_their_env() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tools")).unwrap();
    let script = dir.path().join("tools/who.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '{\"dir\": \"%s\", \"token\": \"%s\", \"input\": %s}' \"$(pwd -P)\" \"$API_TOKEN\" \"$(cat)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("tools.toml");
    std::fs::write(
        &path,
        "[tools.by_sh]\ncommand = [\"sh\", \"tools/who.sh\"]\nenv = { API_TOKEN = \"t0k\" }\n\n[tools.direct]\ncommand = [\"./tools/who.sh\"]\ntimeout_s = 5\n",
    )
    .unwrap();
    let file = ToolsFile::load(&path).unwrap();
    let expected_dir = dir.path().canonicalize().unwrap();
    assert_eq!(file.dir().canonicalize().unwrap(), expected_dir);
    let registry = file.registry();
    let mut args = Map::new();
    args.insert("x".into(), json!(1));

    let out = registry.get("by_sh").unwrap().call(args.clone()).await.unwrap();
    assert_eq!(out, json!({"dir": expected_dir.to_str().unwrap(), "token": "t0k", "input": {"x": 1}}));
    let out = registry.get("direct").unwrap().call(args).await.unwrap();
    assert_eq!(out["token"], json!(""));
    assert_eq!(out["dir"], json!(expected_dir.to_str().unwrap()));
}

#[test]
fn a_bare_file_name_runs_in_the_current_directory() {
    let file = ToolsFile::parse("", Path::new("tools.toml")).unwrap();
    assert_eq!(file.dir(), std::env::current_dir().unwrap());
}

#[test]
fn http_rewrites_in_file_order() {
    let file = parse(
        "[http.rewrite]\n\"https://orders.example.com\" = \"http://127.0.0.1:8080\"\n\"https://b.example\" = \"http://localhost:9/x\"\n",
    )
    .unwrap();
    assert_eq!(
        file.http_rewrites,
        vec![
            ("https://orders.example.com".to_owned(), "http://127.0.0.1:8080".to_owned()),
            ("https://b.example".to_owned(), "http://localhost:9/x".to_owned())
        ]
    );
    assert!(file.tools.is_empty());
    let text = error("[http.rewrite]\n\"https://a.example\" = 8080\n");
    assert!(
        text.starts_with("conf/tools.toml:2:23: `http.rewrite.\"https://a.example\"`: must be a URL string, found an integer, 8080"),
        "{text}"
    );
    let text = error("[http.rewrite]\n\"https://a.example\" = \"ftp://h\"\n");
    assert!(text.contains("is not an http:// or https:// URL"), "{text}");
    let text = error("[http.rewrites]\n\"https://a.example\" = \"http://h\"\n");
    assert!(text.contains("`http.rewrites`: unknown key (did you mean `rewrite`?)"), "{text}");
    let text = error("[htp.rewrite]\n");
    assert!(text.contains("unknown top-level key (did you mean `http`?)"), "{text}");
}
