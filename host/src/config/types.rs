//! The resolved configuration model: plain data the proxy consumes.
//!
//! Exists so the rest of Sluice never sees YAML: every quirk of the guide
//! (route-level `hostOverride`, duplicate `policies`, bare route lists...)
//! has already been normalised away by `decode`. Values from environment
//! variables are secrets: `Secret` never prints, plugin configs remember
//! where their secrets are, and `Config::redacted_json` dumps everything
//! with secrets replaced by `"<redacted>"`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

use super::error::Location;
use super::model_aliases::ModelAliases;

/// Placeholder printed instead of any secret value.
pub const REDACTED: &str = "<redacted>";

/// A secret string (API key, credentials-bearing URL). `Debug`, `Display`
/// and `Serialize` all print `<redacted>`; use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        None => s.serialize_none(),
    }
}

/// The whole, merged configuration.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub binds: Vec<Bind>,
    /// Routes with backends, in file order (across all files).
    pub routes: Vec<Route>,
    /// Entries without backends: policy layers, in file order.
    pub layers: Vec<Route>,
    pub plugins: Vec<PluginDecl>,
    pub admin: Admin,
    pub state: StateConfig,
    /// Resource limits (`limits:`).
    pub limits: super::limits::Limits,
    /// Process-wide settings (`config:`, agentgateway's place for them).
    #[serde(rename = "config")]
    pub global: super::global::GlobalConfig,
    /// agentgateway's LLM mode (`llm:`): its bind, routes and policy layer
    /// are also in `binds`/`routes`/`layers`; this keeps what picks them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<super::llm::LlmConfig>,
    /// Every file loaded, in load order (includes after their includer).
    pub sources: Vec<PathBuf>,
    /// Every scalar that came from environment expansion, so that dumps can
    /// scrub them wherever they ended up. Never serialized.
    #[serde(skip)]
    pub secret_values: Vec<Secret>,
}

impl Config {
    /// The effective configuration as JSON, with every secret (backend keys,
    /// env-expanded values, including inside plugin configs) replaced by
    /// `"<redacted>"`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        scrub(&mut v, &self.secret_values);
        v
    }

    /// All routes and layers, in file order.
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        let mut all: Vec<&Route> = self.routes.iter().chain(&self.layers).collect();
        all.sort_by_key(|r| r.index);
        all.into_iter()
    }
}

fn scrub(v: &mut serde_json::Value, secrets: &[Secret]) {
    match v {
        serde_json::Value::String(s)
            if secrets
                .iter()
                .any(|x| !x.expose().is_empty() && x.expose() == s) =>
        {
            *s = REDACTED.to_string();
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, secrets)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| scrub(x, secrets)),
        _ => {}
    }
}

impl fmt::Debug for Config {
    /// Debug output is the redacted dump: it never shows secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.redacted_json();
        if f.alternate() {
            write!(f, "Config {v:#}")
        } else {
            write!(f, "Config {v}")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Admin {
    pub address: SocketAddr,
    /// Bearer token every admin request must carry. Without one the admin
    /// listener must be (and only accepts) loopback.
    pub token: Option<Secret>,
    /// Extra directories `POST /plugins/{name}/reload` may load a `path` from
    /// (besides the directory of the plugin's declared path).
    pub plugin_dirs: Vec<PathBuf>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: SocketAddr::from(([127, 0, 0, 1], 15000)),
            token: None,
            plugin_dirs: Vec::new(),
        }
    }
}

/// The top-level `state:` section: where shared state (rate-limit counters,
/// KV) lives, and who this replica is. Fixed for the life of the process: a
/// reload that changes it is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateConfig {
    #[serde(flatten)]
    pub backend: StateBackend,
    /// This replica's name in logs and metrics; `None`: the host name.
    pub replica_id: Option<String>,
    /// `state.memory.path`: the directory where one gateway without Redis
    /// saves what must survive a restart (budget spend, runtime keys);
    /// `None`: memory only.
    pub memory_path: Option<String>,
}

/// `memory` (one process) or `redis` (shared by every replica).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "backend")]
pub enum StateBackend {
    #[default]
    Memory,
    Redis(RedisState),
}

/// `state.redis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisState {
    /// `redis://`, `rediss://` (TLS) or `unix://`; may carry credentials.
    pub url: Secret,
    /// Prepended to every key (default `sluice:`).
    pub key_prefix: String,
    /// Multiplexed connections (default 4).
    pub pool_size: u32,
    /// Bound on every store call, connecting included (default 250 ms).
    pub timeout_ms: u64,
    pub failure_mode: StateFailureMode,
}

