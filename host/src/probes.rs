//! agentgateway's `config.statsAddr` and `config.readinessAddr`: two small
//! listeners beside the admin one, for scrapers and orchestrators that must
//! not reach the admin API.
//!
//! - stats: `GET /metrics` only, the same text as the admin's `/metrics`.
//!   It shows traffic counts, not secrets, but a web page must not read it
//!   through the browser (DNS rebinding): a request carrying `Origin` is
//!   refused with 403, as on the admin listener. No token: scrapers reach
//!   it on the address the operator chose.
//! - readiness: `GET /healthz/ready` only: 200 once the gateway serves, 503
//!   before and while it drains. Probes carry no `Origin`; nothing is
//!   refused on it but other paths.
//!
//! Every other path or method is 404.

use crate::metrics::Metrics;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the gateway serves: set once its listeners are open, cleared
/// when it starts draining.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub fn stats<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.headers().contains_key(header::ORIGIN) {
        return text(StatusCode::FORBIDDEN, "text/plain", "forbidden\n".into());
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        _ => not_found(),
    }
}

pub fn readiness<B>(ready: &Arc<Readiness>, req: &Request<B>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz/ready") if ready.get() => {
            text(StatusCode::OK, "text/plain", "ready\n".into())
        }
        (&Method::GET, "/healthz/ready") => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into())
}

fn text(status: StatusCode, ct: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn readiness_follows_the_flag_and_serves_one_path() {
        let r = Arc::new(Readiness::default());
        assert_eq!(readiness(&r, &get("/healthz/ready")).status(), 503);
        r.set(true);
        assert_eq!(readiness(&r, &get("/healthz/ready")).status(), 200);
        assert_eq!(readiness(&r, &get("/metrics")).status(), 404);
        let post = Request::post("/healthz/ready").body(()).unwrap();
        assert_eq!(readiness(&r, &post).status(), 404);
    }

    #[test]
    fn stats_serves_metrics_only_and_refuses_pages() {
        let m = Metrics::new();
        assert_eq!(stats(&m, &get("/metrics")).status(), 200);
        assert_eq!(stats(&m, &get("/config")).status(), 404);
        let mut page = get("/metrics");
        page.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert_eq!(stats(&m, &page).status(), 403);
    }
}
