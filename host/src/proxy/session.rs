//! Per-request state carried through the pipeline, and the logging phase that
//! closes it: the completion hook, the access-log line and the metrics.

use super::backends::Candidate;
use super::errors::{error_body, ErrorShape};
use super::response_body::ResponseBody;
use super::snapshot::RouteEntry;
use crate::metrics::{Metrics, RequestLabels, RouteLabels, TokenLabels};
use crate::policy::{self, Chain, Completion, ImmediateResponse, RequestScope};
use crate::stream::usage::Usage;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use std::sync::Arc;
use std::time::Instant;

/// One request on its way through the gateway.
pub struct Session {
    pub started: Instant,
    pub route: Option<Arc<RouteEntry>>,
    pub chain: Arc<Chain>,
    pub scope: RequestScope,
    pub shape: ErrorShape,
    /// The backend serving the request: the last one an attempt went to
    /// (before any attempt, the first that can serve it).
    pub backend: Option<Arc<Candidate>>,
    /// Calls made upstream (retries and failovers included).
    pub attempts: u8,
    pub status: u16,
    /// Set when a policy (or the gateway) answered instead of the upstream.
    pub short_circuited: bool,
    pub metrics: Arc<Metrics>,
    pub first_byte: Option<Instant>,
    /// The request's trace, when it is sampled (`None`: tracing costs nothing).
    pub trace: Option<Box<crate::otel::RequestTrace>>,
    /// The model the client asked for, when `ai.modelAliases` replaced it.
    pub requested_model: Option<String>,
}

/// How a response ended, reported by the body when it is done.
#[derive(Debug, Default)]
pub struct Outcome {
    pub usage: Option<Usage>,
    pub model: Option<String>,
    /// The provider's id of the answer, for the trace.
    pub response_id: Option<String>,
    /// Why the answer ended (one per choice), for the trace.
    pub finish_reasons: Vec<String>,
    pub error: Option<String>,
    pub bytes: u64,
}

impl Session {
    /// An attempt goes to `c`: the access log, the metrics and the
    /// policies that still run (response hooks) name it from now on.
    pub fn serve_with(&mut self, c: &Arc<Candidate>, attempts: u8) {
        self.scope.ctx.backend = c.target.name.clone();
        let kind = super::pipeline::kind_of(self);
        self.scope.ctx.provider = super::pipeline::policy_provider(c, kind);
        let provider = |c: &Candidate| c.target.api().map(|a| a.provider());
        let changed = self.backend.as_deref().map(provider) != Some(provider(c));
        if let (true, Some(p)) = (changed, provider(c)) {
            self.scope
                .attrs
                .insert("backend.provider".into(), p.config_name().into());
        }
        self.backend = Some(c.clone());
        self.attempts = attempts;
    }

    pub fn route_name(&self) -> &str {
        &self.scope.ctx.route
    }

