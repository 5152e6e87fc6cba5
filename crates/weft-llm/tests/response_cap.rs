//! A server answering an LLM call with a body past the 32 MiB cap (announced by Content-Length,
//! or streamed without one) fails the call with a clear error, once (not retried), without
//! holding the body in memory.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use weft_llm::choice::Provider;
use weft_llm::limit::Limiters;
use weft_llm::openai::{MAX_RESPONSE_BYTES, OpenAiModel, OpenAiOptions, RecordingSleeper};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, LlmError, Role};

/// How the test server answers.
#[derive(Clone, Copy)]
enum Answer {
    /// A Content-Length of 40 MiB, then the start of the body.
    AnnouncedTooLarge,
    /// A chunked body of 40 MiB with no length announced.
    StreamedTooLarge,
}

/// Serves every connection with `answer`; counts the requests.
async fn serve(answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                // Read the request: its head, then its Content-Length bytes.
                let mut seen = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let body_start = loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&seen[..body_start]).to_lowercase();
                let length: usize =
                    head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                while seen.len() < body_start + length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let mib = vec![b' '; 1024 * 1024];
                // Write errors mean the client hung up, as it should past the cap.
                match answer {
                    Answer::AnnouncedTooLarge => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", 40 << 20);
                        let _ = socket.write_all(head.as_bytes()).await;
                        for _ in 0..40 {
                            if socket.write_all(&mib).await.is_err() {
                                return;
                            }
                        }
                    }
                    Answer::StreamedTooLarge => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        for _ in 0..40 {
                            let chunk = [format!("{:x}\r\n", mib.len()).as_bytes(), &mib, b"\r\n"].concat();
                            if socket.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                }
            });
        }
    });
    (address.to_string(), requests)
}

async fn call(address: &str) -> LlmError {
    let options = OpenAiOptions::new(Provider::Vllm, address, "m").with_sleeper(RecordingSleeper::new()).with_limiters(Limiters::default());
    let model = OpenAiModel::new(options).unwrap();
    let request = ChatRequest { messages: vec![ChatMessage::new(Role::User, "hi")], ..ChatRequest::default() };
    model.chat(&request).await.unwrap_err()
}

fn assert_cap_error(error: &LlmError, address: &str) {
    let LlmError::Permanent { message } = error else { panic!("not a permanent error: {error:?}") };
    assert!(
        message.contains("the response body is larger than 32 MiB, the cap of an LLM response, after 1 attempt (not retried)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("check that http://{address}/v1/chat/completions is an OpenAI-compatible chat-completions endpoint")),
        "{message}"
    );
}

#[tokio::test]
async fn an_llm_response_announced_past_32_mib_is_refused() {
    assert_eq!(MAX_RESPONSE_BYTES, 32 * 1024 * 1024);
    let (address, requests) = serve(Answer::AnnouncedTooLarge).await;
    assert_cap_error(&call(&address).await, &address);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn an_llm_response_streamed_past_32_mib_is_refused() {
    let (address, requests) = serve(Answer::StreamedTooLarge).await;
    assert_cap_error(&call(&address).await, &address);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "not retried");
}
