//! The request pipeline: every phase of a request, top to bottom, in one place.
//!
//! Like Pingora's `ProxyHttp`, the phases are the request flow:
//!
//! 0. **canonical request**: hop-by-hop headers dropped and the path normalised
//!    (`path.rs`), so routing, policies and the upstream read the same request.
//! 1. **route**: pick the route and the policy layers that wrap it; 404 otherwise.
//!    On an `llm:` listener the route is the model dispatcher: the session
//!    starts on a placeholder entry; `/v1/models` is answered from the
//!    config once phase 2 admitted the request.
//! 2. **request_filter**: policies see the request headers (deny, edit, ask for the body).
//! 3. **request_body_filter**: only if a policy asked (always on an `llm:`
//!    listener): buffer the body, undo its
//!    `Content-Encoding`, check strict JSON on JSON kinds (`request_body.rs`),
//!    policies see it whole and decoded. When a body hook is attached and the
//!    body is encoded or has no length, it is read and decoded *before*
//!    phase 2, so header hooks see the decoded `Content-Length`: a size limit
//!    cannot be walked past by compression. All of it counts against the
//!    shared body budget, the decoded copy included.
//!    1c. **model route** (`llm:` listeners), once the body is read and
//!    before the body policies: its `model` picks the route and backend
//!    (`model_router.rs`), then phase 1b's format check runs for it.
//! 4. **upstream_request**: rewrite the path, pick the origin, forward or inject credentials.
//! 5. **upstream**: send it, with the route's timeout; 502/504 in the provider's shape.
//!    5b. **failover** (`llm:` failover virtual models): on no connection, a
//!    timeout, 429 or 5xx, the next target, before any byte reached the client.
//! 6. **response_filter**: policies see the response headers.
//! 7. **response_body_filter**: pass, observe (usage) or rewrite (JSON whole / SSE events).
//! 8. **logging**: when the body ends, the completion hook, access log and metrics
//!    (`Session::finish`, run by the response body).
//!
//! Nothing goes upstream before phases 2-3 have decided.

