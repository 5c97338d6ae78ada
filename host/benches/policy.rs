//! Policy runtime costs: reused instances vs instantiate-per-call, per-hook
//! cost, and a whole chain.
//!
//! Run: `cargo bench --workspace --bench policy`
//! (builds the fixture plugins in `tests/plugins/*` first).

use std::sync::{Arc, OnceLock};

use divan::Bencher;
use http::HeaderMap;
use serde_json::json;
use sluice::policy::engine::PoolingOptions;
use sluice::policy::testing::fixture_bytes;
use sluice::policy::types::test_context;
use sluice::policy::{
    Chain, FailureMode, Limits, MemoryState, PolicyRuntime, RequestScope, RuntimeOptions, SseEvent,
};

fn main() {
    divan::main();
}

fn runtime(reuse: bool, pooling: bool) -> PolicyRuntime {
    let opts = RuntimeOptions {
        cache_dir: Some(sluice::policy::testing::workspace_dir().join("target/bench-cache")),
        reuse_instances: reuse,
        pooling: pooling.then(PoolingOptions::default),
        ..Default::default()
    };
    PolicyRuntime::new(opts, Arc::new(MemoryState::new())).unwrap()
}

fn chain_of(rt: &PolicyRuntime, plugins: &[(&str, serde_json::Value)]) -> Chain {
    let atts = plugins
        .iter()
        .map(|(name, config)| {
            let p = rt
                .load_plugin(
                    name,
                    &fixture_bytes(name),
                    Limits::default(),
                    FailureMode::Closed,
                )
                .unwrap();
            rt.attach(&p, config).unwrap()
        })
        .collect();
    Chain::new(atts)
}

struct Setup {
    _rt: PolicyRuntime,
    chain: Chain,
}

fn one_hook(reuse: bool, pooling: bool) -> Setup {
    let rt = runtime(reuse, pooling);
    let chain = chain_of(
        &rt,
        &[(
            "header-rewrite",
            json!({"request": {"set": [["x-a", "1"]]}}),
        )],
    );
    Setup { _rt: rt, chain }
}

fn request_headers(chain: &Chain) {
    let mut s = RequestScope::new(test_context("/v1/messages"));
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-api-key", "redacted".parse().unwrap());
    divan::black_box(chain.request_headers(&mut s, &mut h).unwrap());
}

/// One `on-request-headers` call on a pooled, already-initialized instance.
#[divan::bench]
fn hook_reused_instance(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| one_hook(true, false));
    b.bench(|| request_headers(&s.chain));
}

/// Instantiate + init + one call + drop, default (on-demand) allocator.
#[divan::bench]
fn hook_instantiate_per_call(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| one_hook(false, false));
    b.bench(|| request_headers(&s.chain));
}

/// Instantiate + init + one call + drop, pooling allocator.
#[divan::bench]
fn hook_instantiate_per_call_pooling(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| one_hook(false, true));
    b.bench(|| request_headers(&s.chain));
}

/// One SSE event through one plugin (reused instance).
#[divan::bench]
fn sse_event_one_plugin(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| {
        let rt = runtime(true, false);
        let chain = chain_of(&rt, &[("sse-rewrite", json!({}))]);
        Setup { _rt: rt, chain }
    });
    let ev = SseEvent {
        event: Some("content_block_delta".into()),
        data: r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello world"}}"#.into(),
        id: None,
    };
    b.bench(|| {
        let mut sc = RequestScope::new(test_context("/v1/messages"));
        divan::black_box(s.chain.response_event(&mut sc, ev.clone()).unwrap());
    });
}

/// A whole exchange through a 5-plugin chain: request headers + response
/// headers (10 hook calls, attrs passed between plugins, a shared counter).
#[divan::bench]
fn chain_5_plugins_request_and_response_headers(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| {
        let rt = runtime(true, false);
        let chain = chain_of(
            &rt,
            &[
                (
                    "header-rewrite",
                    json!({"request": {"set": [["x-a", "1"]]}, "response": {"remove": ["server"]}}),
                ),
                (
                    "attr-writer",
                    json!({"key": "user", "value": "alice", "tag": "W"}),
                ),
                ("attr-reader", json!({"key": "user", "header": "x-user"})),
                ("counter", json!({"key": "bench"})),
                (
                    "header-rewrite",
                    json!({"response": {"set": [["x-b", "2"]]}}),
                ),
            ],
        );
        Setup { _rt: rt, chain }
    });
    b.bench(|| {
        let mut sc = RequestScope::new(test_context("/v1/messages"));
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        s.chain.request_headers(&mut sc, &mut h).unwrap();
        let mut rh = HeaderMap::new();
        rh.insert("server", "upstream".parse().unwrap());
        divan::black_box(s.chain.response_headers(&mut sc, 200, &mut rh).unwrap());
    });
}
