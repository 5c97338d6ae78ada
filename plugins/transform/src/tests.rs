//! Native tests of the whole policy against the SDK's mock host.

use super::*;
use serde_json::{json, Value};
use sluice_sdk::host::mock;
use sluice_sdk::rt::parse_config;

const GUIDE_BODY: &str = r#"toJson(json(request.body).filterKeys(k, k != "context_management"))"#;

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "req-42".into(),
        route: "claude-agent".into(),
        backend: "claude-agent".into(),
        provider: Provider::Anthropic,
        kind: AiKind::Messages,
        method: "POST".into(),
        path: "/claude/v1/messages".into(),
        query: Some("beta=true".into()),
        client_ip: "127.0.0.1".into(),
        model: None,
        streaming: false,
    }
}

fn policy(cfg: Value) -> Transform {
    let c = parse_config::<Transform>(&cfg.to_string()).unwrap();
    Transform::validate(&c).unwrap();
    Transform::new(c).unwrap()
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

type Ops = sluice_sdk::bindings::sluice::policy::types::HeaderOps;

fn req_ops(a: HeadersAction) -> (Ops, bool) {
    match a {
        HeadersAction::Continue(o) => (o, false),
        HeadersAction::NeedBody(o) => (o, true),
        other => panic!("unexpected {other:?}"),
    }
}

fn resp_ops(a: ResponseHeadersAction) -> Ops {
    match a {
        ResponseHeadersAction::Continue(o) => o,
        other => panic!("unexpected {other:?}"),
    }
}

fn body_of(a: BodyAction) -> Vec<u8> {
    match a {
        BodyAction::Replace(b) => b,
        other => panic!("unexpected {other:?}"),
    }
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Deterministic filler prose, as the test kit's `claude_code_request()`.
fn filler(topic: &str, len: usize) -> String {
    const WORDS: &[&str] = &[
        "Use",
        "the",
        "tool",
        "only",
        "when",
        "it",
        "is",
        "needed;",
        "prefer",
        "reading",
        "files",
        "before",
        "editing",
        "them,",
        "keep",
        "changes",
        "small,",
        "and",
        "explain",
        "what",
        "you",
        "did.",
        "Never",
        "guess",
        "paths:",
        "list",
        "directories",
        "first.",
    ];
    let mut s = format!("{topic}: ");
    let mut i = 0;
    while s.len() < len {
        s.push_str(WORDS[i % WORDS.len()]);
        s.push(' ');
        i += 1;
    }
    s
}

/// A ~50 KB Claude Code `/v1/messages` body with its members in the real
/// client's (non-alphabetical) order, built as text so the order is exact.
fn claude_code_body() -> String {
    let tools: Vec<Value> = [
        "Task", "Bash", "Glob", "Grep", "ExitPlanMode", "Read", "Edit", "Write", "NotebookEdit",
        "WebFetch", "TodoWrite", "WebSearch",
    ]
    .iter()
    .map(|name| {
        json!({"name": name, "description": filler(name, 2600),
               "input_schema": {"type": "object",
                                "properties": {"a": {"type": "string", "description": filler("a", 120)}},
                                "required": ["a"], "additionalProperties": false,
                                "$schema": "http://json-schema.org/draft-07/schema#"}})
    })
    .collect();
    let members: Vec<(&str, Value)> = vec![
        ("model", json!("claude-sonnet-4-5-20250929")),
        (
            "messages",
            json!([
            {"role": "user", "content": [
                {"type": "text", "text": format!("<system-reminder>\n{}\n</system-reminder>", filler("context", 1500))},
                {"type": "text", "text": "Reply with exactly: pong", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "The user is working in /home/dev/project on Linux."}]),
        ),
        (
            "system",
            json!([
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-cli", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": filler("Instructions", 9000), "cache_control": {"type": "ephemeral"}}]),
        ),
        ("tools", Value::Array(tools)),
        (
            "metadata",
            json!({"user_id": "user_3c9a_account__session_5f0c2a3e"}),
        ),
        ("max_tokens", json!(128000)),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 31999}),
        ),
        (
            "context_management",
            json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}),
        ),
        ("output_config", json!({"effort": "high"})),
        ("stream", json!(true)),
    ];
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), v))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Top-level keys of a JSON object text, in order.
fn keys_in_order(text: &str) -> Vec<String> {
    let e: Vec<(String, Box<serde_json::value::RawValue>)> = {
        let v: json::JsonObject = match json::parse(text) {
            Ok(b) => b
                .as_ref()
                .downcast_ref::<json::JsonObject>()
                .expect("object")
                .clone(),
            Err(e) => panic!("{e}"),
        };
        v.entries()
            .iter()
            .map(|(k, r)| (k.inner().to_owned(), r.clone()))
            .collect()
    };
    e.into_iter().map(|(k, _)| k).collect()
}

