//! Runtime tests against the fixture plugins in `tests/plugins/*`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;

use super::testing::fixture_bytes;
use super::types::test_context;
use super::*;

fn runtime() -> &'static PolicyRuntime {
    static RT: OnceLock<(PolicyRuntime, tempfile::TempDir)> = OnceLock::new();
    let (rt, _) = RT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let opts = RuntimeOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        (
            PolicyRuntime::new(opts, Arc::new(MemoryState::new())).unwrap(),
            dir,
        )
    });
    rt
}

fn attach_with(
    name: &str,
    config: serde_json::Value,
    limits: Limits,
    failure: FailureMode,
) -> Arc<Attachment> {
    let rt = runtime();
    let plugin = rt
        .load_plugin(name, &fixture_bytes(name), limits, failure)
        .unwrap();
    rt.attach(&plugin, &config).unwrap()
}

fn attach(name: &str, config: serde_json::Value) -> Arc<Attachment> {
    attach_with(name, config, Limits::default(), FailureMode::Closed)
}

fn scope(path: &str) -> RequestScope {
    RequestScope::new(test_context(path))
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn types_are_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Chain>();
    send_sync::<PolicyRuntime>();
    send::<RequestScope>();
}

#[test]
fn deny_and_continue() {
    let rewrite = attach(
        "header-rewrite",
        json!({"request": {"set": [["x-a", "1"]]}}),
    );
    let deny = attach("deny", json!({"message": "go away"}));
    let chain = Chain::new(vec![rewrite.clone(), deny]);
    let mut h = HeaderMap::new();
    match chain
        .request_headers(&mut scope("/v1/messages"), &mut h)
        .unwrap()
    {
        HeadersOutcome::Respond(r) => {
            assert_eq!(r.status, 403);
            assert_eq!(r.message, "go away");
            assert_eq!(r.error_type, "permission_error");
            assert_eq!(
                r.headers,
                vec![("x-denied-by".to_string(), "deny".to_string())]
            );
        }
        other => panic!("expected a response, got {other:?}"),
    }
    let chain = Chain::new(vec![rewrite]);
    let mut h = HeaderMap::new();
    let out = chain.request_headers(&mut scope("/"), &mut h).unwrap();
    assert_eq!(out, HeadersOutcome::Continue { need_body: false });
    assert_eq!(values(&h, "x-a"), ["1"]);
}

#[test]
fn body_only_hook_is_decided_per_attachment() {
    let rewrite = attach("header-rewrite", json!({}));
    let body_only = attach("body-only", json!({"needle": "x"}));
    let body_rewrite = attach("body-rewrite", json!({"field": "a", "value": 1}));
    assert!(Chain::new(vec![rewrite.clone(), body_only.clone()]).body_without_headers());
    assert!(Chain::new(vec![body_only]).body_without_headers());
    // A plugin with both hooks asks with `need-body` instead.
    assert!(!Chain::new(vec![rewrite, body_rewrite]).body_without_headers());
}

#[test]
fn header_ops_remove_set_add() {
    let att = attach(
        "header-rewrite",
        json!({
            "request": {"remove": ["x-multi", "x-gone"], "set": [["x-multi", "s"]], "add": [["x-multi", "t"]]},
            "response": {"set": [["x-resp", "r"]], "remove": ["server"]}
        }),
    );
    let chain = Chain::new(vec![att]);
    let mut h = HeaderMap::new();
    h.append("x-multi", "a".parse().unwrap());
    h.append("x-multi", "b".parse().unwrap());
    h.append("x-gone", "g".parse().unwrap());
    h.append("x-keep", "k".parse().unwrap());
    let mut s = scope("/");
    chain.request_headers(&mut s, &mut h).unwrap();
    assert_eq!(values(&h, "x-multi"), ["s", "t"]);
    assert!(h.get("x-gone").is_none());
    assert_eq!(values(&h, "x-keep"), ["k"]);

    let mut rh = HeaderMap::new();
    rh.insert("server", "upstream".parse().unwrap());
    assert_eq!(chain.response_headers(&mut s, 200, &mut rh).unwrap(), None);
    assert_eq!(values(&rh, "x-resp"), ["r"]);
    assert!(rh.get("server").is_none());
}