impl RedisState {
    pub const DEFAULT_PREFIX: &'static str = "sluice:";
    pub const DEFAULT_POOL: u32 = 4;
    pub const DEFAULT_TIMEOUT_MS: u64 = 250;

    pub fn new(url: Secret) -> Self {
        RedisState {
            url,
            key_prefix: Self::DEFAULT_PREFIX.into(),
            pool_size: Self::DEFAULT_POOL,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            failure_mode: StateFailureMode::Closed,
        }
    }
}

/// What a store call does while the store is down or slower than `timeout`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StateFailureMode {
    /// The policy call fails: the request gets 503 in the provider's shape.
    #[default]
    Closed,
    /// The call succeeds as if the store were empty (limits allow).
    Open,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bind {
    pub port: u16,
    /// Default `127.0.0.1`.
    pub address: IpAddr,
    /// Never empty: a bind without listeners gets one default HTTP listener.
    pub listeners: Vec<Listener>,
    /// This port's own connection limits over the top-level `limits:`.
    pub limits: super::limits::BindLimits,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub name: String,
    pub protocol: Protocol,
    pub tls: Option<TlsFiles>,
    /// Optional hostname (SNI / Host) this listener answers for; a leading
    /// `*.` matches any subdomain.
    pub hostname: Option<String>,
    /// Browser origins allowed to call this listener (`Origin` header); any
    /// other request carrying an `Origin` is refused with 403. `*` allows all.
    pub allowed_origins: Vec<String>,
    /// Gateway client keys (`auth.keys`): when non-empty, every request on
    /// this listener must present one as `x-api-key` or `Authorization: Bearer`.
    pub auth_keys: Vec<Secret>,
}

