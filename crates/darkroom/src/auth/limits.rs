//! Per-key limits held in memory: the request rate (a GCRA bucket from `governor`) and the
//! number of event streams open at once. The bound on queued jobs is the store's, checked
//! in the transaction that creates the job.
//!
//! State is per process: with several replicas, each enforces the limits on its own share.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::keys::KeyLimits;
use crate::config::KeyLimitDefaults;

/// The limits that apply to one caller, with the key's own values over the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// 0: no rate limit.
    pub requests_per_minute: u32,
    pub burst: u32,
    pub max_queued: u32,
    pub max_streams: u32,
}

/// The in-memory side of every caller's limits.
#[derive(Debug)]
pub struct Gate {
    defaults: KeyLimitDefaults,
    rates: Mutex<HashMap<String, Bucket>>,
    streams: Arc<Mutex<HashMap<String, u32>>>,
}

#[derive(Debug)]
struct Bucket {
    quota: (u32, u32),
    limiter: DefaultDirectRateLimiter,
}

/// One open event stream, counted against its caller until dropped (the client went away
/// or the stream ended).
#[derive(Debug)]
pub struct StreamPermit {
    who: String,
    streams: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.who) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.who);
            }
        }
    }
}

impl Gate {
    pub fn new(defaults: KeyLimitDefaults) -> Self {
        Self {
            defaults,
            rates: Mutex::default(),
            streams: Arc::default(),
        }
    }

    /// A key's limits, its own values over the configured defaults.
    pub fn effective(&self, own: &KeyLimits) -> Effective {
        Effective {
            requests_per_minute: own
                .requests_per_minute
                .unwrap_or(self.defaults.requests_per_minute),
            burst: own.burst.unwrap_or(self.defaults.burst),
            max_queued: own.max_queued.unwrap_or(self.defaults.max_queued),
            max_streams: own.max_streams.unwrap_or(self.defaults.max_streams),
        }
    }

    /// Takes one request from `who`'s allowance; `Err` holds how long until the next one
    /// is allowed.
    ///
    /// # Errors
    ///
    /// The wait, when the caller is over its rate.
    pub fn take_request(&self, who: &str, limits: Effective) -> Result<(), Duration> {
        let Some(per_minute) = NonZeroU32::new(limits.requests_per_minute) else {
            return Ok(());
        };
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        let quota = (per_minute.get(), burst.get());
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = rates
            .entry(who.to_owned())
            .and_modify(|bucket| {
                // The key's limits changed: start a bucket with the new quota.
                if bucket.quota != quota {
                    *bucket = Bucket::new(per_minute, burst);
                }
            })
            .or_insert_with(|| Bucket::new(per_minute, burst));
        bucket
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Counts one more open stream for `who`, unless it already has `limits.max_streams`.
    pub fn open_stream(&self, who: &str, limits: Effective) -> Option<StreamPermit> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let open = streams.entry(who.to_owned()).or_default();
        if *open >= limits.max_streams {
            return None;
        }
        *open += 1;
        Some(StreamPermit {
            who: who.to_owned(),
            streams: Arc::clone(&self.streams),
        })
    }
}

impl Bucket {
    fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            quota: (per_minute.get(), burst.get()),
            limiter: RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(KeyLimitDefaults {
            requests_per_minute: 60,
            burst: 3,
            max_queued: 10,
            max_streams: 2,
        })
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let gate = gate();
        let limits = gate.effective(&KeyLimits::default());
        for _ in 0..3 {
            assert!(gate.take_request("a", limits).is_ok());
        }
        let wait = gate.take_request("a", limits).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            gate.take_request("b", limits).is_ok(),
            "keys have their own buckets"
        );
    }

    #[test]
    fn a_key_of_its_own_overrides_the_defaults() {
        let gate = gate();
        let own = KeyLimits {
            requests_per_minute: Some(0),
            max_streams: Some(5),
            ..KeyLimits::default()
        };
        let limits = gate.effective(&own);
        assert_eq!(limits.max_streams, 5);
        assert_eq!(limits.max_queued, 10);
        for _ in 0..100 {
            assert!(gate.take_request("unlimited", limits).is_ok());
        }
    }

    #[test]
    fn streams_are_counted_until_dropped() {
        let gate = gate();
        let limits = gate.effective(&KeyLimits::default());
        let first = gate.open_stream("a", limits).unwrap();
        let _second = gate.open_stream("a", limits).unwrap();
        assert!(gate.open_stream("a", limits).is_none());
        assert!(gate.open_stream("b", limits).is_some());
        drop(first);
        assert!(gate.open_stream("a", limits).is_some());
    }
}
