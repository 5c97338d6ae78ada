//! `sluice plugin run`: the hooks of one plugin on a recorded exchange.
//!
//! The plugin runs in the gateway's own runtime and chain, one hook after the
//! other in the gateway's order, with the request's attributes carried from
//! hook to hook. After each hook the report shows what it decided, what it
//! changed (headers, body, events) and what it asked of the host.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use super::exchange::{self, Request, Response};
use super::load::{self, hook_names};
use super::record::HostCall;
use crate::policy::{Chain, Completion, HeadersOutcome, Hooks, RequestScope, SseEvent};
use crate::stream::sse::Framer;

/// The response side of the exchange, if any.
pub enum ResponseInput {
    None,
    Json(PathBuf),
    Sse(PathBuf),
}

impl ResponseInput {
    pub fn from_args(response: Option<PathBuf>, sse: Option<PathBuf>) -> Self {
        match (response, sse) {
            (Some(r), _) => ResponseInput::Json(r),
            (None, Some(s)) => ResponseInput::Sse(s),
            (None, None) => ResponseInput::None,
        }
    }
}

/// One header change a hook made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderEdit {
    pub name: String,
    /// The header's values after the hook; empty: removed.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl From<&SseEvent> for Event {
    fn from(e: &SseEvent) -> Self {
        Event {
            event: e.event.clone(),
            data: e.data.clone(),
            id: e.id.clone(),
        }
    }
}

/// What one hook call did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Step {
    pub hook: &'static str,
    /// `continue`, `need-body`, `replace`, `respond`, `pass`, `changed`,
    /// `dropped`, `split`, `flushed`, `done`, or `failed`.
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderEdit>,
    /// The new body, when replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_event: Option<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<Respond>,
    /// Attributes set or changed by this hook.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_calls: Vec<HostCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Respond {
    pub status: u16,
    /// The body the client gets (the provider's error JSON unless raw).
    pub body: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub plugin: String,
    pub hooks: Vec<&'static str>,
    pub steps: Vec<Step>,
    /// `forwarded` (the request would go upstream), `responded` (the plugin
    /// answered) or `failed`.
    pub outcome: &'static str,
}

fn header_map(pairs: &[(String, String)]) -> anyhow::Result<HeaderMap> {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| anyhow::anyhow!("invalid header name {k:?}"))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| anyhow::anyhow!("invalid value for header {k}"))?;
        m.append(name, value);
    }
    Ok(m)
}

fn values(m: &HeaderMap, name: &HeaderName) -> Vec<String> {
    m.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Headers whose values differ between `before` and `after`.
fn diff_headers(before: &HeaderMap, after: &HeaderMap) -> Vec<HeaderEdit> {
    let mut names: Vec<&HeaderName> = before.keys().chain(after.keys()).collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (b, a) = (values(before, n), values(after, n));
            (a != b).then(|| HeaderEdit {
                name: n.as_str().to_owned(),
                values: a,
            })
        })
        .collect()
}

