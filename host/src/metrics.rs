//! Prometheus metrics of the gateway itself (policies add their own).
//!
//! Served on the admin listener at `/metrics`. Labels are route, provider and
//! model, with status on the request counter. Routes and providers are bounded
//! by the config. The model label comes from the provider's answer (never the
//! client's body), cut to [`MAX_MODEL_LABEL`] characters, and only the first
//! [`MAX_MODELS`] distinct models get their own series: later ones are `other`.
//! So no client can grow `/metrics` without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// Longest model label, in characters.
pub const MAX_MODEL_LABEL: usize = 64;
/// Distinct model labels kept before new ones are counted as `other`.
pub const MAX_MODELS: usize = 32;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub provider: String,
    pub model: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub route: String,
    pub provider: String,
    pub model: String,
    pub direction: &'static str,
}

/// One call to one backend (`outcome`: the status, `connect_error` or
/// `timeout`): a client request that failed over makes several.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub route: String,
    pub backend: String,
    pub outcome: String,
}

/// A team from the `apiKey` policy's metadata (`apiKey.team`), bounded
/// like models: the first [`MAX_TEAMS`] distinct teams, then `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabels {
    pub route: String,
    pub team: String,
}

/// Distinct `team` label values before later ones become `other`.
pub const MAX_TEAMS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvictionLabels {
    pub route: String,
    pub backend: String,
    /// `rate_limited` (the provider's Retry-After) or `failures`.
    pub reason: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// The gateway's metric families.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub ttfb: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
    /// Dollars spent, priced by `config.modelCatalog` (`sluice_cost_usd_total`).
    pub cost_usd: Family<RouteLabels, Counter<f64, AtomicU64>>,
    /// Requests and dollars by the API key's team (`sluice_team_*`).
    pub team_requests: Family<TeamLabels, Counter>,
    pub team_cost_usd: Family<TeamLabels, Counter<f64, AtomicU64>>,
    teams: Mutex<HashSet<String>>,
    pub backend_attempts: Family<AttemptLabels, Counter>,
    pub backend_evictions: Family<EvictionLabels, Counter>,
    /// The GenAI conventions' histograms (rendered without the prefix).
    pub genai: crate::genai_metrics::GenAiMetrics,
    models: Mutex<HashSet<String>>,
    registry: Mutex<Registry>,
}

impl Metrics {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let ttfb = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        let mut registry = Registry::with_prefix("sluice");
        registry.register(
            "requests",
            "Requests served, by route, provider, model and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the end of the response",
            duration.clone(),
        );
        registry.register(
            "ttfb_seconds",
            "Time from request to the first response byte",
            ttfb.clone(),
        );
        registry.register(
            "tokens",
            "Tokens reported by providers, by direction (input: uncached, cache_read, cache_write, output)",
            tokens.clone(),
        );
        let cost_usd = Family::<RouteLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "US dollars spent on priced requests (config.modelCatalog), by route, provider and model",
            cost_usd.clone(),
        );
        let team_requests = Family::<TeamLabels, Counter>::default();
        registry.register(
            "team_requests",
            "Requests authenticated by an API key whose metadata names a team, by route and team (first 64 teams, then `other`)",
            team_requests.clone(),
        );
        let team_cost_usd = Family::<TeamLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "team_cost_usd",
            "US dollars spent on priced requests by API-key team, by route and team (first 64 teams, then `other`)",
            team_cost_usd.clone(),
        );
        let backend_attempts = Family::<AttemptLabels, Counter>::default();
        let backend_evictions = Family::<EvictionLabels, Counter>::default();
        registry.register(
            "backend_attempts",
            "Calls to each backend, by outcome (status, connect_error, timeout); retries and failovers included",
            backend_attempts.clone(),
        );
        registry.register(
            "backend_evictions",
            "Times a backend was taken out of rotation, by reason",
            backend_evictions.clone(),
        );
        Metrics {
            requests,
            duration,
            ttfb,
            tokens,
            cost_usd,
            team_requests,
            team_cost_usd,
            teams: Mutex::new(HashSet::new()),
            backend_attempts,
            backend_evictions,
            genai: crate::genai_metrics::GenAiMetrics::new(),
            models: Mutex::new(HashSet::new()),
            registry: Mutex::new(registry),
        }
    }

    /// The `model` label for a model the provider named: truncated, and
    /// `other` once [`MAX_MODELS`] distinct ones have been seen.
    pub fn model_label(&self, model: Option<&str>) -> String {
        let Some(m) = model.filter(|m| !m.is_empty()) else {
            return String::new();
        };
        let m: String = m
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_MODEL_LABEL)
            .collect();
        let mut seen = self.models.lock().expect("model labels poisoned");
        if seen.contains(&m) {
            return m;
        }
        if seen.len() >= MAX_MODELS {
            return "other".to_string();
        }
        seen.insert(m.clone());
        m
    }

    /// The `team` label for `team`: cut like a model name, and `other`
    /// once [`MAX_TEAMS`] distinct ones have been seen (teams come from the
    /// config's key metadata, but a runtime key store must not be able to
    /// grow the series without bound either).
    pub fn team_label(&self, team: &str) -> String {
        let t: String = team
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_MODEL_LABEL)
            .collect();
        let mut seen = self.teams.lock().expect("team labels poisoned");
        if seen.contains(&t) {
            return t;
        }
        if seen.len() >= MAX_TEAMS {
            return "other".to_string();
        }
        seen.insert(t.clone());
        t
    }

    /// Let another part of the host (the policy runtime) register its metrics.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock().expect("metrics registry poisoned"))
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let reg = self.registry.lock().expect("metrics registry poisoned");
        encode_registry(&mut out, &reg)
            .and_then(|_| encode_registry(&mut out, &self.genai.registry))
            .and_then(|_| encode_eof(&mut out))
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_TEAMS {
            assert_eq!(m.team_label(&format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(m.team_label("one-too-many"), "other");
        assert_eq!(m.team_label("t0"), "t0");
    }

    #[test]
    fn model_labels_are_truncated_and_bounded() {
        let m = Metrics::new();
        assert_eq!(m.model_label(None), "");
        assert_eq!(
            m.model_label(Some("claude-sonnet-4-5")),
            "claude-sonnet-4-5"
        );
        let long = "x".repeat(4096);
        assert_eq!(m.model_label(Some(&long)).len(), MAX_MODEL_LABEL);
        for i in 0..100 {
            let l = m.model_label(Some(&format!("model-{i}")));
            assert!(i < MAX_MODELS - 2 || l == "other", "{i}: {l}");
        }
        // Known ones keep their label.
        assert_eq!(
            m.model_label(Some("claude-sonnet-4-5")),
            "claude-sonnet-4-5"
        );
        assert_eq!(m.model_label(Some("model-0")), "model-0");
    }
}
