//! Recording what a plugin asks of the host during a workbench run: counter
//! and KV calls (a [`SharedState`] that records and delegates to the in-memory
//! store) and log lines (a `tracing` layer that keeps the `sluice::plugin`
//! events).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use crate::policy::state::{Bucket, BucketTake, StateFuture, WindowLimit, WindowTake};
use crate::policy::{MemoryState, SharedState, WindowCount};

/// One host call, as printed by `sluice plugin run`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub enum HostCall {
    IncrCounter {
        key: String,
        delta: i64,
        window_ms: u64,
        total: i64,
    },
    /// One limit of a `window-take` call.
    WindowTake {
        key: String,
        amount: u64,
        limit: u64,
        window_ms: u64,
        allowed: bool,
        total: u64,
    },
    KvGet {
        key: String,
        found: bool,
    },
    KvSet {
        key: String,
        bytes: usize,
        ttl_ms: u64,
    },
    Log {
        level: String,
        message: String,
    },
}

impl std::fmt::Display for HostCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostCall::IncrCounter {
                key,
                delta,
                window_ms,
                total,
            } => write!(
                f,
                "incr-counter {key:?} {delta:+} (window {window_ms} ms) -> {total}"
            ),
            HostCall::WindowTake {
                key,
                amount,
                limit,
                window_ms,
                allowed,
                total,
            } => write!(
                f,
                "window-take {key:?} +{amount} of {limit} per {window_ms} ms -> {total} ({})",
                if *allowed { "fits" } else { "over" }
            ),
            HostCall::KvGet { key, found } => write!(
                f,
                "kv-get {key:?} -> {}",
                if *found { "found" } else { "none" }
            ),
            HostCall::KvSet { key, bytes, ttl_ms } => {
                write!(f, "kv-set {key:?} ({bytes} bytes, ttl {ttl_ms} ms)")
            }
            HostCall::Log { level, message } => write!(f, "log {level}: {message}"),
        }
    }
}

/// The calls recorded since the last [`Recorder::take`]. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<HostCall>>>);

impl Recorder {
    /// The process-wide recorder the workbench's log layer feeds.
    pub fn global() -> Recorder {
        static GLOBAL: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Recorder::default).clone()
    }

    pub fn push(&self, c: HostCall) {
        self.0.lock().push(c);
    }
    pub fn take(&self) -> Vec<HostCall> {
        std::mem::take(&mut self.0.lock())
    }
}

/// A [`MemoryState`] that records every call.
pub struct RecordingState {
    inner: MemoryState,
    rec: Recorder,
}

impl RecordingState {
    pub fn new(rec: Recorder) -> Self {
        RecordingState {
            inner: MemoryState::new(),
            rec,
        }
    }
}

impl SharedState for RecordingState {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.inner.runtime()
    }
    fn incr(&self, key: String, delta: i64, window: Duration) -> StateFuture<WindowCount> {
        let fut = self.inner.incr(key.clone(), delta, window);
        let rec = self.rec.clone();
        Box::pin(async move {
            let c = fut.await?;
            rec.push(HostCall::IncrCounter {
                key,
                delta,
                window_ms: window.as_millis() as u64,
                total: c.total,
            });
            Ok(c)
        })
    }
    fn window_take(&self, limits: Vec<WindowLimit>, force: bool) -> StateFuture<Vec<WindowTake>> {
        let fut = self.inner.window_take(limits.clone(), force);
        let rec = self.rec.clone();
        Box::pin(async move {
            let taken = fut.await?;
            for (l, t) in limits.into_iter().zip(&taken) {
                rec.push(HostCall::WindowTake {
                    key: l.key,
                    amount: l.amount,
                    limit: l.limit,
                    window_ms: l.window.as_millis() as u64,
                    allowed: t.allowed,
                    total: t.total,
                });
            }
            Ok(taken)
        })
    }
    fn take(&self, key: String, bucket: Bucket, n: u64, drain: bool) -> StateFuture<BucketTake> {
        self.inner.take(key, bucket, n, drain)
    }
    fn kv_get(&self, key: String) -> StateFuture<Option<Vec<u8>>> {
        let fut = self.inner.kv_get(key.clone());
        let rec = self.rec.clone();
        Box::pin(async move {
            let v = fut.await?;
            rec.push(HostCall::KvGet {
                key,
                found: v.is_some(),
            });
            Ok(v)
        })
    }
    fn kv_set(&self, key: String, val: Vec<u8>, ttl: Duration) -> StateFuture<()> {
        self.rec.push(HostCall::KvSet {
            key: key.clone(),
            bytes: val.len(),
            ttl_ms: ttl.as_millis() as u64,
        });
        self.inner.kv_set(key, val, ttl)
    }
    fn ping(&self) -> StateFuture<()> {
        self.inner.ping()
    }
}

/// A `tracing` layer keeping plugin log lines (target `sluice::plugin`).
pub struct LogCapture(pub Recorder);

struct Message(String);
impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for LogCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sluice::plugin" {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.push(HostCall::Log {
            level: event.metadata().level().to_string().to_lowercase(),
            message: m.0,
        });
    }
}

/// Logging for workbench commands: `filter` (e.g. `warn`) to stderr, and
/// every plugin log line into [`Recorder::global`].
pub fn init_logging(filter: &str) {
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(LogCapture(Recorder::global()))
        .try_init();
}