fn diff_attrs(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Runner {
    chain: Chain,
    scope: RequestScope,
    recorder: super::record::Recorder,
    steps: Vec<Step>,
}

impl Runner {
    /// Runs `f`, then fills in the attributes and host calls it caused.
    fn step<R>(
        &mut self,
        hook: &'static str,
        f: impl FnOnce(&Chain, &mut RequestScope) -> R,
    ) -> (R, Step) {
        let before = self.scope.attrs.clone();
        self.recorder.take();
        let r = f(&self.chain, &mut self.scope);
        let step = Step {
            hook,
            attrs: diff_attrs(&before, &self.scope.attrs),
            host_calls: self.recorder.take(),
            ..Step::default()
        };
        (r, step)
    }
}

fn respond_of(ctx: &crate::policy::RequestContext, r: crate::policy::ImmediateResponse) -> Respond {
    use crate::policy::Provider;
    use crate::proxy::errors::ErrorShape;
    let shape = match ctx.provider {
        Provider::Anthropic => ErrorShape::Anthropic,
        Provider::Openai => ErrorShape::OpenAi,
        Provider::None => ErrorShape::guess(&ctx.path, &HeaderMap::new()),
    };
    let body = match &r.body {
        Some(b) => text(b),
        None => text(&crate::proxy::errors::error_body(
            shape,
            r.status,
            &r.error_type,
            &r.message,
        )),
    };
    Respond {
        status: r.status,
        body,
        headers: r.headers,
    }
}

/// Run the exchange and build the report.
pub fn replay(
    chain: Chain,
    plugin: &str,
    req: Request,
    resp: Option<(Response, bool)>,
    recorder: super::record::Recorder,
) -> anyhow::Result<Report> {
    let hooks = chain.wants();
    let mut r = Runner {
        chain,
        scope: RequestScope::new(req.ctx.clone()),
        recorder,
        steps: Vec::new(),
    };
    let report = |r: Runner, outcome| Report {
        plugin: plugin.to_owned(),
        hooks: hook_names(hooks),
        steps: r.steps,
        outcome,
    };
    let mut headers = header_map(&req.headers)?;
    let mut short_circuit = None;

    // Request headers.
    let mut need_body = false;
    if hooks.contains(Hooks::REQUEST_HEADERS) {
        let before = headers.clone();
        let (out, mut step) = r.step("request-headers", |c, s| c.request_headers(s, &mut headers));
        step.headers = diff_headers(&before, &headers);
        match out {
            Ok(HeadersOutcome::Continue { need_body: nb }) => {
                need_body = nb;
                step.action = if nb { "need-body" } else { "continue" }.into();
            }
            Ok(HeadersOutcome::Respond(resp)) => {
                step.action = "respond".into();
                step.respond = Some(respond_of(&req.ctx, resp));
                short_circuit = Some(step.respond.as_ref().map_or(0, |x| x.status));
            }
            Err(e) => {
                step.action = "failed".into();
                step.error = Some(e.to_string());
                r.steps.push(step);
                return Ok(report(r, "failed"));
            }
        }
        r.steps.push(step);
    }

    // Request body: the gateway's rule for when the body policies run, and
    // its checks first (strict JSON, the model peek), from the same code.
    if short_circuit.is_none()
        && r.chain.runs_body_policies(need_body)
        && hooks.contains(Hooks::REQUEST_BODY)
    {
        if let Err(refusal) = crate::proxy::request_body::admit(&mut r.scope.ctx, &req.body) {
            let respond = respond_of(
                &req.ctx,
                crate::policy::ImmediateResponse {
                    status: refusal.status,
                    headers: Vec::new(),
                    message: refusal.message.clone(),
                    error_type: refusal.error_type.to_string(),
                    body: None,
                },
            );
            short_circuit = Some(respond.status);
            r.steps.push(Step {
                hook: "gateway-body-check",
                action: "respond".into(),
                respond: Some(respond),
                ..Step::default()
            });
        }
    }
    if short_circuit.is_none()
        && r.chain.runs_body_policies(need_body)
        && hooks.contains(Hooks::REQUEST_BODY)
    {
        let mut body = req.body.clone();
        let before = headers.clone();
        let (out, mut step) = r.step("request-body", |c, s| {
            c.request_body(s, &mut headers, &mut body)
        });
        step.headers = diff_headers(&before, &headers);
        match out {
            Ok(None) if body != req.body => {
                step.action = "replace".into();
                step.body = Some(text(&body));
            }
            Ok(None) => step.action = "continue".into(),
            Ok(Some(resp)) => {
                step.action = "respond".into();
                step.respond = Some(respond_of(&req.ctx, resp));
                short_circuit = Some(step.respond.as_ref().map_or(0, |x| x.status));
            }
            Err(e) => {
                step.action = "failed".into();
                step.error = Some(e.to_string());
                r.steps.push(step);
                return Ok(report(r, "failed"));
            }
        }
        r.steps.push(step);
    }

    let mut status = short_circuit.unwrap_or(200);
    let mut failed = false;
    if let (None, Some((resp, streaming))) = (short_circuit, resp) {
        status = resp.status;
        failed = replay_response(&mut r, &req, resp, streaming)?;
    }

    if hooks.contains(Hooks::COMPLETE) {
        let summary = Completion {
            status,
            usage: None,
            ttfb_ms: 0,
            duration_ms: 0,
            short_circuited: short_circuit.is_some(),
            error: None,
        };
        let ((), mut step) = r.step("complete", |c, s| c.complete(s, &summary));
        step.action = "done".into();
        r.steps.push(step);
    }
    let outcome = match (failed, short_circuit) {
        (true, _) => "failed",
        (false, Some(_)) => "responded",
        (false, None) => "forwarded",
    };
    Ok(report(r, outcome))
}

/// The response hooks; returns whether a hook failed.
fn replay_response(
    r: &mut Runner,
    req: &Request,
    resp: Response,
    streaming: bool,
) -> anyhow::Result<bool> {
    let hooks = r.chain.wants();
    let mut headers = header_map(&resp.headers)?;
    if hooks.contains(Hooks::RESPONSE_HEADERS) {
        let before = headers.clone();
        let (out, mut step) = r.step("response-headers", |c, s| {
            c.response_headers(s, resp.status, &mut headers)
        });
        step.headers = diff_headers(&before, &headers);
        let stop = match out {
            Ok(None) => {
                step.action = "continue".into();
                None
            }
            Ok(Some(x)) => {
                step.action = "respond".into();
                step.respond = Some(respond_of(&req.ctx, x));
                Some(false)
            }
            Err(e) => {
                step.action = "failed".into();
                step.error = Some(e.to_string());
                Some(true)
            }
        };
        r.steps.push(step);
        if let Some(failed) = stop {
            return Ok(failed);
        }
    }
    if !streaming {
        if hooks.contains(Hooks::RESPONSE_BODY) {
            let mut body = resp.body.clone();
            let (out, mut step) = r.step("response-body", |c, s| {
                c.response_body(s, resp.status, &mut body)
            });
            let failed = match out {
                Ok(None) if body != resp.body => {
                    step.action = "replace".into();
                    step.body = Some(text(&body));
                    false
                }
                Ok(None) => {
                    step.action = "continue".into();
                    false
                }
                Ok(Some(x)) => {
                    step.action = "respond".into();
                    step.respond = Some(respond_of(&req.ctx, x));
                    false
                }
                Err(e) => {
                    step.action = "failed".into();
                    step.error = Some(e.to_string());
                    true
                }
            };
            r.steps.push(step);
            return Ok(failed);
        }
        return Ok(false);
    }
    if !hooks.contains(Hooks::RESPONSE_EVENTS) {
        return Ok(false);
    }
    let mut framer = Framer::new();
    framer.push(&resp.body);
    let mut events = Vec::new();
    while let Some(e) = framer.next_event() {
        events.push(e);
    }
    events.extend(framer.finish());
    for e in events {
        let ev = SseEvent {
            event: e.event.clone(),
            data: e.data.clone(),
            id: e.id.clone(),
        };
        let input = Event::from(&ev);
        let (out, mut step) = r.step("response-event", |c, s| c.response_event(s, ev));
        match out {
            Ok(evs) => {
                let out: Vec<Event> = evs.iter().map(Event::from).collect();
                step.action = match out.len() {
                    0 => "dropped",
                    1 if out[0] == input => "pass",
                    1 => "changed",
                    _ => "split",
                }
                .into();
                if step.action != "pass" {
                    step.events = Some(out);
                }
            }
            Err(e) => {
                step.action = "failed".into();
                step.error = Some(e.to_string());
                step.input_event = Some(input);
                r.steps.push(step);
                return Ok(true);
            }
        }
        step.input_event = Some(input);
        r.steps.push(step);
    }
    let (out, mut step) = r.step("response-end", |c, s| c.response_end(s));
    let failed = match out {
        Ok(evs) => {
            step.action = if evs.is_empty() { "done" } else { "flushed" }.into();
            if !evs.is_empty() {
                step.events = Some(evs.iter().map(Event::from).collect());
            }
            false
        }
        Err(e) => {
            step.action = "failed".into();
            step.error = Some(e.to_string());
            true
        }
    };
    r.steps.push(step);
    Ok(failed)
}

/// Print the report as text.
pub fn print_text(rep: &Report) {
    println!("plugin {}: hooks {}", rep.plugin, rep.hooks.join(", "));
    for s in &rep.steps {
        match &s.input_event {
            Some(e) => println!(
                "{} [{}]: {}",
                s.hook,
                e.event.as_deref().unwrap_or("message"),
                s.action
            ),
            None => println!("{}: {}", s.hook, s.action),
        }
        for h in &s.headers {
            if h.values.is_empty() {
                println!("  header removed {}", h.name);
            } else {
                println!("  header {}: {}", h.name, h.values.join(", "));
            }
        }
        if let Some(b) = &s.body {
            println!("  body: {b}");
        }
        if let Some(r) = &s.respond {
            println!("  respond {}: {}", r.status, r.body);
            for (k, v) in &r.headers {
                println!("    {k}: {v}");
            }
        }
        for e in s.events.iter().flatten() {
            println!(
                "  event {}: {}",
                e.event.as_deref().unwrap_or("message"),
                e.data
            );
        }
        for (k, v) in &s.attrs {
            println!("  attr {k} = {v}");
        }
        for c in &s.host_calls {
            println!("  {c}");
        }
        if let Some(e) = &s.error {
            println!("  error: {e}");
        }
    }
    println!("outcome: {}", rep.outcome);
}

pub fn run(
    file: &Path,
    config: Option<&Path>,
    request: &Path,
    response: ResponseInput,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let req = exchange::read_request(request)?;
    let resp = match &response {
        ResponseInput::None => None,
        ResponseInput::Json(p) => Some((exchange::read_response(p)?, false)),
        ResponseInput::Sse(p) => Some((exchange::read_sse(p)?, true)),
    };
    let cfg = load::config(config)?;
    let loaded = load::load(file, true)?;
    let att = loaded.runtime.attach(&loaded.plugin, &cfg)?;
    loaded.recorder.take(); // calls made by validate/init
    let chain = Chain::new(vec![att]);
    let rep = replay(chain, &loaded.name, req, resp, loaded.recorder.clone())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print_text(&rep);
    }
    Ok(if rep.outcome == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
