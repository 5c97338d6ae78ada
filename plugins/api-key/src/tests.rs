//! Hook-level tests against the SDK's MockHost.

use super::*;
use serde_json::json;
use sluice_sdk::host::mock;

const ALICE: &str = "sk-alice-0123456789";
const BOB: &str = "sk-bob-abcdef";

fn policy(cfg: Value) -> ApiKey {
    mock::reset();
    let cfg = json!({ "apiKey": cfg });
    ApiKey::validate(&cfg).unwrap();
    ApiKey::new(cfg).unwrap()
}

fn keys(mode: &str) -> ApiKey {
    let bob_hash = format!("sha256:{}", hex::encode(config::digest(BOB)).to_uppercase());
    policy(json!({
        "mode": mode,
        "keys": [
            {"key": ALICE, "metadata": {"user": "alice", "team": "platform", "level": 3},
             "allowedModels": ["claude-sonnet-*", "gpt-5*"]},
            {"keyHash": bob_hash, "metadata": {"user": "bob"}},
        ]
    }))
}

fn ctx(model: Option<&str>) -> RequestContext {
    RequestContext {
        request_id: "r1".into(),
        route: "r".into(),
        backend: "b".into(),
        provider: Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/v1/messages".into(),
        query: None,
        client_ip: "10.1.2.3".into(),
        model: model.map(str::to_owned),
        streaming: false,
    }
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn attr(k: &str) -> Option<String> {
    mock::with(|h| h.attrs.get(k).cloned())
}

/// `Ok(removed headers)` when passed, `Err(status)` when refused.
fn run(p: &ApiKey, headers: &[(&str, &str)]) -> Result<Vec<String>, u16> {
    match p.on_request_headers(&ctx(None), &h(headers)) {
        HeadersAction::Continue(ops) | HeadersAction::NeedBody(ops)
            if format!("{ops:?}").contains("authorization") =>
        {
            Ok(vec!["authorization".to_owned()])
        }
        HeadersAction::Continue(_) | HeadersAction::NeedBody(_) => Ok(vec![]),
        HeadersAction::Respond(r) => Err(r.status),
    }
}

#[test]
fn strict_accepts_known_keys_and_publishes_metadata() {
    let p = keys("strict");
    let auth = format!("Bearer {ALICE}");
    assert_eq!(
        run(&p, &[("authorization", &auth)]),
        Ok(vec!["authorization".into()])
    );
    assert_eq!(attr("apiKey.user").as_deref(), Some("alice"));
    assert_eq!(attr("apiKey.team").as_deref(), Some("platform"));
    assert_eq!(attr("apiKey.level").as_deref(), Some("3"));
    let meta: Value = serde_json::from_str(&attr("apiKey.metadata").unwrap()).unwrap();
    assert_eq!(
        meta,
        json!({"user": "alice", "team": "platform", "level": 3})
    );
    // The keyHash key (upper-case hex accepted).
    let auth = format!("Bearer {BOB}");
    assert!(run(&p, &[("authorization", &auth)]).is_ok());
    assert_eq!(attr("apiKey.user").as_deref(), Some("bob"));
}

#[test]
fn strict_refuses_missing_unknown_and_hostile() {
    let p = keys("strict");
    assert_eq!(run(&p, &[]), Err(401));
    assert_eq!(run(&p, &[("authorization", "Bearer sk-nobody")]), Err(401));
    // A prefix of a real key is a different key.
    let prefix = format!("Bearer {}", &ALICE[..ALICE.len() - 1]);
    assert_eq!(run(&p, &[("authorization", &prefix)]), Err(401));
    // Two headers: refused even when one is valid.
    let good = format!("Bearer {ALICE}");
    assert_eq!(
        run(&p, &[("authorization", &good), ("authorization", &good)]),
        Err(401)
    );
    // Another scheme, or an empty key.
    assert_eq!(
        run(&p, &[("authorization", &format!("Basic {ALICE}"))]),
        Err(401)
    );
    assert_eq!(run(&p, &[("authorization", "Bearer   ")]), Err(401));
    assert_eq!(attr("apiKey.user"), None);
}

#[test]
fn scheme_case_and_whitespace_are_tolerated() {
    let p = keys("strict");
    assert!(run(&p, &[("authorization", &format!("bearer {ALICE}"))]).is_ok());
    assert!(run(&p, &[("authorization", &format!("  BEARER \t{ALICE}  "))]).is_ok());
    // No separator after the scheme: not a bearer credential.
    assert_eq!(
        run(&p, &[("authorization", &format!("Bearer{ALICE}"))]),
        Err(401)
    );
}

#[test]
fn optional_and_permissive_modes() {
    let p = keys("optional");
    assert_eq!(run(&p, &[]), Ok(vec![]));
    assert_eq!(run(&p, &[("authorization", "Bearer sk-nobody")]), Err(401));
    let p = keys("permissive");
    assert_eq!(run(&p, &[]), Ok(vec![]));
    // Unknown key: passes, header untouched (it may be a provider key).
    assert_eq!(
        run(&p, &[("authorization", "Bearer sk-nobody")]),
        Ok(vec![])
    );
    assert_eq!(attr("apiKey.user"), None);
    assert!(
        run(&p, &[("authorization", &format!("Bearer {ALICE}"))])
            .unwrap()
            .len()
            == 1
    );
    assert_eq!(attr("apiKey.user").as_deref(), Some("alice"));
}

#[test]
fn default_mode_is_optional() {
    let p = policy(json!({"keys": [{"key": ALICE}]}));
    assert_eq!(p.s.mode, Mode::Optional);
    assert_eq!(run(&p, &[]), Ok(vec![]));
}

#[test]
fn header_location_with_and_without_prefix() {
    let p = policy(
        json!({"mode": "strict", "location": {"header": {"name": "X-Api-Key"}},
        "keys": [{"key": ALICE}]}),
    );
    match p.on_request_headers(&ctx(None), &h(&[("x-api-key", ALICE)])) {
        HeadersAction::Continue(ops) => assert!(format!("{ops:?}").contains("x-api-key")),
        _ => panic!("accepted"),
    }
    assert_eq!(
        run(&p, &[("authorization", &format!("Bearer {ALICE}"))]),
        Err(401)
    );
    let p = policy(json!({"mode": "strict",
        "location": {"header": {"name": "x-key", "prefix": "Key "}}, "keys": [{"key": ALICE}]}));
    assert!(matches!(
        p.on_request_headers(&ctx(None), &h(&[("x-key", &format!("key {ALICE}"))])),
        HeadersAction::Continue(_)
    ));
}

#[test]
fn configs_refused_by_name() {
    let bad = |cfg: Value| ApiKey::validate(&json!({"apiKey": cfg})).unwrap_err();
    assert!(bad(json!({"keys": [{"key": "a", "keyHash": "sha256:00"}]})).contains("exactly one"));
    assert!(bad(json!({"keys": [{}]})).contains("exactly one"));
    assert!(bad(json!({"keys": [{"keyHash": "abc"}]})).contains("sha256:<hex>"));
    assert!(bad(json!({"keys": [{"keyHash": "sha256:abcd"}]})).contains("32 bytes"));
    assert!(bad(json!({"keys": [{"key": "a"}, {"keyHash": format!("sha256:{}", hex::encode(config::digest("a")))}]})).contains("same key"));
    assert!(
        bad(json!({"keys": [], "location": {"cookie": {"name": "k"}}}))
            .contains("`cookie` is not supported")
    );
    assert!(bad(json!({"keys": [], "mode": "lenient"})).contains("lenient"));
    assert!(bad(json!({"keys": [{"key": "a", "metadata": [1]}]})).contains("metadata"));
    assert!(bad(json!({"keys": [{"key": ""}]})).contains("empty"));
    assert!(bad(json!({"keys": [], "extra": 1})).contains("extra"));
}

#[test]
fn lookup_checks_every_key() {
    let p = keys("strict");
    assert!(
        lookup(&p.s.keys, &config::digest(ALICE)).is_some_and(|e| e.metadata["user"] == "alice")
    );
    assert!(lookup(&p.s.keys, &config::digest(BOB)).is_some_and(|e| e.metadata["user"] == "bob"));
    assert!(lookup(&p.s.keys, &config::digest("x")).is_none());
    assert!(lookup(&[], &config::digest("x")).is_none());
}

fn body_status(p: &ApiKey, model: Option<&str>, body: Value) -> Option<u16> {
    match p.on_request_body(&ctx(model), &h(&[]), body.to_string().into_bytes()) {
        BodyAction::Continue => None,
        BodyAction::Respond(r) => Some(r.status),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn allowed_models_checked_on_the_body() {
    let p = keys("strict");
    assert!(p.hooks().contains(Hooks::REQUEST_BODY));
    // A restricted key asks for the body; an unrestricted one does not.
    let alice = h(&[("authorization", &format!("Bearer {ALICE}"))]);
    let bob = h(&[("authorization", &format!("Bearer {BOB}"))]);
    assert!(matches!(
        p.on_request_headers(&ctx(None), &bob),
        HeadersAction::Continue(_)
    ));
    mock::reset();
    assert!(matches!(
        p.on_request_headers(&ctx(None), &alice),
        HeadersAction::NeedBody(_)
    ));
    let m = |name: &str| json!({"model": name});
    assert_eq!(
        body_status(&p, Some("claude-sonnet-4-5"), m("claude-sonnet-4-5")),
        None
    );
    assert_eq!(body_status(&p, Some("gpt-5-mini"), m("gpt-5-mini")), None);
    assert_eq!(
        body_status(&p, Some("claude-opus-4"), m("claude-opus-4")),
        Some(403)
    );
    // `model` twice (one escaped): refused, whichever the provider reads.
    let twice = br#"{"model":"claude-sonnet-4-5","mod\u0065l":"claude-opus-4"}"#.to_vec();
    assert!(matches!(
        p.on_request_body(&ctx(None), &h(&[]), twice),
        BodyAction::Respond(r) if r.status == 403
    ));
    // Context and body disagree: both must be allowed.
    assert_eq!(
        body_status(&p, Some("claude-sonnet-4"), m("claude-opus-4")),
        Some(403)
    );
    assert_eq!(body_status(&p, None, json!({})), Some(403));
    // Bob has no restriction: nothing is checked (a new request).
    mock::reset();
    run(&p, &[("authorization", &format!("Bearer {BOB}"))]).unwrap();
    assert_eq!(body_status(&p, Some("anything"), m("anything")), None);
}

#[test]
fn empty_allowed_models_denies_all() {
    let p = policy(json!({"keys": [{"key": ALICE, "allowedModels": []}]}));
    run(&p, &[("authorization", &format!("Bearer {ALICE}"))]).unwrap();
    assert_eq!(body_status(&p, Some("m"), json!({"model": "m"})), Some(403));
}

#[test]
fn globs() {
    use models::glob;
    assert!(glob("claude-sonnet-*", "claude-sonnet-4-5"));
    assert!(glob("gpt-5*", "gpt-5"));
    assert!(glob("*", ""));
    assert!(glob("a*b*c", "axxbyyc"));
    assert!(!glob("a*b*c", "axxbyy"));
    assert!(!glob("gpt-5", "gpt-5-mini"));
    assert!(!glob("claude-sonnet-*", "xclaude-sonnet-4"));
}

#[test]
fn body_models() {
    use models::{body_model, BodyModel};
    assert_eq!(
        body_model(br#"{"model":"m","x":{"model":1}}"#),
        BodyModel::Named("m".into())
    );
    assert_eq!(body_model(br#"{"model":7}"#), BodyModel::None);
    assert_eq!(body_model(b"[1]"), BodyModel::None);
    assert_eq!(
        body_model(br#"{"model":"a","model":"b"}"#),
        BodyModel::Repeated
    );
    assert_eq!(
        body_model(br#"{"mod\u0065l":"a","model":"b"}"#),
        BodyModel::Repeated
    );
}

/// A runtime key as the host's key store writes it.
fn store_runtime(secret: &str, record: Value) {
    host::kv_set(
        &runtime::kv_key(&config::digest(secret)),
        record.to_string().as_bytes(),
        std::time::Duration::from_secs(60),
    );
}

#[test]
fn runtime_keys_only_when_enabled_and_config_keys_win() {
    const CAROL: &str = "sk-sluice-carol";
    // Without `runtimeKeys`, a stored runtime key is unknown.
    let p = keys("strict");
    store_runtime(CAROL, json!({"id": "key_c", "metadata": {"user": "carol"}}));
    assert_eq!(
        run(&p, &[("authorization", &format!("Bearer {CAROL}"))]),
        Err(401)
    );

    let p = policy(json!({"mode": "strict", "runtimeKeys": true,
        "keys": [{"key": ALICE, "metadata": {"user": "alice"},
                  "budgets": [{"usd": 25, "period": "month"}]}]}));
    store_runtime(
        CAROL,
        json!({"id": "key_c", "metadata": {"user": "carol", "team": "t"},
               "budgets": [{"tokens": 1000, "period": "day"}]}),
    );
    // A runtime record with Alice's hash: the config key wins.
    store_runtime(
        ALICE,
        json!({"id": "key_forged", "metadata": {"user": "mallory"}}),
    );
    assert!(run(&p, &[("authorization", &format!("Bearer {CAROL}"))]).is_ok());
    assert_eq!(attr("apiKey.user").as_deref(), Some("carol"));
    assert_eq!(attr("apiKey.id").as_deref(), Some("key_c"));
    assert_eq!(
        attr("apiKey.budgets").as_deref(),
        Some(r#"[{"tokens":1000,"period":"day"}]"#)
    );
    assert!(run(&p, &[("authorization", &format!("Bearer {ALICE}"))]).is_ok());
    assert_eq!(attr("apiKey.user").as_deref(), Some("alice"));
    let alice_id = hex::encode(&config::digest(ALICE)[..8]);
    assert_eq!(attr("apiKey.id"), Some(alice_id));
    assert_eq!(
        attr("apiKey.budgets").as_deref(),
        Some(r#"[{"usd":25.0,"period":"month"}]"#)
    );
    // Revoked: refused at once.
    store_runtime(CAROL, json!({"revoked": true}));
    assert_eq!(
        run(&p, &[("authorization", &format!("Bearer {CAROL}"))]),
        Err(401)
    );
}

#[test]
fn runtime_keys_may_stand_alone_and_budgets_are_checked() {
    assert!(ApiKey::validate(&json!({"apiKey": {"runtimeKeys": true}})).is_ok());
    assert!(ApiKey::validate(&json!({"apiKey": {"mode": "strict"}})).is_err());
    for bad in [
        json!([{"usd": 1, "tokens": 1, "period": "day"}]),
        json!([{"usd": 1, "period": "year"}]),
        json!([{"usd": 1, "period": "day", "scope": "team"}]),
    ] {
        let cfg = json!({"apiKey": {"keys": [{"key": "k", "budgets": bad}]}});
        assert!(ApiKey::validate(&cfg).is_err(), "{cfg}");
    }
}

#[test]
fn a_restricted_key_may_list_models() {
    let p = keys("strict");
    let auth = format!("Bearer {ALICE}");
    let mut c = ctx(None);
    c.method = "GET".into();
    c.path = "/v1/models".into();
    match p.on_request_headers(&c, &h(&[("authorization", &auth)])) {
        HeadersAction::Continue(_) => {}
        other => panic!("{other:?}"),
    }
    // The host filters the listing by this.
    assert_eq!(
        attr(ALLOWED_ATTR).as_deref(),
        Some(r#"["claude-sonnet-*","gpt-5*"]"#)
    );
    assert!(matches!(
        p.on_request_body(&c, &h(&[]), Vec::new()),
        BodyAction::Continue
    ));
}
