//! The `apiKey` policy (bundled `api-key` plugin) through the real binary:
//! modes, `keyHash`, the client's key never going upstream, metadata in the
//! access log and in `$(apiKey.user)` templates, `allowedModels` before and
//! after an alias, and hostile credentials.

use std::time::Duration;

use serde_json::Value;
use sluice_testkit::{FakeUpstream, Gateway};

use crate::common::*;
use crate::hardening::{raw, Raw};

const ALICE: &str = "sk-alice-0123456789abcdef";
/// Bob's key appears in the config only as its SHA-256 (`keyHash`).
const BOB: &str = "sk-bob-fedcba9876543210";

fn config(up: &FakeUpstream, mode: &str, bob_hash: &str) -> String {
    let addr = up.addr();
    format!(
        r#"binds:
- port: 4060
routes:
- name: keyed
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    apiKey:
      mode: {mode}
      keys:
      - key: $ALICE_KEY
        metadata: {{user: alice, team: platform}}
        allowedModels: [claude-sonnet-*, gpt-5*]
      - keyHash: "{bob_hash}"
        metadata: {{user: bob, team: research}}
    requestHeaderModifier:
      set:
        x-sluice-user: $(apiKey.user)
    urlRewrite: {{path: {{prefix: /}}}}
    ai:
      modelAliases:
        sonnet: claude-sonnet-4-5
        sonnet-sneaky: claude-opus-4-1
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
"#
    )
}

async fn start(mode: &str) -> (FakeUpstream, Gateway, tempfile::TempDir) {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &config(&up, mode, &bob_hash()));
    let gw = gateway(&[&cfg], &[4060], &[], &[("ALICE_KEY", ALICE)]).await;
    (up, gw, dir)
}

/// SHA-256 of [`BOB`] by the system's `sha256sum` (an independent
/// implementation from the plugin's).
fn bob_hash() -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(BOB.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    format!(
        "sha256:{}",
        hex.split_whitespace().next().unwrap().to_uppercase()
    )
}

async fn send(gw: &Gateway, auth: &[&str], model: &str) -> Raw {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let mut headers = vec![
        ("host", "localhost"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ];
    for a in auth {
        headers.push(("authorization", a));
    }
    raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &headers,
        &body,
    )
    .await
}

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

fn error_json(r: &Raw) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// A refusal in Anthropic's error shape, the key never echoed.
fn assert_refused(r: &Raw, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = error_json(r);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(!r.body.contains(ALICE) && !r.body.contains(BOB));
}

#[tokio::test]
async fn strict_keys_metadata_and_stripping() {
    let (up, gw, _dir) = start("strict").await;

    // Alice (`key: $ALICE_KEY`): through, her key removed, her name templated.
    let r = send(&gw, &[&bearer(ALICE)], "claude-sonnet-4-5").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap();
    assert_eq!(
        got.header("authorization"),
        None,
        "the client's key went upstream"
    );
    assert!(!got.headers.iter().any(|(_, v)| v.contains(ALICE)));
    assert_eq!(got.header("x-sluice-user"), Some("alice"));
    gw.wait_for_log("user=\"alice\"", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(gw.logs().contains("team=\"platform\""), "{}", gw.logs());

    // Bob (`keyHash`, upper-case hex): through, any model.
    let r = send(&gw, &[&bearer(BOB)], "claude-opus-4-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap();
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.header("x-sluice-user"), Some("bob"));

    // Case and whitespace around the scheme do not matter.
    for auth in [format!("bearer {ALICE}"), format!("BEARER   {ALICE}  ")] {
        let r = send(&gw, &[&auth], "claude-sonnet-4-5").await;
        assert_eq!(r.status, 200, "{auth:?}: {}", r.body);
    }

    let seen = up.requests().len();
    // Missing, unknown, a prefix of a real key, a key with a byte more, two
    // headers (even both valid), another scheme.
    assert_refused(
        &send(&gw, &[], "claude-sonnet-4-5").await,
        401,
        "authentication_error",
    );
    for auth in [
        bearer("sk-nobody"),
        bearer(&ALICE[..ALICE.len() - 1]),
        bearer(&format!("{ALICE}0")),
        format!("Basic {ALICE}"),
        format!("Bearer{ALICE}"),
    ] {
        let r = send(&gw, &[&auth], "claude-sonnet-4-5").await;
        assert_refused(&r, 401, "authentication_error");
    }
    let r = send(&gw, &[&bearer(ALICE), &bearer(ALICE)], "claude-sonnet-4-5").await;
    assert_refused(&r, 401, "authentication_error");
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused request reached the upstream"
    );
    assert!(!gw.logs().contains(ALICE), "a key was logged");
    assert!(!gw.logs().contains(BOB), "a key was logged");
}

