//! A backend's `provider.<name>.model` sends every request it serves to that
//! model, whatever the client asked for: the body's `model` is rewritten
//! (every other member kept), also when no policy reads the body and when
//! the client compressed it. A body the gateway cannot read as JSON is
//! refused, never forwarded with the client's model.

use crate::bypass_request::{raw as raw_bytes, raw_request};
use crate::common::*;
use crate::hardening::raw;
use sluice_testkit::FakeUpstream;
use std::io::Write;

fn routes(up: &FakeUpstream) -> String {
    let addr = up.addr();
    format!(
        "binds:\n- port: 4060\nroutes:
- name: pinned-openai
  matches:
  - path: {{pathPrefix: /openai}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: gpt, provider: {{openAI: {{model: gpt-served}}}}, hostOverride: 'http://{addr}'}}
- name: pinned-anthropic
  matches:
  - path: {{pathPrefix: /anthropic}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{model: claude-served}}}}, hostOverride: 'http://{addr}'}}
"
    )
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn the_backends_model_replaces_the_clients() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &routes(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let json = [("host", "localhost"), ("content-type", "application/json")];

    let chat = r#"{"model":"gpt-5","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;
    let r = raw(
        gw.addr(4060),
        "POST",
        "/openai/v1/chat/completions",
        &json,
        chat,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap().json();
    assert_eq!(got["model"], "gpt-served", "{got}");
    assert_eq!(got["temperature"], 0.5);
    assert_eq!(got["messages"][0]["content"], "hi");

    // Streaming Messages, and token counting, on the Anthropic backend.
    let msgs = r#"{"model":"claude-opus-4","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = raw(gw.addr(4060), "POST", "/anthropic/v1/messages", &json, msgs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("message_stop"), "{}", r.body);
    let got = up.last_request().unwrap().json();
    assert_eq!(got["model"], "claude-served", "{got}");
    assert_eq!(got["stream"], true);
    let r = raw(
        gw.addr(4060),
        "POST",
        "/anthropic/v1/messages/count_tokens",
        &json,
        msgs,
    )
    .await;
    assert!(r.status < 500, "{}", r.body);
    assert_eq!(up.last_request().unwrap().json()["model"], "claude-served");

    // No model at all: the backend's is put in.
    let r = raw(
        gw.addr(4060),
        "POST",
        "/openai/v1/chat/completions",
        &json,
        r#"{"messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last_request().unwrap().json()["model"], "gpt-served");
}

#[tokio::test]
async fn an_encoded_or_ambiguous_body_cannot_keep_the_clients_model() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &routes(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;

    // Compressed: decoded, rewritten, sent plain.
    let body = gzip(br#"{"model":"gpt-5","messages":[]}"#);
    let req = raw_request(
        "POST",
        "/openai/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &body,
    );
    let (status, text) = raw_bytes(gw.addr(4060), req).await;
    assert_eq!(status, 200, "{text}");
    let seen = up.last_request().unwrap();
    assert!(seen.header("content-encoding").is_none());
    assert_eq!(seen.json()["model"], "gpt-served");

    // Two `model` keys, or an escaped key: a reader could take either one.
    let before = up.requests().len();
    let json = [("host", "localhost"), ("content-type", "application/json")];
    for body in [
        r#"{"model":"gpt-5","messages":[],"model":"gpt-4"}"#,
        r#"{"mod\u0065l":"gpt-5","model":"gpt-4","messages":[]}"#,
        r#"{"model":"gpt-5","messages":[]"#,
    ] {
        let r = raw(
            gw.addr(4060),
            "POST",
            "/openai/v1/chat/completions",
            &json,
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["error"]["message"].is_string(), "{}", r.body);
    }
    assert_eq!(
        up.requests().len(),
        before,
        "nothing ambiguous went upstream"
    );
}

/// `ai.modelAliases` on a route whose model-control layer allows only
/// `claude-haiku-*`: the alias is applied before any policy sees the body,
/// so an allowed-looking alias of a refused model cannot walk the rule.
fn aliased(up: &FakeUpstream) -> String {
    let addr = up.addr();
    format!(
        "binds:\n- port: 4060\nroutes:
- name: control
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    authorization:
      rules:
      - allow: 'llm.requestModel.startsWith(\"claude-haiku-\")'
- name: aliased
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    ai:
      modelAliases:
        fast: claude-haiku-4-5
        claude-haiku-4-5-sneaky: claude-opus-4-1
        claude-haiku-*: claude-haiku-4-5
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
"
    )
}

#[tokio::test]
async fn aliases_rewrite_the_model_before_policies_and_upstream_see_it() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &aliased(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let json = [("host", "localhost"), ("content-type", "application/json")];
    let body = |m: &str| {
        format!(r#"{{"model":"{m}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#)
    };

    // Exact name, then the longest wildcard.
    for (asked, served) in [
        ("fast", "claude-haiku-4-5"),
        ("claude-haiku-3", "claude-haiku-4-5"),
    ] {
        let r = raw(
            gw.addr(4060),
            "POST",
            "/claude/v1/messages",
            &json,
            &body(asked),
        )
        .await;
        assert_eq!(r.status, 200, "{asked}: {}", r.body);
        assert_eq!(
            up.last_request().unwrap().json()["model"],
            served,
            "{asked}"
        );
    }
    gw.wait_for_log(
        "requested_model=\"claude-haiku-3\"",
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();

    // An exact alias beats the wildcard: the name looks allowed, the model is not.
    let before = up.requests().len();
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &json,
        &body("claude-haiku-4-5-sneaky"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert_eq!(up.requests().len(), before, "refused before the upstream");
}
