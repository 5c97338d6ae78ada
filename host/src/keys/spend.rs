//! `GET /keys/spend?by=key|team|model&from=YYYY-MM-DD&to=YYYY-MM-DD` (or
//! `day=`): the query's decoding, and the seam to the budget ledger.
//!
//! The ledger (issue 25's budget half, `host/src/budget/ledger.rs`) owns
//! spend: it exports `spend(&SpendQuery) -> Vec<SpendRow>` with exactly
//! these types. Until a build has it, [`SpendSource`] has no implementation
//! and the admin API answers 501 naming why, rather than a made-up zero.

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::KeyError;

/// Longest range one query may span.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpendBy {
    Key,
    Team,
    Model,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendQuery {
    pub by: SpendBy,
    pub from_day: NaiveDate,
    pub to_day: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRow {
    pub group: String,
    pub day: NaiveDate,
    pub usd: f64,
    pub tokens: u64,
    pub requests: u64,
}

/// Why the ledger could not answer (the ledger's own error, boxed so its
/// `BudgetError` converts with `?`/`into`).
pub type SpendError = Box<dyn std::error::Error + Send + Sync>;

/// What serves spend rows: the budget ledger, wired at merge time with
/// `impl SpendSource for Ledger { fn spend(..) { Box::pin(async move {
/// Ledger::spend(self, q).await.map_err(Into::into) }) } }`.
pub trait SpendSource: Send + Sync {
    fn spend<'a>(&'a self, q: &'a SpendQuery) -> BoxFuture<'a, Result<Vec<SpendRow>, SpendError>>;
}

/// Decode the query string; `today` fills in a missing day.
pub fn parse(query: Option<&str>, today: NaiveDate) -> Result<SpendQuery, KeyError> {
    let bad = |m: String| KeyError::Invalid(m);
    let (mut by, mut from, mut to, mut day) = (None, None, None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match &*k {
            "by" => &mut by,
            "from" => &mut from,
            "to" => &mut to,
            "day" => &mut day,
            other => {
                return Err(bad(format!(
                    "unknown parameter `{other}` (by, from, to, day)"
                )))
            }
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(bad(format!("parameter `{k}` given twice")));
        }
    }
    let by = match by.as_deref() {
        Some("key") | None => SpendBy::Key,
        Some("team") => SpendBy::Team,
        Some("model") => SpendBy::Model,
        Some(_) => return Err(bad("`by` is key, team or model".into())),
    };
    let date = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| bad(format!("`{s}` is not a YYYY-MM-DD date")))
    };
    let (from_day, to_day) = match (day, from, to) {
        (Some(d), None, None) => (date(&d)?, date(&d)?),
        (Some(_), _, _) => return Err(bad("use `day` or `from`/`to`, not both".into())),
        (None, f, t) => {
            let f = f.as_deref().map(date).transpose()?.unwrap_or(today);
            let t = t.as_deref().map(date).transpose()?.unwrap_or(today.max(f));
            (f, t)
        }
    };
    if to_day < from_day {
        return Err(bad("`to` is before `from`".into()));
    }
    if (to_day - from_day).num_days() >= MAX_DAYS {
        return Err(bad(format!("at most {MAX_DAYS} days per query")));
    }
    Ok(SpendQuery {
        by,
        from_day,
        to_day,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn queries() {
        let today = d("2026-12-07");
        let q = parse(Some("by=team&from=2026-12-01&to=2026-12-07"), today).unwrap();
        assert_eq!(
            (q.by, q.from_day, q.to_day),
            (SpendBy::Team, d("2026-12-01"), today)
        );
        let q = parse(None, today).unwrap();
        assert_eq!((q.by, q.from_day, q.to_day), (SpendBy::Key, today, today));
        let q = parse(Some("by=model&day=2026-11-30"), today).unwrap();
        assert_eq!((q.from_day, q.to_day), (d("2026-11-30"), d("2026-11-30")));
        for bad in [
            "by=user",
            "by=key&by=team",
            "from=2026-13-01",
            "from=2026-12-07&to=2026-12-01",
            "from=2024-01-01&to=2026-01-01",
            "day=2026-12-01&from=2026-12-01",
            "evil=1",
        ] {
            assert!(parse(Some(bad), today).is_err(), "{bad}");
        }
    }
}
