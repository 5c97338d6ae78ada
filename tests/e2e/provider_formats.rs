//! A request in a format its backend's provider does not speak, and the
//! gateway does not translate, is refused in the client's own error shape
//! and never forwarded: an Anthropic token count is not posted to OpenAI,
//! nor an embeddings request to Anthropic. What the backend speaks still
//! passes, and so does what the operator marked `passthrough`.

use crate::common::*;
use crate::hardening::raw;
use sluice_testkit::FakeUpstream;

const MESSAGES: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
const CHAT: &str = r#"{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}"#;

/// One route per provider, both to `up`; `/raw` on the OpenAI backend is
/// marked passthrough for every path.
fn routes(up: &FakeUpstream) -> String {
    let addr = up.addr();
    format!(
        "binds:\n- port: 4060\nroutes:
- name: to-openai
  matches:
  - path: {{pathPrefix: /openai}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: gpt, provider: {{openAI: {{}}}}, hostOverride: 'http://{addr}'}}
- name: to-anthropic
  matches:
  - path: {{pathPrefix: /anthropic}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
- name: raw-openai
  matches:
  - path: {{pathPrefix: /raw}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    ai:
      routes: {{'*': passthrough}}
  backends:
  - ai: {{name: gpt-raw, provider: {{openAI: {{}}}}, hostOverride: 'http://{addr}'}}
"
    )
}

#[tokio::test]
async fn a_format_the_backend_does_not_speak_is_refused_in_the_clients_shape() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &routes(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let anthropic = [
        ("host", "localhost"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ];
    let openai = [("host", "localhost"), ("content-type", "application/json")];

    // Claude Code's token count on an OpenAI backend (its messages are
    // translated, see `translate_messages_chat`), including the odd
    // spellings a path normaliser must see through.
    for path in [
        "/openai/v1/messages/count_tokens",
        "/openai/v1/messages/count_tokens?beta=true",
        "/openai/v1/x/../messages/count_tokens",
        "/openai//v1/messages/count_tokens",
        "/openai/v1/%6Dessages/count_tokens",
    ] {
        let r = raw(gw.addr(4060), "POST", path, &anthropic, MESSAGES).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["type"], "error", "{path}: Anthropic's envelope: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("`openAI` backend") && msg.contains("Anthropic"),
            "{msg}"
        );
    }
    // Embeddings to an Anthropic backend (Chat and Responses are
    // translated, see `translate_chat_messages` and
    // `translate_responses_messages`).
    for path in ["/anthropic/v1/embeddings"] {
        let r = raw(gw.addr(4060), "POST", path, &openai, CHAT).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v = r.json();
        assert!(v.get("type").is_none(), "{path}: OpenAI's envelope: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
    }
    assert_eq!(up.requests().len(), 0, "a refused request was forwarded");

    // What each backend speaks passes, and so does an explicit passthrough.
    for (path, headers, body) in [
        ("/openai/v1/chat/completions", &openai[..], CHAT),
        ("/anthropic/v1/messages", &anthropic[..], MESSAGES),
        ("/raw/v1/messages", &anthropic[..], MESSAGES),
    ] {
        let r = raw(gw.addr(4060), "POST", path, headers, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = raw(gw.addr(4060), "GET", "/openai/v1/models", &openai, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.requests().len(), 4);
}

/// A refused request's body is read away: the client's kept-alive
/// connection serves its next request (it broke as `IncompleteMessage`).
#[tokio::test]
async fn a_refusal_leaves_the_connection_usable() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &routes(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = sluice_testkit::client::TestClient::new();
    // Larger than what the server reads with the head, so it is unread.
    let mut body: serde_json::Value = serde_json::from_str(MESSAGES).unwrap();
    body["messages"][0]["content"] = serde_json::json!("x".repeat(512 * 1024));
    let chat: serde_json::Value = serde_json::from_str(CHAT).unwrap();
    let h = [("content-type", "application/json")];
    for _ in 0..20 {
        let r = c
            .post_json(&gw.url(4060, "/openai/v1/messages/count_tokens"), &h, &body)
            .await;
        assert_eq!(r.status, 400);
        let r = c
            .post_json(&gw.url(4060, "/openai/v1/chat/completions"), &h, &chat)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
