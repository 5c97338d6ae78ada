//! Policy-level tests against the SDK's mock host: every algorithm family,
//! every rejection, templates, discovery, unknown-kid refresh and the modes.
//! Keys are generated once per test binary with the RustCrypto crates.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sluice_sdk::bindings::sluice::policy::types::HeaderOps as WitOps;
use sluice_sdk::host::mock;
use sluice_sdk::rt::parse_config;
use sluice_sdk::{FetchResponse, ImmediateResponse};

use super::*;

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://idp.test";
const JWKS_URL: &str = "https://idp.test/jwks.json";
const SECRET: &str = "an-hmac-secret-of-reasonable-length";

struct TestKey {
    enc: EncodingKey,
    jwk: Value,
}

struct Keys {
    rsa: TestKey,
    rsa_pub_pem: String,
    rsa2: TestKey,
    p256: TestKey,
    p384: TestKey,
    ed: TestKey,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &str) -> (TestKey, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let der = k.to_pkcs1_der().unwrap();
    let pem = k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig",
        "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())});
    (
        TestKey {
            enc: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk,
        },
        pem,
    )
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let (rsa, rsa_pub_pem) = rsa_key("rsa-1");
        let (rsa2, _) = rsa_key("rsa-2");
        let s256 = p256::SecretKey::random(&mut rand::thread_rng());
        let pt = s256.public_key().to_encoded_point(false);
        let p256 = TestKey {
            enc: EncodingKey::from_ec_der(s256.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "EC", "kid": "p256", "crv": "P-256",
                "x": b64(pt.x().unwrap()), "y": b64(pt.y().unwrap())}),
        };
        let s384 = p384::SecretKey::random(&mut rand::thread_rng());
        let pt = s384.public_key().to_encoded_point(false);
        let p384 = TestKey {
            enc: EncodingKey::from_ec_der(s384.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "EC", "kid": "p384", "crv": "P-384",
                "x": b64(pt.x().unwrap()), "y": b64(pt.y().unwrap())}),
        };
        let sk = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
        let ed = TestKey {
            enc: EncodingKey::from_ed_der(sk.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519",
                "x": b64(sk.verifying_key().as_bytes())}),
        };
        Keys {
            rsa,
            rsa_pub_pem,
            rsa2,
            p256,
            p384,
            ed,
        }
    })
}

fn all_jwks() -> Value {
    let k = keys();
    json!({"keys": [k.rsa.jwk, k.p256.jwk, k.p384.jwk, k.ed.jwk]})
}

fn good_claims() -> Value {
    json!({"iss": ISS, "aud": "agentgateway", "sub": "user-1", "email": "dev@yourcompany.com",
        "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10, "groups": ["a", "b"], "n": 7})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("rsa-1"), &keys().rsa.enc, claims)
}

/// A token with any header, signed by nobody.
fn unsigned(header: Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn policy(cfg: Value) -> JwtAuth {
    mock::reset();
    mock::with(|h| h.now_ms = NOW * 1000);
    let c = parse_config::<JwtAuth>(&cfg.to_string()).unwrap();
    JwtAuth::validate(&c).unwrap();
    JwtAuth::new(c).unwrap()
}

/// agentgateway form with every test key inline, plus the HMAC secret.
fn inline_policy(extra: Value) -> JwtAuth {
    let mut cfg = json!({"issuer": ISS, "audiences": ["agentgateway"],
        "jwks": {"inline": all_jwks().to_string()}, "secret": SECRET,
        "actions": {"onSuccess": {"requestHeaders": [
            {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}]}}});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    policy(json!({ "jwtAuth": cfg }))
}

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "req-1".into(),
        route: "claude-agent".into(),
        backend: "claude-agent".into(),
        provider: Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/claude/v1/messages".into(),
        query: None,
        client_ip: "127.0.0.1".into(),
        model: None,
        streaming: false,
    }
}

fn bearer(token: &str) -> Headers {
    vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("x-authenticated-user".into(), "spoofed@evil".into()),
    ]
}

