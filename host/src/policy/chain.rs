//! [`Chain`]: the API the pipeline calls at each hook point.
//!
//! Request hooks run in chain order, response hooks in reverse. Only hooks an
//! attachment declared in `init` are called, the request body only to an
//! attachment that asked for it (or has no headers hook to ask with), and
//! each sees only the headers it declared with `read-headers`. A failing
//! plugin (trap, CPU deadline, memory cap, invalid output) either fails the
//! request ([`FailureMode::Closed`] → [`PolicyFailure`]) or is skipped
//! ([`FailureMode::Open`]); either way it is logged and counted.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::HeaderMap;

use super::bindings::types::{self as wit, BodyAction, HeaderOps, HeadersAction};
use super::plugin::{CallError, FailureMode};
use super::pool::Attachment;
use super::types::{Completion, Hooks, ImmediateResponse, RequestScope, SseEvent};
use super::PolicyFailure;

/// What the request-headers phase decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersOutcome {
    /// Go on; `need_body`: buffer the body and run `request_body` first.
    Continue { need_body: bool },
    /// Answer the client with this.
    Respond(ImmediateResponse),
}

/// An ordered list of attachments. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Chain {
    atts: Arc<[Arc<Attachment>]>,
    wants: Hooks,
    body_without_headers: bool,
}

type Step<R> = Result<Option<R>, PolicyFailure>;

impl Chain {
    pub fn new(atts: Vec<Arc<Attachment>>) -> Self {
        let wants = atts.iter().fold(Hooks::empty(), |h, a| h | a.hooks());
        let body_without_headers = atts.iter().any(|a| {
            let h = a.hooks();
            h.contains(Hooks::REQUEST_BODY) && !h.contains(Hooks::REQUEST_HEADERS)
        });
        Chain {
            atts: atts.into(),
            wants,
            body_without_headers,
        }
    }

    /// Some attachment declared a request-body hook but no headers hook: it
    /// has no `need-body` to ask with, so it always gets the body, whatever
    /// the other attachments declared (decided per attachment, not on the union).
    pub fn body_without_headers(&self) -> bool {
        self.body_without_headers
    }

    /// Whether the request-body phase runs the body policies: a plugin
    /// asked for the body at the headers (`asked`), or one has only a body
    /// hook (nothing to decide on at the headers). The one rule for the
    /// gateway and `sluice plugin run`.
    pub fn runs_body_policies(&self, asked: bool) -> bool {
        asked || self.body_without_headers
    }

    /// Union of every attachment's hooks: skip whole phases cheaply.
    /// One of its policies is the plugin `name`.
    pub fn has_plugin(&self, name: &str) -> bool {
        self.atts.iter().any(|a| a.name() == name)
    }

    pub fn wants(&self) -> Hooks {
        self.wants
    }

    pub fn attachments(&self) -> &[Arc<Attachment>] {
        &self.atts
    }

    fn forward(&self, hook: Hooks) -> impl Iterator<Item = &Arc<Attachment>> {
        self.atts.iter().filter(move |a| a.hooks().contains(hook))
    }
    fn reverse(&self, hook: Hooks) -> impl Iterator<Item = &Arc<Attachment>> {
        self.atts
            .iter()
            .rev()
            .filter(move |a| a.hooks().contains(hook))
    }

    pub fn request_headers(
        &self,
        s: &mut RequestScope,
        headers: &mut HeaderMap,
    ) -> Result<HeadersOutcome, PolicyFailure> {
        let mut need_body = false;
        for (index, att) in self.atts.iter().enumerate() {
            if !att.hooks().contains(Hooks::REQUEST_HEADERS) {
                continue;
            }
            let list = att.header_list(headers);
            let action = att.call("request_headers", s, |b, st, ctx| {
                b.sluice_policy_policy()
                    .call_on_request_headers(st, ctx, &list)
            });
            let Some(action) = settle(att, "request_headers", action)? else {
                continue;
            };
            let ops = match action {
                HeadersAction::Continue(ops) => ops,
                HeadersAction::NeedBody(ops) => {
                    need_body = true;
                    s.asked_body.ask(index);
                    ops
                }
                HeadersAction::Respond(r) => {
                    s.note_respond(r.status);
                    return Ok(HeadersOutcome::Respond(r.into()));
                }
            };
            let applied = apply_ops(headers, ops);
            settle(att, "request_headers", applied)?;
        }
        Ok(HeadersOutcome::Continue { need_body })
    }

