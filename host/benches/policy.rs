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

/// The same call with the ~20 headers Claude Code sends (see
/// `shared/reference/clients.md`): what lowering a real header list costs.
#[divan::bench]
fn hook_reused_instance_claude_code_headers(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| one_hook(true, false));
    b.bench(|| claude_code_call(&s.chain));
}

/// The same twenty headers to a plugin that declared (`read-headers`) the
/// one it reads.
#[divan::bench]
fn hook_reused_instance_claude_code_headers_one_declared(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| header_view(json!({"reads": ["authorization"]})));
    b.bench(|| claude_code_call(&s.chain));
}

/// The same twenty headers to the same plugin declaring nothing (all).
#[divan::bench]
fn hook_reused_instance_claude_code_headers_all_declared(b: Bencher) {
    static S: OnceLock<Setup> = OnceLock::new();
    let s = S.get_or_init(|| header_view(json!({})));
    b.bench(|| claude_code_call(&s.chain));
}

fn header_view(config: serde_json::Value) -> Setup {
    let rt = runtime(true, false);
    let chain = chain_of(&rt, &[("header-view", config)]);
    Setup { _rt: rt, chain }
}

fn claude_code_call(chain: &Chain) {
    let mut s = RequestScope::new(test_context("/v1/messages"));
    let mut h = claude_code_headers();
    divan::black_box(chain.request_headers(&mut s, &mut h).unwrap());
}

fn claude_code_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "127.0.0.1:4001"),
        ("content-type", "application/json"),
        ("content-length", "18734"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        (
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYifQ.c2lnbmF0dXJl",
        ),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
        ),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("user-agent", "claude-cli/2.1.332 (external, cli)"),
        ("x-app", "cli"),
        (
            "x-claude-code-session-id",
            "6f1c2a7e-1d7e-4c1b-9b8f-3f7e2d1c0b9a",
        ),
        ("x-stainless-arch", "x64"),
        ("x-stainless-lang", "js"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-package-version", "0.70.0"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-runtime", "node"),
        ("x-stainless-runtime-version", "v24.3.0"),
        ("x-stainless-timeout", "600"),
    ] {
        h.insert(k, v.parse().unwrap());
    }
    h
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
