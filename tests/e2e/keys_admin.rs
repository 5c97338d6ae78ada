//! Runtime API keys through the real binary: the admin API (`/keys`) and
//! `sluice keys` create, rotate, edit and revoke keys that an `apiKey`
//! policy with `runtimeKeys: true` honours at once; config keys win and the
//! API says so; secrets never appear in listings or logs; keys survive a
//! restart on the memory store with `path`; a restricted key sees only its
//! models in `/v1/models`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Gateway};

use crate::common::*;
use crate::hardening::{raw, Raw};

pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const ALICE: &str = "sk-alice-0123456789abcdef";

/// The gateway's config: `state` is the YAML of the `state:` section.
pub fn config(up: SocketAddr, state: &str) -> String {
    format!(
        r#"binds:
- port: 4060
admin:
  token: $ADMIN_TOKEN
{state}
routes:
- name: claude
  matches: [{{path: {{pathPrefix: /claude}}}}]
  policies:
    apiKey:
      mode: strict
      runtimeKeys: true
      keys:
      - key: $ALICE_KEY
        metadata: {{user: alice, team: platform}}
        budgets: [{{usd: 25, period: month}}]
    requestHeaderModifier:
      set:
        x-key-id: $(apiKey.id)
        x-key-budgets: $(apiKey.budgets)
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{up}'}}
- name: codex
  matches: [{{path: {{pathPrefix: /codex}}}}]
  policies:
    apiKey: {{mode: strict, runtimeKeys: true}}
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: codex, provider: {{openAI: {{}}}}, hostOverride: 'http://{up}'}}
- name: bedrock
  matches: [{{path: {{pathPrefix: /bedrock}}}}]
  policies:
    apiKey: {{mode: strict, runtimeKeys: true}}
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{aws: {{accessKeyId: AKIDEXAMPLE, secretAccessKey: bedrock-secret}}}}
    ai: {{modelAliases: {{opus: anthropic.claude-opus-4-1}}}}
  backends:
  - ai:
      name: bedrock
      provider: {{bedrock: {{region: us-east-1, model: anthropic.claude-sonnet-4-5}}}}
      hostOverride: 'http://{up}'
"#
    )
}

pub async fn start(dir: &Path, up: &FakeUpstream, state: &str) -> Gateway {
    let cfg = write(dir, "sluice.yaml", &config(up.addr(), state));
    gateway(
        &[&cfg],
        &[4060],
        &[],
        &[("ADMIN_TOKEN", ADMIN_TOKEN), ("ALICE_KEY", ALICE)],
    )
    .await
}

/// One admin request with the token (`token: None` sends none).
pub async fn admin_with(
    gw: &Gateway,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Raw {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("host", "127.0.0.1"), ("content-type", "application/json")];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    raw(gw.admin_addr().unwrap(), method, path, &h, body).await
}

pub async fn admin(gw: &Gateway, method: &str, path: &str, body: &str) -> Raw {
    admin_with(gw, Some(ADMIN_TOKEN), method, path, body).await
}

