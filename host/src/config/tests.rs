//! End-to-end loader tests: the guide's configs (verbatim, via the files in
//! `config/`), error reporting and secret redaction.

use super::*;
use serde_json::json;

const PATTERN1: &str = include_str!("../../../config/subscription-passthrough.yaml");
const PATTERN2: &str = include_str!("../../../config/api-key-routing.yaml");
const RATE_LIMIT: &str = include_str!("../../../config/rate-limit.yaml");
const JWT: &str = include_str!("../../../config/jwt-auth.yaml");
const INPUT: &str = include_str!("../../../config/input-validation.yaml");
const OUTPUT: &str = include_str!("../../../config/output-filter.yaml");
const TRANSFORM: &str = include_str!("../../../config/transformations.yaml");
const PRODUCTION: &str = include_str!("../../../config/production-route.yaml");

const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789";
const OPENAI_KEY: &str = "sk-openai-test-9876543210";

fn fake_env(name: &str) -> Option<String> {
    match name {
        "ANTHROPIC_API_KEY" => Some(ANTHROPIC_KEY.into()),
        "OPENAI_API_KEY" => Some(OPENAI_KEY.into()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_ok(name: &str, text: &str) -> Loaded {
    match load_str(name, text, &fake_env) {
        Ok(l) => l,
        Err(e) => panic!("{name} failed to load:\n{e}"),
    }
}

fn load_err(text: &str) -> Vec<String> {
    match load_str("t.yaml", text, &fake_env) {
        Ok(l) => panic!("expected errors, loaded {:?}", l.config),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn ai(route: &Route) -> &AiBackend {
    match &route.backends[0].kind {
        Backend::Ai(a) => a,
        other => panic!("not an ai backend: {other:?}"),
    }
}

fn routes_of(r: &Route) -> Vec<(&str, AiKind)> {
    r.policies
        .ai
        .as_ref()
        .expect("ai policy")
        .routes
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

#[test]
fn pattern1_subscription_passthrough() {
    let l = load_ok("subscription-passthrough.yaml", PATTERN1);
    let c = &l.config;
    assert_eq!(c.binds.len(), 1);
    assert_eq!(c.binds[0].port, 4001);
    assert_eq!(c.binds[0].address.to_string(), "127.0.0.1");
    assert_eq!(c.binds[0].listeners, vec![Listener::default_http()]);
    assert_eq!(c.routes.len(), 2);
    assert!(c.layers.is_empty());

    let claude = &c.routes[0];
    assert_eq!(claude.name, "claude-agent");
    assert_eq!(
        claude.matches[0].path,
        Some(PathMatch::Prefix("/claude".into()))
    );
    assert_eq!(
        claude.policies.url_rewrite.as_ref().unwrap().path,
        Some(PathRewrite::Prefix("/".into()))
    );
    assert_eq!(ai(claude).provider, Provider::Anthropic);
    assert_eq!(ai(claude).host_override, None);
    assert_eq!(
        routes_of(claude),
        vec![
            ("/v1/messages", AiKind::Messages),
            ("/v1/messages/count_tokens", AiKind::AnthropicTokenCount),
            ("*", AiKind::Passthrough),
        ]
    );
    assert_eq!(claude.policies.backend_auth, None);
    assert!(claude.policies.attachments.is_empty());

    let codex = &c.routes[1];
    assert_eq!(codex.name, "codex-agent");
    assert_eq!(ai(codex).provider, Provider::OpenAi);
    assert_eq!(ai(codex).host_override.as_deref(), Some("chatgpt.com:443"));
    assert_eq!(ai(codex).path_prefix.as_deref(), Some("/backend-api/codex"));
    assert_eq!(
        routes_of(codex),
        vec![
            ("/v1/chat/completions", AiKind::Completions),
            ("/v1/responses", AiKind::Responses),
            ("/v1/embeddings", AiKind::Embeddings),
            ("*", AiKind::Passthrough),
        ]
    );
    assert_eq!(codex.index, 1);
    assert_eq!(
        claude.location.to_string(),
        "subscription-passthrough.yaml:10:3"
    );
    assert_eq!(
        codex.location.to_string(),
        "subscription-passthrough.yaml:30:3"
    );

    // One warning per duplicated `policies`, naming the duplicate's line.
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    let w = &l.warnings[0];
    assert_eq!(w.key_path, "routes[0].policies");
    // Line 23 of the file (line 1 is the leading comment).
    assert_eq!(w.location.line, 23);
    assert!(w.message.contains("first defined at line 14"), "{w}");
    assert!(w
        .to_string()
        .starts_with("subscription-passthrough.yaml:23:3: routes[0].policies: duplicate key"));
    assert_eq!(l.warnings[1].key_path, "routes[1].policies");
}

#[test]
fn pattern2_api_key_routing() {
    let l = load_ok("api-key-routing.yaml", PATTERN2);
    let c = &l.config;
    assert_eq!(c.binds[0].port, 4060);
    assert_eq!(c.routes.len(), 2);
    let key = |r: &Route| match &r.policies.backend_auth {
        Some(BackendAuth::Key(k)) => k.expose().to_string(),
        other => panic!("no key: {other:?}"),
    };
    assert_eq!(key(&c.routes[0]), ANTHROPIC_KEY);
    assert_eq!(key(&c.routes[1]), OPENAI_KEY);
    assert_eq!(
        routes_of(&c.routes[0])[0],
        ("/v1/messages", AiKind::Messages)
    );
    assert_eq!(
        routes_of(&c.routes[1])[1],
        ("/v1/responses", AiKind::Responses)
    );
    assert_eq!(l.warnings.len(), 2);

    // Secrets never show up in Debug or the redacted dump.
    let dbg = format!("{:?} {:#?} {:?}", l.config, l.config.routes, l.warnings);
    assert!(!dbg.contains(ANTHROPIC_KEY) && !dbg.contains(OPENAI_KEY));
    let dump = c.redacted_json().to_string();
    assert!(!dump.contains(ANTHROPIC_KEY) && !dump.contains(OPENAI_KEY));
    assert_eq!(
        c.redacted_json()["routes"][0]["policies"]["backendAuth"],
        json!({"key": "<redacted>"})
    );
}

#[test]
fn pattern_plus_layer_files_combine() {
    let dir = std::env::temp_dir().join(format!("sluice-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("pattern2.yaml");
    let b = dir.join("rate-limit.yaml");
    std::fs::write(&a, PATTERN2).unwrap();
    std::fs::write(&b, RATE_LIMIT).unwrap();
    let l = load_with_env(&[a.clone(), b.clone()], &fake_env).unwrap();
    assert_eq!(l.config.routes.len(), 2);
    assert_eq!(l.config.layers.len(), 1);
    assert_eq!(l.config.layers[0].name, "rate-limit-claude");
    assert_eq!(l.config.layers[0].index, 2);
    assert_eq!(l.config.sources, vec![a.clone(), b.clone()]);

    // The same via `include:`.
    let c = dir.join("main.yaml");
    std::fs::write(&c, "include:\n- pattern2.yaml\n- rate-limit.yaml\n").unwrap();
    let l2 = load_with_env(std::slice::from_ref(&c), &fake_env).unwrap();
    assert_eq!(l2.config.routes.len(), 2);
    assert_eq!(l2.config.layers.len(), 1);
    assert_eq!(l2.config.sources.len(), 3);

    // Including a file twice is reported, not looped on.
    std::fs::write(&c, "include: [main.yaml]\n").unwrap();
    let err = load_with_env(&[c], &fake_env).unwrap_err().to_string();
    assert!(err.contains("more than once"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

fn single_layer(name: &str, text: &str) -> Route {
    let l = load_ok(name, text);
    assert!(l.config.binds.is_empty());
    assert!(l.config.routes.is_empty());
    assert_eq!(l.config.layers.len(), 1);
    l.config.layers.into_iter().next().unwrap()
}

#[test]
fn rate_limit_layer() {
    let r = single_layer("rate-limit.yaml", RATE_LIMIT);
    assert_eq!(r.name, "rate-limit-claude");
    assert_eq!(r.matches[0].path, Some(PathMatch::Prefix("/claude".into())));
    let a = &r.policies.attachments;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].plugin, "rate-limit");
    assert_eq!(a[0].keys, vec!["rateLimit"]);
    assert_eq!(
        a[0].config,
        json!({"rateLimit": {"requestsPerHour": 100, "actions": [{"reject": true, "errorCode": 429}]}})
    );
}

#[test]
fn jwt_layer_keeps_templates_verbatim() {
    let r = single_layer("jwt-auth.yaml", JWT);
    assert_eq!(r.name, "secure-claude");
    let a = &r.policies.attachments;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].plugin, "jwt-auth");
    assert_eq!(
        a[0].config,
        json!({"auth": {
            "jwt": {"issuer": "https://auth.yourcompany.com", "audiences": ["agentgateway"]},
            "actions": {"onSuccess": {"requestHeaders": [
                {"set": {"X-Authenticated-User": r"\\$(request.auth.claims.email)"}}
            ]}}
        }})
    );
}

#[test]
fn input_validation_layer() {
    let r = single_layer("input-validation.yaml", INPUT);
    let a = &r.policies.attachments;
    assert_eq!(a[0].plugin, "input-validation");
    assert_eq!(
        a[0].config,
        json!({"inputValidation": {
            "maxRequestBodySize": "1MB",
            "blockPatterns": ["ignore previous instructions", "bypass system prompt"]
        }})
    );
}

#[test]
fn output_filter_layer() {
    let r = single_layer("output-filter.yaml", OUTPUT);
    let a = &r.policies.attachments;
    assert_eq!(a[0].plugin, "output-mask");
    assert_eq!(
        a[0].config,
        json!({"outputFilter": {"maskPatterns": ["email", "phone", "ssn"]}})
    );
}

#[test]
fn transformations_merge_into_one_transform_attachment() {
    let r = single_layer("transformations.yaml", TRANSFORM);
    assert_eq!(r.name, "transform-claude");
    assert_eq!(
        r.policies.url_rewrite.as_ref().unwrap().path,
        Some(PathRewrite::Prefix("/".into()))
    );
    let a = &r.policies.attachments;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].plugin, "transform");
    assert_eq!(
        a[0].keys,
        vec!["requestHeaderModifier", "responseHeaderModifier"]
    );
    assert_eq!(
        a[0].config,
        json!({
            "requestHeaderModifier": {"set": {
                "X-Gateway-Version": "1.2",
                "X-Request-ID": r"\\$(request.id)"
            }},
            "responseHeaderModifier": {"add": {"X-Gateway-Processed": "true"}}
        })
    );
}

#[test]
fn production_route() {
    let l = load_ok("production-route.yaml", PRODUCTION);
    assert_eq!(l.warnings.len(), 1);
    let c = &l.config;
    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!(r.name, "claude-agent-secure");
    assert_eq!(ai(r).provider, Provider::Anthropic);
    assert_eq!(routes_of(r).len(), 3);
    let plugins: Vec<&str> = r
        .policies
        .attachments
        .iter()
        .map(|a| a.plugin.as_str())
        .collect();
    assert_eq!(
        plugins,
        ["jwt-auth", "rate-limit", "input-validation", "transform"]
    );
    let a = &r.policies.attachments;
    assert_eq!(
        a[2].config,
        json!({"inputValidation": {"maxRequestBodySize": "2MB"}})
    );
    assert_eq!(
        a[3].config["transformations"]["request"],
        json!({
            "body": "toJson(json(request.body).filterKeys(k, k != \"context_management\"))",
            "headers": {"set": {
                "X-Authenticated-User": r"\\$(request.auth.claims.email)",
                "X-Gateway-Source": "claude-code"
            }}
        })
    );
    assert_eq!(a[1].config["rateLimit"]["requestsPerHour"], json!(200));
}

#[test]
fn every_example_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        n += 1;
        if let Err(e) = load_with_env(std::slice::from_ref(&path), &fake_env) {
            panic!("{} failed:\n{e}", path.display());
        }
    }
    assert!(n >= 8, "expected the 8 example configs, found {n}");
}

#[test]
fn missing_env_var_error_names_location_and_variable() {
    let err = load_str("api-key-routing.yaml", PATTERN2, &no_env).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "api-key-routing.yaml:19:10: routes[0].backendAuth.key: environment variable `ANTHROPIC_API_KEY` is not set",
            "api-key-routing.yaml:41:10: routes[1].backendAuth.key: environment variable `OPENAI_API_KEY` is not set",
        ]
    );
}

#[test]
fn unknown_keys_get_suggestions_and_all_errors_are_reported() {
    let errs = load_err(
        "binds:\n- port: 70000\n  adress: 0.0.0.0\nroutes:\n- name: r\n  policies:\n    rateLimt: {}\n    timeout:\n      requestTimeout: soon\n  backends:\n  - ai:\n      provider:\n        openai: {}\n- name: r\n  matches:\n  - path:\n      regex: '(['\n  policies:\n    ai:\n      routes:\n        /v1/messages: mesages\n",
    );
    let all = errs.join("\n");
    assert!(
        all.contains("t.yaml:2:9: binds[0].port: port `70000` is out of range"),
        "{all}"
    );
    assert!(
        all.contains("t.yaml:3:3: binds[0].adress: unknown key `adress`; did you mean `address`?"),
        "{all}"
    );
    assert!(
        all.contains(
            "t.yaml:7:5: routes[0].policies.rateLimt: unknown policy `rateLimt`; did you mean `rateLimit`?"
        ),
        "{all}"
    );
    assert!(
        all.contains("routes[0].policies.timeout.requestTimeout: `soon`: invalid duration"),
        "{all}"
    );
    assert!(
        all.contains("routes[0].backends[0].ai.provider.openai: unknown key `openai`; did you mean `openAI`?"),
        "{all}"
    );
    assert!(
        all.contains("routes[1].matches[0].path.regex: invalid regex"),
        "{all}"
    );
    assert!(
        all.contains("routes[1].policies.ai.routes[\"/v1/messages\"]: invalid value `mesages`"),
        "{all}"
    );
    assert!(all.contains("did you mean `messages`?"), "{all}");
    assert!(all.contains("duplicate route name `r`"), "{all}");
    assert!(errs.len() >= 8, "{all}");
}

#[test]
fn type_errors() {
    let errs = load_err("binds:\n- port: \"4001\"\n  listeners: nope\n");
    assert!(
        errs[0].contains("binds[0].port: expected an integer, found a string"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("binds[0].listeners: expected a list, found a string"),
        "{errs:?}"
    );
    let errs = load_err("routes:\n- name: x\n  backends:\n  - ai:\n      provider: {anthropic: {}}\n      hostOverride: chatgpt.com\n");
    assert!(
        errs[0].contains("invalid address `chatgpt.com`"),
        "{errs:?}"
    );
}

#[test]
fn yaml_syntax_error_has_position() {
    let errs = load_err("routes:\n- name: x\n  matches: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yaml:"), "{errs:?}");
    assert!(errs[0].contains("YAML syntax error"), "{errs:?}");
}

#[test]
fn secrets_never_in_errors() {
    let env = |n: &str| (n == "PORT").then(|| "sekrit-port".to_string());
    let err = load_str("t.yaml", "binds:\n- port: $PORT\n  address: $PORT\n", &env)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("sekrit"), "{err}");
    assert!(
        err.contains("binds[0].address: invalid IP address <redacted>"),
        "{err}"
    );
}

