//! The request pipeline: every phase of a request, top to bottom, in one place.
//!
//! Like Pingora's `ProxyHttp`, the phases are the request flow:
//!
//! 0. **canonical request**: hop-by-hop headers dropped and the path normalised
//!    (`path.rs`), so routing, policies and the upstream read the same request.
//! 1. **route**: pick the route and the policy layers that wrap it; 404 otherwise.
//! 2. **request_filter**: policies see the request headers (deny, edit, ask for the body).
//! 3. **request_body_filter**: only if a policy asked: buffer the body, undo its
//!    `Content-Encoding`, check strict JSON on JSON kinds (`request_body.rs`),
//!    policies see it whole and decoded. When a body hook is attached and the
//!    body is encoded or has no length, it is read and decoded *before*
//!    phase 2, so header hooks see the decoded `Content-Length`: a size limit
//!    cannot be walked past by compression. All of it counts against the
//!    shared body budget, the decoded copy included.
//!    1c. **model route** (`llm:` listeners), once the body is read and
//!    before the body policies: its `model` picks the route and backend
//!    (`model_router.rs`), then phase 1b's format check runs for it.
//! 4. **upstream_request**: pick a backend (`backends.rs`: weights, priority
//!    groups, health), rewrite the path, shape the request for its provider,
//!    forward or inject its credential.
//! 5. **upstream**: send it, with the time left; on a connection failure, a
//!    timeout or a status in `retry.codes`, back to 4 for the next attempt
//!    (`attempts.rs`), the body replayed from memory. 502/503/504 in the
//!    client's shape when no attempt answered.
//!    A backend that does not speak the client's format gets the request
//!    translated (`crate::translate`), and its answer is translated back
//!    before phase 6.
//!    5b. **failover** (`llm:` failover virtual models): when phase 5 ends
//!    on no answer, a 429 or a 5xx, the virtual model's next target, with
//!    its own attempts, before any byte reached the client.
//! 6. **response_filter**: policies see the response headers.
//! 7. **response_body_filter**: pass, observe (usage) or rewrite (JSON whole / SSE events).
//! 8. **logging**: when the body ends, the completion hook, access log and metrics
//!    (`Session::finish`, run by the response body).
//!
//! Nothing goes upstream before phases 2-3 have decided, and phases 2-3 run
//! once per client request however many attempts phase 5 makes.

