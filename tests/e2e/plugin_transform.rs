//! The `transform` plugin end to end: the guide's `config/transformations.yaml`
//! as a policy layer over a serving route, and the production route's body
//! transformation on Claude Code's real request body.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::bodies::{self, claude_code_headers, claude_code_request};
use sluice_testkit::client::TestClient;
use sluice_testkit::FakeUpstream;

/// A serving route for `/claude` in front of `upstream` (plain HTTP), on port
/// 4060, with `policies` (YAML lines already indented for `  policies:`).
fn serving_route(upstream: &FakeUpstream, policies: &str) -> String {
    format!(
        r#"binds:
- port: 4060
routes:
- name: claude-agent
  matches:
  - path:
      pathPrefix: /claude
  policies:
    urlRewrite:
      path:
        prefix: /
    ai:
      routes:
        /v1/messages: messages
        /v1/messages/count_tokens: anthropicTokenCount
        '*': passthrough
{policies}
  backends:
  - ai:
      name: claude-agent
      provider:
        anthropic: {{}}
      hostOverride: http://{}
"#,
        upstream.addr()
    )
}

/// The `transformations:` block of the guide's production route, verbatim
/// (same indentation as in the file: under a route's `  policies:`).
fn production_transformations_block() -> String {
    let text = std::fs::read_to_string(config("production-route.yaml")).unwrap();
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line == "    transformations:" {
            inside = true;
        } else if inside {
            let indent = line.len() - line.trim_start().len();
            if !line.trim().is_empty() && indent <= 4 {
                break;
            }
        }
        if inside {
            out.push(line);
        }
    }
    assert!(
        out.len() > 3 && out.iter().any(|l| l.contains("filterKeys")),
        "transformations block not found in production-route.yaml: {out:?}"
    );
    out.join("\n")
}

/// The JSON text a client sends for `body` (`Value::to_string`), with the
/// top-level member `key` cut out and nothing else changed.
fn without_member(body: &Value, key: &str) -> String {
    let text = body.to_string();
    let member = format!("{}:{}", json!(key), body[key]);
    assert!(text.contains(&member), "{member} not in {text}");
    if text.contains(&format!("{member},")) {
        text.replacen(&format!("{member},"), "", 1)
    } else {
        text.replacen(&format!(",{member}"), "", 1)
    }
}

#[tokio::test]
async fn guide_transformations_layer_sets_request_and_response_headers() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // A second route (`/other`) the layer does not cover.
    let other = format!(
        "- name: other\n  matches:\n  - path:\n      pathPrefix: /other\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n  backends:\n  - ai:\n      name: other\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{}\n",
        up.addr()
    );
    let route = write(
        dir.path(),
        "route.yaml",
        &format!("{}{other}", serving_route(&up, "")),
    );
    let gw = gateway(
        &[&route, &config("transformations.yaml")],
        &[4060],
        &[],
        &[],
    )
    .await;

    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // responseHeaderModifier.add
    assert_eq!(r.header("x-gateway-processed"), Some("true"));

    let upr = up.last_request().unwrap();
    assert_eq!(
        upr.path_and_query(),
        "/v1/messages",
        "the layer's urlRewrite (prefix /) and the route's must strip /claude once"
    );
    // requestHeaderModifier.set
    assert_eq!(upr.header("x-gateway-version"), Some("1.2"));
    let ids = upr.header_all("x-request-id");
    assert_eq!(ids.len(), 1, "set replaces: {ids:?}");
    assert!(!ids[0].is_empty());
    assert!(
        !ids[0].contains('$') && !ids[0].contains('\\'),
        "the guide's \\\\$(request.id) is a template, not literal text: {:?}",
        ids[0]
    );
    // The body was not asked for (no body expression) and is untouched.
    assert_eq!(upr.json(), body);

    // Two requests get two different ids.
    let r2 = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body,
        )
        .await;
    assert_eq!(r2.status, 200);
    let second = up.last_request().unwrap();
    assert_ne!(second.header("x-request-id"), Some(ids[0]));

    // Requests the layer does not match are left alone.
    let r3 = TestClient::new()
        .post_json(
            &gw.url(4060, "/other/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body,
        )
        .await;
    assert_eq!(r3.status, 200, "{}", r3.text());
    assert_eq!(r3.header("x-gateway-processed"), None);
    let third = up.last_request().unwrap();
    assert_eq!(third.path_and_query(), "/v1/messages");
    assert_eq!(third.header("x-gateway-version"), None);
}

