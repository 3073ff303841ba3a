//! In-memory guards of the request path: the nonce replay cache, the per-device rate limit, the
//! mailbox quotas and who may found a team.
//!
//! The cache and the buckets are per relay process. After a restart the replay cache is empty,
//! which is why the relay also refuses timestamps older than its own start (see `http::auth`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use streetsync_wire::{CLOCK_TOLERANCE_MS, DeviceId};

/// Width of one bucket of the replay cache, by request timestamp.
const BUCKET_MS: i64 = 10_000;

/// What the replay cache says about a `(device, nonce)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// First use; now recorded.
    Fresh,
    /// Seen before inside the clock window.
    Replayed,
    /// The cache is full: the request cannot be told apart from a replay, so it is refused for
    /// now. The value is how long until the oldest bucket leaves the window.
    Full {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
}

/// `(device, nonce)` pairs of authenticated requests, kept as long as their timestamp is inside
/// the clock window, in buckets by timestamp so whole buckets leave the window at once.
///
/// At most `capacity` pairs: a full cache refuses new pairs (the caller answers `rate_limited`)
/// rather than forget one early, since a forgotten pair could be replayed. Only requests whose
/// signature verified from a current member reach it (`http::auth`), so filling it takes a
/// team's own devices, and each of them is held to its rate limit.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<ReplayInner>,
}

#[derive(Debug, Default)]
struct ReplayInner {
    /// Bucket (timestamp / [`BUCKET_MS`]) to the pairs whose timestamp falls in it.
    buckets: BTreeMap<i64, HashSet<(DeviceId, [u8; 16])>>,
    len: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` pairs.
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity: capacity.max(1),
            inner: Mutex::new(ReplayInner::default()),
        }
    }

    /// Records the pair unless it was seen (a replay) or the cache is full.
    ///
    /// A replay carries the same signed timestamp, so it lands in the same bucket. Buckets are
    /// dropped only once every timestamp they can hold is outside the window, where the clock
    /// check refuses a request before it gets here.
    pub fn check_and_insert(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        ts_ms: i64,
        now_ms: i64,
    ) -> Replay {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let oldest_live = (now_ms - CLOCK_TOLERANCE_MS).div_euclid(BUCKET_MS);
        while let Some(entry) = inner.buckets.first_entry() {
            if *entry.key() >= oldest_live {
                break;
            }
            let gone = entry.remove().len();
            inner.len -= gone;
        }
        let bucket = ts_ms.div_euclid(BUCKET_MS);
        if inner
            .buckets
            .get(&bucket)
            .is_some_and(|b| b.contains(&(device, nonce)))
        {
            return Replay::Replayed;
        }
        if inner.len >= self.capacity {
            let oldest = inner.buckets.keys().next().copied().unwrap_or(bucket);
            let leaves_at = (oldest + 1) * BUCKET_MS + CLOCK_TOLERANCE_MS;
            let wait = leaves_at.saturating_sub(now_ms).clamp(1, 3_600_000);
            return Replay::Full {
                retry_after_ms: wait.unsigned_abs(),
            };
        }
        inner
            .buckets
            .entry(bucket)
            .or_default()
            .insert((device, nonce));
        inner.len += 1;
        Replay::Fresh
    }

    /// How many pairs the cache holds.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len
    }

    /// Whether the cache holds no pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub use crate::storage::MailboxQuota;

/// Who may found a team on this relay (`--team-founding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Founding {
    /// Any device.
    Open,
    /// The listed devices only.
    Allowlist(HashSet<DeviceId>),
    /// Nobody.
    Closed,
}

impl Founding {
    /// Whether `device` may found a team.
    pub fn allows(&self, device: DeviceId) -> bool {
        match self {
            Founding::Open => true,
            Founding::Allowlist(ids) => ids.contains(&device),
            Founding::Closed => false,
        }
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
        assert_eq!(cache.check_and_insert(d, [1; 16], 10, 10), Replay::Fresh);
        assert_eq!(cache.check_and_insert(d, [1; 16], 10, 10), Replay::Replayed);
        assert_eq!(cache.check_and_insert(d, [2; 16], 10, 10), Replay::Fresh);
        assert_eq!(
            cache.check_and_insert(DeviceId::from_bytes([2; 16]), [1; 16], 10, 10),
            Replay::Fresh
        );
    }

    #[test]
    fn a_full_replay_cache_refuses_instead_of_forgetting() {
        let cache = ReplayCache::new(3);
        let d = DeviceId::from_bytes([1; 16]);
        let now = 1_000_000_000;
        for n in 0..3u8 {
            assert_eq!(cache.check_and_insert(d, [n; 16], now, now), Replay::Fresh);
        }
        // Full: a new pair is refused, and every pair seen is still refused as a replay.
        assert!(matches!(
            cache.check_and_insert(d, [9; 16], now, now),
            Replay::Full { retry_after_ms } if retry_after_ms > 0
        ));
        for n in 0..3u8 {
            assert_eq!(
                cache.check_and_insert(d, [n; 16], now, now + CLOCK_TOLERANCE_MS),
                Replay::Replayed,
                "still inside the window"
            );
        }
        assert_eq!(cache.len(), 3);
        // Once the bucket has left the window, the space is free again.
        let later = now + CLOCK_TOLERANCE_MS + 2 * BUCKET_MS;
        assert_eq!(
            cache.check_and_insert(d, [9; 16], later, later),
            Replay::Fresh
        );
        assert_eq!(cache.len(), 1);
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
