//! What the gateway forwards, and over which protocols it listens.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::FakeUpstream;

#[tokio::test]
async fn hop_by_hop_dropped_query_kept_forwarded_for_appended() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/messages?beta=true&x=1%202"),
            &h(&[
                ("x-api-key", "k"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "secret-hop"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-custom-end-to-end", "kept"),
            ]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let up = p.upstream.last_request().unwrap();
    assert_eq!(up.path_and_query(), "/v1/messages?beta=true&x=1%202");
    assert_eq!(up.header("x-hop"), None);
    assert_eq!(up.header("x-custom-end-to-end"), Some("kept"));
    assert_eq!(up.header("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert!(up.header("x-request-id").is_some());
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let p = Provider::tls().await;
    let gw = pattern2(&p).await;
    let r = TestClient::h2c()
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn tls_listener_and_plain_backend() {
    let pki = sluice_testkit::TestPki::new();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.write_leaf(dir.path(), &["localhost", "127.0.0.1"]);
    let cfg = write(
        dir.path(),
        "tls.yaml",
        &format!(
            r#"
binds:
- port: 4443
  listeners:
  - name: secure
    protocol: HTTPS
    tls:
      cert: {}
      key: {}
routes:
- name: openai
  backends:
  - ai:
      name: openai
      provider:
        openAI: {{}}
      hostOverride: http://{}
"#,
            cert.display(),
            key.display(),
            up.addr()
        ),
    );
    let gw = gateway(&[&cfg], &[4443], &[], &[]).await;
    let url = gw.url(4443, "/v1/chat/completions");
    assert!(url.starts_with("https://"), "{url}");
    let r = TestClient::trusting(&pki)
        .post_json(
            &url,
            &h(&[("authorization", "Bearer x")]),
            &json!({"model": "gpt-5", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.last_request().unwrap().path_and_query(),
        "/v1/chat/completions"
    );
}

#[tokio::test]
async fn backend_tls_root_trusts_a_private_ca() {
    let p = Provider::tls().await;
    let cfg = p.write(
        "ca.yaml",
        &format!(
            r#"
binds:
- port: 4200
routes:
- name: private
  policies:
    backendTLS:
      root: {}
  backends:
  - ai:
      name: private
      provider:
        anthropic: {{}}
"#,
            p.ca.display()
        ),
    );
    // No SSL_CERT_FILE: only the route's backendTLS.root makes the CA trusted.
    let gw = gateway(&[&cfg], &[4200], &p.pins(), &[]).await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4200, "/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