fn eval(src: &str, vars: &Vars<'_>) -> Result<String, String> {
    expr::Expression::compile(src)?
        .eval_bytes(vars)
        .map(|b| String::from_utf8(b).unwrap())
}

// ---- header modifiers and templates ----

#[test]
fn guide_transformations_headers() {
    mock::reset();
    let p = policy(json!({
        "requestHeaderModifier": {"set": {"X-Gateway-Version": "1.2", "X-Request-ID": "\\\\$(request.id)"}},
        "responseHeaderModifier": {"add": {"X-Gateway-Processed": "true"}}
    }));
    let hooks = p.hooks();
    assert!(hooks.contains(Hooks::REQUEST_HEADERS | Hooks::RESPONSE_HEADERS));
    assert!(!hooks.intersects(Hooks::REQUEST_BODY | Hooks::RESPONSE_BODY));
    let (ops, need_body) = req_ops(p.on_request_headers(&ctx(), &h(&[("content-length", "10")])));
    assert!(!need_body, "no body expression: the body is not requested");
    assert_eq!(
        pairs(&ops.set),
        [("x-gateway-version", "1.2"), ("x-request-id", "req-42")]
    );
    let ops = resp_ops(p.on_response_headers(&ctx(), 200, &vec![]));
    assert_eq!(pairs(&ops.add), [("x-gateway-processed", "true")]);
}

#[test]
fn every_template_variable() {
    mock::reset();
    mock::with(|m| {
        m.attrs
            .insert("auth.claims.email".into(), "dev@example.com".into());
        m.attrs.insert("auth.sub".into(), "user-7".into());
    });
    let p = policy(json!({"requestHeaderModifier": {"set": {
        "x-id": "$(request.id)", "x-email": "\\$(request.auth.claims.email)",
        "x-sub": "\\\\$(request.auth.sub)", "x-h": "$(request.header.X-Client)",
        "x-path": "$(request.path)", "x-method": "$(request.method)",
        "x-route": "$(route.name)", "x-backend": "$(backend.name)",
        "x-mixed": "v=$(request.method) $(request.path)"
    }}}));
    let reads = p.reads_headers().expect("templates name their headers");
    assert!(reads.contains(&"x-client".to_string()), "{reads:?}");
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &h(&[("x-client", "cli/1")])));
    let got: std::collections::HashMap<_, _> = pairs(&ops.set).into_iter().collect();
    assert_eq!(got["x-id"], "req-42");
    assert_eq!(got["x-email"], "dev@example.com");
    assert_eq!(got["x-sub"], "user-7");
    assert_eq!(got["x-h"], "cli/1");
    assert_eq!(got["x-path"], "/claude/v1/messages");
    assert_eq!(got["x-method"], "POST");
    assert_eq!(got["x-route"], "claude-agent");
    assert_eq!(got["x-backend"], "claude-agent");
    assert_eq!(got["x-mixed"], "v=POST /claude/v1/messages");
}

/// The issue's case: a token without `email`, a client sending its own
/// `X-Authenticated-User`. The set removes the header instead of skipping it.
#[test]
fn missing_claim_removes_the_header() {
    mock::reset();
    let p = policy(json!({"transformations": {"request": {"headers": {"set": {
        "X-Authenticated-User": "\\\\$(request.auth.claims.email)", "X-Gateway-Source": "claude-code"}}}}}));
    let spoof = h(&[("x-authenticated-user", "ceo@yourcompany.com")]);
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &spoof));
    assert_eq!(pairs(&ops.set), [("x-gateway-source", "claude-code")]);
    assert_eq!(ops.remove, ["x-authenticated-user"]);
    // An empty claim is no claim, and a half-filled value is never sent.
    mock::with(|m| {
        m.attrs.insert("auth.claims.email".into(), String::new());
    });
    let p = policy(
        json!({"requestHeaderModifier": {"set": {"x-user": "user=$(request.auth.claims.email)"}}}),
    );
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &spoof));
    assert!(ops.set.is_empty());
    assert_eq!(ops.remove, ["x-user"]);
}

