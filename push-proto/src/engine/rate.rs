//! Rate control for one provider route: how fast the route may send, learned from the
//! provider's throttling answers and bounded by an optional explicit cap.
//!
//! Providers limit senders by quotas they do not announce (FCM: messages per project per
//! minute, over a sliding window; APNs: a provider-wide rate), answering `429` beyond them.
//! Reacting per request (each `429` retried on its own) keeps the route above the quota and
//! turns most of the excess into refusals. Instead the route paces every request through a
//! token bucket whose rate is controlled by AIMD:
//!
//! - **No limit until the provider asks for one.** A route starts unlimited (or at its cap).
//! - **Multiplicative decrease.** A throttling answer (`429`) cuts the rate to
//!   [`DECREASE`] × the current one, or × the rate the provider actually accepted lately
//!   when lower (successful answers over the `Retry-After` or since the first answer, up to
//!   two minutes), once per congestion event: throttles of requests sent before the last
//!   reaction belong to it. The first throttle of an unlimited route measures the quota
//!   rather than a rate that overshot it, so it cuts to [`FIRST_DECREASE`] × the accepted
//!   rate; without a `Retry-After` that first measure (taken over at least a second) is
//!   corrected once the quota has drained, to what the provider accepted since its first
//!   answer.
//!   A `Retry-After` also pauses the route until it passes. Throttles within
//!   [`MIN_CUT_INTERVAL`] of a cut (or before the first cut's quota drained) do not cut again:
//!   a quota measured over a window stays exhausted for a while after the rate drops, so the
//!   route pauses instead (100 ms, growing 1.5× while throttles go on, reset by a clean
//!   answer) until the window drains.
//! - **Increase: fast back, gentle beyond.** While answers are clean and the pacer is what
//!   holds requests back, the rate grows back to the rate at the last cut fast ([`RECOVERY`]
//!   × it per second), then beyond it by up to [`INCREASE`] × it per second (at least
//!   [`MIN_INCREASE`], or [`MIN_INCREASE_SHARE`] × that rate when lower), reached
//!   [`PROBE_RAMP`] after the cut: near the rate the quota refused, it probes slowly (each
//!   refusal costs a cut and a `Retry-After`), and it still follows a quota that grows.
//!
//! Why AIMD rather than a bucket sized from the quota: the quota is not announced, it can
//! change, and it is often shared (several push processes, other services of the same
//! project), so a fixed size would be wrong as often as right. AIMD needs no knowledge of it,
//! backs off hard when it is exceeded and probes for room gently while answers are clean.
//! Tested against simulated sliding-window quotas: one sender follows a quota within a few
//! percent of refusals and of the time the quota needs; two senders sharing one use most of
//! it together, neither starving (growth is proportional to each sender's own rate, so their
//! shares are not equalized).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The factor a throttling answer applies to the rate.
pub(crate) const DECREASE: f64 = 0.8;
/// The factor the first throttling answer of an unlimited route applies to the rate the
/// provider accepted.
const FIRST_DECREASE: f64 = 0.9;
/// Growth per second while answers are clean, as a fraction of the rate at the last cut.
pub(crate) const INCREASE: f64 = 0.04;
/// Growth per second back up to the rate at the last cut, as a fraction of it.
const RECOVERY: f64 = 0.5;
/// Beyond the rate at the last cut, growth rises from nothing to [`INCREASE`] over this long
/// after the cut.
const PROBE_RAMP: Duration = Duration::from_secs(30);
/// The least growth per second (requests per second): a rate cut very low comes back in
/// seconds, not hours.
const MIN_INCREASE: f64 = 10.0;
/// ... but at most this fraction of the rate at the last cut per second: a low quota
/// measured over a long window is not overshot by far before its throttles show.
const MIN_INCREASE_SHARE: f64 = 0.1;
/// The shortest time between two cuts: a quota measured over a window stays exhausted for a
/// while after the rate is cut, and its throttles then are the same congestion event.
pub(crate) const MIN_CUT_INTERVAL: Duration = Duration::from_secs(1);
/// The first pause when throttles go on right after a cut (grows while they do).
const FIRST_PROBE_PAUSE: Duration = Duration::from_millis(100);
/// How much that pause grows while throttles go on.
const PROBE_PAUSE_GROWTH: f64 = 1.5;
/// The longest such pause.
const MAX_PROBE_PAUSE: Duration = Duration::from_secs(5);
/// The rate is never cut below this (requests per second).
const MIN_RATE: f64 = 1.0;
/// Requests the bucket may hold: this long at the current rate (at least one request).
const BURST: Duration = Duration::from_millis(50);
/// Width of one bucket of the meter of successful answers.
const METER_SLOT: Duration = Duration::from_millis(100);
/// How far back the meter remembers.
const METER_SPAN: Duration = Duration::from_secs(120);

