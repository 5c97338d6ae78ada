//! The admin listener and reload paths through the real binary: `/healthz`,
//! `GET /config` redaction, `POST /config/reload`, the config-file watcher on
//! its own, and `--log-json`.
//!
//! Every check looks at what the client gets AND what reached the fake
//! upstream; every wait polls an observable condition with a deadline.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, Resp};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// Poll `probe` every 20 ms until it yields `Some`, or panic naming `what`.
pub(crate) async fn poll<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST` an admin endpoint the way a careful operator does: JSON content
/// type, a JSON body, no `Origin`.
pub(crate) async fn admin_post(gw: &Gateway, path: &str) -> Resp {
    TestClient::new()
        .post_json(
            &gw.admin_url(path),
            &h(&[("content-type", "application/json")]),
            &json!({}),
        )
        .await
}

pub(crate) async fn admin_get(gw: &Gateway, path: &str) -> Resp {
    TestClient::new().get(&gw.admin_url(path)).await
}

/// Start the gateway with `extra` arguments before the usual ones.
pub(crate) async fn gateway_with_args(
    extra: &[&str],
    configs: &[&str],
    ports: &[u16],
    envs: &[(&str, &str)],
) -> Gateway {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(["--admin".into(), "127.0.0.1:0".into()]);
    for c in configs {
        args.extend(["--config".into(), c.to_string()]);
    }
    for p in ports {
        args.extend(["--port-map".into(), format!("{p}=0")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::start(Path::new(BIN), &args, envs)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"))
}

/// A plain route `name` on `/{name}` to `up`, `anthropic` or `openAI`.
pub(crate) fn route(name: &str, provider: &str, up: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /{name}\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n{extra}  backends:\n  - ai:\n      name: {name}\n      provider:\n        {provider}: {{}}\n      hostOverride: http://{up}\n"
    )
}

pub(crate) const BINDS: &str =
    "binds:\n- port: 4060\n  listeners:\n  - name: default\n    protocol: HTTP\n";

pub(crate) fn claude_body() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]})
}

pub(crate) fn chat_body() -> Value {
    json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
}

/// One Messages call on route `/{name}`.
pub(crate) async fn claude(c: &TestClient, gw: &Gateway, name: &str) -> Resp {
    c.post_json(
        &gw.url(4060, &format!("/{name}/v1/messages")),
        &h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
        &claude_body(),
    )
    .await
}

/// One Chat Completions call on route `/{name}`.
pub(crate) async fn chat(c: &TestClient, gw: &Gateway, name: &str) -> Resp {
    c.post_json(
        &gw.url(4060, &format!("/{name}/v1/chat/completions")),
        &h(&[("authorization", "Bearer k")]),
        &chat_body(),
    )
    .await
}

async fn config_version(gw: &Gateway) -> u64 {
    admin_get(gw, "/plugins").await.json()["config"]["version"]
        .as_u64()
        .expect("config.version in GET /plugins")
}

#[tokio::test]
async fn healthz_answers_ok_and_touches_nothing_upstream() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s.yaml",
        &format!(
            "{BINDS}routes:\n{}",
            route("claude", "anthropic", up.addr(), "")
        ),
    );
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let r = admin_get(&gw, "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok\n");
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    // The health check is the admin listener's: on the proxy port the same
    // path is just an unrouted request, answered in a provider shape.
    let p = TestClient::new().get(&gw.url(4060, "/healthz")).await;
    assert_eq!(p.status, 404, "{}", p.text());
    assert!(p.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("/healthz"));
    assert!(up.requests().is_empty(), "{:?}", up.requests());
}

#[tokio::test]
async fn get_config_redacts_env_secrets_and_backend_keys() {
    const KEY: &str = "sk-ant-api03-redaction-probe-7f3a";
    const OAI: &str = "sk-proj-redaction-probe-19c2";
    const JWT: &str = "hs256-redaction-probe-secret-value-0042";
    const TEAM: &str = "team-token-redaction-probe-55";
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let claude_route = route(
        "claude",
        "anthropic",
        up.addr(),
        "    backendAuth:\n      key: $ANTHROPIC_API_KEY\n    requestHeaderModifier:\n      set:\n        x-team-token: ${TEAM_TOKEN}\n",
    );
    let codex_route = route(
        "codex",
        "openAI",
        up.addr(),
        "    backendAuth:\n      key: ${OPENAI_API_KEY}\n",
    );
    // The JWT layer reads its own header: the client's `Authorization:
    // Bearer k` is the provider credential that backendAuth replaces, and
    // jwt-auth (even `optional`) refuses a present token that is not a JWT.
    let jwt_layer = "- name: jwt\n  matches:\n  - path:\n      pathPrefix: /codex\n  policies:\n    jwtAuth:\n      secret: $JWT_SECRET\n      mode: optional\n      header: x-gateway-token\n";
    let cfg = write(
        dir.path(),
        "s.yaml",
        &format!("{BINDS}routes:\n{claude_route}{codex_route}{jwt_layer}"),
    );
    let gw = gateway(
        &[&cfg],
        &[4060],
        &[],
        &[
            ("ANTHROPIC_API_KEY", KEY),
            ("OPENAI_API_KEY", OAI),
            ("JWT_SECRET", JWT),
            ("TEAM_TOKEN", TEAM),
        ],
    )
    .await;
    let c = TestClient::new();

    // The secrets are live: they reach the upstream where they belong.
    assert_eq!(claude(&c, &gw, "claude").await.status, 200);
    let u = up.last_request().unwrap();
    assert_eq!(u.header("x-api-key"), Some(KEY));
    assert_eq!(u.header("x-team-token"), Some(TEAM));
    assert_eq!(chat(&c, &gw, "codex").await.status, 200);
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {OAI}").as_str())
    );
    // The JWT layer is live on /codex: a token that is not a JWT is refused
    // there, before anything goes upstream.
    let refused = c
        .post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[
                ("authorization", "Bearer k"),
                ("x-gateway-token", "not-a-jwt"),
            ]),
            &chat_body(),
        )
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"]["type"], "authentication_error");
    assert_eq!(up.requests().len(), 2, "{:?}", up.requests());

    let r = admin_get(&gw, "/config").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for secret in [KEY, OAI, JWT, TEAM] {
        assert!(
            !text.contains(secret),
            "{secret} leaked in GET /config:\n{text}"
        );
    }
    assert!(text.contains("<redacted>"), "{text}");
    let v = r.json();
    let routes = v["routes"].as_array().expect("routes");
    let find = |name: &str| {
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .chain(v["layers"].as_array().unwrap())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no route {name} in {v:#}"))
            .clone()
    };
    assert_eq!(routes.len(), 2, "{v:#}");
    assert_eq!(
        find("claude")["policies"]["backendAuth"],
        json!({"key": "<redacted>"}),
        "{v:#}"
    );
    assert_eq!(
        find("codex")["policies"]["backendAuth"],
        json!({"key": "<redacted>"})
    );
    // Env values inside plugin configs are redacted where they sit; the rest
    // of the plugin config stays readable.
    let layer = find("jwt");
    let att = &layer["policies"]["attachments"][0];
    assert_eq!(att["plugin"], "jwt-auth", "{layer:#}");
    assert_eq!(
        att["config"]["jwtAuth"]["secret"], "<redacted>",
        "{layer:#}"
    );
    assert_eq!(att["config"]["jwtAuth"]["mode"], "optional", "{layer:#}");
    assert!(find("claude").to_string().contains("x-team-token"));

    // Nowhere else either: the other admin endpoints and the logs.
    for path in ["/plugins", "/metrics"] {
        let body = admin_get(&gw, path).await.text();
        for secret in [KEY, OAI, JWT, TEAM] {
            assert!(!body.contains(secret), "{secret} leaked in {path}");
        }
    }
    let logs = gw.logs();
    for secret in [KEY, OAI, JWT, TEAM] {
        assert!(!logs.contains(secret), "{secret} leaked in the logs");
    }
}