fn run(p: &JwtAuth, headers: &Headers) -> HeadersAction {
    p.on_request_headers(&ctx(), headers)
}

fn ok(p: &JwtAuth, headers: &Headers) -> WitOps {
    match run(p, headers) {
        HeadersAction::Continue(ops) => ops,
        HeadersAction::Respond(r) => panic!("expected pass, got {} {}", r.status, r.message),
        other => panic!("unexpected {other:?}"),
    }
}

fn denied(p: &JwtAuth, headers: &Headers) -> ImmediateResponse {
    match run(p, headers) {
        HeadersAction::Respond(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A 401 whose message names `check`, with the RFC 6750 challenge and no token.
fn assert_401(p: &JwtAuth, token: &str, check: &str) {
    let r = denied(p, &bearer(token));
    assert_eq!(r.status, 401, "{}", r.message);
    assert_eq!(r.error_type, "authentication_error");
    assert!(
        r.message.contains(check),
        "want `{check}`, got `{}`",
        r.message
    );
    let www = r
        .headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .unwrap();
    assert!(
        www.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{www}"
    );
    assert!(www.contains(check), "{www}");
    if token.len() > 10 {
        assert!(!r.message.contains(token) && !www.contains(token));
        let logs = mock::with(|h| h.logs.clone());
        assert!(logs.iter().all(|(_, l)| !l.contains(token)), "token logged");
    }
    assert!(mock::with(|h| h.attrs.is_empty()), "no claims on failure");
}

fn attr(name: &str) -> Option<String> {
    mock::with(|h| h.attrs.get(name).cloned())
}

#[test]
fn every_algorithm_family_verifies() {
    let k = keys();
    let c = good_claims();
    let cases = [
        sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c),
        sign(Algorithm::RS384, Some("rsa-1"), &k.rsa.enc, &c),
        sign(Algorithm::RS512, Some("rsa-1"), &k.rsa.enc, &c),
        sign(Algorithm::PS256, Some("rsa-1"), &k.rsa.enc, &c),
        sign(Algorithm::PS384, Some("rsa-1"), &k.rsa.enc, &c),
        sign(Algorithm::ES256, Some("p256"), &k.p256.enc, &c),
        sign(Algorithm::ES384, Some("p384"), &k.p384.enc, &c),
        sign(Algorithm::EdDSA, Some("ed"), &k.ed.enc, &c),
        sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            &c,
        ),
        sign(
            Algorithm::HS512,
            None,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            &c,
        ),
        // No kid: every key of the right type is tried.
        sign(Algorithm::ES256, None, &k.p256.enc, &c),
    ];
    for token in cases {
        let p = inline_policy(json!({}));
        ok(&p, &bearer(&token));
        assert_eq!(attr("auth.sub").as_deref(), Some("user-1"), "{token}");
    }
}

#[test]
fn hs256_from_an_inline_oct_jwk() {
    let jwk = json!({"kty": "oct", "kid": "h1", "alg": "HS256", "k": b64(b"jwk-secret-bytes")});
    let p = policy(json!({"jwtAuth": {"jwks": {"inline": {"keys": [jwk]}}}}));
    let t = sign(
        Algorithm::HS256,
        Some("h1"),
        &EncodingKey::from_secret(b"jwk-secret-bytes"),
        &good_claims(),
    );
    ok(&p, &bearer(&t));
    mock::with(|h| h.attrs.clear());
    // The JWK pins alg HS256: HS384 with the same secret is refused.
    let t = sign(
        Algorithm::HS384,
        Some("h1"),
        &EncodingKey::from_secret(b"jwk-secret-bytes"),
        &good_claims(),
    );
    assert_401(&p, &t, "no signing key for algorithm HS384");
}

#[test]
fn success_sets_attrs_and_headers_and_strips_the_credential() {
    let p = inline_policy(json!({}));
    let token = rs256(&good_claims());
    let ops = ok(&p, &bearer(&token));
    assert_eq!(ops.remove, ["authorization"]);
    assert_eq!(
        ops.set,
        [(
            "x-authenticated-user".to_string(),
            "dev@yourcompany.com".to_string()
        )]
    );
    assert_eq!(
        attr("auth.claims.email").as_deref(),
        Some("dev@yourcompany.com")
    );
    assert_eq!(attr("auth.claims.groups").as_deref(), Some(r#"["a","b"]"#));
    assert_eq!(attr("auth.claims.n").as_deref(), Some("7"));
    assert_eq!(attr("auth.iss").as_deref(), Some(ISS));
    let all: Value = serde_json::from_str(&attr("auth.claims").unwrap()).unwrap();
    assert_eq!(all, good_claims());
}

#[test]
fn missing_claim_removes_a_spoofable_header() {
    let p = inline_policy(json!({}));
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("email");
    let ops = ok(&p, &bearer(&rs256(&c)));
    assert!(ops.set.is_empty());
    assert_eq!(ops.remove, ["authorization", "x-authenticated-user"]);
}

/// One engine, one rule: a half-filled value is never sent, a value a header
/// cannot carry is not cleaned into another identity, and both remove the
/// client's copy.
#[test]
fn unrenderable_values_remove_the_header() {
    let p = inline_policy(json!({"actions": {"onSuccess": {"requestHeaders": [
        {"set": {"X-Authenticated-User": "$(request.auth.claims.email)",
                 "X-Info": "user=$(request.auth.claims.phone)"}},
        {"add": {"X-Team": "$(request.header.x-team)"}}]}}}));
    let mut c = good_claims();
    c["email"] = json!("dev@yourcompany.com\r\nx-admin: 1");
    let mut h = bearer(&rs256(&c));
    h.push(("x-info".into(), "spoofed".into()));
    let ops = ok(&p, &h);
    assert!(ops.set.is_empty() && ops.add.is_empty(), "{ops:?}");
    assert_eq!(
        ops.remove,
        ["authorization", "x-authenticated-user", "x-info"]
    );
    c["email"] = json!("");
    let ops = ok(&p, &bearer(&rs256(&c)));
    assert!(ops.remove.contains(&"x-authenticated-user".to_string()));
}

#[test]
fn on_missing_reject_is_a_403() {
    let p = inline_policy(
        json!({"actions": {"onSuccess": {"onMissing": "reject", "requestHeaders": [
        {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}]}}}),
    );
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("email");
    let r = denied(&p, &bearer(&rs256(&c)));
    assert_eq!(r.status, 403);
    assert!(r.message.contains("x-authenticated-user"), "{}", r.message);
    assert!(!r.message.contains("spoofed"));
    let ops = ok(&p, &bearer(&rs256(&good_claims())));
    assert_eq!(
        ops.set,
        [(
            "x-authenticated-user".to_string(),
            "dev@yourcompany.com".to_string()
        )]
    );
}

#[test]
fn templates_in_actions() {
    let p = inline_policy(json!({"actions": {"onSuccess": {"requestHeaders": [
        {"set": {"X-User": "$(request.auth.sub) via $(route.name)", "X-Req": "\\$(request.id)"}},
        {"add": {"X-Team": "$(request.header.x-team)"}},
        {"remove": ["x-internal"]}]}}}));
    let mut h = bearer(&rs256(&good_claims()));
    h.push(("x-team".into(), "blue".into()));
    let ops = ok(&p, &h);
    assert!(ops
        .set
        .contains(&("x-user".into(), "user-1 via claude-agent".into())));
    assert!(ops.set.contains(&("x-req".into(), "req-1".into())));
    assert_eq!(ops.add, [("x-team".to_string(), "blue".to_string())]);
    assert_eq!(ops.remove, ["authorization", "x-internal"]);
    // It is handed only the token's header and the one its template copies.
    assert_eq!(
        p.reads_headers(),
        Some(vec!["authorization".to_string(), "x-team".to_string()])
    );
}

#[test]
fn forward_token_keeps_the_header() {
    let p = inline_policy(json!({"forwardToken": true}));
    let ops = ok(&p, &bearer(&rs256(&good_claims())));
    assert!(ops.remove.is_empty());
}

#[test]
fn custom_header_and_prefix() {
    let p = inline_policy(json!({"header": "X-Gateway-Token", "prefix": "JWT "}));
    let t = rs256(&good_claims());
    let ops = ok(&p, &vec![("x-gateway-token".into(), format!("jwt {t}"))]);
    assert_eq!(ops.remove, ["x-gateway-token"]);
    // Authorization is not looked at (it may carry a provider token).
    let r = denied(&p, &bearer(&t));
    assert_eq!(r.message, "missing bearer token");
    let p = inline_policy(json!({"header": "x-token"}));
    ok(&p, &vec![("x-token".into(), t)]);
    assert_eq!(p.reads_headers(), Some(vec!["x-token".to_string()]));
}

#[test]
fn rejections_name_the_failed_check() {
    let k = keys();
    let p = inline_policy(json!({}));
    let mut c = good_claims();

    // Missing, or another scheme.
    let r = denied(&p, &vec![]);
    assert_eq!(
        (r.status, r.message.as_str()),
        (401, "missing bearer token")
    );
    let r = denied(&p, &vec![("authorization".into(), "Basic dTpw".into())]);
    assert_eq!(r.message, "missing bearer token");

    // alg none, in any spelling, signed or not.
    for alg in ["none", "None", "NONE"] {
        assert_401(
            &p,
            &unsigned(json!({"alg": alg}), &c, ""),
            "unsupported algorithm none",
        );
    }
    assert_401(
        &p,
        &unsigned(json!({"alg": "none"}), &c, "c2ln"),
        "unsupported algorithm none",
    );
    assert_401(
        &p,
        &unsigned(json!({"alg": "HS1\"x"}), &c, "c2ln"),
        "unsupported algorithm HS1x",
    );

    // Algorithm confusion: HS256 keyed with the RSA public key text.
    let pem_secret = EncodingKey::from_secret(k.rsa_pub_pem.as_bytes());
    let t = sign(Algorithm::HS256, Some("rsa-1"), &pem_secret, &c);
    let rsa_only = policy(json!({"jwtAuth": {"jwks": {"inline": {"keys": [k.rsa.jwk]}}}}));
    assert_401(&rsa_only, &t, "no signing key for algorithm HS256");
    // With an HMAC `secret` configured the token only meets that secret.
    let t2 = sign(Algorithm::HS256, None, &pem_secret, &c);
    let p = inline_policy(json!({}));
    assert_401(&p, &t, "signature invalid");
    assert_401(&p, &t2, "signature invalid");
    // ES384 claimed with the P-256 key id: curve mismatch.
    let t = sign(Algorithm::ES256, Some("p256"), &k.p256.enc, &c);
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        b64(json!({"alg": "ES384", "kid": "p256"})
            .to_string()
            .as_bytes()),
        parts[1],
        parts[2]
    );
    assert_401(&p, &forged, "no signing key for algorithm ES384");

    // Bad signatures: another key with the same kid, a tampered payload.
    let t = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa2.enc, &c);
    assert_401(&p, &t, "signature invalid");
    let t = rs256(&c);
    let parts: Vec<&str> = t.split('.').collect();
    c["email"] = json!("admin@yourcompany.com");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_401(&p, &tampered, "signature invalid");

    // Time: expired beyond leeway, within leeway is fine, not yet valid, no exp.
    let mut c = good_claims();
    c["exp"] = json!(NOW - 61);
    assert_401(&p, &rs256(&c), "token expired");
    c["exp"] = json!(NOW - 59);
    ok(&p, &bearer(&rs256(&c)));
    mock::with(|h| h.attrs.clear());
    let mut c = good_claims();
    c["nbf"] = json!(NOW + 120);
    assert_401(&p, &rs256(&c), "token not yet valid");
    c.as_object_mut().unwrap().remove("nbf");
    c.as_object_mut().unwrap().remove("exp");
    assert_401(&p, &rs256(&c), "token has no exp claim");

    // Issuer and audience.
    let mut c = good_claims();
    c["iss"] = json!("https://evil.test");
    assert_401(&p, &rs256(&c), "issuer mismatch");
    let mut c = good_claims();
    c["aud"] = json!(["other", "api"]);
    assert_401(&p, &rs256(&c), "audience mismatch");
    c.as_object_mut().unwrap().remove("aud");
    assert_401(&p, &rs256(&c), "audience mismatch");
    c["aud"] = json!(["other", "agentgateway"]);
    ok(&p, &bearer(&rs256(&c)));
    mock::with(|h| h.attrs.clear());

    // Unknown kid with static keys only, garbage, two tokens, crit.
    let t = sign(Algorithm::RS256, Some("nope"), &k.rsa.enc, &good_claims());
    assert_401(&p, &t, "unknown signing key id");
    assert_401(&p, "abc.def", "malformed token");
    assert_401(&p, "a.b.c", "malformed token");
    let t = rs256(&good_claims());
    let two = vec![
        ("authorization".into(), format!("Bearer {t}")),
        ("authorization".into(), format!("Bearer {t}")),
    ];
    assert_eq!(denied(&p, &two).message, "more than one bearer token");
    let crit = unsigned(
        json!({"alg": "RS256", "crit": ["exp"]}),
        &good_claims(),
        "c2ln",
    );
    assert_401(&p, &crit, "critical");
}

#[test]
fn leeway_and_algorithm_allowlist_are_configurable() {
    let p = inline_policy(json!({"leeway": 0, "algorithms": ["ES256"]}));
    let mut c = good_claims();
    c["exp"] = json!(NOW - 1);
    let t = sign(Algorithm::ES256, Some("p256"), &keys().p256.enc, &c);
    assert_401(&p, &t, "token expired");
    assert_401(&p, &rs256(&good_claims()), "algorithm RS256 is not allowed");
}

#[test]
fn modes() {
    let bad = {
        let mut c = good_claims();
        c["exp"] = json!(NOW - 3600);
        rs256(&c)
    };
    // optional: no token passes, a bad one does not, a good one authenticates.
    let p = inline_policy(json!({"mode": "optional"}));
    let ops = ok(&p, &vec![]);
    assert!(ops.set.is_empty());
    assert_eq!(
        ops.remove,
        ["x-authenticated-user"],
        "no token: the identity header onSuccess sets is not the client's to send"
    );
    assert_401(&p, &bad, "token expired");
    ok(&p, &bearer(&rs256(&good_claims())));
    assert!(attr("auth.sub").is_some());

    // permissive: anything passes; only a valid token brings claims.
    let p = inline_policy(json!({"mode": "permissive"}));
    let ops = ok(&p, &bearer(&bad));
    assert_eq!(
        ops.remove,
        ["x-authenticated-user"],
        "an invalid token is left alone, the identity header is not"
    );
    assert!(mock::with(|h| h.attrs.is_empty()));
    ok(&p, &bearer("not-a-jwt"));
    ok(&p, &vec![]);
    ok(&p, &bearer(&rs256(&good_claims())));
    assert_eq!(
        attr("auth.claims.email").as_deref(),
        Some("dev@yourcompany.com")
    );

    // strict is the default.
    let p = inline_policy(json!({}));
    assert_eq!(denied(&p, &vec![]).status, 401);
}

fn canned(url: &str, status: u16, body: &Value) {
    let body = body.to_string().into_bytes();
    mock::with(|h| {
        h.fetch.insert(
            url.to_owned(),
            FetchResponse {
                status,
                headers: vec![],
                body,
            },
        )
    });
}

fn discovery_policy(extra: Value) -> JwtAuth {
    let mut jwt = json!({"issuer": ISS, "audiences": ["agentgateway"]});
    for (k, v) in extra.as_object().unwrap() {
        jwt[k] = v.clone();
    }
    policy(
        json!({"auth": {"jwt": jwt, "actions": {"onSuccess": {"requestHeaders": [
        {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}]}}}}),
    )
}

#[test]
fn discovery_fetches_the_jwks_uri() {
    let p = discovery_policy(json!({}));
    assert_eq!(p.fetch_hosts(), ["idp.test"]);
    assert_eq!(p.hooks(), Hooks::REQUEST_HEADERS);
    canned(
        "https://idp.test/.well-known/openid-configuration",
        200,
        &json!({"issuer": ISS, "jwks_uri": JWKS_URL}),
    );
    canned(JWKS_URL, 200, &all_jwks());
    let ops = ok(&p, &bearer(&rs256(&good_claims())));
    assert_eq!(ops.set[0].1, "dev@yourcompany.com");
    // Both documents are now cached in host KV: the IdP is not asked again.
    mock::with(|h| h.fetch.clear());
    let t = sign(Algorithm::EdDSA, Some("ed"), &keys().ed.enc, &good_claims());
    ok(&p, &bearer(&t));
    let cached = mock::with(|h| {
        h.kv.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    });
    assert_eq!(
        cached.into_iter().collect::<Vec<_>>(),
        [
            "jwt-auth:doc:https://idp.test/.well-known/openid-configuration",
            "jwt-auth:doc:https://idp.test/jwks.json"
        ]
    );
}

#[test]
fn discovery_problems_are_503_not_401() {
    let disc = "https://idp.test/.well-known/openid-configuration";
    let token = rs256(&good_claims());
    let cases = [
        (
            json!({"issuer": "https://other.test", "jwks_uri": JWKS_URL}),
            "issuer",
        ),
        (
            json!({"issuer": ISS, "jwks_uri": "https://keys.elsewhere.test/jwks"}),
            "jwksHosts",
        ),
        (json!({"issuer": ISS}), "jwks_uri"),
    ];
    for (doc, why) in cases {
        let p = discovery_policy(json!({}));
        canned(disc, 200, &doc);
        canned(JWKS_URL, 200, &all_jwks());
        let r = denied(&p, &bearer(&token));
        assert_eq!(r.status, 503);
        let logs = mock::with(|h| h.logs.clone());
        assert!(logs.iter().any(|(_, l)| l.contains(why)), "{why}: {logs:?}");
    }
    // The jwks_uri host can be allowed explicitly.
    let p = discovery_policy(json!({"jwksHosts": ["keys.elsewhere.test"]}));
    assert_eq!(p.fetch_hosts(), ["idp.test", "keys.elsewhere.test"]);
    canned(
        disc,
        200,
        &json!({"issuer": ISS, "jwks_uri": "https://keys.elsewhere.test/jwks"}),
    );
    canned("https://keys.elsewhere.test/jwks", 200, &all_jwks());
    ok(&p, &bearer(&token));
    // IdP down: 503 in strict, pass in permissive.
    let p = discovery_policy(json!({}));
    canned(disc, 500, &json!({}));
    assert_eq!(denied(&p, &bearer(&token)).status, 503);
    let p = discovery_policy(json!({"mode": "permissive"}));
    ok(&p, &bearer(&token));
}

#[test]
fn unknown_kid_refreshes_once_per_interval() {
    let url_cfg = json!({"jwtAuth": {"issuer": ISS, "audiences": ["agentgateway"],
        "jwks": {"url": JWKS_URL, "refreshInterval": "30s"}}});
    let old = json!({"keys": [keys().rsa.jwk]});
    let new = json!({"keys": [keys().rsa.jwk, keys().rsa2.jwk]});
    let kv_key = format!("jwt-auth:doc:{JWKS_URL}");
    let counter = format!("jwt-auth:refresh:{JWKS_URL}");
    let t2 = sign(
        Algorithm::RS256,
        Some("rsa-2"),
        &keys().rsa2.enc,
        &good_claims(),
    );

    // The cached document is the old one; the IdP has rotated.
    let p = policy(url_cfg.clone());
    assert_eq!(p.fetch_hosts(), ["idp.test"]);
    canned(JWKS_URL, 200, &new);
    mock::with(|h| h.kv.insert(kv_key.clone(), old.to_string().into_bytes()));
    ok(&p, &bearer(&rs256(&good_claims())));
    ok(&p, &bearer(&t2));
    assert_eq!(mock::with(|h| h.counters[&counter]), 1);
    // The fresh document replaced the KV copy.
    let kv: Value = serde_json::from_slice(&mock::with(|h| h.kv[&kv_key].clone())).unwrap();
    assert_eq!(kv, new);

    // Refresh budget spent in this window: unknown kid stays unknown.
    let p = policy(url_cfg);
    canned(JWKS_URL, 200, &new);
    mock::with(|h| {
        h.kv.insert(kv_key.clone(), old.to_string().into_bytes());
        h.counters.insert(counter.clone(), 1);
    });
    assert_401(&p, &t2, "unknown signing key id");
    // A flood of made-up kids does not refetch either.
    let t = sign(
        Algorithm::RS256,
        Some("made-up"),
        &keys().rsa.enc,
        &good_claims(),
    );
    assert_401(&p, &t, "unknown signing key id");
    let kv: Value = serde_json::from_slice(&mock::with(|h| h.kv[&kv_key].clone())).unwrap();
    assert_eq!(kv, old);
}

#[test]
fn secret_still_works_when_remote_keys_are_down() {
    let p = policy(json!({"jwtAuth": {"jwks": {"url": JWKS_URL}, "secret": SECRET}}));
    let t = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &good_claims(),
    );
    ok(&p, &bearer(&t));
    assert_eq!(denied(&p, &bearer(&rs256(&good_claims()))).status, 503);
}

