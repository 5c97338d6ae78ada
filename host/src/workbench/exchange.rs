//! The recorded exchanges `sluice plugin run` replays (`sdk/fixtures/`).
//!
//! A request file (`REQ.json`):
//!
//! ```json
//! {
//!   "method": "POST",
//!   "path": "/v1/messages?beta=true",
//!   "headers": {"x-api-key": "k", "anthropic-version": "2023-06-01"},
//!   "body": {"model": "claude-sonnet-4-5", "messages": []},
//!   "provider": "anthropic"
//! }
//! ```
//!
//! `headers` is a map or a list of `[name, value]` pairs (a name may repeat).
//! `body` is any JSON value (sent as JSON text) or, as `{"text": "..."}`, raw
//! text. `provider` (`anthropic`, `openai`, `none`) and `kind` (`messages`,
//! `completions`, `responses`, ...) default from the path, as the gateway's
//! `ai.routes` defaults do; `route`, `backend`, `clientIp` and `requestId` are
//! optional too.
//!
//! A response file (`--response RESP.json`) is `{"status", "headers", "body"}`
//! alike; a stream (`--sse FILE`) is the raw `text/event-stream` bytes.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::policy::{AiKind, Provider, RequestContext};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestFile {
    #[serde(default = "post")]
    method: String,
    path: String,
    #[serde(default)]
    headers: HeaderList,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

fn post() -> String {
    "POST".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseFile {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: HeaderList,
    #[serde(default)]
    body: Option<Value>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum HeaderList {
    #[default]
    None,
    Map(indexmap::IndexMap<String, String>),
    Pairs(Vec<(String, String)>),
}

impl HeaderList {
    fn into_pairs(self) -> Vec<(String, String)> {
        let pairs = match self {
            HeaderList::None => Vec::new(),
            HeaderList::Map(m) => m.into_iter().collect(),
            HeaderList::Pairs(p) => p,
        };
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }
}

fn body_bytes(body: Option<Value>) -> Bytes {
    match body {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::Object(o)) if o.len() == 1 && o.get("text").is_some_and(Value::is_string) => {
            Bytes::from(o["text"].as_str().unwrap_or_default().to_owned())
        }
        Some(v) => Bytes::from(v.to_string()),
    }
}

/// A request to replay.
#[derive(Debug, Clone)]
pub struct Request {
    pub ctx: RequestContext,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A response to replay.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!("{}: at `{at}`: {}", path.display(), e.into_inner())
    })
}

/// Provider and kind from the path, as the gateway's default `ai.routes`.
fn defaults(path: &str) -> (Provider, AiKind) {
    let p = path.split('?').next().unwrap_or(path);
    match p {
        _ if p.ends_with("/v1/messages/count_tokens") => {
            (Provider::Anthropic, AiKind::AnthropicTokenCount)
        }
        _ if p.ends_with("/v1/messages") => (Provider::Anthropic, AiKind::Messages),
        _ if p.ends_with("/chat/completions") => (Provider::Openai, AiKind::Completions),
        _ if p.ends_with("/responses") => (Provider::Openai, AiKind::Responses),
        _ if p.ends_with("/embeddings") => (Provider::Openai, AiKind::Embeddings),
        _ if p.ends_with("/models") => (Provider::Anthropic, AiKind::Models),
        _ => (Provider::None, AiKind::Passthrough),
    }
}

fn provider(s: &str) -> anyhow::Result<Provider> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "anthropic" => Provider::Anthropic,
        "openai" => Provider::Openai,
        "none" => Provider::None,
        other => bail!("provider `{other}`: expected anthropic, openai or none"),
    })
}

fn kind(s: &str) -> anyhow::Result<AiKind> {
    Ok(match s {
        "messages" => AiKind::Messages,
        "anthropicTokenCount" | "anthropic-token-count" => AiKind::AnthropicTokenCount,
        "completions" => AiKind::Completions,
        "responses" => AiKind::Responses,
        "embeddings" => AiKind::Embeddings,
        "models" => AiKind::Models,
        "passthrough" => AiKind::Passthrough,
        other => bail!(
            "kind `{other}`: expected messages, anthropicTokenCount, completions, responses, \
             embeddings, models or passthrough"
        ),
    })
}

pub fn read_request(path: &Path) -> anyhow::Result<Request> {
    let f: RequestFile = read_json(path)?;
    let (default_provider, default_kind) = defaults(&f.path);
    let provider = match &f.provider {
        Some(p) => provider(p).with_context(|| path.display().to_string())?,
        None => default_provider,
    };
    let kind = match &f.kind {
        Some(k) => kind(k).with_context(|| path.display().to_string())?,
        None => default_kind,
    };
    let model = f
        .body
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let streaming = f
        .body
        .as_ref()
        .and_then(|b| b.get("stream"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (p, query) = match f.path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (f.path.clone(), None),
    };
    let ctx = RequestContext {
        request_id: f.request_id.unwrap_or_else(|| "workbench-request".into()),
        route: f.route.unwrap_or_else(|| "workbench".into()),
        backend: f.backend.unwrap_or_else(|| "workbench".into()),
        provider,
        kind,
        method: f.method.to_ascii_uppercase(),
        path: p,
        query,
        client_ip: f.client_ip.unwrap_or_else(|| "127.0.0.1".into()),
        model,
        streaming,
    };
    Ok(Request {
        ctx,
        headers: f.headers.into_pairs(),
        body: body_bytes(f.body),
    })
}

pub fn read_response(path: &Path) -> anyhow::Result<Response> {
    let f: ResponseFile = read_json(path)?;
    let mut headers = f.headers.into_pairs();
    if !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok(Response {
        status: f.status,
        headers,
        body: body_bytes(f.body),
    })
}

pub fn read_sse(path: &Path) -> anyhow::Result<Response> {
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Response {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: Bytes::from(body),
    })
}
