//! Config: the two YAML forms, parsed and compiled into [`Settings`].
//!
//! - The guide's `auth: {jwt: {issuer, audiences}, actions: {onSuccess: ...}}`
//!   (`actions` beside `jwt`, as the guide writes it, or inside it).
//! - agentgateway's `jwtAuth: {issuer, audiences, jwks: {url|inline|file}, mode}`.
//!
//! Both share the same JWT fields. Everything is checked here, once, so
//! `validate` reports mistakes at startup and hooks never meet a bad config.

use std::collections::BTreeSet;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use sluice_sdk::header_set::OnMissing;
use sluice_sdk::template::Template;

use crate::jwt::ClaimRules;
use crate::keys::{self, Key};
use crate::url;

/// The config object the host passes, keyed by the YAML key that attached us.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub auth: Option<AuthBlock>,
    #[serde(default, rename = "jwtAuth")]
    pub jwt_auth: Option<JwtSpec>,
}

/// The guide's `auth:` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBlock {
    pub jwt: Option<JwtSpec>,
    #[serde(default)]
    pub actions: Option<Actions>,
}

/// Token checking mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// A valid token is required.
    #[default]
    #[serde(alias = "Strict")]
    Strict,
    /// No token is fine; a token that is present must be valid.
    #[serde(alias = "Optional")]
    Optional,
    /// Invalid or missing tokens pass, without claims.
    #[serde(alias = "Permissive")]
    Permissive,
}

/// The JWT fields shared by `auth.jwt` and `jwtAuth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtSpec {
    /// Expected `iss`; also the OIDC discovery base when no keys are given.
    pub issuer: Option<String>,
    /// Accepted `aud` values (any one must be in the token's `aud`).
    #[serde(default)]
    pub audiences: Option<OneOrMany>,
    pub jwks: Option<JwksSpec>,
    #[serde(default)]
    pub mode: Mode,
    /// Header carrying the token (default `authorization`).
    pub header: Option<String>,
    /// Prefix before the token in `header` (default `Bearer ` for `authorization`).
    pub prefix: Option<String>,
    /// Clock skew allowed on exp/nbf: seconds, or a duration like `30s`.
    pub leeway: Option<Duration>,
    /// HMAC secret for HS256/384/512 tokens (use `$ENV_VAR` in the YAML).
    pub secret: Option<String>,
    /// Restrict accepted algorithms (default: all supported).
    pub algorithms: Option<Vec<String>>,
    /// Extra hosts the discovery document's `jwks_uri` may point to.
    pub jwks_hosts: Option<Vec<String>>,
    /// Keep the credential header when forwarding (default: removed).
    #[serde(default)]
    pub forward_token: bool,
    /// Refuse tokens without `exp` (default true).
    pub require_exp: Option<bool>,
    pub actions: Option<Actions>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A duration: a number of seconds or text such as `500ms`, `30s`, `5m`, `1h`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    pub fn millis(&self, key: &str) -> Result<u64, String> {
        match self {
            Duration::Seconds(s) => Ok(s.saturating_mul(1000)),
            Duration::Text(t) => parse_duration_ms(t).ok_or_else(|| {
                format!(
                    "`{key}`: `{t}` is not a duration (e.g. 30s, 5m, 1h; or a number of seconds)"
                )
            }),
        }
    }
}

