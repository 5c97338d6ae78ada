//! `config.tracing`: agentgateway's keys, verbatim.
//!
//! ```yaml
//! config:
//!   tracing:
//!     otlpEndpoint: http://collector:4317
//!     otlpProtocol: grpc            # or http (then `path`, default /v1/traces)
//!     headers: {Authorization: "Bearer $OTLP_TOKEN"}
//!     randomSampling: 0.1           # true, false or a ratio 0.0-1.0
//!     clientSampling: true          # honour the caller's sampled flag
//!     fields:
//!       add: {team: 'jwt.team', span.name: '"llm"'}
//!       remove: [gen_ai.request.temperature]
//!     content:                      # Sluice's own key: opt-in prompt/answer content
//!       enabled: true
//!       allowUnmasked: false        # default; then every route must run `outputFilter`
//! ```
//!
//! agentgateway evaluates `fields.add` as CEL, and so does Sluice: the
//! common forms (literals, and the plain variables listed in [`VARIABLES`])
//! are read without an interpreter, and every other expression is compiled
//! at load ([`crate::trace_cel`]), so a bad one is a config error naming it.
//! Expressions that read the prompt or the answer (`llm.prompt`,
//! `llm.completion`) follow the content rule of `content` below.

use serde::{Serialize, Serializer};

use super::decode::{
    as_list, as_map, boolean, check_keys, expected, get, nonempty, one_of, string,
};
use super::error::Diags;
use super::tree::{join_index, join_key, Kind, Node, Typed};
use super::types::Secret;

/// `otlpProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (unary `TraceService/Export` over HTTP/2).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// The decoded `config.tracing`. Unset keys stay `None` so that the
/// `OTEL_EXPORTER_OTLP_*` variables can fill them in (the config wins).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingConfig {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<OtlpProtocol>,
    /// OTLP/HTTP path; default `/v1/traces`.
    pub path: Option<String>,
    /// Sent on every export; values are secrets (credentials, mostly).
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<(String, Secret)>,
    /// Chance to start a trace for a request that carries none.
    pub random_sampling: f64,
    /// Chance to keep a trace the caller marked as sampled.
    pub client_sampling: f64,
    pub fields: TraceFields,
    /// `content`: record `gen_ai.input.messages`/`gen_ai.output.messages`.
    /// `None`: never (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<TraceContent>,
}

/// `content: {enabled: true, allowUnmasked: false}`: Sluice's key (agentgateway
/// has none). Prompt and answer text are personal data, so recording them is
/// opt-in, and refused unless each route masks its answers (`outputFilter`)
/// or the operator says `allowUnmasked: true` outright.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceContent {
    pub allow_unmasked: bool,
    /// Where `content` is, for the error that names it.
    #[serde(skip)]
    pub location: super::error::Location,
}

/// Compared on reload: where the key sits does not change what it does.
impl PartialEq for TraceContent {
    fn eq(&self, other: &Self) -> bool {
        self.allow_unmasked == other.allow_unmasked
    }
}

fn ser_headers<S: Serializer>(h: &[(String, Secret)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(h.len()))?;
    for (k, v) in h {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// `fields`: attributes added to the request span, and attribute keys
/// removed from every span.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TraceFields {
    pub add: Vec<(String, FieldExpr)>,
    pub remove: Vec<String>,
    /// Where `fields` is, for the warning about content fields.
    #[serde(skip)]
    pub location: Option<super::error::Location>,
}

/// Compared on reload: where the key sits does not change what it does.
impl PartialEq for TraceFields {
    fn eq(&self, other: &Self) -> bool {
        self.add == other.add && self.remove == other.remove
    }
}

/// A `fields.add` value Sluice can evaluate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldExpr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Var(FieldVar),
    /// Any other expression, compiled.
    Cel(CelField),
}

/// A compiled `fields.add` expression; compared and shown by its source.
#[derive(Clone, Debug)]
pub struct CelField(pub std::sync::Arc<crate::trace_cel::TraceExpr>);

