//! Budgets shared by two replicas through one real Redis: concurrent
//! streams for one key never admitted past its budget (strict), settled
//! spend never over it, and the reservations of a replica killed with
//! SIGKILL freed by their deadline.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sluice_testkit::{FakeUpstream, Gateway, RedisServer, Script};

use crate::budgets::{body, config, open_stream, send, start, until_status, WAIT};
use crate::common::*;

fn redis_state(dir: &std::path::Path, redis: &RedisServer, replica: &str) -> String {
    write(
        dir,
        &format!("{replica}.yaml"),
        &format!(
            "state:\n  replicaId: {replica}\n  redis:\n    url: {}\n    timeout: 1s\n",
            redis.url()
        ),
    )
}

/// (settled, reserved) of the one budget hash in Redis.
fn ledger(redis: &RedisServer) -> (i64, i64) {
    let keys: Vec<String> = redis
        .keys("*:budget:budget:*")
        .into_iter()
        .filter(|k| !k.ends_with(":z") && !k.ends_with(":a"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let mut c = redis.connect().unwrap();
    let (s, r): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
        .arg(&keys[0])
        .arg("s")
        .arg("r")
        .query(&mut c)
        .unwrap();
    (s.unwrap_or(0), r.unwrap_or(0))
}

async fn two(dir: &std::path::Path, redis: &RedisServer, cfg: &str) -> (Gateway, Gateway) {
    let a = redis_state(dir, redis, "gw-a");
    let b = redis_state(dir, redis, "gw-b");
    (start(&[cfg, &a]).await, start(&[cfg, &b]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_admit_past_the_budget() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let b = body(10, 1000, true);
    let reservation = b.to_string().len() as i64 + 1000;
    // Room for exactly five reservations.
    let limit = 5 * reservation + reservation / 2;
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            &format!("      limits:\n      - {{tokens: {limit}, period: day}}\n"),
        ),
    );
    let (ga, gb) = two(dir.path(), &redis, &cfg).await;
    // Streams that stay open long enough for all twenty to be admitted or
    // refused while the first are still reserved.
    up.set_script(
        Script::default()
            .tokens(300, 700)
            .deltas((0..10).map(|i| format!("w{i} ")))
            .event_delay(Duration::from_millis(150)),
    );
    let calls = (0..20).map(|i| send(if i % 2 == 0 { &ga } else { &gb }, &b, &[]));
    let rs = join_all(calls).await;
    let ok = rs.iter().filter(|r| r.status == 200).count();
    let refused = rs.iter().filter(|r| r.status == 402).count();
    assert_eq!(
        (ok, refused),
        (5, 15),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Every stream was settled at its real usage: 5 x 1000 tokens.
    let t0 = Instant::now();
    loop {
        let (s, r) = ledger(&redis);
        if r == 0 {
            assert_eq!(s, 5 * 1000);
            assert!(s <= limit);
            break;
        }
        assert!(t0.elapsed() < WAIT, "reservations still open: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_reservation_is_freed_by_its_deadline() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            "      reservationTimeout: 2s\n      limits:\n      - {tokens: 1800, period: month}\n",
        ),
    );
    let (mut ga, gb) = two(dir.path(), &redis, &cfg).await;
    up.set_script(
        Script::default()
            .deltas((0..600).map(|i| format!("w{i} ")))
            .event_delay(Duration::from_millis(100)),
    );
    let stream = open_stream(&ga, &body(10, 1000, true)).await;
    // Replica a dies holding the reservation: b cannot admit another yet.
    ga.kill().await;
    drop(stream);
    up.set_script(Script::default().tokens(10, 5));
    let small = body(10, 1000, false);
    let killed = Instant::now();
    let r = send(&gb, &small, &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
    // The deadline frees it (2 s), with nobody settling it.
    let r = until_status(&gb, &small, 200).await;
    assert_eq!(r.status, 200);
    assert!(killed.elapsed() < Duration::from_secs(2) + WAIT);
    // Settled: b's request only (10 + 5 tokens); the killed one, nothing.
    let (s, _) = ledger(&redis);
    assert_eq!(s, 15);
}

/// `estimate` reserves the key's recent output, not the cap: spend may
/// pass the limit, by at most the in-flight requests' excess over their
/// reservations, and then nothing more is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_mode_overspends_by_at_most_the_in_flight_excess() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let limit: i64 = 200;
    let cfg = write(
        dir.path(),
        "sluice.yaml",
        &config(
            &up,
            &format!(
                "      reservation: estimate\n      limits:\n      - {{tokens: {limit}, period: day}}\n"
            ),
        ),
    );
    let state = redis_state(dir.path(), &redis, "gw-a");
    let gw = start(&[&cfg, &state]).await;
    // A first, small answer: the key's average output becomes 10.
    up.set_script(Script::default().tokens(10, 10));
    let r = send(&gw, &body(10, 10, false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t0 = Instant::now();
    while ledger(&redis) != (20, 0) {
        assert!(t0.elapsed() < WAIT, "{:?}", ledger(&redis));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Then three long answers at once, each far above the average.
    up.set_script(
        Script::default()
            .tokens(10, 500)
            .deltas((0..8).map(|i| format!("w{i} ")))
            .event_delay(Duration::from_millis(100)),
    );
    let b = body(10, 1000, true);
    let mut streams = Vec::new();
    let mut reserved = Vec::new();
    for _ in 0..3 {
        let s = open_stream(&gw, &b).await;
        let left: i64 = s.headers()["sluice-budget-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let before = limit - 20 - reserved.iter().sum::<i64>();
        reserved.push(before - left);
        streams.push(s);
    }
    // Each reserved the input estimate plus the average, far below the cap.
    assert!(reserved.iter().all(|r| *r < 100), "{reserved:?}");
    for mut s in streams {
        while tokio::time::timeout(WAIT, s.chunk())
            .await
            .unwrap()
            .unwrap()
            .is_some()
        {}
    }
    let t0 = Instant::now();
    let settled = loop {
        let (s, r) = ledger(&redis);
        if r == 0 && s > 20 {
            break s;
        }
        assert!(t0.elapsed() < WAIT, "{:?}", ledger(&redis));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let excess: i64 = reserved.iter().map(|r| 510 - r).sum();
    assert_eq!(settled, 20 + 3 * 510);
    assert!(settled > limit, "the estimate let spend pass the limit");
    assert!(
        settled - limit <= excess,
        "overspend {} > in-flight excess {excess}",
        settled - limit
    );
    // Spent: nothing more is admitted.
    up.set_script(Script::default().tokens(1, 1));
    let r = send(&gw, &body(10, 1, false), &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
}
