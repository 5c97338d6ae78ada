//! The exporter: a task that batches queued spans and sends them to the
//! collector as OTLP protobuf, over HTTP or gRPC.
//!
//! Requests only ever append to a bounded queue ([`super::queue`]), so a
//! collector that is down, slow or refusing never delays or fails a
//! request: its spans wait in the queue, then are dropped and counted
//! (`sluice_otel_spans_dropped_total`). An outage is logged once when it
//! starts and once when it ends.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

use super::config::ExportSettings;
use super::queue::SpanQueue;
use super::OtelMetrics;
use crate::config::OtlpProtocol;

/// Most spans in one export request.
const MAX_BATCH: usize = 512;
/// Longest a span waits for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_millis(500);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why one export failed (the outage log's reason).
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("gRPC status {0}")]
    Grpc(String),
}

/// The endpoint for logs: scheme, host and port only.
pub fn shown(u: &Uri) -> String {
    format!(
        "{}://{}",
        u.scheme_str().unwrap_or("http"),
        u.authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or(""))
            .unwrap_or("")
    )
}

/// Start the exporter task; it ends once every sender is gone and the
/// queue is flushed (without waiting out [`BATCH_DELAY`]), which is what
/// shutdown waits on.
pub fn spawn(
    settings: ExportSettings,
    metrics: OtelMetrics,
) -> (Arc<SpanQueue>, tokio::task::JoinHandle<()>) {
    let queue = SpanQueue::new(MAX_BATCH, metrics.dropped.clone());
    let task = tokio::spawn(run(settings, metrics, queue.clone()));
    (queue, task)
}

fn client(protocol: OtlpProtocol) -> HttpsClient {
    let roots = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_or_http();
    let connector = match protocol {
        OtlpProtocol::Grpc => roots.enable_http2().build(),
        OtlpProtocol::Http => roots.enable_http1().build(),
    };
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(30));
    if protocol == OtlpProtocol::Grpc {
        b.http2_only(true);
    }
    b.build(connector)
}

/// Mozilla's roots plus the OS store (`SSL_CERT_FILE` honoured), as for upstreams.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

async fn run(settings: ExportSettings, metrics: OtelMetrics, queue: Arc<SpanQueue>) {
    let client = client(settings.protocol);
    let shown = shown(&settings.url);
    let mut outage: Option<(Instant, u64)> = None;
    loop {
        queue.wait(BATCH_DELAY).await;
        let closed = queue.is_closed();
        let batch = queue.take(MAX_BATCH);
        if batch.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        let n = batch.len() as u64;
        let body = super::encode::encode(&settings.resource, &batch);
        match send(&client, &settings, body).await {
            Ok(()) => {
                metrics.exported.inc_by(n);
                if let Some((since, dropped)) = outage.take() {
                    tracing::info!(endpoint = %shown, after = ?since.elapsed(), spans_dropped = dropped,
                        "OTLP collector reachable again; exporting spans");
                }
            }
            Err(e) => {
                metrics.dropped.inc_by(n);
                match &mut outage {
                    Some((_, dropped)) => *dropped += n,
                    None => {
                        tracing::warn!(endpoint = %shown, error = %e,
                            "OTLP collector unavailable; dropping spans until it answers (requests are not affected)");
                        outage = Some((Instant::now(), n));
                    }
                }
            }
        }
    }
}

async fn send(client: &HttpsClient, s: &ExportSettings, msg: Vec<u8>) -> Result<(), ExportError> {
    let mut req = Request::post(s.url.clone());
    for (n, v) in &s.headers {
        req = req.header(n, v);
    }
    let body = match s.protocol {
        OtlpProtocol::Http => {
            req = req.header(header::CONTENT_TYPE, "application/x-protobuf");
            Bytes::from(msg)
        }
        OtlpProtocol::Grpc => {
            req = req
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers");
            let mut b = BytesMut::with_capacity(5 + msg.len());
            b.put_u8(0);
            b.put_u32(msg.len() as u32);
            b.put_slice(&msg);
            b.freeze()
        }
    };
    let req = req
        .body(Full::new(body))
        .map_err(|e| ExportError::Connect(e.to_string()))?;
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| ExportError::Connect(error_chain(&e)))?;
        let status = resp.status();
        let head_grpc = resp.headers().get("grpc-status").cloned();
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ExportError::Connect(e.to_string()))?;
        if !status.is_success() {
            return Err(ExportError::Status(status.as_u16()));
        }
        if s.protocol == OtlpProtocol::Grpc {
            let grpc = head_grpc.or_else(|| {
                collected
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .cloned()
            });
            match grpc.as_ref().and_then(|v| v.to_str().ok()) {
                Some("0") => {}
                Some(code) => return Err(ExportError::Grpc(code.to_string())),
                None => return Err(ExportError::Grpc("missing".into())),
            }
        }
        Ok(())
    };
    tokio::time::timeout(s.timeout, call)
        .await
        .map_err(|_| ExportError::Timeout(s.timeout))?
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
