use serde_json::json;
use sluice_sdk::host::mock;
use sluice_sdk::{AiKind, BodyAction, Completion, HeadersAction, Policy, TokenUsage};

use super::*;

fn ctx(model: &str) -> RequestContext {
    RequestContext {
        request_id: "r1".into(),
        route: "r".into(),
        backend: "b".into(),
        provider: sluice_sdk::Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/v1/messages".into(),
        query: None,
        client_ip: "127.0.0.1".into(),
        model: Some(model.into()),
        streaming: false,
    }
}

fn policy(cfg: Value) -> Budget {
    Budget::new(json!({ "budget": cfg })).unwrap()
}

fn key(id: &str, team: &str) {
    mock::with(|h| {
        h.attrs.insert("apiKey.id".into(), id.into());
        h.attrs.insert("apiKey.team".into(), team.into());
        // $1 per million input and cache tokens, $10 per million output.
        h.prices.insert("m".into(), [1.0, 0.1, 1.25, 10.0]);
    });
}

fn body(max_tokens: Option<u64>) -> Vec<u8> {
    let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = m.into();
    }
    serde_json::to_vec(&b).unwrap()
}

fn complete(p: &Budget, output: u64) {
    mock::with(|h| {
        h.usage = Some(TokenUsage {
            input_tokens: 10,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: output,
            reasoning_tokens: 0,
        })
    });
    let summary = Completion {
        status: 200,
        usage: None,
        ttfb_ms: 0,
        duration_ms: 0,
        short_circuited: false,
        error: None,
    };
    p.on_complete(&ctx("m"), &summary);
    mock::with(|h| {
        h.attrs.remove(RESERVATION_ATTR);
    });
}

#[test]
fn strict_reserves_the_cap_and_refuses_what_would_pass_the_limit() {
    mock::reset();
    key("k1", "ml");
    // $0.01 a day: 1,000 output tokens at $10/M is the whole budget.
    let p = policy(json!({"limits": [{"scope": "key", "usd": 0.01, "period": "day"}]}));
    assert!(matches!(
        p.on_request_headers(&ctx("m"), &vec![]),
        HeadersAction::NeedBody(_)
    ));
    // The cap alone is over the budget: refused up front, with 402.
    match p.on_request_body(&ctx("m"), &vec![], body(Some(100_000))) {
        BodyAction::Respond(r) => {
            assert_eq!(r.status, 402);
            assert!(r.message.contains("API key k1"), "{}", r.message);
            assert!(r.message.contains("per day"), "{}", r.message);
            assert!(
                r.message.contains("resets at 1970-01-02T00:00:00+00:00"),
                "{}",
                r.message
            );
            assert!(r
                .headers
                .iter()
                .any(|(k, v)| k == REMAINING_USD && v == "0.010000"));
        }
        other => panic!("{other:?}"),
    }
    // 500 output tokens reserved ($0.005 + input): admitted, then a second is not.
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], body(Some(500))),
        BodyAction::Continue
    ));
    let first = host::get_attr(RESERVATION_ATTR).unwrap();
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], body(Some(500))),
        BodyAction::Respond(_)
    ));
    // Settled at its real (small) cost, the rest is free again.
    mock::with(|h| {
        h.attrs.insert(RESERVATION_ATTR.into(), first.clone());
    });
    complete(&p, 10);
    assert_eq!(mock::with(|h| h.settled["key:k1"]), 110);
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], body(Some(500))),
        BodyAction::Continue
    ));
}

#[test]
fn strict_writes_a_cap_into_a_request_without_one() {
    mock::reset();
    key("k1", "ml");
    let p =
        policy(json!({"defaultMaxTokens": 77, "limits": [{"tokens": 100000, "period": "week"}]}));
    match p.on_request_body(&ctx("m"), &vec![], body(None)) {
        BodyAction::Replace(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["max_tokens"], 77);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn team_budgets_and_a_keys_own_budgets() {
    mock::reset();
    key("k1", "ml");
    let p = policy(json!({"limits": [
        {"scope": "key", "tokens": 1000000, "period": "month"},
        {"scope": "team", "tokens": 500, "period": "month"}
    ]}));
    let b = body(Some(100));
    let n = b.len() as u64 + 100;
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], b.clone()),
        BodyAction::Continue
    ));
    assert_eq!(mock::with(|h| h.budgets["team:ml"]), n);
    assert_eq!(mock::with(|h| h.budgets["key:k1"]), n);
    // The key's own budgets replace the configured key limit.
    mock::with(|h| {
        h.attrs.insert(
            "apiKey.budgets".into(),
            r#"[{"tokens": 5, "period": "day"}]"#.into(),
        )
    });
    match p.on_request_body(&ctx("m"), &vec![], b) {
        BodyAction::Respond(r) => assert!(r.message.contains("5 tokens per day"), "{}", r.message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_key_no_budget_and_client_headers_are_dropped() {
    mock::reset();
    let p = policy(json!({"limits": [{"usd": 1, "period": "day"}]}));
    match p.on_request_headers(&ctx("m"), &vec![(REMAINING_USD.into(), "999".into())]) {
        HeadersAction::Continue(ops) => assert!(ops.remove.contains(&REMAINING_USD.to_owned())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn estimate_reserves_the_recent_average() {
    mock::reset();
    key("k1", "ml");
    let p =
        policy(json!({"reservation": "estimate", "limits": [{"tokens": 100000, "period": "day"}]}));
    let b = body(Some(4000));
    let input = (b.len() as u64).div_ceil(4);
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], b.clone()),
        BodyAction::Continue
    ));
    // No history yet: the cap.
    assert_eq!(mock::with(|h| h.budgets["key:k1"]), input + 4000);
    complete(&p, 100);
    let settled = mock::with(|h| h.budgets["key:k1"]);
    assert!(matches!(
        p.on_request_body(&ctx("m"), &vec![], b),
        BodyAction::Continue
    ));
    assert_eq!(mock::with(|h| h.budgets["key:k1"]), settled + input + 100);
}

#[test]
fn config_errors() {
    for bad in [
        json!({"timeZone": "Mars/Base"}),
        json!({"limits": [{"usd": 1, "tokens": 2, "period": "day"}]}),
        json!({"limits": [{"usd": 1, "period": "year"}]}),
        json!({"limits": [{"usd": 1, "period": "day", "scope": "a.b"}]}),
        json!({"reservationTimeout": "soon"}),
    ] {
        assert!(
            Budget::validate(&json!({ "budget": bad })).is_err(),
            "{bad}"
        );
    }
    assert!(Budget::validate(
        &json!({"budget": {"timeZone": "Europe/Paris", "reservationTimeout": "2s"}})
    )
    .is_ok());
}