impl PartialEq for CelField {
    fn eq(&self, other: &Self) -> bool {
        self.0.source() == other.0.source()
    }
}

impl Serialize for CelField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.source())
    }
}

/// The variables `fields.add` may name (agentgateway's CEL names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldVar {
    LlmProvider,
    LlmRequestModel,
    LlmResponseModel,
    LlmStreaming,
    LlmInputTokens,
    LlmOutputTokens,
    LlmTotalTokens,
    LlmCachedInputTokens,
    LlmCacheCreationInputTokens,
    LlmReasoningTokens,
    RequestMethod,
    RequestPath,
    /// Lower-case header name.
    RequestHeader(String),
    SourceAddress,
    /// `jwt.<claim>`: the claim a JWT policy stored as `auth.claims.<claim>`.
    JwtClaim(String),
}

/// The plain variables, by their CEL name.
pub const VARIABLES: &[(&str, FieldVar)] = &[
    ("llm.provider", FieldVar::LlmProvider),
    ("llm.requestModel", FieldVar::LlmRequestModel),
    ("llm.responseModel", FieldVar::LlmResponseModel),
    ("llm.streaming", FieldVar::LlmStreaming),
    ("llm.inputTokens", FieldVar::LlmInputTokens),
    ("llm.outputTokens", FieldVar::LlmOutputTokens),
    ("llm.totalTokens", FieldVar::LlmTotalTokens),
    ("llm.cachedInputTokens", FieldVar::LlmCachedInputTokens),
    (
        "llm.cacheCreationInputTokens",
        FieldVar::LlmCacheCreationInputTokens,
    ),
    ("llm.reasoningTokens", FieldVar::LlmReasoningTokens),
    ("request.method", FieldVar::RequestMethod),
    ("request.path", FieldVar::RequestPath),
    ("source.address", FieldVar::SourceAddress),
];

const KEYS: &[&str] = &[
    "otlpEndpoint",
    "otlpProtocol",
    "path",
    "headers",
    "randomSampling",
    "clientSampling",
    "fields",
    "content",
];

pub(crate) fn decode_tracing(d: &mut Diags, node: &Node, path: &str) -> Option<TracingConfig> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, KEYS);
    let errors_before = d.errors.len();
    let mut t = TracingConfig {
        otlp_endpoint: None,
        otlp_protocol: None,
        path: None,
        headers: Vec::new(),
        random_sampling: 0.0,
        client_sampling: 1.0,
        fields: TraceFields::default(),
        content: None,
    };
    if let Some(n) = get(m, "otlpEndpoint").filter(|n| !n.is_null()) {
        t.otlp_endpoint = endpoint(d, n, &join_key(path, "otlpEndpoint"));
    }
    if let Some(n) = get(m, "otlpProtocol").filter(|n| !n.is_null()) {
        t.otlp_protocol = one_of(
            d,
            n,
            &join_key(path, "otlpProtocol"),
            &[("grpc", OtlpProtocol::Grpc), ("http", OtlpProtocol::Http)],
        );
    }
    if let Some(n) = get(m, "path").filter(|n| !n.is_null()) {
        let p = join_key(path, "path");
        if let Some(s) = string(d, n, &p) {
            if !s.starts_with('/') {
                d.error(&n.loc, &p, format!("{} must start with `/`", n.shown()));
            } else if t.otlp_protocol == Some(OtlpProtocol::Grpc) {
                d.error(
                    &n.loc,
                    &p,
                    "`path` applies to `otlpProtocol: http` only (OTLP/gRPC has a fixed method path)",
                );
            } else {
                t.path = Some(s);
            }
        }
    }
    if let Some(n) = get(m, "headers") {
        t.headers = headers(d, n, &join_key(path, "headers"));
    }
    if let Some(n) = get(m, "randomSampling").filter(|n| !n.is_null()) {
        t.random_sampling = sampling(d, n, &join_key(path, "randomSampling")).unwrap_or(0.0);
    }
    if let Some(n) = get(m, "clientSampling").filter(|n| !n.is_null()) {
        t.client_sampling = sampling(d, n, &join_key(path, "clientSampling")).unwrap_or(1.0);
    }
    if let Some(n) = get(m, "fields").filter(|n| !n.is_null()) {
        t.fields = fields(d, n, &join_key(path, "fields"));
    }
    if let Some(n) = get(m, "content").filter(|n| !n.is_null()) {
        t.content = content(d, n, &join_key(path, "content"));
    }
    (d.errors.len() == errors_before).then_some(t)
}

