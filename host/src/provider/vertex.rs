//! Google Vertex AI (`provider: {vertex: {projectId, region?, model?}}`):
//! Anthropic's Claude models through `rawPredict`/`streamRawPredict`, in
//! Anthropic's wire format, and Gemini models through Vertex's
//! OpenAI-compatible endpoint, in OpenAI Chat Completions.
//!
//! Pure functions: where a request goes, how its body changes, and how
//! Google's errors read in the client's format. The credential is a GCP
//! access token ([`super::gcp_auth::GcpTokenSource`], `Authorization:
//! Bearer`), replacing whatever credential the client sent.
//!
//! What Vertex answers, verified against Google's and Anthropic's docs and
//! agentgateway (`crates/llm/src/vertex.rs`):
//! - `rawPredict` answers an Anthropic Messages JSON; `streamRawPredict`
//!   answers Anthropic's SSE unchanged (`message_start` … `message_stop`,
//!   and Anthropic's `event: error` mid-stream), so usage is read as for
//!   Anthropic.
//! - Streaming is chosen by the method, not the body; the body's `stream`
//!   is kept (Vertex accepts it) so the request the policies saw is what
//!   goes upstream.
//! - `anthropic-beta` stays a request header: Vertex reads it there
//!   (unlike Bedrock, which wants `anthropic_beta` in the body).
//! - Errors Vertex itself raises (token, quota, unknown model) are Google's
//!   envelope; errors from the model are Anthropic's and pass through.
//!   See [`google_error`].

mod api;
pub mod google_error;
mod model;

use serde_json::{Map, Value};

pub use model::{family, is_safe_segment, ModelFamily};

use crate::config::AiKind;

/// The `anthropic_version` Vertex requires in an Anthropic body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// The region when the config names none (agentgateway's default).
pub const DEFAULT_REGION: &str = "global";

/// Why a request cannot go to Vertex as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VertexError {
    #[error("the request names no model and the vertex provider sets none")]
    NoModel,
    #[error("Vertex AI does not serve {format} for model {model:?}")]
    Unsupported { format: &'static str, model: String },
    #[error("the request body is not a JSON object")]
    NotAnObject,
}

/// `provider: {vertex: ...}` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexProvider {
    pub project_id: String,
    pub region: Option<String>,
    /// Overrides the client's model.
    pub model: Option<String>,
}

