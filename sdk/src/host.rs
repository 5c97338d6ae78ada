//! Wrappers over the host imports (logging, attributes, counters, KV, clock,
//! metrics, fetch).
//!
//! On `wasm32` they call the gateway. On native targets (plugin unit tests)
//! they use an in-process mock ([`mock`]) so policies can be tested with plain
//! `cargo test`.

use std::time::Duration;

use crate::{
    Bucket, BucketTake, BudgetAmount, BudgetExhausted, BudgetRef, BudgetReserved, FetchResponse,
    Level, PublicKey, SignatureScheme, TokenUsage, WindowCount, WindowLimit, WindowTakeResult,
};

#[cfg(target_arch = "wasm32")]
use crate::bindings::sluice::policy::host as imp;
#[cfg(not(target_arch = "wasm32"))]
use mock as imp;

/// Log a line; the host tags it with the plugin name and request id.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// A request attribute set by this or an earlier plugin of the request.
pub fn get_attr(key: &str) -> Option<String> {
    imp::get_attr(key)
}
/// Set a request attribute, visible to the later plugins of this request.
pub fn set_attr(key: &str, value: &str) {
    imp::set_attr(key, value)
}

/// Add `delta` to a counter in the current fixed `window`; `delta` 0 reads.
/// Windows are aligned to the clock: a limit built on this admits up to
/// twice its size across a window edge. Rate limits use [`window_take`].
pub fn incr_counter(key: &str, delta: i64, window: Duration) -> WindowCount {
    imp::incr_counter(key, delta, window.as_millis() as u64)
}

/// Sliding-window limits ("at most `limit` in any span of `window-ms`"),
/// checked and charged in one atomic step: each limit's `amount` is added
/// only if every limit has room for `max(amount, 1)` more (all or nothing,
/// so a refused request consumes nothing), or regardless with `force` (a
/// cost known only afterwards, e.g. tokens in `on_complete`). `amount` 0
/// reads. One result per limit, in order; at most 16 limits, each key and
/// window once. The host counts in 100 sub-windows per period, so it may
/// refuse up to 1% of the period late, never admit early; `retry_after_ms`
/// is when `max(amount, 1)` more fit. Shared like counters.
pub fn window_take(limits: &[WindowLimit], force: bool) -> Vec<WindowTakeResult> {
    imp::window_take(limits, force)
}

/// Take `tokens` from the token bucket `key` (refilled first): all of them
/// if there, else none, unless `drain` (then the bucket empties, for costs
/// known only afterwards). `tokens` 0 reads (`allowed`: one token is
/// there). Shared like counters.
pub fn take_tokens(key: &str, tokens: u64, drain: bool, bucket: Bucket) -> BucketTake {
    imp::take_tokens(key, tokens, drain, bucket)
}

pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    imp::kv_get(key)
}
/// `ttl` zero means the host's default (one hour).
pub fn kv_set(key: &str, value: &[u8], ttl: Duration) {
    imp::kv_set(key, value, ttl.as_millis() as u64)
}

/// Wall clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

/// Add to the Prometheus counter `sluice_plugin_<name>`.
pub fn metric_counter(name: &str, value: u64) {
    imp::metric_counter(name, value)
}
/// Observe a value in the histogram `sluice_plugin_<name>`.
pub fn metric_histogram(name: &str, value: f64) {
    imp::metric_histogram(name, value)
}

/// GET a URL on a host declared in [`crate::Policy::fetch_hosts`]; cached for `cache`.
pub fn fetch(url: &str, cache: Duration) -> Result<FetchResponse, String> {
    imp::fetch(url, cache.as_millis() as u64)
}

/// The exchange's tokens split by kind (uncached input, cache read, cache
/// write, output, reasoning), in `on_complete`; `None` elsewhere or without
/// usage. `Completion::usage.input_tokens` already counts every input token.
pub fn usage_details() -> Option<TokenUsage> {
    imp::usage_details()
}

/// Does `signature` over `message` verify under `key`? Checked natively by
/// the host (RSA in a guest is ~50x slower) and remembered for a reused
/// token; false for a bad signature and for a key that does not fit
/// `scheme`. Deciding which key and which claims stays with the plugin.
pub fn verify_signature(
    scheme: SignatureScheme,
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    imp::verify_signature(scheme, key, message, signature)
}

/// Reserve `amount` against every budget, all or none, atomically on the
/// backend (Redis `TIME` with Redis): each must have room for it on top of
/// its settled spend and open reservations. The reservation expires after
/// `ttl` unless closed first with [`budget_settle`] or [`budget_release`]
/// (so a replica that dies does not hold budget forever). At most 16
/// budgets; budgets are namespaced by plugin like counters.
pub fn budget_reserve(
    budgets: &[BudgetRef],
    amount: BudgetAmount,
    ttl: Duration,
) -> Result<BudgetReserved, BudgetExhausted> {
    imp::budget_reserve(budgets, amount, ttl.as_millis() as u64)
}