/// `content: {enabled, allowUnmasked}`; `None` when not enabled.
fn content(d: &mut Diags, node: &Node, path: &str) -> Option<TraceContent> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["enabled", "allowUnmasked"]);
    let enabled = match get(m, "enabled") {
        Some(n) => boolean(d, n, &join_key(path, "enabled"))?,
        None => false,
    };
    let allow_unmasked = match get(m, "allowUnmasked") {
        Some(n) => boolean(d, n, &join_key(path, "allowUnmasked"))?,
        None => false,
    };
    enabled.then(|| TraceContent {
        allow_unmasked,
        location: node.loc.clone(),
    })
}

/// `http(s)://host[:port][/base]`.
fn endpoint(d: &mut Diags, node: &Node, path: &str) -> Option<String> {
    let s = nonempty(d, node, path)?;
    let ok = s
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
        .is_some_and(|u| u.host().is_some_and(|h| !h.is_empty()));
    if !ok {
        d.error(
            &node.loc,
            path,
            format!(
                "invalid OTLP endpoint {}: expected a URL like `http://collector:4317`",
                node.shown()
            ),
        );
        return None;
    }
    Some(s)
}

fn headers(d: &mut Diags, node: &Node, path: &str) -> Vec<(String, Secret)> {
    let mut out = Vec::new();
    let Some(m) = as_map(d, node, path) else {
        return out;
    };
    for (k, v) in m {
        let p = join_key(path, &k.name);
        if http::HeaderName::from_bytes(k.name.as_bytes()).is_err() {
            d.error(&k.loc, &p, format!("invalid header name `{}`", k.name));
            continue;
        }
        let Some(value) = string(d, v, &p) else {
            continue;
        };
        if http::HeaderValue::from_str(&value).is_err() {
            // Never echo the value: it is most likely a credential.
            d.error(&v.loc, &p, "invalid header value (control characters?)");
            continue;
        }
        out.push((k.name.clone(), Secret::new(value)));
    }
    out
}

/// `true`, `false` or a ratio in 0.0-1.0 (also as a string: it is what a
/// CEL expression made of one literal evaluates to).
fn sampling(d: &mut Diags, node: &Node, path: &str) -> Option<f64> {
    let Kind::Scalar(s) = &node.kind else {
        expected(d, node, path, "true, false or a ratio between 0.0 and 1.0");
        return None;
    };
    let text = s.text.trim();
    let value = match s.typed() {
        Typed::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        Typed::Int(i) => Some(i as f64),
        Typed::Float(f) => Some(f),
        _ => match text {
            "true" => Some(1.0),
            "false" => Some(0.0),
            _ => text.parse::<f64>().ok(),
        },
    };
    match value {
        Some(v) if (0.0..=1.0).contains(&v) => Some(v),
        Some(_) => {
            d.error(
                &node.loc,
                path,
                format!(
                    "ratio {} is out of range: expected 0.0 to 1.0",
                    node.shown()
                ),
            );
            None
        }
        None => {
            d.error(
                &node.loc,
                path,
                format!(
                    "{} is a CEL expression, which Sluice does not evaluate here: \
                     give true, false or a ratio between 0.0 and 1.0",
                    node.shown()
                ),
            );
            None
        }
    }
}