impl VertexProvider {
    /// The region, `global` by default.
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or(DEFAULT_REGION)
    }

    /// The API host: `aiplatform.googleapis.com` for `global`, the
    /// multi-region endpoints for `us`/`eu`, `{region}-aiplatform...` else.
    pub fn host(&self) -> String {
        match self.region() {
            "global" => "aiplatform.googleapis.com".to_string(),
            r @ ("us" | "eu") => format!("aiplatform.{r}.rep.googleapis.com"),
            r => format!("{r}-aiplatform.googleapis.com"),
        }
    }

    /// The default origin, `host:443` (TLS).
    pub fn origin(&self) -> String {
        format!("{}:443", self.host())
    }

    /// The model served: the config's `model:` over the client's.
    pub fn model<'a>(&'a self, request_model: Option<&'a str>) -> Option<&'a str> {
        self.model.as_deref().or(request_model)
    }

    /// The served model's family.
    pub fn family(&self, request_model: Option<&str>) -> ModelFamily {
        self.model(request_model)
            .map(family)
            .unwrap_or(ModelFamily::Other)
    }

    /// Whether a request of `kind` for this model goes upstream without
    /// translation: Anthropic Messages and token counting for Claude,
    /// OpenAI Chat Completions for Gemini (and other publishers' models
    /// on the OpenAI-compatible endpoint). Vertex lists no models in
    /// either format, and its embeddings take a body of their own.
    pub fn speaks(&self, kind: AiKind, request_model: Option<&str>) -> bool {
        let anthropic = matches!(self.family(request_model), ModelFamily::Anthropic(_));
        match kind {
            AiKind::Passthrough => true,
            AiKind::Messages | AiKind::AnthropicTokenCount => anthropic,
            AiKind::Completions => !anthropic,
            AiKind::Responses | AiKind::Embeddings | AiKind::Models => false,
        }
    }

    /// The upstream path (with query, if any) for a request of `kind`.
    pub fn path(
        &self,
        kind: AiKind,
        stream: bool,
        request_model: Option<&str>,
    ) -> Result<String, VertexError> {
        let model = self.model(request_model).ok_or(VertexError::NoModel)?;
        let base = format!(
            "/v1/projects/{}/locations/{}",
            self.project_id,
            self.region()
        );
        let unsupported = || VertexError::Unsupported {
            format: super::format_name(kind),
            model: model.to_string(),
        };
        match (kind, family(model)) {
            (AiKind::Messages, ModelFamily::Anthropic(id)) => {
                let method = if stream {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                };
                Ok(format!("{base}/publishers/anthropic/models/{id}:{method}"))
            }
            (AiKind::AnthropicTokenCount, ModelFamily::Anthropic(_)) => Ok(format!(
                "{base}/publishers/anthropic/models/count-tokens:rawPredict"
            )),
            (AiKind::Completions, ModelFamily::Anthropic(_)) => Err(unsupported()),
            (AiKind::Completions, _) => Ok(format!("{base}/endpoints/openapi/chat/completions")),
            _ => Err(unsupported()),
        }
    }

    /// The body Vertex expects for a request of `kind`, from the client's.
    pub fn rewrite_body(
        &self,
        kind: AiKind,
        request_model: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, VertexError> {
        let mut map: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| VertexError::NotAnObject)?;
        self.rewrite_json(kind, request_model, &mut map)?;
        serde_json::to_vec(&map).map_err(|_| VertexError::NotAnObject)
    }

    /// [`Self::rewrite_body`] on a parsed body:
    /// - Messages: `model` removed (it is in the path), `anthropic_version`
    ///   set, fields Vertex refuses dropped (`output_format`, and `scope`
    ///   under any `cache_control`).
    /// - Token counting: the same, but `model` kept as the Vertex id (the
    ///   count-tokens method takes it from the body).
    /// - Chat Completions: `model` as the OpenAI-compatible endpoint wants
    ///   it, `publisher/model` (`google/gemini-2.5-flash`).
    pub fn rewrite_json(
        &self,
        kind: AiKind,
        request_model: Option<&str>,
        body: &mut Map<String, Value>,
    ) -> Result<(), VertexError> {
        let model = self.model(request_model).ok_or(VertexError::NoModel)?;
        match (kind, family(model)) {
            (AiKind::Messages, ModelFamily::Anthropic(_)) => {
                body.remove("model");
                prepare_anthropic(body);
            }
            (AiKind::AnthropicTokenCount, ModelFamily::Anthropic(id)) => {
                body.insert("model".into(), Value::String(id));
                prepare_anthropic(body);
            }
            (AiKind::Completions, fam) if !matches!(fam, ModelFamily::Anthropic(_)) => {
                let m = match fam {
                    ModelFamily::Gemini(id) => format!("google/{id}"),
                    _ => model.to_string(),
                };
                body.insert("model".into(), Value::String(m));
            }
            _ => {
                return Err(VertexError::Unsupported {
                    format: super::format_name(kind),
                    model: model.to_string(),
                })
            }
        }
        Ok(())
    }
}

fn prepare_anthropic(body: &mut Map<String, Value>) {
    body.insert(
        "anthropic_version".into(),
        Value::String(ANTHROPIC_VERSION.into()),
    );
    // `output_format` is the deprecated spelling of `output_config.format`
    // and Vertex refuses it; `output_config` itself is supported.
    body.remove("output_format");
    // Vertex takes `cache_control` but not the prompt-caching-scope beta's
    // `scope` inside it.
    for v in body.values_mut() {
        drop_cache_scope(v);
    }
}

