//! Resource limits through the real binary: slowloris, a connection flood,
//! a flood of large bodies, an alias bomb. Memory is read from the
//! gateway's own `/proc/<pid>/status` (peak RSS, `VmHWM`).

use crate::common::*;
use crate::hardening::{claude, raw, route, start, MSG};
use sluice_testkit::FakeUpstream;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "limits:\n  headerReadTimeout: 1s\nbinds:\n- port: 4060\nroutes:\n{}",
        route("claude", "/claude", &up, false, 0)
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let mut s = TcpStream::connect(gw.addr(4060)).await.unwrap();
    s.write_all(b"POST /claude/v1/messages HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    // One header line every 250 ms, for up to 15 s: the gateway must close
    // the connection long before the headers would be complete.
    let started = Instant::now();
    let mut closed = false;
    for i in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if s.write_all(format!("x-slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {} // hyper may answer 408 first; the close follows
            Err(_) => {}
        }
    }
    assert!(closed, "still open after {:?}", started.elapsed());
    assert!(up.requests().is_empty());
    // An honest client on a fresh connection is served.
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &claude("localhost"),
        MSG,
    )
    .await;
    assert_eq!(r.status, 200);
}

/// `binds[].limits` caps its own port and only its own: a public port at two
/// connections turns the third away while the other port keeps serving.
#[tokio::test]
async fn a_bind_caps_its_own_connections_and_no_other() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "limits:\n  headerReadTimeout: 5m\nbinds:\n- port: 4060\n  limits: {{maxConnections: 2}}\n- port: 4061\nroutes:\n{}",
        route("claude", "/claude", &up, false, 0)
    );
    let gw = start(&dir, &yaml, &[4060, 4061]).await;
    let partial = b"GET /claude/v1/models HTTP/1.1\r\nhost: localhost\r\n";
    let hold = |addr: SocketAddr, n: usize| async move {
        let mut held = Vec::new();
        for _ in 0..n {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(partial).await.unwrap();
            held.push(s);
        }
        held
    };
    // Connections are accepted in the order they arrive: the two held ones
    // take the capped port's slots before the third is accepted.
    let _capped = hold(gw.addr(4060), 2).await;
    let third = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &claude("localhost"),
        MSG,
    )
    .await;
    assert_eq!(third.status, 503, "{}", third.body);
    let _other = hold(gw.addr(4061), 3).await;
    let served = raw(
        gw.addr(4061),
        "POST",
        "/claude/v1/messages",
        &claude("localhost"),
        MSG,
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn two_thousand_connections_against_a_cap_of_one_thousand() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "limits:\n  maxConnections: 1000\n  headerReadTimeout: 5m\nbinds:\n- port: 4060\nroutes:\n{}",
        route("claude", "/claude", &up, false, 0)
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let addr = gw.addr(4060);
    let partial = b"GET /claude/v1/models HTTP/1.1\r\nhost: localhost\r\n";

    // 1,000 connections hold their slot with a request not yet complete.
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        held.push(s);
    }
    // Make sure the gateway accepted them all before the flood: the last one
    // still completes its request (it holds a slot).
    let mut last = held.pop().unwrap();
    last.write_all(b"connection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), last.read_to_end(&mut out))
        .await
        .expect("held connection answered")
        .unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 ") && !out.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Its slot is free again once the gateway has dropped it; take it back.
    // Until then a new connection is turned away (503 and closed), so retry
    // until one is kept waiting: only then are all 1,000 slots held again.
    let mut retaken = false;
    for _ in 0..100 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut byte)).await {
            Err(_) => {
                held.push(s);
                retaken = true;
                break;
            }
            Ok(_) => continue,
        }
    }
    assert!(retaken, "the freed slot was never given back");

    // 1,000 more: none may be served; they get 503 or are closed.
    let mut turned_away = 0;
    let mut closed = 0;
    let flood: Vec<_> = (0..1000)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return None;
                };
                let _ = s
                    .write_all(b"GET /claude/v1/models HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                    .await;
                let mut out = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
                Some(out)
            })
        })
        .collect();
    for f in flood {
        match f.await.unwrap() {
            Some(out) if out.starts_with(b"HTTP/1.1 503") => {
                let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
                assert!(text.contains("retry-after: 1"), "{text}");
                turned_away += 1;
            }
            Some(out) if out.is_empty() => closed += 1,
            None => closed += 1,
            Some(out) => panic!("served over the cap: {}", String::from_utf8_lossy(&out)),
        }
    }
    assert!(turned_away > 0, "none got a 503 (closed: {closed})");
    println!("over the cap: {turned_away} answered 503, {closed} closed");
    // The models request of the held one + nothing from the flood.
    assert_eq!(up.requests().len(), 1);

    // Once the held connections go, new ones are served again.
    drop(held);
    let t0 = Instant::now();
    loop {
        let r = raw(
            addr,
            "POST",
            "/claude/v1/messages",
            &claude("localhost"),
            MSG,
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never recovered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrent_large_bodies_against_a_small_budget_get_503_not_oom() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "limits:\n  bodyBufferBudget: 8MiB\nbinds:\n- port: 4060\nroutes:\n{}",
        route("claude", "/claude", &up, false, 0).replace(
            "  policies:\n",
            "  policies:\n    inputValidation:\n      blockPatterns: [\"ignore previous instructions\"]\n",
        )
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let addr = gw.addr(4060);
    let pid = gw.pid().expect("gateway pid");
    let before = peak_rss_kib(pid);
    // 1 MiB of prompt text.
    let filler = "a".repeat(1 << 20);
    let body = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{{"role":"user","content":"{filler}"}}]}}"#
    );
    let body = std::sync::Arc::new(body);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                raw(
                    addr,
                    "POST",
                    "/claude/v1/messages",
                    &claude("localhost"),
                    &body,
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            503 => {
                assert_eq!(r.header("retry-after").as_deref(), Some("1"), "{r:?}");
                assert_eq!(r.json()["type"], "error", "provider shape: {r:?}");
                busy += 1;
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    let after = peak_rss_kib(pid);
    println!(
        "200 x 1 MiB bodies, 8 MiB budget: {ok} served, {busy} got 503; gateway peak RSS {} MiB -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(busy > 0, "the budget never refused anything");
    assert!(ok > 0, "the budget refused everything");
    // 200 MiB of bodies were offered; the gateway held at most the budget
    // (plus copies made for the plugin) at a time.
    assert!(
        after < before + 150 * 1024,
        "peak RSS grew by {} MiB",
        (after - before) / 1024
    );
    // The budget is given back: a request is served afterwards.
    let r = raw(
        addr,
        "POST",
        "/claude/v1/messages",
        &claude("localhost"),
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn an_alias_bomb_is_refused_with_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    bomb.push_str("binds:\n- port: 4060\nroutes:\n- name: r\n  matches: *x8\n  backends:\n  - host: 127.0.0.1:9\n");
    let f = write(dir.path(), "bomb.yaml", &bomb);
    // GNU time reports the child's peak RSS (kB) on stderr.
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", BIN, "validate", "--config", &f])
        .env_clear()
        .output()
        .expect("running /usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let all = err.clone() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("bomb.yaml:") && all.contains("aliases expand"),
        "{all}"
    );
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss in /usr/bin/time output");
    println!(
        "alias bomb (9^9 nodes unexpanded): refused, peak RSS {} MiB",
        rss / 1024
    );
    assert!(rss < 150 * 1024, "validate used {} MiB", rss / 1024);
    let _ = Path::new(&f);
}

/// A one-shot HTTP server the `spin` fixture's `/hold` fetch blocks on:
/// `arrived` fires once the plugin's request is in (so its instance is
/// busy), and the answer goes out only when the test sends on `release`.
async fn hold_server() -> (
    SocketAddr,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let Ok(Ok((mut s, _))) =
            tokio::time::timeout(Duration::from_secs(30), listener.accept()).await
        else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = arrived_tx.send(());
        // Bounded: a test that never releases still ends (the fetch fails).
        let _ = tokio::time::timeout(Duration::from_secs(30), release_rx).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    });
    (addr, arrived, release)
}

#[tokio::test]
async fn a_second_call_waits_for_the_one_instance_then_fails_open() {
    let up = FakeUpstream::plain().await;
    let (hold, arrived, release) = hold_server().await;
    let dir = tempfile::tempdir().unwrap();
    let spin = sluice::policy::testing::fixture("spin");
    let yaml = format!(
        "limits:\n  pluginInstances: 1\n  pluginInstanceWait: 50ms\nplugins:\n- name: spin\n  path: {}\n  deadline: 3s\n  failureMode: open\n  fetchHosts: ['{hold}']\nbinds:\n- port: 4060\nroutes:\n{}",
        spin.display(),
        route("all", "/", &up, false, 0).replace(
            "  policies:\n",
            &format!("  policies:\n    spin: {{hold: 'http://{hold}/hold'}}\n")
        ),
    );
    let gw = start(&dir, &yaml, &[4060]).await;
    let addr = gw.addr(4060);
    // A takes the only instance and blocks in its fetch of the hold server...
    let a =
        tokio::spawn(async move { raw(addr, "GET", "/hold", &[("host", "localhost")], "").await });
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .unwrap_or_else(|_| panic!("A's plugin never fetched the hold URL\n{}", gw.logs()))
        .expect("hold server gone");
    // ...so B (which would not spin) finds no instance, waits 50 ms, and
    // skips the plugin (failureMode: open): no `x-spin` upstream.
    let b = raw(addr, "GET", "/ok", &[("host", "localhost")], "").await;
    // The fake upstream answers 404 for /ok: the request got through.
    assert_eq!(b.status, 404, "{b:?}");
    assert_eq!(up.requests().len(), 1, "only B is upstream yet");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.path, "/ok");
    assert_eq!(seen.header("x-spin"), None, "B ran in a second instance");
    let c = sluice_testkit::client::TestClient::new();
    let m = c.get(&gw.admin_url("/metrics")).await.text();
    assert!(
        m.lines().any(|l| l.contains(r#"plugin="spin""#)
            && l.contains(r#"kind="busy""#)
            && l.ends_with(" 1")),
        "{m}"
    );
    // Released, A goes on through its plugin to the fake upstream (which 404s
    // paths it doesn't know).
    release.send(()).unwrap();
    let a = a.await.unwrap();
    assert_eq!(a.status, 404, "{a:?}");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.path, "/hold");
    assert_eq!(seen.header("x-held"), Some("200"), "{:?}", seen.headers);
    // With the instance free again, B's path runs the plugin.
    let b = raw(addr, "GET", "/ok", &[("host", "localhost")], "").await;
    assert_eq!(b.status, 404, "{b:?}");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.path, "/ok");
    assert!(seen.header("x-spin").is_some(), "{:?}", seen.headers);
}