    /// An error response in the route's provider shape, that still goes
    /// through the logging phase when its body ends.
    pub fn error(mut self, status: u16, error_type: &str, message: &str) -> Response<ResponseBody> {
        self.status = status;
        self.short_circuited = true;
        let body = error_body(self.shape, status, error_type, message);
        let mut resp = Response::new(ResponseBody::full(body, self));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// A policy's immediate response: its raw body, or its message wrapped in
    /// the provider's error JSON.
    pub fn immediate(mut self, r: ImmediateResponse) -> Response<ResponseBody> {
        self.status = r.status;
        self.short_circuited = true;
        let (body, json) = match r.body {
            Some(b) => (b, false),
            None => (
                error_body(self.shape, r.status, &r.error_type, &r.message),
                true,
            ),
        };
        let mut resp = Response::new(ResponseBody::full(body, self));
        *resp.status_mut() =
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if json {
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        for (k, v) in r.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }

    /// A fail-closed policy failure: 500 (503: state store down) in the provider's shape. The reason is
    /// logged (by the runtime) but not shown to the client.
    pub fn policy_failure(self, f: policy::PolicyFailure) -> Response<ResponseBody> {
        tracing::warn!(plugin = %f.plugin, reason = %f.reason, request_id = %self.scope.ctx.request_id, "policy failed closed");
        self.error(f.status, "", &f.client_message())
    }

    /// The logging phase: runs once, when the response body is finished (or dropped).
    pub fn finish(mut self, outcome: Outcome) {
        let now = Instant::now();
        let duration = now - self.started;
        let ttfb = self
            .first_byte
            .map(|t| t - self.started)
            .unwrap_or(duration);
        let usage = outcome.usage;
        // `completion.usage` (0.1.0) counts every input token; the split is
        // offered through `host.usage-details`.
        self.scope.usage = usage.map(|u| policy::TokenUsage {
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: u.reasoning_tokens,
        });
        let summary = Completion {
            status: self.status,
            usage: usage.map(|u| policy::Usage {
                input_tokens: u.all_input(),
                output_tokens: u.output_tokens,
            }),
            ttfb_ms: ttfb.as_millis() as u64,
            duration_ms: duration.as_millis() as u64,
            short_circuited: self.short_circuited,
            error: outcome.error.clone(),
        };
        self.chain.complete(&mut self.scope, &summary);

        let trace = self.trace.take();
        let trace_ids = trace.as_ref().map(|t| (t.trace_id_hex(), t.span_id_hex()));
        let ctx = &self.scope.ctx;
        // The label comes from the provider's answer, never the client's body,
        // and the metrics bound it; the log line keeps what the client asked.
        let model = self.metrics.model_label(outcome.model.as_deref());
        let logged_model: String = outcome
            .model
            .as_deref()
            .or(ctx.model.as_deref())
            .unwrap_or("")
            .chars()
            .take(crate::metrics::MAX_MODEL_LABEL)
            .collect();
        let provider = self
            .backend
            .as_ref()
            .and_then(|c| c.target.api())
            .map_or("none", |a| a.provider().label());
        let cost_usd = usage.and_then(|u| {
            crate::pricing::cost(
                provider,
                &[outcome.model.as_deref(), ctx.model.as_deref()],
                &u,
            )
        });
        // Identity from the apiKey policy's metadata (never the key itself).
        let attr = |k: &str| self.scope.attrs.get(k).map(String::as_str);
        tracing::info!(
            target: "sluice::access",
            request_id = %ctx.request_id,
            route = %ctx.route,
            backend = %ctx.backend,
            provider,
            kind = ?ctx.kind,
            method = %ctx.method,
            path = %ctx.path,
            model = %logged_model,
            requested_model = self.requested_model.as_deref(),
            status = self.status,
            attempts = self.attempts,
            input_tokens = usage.map(|u| u.input_tokens),
            output_tokens = usage.map(|u| u.output_tokens),
            cache_read_tokens = usage.map(|u| u.cache_read_tokens),
            cache_write_tokens = usage.map(|u| u.cache_write_tokens),
            reasoning_tokens = usage.map(|u| u.reasoning_tokens),
            total_input_tokens = usage.map(|u| u.all_input()),
            cost_usd,
            user = attr("apiKey.user"),
            team = attr("apiKey.team"),
            duration_ms = duration.as_secs_f64() * 1000.0,
            ttfb_ms = ttfb.as_secs_f64() * 1000.0,
            bytes = outcome.bytes,
            error = outcome.error.as_deref(),
            trace_id = trace_ids.as_ref().map(|t| t.0.as_str()),
            span_id = trace_ids.as_ref().map(|t| t.1.as_str()),
            "request"
        );
        if let Some(t) = trace {
            t.finish(crate::otel::Finish {
                status: self.status,
                provider,
                operation: operation(ctx.kind),
                request_model: ctx.model.as_deref(),
                response_model: outcome.model.as_deref(),
                response_id: outcome.response_id.as_deref(),
                finish_reasons: &outcome.finish_reasons,
                streaming: ctx.streaming,
                usage,
                error: outcome.error.as_deref(),
                first_byte: self.first_byte,
                policy: self.scope.policy_spans.take(),
                attrs: &self.scope.attrs,
                cost_usd,
            });
        }
        let ctx = &self.scope.ctx;
        let route = ctx.route.clone();
        let m = &self.metrics;
        m.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                provider: provider.to_string(),
                model: model.clone(),
                status: self.status,
            })
            .inc();
        let rl = RouteLabels {
            route: route.clone(),
            provider: provider.to_string(),
            model: model.clone(),
        };
        m.duration
            .get_or_create(&rl)
            .observe(duration.as_secs_f64());
        m.ttfb.get_or_create(&rl).observe(ttfb.as_secs_f64());
        if let Some(c) = cost_usd {
            m.cost_usd.get_or_create(&rl).inc_by(c);
        }
        if let Some(team) = self.scope.attrs.get("apiKey.team") {
            let tl = crate::metrics::TeamLabels {
                route: route.clone(),
                team: m.team_label(team),
            };
            m.team_requests.get_or_create(&tl).inc();
            if let Some(c) = cost_usd {
                m.team_cost_usd.get_or_create(&tl).inc_by(c);
            }
        }
        if let Some(op) = operation(self.scope.ctx.kind) {
            record_genai(m, op, provider, &model, &route, duration, ttfb, usage);
        }
        if let Some(u) = usage {
            let directions = [
                ("input", u.input_tokens),
                ("cache_read", u.cache_read_tokens),
                ("cache_write", u.cache_write_tokens),
                ("output", u.output_tokens),
            ];
            for (direction, n) in directions {
                if n == 0 && direction.starts_with("cache") {
                    continue;
                }
                m.tokens
                    .get_or_create(&TokenLabels {
                        route: route.clone(),
                        provider: provider.to_string(),
                        model: model.clone(),
                        direction,
                    })
                    .inc_by(n);
            }
        }
    }
}

