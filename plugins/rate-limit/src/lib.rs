//! `rate-limit`: request and token rate limits.
//!
//! ```yaml
//! policies:
//!   rateLimit:                       # the guide's form
//!     requestsPerHour: 100           # also requestsPer{Second,Minute,Day}
//!     tokensPerDay: 1M               # tokensPer{Second,Minute,Hour,Day}: input+output tokens
//!     key: ip                        # route (default) | ip | global | {header: x-org-id} | {claim: email} | a list
//!     actions:
//!     - reject: true                 # false: log + metric only
//!       errorCode: 429
//!   localRateLimit:                  # agentgateway's token buckets
//!   - maxTokens: 10
//!     tokensPerFill: 1
//!     fillInterval: 60s
//!     type: requests                 # or tokens
//! ```
//!
//! `rateLimit` uses the host's sliding windows (`window-take`): at most N in
//! any span of one period (not per clock-aligned window, which admitted 2N
//! across a window edge), counted in 100 sub-windows per period so a key's
//! memory is bounded; it may refuse up to 1% of the period late, never
//! admit early. `localRateLimit` uses the host's atomic token buckets
//! (`take-tokens`: a real bucket, refilled by `tokensPerFill` every
//! `fillInterval`). Both are shared by every request and, with Redis state,
//! by every gateway replica.
//!
//! Request limits are charged when the request arrives, token limits with
//! the actual usage when the response completes; once the tokens counted in
//! the last period reach the limit, requests are refused until enough of
//! them age out (one request can overshoot the budget: its size is unknown
//! until it is done). The enforcing window limits of an attachment are
//! checked and charged in one atomic host call, all or nothing, so a refused
//! request consumes none of them; monitor-only limits (`reject: false`) are
//! charged after, and only for admitted requests. Buckets are taken last; when an
//! attachment has both, the buckets are read first, so an empty bucket
//! refuses before the windows are charged (a bucket emptied by a concurrent
//! request in between still wastes this request's window charge, erring
//! toward refusing).
//!
//! Refusals answer `429` (or the configured `errorCode`) with `Retry-After`
//! and `x-ratelimit-limit`/`-remaining`/`-reset`: `Retry-After` and
//! `x-ratelimit-reset` are the seconds until one more request fits (the
//! longest wait among the limits that refused). Allowed responses carry the
//! three headers for the most constrained limit of the request, `reset`
//! being the seconds until its oldest counted unit ages out (for a bucket,
//! until it is full again), error type `rate_limit_error`.

pub mod amount;
pub mod config;
pub mod key;

use serde_json::Value;
use sluice_sdk::prelude::*;

use config::{Kind, Limit, Refill, Settings};
use sluice_sdk::{Bucket, BucketTake, WindowLimit, WindowTakeResult};

fn bucket(limit: &Limit, r: Refill) -> Bucket {
    Bucket {
        max_tokens: limit.budget,
        tokens_per_fill: r.tokens_per_fill,
        fill_interval_ms: r.fill_interval_ms,
    }
}

/// Shared by every rate-limit attachment of a request: the most constrained
/// numbers so far, `"<limit> <remaining> <reset-seconds>"`.
const HEADERS_ATTR: &str = "rate-limit.headers";

pub struct RateLimit {
    settings: Settings,
    /// Short id of this attachment's definitions, namespacing its private attrs.
    id: String,
}

/// Numbers reported to the client for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub limit: u64,
    pub remaining: u64,
    pub reset_s: u64,
}

impl Report {
    /// A sliding window's numbers; a refusal reports the wait until one
    /// more request fits, an admission the wait until the oldest counted
    /// unit ages out.
    fn window(limit: u64, t: &WindowTakeResult) -> Report {
        let ms = if t.allowed {
            t.reset_ms
        } else {
            t.retry_after_ms
        };
        Report {
            limit,
            remaining: t.remaining,
            reset_s: ms.div_ceil(1000).max(1),
        }
    }
    /// A bucket's numbers; a refusal reports the wait for the next token.
    fn bucket(limit: u64, t: &BucketTake) -> Report {
        let ms = if t.allowed {
            t.reset_ms
        } else {
            t.retry_after_ms
        };
        Report {
            limit,
            remaining: t.remaining,
            reset_s: ms.div_ceil(1000).max(1),
        }
    }
    /// More constrained = smaller share of the budget left.
    fn tighter_than(&self, other: &Report) -> bool {
        (self.remaining as u128) * (other.limit as u128)
            < (other.remaining as u128) * (self.limit as u128)
    }
    fn encode(&self) -> String {
        format!("{} {} {}", self.limit, self.remaining, self.reset_s)
    }
    fn decode(s: &str) -> Option<Report> {
        let mut it = s.split(' ').map(|p| p.parse::<u64>().ok());
        Some(Report {
            limit: it.next()??,
            remaining: it.next()??,
            reset_s: it.next()??,
        })
    }
    fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_s.to_string()),
        ]
    }
}

