//! `budget`: spend limits per API key and per key group (a `metadata`
//! field such as `team`), in dollars or tokens, per calendar day, week or
//! month. See `config.rs` for the YAML.
//!
//! Reserve, then settle: admission (the request body hook, after model
//! aliases) reserves what the request may cost against every budget it
//! draws on, all or none (`host.budget-reserve`); completion (`on-complete`,
//! which also runs after an upstream error or a client that went away)
//! settles what the usage says it cost and frees the rest, or frees all of
//! it when no usage was seen. A reservation nobody settles (the replica
//! died) is freed by the host at its deadline (`reservationTimeout`).
//! Hence, at every admission: settled + open reservations <= limit.
//!
//! - `strict`: the reservation is the input's upper bound plus the full
//!   output cap, at the dearest input rate: the settled cost never exceeds
//!   it, so spend never passes the limit.
//! - `estimate`: a quarter of the body's bytes as input plus the key's
//!   recent average output (an exponentially weighted mean of its last
//!   outputs; the cap until it has one). Spend may pass the limit by the
//!   in-flight requests' excess over their reservation, and no further:
//!   once it has, every reservation is refused until the period ends.
//!
//! Refusals answer 402 (clients do not retry it, unlike 429 and 5xx) in
//! the provider's error shape, naming the budget and when it resets;
//! every answer carries `sluice-budget-remaining-usd` and/or
//! `sluice-budget-remaining-tokens` (the least left among the request's
//! budgets, after its reservation).

pub mod config;
pub mod estimate;

use serde_json::Value;
use sluice_sdk::prelude::*;
use sluice_sdk::text::truncate;
use sluice_sdk::{BudgetAmount, BudgetExhausted, BudgetRef, BudgetState, BudgetUnit, TokenUsage};

use config::{Limit, Reservation, Settings};

/// The open reservation of this request.
const RESERVATION_ATTR: &str = "budget.reservation";
/// The response headers of this request (`name=value` lines).
const HEADERS_ATTR: &str = "budget.headers";
/// The budget key the output average is kept under (estimate mode).
const EWMA_ATTR: &str = "budget.ewma-key";
/// Weight of the newest output in the average.
const EWMA_ALPHA: f64 = 0.3;

pub const REMAINING_USD: &str = "sluice-budget-remaining-usd";
pub const REMAINING_TOKENS: &str = "sluice-budget-remaining-tokens";

pub struct Budget {
    s: Settings,
}

/// One budget of this request: its limit and whose it is.
struct Applied<'a> {
    limit: &'a Limit,
    /// The scope's value (`apiKey.id`, `apiKey.team`, ...).
    owner: String,
}

impl Budget {
    /// The budgets this request draws on. A key's own `apiKey.budgets`
    /// replace the configured `scope: key` limits; a scope the request has
    /// no value for (a key without `team`) does not apply.
    fn applied<'a>(&'a self, own: &'a [Limit]) -> Vec<Applied<'a>> {
        let key_limits: Box<dyn Iterator<Item = &Limit>> = if own.is_empty() {
            Box::new(self.s.limits.iter().filter(|l| l.scope == "key"))
        } else {
            Box::new(own.iter())
        };
        key_limits
            .chain(self.s.limits.iter().filter(|l| l.scope != "key"))
            .filter_map(|limit| {
                let attr = match limit.scope.as_str() {
                    "key" => "apiKey.id".to_owned(),
                    field => format!("apiKey.{field}"),
                };
                let owner = host::get_attr(&attr).filter(|v| !v.is_empty())?;
                Some(Applied { limit, owner })
            })
            .collect()
    }

    fn own_limits() -> Vec<Limit> {
        match host::get_attr("apiKey.budgets") {
            None => Vec::new(),
            Some(json) => config::key_limits(&json).unwrap_or_else(|e| {
                host::warn(&format!("apiKey.budgets ignored: {e}"));
                Vec::new()
            }),
        }
    }

    fn refs(&self, applied: &[Applied]) -> Vec<BudgetRef> {
        applied
            .iter()
            .map(|a| BudgetRef {
                key: format!("{}:{}", a.limit.scope, a.owner),
                unit: a.limit.unit,
                limit: a.limit.amount,
                period: a.limit.period,
                time_zone: self.s.time_zone.clone(),
            })
            .collect()
    }

