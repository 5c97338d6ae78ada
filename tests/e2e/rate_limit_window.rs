//! Rate limits over a rolling period (issue 20, item 3), through the real
//! binary: no span of one period admits more than the limit, wherever the
//! clock's window edges fall; `Retry-After` says when one more fits; spent
//! tokens refuse until they age out; replicas sharing Redis agree.
//!
//! The gateway reads the machine's wall clock (and the local `redis-server`
//! the same clock), so the tests place bursts against the clock's edges
//! instead of driving it: they wait (polling, bounded) for a phase of the
//! second or hour, and judge each answer by client-side times that bound
//! the gateway's. Fixed windows fail these checks whenever the burst really
//! crossed an edge; sliding windows pass them whatever the timing. A run too
//! slow to place the burst before the edge is inconclusive and retried with
//! a fresh key, never judged.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, RedisServer, Resp, Script};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(20);
/// Attempts at placing a burst before giving up as too slow a machine.
const ATTEMPTS: usize = 6;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Wait until the wall clock is `from..to` ms into its current `period`
/// (bounded: at most one period plus a margin).
async fn at_phase(period: u64, from: u64, to: u64) {
    let t0 = Instant::now();
    loop {
        let phase = wall_ms() % period;
        if (from..to).contains(&phase) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(period + 5_000),
            "the clock never reached {from}..{to} ms of its {period} ms period"
        );
        let until = if phase < from {
            from - phase
        } else {
            period - phase + from
        };
        tokio::time::sleep(Duration::from_millis(until.clamp(1, 200))).await;
    }
}

/// Wait until the wall clock passes `at_ms`.
async fn until_clock(at_ms: u64) {
    let t0 = Instant::now();
    while wall_ms() < at_ms {
        assert!(t0.elapsed() < WAIT, "the clock never reached {at_ms}");
        tokio::time::sleep(Duration::from_millis(
            (at_ms - wall_ms().min(at_ms)).clamp(1, 50),
        ))
        .await;
    }
}

/// A policy layer on `/claude` with this `policies:` body (YAML, indented 4).
fn layer(dir: &Path, policies: &str) -> String {
    write(
        dir,
        "limit.yaml",
        &format!(
            "- name: limit\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n{policies}"
        ),
    )
}

fn redis_state(dir: &Path, name: &str, url: &str, replica: &str) -> String {
    write(
        dir,
        name,
        &format!(
            "state:\n  replicaId: {replica}\n  redis:\n    url: {url}\n    keyPrefix: \"sluice:\"\n    timeout: 1s\n"
        ),
    )
}

async fn start_gw(files: &[String]) -> Gateway {
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    gateway(&refs, &[4060], &[], &[]).await
}

async fn claude(c: &TestClient, gw: &Gateway, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    headers.extend_from_slice(extra);
    c.post_json(
        &gw.url(4060, "/claude/v1/messages"),
        &h(&headers),
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

fn secs(r: &Resp, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name}: {} {}", r.status, r.text()))
        .parse()
        .unwrap()
}

/// 5 per second keyed by `x-org-id`: 5 requests late in one clock second,
/// then 5 more just after the edge, each spelling the header differently
/// (name case, duplicates, a second value after the first). Every one of
/// the second batch answered less than a second after the first batch began
/// must be refused: the first five were admitted within that second.
/// `a` serves the first batch, `b` the second (the same gateway, or two
/// replicas sharing Redis).
async fn edge_burst(a: &Gateway, b: &Gateway) {
    let c = TestClient::new();
    for attempt in 0..ATTEMPTS {
        let org = format!("acme-{attempt}");
        at_phase(1_000, 700, 800).await;
        let first = wall_ms();
        for i in 0..5 {
            let r = claude(&c, a, &[("x-org-id", &org)]).await;
            assert_eq!(r.status, 200, "first batch, request {i}: {}", r.text());
        }
        let edge = (first / 1_000 + 1) * 1_000;
        until_clock(edge + 20).await;
        let variants: [Vec<(&str, &str)>; 5] = [
            vec![("X-Org-Id", &org)],
            vec![("x-org-id", &org), ("x-org-id", &org)],
            vec![("X-ORG-ID", &org), ("x-org-id", "someone-else")],
            vec![("x-Org-id", &org)],
            vec![("x-org-id", &org)],
        ];
        let mut judged = 0;
        for (i, v) in variants.iter().enumerate() {
            let r = claude(&c, b, v).await;
            let answered = wall_ms();
            if answered >= first + 1_000 {
                break;
            }
            judged += 1;
            assert_eq!(
                r.status,
                429,
                "second batch, request {i} ({v:?}), {} ms after the first batch began \
                 and {} ms after the clock's second edge: {} in one second",
                answered - first,
                answered - edge,
                6 + i
            );
            let retry = secs(&r, "retry-after");
            assert!((1..=2).contains(&retry), "{retry}");
            assert_eq!(r.json()["error"]["type"], "rate_limit_error");
        }
        if judged > 0 {
            return;
        }
    }
    panic!("too slow: no attempt answered a request within a second of its burst");
}

#[tokio::test]
async fn a_burst_across_the_clock_second_is_refused_whatever_the_header_spelling() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "    rateLimit:\n      requestsPerSecond: 5\n      key:\n        header: x-org-id\n",
    );
    let gw = start_gw(&[serving(dir.path(), up.addr()), limit]).await;
    edge_burst(&gw, &gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_the_clock_second_is_refused_across_replicas_sharing_redis() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "    rateLimit:\n      requestsPerSecond: 5\n      key:\n        header: x-org-id\n",
    );
    let serving = serving(dir.path(), up.addr());
    let a_state = redis_state(dir.path(), "a.yaml", &redis.url(), "gw-a");
    let b_state = redis_state(dir.path(), "b.yaml", &redis.url(), "gw-b");
    let a = start_gw(&[serving.clone(), limit.clone(), a_state]).await;
    let b = start_gw(&[serving, limit, b_state]).await;
    edge_burst(&a, &b).await;
}