use super::attempts::{Attempts, Failure, Next, Outcome};
use super::backends::Candidate;
use super::budget;
use super::client::UpstreamBody;
use super::errors::{error_response, ErrorShape};
use super::guard;
use super::headers;
use super::path;
use super::request_body;
use super::response_body::{Mode, ResponseBody};
use super::router;
use super::session::Session;
use super::snapshot::{ListenerTable, RouteEntry, Snapshot};
use super::target::{ai_kind, rewrite_path};
use crate::config::AiKind;
use crate::metrics::Metrics;
use crate::otel::{self, Tracer};
use crate::policy::{self, Chain, HeadersOutcome, RequestContext, RequestScope};
use crate::provider::{self, Family, ProviderError};
use crate::stream::decode::Encoding;
use crate::stream::usage::UsageReader;
use crate::translate;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Serve one request.
pub async fn handle(
    snap: Arc<Snapshot>,
    metrics: Arc<Metrics>,
    tracer: Option<Arc<Tracer>>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    // Phase 0: one canonical request for everything after.
    if let Err(resp) = canonical_request(&metrics, &mut req, peer) {
        return resp;
    }

    // Phase 1: route (on the listener the request arrived on, if it admits it).
    let listener = match guard::admit(&snap, &mut req) {
        Ok(l) => l,
        Err(r) => return refused(&metrics, &req, peer, r),
    };
    // On an `llm:` listener the route is the model dispatcher: the session
    // starts on a placeholder entry, and phase 1c (once the body is read)
    // picks the model's own.
    let models = listener.models.clone();
    let (mut session, mut route, prefix_len) = match route(
        &listener,
        &metrics,
        &req,
        peer,
        models.as_ref().map(|m| m.placeholder()),
    ) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut fallbacks = std::collections::VecDeque::new();
    if let Some(t) = &tracer {
        start_trace(t, &mut session, &listener.name, &req, peer);
    }
    // Phase 1b: a request in a format no backend's provider speaks is
    // refused before any policy or upstream sees it (on an `llm:` listener,
    // in phase 1c, when the backend is known). A model listing no backend
    // can give is answered from the config, once the request policies ran.
    let kind = kind_of(&session);
    let listed_here = kind == AiKind::Models && !route.backends.all().any(|c| fits(c, kind));
    if models.is_none() && !listed_here && !route.backends.all().any(|c| fits(c, kind)) {
        // Read the unread body away, so the client's connection stays
        // usable for its next request.
        discard(req.into_body());
        return wrong_format(session, &route, kind);
    }
    let (mut parts, body) = req.into_parts();
    let wants = session.chain.wants();

    // Phase 3, early: when a body hook is attached but the headers do not
    // say how large the body the policies would see is (it is encoded, or
    // has no length), read and decode it first, so that phase 2 already sees
    // the decoded `Content-Length` and no `Content-Encoding`. A size limit
    // decided at the headers then holds for what the body inflates to, and
    // refuses it before a byte is copied into a plugin.
    let declared = body.size_hint().exact();
    let mut body = Some(body);
    let mut buffered: Option<request_body::Buffered> = None;
    if wants.contains(policy::Hooks::REQUEST_BODY)
        && request_body::length_unknown(&parts.headers, declared)
    {
        match read_body(&mut body, declared, &mut parts.headers).await {
            Ok(b) => buffered = Some(b),
            Err(r) => return body_refused(session, r),
        }
    }

    // Phase 2: request_filter.
    let mut need_body = false;
    if wants.contains(policy::Hooks::REQUEST_HEADERS) {
        let chain = session.chain.clone();
        match chain.request_headers(&mut session.scope, &mut parts.headers) {
            Ok(HeadersOutcome::Continue { need_body: nb }) => need_body = nb,
            Ok(HeadersOutcome::Respond(r)) => {
                if let Some(b) = body {
                    discard(b);
                }
                return session.immediate(r);
            }
            Err(f) => {
                if let Some(b) = body {
                    discard(b);
                }
                return session.policy_failure(f);
            }
        }
    }

    // `/v1/models` on an `llm:` listener: answered from the config, once
    // the policies have admitted the request.
    if let Some(m) = &models {
        if super::model_router::lists_models(&parts.method, &session.scope.ctx.path) {
            let anthropic = parts.headers.contains_key("anthropic-version");
            let list = for_key(&session, m.list(anthropic));
            return answer(session, 200, list);
        }
    }

    // Phase 3: request_body_filter.
    // A policy asks for the body with `need-body`; one with only a body hook
    // (nothing to decide on at headers) always gets it.
    // The backend may need the body in hand as well (a model override, a
    // provider that rewrites or signs it), and so does a route that may
    // replay it on a further attempt: it is read here then, once, within
    // the body budget (too large: refused, never replayed in part).
    let mut _held_body = None;
    let policy_body = session.chain.runs_body_policies(need_body);
    let mut body: Forward = if policy_body
        || models.is_some()
        || forward_needs_body(&route, kind)
        || Attempts::may_replay(&route)
    {
        let got = match buffered.take() {
            Some(b) => b,
            None => match read_body(&mut body, declared, &mut parts.headers).await {
                Ok(b) => b,
                Err(r) => return body_refused(session, r),
            },
        };
        _held_body = Some(got.held);
        let mut bytes = got.bytes;
        // Phase 1c: model route. The body's `model` picks the route.
        if let Some(m) = &models {
            match model_route(m, session, &mut bytes, kind) {
                Ok((s, r, f)) => {
                    session = s;
                    route = r;
                    fallbacks = f.into();
                }
                Err(resp) => return resp,
            }
            if !route.backends.all().any(|c| fits(c, kind)) {
                return wrong_format(session, &route, kind);
            }
            // The router read the body strictly already.
            request_body::peek(&mut session.scope.ctx, &bytes);
        } else if let Err(r) = request_body::admit(&mut session.scope.ctx, &bytes) {
            return body_refused(session, r);
        }
        // Aliases rewrite the model before any policy or upstream sees it.
        if let Err(e) = apply_alias(&mut session, &route, &mut bytes) {
            return session.error(500, "", &e.to_string());
        }
        if policy_body {
            let chain = session.chain.clone();
            match chain.request_body(&mut session.scope, &mut parts.headers, &mut bytes) {
                Ok(None) => {}
                Ok(Some(r)) => return session.immediate(r),
                Err(f) => return session.policy_failure(f),
            }
        }
        Forward::Whole(bytes)
    } else if let Some(got) = buffered.take() {
        // Read early, and no policy wanted it after all: it goes upstream as
        // the policies' headers describe it, decoded.
        _held_body = Some(got.held);
        Forward::Whole(got.bytes)
    } else {
        Forward::Stream(Some(body.take().expect("the body is not read yet").boxed()))
    };

    if listed_here && models.is_none() {
        let anthropic = parts.headers.contains_key("anthropic-version");
        let list = super::models::listing(&super::models::names(&route), anthropic);
        let list = for_key(&session, list);
        return answer(session, 200, list);
    }

    // Phases 4-5: upstream_request and upstream, one attempt after another.
    // Each attempt picks a backend, has its provider shape the request (path,
    // body, credential) and sends it with the time left; a failure or a
    // retryable status leads to the next attempt. Policies ran once, above.
    let mut dropped = Vec::new();
    let (served, resp) = loop {
        let current = route.clone();
        let mut attempts = Attempts::new(&current, &metrics, kind, session.started);
        let outcome = loop {
            let c = match attempts.next().await {
                Next::Try(c) => c,
                Next::Answer(c, resp) => break Ok((c, resp)),
                Next::Fail(f) => break Err(f),
            };
            session.serve_with(&c, attempts.made());
            let req = upstream_request(
                &session,
                &current,
                &c,
                parts.clone(),
                &mut body,
                prefix_len,
                peer,
            );
            let mut upstream_req = match req.await {
                Ok((r, d)) => {
                    dropped = d;
                    r
                }
                Err(ProviderError::BadRequest(msg)) => {
                    return session.error(400, "invalid_request_error", &msg)
                }
                Err(e @ ProviderError::Internal(_)) => {
                    tracing::error!(route = %current.name, error = %e, "upstream request not built");
                    return session.error(500, "", &e.to_string());
                }
                Err(ProviderError::Unavailable(msg)) => {
                    tracing::warn!(route = %current.name, backend = %c.target.name, error = %msg, "backend credential unavailable");
                    return session.error(503, "", &msg);
                }
            };
            if let Some(t) = session.trace.as_mut() {
                trace_upstream(t, &c, &mut upstream_req);
            }
            let sent =
                tokio::time::timeout(attempts.time_left(), c.client.request(upstream_req)).await;
            match attempts.outcome(&c, sent, session.trace.as_deref_mut()) {
                Outcome::Answer(resp) => break Ok((c, resp)),
                Outcome::TryAgain => continue,
            }
        };
        // Phase 5b: failover (`llm:` failover virtual models): no answer, a
        // 429 or a 5xx goes to the next target, before any byte of it
        // reached the client.
        let failed_over = match &outcome {
            Err(_) => true,
            Ok((_, r)) => {
                r.status() == http::StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
            }
        };
        if let (true, Forward::Whole(bytes)) = (failed_over, &body) {
            if let Some((next, model)) = next_target(&mut fallbacks, kind) {
                tracing::warn!(from = %current.name, to = %next.name, "failover to the next target");
                let moved = match provider::body::with_model(bytes, &model) {
                    Ok(b) => b.unwrap_or_else(|| bytes.clone()),
                    Err(e) => return session.error(500, "", &e.to_string()),
                };
                body = Forward::Whole(moved);
                route = next;
                session.route = Some(route.clone());
                session.scope.ctx.model = Some(model);
                continue;
            }
        }
        match outcome {
            Ok((c, resp)) => {
                session.serve_with(&c, attempts.made());
                break (c, resp);
            }
            Err(f) => return failed(session, f),
        }
    };

    // Phase 6: response_filter. An answer the client cannot read as it is
    // (another framing or error envelope) is transcoded first, so policies
    // see what the client will.
    let (mut parts, body) = resp.into_parts();
    headers::prepare_response(&mut parts.headers);
    let transcoder = match translation(&served, kind) {
        Some(dir) => {
            let status = parts.status.as_u16();
            let inner = served
                .target
                .api()
                .and_then(|a| a.transcoder(dir.upstream_kind(), status, &mut parts.headers));
            Some(translate::transcoder(
                dir,
                inner,
                &mut parts.status,
                &mut parts.headers,
                &dropped,
            ))
        }
        None => served
            .target
            .api()
            .and_then(|a| a.transcoder(kind, parts.status.as_u16(), &mut parts.headers)),
    };
    session.status = parts.status.as_u16();
    if transcoder.is_some() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    if let Some(t) = session.trace.as_mut() {
        t.upstream_status(session.status);
    }
    if wants.contains(policy::Hooks::RESPONSE_HEADERS) {
        let chain = session.chain.clone();
        match chain.response_headers(&mut session.scope, session.status, &mut parts.headers) {
            Ok(None) => {}
            Ok(Some(r)) => return session.immediate(r),
            Err(f) => return session.policy_failure(f),
        }
    }

    // A key restricted to some models sees only those in an upstream's
    // listing too.
    let listing = kind == AiKind::Models
        || (session.scope.ctx.method.eq_ignore_ascii_case("GET")
            && session
                .scope
                .ctx
                .path
                .trim_end_matches('/')
                .ends_with("/v1/models"));
    if listing && parts.status.is_success() {
        if let Some(p) = crate::keys::models::patterns(&session.scope.attrs) {
            return upstream_listing_for_key(session, parts, body, transcoder.is_some(), &p).await;
        }
    }

    // Phase 7: response_body_filter.
    response_body_filter(session, wants, parts, body, transcoder).await
}

