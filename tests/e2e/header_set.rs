//! The set rule through the real binary (issue 20, item 1): a header the
//! config tells the gateway to `set` never reaches the upstream (or, on the
//! response side, the client) carrying the value the client (or the
//! upstream) sent, whatever the template or CEL expression yields. A value
//! that cannot be computed removes the header; `onMissing: reject` refuses
//! instead, in the client's error shape.

use serde_json::{json, Value};
use sluice_testkit::client::bodies::claude_code_request;
use sluice_testkit::client::TestClient;
use sluice_testkit::gateway::run;
use sluice_testkit::{FakeUpstream, Gateway, Resp, Script};
use std::path::Path;

use crate::common::*;
use crate::hardening::raw;
use crate::plugin_jwt_auth::{claims, public_jwk, sign, Idp, EMAIL, TEST_RSA_KEY_1};

const SPOOF: &str = "ceo@yourcompany.com";
const IDENTITY: &str = "x-authenticated-user";

fn small() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]})
}

/// Anthropic-shaped headers plus `extra`.
fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = h(&[("anthropic-version", "2023-06-01"), ("x-api-key", "k")]);
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    h
}

/// A policy layer over `/claude` (served by `common::serving`) with
/// `policies` (YAML lines already indented for `  policies:`).
fn layer(dir: &Path, name: &str, policies: &str) -> String {
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n{policies}\n"
        ),
    )
}

async fn serving_with(up: &FakeUpstream, policies: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let route = serving(dir.path(), up.addr());
    let layer = layer(dir.path(), "set-layer", policies);
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;
    (gw, dir)
}

async fn post(gw: &Gateway, path: &str, extra: &[(&str, &str)]) -> Resp {
    TestClient::new()
        .post_json(&gw.url(4060, path), &headers(extra), &small())
        .await
}

/// The request as a raw HTTP/1.1 exchange: the client's identity twice, in
/// three spellings (reqwest would lowercase every name).
async fn spoof_twice_raw(gw: &Gateway, token: Option<&str>) -> u16 {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut hs = vec![
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("X-Authenticated-User", SPOOF),
        ("x-AUTHENTICATED-user", "cfo@yourcompany.com"),
        ("x-authenticated-user", "root@yourcompany.com"),
    ];
    if let Some(b) = &bearer {
        hs.push(("authorization", b));
    }
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &hs,
        &small().to_string(),
    )
    .await;
    r.status
}

/// No value the client sent under the identity header reached `up`.
fn assert_no_identity(up: &FakeUpstream, why: &str) {
    let got = up.last_request().expect("the request reached the upstream");
    assert_eq!(
        got.header_all(IDENTITY),
        Vec::<&str>::new(),
        "{why}: the upstream got the client's identity"
    );
}

/// The guide's production route, verbatim, with a token that has no `email`
/// (a service account of the same IdP): the client's `X-Authenticated-User`
/// must not pass as the audited identity, however it is spelled or repeated.
#[tokio::test]
async fn production_route_token_without_email_cannot_pick_its_identity() {
    let p = Provider::tls().await;
    let idp = crate::production_route::guide_idp(&p).await;
    let gw = crate::production_route::start(&p, &idp).await;
    let url = gw.url(4060, "/claude/v1/messages");
    let mut c = claims(&idp.issuer);
    c.as_object_mut().unwrap().remove("email");
    let bot = sign(TEST_RSA_KEY_1, "k1", &c);

    let mut h = crate::production_route::auth(&bot);
    h.push((IDENTITY.into(), SPOOF.into()));
    let r = TestClient::new()
        .post_json(&url, &h, &claude_code_request())
        .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert_no_identity(&p.upstream, "one client header");
    let got = p.upstream.last_request().unwrap();
    assert_eq!(got.header("x-gateway-source"), Some("claude-code"));

    // Duplicate lines and case variants, as written on the wire.
    assert_eq!(spoof_twice_raw(&gw, Some(&bot)).await, 200);
    assert_eq!(p.upstream.requests().len(), 2);
    assert_no_identity(&p.upstream, "three client lines");

    // A token with `email`: exactly the token's identity, once.
    let user = sign(TEST_RSA_KEY_1, "k1", &claims(&idp.issuer));
    assert_eq!(spoof_twice_raw(&gw, Some(&user)).await, 200);
    let got = p.upstream.last_request().unwrap();
    assert_eq!(got.header_all(IDENTITY), [EMAIL]);
    assert!(!gw.logs().contains(&bot), "the JWT is never logged");
}

