//! agentgateway's LLM mode, the top-level `llm:` block:
//!
//! ```yaml
//! llm:
//!   port: 4000
//!   models:
//!   - name: anthropic/*            # exact, `prefix*`, `*suffix` or `*`
//!     provider: anthropic
//!     params: {apiKey: $ANTHROPIC_API_KEY}
//!     transformation:
//!       model: llmRequest.model.stripPrefix("anthropic/")
//!   virtualModels:
//!   - name: smart
//!     routing: {conditional: {targets: [{when: '...', model: a}, {model: b}]}}
//!   policies: {jwtAuth: ..., localRateLimit: ...}
//! ```
//!
//! Why it compiles into the routing mode's pieces: each model becomes an
//! ordinary [`Route`] (one AI backend, its key as `backendAuth.key`, its
//! `baseUrl` as `hostOverride` + `pathPrefix`), so the proxy serves it
//! exactly as any route (provider checks, credentials, usage, logs), and
//! `policies` become one policy layer on the LLM listener. Only the choice
//! of route differs: the request body's `model` makes it
//! (`proxy::model_router`). Keys Sluice cannot honour are refused by name.

use serde::Serialize;

use super::decode::{as_list, as_map, check_keys, get, integer, nonempty, string, Ctx};
use super::tree::{join_index, join_key, Node};
use super::types::*;
use crate::llm_cel::LlmExpr;

/// The listener name the `llm:` bind gets (its routes and policy layer are
/// scoped to it).
pub const LLM_LISTENER: &str = "llm";