/// Create a key; its (id, secret).
pub async fn create(gw: &Gateway, body: Value) -> (String, String) {
    let r = admin(gw, "POST", "/keys", &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// A Messages call on `/claude` with `key`; its status.
pub async fn call(gw: &Gateway, key: &str, model: &str) -> u16 {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let auth = format!("Bearer {key}");
    let h = [
        ("host", "localhost"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("authorization", auth.as_str()),
    ];
    raw(gw.addr(4060), "POST", "/claude/v1/messages", &h, &body)
        .await
        .status
}

async fn models(gw: &Gateway, prefix: &str, key: &str) -> Vec<String> {
    let auth = format!("Bearer {key}");
    let h = [("host", "localhost"), ("authorization", auth.as_str())];
    let r = raw(gw.addr(4060), "GET", &format!("{prefix}/v1/models"), &h, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_use_list_rotate_revoke() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &up, "").await;

    let (id, secret) = create(
        &gw,
        json!({"metadata": {"user": "carol", "team": "ml"},
               "budgets": [{"usd": 25, "period": "month"}]}),
    )
    .await;
    assert!(
        secret.starts_with("sk-sluice-") && secret.len() == 42,
        "{secret}"
    );

    // Used at once; the key never goes upstream; metadata reaches the log.
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);
    let got = up.last_request().unwrap();
    assert!(!got.headers.iter().any(|(_, v)| v.contains(&secret)));
    // The budget policy's contract: `apiKey.id` and `apiKey.budgets`.
    assert_eq!(got.header("x-key-id"), Some(id.as_str()));
    let budgets: Value = serde_json::from_str(got.header("x-key-budgets").unwrap()).unwrap();
    assert_eq!(budgets, json!([{"usd": 25.0, "period": "month"}]));
    assert_eq!(call(&gw, ALICE, "claude-sonnet-4-5").await, 200);
    let got = up.last_request().unwrap();
    let alice_id = &sha256_hex(ALICE)[..16];
    assert_eq!(got.header("x-key-id"), Some(alice_id));
    let budgets: Value = serde_json::from_str(got.header("x-key-budgets").unwrap()).unwrap();
    assert_eq!(budgets, json!([{"usd": 25.0, "period": "month"}]));
    gw.wait_for_log("user=\"carol\"", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        call(&gw, "sk-sluice-unknown", "claude-sonnet-4-5").await,
        401
    );

    // Listed (with the config key, read-only), never with a secret.
    let r = admin(&gw, "GET", "/keys", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains(&secret) && !r.body.contains(ALICE),
        "{}",
        r.body
    );
    let v = r.json();
    assert_eq!(v["runtimeKeys"], true);
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{v}");
    assert_eq!(keys[0]["source"], "config");
    assert_eq!(keys[0]["readOnly"], true);
    assert_eq!(keys[0]["metadata"]["user"], "alice");
    assert_eq!(keys[1]["source"], "runtime");
    assert_eq!(keys[1]["id"], id.as_str());
    assert_eq!(
        keys[1]["budgets"],
        json!([{"usd": 25.0, "period": "month"}])
    );
    let one = admin(&gw, "GET", &format!("/keys/{id}"), "").await;
    assert_eq!(one.json()["metadata"]["team"], "ml");
    assert!(!one.body.contains(&secret));

    // Restricted to some models: another one is refused, no upstream call.
    let r = admin(
        &gw,
        "PATCH",
        &format!("/keys/{id}"),
        r#"{"allowedModels": ["claude-sonnet-*"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.requests().len();
    assert_eq!(call(&gw, &secret, "claude-opus-4-1").await, 403);
    assert_eq!(up.requests().len(), seen);
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);

    // Rotated: the old secret is refused, the new one accepted.
    let r = admin(&gw, "POST", &format!("/keys/{id}/rotate"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rotated = r.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 401);
    assert_eq!(call(&gw, &rotated, "claude-sonnet-4-5").await, 200);

    // Revoked: refused.
    let r = admin(&gw, "DELETE", &format!("/keys/{id}"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "revoked");
    assert_eq!(call(&gw, &rotated, "claude-sonnet-4-5").await, 401);
    let r = admin(&gw, "PATCH", &format!("/keys/{id}"), r#"{"metadata": {}}"#).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // No secret anywhere in the gateway's output.
    let logs = gw.logs();
    for s in [&secret, &rotated] {
        assert!(!logs.contains(s.as_str()), "a secret was logged");
    }
    assert!(logs.contains(&id), "the key's id is what the logs name");
}

#[tokio::test]
async fn admin_refusals_config_conflicts_and_hostile_bodies() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &up, "").await;

    for token in [None, Some("wrong-token-0123456789")] {
        let r = admin_with(&gw, token, "GET", "/keys", "").await;
        assert_eq!(r.status, 401, "{}", r.body);
        let r = admin_with(&gw, token, "POST", "/keys", "{}").await;
        assert_eq!(r.status, 401, "{}", r.body);
    }

    // A config key's hash: 409, naming the config key and why.
    let alice_hash = format!("sha256:{}", sha256_hex(ALICE));
    let alice_id = &alice_hash[7..23];
    let r = admin(
        &gw,
        "POST",
        "/keys",
        &json!({"keyHash": alice_hash}).to_string(),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("config keys win") && r.body.contains(alice_id),
        "{}",
        r.body
    );
    // Config keys are read-only here.
    for (m, p) in [
        ("PATCH", format!("/keys/{alice_id}")),
        ("POST", format!("/keys/{alice_id}/rotate")),
        ("DELETE", format!("/keys/{alice_id}")),
    ] {
        let r = admin(&gw, m, &p, r#"{"metadata": {}}"#).await;
        assert_eq!(r.status, 409, "{m} {p}: {}", r.body);
        assert!(r.body.contains("read-only"), "{}", r.body);
    }
    assert_eq!(call(&gw, ALICE, "claude-sonnet-4-5").await, 200);

    // Hostile input.
    let huge = "x".repeat(300);
    for (body, why) in [
        (
            json!({"metadata": {"team": huge}}).to_string(),
            "huge value",
        ),
        (
            json!({"metadata": {"team": {"nested": [1]}}}).to_string(),
            "odd value",
        ),
        (
            json!({"metadata": {"id": "forged"}}).to_string(),
            "reserved name",
        ),
        (json!({"metadata": {"a b": "x"}}).to_string(), "odd name"),
        (
            r#"{"metadata": {"team": "a"}, "metadata": {"team": "b"}}"#.into(),
            "duplicate key",
        ),
        (
            r#"{"metadata": {"team": "a", "team": "b"}}"#.into(),
            "nested duplicate key",
        ),
        (json!({"secret": "sk-chosen"}).to_string(), "unknown field"),
        (
            json!({"budgets": [{"usd": 1, "tokens": 1, "period": "day"}]}).to_string(),
            "two amounts",
        ),
        ("{".into(), "not JSON"),
    ] {
        let r = admin(&gw, "POST", "/keys", &body).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
    }
    let r = admin(&gw, "POST", "/keys", &"{\"metadata\": {}}".repeat(10_000)).await;
    assert!(r.status == 413 || r.status == 400, "{}", r.body);
    // Path traversal never reaches another endpoint.
    for p in [
        "/keys/../config",
        "/keys/..%2fconfig",
        "/keys/%2e%2e/config",
    ] {
        let r = admin(&gw, "GET", p, "").await;
        assert_eq!(r.status, 400, "{p}: {}", r.body);
        assert!(!r.body.contains("routes"), "{p}: {}", r.body);
    }
    let r = admin(&gw, "GET", "/keys/key_doesnotexist", "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        admin(&gw, "GET", "/keys", "").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Spend: the query is checked; without a budget ledger, 501 says why.
    let r = admin(&gw, "GET", "/keys/spend?by=user", "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = admin(&gw, "GET", "/keys/spend?by=team&day=2026-12-01", "").await;
    assert_eq!(r.status, 501, "{}", r.body);
}

#[tokio::test]
async fn runtime_keys_survive_a_restart_on_the_memory_store() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state");
    let state = format!("state:\n  memory:\n    path: {}\n", store.display());
    let mut gw = start(dir.path(), &up, &state).await;
    let (id, secret) = create(&gw, json!({"metadata": {"user": "erin"}})).await;
    let (gone, gone_secret) = create(&gw, json!({})).await;
    assert_eq!(
        admin(&gw, "POST", &format!("/keys/{gone}/revoke"), "")
            .await
            .status,
        200
    );
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);
    gw.kill().await;

    let file = std::fs::read_to_string(store.join("keys.json")).unwrap();
    assert!(file.contains(&id) && !file.contains(&secret) && !file.contains(&gone_secret));

    let gw = start(dir.path(), &up, &state).await;
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);
    assert_eq!(call(&gw, &gone_secret, "claude-sonnet-4-5").await, 401);
    let v = admin(&gw, "GET", &format!("/keys/{id}"), "").await.json();
    assert_eq!(v["metadata"]["user"], "erin", "{v}");

    // Without `path`, runtime keys live in memory only.
    drop(gw);
    let dir2 = tempfile::tempdir().unwrap();
    let mut gw = start(dir2.path(), &up, "").await;
    let (_, secret) = create(&gw, json!({})).await;
    gw.kill().await;
    let gw = start(dir2.path(), &up, "").await;
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 401);
}

#[tokio::test]
async fn a_restricted_key_lists_only_its_models() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &up, "").await;
    let (_, open) = create(&gw, json!({})).await;
    let (_, gpt) = create(&gw, json!({"allowedModels": ["gpt-test-*"]})).await;
    let (_, sonnet) = create(&gw, json!({"allowedModels": ["anthropic.claude-sonnet-*"]})).await;

    // From the upstream (OpenAI lists its models).
    assert_eq!(
        models(&gw, "/codex", &open).await,
        ["gpt-test-1", "text-embedding-test"]
    );
    assert_eq!(models(&gw, "/codex", &gpt).await, ["gpt-test-1"]);
    assert!(models(&gw, "/codex", &sonnet).await.is_empty());
    // From the config (Bedrock has no listing in the client's format).
    assert_eq!(
        models(&gw, "/bedrock", &open).await,
        ["anthropic.claude-sonnet-4-5", "opus"]
    );
    assert_eq!(
        models(&gw, "/bedrock", &sonnet).await,
        ["anthropic.claude-sonnet-4-5"]
    );
    assert!(models(&gw, "/bedrock", &gpt).await.is_empty());
}

