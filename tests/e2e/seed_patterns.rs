//! The guide's two patterns, verbatim, against a TLS provider.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::bodies::{
    self, claude_code_headers, claude_code_request, codex_headers, codex_request,
};
use sluice_testkit::client::TestClient;

#[tokio::test]
async fn pattern2_claude_code_key_injected_and_headers_preserved() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let mut headers = claude_code_headers();
    headers.push(("x-api-key".into(), "client-side-key".into()));
    let url = gw.url(4060, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let stream = c
        .stream_sse_full(&url, &headers, &claude_code_request())
        .await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.raw)
    );
    assert_eq!(
        stream.names(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(stream.error.is_none());

    let r = p.upstream.last_request().unwrap();
    assert_eq!(r.path_and_query(), "/v1/messages?beta=true");
    assert_eq!(r.sni.as_deref(), Some("api.anthropic.com"));
    assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(r.header("authorization"), None);
    for (k, v) in claude_code_headers() {
        let k = k.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "content-type" | "accept-encoding" | "content-length" | "host" | "connection"
        ) {
            continue;
        }
        assert_eq!(
            r.header(&k),
            Some(v.as_str()),
            "header {k} must reach the upstream unchanged"
        );
    }
    assert!(r.header("x-forwarded-for").is_some());
    assert_eq!(r.json()["model"], claude_code_request()["model"]);
}

#[tokio::test]
async fn pattern2_sdk_bearer_style_gets_anthropic_key_scheme() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[
                ("authorization", "Bearer sdk-key"),
                ("anthropic-version", "2026-10-21"),
            ]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["input_tokens"], 11);
    let up = p.upstream.last_request().unwrap();
    assert_eq!(up.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(up.header("authorization"), None);
    assert_eq!(up.header("anthropic-version"), Some("2026-10-21"));

    // count_tokens goes through too.
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages/count_tokens"),
            &h(&[("x-api-key", "k")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["input_tokens"].is_number());
}

#[tokio::test]
async fn pattern2_openai_endpoints_get_bearer_key() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let auth = h(&[("authorization", "Bearer client-openai-key")]);
    // Chat completions, streaming with usage.
    let body = json!({"model": "gpt-5", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
    let s = c
        .stream_sse_full(&gw.url(4060, "/codex/v1/chat/completions"), &auth, &body)
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.events.last().unwrap().1.data, "[DONE]");
    let up = p.upstream.last_request().unwrap();
    assert_eq!(up.path_and_query(), "/v1/chat/completions");
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(up.sni.as_deref(), Some("api.openai.com"));
    // Responses, not streaming.
    let r = c
        .post_json(
            &gw.url(4060, "/codex/v1/responses"),
            &auth,
            &json!({"model": "gpt-5", "input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["output_tokens"], 7);
    // Embeddings (base64 is the SDK default) and models.
    let r = c
        .post_json(
            &gw.url(4060, "/codex/v1/embeddings"),
            &auth,
            &json!({"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["data"][0]["embedding"].is_string());
    let r = c.get_with(&gw.url(4060, "/codex/v1/models"), &auth).await;
    assert_eq!(r.status, 200);
    assert!(p
        .upstream
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(format!("Bearer {OPENAI_KEY}").as_str())));

    // Token usage from JSON and SSE shows in the metrics.
    let m = c.get(&gw.admin_url("/metrics")).await.text();
    assert!(m.contains("sluice_tokens_total{route=\"codex-agent\",provider=\"openai\",model=\"gpt-5\",direction=\"input\"} 22"), "{m}");
}

#[tokio::test]
async fn pattern1_subscription_tokens_pass_through_unchanged() {
    let p = Provider::tls().await;
    let gw = pattern1(&p).await;
    let c = TestClient::new();
    let mut headers = claude_code_headers();
    headers.push((
        "authorization".into(),
        "Bearer sk-ant-oat01-subscription".into(),
    ));
    let url = gw.url(4001, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let s = c
        .stream_sse_full(&url, &headers, &claude_code_request())
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.names().last().map(String::as_str), Some("message_stop"));
    let up = p.upstream.last_request().unwrap();
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-ant-oat01-subscription")
    );
    assert_eq!(up.header("x-api-key"), None);

    // An API-key client passes through as is too.
    let r = c
        .post_json(
            &gw.url(4001, "/claude/v1/messages"),
            &h(&[("x-api-key", "sk-ant-user")]),
            &json!({"model": "m", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        p.upstream.last_request().unwrap().header("x-api-key"),
        Some("sk-ant-user")
    );
}

#[tokio::test]
async fn pattern1_codex_reaches_chatgpt_backend_api() {
    let p = Provider::tls().await;
    let gw = pattern1(&p).await;
    let c = TestClient::new();
    let mut headers = codex_headers();
    headers.push((
        "authorization".into(),
        "Bearer chatgpt-session-token".into(),
    ));
    let s = c
        .stream_sse_full(
            &gw.url(4001, "/codex/v1/responses"),
            &headers,
            &codex_request(),
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(
        s.names().last().map(String::as_str),
        Some("response.completed")
    );
    let up = p.upstream.last_request().unwrap();
    assert_eq!(up.path_and_query(), "/backend-api/codex/responses");
    assert_eq!(up.sni.as_deref(), Some("chatgpt.com"));
    assert_eq!(
        up.header("authorization"),
        Some("Bearer chatgpt-session-token")
    );
    assert_eq!(up.header("originator"), Some("codex_exec"));
    assert_eq!(up.header("session-id"), Some(bodies::CODEX_SESSION_ID));
}