/// `llm:`, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmConfig {
    pub port: u16,
    pub models: Vec<LlmModel>,
    pub virtual_models: Vec<VirtualModel>,
    /// `llm.policies` as a policy layer on the LLM listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Route>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmModel {
    /// The name or pattern requests are matched against.
    pub name: String,
    /// `internal`: reachable only as a virtual model's target.
    pub internal: bool,
    /// `transformation.model`: CEL giving the model sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform_model: Option<String>,
    /// The route this model is served by.
    pub route: Route,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualModel {
    pub name: String,
    pub routing: VirtualRouting,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VirtualRouting {
    /// (model, weight).
    Weighted(Vec<(String, u64)>),
    /// Models in the order they are tried (lower `priority` first, then
    /// config order).
    Failover(Vec<String>),
    /// (CEL `when`, model), first true wins; no `when` = the fallback.
    Conditional(Vec<(Option<String>, String)>),
}

/// agentgateway's `(params key, provider)` spellings: `LocalModelAIProvider`.
const PROVIDERS: &[(&str, Provider)] = &[
    ("openAI", Provider::OpenAi),
    ("anthropic", Provider::Anthropic),
    ("gemini", Provider::Gemini),
    ("vertex", Provider::Vertex),
    ("bedrock", Provider::Bedrock),
    ("azure", Provider::Azure),
];

const TOP: &[&str] = &["port", "models", "virtualModels", "policies"];
const TOP_LATER: &[&str] = &["gateways", "tls", "providers"];
const MODEL: &[&str] = &["name", "provider", "params", "transformation", "visibility"];
const MODEL_LATER: &[&str] = &[
    "id",
    "passthrough",
    "authorization",
    "defaults",
    "overrides",
    "finalTransformation",
    "requestHeaders",
    "responseHeaders",
    "backendTLS",
    "tls",
    "auth",
    "health",
    "backendTunnel",
    "guardrails",
    "promptCaching",
    "matches",
];
const PARAMS: &[&str] = &[
    "model",
    "apiKey",
    "baseUrl",
    "hostOverride",
    "pathPrefix",
    "pathOverride",
    "awsRegion",
    "vertexRegion",
    "vertexProject",
    "azureResourceName",
    "azureResourceType",
    "azureApiVersion",
    "azureProjectName",
];
const PARAMS_LATER: &[&str] = &["tokenize"];
/// `llm.policies` keys mapped onto the bundled plugins routes use.
const POLICIES: &[&str] = &[
    "jwtAuth",
    "authorization",
    "localRateLimit",
    "transformations",
];
const POLICIES_LATER: &[&str] = &[
    "oidc",
    "extAuthz",
    "extProc",
    "cors",
    "basicAuth",
    "apiKey",
    "guardrails",
    "remoteRateLimit",
];

/// Refuse keys outside `known`: "not supported yet" for the ones agentgateway
/// has (`later`), "unknown key" otherwise.
fn check(
    ctx: &mut Ctx,
    m: &[(super::tree::Key, Node)],
    path: &str,
    known: &[&str],
    later: &[&str],
) -> bool {
    let mut ok = true;
    for (k, _) in m {
        if later.contains(&k.name.as_str()) {
            ctx.d.error(
                &k.loc,
                &join_key(path, &k.name),
                format!("`{}` is not supported yet by Sluice in `{path}`", k.name),
            );
            ok = false;
        }
    }
    let rest: Vec<_> = m
        .iter()
        .filter(|(k, _)| !later.contains(&k.name.as_str()))
        .cloned()
        .collect();
    let before = ctx.d.errors.len();
    check_keys(ctx.d, &rest, path, known);
    ok && ctx.d.errors.len() == before
}

pub(crate) fn decode_llm(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    next_index: &mut usize,
) -> Option<LlmConfig> {
    let m = as_map(ctx.d, node, path)?;
    let mut ok = check(ctx, m, path, TOP, TOP_LATER);
    let port = match get(m, "port") {
        Some(n) => super::decode::port_number(ctx.d, n, &join_key(path, "port")),
        None => {
            ctx.d.error(
                &node.loc,
                path,
                "missing required key `port` (Sluice serves `llm:` on its own port)",
            );
            None
        }
    };
    let listener = ListenerRef {
        port,
        listener: LLM_LISTENER.into(),
    };
    let mut models = Vec::new();
    match get(m, "models") {
        Some(n) => {
            let mp = join_key(path, "models");
            for (i, item) in as_list(ctx.d, n, &mp)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let index = *next_index;
                *next_index += 1;
                match decode_model(ctx, item, &join_index(&mp, i), &listener, index) {
                    Some(x) => models.push(x),
                    None => ok = false,
                }
            }
        }
        None => {
            ctx.d
                .error(&node.loc, path, "missing required key `models`");
            ok = false;
        }
    }
    if ok && models.is_empty() {
        ctx.d.error(
            &node.loc,
            &join_key(path, "models"),
            "list at least one model",
        );
        ok = false;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, mo) in models.iter().enumerate() {
        if !seen.insert(mo.name.clone()) {
            ctx.d.error(
                &mo.route.location,
                &join_index(&join_key(path, "models"), i),
                format!("model `{}` is listed twice", mo.name),
            );
            ok = false;
        }
    }
    let mut virtual_models = Vec::new();
    if let Some(n) = get(m, "virtualModels") {
        let vp = join_key(path, "virtualModels");
        for (i, item) in as_list(ctx.d, n, &vp)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match decode_virtual(ctx, item, &join_index(&vp, i), &models) {
                Some(v) => {
                    if !seen.insert(v.name.clone()) {
                        ctx.d.error(
                            &item.loc,
                            &join_index(&vp, i),
                            format!("virtual model `{}` has the name of another model", v.name),
                        );
                        ok = false;
                    }
                    virtual_models.push(v)
                }
                None => ok = false,
            }
        }
    }
    let mut policies = None;
    if let Some(n) = get(m, "policies") {
        let pp = join_key(path, "policies");
        if let Some(pm) = as_map(ctx.d, n, &pp) {
            if check(ctx, pm, &pp, POLICIES, POLICIES_LATER) {
                let (pol, _) = super::policies::decode_policies(ctx, n, &pp);
                let index = *next_index;
                *next_index += 1;
                policies = Some(Route {
                    name: "llm/policies".into(),
                    matches: Vec::new(),
                    policies: pol,
                    backends: Vec::new(),
                    listener: Some(listener.clone()),
                    location: n.loc.clone(),
                    index,
                });
            } else {
                ok = false;
            }
        }
    }
    (ok).then_some(())?;
    Some(LlmConfig {
        port: port?,
        models,
        virtual_models,
        policies,
    })
}

