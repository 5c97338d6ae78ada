//! Failures come back with the right status in the provider's own error JSON.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Script};

#[tokio::test]
async fn unknown_path_is_404_naming_the_path() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let r = c
        .post_json(
            &gw.url(4060, "/nowhere/v1/messages"),
            &h(&[("anthropic-version", "2023-06-01")]),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nowhere/v1/messages"));
    let r = c.get(&gw.url(4060, "/v2/whatever")).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v2/whatever"));
}

#[tokio::test]
async fn refused_connection_is_502_in_provider_shape() {
    // Pin the providers to a port nothing listens on.
    let closed = sluice_testkit::ClosedPort::new();
    let gw = gateway(
        &[&config("api-key-routing.yaml")],
        &[4060],
        &pins_to(closed.addr()),
        &[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("OPENAI_API_KEY", OPENAI_KEY),
        ],
    )
    .await;
    let c = TestClient::new();
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "api_error");
    let r = c
        .post_json(
            &gw.url(4060, "/codex/v1/responses"),
            &h(&[("authorization", "Bearer k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 502);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert!(!gw.logs().contains(ANTHROPIC_KEY));
}

#[tokio::test]
async fn untrusted_tls_is_502() {
    // The upstream's CA is not trusted (no SSL_CERT_FILE).
    let p = Provider::tls().await;
    let gw = gateway(
        &[&config("api-key-routing.yaml")],
        &[4060],
        &p.pins(),
        &[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("OPENAI_API_KEY", OPENAI_KEY),
        ],
    )
    .await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(p.upstream.requests().is_empty());
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_route_timeout() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::default().hang());
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "timeout.yaml",
        &format!(
            r#"
binds:
- port: 4100
routes:
- name: slow
  matches:
  - path:
      pathPrefix: /claude
  policies:
    urlRewrite:
      path:
        prefix: /
    timeout:
      requestTimeout: 1s
  backends:
  - ai:
      name: slow
      provider:
        anthropic: {{}}
      hostOverride: {}
"#,
            up.addr()
        ),
    );
    let gw = gateway(&[&cfg], &[4100], &[], &[]).await;
    let started = std::time::Instant::now();
    let r = TestClient::new()
        .post_json(
            &gw.url(4100, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let p = Provider::tls().await;
    let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    p.upstream.set_script(Script::default().status(529, body));
    let gw = pattern2(&p).await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 529);
    assert_eq!(r.text(), body);
}