/// A config-answered model listing, filtered by the key's `allowedModels`.
fn for_key(session: &Session, list: Bytes) -> Bytes {
    match crate::keys::models::patterns(&session.scope.attrs) {
        None => list,
        Some(p) => crate::keys::models::filter_listing(&list, &p)
            .unwrap_or_else(|| Bytes::from_static(b"{\"data\":[]}")),
    }
}

/// Largest upstream model listing read to be filtered.
const MAX_LISTING: usize = 8 << 20;

/// An upstream model listing, read whole and filtered by the key's
/// `allowedModels`. One the gateway cannot read (encoded, transcoded, not
/// a listing) is refused rather than passed on unfiltered.
async fn upstream_listing_for_key(
    session: Session,
    mut parts: http::response::Parts,
    body: Incoming,
    transcoded: bool,
    patterns: &[String],
) -> Response<ResponseBody> {
    use http_body_util::{BodyExt, Limited};
    let refuse = |session: Session| {
        session.error(
            502,
            "",
            "the upstream's model list could not be filtered for this API key",
        )
    };
    let identity = matches!(
        Encoding::from_header(parts.headers.get(header::CONTENT_ENCODING)),
        Encoding::Identity
    );
    if transcoded || !identity {
        discard(body);
        return refuse(session);
    }
    let read = Limited::new(body, MAX_LISTING).collect();
    let bytes = match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return refuse(session),
    };
    let Some(filtered) = crate::keys::models::filter_listing(&bytes, patterns) else {
        return refuse(session);
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    Response::from_parts(parts, ResponseBody::full(filtered, session))
}

