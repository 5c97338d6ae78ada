//! Hot swap through the file watcher while the watched directory is busy.
//!
//! A gateway's directory often holds files that change all the time (its own
//! log, an access log). Those must not postpone the reload of a watched
//! config or plugin file: each test keeps two sibling files growing every
//! millisecond and four clients sending requests, changes a watched file
//! (in place, then by rename-over) and requires the new version to serve
//! within a bound generous enough to tell "works" from "starved" (10 s),
//! with no request failing on the way.

use crate::hot_swap::{claude_status, config_text, replace_file, start_gate, Setup, ALLOW, DENY};
use sluice::policy::testing;
use sluice_testkit::client::TestClient;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Long enough to tell a working watcher from a starved one.
const LIMIT: Duration = Duration::from_secs(10);

/// Background noise: two sibling files appended every millisecond, and four
/// clients.
struct Load {
    stop: Arc<AtomicBool>,
    appenders: Vec<std::thread::JoinHandle<u64>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    total: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Load {
    fn start(dir: &Path, url: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        // Two writers, so that one being descheduled (a busy machine) does
        // not leave the directory quiet for long.
        let appenders: Vec<_> = ["gateway.log", "access.log"]
            .into_iter()
            .map(|name| {
                let stop = stop.clone();
                let busy = dir.join(name);
                std::thread::spawn(move || {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&busy)
                        .unwrap();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        writeln!(f, "line {n}").unwrap();
                        f.flush().unwrap();
                        n += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    n
                })
            })
            .collect();
        let total = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let clients = (0..4)
            .map(|_| {
                let (stop, total, failed, url) =
                    (stop.clone(), total.clone(), failed.clone(), url.to_owned());
                tokio::spawn(async move {
                    let c = TestClient::new();
                    while !stop.load(Ordering::Relaxed) {
                        let ok = matches!(claude_status(&c, &url).await, Some(200) | Some(403));
                        total.fetch_add(1, Ordering::Relaxed);
                        failed.fetch_add(u64::from(!ok), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            appenders,
            clients,
            total,
            failed,
        }
    }

    /// Stops the noise; (requests, failed, lines appended).
    async fn stop(mut self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            c.await.unwrap();
        }
        let lines = self.appenders.drain(..).map(|a| a.join().unwrap()).sum();
        (
            self.total.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            lines,
        )
    }
}

/// Polls `/claude` until it answers `want`; how long that took. Panics
/// (with the gateway's log) after [`LIMIT`].
async fn served_within(s: &Setup, url: &str, want: u16, what: &str) -> Duration {
    let c = TestClient::new();
    let t0 = Instant::now();
    loop {
        if claude_status(&c, url).await == Some(want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < LIMIT,
            "{what}: the new version did not serve within {LIMIT:?} while a sibling file was busy\n--- gateway log ---\n{}",
            s.gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_file_swaps_promptly_next_to_a_busy_file_under_load() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    assert_eq!(claude_status(&TestClient::new(), &url).await, Some(403));
    let load = Load::start(s.dir.path(), &url);

    // Build-tool style: rewrite in place.
    std::fs::write(&s.gate, testing::fixture_bytes(ALLOW)).unwrap();
    let in_place = served_within(&s, &url, 200, "in-place write").await;
    // Editor style: a temp file renamed over.
    replace_file(&s.gate, &testing::fixture_bytes(DENY));
    let renamed = served_within(&s, &url, 403, "rename-over").await;

    let (total, failed, lines) = load.stop().await;
    println!("busy-dir swap: in place {in_place:?}, rename {renamed:?}; {total} requests, {lines} log lines");
    assert!(lines > 50, "the sibling file was not busy: {lines} lines");
    assert!(total > 20, "too few requests under load: {total}");
    assert_eq!(failed, 0, "requests failed during the swaps");
    assert!(
        s.gw.logs().contains("watched file changed"),
        "the log does not say a reload is pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_edit_goes_live_promptly_next_to_a_busy_file_under_load() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    assert_eq!(claude_status(&TestClient::new(), &url).await, Some(403));
    let load = Load::start(s.dir.path(), &url);
    let plugins = format!("plugins:\n- name: gate\n  path: {}\n", s.gate.display());

    // In place: the route no longer attaches the denying plugin.
    let open = config_text(&s.up, &plugins, "", false);
    std::fs::write(&s.config, &open).unwrap();
    let in_place = served_within(&s, &url, 200, "config written in place").await;
    // Rename-over: attach it again.
    let closed = config_text(&s.up, &plugins, "    gate: {message: blocked}", false);
    replace_file(&s.config, closed.as_bytes());
    let renamed = served_within(&s, &url, 403, "config renamed over").await;

    let (total, failed, lines) = load.stop().await;
    println!("busy-dir config reload: in place {in_place:?}, rename {renamed:?}; {total} requests, {lines} log lines");
    assert!(lines > 50, "the sibling file was not busy: {lines} lines");
    assert!(total > 20, "too few requests under load: {total}");
    assert_eq!(failed, 0, "requests failed during the reloads");
}
