//! The process's life: SIGTERM drains a stream in flight and exits cleanly;
//! a listener that cannot bind stops startup with the reason, not a panic.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::gateway::run;
use sluice_testkit::Script;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish_then_exits_cleanly() {
    let p = Provider::tls().await;
    p.upstream.set_script(
        Script::text("one two three four five")
            .deltas(["one ", "two ", "three ", "four ", "five"])
            .event_delay(Duration::from_millis(150)),
    );
    let mut gw = pattern2(&p).await;
    let url = gw.url(4060, "/claude/v1/messages");
    let stream = tokio::spawn(async move {
        TestClient::new()
            .stream_sse_full(
                &url,
                &h(&[("x-api-key", "k")]),
                &json!({"model": "claude-sonnet-4-5", "stream": true, "max_tokens": 64,
                        "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await
    });
    p.upstream
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    gw.send_signal_term().unwrap();

    let s = tokio::time::timeout(Duration::from_secs(30), stream)
        .await
        .expect("the stream did not end after SIGTERM")
        .unwrap();
    assert_eq!(s.status, 200);
    let names = s.names();
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "the stream in flight was cut by the shutdown: {names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "content_block_delta").count(),
        5,
        "{names:?}"
    );
    let status = gw
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the gateway did not exit after SIGTERM");
    let logs = gw.logs();
    assert!(status.success(), "exit {status:?}\n{logs}");
    assert!(!logs.contains("panicked"), "a panic on shutdown:\n{logs}");
    assert!(logs.contains("draining"), "{logs}");
    // A new connection is refused once it has stopped.
    assert!(std::net::TcpStream::connect(gw.addr(4060)).is_err());
}

#[test]
fn a_port_that_cannot_be_bound_stops_startup_with_the_reason_and_no_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(
        Path::new(BIN),
        &[
            "--config",
            &config("api-key-routing.yaml"),
            "--port-map",
            &format!("4060={port}"),
            "--admin",
            "127.0.0.1:0",
        ],
        &[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("OPENAI_API_KEY", OPENAI_KEY),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot listen"), "{err}");
    assert!(
        !err.contains("panicked"),
        "a panic on a failed bind:\n{err}"
    );
    assert!(!err.contains(ANTHROPIC_KEY), "{err}");
    drop(taken);
}

#[tokio::test]
async fn the_compile_cache_carries_over_between_runs_in_its_own_directory() {
    let up = sluice_testkit::FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let start = || async {
        gateway(
            &[&serving, &config("rate-limit.yaml")],
            &[4060],
            &[],
            &[("XDG_CACHE_HOME", &cache_dir)],
        )
        .await
    };
    let compiled = |gw: &sluice_testkit::Gateway| {
        gw.logs()
            .lines()
            .any(|l| l.contains("compiled plugin") && l.contains("rate-limit"))
    };

    // First run: an empty cache, so the bundled rate limit is compiled and stored.
    let mut first = start().await;
    assert!(compiled(&first), "{}", first.logs());
    first.kill().await;
    let stored = std::fs::read_dir(cache.path().join("sluice"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(stored > 0, "nothing written to the cache directory");

    // Second run on the same directory: loaded, not compiled.
    let second = start().await;
    assert!(
        !compiled(&second),
        "recompiled despite a warm cache:\n{}",
        second.logs()
    );
    assert!(
        second.logs().contains("component loaded from cache"),
        "{}",
        second.logs()
    );
    let r = TestClient::new()
        .post_json(
            &second.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &json!({"model": "m", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("x-ratelimit-limit").is_some(),
        "the cached plugin did not run"
    );
}