impl RateLimit {
    fn counter_key(limit: &Limit, ctx: &RequestContext, headers: &Headers) -> String {
        let header = |n: &str| header(headers, n).map(str::to_owned);
        let claim = |n: &str| host::get_attr(&format!("auth.claims.{n}"));
        let subject = key::Subject {
            route: &ctx.route,
            client_ip: &ctx.client_ip,
            header: &header,
            claim: &claim,
        };
        format!(
            "rate-limit:{}:{}",
            limit.definition(),
            key::identity(&limit.key, &subject)
        )
    }

    fn tokens_attr(&self) -> String {
        format!("rate-limit.{}.tokens", self.id)
    }

    /// Refuse for `limit`: count it, log it, answer with its numbers.
    fn refused(&self, limit: &Limit, report: Report) -> HeadersAction {
        host::metric_counter("rate_limited", 1);
        host::info(&format!("refused: over {}", limit.label));
        let report = Report {
            remaining: 0,
            ..report
        };
        let message = limit.message.clone().unwrap_or_else(|| {
            format!(
                "rate limit exceeded: {}; retry in {}s",
                limit.label, report.reset_s
            )
        });
        let mut r = Respond::status(limit.status)
            .message(message)
            .error_type("rate_limit_error")
            .header("retry-after", report.reset_s.to_string());
        for (k, v) in report.headers() {
            r = r.header(k, v);
        }
        r.into()
    }
}

impl Policy for RateLimit {
    type Config = Value;

    fn validate(config: &Value) -> Result<(), String> {
        config::parse(config).map(|_| ())
    }

    fn new(config: Value) -> Result<Self, String> {
        let settings = config::parse(&config)?;
        let defs: Vec<String> = settings.limits.iter().map(Limit::definition).collect();
        let id = key::digest(&defs.join(";"))[..8].to_owned();
        Ok(RateLimit { settings, id })
    }

    fn hooks(&self) -> Hooks {
        let mut hooks = Hooks::REQUEST_HEADERS;
        if self.settings.headers {
            hooks |= Hooks::RESPONSE_HEADERS;
        }
        if self.settings.limits.iter().any(|l| l.kind == Kind::Tokens) {
            hooks |= Hooks::COMPLETE;
        }
        hooks
    }

