//! `sluice keys ...`: the keys admin API from a shell.
//!
//! ```text
//! sluice keys --admin http://127.0.0.1:15000 create --meta user=carol --meta team=ml \
//!     --model 'claude-sonnet-*' --budget usd=25/month
//! sluice keys list | show ID | update ID ... | rotate ID | revoke ID
//! sluice keys spend --by team --from 2026-12-01 --to 2026-12-07
//! ```
//!
//! The token comes from `--token` or `$SLUICE_ADMIN_TOKEN`. The answer's
//! JSON is printed on stdout; a refusal's on stderr, with exit status 1.

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Longest wait for the admin API's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// The gateway's admin API (plain HTTP, as the admin listener serves it).
    #[arg(long = "admin", default_value = "http://127.0.0.1:15000")]
    pub admin_url: String,
    /// Admin token (`admin.token`).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub cmd: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[command(flatten)]
        fields: Fields,
        /// Register an existing key by `sha256:<hex>` instead of minting one.
        #[arg(long)]
        key_hash: Option<String>,
    },
    /// List every key (config keys read-only), never a secret.
    List,
    /// One key, never its secret.
    Show { id: String },
    /// Replace the given fields of a runtime key.
    Update {
        id: String,
        #[command(flatten)]
        fields: Fields,
        /// Lift the key's model restriction.
        #[arg(long, conflicts_with = "models")]
        any_model: bool,
    },
    /// A new secret (printed once); the old one is refused from now on.
    Rotate { id: String },
    /// Revoke a key: refused on every replica from its next request.
    Revoke { id: String },
    /// Spend by key, team or model and day (from the budget ledger).
    Spend {
        #[arg(long, default_value = "key")]
        by: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, conflicts_with_all = ["from", "to"])]
        day: Option<String>,
    },
}

#[derive(clap::Args, Debug, Default)]
pub struct Fields {
    /// Metadata `name=value` (repeat); replaces all metadata on update.
    #[arg(long = "meta", value_name = "NAME=VALUE")]
    pub meta: Vec<String>,
    /// Allowed model pattern (repeat), e.g. `claude-sonnet-*`.
    #[arg(long = "model", value_name = "PATTERN", id = "models")]
    pub models: Vec<String>,
    /// Budget `usd=25/month` or `tokens=1000000/day` (repeat).
    #[arg(long = "budget", value_name = "AMOUNT/PERIOD")]
    pub budgets: Vec<String>,
}

/// Why the command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("admin API at {0}: {1}")]
    Http(String, String),
}

impl Fields {
    fn into_body(self, body: &mut Map<String, Value>) -> Result<(), CliError> {
        if !self.meta.is_empty() {
            let mut m = Map::new();
            for kv in &self.meta {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--meta {kv:?}: expected NAME=VALUE"))
                })?;
                m.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            body.insert("metadata".into(), Value::Object(m));
        }
        if !self.models.is_empty() {
            body.insert("allowedModels".into(), json!(self.models));
        }
        if !self.budgets.is_empty() {
            let b: Result<Vec<Value>, CliError> = self.budgets.iter().map(|b| budget(b)).collect();
            body.insert("budgets".into(), Value::Array(b?));
        }
        Ok(())
    }
}

