//! Give freed heap memory back to the system after a burst of connections.
//!
//! Why: glibc's allocator keeps what a thousand closed streams freed in its
//! arenas, so the gateway's RSS stayed at its peak after the streams closed
//! (measured with `cargo bench --workspace --bench overhead`: 13 MB idle,
//! 55 MB with 1,000 open streams and still 55 MB after they closed, where
//! nginx went back to 20 MB). A gateway sized for its idle footprint then
//! gets killed on the next burst's neighbour. `malloc_trim` returns the free
//! pages; it is only called once the open-connection count has fallen well
//! below its recent peak, never on the request path, and after a plugin
//! compile ([`now`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static OPEN: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// How often the trimmer looks.
const EVERY: Duration = Duration::from_secs(2);
/// Connections that must have closed since the peak before a trim.
const CLOSED_AT_LEAST: usize = 64;

/// Held by every open client connection.
pub struct Connection(());

impl Drop for Connection {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Count one client connection until the returned guard drops.
pub fn connection() -> Connection {
    let now = OPEN.fetch_add(1, Ordering::Relaxed) + 1;
    PEAK.fetch_max(now, Ordering::Relaxed);
    Connection(())
}

/// Should the heap be trimmed, with `open` connections now and `peak`
/// since the last trim? Only after a real burst has mostly drained.
fn due(open: usize, peak: usize) -> bool {
    peak >= open + CLOSED_AT_LEAST && open <= peak / 2
}

/// Run the trimmer until the runtime shuts down.
pub fn spawn() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let open = OPEN.load(Ordering::Relaxed);
            if due(open, PEAK.load(Ordering::Relaxed)) {
                PEAK.store(open, Ordering::Relaxed);
                // A few milliseconds with a lot to give back: off the workers.
                let _ = tokio::task::spawn_blocking(trim).await;
                tracing::debug!(open, "returned freed heap memory after a burst");
            }
        }
    })
}

/// Give freed heap memory back now, from a thread that may block a few
/// milliseconds: after compiling a plugin, whose compiler frees tens of
/// megabytes (measured: a cold start of the five guide policies left 103 MB
/// resident, 52 MB of it freed compiler memory).
pub fn now() {
    trim();
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_a_burst_drained() {
        assert!(!due(0, 0), "idle, nothing happened");
        assert!(!due(10, 40), "a small dip");
        assert!(!due(600, 1000), "still busy");
        assert!(due(400, 1000));
        assert!(due(0, 64));
    }

    #[test]
    fn guards_count_open_connections() {
        let before = OPEN.load(Ordering::Relaxed);
        let a = connection();
        let b = connection();
        assert!(OPEN.load(Ordering::Relaxed) >= before + 2);
        assert!(PEAK.load(Ordering::Relaxed) >= before + 2);
        drop((a, b));
    }
}