    pub fn request_body(
        &self,
        s: &mut RequestScope,
        headers: &mut HeaderMap,
        body: &mut Bytes,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        for (index, att) in self.atts.iter().enumerate() {
            let h = att.hooks();
            // Called for a plugin that asked with `need-body`, or that has
            // no headers hook to ask with; one that answered `continue` at
            // the headers said it had decided without the body.
            if !h.contains(Hooks::REQUEST_BODY)
                || (h.contains(Hooks::REQUEST_HEADERS) && !s.asked_body.asked(index))
            {
                continue;
            }
            let list = att.header_list(headers);
            let action = att.call("request_body", s, |b, st, ctx| {
                b.sluice_policy_policy()
                    .call_on_request_body(st, ctx, &list, body)
            });
            match settle(att, "request_body", action)? {
                None | Some(BodyAction::Continue) => {}
                Some(BodyAction::Replace(new)) => {
                    *body = Bytes::from(new);
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                }
                Some(BodyAction::Respond(r)) => {
                    s.note_respond(r.status);
                    return Ok(Some(r.into()));
                }
            }
        }
        Ok(None)
    }

    /// Reverse order.
    pub fn response_headers(
        &self,
        s: &mut RequestScope,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        for att in self.reverse(Hooks::RESPONSE_HEADERS) {
            let list = att.header_list(headers);
            let action = att.call("response_headers", s, |b, st, ctx| {
                b.sluice_policy_policy()
                    .call_on_response_headers(st, ctx, status, &list)
            });
            match settle(att, "response_headers", action)? {
                None => {}
                Some(wit::ResponseHeadersAction::Continue(ops)) => {
                    let applied = apply_ops(headers, ops);
                    settle(att, "response_headers", applied)?;
                }
                Some(wit::ResponseHeadersAction::Respond(r)) => {
                    s.note_respond(r.status);
                    return Ok(Some(r.into()));
                }
            }
        }
        Ok(None)
    }

    /// Reverse order.
    pub fn response_body(
        &self,
        s: &mut RequestScope,
        status: u16,
        body: &mut Bytes,
    ) -> Result<Option<ImmediateResponse>, PolicyFailure> {
        for att in self.reverse(Hooks::RESPONSE_BODY) {
            let action = att.call("response_body", s, |b, st, ctx| {
                b.sluice_policy_policy()
                    .call_on_response_body(st, ctx, status, body)
            });
            match settle(att, "response_body", action)? {
                None | Some(BodyAction::Continue) => {}
                Some(BodyAction::Replace(new)) => *body = Bytes::from(new),
                Some(BodyAction::Respond(r)) => {
                    s.note_respond(r.status);
                    return Ok(Some(r.into()));
                }
            }
        }
        Ok(None)
    }

    /// Reverse order; each plugin's output events feed the next plugin.
    pub fn response_event(
        &self,
        s: &mut RequestScope,
        ev: SseEvent,
    ) -> Result<Vec<SseEvent>, PolicyFailure> {
        let order: Vec<&Arc<Attachment>> = self.reverse(Hooks::RESPONSE_EVENTS).collect();
        pass_events(&order, s, vec![ev])
    }

    /// Reverse order; each plugin's flushed events also pass through the
    /// plugins after it (in response order).
    pub fn response_end(&self, s: &mut RequestScope) -> Result<Vec<SseEvent>, PolicyFailure> {
        let order: Vec<&Arc<Attachment>> = self.reverse(Hooks::RESPONSE_EVENTS).collect();
        let mut out = Vec::new();
        for (i, att) in order.iter().enumerate() {
            let flushed = att.call("response_end", s, |b, st, ctx| {
                b.sluice_policy_policy().call_on_response_end(st, ctx)
            });
            if let Some(events) = settle(att, "response_end", flushed)? {
                out.extend(pass_events(&order[i + 1..], s, events)?);
            }
        }
        Ok(out)
    }

    /// Accounting only: failures are logged and counted, never returned.
    pub fn complete(&self, s: &mut RequestScope, summary: &Completion) {
        for att in self.forward(Hooks::COMPLETE) {
            let r = att.call("complete", s, |b, st, ctx| {
                b.sluice_policy_policy().call_on_complete(st, ctx, summary)
            });
            let _ = settle(att, "complete", r);
        }
    }
}

fn pass_events(
    order: &[&Arc<Attachment>],
    s: &mut RequestScope,
    mut events: Vec<SseEvent>,
) -> Result<Vec<SseEvent>, PolicyFailure> {
    for att in order {
        let mut next = Vec::with_capacity(events.len());
        for ev in events {
            let out = att.call("response_event", s, |b, st, ctx| {
                b.sluice_policy_policy()
                    .call_on_response_event(st, ctx, &ev)
            });
            match settle(att, "response_event", out)? {
                Some(evs) => next.extend(evs),
                // Skipped (fail open): the event passes unchanged.
                None => next.push(ev),
            }
        }
        events = next;
    }
    Ok(events)
}