#[test]
fn invalid_header_from_plugin_is_a_plugin_error() {
    let config = json!({"request": {"set": [["bad name", "v"], ["x-ok", "1"]]}});
    let closed = attach("header-rewrite", config.clone());
    let mut h = HeaderMap::new();
    let err = Chain::new(vec![closed])
        .request_headers(&mut scope("/"), &mut h)
        .unwrap_err();
    assert_eq!(err.plugin, "header-rewrite");
    assert!(err.reason.contains("invalid header name"), "{err:?}");
    assert!(h.is_empty(), "edits are all-or-nothing");

    let open = attach_with(
        "header-rewrite",
        config,
        Limits::default(),
        FailureMode::Open,
    );
    let out = Chain::new(vec![open])
        .request_headers(&mut scope("/"), &mut h)
        .unwrap();
    assert_eq!(out, HeadersOutcome::Continue { need_body: false });
    assert!(h.is_empty());
}

fn delta(text: &str) -> SseEvent {
    SseEvent {
        event: Some("content_block_delta".into()),
        data: json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}).to_string(),
        id: None,
    }
}

fn text_of(ev: &SseEvent) -> String {
    let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
    v["delta"]["text"].as_str().unwrap().to_owned()
}

#[test]
fn sse_rewrite_drop_split_and_flush() {
    let chain = Chain::new(vec![attach("sse-rewrite", json!({}))]);
    assert!(chain.wants().contains(Hooks::RESPONSE_EVENTS));
    assert!(!chain.wants().contains(Hooks::REQUEST_HEADERS));
    let mut s = scope("/");
    let out = chain.response_event(&mut s, delta("hello")).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(text_of(&out[0]), "HELLO");
    let ping = SseEvent {
        event: Some("ping".into()),
        data: r#"{"type":"ping"}"#.into(),
        id: None,
    };
    assert!(chain.response_event(&mut s, ping).unwrap().is_empty());
    let out = chain.response_event(&mut s, delta("ab|cd")).unwrap();
    assert_eq!(out.iter().map(text_of).collect::<Vec<_>>(), ["AB", "CD"]);
    let stop = SseEvent {
        event: Some("message_stop".into()),
        data: r#"{"type":"message_stop"}"#.into(),
        id: Some("7".into()),
    };
    let out = chain.response_event(&mut s, stop).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].event.as_deref(), out[0].id.as_deref()),
        (Some("message_stop"), Some("7"))
    );
    let end = chain.response_end(&mut s).unwrap();
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].event.as_deref(), Some("tail"));
}

#[test]
fn sse_chain_feeds_outputs_forward_and_flushes_through_later_plugins() {
    let a = attach("sse-rewrite", json!({}));
    let b = attach("sse-rewrite", json!({}));
    let chain = Chain::new(vec![a, b]);
    let mut s = scope("/");
    // Split by the first plugin (in response order), each piece then passes
    // through the second.
    let out = chain.response_event(&mut s, delta("x|y|z")).unwrap();
    assert_eq!(out.iter().map(text_of).collect::<Vec<_>>(), ["X", "Y", "Z"]);
    // Each plugin flushes a tail; the first one's tail also passes through
    // the second's on-response-event (unchanged: it is not a delta).
    let end = chain.response_end(&mut s).unwrap();
    assert_eq!(end.len(), 2);
}