use super::budget;
use super::client::{error_chain, UpstreamBody};
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
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Largest request or response body the gateway buffers for a policy by
/// default; `frontendPolicies.http.maxBufferSize` sets it
/// (`budget::max_body`).
pub const MAX_BUFFERED_BODY: usize = 32 << 20;

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
    // Phase 1b: a request in a format the backend's provider does not speak
    // is refused before any policy or upstream sees it (on an `llm:`
    // listener, in phase 1c, when the backend is known).
    let kind = kind_of(&session);
    if models.is_none() && !provider::speaks(route.target.api(), kind) {
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
            return answer(session, 200, m.list(anthropic));
        }
    }

    // Phase 3: request_body_filter.
    // A policy asks for the body with `need-body`; one with only a body hook
    // (nothing to decide on at headers) always gets it.
    // The backend may need the body in hand as well (a model override, a
    // provider that rewrites or signs it): it is read here then, once.
    let mut _held_body = None;
    let policy_body = need_body || session.chain.body_without_headers();
    let body: Forward = if policy_body || models.is_some() || forward_needs_body(&route, kind) {
        let got = match buffered.take() {
            Some(b) => b,
            None => match read_body(&mut body, declared, &mut parts.headers).await {
                Ok(b) => b,
                Err(r) => return body_refused(session, r),
            },
        };
        _held_body = Some(got.held);
        let mut bytes = got.bytes;
        if let Err(r) = request_body::check_json(session.scope.ctx.kind, &bytes) {
            return body_refused(session, r);
        }
        // Phase 1c: model route. The body's `model` picks the route.
        if let Some(m) = &models {
            match model_route(m, session, &mut bytes) {
                Ok((s, r, f)) => {
                    session = s;
                    route = r;
                    fallbacks = f.into();
                }
                Err(resp) => return resp,
            }
            if !provider::speaks(route.target.api(), kind) {
                return wrong_format(session, &route, kind);
            }
        }
        note_request_body(&mut session.scope.ctx, &bytes);
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
        Forward::Stream(body.take().expect("the body is not read yet").boxed())
    };

    // A failover virtual model may send the request again, elsewhere.
    let retry = match (&body, fallbacks.is_empty()) {
        (Forward::Whole(b), false) => Some((copy_parts(&parts), b.clone())),
        _ => None,
    };

    // Phase 4: upstream_request.
    let mut upstream_req =
        match upstream_request(&session, &route, parts, body, prefix_len, peer).await {
            Ok(r) => r,
            Err(ProviderError::BadRequest(msg)) => {
                return session.error(400, "invalid_request_error", &msg)
            }
            Err(e @ ProviderError::Internal(_)) => {
                tracing::error!(route = %route.name, error = %e, "upstream request not built");
                return session.error(500, "", &e.to_string());
            }
        };
    if let Some(t) = session.trace.as_mut() {
        trace_upstream(t, &route, &mut upstream_req);
    }

    // Phase 5: upstream.
    let mut sent =
        tokio::time::timeout(route.request_timeout, route.client.request(upstream_req)).await;
    // Phase 5b: failover (`llm:` failover virtual models), before any byte
    // of the answer reached the client.
    if let Some((saved, bytes)) = &retry {
        while super::model_router::failover_cause(&sent) {
            let Some((next, model)) = fallbacks.pop_front() else {
                break;
            };
            if !provider::speaks(next.target.api(), kind) {
                continue;
            }
            tracing::warn!(from = %route.target.name, to = %next.target.name, "failover to the next target");
            let body = match provider::body::with_model(bytes, &model) {
                Ok(b) => b.unwrap_or_else(|| bytes.clone()),
                Err(e) => return session.error(500, "", &e.to_string()),
            };
            route = next;
            session.route = Some(route.clone());
            session.scope.ctx.backend = route.target.name.clone();
            session.scope.ctx.model = Some(model);
            let req = match upstream_request(
                &session,
                &route,
                copy_parts(saved),
                Forward::Whole(body),
                prefix_len,
                peer,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => return session.error(500, "", &e.to_string()),
            };
            sent = tokio::time::timeout(route.request_timeout, route.client.request(req)).await;
        }
    }
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let msg = format!(
                "upstream {} unreachable: {}",
                route.target.authority,
                error_chain(&e)
            );
            tracing::warn!(route = %route.name, error = %msg, "upstream request failed");
            if let Some(t) = session.trace.as_mut() {
                t.upstream_failed("connect");
            }
            return session.error(502, "", &msg);
        }
        Err(_) => {
            let msg = format!(
                "upstream {} did not answer within {:?}",
                route.target.authority, route.request_timeout
            );
            if let Some(t) = session.trace.as_mut() {
                t.upstream_failed("timeout");
            }
            return session.error(504, "", &msg);
        }
    };

    // Phase 6: response_filter. An answer the client cannot read as it is
    // (another framing or error envelope) is transcoded first, so policies
    // see what the client will.
    let (mut parts, body) = resp.into_parts();
    headers::prepare_response(&mut parts.headers);
    session.status = parts.status.as_u16();
    let transcoder = route
        .target
        .api()
        .and_then(|a| a.transcoder(session.status, &mut parts.headers));
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

    // Phase 7: response_body_filter.
    response_body_filter(session, wants, parts, body, transcoder).await
}

/// A copy of the request head, for a failover attempt.
fn copy_parts(p: &http::request::Parts) -> http::request::Parts {
    let (mut out, ()) = Request::new(()).into_parts();
    out.method = p.method.clone();
    out.uri = p.uri.clone();
    out.version = p.version;
    out.headers = p.headers.clone();
    out
}

/// The request body as phase 4 forwards it.
enum Forward {
    /// Read whole (a policy or the backend needed it).
    Whole(Bytes),
    /// Streamed through untouched.
    Stream(UpstreamBody),
}

