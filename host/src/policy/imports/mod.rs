//! The one host-state struct stored in every plugin `Store`, and the `host`
//! interface implemented over it: a thin trait impl delegating to one small
//! module per capability.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host::{
    Bucket, BucketTake, BudgetAmount, BudgetExhausted, BudgetRef, BudgetReserved, FetchResponse,
    Host, Level, PublicKey, SignatureScheme, WindowCount, WindowLimit, WindowTakeResult,
};
use super::bindings::types;
use super::metrics::PolicyMetrics;
use super::state::{Clock, StateStore};

pub mod attrs;
pub mod budget;
pub mod clock;
pub mod counters;
pub mod crypto;
pub mod fetch;
pub mod headers;
pub mod kv;
pub mod limits;
pub mod log;
pub mod metrics;

pub use fetch::Fetcher;
pub use headers::HeaderView;
pub use limits::Limiter;

/// Process-wide services the host imports use.
pub struct HostEnv {
    pub state: Arc<StateStore>,
    /// Behind `now-ms` (injectable for tests).
    pub clock: Arc<dyn Clock>,
    pub metrics: PolicyMetrics,
    pub fetcher: Arc<Fetcher>,
    /// Signatures that verified, so a reused token costs one RSA check.
    pub verified: crypto::VerifiedCache,
}

/// Per-call data: swapped in for one hook call, swapped out afterwards.
#[derive(Default)]
pub struct CallData {
    pub request_id: String,
    pub attrs: HashMap<String, String>,
    /// The exchange's token split, during `on-complete`.
    pub usage: Option<types::TokenUsage>,
}

/// What a plugin instance's `Store` holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    /// Plugin name, for logs and metrics.
    pub plugin: Arc<str>,
    /// Hosts this attachment may fetch from.
    pub fetch_hosts: Arc<[String]>,
    pub call: CallData,
    /// Wall time spent blocked in host calls (fetch, state) during this hook call,
    /// credited back to the CPU deadline.
    pub wait_credit: std::time::Duration,
    /// Wall time blocked in host calls during this hook call, for its
    /// policy span (`wait_credit` is consumed by the deadline callback).
    pub host_wait: std::time::Duration,
    pub env: Arc<HostEnv>,
    /// True while `init` runs: `read-headers` is honoured only then.
    pub in_init: bool,
    /// What `read-headers` declared (every header unless it was called).
    pub read_headers: HeaderView,
}

impl HostState {
    pub fn new(
        plugin: Arc<str>,
        memory_cap: usize,
        fetch_hosts: Arc<[String]>,
        env: Arc<HostEnv>,
    ) -> Self {
        HostState {
            // Inherits nothing: no args, env, preopens, network or stdio.
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_cap),
            plugin,
            fetch_hosts,
            call: CallData::default(),
            wait_credit: std::time::Duration::ZERO,
            host_wait: std::time::Duration::ZERO,
            env,
            in_init: false,
            read_headers: HeaderView::all(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

type R<T> = wasmtime::Result<T>;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> R<()> {
        log::log(self, level, &message);
        Ok(())
    }
    fn get_attr(&mut self, key: String) -> R<Option<String>> {
        Ok(attrs::get(self, &key))
    }
    fn set_attr(&mut self, key: String, value: String) -> R<()> {
        attrs::set(self, key, value);
        Ok(())
    }
    fn incr_counter(&mut self, key: String, delta: i64, window_ms: u64) -> R<WindowCount> {
        counters::incr(self, &key, delta, window_ms)
    }
    fn window_take(&mut self, limits: Vec<WindowLimit>, force: bool) -> R<Vec<WindowTakeResult>> {
        counters::window_take(self, limits, force)
    }
    fn take_tokens(
        &mut self,
        key: String,
        tokens: u64,
        drain: bool,
        bucket: Bucket,
    ) -> R<BucketTake> {
        counters::take(self, &key, tokens, drain, bucket)
    }
    fn kv_get(&mut self, key: String) -> R<Option<Vec<u8>>> {
        kv::get(self, &key)
    }
    fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) -> R<()> {
        kv::set(self, &key, value, ttl_ms)
    }
    fn now_ms(&mut self) -> R<u64> {
        Ok(clock::now_ms(self))
    }
    fn metric_counter(&mut self, name: String, value: u64) -> R<()> {
        metrics::counter(self, &name, value);
        Ok(())
    }
    fn metric_histogram(&mut self, name: String, value: f64) -> R<()> {
        metrics::histogram(self, &name, value);
        Ok(())
    }
    fn fetch(&mut self, url: String, cache_ms: u64) -> R<Result<FetchResponse, String>> {
        Ok(fetch::fetch(self, &url, cache_ms))
    }
    fn read_headers(&mut self, names: Vec<String>) -> R<()> {
        headers::declare(self, names);
        Ok(())
    }
    fn usage_details(&mut self) -> R<Option<types::TokenUsage>> {
        Ok(self.call.usage)
    }
    fn verify_signature(
        &mut self,
        scheme: SignatureScheme,
        key: PublicKey,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> R<bool> {
        Ok(crypto::verify(
            &self.env.verified,
            scheme,
            &key,
            &message,
            &signature,
        ))
    }
    fn budget_reserve(
        &mut self,
        budgets: Vec<BudgetRef>,
        amount: BudgetAmount,
        ttl_ms: u64,
    ) -> R<Result<BudgetReserved, BudgetExhausted>> {
        budget::reserve(self, budgets, amount, ttl_ms)
    }
    fn budget_settle(&mut self, id: String, actual: BudgetAmount) -> R<()> {
        budget::settle(self, &id, actual)
    }
    fn budget_release(&mut self, id: String) -> R<()> {
        budget::settle(
            self,
            &id,
            BudgetAmount {
                usd_micros: 0,
                tokens: 0,
            },
        )
    }
    fn price(&mut self, model: String, usage: types::TokenUsage) -> R<Option<f64>> {
        Ok(budget::price(self, &model, usage))
    }
}
