//! The `authorization` plugin end to end: agentgateway's CEL rules over the
//! model, the request and the JWT claims, through the real binary, in front
//! of a fake upstream that records what reaches it.

use std::io::Write as _;

use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::idp::{public_jwk, sign, Idp, TEST_RSA_KEY_1};
use sluice_testkit::{FakeUpstream, Gateway, Resp};

use crate::common::*;

async fn model_gateway() -> (FakeUpstream, Gateway, tempfile::TempDir) {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    // The shipped example layer: Haiku and Sonnet, two OpenAI models, and
    // a deny on `claude-sonnet-4-0` that overlaps the Sonnet allow.
    let gw = gateway(
        &[&serving, &config("authorization.yaml")],
        &[4060],
        &[],
        &[],
    )
    .await;
    (up, gw, dir)
}

fn anthropic_headers() -> Vec<(String, String)> {
    h(&[("anthropic-version", "2023-06-01")])
}

fn message(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

async fn messages_raw(gw: &Gateway, headers: &[(String, String)], body: Vec<u8>) -> Resp {
    TestClient::new()
        .post_bytes(&gw.url(4060, "/claude/v1/messages"), headers, body)
        .await
}

async fn messages(gw: &Gateway, model: &str) -> Resp {
    messages_raw(
        gw,
        &anthropic_headers(),
        message(model).to_string().into_bytes(),
    )
    .await
}

async fn chat(gw: &Gateway, model: &str) -> Resp {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    TestClient::new()
        .post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer sk-client")]),
            &body,
        )
        .await
}

/// A 403 in Anthropic's error shape, agentgateway's message.
fn assert_anthropic_403(r: &Resp, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    let v = r.json();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "permission_error", "message": "authorization failed"}}),
        "{what}"
    );
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn model_allow_list_and_deny_on_both_provider_shapes() {
    let (up, gw, _dir) = model_gateway().await;

    // Allowed: through, the body untouched.
    let r = messages(&gw, "claude-haiku-4-5").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up
        .last_request()
        .expect("the upstream saw the allowed request");
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.json()["model"], "claude-haiku-4-5");
    let r = chat(&gw, "gpt-4o-mini").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last_request().unwrap().json()["model"], "gpt-4o-mini");

    let seen = up.requests().len();
    // Not on the allow list: 403 in Anthropic's shape on /v1/messages ...
    assert_anthropic_403(&messages(&gw, "claude-opus-4-1").await, "opus");
    // ... and in OpenAI's on /v1/chat/completions.
    let r = chat(&gw, "gpt-4o").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": {"message": "authorization failed", "type": "permission_denied",
            "param": null, "code": "permission_denied"}})
    );
    // Deny beats allow: `claude-sonnet-4-0` matches the Sonnet allow too.
    assert_anthropic_403(&messages(&gw, "claude-sonnet-4-0").await, "deny wins");
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused request reached the upstream"
    );
    assert!(gw.logs().contains("rules[2] denies"), "{}", gw.logs());
}

/// Spellings and encodings a client might slip a model past the rules with.
#[tokio::test]
async fn hostile_bodies_do_not_walk_the_rules() {
    let (up, gw, _dir) = model_gateway().await;
    let seen = up.requests().len();

    // Case and whitespace variants are not on the allow list.
    for m in ["Claude-Haiku-4-5", " claude-haiku-4-5", "CLAUDE-HAIKU-4-5"] {
        assert_anthropic_403(&messages(&gw, m).await, m);
    }
    // Unicode escapes in the key and the value decode to the denied model.
    let escaped = br#"{"mod\u0065l": "claude-sonnet-4-\u0030", "max_tokens": 16, "messages": []}"#;
    assert_anthropic_403(
        &messages_raw(&gw, &anthropic_headers(), escaped.to_vec()).await,
        "escaped",
    );
    // A gzip body: the host decodes it before the policy reads the model.
    let mut headers = anthropic_headers();
    headers.push(("content-encoding".into(), "gzip".into()));
    let zipped = gzip(message("claude-opus-4-1").to_string().as_bytes());
    assert_anthropic_403(&messages_raw(&gw, &headers, zipped).await, "gzip");
    // No model, and a model that is not a string.
    assert_anthropic_403(
        &messages_raw(
            &gw,
            &anthropic_headers(),
            br#"{"max_tokens": 16, "messages": []}"#.to_vec(),
        )
        .await,
        "no model",
    );
    assert_anthropic_403(
        &messages_raw(
            &gw,
            &anthropic_headers(),
            br#"{"model": ["claude-haiku-4-5"]}"#.to_vec(),
        )
        .await,
        "model list",
    );
    // A repeated `model`: the host's strict JSON refuses it (400) before
    // any policy reads the body.
    let dup = br#"{"model": "claude-haiku-4-5", "model": "claude-opus-4-1", "messages": []}"#;
    let r = messages_raw(&gw, &anthropic_headers(), dup.to_vec()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("repeats the key"), "{}", r.text());
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused request reached the upstream"
    );

    // And a gzip body with an allowed model still passes, decoded.
    let zipped = gzip(message("claude-haiku-4-5").to_string().as_bytes());
    let r = messages_raw(&gw, &headers, zipped).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.last_request().unwrap().json()["model"],
        "claude-haiku-4-5"
    );
}