    /// The `sluice-budget-remaining-*` headers: the least left per unit.
    fn remaining_headers(applied: &[Applied], states: &[BudgetState]) -> Vec<(String, String)> {
        let least = |unit: BudgetUnit| {
            applied
                .iter()
                .zip(states)
                .filter(|(a, _)| a.limit.unit == unit)
                .map(|(_, s)| s.remaining)
                .min()
        };
        let mut h = Vec::new();
        if let Some(m) = least(BudgetUnit::Usd) {
            h.push((REMAINING_USD.to_owned(), format!("{:.6}", m as f64 / 1e6)));
        }
        if let Some(t) = least(BudgetUnit::Tokens) {
            h.push((REMAINING_TOKENS.to_owned(), t.to_string()));
        }
        h
    }

    fn describe(&self, a: &Applied) -> String {
        let period = match a.limit.period {
            sluice_sdk::BudgetPeriod::Day => "day",
            sluice_sdk::BudgetPeriod::Week => "week",
            sluice_sdk::BudgetPeriod::Month => "month",
        };
        let amount = match a.limit.unit {
            BudgetUnit::Usd => format!("${:.2}", a.limit.amount as f64 / 1e6),
            BudgetUnit::Tokens => format!("{} tokens", a.limit.amount),
        };
        let who = match a.limit.scope.as_str() {
            "key" => format!("API key {}", a.owner),
            scope => format!("{scope} `{}`", truncate(&a.owner, 64)),
        };
        format!("the {who} budget of {amount} per {period}")
    }

    fn refuse(&self, applied: &[Applied], e: &BudgetExhausted, need: &BudgetAmount) -> BodyAction {
        let i = e.budget as usize;
        let (a, st) = (&applied[i], &e.budgets[i]);
        let need = match a.limit.unit {
            BudgetUnit::Usd => need.usd_micros,
            BudgetUnit::Tokens => need.tokens,
        };
        let left = match a.limit.unit {
            BudgetUnit::Usd => format!("${:.6} left", st.remaining as f64 / 1e6),
            BudgetUnit::Tokens => format!("{} tokens left", st.remaining),
        };
        let why = if need > a.limit.amount.min(st.remaining) && st.remaining > 0 {
            format!(
                "this request may use more than what {} has left ({left})",
                self.describe(a)
            )
        } else {
            format!("{} is spent ({left})", self.describe(a))
        };
        let resets = self.rfc3339(st.resets_at_ms);
        host::info(&format!("refused: {why}"));
        host::metric_counter("budget_refusals", 1);
        let mut r = Respond::status(402)
            .message(format!("{why}; it resets at {resets}"))
            .error_type("billing_error");
        for (k, v) in Self::remaining_headers(applied, &e.budgets) {
            r = r.header(k, v);
        }
        r.into()
    }

    /// `ms` as RFC 3339 in the budgets' time zone.
    fn rfc3339(&self, ms: u64) -> String {
        use chrono::TimeZone;
        match self.s.tz.timestamp_millis_opt(ms as i64) {
            chrono::LocalResult::Single(t) => t.to_rfc3339(),
            _ => format!("{ms} ms after the Unix epoch"),
        }
    }

    fn ewma_key(refs: &[BudgetRef]) -> Option<String> {
        refs.first().map(|r| format!("ewma:{}", r.key))
    }
}

impl Policy for Budget {
    type Config = Value;

    fn validate(config: &Value) -> Result<(), String> {
        config::parse(config).map(|_| ()).map_err(|e| e.to_string())
    }

