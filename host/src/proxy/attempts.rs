//! Phase 5's bookkeeping: which backend the next attempt goes to, what an
//! attempt's outcome means (an answer, or a reason to try again), the
//! health it teaches, and when to stop.
//!
//! Retries and failover happen only here, before the pipeline hands a
//! response to phase 6: once an answer's headers are accepted it streams to
//! the client and is never swapped for another backend's.
//!
//! `retry.attempts` is the total number of calls, the first one included
//! (agentgateway's documented meaning). A call ends the request when it is
//! an answer: any status not in `retry.codes`. A connection or TLS failure,
//! a timeout before headers, or a status in `codes` is tried again, on a
//! backend not yet tried for this request while one is in rotation.

use super::backends::{Candidate, Pick};
use super::client::error_chain;
use super::health::{self, Reason};
use super::snapshot::RouteEntry;
use crate::config::AiKind;
use crate::metrics::{AttemptLabels, EvictionLabels, Metrics};
use crate::otel::RequestTrace;
use http::Response;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The attempts of one client request.
pub struct Attempts<'a> {
    route: &'a RouteEntry,
    metrics: &'a Metrics,
    kind: AiKind,
    deadline: Instant,
    made: u8,
    tried: Vec<Arc<Candidate>>,
    /// The last attempt's outcome, handed to the client when no further
    /// attempt is made.
    last: Option<Last>,
}

enum Last {
    Answer(Arc<Candidate>, Response<Incoming>),
    Failed(Failure),
}

/// A request that got no answer to pass on, for the pipeline to turn into
/// an error in the client's shape.
#[derive(Debug)]
pub struct Failure {
    pub status: u16,
    pub message: String,
    /// Seconds to tell the client in `Retry-After`.
    pub retry_after: Option<u64>,
}

/// What the pipeline does next.
pub enum Next {
    /// Send an attempt to this backend.
    Try(Arc<Candidate>),
    /// No further attempt: pass this answer on.
    Answer(Arc<Candidate>, Response<Incoming>),
    /// No further attempt, and no answer to pass on.
    Fail(Failure),
}

/// What an attempt's result means.
pub enum Outcome {
    Answer(Response<Incoming>),
    TryAgain,
}

/// What `hyper` gave back for one attempt, or a timeout.
pub type Sent = Result<Result<Response<Incoming>, hyper_util::client::legacy::Error>, Elapsed>;
pub type Elapsed = tokio::time::error::Elapsed;

impl<'a> Attempts<'a> {
    pub fn new(
        route: &'a RouteEntry,
        metrics: &'a Metrics,
        kind: AiKind,
        started: Instant,
    ) -> Self {
        Attempts {
            route,
            metrics,
            kind,
            deadline: started + route.request_timeout,
            made: 0,
            tried: Vec::new(),
            last: None,
        }
    }

    /// Calls made so far.
    pub fn made(&self) -> u8 {
        self.made
    }

    /// Whether this request may need its body more than once.
    pub fn may_replay(route: &RouteEntry) -> bool {
        route.attempts() > 1
    }

    /// The backend of the next attempt, after the backoff; or the end.
    pub async fn next(&mut self) -> Next {
        if self.made > 0 {
            if self.made >= self.route.attempts() {
                return self.end();
            }
            let backoff = self.route.retry.as_ref().and_then(|r| r.backoff);
            if let Some(b) = backoff.filter(|b| !b.is_zero()) {
                if Instant::now() + b >= self.deadline {
                    return self.end();
                }
                tokio::time::sleep(b).await;
            }
            if Instant::now() >= self.deadline {
                return self.end();
            }
        }
        let kind = self.kind;
        let fits = |c: &Candidate| super::pipeline::fits(c, kind);
        match self
            .route
            .backends
            .pick(&mut rand::rng(), Instant::now(), fits, &self.tried)
        {
            Pick::Chosen(c) => {
                // The previous answer is dropped (and its connection with it).
                self.last = None;
                self.made += 1;
                self.tried.push(c.clone());
                Next::Try(c)
            }
            Pick::Evicted(until) if self.last.is_none() => {
                let wait = until.saturating_duration_since(Instant::now());
                Next::Fail(Failure {
                    status: 503,
                    message: format!(
                        "every backend of route `{}` is out of rotation for {}s",
                        self.route.name,
                        wait.as_secs_f64().ceil()
                    ),
                    retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                })
            }
            _ => self.end(),
        }
    }