/// Claims from the JWT policy, in the same layer before `authorization`.
#[tokio::test]
async fn claims_rules_after_jwt_auth() {
    let idp = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let layer = write(
        dir.path(),
        "authz.yaml",
        &format!(
            r#"
- name: secure-claude
  matches:
  - path:
      pathPrefix: /claude
  policies:
    jwtAuth:
      mode: strict
      issuer: {iss}
      audiences: [agentgateway]
      jwks:
        url: {iss}/jwks.json
    authorization:
      rules:
      - allow: jwt.team == "research"
      - deny: has(jwt.tier) && jwt.tier == "free" && llm.requestModel.startsWith("claude-opus")
"#,
            iss = idp.issuer
        ),
    );
    let gw = gateway(&[&serving, &layer], &[4060], &[], &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |extra: Value| {
        let mut c = json!({"iss": idp.issuer, "aud": "agentgateway", "sub": "u1",
            "iat": now, "exp": now + 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign(TEST_RSA_KEY_1, "k1", &c)
    };
    let call = |t: String, model: &'static str| {
        let gw = &gw;
        async move {
            let mut headers = anthropic_headers();
            headers.push(("authorization".into(), format!("Bearer {t}")));
            messages_raw(gw, &headers, message(model).to_string().into_bytes()).await
        }
    };

    let r = call(token(json!({"team": "research"})), "claude-opus-4-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.requests().len();
    assert_anthropic_403(
        &call(token(json!({"team": "web"})), "claude-haiku-4-5").await,
        "other team",
    );
    assert_anthropic_403(
        &call(token(json!({})), "claude-haiku-4-5").await,
        "no team claim",
    );
    assert_anthropic_403(
        &call(
            token(json!({"team": "research", "tier": "free"})),
            "claude-opus-4-1",
        )
        .await,
        "free tier on opus",
    );
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused request reached the upstream"
    );
    let r = call(
        token(json!({"team": "research", "tier": "free"})),
        "claude-haiku-4-5",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn validate(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "gw.yaml", text);
    let out = sluice_testkit::gateway::run(
        std::path::Path::new(BIN),
        &["validate", "--config", &f],
        &[],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all, f)
}

fn route_with(policy: &str) -> String {
    format!(
        r#"binds:
- port: 4060
routes:
- name: r
  policies:
    authorization:
{policy}
  backends:
  - ai:
      name: r
      provider:
        anthropic: {{}}
"#
    )
}

#[test]
fn validate_accepts_agentgateway_forms_and_names_what_is_wrong() {
    // agentgateway's own forms: a plain string (allow), a block string,
    // and the allow/deny/require objects.
    let good = route_with(
        r#"      rules:
      - 'jwt.email.endsWith("@example.com")'
      - |
        request.headers["x-team"] == "research"
      - allow: llm.requestModel in ["claude-haiku-4-5", "gpt-4o-mini"]
      - deny: 'llmRequest.max_tokens > 8192'
      - require: source.address != "" && request.method == "POST""#,
    );
    let (ok, out, _) = validate(&good);
    assert!(ok, "{out}");

    let cases = [
        ("      rule: []", "unknown key `authorization.rule`"),
        (
            "      rules:\n      - alow: 'true'",
            "`authorization.rules[0]`: unknown key `alow`",
        ),
        (
            "      rules:\n      - deny: 'jwt.sub =='",
            "`authorization.rules[0].deny`: invalid CEL",
        ),
        (
            "      rules:\n      - 'response.code == 200'",
            "`response` is an agentgateway variable",
        ),
        (
            "      rules:\n      - 'cidr(\"10.0.0.0/8\").containsIP(source.address)'",
            "not available",
        ),
    ];
    for (policy, want) in cases {
        let (ok, out, file) = validate(&route_with(policy));
        assert!(!ok, "{policy}: accepted\n{out}");
        assert!(out.contains(want), "{policy}: want `{want}` in\n{out}");
        // Where: the file, the line of the `authorization` key, the key path.
        assert!(
            out.contains(&format!("{file}:6")),
            "{policy}: no file:line in\n{out}"
        );
        assert!(out.contains("authorization"), "{out}");
    }
}

/// A deny list on the model: a body-less `GET /v1/models` has no model, so
/// an unguarded deny refuses it (a failed deny refuses) while a guarded one
/// (`has(...)`) lets it through; the denied model never reaches upstream.
#[tokio::test]
async fn deny_list_on_the_model_and_bodyless_requests() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let layer = |rule: &str| {
        format!(
            "- name: deny-opus\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n    authorization:\n      rules:\n      - deny: '{rule}'\n"
        )
    };
    let guarded = write(
        dir.path(),
        "guarded.yaml",
        &layer(r#"has(llm.requestModel) && llm.requestModel.startsWith("claude-opus")"#),
    );
    let gw = gateway(&[&serving, &guarded], &[4060], &[], &[]).await;
    let models = || async {
        TestClient::new()
            .get_with(&gw.url(4060, "/claude/v1/models"), &anthropic_headers())
            .await
    };
    let r = models().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last_request().unwrap().path, "/v1/models");
    assert_eq!(messages(&gw, "claude-sonnet-4-5").await.status, 200);
    let seen = up.requests().len();
    assert_anthropic_403(&messages(&gw, "claude-opus-4-1").await, "opus");
    assert_eq!(up.requests().len(), seen);
    drop(gw);

    let bare = write(
        dir.path(),
        "bare.yaml",
        &layer(r#"llm.requestModel.startsWith("claude-opus")"#),
    );
    let gw = gateway(&[&serving, &bare], &[4060], &[], &[]).await;
    let r = TestClient::new()
        .get_with(&gw.url(4060, "/claude/v1/models"), &anthropic_headers())
        .await;
    assert_anthropic_403(&r, "no model to check");
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused request reached the upstream"
    );
    assert!(
        gw.logs().contains("(deny) failed to evaluate"),
        "{}",
        gw.logs()
    );
}