/// `usd=25/month` → `{"usd": 25, "period": "month"}`.
fn budget(s: &str) -> Result<Value, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--budget {s:?}: expected usd=N/PERIOD or tokens=N/PERIOD"
        ))
    };
    let (amount, period) = s.split_once('/').ok_or_else(bad)?;
    let (kind, n) = amount.split_once('=').ok_or_else(bad)?;
    let n = match kind {
        "usd" => json!(n.parse::<f64>().map_err(|_| bad())?),
        "tokens" => json!(n.parse::<u64>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(json!({ kind: n, "period": period }))
}

/// The request a command makes: method, path and body.
fn request(cmd: KeysCommand) -> Result<(Method, String, Option<Value>), CliError> {
    let id = |id: &str| -> Result<String, CliError> {
        if crate::keys::secret::valid_id(id) {
            Ok(id.to_owned())
        } else {
            Err(CliError::Usage(format!("{id:?} is not a key id")))
        }
    };
    Ok(match cmd {
        KeysCommand::Create { fields, key_hash } => {
            let mut body = Map::new();
            fields.into_body(&mut body)?;
            if let Some(h) = key_hash {
                body.insert("keyHash".into(), Value::String(h));
            }
            (Method::POST, "/keys".into(), Some(Value::Object(body)))
        }
        KeysCommand::List => (Method::GET, "/keys".into(), None),
        KeysCommand::Show { id: i } => (Method::GET, format!("/keys/{}", id(&i)?), None),
        KeysCommand::Update {
            id: i,
            fields,
            any_model,
        } => {
            let mut body = Map::new();
            fields.into_body(&mut body)?;
            if any_model {
                body.insert("allowedModels".into(), Value::Null);
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "update: nothing to change (--meta, --model, --any-model, --budget)".into(),
                ));
            }
            (
                Method::PATCH,
                format!("/keys/{}", id(&i)?),
                Some(Value::Object(body)),
            )
        }
        KeysCommand::Rotate { id: i } => (
            Method::POST,
            format!("/keys/{}/rotate", id(&i)?),
            Some(json!({})),
        ),
        KeysCommand::Revoke { id: i } => (
            Method::POST,
            format!("/keys/{}/revoke", id(&i)?),
            Some(json!({})),
        ),
        KeysCommand::Spend { by, from, to, day } => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("by", &by);
            for (k, v) in [("from", from), ("to", to), ("day", day)] {
                if let Some(v) = v {
                    q.append_pair(k, &v);
                }
            }
            (Method::GET, format!("/keys/spend?{}", q.finish()), None)
        }
    })
}

/// Run the command; `Ok(true)` when the API answered 2xx.
pub async fn run(args: KeysArgs) -> Result<bool, CliError> {
    let base = args.admin_url.trim_end_matches('/').to_owned();
    if !base.starts_with("http://") {
        return Err(CliError::Usage(
            "--admin: expected an http:// URL (the admin listener speaks plain HTTP)".into(),
        ));
    }
    let (method, path, body) = request(args.cmd)?;
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header(header::ACCEPT, "application/json");
    if let Some(t) = &args.token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let bytes = match &body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(b).unwrap_or_default())
        }
        None => Bytes::new(),
    };
    let req = req
        .body(Full::new(bytes))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let http_err = |e: String| CliError::Http(base.clone(), e);
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| http_err("no answer".into()))?
        .map_err(|e| http_err(e.to_string()))?;
    let status = resp.status();
    let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| http_err("answer cut off".into()))?
        .map_err(|e| http_err(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if status.is_success() {
        println!("{}", text.trim_end());
    } else {
        eprintln!("sluice keys: {status}: {}", text.trim_end());
    }
    Ok(status.is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_bodies() {
        assert_eq!(
            budget("usd=25/month").unwrap(),
            json!({"usd": 25.0, "period": "month"})
        );
        assert_eq!(
            budget("tokens=1000/day").unwrap(),
            json!({"tokens": 1000, "period": "day"})
        );
        assert!(budget("eur=1/day").is_err() && budget("usd=x/day").is_err());
        let (m, p, b) = request(KeysCommand::Create {
            fields: Fields {
                meta: vec!["team=ml".into()],
                models: vec!["gpt-*".into()],
                budgets: vec![],
            },
            key_hash: None,
        })
        .unwrap();
        assert_eq!((m, p.as_str()), (Method::POST, "/keys"));
        assert_eq!(
            b.unwrap(),
            json!({"metadata": {"team": "ml"}, "allowedModels": ["gpt-*"]})
        );
        assert!(request(KeysCommand::Revoke {
            id: "../config".into()
        })
        .is_err());
        let (_, p, _) = request(KeysCommand::Spend {
            by: "team".into(),
            from: None,
            to: None,
            day: Some("2026-12-01".into()),
        })
        .unwrap();
        assert_eq!(p, "/keys/spend?by=team&day=2026-12-01");
    }
}
