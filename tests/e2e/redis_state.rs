//! Redis-backed shared state through the real binary and a real
//! `redis-server` per test: limits shared exactly by two replicas, key
//! prefixes, the failure modes during an outage and recovery after it,
//! plugin key isolation, token-bucket refill, the sliding-window script
//! against a real server, and the `state:` config.

use crate::common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, RedisServer, Resp, Script};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn state_file(dir: &Path, name: &str, body: &str) -> String {
    write(dir, name, &format!("state:\n{body}"))
}

fn redis_state(url: &str, prefix: &str, mode: &str, replica: &str) -> String {
    format!(
        "  replicaId: {replica}\n  redis:\n    url: {url}\n    keyPrefix: \"{prefix}\"\n    timeout: 300ms\n    failureMode: {mode}\n"
    )
}

/// A policy layer on `/claude` with this `policies:` body (YAML, indented 4).
fn layer(dir: &Path, name: &str, policies: &str) -> String {
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n{policies}"
        ),
    )
}

async fn start_gw(files: &[String]) -> Gateway {
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    gateway(&refs, &[4060], &[], &[]).await
}

async fn claude(c: &TestClient, gw: &Gateway) -> Resp {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]});
    c.post_json(
        &gw.url(4060, "/claude/v1/messages"),
        &h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
        &body,
    )
    .await
}

async fn codex(c: &TestClient, gw: &Gateway) -> Resp {
    let body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]});
    c.post_json(
        &gw.url(4060, "/codex/v1/chat/completions"),
        &h(&[("authorization", "Bearer k")]),
        &body,
    )
    .await
}

async fn metrics(gw: &Gateway) -> String {
    TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text()
}

/// The value of the first sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every sample line starting with `prefix`.
fn total(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Total (`t`) of the single sliding window whose key contains `needle`.
fn counter_value(redis: &RedisServer, needle: &str) -> Option<i64> {
    let keys = redis.keys(&format!("*{needle}*"));
    let key = keys.first()?;
    let mut c = redis.connect().ok()?;
    redis::cmd("HGET").arg(key).arg("t").query(&mut c).ok()?
}

async fn wait_counter(redis: &RedisServer, needle: &str, want: i64) {
    let t0 = Instant::now();
    while counter_value(redis, needle) != Some(want) {
        assert!(
            t0.elapsed() < WAIT,
            "counter {needle} never reached {want}: {:?}",
            counter_value(redis, needle)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_request_limit_exactly() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "limit",
        "    rateLimit:\n      requestsPerHour: 100\n",
    );
    let serving = serving(dir.path(), up.addr());
    let a_state = state_file(
        dir.path(),
        "a.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw-a"),
    );
    let b_state = state_file(
        dir.path(),
        "b.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw-b"),
    );
    let a = start_gw(&[serving.clone(), limit.clone(), a_state]).await;
    let b = start_gw(&[serving, limit, b_state]).await;

    // 130 concurrent requests, split unevenly (80 on a, 50 on b).
    let c = TestClient::new();
    let calls = (0..130).map(|i| {
        let gw = if i % 13 < 8 { &a } else { &b };
        claude(&c, gw)
    });
    let statuses: Vec<u16> = join_all(calls).await.iter().map(|r| r.status).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, refused), (100, 30), "{statuses:?}");
    assert_eq!(up.requests().len(), 100);
    // And each replica still refuses.
    assert_eq!(claude(&c, &a).await.status, 429);
    assert_eq!(claude(&c, &b).await.status, 429);
    let m = metrics(&a).await;
    assert!(
        m.contains(r#"sluice_replica_info{replica="gw-a",state="redis"} 1"#),
        "{m}"
    );
    assert!(a.logs().contains("gw-a"), "{}", a.logs());
}

