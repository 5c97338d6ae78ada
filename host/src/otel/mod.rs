//! OpenTelemetry traces: a server span per request, a client span per
//! upstream attempt with the GenAI attributes, a span per policy hook call.
//!
//! Why a small tracer of our own rather than the `opentelemetry` SDK: the
//! gateway needs three span shapes, W3C propagation and one exporter, and
//! it must cost nothing when tracing is off. Spans are recorded as plain
//! data on the request path ([`span`]), only for sampled requests, and
//! turned into OTLP protobuf (`opentelemetry-proto` types) by a batching
//! task off that path ([`export`]).
//!
//! The running [`Tracer`] sits behind [`Tracing`]; a config reload builds a
//! new one (a new exporter) only when the tracing settings changed.

pub mod config;
pub mod content;
pub mod encode;
pub mod export;
pub mod peek;
pub mod propagate;
pub mod queue;
pub mod request;
pub mod span;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::config::{TraceFields, TracingConfig};
use crate::metrics::Metrics;
pub use request::{Finish, RequestTrace, Start};
pub use span::{PolicyCall, PolicyOutcome, PolicySpans, SpanData};

/// Longest shutdown waits for queued spans to reach the collector.
pub const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a tracing config cannot be put in place.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("tracing: {0}")]
    Env(#[from] config::EnvError),
}

/// What a tracing config resolves to; compared on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub settings: config::ExportSettings,
    pub tracing: TracingConfig,
}