#[test]
fn body_replace_request_and_response() {
    let chain = Chain::new(vec![attach(
        "body-rewrite",
        json!({"field": "model", "value": "claude-x"}),
    )]);
    let (mut s, mut h) = headers_asking_for_the_body(&chain);
    let mut body = Bytes::from_static(br#"{"model":"a","max_tokens":5}"#);
    assert_eq!(chain.request_body(&mut s, &mut h, &mut body).unwrap(), None);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["max_tokens"], 5);
    assert_eq!(values(&h, "content-length"), [body.len().to_string()]);

    let mut body = Bytes::from_static(b"not json");
    let r = chain
        .request_body(&mut s, &mut h, &mut body)
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 400);

    let mut rbody = Bytes::from_static(br#"{"id":"1"}"#);
    assert_eq!(chain.response_body(&mut s, 200, &mut rbody).unwrap(), None);
    let v: serde_json::Value = serde_json::from_slice(&rbody).unwrap();
    assert_eq!(v["model"], "claude-x");
}

#[test]
fn attrs_pass_between_plugins_and_response_order_is_reversed() {
    let wa = attach(
        "attr-writer",
        json!({"key": "user", "value": "alice", "tag": "A"}),
    );
    let wb = attach("attr-writer", json!({"key": "other", "tag": "B"}));
    let reader = attach("attr-reader", json!({"key": "user", "header": "x-user"}));
    let chain = Chain::new(vec![wa, wb, reader.clone()]);
    let mut s = scope("/p");
    let mut h = HeaderMap::new();
    chain.request_headers(&mut s, &mut h).unwrap();
    assert_eq!(values(&h, "x-user"), ["alice"]);
    assert_eq!(s.attrs.get("other").map(String::as_str), Some("/p"));

    // Response hooks run in reverse: reader (sees nothing yet), B, then A.
    let mut rh = HeaderMap::new();
    chain.response_headers(&mut s, 200, &mut rh).unwrap();
    assert_eq!(values(&rh, "x-order"), [""]);
    assert_eq!(s.attrs.get("order").map(String::as_str), Some("BA"));

    // A new request on the same (reused) reader instance sees no attrs.
    let mut h = HeaderMap::new();
    Chain::new(vec![reader])
        .request_headers(&mut scope("/q"), &mut h)
        .unwrap();
    assert_eq!(values(&h, "x-user"), ["<absent>"]);
}

