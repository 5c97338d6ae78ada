//! Config parsing: the guide's `rateLimit` block and agentgateway's
//! `localRateLimit` list, turned into a flat list of [`Limit`]s.
//!
//! Parsed by hand from JSON (not derived) so every error names the exact key
//! the operator wrote, e.g. `rateLimit.actions[0].errorCode`.

use serde_json::Value;

use sluice_sdk::config::object;

use crate::amount::{parse_count, parse_duration_ms};
use crate::key::KeyPart;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One per request, charged when the request arrives.
    Requests,
    /// LLM tokens (input + output), charged when the response completes.
    Tokens,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

/// A token bucket's refill (its size is the limit's `budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    pub tokens_per_fill: u64,
    pub fill_interval_ms: u64,
}

/// One enforced limit, counted separately for each identity built from
/// `key`: at most `budget` units of `kind` per fixed window of `window_ms`,
/// or, with `bucket`, a token bucket of `budget` tokens (then `window_ms` is
/// its refill time from empty, for labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub kind: Kind,
    pub budget: u64,
    pub window_ms: u64,
    pub bucket: Option<Refill>,
    pub key: Vec<KeyPart>,
    /// Refuse when over (`false`: only log, count a metric and report headers).
    pub reject: bool,
    /// Status of the refusal.
    pub status: u16,
    /// Operator's refusal message, if any.
    pub message: Option<String>,
    /// Human description, e.g. `100 requests per hour`.
    pub label: String,
}

impl Limit {
    /// The limit's definition, part of its counter key, so two differently
    /// configured limits never share a counter (e.g. a layer's per-hour limit
    /// and a route's per-minute limit on the same route).
    pub fn definition(&self) -> String {
        let key: Vec<String> = self.key.iter().map(KeyPart::canonical).collect();
        match self.bucket {
            None => format!(
                "{}/{}/{}ms/{}",
                self.kind.as_str(),
                self.budget,
                self.window_ms,
                key.join("+")
            ),
            Some(r) => format!(
                "{}/bucket{}+{}per{}ms/{}",
                self.kind.as_str(),
                self.budget,
                r.tokens_per_fill,
                r.fill_interval_ms,
                key.join("+")
            ),
        }
    }
}

/// Everything an attachment enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub limits: Vec<Limit>,
    /// Emit `x-ratelimit-*` headers on allowed responses.
    pub headers: bool,
}

const WINDOWS: [(&str, u64, &str); 4] = [
    ("Second", 1_000, "second"),
    ("Minute", 60_000, "minute"),
    ("Hour", 3_600_000, "hour"),
    ("Day", 86_400_000, "day"),
];

/// Parse the JSON the host hands over: `{"rateLimit": ..}` and/or
/// `{"localRateLimit": ..}`; a bare rateLimit body (a direct
/// `plugins:` attachment) is accepted too.
pub fn parse(config: &Value) -> Result<Settings, String> {
    let obj = match config {
        Value::Object(o) => o,
        Value::Null => return Err("rate-limit: no limit configured".into()),
        other => return Err(format!("rate-limit: config must be an object, got {other}")),
    };
    let mut limits = Vec::new();
    let mut headers = true;
    let wrapped = obj.contains_key("rateLimit") || obj.contains_key("localRateLimit");
    if wrapped {
        for (k, v) in obj {
            match k.as_str() {
                "rateLimit" => match v {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            parse_rate_limit(
                                item,
                                &format!("rateLimit[{i}]"),
                                &mut limits,
                                &mut headers,
                            )?
                        }
                    }
                    _ => parse_rate_limit(v, "rateLimit", &mut limits, &mut headers)?,
                },
                "localRateLimit" => match v {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            limits.push(parse_bucket(item, &format!("localRateLimit[{i}]"))?);
                        }
                    }
                    Value::Object(_) => limits.push(parse_bucket(v, "localRateLimit")?),
                    other => {
                        return Err(format!(
                            "`localRateLimit` must be a list of buckets, got {other}"
                        ))
                    }
                },
                other => {
                    return Err(format!(
                    "unknown key `{other}` (rate-limit handles `rateLimit` and `localRateLimit`)"
                ))
                }
            }
        }
    } else {
        parse_rate_limit(config, "rateLimit", &mut limits, &mut headers)?;
    }
    if limits.is_empty() {
        return Err("rate-limit: no limit configured".into());
    }
    Ok(Settings { limits, headers })
}