fn two_routes(up: &FakeUpstream, codex: bool) -> String {
    let mut s = format!(
        "{BINDS}routes:\n{}",
        route("claude", "anthropic", up.addr(), "")
    );
    if codex {
        s.push_str(&route("codex", "openAI", up.addr(), ""));
    }
    s
}

#[tokio::test]
async fn post_config_reload_adds_a_route_and_refuses_a_broken_config() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &two_routes(&up, false));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    assert_eq!(chat(&c, &gw, "codex").await.status, 404);
    assert!(
        up.requests().is_empty(),
        "an unrouted request went upstream"
    );

    std::fs::write(&cfg, two_routes(&up, true)).unwrap();
    let r = admin_post(&gw, "/config/reload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["result"], "swapped", "{v:#}");
    let v2 = v["version"].as_u64().unwrap();
    assert!(v2 >= 2, "{v:#}");
    // The answer comes after the swap: the new route serves right away.
    let r = chat(&c, &gw, "codex").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = up
        .last_request()
        .expect("the new route reached the upstream");
    assert_eq!(u.path, "/v1/chat/completions");
    assert_eq!(u.json()["model"], "gpt-5");

    // Broken configs, each refused with a reason naming what is wrong; the
    // old config keeps serving both routes.
    let broken: Vec<(String, &str)> = vec![
        ("routes: [ {name: broken".into(), "sluice.yaml"),
        (
            format!("{}    retries: 3\n", two_routes(&up, true)),
            "retries",
        ),
        (
            two_routes(&up, true).replace(
                "  policies:\n    urlRewrite",
                "  policies:\n    rateLimit:\n      requestsPerFortnight: 3\n    urlRewrite",
            ),
            "requestsPerFortnight",
        ),
    ];
    for (i, (text, needle)) in broken.iter().enumerate() {
        std::fs::write(&cfg, text).unwrap();
        let r = admin_post(&gw, "/config/reload").await;
        assert_eq!(r.status, 422, "case {i}: {}", r.text());
        let v = r.json();
        assert_eq!(v["result"], "refused", "case {i}: {v:#}");
        assert_eq!(v["servingVersion"].as_u64(), Some(v2), "case {i}: {v:#}");
        let reason = v["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "case {i}: {reason}");
        if i < 2 {
            assert!(
                reason.contains("sluice.yaml"),
                "case {i}: names the file: {reason}"
            );
        }
        let before = up.requests().len();
        assert_eq!(chat(&c, &gw, "codex").await.status, 200, "case {i}");
        assert_eq!(claude(&c, &gw, "claude").await.status, 200, "case {i}");
        assert_eq!(up.requests().len(), before + 2, "case {i}");
        let report = admin_get(&gw, "/plugins").await.json();
        assert_eq!(report["config"]["version"].as_u64(), Some(v2), "case {i}");
        assert!(
            report["config"]["lastError"]
                .as_str()
                .is_some_and(|e| e.contains(needle)),
            "case {i}: {report:#}"
        );
    }
    // At least the three refusals above; the file watcher sees the same
    // writes and may refuse some of them too, before or after the POST.
    let m = admin_get(&gw, "/metrics").await.text();
    let refused = m
        .lines()
        .find_map(|l| l.strip_prefix(r#"sluice_reloads_total{kind="config",result="refused"} "#))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 3), "{m}");

    // Back to one route: the removed route stops serving.
    std::fs::write(&cfg, two_routes(&up, false)).unwrap();
    let r = admin_post(&gw, "/config/reload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"].as_u64(), Some(v2 + 1));
    let before = up.requests().len();
    let r = chat(&c, &gw, "codex").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(up.requests().len(), before);
}

#[tokio::test]
async fn the_watcher_alone_picks_up_config_edits() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sluice.yaml", &two_routes(&up, false));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    assert_eq!(chat(&c, &gw, "codex").await.status, 404);
    let v1 = config_version(&gw).await;

    // Edited in place (no signal, no admin call). The watcher is set up
    // right after start, so an edit racing it is written again: a watcher
    // that never fires still fails this.
    std::fs::write(&cfg, two_routes(&up, true)).unwrap();
    let mut rewrites = 0;
    let t0 = Instant::now();
    poll(
        "the watcher reloads an in-place edit",
        Duration::from_secs(15),
        || {
            let (c, gw) = (&c, &gw);
            if t0.elapsed() > Duration::from_secs(3 * (rewrites + 1)) && rewrites < 2 {
                rewrites += 1;
                std::fs::write(&cfg, two_routes(&up, true)).unwrap();
            }
            async move { (chat(c, gw, "codex").await.status == 200).then_some(()) }
        },
    )
    .await;
    let v2 = config_version(&gw).await;
    assert!(v2 > v1, "{v1} -> {v2}");
    let u = up.last_request().unwrap();
    assert_eq!(u.path, "/v1/chat/completions");

    // A broken edit: refused, the last good config keeps serving.
    std::fs::write(&cfg, "routes: [ {name: broken").unwrap();
    poll(
        "the refusal is reported",
        Duration::from_secs(10),
        || async {
            let r = admin_get(&gw, "/plugins").await.json();
            r["config"]["lastError"].is_string().then_some(())
        },
    )
    .await;
    assert_eq!(config_version(&gw).await, v2);
    assert_eq!(chat(&c, &gw, "codex").await.status, 200);

    // Editor style: a temp file renamed over the config removes the route.
    let tmp = dir.path().join("sluice.yaml.tmp~");
    std::fs::write(&tmp, two_routes(&up, false)).unwrap();
    std::fs::rename(&tmp, &cfg).unwrap();
    poll(
        "the watcher reloads a rename-over",
        Duration::from_secs(10),
        || async { (chat(&c, &gw, "codex").await.status == 404).then_some(()) },
    )
    .await;
    let report = admin_get(&gw, "/plugins").await.json();
    assert!(report["config"]["lastError"].is_null(), "{report:#}");
    assert!(report["config"]["version"].as_u64().unwrap() > v2);
    assert_eq!(claude(&c, &gw, "claude").await.status, 200);
}

#[tokio::test]
async fn log_json_lines_parse_and_the_access_line_has_its_fields_and_no_secret() {
    const KEY: &str = "sk-ant-api03-logjson-probe-0b7d";
    const CLIENT: &str = "sk-ant-client-credential-logjson-77";
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s.yaml",
        &format!(
            "{BINDS}routes:\n{}",
            route(
                "claude",
                "anthropic",
                up.addr(),
                "    backendAuth:\n      key: $ANTHROPIC_API_KEY\n"
            )
        ),
    );
    let gw = gateway_with_args(
        &["--log-json", "--log-level", "info,sluice=debug"],
        &[&cfg],
        &[4060],
        &[("ANTHROPIC_API_KEY", KEY)],
    )
    .await;
    let c = TestClient::new();
    let bearer = format!("Bearer {CLIENT}");
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[
                ("x-api-key", CLIENT),
                ("authorization", bearer.as_str()),
                ("x-request-id", "req-logjson-1"),
            ]),
            &claude_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.last_request().unwrap().header("x-api-key"), Some(KEY));
    // An error path logs too (no route).
    assert_eq!(claude(&c, &gw, "nowhere").await.status, 404);

    let access = poll("the access-log line", Duration::from_secs(10), || async {
        gw.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["target"] == "sluice::access" && v["fields"]["request_id"] == "req-logjson-1"
            })
    })
    .await;
    let logs = gw.logs();
    let mut n = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
        assert!(v["timestamp"].is_string(), "no timestamp: {line}");
        n += 1;
    }
    assert!(n >= 3, "too few log lines: {logs}");
    let f = &access["fields"];
    assert_eq!(access["level"], "INFO");
    assert_eq!(f["message"], "request");
    assert_eq!(f["route"], "claude");
    assert_eq!(f["provider"], "anthropic");
    assert_eq!(f["method"], "POST");
    assert_eq!(f["path"], "/claude/v1/messages");
    assert_eq!(f["model"], "claude-sonnet-4-5");
    assert_eq!(f["status"], 200);
    assert_eq!(f["input_tokens"], 11);
    assert_eq!(f["output_tokens"], 7);
    assert!(f["duration_ms"].is_number(), "{access}");
    assert!(f["ttfb_ms"].is_number(), "{access}");
    assert!(f["bytes"].as_u64().unwrap_or(0) > 0, "{access}");
    for secret in [KEY, CLIENT] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
    assert!(
        logs.lines().any(|l| l.contains("\"status\":404")),
        "the unrouted request is logged: {logs}"
    );
}