#[test]
fn a_failed_add_adds_nothing() {
    mock::reset();
    let p = policy(
        json!({"requestHeaderModifier": {"add": {"x-team": "$(request.header.x-nope)", "x-ok": "1"}},
        "transformations": {"request": {"add": {"x-cel": "request.headers[\"x-nope\"]"}}}}),
    );
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    assert_eq!(pairs(&ops.add), [("x-ok", "1")]);
    assert!(ops.remove.is_empty() && ops.set.is_empty());
}

#[test]
fn response_side_removes_the_upstream_value() {
    mock::reset();
    let p = policy(json!({
        "responseHeaderModifier": {"set": {"x-user": "$(request.auth.claims.email)"}},
        "transformations": {"response": {"set": {"x-cel": "response.headers[\"x-nope\"] + \"!\""}}}
    }));
    let ops = resp_ops(p.on_response_headers(&ctx(), 200, &h(&[("x-user", "upstream")])));
    assert!(ops.set.is_empty());
    assert_eq!(ops.remove, ["x-user", "x-cel"]);
}

#[test]
fn on_missing_reject_refuses() {
    mock::reset();
    let p = policy(
        json!({"transformations": {"request": {"onMissing": "reject",
        "headers": {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}}}}),
    );
    let r = match p.on_request_headers(&ctx(), &h(&[("x-authenticated-user", "ceo@x")])) {
        HeadersAction::Respond(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(r.status, 403);
    assert!(r.message.contains("x-authenticated-user"), "{}", r.message);
    assert!(!r.message.contains("ceo@x"));
    // A value that renders passes.
    mock::with(|m| {
        m.attrs.insert("auth.claims.email".into(), "a@b.c".into());
    });
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    assert_eq!(pairs(&ops.set), [("x-authenticated-user", "a@b.c")]);

    let p = policy(json!({"responseHeaderModifier": {"onMissing": "reject",
        "set": {"x-echo": "$(request.header.x-trace)"}}}));
    match p.on_response_headers(&ctx(), 200, &vec![]) {
        ResponseHeadersAction::Respond(r) => assert_eq!(r.status, 502),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn nested_claims_and_every_auth_variable() {
    mock::reset();
    mock::with(|m| {
        m.attrs.insert(
            "auth.claims".into(),
            r#"{"org":{"id":"o1"},"iss":"https://i"}"#.into(),
        );
        m.attrs.insert("auth.iss".into(), "https://i".into());
    });
    let p = policy(json!({"requestHeaderModifier": {"set": {
        "x-org": "$(request.auth.claims.org.id)", "x-iss": "$(request.auth.iss)",
        "x-all": "$(request.auth.claims)"}}}));
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    let got: std::collections::HashMap<_, _> = pairs(&ops.set).into_iter().collect();
    assert_eq!(got["x-org"], "o1");
    assert_eq!(got["x-iss"], "https://i");
    assert!(got["x-all"].contains("\"org\""));
}

#[test]
fn remove_add_and_list_forms() {
    mock::reset();
    let p = policy(json!({
        "requestHeaderModifier": {"add": [{"name": "X-A", "value": "1"}], "remove": ["X-Secret"]},
        "responseHeaderModifier": {"set": [{"name": "x-b", "value": true}], "remove": ["server"]}
    }));
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    assert_eq!(pairs(&ops.add), [("x-a", "1")]);
    assert_eq!(ops.remove, ["x-secret"]);
    let ops = resp_ops(p.on_response_headers(&ctx(), 200, &vec![]));
    assert_eq!(pairs(&ops.set), [("x-b", "true")]);
    assert_eq!(ops.remove, ["server"]);
}

#[test]
fn response_templates_read_saved_request_headers() {
    mock::reset();
    let p =
        policy(json!({"responseHeaderModifier": {"set": {"x-echo": "$(request.header.x-trace)"}}}));
    assert!(p.hooks().contains(Hooks::REQUEST_HEADERS));
    let _ = p.on_request_headers(&ctx(), &h(&[("x-trace", "t-1")]));
    let ops = resp_ops(p.on_response_headers(&ctx(), 200, &vec![]));
    assert_eq!(pairs(&ops.set), [("x-echo", "t-1")]);
}

#[test]
fn header_injection_is_refused() {
    mock::reset();
    mock::with(|m| {
        m.attrs
            .insert("auth.claims.email".into(), "a@b.c\r\nx-admin: 1".into());
    });
    let p = policy(
        json!({"requestHeaderModifier": {"set": {"x-user": "$(request.auth.claims.email)"}}}),
    );
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &h(&[("x-user", "spoofed")])));
    assert!(ops.set.is_empty());
    assert_eq!(
        ops.remove,
        ["x-user"],
        "refused, so the client's value goes too"
    );
    // Non-ASCII would make the host refuse the whole edit list: removed too.
    mock::with(|m| {
        m.attrs
            .insert("auth.claims.email".into(), "josé@b.c".into());
    });
    let (ops, _) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    assert!(ops.set.is_empty());
    assert_eq!(ops.remove, ["x-user"]);
}

// ---- agentgateway's flat CEL form ----

#[test]
fn flat_form_values_are_cel() {
    mock::reset();
    mock::with(|m| {
        m.attrs.insert(
            "auth.claims".into(),
            r#"{"email":"dev@example.com","groups":["a","b"]}"#.into(),
        );
    });
    let p = policy(json!({"transformations": {
        "request": {
            "set": {"x-user": "request.headers[\"x-user\"]", "x-missing": "request.headers[\"nope\"]",
                    "x-email": "request.auth.claims.email"},
            "add": [{"name": "x-info", "value": "request.method + ' ' + route.name"},
                    {"name": "x-groups", "value": "size(request.auth.claims.groups)"}],
            "remove": ["x-drop"]
        },
        "response": {"set": {"x-status": "string(response.status)", "x-ct": "response.headers['content-type']"}}
    }}));
    let (ops, need_body) = req_ops(p.on_request_headers(&ctx(), &h(&[("X-User", "bob")])));
    assert!(!need_body);
    let mut set = pairs(&ops.set);
    set.sort();
    assert_eq!(
        set,
        [("x-email", "dev@example.com"), ("x-user", "bob")],
        "a failing header expression affects only that header (map form: name order)"
    );
    assert_eq!(
        pairs(&ops.add),
        [("x-info", "POST claude-agent"), ("x-groups", "2")]
    );
    assert_eq!(
        ops.remove,
        ["x-drop", "x-missing"],
        "a set with no value removes"
    );
    let ops =
        resp_ops(p.on_response_headers(&ctx(), 201, &h(&[("content-type", "application/json")])));
    let mut set = pairs(&ops.set);
    set.sort();
    assert_eq!(set, [("x-ct", "application/json"), ("x-status", "201")]);
}

// ---- CEL bodies ----

#[test]
fn guide_body_expression_on_claude_code_body() {
    mock::reset();
    let p = policy(json!({"transformations": {"request": {"body": GUIDE_BODY}}}));
    assert!(p
        .hooks()
        .contains(Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY));
    let (_, need_body) = req_ops(p.on_request_headers(&ctx(), &h(&[("content-length", "51234")])));
    assert!(need_body);
    let body = claude_code_body();
    assert!(body.len() > 45_000, "{}", body.len());
    let out = body_of(p.on_request_body(&ctx(), &vec![], body.clone().into_bytes()));
    let out = String::from_utf8(out).unwrap();

    let before = keys_in_order(&body);
    let after = keys_in_order(&out);
    let expected: Vec<String> = before
        .iter()
        .filter(|k| *k != "context_management")
        .cloned()
        .collect();
    assert_eq!(after, expected, "order kept, only context_management gone");
    // Everything else identical, byte for byte.
    let mut want: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
    want.remove("context_management");
    let got: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(got, want);
    // The member as this build of serde_json wrote it (key order inside it
    // depends on serde_json's `preserve_order`, which workspace builds unify).
    let original: Value = serde_json::from_str(&body).unwrap();
    let member = format!(
        r#","context_management":{}"#,
        serde_json::to_string(&original["context_management"]).unwrap()
    );
    assert!(body.contains(&member));
    let expected_text = body.replace(&member, "");
    assert_eq!(out, expected_text, "nested values byte-identical");
}

/// Not a correctness test: prints how long the guide's expression takes on
/// the 50 KB body (`cargo test --release -p sluice-plugin-transform -- --nocapture bench`).
#[test]
fn bench_guide_body_expression() {
    let e = expr::Expression::compile(GUIDE_BODY).unwrap();
    let body = claude_code_body();
    let c = ctx();
    let vars = Vars {
        request_body: Some(&body),
        request_id: &c.request_id,
        ..Vars::default()
    };
    let n = 200;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(e.eval_bytes(&vars).unwrap());
    }
    let per = start.elapsed() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(json::parse(&body).unwrap());
    }
    let parse = start.elapsed() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::from_str::<serde::de::IgnoredAny>(&body).unwrap());
    }
    let scan = start.elapsed() / n;
    println!(
        "guide body expression on {} bytes: {per:?} per evaluation \
         (of which json(): {parse:?}; a bare serde_json validation scan: {scan:?})",
        body.len()
    );
}