#[test]
fn nested_agentgateway_form_and_defaults() {
    let text = r#"
binds:
- port: 3000
  address: 0.0.0.0
  listeners:
  - name: main
    routes:
    - backends:
      - host: localhost:8080
- port: 3001
listeners:
- name: extra
admin:
  address: 127.0.0.1:19000
state:
  backend: redis
  url: redis://u:${PASS}@localhost:6379
"#;
    let env = |n: &str| (n == "PASS").then(|| "pw".to_string());
    let l = load_str("nested.yaml", text, &env).unwrap();
    let c = &l.config;
    assert_eq!(c.binds.len(), 2);
    let names: Vec<&str> = c.binds[0]
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["main", "extra"]);
    assert_eq!(c.binds[1].listeners[0].name, "extra");
    assert_eq!(c.routes[0].name, "route-0");
    assert_eq!(
        c.routes[0].listener,
        Some(ListenerRef {
            port: Some(3000),
            listener: "main".into()
        })
    );
    assert_eq!(
        c.routes[0]
            .backends
            .iter()
            .map(|b| b.kind.clone())
            .collect::<Vec<_>>(),
        vec![Backend::Host("localhost:8080".into())]
    );
    assert_eq!(c.admin.address.port(), 19000);
    match &c.state.backend {
        StateBackend::Redis(r) => assert_eq!(r.url.expose(), "redis://u:pw@localhost:6379"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.redacted_json()["state"],
        json!({"backend": "redis", "url": "<redacted>", "keyPrefix": "sluice:",
            "poolSize": 4, "timeoutMs": 250, "failureMode": "closed", "replicaId": null})
    );
}

