//! A sliding-window rate quota, the way providers enforce theirs: at most `limit` requests
//! admitted in any window of `window`, windows not aligned to the clock (FCM's per-project
//! quota counts messages over a moving minute).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A rate limit: at most `limit` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests admitted per window.
    pub limit: u32,
    /// The length of the sliding window.
    pub window: Duration,
}

/// The requests admitted in the current window, oldest first.
#[derive(Debug)]
pub(crate) struct QuotaState {
    quota: Quota,
    admitted: VecDeque<Instant>,
}

impl QuotaState {
    pub(crate) fn new(quota: Quota) -> QuotaState {
        QuotaState {
            quota,
            admitted: VecDeque::new(),
        }
    }

    /// Admits one request at `now`, or returns how long until one would be admitted.
    /// Refused requests do not count against the quota.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.admitted.front() {
            if oldest + self.quota.window <= now {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() < self.quota.limit as usize {
            self.admitted.push_back(now);
            return Ok(());
        }
        Err(match self.admitted.front() {
            Some(&oldest) => (oldest + self.quota.window).saturating_duration_since(now),
            None => self.quota.window,
        })
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u32, window_ms: u64) -> QuotaState {
        QuotaState::new(Quota {
            limit,
            window: Duration::from_millis(window_ms),
        })
    }

    #[test]
    fn admits_the_limit_per_sliding_window() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut q = quota(3, 1000);
        assert!(q.admit(at(0)).is_ok());
        assert!(q.admit(at(400)).is_ok());
        assert!(q.admit(at(500)).is_ok());
        assert_eq!(q.admit(at(600)), Err(Duration::from_millis(400)));
        // The window slides: the request of t=0 leaves at t=1000, not at a clock boundary.
        assert!(q.admit(at(1000)).is_ok());
        assert_eq!(q.admit(at(1100)), Err(Duration::from_millis(300)));
        assert!(q.admit(at(1400)).is_ok());
    }

    #[test]
    fn refusals_do_not_count() {
        let start = Instant::now();
        let mut q = quota(1, 100);
        assert!(q.admit(start).is_ok());
        for ms in 1..100 {
            assert!(q.admit(start + Duration::from_millis(ms)).is_err());
        }
        assert!(q.admit(start + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_zero_limit_admits_nothing() {
        let mut q = quota(0, 100);
        assert_eq!(q.admit(Instant::now()), Err(Duration::from_millis(100)));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