/// Resolve `cfg` (from `config.tracing`) with the environment; `None` when
/// tracing is off. Run before a reload swaps anything, so a bad setting
/// refuses the reload.
pub fn plan(
    cfg: Option<&TracingConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Plan>, OtelError> {
    let Some(cfg) = cfg else { return Ok(None) };
    Ok(Some(Plan {
        settings: config::resolve(cfg, env)?,
        tracing: cfg.clone(),
    }))
}

/// The export counters, registered once per process.
#[derive(Clone, Debug, Default)]
pub struct OtelMetrics {
    pub dropped: Counter,
    pub exported: Counter,
}

/// The gateway's tracing: the running tracer, swapped on reload.
pub struct Tracing {
    current: ArcSwapOption<Tracer>,
    plan: Mutex<Option<Plan>>,
    metrics: OtelMetrics,
    /// The running exporter task, awaited on shutdown.
    exporter: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Tracing {
    pub fn new(metrics: &Metrics) -> Tracing {
        let m = OtelMetrics::default();
        metrics.with_registry(|r| {
            r.register(
                "otel_spans_dropped",
                "Spans dropped: export queue full, or the collector down or refusing them",
                m.dropped.clone(),
            );
            r.register(
                "otel_spans_exported",
                "Spans the collector accepted",
                m.exported.clone(),
            );
        });
        Tracing {
            current: ArcSwapOption::empty(),
            plan: Mutex::new(None),
            metrics: m,
            exporter: Mutex::new(None),
        }
    }

    /// Shutdown, once requests are drained: stop tracing and wait, up to
    /// `limit`, for the exporter to send what is still queued. Dropping the
    /// last [`Tracer`] closes the queue, and the exporter flushes and ends.
    pub async fn shutdown(&self, limit: std::time::Duration) {
        self.current.store(None);
        *self.plan.lock() = None;
        let Some(task) = self.exporter.lock().take() else {
            return;
        };
        if tokio::time::timeout(limit, task).await.is_err() {
            tracing::warn!(
                ?limit,
                "spans still queued at shutdown were not all exported"
            );
        }
    }

    /// The tracer for a new request; `None` (no allocation) when off.
    #[inline]
    pub fn current(&self) -> Option<Arc<Tracer>> {
        self.current.load_full()
    }

    /// Put `plan` in place (within the Tokio runtime: it starts the exporter).
    /// The same plan as the running one keeps the running exporter.
    pub fn apply(&self, plan: Option<Plan>) {
        let mut cur = self.plan.lock();
        if *cur == plan {
            return;
        }
        match &plan {
            None => {
                if cur.is_some() {
                    tracing::info!("tracing off");
                }
                self.current.store(None);
                *self.exporter.lock() = None;
            }
            Some(p) => {
                let (queue, task) = export::spawn(p.settings.clone(), self.metrics.clone());
                // The replaced exporter flushes and ends on its own once
                // its requests are done.
                *self.exporter.lock() = Some(task);
                tracing::info!(
                    endpoint = %export::shown(&p.settings.url),
                    protocol = ?p.settings.protocol,
                    random_sampling = p.tracing.random_sampling,
                    client_sampling = p.tracing.client_sampling,
                    "tracing on"
                );
                self.current
                    .store(Some(Arc::new(Tracer::new(&p.tracing, queue))));
            }
        }
        *cur = plan;
    }
}

/// Random ids and sampling draws, from the thread's CSPRNG (`rand`'s
/// ChaCha generator, seeded and reseeded from the OS): a traced request
/// takes a dozen ids, and a system call for each showed in the profile.
#[derive(Debug, Default)]
pub struct Ids;

impl Ids {
    fn fill<const N: usize>(&self) -> [u8; N] {
        use rand::Rng;
        let mut rng = rand::rng();
        loop {
            let mut b = [0u8; N];
            rng.fill(&mut b[..]);
            // W3C: an all-zero id is invalid.
            if b.iter().any(|x| *x != 0) {
                return b;
            }
        }
    }
    pub fn trace_id(&self) -> propagate::TraceId {
        self.fill()
    }
    pub fn span_id(&self) -> propagate::SpanId {
        self.fill()
    }
    /// True with probability `ratio`.
    fn chance(&self, ratio: f64) -> bool {
        if ratio >= 1.0 {
            return true;
        }
        if ratio <= 0.0 {
            return false;
        }
        let r = u64::from_be_bytes(self.fill());
        (r as f64) < ratio * (u64::MAX as f64)
    }
}

/// One tracing configuration at work: sampling, fields and its exporter queue.
pub struct Tracer {
    random: f64,
    client: f64,
    pub(crate) fields: TraceFields,
    /// Request headers `fields.add` reads (lower case).
    pub(crate) header_fields: Vec<String>,
    pub(crate) ids: Ids,
    /// `content` enabled: `Some(allow_unmasked)`.
    pub(crate) content: Option<bool>,
    /// A `fields.add` expression may read the prompt or the answer.
    pub(crate) content_fields: bool,
    /// A `fields.add` expression may read any request header: every header
    /// but the credentials is captured.
    pub(crate) all_headers: bool,
    queue: Arc<queue::SpanQueue>,
}

/// The last request done with a replaced (or stopped) tracer closes its
/// queue: the exporter sends what is left and ends.
impl Drop for Tracer {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Tracer {
    fn new(cfg: &TracingConfig, queue: Arc<queue::SpanQueue>) -> Tracer {
        let header_fields = cfg
            .fields
            .add
            .iter()
            .filter_map(|(_, e)| match e {
                crate::config::FieldExpr::Var(crate::config::FieldVar::RequestHeader(h)) => {
                    Some(h.clone())
                }
                _ => None,
            })
            .collect();
        Tracer {
            random: cfg.random_sampling,
            client: cfg.client_sampling,
            fields: cfg.fields.clone(),
            header_fields,
            ids: Ids,
            content: cfg.content.as_ref().map(|c| c.allow_unmasked),
            content_fields: cfg
                .fields
                .add
                .iter()
                .any(|(_, e)| matches!(e, crate::config::FieldExpr::Cel(c) if c.0.reads_content())),
            all_headers: cfg
                .fields
                .add
                .iter()
                .any(|(_, e)| matches!(e, crate::config::FieldExpr::Cel(c) if c.0.reads_headers())),
            queue,
        }
    }

    /// Decide whether this request is traced; start its trace if so.
    ///
    /// A caller's `traceparent` is continued when it is sampled and
    /// `clientSampling` draws it; a request without one starts a trace when
    /// `randomSampling` draws it.
    pub fn start(self: &Arc<Self>, headers: &HeaderMap, s: Start<'_>) -> Option<Box<RequestTrace>> {
        let (trace_id, parent) = match propagate::extract(headers) {
            Some(p) => {
                if !p.sampled || !self.ids.chance(self.client) {
                    return None;
                }
                (p.trace_id, Some((p.span_id, p.tracestate)))
            }
            None => {
                if !self.ids.chance(self.random) {
                    return None;
                }
                (self.ids.trace_id(), None)
            }
        };
        let span_id = self.ids.span_id();
        Some(Box::new(RequestTrace::new(
            self.clone(),
            trace_id,
            span_id,
            parent,
            headers,
            s,
        )))
    }

    /// Queue a request's spans; never waits. A full queue drops them (counted).
    fn submit(&self, spans: Vec<SpanData>) {
        self.queue.push(spans);
    }
}