#[tokio::test]
async fn two_replicas_share_one_token_limit() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    up.set_script(Script::default().tokens(11, 7));
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "limit",
        "    rateLimit:\n      tokensPerHour: 30\n",
    );
    let serving = serving(dir.path(), up.addr());
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw"),
    );
    let a = start_gw(&[serving.clone(), limit.clone(), state.clone()]).await;
    let b = start_gw(&[serving, limit, state]).await;
    let c = TestClient::new();
    // 18 tokens per exchange, charged when it completes.
    assert_eq!(claude(&c, &a).await.status, 200);
    wait_counter(&redis, "tokens/30/", 18).await;
    let r = claude(&c, &b).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("12"));
    wait_counter(&redis, "tokens/30/", 36).await;
    for gw in [&a, &b] {
        let r = claude(&c, gw).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(r.text().contains("30 tokens per hour"), "{}", r.text());
    }
}

#[tokio::test]
async fn gateways_with_different_key_prefixes_do_not_collide() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "limit",
        "    rateLimit:\n      requestsPerHour: 2\n",
    );
    let serving = serving(dir.path(), up.addr());
    let a_state = state_file(
        dir.path(),
        "a.yaml",
        &redis_state(&redis.url(), "team-a:", "closed", "a"),
    );
    let b_state = state_file(
        dir.path(),
        "b.yaml",
        &redis_state(&redis.url(), "team-b:", "closed", "b"),
    );
    let a = start_gw(&[serving.clone(), limit.clone(), a_state]).await;
    let b = start_gw(&[serving, limit, b_state]).await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &a).await.status, 200);
    assert_eq!(claude(&c, &a).await.status, 200);
    assert_eq!(claude(&c, &a).await.status, 429);
    // b's budget is untouched.
    assert_eq!(claude(&c, &b).await.status, 200);
    assert_eq!(claude(&c, &b).await.status, 200);
    assert_eq!(claude(&c, &b).await.status, 429);
    let all = redis.keys("*");
    assert!(!all.is_empty());
    for k in &all {
        assert!(
            k.starts_with("team-a:rate-limit:sw:") || k.starts_with("team-b:rate-limit:sw:"),
            "{all:?}"
        );
    }
    assert_eq!(redis.keys("team-a:*").len(), 1, "{all:?}");
    assert_eq!(redis.keys("team-b:*").len(), 1, "{all:?}");
}

/// Poll `send` until `pred` holds for its answer.
async fn until<F, Fut>(what: &str, mut send: F, pred: impl Fn(&Resp) -> bool) -> Resp
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let t0 = Instant::now();
    loop {
        let r = send().await;
        if pred(&r) {
            return r;
        }
        assert!(
            t0.elapsed() < WAIT,
            "{what}: last answer {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn outage_fails_closed_with_503_then_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "limit",
        "    rateLimit:\n      requestsPerHour: 3\n",
    );
    let codex_limit = write(
        dir.path(),
        "codex-limit.yaml",
        "- name: codex-limit\n  matches:\n  - path:\n      pathPrefix: /codex\n  policies:\n    rateLimit:\n      requestsPerHour: 1000\n",
    );
    let serving = serving(dir.path(), up.addr());
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw-closed"),
    );
    let gw = start_gw(&[serving, limit, codex_limit, state]).await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &gw).await.status, 200);

    redis.stop();
    for _ in 0..5 {
        let r = claude(&c, &gw).await;
        assert_eq!(r.status, 503, "{}", r.text());
        let v: Value = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert!(v["error"]["type"].is_string(), "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("shared state"), "{msg}");
    }
    // The OpenAI route answers in OpenAI's shape.
    let r = codex(&c, &gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let v: Value = r.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shared state"),
        "{v}"
    );
    assert!(v.get("type").is_none(), "{v}");
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "sluice_state_up "), Some(0.0), "{m}");
    assert!(total(&m, "sluice_state_errors_total{") >= 6.0, "{m}");
    let logs = gw.logs();
    assert_eq!(logs.matches("state store down").count(), 1, "{logs}");

    redis.restart();
    // Recovers without a gateway restart; the restarted Redis is empty.
    until("recovery", || claude(&c, &gw), |r| r.status == 200).await;
    assert_eq!(claude(&c, &gw).await.status, 200);
    assert_eq!(claude(&c, &gw).await.status, 200);
    let r = claude(&c, &gw).await;
    assert_eq!(r.status, 429, "limits enforced again: {}", r.text());
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "sluice_state_up "), Some(1.0), "{m}");
    let logs = gw.logs();
    assert_eq!(
        logs.matches("state store reachable again").count(),
        1,
        "{logs}"
    );
    assert_eq!(logs.matches("state store down").count(), 1, "{logs}");
}

