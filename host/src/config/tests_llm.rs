//! `llm:`, `frontendPolicies:` and `config.{adminAddr,statsAddr,readinessAddr}`:
//! what compiles into the routing mode's pieces, and what is refused by name.

use super::*;

fn load(text: &str) -> Result<Loaded, Vec<String>> {
    load_str("t.yaml", text, &|_| None).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn errors(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.join("\n"),
    }
}

const MODEL: &str = "  - name: m\n    provider: openAI\n";

fn llm(extra_model: &str, rest: &str) -> String {
    format!("llm:\n  port: 4000\n  models:\n{MODEL}{extra_model}{rest}")
}

#[test]
fn a_model_compiles_into_a_route_on_its_own_bind() {
    let l = load(&llm(
        "    params:\n      model: gpt-x\n      apiKey: sk-1\n      baseUrl: https://example.com/openai/v1\n",
        "",
    ))
    .unwrap();
    let c = &l.config;
    assert_eq!(c.binds.len(), 1);
    assert_eq!(c.binds[0].port, 4000);
    assert_eq!(c.binds[0].listeners[0].name, llm::LLM_LISTENER);
    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!(r.name, "llm/m");
    assert_eq!(
        r.policies.backend_auth,
        Some(BackendAuth::Key(Secret::new("sk-1")))
    );
    let Backend::Ai(ai) = &r.backends[0].kind else {
        panic!("{r:?}")
    };
    assert_eq!(ai.model.as_deref(), Some("gpt-x"));
    assert_eq!(ai.host_override.as_deref(), Some("https://example.com"));
    assert_eq!(ai.path_prefix.as_deref(), Some("/openai/v1"));
    assert!(!c.redacted_json().to_string().contains("sk-1"));
}

#[test]
fn keys_sluice_cannot_honour_are_refused_by_name() {
    let e = errors(&llm(
        "    guardrails: {}\n    params: {tokenize: true}\n",
        "",
    ));
    assert!(e.contains("`guardrails` is not supported yet"), "{e}");
    assert!(e.contains("`tokenize` is not supported yet"), "{e}");
    let e = errors(&llm("", "  policies:\n    cors: {}\n    apiKey: {}\n"));
    assert!(e.contains("`cors` is not supported yet"), "{e}");
    assert!(e.contains("`apiKey` is not supported yet"), "{e}");
    let e = errors(&llm("", "  gateways: [default]\n"));
    assert!(e.contains("`gateways` is not supported yet"), "{e}");
    let e = errors(&llm("    provdier: x\n", ""));
    assert!(e.contains("unknown key `provdier`"), "{e}");
    let e = errors("llm:\n  port: 4000\n  models:\n  - name: m\n    provider: openai\n");
    assert!(e.contains("unknown provider"), "{e}");
}

#[test]
fn cel_is_compiled_at_load_and_errors_name_the_key() {
    let e = errors(&llm(
        "    transformation:\n      model: 'llmRequest.model +'\n",
        "",
    ));
    assert!(e.contains("llm.models[0].transformation.model"), "{e}");
    assert!(e.contains("t.yaml:7:14"), "{e}");
    let e = errors(&llm(
        "",
        "  virtualModels:\n  - name: v\n    routing:\n      conditional:\n        targets:\n        - model: m\n        - when: 'true'\n          model: m\n",
    ));
    assert!(e.contains("must come last"), "{e}");
    let e = errors(&llm(
        "",
        "  virtualModels:\n  - name: v\n    routing: {weighted: {targets: [{model: nope}]}}\n",
    ));
    assert!(e.contains("target `nope` matches no entry"), "{e}");
    let e = errors(&llm(
        "",
        "  virtualModels:\n  - name: v\n    routing: {failover: {targets: [{model: m}]}}\n",
    ));
    assert!(e.contains("missing required key `priority`"), "{e}");
}

#[test]
fn the_llm_port_must_be_its_own() {
    let e = errors(&format!("binds:\n- port: 4000\n{}", llm("", "")));
    assert!(e.contains("also a bind's port"), "{e}");
    let e = errors(&llm("  - name: m\n    provider: anthropic\n", ""));
    assert!(e.contains("listed twice"), "{e}");
    let e = errors("llm:\n  port: 4000\n  models: []\n");
    assert!(e.contains("list at least one model"), "{e}");
}

#[test]
fn shared_policies_become_a_layer_on_the_llm_listener() {
    let l = load(&llm(
        "",
        "  policies:\n    localRateLimit:\n    - maxTokens: 5\n      tokensPerFill: 1\n      fillInterval: 1s\n",
    ))
    .unwrap();
    let layer = &l.config.layers[0];
    assert_eq!(layer.listener.as_ref().unwrap().listener, llm::LLM_LISTENER);
    assert_eq!(layer.policies.attachments.len(), 1);
}

#[test]
fn frontend_max_buffer_size_is_the_body_cap() {
    let l = load("frontendPolicies:\n  http:\n    maxBufferSize: 4096\n").unwrap();
    assert_eq!(l.config.limits.max_buffered_body, 4096);
    assert_eq!(
        load("{}").unwrap().config.limits.max_buffered_body,
        32 << 20
    );
    let e = errors("frontendPolicies:\n  tcp: {}\n  http:\n    http1IdleTimeout: 1m\n");
    assert!(
        e.contains("`frontendPolicies.tcp` is not supported yet"),
        "{e}"
    );
    assert!(
        e.contains("`frontendPolicies.http.http1IdleTimeout` is not supported yet"),
        "{e}"
    );
    let e = errors("frontendPolicies:\n  http:\n    maxBufferSize: 10\n");
    assert!(e.contains("must be between"), "{e}");
}

#[test]
fn admin_stats_and_readiness_addresses() {
    let l = load(
        "config:\n  adminAddr: 127.0.0.1:15999\n  statsAddr: 127.0.0.1:15020\n  readinessAddr: 0.0.0.0:15021\n",
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.admin.address.to_string(), "127.0.0.1:15999");
    assert_eq!(c.global.stats_addr.unwrap().port(), 15020);
    assert_eq!(c.global.readiness_addr.unwrap().port(), 15021);
    // Same address both ways is fine; two different ones are not.
    load("admin:\n  address: 127.0.0.1:15999\nconfig:\n  adminAddr: 127.0.0.1:15999\n").unwrap();
    let e = errors("admin:\n  address: 127.0.0.1:15000\nconfig:\n  adminAddr: 127.0.0.1:15999\n");
    assert!(e.contains("disagree"), "{e}");
    let e = errors("config:\n  adminAddr: 0.0.0.0:15000\n");
    assert!(e.contains("not loopback"), "{e}");
    let e = errors("config:\n  statsAddr: localhost\n");
    assert!(e.contains("invalid socket address"), "{e}");
    let e = errors("config:\n  workerThreads: 2\n");
    assert!(e.contains("not supported yet"), "{e}");
}
