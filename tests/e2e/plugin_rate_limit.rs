//! The bundled `rate-limit` plugin behind the real gateway: the guide's
//! `rateLimit` layer, refusals in the provider's error shape with
//! `Retry-After`/`x-ratelimit-*`, keys and token limits.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::time::Duration;

/// A policy layer on `prefix` with this `policies:` body (YAML, indented 4).
fn layer(dir: &std::path::Path, name: &str, prefix: &str, policies: &str) -> String {
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: {prefix}\n  policies:\n{policies}"
        ),
    )
}

struct Setup {
    up: FakeUpstream,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn start(layers: &[(&str, &str, &str)], extra: &[&str]) -> Setup {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![serving(dir.path(), up.addr())];
    for (name, prefix, policies) in layers {
        files.push(layer(dir.path(), name, prefix, policies));
    }
    files.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let gw = gateway(&refs, &[4060], &[], &[]).await;
    Setup { up, gw, _dir: dir }
}

fn claude_body() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]})
}

async fn claude(c: &TestClient, gw: &Gateway, extra: &[(&str, &str)]) -> sluice_testkit::Resp {
    let mut headers = vec![("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    headers.extend_from_slice(extra);
    c.post_json(
        &gw.url(4060, "/claude/v1/messages"),
        &h(&headers),
        &claude_body(),
    )
    .await
}

#[tokio::test]
async fn small_hourly_limit_refuses_with_retry_after_in_anthropic_shape() {
    let s = start(
        &[(
            "limit",
            "/claude",
            "    rateLimit:\n      requestsPerHour: 3\n      actions:\n      - reject: true\n        errorCode: 429\n",
        )],
        &[],
    )
    .await;
    let c = TestClient::new();
    for remaining in ["2", "1", "0"] {
        let r = claude(&c, &s.gw, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
        // Up to an hour after the end of the first request's 36 s sub-window.
        let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=3636).contains(&reset), "{reset}");
    }
    let r = claude(&c, &s.gw, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3636).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 requests per hour"),
        "{v}"
    );
    // The refused request never reached the provider.
    assert_eq!(s.up.requests().len(), 3);
}

#[tokio::test]
async fn the_guides_file_verbatim_refuses_the_101st_request() {
    let s = start(&[], &[&config("rate-limit.yaml")]).await;
    let c = TestClient::new();
    for i in 1..=100 {
        let r = claude(&c, &s.gw, &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let r = claude(&c, &s.gw, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(s.up.requests().len(), 100);
    // The layer only selects /claude: /codex is not limited.
    let r = c
        .post_json(
            &s.gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer k")]),
            &json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn openai_routes_get_the_openai_error_shape() {
    let s = start(
        &[(
            "limit",
            "/codex",
            "    rateLimit:\n      requestsPerMinute: 1\n",
        )],
        &[],
    )
    .await;
    let c = TestClient::new();
    let url = s.gw.url(4060, "/codex/v1/responses");
    let body = json!({"model": "gpt-5", "input": "hi"});
    let auth = h(&[("authorization", "Bearer k")]);
    assert_eq!(c.post_json(&url, &auth, &body).await.status, 200);
    let r = c.post_json(&url, &auth, &body).await;
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(v.get("type").is_none() || v["type"] != "error", "{v}");
}

#[tokio::test]
async fn keyed_by_org_header() {
    let s = start(
        &[(
            "limit",
            "/claude",
            "    rateLimit:\n      requestsPerHour: 1\n      key:\n        header: x-org-id\n",
        )],
        &[],
    )
    .await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &s.gw, &[("x-org-id", "acme")]).await.status, 200);
    assert_eq!(claude(&c, &s.gw, &[("x-org-id", "acme")]).await.status, 429);
    assert_eq!(
        claude(&c, &s.gw, &[("x-org-id", "globex")]).await.status,
        200
    );
}

#[tokio::test]
async fn token_limit_charges_usage_and_refuses_when_spent() {
    let s = start(
        &[(
            "limit",
            "/claude",
            "    rateLimit:\n      tokensPerHour: 30\n",
        )],
        &[],
    )
    .await;
    s.up.set_script(Script::default().tokens(11, 7));
    let c = TestClient::new();
    // 18 tokens charged after each response: 18, then 36 > 30. A charge
    // lands in the completion hook, which runs before the access-log line.
    assert_eq!(claude(&c, &s.gw, &[]).await.status, 200);
    wait_access_lines(&s.gw, 1, Duration::from_secs(10)).await;
    let r = claude(&c, &s.gw, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("12"));
    wait_access_lines(&s.gw, 2, Duration::from_secs(10)).await;
    let r = claude(&c, &s.gw, &[]).await;
    assert_eq!(
        r.status,
        429,
        "the spent token budget must refuse: {}",
        r.text()
    );
    assert_eq!(
        s.up.requests().len(),
        2,
        "the refused request went upstream"
    );
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.text().contains("30 tokens per hour"), "{}", r.text());
}

#[tokio::test]
async fn agentgateway_local_rate_limit_bucket() {
    let s = start(
        &[(
            "bucket",
            "/claude",
            "    localRateLimit:\n    - maxTokens: 2\n      tokensPerFill: 2\n      fillInterval: 60s\n      type: requests\n",
        )],
        &[],
    )
    .await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &s.gw, &[]).await.status, 200);
    assert_eq!(claude(&c, &s.gw, &[]).await.status, 200);
    let r = claude(&c, &s.gw, &[]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn invalid_rate_limit_config_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let up_addr = "127.0.0.1:9";
    let f = write(
        dir.path(),
        "bad.yaml",
        &format!(
            "binds:\n- port: 4060\n  listeners:\n  - name: default\n    protocol: HTTP\nroutes:\n- name: r\n  policies:\n    rateLimit:\n      requestsPerFortnight: 3\n  backends:\n  - ai:\n      name: r\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{up_addr}\n"
        ),
    );
    let out = sluice_testkit::gateway::run(
        std::path::Path::new(BIN),
        &["validate", "--config", &f],
        &[],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("requestsPerFortnight"), "{text}");
}
