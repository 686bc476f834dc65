//! [`Pacer`]: the rate control of one route as its [`Sender`](super::Sender) uses it: every
//! request waits for a permit of the route's [`RateControl`], and the answers feed it.
//!
//! One more rule sits between the answers and the controller: a throttling answer cuts the
//! rate only when throttles are a sizeable share of the route's recent answers (at least
//! [`MIN_THROTTLES`] and [`CONGESTED_SHARE`] of the answers over the last [`SHARE_SPAN`], or
//! [`SUDDEN_SHARE`] of the last [`SLOT`]'s: a quota just run out is seen within a few
//! dozen refusals, not after a twentieth of a second's answers), or the route was congested
//! less than [`CONGESTION_MEMORY`] before.
//! A quota the route exceeds refuses most requests beyond it, so it passes at once; scattered
//! throttles (a device sent too much, a provider shedding a little load at random) do not
//! slow the whole route down: their notifications alone wait (`Retry-After` or the backoff).
//! Without it, a route answered 2.5% random 429s would be cut once per second to a crawl; with
//! fewer than [`MIN_THROTTLES`], a few unlucky throttles among the last retries of a send (few
//! answers, so a large share) would cut it too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rate::RateControl;

/// Throttles in [`SHARE_SPAN`] below which the route is not congested.
const MIN_THROTTLES: u32 = 20;
/// The share of throttled answers (out of 1) from which the route is congested.
const CONGESTED_SHARE: f64 = 0.05;
/// The share of throttled answers in the last [`SLOT`] from which the route is congested at
/// once (a quota just run out), before they weigh [`CONGESTED_SHARE`] of the last second.
const SUDDEN_SHARE: f64 = 0.5;
/// How far back answers are counted.
const SHARE_SPAN: Duration = Duration::from_secs(1);
/// The width of one slot of that count.
const SLOT: Duration = Duration::from_millis(100);
/// Once congested, every throttle until this long after the last one goes to the controller:
/// while the quota drains it probes with single requests, whose throttles are few but mean
/// the quota is still exhausted (longer than the controller's longest probe pause).
const CONGESTION_MEMORY: Duration = Duration::from_secs(6);

/// The pacing of one route.
#[derive(Debug)]
pub(crate) struct Pacer {
    control: RateControl,
    /// Answers and throttles per [`SLOT`], oldest first.
    recent: VecDeque<Slot>,
    /// When the pacer last held a request back: the next permit.
    blocked_until: Option<Instant>,
    /// When a throttle last went to the controller.
    congested_at: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    start: Instant,
    answers: u32,
    throttles: u32,
}

impl Pacer {
    /// A route paced at most at `max_rate` requests per second (`None`: only as the provider
    /// asks).
    pub(crate) fn new(max_rate: Option<u32>) -> Pacer {
        Pacer {
            control: RateControl::new(max_rate.map(f64::from)),
            recent: VecDeque::new(),
            blocked_until: None,
            congested_at: None,
        }
    }

    /// `None` when a request may go at `now` (take it with [`sent`](Self::sent)), else when
    /// the next may.
    pub(crate) fn wait(&mut self, now: Instant) -> Option<Instant> {
        self.blocked_until = self.control.permit_ready(now).err();
        self.blocked_until
    }

    /// Nothing waits for a permit any more.
    pub(crate) fn idle(&mut self) {
        self.blocked_until = None;
    }

    /// A request goes out at `now` (after [`wait`](Self::wait) said it may).
    pub(crate) fn sent(&mut self, now: Instant) {
        // `wait` just said a permit is there: taking it cannot fail.
        let _ = self.control.permit(now);
    }

    /// When the request held back last may go.
    pub(crate) fn blocked_until(&self) -> Option<Instant> {
        self.blocked_until
    }

    /// The provider answered a request sent at `sent_at` without throttling it.
    pub(crate) fn answered(&mut self, sent_at: Instant, clean: bool, now: Instant) {
        self.count(now, false);
        if clean {
            self.control.answered(sent_at, now);
        }
    }

    /// The provider throttled the route for a request sent at `sent_at`. True when the route
    /// was congested and slowed down, false when the throttle concerned this request alone.
    pub(crate) fn throttled(
        &mut self,
        sent_at: Instant,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> bool {
        self.count(now, true);
        let (answers, throttles) = self
            .recent
            .iter()
            .fold((0u32, 0u32), |(answers, throttles), slot| {
                (answers + slot.answers, throttles + slot.throttles)
            });
        let remembered = self
            .congested_at
            .is_some_and(|at| now.saturating_duration_since(at) < CONGESTION_MEMORY);
        // A quota just run out refuses nearly everything: most of the last slot's answers.
        let sudden = self.recent.back().is_some_and(|slot| {
            slot.throttles >= MIN_THROTTLES
                && f64::from(slot.throttles) >= SUDDEN_SHARE * f64::from(slot.answers)
        });
        let congested = remembered
            || sudden
            || (throttles >= MIN_THROTTLES
                && f64::from(throttles) >= CONGESTED_SHARE * f64::from(answers));
        if congested {
            self.congested_at = Some(now);
            self.control.throttled(sent_at, retry_after, now);
        }
        congested
    }

    fn count(&mut self, now: Instant, throttle: bool) {
        while self
            .recent
            .front()
            .is_some_and(|slot| now.saturating_duration_since(slot.start) >= SHARE_SPAN)
        {
            self.recent.pop_front();
        }
        let slot = match self.recent.back_mut() {
            Some(slot) if now.saturating_duration_since(slot.start) < SLOT => slot,
            _ => {
                self.recent.push_back(Slot {
                    start: now,
                    answers: 0,
                    throttles: 0,
                });
                let Some(slot) = self.recent.back_mut() else {
                    return;
                };
                slot
            }
        };
        slot.answers = slot.answers.saturating_add(1);
        slot.throttles = slot.throttles.saturating_add(u32::from(throttle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_throttles_do_not_slow_the_route() {
        let start = Instant::now();
        let mut pacer = Pacer::new(None);
        for i in 0..1000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            assert_eq!(pacer.wait(now), None, "unlimited");
            pacer.sent(now);
            if i % 40 == 0 {
                assert!(!pacer.throttled(now, Some(Duration::from_secs(1)), now));
            } else {
                pacer.answered(now, true, now);
            }
        }
        assert_eq!(pacer.control.rate(), None);
    }

    #[test]
    fn a_congested_route_is_cut_and_paused() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Some(1000));
        let mut congested = false;
        for i in 0..100u32 {
            let now = start + Duration::from_millis(u64::from(i));
            pacer.answered(now, true, now);
            if i >= 50 {
                congested |= pacer.throttled(now, Some(Duration::from_secs(2)), now);
            }
        }
        assert!(congested);
        let now = start + Duration::from_millis(100);
        let until = pacer.wait(now).unwrap();
        assert!(until >= start + Duration::from_secs(2), "{until:?}");
        assert_eq!(pacer.blocked_until(), Some(until));
        assert!(pacer.control.rate().unwrap() < 1000.0);
    }

    #[test]
    fn the_cap_paces_requests() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Some(20));
        let mut sent = 0;
        let mut now = start;
        while now < start + Duration::from_secs(1) {
            match pacer.wait(now) {
                None => {
                    pacer.sent(now);
                    sent += 1;
                }
                Some(at) => {
                    assert!(at > now);
                    now = at;
                }
            }
        }
        // One request of burst, then 20 per second.
        assert!((20..=21).contains(&sent), "{sent}");
    }
}