#[test]
fn canonical_places_for_overrides_and_auth() {
    let text = r#"
routes:
- name: a
  policies:
    backendAuth: {passthrough: {}}
    hostOverride: http://localhost:9000
    pathPrefix: /p
    backendTLS: {insecure: true}
    timeout: {requestTimeout: 30s, connectTimeout: 2s}
  backends:
  - ai:
      name: x
      provider: {openAI: {model: gpt-5}}
      pathOverride: /v1/responses
  - ai:
      name: y
      provider: {anthropic: {}}
      hostOverride: api.example.com:443
- name: b
  backendAuth: {key: k}
  policies:
    backendAuth: {key: k2}
  hostOverride: a:1
  backends:
  - host: h:1
"#;
    let errs = match load_str("t.yaml", text, &no_env) {
        Err(e) => e.0,
        Ok(_) => panic!("route b is invalid"),
    };
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0]
        .message
        .contains("both at route level and under `policies`"));
    // Route `a` alone is fine.
    let ok_text = text.split("- name: b").next().unwrap();
    let l = load_str("t.yaml", ok_text, &no_env).unwrap();
    let r = &l.config.routes[0];
    assert_eq!(r.policies.backend_auth, Some(BackendAuth::Passthrough));
    assert!(r.policies.backend_tls.as_ref().unwrap().insecure);
    let t = r.policies.timeout.as_ref().unwrap();
    assert_eq!(t.request_timeout, Some(std::time::Duration::from_secs(30)));
    let x = match &r.backends[0].kind {
        Backend::Ai(a) => a,
        _ => unreachable!(),
    };
    assert_eq!(x.model.as_deref(), Some("gpt-5"));
    assert_eq!(x.host_override.as_deref(), Some("http://localhost:9000"));
    assert_eq!(x.path_prefix.as_deref(), Some("/p"));
    assert_eq!(x.path_override.as_deref(), Some("/v1/responses"));
    let y = match &r.backends[1].kind {
        Backend::Ai(a) => a,
        _ => unreachable!(),
    };
    assert_eq!(y.host_override.as_deref(), Some("api.example.com:443"));
}

