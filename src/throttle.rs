//! In-memory pacing that keeps clients polite: RFC 8628 `slow_down` for status polls, a
//! per-IP budget for creating requests, and one for guessing secrets.
//!
//! Both live in the process only. A restart forgets them, which merely lets a client poll
//! or create once more; nothing here is state that must survive.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Past this many tracked keys, stale entries are dropped on the next check.
const PRUNE_ABOVE: usize = 4096;

/// Remembers when each request was last polled (with a valid poll token).
pub struct PollPacer {
    interval: Duration,
    /// A poll this much early still counts as on time: client timers and network jitter
    /// make "exactly the interval" arrive a little early.
    grace: Duration,
    /// A std mutex: held for a map lookup only, never across an await.
    last: Mutex<HashMap<Uuid, Instant>>,
}

impl PollPacer {
    /// `interval` zero turns pacing off.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            grace: interval / 10,
            last: Mutex::default(),
        }
    }

    /// Records a poll of `id` at `now`, or says how long to wait when it came too soon.
    /// A refused poll does not move the clock, so a client that keeps hammering stays refused
    /// only until the interval since its last accepted poll has passed.
    pub fn check(&self, id: Uuid, now: Instant) -> Result<(), Duration> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = last.get(&id) {
            let since = now.saturating_duration_since(*previous);
            if since + self.grace < self.interval {
                return Err(self.interval - since);
            }
        }
        if last.len() > PRUNE_ABOVE {
            let interval = self.interval;
            last.retain(|_, at| now.saturating_duration_since(*at) < interval);
        }
        last.insert(id, now);
        Ok(())
    }
}

/// A token bucket per key: `per_minute` tokens, refilled continuously.
pub struct RateLimiter<K> {
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Creates per client IP.
pub type CreateLimiter = RateLimiter<IpAddr>;
/// The budget of wrong secrets per client address: a failed console sign-in, a wrong admin
/// Bearer token or a wrong submit token, on any endpoint, all spend from one bucket
/// (`limits.failed_sign_ins_per_minute_per_ip`), so the admin token cannot be guessed at
/// network speed through whichever endpoint is cheapest. Past it, the address is refused,
/// right secret or wrong, until the bucket refills.
pub struct GuessBudget {
    failures: RateLimiter<IpAddr>,
    /// One WARN line per address per minute while it is refused, not one per request.
    warned: RateLimiter<IpAddr>,
}

impl GuessBudget {
    /// `per_minute` zero turns the budget off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            failures: RateLimiter::new(per_minute),
            warned: RateLimiter::new(1),
        }
    }

    /// Whether `peer` may present a secret now; else how long until it may.
    pub fn admit(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = crate::domain::peer::budget_key(peer);
        self.failures.allows(key, now).inspect_err(|_| {
            if self.warned.check(key, now).is_ok() {
                tracing::warn!(%peer, "too many wrong secrets from this address; refusing it for now");
            }
        })
    }

    /// Records a wrong secret from `peer`; `Err` once that used up its budget.
    pub fn failed(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = crate::domain::peer::budget_key(peer);
        self.failures.check(key, now)
    }
}

impl<K: Eq + Hash + Copy> RateLimiter<K> {
    /// `per_minute` zero turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now, true)
    }

    /// Whether `key` has a token left, without taking it: for budgets that only failures
    /// spend.
    pub fn allows(&self, key: K, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now, false)
    }

    fn bucket(&self, key: K, now: Instant, take: bool) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < capacity
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled =
            bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * per_sec;
        bucket.tokens = refilled.min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_poll_passes_an_early_one_waits_and_a_late_one_passes() {
        let pacer = PollPacer::new(Duration::from_secs(5));
        let (id, t0) = (Uuid::new_v4(), Instant::now());
        assert!(pacer.check(id, t0).is_ok());
        let wait = pacer.check(id, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(4));
        assert!(
            pacer.check(id, t0 + Duration::from_millis(4600)).is_ok(),
            "within the 10% grace"
        );
        assert!(
            pacer
                .check(Uuid::new_v4(), t0 + Duration::from_millis(4601))
                .is_ok(),
            "per request"
        );
    }

    #[test]
    fn a_zero_interval_turns_pacing_off() {
        let pacer = PollPacer::new(Duration::ZERO);
        let (id, t0) = (Uuid::new_v4(), Instant::now());
        assert!(pacer.check(id, t0).is_ok() && pacer.check(id, t0).is_ok());
    }

    #[test]
    fn a_bucket_allows_its_budget_then_refills_over_the_minute() {
        let limiter = RateLimiter::new(3);
        let (ip, t0): (IpAddr, Instant) = ("10.0.0.1".parse().unwrap(), Instant::now());
        for _ in 0..3 {
            assert!(limiter.check(ip, t0).is_ok());
        }
        let wait = limiter.check(ip, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 20, "one token per 20 s at 3 a minute");
        assert!(limiter.check(ip, t0 + Duration::from_secs(21)).is_ok());
        assert!(
            limiter.check("10.0.0.2".parse().unwrap(), t0).is_ok(),
            "per IP"
        );
        assert!(RateLimiter::new(0).check(ip, t0).is_ok(), "0 turns it off");
    }

    #[test]
    fn wrong_secrets_spend_the_budget_and_then_the_address_is_refused_until_it_refills() {
        let budget = GuessBudget::new(2);
        let (ip, t0): (IpAddr, Instant) = ("10.0.0.1".parse().unwrap(), Instant::now());
        assert!(budget.admit(ip, t0).is_ok());
        assert!(budget.failed(ip, t0).is_ok() && budget.failed(ip, t0).is_ok());

        assert!(
            budget.admit(ip, t0).is_err(),
            "refused, right secret or wrong"
        );
        assert!(budget.admit("10.0.0.2".parse().unwrap(), t0).is_ok());
        assert!(budget.admit(ip, t0 + Duration::from_secs(31)).is_ok());
    }

    #[test]
    fn asking_whether_a_token_is_left_does_not_spend_it() {
        let limiter = RateLimiter::new(2);
        let (ip, t0): (IpAddr, Instant) = ("10.0.0.1".parse().unwrap(), Instant::now());
        for _ in 0..5 {
            assert!(limiter.allows(ip, t0).is_ok());
        }
        assert!(limiter.check(ip, t0).is_ok() && limiter.check(ip, t0).is_ok());
        assert!(limiter.allows(ip, t0).is_err(), "spent by two checks");
    }
}
