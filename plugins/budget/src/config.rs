//! The `budget` policy's config.
//!
//! ```yaml
//! policies:
//!   apiKey: {...}                  # first: it publishes the key's attributes
//!   budget:
//!     reservation: strict          # strict (default) | estimate
//!     timeZone: Europe/Paris       # IANA; default UTC
//!     reservationTimeout: 10m      # a reservation not settled by then is freed
//!     defaultMaxTokens: 4096       # output cap when the request sets none
//!     limits:
//!     - scope: key                 # key (apiKey.id) | a metadata field (team -> apiKey.team)
//!       usd: 25                    # or tokens: 1000000 (input + output + cache tokens)
//!       period: month              # day | week (from Monday) | month
//! ```

use serde::Deserialize;
use serde_json::Value;
use sluice_sdk::{BudgetPeriod, BudgetUnit};

/// Why a config was refused (shown to the operator as is).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("budget: {0}")]
    Shape(String),
    #[error("budget.timeZone: `{0}` is not an IANA time zone (e.g. `Europe/Paris`)")]
    TimeZone(String),
    #[error("budget.reservationTimeout: {0}")]
    Timeout(String),
    #[error("budget.limits[{0}]: set exactly one of `usd` and `tokens`, above 0")]
    Amount(usize),
    #[error("budget.limits[{0}].scope: `{1}` is not `key` nor a metadata field name")]
    Scope(usize, String),
    #[error("budget: at most 16 limits")]
    TooMany,
}

/// How much output a reservation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reservation {
    /// The full output cap: never overspends.
    #[default]
    Strict,
    /// The key's recent average output (capped by the request's cap).
    Estimate,
}

/// One limit, as configured or as a key's `apiKey.budgets` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    #[serde(default = "key_scope")]
    pub scope: String,
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
    pub period: Period,
}

fn key_scope() -> String {
    "key".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    reservation: Reservation,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    reservation_timeout: Option<Value>,
    #[serde(default)]
    default_max_tokens: Option<u64>,
    #[serde(default)]
    limits: Vec<LimitSpec>,
}

/// A checked limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub scope: String,
    pub unit: BudgetUnit,
    /// Micro-dollars or tokens.
    pub amount: u64,
    pub period: BudgetPeriod,
}

impl Limit {
    pub fn check(i: usize, s: &LimitSpec) -> Result<Limit, ConfigError> {
        let (unit, amount) = match (s.usd, s.tokens) {
            (Some(usd), None) if usd > 0.0 && usd.is_finite() => {
                (BudgetUnit::Usd, (usd * 1e6).round() as u64)
            }
            (None, Some(t)) if t > 0 => (BudgetUnit::Tokens, t),
            _ => return Err(ConfigError::Amount(i)),
        };
        let scope_ok = !s.scope.is_empty()
            && s.scope.len() <= 64
            && s.scope
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !scope_ok {
            return Err(ConfigError::Scope(i, s.scope.clone()));
        }
        Ok(Limit {
            scope: s.scope.clone(),
            unit,
            amount,
            period: match s.period {
                Period::Day => BudgetPeriod::Day,
                Period::Week => BudgetPeriod::Week,
                Period::Month => BudgetPeriod::Month,
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub reservation: Reservation,
    pub time_zone: String,
    pub tz: chrono_tz::Tz,
    pub ttl_ms: u64,
    pub default_max_tokens: u64,
    pub limits: Vec<Limit>,
}

pub const DEFAULT_TTL_MS: u64 = 10 * 60_000;
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub fn parse(config: &Value) -> Result<Settings, ConfigError> {
    let inner = config.get("budget").unwrap_or(config);
    let raw: Raw =
        serde_json::from_value(inner.clone()).map_err(|e| ConfigError::Shape(e.to_string()))?;
    let time_zone = raw.time_zone.unwrap_or_else(|| "UTC".into());
    let tz: chrono_tz::Tz = time_zone
        .parse()
        .map_err(|_| ConfigError::TimeZone(time_zone.clone()))?;
    let ttl_ms = match &raw.reservation_timeout {
        None => DEFAULT_TTL_MS,
        Some(Value::String(s)) => sluice_sdk::units::parse_duration_ms(s)
            .map_err(|e| ConfigError::Timeout(e.to_string()))?,
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| s * 1000)
            .ok_or_else(|| ConfigError::Timeout(format!("{n} is not a number of seconds")))?,
        Some(v) => return Err(ConfigError::Timeout(format!("{v} is not a duration"))),
    };
    if ttl_ms == 0 {
        return Err(ConfigError::Timeout("must be above 0".into()));
    }
    if raw.limits.len() > 16 {
        return Err(ConfigError::TooMany);
    }
    let limits = raw
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| Limit::check(i, l))
        .collect::<Result<_, _>>()?;
    Ok(Settings {
        reservation: raw.reservation,
        time_zone,
        tz,
        ttl_ms,
        default_max_tokens: raw.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).max(1),
        limits,
    })
}

/// A key's own limits from `apiKey.budgets` (the keys admin API's shape);
/// entries that do not parse are skipped (logged by the caller).
pub fn key_limits(json: &str) -> Result<Vec<Limit>, String> {
    let specs: Vec<LimitSpec> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| Limit::check(i, s).map_err(|e| e.to_string()))
        .collect()
}