#[test]
fn user_plugins_and_prompt_guard() {
    let text = r#"
plugins:
- name: pii-scrub
  path: plugins/pii.wasm
  memoryLimit: 64MiB
  deadline: 50ms
  failureMode: open
  config: {token: $TOKEN}
routes:
- name: r
  policies:
    pii-scrub: {level: 3, token: $TOKEN}
    inputValidation: {maxRequestBodySize: 1MB}
    ai:
      promptGuard:
        request: {regex: {rules: [{builtin: email}]}}
    plugins:
    - name: pii-scrub
      config: {x: 1}
    - name: rate-limit
    jwtAuth: {issuer: me}
  backends:
  - host: localhost:1
"#;
    let env = |n: &str| (n == "TOKEN").then(|| "tok-secret".to_string());
    let l = load_str("/etc/sluice/main.yaml", text, &env).unwrap();
    let c = &l.config;
    let p = &c.plugins[0];
    assert_eq!(
        p.path,
        std::path::PathBuf::from("/etc/sluice/plugins/pii.wasm")
    );
    assert_eq!(p.memory_limit, Some(64 << 20));
    assert_eq!(p.deadline, Some(std::time::Duration::from_millis(50)));
    assert_eq!(p.failure_mode, FailureMode::Open);
    assert_eq!(p.config, json!({"token": "tok-secret"}));

    let a = &c.routes[0].policies.attachments;
    let summary: Vec<(&str, Vec<String>)> = a
        .iter()
        .map(|a| (a.plugin.as_str(), a.keys.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("pii-scrub", vec!["pii-scrub".to_string()]),
            (
                "input-validation",
                vec!["inputValidation".to_string(), "ai.promptGuard".to_string()]
            ),
            ("pii-scrub", vec!["plugins[0]".to_string()]),
            ("rate-limit", vec!["plugins[1]".to_string()]),
            ("jwt-auth", vec!["jwtAuth".to_string()]),
        ]
    );
    assert_eq!(a[0].config, json!({"level": 3, "token": "tok-secret"}));
    assert_eq!(
        a[1].config["promptGuard"],
        json!({"request": {"regex": {"rules": [{"builtin": "email"}]}}})
    );
    assert_eq!(a[2].config, json!({"x": 1}));
    assert_eq!(a[3].config, serde_json::Value::Null);

    let dump = c.redacted_json().to_string();
    assert!(!dump.contains("tok-secret"), "{dump}");
    assert!(!format!("{c:?}").contains("tok-secret"));
    assert!(!format!("{:?}", c.routes).contains("tok-secret"));
    assert_eq!(
        c.redacted_json()["routes"][0]["policies"]["attachments"][0]["config"]["token"],
        "<redacted>"
    );

    // Without structure, promptGuard goes to both plugins.
    let l = load_ok(
        "t.yaml",
        "- name: g\n  policies:\n    ai:\n      promptGuard: {foo: 1}\n",
    );
    let plugins: Vec<&str> = l.config.layers[0]
        .policies
        .attachments
        .iter()
        .map(|a| a.plugin.as_str())
        .collect();
    assert_eq!(plugins, ["input-validation", "output-mask"]);
}

