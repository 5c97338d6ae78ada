//! Self-tests: the fake upstream over HTTP and TLS, as seen by the kit's own clients.

use std::time::Duration;

use serde_json::json;
use sluice_testkit::client::{self, TestClient, NO_HEADERS};
use sluice_testkit::{FakeUpstream, Script, TestPki, UpstreamOptions};

fn anthropic_body(stream: bool) -> serde_json::Value {
    json!({"model": "claude-test", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn check_all_endpoints(up: &FakeUpstream, c: &TestClient) {
    let base = up.url();
    let hdr = [("anthropic-version", "2023-06-01"), ("x-api-key", "k")];

    // Anthropic JSON (Accept: text/event-stream must not make it stream).
    let r = c
        .post_json(
            &format!("{base}/v1/messages"),
            &[("accept", "text/event-stream")],
            &anthropic_body(false),
        )
        .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["type"], "message");
    assert_eq!(j["content"][0]["text"], "Hello from the fake upstream.");
    assert_eq!(j["usage"]["input_tokens"], 11);
    assert_eq!(j["usage"]["output_tokens"], 7);

    // Anthropic SSE (Accept: application/json, like the SDKs and Claude Code).
    let s = c
        .stream_sse_full(
            &format!("{base}/claude/v1/messages?beta=true"),
            &[("accept", "application/json")],
            &anthropic_body(true),
        )
        .await;
    assert_eq!(s.status, 200);
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(
        s.names(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(s.events[0].1.json()["message"]["usage"]["input_tokens"], 11);
    assert_eq!(s.events[4].1.json()["usage"]["output_tokens"], 7);
    assert_eq!(s.events[4].1.json()["delta"]["stop_reason"], "end_turn");
    assert!(s.error.is_none());

    // count_tokens.
    let r = c
        .post_json(
            &format!("{base}/v1/messages/count_tokens"),
            &hdr,
            &json!({"model": "m", "messages": []}),
        )
        .await;
    assert_eq!(r.json(), json!({"input_tokens": 11}));

    // Chat completions JSON and SSE with usage.
    let chat = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let r = c
        .post_json(&format!("{base}/v1/chat/completions"), NO_HEADERS, &chat)
        .await;
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["usage"]["prompt_tokens"], 11);
    assert_eq!(j["usage"]["completion_tokens"], 7);
    let mut chat_s = chat.clone();
    chat_s["stream"] = json!(true);
    chat_s["stream_options"] = json!({"include_usage": true});
    let evs = c
        .stream_sse(&format!("{base}/v1/chat/completions"), NO_HEADERS, &chat_s)
        .await;
    assert_eq!(evs.last().unwrap().1.data, "[DONE]");
    let usage = &evs[evs.len() - 2].1.json();
    assert_eq!(usage["usage"]["completion_tokens"], 7);
    assert_eq!(usage["choices"], json!([]));
    let text: String = evs
        .iter()
        .filter_map(|(_, e)| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "Hello from the fake upstream.");
    chat_s["stream_options"] = json!({"include_usage": false});
    let evs = c
        .stream_sse(&format!("{base}/v1/chat/completions"), NO_HEADERS, &chat_s)
        .await;
    assert!(evs.iter().all(|(_, e)| e.json()["usage"].is_null()));

    // Responses JSON and SSE, also on codex's path.
    let resp_body = json!({"model": "gpt-test", "input": "hi"});
    let j = c
        .post_json(&format!("{base}/v1/responses"), NO_HEADERS, &resp_body)
        .await
        .json();
    assert_eq!(j["status"], "completed");
    assert_eq!(
        j["output"][0]["content"][0]["text"],
        "Hello from the fake upstream."
    );
    assert_eq!(j["usage"]["output_tokens"], 7);
    let s = c
        .stream_sse_full(
            &format!("{base}/backend-api/codex/responses"),
            &client::codex_headers(),
            &client::codex_request(),
        )
        .await;
    let names = s.names();
    assert_eq!(names.first().unwrap(), "response.created");
    assert!(names.contains(&"response.output_text.delta".to_string()));
    assert_eq!(names.last().unwrap(), "response.completed");
    let done = s.events.last().unwrap().1.json();
    assert_eq!(done["response"]["usage"]["input_tokens"], 11);
    assert_eq!(done["response"]["usage"]["output_tokens"], 7);

    // Embeddings: float and base64.
    let e = c
        .post_json(
            &format!("{base}/v1/embeddings"),
            NO_HEADERS,
            &json!({"model": "e", "input": ["a", "b"]}),
        )
        .await
        .json();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    assert!(e["data"][0]["embedding"].is_array());
    let e = c
        .post_json(
            &format!("{base}/v1/embeddings"),
            NO_HEADERS,
            &json!({"model": "e", "input": "a", "encoding_format": "base64"}),
        )
        .await
        .json();
    assert_eq!(e["data"][0]["embedding"].as_str().unwrap().len(), 44); // 32 bytes

    // Models, both flavours.
    let m = c.get(&format!("{base}/v1/models")).await.json();
    assert_eq!(m["object"], "list");
    let m = c.get_with(&format!("{base}/v1/models"), &hdr).await.json();
    assert_eq!(m["has_more"], false);

    // Unknown paths: 404 in the provider's shape.
    let r = c.get_with(&format!("{base}/v1/nope"), &hdr).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = c.get(&format!("{base}/v1/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "unknown_url");
}

#[tokio::test]
async fn serves_every_endpoint_over_http() {
    let up = FakeUpstream::plain().await;
    assert!(up.url().starts_with("http://127.0.0.1:"));
    check_all_endpoints(&up, &TestClient::new()).await;
}

#[tokio::test]
async fn serves_every_endpoint_over_h2c() {
    let up = FakeUpstream::plain().await;
    check_all_endpoints(&up, &TestClient::h2c()).await;
    assert!(up.requests().iter().all(|r| r.version == "HTTP/2.0"));
}

#[tokio::test]
async fn serves_every_endpoint_over_tls() {
    let pki = TestPki::new();
    let up = FakeUpstream::tls(&pki).await;
    assert!(up.url().starts_with("https://127.0.0.1:"));
    let c = TestClient::trusting(&pki);
    check_all_endpoints(&up, &c).await;
    // ALPN picks h2 with reqwest.
    assert_eq!(up.last_request().unwrap().version, "HTTP/2.0");

    // A client that does not trust the test CA is refused.
    let r = TestClient::new()
        .reqwest()
        .get(format!("{}/v1/models", up.url()))
        .send()
        .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn tls_sni_for_provider_names() {
    let pki = TestPki::new();
    let up = FakeUpstream::tls(&pki).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).unwrap())
        .resolve("api.anthropic.com", up.addr())
        .http1_only()
        .build()
        .unwrap();
    let url = format!("https://api.anthropic.com:{}/v1/messages", up.addr().port());
    let r = c
        .post(url)
        .json(&anthropic_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = up.last_request().unwrap();
    assert_eq!(rec.sni.as_deref(), Some("api.anthropic.com"));
    assert_eq!(rec.version, "HTTP/1.1");
}

#[tokio::test]
async fn records_requests() {
    let up = FakeUpstream::plain().await;
    let mut headers = client::claude_code_headers();
    headers.push(("x-api-key".into(), "sk-test".into()));
    headers.push(("x-multi".into(), "one".into()));
    headers.push(("x-multi".into(), "two".into()));
    let url = format!("{}/claude/v1/messages?beta=true", up.url());
    let body = client::claude_code_request();
    let s = client::stream_sse_full(&url, &headers, &body).await;
    assert_eq!(s.names().last().unwrap(), "message_stop");

    let reqs = up
        .wait_for_requests(1, Duration::from_secs(5))
        .await
        .unwrap();
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/claude/v1/messages");
    assert_eq!(r.query.as_deref(), Some("beta=true"));
    assert_eq!(r.path_and_query(), "/claude/v1/messages?beta=true");
    assert_eq!(r.header("X-API-KEY"), Some("sk-test"));
    assert_eq!(r.header("x-app"), Some("cli"));
    assert_eq!(
        r.header("anthropic-beta"),
        Some(client::bodies::CLAUDE_CODE_BETAS)
    );
    assert_eq!(r.header_all("x-multi"), ["one", "two"]);
    assert_eq!(r.json(), body);
    assert_eq!(r.body.len(), body.to_string().len());
    assert!(up.last_request().unwrap().at >= r.at);

    // Waiting for more than arrived times out with an error.
    assert!(up
        .wait_for_requests(2, Duration::from_millis(100))
        .await
        .is_err());
    up.clear();
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn deltas_and_delay_arrive_spaced() {
    let up = FakeUpstream::plain().await;
    let delay = Duration::from_millis(150);
    up.set_script(
        Script::default()
            .deltas(["Mail bob@exam", "ple.com now"])
            .event_delay(delay),
    );
    let evs = client::stream_sse(
        &format!("{}/v1/messages", up.url()),
        NO_HEADERS,
        &anthropic_body(true),
    )
    .await;
    let deltas: Vec<String> = evs
        .iter()
        .filter(|(_, e)| e.event.as_deref() == Some("content_block_delta"))
        .map(|(_, e)| e.json()["delta"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, ["Mail bob@exam", "ple.com now"]);
    assert_eq!(evs.len(), 7);
    // Spaced on arrival (loose bounds: a loaded CI machine may deliver one event late).
    for w in evs.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= delay / 3, "gap {gap:?}");
    }
    let spread = evs.last().unwrap().0 - evs[0].0;
    assert!(
        spread >= delay * 6 - Duration::from_millis(60),
        "spread {spread:?}"
    );
    let sent = up.event_send_times();
    assert_eq!(sent.len(), 7);
    for w in sent.windows(2) {
        assert!(w[1] - w[0] >= delay);
    }
    // Each event arrived after it was sent, and not much later.
    for ((arrived, _), sent) in evs.iter().zip(&sent) {
        assert!(*arrived >= *sent);
        assert!(*arrived - *sent < Duration::from_secs(1));
    }
    assert_eq!(
        up.sent_events()[2].event.as_deref(),
        Some("content_block_delta")
    );
}

#[tokio::test]
async fn drops_mid_stream() {
    for client in [TestClient::new(), TestClient::h2c()] {
        let up = FakeUpstream::plain().await;
        up.set_script(Script::default().drop_after(3));
        let s = client
            .stream_sse_full(
                &format!("{}/v1/messages", up.url()),
                NO_HEADERS,
                &anthropic_body(true),
            )
            .await;
        assert_eq!(s.status, 200);
        assert_eq!(
            s.names(),
            [
                "message_start",
                "content_block_start",
                "content_block_delta"
            ]
        );
        assert!(s.error.is_some(), "stream should end in an error");
    }
}

#[tokio::test]
async fn gzip_when_accepted() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::text("zipped").gzip());
    let url = format!("{}/v1/messages", up.url());

    let r = client::post_json(
        &url,
        &[("accept-encoding", "gzip, br")],
        &anthropic_body(false),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b]);
    assert_eq!(r.json()["content"][0]["text"], "zipped");

    // Not accepted: identity.
    let r = client::post_json(&url, &[("accept-encoding", "br")], &anthropic_body(false)).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.json()["content"][0]["text"], "zipped");
    let r = client::post_json(
        &url,
        &[("accept-encoding", "gzip;q=0")],
        &anthropic_body(false),
    )
    .await;
    assert_eq!(r.header("content-encoding"), None);

    // Streams are gzipped incrementally and still parse.
    up.set_script(
        Script::default()
            .deltas(["a", "b", "c"])
            .gzip()
            .event_delay(Duration::from_millis(50)),
    );
    let s =
        client::stream_sse_full(&url, &[("accept-encoding", "gzip")], &anthropic_body(true)).await;
    assert_eq!(s.header("content-encoding"), Some("gzip"));
    assert_eq!(s.events.len(), 8);
    assert!(s.error.is_none());
    // Incremental: events arrived spread out, not all at once.
    let spread = s.events.last().unwrap().0 - s.events[0].0;
    assert!(spread >= Duration::from_millis(300), "spread {spread:?}");
}

#[tokio::test]
async fn status_override_queue_and_headers() {
    let up = FakeUpstream::plain().await;
    up.queue_script(
        Script::default()
            .status(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
            )
            .header("retry-after", "1"),
    );
    let url = format!("{}/v1/messages", up.url());
    let r = client::post_json(&url, NO_HEADERS, &anthropic_body(false)).await;
    assert_eq!(r.status, 529);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let r = client::post_json(&url, NO_HEADERS, &anthropic_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("request-id").is_some());
}

#[tokio::test]
async fn hangs_and_response_delay() {
    let up = FakeUpstream::start(UpstreamOptions::plain().script(Script::default().hang())).await;
    let url = format!("{}/v1/messages", up.url());
    let res = tokio::time::timeout(
        Duration::from_millis(300),
        client::post_json(&url, NO_HEADERS, &anthropic_body(false)),
    )
    .await;
    assert!(res.is_err(), "hung upstream answered");
    assert_eq!(up.requests().len(), 1, "hung request is still recorded");

    up.set_script(Script::default().response_delay(Duration::from_millis(200)));
    let t = std::time::Instant::now();
    let r = client::post_json(&url, NO_HEADERS, &anthropic_body(false)).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn token_counts_configurable() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::text("x").tokens(1234, 56));
    let s = client::stream_sse(
        &format!("{}/v1/messages", up.url()),
        NO_HEADERS,
        &anthropic_body(true),
    )
    .await;
    assert_eq!(s[0].1.json()["message"]["usage"]["input_tokens"], 1234);
    assert_eq!(s[4].1.json()["usage"]["output_tokens"], 56);
}

#[test]
fn pki_writes_files() {
    let dir = std::env::temp_dir().join(format!("sluice-testkit-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = TestPki::new();
    let ca = pki.write_ca(&dir);
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let (cert, key) = pki.write_leaf(&dir, &["localhost", "127.0.0.1"]);
    let cert = std::fs::read_to_string(cert).unwrap();
    assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(std::fs::read_to_string(key)
        .unwrap()
        .contains("PRIVATE KEY"));
    std::fs::remove_dir_all(&dir).unwrap();
}