/// `requestHeaderModifier` and `responseHeaderModifier` with templates that
/// cannot render: the client's (request) and the upstream's (response)
/// values are removed, not passed on. A failed `add` adds nothing.
#[tokio::test]
async fn header_modifiers_remove_what_they_cannot_render() {
    let up = FakeUpstream::plain().await;
    let (gw, _dir) = serving_with(
        &up,
        r#"    requestHeaderModifier:
      set:
        X-Authenticated-User: \\$(request.auth.claims.email)
        X-Team: team=$(request.header.x-team-id)
        X-Gateway-Version: "1.2"
      add:
        X-Audit: $(request.auth.sub)
    responseHeaderModifier:
      set:
        X-Served-For: $(request.auth.claims.email)
      add:
        X-Gateway-Processed: "true""#,
    )
    .await;
    up.set_script(
        Script::default()
            .header("x-served-for", "upstream-chose-this")
            .header("x-gateway-processed", "upstream"),
    );
    let r = post(
        &gw,
        "/claude/v1/messages",
        &[
            (IDENTITY, SPOOF),
            ("x-team", "admins"),
            ("x-audit", "client-audit"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert_no_identity(&up, "requestHeaderModifier");
    let got = up.last_request().unwrap();
    assert_eq!(
        got.header_all("x-team"),
        Vec::<&str>::new(),
        "half-filled or client's"
    );
    assert_eq!(got.header("x-gateway-version"), Some("1.2"));
    assert_eq!(
        got.header_all("x-audit"),
        ["client-audit"],
        "add appends; an add with no value adds nothing (not an empty line)"
    );
    assert_eq!(
        r.header("x-served-for"),
        None,
        "the upstream's value of a header the route sets"
    );
    let processed: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "x-gateway-processed")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        processed,
        ["upstream", "true"],
        "add appends on responses too"
    );
}

/// A CEL header expression that fails (agentgateway's flat form), on both
/// sides: the header is removed, the request still served.
#[tokio::test]
async fn cel_header_expression_that_fails_removes_the_header() {
    let up = FakeUpstream::plain().await;
    let (gw, _dir) = serving_with(
        &up,
        r#"    transformations:
      request:
        set:
          X-Authenticated-User: 'request.headers["x-sso-user"] + "@yourcompany.com"'
          X-Gateway-Source: '"claude-code"'
      response:
        set:
          X-Upstream-Region: 'string(1 / 0)'"#,
    )
    .await;
    up.set_script(Script::default().header("x-upstream-region", "eu-west"));
    let r = post(&gw, "/claude/v1/messages", &[(IDENTITY, SPOOF)]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    assert_no_identity(&up, "failed CEL expression");
    let got = up.last_request().unwrap();
    assert_eq!(got.header("x-gateway-source"), Some("claude-code"));
    assert_eq!(
        r.header("x-upstream-region"),
        None,
        "upstream's value removed"
    );
}

fn jwt_layer(dir: &Path, issuer: &str, extra: &str) -> String {
    let guide = std::fs::read_to_string(config("jwt-auth.yaml")).unwrap();
    assert!(guide.contains("https://auth.yourcompany.com"));
    let text = guide.replace("https://auth.yourcompany.com", issuer);
    let text = match extra {
        "" => text,
        extra => text.replace(
            "        onSuccess:\n",
            &format!("        onSuccess:\n{extra}"),
        ),
    };
    write(dir, "jwt-auth.yaml", &text)
}

async fn jwt_gateway(up: &FakeUpstream, idp: &Idp, extra: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let route = serving(dir.path(), up.addr());
    let layer = jwt_layer(dir.path(), &idp.issuer, extra);
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;
    (gw, dir)
}

/// The guide's jwt-auth layer verbatim: a claim that cannot be a header
/// value (CR/LF, non-ASCII) is neither cleaned into another identity nor a
/// plugin failure; the header is removed and the request served. A token
/// without `email` removes it too.
#[tokio::test]
async fn jwt_on_success_sets_or_removes() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let (gw, _dir) = jwt_gateway(&up, &idp, "").await;
    let token = |email: Option<&str>| {
        let mut c = claims(&idp.issuer);
        match email {
            Some(e) => c["email"] = json!(e),
            None => {
                c.as_object_mut().unwrap().remove("email");
            }
        }
        sign(TEST_RSA_KEY_1, "k1", &c)
    };
    for (email, why) in [
        (
            Some("dev@yourcompany.com\r\nx-admin: 1"),
            "CR/LF in the claim",
        ),
        (Some("josé@yourcompany.com"), "non-ASCII claim"),
        (Some(""), "empty claim"),
        (None, "no email claim"),
    ] {
        let t = token(email);
        let bearer = format!("Bearer {t}");
        let r = post(
            &gw,
            "/claude/v1/messages",
            &[("authorization", &bearer), (IDENTITY, SPOOF)],
        )
        .await;
        assert_eq!(r.status, 200, "{why}: {}\n{}", r.text(), gw.logs());
        assert_no_identity(&up, why);
        assert_eq!(up.last_request().unwrap().header("x-admin"), None);
    }
    let t = token(Some(EMAIL));
    assert_eq!(spoof_twice_raw(&gw, Some(&t)).await, 200);
    assert_eq!(up.last_request().unwrap().header_all(IDENTITY), [EMAIL]);
}

/// `mode: optional` lets a request without a token through: the identity
/// header onSuccess sets is not the client's to send.
#[tokio::test]
async fn jwt_optional_without_token_removes_the_identity_header() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = serving(dir.path(), up.addr());
    let layer = jwt_layer(dir.path(), &idp.issuer, "");
    let text = std::fs::read_to_string(&layer).unwrap().replace(
        "        audiences:\n",
        "        mode: optional\n        audiences:\n",
    );
    std::fs::write(&layer, text).unwrap();
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;
    assert_eq!(spoof_twice_raw(&gw, None).await, 200, "{}", gw.logs());
    assert_no_identity(&up, "optional mode, no token");
}

