//! The `jwt-auth` plugin end to end: the guide's `config/jwt-auth.yaml` layer
//! on top of a plain route, against a real identity provider on loopback that
//! serves OIDC discovery and a JWKS.
//! The IdP, the test keys and the signer live in `sluice_testkit::idp`.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Resp, TestPki};

use crate::common::*;

pub(crate) use sluice_testkit::idp::{public_jwk, sign, Idp, TEST_RSA_KEY_1, TEST_RSA_KEY_2};

pub(crate) const EMAIL: &str = "dev@yourcompany.com";

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": ["agentgateway"], "sub": "user-42", "email": EMAIL,
        "iat": now(), "exp": now() + 600})
}

/// Unpadded base64url, for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token with `alg: none` and no signature.
pub(crate) fn unsigned(claims: &Value) -> String {
    let b64 = |v: Value| b64url(v.to_string().as_bytes());
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    )
}

/// The serving route: `claude-agent` on port 4060, Anthropic-shaped, sent to
/// the plain fake upstream. No `backendAuth`: the layer's JWT is the only
/// credential and must not reach the upstream.
fn route_file(dir: &std::path::Path, upstream: SocketAddr) -> String {
    write(
        dir,
        "route.yaml",
        &format!(
            r#"
binds:
- port: 4060

listeners:
- name: default
  protocol: HTTP

routes:
- name: claude-agent
  matches:
  - path:
      pathPrefix: /claude
  policies:
    urlRewrite:
      path:
        prefix: /
  backends:
  - ai:
      name: claude-agent
      provider:
        anthropic: {{}}
      hostOverride: http://{upstream}
  policies:
    ai:
      routes:
        /v1/messages: messages
        /v1/messages/count_tokens: anthropicTokenCount
        '*': passthrough
"#
        ),
    )
}

/// The guide's layer file with its issuer pointed at `issuer` (everything
/// else verbatim, templates included).
fn layer_for(dir: &std::path::Path, issuer: &str) -> String {
    let guide = std::fs::read_to_string(config("jwt-auth.yaml")).unwrap();
    assert!(guide.contains("https://auth.yourcompany.com"));
    write(
        dir,
        "jwt-auth.yaml",
        &guide.replace("https://auth.yourcompany.com", issuer),
    )
}

async fn messages(gw: &sluice_testkit::Gateway, token: Option<&str>) -> Resp {
    let mut headers = vec![
        ("anthropic-version".to_string(), "2023-06-01".to_string()),
        // A client trying to claim an identity: must be overwritten.
        (
            "x-authenticated-user".to_string(),
            "ceo@yourcompany.com".to_string(),
        ),
    ];
    if let Some(t) = token {
        headers.push(("authorization".into(), format!("Bearer {t}")));
    }
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]});
    TestClient::new()
        .post_json(&gw.url(4060, "/claude/v1/messages"), &headers, &body)
        .await
}

