//! `/keys`: runtime API keys without a deploy (see [`crate::keys`]).
//!
//! - `GET /keys`: every key, config keys first (`source: config`,
//!   read-only), never a secret;
//! - `POST /keys` `{metadata, allowedModels, budgets}` (or `keyHash` to
//!   register an existing key): 201 with the secret, shown this once;
//! - `GET|PATCH|DELETE /keys/{id}`, `POST /keys/{id}/rotate|revoke`;
//! - `GET /keys/spend?by=key|team|model&from=&to=` (or `day=`).
//!
//! Bodies are strict JSON (a repeated key is refused, not resolved) and
//! unknown fields are refused.

use super::{error, json};
use crate::keys::spend::{self, SpendSource};
use crate::keys::{ConfigKeys, KeyError, KeyRecord, KeyStore};
use crate::reload::HotSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

/// Largest `/keys` body (metadata is small; see `keys::record` limits).
const MAX_BODY: usize = 64 * 1024;

/// Whether `path` belongs to this API.
pub fn owns(path: &str) -> bool {
    path == "/keys" || path.starts_with("/keys/")
}

pub async fn handle(
    hot: &HotSwap,
    keys: &KeyStore,
    spend_source: Option<&dyn SpendSource>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let config = ConfigKeys::of(&hot.snapshot().config);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let rest: Vec<&str> = path
        .strip_prefix("/keys")
        .unwrap_or("")
        .split('/')
        .skip(1)
        .collect();
    let r = match (&method, rest.as_slice()) {
        (&Method::GET, []) => Ok(list(keys, &config).map(|v| (StatusCode::OK, v))),
        (&Method::POST, []) => match body(req).await {
            Ok(b) => Ok(keys
                .create(b, &config)
                .and_then(to_json)
                .map(|v| (StatusCode::CREATED, v))),
            Err(r) => Err(r),
        },
        (&Method::GET, ["spend"]) => Ok(spend(spend_source, query.as_deref()).await),
        (m, [id, ..]) if !crate::keys::secret::valid_id(id) => {
            let _ = m;
            Ok(Err(KeyError::Invalid(
                "a key id is letters, digits and `_` only".into(),
            )))
        }
        (&Method::GET, [id]) => Ok(show(keys, &config, id).map(|v| (StatusCode::OK, v))),
        (&Method::PATCH, [id]) => match read_only(&config, id) {
            Some(e) => Ok(Err(e)),
            None => match body(req).await {
                Ok(p) => Ok(keys
                    .update(id, p, &config)
                    .map(|r| (StatusCode::OK, view(&r, &config)))),
                Err(r) => Err(r),
            },
        },
        (&Method::POST, [id, "rotate"]) => Ok(read_only(&config, id)
            .map_or_else(|| keys.rotate(id, &config).and_then(to_json), Err)
            .map(|v| (StatusCode::OK, v))),
        (&Method::POST, [id, "revoke"]) | (&Method::DELETE, [id]) => Ok(read_only(&config, id)
            .map_or_else(|| keys.revoke(id), Err)
            .map(|r| (StatusCode::OK, view(&r, &config)))),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            format!("no {method} {} in the keys API", clip(&path)),
        )),
    };
    match r {
        Err(resp) => resp,
        Ok(Ok((status, v))) => json(status, &v),
        Ok(Err(e)) => refusal(e),
    }
}

fn list(keys: &KeyStore, config: &ConfigKeys) -> Result<Value, KeyError> {
    let mut out: Vec<Value> = config.keys.iter().map(config_view).collect();
    out.extend(keys.list()?.iter().map(|r| view(r, config)));
    Ok(json!({"runtimeKeys": config.runtime_enabled, "keys": out}))
}

fn show(keys: &KeyStore, config: &ConfigKeys, id: &str) -> Result<Value, KeyError> {
    if let Some(c) = config.by_id(id) {
        return Ok(config_view(c));
    }
    keys.get(id).map(|r| view(&r, config))
}

/// Config keys are edited in the config file, not here.
fn read_only(config: &ConfigKeys, id: &str) -> Option<KeyError> {
    config.by_id(id).map(|c| {
        KeyError::Conflict(format!(
            "key {} comes from the config (routes: {}) and is read-only here; edit the config file",
            c.id,
            c.routes.join(", ")
        ))
    })
}

