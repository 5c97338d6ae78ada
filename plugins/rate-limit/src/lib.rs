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
//! `rateLimit` uses the host's atomic fixed-window counters, `localRateLimit`
//! the host's atomic token buckets (`take-tokens`: a real bucket, refilled by
//! `tokensPerFill` every `fillInterval`); both are shared by every request
//! and, with Redis state, by every gateway replica. Request limits are
//! charged when the request arrives; token limits are charged with the actual
//! usage when the response completes, and refuse new requests once the
//! budget is spent (one request can overshoot it: its size is unknown until
//! it is done). A refused request gives back what it charged to fixed
//! windows; buckets are checked last, so only a bucket listed before the one
//! that refused can lose a token.
//!
//! Refusals answer `429` (or the configured `errorCode`) with `Retry-After`
//! and `x-ratelimit-limit`/`-remaining`/`-reset` (seconds until the window
//! resets, or until the bucket is full again), error type
//! `rate_limit_error`; allowed responses carry the same three headers, for
//! the most constrained limit of the request.

pub mod amount;
pub mod config;
pub mod key;

use std::time::Duration;

use serde_json::Value;
use sluice_sdk::prelude::*;

use config::{Kind, Limit, Refill, Settings};
use sluice_sdk::{Bucket, BucketTake};

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
    fn new(limit: u64, total: i64, reset_ms: u64) -> Report {
        Report {
            limit,
            remaining: limit.saturating_sub(total.max(0) as u64),
            reset_s: reset_ms.div_ceil(1000).max(1),
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

    fn refuse(&self, limit: &Limit, report: Report) -> HeadersAction {
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
        // Token limits first: they only read, so a refusal there charges
        // nothing. Then request windows (refundable), then request buckets.
        let mut order: Vec<(usize, &Limit)> = self.settings.limits.iter().enumerate().collect();
        order.sort_by_key(|(_, l)| match (l.kind, l.bucket.is_some()) {
            (Kind::Tokens, _) => 0,
            (Kind::Requests, false) => 1,
            (Kind::Requests, true) => 2,
        });

        let mut charged: Vec<(String, Duration)> = Vec::new();
        let mut token_keys: Vec<(String, usize)> = Vec::new();
        let mut tightest: Option<Report> = None;
        for (index, limit) in order {
            let key = Self::counter_key(limit, ctx, headers);
            let window = Duration::from_millis(limit.window_ms);
            let (report, over, reset_ms) = match (limit.kind, limit.bucket) {
                (Kind::Tokens, None) => {
                    let wc = host::incr_counter(&key, 0, window);
                    token_keys.push((key, index));
                    let r = Report::new(limit.budget, wc.total, wc.reset_ms);
                    (r, wc.total >= limit.budget as i64, wc.reset_ms)
                }
                (Kind::Requests, None) => {
                    let wc = host::incr_counter(&key, 1, window);
                    charged.push((key, window));
                    let r = Report::new(limit.budget, wc.total, wc.reset_ms);
                    (r, wc.total > limit.budget as i64, wc.reset_ms)
                }
                (kind, Some(refill)) => {
                    let n = if kind == Kind::Requests { 1 } else { 0 };
                    let t = host::take_tokens(&key, n, false, bucket(limit, refill));
                    if kind == Kind::Tokens {
                        token_keys.push((key, index));
                    }
                    // No refund is needed for a bucket: nothing is taken
                    // when it refuses. `u64::MAX`: never about to roll over.
                    (Report::bucket(limit.budget, &t), !t.allowed, u64::MAX)
                }
            };
            if over {
                host::metric_counter("rate_limited", 1);
                if limit.reject {
                    host::info(&format!("refused: over {}", limit.label));
                    // Refused requests do not count against the other limits
                    // (nor this one): give back what this request charged,
                    // unless the window is about to roll over (the -1 would
                    // then land in the next window).
                    if reset_ms > 50 {
                        for (k, w) in &charged {
                            host::incr_counter(k, -1, *w);
                        }
                    }
                    return self.refuse(
                        limit,
                        Report {
                            remaining: 0,
                            ..report
                        },
                    );
                }
                host::warn(&format!("over {} (monitor only, not refused)", limit.label));
            }
            if tightest.is_none_or(|t| report.tighter_than(&t)) {
                tightest = Some(report);
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
        for (key, index) in keys {
            let Some(limit) = self.settings.limits.get(index) else {
                continue;
            };
            match limit.bucket {
                // The cost is known only now: drain what is there.
                Some(refill) => {
                    host::take_tokens(&key, tokens, true, bucket(limit, refill));
                }
                None => {
                    host::incr_counter(
                        &key,
                        tokens.min(i64::MAX as u64) as i64,
                        Duration::from_millis(limit.window_ms),
                    );
                }
            }
        }
    }
}

sluice_sdk::export_policy!(RateLimit);

#[cfg(test)]
mod tests;
