//! The `jwt-auth` plugin end to end: the guide's `config/jwt-auth.yaml` layer
//! on top of a plain route, against a real identity provider on loopback that
//! serves OIDC discovery and a JWKS.
//!
//! Needs in `host/Cargo.toml` `[dev-dependencies]`:
//! `jsonwebtoken = { version = "11", default-features = false, features = ["rust_crypto", "use_pem"] }`
//! (to sign test tokens). The IdP helper uses hyper, hyper-util, http-body-util,
//! bytes, tokio-rustls and rustls, which the gateway already depends on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Resp, TestPki};

use crate::common::*;

/// Throwaway RSA test keys (PKCS#8), generated once for these tests only.
pub(crate) const TEST_RSA_KEY_1: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDWa79UKOxYKHIh\n\
e/hhu1x7YHuK0pnvntc3mlGBBF6L/MXdEchGHaTMRaBpVkHgLtezftvxXqwqUMeu\n\
OB39l6SvwP29vJqqqMJLaidLPPgsJFCtYGzQSoU9BEmruiyTQX2rFYKFTbPObaso\n\
/XAOI7LoxA9lp5gr5Oe9A5hJJQkl+88k+gyaVIrhzJKcVZMvnikLfwoqSsmS2Qjc\n\
Sp9ZRX+mjCaUTJLPenZEjxcPc73gFTiD4JI/lWQfgT5nzf4gl+1ptRVUjGvtBkd7\n\
xbB7cba4XCxjNlWdkR9qB8GN9mSGiBqxczU6BI/+RZ6GAXCiRLfcGd7D2TSNZzyG\n\
RB3AfqANAgMBAAECggEAMVfLSElAlkr8dLMsJgVxU10RIRG05f0mJsAG+IsyXMGX\n\
IPgKIASLW4y8TPFSKI5vCfnsEGAKe5RqVy/HywdeGSnu2n5wE0zRpXwwvbIypCnZ\n\
PQS/FbHIdpGpiHDH+D0ud7Pz/Mw0UBFRvZWQ91gEwGb56hlGvfcn0wnkPhTdRZWA\n\
qOw/LVqr2HVR2REHSZ2U9X5bk7PVNVLPJdShgG+zOGDAo89a/HXcTJaZyGrJ6Y3M\n\
eXKqhITIC3MxV7tBaHFZhvepxuZjrwRVvWaFfkrA83VYocDNSy0GG1+M3MPu247M\n\
nUPCE5MgRXBCfmtCj74GGEuQW3fBbdfg/dUEdsSV8QKBgQDwIV2oFv4HmkhHtD6+\n\
2zW4BOvKqc5tcaPZfQMREV+PxubmOnQrV3IgGF+2zUKUUgN8CFSlHucHRwmX2cZH\n\
TJ7HXjTJRfWY70I2gVYDcBZam1/crCO0f5jRTRjm6A6NhJcPanLuUE5TRU04f1I5\n\
2i22F2gfLVTdiYsn3fx7pWZ2qQKBgQDkl2rcCW4amIZD0lsCfUAtR4fu8txvzOmS\n\
qWtMXjL9ZHZkpCjVIHsjiek/kMP3+azW9484S7tQJzu1egP+kS7UrlnHJ5BwvH+0\n\
ta9xNm8N9ZU3MaEcrKSopd8j54YXKaI2OuaFX4uD4Ne9qX+6c8jtYGpGYaXs8tiY\n\
Ykbup9zQxQKBgQCzEa6t8rdtI/hSwG8qFH5yw/iyIP73To9JWJg42iPRLBp0BZMr\n\
3wIUPRjjUR4dTSucCvpUSD8whiD5REVAVjrxoabrkWgcrA9MZhamaafB2awa+6OE\n\
rsJfEodHajWwAvhDXrZmUSyXnE6BmzDOQ41jBQF4fm2S50cGa9wkuKs4QQKBgFzN\n\
+I1SqsfTapc4XMia7yYy50YkhUhCigWIEM7VY6AqXEKpvwYgBL497FtpO5Z+YCR6\n\
J0Q0wtxcwUoBOoPsj3W7Pymyr1qFvNcx+ANflSC2tpjM5lsM4GCzzu71vSPEPF4F\n\
9bbqPmsRKqWOnhOllEqDHUJrvICBa1waci/MKML9AoGBAOp2U4WTiz2m+rjWMBNW\n\
uncyQFaAXHpr58q2JxzmX41ITjeNkt6wx36eyR1rPBVJkdcWdvLUDLLLKu3WWd+r\n\
usFZnRi7gWknYAyIRPMPIlzHaLDzQio/DJM1UyKbxN55hI+/b7jZCwrwj1NflVwX\n\
+ZPN2HPy9ALK4JdDtcsrqQ5F\n\
-----END PRIVATE KEY-----\n";
pub(crate) const TEST_RSA_KEY_2: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDevGkFWT13zDj1\n\
+X/NHarg1g3BiQixnDMkpNljA8wyB0TF4jq8Bo4T+FpgpiKew/iBS4OkvckLYiNv\n\
Zv/GolG4hu0AOjplzM4ssVKwqF4E17V8iRC7rubVGDUz69xX6YyJ+m7711p2n3EY\n\
MZQr1G9nTDlE59yjelIP9zT656n78VZa2tM35dGoYF2MqmHGNW4Abgm1mFhMtwON\n\
Dnx6ZaRWk9apWk1Pw2TUBbvHwlcRNQoQAT11tigp+CaCH1G7SaM1Lm6FI0TfDJwy\n\
wYdRp9OP2+RtUNWmsduA2CWc+XaPOK7jXqufvplXsrX3K03eRJpUOGd4WZycoqOH\n\
sLV+XOzNAgMBAAECggEAEMVB6Q+vk6ISVd7r0v9dWuFzFrPhLjJTHXq2DYD/MnMe\n\
qAGhJ4Ac2X8VGvrXV3ns75tGdbR+ezdv8JbiQkv9eDXciWxY8kpJ6c6OKdP7hETT\n\
muVdF6yTH89bTiX/qLTiio8LJTYxTwYxRz+QZv5vRulT1I7aq4ptvFsCJ7Qitd/x\n\
dAjzJSPgXj/LPk1IiC417SKawnZA5mHFqkCEat2jrmZztJhpOoZKM0sGJrboYxLT\n\
Y6nvbTbNAh4FN17NVVsUcMFtrMcWRA2ekQhcKJlhmpqTFKdv6xAKIGu1c9F1NRc1\n\
l8UdnfG0P7TowvDgQU+uTAUfJa0PW+d0ivIqxRoQEQKBgQD/r/YvV/9dTx+THbri\n\
/PNvB79Rt4NeRXcjUWHpEsiovb52GyILpck3u1Z4kLzEBTlyGGWveXkYKeOxTtaF\n\
O84C1VHBq+SFmvbY7Vm8AfdDHvkMlEjE/5+ZbUlhAGGXDjQiUNmsntKbV4NK6uyK\n\
vraXRwomiZ69n6+omBSFwoeWBQKBgQDfAiI84459/eJ5Vyxb0jhrLKNqF4CVCaCG\n\
dEPtAcVDz7cZlO6fXKZTt2y0MkWQCewpTvtlxVaMv8YM5uqnFacp/mMSrXiXNSZO\n\
YOEoGaEKq4192chnrkJDTDFdhoXr3++UiXSo7qTAX1MCXM6dPc3K1FnMRAkGoD/4\n\
6vS72L0uKQKBgQDcWSmBbYWuRUUBxOpNOg8UjYmsg8lb0eO1dSo68awp97OPFx0F\n\
Cq/ZLsJ7jsiO6a2zDSF80uOwFlGaeUXYdky5Flup21hKZ9z537qoks0jdCrPU29P\n\
DrjdQViuluSDiIMXW7Pr1sfLheSpCMInY+n5fwhZY9qAsoBwe/ebuqScfQKBgQCn\n\
wCElED+Vgq8je3GAuId8Bx39piQw+AbqXPbjh5ttwQgIlEFTWww6mRWKDu7IxM4C\n\
3Mi661CJm5BNED6e5OjT6+l2mUrG41InTzTPR0gekKFkc7gOVcS+fsf7hD+lCNRd\n\
NXCtyqXfl1UHx+wb1+u/kTDjOKJZe53jjkn+K7FS0QKBgA8cMEjUI5RXWo7IkvY0\n\
cO0a4BvKA//9d903yL4HFaNhKDrBnq6jFLuEQTp5xztj1pbnDZ7rFpoKh9ZwyJaY\n\
YQQK6yHGem5ecgFffKuu97QyjlV9me12iL7r86fT0zwm7cprg8ozrMQucoxGFBh1\n\
0pvkeYbNc3kpjSHjoMiqr1qy\n\
-----END PRIVATE KEY-----\n";

