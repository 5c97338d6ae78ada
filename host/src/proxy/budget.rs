//! One budget of request-body bytes buffered for policies, shared by every
//! request in the process (`limits.bodyBufferBudget`).
//!
//! Each request may buffer up to the per-request cap, but a flood of large
//! bodies must not add up to an OOM: a request whose body does not fit in
//! what is left gets `503` with `Retry-After` instead. A body that declares
//! its `Content-Length` reserves it all before a byte is read.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// The process-wide budget; its size follows the running config.
pub static GLOBAL: LazyLock<Arc<BodyBudget>> = LazyLock::new(|| {
    Arc::new(BodyBudget::new(
        crate::config::Limits::default().body_buffer_budget,
    ))
});

/// The largest single body buffered (`Limits::max_buffered_body`,
/// agentgateway's `frontendPolicies.http.maxBufferSize`); it follows the
/// running config like [`GLOBAL`].
static MAX_BODY: AtomicUsize = AtomicUsize::new(MAX_BUFFERED_BODY);

/// Largest request or response body the gateway buffers for a policy by
/// default; `frontendPolicies.http.maxBufferSize` sets it ([`max_body`]).
pub const MAX_BUFFERED_BODY: usize = 32 << 20;

/// See [`MAX_BODY`].
pub fn max_body() -> usize {
    MAX_BODY.load(Ordering::Acquire)
}

pub fn set_max_body(n: usize) {
    MAX_BODY.store(n, Ordering::Release);
}

#[derive(Debug)]
pub struct BodyBudget {
    limit: AtomicU64,
    used: AtomicU64,
}

/// Bytes held against the budget, given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl BodyBudget {
    pub fn new(limit: u64) -> Self {
        BodyBudget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        }
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, n: u64) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= limit)
            })
            .is_ok()
    }

    pub fn reserve(self: &Arc<Self>, n: u64) -> Option<Reservation> {
        self.take(n).then(|| Reservation {
            budget: self.clone(),
            bytes: n,
        })
    }
}

impl Reservation {
    /// Hold `n` more bytes, if the budget has them.
    pub fn grow(&mut self, n: u64) -> bool {
        if self.budget.take(n) {
            self.bytes += n;
            true
        } else {
            false
        }
    }

    /// Give back all but `n` bytes (a buffer that was replaced by a smaller one).
    pub fn shrink_to(&mut self, n: u64) {
        if n < self.bytes {
            self.budget.used.fetch_sub(self.bytes - n, Ordering::AcqRel);
            self.bytes = n;
        }
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum CollectError {
    /// Over the per-request cap.
    TooLarge,
    /// The shared budget is spent: retry later.
    OverBudget,
    /// The client's body broke off.
    Read,
}

/// Read a whole body, at most `max` bytes, holding its size against `budget`.
pub async fn collect<B>(
    body: &mut B,
    declared_len: Option<u64>,
    max: usize,
    budget: &Arc<BodyBudget>,
) -> Result<(Bytes, Reservation), CollectError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let max = max as u64;
    if declared_len.is_some_and(|n| n > max) {
        return Err(CollectError::TooLarge);
    }
    let mut held = budget
        .reserve(declared_len.unwrap_or(0))
        .ok_or(CollectError::OverBudget)?;
    let mut buf = BytesMut::with_capacity(declared_len.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| CollectError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = (buf.len() + data.len()) as u64;
        if len > max {
            return Err(CollectError::TooLarge);
        }
        if len > held.bytes && !held.grow(len - held.bytes) {
            return Err(CollectError::OverBudget);
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..n)
            .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; size]))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn reserves_and_releases() {
        let b = Arc::new(BodyBudget::new(100));
        let (bytes, held) = collect(
            &mut Full::new(Bytes::from_static(b"hello")),
            Some(5),
            50,
            &b,
        )
        .await
        .unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(b.used(), 5);
        drop(held);
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn over_budget_and_too_large() {
        let b = Arc::new(BodyBudget::new(100));
        let first = b.reserve(80).unwrap();
        assert_eq!(
            collect(&mut chunks(3, 10), None, 1000, &b)
                .await
                .unwrap_err(),
            CollectError::OverBudget
        );
        assert_eq!(b.used(), 80, "a failed collect gives back what it took");
        assert_eq!(
            collect(&mut chunks(1, 1), Some(30), 1000, &b)
                .await
                .unwrap_err(),
            CollectError::OverBudget
        );
        drop(first);
        assert_eq!(
            collect(&mut chunks(6, 10), None, 50, &b).await.unwrap_err(),
            CollectError::TooLarge
        );
        assert_eq!(
            collect(&mut chunks(1, 1), Some(51), 50, &b)
                .await
                .unwrap_err(),
            CollectError::TooLarge
        );
        let (bytes, _held) = collect(&mut chunks(5, 10), None, 50, &b).await.unwrap();
        assert_eq!(bytes.len(), 50);
        assert_eq!(b.used(), 50);
    }

    #[test]
    fn grow_and_shrink() {
        let b = Arc::new(BodyBudget::new(100));
        let mut r = b.reserve(10).unwrap();
        assert!(r.grow(60));
        assert_eq!((r.bytes(), b.used()), (70, 70));
        assert!(!r.grow(31), "past the budget");
        assert_eq!(
            (r.bytes(), b.used()),
            (70, 70),
            "a refused grow takes nothing"
        );
        r.shrink_to(25);
        assert_eq!((r.bytes(), b.used()), (25, 25));
        r.shrink_to(40);
        assert_eq!(r.bytes(), 25, "shrink never grows");
        drop(r);
        assert_eq!(b.used(), 0);
    }
}