fn decode_model(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    listener: &ListenerRef,
    index: usize,
) -> Option<LlmModel> {
    let m = as_map(ctx.d, node, path)?;
    let mut ok = check(ctx, m, path, MODEL, MODEL_LATER);
    let name = match get(m, "name") {
        Some(n) => nonempty(ctx.d, n, &join_key(path, "name")),
        None => {
            ctx.d.error(&node.loc, path, "missing required key `name`");
            None
        }
    };
    if let Some(n) = &name {
        let inner = n.trim_start_matches('*').trim_end_matches('*');
        if n != "*" && inner.contains('*') || n.starts_with('*') && n.ends_with('*') && n != "*" {
            ctx.d.error(
                &node.loc,
                &join_key(path, "name"),
                format!("model name `{n}`: `*` may only lead or end the name (`prefix*`, `*suffix`, `*`)"),
            );
            ok = false;
        }
    }
    let provider = match get(m, "provider") {
        Some(n) => {
            let p = join_key(path, "provider");
            let s = string(ctx.d, n, &p);
            match s
                .as_deref()
                .and_then(|s| PROVIDERS.iter().find(|(k, _)| *k == s))
            {
                Some((_, prov)) => Some(*prov),
                None => {
                    if s.is_some() {
                        let names: Vec<&str> = PROVIDERS.iter().map(|(k, _)| *k).collect();
                        ctx.d.error(
                            &n.loc,
                            &p,
                            format!(
                                "unknown provider {}{} (expected one of {})",
                                n.shown(),
                                super::suggest::hint(s.as_deref().unwrap_or_default(), &names),
                                names.join(", ")
                            ),
                        );
                    }
                    None
                }
            }
        }
        None => {
            ctx.d.error(
                &node.loc,
                path,
                "missing required key `provider` (e.g. `openAI`, `anthropic`)",
            );
            None
        }
    };
    let internal = match get(m, "visibility") {
        Some(n) => super::decode::one_of(
            ctx.d,
            n,
            &join_key(path, "visibility"),
            &[("public", false), ("internal", true)],
        )
        .unwrap_or_else(|| {
            ok = false;
            false
        }),
        None => false,
    };
    let mut transform_model = None;
    if let Some(n) = get(m, "transformation") {
        let tp = join_key(path, "transformation");
        if let Some(tm) = as_map(ctx.d, n, &tp) {
            ok &= check(ctx, tm, &tp, &["model"], &[]);
            if let Some(e) = get(tm, "model") {
                transform_model = cel_source(ctx, e, &join_key(&tp, "model"));
                ok &= transform_model.is_some();
            }
        }
    }
    let mut ai = AiBackend {
        name: name.clone().unwrap_or_default(),
        provider: provider.unwrap_or(Provider::OpenAi),
        model: None,
        params: Box::default(),
        host_override: None,
        path_prefix: None,
        path_override: None,
        policies: Default::default(),
    };
    let mut policies = Policies {
        ai: Some(AiPolicy {
            routes: default_ai_routes(),
            model_aliases: Default::default(),
            translation: Default::default(),
        }),
        ..Default::default()
    };
    if let Some(n) = get(m, "params") {
        ok &= decode_params(ctx, n, &join_key(path, "params"), &mut ai, &mut policies);
    }
    if !ok {
        return None;
    }
    let name = name?;
    provider?;
    Some(LlmModel {
        name: name.clone(),
        internal,
        transform_model,
        route: Route {
            name: format!("llm/{name}"),
            matches: Vec::new(),
            policies,
            backends: vec![RouteBackend {
                weight: 1,
                kind: Backend::Ai(ai),
                policies: Default::default(),
            }],
            listener: Some(listener.clone()),
            location: node.loc.clone(),
            index,
        },
    })
}