fn config_view(c: &crate::keys::ConfigKey) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["source"] = json!("config");
    v["readOnly"] = json!(true);
    v["status"] = json!("active");
    v
}

fn view(r: &KeyRecord, config: &ConfigKeys) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["source"] = json!("runtime");
    v["status"] = json!(if r.revoked.is_some() {
        "revoked"
    } else {
        "active"
    });
    let hex = r.hash.strip_prefix("sha256:").unwrap_or(&r.hash);
    if let Some(c) = config.by_digest(hex) {
        v["shadowedBy"] = json!(c.id);
        v["note"] = json!("a config key has the same hash: the config key wins");
    }
    v
}

fn to_json(v: impl serde::Serialize) -> Result<Value, KeyError> {
    serde_json::to_value(v).map_err(|e| KeyError::Corrupt(e.to_string()))
}

async fn spend(
    source: Option<&dyn SpendSource>,
    query: Option<&str>,
) -> Result<(StatusCode, Value), KeyError> {
    let today = chrono::Utc::now().date_naive();
    let q = spend::parse(query, today)?;
    let Some(source) = source else {
        return Ok((
            StatusCode::NOT_IMPLEMENTED,
            json!({"result": "error", "reason": "no spend ledger in this gateway: spend is \
                   recorded by the budget policy, which this build does not have"}),
        ));
    };
    match source.spend(&q).await {
        Ok(rows) => Ok((
            StatusCode::OK,
            json!({"by": q.by, "from": q.from_day, "to": q.to_day, "rows": rows}),
        )),
        Err(e) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"result": "error", "reason": format!("spend ledger: {e}")}),
        )),
    }
}

/// The body as `T`: bounded, strict JSON, no unknown fields.
#[allow(clippy::result_large_err)]
async fn body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
            ))
        }
    };
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    if let Err(e) = crate::proxy::strict_json::check(bytes) {
        return Err(error(StatusCode::BAD_REQUEST, e.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

fn refusal(e: KeyError) -> Response<Full<Bytes>> {
    let status = match &e {
        KeyError::NotFound => StatusCode::NOT_FOUND,
        KeyError::Invalid(_) => StatusCode::BAD_REQUEST,
        KeyError::Conflict(_) => StatusCode::CONFLICT,
        KeyError::State(_) => StatusCode::SERVICE_UNAVAILABLE,
        KeyError::Persist(_) | KeyError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "keys admin API");
    }
    error(status, e.to_string())
}

/// A path, shortened, for an error message.
fn clip(p: &str) -> String {
    p.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::spend::{SpendError, SpendQuery, SpendRow};
    use futures_util::future::BoxFuture;

    /// A ledger answering one row per query, or failing.
    struct Ledger(bool);
    impl SpendSource for Ledger {
        fn spend<'a>(
            &'a self,
            q: &'a SpendQuery,
        ) -> BoxFuture<'a, Result<Vec<SpendRow>, SpendError>> {
            Box::pin(async move {
                if !self.0 {
                    return Err("ledger down".into());
                }
                Ok(vec![SpendRow {
                    group: "ml".into(),
                    day: q.from_day,
                    usd: 1.5,
                    tokens: 10,
                    requests: 2,
                }])
            })
        }
    }

    #[tokio::test]
    async fn spend_is_served_from_the_ledger() {
        let q = Some("by=team&day=2026-12-01");
        let (status, v) = spend(Some(&Ledger(true)), q).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!({"by": "team", "from": "2026-12-01", "to": "2026-12-01",
                "rows": [{"group": "ml", "day": "2026-12-01", "usd": 1.5, "tokens": 10,
                          "requests": 2}]})
        );
        let (status, v) = spend(Some(&Ledger(false)), q).await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["reason"].as_str().unwrap().contains("ledger down"));
        assert_eq!(spend(None, q).await.unwrap().0, StatusCode::NOT_IMPLEMENTED);
        assert!(spend(Some(&Ledger(true)), Some("by=nobody")).await.is_err());
    }
}