#[tokio::test]
async fn outage_fails_open_and_lets_requests_through_then_recovers() {
    let mut redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "limit",
        "    rateLimit:\n      requestsPerHour: 2\n",
    );
    let serving = serving(dir.path(), up.addr());
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "open", "gw-open"),
    );
    let gw = start_gw(&[serving, limit, state]).await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &gw).await.status, 200);
    assert_eq!(claude(&c, &gw).await.status, 200);
    assert_eq!(claude(&c, &gw).await.status, 429);

    redis.stop();
    for _ in 0..4 {
        let r = claude(&c, &gw).await;
        assert_eq!(
            r.status,
            200,
            "open: allowed during the outage: {}",
            r.text()
        );
    }
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "sluice_state_up "), Some(0.0), "{m}");
    assert_eq!(gw.logs().matches("state store down").count(), 1);

    redis.restart();
    // Once Redis answers again the (fresh) counter is used: remaining drops
    // below the limit instead of the "store empty" answer.
    until(
        "recovery",
        || claude(&c, &gw),
        |r| r.header("x-ratelimit-remaining") == Some("1"),
    )
    .await;
    assert_eq!(claude(&c, &gw).await.status, 200);
    assert_eq!(claude(&c, &gw).await.status, 429);
    assert_eq!(gw.logs().matches("state store reachable again").count(), 1);
}

#[tokio::test]
async fn a_plugin_cannot_touch_another_plugins_keys() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let probe = sluice::policy::testing::fixture("state-probe");
    let probe = probe.display();
    // Two declarations of the same fixture are two plugins: `alice` keeps a
    // secret; `mallory` tries to overwrite it and to give `rate-limit` back
    // its budget, under every spelling of their keys.
    let rl_key = "rate-limit:requests/2/3600000ms/route:route=claude-agent";
    let decls = write(
        dir.path(),
        "plugins.yaml",
        &format!(
            r#"plugins:
- name: alice
  path: {probe}
- name: mallory
  path: {probe}
"#
        ),
    );
    let policies = format!(
        r#"    rateLimit:
      requestsPerHour: 2
    alice:
      tag: alice
      set: [["secret", "alice-value"]]
      get: ["secret"]
    mallory:
      tag: mallory
      incr:
      - {{key: "{rl_key}", delta: -1000}}
      - {{key: "rate-limit:{rl_key}", delta: -1000}}
      - {{key: "../rate-limit:{rl_key}", delta: -1000}}
      set: [["alice:secret", "forged"], ["secret", "mallory-value"], ["rate-limit:x", "y"]]
      get: ["alice:secret", "secret"]
"#
    );
    // Each probe reads, then writes; mallory runs after alice. What alice
    // reads on the second request shows whether mallory reached her key.
    let l = layer(dir.path(), "probe", &policies);
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw"),
    );
    let gw = start_gw(&[decls, serving(dir.path(), up.addr()), l, state]).await;
    let c = TestClient::new();
    let r = claude(&c, &gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-alice-get-0"), Some("<none>"));
    assert_eq!(r.header("x-mallory-get-0"), Some("<none>"));
    assert_eq!(
        r.header("x-mallory-get-1"),
        Some("<none>"),
        "alice's key leaked"
    );
    let r = claude(&c, &gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-alice-get-0"),
        Some("alice-value"),
        "mallory wrote it"
    );
    assert_eq!(r.header("x-mallory-get-0"), Some("forged"));
    assert_eq!(r.header("x-mallory-get-1"), Some("mallory-value"));
    // The rate limit still holds: mallory's decrements hit its own counters.
    let r = claude(&c, &gw).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let keys = redis.keys("*");
    assert!(
        keys.contains(&"sluice:alice:kv:secret".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"sluice:mallory:kv:alice:secret".to_string()),
        "{keys:?}"
    );
    for k in &keys {
        let plugin = k
            .strip_prefix("sluice:")
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert!(
            ["rate-limit", "alice", "mallory"].contains(&plugin),
            "{keys:?}"
        );
    }
    let mut conn = redis.connect().unwrap();
    let secret: String = redis::cmd("GET")
        .arg("sluice:alice:kv:secret")
        .query(&mut conn)
        .unwrap();
    assert_eq!(secret, "alice-value");
}