/// The GenAI conventions' histograms for one operation.
#[allow(clippy::too_many_arguments)]
fn record_genai(
    m: &Metrics,
    op: &'static str,
    provider: &'static str,
    model: &str,
    route: &str,
    duration: std::time::Duration,
    ttfb: std::time::Duration,
    usage: Option<Usage>,
) {
    use crate::genai_metrics::{OpLabels, TokenLabels as GenAiTokens};
    let g = &m.genai;
    let labels = OpLabels {
        gen_ai_operation_name: op,
        gen_ai_provider_name: provider,
        gen_ai_response_model: model.to_string(),
        route: route.to_string(),
    };
    g.duration
        .get_or_create(&labels)
        .observe(duration.as_secs_f64());
    g.time_to_first_token
        .get_or_create(&labels)
        .observe(ttfb.as_secs_f64());
    let Some(u) = usage else { return };
    if u.output_tokens > 1 && duration > ttfb {
        g.time_per_output_token
            .get_or_create(&labels)
            .observe((duration - ttfb).as_secs_f64() / (u.output_tokens - 1) as f64);
    }
    for (kind, n) in [("input", u.all_input()), ("output", u.output_tokens)] {
        g.token_usage
            .get_or_create(&GenAiTokens {
                gen_ai_operation_name: op,
                gen_ai_provider_name: provider,
                gen_ai_response_model: labels.gen_ai_response_model.clone(),
                route: labels.route.clone(),
                gen_ai_token_type: kind,
            })
            .observe(n as f64);
    }
}

/// The GenAI operation of a call kind (`gen_ai.operation.name`).
fn operation(kind: policy::AiKind) -> Option<&'static str> {
    match kind {
        policy::AiKind::Messages | policy::AiKind::Completions | policy::AiKind::Responses => {
            Some("chat")
        }
        policy::AiKind::Embeddings => Some("embeddings"),
        _ => None,
    }
}