#[tokio::test]
async fn allowed_models_before_and_after_an_alias() {
    let (up, gw, _dir) = start("strict").await;
    let alice = bearer(ALICE);
    // Allowed by name, and through an alias to an allowed model.
    for (asked, served) in [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("sonnet", "claude-sonnet-4-5"),
    ] {
        let r = send(&gw, &[&alice], asked).await;
        assert_eq!(r.status, 200, "{asked}: {}", r.body);
        assert_eq!(up.last_request().unwrap().json()["model"], served);
    }
    let seen = up.requests().len();
    // Not allowed by name; and an allowed-looking alias of a refused model.
    for asked in ["claude-opus-4-1", "sonnet-sneaky"] {
        let r = send(&gw, &[&alice], asked).await;
        assert_refused(&r, 403, "permission_error");
        assert!(error_json(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-opus-4-1"));
    }
    assert_eq!(
        up.requests().len(),
        seen,
        "a refused model reached the upstream"
    );
}

#[tokio::test]
async fn optional_and_permissive_modes() {
    let (up, gw, _dir) = start("optional").await;
    // No key: through, no identity.
    let r = send(&gw, &[], "claude-opus-4-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last_request().unwrap().header("x-sluice-user"), None);
    // A wrong key: refused.
    let r = send(&gw, &[&bearer("sk-nobody")], "claude-opus-4-1").await;
    assert_refused(&r, 401, "authentication_error");
    drop(gw);

    let (up, gw, _dir) = start("permissive").await;
    // A wrong key passes untouched (it may be a provider key).
    let r = send(&gw, &[&bearer("sk-provider-key")], "claude-opus-4-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap();
    assert_eq!(got.header("authorization"), Some("Bearer sk-provider-key"));
    assert_eq!(got.header("x-sluice-user"), None);
    // A valid key is still decoded and removed.
    let r = send(&gw, &[&bearer(ALICE)], "claude-sonnet-4-5").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap();
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.header("x-sluice-user"), Some("alice"));
}

#[tokio::test]
async fn bad_key_hash_is_refused_at_load() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(&up, "strict", "md5:abcd"),
    );
    let err = try_gateway(&[&cfg], &[4060], &[], &[("ALICE_KEY", ALICE)])
        .await
        .err()
        .expect("a keyHash without sha256: must be refused");
    assert!(err.contains("sha256:<hex>"), "{err}");
}

/// Claude Code style: the virtual key in `x-api-key` (`location: header`),
/// the provider key injected by `backendAuth`. Upstream sees only the
/// provider key.
#[tokio::test]
async fn x_api_key_location_with_backend_auth() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = up.addr();
    let cfg = format!(
        r#"binds:
- port: 4060
routes:
- name: keyed
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    apiKey:
      mode: strict
      location: {{header: {{name: x-api-key}}}}
      keys:
      - key: {ALICE}
        metadata: {{user: alice}}
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-ant-provider-secret}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
"#
    );
    let cfg = write(dir.path(), "sluice.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let body = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let with = |key: &'static str| {
        vec![
            ("host", "localhost"),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
            ("x-api-key", key),
        ]
    };
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &with(ALICE),
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = up.last_request().unwrap();
    assert_eq!(got.header_all("x-api-key"), ["sk-ant-provider-secret"]);
    assert!(!got.headers.iter().any(|(_, v)| v.contains(ALICE)));
    // The provider key itself is not a virtual key.
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &with("sk-ant-provider-secret"),
        body,
    )
    .await;
    assert_refused(&r, 401, "authentication_error");
}