#[tokio::test]
async fn production_body_transformation_strips_context_management_only() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = write(
        dir.path(),
        "route.yaml",
        &serving_route(&up, &production_transformations_block()),
    );
    let gw = gateway(&[&route], &[4060], &[], &[]).await;

    let sent = claude_code_request();
    assert!(sent.get("context_management").is_some());
    let sent_text = sent.to_string();
    assert!(sent_text.len() > 40_000, "{}", sent_text.len());

    let mut headers = claude_code_headers();
    headers.push(("x-api-key".into(), "client-key".into()));
    let url = gw.url(4060, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let stream = TestClient::new()
        .stream_sse_full(&url, &headers, &sent)
        .await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.raw)
    );
    assert!(stream.error.is_none());
    assert_eq!(
        stream.names().last().map(String::as_str),
        Some("message_stop")
    );

    let upr = up.last_request().unwrap();
    assert_eq!(upr.path_and_query(), "/v1/messages?beta=true");
    let got_text = upr.body_text();
    let got: Value = serde_json::from_str(&got_text).unwrap();

    // Same in meaning, minus context_management.
    let mut want = sent.clone();
    want.as_object_mut().unwrap().remove("context_management");
    assert_eq!(got, want);

    // Same in form: the member removed from the text the client sent, every
    // other member (order, nested values) byte for byte.
    let expected_text = without_member(&sent, "context_management");
    assert_ne!(expected_text, sent_text);
    assert_eq!(
        got_text, expected_text,
        "key order or nested values changed"
    );
    let cl: usize = upr.header("content-length").unwrap().parse().unwrap();
    assert_eq!(cl, got_text.len());

    // The guide's headers block: the claim is missing (no JWT here), so
    // X-Authenticated-User is not sent; the literal header is.
    assert_eq!(upr.header("x-gateway-source"), Some("claude-code"));
    assert_eq!(upr.header("x-authenticated-user"), None);

    // count_tokens goes through the same transformation.
    let small = json!({"model": "m", "context_management": {"edits": []}, "messages": []});
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages/count_tokens"),
            &h(&[("x-api-key", "k")]),
            &small,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let upr = up.last_request().unwrap();
    assert_eq!(
        upr.body_text(),
        without_member(&small, "context_management")
    );

    // A request without a body (GET passthrough) is not touched.
    let r = TestClient::new()
        .get_with(
            &gw.url(4060, "/claude/v1/models"),
            &h(&[("x-api-key", "k")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// On a JSON kind the host's strict-JSON rule refuses the body (400) before the
/// transformation sees it; nothing goes upstream either way.
#[tokio::test]
async fn body_that_is_not_json_is_refused_before_the_transformation() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = write(
        dir.path(),
        "route.yaml",
        &serving_route(&up, &production_transformations_block()),
    );
    let gw = gateway(&[&route], &[4060], &[], &[]).await;
    let before = up.requests().len();
    let r = TestClient::new()
        .post_bytes(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            b"this is not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let j = r.json();
    assert_eq!(j["type"], "error");
    assert_eq!(j["error"]["type"], "invalid_request_error");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("request body is not valid JSON"),
        "{j}"
    );
    assert_eq!(up.requests().len(), before, "nothing may go upstream");
}

#[test]
fn bad_cel_is_rejected_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yaml",
        r#"binds:
- port: 4060
routes:
- name: r
  policies:
    transformations:
      request:
        body: toJson(json(request.body).filterKeys(k, k != "x")
  backends:
  - ai:
      name: r
      provider:
        anthropic: {}
"#,
    );
    let out = sluice_testkit::gateway::run(
        std::path::Path::new(BIN),
        &["validate", "--config", &f],
        &[],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("transformations.request.body"), "{text}");
}