fn decode_params(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    ai: &mut AiBackend,
    policies: &mut Policies,
) -> bool {
    let Some(m) = as_map(ctx.d, node, path) else {
        return false;
    };
    let mut ok = check(ctx, m, path, PARAMS, PARAMS_LATER);
    for (k, v) in m {
        let kp = join_key(path, &k.name);
        if !PARAMS.contains(&k.name.as_str()) {
            continue;
        }
        let Some(s) = nonempty(ctx.d, v, &kp) else {
            ok = false;
            continue;
        };
        let p = &mut ai.params;
        match k.name.as_str() {
            "model" => ai.model = Some(s),
            "apiKey" => policies.backend_auth = Some(BackendAuth::Key(Secret::new(s))),
            "baseUrl" => match split_base_url(&s) {
                Some((origin, prefix)) => {
                    ai.host_override = Some(origin);
                    ai.path_prefix = prefix;
                }
                None => {
                    ctx.d.error(
                        &v.loc,
                        &kp,
                        format!(
                            "invalid base URL {}: expected `http(s)://host[:port][/path]`",
                            v.shown()
                        ),
                    );
                    ok = false;
                }
            },
            "hostOverride" => ai.host_override = Some(s),
            "pathPrefix" => ai.path_prefix = Some(s),
            "pathOverride" => ai.path_override = Some(s),
            "awsRegion" | "vertexRegion" => p.region = Some(s),
            "vertexProject" => p.project_id = Some(s),
            "azureResourceName" => p.resource_name = Some(s),
            "azureResourceType" => p.resource_type = Some(s),
            "azureApiVersion" => p.api_version = Some(s),
            "azureProjectName" => p.project_name = Some(s),
            _ => {}
        }
    }
    ok
}

/// `https://host[:port][/path]` → (`https://host[:port]`, `/path`).
fn split_base_url(s: &str) -> Option<(String, Option<String>)> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))?;
    let scheme_len = s.len() - rest.len();
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['?', '#', '@']) || path.contains(['?', '#']) {
        return None;
    }
    let path = path.trim_end_matches('/');
    Some((
        format!("{}{host}", &s[..scheme_len]),
        (!path.is_empty()).then(|| path.to_string()),
    ))
}

