//! In-memory guards of the request path: the nonce replay cache and the per-device rate limit.
//!
//! Both are per relay process. After a restart the replay cache is empty, which is why the
//! relay also refuses timestamps older than its own start (see `http::auth`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streetsync_wire::{CLOCK_TOLERANCE_MS, DeviceId};

/// How often the replay cache drops nonces that can no longer be replayed.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// `(device, nonce)` pairs seen within the clock window.
#[derive(Debug, Default)]
pub struct ReplayCache {
    inner: Mutex<ReplayInner>,
}

#[derive(Debug)]
struct ReplayInner {
    seen: HashMap<(DeviceId, [u8; 16]), i64>,
    last_prune: Instant,
}

impl Default for ReplayInner {
    fn default() -> Self {
        ReplayInner {
            seen: HashMap::new(),
            last_prune: Instant::now(),
        }
    }
}

impl ReplayCache {
    /// Records the pair; false if it was seen before (a replay).
    ///
    /// A pair is forgotten once its timestamp is outside the clock window, because the clock check
    /// refuses such a request before it gets here.
    pub fn check_and_insert(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        ts_ms: i64,
        now_ms: i64,
    ) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.last_prune.elapsed() >= PRUNE_EVERY {
            inner
                .seen
                .retain(|_, ts| *ts >= now_ms - CLOCK_TOLERANCE_MS);
            inner.last_prune = Instant::now();
        }
        inner.seen.insert((device, nonce), ts_ms).is_none()
    }
}

/// A per-device token bucket.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<DeviceId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Past this many tracked devices, full buckets are dropped (they carry no information).
const PRUNE_BUCKETS_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `per_sec` tokens refill per second up to `burst`; a request costs one token.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            per_sec: per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `device`, or says how many milliseconds until one is available.
    pub fn check(&self, device: DeviceId) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_BUCKETS_ABOVE {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(device).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_secs = if self.per_sec > 0.0 {
            (1.0 - bucket.tokens) / self.per_sec
        } else {
            3600.0
        };
        Err((wait_secs * 1000.0).ceil().clamp(1.0, 3_600_000.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_second_use() {
        let cache = ReplayCache::default();
        let d = DeviceId::from_bytes([1; 16]);
        assert!(cache.check_and_insert(d, [1; 16], 10, 10));
        assert!(!cache.check_and_insert(d, [1; 16], 10, 10));
        assert!(cache.check_and_insert(d, [2; 16], 10, 10));
        assert!(cache.check_and_insert(DeviceId::from_bytes([2; 16]), [1; 16], 10, 10));
    }

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let limiter = RateLimiter::new(0.001, 3);
        let d = DeviceId::from_bytes([1; 16]);
        for _ in 0..3 {
            assert!(limiter.check(d).is_ok());
        }
        let wait = limiter.check(d).err();
        assert!(wait.is_some_and(|ms| ms > 0));
        assert!(limiter.check(DeviceId::from_bytes([2; 16])).is_ok());
    }
}
