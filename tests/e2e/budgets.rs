//! The `budget` policy (bundled `budget` plugin) through the real binary,
//! on the memory store: dollar costs with cache tokens at their own rates,
//! spend that survives a restart (`state.memory.path`), a request whose cap
//! alone exceeds the budget refused up front, hostile headers, and a
//! client that goes away mid-stream releasing its reservation.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_testkit::client::{Resp, TestClient};
use sluice_testkit::{FakeUpstream, Gateway, Script};

use crate::common::*;

pub const ALICE: &str = "sk-alice-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(15);

/// A route with `apiKey` (alice, team platform) and `budget` (`budget` is
/// the YAML of the policy's body, indented 6), priced like Sonnet.
pub fn config(up: &FakeUpstream, budget: &str) -> String {
    let addr = up.addr();
    format!(
        r#"config:
  modelCatalog:
  - inline:
      providers:
        anthropic:
          models:
            claude-sonnet-4-5:
              rates: {{input: "3", output: "15", cacheRead: "0.3", cacheWrite: "3.75"}}
binds:
- port: 4060
routes:
- name: budgeted
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    apiKey:
      mode: strict
      keys:
      - key: $ALICE_KEY
        metadata: {{user: alice, team: platform}}
    budget:
{budget}
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
"#
    )
}

pub async fn start(files: &[&str]) -> Gateway {
    gateway(files, &[4060], &[], &[("ALICE_KEY", ALICE)]).await
}

/// A Messages body: `pad` bytes of prompt, `max_tokens`, streaming or not.
pub fn body(pad: usize, max_tokens: u64, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "stream": stream,
        "messages": [{"role": "user", "content": "x".repeat(pad)}]})
}

pub async fn send(gw: &Gateway, body: &Value, extra: &[(&str, &str)]) -> Resp {
    let bearer = format!("Bearer {ALICE}");
    let mut headers = vec![
        ("authorization", bearer.as_str()),
        ("anthropic-version", "2023-06-01"),
    ];
    headers.extend_from_slice(extra);
    TestClient::new()
        .post_json(&gw.url(4060, "/claude/v1/messages"), &h(&headers), body)
        .await
}

/// `sluice-budget-remaining-usd` in micro-dollars.
pub fn remaining_usd(r: &Resp) -> i64 {
    let v = r
        .header("sluice-budget-remaining-usd")
        .unwrap_or_else(|| panic!("no remaining header: {} {:?}", r.status, r.headers));
    (v.parse::<f64>().unwrap() * 1e6).round() as i64
}

pub fn remaining_tokens(r: &Resp) -> u64 {
    r.header("sluice-budget-remaining-tokens")
        .unwrap_or_else(|| panic!("no remaining header: {} {:?}", r.status, r.headers))
        .parse()
        .unwrap()
}

