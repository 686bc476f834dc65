//! Exponential backoff with seeded jitter, shared by every provider.

use std::time::Duration;

use crate::rng::SplitMix64;

/// Exponential backoff: the n-th retry (counting from 0) waits a random time between half and
/// all of `min(initial × 2ⁿ, max)` ("equal jitter"), so that many clients retrying after the
/// same outage spread out instead of arriving together.
///
/// The randomness comes from a seed the caller provides (SplitMix64), so a state machine with a
/// given seed behaves identically on every run.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    rng: SplitMix64,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`, with jitter drawn from `seed`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            rng: SplitMix64::new(seed),
        }
    }

    /// The delay before retry number `retry` (0 = the first retry).
    pub fn delay(&mut self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.rng.next_u64() % (spread + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_seed_same_delays() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 7);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 7);
        for retry in 0..10 {
            assert_eq!(a.delay(retry), b.delay(retry));
        }
    }

    #[test]
    fn zero_initial_means_no_wait() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO, 1);
        assert_eq!(backoff.delay(5), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn delays_stay_within_half_and_whole_ceiling(
            seed in any::<u64>(),
            retry in 0u32..100,
            initial_ms in 1u64..5_000,
            max_ms in 1u64..2_000_000,
        ) {
            let initial = Duration::from_millis(initial_ms);
            let max = Duration::from_millis(max_ms).max(initial);
            let mut backoff = Backoff::new(initial, max, seed);
            let ceiling = initial
                .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
                .min(max);
            let delay = backoff.delay(retry);
            prop_assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?} vs {ceiling:?}");
        }
    }
}