#[test]
fn counters_are_shared_across_threads() {
    let key = format!("test-counter-{}", std::process::id());
    let chain = Chain::new(vec![attach("counter", json!({"key": key}))]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let chain = chain.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..25 {
                    let mut s = scope("/");
                    let mut h = HeaderMap::new();
                    chain.request_headers(&mut s, &mut h).unwrap();
                    let mut rh = HeaderMap::new();
                    chain.response_headers(&mut s, 200, &mut rh).unwrap();
                    seen.push(values(&rh, "x-count")[0].parse::<i64>().unwrap());
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(
        all,
        (1..=100).collect::<Vec<_>>(),
        "every increment is atomic and unique"
    );
    let mut text = String::new();
    let mut reg = prometheus_client::registry::Registry::with_prefix("sluice");
    let m = PolicyMetrics::register(&mut reg);
    m.plugin.counter("counter", "requests", 3);
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(
        sluice_testkit::metrics::metric(
            &text,
            "sluice_plugin_requests_total",
            &[("plugin", "counter")]
        ) == Some(3.0),
        "{text}"
    );
}

fn failure_case(name: &str, expect: &str) {
    let limits = Limits {
        memory_bytes: 16 << 20,
        // Generous: the follow-up calls below run under the same wall-clock
        // deadline (a fresh instance replaces the trapped one) on a busy machine.
        hook_deadline: Duration::from_millis(500),
        fetch_hosts: None,
    };
    let closed = attach_with(name, json!({}), limits.clone(), FailureMode::Closed);
    let chain = Chain::new(vec![closed.clone()]);
    for _ in 0..2 {
        let mut h = HeaderMap::new();
        let err = chain
            .request_headers(&mut scope("/boom"), &mut h)
            .unwrap_err();
        assert_eq!(err.plugin, name);
        assert!(err.reason.contains(expect), "{name}: {err:?}");
        // The same attachment keeps serving.
        let mut h = HeaderMap::new();
        chain.request_headers(&mut scope("/ok"), &mut h).unwrap();
        assert_eq!(h.len(), 1, "{name}: {h:?}");
    }

    let open = attach_with(name, json!({}), limits, FailureMode::Open);
    let chain = Chain::new(vec![open]);
    let mut h = HeaderMap::new();
    let out = chain.request_headers(&mut scope("/boom"), &mut h).unwrap();
    assert_eq!(out, HeadersOutcome::Continue { need_body: false });
    assert!(h.is_empty());
    let mut h = HeaderMap::new();
    chain.request_headers(&mut scope("/ok"), &mut h).unwrap();
    assert_eq!(h.len(), 1);
}

#[test]
fn spin_is_stopped_by_the_deadline() {
    let started = std::time::Instant::now();
    failure_case("spin", "CPU deadline");
    // 3 spins of 500 ms each, with slack for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn membomb_is_stopped_by_the_memory_cap() {
    failure_case("membomb", "memory cap");
}

#[test]
fn trap_fails_closed_or_open() {
    failure_case("trap", "unreachable");
}

#[test]
fn validate_rejects_bad_config_with_the_plugins_message() {
    let rt = runtime();
    let plugin = rt
        .load_plugin(
            "deny",
            &fixture_bytes("deny"),
            Limits::default(),
            FailureMode::Closed,
        )
        .unwrap();
    match rt.attach(&plugin, &json!({"message": ""})) {
        Err(PolicyError::InvalidConfig { plugin, message }) => {
            assert_eq!(plugin, "deny");
            assert_eq!(message, "message must not be empty");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    match rt.attach(&plugin, &json!({"message": 5})) {
        Err(PolicyError::InvalidConfig { message, .. }) => {
            assert!(message.contains("`message`"), "{message}")
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    match rt.attach(&plugin, &json!({"mesage": "typo"})) {
        Err(PolicyError::InvalidConfig { message, .. }) => {
            assert!(message.contains("mesage"), "{message}")
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn not_a_component_is_a_compile_error() {
    let rt = runtime();
    let err = rt
        .load_plugin(
            "junk",
            b"\0asm junk",
            Limits::default(),
            FailureMode::Closed,
        )
        .unwrap_err();
    assert!(matches!(err, PolicyError::Compile { .. }), "{err}");
}

#[test]
fn disk_cache_hit_on_second_load_and_corrupt_entries_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = fixture_bytes("deny");
    let new_rt = || {
        let opts = RuntimeOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        PolicyRuntime::new(opts, Arc::new(MemoryState::new())).unwrap()
    };
    let load = |rt: &PolicyRuntime| {
        let p = rt
            .load_plugin("deny", &wasm, Limits::default(), FailureMode::Closed)
            .unwrap();
        rt.attach(&p, &json!({"message": "m"})).unwrap();
    };
    let rt1 = new_rt();
    load(&rt1);
    assert_eq!(rt1.stats().compiles, 1);
    load(&rt1);
    assert_eq!(rt1.stats().memory_hits, 1);

    let rt2 = new_rt();
    load(&rt2);
    assert_eq!((rt2.stats().compiles, rt2.stats().disk_hits), (0, 1));

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let rt3 = new_rt();
    load(&rt3);
    assert_eq!((rt3.stats().compiles, rt3.stats().disk_hits), (1, 0));
    let rt4 = new_rt();
    load(&rt4);
    assert_eq!(
        rt4.stats().disk_hits,
        1,
        "the recompiled entry was written back"
    );

    // An artifact without its checksum beside it is never mapped.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".sha256") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let rt5 = new_rt();
    load(&rt5);
    assert_eq!((rt5.stats().compiles, rt5.stats().disk_hits), (1, 0));
}

#[test]
fn bundled_hello_policy() {
    let rt = runtime();
    assert!(bundled::names().any(|n| n == "hello-policy"));
    let plugin = rt.bundled("hello-policy").unwrap();
    let att = rt
        .attach(&plugin, &json!({"greeting": "hey", "deny": "/admin"}))
        .unwrap();
    let chain = Chain::new(vec![att]);
    let mut h = HeaderMap::new();
    match chain
        .request_headers(&mut scope("/admin/users"), &mut h)
        .unwrap()
    {
        HeadersOutcome::Respond(r) => assert_eq!(r.status, 403),
        other => panic!("{other:?}"),
    }
    let mut s = scope("/v1/messages");
    assert_eq!(
        chain.request_headers(&mut s, &mut h).unwrap(),
        HeadersOutcome::Continue { need_body: false }
    );
    let mut rh = HeaderMap::new();
    chain.response_headers(&mut s, 200, &mut rh).unwrap();
    assert_eq!(values(&rh, "x-hello"), ["hey"]);
    assert!(matches!(
        rt.attach(&plugin, &json!({"deny": ""})),
        Err(PolicyError::InvalidConfig { .. })
    ));
}

/// A request's headers phase through `chain`, which must ask for the body.
fn headers_asking_for_the_body(chain: &Chain) -> (RequestScope, HeaderMap) {
    let mut s = scope("/v1/messages");
    let mut h = HeaderMap::new();
    h.insert("content-length", "2".parse().unwrap());
    assert_eq!(
        chain.request_headers(&mut s, &mut h).unwrap(),
        HeadersOutcome::Continue { need_body: true }
    );
    (s, h)
}

/// A plugin that answered `continue` at the headers is not handed the body
/// another plugin asked for (it said it decided without it).
#[test]
fn only_the_plugins_that_asked_get_the_body() {
    let asks = attach(
        "body-rewrite",
        json!({"field": "model", "value": "claude-x"}),
    );
    let declines = attach("header-view", json!({"body": true}));
    for chain in [
        Chain::new(vec![asks.clone(), declines.clone()]),
        Chain::new(vec![declines.clone(), asks.clone()]),
    ] {
        let (mut s, mut h) = headers_asking_for_the_body(&chain);
        let mut body = Bytes::from_static(br#"{"model":"a"}"#);
        assert_eq!(chain.request_body(&mut s, &mut h, &mut body).unwrap(), None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "claude-x");
    }
    // Alone it is never asked, so its body hook would answer 418 if called.
    let mut s = scope("/v1/messages");
    let mut h = HeaderMap::new();
    let chain = Chain::new(vec![declines]);
    chain.request_headers(&mut s, &mut h).unwrap();
    let mut body = Bytes::from_static(b"{}");
    assert_eq!(chain.request_body(&mut s, &mut h, &mut body).unwrap(), None);
}

#[test]
fn hooks_not_declared_are_not_called() {
    // `trap` declares only request-headers and traps in every other hook, so
    // any call to an undeclared hook fails (or, for the completion hook,
    // whose failures are only counted, discards the instance).
    let att = attach("trap", json!({}));
    let chain = Chain::new(vec![att.clone()]);
    let mut s = scope("/ok");
    let mut rh = HeaderMap::new();
    chain.request_headers(&mut s, &mut rh).unwrap();
    assert_eq!(values(&rh, "x-trap"), ["survived"]);
    let mut body = Bytes::from_static(b"{}");
    assert_eq!(
        chain.request_body(&mut s, &mut rh, &mut body).unwrap(),
        None
    );
    let mut rh = HeaderMap::new();
    assert_eq!(chain.response_headers(&mut s, 200, &mut rh).unwrap(), None);
    let mut rbody = Bytes::from_static(b"{}");
    assert_eq!(chain.response_body(&mut s, 200, &mut rbody).unwrap(), None);
    assert!(chain.response_event(&mut s, delta("x")).unwrap().len() == 1);
    assert!(chain.response_end(&mut s).unwrap().is_empty());
    chain.complete(
        &mut s,
        &Completion {
            status: 200,
            usage: None,
            ttfb_ms: 1,
            duration_ms: 2,
            short_circuited: false,
            error: None,
        },
    );
    assert_eq!(att.idle_instances(), 1, "an undeclared hook trapped");
}
