//! Plugin fetch is granted by the operator: a declared plugin reaches only
//! its `fetchHosts`, and a granted name that resolves to loopback is still
//! refused (only an address listed as such may be private).
//!
//! The plugin is the jwt-auth component declared by the operator (so not
//! bundled: no automatic grant), pointed at a loopback IdP.

use crate::common::*;
use crate::hardening::{claude, raw, route, MSG};
use crate::plugin_jwt_auth::{claims, public_jwk, sign, Idp, TEST_RSA_KEY_1};
use serde_json::json;
use sluice::policy::testing;
use sluice_testkit::FakeUpstream;

fn jwt_auth_wasm() -> std::path::PathBuf {
    testing::workspace_dir()
        .join("target/plugins/wasm32-wasip2/release/sluice_plugin_jwt_auth.wasm")
}

/// Start with the declared jwt-auth granted `grants`, issuer `issuer`;
/// answer one request with a valid token.
async fn status_with(up: &FakeUpstream, issuer: &str, grants: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("jwt-auth.wasm");
    std::fs::copy(jwt_auth_wasm(), &wasm).expect("bundled jwt-auth built");
    let yaml = format!(
        "plugins:\n- name: jwt-auth\n  path: {wasm}\n{grants}binds:\n- port: 4060\nroutes:\n{}",
        route("claude", "/claude", up, false, 0).replace(
            "  policies:\n",
            &format!("  policies:\n    auth:\n      jwt:\n        issuer: {issuer}\n        audiences: [agentgateway]\n"),
        ),
        wasm = wasm.display(),
    );
    let cfg = write(dir.path(), "sluice.yaml", &yaml);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let token = format!("Bearer {}", sign(TEST_RSA_KEY_1, "k1", &claims(issuer)));
    let mut h = claude("localhost");
    h.push(("authorization", &token));
    raw(gw.addr(4060), "POST", "/claude/v1/messages", &h, MSG)
        .await
        .status
}

#[tokio::test]
async fn a_declared_plugin_fetches_only_granted_public_hosts() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let port = idp.issuer.rsplit(':').next().unwrap().to_string();

    // No grant: the IdP is never contacted.
    assert_ne!(status_with(&up, &idp.issuer, "").await, 200);
    assert_eq!(
        idp.hits("/.well-known/openid-configuration") + idp.hits("/jwks.json"),
        0
    );

    // A name that resolves to loopback, even granted, is refused.
    let by_name = format!("http://localhost:{port}");
    let grant = format!("  fetchHosts: ['localhost:{port}']\n");
    assert_ne!(status_with(&up, &by_name, &grant).await, 200);
    assert_eq!(
        idp.hits("/.well-known/openid-configuration") + idp.hits("/jwks.json"),
        0
    );

    // The address itself, listed by the operator: allowed.
    let grant = format!("  fetchHosts: ['127.0.0.1:{port}']\n");
    assert_eq!(status_with(&up, &idp.issuer, &grant).await, 200);
    assert!(idp.hits("/jwks.json") >= 1);
}
