//! The OpenTelemetry GenAI client metrics in Prometheus form, beside the
//! `sluice_*` ones: `gen_ai_client_token_usage`,
//! `gen_ai_client_operation_duration_seconds`,
//! `gen_ai_server_time_to_first_token_seconds` and
//! `gen_ai_server_time_per_output_token_seconds`.
//!
//! Why a registry of their own: the conventions' names carry no `sluice_`
//! prefix, and the gateway's registry adds it to everything. Labels are the
//! same bounded ones as the `sluice_*` metrics (route, provider, and the
//! model label [`crate::metrics::Metrics::model_label`] caps), under the
//! conventions' attribute names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_response_model: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_response_model: String,
    pub route: String,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

// Bucket boundaries as the conventions advise.
fn tokens() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 14))
}
fn duration() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}
fn ttft() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}
fn tpot() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ])
}

/// The GenAI histograms and the unprefixed registry that renders them.
pub struct GenAiMetrics {
    pub token_usage: Hist<TokenLabels>,
    pub duration: Hist<OpLabels>,
    pub time_to_first_token: Hist<OpLabels>,
    pub time_per_output_token: Hist<OpLabels>,
    pub registry: Registry,
}

impl GenAiMetrics {
    pub fn new() -> Self {
        let m = GenAiMetrics {
            token_usage: Family::new_with_constructor(tokens),
            duration: Family::new_with_constructor(duration),
            time_to_first_token: Family::new_with_constructor(ttft),
            time_per_output_token: Family::new_with_constructor(tpot),
            registry: Registry::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per GenAI operation, by token type (input counts cached tokens)",
            m.token_usage.clone(),
        );
        registry.register(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration, request to the end of the response",
            m.duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first chunk of the answer",
            m.time_to_first_token.clone(),
        );
        registry.register(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first chunk (streamed answers)",
            m.time_per_output_token.clone(),
        );
        GenAiMetrics { registry, ..m }
    }
}

impl Default for GenAiMetrics {
    fn default() -> Self {
        Self::new()
    }
}
