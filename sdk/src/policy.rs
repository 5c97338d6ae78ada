//! The [`Policy`] trait: what a plugin author implements.

use serde::de::DeserializeOwned;

use crate::{
    BodyAction, Completion, HeaderOps, Headers, HeadersAction, Hooks, RequestContext,
    ResponseHeadersAction, SseEvent,
};

/// A Sluice policy. One value is built per instance from the attachment's
/// config in `init`; hooks get `&self`, so per-request state cannot hide in the
/// policy: keep it in request attributes ([`crate::host::set_attr`]).
///
/// Every hook has a pass-through default. Only the hooks returned by
/// [`Policy::hooks`] are ever called by the gateway.
pub trait Policy: Sized + 'static {
    /// The attachment's config, parsed from JSON. Unknown keys are only
    /// rejected if the type says so (`#[serde(deny_unknown_fields)]`).
    type Config: DeserializeOwned;

    /// Extra checks beyond parsing. The message is shown to the operator.
    fn validate(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Build the policy for one instance.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// The hooks this attachment wants.
    fn hooks(&self) -> Hooks;

    /// Hosts (`host` or `host:port`) that [`crate::host::fetch`] may reach.
    fn fetch_hosts(&self) -> Vec<String> {
        Vec::new()
    }

    /// The headers (names, any case) this policy's hooks read: the request
    /// headers, the request-body hook's headers and the response headers.
    /// The gateway then hands the hooks only those, which saves two strings
    /// per header on every call (real clients send about twenty). `None`
    /// (the default): every header. Return what the config makes you read,
    /// e.g. the header a rate-limit key names; a header not listed here is
    /// simply absent from `headers`. Edits you return still apply to every
    /// header.
    fn reads_headers(&self) -> Option<Vec<String>> {
        None
    }

    fn on_request_headers(&self, _ctx: &RequestContext, _headers: &Headers) -> HeadersAction {
        HeadersAction::Continue(HeaderOps::new().into())
    }

    fn on_request_body(
        &self,
        _ctx: &RequestContext,
        _headers: &Headers,
        _body: Vec<u8>,
    ) -> BodyAction {
        BodyAction::Continue
    }

    fn on_response_headers(
        &self,
        _ctx: &RequestContext,
        _status: u16,
        _headers: &Headers,
    ) -> ResponseHeadersAction {
        ResponseHeadersAction::Continue(HeaderOps::new().into())
    }

    fn on_response_body(&self, _ctx: &RequestContext, _status: u16, _body: Vec<u8>) -> BodyAction {
        BodyAction::Continue
    }

    /// One SSE event: return `vec![event]` to pass it, `vec![]` to drop it.
    fn on_response_event(&self, _ctx: &RequestContext, event: SseEvent) -> Vec<SseEvent> {
        vec![event]
    }

    /// The stream ended: return events still held back.
    fn on_response_end(&self, _ctx: &RequestContext) -> Vec<SseEvent> {
        Vec::new()
    }

    fn on_complete(&self, _ctx: &RequestContext, _summary: &Completion) {}
}