/// The request body as phase 4 forwards it.
enum Forward {
    /// Read whole (a policy or a backend needed it, or an attempt may be
    /// replayed): every attempt sends the same bytes.
    Whole(Bytes),
    /// Streamed through untouched, by the one attempt there can be.
    Stream(Option<UpstreamBody>),
}

/// Whether a backend can serve a request of `kind` (it speaks its format,
/// or the gateway translates it).
pub(super) fn fits(c: &Candidate, kind: AiKind) -> bool {
    provider::speaks(c.target.api(), kind) || translation(c, kind).is_some()
}

/// How a request of `kind` is translated for the backend, when it is.
fn translation(c: &Candidate, kind: AiKind) -> Option<translate::Direction> {
    c.target.api().and_then(|a| translate::direction(a, kind))
}

/// Whether forwarding to one of the route's backends needs the body in
/// hand: a model override rewrites it, and some providers rewrite or sign it.
fn forward_needs_body(route: &RouteEntry, kind: AiKind) -> bool {
    let json = !matches!(kind, AiKind::Passthrough | AiKind::Models);
    (json && !route.aliases.is_empty())
        || route.backends.all().filter(|c| fits(c, kind)).any(|c| {
            c.target
                .api()
                .is_some_and(|api| (json && c.target.model.is_some()) || api.needs_body(kind))
                || translation(c, kind).is_some()
        })
}