/// `requestsPerHour: 2`: the third request's `Retry-After` is when the first
/// ages out, about an hour after it (not the seconds left in the clock's
/// hour), and the second's `x-ratelimit-reset` says the same.
#[tokio::test]
async fn retry_after_is_the_time_until_one_more_request_fits() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(dir.path(), "    rateLimit:\n      requestsPerHour: 2\n");
    let gw = start_gw(&[serving(dir.path(), up.addr()), limit]).await;
    // Away from the first 40 s of a clock hour, where "the rest of the
    // clock's hour" would also read about an hour.
    at_phase(3_600_000, 40_000, 3_600_000).await;
    let c = TestClient::new();
    let sent1 = wall_ms();
    let r = claude(&c, &gw, &[]).await;
    let got1 = wall_ms();
    assert_eq!(r.status, 200, "{}", r.text());
    // The first request counts from its 36 s sub-window's end, plus an hour.
    let ages_lo = (sent1 / 36_000 + 1) * 36_000 + 3_600_000;
    let ages_hi = (got1 / 36_000 + 1) * 36_000 + 3_600_000;
    let within = |r: &Resp, name: &str, sent: u64, got: u64| {
        let v = secs(r, name);
        let (lo, hi) = (
            (ages_lo - got).div_ceil(1_000),
            (ages_hi - sent).div_ceil(1_000),
        );
        assert!(
            (lo..=hi).contains(&v),
            "{name}: {v} s, expected {lo}..={hi} (the first request ages out ~1 h after it)"
        );
    };
    let sent = wall_ms();
    let r = claude(&c, &gw, &[]).await;
    let got = wall_ms();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    within(&r, "x-ratelimit-reset", sent, got);
    let sent = wall_ms();
    let r = claude(&c, &gw, &[]).await;
    let got = wall_ms();
    assert_eq!(r.status, 429, "{}", r.text());
    within(&r, "retry-after", sent, got);
    within(&r, "x-ratelimit-reset", sent, got);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(up.requests().len(), 2);
}

/// `tokensPerSecond: 30`, 18 tokens per exchange: after two exchanges (36)
/// requests are refused until the first exchange's tokens are a second old,
/// not at the clock's next second.
#[tokio::test]
async fn spent_tokens_refuse_until_they_age_out_of_the_period() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::default().tokens(11, 7));
    let dir = tempfile::tempdir().unwrap();
    let limit = layer(
        dir.path(),
        "    rateLimit:\n      tokensPerSecond: 30\n      key:\n        header: x-org-id\n",
    );
    let gw = start_gw(&[serving(dir.path(), up.addr()), limit]).await;
    let c = TestClient::new();
    let mut lines = 0;
    for attempt in 0..ATTEMPTS {
        let org = format!("org-{attempt}");
        let org = [("x-org-id", org.as_str())];
        at_phase(1_000, 100, 300).await;
        let first = wall_ms();
        for _ in 0..2 {
            let r = claude(&c, &gw, &org).await;
            assert_eq!(r.status, 200, "{}", r.text());
            // The charge lands in the completion hook, before the log line.
            lines += 1;
            wait_access_lines(&gw, lines, WAIT).await;
        }
        let mut refused = 0;
        let t0 = Instant::now();
        loop {
            let r = claude(&c, &gw, &org).await;
            let answered = wall_ms();
            lines += 1;
            if r.status == 200 {
                // The first exchange's 18 tokens were charged after `first`:
                // they count for a whole second after that.
                assert!(
                    answered >= first + 1_000,
                    "admitted {} ms after the first exchange began, {refused} refusals before; \
                     36 tokens of 30 were spent within that second",
                    answered - first
                );
                break;
            }
            assert_eq!(r.status, 429, "{}", r.text());
            assert!(r.text().contains("30 tokens per second"), "{}", r.text());
            refused += 1;
            assert!(t0.elapsed() < WAIT, "never admitted again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_access_lines(&gw, lines, WAIT).await;
        if refused > 0 {
            return;
        }
    }
    panic!("too slow: the tokens aged out before any request could be refused");
}