/// The guide's form: `{requestsPerHour: 100, actions: [{reject: true, errorCode: 429}]}`.
fn parse_rate_limit(
    v: &Value,
    at: &str,
    out: &mut Vec<Limit>,
    headers: &mut bool,
) -> Result<(), String> {
    let obj = object(v, at)?;
    let mut found: Vec<(Kind, u64, u64, &str)> = Vec::new();
    let mut key = None;
    let mut action = Action::default();
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        if let Some((kind, rest)) = k
            .strip_prefix("requestsPer")
            .map(|r| (Kind::Requests, r))
            .or_else(|| k.strip_prefix("tokensPer").map(|r| (Kind::Tokens, r)))
        {
            let (_, window, unit) = WINDOWS
                .iter()
                .find(|(name, _, _)| *name == rest)
                .ok_or_else(|| {
                    format!(
                        "unknown key `{here}` (use {0}PerSecond, {0}PerMinute, {0}PerHour or {0}PerDay)",
                        kind.as_str()
                    )
                })?;
            let n = parse_count(val).map_err(|e| format!("`{here}`: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "`{here}` must be at least 1 (0 would refuse every request)"
                ));
            }
            found.push((kind, n, *window, unit));
            continue;
        }
        match k.as_str() {
            "key" | "by" => {
                if key.is_some() {
                    return Err(format!("`{at}`: set only one of `key` and `by`"));
                }
                key = Some(crate::key::parse(val, &here)?);
            }
            "actions" => action = parse_actions(val, &here)?,
            "headers" => {
                *headers = val
                    .as_bool()
                    .ok_or_else(|| format!("`{here}` must be true or false"))?
            }
            _ => {
                return Err(format!(
                    "unknown key `{here}` (expected requestsPer<Second|Minute|Hour|Day>, tokensPer<..>, key, actions, headers)"
                ))
            }
        }
    }
    if found.is_empty() {
        return Err(format!(
            "`{at}` sets no limit: add e.g. `requestsPerHour: 100` or `tokensPerDay: 1000000`"
        ));
    }
    let key = key.unwrap_or_else(|| vec![KeyPart::Route]);
    for (kind, budget, window_ms, unit) in found {
        out.push(Limit {
            kind,
            budget,
            window_ms,
            bucket: None,
            key: key.clone(),
            reject: action.reject,
            status: action.status,
            message: action.message.clone(),
            label: format!("{budget} {} per {unit}", kind.as_str()),
        });
    }
    Ok(())
}

struct Action {
    reject: bool,
    status: u16,
    message: Option<String>,
}

impl Default for Action {
    fn default() -> Self {
        Action {
            reject: true,
            status: 429,
            message: None,
        }
    }
}

/// `actions: [{reject: true, errorCode: 429}]`. Several entries are merged;
/// `reject: false` everywhere means log-only (monitor) mode.
fn parse_actions(v: &Value, at: &str) -> Result<Action, String> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        other => return Err(format!("`{at}` must be a list, got {other}")),
    };
    let mut action = Action::default();
    if items.is_empty() {
        return Ok(action);
    }
    action.reject = false;
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let obj = object(item, &here)?;
        let mut reject = true;
        for (k, val) in obj {
            match k.as_str() {
                "reject" => {
                    reject = val
                        .as_bool()
                        .ok_or_else(|| format!("`{here}.reject` must be true or false"))?
                }
                "errorCode" | "status" => {
                    let code = val
                        .as_u64()
                        .or_else(|| val.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| format!("`{here}.{k}` must be an HTTP status code"))?;
                    if !(400..=599).contains(&code) {
                        return Err(format!(
                            "`{here}.{k}` must be an error status (400-599), got {code}"
                        ));
                    }
                    action.status = code as u16;
                }
                "message" => {
                    let m = val
                        .as_str()
                        .ok_or_else(|| format!("`{here}.message` must be a string"))?;
                    action.message = Some(m.to_owned());
                }
                _ => {
                    return Err(format!(
                        "unknown key `{here}.{k}` (expected reject, errorCode, message)"
                    ))
                }
            }
        }
        action.reject |= reject;
    }
    Ok(action)
}