#[test]
fn undeclared_plugin_is_an_error() {
    let errs = load_err("- name: r\n  policies:\n    plugins:\n    - name: pii-scrubber\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("plugin `pii-scrubber` is not declared"),
        "{errs:?}"
    );
}

#[test]
fn empty_file_and_bare_bind() {
    let l = load_ok("e.yaml", "");
    assert!(l.config.binds.is_empty());
    let l = load_ok("b.yaml", "binds:\n- port: 8080\n");
    assert_eq!(l.config.binds[0].listeners, vec![Listener::default_http()]);
    assert_eq!(l.config.admin, Admin::default());
    assert_eq!(l.config.state, StateConfig::default());
}

/// A bind may tighten its own connection limits; the process-wide ones stay
/// top-level, and asking for them on a bind says where they belong.
#[test]
fn a_bind_sets_its_own_connection_limits() {
    let l = load_ok(
        "t.yaml",
        "limits:\n  maxConnections: 500\n  headerReadTimeout: 20s\nbinds:\n- port: 4060\n  limits:\n    maxConnections: 8\n    maxConcurrentStreams: 4\n- port: 4061\n",
    );
    let c = &l.config;
    let public = c.binds[0].limits.over(&c.limits);
    assert_eq!(public.max_connections, 8);
    assert_eq!(public.max_concurrent_streams, 4);
    assert_eq!(
        public.header_read_timeout,
        std::time::Duration::from_secs(20)
    );
    let other = c.binds[1].limits.over(&c.limits);
    assert_eq!(other.max_connections, 500);

    let errs = load_err(
        "binds:\n- port: 4060\n  limits:\n    bodyBufferBudget: 1MiB\n    maxConnection: 3\n",
    );
    assert!(
        errs.iter().any(|e| e.contains("t.yaml:4")
            && e.contains("binds[0].limits.bodyBufferBudget")
            && e.contains("top-level `limits:`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("t.yaml:5") && e.contains("maxConnection")),
        "{errs:?}"
    );
    let errs = load_err("binds:\n- port: 4060\n  limits:\n    maxConnections: 0\n");
    assert!(errs.iter().any(|e| e.contains("out of range")), "{errs:?}");
}

#[test]
fn model_aliases_decode_in_config_order() {
    let r = single_layer(
        "aliases.yaml",
        "- name: g\n  policies:\n    ai:\n      modelAliases:\n        fast: claude-haiku-4-5\n        'claude-3-*': claude-sonnet-4-5\n        'claude-3-5-*': claude-sonnet-4-5-20250929\n",
    );
    let a = &r.policies.ai.as_ref().unwrap().model_aliases;
    assert_eq!(a.resolve("fast"), Some("claude-haiku-4-5"));
    assert_eq!(
        a.resolve("claude-3-5-haiku"),
        Some("claude-sonnet-4-5-20250929")
    );
    assert_eq!(a.resolve("claude-3-opus"), Some("claude-sonnet-4-5"));
    assert_eq!(a.resolve("gpt-4o"), None);
}

#[test]
fn model_alias_errors_name_the_key() {
    let errs =
        load_err("- name: g\n  policies:\n    ai:\n      modelAliases:\n        fast: [a]\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("t.yaml:5") && e.contains("ai.modelAliases.fast")),
        "{errs:?}"
    );
    let errs = load_err("- name: g\n  policies:\n    ai:\n      modelAliases:\n        fast: ''\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("ai.modelAliases") && e.contains("`fast`")),
        "{errs:?}"
    );
    let errs = load_err("- name: g\n  policies:\n    ai:\n      modelAlias: {}\n");
    assert!(errs.iter().any(|e| e.contains("modelAlias")), "{errs:?}");
}

/// Issue 21 §3 in agentgateway's syntax: weights, priority groups with
/// per-provider policies, retry; and every key Sluice does not implement
/// refused by name rather than accepted and ignored.
#[test]
fn several_backends_weights_groups_retry_health() {
    let text = r#"
routes:
- name: r
  policies:
    retry: {attempts: 3, backoff: 100ms, codes: [429, 503]}
  backends:
  - weight: 9
    ai:
      name: main
      provider: {anthropic: {}}
    policies:
      backendAuth: {key: k1}
      health: {eviction: {duration: 10s, consecutiveFailures: 2}}
  - weight: 1
    ai:
      groups:
      - providers:
        - name: p1
          provider: {openAI: {}}
          policies: {backendAuth: {key: k2}, health: {eviction: {duration: 1m}}}
      - providers:
        - name: s1
          provider: {anthropic: {}}
  - host: localhost:9000
"#;
    let l = load_str("t.yaml", text, &no_env).unwrap_or_else(|e| panic!("{e}"));
    let r = &l.config.routes[0];
    assert_eq!(
        r.policies.retry,
        Some(Retry {
            attempts: 3,
            backoff: Some(std::time::Duration::from_millis(100)),
            codes: vec![429, 503]
        })
    );
    assert_eq!(
        r.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
        [9, 1, 1]
    );
    let ev = r.backends[0]
        .policies
        .health
        .as_ref()
        .unwrap()
        .eviction
        .as_ref()
        .unwrap();
    assert_eq!(ev.consecutive_failures, 2);
    assert_eq!(ev.duration, Some(std::time::Duration::from_secs(10)));
    let Backend::Groups(g) = &r.backends[1].kind else {
        panic!("groups")
    };
    assert_eq!(g.len(), 2);
    assert_eq!(g[0][0].name, "p1");
    assert!(matches!(
        g[0][0].policies.backend_auth,
        Some(BackendAuth::Key(_))
    ));
    assert_eq!(g[1][0].name, "s1");
    // The keys never print.
    let shown = l.config.redacted_json().to_string();
    assert!(!shown.contains("k1") && !shown.contains("k2"), "{shown}");

    let refused = [
        (
            "retry: {attempts: 2, codes: [429], condition: 'true'}",
            "not supported yet",
        ),
        (
            "retry: {attempts: 2, codes: [429], precondition: 'true'}",
            "not supported yet",
        ),
        ("retry: {attempts: 0, codes: [429]}", "expected 1 to 255"),
        ("retry: {attempts: 2}", "missing required key `codes`"),
    ];
    for (policy, want) in refused {
        let t =
            format!("routes:\n- name: r\n  policies:\n    {policy}\n  backends:\n  - host: h:1\n");
        let errs = load_err(&t).join("\n");
        assert!(errs.contains(want), "{policy}: {errs}");
    }
    let refused = [
        (
            "health: {unhealthyExpression: 'response.code >= 500'}",
            "unhealthyExpression",
        ),
        ("health: {eviction: {restoreHealth: 0.5}}", "restoreHealth"),
        (
            "health: {eviction: {healthThreshold: 0.5}}",
            "healthThreshold",
        ),
        (
            "requestHeaderModifier: {set: [{name: a, value: b}]}",
            "not supported yet",
        ),
        ("backendAuthz: {}", "unknown key"),
    ];
    for (policy, want) in refused {
        let t =
            format!("routes:\n- name: r\n  backends:\n  - host: h:1\n    policies: {{{policy}}}\n");
        let errs = load_err(&t).join("\n");
        assert!(errs.contains(want), "{policy}: {errs}");
    }
    // Two backends one name, and weights that serve nothing.
    let errs = load_err(
        "routes:\n- name: r\n  backends:\n  - ai: {provider: {anthropic: {}}}\n  - ai: {provider: {openAI: {}}}\n",
    )
    .join("\n");
    assert!(errs.contains("named `r`"), "{errs}");
    let errs =
        load_err("routes:\n- name: r\n  backends:\n  - weight: 0\n    host: h:1\n").join("\n");
    assert!(errs.contains("weight: 0"), "{errs}");
    let errs = load_err(
        "routes:\n- name: r\n  backends:\n  - ai: {groups: [{providers: [{provider: {anthropic: {}}}]}]}\n",
    )
    .join("\n");
    assert!(errs.contains("missing required key `name`"), "{errs}");
}

#[test]
fn state_memory_path() {
    let l = load_str(
        "t.yaml",
        "state:\n  memory:\n    path: /var/lib/sluice\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(l.config.state.backend, StateBackend::Memory);
    assert_eq!(
        l.config.state.memory_path.as_deref(),
        Some(std::path::Path::new("/var/lib/sluice"))
    );
    assert_eq!(
        load_str("t.yaml", "state: memory\n", &no_env)
            .unwrap()
            .config
            .state
            .memory_path,
        None
    );
    for bad in [
        "state:\n  memory:\n    path: ''\n",
        "state:\n  memory:\n    dir: /x\n",
        "state:\n  memory:\n    path: [a]\n",
    ] {
        assert!(load_str("t.yaml", bad, &no_env).is_err(), "{bad}");
    }
}

#[test]
fn translation_decodes_strictly() {
    let r = single_layer(
        "tr.yaml",
        "- name: g\n  policies:\n    ai:\n      translation: {unsupportedFields: drop}\n",
    );
    assert_eq!(
        r.policies
            .ai
            .as_ref()
            .unwrap()
            .translation
            .unsupported_fields,
        UnsupportedFields::Drop
    );
    let r = single_layer("tr.yaml", "- name: g\n  policies:\n    ai: {}\n");
    assert_eq!(
        r.policies
            .ai
            .as_ref()
            .unwrap()
            .translation
            .unsupported_fields,
        UnsupportedFields::Reject
    );
    let errs = load_err(
        "- name: g\n  policies:\n    ai:\n      translation:\n        unsupportedField: drop\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("t.yaml:5") && e.contains("unsupportedField")),
        "{errs:?}"
    );
    let errs = load_err(
        "- name: g\n  policies:\n    ai:\n      translation:\n        unsupportedFields: ignore\n",
    );
    assert!(
        errs.iter().any(|e| e.contains("t.yaml:5")
            && e.contains("ai.translation.unsupportedFields")
            && e.contains("reject")),
        "{errs:?}"
    );
}
