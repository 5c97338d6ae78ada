//! Hardening through the real binary: listener scoping, DNS rebinding and
//! browser refusal, gateway client keys, billing headers. Each test is an
//! attack from issue 9 that today's gateway must refuse, beside the honest
//! client that must keep working.
//!
//! Requests are written by hand over TCP where the test must control `Host`
//! and `Origin` exactly.

use crate::common::*;
use serde_json::Value;
use sluice_testkit::{FakeUpstream, Gateway};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const GW_KEY: &str = "gw-client-key-0123456789";
pub const PROVIDER_KEY: &str = "sk-ant-provider-secret";

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Send one request with exactly these headers (plus `connection: close`
/// and a content-length for `body`) and read the whole answer.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connect timed out")
    .expect("connect");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("no answer within 20s")
        .expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A Claude Code style request's headers, with `Host` given.
pub fn claude(host: &str) -> Vec<(&str, &str)> {
    vec![
        ("host", host),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("x-api-key", "client-key"),
    ]
}

pub const MSG: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

/// An Anthropic route on `prefix` to `up`, indented by `indent` spaces,
/// injecting `$PROVIDER_KEY` when `inject`.
pub fn route(name: &str, prefix: &str, up: &FakeUpstream, inject: bool, indent: usize) -> String {
    let auth = if inject {
        "  backendAuth:\n    key: $PROVIDER_KEY\n"
    } else {
        ""
    };
    let text = format!(
        "- name: {name}\n  matches:\n  - path:\n      pathPrefix: {prefix}\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n{auth}  backends:\n  - ai:\n      name: {name}\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{addr}\n",
        addr = up.addr()
    );
    let pad = " ".repeat(indent);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

pub async fn start(dir: &tempfile::TempDir, yaml: &str, ports: &[u16]) -> Gateway {
    let cfg = write(dir.path(), "sluice.yaml", yaml);
    gateway(
        &[&cfg],
        ports,
        &[],
        &[("PROVIDER_KEY", PROVIDER_KEY), ("GW_KEY", GW_KEY)],
    )
    .await
}

#[tokio::test]
async fn a_route_under_one_bind_is_not_served_on_another() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "binds:\n- port: 14100\n  listeners:\n  - name: paid\n    routes:\n{}- port: 14101\n  listeners:\n  - name: free\n    routes:\n{}",
        route("paid", "/claude", &up, true, 4),
        route("free", "/free", &up, false, 4),
    );
    let gw = start(&dir, &yaml, &[14100, 14101]).await;
    let (a, b) = (gw.addr(14100), gw.addr(14101));

    // The key-injecting route answers on its own port...
    let r = raw(
        a,
        "POST",
        "/claude/v1/messages",
        &claude("localhost:14100"),
        MSG,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-api-key"), Some(PROVIDER_KEY));
    up.clear();

    // ...and not on the other one, where nothing reaches the upstream.
    let r = raw(
        b,
        "POST",
        "/claude/v1/messages",
        &claude("localhost:14101"),
        MSG,
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["type"], "error", "Anthropic error shape: {r:?}");
    let r = raw(
        a,
        "POST",
        "/free/v1/messages",
        &claude("localhost:14100"),
        MSG,
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    let r = raw(
        b,
        "POST",
        "/free/v1/messages",
        &claude("localhost:14101"),
        MSG,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        up.last_request().unwrap().header("x-api-key"),
        Some("client-key")
    );
}

#[tokio::test]
async fn the_guides_top_level_routes_serve_every_bind() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "binds:\n- port: 14110\n- port: 14111\n\nlisteners:\n- name: default\n  protocol: HTTP\n\nroutes:\n{}",
        route("claude", "/claude", &up, true, 0),
    );
    let gw = start(&dir, &yaml, &[14110, 14111]).await;
    for port in [14110, 14111] {
        let host = format!("127.0.0.1:{port}");
        let r = raw(
            gw.addr(port),
            "POST",
            "/claude/v1/messages",
            &claude(&host),
            MSG,
        )
        .await;
        assert_eq!(r.status, 200, "port {port}: {r:?}");
    }
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn a_hostname_listener_serves_only_its_host() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "binds:\n- port: 14120\n  listeners:\n  - name: team\n    hostname: team.sluice.test\n    routes:\n{}  - name: local\n    routes:\n{}",
        route("team", "/team", &up, true, 4),
        route("local", "/local", &up, false, 4),
    );
    let gw = start(&dir, &yaml, &[14120]).await;
    let a = gw.addr(14120);
    let team = claude("team.sluice.test:14120");
    let local = claude("localhost:14120");
    assert_eq!(
        raw(a, "POST", "/team/v1/messages", &team, MSG).await.status,
        200
    );
    assert_eq!(up.requests().len(), 1);
    // The team route is not reachable through the default listener...
    assert_eq!(
        raw(a, "POST", "/team/v1/messages", &local, MSG)
            .await
            .status,
        404
    );
    // ...nor the default listener's routes through the team hostname.
    assert_eq!(
        raw(a, "POST", "/local/v1/messages", &team, MSG)
            .await
            .status,
        404
    );
    assert_eq!(
        raw(a, "POST", "/local/v1/messages", &local, MSG)
            .await
            .status,
        200
    );
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn dns_rebinding_and_browsers_are_refused_honest_clients_are_not() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "binds:\n- port: 4060\n  listeners:\n  - name: default\n    routes:\n{}- port: 4061\n  listeners:\n  - name: app\n    allowedOrigins: [https://app.example.com]\n    routes:\n{}",
        route("claude", "/claude", &up, true, 4),
        route("app", "/claude", &up, true, 4),
    );
    let gw = start(&dir, &yaml, &[4060, 4061]).await;
    let a = gw.addr(4060);
    let path = "/claude/v1/messages";

    // The issue's attack: a page on evil.example rebinds its name to 127.0.0.1.
    let mut evil = claude("evil.example:4060");
    evil.push(("origin", "http://evil.example"));
    let r = raw(a, "POST", path, &evil, MSG).await;
    assert_eq!(r.status, 421, "{r:?}");
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "api_error");
    // Without an Origin too (a rebinding attacker controls fetch, not Host).
    let r = raw(a, "POST", path, &claude("evil.example:4060"), MSG).await;
    assert_eq!(r.status, 421, "{r:?}");
    // `localhost.evil.example` is not localhost.
    let r = raw(a, "POST", path, &claude("localhost.evil.example"), MSG).await;
    assert_eq!(r.status, 421, "{r:?}");
    // A browser page on localhost (Origin set, Host fine) is refused as well.
    let mut page = claude("localhost:4060");
    page.push(("origin", "http://localhost:3000"));
    let r = raw(a, "POST", path, &page, MSG).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert!(
        up.requests().is_empty(),
        "nothing may reach the provider: {:?}",
        up.requests()
    );

    // Honest clients: Claude Code (localhost), the SDKs (127.0.0.1, [::1]
    // style), and the browser-access *header* (not an Origin).
    for host in [
        "localhost:4060",
        "127.0.0.1:4060",
        "LOCALHOST",
        "[::1]:4060",
    ] {
        let r = raw(a, "POST", path, &claude(host), MSG).await;
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
    let mut direct = claude("localhost:4060");
    direct.push(("anthropic-dangerous-direct-browser-access", "true"));
    assert_eq!(raw(a, "POST", path, &direct, MSG).await.status, 200);

    // A listener that allows one origin lets exactly that one in.
    let b = gw.addr(4061);
    let mut app = claude("localhost:4061");
    app.push(("origin", "https://app.example.com"));
    assert_eq!(raw(b, "POST", path, &app, MSG).await.status, 200);
    let mut other = claude("localhost:4061");
    other.push(("origin", "https://evil.example.com"));
    assert_eq!(raw(b, "POST", path, &other, MSG).await.status, 403);
}

