//! `metric-counter`/`metric-histogram`: plugin metrics, labelled by plugin.

use super::HostState;

pub fn counter(s: &HostState, name: &str, value: u64) {
    s.env.metrics.plugin.counter(&s.plugin, name, value)
}

pub fn histogram(s: &HostState, name: &str, value: f64) {
    s.env.metrics.plugin.histogram(&s.plugin, name, value)
}