fn fields(d: &mut Diags, node: &Node, path: &str) -> TraceFields {
    let mut out = TraceFields {
        location: Some(node.loc.clone()),
        ..TraceFields::default()
    };
    let Some(m) = as_map(d, node, path) else {
        return out;
    };
    check_keys(d, m, path, &["add", "remove"]);
    if let Some(n) = get(m, "add") {
        let p = join_key(path, "add");
        if let Some(am) = as_map(d, n, &p) {
            for (k, v) in am {
                let kp = join_key(&p, &k.name);
                if let Some(e) = string(d, v, &kp) {
                    let x = match field_expr(&e) {
                        Some(x) => Some(x),
                        None => match crate::trace_cel::TraceExpr::compile(&e) {
                            Ok(t) => Some(FieldExpr::Cel(CelField(std::sync::Arc::new(t)))),
                            Err(err) => {
                                d.error(&v.loc, &kp, format!("{}: {err}", v.shown()));
                                None
                            }
                        },
                    };
                    out.add.extend(x.map(|x| (k.name.clone(), x)));
                }
            }
        }
    }
    if let Some(n) = get(m, "remove") {
        let p = join_key(path, "remove");
        if let Some(items) = as_list(d, n, &p) {
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = nonempty(d, item, &join_index(&p, i)) {
                    out.remove.push(s);
                }
            }
        }
    }
    out
}

/// Parse the CEL subset Sluice evaluates; `None` for anything else.
pub fn field_expr(expr: &str) -> Option<FieldExpr> {
    let e = expr.trim();
    for q in ['"', '\''] {
        if e.len() >= 2 && e.starts_with(q) && e.ends_with(q) {
            let inner = &e[1..e.len() - 1];
            if inner.contains(q) || inner.contains('\\') {
                return None;
            }
            return Some(FieldExpr::Str(inner.to_string()));
        }
    }
    match e {
        "true" => return Some(FieldExpr::Bool(true)),
        "false" => return Some(FieldExpr::Bool(false)),
        _ => {}
    }
    if let Ok(i) = e.parse::<i64>() {
        return Some(FieldExpr::Int(i));
    }
    if let Ok(f) = e.parse::<f64>() {
        return f.is_finite().then_some(FieldExpr::Float(f));
    }
    if let Some((_, v)) = VARIABLES.iter().find(|(n, _)| *n == e) {
        return Some(FieldExpr::Var(v.clone()));
    }
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    };
    if let Some(claim) = e.strip_prefix("jwt.") {
        return ident(claim).then(|| FieldExpr::Var(FieldVar::JwtClaim(claim.to_string())));
    }
    let header = e
        .strip_prefix("request.headers[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| {
            let r = r.trim();
            ['"', '\''].iter().find_map(|q| {
                r.strip_prefix(*q)
                    .and_then(|r| r.strip_suffix(*q))
                    .map(str::to_string)
            })
        })
        .or_else(|| {
            e.strip_prefix("request.headers.")
                .filter(|h| ident(h) && !h.contains('.'))
                .map(str::to_string)
        })?;
    http::HeaderName::from_bytes(header.as_bytes())
        .ok()
        .map(|h| FieldExpr::Var(FieldVar::RequestHeader(h.as_str().to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_expressions() {
        assert_eq!(
            field_expr(r#""openai.chat""#),
            Some(FieldExpr::Str("openai.chat".into()))
        );
        assert_eq!(field_expr("'x'"), Some(FieldExpr::Str("x".into())));
        assert_eq!(
            field_expr("llm.provider"),
            Some(FieldExpr::Var(FieldVar::LlmProvider))
        );
        assert_eq!(
            field_expr("jwt.team"),
            Some(FieldExpr::Var(FieldVar::JwtClaim("team".into())))
        );
        assert_eq!(
            field_expr(r#"request.headers["X-Team"]"#),
            Some(FieldExpr::Var(FieldVar::RequestHeader("x-team".into())))
        );
        assert_eq!(field_expr("42"), Some(FieldExpr::Int(42)));
        assert_eq!(field_expr("flattenRecursive(llm.prompt)"), None);
        assert_eq!(field_expr("llm.prompt"), None);
        assert_eq!(field_expr(r#""a" + "b""#), None);
    }
}
