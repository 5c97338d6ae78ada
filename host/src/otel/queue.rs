//! The span queue between requests and the exporter.
//!
//! Why not a channel: a channel send wakes the receiving task, so every
//! traced request paid a cross-thread wake-up (a futex call, a scheduler
//! round) for spans that wait up to half a second for their batch anyway.
//! Here a request appends under a short lock and wakes the exporter only
//! when a batch is full; otherwise the exporter's own timer collects it.
//! The queue is bounded: spans past it are dropped and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::span::SpanData;

/// Spans that may wait for export; past it they are dropped.
pub const CAPACITY: usize = 32 * 1024;

/// The shared queue; the exporter holds one end, the tracer the other.
#[derive(Debug)]
pub struct SpanQueue {
    spans: Mutex<Vec<SpanData>>,
    wake: Notify,
    closed: AtomicBool,
    /// Spans past which the exporter is woken early (a full batch).
    batch: usize,
    dropped: Counter,
}

impl SpanQueue {
    pub fn new(batch: usize, dropped: Counter) -> Arc<SpanQueue> {
        Arc::new(SpanQueue {
            spans: Mutex::new(Vec::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            batch,
            dropped,
        })
    }

    /// Queue one request's spans; never waits on the exporter. A full
    /// queue drops them, counted.
    pub fn push(&self, mut spans: Vec<SpanData>) {
        let n = spans.len();
        let full_batch = {
            let mut q = self.spans.lock();
            if q.len() + n > CAPACITY {
                drop(q);
                self.dropped.inc_by(n as u64);
                return;
            }
            let before = q.len();
            q.append(&mut spans);
            before < self.batch && q.len() >= self.batch
        };
        if full_batch {
            self.wake.notify_one();
        }
    }

    /// Up to `max` of the oldest spans.
    pub fn take(&self, max: usize) -> Vec<SpanData> {
        let mut q = self.spans.lock();
        if q.len() <= max {
            return std::mem::take(&mut *q);
        }
        let rest = q.split_off(max);
        std::mem::replace(&mut *q, rest)
    }

    pub fn is_empty(&self) -> bool {
        self.spans.lock().is_empty()
    }

    /// No more spans will come (the tracer is gone): the exporter sends
    /// what is queued and ends.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wait until a batch is full, the queue is closed, or `delay` passed.
    pub async fn wait(&self, delay: std::time::Duration) {
        if self.is_closed() {
            return;
        }
        let _ = tokio::time::timeout(delay, self.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel::span::Kind;
    use std::time::SystemTime;

    fn span() -> SpanData {
        SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            tracestate: None,
            name: "s".into(),
            kind: Kind::Server,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attrs: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn bounded_in_order_and_counted() {
        let dropped = Counter::default();
        let q = SpanQueue::new(4, dropped.clone());
        q.push(vec![span(); CAPACITY - 1]);
        q.push(vec![span(), span()]);
        assert_eq!(dropped.get(), 2, "past the bound: dropped, counted");
        q.push(vec![span()]);
        assert_eq!(q.take(10).len(), 10);
        assert_eq!(q.take(usize::MAX).len(), CAPACITY - 10);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_full_batch_or_close_wakes_the_exporter_early() {
        let q = SpanQueue::new(2, Counter::default());
        let long = std::time::Duration::from_secs(30);
        q.push(vec![span()]);
        // Not yet a batch: the wait would run its full delay.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), q.wait(long))
                .await
                .is_err()
        );
        q.push(vec![span()]);
        tokio::time::timeout(std::time::Duration::from_secs(5), q.wait(long))
            .await
            .expect("a full batch wakes the exporter");
        q.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), q.wait(long))
            .await
            .expect("close wakes the exporter");
    }
}
