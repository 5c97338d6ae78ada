//! Hook-level tests against the SDK's MockHost.

use super::*;
use serde_json::json;
use sluice_sdk::host::mock;
use sluice_sdk::rt::parse_config;
use sluice_sdk::{ImmediateResponse, Usage};

fn policy(cfg: Value) -> RateLimit {
    mock::reset();
    let cfg = parse_config::<RateLimit>(&cfg.to_string()).unwrap();
    RateLimit::validate(&cfg).unwrap();
    RateLimit::new(cfg).unwrap()
}

fn ctx_for(route: &str, ip: &str) -> RequestContext {
    RequestContext {
        request_id: "r1".into(),
        route: route.into(),
        backend: "b".into(),
        provider: Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/claude/v1/messages".into(),
        query: None,
        client_ip: ip.into(),
        model: None,
        streaming: false,
    }
}

fn ctx() -> RequestContext {
    ctx_for("claude-agent", "127.0.0.1")
}

/// A new request: attributes are per request.
fn next_request() {
    mock::with(|h| h.attrs.clear());
}

fn send(p: &RateLimit, c: &RequestContext, headers: &Headers) -> HeadersAction {
    next_request();
    p.on_request_headers(c, headers)
}

/// Units counted by the mock's window whose key contains `needle`.
fn window_total(needle: &str) -> Option<u64> {
    mock::with(|h| {
        h.windows
            .iter()
            .find(|((k, _), _)| k.contains(needle))
            .map(|(_, (slots, _))| slots.iter().map(|(_, n)| n).sum())
    })
}

fn refusal(a: HeadersAction) -> ImmediateResponse {
    match a {
        HeadersAction::Respond(r) => r,
        other => panic!("allowed: {other:?}"),
    }
}

fn allowed(a: &HeadersAction) -> bool {
    matches!(a, HeadersAction::Continue(_))
}

fn response_header(p: &RateLimit, name: &str) -> Option<String> {
    match p.on_response_headers(&ctx(), 200, &vec![]) {
        ResponseHeadersAction::Continue(ops) => ops
            .set
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn guide_config_refuses_the_101st_request() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 100,
        "actions": [{"reject": true, "errorCode": 429}]}}));
    assert_eq!(p.hooks(), Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS);
    for i in 1..=100 {
        assert!(allowed(&send(&p, &ctx(), &vec![])), "request {i}");
    }
    assert_eq!(
        response_header(&p, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        response_header(&p, "x-ratelimit-limit").as_deref(),
        Some("100")
    );
    // Time 0: the first request counts until its sub-window (36 s) ends
    // plus one hour.
    assert_eq!(
        response_header(&p, "x-ratelimit-reset").as_deref(),
        Some("3636")
    );
    match send(&p, &ctx(), &vec![]) {
        HeadersAction::Respond(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(r.error_type, "rate_limit_error");
            assert!(r.message.contains("100 requests per hour"), "{}", r.message);
            let h = |n: &str| header(&r.headers, n).map(str::to_owned);
            assert_eq!(h("retry-after").as_deref(), Some("3636"));
            assert_eq!(h("x-ratelimit-limit").as_deref(), Some("100"));
            assert_eq!(h("x-ratelimit-remaining").as_deref(), Some("0"));
            assert_eq!(h("x-ratelimit-reset").as_deref(), Some("3636"));
        }
        other => panic!("101st request allowed: {other:?}"),
    }
    // Refusals charge nothing: the window holds the budget.
    assert_eq!(window_total(":requests/"), Some(100));
    // Another route has its own counter.
    assert!(allowed(&send(
        &p,
        &ctx_for("codex-agent", "127.0.0.1"),
        &vec![]
    )));
}