/// Text durations use the SDK's one grammar (`500ms`, `30s`, `5m`, `1h`);
/// a bare number of seconds is written as a YAML number.
fn parse_duration_ms(t: &str) -> Option<u64> {
    sluice_sdk::units::parse_duration_ms(t).ok()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwksSpec {
    pub url: Option<String>,
    /// A JWKS as JSON text or as a YAML object.
    pub inline: Option<Value>,
    /// Plugins cannot read files; see [`compile`].
    pub file: Option<String>,
    /// How long fetched keys are cached (default 5m).
    pub cache_ttl: Option<Duration>,
    /// Least time between two forced re-fetches for unknown `kid`s (default 30s).
    pub refresh_interval: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Actions {
    pub on_success: Option<OnSuccess>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OnSuccess {
    /// `[{set: {H: V}}, {add: {H: V}}, {remove: [H]}]` or one such object.
    pub request_headers: Option<Value>,
    /// What a `set`/`add` whose template has no value does: `remove`
    /// (default: a set removes the header, an add adds nothing) or `reject`
    /// (403). Any other value is refused by serde.
    #[serde(default)]
    pub on_missing: OnMissing,
}

/// A header edit to apply after a successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Set(String, Template),
    Add(String, Template),
    Remove(String),
}

/// Where remote keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A JWKS URL.
    Jwks(String),
    /// `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery { url: String, issuer: String },
}

/// The compiled config.
#[derive(Debug)]
pub struct Settings {
    pub mode: Mode,
    /// Lowercase header name.
    pub header: String,
    pub prefix: Option<String>,
    pub rules: ClaimRules,
    pub algorithms: Vec<Algorithm>,
    pub static_keys: Vec<Key>,
    pub remote: Option<Remote>,
    /// Hosts (`host` / `host:port`) a discovery `jwks_uri` may use.
    pub jwks_hosts: Vec<String>,
    pub fetch_hosts: Vec<String>,
    pub cache_ttl_ms: u64,
    pub refresh_interval_ms: u64,
    pub forward_token: bool,
    pub on_success: Vec<Edit>,
    pub on_missing: OnMissing,
}

pub const DEFAULT_LEEWAY_S: u64 = 60;
pub const DEFAULT_CACHE_TTL_MS: u64 = 5 * 60 * 1000;
pub const DEFAULT_REFRESH_INTERVAL_MS: u64 = 30 * 1000;

const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Check and compile a parsed config.
pub fn compile(config: Config) -> Result<Settings, String> {
    let (spec, outer_actions, p) = match (config.auth, config.jwt_auth) {
        (Some(_), Some(_)) => {
            return Err("use either `auth` or `jwtAuth`, not both".into());
        }
        (None, None) => return Err("missing `auth.jwt` or `jwtAuth`".into()),
        (Some(a), None) => {
            let jwt = a
                .jwt
                .ok_or("`auth`: missing `jwt` (only JWT auth is supported)")?;
            (jwt, a.actions, "auth.jwt")
        }
        (None, Some(j)) => (j, None, "jwtAuth"),
    };
    let actions = match (outer_actions, spec.actions) {
        (Some(_), Some(_)) => {
            return Err("`auth.actions` and `auth.jwt.actions` are both set: use one".into())
        }
        (a, b) => a.or(b),
    };

    let header = spec
        .header
        .as_deref()
        .unwrap_or("authorization")
        .trim()
        .to_ascii_lowercase();
    if !is_token(&header) {
        return Err(format!("`{p}.header`: `{header}` is not a header name"));
    }
    let prefix = match spec.prefix {
        Some(p) => Some(p),
        None if header == "authorization" => Some("Bearer ".into()),
        None => None,
    };

    let audiences = match spec.audiences {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(list)) => list,
    };
    if audiences.iter().any(|a| a.is_empty()) {
        return Err(format!("`{p}.audiences`: empty audience"));
    }
    let leeway_ms = match &spec.leeway {
        Some(d) => d.millis(&format!("{p}.leeway"))?,
        None => DEFAULT_LEEWAY_S * 1000,
    };

    let algorithms = match &spec.algorithms {
        None => ALL_ALGORITHMS.to_vec(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                out.push(keys::algorithm(n).ok_or_else(|| {
                    format!("`{p}.algorithms`: unsupported algorithm `{n}` (supported: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)")
                })?);
            }
            if out.is_empty() {
                return Err(format!("`{p}.algorithms` is empty"));
            }
            out
        }
    };

    let mut static_keys = Vec::new();
    if let Some(s) = &spec.secret {
        if s.is_empty() {
            return Err(format!("`{p}.secret` is empty"));
        }
        static_keys.push(Key::secret(s));
    }

    let jwks = spec.jwks.unwrap_or_default();
    let cache_ttl_ms = match &jwks.cache_ttl {
        Some(d) => d.millis(&format!("{p}.jwks.cacheTtl"))?,
        None => DEFAULT_CACHE_TTL_MS,
    };
    let refresh_interval_ms = match &jwks.refresh_interval {
        Some(d) => d.millis(&format!("{p}.jwks.refreshInterval"))?.max(1000),
        None => DEFAULT_REFRESH_INTERVAL_MS,
    };

    let mut fetch_hosts = BTreeSet::new();
    let mut remote = None;
    let sources = [jwks.url.is_some(), jwks.inline.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if sources > 1 {
        return Err(format!("`{p}.jwks`: set one of `url` or `inline`"));
    }
    if let Some(inline) = &jwks.inline {
        // Inline JWKS: JSON text (agentgateway) or a YAML object.
        let doc: Value = match inline {
            Value::String(text) => serde_json::from_str(text)
                .map_err(|e| format!("`{p}.jwks.inline` is not JSON: {e}"))?,
            other => other.clone(),
        };
        let set = keys::parse_jwks(&doc).map_err(|e| format!("`{p}.jwks.inline`: {e}"))?;
        if set.keys.is_empty() {
            return Err(format!(
                "`{p}.jwks.inline` has no usable signing key: {}",
                set.skipped.join("; ")
            ));
        }
        static_keys.extend(set.keys);
    } else if jwks.file.is_some() {
        // A wasm plugin has no filesystem. The gateway may inline the file
        // by adding `inline` with its content (handled above).
        return Err(format!(
            "`{p}.jwks.file` is not supported by this plugin (it cannot read files): \
             use `jwks.inline` with the JWKS JSON, or `jwks.url`"
        ));
    } else if let Some(u) = &jwks.url {
        let host = url::http_host(u).map_err(|e| format!("`{p}.jwks.url`: {e}"))?;
        fetch_hosts.insert(host);
        remote = Some(Remote::Jwks(u.clone()));
    }

    if let Some(iss) = &spec.issuer {
        if iss.is_empty() {
            return Err(format!("`{p}.issuer` is empty"));
        }
    }
    let mut jwks_hosts = Vec::new();
    if remote.is_none() && static_keys.is_empty() {
        // Only an issuer: OIDC discovery.
        let Some(iss) = &spec.issuer else {
            return Err(format!(
                "`{p}`: no keys: set `issuer` (OIDC discovery), `jwks.url`, `jwks.inline` or `secret`"
            ));
        };
        let host = url::http_host(iss)
            .map_err(|e| format!("`{p}.issuer` must be an http(s) URL for key discovery: {e}"))?;
        fetch_hosts.insert(host.clone());
        jwks_hosts.push(host);
        remote = Some(Remote::Discovery {
            url: format!(
                "{}/.well-known/openid-configuration",
                crate::jwt::trim_slash(iss)
            ),
            issuer: iss.clone(),
        });
    }
    for h in spec.jwks_hosts.iter().flatten() {
        let h = h.trim().to_ascii_lowercase();
        if h.is_empty() || h.contains('/') {
            return Err(format!(
                "`{p}.jwksHosts`: `{h}` must be a host or host:port"
            ));
        }
        fetch_hosts.insert(h.clone());
        jwks_hosts.push(h);
    }

    let on_success_block = actions.and_then(|a| a.on_success).unwrap_or_default();
    let on_missing = on_success_block.on_missing;
    let on_success = match on_success_block.request_headers {
        None => Vec::new(),
        Some(v) => parse_edits(&v, &format!("{p}: actions.onSuccess.requestHeaders"))?,
    };
    if !spec.forward_token {
        for e in &on_success {
            if let Edit::Set(_, t) | Edit::Add(_, t) = e {
                if t.headers().any(|h| h == header) {
                    return Err(format!(
                        "`actions.onSuccess.requestHeaders` copies `{header}`, the credential header: \
                         the token must not be forwarded (set `forwardToken: true` to keep it)"
                    ));
                }
            }
        }
    }

    Ok(Settings {
        mode: spec.mode,
        header,
        prefix,
        rules: ClaimRules {
            issuer: spec.issuer,
            audiences,
            leeway_s: leeway_ms / 1000,
            require_exp: spec.require_exp.unwrap_or(true),
        },
        algorithms,
        static_keys,
        remote,
        jwks_hosts,
        fetch_hosts: fetch_hosts.into_iter().collect(),
        cache_ttl_ms,
        refresh_interval_ms,
        forward_token: spec.forward_token,
        on_success,
        on_missing,
    })
}

