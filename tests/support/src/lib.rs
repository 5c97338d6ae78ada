//! Test support for Sluice end-to-end tests.
//!
//! - [`pki`]: a throwaway CA and leaves, so TLS is tested without the network.
//! - [`upstream`]: a fake Anthropic/OpenAI provider that records what it receives, and
//!   [`upstream::bedrock`]: a fake AWS Bedrock verifying SigV4 and framing AWS event-stream.
//! - [`gateway`]: spawns the real `sluice` binary and waits for its readiness lines.
//! - [`client`]: HTTP/SSE test clients and request bodies that mimic real agents.
//! - [`metrics`]: exact reads of the gateway's `/metrics` text.
//! - [`sse`]: the SSE formatter and parser shared by both sides.
//! - [`idp`]: an OIDC identity provider (discovery + JWKS) and test RSA keys.
//! - [`otlp`]: a fake OpenTelemetry collector decoding real OTLP (HTTP and gRPC).
//! - [`redis`]: a throwaway `redis-server` per test, stoppable and restartable.
//! - [`gcp`]: a Google OAuth token endpoint, a Vertex AI front that checks its tokens, and a
//!   Gemini API front that checks its key.

pub mod client;
pub mod gateway;
pub mod gcp;
pub mod idp;
pub mod metrics;
pub mod otlp;
pub mod pki;
pub mod redis;
pub mod sse;
pub mod upstream;

pub use client::{Resp, TimedEvent};
pub use gateway::{ClosedPort, Gateway};
pub use gcp::{FakeGemini, FakeTokenEndpoint, FakeVertex};
pub use idp::Idp;
pub use pki::TestPki;
pub use redis::RedisServer;
/// The HTTP client behind [`client::TestClient`], for tests that hold a
/// response open (e.g. read one chunk of a stream, then go away).
pub use reqwest;
pub use sse::{SseEvent, SseParser};
pub use upstream::{
    BedrockOptions, BedrockScript, FakeBedrock, FakeUpstream, RecordedRequest, Script,
    UpstreamOptions,
};