    fn new(config: Value) -> Result<Self, String> {
        Ok(Budget {
            s: config::parse(&config).map_err(|e| e.to_string())?,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY | Hooks::RESPONSE_HEADERS | Hooks::COMPLETE
    }

    fn reads_headers(&self) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_request_headers(&self, _ctx: &RequestContext, _headers: &Headers) -> HeadersAction {
        // A client cannot set its own numbers: they are the gateway's.
        let ops = HeaderOps::new()
            .remove(REMAINING_USD)
            .remove(REMAINING_TOKENS);
        let own = Self::own_limits();
        if self.applied(&own).is_empty() {
            return ops.proceed();
        }
        ops.need_body()
    }

    fn on_request_body(
        &self,
        ctx: &RequestContext,
        _headers: &Headers,
        body: Vec<u8>,
    ) -> BodyAction {
        let own = Self::own_limits();
        let applied = self.applied(&own);
        if applied.is_empty() {
            return BodyAction::Continue;
        }
        let Some(caps) = estimate::Caps::of(&body) else {
            // Not JSON: the provider refuses it; nothing to reserve.
            return BodyAction::Continue;
        };
        let strict = self.s.reservation == Reservation::Strict;
        let refs = self.refs(&applied);
        let mut replaced = None;
        let cap = match caps.cap() {
            Some(c) => c,
            None => {
                let c = self.s.default_max_tokens;
                if strict {
                    replaced = estimate::with_cap(&body, estimate::cap_field(ctx.kind), c);
                }
                c
            }
        };
        let output = if strict {
            cap
        } else {
            let avg = Self::ewma_key(&refs)
                .and_then(|k| host::kv_get(&k))
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<f64>().ok());
            avg.map_or(cap, |a| (a.ceil() as u64).min(cap))
        };
        let input = estimate::input_tokens(body.len(), strict);
        let needs_usd = applied.iter().any(|a| a.limit.unit == BudgetUnit::Usd);
        let usd_micros = if needs_usd {
            let model = ctx.model.clone().unwrap_or_default();
            match estimate::worst_price(|u| host::price(&model, u), input, output) {
                Some(p) => estimate::micros_up(p),
                None => {
                    host::metric_counter("budget_unpriced", 1);
                    return Respond::status(403)
                        .message(format!(
                            "model `{}` has no price in config.modelCatalog, so a dollar budget cannot admit it",
                            truncate(&model, 200)
                        ))
                        .error_type("permission_error")
                        .into();
                }
            }
        } else {
            0
        };
        let amount = BudgetAmount {
            usd_micros,
            tokens: input + output,
        };
        let ttl = std::time::Duration::from_millis(self.s.ttl_ms);
        match host::budget_reserve(&refs, amount, ttl) {
            Ok(r) => {
                host::set_attr(RESERVATION_ATTR, &r.id);
                let lines: Vec<String> = Self::remaining_headers(&applied, &r.budgets)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                host::set_attr(HEADERS_ATTR, &lines.join("\n"));
                if !strict {
                    if let Some(k) = Self::ewma_key(&refs) {
                        host::set_attr(EWMA_ATTR, &k);
                    }
                }
                match replaced {
                    Some(b) => BodyAction::Replace(b),
                    None => BodyAction::Continue,
                }
            }
            Err(e) => self.refuse(&applied, &e, &amount),
        }
    }

    fn on_response_headers(
        &self,
        _ctx: &RequestContext,
        _status: u16,
        _headers: &Headers,
    ) -> ResponseHeadersAction {
        let mut ops = HeaderOps::new();
        if let Some(lines) = host::get_attr(HEADERS_ATTR) {
            for line in lines.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    ops = ops.set(k, v);
                }
            }
        }
        ops.proceed_response()
    }

    fn on_complete(&self, ctx: &RequestContext, _summary: &Completion) {
        let Some(id) = host::get_attr(RESERVATION_ATTR) else {
            return;
        };
        let Some(u) = host::usage_details() else {
            host::budget_release(&id);
            return;
        };
        let model = ctx.model.clone().unwrap_or_default();
        let usd = host::price(&model, u).map_or(0, estimate::micros);
        host::budget_settle(
            &id,
            BudgetAmount {
                usd_micros: usd,
                tokens: estimate::all_tokens(&u),
            },
        );
        if let Some(k) = host::get_attr(EWMA_ATTR) {
            update_average(&k, &u);
        }
    }
}

/// Fold this output into the key's average (estimate mode). Not atomic
/// across replicas: it is an estimate, and the last writer wins.
fn update_average(key: &str, u: &TokenUsage) {
    let prev = host::kv_get(key)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<f64>().ok());
    let out = u.output_tokens as f64;
    let next = prev.map_or(out, |p| p + EWMA_ALPHA * (out - p));
    host::kv_set(
        key,
        format!("{next:.1}").as_bytes(),
        std::time::Duration::from_secs(7 * 86_400),
    );
}

sluice_sdk::export_policy!(Budget);

#[cfg(test)]
mod tests;
