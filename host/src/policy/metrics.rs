//! Prometheus metrics of the policy runtime and of the plugins themselves.
//!
//! Registered into the pipeline's `prometheus_client` registry at
//! construction ([`PolicyMetrics::register`]); the pipeline renders it.
//! Runtime metrics: `sluice_policy_{calls,errors,traps,instances}_total`,
//! `sluice_policy_hook_duration_seconds`. Plugin metrics
//! (`metric-counter`/`metric-histogram` imports) become
//! `sluice_plugin_<name>{plugin=..}`, rendered by a collector since their
//! names are only known at run time; names are sanitized and capped.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// At most this many distinct plugin metric names (per kind).
const MAX_PLUGIN_METRICS: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub plugin: String,
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrapLabels {
    pub plugin: String,
    pub hook: &'static str,
    /// `trap`, `deadline` or `memory`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn hook_histogram() -> Histogram {
    // 1 µs .. ~4 s
    Histogram::new(exponential_buckets(1e-6, 4.0, 12))
}
fn plugin_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// The runtime's metric handles; cheap to clone.
#[derive(Clone, Debug)]
pub struct PolicyMetrics {
    pub(crate) calls: Family<HookLabels, Counter>,
    pub(crate) errors: Family<HookLabels, Counter>,
    pub(crate) traps: Family<TrapLabels, Counter>,
    pub(crate) instances: Family<PluginLabels, Counter>,
    pub(crate) duration: HistFamily<HookLabels>,
    pub(crate) plugin: Arc<PluginMetrics>,
}

impl PolicyMetrics {
    /// Create the metrics and register them into `registry`, the gateway's
    /// registry whose prefix is `sluice` (names here carry no prefix of their
    /// own, or they would render as `sluice_sluice_...`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::detached();
        registry.register("policy_calls", "Policy hook calls", m.calls.clone());
        registry.register(
            "policy_errors",
            "Policy hook calls that returned an invalid result (bad header, ...)",
            m.errors.clone(),
        );
        registry.register(
            "policy_traps",
            "Policy hook calls that trapped, hit the CPU deadline or the memory cap",
            m.traps.clone(),
        );
        registry.register(
            "policy_instances",
            "Plugin instances created (instantiate + init)",
            m.instances.clone(),
        );
        registry.register(
            "policy_hook_duration_seconds",
            "Time spent in one policy hook call",
            m.duration.clone(),
        );
        registry.register_collector(Box::new(m.plugin.clone()));
        m
    }

    /// Metrics not registered anywhere (when the caller has no registry).
    pub fn detached() -> Self {
        PolicyMetrics {
            calls: Family::default(),
            errors: Family::default(),
            traps: Family::default(),
            instances: Family::default(),
            duration: Family::new_with_constructor(hook_histogram),
            plugin: Arc::new(PluginMetrics::default()),
        }
    }
}

/// Plugin-defined metrics, keyed by sanitized name.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    counters: RwLock<HashMap<String, Family<PluginLabels, Counter>>>,
    histograms: RwLock<HashMap<String, HistFamily<PluginLabels>>>,
}

/// `[a-z0-9_]` only, at most 64 chars; `None` if nothing is left.
fn sanitize(name: &str) -> Option<String> {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    (!s.is_empty()).then_some(s)
}

impl PluginMetrics {
    pub fn counter(&self, plugin: &str, name: &str, value: u64) {
        let Some(name) = sanitize(name) else { return };
        let labels = PluginLabels {
            plugin: plugin.to_owned(),
        };
        if let Some(f) = self.counters.read().get(&name) {
            f.get_or_create(&labels).inc_by(value);
            return;
        }
        let mut map = self.counters.write();
        if map.len() >= MAX_PLUGIN_METRICS && !map.contains_key(&name) {
            tracing::warn!(plugin, metric = %name, "too many plugin metrics; dropped");
            return;
        }
        map.entry(name)
            .or_default()
            .get_or_create(&labels)
            .inc_by(value);
    }

    pub fn histogram(&self, plugin: &str, name: &str, value: f64) {
        let Some(name) = sanitize(name) else { return };
        if !value.is_finite() {
            return;
        }
        let labels = PluginLabels {
            plugin: plugin.to_owned(),
        };
        if let Some(f) = self.histograms.read().get(&name) {
            f.get_or_create(&labels).observe(value);
            return;
        }
        let mut map = self.histograms.write();
        if map.len() >= MAX_PLUGIN_METRICS && !map.contains_key(&name) {
            tracing::warn!(plugin, metric = %name, "too many plugin metrics; dropped");
            return;
        }
        map.entry(name)
            .or_insert_with(|| Family::new_with_constructor(plugin_histogram))
            .get_or_create(&labels)
            .observe(value);
    }
}

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in self.counters.read().iter() {
            let full = format!("plugin_{name}");
            let e = encoder.encode_descriptor(
                &full,
                "Plugin-defined counter",
                None,
                family.metric_type(),
            )?;
            family.encode(e)?;
        }
        for (name, family) in self.histograms.read().iter() {
            let full = format!("plugin_{name}");
            let e = encoder.encode_descriptor(
                &full,
                "Plugin-defined histogram",
                None,
                family.metric_type(),
            )?;
            family.encode(e)?;
        }
        Ok(())
    }
}