impl Listener {
    pub fn default_http() -> Self {
        Listener {
            name: "default".into(),
            protocol: Protocol::Http,
            tls: None,
            hostname: None,
            allowed_origins: Vec::new(),
            auth_keys: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which listener a route nested under `binds[].listeners[].routes[]`
/// belongs to. Top-level routes have none and apply everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListenerRef {
    /// The bind's port for `binds[].listeners[].routes[]`; `None` for
    /// routes under a top-level listener (that listener on every bind).
    pub port: Option<u16>,
    pub listener: String,
}

/// A route (with backends) or a policy layer (without).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    pub name: String,
    /// Empty = matches everything.
    pub matches: Vec<Match>,
    pub policies: Policies,
    pub backends: Vec<RouteBackend>,
    /// `None`: applies to every bind and listener.
    pub listener: Option<ListenerRef>,
    pub location: Location,
    /// Position in file order across all files (routes and layers share it).
    pub index: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Match {
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub method: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    #[serde(rename = "pathPrefix")]
    Prefix(String),
    Exact(String),
    /// Validated to compile with the `regex` crate.
    Regex(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueMatch {
    Exact(String),
    Regex(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    pub url_rewrite: Option<UrlRewrite>,
    pub backend_auth: Option<BackendAuth>,
    /// `backendAuth.passHeaders`: client billing headers kept beside the
    /// injected key (lowercase).
    #[serde(
        rename = "backendAuthPassHeaders",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pass_headers: Vec<String>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    pub timeout: Option<Timeouts>,
    /// `retry`: further attempts (on the same or another backend) before
    /// the first byte of an answer reaches the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    pub ai: Option<AiPolicy>,
    /// Wasm policies, in config order.
    pub attachments: Vec<PluginAttachment>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UrlRewrite {
    pub path: Option<PathRewrite>,
    /// New `Host`/authority (`urlRewrite.authority.full` or a plain string).
    pub authority: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathRewrite {
    /// Replace the matched `pathPrefix` with this.
    Prefix(String),
    /// Replace the whole path.
    Full(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendAuth {
    /// Inject this key upstream (as the provider expects it).
    Key(Secret),
    /// agentgateway's `key: {value, location: {header: {name, prefix}}}`:
    /// the key in this header (lowercase), after `prefix`.
    KeyAt {
        key: Secret,
        header: String,
        prefix: String,
    },
    /// Forward the client's own credentials.
    Passthrough,
    /// Sign each request with AWS SigV4 (Bedrock).
    Aws(AwsAuth),
    /// A Google OAuth access token from a service account (Vertex).
    Gcp(GcpAuth),
    /// A Microsoft Entra ID token for an app's client secret (Azure):
    /// agentgateway's `azure: {explicitConfig: {clientSecret: {...}}}`.
    Azure(AzureClientSecret),
}

/// `backendAuth.aws`: static keys, or (none given) the environment's
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` read at load.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Signing region; the provider's region when absent.
    pub region: Option<String>,
    /// Signing service; `bedrock` when absent.
    pub service_name: Option<String>,
}

/// `backendAuth.azure.explicitConfig.clientSecret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AzureClientSecret {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// `backendAuth.gcp`: a service-account (or authorized-user) JSON file or
/// inline JSON; `GOOGLE_APPLICATION_CREDENTIALS` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcpAuth {
    pub credential: Option<GcpCredential>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GcpCredential {
    File(PathBuf),
    Inline(Secret),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackendTls {
    /// CA bundle (PEM); `None` = system roots.
    pub root: Option<PathBuf>,
    pub insecure: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    #[serde(serialize_with = "ser_opt_duration")]
    pub request_timeout: Option<Duration>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub backend_request_timeout: Option<Duration>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub connect_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AiPolicy {
    /// Path suffix (or `*`) → API kind, in config order (first match wins).
    pub routes: IndexMap<String, AiKind>,
    /// `modelAliases`: requested model → served model.
    #[serde(skip_serializing_if = "ModelAliases::is_empty")]
    pub model_aliases: ModelAliases,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AiKind {
    Messages,
    AnthropicTokenCount,
    Completions,
    Responses,
    Embeddings,
    Models,
    Passthrough,
}

impl AiKind {
    pub const ALL: [(&'static str, AiKind); 7] = [
        ("messages", AiKind::Messages),
        ("anthropicTokenCount", AiKind::AnthropicTokenCount),
        ("completions", AiKind::Completions),
        ("responses", AiKind::Responses),
        ("embeddings", AiKind::Embeddings),
        ("models", AiKind::Models),
        ("passthrough", AiKind::Passthrough),
    ];
}

/// `policies.retry` (agentgateway's `RetryPolicy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// Total calls per client request, the first one included (the
    /// documented meaning; agentgateway's code makes one more).
    pub attempts: u8,
    #[serde(serialize_with = "ser_opt_duration")]
    pub backoff: Option<Duration>,
    /// Statuses that are retried instead of answered.
    pub codes: Vec<u16>,
}

/// One entry of a route's `backends` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteBackend {
    /// Relative share of traffic among the route's backends (default 1).
    pub weight: u32,
    #[serde(flatten)]
    pub kind: Backend,
    /// `backends[].policies`: auth, TLS and health for this backend only.
    #[serde(skip_serializing_if = "BackendPolicies::is_empty")]
    pub policies: BackendPolicies,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Backend {
    Ai(AiBackend),
    /// `"host:port"`.
    Host(String),
    /// `ai: {groups: [...]}`: priority groups of named providers; the first
    /// group with a healthy provider serves.
    Groups(Vec<Vec<AiBackend>>),
}

/// The backend policies Sluice implements (agentgateway's
/// `LocalBackendPolicies`); the others are refused at load.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendPolicies {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_auth: Option<BackendAuth>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pass_headers: Vec<String>,
    #[serde(rename = "backendTLS", skip_serializing_if = "Option::is_none")]
    pub backend_tls: Option<BackendTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl BackendPolicies {
    pub fn is_empty(&self) -> bool {
        *self == BackendPolicies::default()
    }
}

/// `health`: when failures take a backend out of rotation. A failure is a
/// connection or TLS error, a timeout before headers, or a 5xx (what
/// agentgateway counts when no `unhealthyExpression` is set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Eviction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,
    /// Failures in a row that evict (default 1).
    pub consecutive_failures: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiBackend {
    pub name: String,
    pub provider: Provider,
    /// `provider.<name>.model`, if given: every request this backend
    /// serves goes to this model, whatever the client asked for.
    pub model: Option<String>,
    /// The provider's other keys (`region`, `projectId`, Azure's resource).
    #[serde(flatten)]
    pub params: Box<ProviderParams>,
    /// `"host:port"` or `"http(s)://host:port"`.
    pub host_override: Option<String>,
    pub path_prefix: Option<String>,
    pub path_override: Option<String>,
    /// A group member's own `policies` (empty for a plain `ai:` backend,
    /// whose policies sit beside it in the `backends` entry).
    #[serde(skip_serializing_if = "BackendPolicies::is_empty")]
    pub policies: Box<BackendPolicies>,
}

/// Which provider a backend is, as agentgateway's `provider:` key names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Provider {
    #[serde(rename = "anthropic")]
    Anthropic,
    #[serde(rename = "openAI")]
    OpenAi,
    #[serde(rename = "gemini")]
    Gemini,
    #[serde(rename = "vertex")]
    Vertex,
    #[serde(rename = "bedrock")]
    Bedrock,
    #[serde(rename = "azure")]
    Azure,
}

impl Provider {
    /// Config spelling → provider, for every provider the gateway knows.
    pub const ALL: [(&'static str, Provider); 6] = [
        ("anthropic", Provider::Anthropic),
        ("openAI", Provider::OpenAi),
        ("gemini", Provider::Gemini),
        ("vertex", Provider::Vertex),
        ("bedrock", Provider::Bedrock),
        ("azure", Provider::Azure),
    ];

    /// The provider's name in logs, metrics and traces: the OpenTelemetry
    /// GenAI conventions' `gen_ai.provider.name` values.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::Gemini => "gcp.gemini",
            Provider::Vertex => "gcp.vertex_ai",
            Provider::Bedrock => "aws.bedrock",
            Provider::Azure => "azure.ai.openai",
        }
    }

    /// The provider's name as the config spells it.
    pub fn config_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Provider keys beside `model` (agentgateway's names). Each provider's
/// decoding checks which it requires and which it allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderParams {
    /// `bedrock.region`, `vertex.region`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `vertex.projectId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `azure.resourceName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `azure.resourceType`: `openAI`, `foundry` or `aiServices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// `azure.apiVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `azure.projectName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// A failing plugin fails the request.
    #[default]
    Closed,
    /// A failing plugin is skipped.
    Open,
}

/// Replace the given JSON pointers in a copy of `v` by `"<redacted>"`, and
/// every value under a key that names a secret (see [`secret_like_key`]).
fn redact_pointers(v: &serde_json::Value, pointers: &[String]) -> serde_json::Value {
    let mut v = v.clone();
    for p in pointers {
        if let Some(x) = v.pointer_mut(p) {
            *x = serde_json::Value::String(REDACTED.into());
        }
    }
    redact_secret_keys(&mut v);
    v
}

/// Display-only scrub of plugin configs: a secret written literally (not
/// through `$ENV`) must not show in `GET /config` or logs either.
fn redact_secret_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let scalar_or_tree =
                    !matches!(x, serde_json::Value::Null | serde_json::Value::Bool(_));
                if scalar_or_tree && secret_like_key(k) {
                    *x = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_secret_keys(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_secret_keys),
        _ => {}
    }
}

/// Does a config key name a secret? By whole words (camelCase, `_`, `-`):
/// `secret`, `clientSecret`, `password`, `token`, `bearerToken`,
/// `credentials`, `apiKey`, `privateKey`, `signing_key`. Not `key` alone
/// (rate-limit's identity selector), not `keys` (public JWKS), not
/// `tokensPerDay` or `maxTokens` (amounts).
pub fn secret_like_key(key: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else if c.is_uppercase() && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
            cur.extend(c.to_lowercase());
        } else {
            cur.extend(c.to_lowercase());
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let named = |w: &str| {
        matches!(
            w,
            "secret"
                | "password"
                | "passwd"
                | "passphrase"
                | "credential"
                | "credentials"
                | "token"
                | "apikey"
                | "pat"
        )
    };
    words.iter().any(|w| named(w)) || (words.len() >= 2 && words.last().is_some_and(|w| w == "key"))
}

/// A plugin attached to a route by a policy key.
#[derive(Clone, PartialEq)]
pub struct PluginAttachment {
    /// Plugin name (bundled like `rate-limit`, or declared in `plugins:`).
    pub plugin: String,
    /// Plugin-owned config, verbatim (e.g. `{"rateLimit": {...}}`).
    pub config: serde_json::Value,
    /// YAML keys that produced it (e.g. `["requestHeaderModifier",
    /// "responseHeaderModifier"]`, `["ai.promptGuard"]`, `["plugins[0]"]`).
    pub keys: Vec<String>,
    pub location: Location,
    /// JSON pointers into `config` of values that came from the environment.
    pub secret_pointers: Vec<String>,
}

impl PluginAttachment {
    /// `config` with env-expanded values replaced by `"<redacted>"`.
    pub fn redacted_config(&self) -> serde_json::Value {
        redact_pointers(&self.config, &self.secret_pointers)
    }
}

impl fmt::Debug for PluginAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginAttachment")
            .field("plugin", &self.plugin)
            .field("config", &self.redacted_config())
            .field("keys", &self.keys)
            .field("location", &self.location)
            .finish()
    }
}

impl Serialize for PluginAttachment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PluginAttachment", 4)?;
        st.serialize_field("plugin", &self.plugin)?;
        st.serialize_field("config", &self.redacted_config())?;
        st.serialize_field("keys", &self.keys)?;
        st.serialize_field("location", &self.location)?;
        st.end()
    }
}

/// A plugin declared in the top-level `plugins:` list.
#[derive(Clone, PartialEq)]
pub struct PluginDecl {
    pub name: String,
    /// Resolved relative to the declaring file's directory.
    pub path: PathBuf,
    /// Default config (`null` when not given).
    pub config: serde_json::Value,
    /// Bytes (`memoryLimit: 64MiB`).
    pub memory_limit: Option<u64>,
    /// Per-call deadline (`deadline: 50ms`).
    pub deadline: Option<Duration>,
    pub failure_mode: FailureMode,
    /// Hosts (`host` or `host:port`) the plugin may reach with `fetch`,
    /// granted by the operator. Empty: none (bundled jwt-auth also gets its
    /// configured issuer and JWKS hosts).
    pub fetch_hosts: Vec<String>,
    pub location: Location,
    /// JSON pointers into `config` of values that came from the environment.
    pub secret_pointers: Vec<String>,
}

impl PluginDecl {
    pub fn redacted_config(&self) -> serde_json::Value {
        redact_pointers(&self.config, &self.secret_pointers)
    }
}

impl fmt::Debug for PluginDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginDecl")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("config", &self.redacted_config())
            .field("memory_limit", &self.memory_limit)
            .field("deadline", &self.deadline)
            .field("failure_mode", &self.failure_mode)
            .field("location", &self.location)
            .finish()
    }
}

impl Serialize for PluginDecl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PluginDecl", 8)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("config", &self.redacted_config())?;
        st.serialize_field("memoryLimit", &self.memory_limit)?;
        st.serialize_field(
            "deadline",
            &self
                .deadline
                .map(|d| humantime::format_duration(d).to_string()),
        )?;
        st.serialize_field("failureMode", &self.failure_mode)?;
        st.serialize_field("fetchHosts", &self.fetch_hosts)?;
        st.serialize_field("location", &self.location)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_value(&s).unwrap(), REDACTED);
        assert_eq!(s.expose(), "sk-live-123");
        let auth = BackendAuth::Key(s);
        assert!(!format!("{auth:?}").contains("sk-live"));
    }

    #[test]
    fn secret_like_keys() {
        for k in [
            "secret",
            "clientSecret",
            "password",
            "token",
            "bearer_token",
            "credentials",
            "apiKey",
            "api_key",
            "privateKey",
            "hmac-key",
        ] {
            assert!(secret_like_key(k), "{k}");
        }
        for k in [
            "key",
            "keys",
            "tokensPerDay",
            "maxTokens",
            "tokensPerFill",
            "keyHeader",
            "issuer",
            "jwks",
            "value",
        ] {
            assert!(!secret_like_key(k), "{k}");
        }
        let a = PluginAttachment {
            plugin: "p".into(),
            config: serde_json::json!({"p": {"clientSecret": "lit-123", "key": "header:x-user",
                "tokensPerDay": 100, "nested": [{"apiKey": "lit-456"}], "token": null}}),
            keys: vec![],
            location: Location::new("a".into(), 1, 1),
            secret_pointers: vec![],
        };
        let shown = a.redacted_config().to_string();
        assert!(
            !shown.contains("lit-123") && !shown.contains("lit-456"),
            "{shown}"
        );
        assert!(
            shown.contains("header:x-user") && shown.contains("100"),
            "{shown}"
        );
        // Only the display changes.
        assert_eq!(a.config["p"]["clientSecret"], "lit-123");
    }

    #[test]
    fn attachment_debug_redacts_pointers() {
        let a = PluginAttachment {
            plugin: "jwt-auth".into(),
            config: serde_json::json!({"auth": {"secret": "hunter2", "x": 1}}),
            keys: vec!["auth".into()],
            location: Location::new("a".into(), 1, 1),
            secret_pointers: vec!["/auth/secret".into()],
        };
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains(REDACTED));
    }
}