#[test]
fn json_functions_keep_order_and_values() {
    let body =
        r#"{"z":1,"a":{"y":[1,2.5,"x",null,true],"b":{}},"m":"t\"q","big":18446744073709551615}"#;
    let vars = Vars {
        request_body: Some(body),
        ..Vars::default()
    };
    assert_eq!(eval("toJson(json(request.body))", &vars).unwrap(), body);
    assert_eq!(
        eval("toJson(json(request.body).filterKeys(k, k != 'a'))", &vars).unwrap(),
        r#"{"z":1,"m":"t\"q","big":18446744073709551615}"#
    );
    assert_eq!(
        eval(
            "toJson(json(request.body).filterKeys(k, k in ['m', 'z']))",
            &vars
        )
        .unwrap(),
        r#"{"z":1,"m":"t\"q"}"#
    );
    // Field access converts lazily; nested objects stay ordered maps.
    assert_eq!(eval("json(request.body).m", &vars).unwrap(), "t\"q");
    assert_eq!(
        eval("toJson(json(request.body).a.y)", &vars).unwrap(),
        r#"[1,2.5,"x",null,true]"#
    );
    assert_eq!(
        eval("string(json(request.body).a.y[1] * 2.0)", &vars).unwrap(),
        "5"
    );
    assert_eq!(
        eval("string(size(json(request.body)))", &vars).unwrap(),
        "4"
    );
    assert_eq!(
        eval("string('z' in json(request.body))", &vars).unwrap(),
        "true"
    );
    assert_eq!(
        eval("string(has(json(request.body).nope))", &vars).unwrap(),
        "false"
    );
    assert_eq!(
        eval("toJson(json(request.body).map(k, k + '!'))", &vars).unwrap(),
        r#"["z!","a!","m!","big!"]"#
    );
    assert_eq!(
        eval("toJson(json(request.body).filter(k, k != 'z'))", &vars).unwrap(),
        r#"["a","m","big"]"#
    );
    // filterKeys on nested objects and on CEL map literals.
    assert_eq!(
        eval(
            "toJson(json(request.body).a.filterKeys(x, x == 'b'))",
            &vars
        )
        .unwrap(),
        r#"{"b":{}}"#
    );
    assert_eq!(
        eval(
            "toJson({'b': 1, 'a': [true]}.filterKeys(k, k != 'c'))",
            &vars
        )
        .unwrap(),
        r#"{"a":[true],"b":1}"#
    );
    // A non-string result is serialized as JSON.
    assert_eq!(
        eval("json(request.body).filterKeys(k, k == 'z')", &vars).unwrap(),
        r#"{"z":1}"#
    );
    // json(bytes) and json of scalars.
    assert_eq!(eval("toJson(json(b'[1]'))", &vars).unwrap(), "[1]");
    assert_eq!(eval("toJson(json('\"s\"'))", &vars).unwrap(), "\"s\"");
}