/// The pacing and AIMD state of one route.
#[derive(Debug)]
pub(crate) struct RateControl {
    /// The explicit cap (requests per second).
    cap: Option<f64>,
    /// The learned rate; `None` until the provider first throttles.
    learned: Option<f64>,
    /// Requests the bucket holds.
    tokens: f64,
    refilled_at: Option<Instant>,
    /// No request before this (a `Retry-After`).
    paused_until: Option<Instant>,
    /// When the rate was last cut.
    cut_at: Option<Instant>,
    /// When the route last reacted to a throttle (a cut or a pause).
    reacted_at: Option<Instant>,
    /// The next pause while the quota stays exhausted after a cut.
    probe_pause: Duration,
    /// The rate just before the last cut.
    rate_at_cut: f64,
    /// The pacer held a request back since the rate last grew.
    limited: bool,
    grown_at: Option<Instant>,
    /// The first cut (from an unlimited start) waits for the quota to drain.
    first_drain: bool,
    /// Successful answers.
    delivered: Meter,
    /// Requests let through.
    sent: Meter,
}

impl RateControl {
    /// A route with no learned limit, paced only by `cap` (requests per second) if given.
    pub(crate) fn new(cap: Option<f64>) -> RateControl {
        RateControl {
            cap: cap.filter(|cap| *cap > 0.0),
            learned: None,
            tokens: 0.0,
            refilled_at: None,
            paused_until: None,
            cut_at: None,
            reacted_at: None,
            probe_pause: FIRST_PROBE_PAUSE,
            rate_at_cut: 0.0,
            limited: false,
            grown_at: None,
            first_drain: false,
            delivered: Meter::default(),
            sent: Meter::default(),
        }
    }

    /// The rate requests are paced at now (`None`: unlimited).
    pub(crate) fn rate(&self) -> Option<f64> {
        match (self.cap, self.learned) {
            (Some(cap), Some(learned)) => Some(cap.min(learned)),
            (cap, learned) => cap.or(learned),
        }
    }