fn drop_cache_scope(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(cc)) = map.get_mut("cache_control") {
                cc.remove("scope");
            }
            map.values_mut().for_each(drop_cache_scope);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_cache_scope),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(region: Option<&str>, model: Option<&str>) -> VertexProvider {
        VertexProvider {
            project_id: "proj".into(),
            region: region.map(Into::into),
            model: model.map(Into::into),
        }
    }

    #[test]
    fn origin_by_region() {
        assert_eq!(p(None, None).origin(), "aiplatform.googleapis.com:443");
        assert_eq!(
            p(Some("global"), None).origin(),
            "aiplatform.googleapis.com:443"
        );
        assert_eq!(
            p(Some("us-east5"), None).origin(),
            "us-east5-aiplatform.googleapis.com:443"
        );
        assert_eq!(
            p(Some("eu"), None).host(),
            "aiplatform.eu.rep.googleapis.com"
        );
    }

    #[test]
    fn anthropic_paths() {
        let v = p(Some("us-east5"), None);
        let m = Some("claude-sonnet-4-5-20250929");
        assert_eq!(
            v.path(AiKind::Messages, false, m).unwrap(),
            "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        assert_eq!(
            v.path(AiKind::Messages, true, m).unwrap(),
            "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        assert_eq!(
            v.path(AiKind::AnthropicTokenCount, false, m).unwrap(),
            "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
        );
    }

    #[test]
    fn gemini_goes_to_the_openai_compatible_endpoint() {
        let v = p(None, None);
        for stream in [false, true] {
            assert_eq!(
                v.path(AiKind::Completions, stream, Some("gemini-2.5-flash"))
                    .unwrap(),
                "/v1/projects/proj/locations/global/endpoints/openapi/chat/completions"
            );
        }
    }

    #[test]
    fn the_configured_model_wins_and_decides_the_family() {
        let v = p(None, Some("claude-haiku-4-5"));
        assert!(v.speaks(AiKind::Messages, Some("gemini-2.5-flash")));
        assert!(!v.speaks(AiKind::Completions, Some("gemini-2.5-flash")));
        assert!(v
            .path(AiKind::Messages, false, Some("gpt-4o"))
            .unwrap()
            .ends_with("/claude-haiku-4-5:rawPredict"));
    }

    #[test]
    fn what_each_family_speaks() {
        let v = p(None, None);
        let c = Some("claude-sonnet-4-5");
        let g = Some("gemini-2.5-flash");
        assert!(v.speaks(AiKind::Messages, c) && v.speaks(AiKind::AnthropicTokenCount, c));
        assert!(!v.speaks(AiKind::Completions, c));
        assert!(v.speaks(AiKind::Completions, g) && !v.speaks(AiKind::Messages, g));
        for k in [AiKind::Responses, AiKind::Embeddings, AiKind::Models] {
            assert!(!v.speaks(k, c) && !v.speaks(k, g), "{k:?}");
        }
        assert!(v.speaks(AiKind::Passthrough, None));
        assert_eq!(
            v.path(AiKind::Messages, false, g),
            Err(VertexError::Unsupported {
                format: "Anthropic Messages",
                model: "gemini-2.5-flash".into()
            })
        );
        assert_eq!(
            v.path(AiKind::Messages, false, None),
            Err(VertexError::NoModel)
        );
        // A model that would choose another upstream path is no family at all.
        assert!(v
            .path(AiKind::Messages, false, Some("claude-x/../../../other"))
            .is_err());
    }

    #[test]
    fn messages_body_loses_model_and_gains_version() {
        let body = json!({
            "model": "claude-sonnet-4-5-20250929", "max_tokens": 64, "stream": true,
            "output_format": "x", "output_config": {"effort": "high"},
            "system": [{"type": "text", "text": "s",
                        "cache_control": {"type": "ephemeral", "scope": "turn"}}],
            "messages": [{"role": "user", "content": "hi"}]
        });
        let out = p(None, None)
            .rewrite_body(
                AiKind::Messages,
                Some("claude-sonnet-4-5-20250929"),
                body.to_string().as_bytes(),
            )
            .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert!(out.get("model").is_none());
        assert_eq!(out["anthropic_version"], ANTHROPIC_VERSION);
        assert_eq!(out["stream"], true);
        assert!(out.get("output_format").is_none());
        assert_eq!(out["output_config"]["effort"], "high");
        assert_eq!(
            out["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(out["messages"], body["messages"]);
    }

    #[test]
    fn count_tokens_body_keeps_the_vertex_model_id() {
        let mut m = json!({"model": "claude-3-5-sonnet-20241022", "messages": []})
            .as_object()
            .unwrap()
            .clone();
        p(None, None)
            .rewrite_json(
                AiKind::AnthropicTokenCount,
                Some("claude-3-5-sonnet-20241022"),
                &mut m,
            )
            .unwrap();
        assert_eq!(m["model"], "claude-3-5-sonnet@20241022");
        assert_eq!(m["anthropic_version"], ANTHROPIC_VERSION);
    }

    #[test]
    fn completions_body_names_the_publisher() {
        let v = p(None, None);
        for (asked, sent) in [
            ("gemini-2.5-flash", "google/gemini-2.5-flash"),
            ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
            (
                "meta/llama-3.3-70b-instruct-maas",
                "meta/llama-3.3-70b-instruct-maas",
            ),
        ] {
            let mut m = json!({"model": asked, "messages": []})
                .as_object()
                .unwrap()
                .clone();
            v.rewrite_json(AiKind::Completions, Some(asked), &mut m)
                .unwrap();
            assert_eq!(m["model"], sent, "{asked}");
        }
        let pinned = p(None, Some("gemini-2.5-pro"));
        let out = pinned
            .rewrite_body(
                AiKind::Completions,
                Some("whatever"),
                br#"{"model":"whatever"}"#,
            )
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap()["model"],
            "google/gemini-2.5-pro"
        );
        assert_eq!(
            v.rewrite_body(AiKind::Completions, Some("gemini-2.5-flash"), b"[1]"),
            Err(VertexError::NotAnObject)
        );
    }
}