/// The API formats an LLM port accepts, by path suffix (agentgateway's
/// default route types, for the formats Sluice speaks).
fn default_ai_routes() -> indexmap::IndexMap<String, AiKind> {
    [
        ("/v1/chat/completions", AiKind::Completions),
        ("/v1/messages/count_tokens", AiKind::AnthropicTokenCount),
        ("/v1/messages", AiKind::Messages),
        ("/v1/responses", AiKind::Responses),
        ("/v1/embeddings", AiKind::Embeddings),
        ("/v1/models", AiKind::Models),
        ("*", AiKind::Passthrough),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A CEL expression, compiled now so a mistake is a config error here.
fn cel_source(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let s = nonempty(ctx.d, node, path)?;
    match LlmExpr::compile(&s) {
        Ok(_) => Some(s),
        Err(e) => {
            ctx.d.error(&node.loc, path, e.to_string());
            None
        }
    }
}

/// Does model name `pattern` (exact, `prefix*`, `*suffix`, `*`) match `model`?
pub fn name_matches(pattern: &str, model: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return model.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return model.ends_with(suffix);
    }
    pattern == model
}

fn decode_virtual(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    models: &[LlmModel],
) -> Option<VirtualModel> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["name", "routing"]);
    let name = match get(m, "name") {
        Some(n) => nonempty(ctx.d, n, &join_key(path, "name")),
        None => {
            ctx.d.error(&node.loc, path, "missing required key `name`");
            None
        }
    };
    let Some(rn) = get(m, "routing") else {
        ctx.d
            .error(&node.loc, path, "missing required key `routing`");
        return None;
    };
    let rp = join_key(path, "routing");
    let rm = as_map(ctx.d, rn, &rp)?;
    const KINDS: &[&str] = &["weighted", "failover", "conditional"];
    check_keys(ctx.d, rm, &rp, KINDS);
    if rm.len() != 1 {
        ctx.d.error(
            &rn.loc,
            &rp,
            "expected exactly one of `weighted`, `failover`, `conditional`",
        );
        return None;
    }
    let (k, v) = &rm[0];
    let kp = join_key(&rp, &k.name);
    let km = as_map(ctx.d, v, &kp)?;
    check_keys(ctx.d, km, &kp, &["targets"]);
    let tp = join_key(&kp, "targets");
    let Some(tn) = get(km, "targets") else {
        ctx.d.error(&v.loc, &kp, "missing required key `targets`");
        return None;
    };
    let items = as_list(ctx.d, tn, &tp)?;
    if items.is_empty() {
        ctx.d.error(&tn.loc, &tp, "list at least one target");
        return None;
    }
    let mut ok = true;
    let mut weighted = Vec::new();
    let mut failover = Vec::new();
    let mut conditional = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let ip = join_index(&tp, i);
        let Some(t_m) = as_map(ctx.d, t, &ip) else {
            ok = false;
            continue;
        };
        let (keys, num): (&[&str], Option<&str>) = match k.name.as_str() {
            "weighted" => (&["model", "weight"], Some("weight")),
            "failover" => (&["model", "priority"], Some("priority")),
            _ => (&["model", "when"], None),
        };
        check_keys(ctx.d, t_m, &ip, keys);
        let model = match get(t_m, "model") {
            Some(n) => nonempty(ctx.d, n, &join_key(&ip, "model")),
            None => {
                ctx.d.error(&t.loc, &ip, "missing required key `model`");
                None
            }
        };
        if let Some(mo) = &model {
            if !models.iter().any(|x| name_matches(&x.name, mo)) {
                ctx.d.error(
                    &t.loc,
                    &join_key(&ip, "model"),
                    format!("target `{mo}` matches no entry of `llm.models`"),
                );
                ok = false;
            }
        }
        let number = match num.and_then(|n| get(t_m, n).map(|v| (n, v))) {
            Some((n, v)) => match integer(ctx.d, v, &join_key(&ip, n)).map(u64::try_from) {
                Some(Ok(x)) => Some(x),
                _ => {
                    ok = false;
                    None
                }
            },
            None if k.name == "failover" => {
                ctx.d.error(&t.loc, &ip, "missing required key `priority`");
                ok = false;
                None
            }
            None => None,
        };
        let Some(model) = model else {
            ok = false;
            continue;
        };
        match k.name.as_str() {
            "weighted" => weighted.push((model, number.unwrap_or(1))),
            "failover" => failover.push((number.unwrap_or(0), model)),
            _ => {
                let when = match get(t_m, "when") {
                    Some(w) => {
                        let s = cel_source(ctx, w, &join_key(&ip, "when"));
                        ok &= s.is_some();
                        s
                    }
                    None => {
                        if i + 1 != items.len() {
                            ctx.d.error(
                                &t.loc,
                                &ip,
                                "a target without `when` is the fallback and must come last",
                            );
                            ok = false;
                        }
                        None
                    }
                };
                conditional.push((when, model));
            }
        }
    }
    if k.name == "weighted" && weighted.iter().all(|(_, w)| *w == 0) {
        ctx.d
            .error(&tn.loc, &tp, "at least one target needs a weight above 0");
        ok = false;
    }
    failover.sort_by_key(|(p, _)| *p);
    let routing = match k.name.as_str() {
        "weighted" => VirtualRouting::Weighted(weighted),
        "failover" => VirtualRouting::Failover(failover.into_iter().map(|(_, m)| m).collect()),
        _ => VirtualRouting::Conditional(conditional),
    };
    ok.then_some(())?;
    Some(VirtualModel {
        name: name?,
        routing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_split_into_origin_and_prefix() {
        assert_eq!(
            split_base_url("https://api.openai.com/v1"),
            Some(("https://api.openai.com".into(), Some("/v1".into())))
        );
        assert_eq!(
            split_base_url("http://127.0.0.1:8080/"),
            Some(("http://127.0.0.1:8080".into(), None))
        );
        assert_eq!(split_base_url("api.openai.com/v1"), None);
        assert_eq!(split_base_url("https://u@h/v1"), None);
    }

    #[test]
    fn names_match_as_agentgateway_does() {
        assert!(name_matches("*", "x"));
        assert!(name_matches("anthropic/*", "anthropic/claude"));
        assert!(!name_matches("anthropic/*", "Anthropic/claude"));
        assert!(name_matches("*-mini", "gpt-4o-mini"));
        assert!(name_matches("smart", "smart"));
        assert!(!name_matches("smart", "smart2"));
    }
}