/// `onMissing: reject`: the request is refused (403, the client's error
/// shape, nothing sent upstream); on the response side the answer is
/// replaced by a 502. jwt-auth's onSuccess takes the same option.
#[tokio::test]
async fn on_missing_reject_refuses_in_the_client_error_shape() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = serving(dir.path(), up.addr());
    let both = |name: &str| {
        format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /claude\n  - path:\n      pathPrefix: /codex\n  policies:\n"
        )
    };
    let layer = write(
        dir.path(),
        "reject.yaml",
        &format!(
            r#"{}    transformations:
      request:
        onMissing: reject
        headers:
          set:
            X-Authenticated-User: \\$(request.header.x-sso-user)
{}    responseHeaderModifier:
      onMissing: reject
      set:
        X-Upstream-Region: $(request.header.x-region)
"#,
            both("reject-request"),
            both("reject-response")
        ),
    );
    let gw = gateway(&[&route, &layer], &[4060], &[], &[]).await;

    let r = post(
        &gw,
        "/claude/v1/messages",
        &[(IDENTITY, SPOOF), ("x-region", "eu")],
    )
    .await;
    assert_eq!(r.status, 403, "{}\n{}", r.text(), gw.logs());
    let v = r.json();
    assert_eq!(v["type"], "error", "Anthropic shape: {v}");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(IDENTITY) && !msg.contains(SPOOF), "{msg}");
    assert!(
        up.requests().is_empty(),
        "a refused request never goes upstream"
    );

    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer sk-x"), (IDENTITY, SPOOF)]),
            &json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json()["error"]["type"],
        "permission_denied",
        "OpenAI shape"
    );

    // With the request header, the request passes; without `x-region`, the
    // response cannot carry the header it promises: 502.
    let r = post(
        &gw,
        "/claude/v1/messages",
        &[("x-sso-user", "dev"), ("x-region", "eu")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last_request().unwrap().header_all(IDENTITY), ["dev"]);
    assert_eq!(r.header("x-upstream-region"), Some("eu"));
    let r = post(&gw, "/claude/v1/messages", &[("x-sso-user", "dev")]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert!(r.text().contains("x-upstream-region"), "{}", r.text());

    // jwt-auth's onSuccess: a token without `email` is refused.
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let (gw, _dir) = jwt_gateway(&up, &idp, "          onMissing: reject\n").await;
    let mut c = claims(&idp.issuer);
    c.as_object_mut().unwrap().remove("email");
    let bearer = format!("Bearer {}", sign(TEST_RSA_KEY_1, "k1", &c));
    let seen = up.requests().len();
    let r = post(
        &gw,
        "/claude/v1/messages",
        &[("authorization", &bearer), (IDENTITY, SPOOF)],
    )
    .await;
    assert_eq!(r.status, 403, "{}\n{}", r.text(), gw.logs());
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert_eq!(up.requests().len(), seen);
    let bearer = format!(
        "Bearer {}",
        sign(TEST_RSA_KEY_1, "k1", &claims(&idp.issuer))
    );
    let r = post(
        &gw,
        "/claude/v1/messages",
        &[("authorization", &bearer), (IDENTITY, SPOOF)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last_request().unwrap().header_all(IDENTITY), [EMAIL]);
}

/// An `onMissing` value other than `remove`/`reject` is a config error
/// naming the key and the two values.
#[test]
fn unknown_on_missing_value_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let route = serving(dir.path(), "127.0.0.1:9".parse().unwrap());
    for (name, policies) in [
        (
            "modifier",
            "    requestHeaderModifier:\n      onMissing: refuse\n      set:\n        X-A: $(request.id)",
        ),
        (
            "jwt",
            "    jwtAuth:\n      secret: s3cret-s3cret\n      actions:\n        onSuccess:\n          onMissing: refuse",
        ),
    ] {
        let layer = layer(dir.path(), name, policies);
        let out = run(
            Path::new(BIN),
            &["validate", "--config", &route, "--config", &layer],
            &[],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{name}: {text}");
        assert!(
            text.contains("refuse") && text.contains("remove") && text.contains("reject"),
            "{name}: {text}"
        );
    }
}