pub(crate) const EMAIL: &str = "dev@yourcompany.com";

pub(crate) fn encoding_key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

/// The public JWK of `pem`, with `kid`.
pub(crate) fn public_jwk(pem: &str, kid: &str) -> Value {
    let jwk = Jwk::from_encoding_key(&encoding_key(pem), Algorithm::RS256).unwrap();
    let mut v = serde_json::to_value(jwk).unwrap();
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

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

pub(crate) fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &encoding_key(pem)).unwrap()
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

/// A tiny identity provider: `/.well-known/openid-configuration` pointing at
/// `/jwks.json` on the same issuer, over plain HTTP or TLS. The JWKS can be
/// swapped (key rotation) and every request path is recorded.
pub(crate) struct Idp {
    pub(crate) addr: SocketAddr,
    pub(crate) issuer: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    /// Plain HTTP; the issuer is `http://127.0.0.1:PORT`.
    pub(crate) async fn plain(jwks: Value) -> Idp {
        Idp::start(jwks, None, None).await
    }

    /// TLS with a leaf for `host` from `pki`; the issuer is `https://{host}`.
    pub(crate) async fn tls(jwks: Value, pki: &TestPki, host: &str) -> Idp {
        Idp::start(jwks, Some(pki.server_config(&[host])), Some(host)).await
    }

    async fn start(jwks: Value, tls: Option<Arc<rustls::ServerConfig>>, host: Option<&str>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = match host {
            Some(h) => format!("https://{h}"),
            None => format!("http://{addr}"),
        };
        let jwks = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let (iss, keys, log) = (issuer.clone(), jwks.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (iss, keys, log) = (iss.clone(), keys.clone(), log.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_owned();
                        log.lock().unwrap().push(path.clone());
                        let (status, body) = match path.as_str() {
                            "/.well-known/openid-configuration" => (
                                200,
                                json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks.json"),
                                    "id_token_signing_alg_values_supported": ["RS256"]}),
                            ),
                            "/jwks.json" => (200, keys.lock().unwrap().clone()),
                            _ => (404, json!({"error": "not found"})),
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap();
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Idp {
            addr,
            issuer,
            jwks,
            hits,
            task,
        }
    }

    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
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