/// Whether forwarding to the route's backend needs the body in hand: a
/// model override rewrites it, and some providers rewrite or sign it.
fn forward_needs_body(route: &RouteEntry, kind: AiKind) -> bool {
    let Some(api) = route.target.api() else {
        return false;
    };
    let json = !matches!(kind, AiKind::Passthrough | AiKind::Models);
    (json && (route.target.model.is_some() || !route.aliases.is_empty())) || api.needs_body(kind)
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

/// Phase 4, traced: the upstream attempt's client span, its `traceparent`,
/// and the GenAI parameters read off the body on its way.
fn trace_upstream(t: &mut otel::RequestTrace, route: &RouteEntry, req: &mut Request<UpstreamBody>) {
    t.upstream_start(
        req.headers_mut(),
        route.target.authority.as_str(),
        route.target.scheme == http::uri::Scheme::HTTPS,
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
    let ctx = &mut session.scope.ctx;
    ctx.backend = r.target.name.clone();
    ctx.provider = match r.target.api().map(|a| a.family()) {
        Some(Family::Anthropic) => policy::Provider::Anthropic,
        Some(Family::OpenAi) => policy::Provider::Openai,
        None => policy::Provider::None,
    };
    if let Some(api) = r.target.api() {
        session.scope.attrs.insert(
            "backend.provider".into(),
            api.provider().config_name().into(),
        );
    }
    session.route = Some(r.clone());
    session.requested_model = Some(routed.requested);
    Ok((session, r, routed.fallbacks))
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
    // On an `llm:` listener every model is served by the one "llm" route
    // (as in agentgateway): policies keyed by route (rate limits) share
    // it. The model entry, hence the backend, is known in phase 1c.
    let (route_name, backend) = if model_routed {
        (crate::config::llm::LLM_LISTENER.to_string(), None)
    } else {
        (route.name.clone(), Some(&route.target))
    };
    let ctx = RequestContext {
        request_id: request_id(req),
        route: route_name,
        backend: backend.map(|t| t.name.clone()).unwrap_or_default(),
        provider: match backend.and_then(|t| t.api()).map(|a| a.family()) {
            Some(Family::Anthropic) => policy::Provider::Anthropic,
            Some(Family::OpenAi) => policy::Provider::Openai,
            None => policy::Provider::None,
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
    if let Some(api) = backend.and_then(|t| t.api()) {
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
        shape: if model_routed {
            ErrorShape::guess(path, req.headers())
        } else {
            route.shape
        },
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
    mut parts: http::request::Parts,
    body: Forward,
    prefix_len: Option<usize>,
    peer: SocketAddr,
) -> Result<Request<UpstreamBody>, ProviderError> {
    let t = &route.target;
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
        super::billing::drop_billing_headers(&mut parts.headers, &route.pass_headers);
    }
    if !parts.headers.contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            parts.headers.insert("x-request-id", v);
        }
    }
    let (whole, stream) = match body {
        Forward::Whole(b) => (Some(b), None),
        Forward::Stream(s) => (None, Some(s)),
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
    if let Some(api) = t.api() {
        path = api.path(&out)?;
        api.shape(&mut out)?;
    }
    let mut path_and_query = match (t.path_override(), path) {
        (Some(p), _) => p.to_string(),
        (None, Some(p)) => p,
        (None, None) => t.upstream_path(&out.path),
    };
    if let Some(q) = &out.query {
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
        c.apply(t.api(), &mut parts, signed).await?;
    }
    let body = match (out.body, stream) {
        (Some(b), _) => Full::new(b).map_err(|never| match never {}).boxed(),
        (None, Some(s)) => s,
        (None, None) => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    };
    Ok(Request::from_parts(parts, body))
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

/// Phase 1b's refusal: a 400 in the client's own error shape (the format
/// it wrote in), naming the route, what it sent and what the backend speaks.
fn wrong_format(mut session: Session, route: &RouteEntry, kind: AiKind) -> Response<ResponseBody> {
    session.shape = match kind {
        AiKind::Messages | AiKind::AnthropicTokenCount => ErrorShape::Anthropic,
        _ => ErrorShape::OpenAi,
    };
    let backend = route
        .target
        .api()
        .map_or("plain HTTP", |a| a.provider().config_name());
    let msg = format!(
        "route `{}` sends this request to an `{backend}` backend, which does not accept {} requests; \
         the gateway does not translate between API formats",
        route.name,
        provider::format_name(kind),
    );
    tracing::info!(route = %route.name, kind = ?kind, backend, "request format not spoken by the backend");
    session.error(400, "invalid_request_error", &msg)
}

fn kind_of(session: &Session) -> AiKind {
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

/// `model` and `stream` from a buffered JSON request body.
fn note_request_body(ctx: &mut RequestContext, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Peek {
        model: Option<String>,
        #[serde(default)]
        stream: bool,
    }
    if let Ok(p) = serde_json::from_slice::<Peek>(body) {
        ctx.model = p.model;
        ctx.streaming = p.stream;
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