#[tokio::test]
async fn the_cli_drives_the_admin_api() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &up, "").await;
    let url = format!("http://{}", gw.admin_addr().unwrap());
    let bin = Path::new(BIN);
    let env = [("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)];
    let keys = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["keys", "--admin", &url];
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        sluice_testkit::gateway::run_with_timeout(bin, &all, env, Duration::from_secs(30))
    };

    let out = keys(
        &[
            "create",
            "--meta",
            "user=dave",
            "--model",
            "claude-*",
            "--budget",
            "usd=5/day",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    );
    assert_eq!(v["budgets"], json!([{"usd": 5.0, "period": "day"}]));
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);

    let out = keys(&["list"], &env);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id) && !text.contains(&secret), "{text}");

    let out = keys(
        &[
            "--token",
            ADMIN_TOKEN,
            "update",
            &id,
            "--meta",
            "user=dave2",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["metadata"], json!({"user": "dave2"}));

    // Without the token: refused, exit status 1, the API's reason on stderr.
    let out = keys(&["revoke", &id], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 200);

    let out = keys(&["revoke", &id], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(call(&gw, &secret, "claude-sonnet-4-5").await, 401);
}

/// SHA-256 by the system's `sha256sum` (independent of the gateway's).
pub fn sha256_hex(s: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A runtime key registered by hash, then added to the config by a reload:
/// the config key wins (its metadata applies) and the listing says so.
#[tokio::test]
async fn a_config_key_added_later_shadows_the_runtime_key() {
    const FRANK: &str = "sk-frank-00112233445566778899";
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &up, "").await;
    let hash = format!("sha256:{}", sha256_hex(FRANK));
    let r = admin(
        &gw,
        "POST",
        "/keys",
        &json!({"keyHash": hash, "metadata": {"user": "frank-runtime"}}).to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.json().get("secret").is_none(),
        "registered by hash: no secret"
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(call(&gw, FRANK, "claude-sonnet-4-5").await, 200);
    assert_eq!(
        up.last_request().unwrap().header("x-key-id"),
        Some(id.as_str())
    );

    let text = config(up.addr(), "").replace(
        "        budgets: [{usd: 25, period: month}]\n",
        &format!(
            "        budgets: [{{usd: 25, period: month}}]\n      - keyHash: \"{hash}\"\n        metadata: {{user: frank-config}}\n"
        ),
    );
    write(dir.path(), "sluice.yaml", &text);
    let r = admin(&gw, "POST", "/config/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(call(&gw, FRANK, "claude-sonnet-4-5").await, 200);
    let config_id = &sha256_hex(FRANK)[..16];
    assert_eq!(
        up.last_request().unwrap().header("x-key-id"),
        Some(config_id)
    );
    let v = admin(&gw, "GET", &format!("/keys/{id}"), "").await.json();
    assert_eq!(v["shadowedBy"], config_id, "{v}");
    assert!(
        v["note"].as_str().unwrap().contains("config key wins"),
        "{v}"
    );
    let r = admin(&gw, "PATCH", &format!("/keys/{id}"), r#"{"metadata": {}}"#).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("config keys win"), "{}", r.body);
}