#[test]
fn guide_config_validates_through_the_sdk() {
    let guide = r#"{"auth": {"jwt": {"issuer": "https://auth.yourcompany.com",
        "audiences": ["agentgateway"]}, "actions": {"onSuccess": {"requestHeaders":
        [{"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}]}}}}"#;
    sluice_sdk::rt::validate::<JwtAuth>(guide).unwrap();
    let e =
        sluice_sdk::rt::validate::<JwtAuth>(r#"{"auth": {"jwt": {"issuer": "x", "bogus": 1}}}"#)
            .unwrap_err();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn a_remembered_token_is_checked_again_and_dies_with_its_keys() {
    let p = discovery_policy(json!({}));
    canned(
        "https://idp.test/.well-known/openid-configuration",
        200,
        &json!({"issuer": ISS, "jwks_uri": JWKS_URL}),
    );
    canned(JWKS_URL, 200, &all_jwks());
    let mut claims = good_claims();
    claims["exp"] = json!(NOW + 60);
    let token = rs256(&claims);
    ok(&p, &bearer(&token));
    ok(&p, &bearer(&token)); // answered from the memo
    assert_eq!(p.verified.borrow().len(), 1);

    // Time passes: the remembered token expires like any other.
    mock::with(|h| h.now_ms = (NOW + 3600) * 1000);
    mock::with(|h| h.attrs.clear()); // a new request
    assert_401(&p, &token, "token expired");
    mock::with(|h| h.now_ms = NOW * 1000);
    ok(&p, &bearer(&token));

    // The IdP rotates its keys (the cached document changes): the token
    // verified under the old set is not taken on the memo's word.
    let k = keys();
    let rotated = json!({"keys": [k.p256.jwk, k.ed.jwk]});
    mock::with(|h| {
        h.kv.insert(
            format!("jwt-auth:doc:{JWKS_URL}"),
            rotated.to_string().into_bytes(),
        )
    });
    canned(JWKS_URL, 200, &rotated);
    mock::with(|h| h.attrs.clear()); // a new request
    assert_401(&p, &token, "unknown signing key id");
}

#[test]
fn a_forged_signature_is_never_remembered() {
    let p = inline_policy(json!({}));
    let good = rs256(&good_claims());
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut forged_sig = sig.to_owned().into_bytes();
    forged_sig[10] = if forged_sig[10] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(forged_sig).unwrap());
    mock::with(|h| h.attrs.clear()); // a new request
    assert_401(&p, &forged, "signature invalid");
    assert!(p.verified.borrow().is_empty());
    ok(&p, &bearer(&good));
    mock::with(|h| h.attrs.clear()); // a new request
    assert_401(&p, &forged, "signature invalid");
}