/// Map a call result through the failure mode: `Ok(Some)` on success,
/// `Ok(None)` to skip (fail open), `Err` to fail the request (fail closed).
fn settle<R>(att: &Attachment, hook: &'static str, r: Result<R, CallError>) -> Step<R> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            if e.kind == "plugin" {
                // Output errors are counted here (traps were counted in the pool).
                att.count_failure(hook, &e);
            }
            let mode = att.failure_mode();
            tracing::warn!(plugin = att.name(), hook, kind = e.kind, reason = %e.reason, ?mode, "policy failed");
            // The store failing closed is the operator's `state.failureMode`
            // decision: it refuses the request whatever the plugin's mode.
            if e.kind == "state" {
                return Err(PolicyFailure {
                    plugin: att.name().to_owned(),
                    reason: e.reason,
                    status: 503,
                });
            }
            match mode {
                FailureMode::Closed => Err(PolicyFailure {
                    plugin: att.name().to_owned(),
                    reason: e.reason,
                    status: 500,
                }),
                FailureMode::Open => Ok(None),
            }
        }
    }
}

fn bad(reason: String) -> CallError {
    CallError {
        kind: "plugin",
        reason,
    }
}

/// Apply edits in the order remove, set, add. An invalid header name fails
/// the whole list (a plugin bug). A `set` whose value cannot be sent
/// (control characters, CR/LF, non-ASCII) removes the header instead: a
/// header a policy sets never keeps the client's value, whatever language
/// the plugin is written in. An `add` with such a value is dropped.
pub(crate) fn apply_ops(headers: &mut HeaderMap, ops: HeaderOps) -> Result<(), CallError> {
    let name = |n: &str| {
        HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad(format!("invalid header name {n:?}")))
    };
    let mut remove = ops
        .remove
        .iter()
        .map(|n| name(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut set = Vec::with_capacity(ops.set.len());
    for (n, v) in &ops.set {
        let h = name(n)?;
        match sendable(v) {
            Some(v) => set.push((h, v)),
            None => {
                tracing::warn!(header = %h, "a policy set a value that cannot be sent; header removed");
                remove.push(h);
            }
        }
    }
    let mut add = Vec::with_capacity(ops.add.len());
    for (n, v) in &ops.add {
        let h = name(n)?;
        match sendable(v) {
            Some(v) => add.push((h, v)),
            None => {
                tracing::warn!(header = %h, "a policy added a value that cannot be sent; dropped")
            }
        }
    }
    for n in remove {
        headers.remove(n);
    }
    for (n, v) in set {
        headers.insert(n, v);
    }
    for (n, v) in add {
        headers.append(n, v);
    }
    Ok(())
}

/// A header value made only of visible ASCII, space and tab.
fn sendable(v: &str) -> Option<HeaderValue> {
    if !v.is_ascii() {
        return None;
    }
    HeaderValue::from_str(v).ok()
}

#[cfg(test)]
mod apply_tests {
    use super::*;

    fn ops(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderOps {
        let pairs = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        HeaderOps {
            set: pairs(set),
            add: pairs(add),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_unsendable_set_value_removes_the_clients_header_and_keeps_the_other_edits() {
        for bad in ["a\r\nx-admin: 1", "caf\u{e9}", "tab\u{7}bell"] {
            let mut h = HeaderMap::new();
            h.insert("x-user", "forged-by-client".parse().unwrap());
            h.insert("x-drop", "1".parse().unwrap());
            apply_ops(
                &mut h,
                ops(
                    &[("x-user", bad), ("x-ok", "fine")],
                    &[("x-add", bad), ("x-add", "kept")],
                    &["x-drop"],
                ),
            )
            .unwrap();
            assert!(h.get("x-user").is_none(), "{bad:?}: {h:?}");
            assert_eq!(h.get("x-ok").unwrap(), "fine");
            assert_eq!(h.get_all("x-add").iter().count(), 1);
            assert!(h.get("x-drop").is_none() && h.get("x-admin").is_none());
        }
    }

    #[test]
    fn an_invalid_name_fails_the_whole_list() {
        let mut h = HeaderMap::new();
        h.insert("x-keep", "1".parse().unwrap());
        assert!(apply_ops(&mut h, ops(&[("bad name", "v")], &[], &["x-keep"])).is_err());
        assert!(h.get("x-keep").is_some(), "nothing applied");
    }
}
