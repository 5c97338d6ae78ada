//! The policy runtime through the real binary: plugins named in a config run
//! at their hooks, share attributes and counters, and fail as configured
//! without taking the gateway down.

use crate::common::*;
use serde_json::json;
use sluice::policy::testing::fixture;
use sluice_testkit::client::TestClient;
use sluice_testkit::metrics::metric;
use sluice_testkit::{FakeUpstream, Gateway, Script};

/// A config with every fixture declared and one route per scenario.
fn config(up: std::net::SocketAddr) -> String {
    let p = |n: &str| fixture(n).display().to_string();
    let route = |name: &str, policies: &str| {
        format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /{name}\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n{policies}  backends:\n  - ai:\n      name: {name}\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{up}\n"
        )
    };
    let mut s = String::from("binds:\n- port: 4400\nplugins:\n");
    for (name, fx, extra) in [
        ("deny", "deny", ""),
        ("rewrite", "header-rewrite", ""),
        ("upper", "sse-rewrite", ""),
        ("body", "body-rewrite", ""),
        ("writer", "attr-writer", ""),
        ("reader", "attr-reader", ""),
        ("outer-reader", "attr-reader", ""),
        ("counter", "counter", ""),
        ("spin-closed", "spin", "  deadline: 500ms\n"),
        (
            "spin-open",
            "spin",
            "  deadline: 500ms\n  failureMode: open\n",
        ),
        ("bomb-closed", "membomb", "  memoryLimit: 16MiB\n"),
        (
            "bomb-open",
            "membomb",
            "  memoryLimit: 16MiB\n  failureMode: open\n",
        ),
        ("trap-closed", "trap", ""),
        ("trap-open", "trap", "  failureMode: open\n"),
    ] {
        s.push_str(&format!("- name: {name}\n  path: {}\n{extra}", p(fx)));
    }
    s.push_str("routes:\n");
    s.push_str(&route(
        "denied",
        "    deny:\n      message: no entry here\n",
    ));
    s.push_str(&route(
        "headers",
        "    rewrite:\n      request:\n        set: [[x-added, yes]]\n        remove: [x-drop]\n      response:\n        set: [[x-resp, done]]\n",
    ));
    s.push_str(&route("upper", "    upper: {}\n"));
    s.push_str(&route(
        "body",
        "    body:\n      field: max_tokens\n      value: 7\n",
    ));
    s.push_str(&route(
        "attrs",
        "    outer-reader:\n      key: team\n      header: x-team-outer\n      order_header: x-order-outer\n    writer:\n      key: team\n      value: blue\n      tag: W\n    reader:\n      key: team\n      header: x-team\n      order_header: x-order-inner\n",
    ));
    s.push_str(&route("count", "    counter:\n      key: shared\n"));
    // Failure fixtures misbehave on every path but `/ok`: select them by header
    // so the same attachment can be asked for `/ok` afterwards.
    for f in ["spin", "bomb", "trap"] {
        for m in ["closed", "open"] {
            s.push_str(&format!(
                "- name: {f}-{m}\n  matches:\n  - headers:\n    - name: x-fixture\n      value:\n        exact: {f}-{m}\n  policies:\n    {f}-{m}: {{}}\n  backends:\n  - ai:\n      name: {f}\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{up}\n"
            ));
        }
    }
    s
}

async fn start() -> (FakeUpstream, Gateway, tempfile::TempDir) {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "policies.yaml", &config(up.addr()));
    let gw = gateway(&[&cfg], &[4400], &[], &[]).await;
    (up, gw, dir)
}

fn body() -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn deny_plugin_answers_in_the_provider_shape() {
    let (up, gw, _d) = start().await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4400, "/denied/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert_eq!(r.json()["error"]["message"], "no entry here");
    assert_eq!(r.header("x-denied-by"), Some("deny"));
    assert!(
        up.requests().is_empty(),
        "nothing goes upstream after a deny"
    );
}

#[tokio::test]
async fn header_rewrites_both_ways() {
    let (up, gw, _d) = start().await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4400, "/headers/v1/messages"),
            &h(&[("x-api-key", "k"), ("x-drop", "1")]),
            &body(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-resp"), Some("done"));
    let u = up.last_request().unwrap();
    assert_eq!(u.header("x-added"), Some("yes"));
    assert_eq!(u.header("x-drop"), None);
}

