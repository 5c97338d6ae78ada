//! `jwt-auth`: JWT bearer authentication for Sluice routes.
//!
//! Attached by the guide's `auth: {jwt: ...}` or agentgateway's `jwtAuth:`:
//!
//! ```yaml
//! policies:
//!   auth:
//!     jwt:
//!       issuer: https://auth.yourcompany.com   # keys by OIDC discovery
//!       audiences: [agentgateway]
//!     actions:
//!       onSuccess:
//!         requestHeaders:
//!         - set:
//!             X-Authenticated-User: \\$(request.auth.claims.email)
//! # or
//!   jwtAuth:
//!     issuer: https://idp.example
//!     audiences: [api]
//!     jwks: {url: https://idp.example/jwks.json}   # or inline: '{"keys":[...]}'
//!     mode: strict            # optional | permissive
//!     # header: x-token, prefix: "Token ", leeway: 60s, secret: $JWT_SECRET,
//!     # algorithms: [RS256], jwksHosts: [keys.idp.example], forwardToken: false,
//!     # jwks: {cacheTtl: 5m, refreshInterval: 30s}
//! ```
//!
//! On success it sets the request attributes `auth.claims` (JSON),
//! `auth.claims.<name>` (strings as-is, other values as JSON), `auth.sub` and
//! `auth.iss`, applies the `onSuccess` header edits (through the SDK's set
//! rule: a `set` whose template has no value removes the header; with
//! `onSuccess.onMissing: reject` the request is refused with 403 instead),
//! and removes the credential
//! header: the client's JWT is a gateway credential, not a provider one. With
//! `backendAuth` the gateway then injects the provider key; for subscription
//! passthrough the client must send its provider token in another header, or
//! set `forwardToken: true`.
//!
//! Failures answer 401 `authentication_error` with
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="<check>"`;
//! the token itself is never logged or echoed. When the signing keys cannot be
//! fetched the answer is 503, since the client did nothing wrong.
//!
//! Remote keys (and the discovery document) are fetched through the host
//! (`host::fetch`) and cached in host KV for `cacheTtl` (default 5m), shared
//! by all instances and, with the Redis backend, all replicas. A token whose
//! `kid` is unknown forces one re-fetch, at most once per `refreshInterval`
//! (default 30s) per JWKS URL (a host counter), so a flood of made-up `kid`s
//! cannot hammer the IdP. The host's fetch cache is not used because a
//! cached entry there could not be bypassed for that forced re-fetch.

pub mod config;
pub mod jwt;
pub mod keys;
pub mod url;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};
use sluice_sdk::header_set::{NoValue, Unset};
use sluice_sdk::prelude::*;
use sluice_sdk::template::{claim, value_text, Lookup, Var};

use config::{Edit, Mode, Remote, Settings};
use jwt::Failure;
use keys::Key;

/// Why authentication did not succeed.
#[derive(Debug)]
enum AuthError {
    /// The client's fault: 401.
    Invalid(Failure),
    /// Keys could not be loaded: 503.
    Unavailable(String),
}

impl From<Failure> for AuthError {
    fn from(f: Failure) -> Self {
        AuthError::Invalid(f)
    }
}

/// What was derived from a document, kept while the document's bytes stay
/// the same. Only a parse cache: the document itself always comes from the
/// host, so a recycled instance loses nothing and a stale entry can't be
/// served.
struct ByBytes<T>(RefCell<Option<(Vec<u8>, T)>>);

impl<T: Clone> ByBytes<T> {
    fn new() -> Self {
        ByBytes(RefCell::new(None))
    }

    /// The value derived from `body`: remembered, or `derive`d (and
    /// remembered when it succeeds).
    fn get_or(
        &self,
        body: Vec<u8>,
        derive: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, String> {
        if let Some((seen, v)) = &*self.0.borrow() {
            if *seen == body {
                return Ok(v.clone());
            }
        }
        let v = derive(&body)?;
        *self.0.borrow_mut() = Some((body, v.clone()));
        Ok(v)
    }
}

/// A token this instance verified, with the key set it verified against
/// (`None`: the static keys) and its decoded claims.
struct Verified {
    token: String,
    keys: Option<Rc<Vec<Key>>>,
    claims: Map<String, Value>,
}

/// Tokens remembered per instance: agents reuse one JWT for hours.
const REMEMBERED: usize = 8;

pub struct JwtAuth {
    s: Settings,
    /// Parsed remote JWKS, by the document's bytes.
    parsed: ByBytes<Rc<Vec<Key>>>,
    /// The `jwks_uri` the discovery document vouched for, by its bytes.
    discovered: ByBytes<String>,
    /// Tokens whose signature verified, newest first. A memo, like
    /// `parsed`: an entry counts only for the same token under the very key
    /// set it verified against (the keys come fresh from the host on every
    /// request, so a rotated JWKS is a different set and a miss), and its
    /// claims (exp, nbf, iss, aud) are checked again every time.
    verified: RefCell<Vec<Verified>>,
}

impl Policy for JwtAuth {
    type Config = config::Config;

    fn validate(config: &config::Config) -> Result<(), String> {
        config::compile(config.clone()).map(|_| ())
    }

    fn new(config: config::Config) -> Result<Self, String> {
        Ok(JwtAuth {
            s: config::compile(config)?,
            parsed: ByBytes::new(),
            discovered: ByBytes::new(),
            verified: RefCell::new(Vec::new()),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }

    fn fetch_hosts(&self) -> Vec<String> {
        self.s.fetch_hosts.clone()
    }

    /// The token's header and the headers the success edits copy.
    fn reads_headers(&self) -> Option<Vec<String>> {
        let mut names = vec![self.s.header.clone()];
        for edit in &self.s.on_success {
            if let Edit::Set(_, t) | Edit::Add(_, t) = edit {
                names.extend(t.headers().map(str::to_owned));
            }
        }
        Some(names)
    }

    fn on_request_headers(&self, ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        let token = match extract(&self.s, headers) {
            Ok(Some(t)) => t,
            Ok(None) if self.s.mode == Mode::Strict => return self.reject(&Failure::Missing),
            Ok(None) => return self.unverified().proceed(),
            Err(f) => return self.refuse(AuthError::Invalid(f)),
        };
        match self.authenticate(token) {
            Ok(claims) => self.accept(ctx, headers, claims),
            Err(e) => self.refuse(e),
        }
    }
}

sluice_sdk::export_policy!(JwtAuth);

/// The token from the configured header, if the request carries one.
fn extract<'a>(s: &'a Settings, headers: &'a Headers) -> Result<Option<&'a str>, Failure> {
    let mut values = header_all(headers, &s.header);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Failure::Multiple);
    }
    let token = match &s.prefix {
        None => value.trim(),
        Some(prefix) => {
            let p = prefix.trim_end();
            let Some(head) = value.get(..p.len()) else {
                return Ok(None);
            };
            if !head.eq_ignore_ascii_case(p) {
                // Another scheme (`Basic ...`): not a bearer token.
                return Ok(None);
            }
            let rest = &value[p.len()..];
            if p.len() < prefix.len() && !rest.starts_with([' ', '\t']) {
                return Ok(None);
            }
            rest.trim()
        }
    };
    Ok((!token.is_empty()).then_some(token))
}

impl JwtAuth {
    fn authenticate(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let s = &self.s;
        let t = jwt::parse(token, &s.algorithms)?;
        let statics: Vec<&Key> = s.static_keys.iter().collect();
        let now_s = host::now_ms() / 1000;
        let (verified, keys) = match &s.remote {
            None => {
                if let Some(claims) = self.recall(token, None, now_s)? {
                    return Ok(claims);
                }
                (jwt::verify(&t, &statics), None)
            }
            Some(remote) => {
                let url = match self.jwks_url(remote) {
                    Ok(u) => u,
                    Err(e) => return self.statics_or(&t, &statics, e),
                };
                let remote_keys = match self.remote_keys(&url, false) {
                    Ok(k) => k,
                    Err(e) => return self.statics_or(&t, &statics, e),
                };
                if let Some(claims) = self.recall(token, Some(&remote_keys), now_s)? {
                    return Ok(claims);
                }
                let all: Vec<&Key> = statics.iter().copied().chain(remote_keys.iter()).collect();
                match jwt::verify(&t, &all) {
                    Err(Failure::UnknownKid) if self.may_refresh(&url) => {
                        host::metric_counter("jwt_auth_jwks_refresh", 1);
                        match self.remote_keys(&url, true) {
                            Ok(fresh) => {
                                let all: Vec<&Key> =
                                    statics.iter().copied().chain(fresh.iter()).collect();
                                (jwt::verify(&t, &all), Some(fresh))
                            }
                            Err(e) => {
                                host::warn(&format!("JWKS refresh failed: {e}"));
                                (Err(Failure::UnknownKid), None)
                            }
                        }
                    }
                    other => (other, Some(remote_keys)),
                }
            }
        };
        verified?;
        let claims = jwt::decode_claims(&t)?;
        jwt::check_claims(&claims, &s.rules, now_s)?;
        self.remember(token, keys, &claims);
        Ok(claims)
    }

    /// The claims of `token` if this instance verified it under exactly
    /// `keys` before; the claim checks run again at `now_s`.
    fn recall(
        &self,
        token: &str,
        keys: Option<&Rc<Vec<Key>>>,
        now_s: u64,
    ) -> Result<Option<Map<String, Value>>, Failure> {
        let memo = self.verified.borrow();
        let same_keys = |k: &Option<Rc<Vec<Key>>>| match (k, keys) {
            (None, None) => true,
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => false,
        };
        let Some(v) = memo.iter().find(|v| v.token == token && same_keys(&v.keys)) else {
            return Ok(None);
        };
        jwt::check_claims(&v.claims, &self.s.rules, now_s)?;
        Ok(Some(v.claims.clone()))
    }

    fn remember(&self, token: &str, keys: Option<Rc<Vec<Key>>>, claims: &Map<String, Value>) {
        let mut memo = self.verified.borrow_mut();
        memo.retain(|v| v.token != token);
        memo.insert(
            0,
            Verified {
                token: token.to_owned(),
                keys,
                claims: claims.clone(),
            },
        );
        memo.truncate(REMEMBERED);
    }

    /// Remote keys are unavailable: a token the static keys verify still
    /// passes, anything else is a 503.
    fn statics_or(
        &self,
        t: &jwt::Token,
        statics: &[&Key],
        err: String,
    ) -> Result<Map<String, Value>, AuthError> {
        if !statics.is_empty() && jwt::verify(t, statics).is_ok() {
            return Ok(jwt::claims(t, &self.s.rules, host::now_ms() / 1000)?);
        }
        Err(AuthError::Unavailable(err))
    }

    /// The JWKS URL: configured, or from the issuer's discovery document.
    fn jwks_url(&self, remote: &Remote) -> Result<String, String> {
        let (url, issuer) = match remote {
            Remote::Jwks(u) => return Ok(u.clone()),
            Remote::Discovery { url, issuer } => (url, issuer),
        };
        let body = self.cached_get(url, false)?;
        self.discovered.get_or(body, |body| {
            let doc: Value =
                serde_json::from_slice(body).map_err(|e| format!("{url}: not JSON: {e}"))?;
            let jwks_uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{url}: no jwks_uri"))?;
            // OIDC Discovery §4.3: the document must be the issuer's own.
            let doc_issuer = doc
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if jwt::trim_slash(doc_issuer) != jwt::trim_slash(issuer) {
                return Err(format!(
                    "{url}: issuer `{doc_issuer}` does not match the configured issuer"
                ));
            }
            let host = url::http_host(jwks_uri)?;
            if !self.s.jwks_hosts.contains(&host) {
                return Err(format!(
                    "{url}: jwks_uri host `{host}` is not the issuer's; add it to `jwksHosts`"
                ));
            }
            Ok(jwks_uri.to_owned())
        })
    }

    /// GET `url` through the host, cached in host KV for `cacheTtl`; `force`
    /// skips the cached copy. The host's own fetch cache is not used (cache-ms
    /// 0): a cached entry there cannot be bypassed for a forced refresh.
    fn cached_get(&self, url: &str, force: bool) -> Result<Vec<u8>, String> {
        let kv_key = format!("jwt-auth:doc:{url}");
        if !force {
            if let Some(body) = host::kv_get(&kv_key) {
                return Ok(body);
            }
        }
        let body = fetch_body(url)?;
        let ttl = Duration::from_millis(self.s.cache_ttl_ms.max(1));
        host::kv_set(&kv_key, &body, ttl);
        Ok(body)
    }

    /// The keys at `url` (cached); `force` re-fetches them.
    fn remote_keys(&self, url: &str, force: bool) -> Result<Rc<Vec<Key>>, String> {
        let body = self.cached_get(url, force)?;
        self.parsed.get_or(body, |body| {
            let doc: Value =
                serde_json::from_slice(body).map_err(|e| format!("{url}: not JSON: {e}"))?;
            let set = keys::parse_jwks(&doc).map_err(|e| format!("{url}: {e}"))?;
            if !set.skipped.is_empty() {
                host::debug(&format!("{url}: skipped keys: {}", set.skipped.join("; ")));
            }
            if set.keys.is_empty() {
                return Err(format!("{url}: no usable signing key"));
            }
            Ok(Rc::new(set.keys))
        })
    }

    /// One forced re-fetch per `refreshInterval` per JWKS URL, shared by every
    /// instance and replica through a host counter.
    fn may_refresh(&self, url: &str) -> bool {
        let window = Duration::from_millis(self.s.refresh_interval_ms);
        host::incr_counter(&format!("jwt-auth:refresh:{url}"), 1, window).total <= 1
    }

    fn accept(
        &self,
        ctx: &RequestContext,
        headers: &Headers,
        claims: Map<String, Value>,
    ) -> HeadersAction {
        let all = Value::Object(claims);
        host::set_attr("auth.claims", &all.to_string());
        let Value::Object(claims) = all else {
            unreachable!()
        };
        for (name, v) in &claims {
            host::set_attr(&format!("auth.claims.{name}"), &value_text(v));
        }
        for name in ["sub", "iss"] {
            if let Some(v) = claims.get(name) {
                host::set_attr(&format!("auth.{name}"), &value_text(v));
            }
        }
        let mut ops = HeaderOps::new();
        if !self.s.forward_token {
            ops = ops.remove(self.s.header.clone());
        }
        let scope = Scope {
            claims: &claims,
            ctx,
            headers,
        };
        match self.edits(ops, &scope) {
            Ok(ops) => ops.proceed(),
            Err(unset) => {
                host::warn(&format!("JWT accepted but refusing: {unset}"));
                host::metric_counter("jwt_auth_header_refusals", 1);
                unset.refuse_request().into()
            }
        }
    }

    /// The `onSuccess` edits through the SDK's set rule: a `set` whose
    /// template has no value (a claim the token lacks, say) removes the
    /// header, so a client-sent value never passes as the identity; an `add`
    /// adds nothing; under `onMissing: reject` the first such edit refuses.
    fn edits(&self, mut ops: HeaderOps, scope: &Scope) -> Result<HeaderOps, Unset> {
        let on_missing = self.s.on_missing;
        let log = |name: &str, v: &Result<String, NoValue>| {
            if let Err(why) = v {
                host::debug(&format!("onSuccess header {name} has no value: {why}"));
            }
        };
        for edit in &self.s.on_success {
            ops = match edit {
                Edit::Set(name, t) => {
                    let v = t.render(scope);
                    log(name, &v);
                    ops.set_value(name.clone(), v, on_missing)?
                }
                Edit::Add(name, t) => {
                    let v = t.render(scope);
                    log(name, &v);
                    ops.add_value(name.clone(), v, on_missing)?
                }
                Edit::Remove(name) => ops.remove(name.clone()),
            };
        }
        Ok(ops)
    }

    /// The edits for a request passed without a verified token (`optional`
    /// or `permissive` mode): every header `onSuccess` would `set` is
    /// removed, since the client's value there would pass upstream as an
    /// identity the gateway never checked.
    fn unverified(&self) -> HeaderOps {
        self.s
            .on_success
            .iter()
            .fold(HeaderOps::new(), |ops, edit| match edit {
                Edit::Set(name, _) => ops.remove(name.clone()),
                _ => ops,
            })
    }

    /// Refuse, or in permissive mode pass without claims (and leave the
    /// credential header alone: it may be a provider token).
    fn refuse(&self, e: AuthError) -> HeadersAction {
        if self.s.mode == Mode::Permissive {
            if let AuthError::Unavailable(why) = &e {
                host::warn(&format!(
                    "JWT keys unavailable (permissive: passing): {why}"
                ));
            }
            return self.unverified().proceed();
        }
        match e {
            AuthError::Invalid(f) => self.reject(&f),
            AuthError::Unavailable(why) => {
                host::warn(&format!("JWT keys unavailable: {why}"));
                host::metric_counter("jwt_auth_keys_unavailable", 1);
                Respond::status(503)
                    .message("authentication is temporarily unavailable: signing keys could not be loaded")
                    .error_type("api_error")
                    .into()
            }
        }
    }

    fn reject(&self, f: &Failure) -> HeadersAction {
        let msg = f.message();
        host::debug(&format!("JWT rejected: {msg}"));
        host::metric_counter("jwt_auth_rejected", 1);
        Respond::status(401)
            .message(msg.clone())
            .error_type("authentication_error")
            .header(
                "www-authenticate",
                format!("Bearer error=\"invalid_token\", error_description=\"{msg}\""),
            )
            .into()
    }
}

/// What `onSuccess` templates are rendered against: the verified claims
/// (nested ones by dotted path) and the request.
struct Scope<'a> {
    claims: &'a Map<String, Value>,
    ctx: &'a RequestContext,
    headers: &'a Headers,
}

impl Lookup for Scope<'_> {
    fn get(&self, var: &Var) -> Option<String> {
        let c = self.ctx;
        match var {
            Var::RequestId => Some(c.request_id.clone()),
            Var::RequestPath => Some(c.path.clone()),
            Var::RequestMethod => Some(c.method.clone()),
            Var::RouteName => Some(c.route.clone()),
            Var::BackendName => Some(c.backend.clone()),
            Var::RequestHeader(h) => header(self.headers, h).map(str::to_owned),
            Var::Claim(name) => claim(self.claims, name).map(value_text),
            Var::Claims => Some(Value::Object(self.claims.clone()).to_string()),
            Var::Sub => self.claims.get("sub").map(value_text),
            Var::Iss => self.claims.get("iss").map(value_text),
            Var::ApiKey(n) => host::get_attr(&format!("apiKey.{n}")),
        }
    }
}

fn fetch_body(url: &str) -> Result<Vec<u8>, String> {
    let r = host::fetch(url, Duration::ZERO)?;
    if r.status != 200 {
        return Err(format!("{url}: HTTP {}", r.status));
    }
    Ok(r.body)
}

#[cfg(test)]
mod tests;