    /// Takes the permit to send one request at `now`, or says when the next one comes.
    pub(crate) fn permit(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        let Some(rate) = self.rate() else {
            self.sent.count(now);
            return Ok(());
        };
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.sent.count(now);
            return Ok(());
        }
        self.limited = true;
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        Err(now + wait.max(Duration::from_micros(1)))
    }

    /// `Ok` when a permit is there at `now` (without taking it), else when the next one
    /// comes (the pacer is then what holds requests back).
    pub(crate) fn permit_ready(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        let Some(rate) = self.rate() else {
            return Ok(());
        };
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            return Ok(());
        }
        self.limited = true;
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        Err(now + wait.max(Duration::from_micros(1)))
    }

    /// A request was answered without throttling at `now`.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.delivered.count(now);
        if self.first_drain {
            self.drained(now);
        }
        self.probe_pause = FIRST_PROBE_PAUSE;
        let Some(learned) = self.learned else {
            return;
        };
        let since = self
            .grown_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if since < METER_SLOT {
            return;
        }
        self.grown_at = Some(now);
        if self.limited {
            self.limited = false;
            let secs = since.as_secs_f64();
            if learned < self.rate_at_cut {
                // Below the last known good rate: back to it fast.
                let step = RECOVERY * self.rate_at_cut * secs;
                self.learned = Some((learned + step).min(self.rate_at_cut));
            } else {
                let floor = MIN_INCREASE.min(MIN_INCREASE_SHARE * self.rate_at_cut);
                // Beyond it, probe gently at first (the quota was met there), faster as the
                // time since the cut grows.
                let ramp = self.cut_at.map_or(1.0, |cut| {
                    let since_cut = now.saturating_duration_since(cut);
                    (since_cut.as_secs_f64() / PROBE_RAMP.as_secs_f64()).min(1.0)
                });
                let step = (INCREASE * self.rate_at_cut).max(floor) * secs * ramp;
                self.learned = Some(learned + step);
            }
        }
    }

    /// A request sent at `sent_at` was throttled (`429`), with the provider's `Retry-After`.
    pub(crate) fn throttled(
        &mut self,
        sent_at: Instant,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        if let Some(wait) = retry_after {
            self.pause_until(now + wait);
        }
        if self.reacted_at.is_some_and(|at| sent_at < at) {
            // Sent before the last reaction: the same congestion event.
            return;
        }
        self.reacted_at = Some(now);
        // Until the quota exceeded by an unlimited start has drained, throttles are that event.
        if self.first_drain || self.cut_at.is_some_and(|cut| now < cut + MIN_CUT_INTERVAL) {
            // The rate was just cut and the quota is still exhausted: wait for it to drain
            // (a quota over a window frees up only as old requests leave it), not cut again.
            if retry_after.is_none() {
                let until = now + self.probe_pause;
                self.pause_until(until);
                self.probe_pause = self
                    .probe_pause
                    .mul_f64(PROBE_PAUSE_GROWTH)
                    .min(MAX_PROBE_PAUSE);
                // The pause does not fill the bucket: one request probes at its end, not a
                // burst that the exhausted quota would refuse whole.
                self.tokens = 0.0;
                self.refilled_at = self.paused_until.or(Some(until));
            }
            return;
        }
        // What the provider accepted lately bounds the rate to cut from: over the
        // `Retry-After` (the time the quota needs to free up) or since the first answer.
        let horizon = retry_after
            .unwrap_or(Duration::ZERO)
            .max(self.delivered.history(now));
        let accepted = self.delivered.rate(horizon, now);
        // Unlimited so far: the rate requests went out at over the last second.
        let current = self.rate().or_else(|| self.sent.rate(Duration::ZERO, now));
        let current = match (current, accepted) {
            (Some(current), Some(accepted)) => current.min(accepted),
            (current, accepted) => current.or(accepted).unwrap_or(MIN_RATE),
        };
        // Without a `Retry-After`, the first cut (from an unlimited start) is a guess until the
        // quota drains (see `drained`).
        self.first_drain = self.rate().is_none() && retry_after.is_none();
        // From an unlimited start, the rate the provider accepted is a measure of its quota
        // (over the `Retry-After` or until the quota drains), not a rate that overshot it.
        let factor = if self.rate().is_none() {
            FIRST_DECREASE
        } else {
            DECREASE
        };
        let learned = (current * factor).max(MIN_RATE);
        self.rate_at_cut = current;
        self.learned = Some(learned);
        self.cut_at = Some(now);
        self.grown_at = Some(now);
        self.limited = false;
        self.tokens = 0.0;
        self.refilled_at = Some(now);
    }

    /// A clean answer after the first cut of an unlimited start without `Retry-After`: once
    /// the quota has drained (the route paused for it, or the cut is old enough), what the
    /// provider accepted since the first answer is what its window allows, a better measure
    /// than the rate at the cut (taken when it had accepted a burst).
    fn drained(&mut self, now: Instant) {
        let paused = self.probe_pause > FIRST_PROBE_PAUSE;
        let old = self.cut_at.is_some_and(|cut| now >= cut + MIN_CUT_INTERVAL);
        if !paused && !old {
            return;
        }
        self.first_drain = false;
        let history = self.delivered.history(now);
        // The quota drained during the last pause: half of it, on average, was not needed.
        let last_pause = self.probe_pause.div_f64(PROBE_PAUSE_GROWTH);
        let window = history.saturating_sub(last_pause / 2);
        // Measured over the quota's window: answers from before the cut, when it filled up.
        let before_cut = self
            .cut_at
            .is_some_and(|cut| history > now.saturating_duration_since(cut));
        let accepted = self.delivered.rate(history, now).map(|rate| {
            let history = history.max(Duration::from_secs(1)).as_secs_f64();
            rate * history / window.max(Duration::from_secs(1)).as_secs_f64()
        });
        if let (true, true, Some(learned), Some(accepted)) =
            (paused, before_cut, self.learned, accepted)
        {
            self.learned = Some(learned.min(accepted).max(MIN_RATE));
            self.rate_at_cut = self.rate_at_cut.min(accepted);
        }
    }

    fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |at| at.max(until)));
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = self
            .refilled_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if self.refilled_at.is_none() {
            self.tokens = burst(rate);
        }
        self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(burst(rate));
        self.refilled_at = Some(now);
    }
}

/// Events counted per [`METER_SLOT`] over the last [`METER_SPAN`].
#[derive(Debug, Default)]
struct Meter {
    slots: VecDeque<(Instant, u32)>,
}

impl Meter {
    fn count(&mut self, now: Instant) {
        match self.slots.back_mut() {
            Some((start, count)) if now.saturating_duration_since(*start) < METER_SLOT => {
                *count = count.saturating_add(1);
            }
            _ => self.slots.push_back((now, 1)),
        }
        while let Some((start, _)) = self.slots.front() {
            if now.saturating_duration_since(*start) > METER_SPAN {
                self.slots.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long ago the oldest counted event happened.
    fn history(&self, now: Instant) -> Duration {
        self.slots.front().map_or(Duration::ZERO, |(start, _)| {
            now.saturating_duration_since(*start)
        })
    }

    /// Events per second over the last `horizon` (at least one second); `None` if none.
    fn rate(&self, horizon: Duration, now: Instant) -> Option<f64> {
        let horizon = horizon.clamp(Duration::from_secs(1), METER_SPAN);
        let count: u64 = self
            .slots
            .iter()
            .filter(|(start, _)| now.saturating_duration_since(*start) <= horizon)
            .map(|(_, count)| u64::from(*count))
            .sum();
        (count > 0).then(|| count as f64 / horizon.as_secs_f64())
    }
}

/// The most requests the bucket holds at `rate`.
fn burst(rate: f64) -> f64 {
    (rate * BURST.as_secs_f64()).max(1.0)
}

#[cfg(test)]
mod tests;
