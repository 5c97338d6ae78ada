//! TEMPORARY stand-in for the config model while the real loader is written
//! on another branch. Replaced wholesale on merge.
#![allow(dead_code)]
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Secret(pub String);
impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub binds: Vec<Bind>,
    pub routes: Vec<Route>,
    pub layers: Vec<Route>,
    pub admin: Admin,
    pub sources: Vec<PathBuf>,
}
#[derive(Debug, Clone)]
pub struct Admin {
    pub address: SocketAddr,
}
#[derive(Debug, Clone)]
pub struct Bind {
    pub port: u16,
    pub address: IpAddr,
    pub listeners: Vec<Listener>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub protocol: Protocol,
    pub tls: Option<TlsFiles>,
}
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matches: Vec<Match>,
    pub policies: Policies,
    pub backends: Vec<Backend>,
    pub location: Location,
    pub index: usize,
}
#[derive(Debug, Clone, Default)]
pub struct Match {
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub method: Option<String>,
}
#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(String),
}
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}
#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(String),
    Regex(String),
}
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub url_rewrite: Option<UrlRewrite>,
    pub backend_auth: Option<BackendAuth>,
    pub backend_tls: Option<BackendTls>,
    pub timeout: Option<Timeouts>,
    pub ai: Option<AiPolicy>,
    pub attachments: Vec<PluginAttachment>,
}
#[derive(Debug, Clone, Default)]
pub struct UrlRewrite {
    pub path: Option<PathRewrite>,
}
#[derive(Debug, Clone)]
pub enum PathRewrite {
    Prefix(String),
    Full(String),
}
#[derive(Debug, Clone)]
pub struct BackendAuth {
    pub key: Option<Secret>,
}
#[derive(Debug, Clone, Default)]
pub struct BackendTls {
    pub root: Option<PathBuf>,
    pub insecure: bool,
}
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    pub request_timeout: Option<Duration>,
    pub backend_request_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
}
#[derive(Debug, Clone, Default)]
pub struct AiPolicy {
    pub routes: Vec<(String, AiKind)>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiKind {
    Messages,
    AnthropicTokenCount,
    Completions,
    Responses,
    Embeddings,
    Models,
    Passthrough,
}
#[derive(Debug, Clone)]
pub enum Backend {
    Ai(AiBackend),
    Host(String),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
}
#[derive(Debug, Clone)]
pub struct AiBackend {
    pub name: String,
    pub provider: Provider,
    pub model: Option<String>,
    pub host_override: Option<String>,
    pub path_prefix: Option<String>,
    pub path_override: Option<String>,
}
#[derive(Debug, Clone)]
pub struct PluginAttachment {
    pub plugin: String,
    pub config: serde_json::Value,
    pub keys: Vec<String>,
    pub location: Location,
}