#[test]
fn allowed_responses_report_remaining() {
    let p = policy(json!({"rateLimit": {"requestsPerMinute": 3}}));
    send(&p, &ctx(), &vec![]);
    assert_eq!(
        response_header(&p, "x-ratelimit-remaining").as_deref(),
        Some("2")
    );
    assert_eq!(
        response_header(&p, "x-ratelimit-reset").as_deref(),
        Some("61")
    );
}

#[test]
fn window_reset_allows_again() {
    let p = policy(json!({"rateLimit": {"requestsPerSecond": 2}}));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    assert!(!allowed(&send(&p, &ctx(), &vec![])));
    // One second after the first two (and their 10 ms sub-window).
    mock::with(|h| h.now_ms += 1_009);
    assert!(!allowed(&send(&p, &ctx(), &vec![])));
    mock::with(|h| h.now_ms += 1);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
}

#[test]
fn custom_status_and_message() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1,
        "actions": [{"errorCode": 503, "message": "slow down"}]}}));
    send(&p, &ctx(), &vec![]);
    match send(&p, &ctx(), &vec![]) {
        HeadersAction::Respond(r) => assert_eq!((r.status, r.message.as_str()), (503, "slow down")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn monitor_mode_never_refuses() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "actions": [{"reject": false}]}}));
    for _ in 0..3 {
        assert!(allowed(&send(&p, &ctx(), &vec![])));
    }
    assert_eq!(
        mock::with(|h| h.metrics.get("rate_limited").copied()),
        Some(2.0)
    );
}

#[test]
fn keyed_by_ip() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "key": "ip"}}));
    assert!(allowed(&send(&p, &ctx_for("a", "10.0.0.1"), &vec![])));
    assert!(!allowed(&send(&p, &ctx_for("b", "10.0.0.1"), &vec![])));
    assert!(allowed(&send(&p, &ctx_for("a", "10.0.0.2"), &vec![])));
}

#[test]
fn keyed_by_header_with_ip_fallback() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "by": {"header": "X-Org-Id"}}}));
    let org = |v: &str| vec![("x-org-id".to_string(), v.to_string())];
    assert!(allowed(&send(&p, &ctx(), &org("acme"))));
    assert!(!allowed(&send(&p, &ctx(), &org("acme"))));
    assert!(allowed(&send(&p, &ctx(), &org("globex"))));
    // No header: counted by client IP, not in one shared pool.
    assert!(allowed(&send(&p, &ctx_for("r", "10.0.0.1"), &vec![])));
    assert!(allowed(&send(&p, &ctx_for("r", "10.0.0.2"), &vec![])));
    assert!(!allowed(&send(&p, &ctx_for("r", "10.0.0.2"), &vec![])));
    // Header values never appear in counter keys.
    assert!(mock::with(|h| h
        .windows
        .keys()
        .all(|(k, _)| !k.contains("acme"))));
}

#[test]
fn keyed_by_claim() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "key": {"claim": "email"}}}));
    let as_user = |email: &str| {
        next_request();
        host::set_attr("auth.claims.email", email);
        p.on_request_headers(&ctx(), &vec![])
    };
    assert!(allowed(&as_user("a@x.com")));
    assert!(!allowed(&as_user("a@x.com")));
    assert!(allowed(&as_user("b@x.com")));
}

#[test]
fn combined_keys() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "key": ["route", "ip"]}}));
    assert!(allowed(&send(&p, &ctx_for("a", "1.1.1.1"), &vec![])));
    assert!(allowed(&send(&p, &ctx_for("b", "1.1.1.1"), &vec![])));
    assert!(!allowed(&send(&p, &ctx_for("a", "1.1.1.1"), &vec![])));
}

fn complete(p: &RateLimit, input: u64, output: u64) {
    p.on_complete(
        &ctx(),
        &Completion {
            status: 200,
            usage: Some(Usage {
                input_tokens: input,
                output_tokens: output,
            }),
            ttfb_ms: 1,
            duration_ms: 2,
            short_circuited: false,
            error: None,
        },
    );
}