    fn end(&mut self) -> Next {
        match self.last.take() {
            Some(Last::Answer(c, r)) => Next::Answer(c, r),
            Some(Last::Failed(f)) => Next::Fail(f),
            None => Next::Fail(Failure {
                status: 502,
                message: format!("route `{}` has no backend left to try", self.route.name),
                retry_after: None,
            }),
        }
    }

    /// Time left for the next call: its own timeout, within the request's.
    pub fn time_left(&self) -> Duration {
        self.route
            .attempt_timeout
            .min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// Judge one attempt: count it, teach the backend's health, and say
    /// whether it is the answer.
    pub fn outcome(
        &mut self,
        c: &Arc<Candidate>,
        sent: Sent,
        trace: Option<&mut RequestTrace>,
    ) -> Outcome {
        let route = &self.route.name;
        let backend = &c.target.name;
        let retry_codes: &[u16] = self.route.retry.as_ref().map_or(&[], |r| &r.codes);
        let (label, failure) = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                if let Some(t) = trace {
                    t.upstream_status(status);
                }
                if status >= 500 {
                    self.failed(c);
                } else {
                    c.health.success();
                }
                if status == 429 {
                    if let Some(d) = health::retry_after(resp.headers(), SystemTime::now()) {
                        let d = c.health.evict(d, Reason::RateLimited);
                        self.evicted(c, Reason::RateLimited, d);
                    }
                }
                self.count(c, &status.to_string());
                if !retry_codes.contains(&status) {
                    return Outcome::Answer(resp);
                }
                tracing::info!(route = %route, backend = %backend, attempt = self.made, status, "upstream attempt: retryable status");
                self.last = Some(Last::Answer(c.clone(), resp));
                return Outcome::TryAgain;
            }
            Ok(Err(e)) => {
                if let Some(t) = trace {
                    t.upstream_failed("connect");
                }
                let msg = format!(
                    "upstream {} unreachable: {}",
                    c.target.authority,
                    error_chain(&e)
                );
                (
                    "connect_error",
                    Failure {
                        status: 502,
                        message: msg,
                        retry_after: None,
                    },
                )
            }
            Err(_) => {
                if let Some(t) = trace {
                    t.upstream_failed("timeout");
                }
                let msg = format!(
                    "upstream {} did not answer within {:?}",
                    c.target.authority, self.route.attempt_timeout
                );
                (
                    "timeout",
                    Failure {
                        status: 504,
                        message: msg,
                        retry_after: None,
                    },
                )
            }
        };
        tracing::warn!(route = %route, backend = %backend, attempt = self.made, error = %failure.message, "upstream attempt failed");
        self.failed(c);
        self.count(c, label);
        self.last = Some(Last::Failed(failure));
        Outcome::TryAgain
    }

    fn failed(&self, c: &Arc<Candidate>) {
        if let Some(d) = c.health.failure(c.eviction.as_ref()) {
            self.evicted(c, Reason::Failures, d);
        }
    }

    fn evicted(&self, c: &Candidate, reason: Reason, d: Duration) {
        tracing::warn!(route = %self.route.name, backend = %c.target.name, reason = reason.label(), seconds = d.as_secs_f64(), "backend evicted");
        self.metrics
            .backend_evictions
            .get_or_create(&EvictionLabels {
                route: self.route.name.clone(),
                backend: c.target.name.clone(),
                reason: reason.label(),
            })
            .inc();
    }

    fn count(&self, c: &Candidate, outcome: &str) {
        self.metrics
            .backend_attempts
            .get_or_create(&AttemptLabels {
                route: self.route.name.clone(),
                backend: c.target.name.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}