#[tokio::test]
async fn sse_events_are_rewritten_whole_even_when_split() {
    let (up, gw, _d) = start().await;
    up.set_script(Script::text("hello world").deltas(["hel", "lo wor", "ld"]));
    let mut b = body();
    b["stream"] = json!(true);
    let s = TestClient::new()
        .stream_sse_full(
            &gw.url(4400, "/upper/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &b,
        )
        .await;
    assert_eq!(s.status, 200);
    let text: String = s
        .events
        .iter()
        .filter(|(_, e)| e.event.as_deref() == Some("content_block_delta"))
        .map(|(_, e)| e.json()["delta"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(text, "HELLO WORLD");
    // The fixture flushes one `tail` event at the end of the stream.
    let names = s.names();
    assert_eq!(names[names.len() - 2..], ["message_stop", "tail"]);
}

#[tokio::test]
async fn request_and_response_bodies_are_rewritten() {
    let (up, gw, _d) = start().await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4400, "/body/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = up.last_request().unwrap();
    assert_eq!(u.json()["max_tokens"], 7);
    assert_eq!(
        u.header("content-length"),
        Some(u.body.len().to_string().as_str())
    );
    assert_eq!(
        r.json()["max_tokens"],
        7,
        "the response body went through the plugin too"
    );
    assert_eq!(r.json()["usage"]["input_tokens"], 11);
}

#[tokio::test]
async fn attributes_pass_between_plugins_and_response_hooks_run_in_reverse() {
    let (up, gw, _d) = start().await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4400, "/attrs/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body(),
        )
        .await;
    assert_eq!(r.status, 200);
    let u = up.last_request().unwrap();
    // Request hooks run in order: the outer reader before the writer set it.
    assert_eq!(u.header("x-team-outer"), Some("<absent>"));
    assert_eq!(u.header("x-team"), Some("blue"));
    // Response hooks run in reverse: the inner reader first (nothing yet),
    // then the writer appends "W", then the outer reader sees it.
    assert_eq!(r.header("x-order-inner"), Some(""));
    assert_eq!(r.header("x-order-outer"), Some("W"));
}

#[tokio::test]
async fn counters_are_shared_across_concurrent_requests() {
    let (_up, gw, _d) = start().await;
    let c = TestClient::new();
    let url = gw.url(4400, "/count/v1/messages");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.post_json(&url, &h(&[("x-api-key", "k")]), &body()).await;
            r.header("x-count").unwrap().parse::<u32>().unwrap()
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<_>>(),
        "every request saw a distinct total"
    );
    // The plugin's own metric, under its documented name.
    let m = c.get(&gw.admin_url("/metrics")).await.text();
    assert_eq!(
        metric(&m, "sluice_plugin_requests_total", &[("plugin", "counter")]),
        Some(20.0),
        "{m}"
    );
}

async fn failure_mode(gw: &Gateway, up: &FakeUpstream, name: &str) {
    let c = TestClient::new();
    let closed_h = h(&[("x-api-key", "k"), ("x-fixture", &format!("{name}-closed"))]);
    let open_h = h(&[("x-api-key", "k"), ("x-fixture", &format!("{name}-open"))]);
    let before = up.requests().len();
    let closed = c
        .post_json(&gw.url(4400, "/v1/messages"), &closed_h, &body())
        .await;
    assert_eq!(closed.status, 500, "{name} closed: {}", closed.text());
    assert_eq!(closed.json()["type"], "error", "{}", closed.text());
    assert_eq!(closed.json()["error"]["type"], "api_error");
    assert_eq!(
        up.requests().len(),
        before,
        "{name} closed: nothing goes upstream"
    );
    let open = c
        .post_json(&gw.url(4400, "/v1/messages"), &open_h, &body())
        .await;
    assert_eq!(open.status, 200, "{name} open: the plugin is skipped");
    assert_eq!(up.requests().len(), before + 1);
    // The same attachment keeps serving (a fresh instance replaces the broken one).
    let ok = c.post_json(&gw.url(4400, "/ok"), &closed_h, &body()).await;
    assert_eq!(
        ok.status, 404,
        "{name}: /ok reaches the upstream, which 404s unknown paths"
    );
    assert_eq!(up.requests().len(), before + 2);
    assert_eq!(up.last_request().unwrap().path_and_query(), "/ok");
}

#[tokio::test]
async fn failures_fail_closed_or_open_and_the_gateway_keeps_serving() {
    let (up, gw, _d) = start().await;
    for f in ["spin", "bomb", "trap"] {
        failure_mode(&gw, &up, f).await;
    }
    // Other routes were never disturbed.
    let r = TestClient::new()
        .post_json(
            &gw.url(4400, "/headers/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body(),
        )
        .await;
    assert_eq!(r.status, 200);
    let logs = gw.logs();
    assert!(
        logs.contains("spin-closed"),
        "failures are logged with the plugin name"
    );
    let m = TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text();
    // Each fixture failed twice (closed and open), each counted by kind.
    for (plugin, kind) in [
        ("spin-closed", "deadline"),
        ("spin-open", "deadline"),
        ("bomb-closed", "memory"),
        ("bomb-open", "memory"),
        ("trap-closed", "trap"),
        ("trap-open", "trap"),
    ] {
        assert_eq!(
            metric(
                &m,
                "sluice_policy_traps_total",
                &[("plugin", plugin), ("kind", kind)]
            ),
            Some(1.0),
            "{plugin}: {m}"
        );
    }
}