#[test]
fn token_limits_charge_usage_at_completion() {
    let p = policy(json!({"rateLimit": {"tokensPerDay": "1k"}}));
    assert!(p.hooks().contains(Hooks::COMPLETE));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    complete(&p, 400, 200);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    assert_eq!(
        response_header(&p, "x-ratelimit-remaining").as_deref(),
        Some("400")
    );
    complete(&p, 300, 100);
    // 1000 of 1000 spent: the next request is refused.
    match send(&p, &ctx(), &vec![]) {
        HeadersAction::Respond(r) => {
            assert_eq!(r.status, 429);
            assert!(r.message.contains("1000 tokens per day"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    // A request without usage charges nothing.
    next_request();
    p.on_complete(
        &ctx(),
        &Completion {
            status: 500,
            usage: None,
            ttfb_ms: 0,
            duration_ms: 0,
            short_circuited: false,
            error: Some("upstream".into()),
        },
    );
}

#[test]
fn token_refusal_does_not_charge_request_limits() {
    let p = policy(json!({"rateLimit": {"tokensPerHour": 10, "requestsPerHour": 5}}));
    send(&p, &ctx(), &vec![]);
    complete(&p, 10, 0);
    assert!(!allowed(&send(&p, &ctx(), &vec![])));
    assert_eq!(window_total(":requests/"), Some(1));
}

#[test]
fn local_rate_limit_bucket() {
    let p = policy(json!({"localRateLimit": [
        {"maxTokens": 2, "tokensPerFill": 2, "fillInterval": "1s", "type": "requests"}]}));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    match send(&p, &ctx(), &vec![]) {
        HeadersAction::Respond(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(header(&r.headers, "retry-after"), Some("1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn differently_configured_limits_do_not_share_counters() {
    let a = policy(json!({"rateLimit": {"requestsPerHour": 1}}));
    let b = RateLimit::new(json!({"rateLimit": {"requestsPerHour": 2}})).unwrap();
    assert!(allowed(&send(&a, &ctx(), &vec![])));
    assert!(allowed(&send(&b, &ctx(), &vec![])));
    assert!(!allowed(&send(&a, &ctx(), &vec![])));
    assert_ne!(a.id, b.id);
}

#[test]
fn two_attachments_report_the_tighter_limit() {
    let layer = policy(json!({"rateLimit": {"requestsPerHour": 100}}));
    let route = RateLimit::new(json!({"rateLimit": {"requestsPerMinute": 2}})).unwrap();
    next_request();
    assert!(allowed(&layer.on_request_headers(&ctx(), &vec![])));
    assert!(allowed(&route.on_request_headers(&ctx(), &vec![])));
    assert_eq!(
        response_header(&layer, "x-ratelimit-limit").as_deref(),
        Some("2")
    );
    assert_eq!(
        response_header(&route, "x-ratelimit-remaining").as_deref(),
        Some("1")
    );
}

#[test]
fn headers_can_be_turned_off() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "headers": false}}));
    assert_eq!(p.hooks(), Hooks::REQUEST_HEADERS);
}

#[test]
fn validate_rejects_bad_config_through_the_sdk() {
    let cfg = parse_config::<RateLimit>(r#"{"rateLimit": {"requestsPerHour": -5}}"#).unwrap();
    let err = RateLimit::validate(&cfg).unwrap_err();
    assert!(err.contains("rateLimit.requestsPerHour"), "{err}");
}

/// A limit keyed by a header is handed that header; the usual keys none.
#[test]
fn reads_only_the_headers_its_keys_name() {
    let p =
        policy(json!({"rateLimit": {"requestsPerHour": 1, "key": ["route", {"header": "X-Org"}]}}));
    assert_eq!(p.reads_headers(), Some(vec!["x-org".to_string()]));
    let p = policy(json!({"rateLimit": {"requestsPerHour": 1, "key": "ip"}}));
    assert_eq!(p.reads_headers(), Some(Vec::new()));
}

/// The issue's case: 20 per minute, 20 at hh:mm:58.8 and 20 more at
/// hh:(mm+1):00.3. Fixed windows admitted all 40.
#[test]
fn a_burst_across_the_minute_edge_is_refused_until_the_first_ages_out() {
    let p = policy(json!({"rateLimit": {"requestsPerMinute": 20}}));
    let t0 = 1_700_000_000_000 / 60_000 * 60_000 + 58_800;
    mock::with(|h| h.now_ms = t0);
    for i in 1..=20 {
        assert!(allowed(&send(&p, &ctx(), &vec![])), "request {i}");
    }
    mock::with(|h| h.now_ms = t0 + 1_500);
    for _ in 0..20 {
        let r = refusal(send(&p, &ctx(), &vec![]));
        // The 20 age out 60 s after their sub-window ends (58.8 + 0.6 s):
        // 59.1 s from 00.3, rounded up.
        assert_eq!(header(&r.headers, "retry-after"), Some("60"));
        assert_eq!(header(&r.headers, "x-ratelimit-reset"), Some("60"));
    }
    assert_eq!(window_total(":requests/"), Some(20));
    mock::with(|h| h.now_ms = t0 + 600 + 60_000 - 1);
    assert!(!allowed(&send(&p, &ctx(), &vec![])));
    mock::with(|h| h.now_ms = t0 + 600 + 60_000);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
}

#[test]
fn a_refusal_by_one_limit_charges_none_of_the_others() {
    let p = policy(json!({"rateLimit": {"requestsPerSecond": 1, "requestsPerHour": 3}}));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    for _ in 0..5 {
        let r = refusal(send(&p, &ctx(), &vec![]));
        assert!(r.message.contains("1 requests per second"), "{}", r.message);
    }
    assert_eq!(window_total("/3600000ms/"), Some(1));
    for _ in 0..2 {
        mock::with(|h| h.now_ms += 1_010);
        assert!(allowed(&send(&p, &ctx(), &vec![])));
    }
    // The hour is full; its wait (not the second's) is the answer.
    mock::with(|h| h.now_ms += 1_010);
    let r = refusal(send(&p, &ctx(), &vec![]));
    assert!(r.message.contains("3 requests per hour"), "{}", r.message);
    let retry: u64 = header(&r.headers, "retry-after").unwrap().parse().unwrap();
    assert!((3_600..=3_636).contains(&retry), "{retry}");
}

#[test]
fn spent_tokens_refuse_until_they_age_out_of_the_period() {
    let p = policy(json!({"rateLimit": {"tokensPerMinute": 30}}));
    mock::with(|h| h.now_ms = 60_000);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    complete(&p, 11, 7);
    mock::with(|h| h.now_ms = 61_000);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    complete(&p, 11, 7);
    let r = refusal(send(&p, &ctx(), &vec![]));
    // 36 of 30: the first 18 must age out (sub-window 60.0-60.6 s, + 60 s).
    assert_eq!(header(&r.headers, "retry-after"), Some("60"));
    mock::with(|h| h.now_ms = 60_000 + 600 + 60_000 - 1);
    assert!(!allowed(&send(&p, &ctx(), &vec![])));
    mock::with(|h| h.now_ms = 60_000 + 600 + 60_000);
    assert!(allowed(&send(&p, &ctx(), &vec![])));
}

#[test]
fn an_empty_bucket_refuses_before_the_windows_are_charged() {
    let p = policy(json!({"rateLimit": {"requestsPerHour": 10},
        "localRateLimit": [{"maxTokens": 1, "fillInterval": "1h"}]}));
    assert!(allowed(&send(&p, &ctx(), &vec![])));
    for _ in 0..3 {
        assert!(!allowed(&send(&p, &ctx(), &vec![])));
    }
    assert_eq!(window_total(":requests/"), Some(1));
}
