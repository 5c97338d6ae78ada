//! `backendAuth.key` with agentgateway's `location`: the key goes in the
//! named header after its prefix, and no credential the client sent
//! reaches the upstream.

use crate::common::*;
use crate::hardening::raw;
use sluice_testkit::FakeUpstream;

#[tokio::test]
async fn a_key_goes_where_its_location_says_and_the_clients_does_not() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: custom-auth
  policies:
    backendAuth:
      key:
        value: $UPSTREAM_KEY
        location: {{header: {{name: X-Upstream-Key, prefix: 'Token '}}}}
  backends:
  - ai: {{name: gpt, provider: {{openAI: {{}}}}, hostOverride: 'http://{}'}}
",
        up.addr()
    );
    let cfg = write(dir.path(), "auth.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[("UPSTREAM_KEY", "sk-upstream")]).await;
    let r = raw(
        gw.addr(4060),
        "POST",
        "/v1/chat/completions",
        &[
            ("host", "localhost"),
            ("content-type", "application/json"),
            ("authorization", "Bearer client-token"),
            ("x-api-key", "client-key"),
            ("x-upstream-key", "Token forged"),
        ],
        r#"{"model":"gpt-5","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header_all("x-upstream-key"), ["Token sk-upstream"]);
    assert!(seen.header("authorization").is_none() && seen.header("x-api-key").is_none());
    assert!(!gw.logs().contains("sk-upstream"), "the key was logged");
}