/// Send until the answer is `status` (each attempt spaced 50 ms), or fail
/// after [`WAIT`].
pub async fn until_status(gw: &Gateway, body: &Value, status: u16) -> Resp {
    let t0 = Instant::now();
    loop {
        let r = send(gw, body, &[]).await;
        if r.status == status {
            return r;
        }
        assert!(
            t0.elapsed() < WAIT,
            "still {} after {WAIT:?}: {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open a stream and read its first chunk; the caller drops it to go away.
pub async fn open_stream(gw: &Gateway, body: &Value) -> sluice_testkit::reqwest::Response {
    let mut r = TestClient::new()
        .reqwest()
        .post(gw.url(4060, "/claude/v1/messages"))
        .header("authorization", format!("Bearer {ALICE}"))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = tokio::time::timeout(WAIT, r.chunk())
        .await
        .expect("first chunk in time");
    assert!(first.unwrap().is_some());
    r
}

fn memory_state(dir: &Path) -> String {
    write(
        dir,
        "state.yaml",
        &format!(
            "state:\n  memory:\n    path: {}\n",
            dir.join("spend").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_tokens_priced_apart_and_spend_survives_a_restart() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            "      limits:\n      - {scope: key, usd: 1, period: month}\n",
        ),
    );
    let state = memory_state(dir.path());
    // 1000 uncached in, 20000 cache reads, 4000 cache writes, 500 out:
    // 1000*3 + 20000*0.3 + 4000*3.75 + 500*15 = 31,500 micro-dollars.
    up.set_script(
        Script::default()
            .tokens(1000, 500)
            .cache_tokens(20_000, 4_000),
    );
    // Strict: the prompt's bytes bound its tokens, the cap bounds the output.
    let b = body(30_000, 500, false);
    let mut gw = start(&[&cfg, &state]).await;
    let r1 = send(&gw, &b, &[]).await;
    assert_eq!(r1.status, 200, "{}", r1.text());
    // Remaining after the first reservation = 1 - reservation.
    let reservation = 1_000_000 - remaining_usd(&r1);
    assert!(
        reservation > 31_500,
        "strict reserves at least the cost: {reservation}"
    );
    wait_access_lines(&gw, 1, WAIT).await;
    let r2 = send(&gw, &b, &[]).await;
    assert_eq!(r2.status, 200);
    assert_eq!(remaining_usd(&r2), 1_000_000 - 31_500 - reservation);
    wait_access_lines(&gw, 2, WAIT).await;

    // A graceful stop saves the spend; a new process starts from it.
    gw.send_signal_term().unwrap();
    gw.wait_exit(WAIT).await.expect("stopped");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("spend/budgets.json")).unwrap())
            .unwrap();
    let settled: Vec<u64> = saved["budgets"]
        .as_object()
        .unwrap()
        .values()
        .map(|b| b["settled"].as_u64().unwrap())
        .collect();
    assert_eq!(settled, vec![63_000], "{saved}");
    let gw = start(&[&cfg, &state]).await;
    let r3 = send(&gw, &b, &[]).await;
    assert_eq!(r3.status, 200);
    assert_eq!(remaining_usd(&r3), 1_000_000 - 63_000 - reservation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_over_the_budget_is_refused_up_front_whatever_the_client_sends() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            "      timeZone: Europe/Paris\n      limits:\n      - {scope: team, tokens: 10000, period: day}\n",
        ),
    );
    let gw = start(&[&cfg]).await;
    // Hostile: the client's own budget headers and identity-looking headers.
    let hostile = [
        ("sluice-budget-remaining-tokens", "99999999"),
        ("apikey.team", "other"),
        (
            "x-apikey-budgets",
            r#"[{"tokens": 999999999, "period": "day"}]"#,
        ),
    ];
    let r = send(&gw, &body(10, 1_000_000, false), &hostile).await;
    assert_eq!(r.status, 402, "{}", r.text());
    let err: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(err["type"], "error", "Anthropic's error shape: {err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("team `platform`"), "{msg}");
    assert!(msg.contains("10000 tokens per day"), "{msg}");
    // Midnight in Paris, RFC 3339 with its offset.
    assert!(
        msg.contains("T00:00:00+01:00") || msg.contains("T00:00:00+02:00"),
        "{msg}"
    );
    assert_eq!(remaining_tokens(&r), 10_000);
    assert!(
        up.requests().is_empty(),
        "a refused request reaches no upstream"
    );

    // A request that fits is admitted and says what is left.
    let small = body(10, 100, false);
    let r = send(&gw, &small, &hostile).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(remaining_tokens(&r) < 10_000);
    let n = r
        .headers
        .iter()
        .filter(|(k, _)| k == "sluice-budget-remaining-tokens")
        .count();
    assert_eq!(n, 1);
    // The client's header never went upstream either.
    assert_eq!(
        up.last_request()
            .unwrap()
            .header("sluice-budget-remaining-tokens"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_stream_releases_its_reservation() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // One reservation (~130 bytes + 1000 cap) fits, two do not.
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            "      limits:\n      - {tokens: 1800, period: month}\n",
        ),
    );
    let gw = start(&[&cfg]).await;
    up.set_script(
        Script::default()
            .tokens(10, 5)
            .deltas((0..200).map(|i| format!("w{i} ")))
            .event_delay(Duration::from_millis(100)),
    );
    let b = body(10, 1000, true);
    let stream = open_stream(&gw, &b).await;
    // While it streams, its reservation holds the budget.
    let r = send(&gw, &body(10, 1000, false), &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
    // The client goes away: the reservation is released (only the usage
    // seen is settled), so the next request is admitted.
    drop(stream);
    up.set_script(Script::default().tokens(10, 5));
    let r = until_status(&gw, &body(10, 1000, false), 200).await;
    assert!(remaining_tokens(&r) < 1800);

    // An upstream error (no usage) releases its reservation too: the
    // request after it is admitted, which two reservations would not be.
    up.set_script(Script::default().status(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
    ));
    // (Admitted once the previous request's completion has settled.)
    until_status(&gw, &body(10, 1000, false), 500).await;
    up.set_script(Script::default().tokens(10, 5));
    // A leaked reservation would hold for 10 minutes: this would time out.
    until_status(&gw, &body(10, 1000, false), 200).await;
}