/// RFC 9110 token characters (header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `requestHeaders`: a list of `{set|add|remove}` objects, or one object.
fn parse_edits(v: &Value, at: &str) -> Result<Vec<Edit>, String> {
    let items: Vec<&Value> = match v {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![v],
        Value::Null => return Ok(Vec::new()),
        _ => return Err(format!("`{at}` must be a list of set/add/remove")),
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(map) = item else {
            return Err(format!(
                "`{at}`: each item must be an object with set/add/remove"
            ));
        };
        for (op, body) in map {
            match op.as_str() {
                "set" | "add" => {
                    let Value::Object(pairs) = body else {
                        return Err(format!("`{at}.{op}` must map header names to values"));
                    };
                    for (name, value) in pairs {
                        if !is_token(name) {
                            return Err(format!("`{at}.{op}`: `{name}` is not a header name"));
                        }
                        let text = scalar_text(value)
                            .ok_or_else(|| format!("`{at}.{op}.{name}` must be a string"))?;
                        let t = Template::parse(&text)
                            .map_err(|e| format!("`{at}.{op}.{name}`: {e}"))?;
                        let name = name.to_ascii_lowercase();
                        out.push(if op == "set" {
                            Edit::Set(name, t)
                        } else {
                            Edit::Add(name, t)
                        });
                    }
                }
                "remove" => {
                    let names: Vec<&Value> = match body {
                        Value::Array(l) => l.iter().collect(),
                        one => vec![one],
                    };
                    for n in names {
                        let Some(n) = n.as_str().filter(|n| is_token(n)) else {
                            return Err(format!("`{at}.remove` must list header names"));
                        };
                        out.push(Edit::Remove(n.to_ascii_lowercase()));
                    }
                }
                other => {
                    return Err(format!(
                        "`{at}`: unknown operation `{other}` (use set, add or remove)"
                    ))
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_json(v: Value) -> Result<Settings, String> {
        compile(serde_json::from_value::<Config>(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn guide_snippet_compiles_to_discovery() {
        let s = compile_json(json!({"auth": {
            "jwt": {"issuer": "https://auth.yourcompany.com", "audiences": ["agentgateway"]},
            "actions": {"onSuccess": {"requestHeaders": [
                {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)"}}
            ]}}
        }}))
        .unwrap();
        assert_eq!(s.mode, Mode::Strict);
        assert_eq!(s.header, "authorization");
        assert_eq!(s.prefix.as_deref(), Some("Bearer "));
        assert_eq!(s.rules.audiences, ["agentgateway"]);
        assert_eq!(s.rules.leeway_s, 60);
        assert_eq!(
            s.remote,
            Some(Remote::Discovery {
                url: "https://auth.yourcompany.com/.well-known/openid-configuration".into(),
                issuer: "https://auth.yourcompany.com".into()
            })
        );
        assert_eq!(s.fetch_hosts, ["auth.yourcompany.com"]);
        assert_eq!(
            s.on_success,
            vec![Edit::Set(
                "x-authenticated-user".into(),
                Template::parse("$(request.auth.claims.email)").unwrap()
            )]
        );
        assert_eq!(s.on_missing, OnMissing::Remove);
    }

    #[test]
    fn production_route_form_without_actions() {
        let s = compile_json(
            json!({"auth": {"jwt": {"issuer": "https://auth.yourcompany.com/",
            "audiences": ["agentgateway"]}}}),
        )
        .unwrap();
        assert!(s.on_success.is_empty());
        assert!(matches!(s.remote, Some(Remote::Discovery { ref url, .. })
            if url == "https://auth.yourcompany.com/.well-known/openid-configuration"));
    }

    #[test]
    fn agentgateway_form_with_url_and_options() {
        let s = compile_json(json!({"jwtAuth": {
            "issuer": "https://idp.example", "audiences": "api",
            "jwks": {"url": "https://keys.example:8443/jwks.json", "cacheTtl": "10m", "refreshInterval": 5},
            "mode": "optional", "header": "X-Token", "leeway": "30s",
            "algorithms": ["RS256"], "forwardToken": true,
            "actions": {"onSuccess": {"requestHeaders": {"add": {"X-Sub": "$(request.auth.sub)"}, "remove": "x-junk"}}}
        }}))
        .unwrap();
        assert_eq!(s.mode, Mode::Optional);
        assert_eq!(s.header, "x-token");
        assert_eq!(s.prefix, None);
        assert_eq!(s.rules.leeway_s, 30);
        assert_eq!(s.cache_ttl_ms, 600_000);
        assert_eq!(s.refresh_interval_ms, 5_000);
        assert_eq!(s.algorithms, [Algorithm::RS256]);
        assert_eq!(s.fetch_hosts, ["keys.example:8443"]);
        assert!(s.forward_token);
        assert_eq!(s.on_success.len(), 2);
    }

    #[test]
    fn inline_jwks_as_text_or_object() {
        let jwk = json!({"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldA"});
        let text = json!({"keys": [jwk]}).to_string();
        let a = compile_json(json!({"jwtAuth": {"jwks": {"inline": text}}})).unwrap();
        let b = compile_json(json!({"jwtAuth": {"jwks": {"inline": {"keys": [jwk]}}}})).unwrap();
        assert_eq!(a.static_keys.len(), 1);
        assert_eq!(b.static_keys.len(), 1);
        assert!(a.remote.is_none() && a.fetch_hosts.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (json!({}), "missing"),
            (json!({"auth": {"jwt": {}}, "jwtAuth": {}}), "not both"),
            (json!({"jwtAuth": {}}), "no keys"),
            (
                json!({"jwtAuth": {"jwks": {"file": "/etc/jwks.json"}}}),
                "jwks.file",
            ),
            (json!({"jwtAuth": {"jwks": {"inline": "{"}}}), "jwks.inline"),
            (
                json!({"jwtAuth": {"jwks": {"inline": {"keys": []}}}}),
                "no usable",
            ),
            (
                json!({"jwtAuth": {"jwks": {"url": "ftp://x/y"}}}),
                "jwks.url",
            ),
            (json!({"jwtAuth": {"issuer": "not a url"}}), "issuer"),
            (
                json!({"jwtAuth": {"secret": "s", "algorithms": ["none"]}}),
                "algorithms",
            ),
            (
                json!({"jwtAuth": {"secret": "s", "leeway": "soon"}}),
                "leeway",
            ),
            (
                json!({"jwtAuth": {"secret": "s", "header": "bad header"}}),
                "header",
            ),
            (
                json!({"jwtAuth": {"secret": "s", "actions": {"onSuccess": {"requestHeaders":
                [{"set": {"X-U": "$(request.auth.claim.email)"}}]}}}}),
                "unknown template",
            ),
            (
                json!({"jwtAuth": {"secret": "s", "actions": {"onSuccess": {"requestHeaders":
                [{"rename": {"X-U": "a"}}]}}}}),
                "unknown operation",
            ),
            (
                json!({"jwtAuth": {"secret": "s", "actions": {"onSuccess": {"requestHeaders":
                [{"set": {"X-U": "$(request.header.authorization)"}}]}}}}),
                "credential",
            ),
            (
                json!({"auth": {"jwt": {"secret": "s", "actions": {}}, "actions": {}}}),
                "both set",
            ),
        ];
        for (cfg, want) in cases {
            let e = compile_json(cfg.clone()).unwrap_err();
            assert!(e.contains(want), "{cfg}: {e}");
        }
        // Unknown keys are refused by serde.
        assert!(serde_json::from_value::<Config>(json!({"jwtAuth": {"isuer": "x"}})).is_err());
        assert!(serde_json::from_value::<Config>(json!({"jwtAuth": {"mode": "lax"}})).is_err());
        let on_missing = |v: Value| {
            serde_json::from_value::<Config>(
                json!({"jwtAuth": {"secret": "s", "actions": {"onSuccess": {"onMissing": v}}}}),
            )
        };
        let e = on_missing(json!("refuse")).unwrap_err().to_string();
        assert!(e.contains("remove") && e.contains("reject"), "{e}");
        assert!(on_missing(json!(true)).is_err());
        let c = on_missing(json!("reject")).unwrap();
        assert_eq!(compile(c).unwrap().on_missing, OnMissing::Reject);
    }

    #[test]
    fn file_with_inlined_content_is_accepted() {
        // How the gateway can support `file`: add the content as `inline`.
        let jwk = json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldA"});
        let s = compile_json(
            json!({"jwtAuth": {"jwks": {"file": "/k.json", "inline": {"keys": [jwk]}}}}),
        )
        .unwrap();
        assert_eq!(s.static_keys.len(), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        // A unit is required in text (numbers of seconds are YAML numbers).
        assert_eq!(parse_duration_ms("7"), None);
        assert_eq!(parse_duration_ms("x"), None);
    }
}
