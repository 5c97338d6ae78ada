//! Token-bucket arithmetic, shared by the memory backend and mirrored line by
//! line by the Redis backend's Lua script (`redis.rs`), so both answer alike.
//!
//! agentgateway semantics: a bucket holds at most `max_tokens`, starts full,
//! and gains `tokens_per_fill` every `fill_interval` (whole intervals only,
//! counted from the last fill, so the phase does not drift with traffic).

use std::time::Duration;

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub max_tokens: u64,
    pub tokens_per_fill: u64,
    pub fill_interval: Duration,
}

/// What a take answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketTake {
    /// The requested tokens were there and have been removed.
    pub allowed: bool,
    /// Tokens left after the call.
    pub remaining: u64,
    /// When refused: time until enough tokens for this take (until the bucket
    /// is full when more than `max_tokens` were asked). 0 when allowed.
    pub retry_after: Duration,
    /// Time until the bucket is full again (0: full).
    pub reset: Duration,
}

/// The stored part of a bucket: tokens and the time of the last fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub tokens: u64,
    pub last_fill_ms: u64,
}

impl Bucket {
    fn interval_ms(&self) -> u64 {
        (self.fill_interval.as_millis() as u64).max(1)
    }
    fn per_fill(&self) -> u64 {
        self.tokens_per_fill.max(1)
    }

    /// Time for `missing` tokens to arrive, `since_fill` ms into the current interval.
    fn wait_for(&self, missing: u64, since_fill: u64) -> Duration {
        if missing == 0 {
            return Duration::ZERO;
        }
        let fills = missing.div_ceil(self.per_fill());
        let ms = fills
            .saturating_mul(self.interval_ms())
            .saturating_sub(since_fill);
        Duration::from_millis(ms)
    }

    /// How long a stored level can matter: until full, plus one interval.
    pub fn ttl(&self) -> Duration {
        self.wait_for(self.max_tokens, 0) + Duration::from_millis(self.interval_ms())
    }

    /// Refill `level` to `now_ms`, then take `n` tokens: all of them if they
    /// are there; otherwise none, unless `drain` (then the bucket empties).
    /// `n` 0 reads: `allowed` then says whether one token is there.
    pub fn take(
        &self,
        level: Option<Level>,
        now_ms: u64,
        n: u64,
        drain: bool,
    ) -> (Level, BucketTake) {
        let iv = self.interval_ms();
        let mut l = level.unwrap_or(Level {
            tokens: self.max_tokens,
            last_fill_ms: now_ms,
        });
        if now_ms > l.last_fill_ms {
            let fills = (now_ms - l.last_fill_ms) / iv;
            if fills > 0 {
                l.tokens = l
                    .tokens
                    .saturating_add(fills.saturating_mul(self.per_fill()))
                    .min(self.max_tokens);
                l.last_fill_ms += fills * iv;
            }
        }
        l.tokens = l.tokens.min(self.max_tokens);
        let since = now_ms.saturating_sub(l.last_fill_ms);
        let need = n.max(1);
        let allowed = l.tokens >= need;
        let retry_after = if allowed {
            Duration::ZERO
        } else if need > self.max_tokens {
            self.wait_for(self.max_tokens - l.tokens, since)
        } else {
            self.wait_for(need - l.tokens, since)
        };
        if allowed {
            l.tokens -= n;
        } else if drain {
            l.tokens = 0;
        }
        let reset = self.wait_for(self.max_tokens - l.tokens, since);
        (
            l,
            BucketTake {
                allowed,
                remaining: l.tokens,
                retry_after,
                reset,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(max: u64, per: u64, ms: u64) -> Bucket {
        Bucket {
            max_tokens: max,
            tokens_per_fill: per,
            fill_interval: Duration::from_millis(ms),
        }
    }

    #[test]
    fn starts_full_empties_and_refills_per_interval() {
        let bucket = b(3, 1, 1000);
        let mut level = None;
        for left in [2, 1, 0] {
            let (l, t) = bucket.take(level, 10_000, 1, false);
            assert!(t.allowed);
            assert_eq!(t.remaining, left);
            level = Some(l);
        }
        let (l, t) = bucket.take(level, 10_400, 1, false);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::from_millis(600));
        assert_eq!(t.reset, Duration::from_millis(2600));
        // One interval later exactly one token came back.
        let (l, t) = bucket.take(Some(l), 11_000, 1, false);
        assert!(t.allowed && t.remaining == 0, "{t:?}");
        let (_, t) = bucket.take(Some(l), 11_999, 1, false);
        assert!(!t.allowed);
        // Reading an empty bucket takes nothing and says when a token comes.
        let (l, t) = bucket.take(Some(l), 11_999, 0, false);
        assert!(!t.allowed && t.remaining == 0);
        assert_eq!(t.retry_after, Duration::from_millis(1));
        // A long pause refills to the cap, not beyond.
        let (_, t) = bucket.take(Some(l), 1_000_000, 0, false);
        assert!(t.allowed);
        assert_eq!(t.remaining, 3);
    }

    #[test]
    fn drain_and_oversized_takes() {
        let bucket = b(10, 5, 100);
        let (l, t) = bucket.take(None, 0, 4, false);
        assert!(t.allowed && t.remaining == 6);
        // Not enough: nothing taken unless draining.
        let (l, t) = bucket.take(Some(l), 0, 7, false);
        assert!(!t.allowed && t.remaining == 6);
        assert_eq!(t.retry_after, Duration::from_millis(100));
        let (l, t) = bucket.take(Some(l), 0, 7, true);
        assert!(!t.allowed && t.remaining == 0);
        assert_eq!(l.tokens, 0);
        // More than the bucket can ever hold: wait until full.
        let (_, t) = bucket.take(Some(l), 50, 11, false);
        assert!(!t.allowed);
        assert_eq!(t.retry_after, Duration::from_millis(150));
    }
}