/// agentgateway's token bucket `{maxTokens, tokensPerFill, fillInterval, type}`.
///
/// A real token bucket, kept by the host (`take-tokens`: atomic across
/// requests and, with Redis state, across replicas): it starts full with
/// `maxTokens` and gains `tokensPerFill` (default `maxTokens`) every
/// `fillInterval`, up to `maxTokens`.
fn parse_bucket(v: &Value, at: &str) -> Result<Limit, String> {
    let obj = object(v, at)?;
    let mut max = None;
    let mut per_fill = None;
    let mut interval = None;
    let mut kind = Kind::Requests;
    let mut key = None;
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "maxTokens" => max = Some(parse_count(val).map_err(|e| format!("`{here}`: {e}"))?),
            "tokensPerFill" => {
                per_fill = Some(parse_count(val).map_err(|e| format!("`{here}`: {e}"))?)
            }
            "fillInterval" => {
                let s = val
                    .as_str()
                    .ok_or_else(|| format!("`{here}` must be a duration such as \"1s\""))?;
                interval = Some(parse_duration_ms(s).map_err(|e| format!("`{here}`: {e}"))?);
            }
            "type" => {
                kind = match val.as_str() {
                    Some("requests" | "Requests" | "request") => Kind::Requests,
                    Some("tokens" | "Tokens" | "token") => Kind::Tokens,
                    _ => return Err(format!("`{here}` must be `requests` or `tokens`")),
                }
            }
            "key" | "by" => {
                if key.is_some() {
                    return Err(format!("`{at}`: set only one of `key` and `by`"));
                }
                key = Some(crate::key::parse(val, &here)?);
            }
            _ => {
                return Err(format!(
                    "unknown key `{here}` (expected maxTokens, tokensPerFill, fillInterval, type)"
                ))
            }
        }
    }
    let max = max.ok_or_else(|| format!("`{at}.maxTokens` is required"))?;
    let interval = interval.ok_or_else(|| format!("`{at}.fillInterval` is required"))?;
    let per_fill = per_fill.unwrap_or(max);
    if max == 0 {
        return Err(format!("`{at}.maxTokens` must be at least 1"));
    }
    if per_fill == 0 {
        return Err(format!("`{at}.tokensPerFill` must be at least 1"));
    }
    if interval == 0 {
        return Err(format!("`{at}.fillInterval` must be longer than 0"));
    }
    let fills = max.div_ceil(per_fill);
    let window_ms = interval
        .checked_mul(fills)
        .ok_or_else(|| format!("`{at}`: refill time is too long"))?;
    Ok(Limit {
        kind,
        budget: max,
        window_ms,
        bucket: Some(Refill {
            tokens_per_fill: per_fill,
            fill_interval_ms: interval,
        }),
        key: key.unwrap_or_else(|| vec![KeyPart::Route]),
        reject: true,
        status: 429,
        message: None,
        label: format!(
            "a bucket of {max} {} refilled by {per_fill} every {}",
            kind.as_str(),
            human_ms(interval)
        ),
    })
}