/// Phase 5 ended without an answer to pass on: 502, 503 (every backend
/// evicted, with `Retry-After`) or 504, in the client's shape.
fn failed(session: Session, f: Failure) -> Response<ResponseBody> {
    let mut resp = session.error(f.status, "", &f.message);
    if let Some(s) = f.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// `ai.modelAliases`: the requested model becomes the served one in the
/// body and the context; the requested name is kept for the access log.
fn apply_alias(
    session: &mut Session,
    route: &RouteEntry,
    bytes: &mut Bytes,
) -> Result<(), ProviderError> {
    let ctx = &mut session.scope.ctx;
    let Some(served) = ctx.model.as_deref().and_then(|m| route.aliases.resolve(m)) else {
        return Ok(());
    };
    let served = served.to_string();
    if let Some(b) = provider::body::with_model(bytes, &served)? {
        *bytes = b;
    }
    session.requested_model = ctx.model.replace(served);
    Ok(())
}

/// Phase 1, traced: sample the request and start its trace (server span,
/// policy spans recorded in the scope).
fn start_trace(
    tracer: &Arc<Tracer>,
    session: &mut Session,
    listener: &str,
    req: &Request<Incoming>,
    peer: SocketAddr,
) {
    let ctx = &session.scope.ctx;
    session.trace = tracer.start(
        req.headers(),
        otel::Start {
            started: session.started,
            listener,
            route: &ctx.route,
            request_id: &ctx.request_id,
            peer,
            method: &ctx.method,
            path: &ctx.path,
        },
    );
    let masked = session.chain.has_plugin(crate::config::OUTPUT_MASK);
    if let Some(t) = session.trace.as_mut() {
        t.content_for(masked);
        session.scope.policy_spans = Some(t.policy_spans());
    }
}

/// Phase 4, traced: the upstream attempt's client span (one per attempt),
/// its `traceparent`, and the GenAI parameters read off the body on its way.
fn trace_upstream(t: &mut otel::RequestTrace, c: &Candidate, req: &mut Request<UpstreamBody>) {
    t.upstream_start(
        req.headers_mut(),
        c.target.authority.as_str(),
        c.target.scheme == http::uri::Scheme::HTTPS,
    );
    let body = std::mem::replace(
        req.body_mut(),
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *req.body_mut() = t.peek_body(body).boxed();
}

/// Phase 3's read: buffer and decode the client's body (taken from `body`,
/// which holds it until read), under the cap and the shared budget. On a
/// refusal the rest of the body is drained in the background.
async fn read_body(
    body: &mut Option<Incoming>,
    declared: Option<u64>,
    headers: &mut http::HeaderMap,
) -> Result<request_body::Buffered, request_body::Refusal> {
    let mut incoming = body.take().expect("the body is read once");
    let got = request_body::read(
        &mut incoming,
        declared,
        headers,
        budget::max_body(),
        &budget::GLOBAL,
    )
    .await;
    if got.is_err() {
        discard(incoming);
    }
    got
}

/// Phase 1c: on an `llm:` listener, the body's `model` picks the route
/// (`model_router.rs`); the session moves onto it and `bytes` becomes the
/// body it is sent (its `model` rewritten). A request no model serves gets
/// the router's refusal (`model_not_found`, ...) in the client's shape.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn model_route(
    models: &super::model_router::ModelRouter,
    mut session: Session,
    bytes: &mut Bytes,
    kind: AiKind,
) -> Result<(Session, Arc<RouteEntry>, Vec<(Arc<RouteEntry>, String)>), Response<ResponseBody>> {
    let refuse = |session: Session, r: super::model_router::Refusal| {
        tracing::debug!(status = r.status, code = r.code, "model route refused");
        let body = r.body(session.shape);
        answer(session, r.status, body)
    };
    // One reading of the body for the router and the provider (duplicate
    // keys, lone surrogates), whatever the path's kind.
    if let Err(e) = super::strict_json::check(bytes) {
        let r = super::model_router::Refusal {
            status: 400,
            code: "invalid_request_body",
            message: e.to_string(),
        };
        return Err(refuse(session, r));
    }
    let routed = match models.route(bytes) {
        Ok(r) => r,
        Err(r) => return Err(refuse(session, r)),
    };
    *bytes = routed.body;
    let r = routed.route;
    let first = r
        .backends
        .all()
        .find(|c| fits(c, kind))
        .unwrap_or_else(|| r.backends.first())
        .clone();
    session.scope.ctx.backend = first.target.name.clone();
    session.scope.ctx.provider = policy_provider(&first, kind);
    if let Some(api) = first.target.api() {
        session.scope.attrs.insert(
            "backend.provider".into(),
            api.provider().config_name().into(),
        );
    }
    session.backend = Some(first);
    session.route = Some(r.clone());
    session.requested_model = Some(routed.requested);
    Ok((session, r, routed.fallbacks))
}

/// Phase 5b's next target: the first of a failover virtual model's
/// remaining targets that can serve a request of `kind`.
fn next_target(
    fallbacks: &mut std::collections::VecDeque<(Arc<RouteEntry>, String)>,
    kind: AiKind,
) -> Option<(Arc<RouteEntry>, String)> {
    while let Some((next, model)) = fallbacks.pop_front() {
        if next.backends.all().any(|c| fits(c, kind)) {
            return Some((next, model));
        }
    }
    None
}

/// A JSON answer the gateway gives itself (the model list, a model
/// router refusal), logged like any response.
fn answer(mut session: Session, status: u16, body: Bytes) -> Response<ResponseBody> {
    session.status = status;
    session.short_circuited = true;
    let mut resp = Response::new(ResponseBody::full(body, session));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn body_refused(session: Session, r: request_body::Refusal) -> Response<ResponseBody> {
    let mut resp = session.error(r.status, r.error_type, &r.message);
    if r.status == 503 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Most of a refused request's body the gateway reads and throws away, so the
/// client finishes sending and sees the answer instead of a broken pipe.
const MAX_DISCARD: usize = 64 << 20;

/// Read a body we won't forward to its end in the background, keeping
/// nothing, up to [`MAX_DISCARD`] bytes or 10 s; then drop the connection's body.
fn discard(body: Incoming) {
    tokio::spawn(async move {
        let drain = async {
            let mut body = body;
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    seen += d.len();
                    if seen > MAX_DISCARD {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
    });
}

/// Phase 0: drop hop-by-hop headers (and those the client's `Connection`
/// names) before any policy runs, so a client cannot remove a header a policy
/// sets; normalise the path so routing, policies and the upstream see one path.
#[allow(clippy::result_large_err)]
fn canonical_request(
    metrics: &Arc<Metrics>,
    req: &mut Request<Incoming>,
    peer: SocketAddr,
) -> Result<(), Response<ResponseBody>> {
    headers::strip_hop_by_hop(req.headers_mut());
    let normalized = match path::normalize(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            let shape = ErrorShape::guess(req.uri().path(), req.headers());
            let msg = e.to_string();
            tracing::info!(target: "sluice::access", method = %req.method(), status = 400, error = %msg, "bad path");
            let mut session = unrouted_session(metrics, req, peer, shape);
            session.status = 400;
            return Err(error_response(
                shape,
                400,
                "invalid_request_error",
                &msg,
                |b| ResponseBody::full(b, session),
            ));
        }
    };
    if normalized != req.uri().path() {
        let pq = match req.uri().query() {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized,
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = pq.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    Ok(())
}

/// Phase 1: choose the route; build the session and the request's chain.
#[allow(clippy::result_large_err)]
fn route(
    snap: &ListenerTable,
    metrics: &Arc<Metrics>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    picked: Option<Arc<RouteEntry>>,
) -> Result<(Session, Arc<RouteEntry>, Option<usize>), Response<ResponseBody>> {
    let path = req.uri().path();
    let model_routed = picked.is_some();
    let selected = match picked {
        Some(r) => Some((r, None)),
        None => router::select(&snap.routes, req.method(), path, req.headers())
            .map(|(r, h)| (r.clone(), h.prefix_len)),
    };
    let Some((route, prefix_len)) = selected else {
        let shape = ErrorShape::guess(path, req.headers());
        let msg = format!("no route for {} {}", req.method(), path);
        tracing::info!(target: "sluice::access", method = %req.method(), path, status = 404, "no route");
        return Err(error_response(shape, 404, "", &msg, |b| {
            ResponseBody::full(b, unrouted_session(metrics, req, peer, shape))
        }));
    };
    let mut attachments = Vec::new();
    for (set, layer) in &snap.layers {
        if set.best(req.method(), path, req.headers()).is_some() {
            attachments.extend(layer.attachments.iter().cloned());
        }
    }
    attachments.extend(route.attachments.iter().cloned());

    let rewritten = rewrite_path(path, route.rewrite.as_ref(), prefix_len);
    let kind = ai_kind(route.ai_routes.as_deref(), &rewritten);
    // Until an attempt picks one, policies are told of the first backend
    // that can serve the request. On an `llm:` listener every model is
    // served by the one "llm" route (as in agentgateway): policies keyed by
    // route (rate limits) share it, and the backend is known in phase 1c.
    let first = route
        .backends
        .all()
        .find(|c| fits(c, kind))
        .unwrap_or_else(|| route.backends.first())
        .clone();
    let ctx = RequestContext {
        request_id: request_id(req),
        route: if model_routed {
            crate::config::llm::LLM_LISTENER.to_string()
        } else {
            route.name.clone()
        },
        backend: if model_routed {
            String::new()
        } else {
            first.target.name.clone()
        },
        provider: if model_routed {
            policy::Provider::None
        } else {
            policy_provider(&first, kind)
        },
        kind: policy_kind(kind),
        method: req.method().to_string(),
        path: path.to_string(),
        query: req.uri().query().map(str::to_string),
        client_ip: peer.ip().to_string(),
        model: None,
        streaming: false,
    };
    let mut scope = RequestScope::new(ctx);
    if let (false, Some(api)) = (model_routed, first.target.api()) {
        // The exact provider, beside the context's two-family `provider`.
        scope.attrs.insert(
            "backend.provider".into(),
            api.provider().config_name().into(),
        );
    }
    let session = Session {
        started: Instant::now(),
        route: Some(route.clone()),
        chain: Arc::new(Chain::new(attachments)),
        scope,
        // An `llm:` listener answers in the format the client wrote in.
        shape: if model_routed || translation(&first, kind).is_some() {
            client_shape(kind)
        } else {
            route.shape.unwrap_or_else(|| client_shape(kind))
        },
        backend: Some(first),
        attempts: 0,
        status: 0,
        short_circuited: false,
        metrics: metrics.clone(),
        first_byte: None,
        trace: None,
        requested_model: None,
    };
    Ok((session, route, prefix_len))
}

/// A request its listener refused (Host, Origin, client key), in the error
/// shape the client speaks; logged and counted like an unrouted one.
fn refused(
    metrics: &Arc<Metrics>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    r: guard::Refusal,
) -> Response<ResponseBody> {
    let path = req.uri().path();
    let shape = ErrorShape::guess(path, req.headers());
    tracing::info!(target: "sluice::access", method = %req.method(), path, status = r.status, reason = %r.message, "refused by listener");
    let mut session = unrouted_session(metrics, req, peer, shape);
    session.status = r.status;
    error_response(shape, r.status, "", &r.message, |b| {
        ResponseBody::full(b, session)
    })
}

/// A session for a request no route claimed, so it is still logged and counted.
fn unrouted_session(
    metrics: &Arc<Metrics>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    shape: ErrorShape,
) -> Session {
    Session {
        started: Instant::now(),
        route: None,
        chain: Arc::new(Chain::new(Vec::new())),
        scope: RequestScope::new(RequestContext {
            request_id: request_id(req),
            route: String::new(),
            backend: String::new(),
            provider: policy::Provider::None,
            kind: policy::AiKind::Passthrough,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            client_ip: peer.ip().to_string(),
            model: None,
            streaming: false,
        }),
        shape,
        backend: None,
        attempts: 0,
        status: 404,
        short_circuited: true,
        metrics: metrics.clone(),
        first_byte: None,
        trace: None,
        requested_model: None,
    }
}

/// Phase 4: the request as the upstream must see it. The provider shapes
/// path and body; the credential goes on last, over the final request.
async fn upstream_request(
    session: &Session,
    route: &RouteEntry,
    cand: &Candidate,
    mut parts: http::request::Parts,
    body: &mut Forward,
    prefix_len: Option<usize>,
    peer: SocketAddr,
) -> Result<(Request<UpstreamBody>, Vec<String>), ProviderError> {
    let t = &cand.target;
    let ctx = &session.scope.ctx;
    headers::prepare_request(&mut parts.headers, peer.ip());
    let w = session.chain.wants();
    if w.contains(policy::Hooks::RESPONSE_BODY)
        || w.contains(policy::Hooks::RESPONSE_EVENTS)
        || w.contains(policy::Hooks::COMPLETE)
    {
        // A response policy must read the answer (and a completion hook its
        // usage): ask only for what the host decodes.
        headers::limit_accept_encoding(&mut parts.headers);
    }
    if t.credential.is_some() {
        super::billing::drop_billing_headers(&mut parts.headers, &cand.pass_headers);
    }
    if !parts.headers.contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            parts.headers.insert("x-request-id", v);
        }
    }
    let (whole, stream) = match body {
        Forward::Whole(b) => (Some(b.clone()), None),
        Forward::Stream(s) => (None, s.take()),
    };
    let mut out = provider::Outgoing {
        kind: kind_of(session),
        path: rewrite_path(&ctx.path, route.rewrite.as_ref(), prefix_len),
        query: parts.uri.query().map(str::to_string),
        headers: std::mem::take(&mut parts.headers),
        body: whole,
        model: t.model.clone().or_else(|| ctx.model.clone()),
        stream: ctx.streaming,
    };
    let mut path = None;
    let mut dropped = Vec::new();
    if let Some(api) = t.api() {
        if let Some(dir) = translate::direction(api, out.kind) {
            dropped = translate::request(dir, &mut out, route.unsupported_fields)
                .map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        }
        api.shape(&mut out)?;
        path = api.path(&out)?;
    }
    // A provider that lays out its own paths (Bedrock, Vertex, Azure) gets
    // none of the client's query (Claude Code's `?beta=true`): the API it
    // calls is not the one the client named.
    let own_path = path.is_some();
    let mut path_and_query = match (t.path_override(), path) {
        (Some(p), _) => p.to_string(),
        (None, Some(p)) => p,
        (None, None) => t.upstream_path(&out.path),
    };
    if let (Some(q), false) = (&out.query, own_path) {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    parts.uri = Uri::builder()
        .scheme(t.scheme.clone())
        .authority(t.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ProviderError::Internal(format!("the upstream URI: {e}")))?;
    parts.version = Version::HTTP_11;
    parts.headers = out.headers;
    if let Some(b) = &out.body {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    }
    if let Some(c) = &t.credential {
        let signed: &[u8] = out.body.as_deref().unwrap_or_default();
        c.apply(t.api(), &mut parts, signed, &cand.client).await?;
    }
    let body = match (out.body, stream) {
        (Some(b), _) => Full::new(b).map_err(|never| match never {}).boxed(),
        (None, Some(s)) => s,
        (None, None) => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    };
    Ok((Request::from_parts(parts, body), dropped))
}

/// Phase 7: decide how the body travels, and for whole-body policies, run them.
async fn response_body_filter(
    mut session: Session,
    wants: policy::Hooks,
    mut parts: http::response::Parts,
    body: Incoming,
    transcoder: Option<Box<dyn provider::Transcode>>,
) -> Response<ResponseBody> {
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let reads_usage = !matches!(
        kind_of(&session),
        AiKind::Passthrough | AiKind::Models | AiKind::AnthropicTokenCount
    );
    let encoding = Encoding::from_header(parts.headers.get(header::CONTENT_ENCODING));
    let rewrites = if is_sse {
        wants.contains(policy::Hooks::RESPONSE_EVENTS)
    } else {
        wants.contains(policy::Hooks::RESPONSE_BODY)
    };
    let readable = !matches!(encoding, Encoding::Unknown);
    if rewrites && !readable {
        // Fail closed: a policy that must read the body never gets skipped.
        tracing::warn!(route = %session.route_name(), "response encoding unknown: refused, its policies cannot read it");
        discard(body);
        return session.error(
            502,
            "",
            "the upstream answered in a content-encoding the gateway's policies cannot read",
        );
    }
    let decoder = match encoding {
        Encoding::Known(d) => Some(d),
        _ => None,
    };

    if rewrites && readable {
        // The body will change: it goes out decoded, with a new length.
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        if !is_sse {
            return whole_body(session, parts, body, decoder, transcoder).await;
        }
        return Response::from_parts(
            parts,
            ResponseBody::upstream(body, Mode::Events { decoder }, session, transcoder),
        );
    }
    let mode = match (reads_usage && readable, is_sse) {
        (false, _) => Mode::Pass,
        (true, true) => Mode::ObserveSse { decoder },
        (true, false) => Mode::ObserveJson { decoder },
    };
    session.first_byte = None;
    Response::from_parts(
        parts,
        ResponseBody::upstream(body, mode, session, transcoder),
    )
}

/// A non-streaming body that policies see whole: buffer, decode, filter, send.
async fn whole_body(
    mut session: Session,
    parts: http::response::Parts,
    body: Incoming,
    decoder: Option<crate::stream::decode::Decoder>,
    transcoder: Option<Box<dyn provider::Transcode>>,
) -> Response<ResponseBody> {
    let raw = match Limited::new(body, budget::max_body()).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return session.error(502, "", &format!("cannot read the upstream response: {e}"))
        }
    };

    let mut bytes = match decoder {
        None => raw,
        Some(mut d) => match d.push(&raw).and_then(|mut v| {
            v.extend(d.finish()?);
            Ok(v)
        }) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                return session.error(
                    502,
                    "",
                    &format!("cannot decode the upstream response: {e}"),
                )
            }
        },
    };
    if let Some(mut t) = transcoder {
        match t.push(&bytes).and_then(|mut v| {
            v.extend(t.finish()?);
            Ok(v)
        }) {
            Ok(v) => bytes = Bytes::from(v),
            Err(e) => return session.error(502, "", &e.to_string()),
        }
    }
    let mut usage = UsageReader::new();
    usage.on_json(&bytes);
    let chain = session.chain.clone();
    match chain.response_body(&mut session.scope, session.status, &mut bytes) {
        Ok(None) => {}
        Ok(Some(r)) => return session.immediate(r),
        Err(f) => return session.policy_failure(f),
    }
    session.first_byte = Some(Instant::now());
    Response::from_parts(parts, ResponseBody::full_with_usage(bytes, session, usage))
}

/// The error shape of the format a client wrote its request in.
fn client_shape(kind: AiKind) -> ErrorShape {
    Family::of(kind).into()
}

/// Phase 1b's refusal: a 400 in the client's own error shape (the format
/// it wrote in), naming the route, what it sent and what the backend speaks.
fn wrong_format(mut session: Session, route: &RouteEntry, kind: AiKind) -> Response<ResponseBody> {
    session.shape = client_shape(kind);
    let mut names: Vec<&str> = route
        .backends
        .all()
        .map(|c| {
            c.target
                .api()
                .map_or("plain HTTP", |a| a.provider().config_name())
        })
        .collect();
    names.dedup();
    let backend = names.join("`, `");
    let msg = format!(
        "route `{}` sends this request to an `{backend}` backend, which does not accept {} requests; {}",
        route.name,
        provider::format_name(kind),
        translate::why_not(kind).unwrap_or("the gateway does not translate this format for it"),
    );
    tracing::info!(route = %route.name, kind = ?kind, backend, "request format not spoken by the backend");
    session.error(400, "invalid_request_error", &msg)
}

/// The provider family a plugin is told (WIT `types.provider`).
pub(super) fn policy_provider(c: &Candidate, kind: AiKind) -> policy::Provider {
    // A translated answer reaches policies in the client's format.
    let family = |a: &dyn provider::Api| match translate::direction(a, kind) {
        Some(_) => Family::of(kind),
        None => a.family(kind),
    };
    match c.target.api().map(family) {
        Some(Family::Anthropic) => policy::Provider::Anthropic,
        Some(Family::OpenAi) => policy::Provider::Openai,
        None => policy::Provider::None,
    }
}

pub(super) fn kind_of(session: &Session) -> AiKind {
    match session.scope.ctx.kind {
        policy::AiKind::Messages => AiKind::Messages,
        policy::AiKind::AnthropicTokenCount => AiKind::AnthropicTokenCount,
        policy::AiKind::Completions => AiKind::Completions,
        policy::AiKind::Responses => AiKind::Responses,
        policy::AiKind::Embeddings => AiKind::Embeddings,
        policy::AiKind::Models => AiKind::Models,
        policy::AiKind::Passthrough => AiKind::Passthrough,
    }
}

fn policy_kind(k: AiKind) -> policy::AiKind {
    match k {
        AiKind::Messages => policy::AiKind::Messages,
        AiKind::AnthropicTokenCount => policy::AiKind::AnthropicTokenCount,
        AiKind::Completions => policy::AiKind::Completions,
        AiKind::Responses => policy::AiKind::Responses,
        AiKind::Embeddings => policy::AiKind::Embeddings,
        AiKind::Models => policy::AiKind::Models,
        AiKind::Passthrough => policy::AiKind::Passthrough,
    }
}

fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| ulid::Ulid::new().to_string())
}
