//! Hook-level tests against the SDK's MockHost.

use super::*;
use serde_json::{json, Value};
use sluice_sdk::host::mock;
use sluice_sdk::rt::parse_config;

fn policy(rules: Value) -> Authorization {
    mock::reset();
    let cfg = json!({"authorization": {"rules": rules}});
    let cfg = parse_config::<Authorization>(&cfg.to_string()).unwrap();
    Authorization::validate(&cfg).unwrap();
    Authorization::new(cfg).unwrap()
}

fn invalid(cfg: Value) -> String {
    Authorization::validate(&cfg).expect_err("config must be refused")
}

fn ctx(provider: Provider) -> RequestContext {
    RequestContext {
        request_id: "r1".into(),
        route: "r".into(),
        backend: "claude-agent".into(),
        provider,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/v1/messages".into(),
        query: None,
        client_ip: "10.1.2.3".into(),
        model: None,
        streaming: false,
    }
}

fn claims(c: Value) {
    mock::with(|h| h.attrs.insert(CLAIMS_ATTR.into(), c.to_string()));
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The verdict at the headers: `true` allowed, `false` a 403.
fn at_headers(p: &Authorization, headers: &Headers) -> bool {
    match p.on_request_headers(&ctx(Provider::Anthropic), headers) {
        HeadersAction::Continue(_) => true,
        HeadersAction::Respond(r) => {
            assert_eq!(r.status, 403);
            assert_eq!(r.message, REFUSAL);
            false
        }
        HeadersAction::NeedBody(_) => panic!("decided at the headers, no body needed"),
    }
}

/// The verdict on `body`, after the headers asked for it.
fn at_body(p: &Authorization, body: &[u8]) -> bool {
    let c = ctx(Provider::Anthropic);
    assert!(matches!(
        p.on_request_headers(&c, &Vec::new()),
        HeadersAction::NeedBody(_)
    ));
    match p.on_request_body(&c, &Vec::new(), body.to_vec()) {
        BodyAction::Continue => true,
        BodyAction::Respond(r) => {
            assert_eq!(r.status, 403);
            assert_eq!(r.message, REFUSAL);
            false
        }
        BodyAction::Replace(_) => panic!("never rewrites"),
    }
}

fn model(m: &str) -> Vec<u8> {
    json!({"model": m, "max_tokens": 8, "messages": []})
        .to_string()
        .into_bytes()
}

// ---- config -------------------------------------------------------------

#[test]
fn agentgateway_rule_forms_parse() {
    let p = policy(json!([
        "request.method == 'GET'",
        {"allow": "jwt.sub == 'a'"},
        {"deny": "llm.requestModel == 'x'"},
        {"require": "has(jwt.team)"}
    ]));
    let modes: Vec<_> = p.config.rules.iter().map(|r| r.mode).collect();
    assert_eq!(modes, [Mode::Allow, Mode::Allow, Mode::Deny, Mode::Require]);
    assert!(p.config.needs_body());
    assert!(p.hooks().contains(Hooks::REQUEST_BODY));
}

use rule::Mode;

#[test]
fn malformed_configs_name_the_key() {
    let cases = [
        (
            json!({"authorization": {"rule": []}}),
            "unknown key `authorization.rule`",
        ),
        (
            json!({"authorization": {}}),
            "`authorization.rules` is required",
        ),
        (json!({"authorization": {"rules": "x"}}), "must be a list"),
        (
            json!({"authorization": {"rules": [1]}}),
            "`authorization.rules[0]` must be a CEL string",
        ),
        (
            json!({"authorization": {"rules": ["true", {"alow": "true"}]}}),
            "`authorization.rules[1]`: unknown key `alow`",
        ),
        (
            json!({"authorization": {"rules": [{"allow": "true", "deny": "false"}]}}),
            "exactly one of allow, deny, require",
        ),
        (json!({"authorization": {"rules": [{}]}}), "exactly one of"),
        (
            json!({"authorization": {"rules": [{"deny": 3}]}}),
            "`authorization.rules[0].deny` must be a CEL expression",
        ),
        (
            json!({"authorization": {"rules": [{"deny": "jwt.sub =="}]}}),
            "`authorization.rules[0].deny`: invalid CEL",
        ),
    ];
    for (cfg, want) in cases {
        let err = invalid(cfg.clone());
        assert!(err.contains(want), "{cfg}: want `{want}` in `{err}`");
    }
}

/// Whatever Sluice cannot provide is refused at load, never a silent false.
#[test]
fn unprovidable_variables_and_functions_are_config_errors() {
    let cases = [
        (
            "response.code == 200",
            "`response` is an agentgateway variable",
        ),
        ("source.port == 1", "`source.port` is not available"),
        ("llm.inputTokens > 10", "`llm.inputTokens` is not available"),
        ("request.body == ''", "`request.body` is not available"),
        ("apiKey.key == 'x'", "`apiKey` is an agentgateway variable"),
        ("jtw.sub == 'x'", "unknown variable `jtw`"),
        (
            "cidr('10.0.0.0/8').containsIP(source.address)",
            "function `containsIP` is not available",
        ),
        (
            "request[request.method] == 'x'",
            "needs a literal string key",
        ),
        (
            "request['bogus'] == 'x'",
            "`request.bogus` is not available",
        ),
        ("has(llm.outputTokens)", "`llm.outputTokens`"),
        ("[1].exists(x, y == 1)", "unknown variable `y`"),
    ];
    for (rule, want) in cases {
        let err = invalid(json!({"authorization": {"rules": [{"allow": rule}]}}));
        assert!(err.contains("`authorization.rules[0].allow`"), "{err}");
        assert!(err.contains(want), "{rule}: want `{want}` in `{err}`");
    }
    // And what it provides passes.
    for rule in [
        "request.headers['x-team'] == 'a' && request.host == 'h'",
        "request.pathAndQuery.startsWith('/v1') && source.address == '1.2.3.4'",
        "jwt['groups'].exists(g, g == 'admin') && jwt.sub.lowerAscii() == 'a'",
        "llm.requestModel in ['a', 'b'] && llm.streaming && llm.provider == 'anthropic'",
        "llmRequest.messages.size() < 10 && backend.name == 'b'",
        "type(jwt.sub) == string",
    ] {
        policy(json!([{ "allow": rule }]));
    }
}

/// Every function the check lets through exists in the environment.
#[test]
fn every_listed_function_evaluates() {
    let ctx = cel::Context::with_env(rule::env());
    for (name, sample) in check::FUNCTIONS {
        let p = rule::compile(sample).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            p.execute(&ctx),
            Ok(cel::Value::Bool(true)),
            "{name}: {sample}"
        );
        check::check(&p.expression().expr).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ---- semantics ----------------------------------------------------------

#[test]
fn no_rules_allows_and_asks_for_nothing() {
    let p = policy(json!([]));
    assert_eq!(p.hooks(), Hooks::empty());
}

#[test]
fn deny_beats_allow() {
    let p = policy(json!([
        {"allow": "request.method == 'POST'"},
        {"deny": "request.headers['x-user'] == 'mallory'"}
    ]));
    assert!(at_headers(&p, &h(&[("x-user", "alice")])));
    assert!(!at_headers(&p, &h(&[("x-user", "mallory")])));
}

#[test]
fn allow_list_refuses_what_it_does_not_allow() {
    let p = policy(json!([
        "request.headers['x-team'] == 'a'",
        "request.headers['x-team'] == 'b'"
    ]));
    assert!(at_headers(&p, &h(&[("x-team", "b")])));
    assert!(!at_headers(&p, &h(&[("x-team", "c")])));
    // The header missing is an evaluation error: not an allow.
    assert!(!at_headers(&p, &Vec::new()));
}

#[test]
fn deny_list_allows_the_rest() {
    let p = policy(json!([{"deny": "source.address == '10.9.9.9'"}]));
    assert!(at_headers(&p, &Vec::new()));
}

#[test]
fn require_must_hold_even_when_allowed() {
    let p = policy(json!([{"allow": "true"}, {"require": "jwt.team == 'ml'"}]));
    claims(json!({"sub": "a", "team": "ml"}));
    assert!(at_headers(&p, &Vec::new()));
    claims(json!({"sub": "a", "team": "web"}));
    assert!(!at_headers(&p, &Vec::new()));
}

/// A deny rule that cannot be evaluated refuses (Sluice's one deviation
/// from agentgateway); guarded with `has`, it denies only when present.
#[test]
fn failing_deny_refuses_unless_guarded() {
    let p = policy(json!([{"deny": "jwt.group == 'interns'"}]));
    claims(json!({"sub": "a"}));
    assert!(!at_headers(&p, &Vec::new()), "claim missing");
    let p = policy(json!([{"deny": "has(jwt.group) && jwt.group == 'interns'"}]));
    claims(json!({"sub": "a"}));
    assert!(at_headers(&p, &Vec::new()));
    claims(json!({"sub": "a", "group": "interns"}));
    assert!(!at_headers(&p, &Vec::new()));
}

#[test]
fn claims_rules() {
    let p = policy(json!([{"allow": "jwt.email.endsWith('@example.com')"}]));
    claims(json!({"sub": "a", "email": "dev@example.com"}));
    assert!(at_headers(&p, &Vec::new()));
    claims(json!({"sub": "a", "email": "dev@example.com.evil"}));
    assert!(!at_headers(&p, &Vec::new()));
    // No token at all (no attribute): `jwt` is absent, not empty.
    mock::reset();
    assert!(!at_headers(&p, &Vec::new()));
    // A JWT without the claim.
    claims(json!({"sub": "a"}));
    assert!(!at_headers(&p, &Vec::new()));
}

#[test]
fn request_variables() {
    let p = policy(json!([
        "request.method == 'POST' && request.path == '/v1/messages' && source.address == '10.1.2.3' && backend.name == 'claude-agent' && request.host == 'gw.example' && request.headers['x-a'] == '1, 2'"
    ]));
    assert_eq!(p.reads_headers(), None);
    assert!(at_headers(
        &p,
        &h(&[("host", "gw.example"), ("x-a", "1"), ("X-A", "2")])
    ));
    let p = policy(json!(["request.host == 'gw.example'"]));
    assert_eq!(p.reads_headers(), Some(vec!["host".to_owned()]));
    let p = policy(json!(["jwt.sub == 'a'"]));
    assert_eq!(p.reads_headers(), Some(vec![]));
}

// ---- the model ------------------------------------------------------------

fn model_policy() -> Authorization {
    policy(json!([
        {"allow": "llm.requestModel.startsWith('claude-haiku')"},
        {"allow": "llm.requestModel == 'claude-sonnet-4-5'"},
        {"deny": "llm.requestModel == 'claude-haiku-evil'"}
    ]))
}

#[test]
fn model_rules_decide_on_the_body() {
    let p = model_policy();
    assert!(at_body(&p, &model("claude-haiku-4-5")));
    assert!(at_body(&p, &model("claude-sonnet-4-5")));
    assert!(!at_body(&p, &model("claude-opus-4-1")));
    assert!(!at_body(&p, &model("claude-haiku-evil")), "deny wins");
}

/// Spellings a client might try to slip a model past the rules with.
#[test]
fn hostile_model_spellings() {
    let p = model_policy();
    // Case and whitespace variants are other strings: an allow list
    // does not match them.
    assert!(!at_body(&p, &model("Claude-Sonnet-4-5")));
    assert!(!at_body(&p, &model(" claude-sonnet-4-5")));
    assert!(!at_body(&p, &model("claude-sonnet-4-5\n")));
    // Escapes decode as the provider decodes them: in the key and the value.
    assert!(!at_body(
        &p,
        br#"{"mod\u0065l": "claude-haiku-\u0065vil", "max_tokens": 8}"#
    ));
    assert!(at_body(&p, br#"{"mod\u0065l": "claude-haiku-4-5"}"#));
    // A repeated key, at the top or deeper: not read, so refused.
    assert!(!at_body(
        &p,
        br#"{"model": "claude-haiku-4-5", "model": "claude-opus-4-1"}"#
    ));
    assert!(!at_body(
        &p,
        br#"{"model": "claude-haiku-4-5", "metadata": {"a": 1, "a": 2}}"#
    ));
    // No model, a non-string model, not JSON, trailing data, empty.
    assert!(!at_body(&p, br#"{"max_tokens": 8}"#));
    assert!(!at_body(&p, br#"{"model": ["claude-haiku-4-5"]}"#));
    assert!(!at_body(&p, b"model=claude-haiku-4-5"));
    assert!(!at_body(&p, br#"{"model": "claude-haiku-4-5"} {}"#));
    assert!(!at_body(&p, b""));
}

/// A deny list on the model refuses a body it cannot read.
#[test]
fn model_deny_list_fails_closed() {
    let p = policy(json!([{"deny": "llm.requestModel == 'claude-opus-4-1'"}]));
    assert!(at_body(&p, &model("claude-sonnet-4-5")));
    assert!(!at_body(&p, &model("claude-opus-4-1")));
    assert!(!at_body(&p, br#"{"max_tokens": 8}"#), "no model");
    assert!(!at_body(
        &p,
        br#"{"model": "claude-sonnet-4-5", "model": "claude-opus-4-1"}"#
    ));
    // Guarded, a request with no model (GET /v1/models) passes.
    let p =
        policy(json!([{"deny": "has(llm.requestModel) && llm.requestModel == 'claude-opus-4-1'"}]));
    assert!(at_body(&p, b""));
    assert!(!at_body(&p, &model("claude-opus-4-1")));
}

#[test]
fn llm_request_and_streaming() {
    let p = policy(json!([
        {"require": "llmRequest.max_tokens <= 1024"},
        {"deny": "llm.streaming"}
    ]));
    assert!(at_body(&p, &model("m")));
    assert!(!at_body(&p, br#"{"model": "m", "max_tokens": 4096}"#));
    assert!(!at_body(
        &p,
        br#"{"model": "m", "max_tokens": 8, "stream": true}"#
    ));
}

/// `llmRequest` is bound only for rules that read it; `llm` always.
#[test]
fn llm_request_bound_only_when_read() {
    let p = policy(json!([{"allow": "llm.requestModel == 'm'"}]));
    assert!(!p.config.needs_llm_request());
    assert!(at_body(&p, &model("m")));
    let p = policy(json!([{"allow": "has(llmRequest.model)"}]));
    assert!(p.config.needs_llm_request());
    assert!(at_body(&p, &model("m")));
}

#[test]
fn refusals_are_logged_without_values() {
    let p = policy(json!([{"deny": "jwt.email == 'x@y.z'"}]));
    claims(json!({"email": "x@y.z"}));
    assert!(!at_headers(&p, &Vec::new()));
    let logs = mock::with(|h| h.logs.clone());
    let line = &logs.last().unwrap().1;
    assert!(line.contains("rules[0] denies"), "{line}");
    assert!(!line.contains("x@y.z"), "{line}");
    // A failing rule's reason names what the rule reads, never the values
    // (CEL's own messages quote them).
    let p = policy(json!([{"deny": "request.headers['x-n'] + 1 > 3"}]));
    assert!(!at_headers(&p, &h(&[("x-n", "secret-value-42")])));
    let line = mock::with(|h| h.logs.last().unwrap().1.clone());
    assert!(line.contains("rules[0] (deny) failed"), "{line}");
    assert!(!line.contains("secret-value-42"), "{line}");
    let p = policy(json!([{"require": "true"}, {"allow": "jwt.team == 'a'"}]));
    claims(json!({"sub": "a"}));
    assert!(!at_headers(&p, &Vec::new()));
    let line = mock::with(|h| h.logs.last().unwrap().1.clone());
    assert!(line.contains("rules[1] failed: no key `team`"), "{line}");
}