/// A 401 in Anthropic's error shape whose message names `check`, with the
/// RFC 6750 challenge, and no token echoed.
pub(crate) fn assert_401(r: &Resp, check: &str, token: Option<&str>) {
    assert_eq!(r.status, 401, "{check}: {}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(check), "want `{check}` in `{msg}`");
    let www = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(www.starts_with(r#"Bearer error="invalid_token""#), "{www}");
    assert!(www.contains(check), "{www}");
    if let Some(t) = token {
        assert!(!r.text().contains(t) && !www.contains(t), "token echoed");
    }
}

#[tokio::test]
async fn guide_layer_with_discovery_over_http() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = route_file(dir.path(), up.addr());
    let layer = layer_for(dir.path(), &idp.issuer);
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;

    // A valid RS256 token: through, with the user's email as the audit header
    // and the client's JWT removed.
    let token = sign(TEST_RSA_KEY_1, "k1", &claims(&idp.issuer));
    let r = messages(&gw, Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.last_request().unwrap();
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.header_all("x-authenticated-user"), [EMAIL]);
    assert_eq!(got.header("authorization"), None);
    assert!(!got.headers.iter().any(|(_, v)| v.contains(&token)));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(idp.hits("/jwks.json"), 1);

    // Keys are cached: a second request does not go back to the IdP.
    let r = messages(&gw, Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits("/jwks.json"), 1);

    let seen = up.requests().len();
    // Missing.
    assert_401(&messages(&gw, None).await, "missing bearer token", None);
    // Expired (beyond the default 60 s leeway).
    let mut c = claims(&idp.issuer);
    c["exp"] = json!(now() - 3600);
    let t = sign(TEST_RSA_KEY_1, "k1", &c);
    assert_401(&messages(&gw, Some(&t)).await, "token expired", Some(&t));
    // Wrong audience.
    let mut c = claims(&idp.issuer);
    c["aud"] = json!("someone-else");
    let t = sign(TEST_RSA_KEY_1, "k1", &c);
    assert_401(
        &messages(&gw, Some(&t)).await,
        "audience mismatch",
        Some(&t),
    );
    // Wrong issuer.
    let mut c = claims(&idp.issuer);
    c["iss"] = json!("https://evil.example");
    let t = sign(TEST_RSA_KEY_1, "k1", &c);
    assert_401(&messages(&gw, Some(&t)).await, "issuer mismatch", Some(&t));
    // alg none.
    let t = unsigned(&claims(&idp.issuer));
    assert_401(
        &messages(&gw, Some(&t)).await,
        "unsupported algorithm none",
        Some(&t),
    );
    // Signed by a key the IdP does not publish, under the published kid.
    let t = sign(TEST_RSA_KEY_2, "k1", &claims(&idp.issuer));
    assert_401(
        &messages(&gw, Some(&t)).await,
        "signature invalid",
        Some(&t),
    );
    // None of these reached the upstream.
    assert_eq!(up.requests().len(), seen);
    assert!(!gw.logs().contains(&token), "the token was logged");
}

#[tokio::test]
async fn rotated_key_is_picked_up_by_an_unknown_kid_refresh() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = route_file(dir.path(), up.addr());
    let layer = layer_for(dir.path(), &idp.issuer);
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;

    let old = sign(TEST_RSA_KEY_1, "k1", &claims(&idp.issuer));
    assert_eq!(messages(&gw, Some(&old)).await.status, 200);
    assert_eq!(idp.hits("/jwks.json"), 1);

    // The IdP rotates in k2; a k2 token forces one re-fetch and passes.
    *idp.jwks.lock().unwrap() = json!({"keys": [
        public_jwk(TEST_RSA_KEY_1, "k1"), public_jwk(TEST_RSA_KEY_2, "k2")]});
    let new = sign(TEST_RSA_KEY_2, "k2", &claims(&idp.issuer));
    let r = messages(&gw, Some(&new)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits("/jwks.json"), 2);

    // Made-up kids do not hammer the IdP: at most one refresh per interval.
    for i in 0..5 {
        let t = sign(TEST_RSA_KEY_2, &format!("bogus-{i}"), &claims(&idp.issuer));
        assert_401(
            &messages(&gw, Some(&t)).await,
            "unknown signing key id",
            Some(&t),
        );
    }
    assert!(idp.hits("/jwks.json") <= 3, "{}", idp.hits("/jwks.json"));
}

/// The guide's file byte for byte: its issuer `https://auth.yourcompany.com`
/// is pinned to a TLS IdP on loopback, trusted through `SSL_CERT_FILE`.
/// Needs the host's plugin `fetch` to honour `--resolve` and `SSL_CERT_FILE`
/// like the upstream client does.
#[tokio::test]
async fn guide_file_verbatim_with_tls_idp() {
    let pki = TestPki::new();
    let idp = Idp::tls(
        json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]}),
        &pki,
        "auth.yourcompany.com",
    )
    .await;
    assert_eq!(idp.issuer, "https://auth.yourcompany.com");
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path()).display().to_string();
    let route = route_file(dir.path(), up.addr());
    let pins = vec![format!("auth.yourcompany.com:443={}", idp.addr)];
    let gw = gateway(
        &[&route, &config("jwt-auth.yaml")],
        &[4060],
        &pins,
        &[("SSL_CERT_FILE", &ca)],
    )
    .await;

    let token = sign(TEST_RSA_KEY_1, "k1", &claims(&idp.issuer));
    let r = messages(&gw, Some(&token)).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    let got = up.last_request().unwrap();
    assert_eq!(got.header_all("x-authenticated-user"), [EMAIL]);
    assert_eq!(got.header("authorization"), None);
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);

    let mut c = claims(&idp.issuer);
    c["exp"] = json!(now() - 3600);
    let t = sign(TEST_RSA_KEY_1, "k1", &c);
    assert_401(&messages(&gw, Some(&t)).await, "token expired", Some(&t));
    assert_401(&messages(&gw, None).await, "missing bearer token", None);
}