#[tokio::test]
async fn local_rate_limit_bucket_refills_through_redis() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // 2 tokens, one back every 2 s: a burst of 2, then one at a time.
    let l = layer(
        dir.path(),
        "bucket",
        "    localRateLimit:\n    - maxTokens: 2\n      tokensPerFill: 1\n      fillInterval: 2s\n      type: requests\n",
    );
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw"),
    );
    let serving = serving(dir.path(), up.addr());
    let a = start_gw(&[serving.clone(), l.clone(), state.clone()]).await;
    let b = start_gw(&[serving, l, state]).await;
    let c = TestClient::new();
    assert_eq!(claude(&c, &a).await.status, 200);
    assert_eq!(claude(&c, &b).await.status, 200);
    let r = claude(&c, &a).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(redis.keys("sluice:rate-limit:tb:*").len(), 1);
    // One token comes back per interval: poll until one is allowed, then the
    // very next request is refused again (only one came back).
    until("refill", || claude(&c, &b), |r| r.status == 200).await;
    let r = claude(&c, &a).await;
    assert_eq!(r.status, 429, "one fill adds one token: {}", r.text());
}

#[test]
fn state_config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "state.yaml",
        "binds:\n- port: 4060\nstate:\n  redis:\n    url: redis://:hunter2@127.0.0.1:6379\n    poolsize: 4\n    failureMode: sometimes\n",
    );
    let out = sluice_testkit::gateway::run(Path::new(BIN), &["validate", "--config", &f], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("state.yaml:6"), "{text}");
    assert!(text.contains("state.redis.poolsize"), "{text}");
    assert!(text.contains("poolSize"), "did you mean: {text}");
    assert!(text.contains("state.yaml:7"), "{text}");
    assert!(text.contains("state.redis.failureMode"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn reload_that_changes_state_is_refused_and_get_config_hides_the_password() {
    let redis = RedisServer::start_with(Some("hunter2-secret"));
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.yaml");
    let state = state_file(
        dir.path(),
        "state.yaml",
        &redis_state(&redis.url(), "sluice:", "closed", "gw"),
    );
    let gw = start_gw(&[serving(dir.path(), up.addr()), state]).await;
    let c = TestClient::new();
    let dumped = c.get(&gw.admin_url("/config")).await.text();
    assert!(!dumped.contains("hunter2"), "{dumped}");
    assert!(dumped.contains("\"keyPrefix\""), "{dumped}");

    std::fs::write(&state_path, "state: memory\n").unwrap();
    let r = c
        .post_json(&gw.admin_url("/config/reload"), &h(&[]), &json!({}))
        .await;
    assert!(
        r.text().contains("needs a restart"),
        "{} {}",
        r.status,
        r.text()
    );
    assert_ne!(r.status, 200, "{}", r.text());
    // Still serving, still on Redis.
    assert_eq!(claude(&c, &gw).await.status, 200);
    let logs = gw.logs();
    assert!(!logs.contains("hunter2"), "{logs}");
}

/// The sliding-window Lua script against a real server, on Redis time: the
/// same answers as the memory backend (`window.rs`), bounded fields and
/// expiry.
#[test]
fn redis_sliding_windows_count_like_the_memory_backend() {
    use sluice::policy::state::{RedisOptions, RedisState, StateStore, WindowLimit};
    use std::sync::Arc;
    let redis = RedisServer::start();
    let backend = RedisState::new(RedisOptions {
        url: redis.url(),
        key_prefix: "t:".into(),
        pool_size: 1,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let store = StateStore::over(Arc::new(backend));
    let lim = |key: &str, amount: u64, limit: u64, ms: u64| WindowLimit {
        key: key.into(),
        amount,
        limit,
        window: Duration::from_millis(ms),
    };
    let take = |l: &[WindowLimit], force: bool| store.window_take("p", l, force).unwrap();
    const HOUR: u64 = 3_600_000;

    // An hour of 3: the fourth waits until the first ages out, ~1 h later.
    let t0 = redis.time_ms();
    for n in 1..=3 {
        let r = take(&[lim("h", 1, 3, HOUR)], false)[0];
        assert!(r.allowed && r.total == n && r.remaining == 3 - n, "{r:?}");
    }
    let r = take(&[lim("h", 1, 3, HOUR)], false)[0];
    let t1 = redis.time_ms();
    assert!(!r.allowed && r.total == 3 && r.remaining == 0, "{r:?}");
    let lo = (t0 / 36_000 + 1) * 36_000 + HOUR - t1;
    let hi = (t1 / 36_000 + 1) * 36_000 + HOUR - t0;
    let retry = r.retry_after.as_millis() as u64;
    assert!((lo..=hi).contains(&retry), "{retry} not in {lo}..={hi}");
    assert_eq!(r.reset, r.retry_after);
    let key = "t:p:sw:3600000:h";
    let mut c = redis.connect().unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
    assert!(ttl > 0 && ttl as u64 <= hi + 1, "{ttl}");

    // All or nothing: a full limit charges none of the others.
    let r = take(&[lim("other", 1, 5, HOUR), lim("h", 1, 3, HOUR)], false);
    assert!(r[0].allowed && !r[1].allowed, "{r:?}");
    assert_eq!(r[0].total, 0);
    assert!(
        redis.keys("t:p:sw:3600000:other").is_empty(),
        "nothing stored"
    );
    // Reads charge nothing; force charges past the limit.
    let r = take(&[lim("tok", 0, 10, HOUR)], false)[0];
    assert!(r.allowed && r.total == 0 && r.reset.is_zero(), "{r:?}");
    let r = take(&[lim("tok", 25, 10, HOUR)], true)[0];
    assert!(!r.allowed && r.total == 25 && r.remaining == 0, "{r:?}");
    assert!(!take(&[lim("tok", 0, 10, HOUR)], false)[0].allowed);

    // A 1 s window of 2: refused until the first two are a second old on
    // Redis's clock, then admitted again.
    let t0 = redis.time_ms();
    assert!(take(&[lim("s", 1, 2, 1_000)], false)[0].allowed);
    assert!(take(&[lim("s", 1, 2, 1_000)], false)[0].allowed);
    let r = take(&[lim("s", 1, 2, 1_000)], false)[0];
    assert!(
        !r.allowed && r.retry_after <= Duration::from_millis(1_010),
        "{r:?}"
    );
    let started = Instant::now();
    loop {
        let r = take(&[lim("s", 1, 2, 1_000)], false)[0];
        if r.allowed {
            assert!(redis.time_ms() >= t0 + 1_000, "admitted early");
            break;
        }
        assert!(started.elapsed() < WAIT, "never admitted again");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Fields stay bounded: a 200 ms window (2 ms sub-windows) hit for 600 ms.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        take(&[lim("busy", 1, u64::MAX, 200)], false);
        let fields: usize = redis::cmd("HLEN")
            .arg("t:p:sw:200:busy")
            .query(&mut c)
            .unwrap();
        assert!(fields <= 101 + 4, "{fields} fields");
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg("t:p:sw:200:busy")
        .query(&mut c)
        .unwrap();
    assert!((0..=203).contains(&ttl), "{ttl}");
}
