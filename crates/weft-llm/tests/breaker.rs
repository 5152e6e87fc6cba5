//! The endpoint's circuit breaker with the OpenAI client against the testkit server, in real
//! time (small timeouts and delays): calls waiting on a server that is down go through once it
//! is back, with no loss; calls on a silent server wait for one probe instead of each sending its
//! own, then fail at once with an error naming the endpoint, the outage and the idle timeout.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_llm::limit::{Limiters, Timeouts};
use weft_llm::providers::openai::{ApiProvider, OpenAiModel, OpenAiOptions};
use weft_llm::retry::RetryPolicy;
use weft_llm::{ChatMessage, ChatModel, ChatRequest, Role};
use weft_testkit::{Fault, MockConfig, MockServer};

fn ask(n: usize) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new(Role::User, format!("question {n}"))], ..ChatRequest::default() }
}

fn model(url: &str, limiters: &Limiters, policy: RetryPolicy) -> Arc<OpenAiModel> {
    let options =
        OpenAiOptions::new(ApiProvider::OpenAiCompatible, url, "m").with_limiters(limiters.clone()).with_retry(policy).with_jitter_seed(3);
    Arc::new(OpenAiModel::new(options).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_server_that_comes_back_all_go_through() {
    let server = MockServer::start(MockConfig::default()).await;
    let addr = server.addr();
    let url = server.url();
    server.shutdown().await;
    let limiters = Limiters::default();
    let model = model(&url, &limiters, RetryPolicy::default());
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let model = Arc::clone(&model);
            tokio::spawn(async move { model.chat(&ask(n)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let breaker = limiters.get(&url);
    assert!(breaker.breaker().down_for().is_some(), "the endpoint is down");
    let back = MockServer::try_start_on(addr, MockConfig::default()).await.unwrap();
    let t0 = Instant::now();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Found again at the next probe slot (1.75 s into the outage), each call then going through
    // when its own retry delay (at most 4 s by then) ends.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(back.stats().requests, 20, "each call answered once");
    assert_eq!(limiters.get(&url).breaker().down_for(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_silent_server_wait_for_one_probe_then_fail_at_once_naming_the_outage() {
    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3600)))).await;
    let limiters = Limiters::default();
    limiters.set_timeouts(Timeouts { idle: Duration::from_millis(300), ..Timeouts::default() });
    // A window of 2.5 s: 0.5 + 1 + 1.
    let policy =
        RetryPolicy::from_agent_spec(&json!({"max_attempts": 3, "initial_retry_delay": 0.5, "max_retry_delay": 1.0, "jitter": null}))
            .unwrap();
    assert_eq!(policy.window(), Duration::from_millis(2500));
    let model = model(&server.url(), &limiters, policy);
    let t0 = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|n| {
            let model = Arc::clone(&model);
            tokio::spawn(async move { model.chat(&ask(n)).await })
        })
        .collect();
    let mut errors = Vec::new();
    for call in calls {
        errors.push(call.await.unwrap().unwrap_err());
    }
    let took = t0.elapsed();
    for error in &errors {
        assert!(error.message.contains("no bytes received for 0.3 s (the idle timeout)"), "{}", error.message);
        assert!(error.message.contains(&format!("the endpoint {} has been down for", server.url())), "{}", error.message);
        assert!(error.message.contains("longer than the retry policy's window of 2.5 s"), "{}", error.message);
        assert!(error.message.contains("--idle-timeout"), "{}", error.message);
        assert!(error.is_transient());
    }
    // The ten first attempts (at once, before anything failed), then one probe in each of the
    // slots of 0.75 s and 1.75 s while the nine others wait for it and take its failure; at
    // 2.5 s the window ends and every call fails at once.
    assert_eq!(server.stats().requests, 12, "one probe at a time for ten waiting calls");
    assert!(took >= Duration::from_millis(2500) && took < Duration::from_secs(5), "{took:?}");
}
