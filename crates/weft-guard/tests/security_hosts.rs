//! Issue 10, items 2 and 3, decided on hosts: where the `OPENAI_API_KEY` fallback may go, and
//! what `--allow-host` patterns accept and allow.

use weft_guard::egress::{EgressPolicy, HostPattern, Target, env_key_allowed};

#[test]
fn the_environment_key_is_sent_only_to_openais_api_and_loopback() {
    let allowed = [
        "https://api.openai.com",
        "https://api.openai.com/v1/chat/completions",
        "https://API.OpenAI.com./v1",
        "https://api.openai.com:443/v1",
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.2/v1",
        "http://127.255.255.254:1/v1",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://localhost:11434/v1",
        "http://0x7f.1/v1",
        "http://2130706433/v1",
        "http://evil.com@127.0.0.1/v1",
    ];
    for url in allowed {
        assert!(env_key_allowed(url), "{url} should get the environment key");
    }
    let refused = [
        "https://api.openai.com.evil.com/v1",
        "https://evil.com/api.openai.com",
        "https://evil.com/v1?host=api.openai.com",
        "https://evil.com#api.openai.com",
        "https://api.openai.com@evil.com/v1",
        "https://user:pw@evil.com/v1",
        "https://evil.com\\@api.openai.com/v1",
        "http://api.openai.com/v1",
        "https://api.openai.com:8443/v1",
        "https://apiXopenai.com/v1",
        "https://openai.com/v1",
        "https://xapi.openai.com/v1",
        "http://10.0.0.1:8000/v1",
        "http://192.168.1.10/v1",
        "http://0.0.0.0:8000/v1",
        "http://[::]:8000/v1",
        "http://[::2]/v1",
        "http://localhost.evil.com/v1",
        "http://LOCALHOST./v1",
        "http://127.0.0.1.nip.io/v1",
        "http://evil.com/127.0.0.1",
        "ftp://127.0.0.1/v1",
        "not a url",
        "",
    ];
    for url in refused {
        assert!(!env_key_allowed(url), "{url} must not get the environment key");
    }
}

#[test]
fn allow_host_patterns_are_validated() {
    for good in
        ["api.example.com", "API.Example.COM.", "*.example.com", "h:8080", "10.0.0.7", "10.0.0.7:1", "[::1]", "[::1]:8000", "localhost"]
    {
        assert!(good.parse::<HostPattern>().is_ok(), "{good}");
    }
    for (bad, says) in [
        ("", "empty"),
        ("https://api.example.com", "not a URL"),
        ("api.example.com/v1", "no path"),
        ("user@h", "no path, user"),
        ("h:0", "1 to 65535"),
        ("h:70000", "1 to 65535"),
        ("h:x", "1 to 65535"),
        ("*", "first label"),
        ("*.", "empty"),
        ("a.*.com", "first label"),
        ("*example.com", "first label"),
        ("*.10.0.0.1", "not an IP address"),
        ("::1", "brackets"),
        ("[::1", "closing"),
        ("[::1]x", ":PORT"),
        ("a..b", "empty label"),
        ("h o", "spaces"),
    ] {
        let problem = bad.parse::<HostPattern>().expect_err(bad);
        assert!(problem.contains(says), "{bad}: {problem}");
        assert!(problem.contains("--allow-host"), "{bad}: {problem}");
    }
}

#[test]
fn allow_host_allows_only_the_listed_hosts_and_ports() {
    let policy = EgressPolicy::parse(&["api.example.com", "*.internal.example", "127.0.0.1:8000", "[::1]"]).expect("patterns");
    let check = |url: &str| policy.check(&Target::parse(url).expect(url)).is_ok();
    for url in [
        "https://api.example.com/v1",
        "http://API.EXAMPLE.COM.:9/v1",
        "http://a.internal.example/v1",
        "http://a.b.internal.example/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:1234/v1",
    ] {
        assert!(check(url), "{url} is allowed");
    }
    for url in [
        "https://api.example.com.evil.com/v1",
        "https://evil.com/api.example.com",
        "https://api.example.com@evil.com/v1",
        "http://internal.example/v1",
        "http://xinternal.example/v1",
        "http://127.0.0.1:8001/v1",
        "http://127.0.0.2:8000/v1",
        "http://localhost:8000/v1",
        "http://[::2]/v1",
    ] {
        assert!(!check(url), "{url} is refused");
    }
    let refused = policy.check_url("http://evil.com:81/v1").expect_err("refused");
    let text = refused.to_string();
    assert!(text.contains("evil.com:81") && text.contains("--allow-host evil.com"), "{text}");
    assert!(EgressPolicy::parse::<&str>(&[]).expect("empty").check_url("http://anything/").is_ok());
}

#[test]
fn localhost_with_a_trailing_dot_is_not_loopback_and_gets_no_environment_key() {
    // `localhost.` is an absolute name the system's resolver may send to DNS: only the name
    // `localhost` exactly, and IP literals, count as loopback.
    for url in ["http://localhost.:8000/v1", "http://LOCALHOST.:8000/v1", "https://localhost./v1", "http://localhost..:8000/v1"] {
        assert!(!env_key_allowed(url), "{url} must not get the environment key");
        if let Ok(target) = Target::parse(url) {
            assert!(!target.is_loopback(), "{url} is not loopback");
        }
    }
    for url in ["http://localhost:8000/v1", "http://LocalHost/v1", "http://127.0.0.1:8000/v1", "http://[::1]:8000/v1"] {
        assert!(env_key_allowed(url), "{url} gets the environment key");
        assert!(Target::parse(url).expect("parses").is_loopback(), "{url}");
    }
    // The trailing dot still matches an --allow-host pattern written without it.
    let target = Target::parse("http://localhost.:8000/v1").expect("parses");
    assert_eq!((target.host.as_str(), target.trailing_dot), ("localhost", true));
}