/// `60000` → `60s`, `3600000` → `1h`.
pub fn human_ms(ms: u64) -> String {
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= n && ms.is_multiple_of(n) {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Limit {
        let s = parse(&v).unwrap();
        assert_eq!(s.limits.len(), 1, "{s:?}");
        s.limits.into_iter().next().unwrap()
    }

    #[test]
    fn guide_form() {
        let l = one(json!({"rateLimit": {"requestsPerHour": 100,
            "actions": [{"reject": true, "errorCode": 429}]}}));
        assert_eq!(
            (l.kind, l.budget, l.window_ms),
            (Kind::Requests, 100, 3_600_000)
        );
        assert_eq!(l.key, vec![KeyPart::Route]);
        assert!(l.reject);
        assert_eq!(l.status, 429);
        assert_eq!(l.label, "100 requests per hour");
    }

    #[test]
    fn all_windows_and_tokens() {
        let s = parse(&json!({"rateLimit": {"requestsPerSecond": 1, "requestsPerMinute": 2,
            "requestsPerDay": 4, "tokensPerMinute": "10k", "tokensPerHour": 5, "tokensPerDay": "1M"}}))
        .unwrap();
        let got: Vec<(Kind, u64, u64)> = s
            .limits
            .iter()
            .map(|l| (l.kind, l.budget, l.window_ms))
            .collect();
        for want in [
            (Kind::Requests, 1, 1_000),
            (Kind::Requests, 2, 60_000),
            (Kind::Requests, 4, 86_400_000),
            (Kind::Tokens, 10_000, 60_000),
            (Kind::Tokens, 5, 3_600_000),
            (Kind::Tokens, 1_000_000, 86_400_000),
        ] {
            assert!(got.contains(&want), "{want:?} missing from {got:?}");
        }
    }

    #[test]
    fn bare_and_list_forms() {
        let l = one(json!({"requestsPerMinute": 5, "key": "ip"}));
        assert_eq!(l.key, vec![KeyPart::Ip]);
        let s =
            parse(&json!({"rateLimit": [{"requestsPerMinute": 5}, {"tokensPerDay": 9}]})).unwrap();
        assert_eq!(s.limits.len(), 2);
    }

    #[test]
    fn actions_forms() {
        let l = one(
            json!({"rateLimit": {"requestsPerHour": 1, "actions": [{"errorCode": 503, "message": "busy"}]}}),
        );
        assert_eq!(
            (l.reject, l.status, l.message.as_deref()),
            (true, 503, Some("busy"))
        );
        let l = one(json!({"rateLimit": {"requestsPerHour": 1, "actions": [{"reject": false}]}}));
        assert!(!l.reject);
        let l = one(json!({"rateLimit": {"requestsPerHour": 1, "actions": []}}));
        assert!(l.reject);
    }

    #[test]
    fn local_rate_limit_buckets() {
        let s = parse(&json!({"localRateLimit": [
            {"maxTokens": 10, "tokensPerFill": 10, "fillInterval": "1s"},
            {"maxTokens": 10, "tokensPerFill": 1, "fillInterval": "60s", "type": "requests"},
            {"maxTokens": 1000, "tokensPerFill": 300, "fillInterval": "1m", "type": "tokens", "key": {"header": "x-org"}}
        ]}))
        .unwrap();
        let l = &s.limits;
        assert_eq!(
            (l[0].kind, l[0].budget, l[0].window_ms),
            (Kind::Requests, 10, 1_000)
        );
        // Refill from empty takes 10 fills of 60s.
        assert_eq!((l[1].budget, l[1].window_ms), (10, 600_000));
        assert_eq!(
            l[1].bucket,
            Some(Refill {
                tokens_per_fill: 1,
                fill_interval_ms: 60_000
            })
        );
        assert_eq!(l[1].label, "a bucket of 10 requests refilled by 1 every 1m");
        // ceil(1000/300) = 4 fills of a minute.
        assert_eq!(
            (l[2].kind, l[2].budget, l[2].window_ms),
            (Kind::Tokens, 1000, 240_000)
        );
        assert_eq!(l[2].key, vec![KeyPart::Header("x-org".into())]);
        // A single object works, and tokensPerFill defaults to maxTokens.
        let l = one(json!({"localRateLimit": {"maxTokens": 3, "fillInterval": "1s"}}));
        assert_eq!((l.budget, l.window_ms), (3, 1_000));
    }

    #[test]
    fn both_keys_together() {
        let s = parse(&json!({"rateLimit": {"requestsPerHour": 100},
            "localRateLimit": [{"maxTokens": 5, "fillInterval": "1s"}]}))
        .unwrap();
        assert_eq!(s.limits.len(), 2);
    }

    #[test]
    fn definitions_differ() {
        let a = one(json!({"rateLimit": {"requestsPerHour": 100}}));
        let b = one(json!({"rateLimit": {"requestsPerHour": 200}}));
        let c = one(json!({"rateLimit": {"requestsPerHour": 100, "key": "ip"}}));
        assert_ne!(a.definition(), b.definition());
        assert_ne!(a.definition(), c.definition());
        assert_eq!(a.definition(), "requests/100/3600000ms/route");
    }

    #[test]
    fn validation_errors_name_the_key() {
        for (cfg, needle) in [
            (json!({"rateLimit": {}}), "sets no limit"),
            (
                json!({"rateLimit": {"requestsPerWeek": 1}}),
                "rateLimit.requestsPerWeek",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 0}}),
                "rateLimit.requestsPerHour",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": "many"}}),
                "rateLimit.requestsPerHour",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1, "limit": 3}}),
                "rateLimit.limit",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1, "actions": [{"errorCode": 200}]}}),
                "errorCode",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1, "actions": [{"errorCode": 429, "x": 1}]}}),
                "actions[0].x",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1, "key": "cookie"}}),
                "rateLimit.key",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1, "key": "ip", "by": "route"}}),
                "only one of",
            ),
            (
                json!({"rateLimit": {"requestsPerHour": 1}, "other": 1}),
                "`other`",
            ),
            (
                json!({"localRateLimit": [{"fillInterval": "1s"}]}),
                "localRateLimit[0].maxTokens",
            ),
            (
                json!({"localRateLimit": [{"maxTokens": 1}]}),
                "localRateLimit[0].fillInterval",
            ),
            (
                json!({"localRateLimit": [{"maxTokens": 1, "fillInterval": "60"}]}),
                "fillInterval",
            ),
            (
                json!({"localRateLimit": [{"maxTokens": 1, "fillInterval": "1s", "type": "bytes"}]}),
                "type",
            ),
            (
                json!({"localRateLimit": [{"maxTokens": 0, "fillInterval": "1s"}]}),
                "maxTokens",
            ),
            (json!({"localRateLimit": 5}), "localRateLimit"),
            (json!(null), "no limit"),
            (json!("x"), "object"),
        ] {
            let err = parse(&cfg).unwrap_err();
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }
}