#[test]
fn body_expression_variables() {
    mock::reset();
    mock::with(|m| {
        m.attrs.insert(
            "auth.claims".into(),
            r#"{"email":"dev@example.com"}"#.into(),
        );
    });
    let p = policy(json!({"transformations": {"request": {"body":
        "toJson({'path': request.path, 'method': request.method, 'id': request.id, 'route': route.name, \
         'email': request.auth.claims.email, 'ua': request.headers['user-agent'], 'model': json(request.body).model})"
    }}}));
    let out = body_of(p.on_request_body(
        &ctx(),
        &h(&[("User-Agent", "claude-cli/2")]),
        br#"{"model":"m1"}"#.to_vec(),
    ));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"email":"dev@example.com","id":"req-42","method":"POST","model":"m1","path":"/claude/v1/messages","route":"claude-agent","ua":"claude-cli/2"}"#
    );
}

#[test]
fn body_failure_is_a_500_and_empty_bodies_pass() {
    mock::reset();
    let p = policy(json!({"transformations": {"request": {"body": GUIDE_BODY}}}));
    match p.on_request_body(&ctx(), &vec![], b"not json".to_vec()) {
        BodyAction::Respond(r) => {
            assert_eq!(r.status, 500);
            assert_eq!(r.error_type, "api_error");
            assert!(
                r.message.starts_with("transformation failed: "),
                "{}",
                r.message
            );
            assert!(r.message.contains("invalid JSON"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.on_request_body(&ctx(), &vec![], Vec::new()),
        BodyAction::Continue
    ));
    // GET without a body: not requested; a POST without length: requested.
    let get = RequestContext {
        method: "GET".into(),
        ..ctx()
    };
    let (_, need_body) = req_ops(p.on_request_headers(&get, &vec![]));
    assert!(!need_body);
    let (_, need_body) = req_ops(p.on_request_headers(&ctx(), &vec![]));
    assert!(need_body);
    let (_, need_body) = req_ops(p.on_request_headers(&ctx(), &h(&[("content-length", "0")])));
    assert!(!need_body);
    let (_, need_body) =
        req_ops(p.on_request_headers(&ctx(), &h(&[("transfer-encoding", "chunked")])));
    assert!(need_body);
}

#[test]
fn response_body_expression() {
    mock::reset();
    let p = policy(json!({"transformations": {"response": {
        "body": "toJson(json(response.body).filterKeys(k, k != 'usage'))",
        "headers": {"set": {"x-t": "1"}}
    }}}));
    assert!(p
        .hooks()
        .contains(Hooks::RESPONSE_BODY | Hooks::RESPONSE_HEADERS));
    assert!(!p.hooks().contains(Hooks::REQUEST_BODY));
    let out = body_of(p.on_response_body(
        &ctx(),
        200,
        br#"{"id":"msg_1","usage":{"input_tokens":3},"content":[]}"#.to_vec(),
    ));
    assert_eq!(out, br#"{"id":"msg_1","content":[]}"#);

    let p = policy(json!({"transformations": {"response": {
        "body": "toJson({'s': response.status, 'ct': response.headers['content-type']})"
    }}}));
    assert!(p.hooks().contains(Hooks::RESPONSE_HEADERS));
    let _ = p.on_response_headers(&ctx(), 201, &h(&[("content-type", "application/json")]));
    let out = body_of(p.on_response_body(&ctx(), 201, b"{}".to_vec()));
    assert_eq!(out, br#"{"ct":"application/json","s":201}"#);
}

#[test]
fn bad_cel_is_a_validation_error() {
    for (cfg, want) in [
        (
            json!({"transformations": {"request": {"body": "toJson(json(request.body)"}}}),
            "transformations.request.body",
        ),
        (
            json!({"transformations": {"request": {"set": {"x": "1 +"}}}}),
            "transformations.request.set.x",
        ),
        (
            json!({"transformations": {"response": {"body": "a.filterKeys(1, true)"}}}),
            "simple name",
        ),
    ] {
        let c = parse_config::<Transform>(&cfg.to_string()).unwrap();
        let err = Transform::validate(&c).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn empty_config_needs_no_hooks() {
    let p = policy(json!({}));
    assert!(p.hooks().is_empty());
}

/// The guide's body expression reads no header; an expression that mentions
/// `headers`, or indexes a map by a name it could spell out, gets them all.
#[test]
fn reads_only_the_headers_its_expressions_can_reach() {
    let guide = policy(json!({"transformations": {"request": {
        "body": "toJson(json(request.body).filterKeys(k, k != \"context_management\"))"}}}));
    let reads = guide.reads_headers().expect("no header expression");
    assert!(!reads.contains(&"authorization".to_string()), "{reads:?}");
    for open in [
        r#"request.headers["x-org"]"#,
        r#"request["head" + "ers"]["x-org"]"#,
    ] {
        let p = policy(json!({"transformations": {"request": {"set": {"x-o": open}}}}));
        assert_eq!(p.reads_headers(), None, "{open}");
    }
}

/// The guide's filter on a body that has no `context_management` changes
/// nothing: the body goes on as it came (`continue`), not copied back.
#[test]
fn an_unchanged_body_is_not_replaced() {
    mock::reset();
    let p = policy(json!({"transformations": {"request": {"body": GUIDE_BODY}}}));
    let body = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    assert!(matches!(
        p.on_request_body(&ctx(), &vec![], body.to_vec()),
        BodyAction::Continue
    ));
    let with = br#"{"model":"m","context_management":{"edits":[]},"max_tokens":5}"#;
    assert_eq!(
        body_of(p.on_request_body(&ctx(), &vec![], with.to_vec())),
        br#"{"model":"m","max_tokens":5}"#
    );
}