#[tokio::test]
async fn listener_client_keys_are_required_and_never_forwarded() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let openai = format!(
        "- name: codex\n  matches:\n  - path:\n      pathPrefix: /codex\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n    backendAuth:\n      key: sk-openai-provider\n  backends:\n  - ai:\n      name: codex\n      provider:\n        openAI: {{}}\n      hostOverride: http://{}\n",
        up.addr()
    );
    let openai: String = openai.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "binds:\n- port: 4060\n  listeners:\n  - name: default\n    auth:\n      keys: [$GW_KEY]\n    routes:\n{}{openai}",
        route("claude", "/claude", &up, true, 4),
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let a = gw.addr(4060);
    let path = "/claude/v1/messages";
    let mut h = claude("localhost:4060");
    // `x-api-key: client-key` is not a gateway key.
    let r = raw(a, "POST", path, &h, MSG).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    h.retain(|(k, _)| *k != "x-api-key");
    assert_eq!(raw(a, "POST", path, &h, MSG).await.status, 401);
    let near = format!("{GW_KEY}x");
    h.push(("x-api-key", &near));
    assert_eq!(raw(a, "POST", path, &h, MSG).await.status, 401);
    assert!(up.requests().is_empty());

    // Claude Code with ANTHROPIC_API_KEY set to the gateway key.
    h.pop();
    h.push(("x-api-key", GW_KEY));
    let r = raw(a, "POST", path, &h, MSG).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-api-key"), Some(PROVIDER_KEY));
    assert!(
        seen.headers.iter().all(|(_, v)| !v.contains(GW_KEY)),
        "{:?}",
        seen.headers
    );

    // An OpenAI SDK sends it as a bearer token.
    let bearer = format!("Bearer {GW_KEY}");
    let oh = vec![
        ("host", "127.0.0.1:4060"),
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let body = r#"{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}"#;
    let r = raw(a, "POST", "/codex/v1/chat/completions", &oh, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.last_request().unwrap();
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-openai-provider")
    );
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(GW_KEY)));
}

#[tokio::test]
async fn clients_cannot_pick_the_bill_when_the_gateway_pays() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let codex = |name: &str, prefix: &str, pass: &str| {
        format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: {prefix}\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n    backendAuth:\n      key: $PROVIDER_KEY\n{pass}  backends:\n  - ai:\n      name: {name}\n      provider:\n        openAI: {{}}\n      hostOverride: http://{}\n",
            up.addr()
        )
    };
    let yaml = format!(
        "binds:\n- port: 4060\nroutes:\n{}{}",
        codex("codex", "/codex", ""),
        codex("team", "/team", "      passHeaders: [OpenAI-Project]\n"),
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let a = gw.addr(4060);
    let h = vec![
        ("host", "localhost:4060"),
        ("content-type", "application/json"),
        ("authorization", "Bearer whatever"),
        ("OpenAI-Organization", "org-attacker"),
        ("OpenAI-Project", "proj-attacker"),
        ("anthropic-workspace-id", "wrk-attacker"),
        ("openai-beta", "assistants=v2"),
    ];
    let body = r#"{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        raw(a, "POST", "/codex/v1/chat/completions", &h, body)
            .await
            .status,
        200
    );
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("openai-organization"), None);
    assert_eq!(seen.header("openai-project"), None);
    assert_eq!(seen.header("anthropic-workspace-id"), None);
    assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );

    assert_eq!(
        raw(a, "POST", "/team/v1/chat/completions", &h, body)
            .await
            .status,
        200
    );
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("openai-project"), Some("proj-attacker"));
    assert_eq!(seen.header("openai-organization"), None);
}