    /// Only the headers a key names (none for the usual route/ip keys).
    fn reads_headers(&self) -> Option<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for limit in &self.settings.limits {
            for part in &limit.key {
                if let key::KeyPart::Header(n) = part {
                    names.push(n.clone());
                }
            }
        }
        Some(names)
    }

    fn on_request_headers(&self, ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        let limits = &self.settings.limits;
        let mut enforce: Vec<(usize, WindowLimit)> = Vec::new();
        let mut monitor: Vec<(usize, WindowLimit)> = Vec::new();
        let mut buckets: Vec<(usize, String)> = Vec::new();
        let mut token_keys: Vec<(String, usize)> = Vec::new();
        for (index, limit) in limits.iter().enumerate() {
            let key = Self::counter_key(limit, ctx, headers);
            if limit.kind == Kind::Tokens {
                token_keys.push((key.clone(), index));
            }
            if limit.bucket.is_some() {
                buckets.push((index, key));
                continue;
            }
            let w = WindowLimit {
                key,
                // Tokens are charged at completion: here they are only read.
                amount: u64::from(limit.kind == Kind::Requests),
                limit: limit.budget,
                window_ms: limit.window_ms,
            };
            if limit.reject {
                enforce.push((index, w));
            } else {
                monitor.push((index, w));
            }
        }

        let mut tightest: Option<Report> = None;
        let mut consider = |r: Report| {
            if tightest.is_none_or(|t| r.tighter_than(&t)) {
                tightest = Some(r);
            }
        };
        // A bucket's take cannot be given back: with windows to charge too,
        // read the buckets first so an empty one refuses before they are.
        if !enforce.is_empty() {
            for (index, key) in &buckets {
                let limit = &limits[*index];
                let refill = limit.bucket.expect("a bucket");
                let t = host::take_tokens(key, 0, false, bucket(limit, refill));
                if !t.allowed {
                    return self.refused(limit, Report::bucket(limit.budget, &t));
                }
            }
        }
        if !enforce.is_empty() {
            let ws: Vec<WindowLimit> = enforce.iter().map(|(_, w)| w.clone()).collect();
            let taken = host::window_take(&ws, false);
            // All must fit: the wait is the longest among those that refused.
            let refusing = enforce
                .iter()
                .zip(&taken)
                .filter(|(_, t)| !t.allowed)
                .max_by_key(|(_, t)| t.retry_after_ms);
            if let Some(((index, _), t)) = refusing {
                let limit = &limits[*index];
                return self.refused(limit, Report::window(limit.budget, t));
            }
            for ((index, _), t) in enforce.iter().zip(&taken) {
                consider(Report::window(limits[*index].budget, t));
            }
        }
        for (index, key) in &buckets {
            let limit = &limits[*index];
            let refill = limit.bucket.expect("a bucket");
            let n = u64::from(limit.kind == Kind::Requests);
            let t = host::take_tokens(key, n, false, bucket(limit, refill));
            if !t.allowed {
                return self.refused(limit, Report::bucket(limit.budget, &t));
            }
            consider(Report::bucket(limit.budget, &t));
        }
        if !monitor.is_empty() {
            let ws: Vec<WindowLimit> = monitor.iter().map(|(_, w)| w.clone()).collect();
            for ((index, _), t) in monitor.iter().zip(host::window_take(&ws, true)) {
                let limit = &limits[*index];
                if !t.allowed {
                    host::metric_counter("rate_limited", 1);
                    host::warn(&format!("over {} (monitor only, not refused)", limit.label));
                }
                consider(Report::window(limit.budget, &t));
            }
        }
        if !token_keys.is_empty() {
            let v = serde_json::to_string(&token_keys).unwrap_or_default();
            host::set_attr(&self.tokens_attr(), &v);
        }
        if let (true, Some(report)) = (self.settings.headers, tightest) {
            let earlier = host::get_attr(HEADERS_ATTR).and_then(|s| Report::decode(&s));
            if earlier.is_none_or(|e| report.tighter_than(&e)) {
                host::set_attr(HEADERS_ATTR, &report.encode());
            }
        }
        HeaderOps::new().proceed()
    }

    fn on_response_headers(
        &self,
        _ctx: &RequestContext,
        _status: u16,
        _headers: &Headers,
    ) -> ResponseHeadersAction {
        let mut ops = HeaderOps::new();
        if let Some(report) = host::get_attr(HEADERS_ATTR).and_then(|s| Report::decode(&s)) {
            for (k, v) in report.headers() {
                ops = ops.set(k, v);
            }
        }
        ops.proceed_response()
    }

    fn on_complete(&self, _ctx: &RequestContext, summary: &Completion) {
        let Some(usage) = summary.usage else { return };
        let tokens = usage.input_tokens.saturating_add(usage.output_tokens);
        if tokens == 0 {
            return;
        }
        let Some(keys) = host::get_attr(&self.tokens_attr()) else {
            return;
        };
        let keys: Vec<(String, usize)> = serde_json::from_str(&keys).unwrap_or_default();
        let mut windows: Vec<WindowLimit> = Vec::new();
        for (key, index) in keys {
            let Some(limit) = self.settings.limits.get(index) else {
                continue;
            };
            match limit.bucket {
                // The cost is known only now: drain what is there.
                Some(refill) => {
                    host::take_tokens(&key, tokens, true, bucket(limit, refill));
                }
                None => windows.push(WindowLimit {
                    key,
                    amount: tokens,
                    limit: limit.budget,
                    window_ms: limit.window_ms,
                }),
            }
        }
        if !windows.is_empty() {
            // Forced: the tokens were spent whether or not they fit.
            host::window_take(&windows, true);
        }
    }
}

sluice_sdk::export_policy!(RateLimit);

#[cfg(test)]
mod tests;
