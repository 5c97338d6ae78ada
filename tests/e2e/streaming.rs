//! SSE goes through event by event; broken streams end, never hang.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::metrics::metric;
use sluice_testkit::Script;
use std::time::Duration;

fn msg(stream: bool) -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "stream": stream, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn events_arrive_before_the_stream_ends() {
    let p = Provider::tls().await;
    p.upstream.set_script(
        Script::text("one two three four")
            .deltas(["one ", "two ", "three ", "four"])
            .event_delay(Duration::from_millis(150)),
    );
    let gw = pattern2(&p).await;
    let s = TestClient::new()
        .stream_sse_full(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &msg(true),
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.events.len(), 9, "{:?}", s.names());
    let sent = p.upstream.event_send_times();
    let last_sent = *sent.last().unwrap();
    let first_arrived = s.events[0].0;
    assert!(
        first_arrived < last_sent,
        "the first event must reach the client before the upstream sends the last"
    );
    // Every delta arrives on its own, not in one burst at the end.
    let deltas: Vec<_> = s
        .events
        .iter()
        .filter(|(_, e)| e.event.as_deref() == Some("content_block_delta"))
        .collect();
    assert_eq!(deltas.len(), 4);
    let spread = deltas[3].0 - deltas[0].0;
    assert!(
        spread >= Duration::from_millis(300),
        "deltas arrived together ({spread:?}): the gateway buffered"
    );
}

#[tokio::test]
async fn usage_from_streams_and_json_reaches_log_and_metrics() {
    let p = Provider::tls().await;
    p.upstream.set_script(Script::default().tokens(123, 45));
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let auth = h(&[("x-api-key", "k")]);
    let s = c
        .stream_sse_full(&gw.url(4060, "/claude/v1/messages"), &auth, &msg(true))
        .await;
    assert_eq!(s.status, 200);
    let r = c
        .post_json(&gw.url(4060, "/claude/v1/messages"), &auth, &msg(false))
        .await;
    assert_eq!(r.status, 200);
    gw.wait_for_log("output_tokens=45", Duration::from_secs(5))
        .await
        .unwrap();
    let m = c.get(&gw.admin_url("/metrics")).await.text();
    let tokens = |dir| {
        metric(
            &m,
            "sluice_tokens_total",
            &[("route", "claude-agent"), ("direction", dir)],
        )
    };
    assert_eq!(tokens("input"), Some(246.0), "{m}");
    assert_eq!(tokens("output"), Some(90.0), "{m}");
    assert_eq!(
        metric(
            &m,
            "sluice_requests_total",
            &[
                ("route", "claude-agent"),
                ("provider", "anthropic"),
                ("status", "200")
            ]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "sluice_ttfb_seconds_count",
            &[("route", "claude-agent")]
        ),
        Some(2.0),
        "{m}"
    );
    // Access log: one structured line per request, secrets nowhere.
    let logs = gw.logs();
    assert!(logs.contains("input_tokens=123"), "{logs}");
    assert!(!logs.contains(ANTHROPIC_KEY));
}

#[tokio::test]
async fn gzip_json_passes_through_untouched_and_usage_is_still_read() {
    let p = Provider::tls().await;
    p.upstream
        .set_script(Script::default().gzip().tokens(31, 9));
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[
                ("x-api-key", "k"),
                ("accept-encoding", "gzip, deflate, br, zstd"),
            ]),
            &msg(false),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "compressed body passes through"
    );
    assert_eq!(
        r.json()["usage"]["output_tokens"],
        9,
        "and decodes to the provider's JSON"
    );
    // And streamed gzip SSE too.
    let s = c
        .stream_sse_full(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k"), ("accept-encoding", "gzip")]),
            &msg(true),
        )
        .await;
    assert_eq!(s.names().last().map(String::as_str), Some("message_stop"));
    // Both requests' usage was read: the JSON one and the streamed one.
    let t0 = std::time::Instant::now();
    let m = loop {
        let m = c.get(&gw.admin_url("/metrics")).await.text();
        if metric(&m, "sluice_tokens_total", &[("direction", "output")]) == Some(18.0) {
            break m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "usage of the gzip stream not counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        metric(&m, "sluice_tokens_total", &[("direction", "input")]),
        Some(62.0),
        "{m}"
    );
}

#[tokio::test]
async fn upstream_dropping_mid_stream_closes_the_client_stream() {
    let p = Provider::tls().await;
    p.upstream.set_script(Script::default().drop_after(3));
    let gw = pattern2(&p).await;
    let c = TestClient::new();
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        c.stream_sse_full(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &msg(true),
        ),
    )
    .await
    .expect("the client stream must end, not hang");
    assert!(s.error.is_some() || !s.names().contains(&"message_stop".to_string()));
    assert!(!s.names().contains(&"message_stop".to_string()));
    gw.wait_for_log("upstream body error", Duration::from_secs(5))
        .await
        .unwrap();
}