/// Close a reservation, counting `actual` as spent on each of its budgets.
pub fn budget_settle(id: &str, actual: BudgetAmount) {
    imp::budget_settle(id, actual)
}

/// Close a reservation without spend.
pub fn budget_release(id: &str) {
    imp::budget_release(id)
}

/// Dollars for `usage` of `model` under the gateway's `config.modelCatalog`;
/// `None` when the model has no price.
pub fn price(model: &str, usage: TokenUsage) -> Option<f64> {
    imp::price(model, usage)
}

/// Say which headers this attachment's hooks read (any case); they then get
/// only those. The SDK calls it in `init` with [`crate::Policy::reads_headers`];
/// the host ignores it anywhere else.
pub fn read_headers(names: &[String]) {
    imp::read_headers(names)
}

/// The native stand-in for the host, for plugin unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod mock {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use crate::{
        Bucket, BucketTake, BudgetAmount, BudgetExhausted, BudgetRef, BudgetReserved, BudgetState,
        BudgetUnit, FetchResponse, Level, PublicKey, SignatureScheme, TokenUsage, WindowCount,
        WindowLimit, WindowTakeResult,
    };

    /// A sliding window: non-empty sub-windows (index, units), oldest
    /// first, and the latest time seen.
    pub type MockWindow = (Vec<(u64, u64)>, u64);

    /// What the mock host holds; reset it between tests with [`reset`].
    #[derive(Default)]
    pub struct MockHost {
        pub logs: Vec<(Level, String)>,
        pub attrs: HashMap<String, String>,
        pub counters: HashMap<String, i64>,
        /// Sliding windows: (key, window ms) → non-empty sub-windows
        /// (index, units), oldest first, and the latest time seen.
        pub windows: HashMap<(String, u64), MockWindow>,
        /// Token buckets: key → (tokens, last fill ms), driven by `now_ms`.
        pub buckets: HashMap<String, (u64, u64)>,
        pub kv: HashMap<String, Vec<u8>>,
        pub metrics: HashMap<String, f64>,
        pub now_ms: u64,
        /// What the policy declared with `read-headers`, if it did.
        pub read_headers: Option<Vec<String>>,
        /// Canned fetch answers by URL.
        pub fetch: HashMap<String, FetchResponse>,
        /// What `usage_details` answers.
        pub usage: Option<TokenUsage>,
        /// Budgets: key → used (settled + open reservations). No periods.
        pub budgets: HashMap<String, u64>,
        /// Open reservations: id → (key, amount held) per budget, and the
        /// unit of each.
        pub reservations: HashMap<String, Vec<(String, BudgetUnit, u64)>>,
        /// Settled spend per budget key.
        pub settled: HashMap<String, u64>,
        /// Prices: model → dollars per million (input, cache read, cache
        /// write, output) tokens.
        pub prices: HashMap<String, [f64; 4]>,
    }

    thread_local! {
        static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
    }

    /// Inspect or change the mock host.
    pub fn with<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
        HOST.with(|h| f(&mut h.borrow_mut()))
    }
    /// Start from a clean mock host.
    pub fn reset() {
        with(|h| *h = MockHost::default())
    }

    pub(super) fn log(level: Level, message: &str) {
        with(|h| h.logs.push((level, message.to_owned())))
    }
    pub(super) fn get_attr(key: &str) -> Option<String> {
        with(|h| h.attrs.get(key).cloned())
    }
    pub(super) fn set_attr(key: &str, value: &str) {
        with(|h| h.attrs.insert(key.to_owned(), value.to_owned()));
    }
    pub(super) fn incr_counter(key: &str, delta: i64, window_ms: u64) -> WindowCount {
        with(|h| {
            let total = h.counters.entry(key.to_owned()).or_default();
            *total += delta;
            WindowCount {
                total: *total,
                reset_ms: window_ms,
            }
        })
    }
    /// Same arithmetic as the gateway's `window.rs` (100 sub-windows per
    /// period, counted while they overlap the last period), on `now_ms`.
    pub(super) fn window_take(limits: &[WindowLimit], force: bool) -> Vec<WindowTakeResult> {
        with(|h| {
            let clock = h.now_ms;
            struct W {
                slots: Vec<(u64, u64)>,
                now: u64,
                w: u64,
                s: u64,
            }
            let mut ws: Vec<W> = limits
                .iter()
                .map(|l| {
                    let w = l.window_ms.max(1);
                    let s = w.div_ceil(100).max(1);
                    let (mut slots, last) = h
                        .windows
                        .get(&(l.key.clone(), w))
                        .cloned()
                        .unwrap_or_default();
                    let now = clock.max(last);
                    let cutoff = if now >= w { (now - w) / s } else { 0 };
                    slots.retain(|(i, _)| *i >= cutoff);
                    W { slots, now, w, s }
                })
                .collect();
            let total = |x: &W| x.slots.iter().map(|(_, n)| n).sum::<u64>();
            let fits: Vec<bool> = ws
                .iter()
                .zip(limits)
                .map(|(x, l)| total(x).saturating_add(l.amount.max(1)) <= l.limit)
                .collect();
            let charge = force || fits.iter().all(|f| *f);
            let mut out = Vec::new();
            for ((x, l), allowed) in ws.iter_mut().zip(limits).zip(fits) {
                if charge && l.amount > 0 {
                    let i = x.now / x.s;
                    match x.slots.last_mut() {
                        Some((last, n)) if *last >= i => *n += l.amount,
                        _ => x.slots.push((i, l.amount)),
                    }
                }
                let t = total(x);
                let ages = |i: u64| (i + 1) * x.s + x.w - x.now;
                let mut retry_after_ms = 0;
                if !allowed {
                    let need = l.amount.max(1);
                    let excess = if need > l.limit {
                        t
                    } else {
                        t + need - l.limit
                    };
                    let mut freed = 0;
                    for (i, n) in &x.slots {
                        freed += n;
                        retry_after_ms = ages(*i);
                        if freed >= excess {
                            break;
                        }
                    }
                }
                out.push(WindowTakeResult {
                    allowed,
                    total: t,
                    remaining: l.limit.saturating_sub(t),
                    retry_after_ms,
                    reset_ms: x.slots.first().map_or(0, |(i, _)| ages(*i)),
                });
                h.windows
                    .insert((l.key.clone(), x.w), (x.slots.clone(), x.now));
            }
            out
        })
    }
    /// Same arithmetic as the gateway (whole fill intervals from the last fill).
    pub(super) fn take_tokens(key: &str, n: u64, drain: bool, b: Bucket) -> BucketTake {
        with(|h| {
            let now = h.now_ms;
            let iv = b.fill_interval_ms.max(1);
            let per = b.tokens_per_fill.max(1);
            let (mut tokens, mut last) = *h.buckets.get(key).unwrap_or(&(b.max_tokens, now));
            if now > last {
                let fills = (now - last) / iv;
                tokens = tokens
                    .saturating_add(fills.saturating_mul(per))
                    .min(b.max_tokens);
                last += fills * iv;
            }
            tokens = tokens.min(b.max_tokens);
            let since = now.saturating_sub(last);
            let wait = |missing: u64| {
                if missing == 0 {
                    0
                } else {
                    missing
                        .div_ceil(per)
                        .saturating_mul(iv)
                        .saturating_sub(since)
                }
            };
            let need = n.max(1);
            let allowed = tokens >= need;
            let retry_after_ms = if allowed {
                0
            } else {
                wait(need.min(b.max_tokens) - tokens)
            };
            if allowed {
                tokens -= n;
            } else if drain {
                tokens = 0;
            }
            h.buckets.insert(key.to_owned(), (tokens, last));
            BucketTake {
                allowed,
                remaining: tokens,
                retry_after_ms,
                reset_ms: wait(b.max_tokens - tokens),
            }
        })
    }
    pub(super) fn kv_get(key: &str) -> Option<Vec<u8>> {
        with(|h| h.kv.get(key).cloned())
    }
    pub(super) fn kv_set(key: &str, value: &[u8], _ttl_ms: u64) {
        with(|h| h.kv.insert(key.to_owned(), value.to_vec()));
    }
    pub(super) fn now_ms() -> u64 {
        with(|h| h.now_ms)
    }
    pub(super) fn metric_counter(name: &str, value: u64) {
        with(|h| *h.metrics.entry(name.to_owned()).or_default() += value as f64)
    }
    pub(super) fn metric_histogram(name: &str, value: f64) {
        with(|h| *h.metrics.entry(name.to_owned()).or_default() += value)
    }
    pub(super) fn usage_details() -> Option<TokenUsage> {
        with(|h| h.usage)
    }
    fn of(a: &BudgetAmount, unit: BudgetUnit) -> u64 {
        match unit {
            BudgetUnit::Usd => a.usd_micros,
            BudgetUnit::Tokens => a.tokens,
        }
    }
    pub(super) fn budget_reserve(
        budgets: &[BudgetRef],
        amount: BudgetAmount,
        _ttl_ms: u64,
    ) -> Result<BudgetReserved, BudgetExhausted> {
        with(|h| {
            let used = |h: &MockHost, b: &BudgetRef| h.budgets.get(&b.key).copied().unwrap_or(0);
            let refused = budgets
                .iter()
                .position(|b| used(h, b) + of(&amount, b.unit) > b.limit);
            if refused.is_none() {
                for b in budgets {
                    *h.budgets.entry(b.key.clone()).or_default() += of(&amount, b.unit);
                }
            }
            let states = budgets
                .iter()
                .map(|b| BudgetState {
                    remaining: b.limit.saturating_sub(used(h, b)),
                    resets_at_ms: 86_400_000,
                })
                .collect();
            match refused {
                Some(i) => Err(BudgetExhausted {
                    budget: i as u32,
                    budgets: states,
                }),
                None => {
                    let id = format!("r{}", h.reservations.len() + h.settled.len());
                    let held = budgets
                        .iter()
                        .map(|b| (b.key.clone(), b.unit, of(&amount, b.unit)))
                        .collect();
                    h.reservations.insert(id.clone(), held);
                    Ok(BudgetReserved {
                        id,
                        budgets: states,
                    })
                }
            }
        })
    }
    pub(super) fn budget_settle(id: &str, actual: BudgetAmount) {
        with(|h| {
            for (key, unit, held) in h.reservations.remove(id).unwrap_or_default() {
                let spent = of(&actual, unit);
                let u = h.budgets.entry(key.clone()).or_default();
                *u = u.saturating_sub(held) + spent;
                *h.settled.entry(key).or_default() += spent;
            }
        })
    }
    pub(super) fn budget_release(id: &str) {
        budget_settle(
            id,
            BudgetAmount {
                usd_micros: 0,
                tokens: 0,
            },
        )
    }
    pub(super) fn price(model: &str, u: TokenUsage) -> Option<f64> {
        with(|h| {
            let r = h.prices.get(model)?;
            let t = [
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.output_tokens,
            ];
            Some(t.iter().zip(r).map(|(t, r)| *t as f64 * r).sum::<f64>() / 1e6)
        })
    }
    /// The same native checks as the gateway (`ring`), without its cache.
    pub(super) fn read_headers(names: &[String]) {
        with(|h| h.read_headers = Some(names.to_vec()));
    }

    pub(super) fn verify_signature(
        scheme: SignatureScheme,
        key: &PublicKey,
        message: &[u8],
        sig: &[u8],
    ) -> bool {
        use ring::signature::{self as s, RsaPublicKeyComponents, UnparsedPublicKey};
        use SignatureScheme as S;
        fn strip(b: &[u8]) -> &[u8] {
            &b[b.iter().position(|x| *x != 0).unwrap_or(b.len())..]
        }
        let rsa = |params: &'static s::RsaParameters| match key {
            PublicKey::Rsa(k) => RsaPublicKeyComponents {
                n: strip(&k.n),
                e: strip(&k.e),
            }
            .verify(params, message, sig)
            .is_ok(),
            _ => false,
        };
        let point = |alg: &'static dyn s::VerificationAlgorithm| match key {
            PublicKey::EcPoint(p) => UnparsedPublicKey::new(alg, p).verify(message, sig).is_ok(),
            _ => false,
        };
        match scheme {
            S::RsaPkcs1Sha256 => rsa(&s::RSA_PKCS1_2048_8192_SHA256),
            S::RsaPkcs1Sha384 => rsa(&s::RSA_PKCS1_2048_8192_SHA384),
            S::RsaPkcs1Sha512 => rsa(&s::RSA_PKCS1_2048_8192_SHA512),
            S::RsaPssSha256 => rsa(&s::RSA_PSS_2048_8192_SHA256),
            S::RsaPssSha384 => rsa(&s::RSA_PSS_2048_8192_SHA384),
            S::RsaPssSha512 => rsa(&s::RSA_PSS_2048_8192_SHA512),
            S::EcdsaP256Sha256 => point(&s::ECDSA_P256_SHA256_FIXED),
            S::EcdsaP384Sha384 => point(&s::ECDSA_P384_SHA384_FIXED),
            S::Ed25519 => match key {
                PublicKey::Ed25519(x) => UnparsedPublicKey::new(&s::ED25519, x)
                    .verify(message, sig)
                    .is_ok(),
                _ => false,
            },
        }
    }
    pub(super) fn fetch(url: &str, _cache_ms: u64) -> Result<FetchResponse, String> {
        with(|h| {
            h.fetch
                .get(url)
                .cloned()
                .ok_or_else(|| format!("mock: no canned response for {url}"))
        })
    }
}
