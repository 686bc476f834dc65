//! Rate control for one provider route: how fast the route may send, learned from the
//! provider's throttling answers and bounded by an optional explicit cap.
//!
//! Providers limit senders by quotas they do not announce (FCM: messages per project per
//! minute, over a sliding window; APNs: a provider-wide rate), answering `429` beyond them.
//! Reacting per request (each `429` retried on its own) keeps the route above the quota and
//! turns most of the excess into refusals. Instead the route paces every request through a
//! token bucket whose rate is controlled by AIMD, the decrease measured from the quota:
//!
//! - **No limit until the provider asks for one.** A route starts unlimited (or at its cap).
//! - **Multiplicative decrease to a share of the measured quota.** While a quota refuses
//!   requests its window is full, so what the provider accepted over the last window is the
//!   quota's rate. A throttling answer (`429`, once per congestion event: throttles of
//!   requests sent before the last reaction belong to it) measures it (successful answers
//!   over the `Retry-After`, at least a second, since the route last resumed from a pause;
//!   at most the rate sent at) and sets the rate to [`DECREASE`] × it: near the quota but
//!   with room for the jitter of both ends (requests bunched by scheduling still fit). The
//!   first throttle of an unlimited route measures everything accepted so far (the window
//!   the start filled at once) over the `Retry-After`; without a `Retry-After` the route
//!   pauses while the window drains, one request probing at the end of each pause (a tenth
//!   of the time since the cut: the drain is found within a tenth of the window), and the
//!   first clean probe measures the quota as what was accepted since the first answer over
//!   that time. A `Retry-After` pauses the route until it passes. Throttles within
//!   [`MIN_CUT_INTERVAL`] of a cut (or before the first cut's quota drained) do not cut
//!   again: they pause the route the same way until the window drains. A pause does not
//!   fill the bucket: the route resumes at its rate, not with a burst.
//! - **Additive increase after a hold.** While answers are clean and the pacer is what holds
//!   requests back, the rate grows by up to [`INCREASE`] × the rate set at the cut per
//!   second (at least [`MIN_INCREASE`], or [`MIN_INCREASE_SHARE`] × that rate when lower),
//!   but only after [`PROBE_HOLD_WINDOWS`] quota windows (the `Retry-After`, or the window
//!   measured while draining, at least a second), ramped up over [`PROBE_RAMP`]: a probe
//!   beyond the quota costs a refusal and a pause of about a window, so the route probes at
//!   most about once per ten windows, and it still follows a quota that grows (or that a
//!   sender sharing it leaves).
//!
//! Why AIMD rather than a bucket sized from the quota: the quota is not announced, it can
//! change, and it is often shared (several push processes, other services of the same
//! project), so a fixed size would be wrong as often as right. The controller measures the
//! quota each time it is exceeded, runs just under it, and probes for room rarely.
//! Tested against simulated sliding-window quotas: one sender follows a quota within a few
//! percent of refusals and at 0.92-0.94 of its rate over a ten-window send; two senders
//! sharing one use most of it together, neither starving (growth is proportional to each
//! sender's own rate, so their shares are not equalized).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The share of the measured quota a throttled route is paced at.
pub(crate) const DECREASE: f64 = 0.93;
/// Growth per second while answers are clean, as a fraction of the rate set at the last cut.
pub(crate) const INCREASE: f64 = 0.04;
/// After a cut the rate holds this many times the quota's window (the `Retry-After`, or the
/// window measured while it drained; at least a second) before it grows: each probe beyond
/// the quota costs a pause of about that window.
const PROBE_HOLD_WINDOWS: u32 = 10;
/// Then growth rises from nothing to [`INCREASE`] over this long.
const PROBE_RAMP: Duration = Duration::from_secs(30);
/// The least growth per second (requests per second): a rate cut very low comes back in
/// seconds, not hours.
const MIN_INCREASE: f64 = 10.0;
/// ... but at most this fraction of the rate at the last cut per second: a low quota
/// measured over a long window is not overshot by far before its throttles show.
const MIN_INCREASE_SHARE: f64 = 0.1;
/// The rate grows at most this often.
const GROWTH_STEP: Duration = Duration::from_millis(100);
/// The shortest time between two cuts: a quota measured over a window stays exhausted for a
/// while after the rate is cut, and its throttles then are the same congestion event.
pub(crate) const MIN_CUT_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest pause while the quota drains (without `Retry-After`).
const FIRST_PROBE_PAUSE: Duration = Duration::from_millis(50);
/// While the quota drains, the pause before the next probe is this share of the time since
/// the cut: the drain is found within a tenth of the quota's window.
const PROBE_PAUSE_SHARE: f64 = 0.1;
/// The longest such pause.
const MAX_PROBE_PAUSE: Duration = Duration::from_secs(5);
/// The rate is never cut below this (requests per second).
const MIN_RATE: f64 = 1.0;
/// Requests the bucket may hold: this long at the current rate (at least one request).
const BURST: Duration = Duration::from_millis(50);
/// The shortest span a quota is measured over after a pause.
const MIN_MEASURE: Duration = Duration::from_millis(250);
/// Width of one bucket of the meter of successful answers.
const METER_SLOT: Duration = Duration::from_millis(20);
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
    /// No request before this (a `Retry-After`, or a pause while the quota drains).
    paused_until: Option<Instant>,
    /// When the last pause ended (the quota is measured after it).
    resumed_at: Option<Instant>,
    /// While the quota drains: the last pause, and whether its probe is out (no request
    /// until it is answered, or until the instant held).
    probe: Option<Probe>,
    /// When the rate was last cut.
    cut_at: Option<Instant>,
    /// When the route last reacted to a throttle (a cut or a pause).
    reacted_at: Option<Instant>,
    /// The rate set at the last cut.
    rate_at_cut: f64,
    /// How long after the last cut the rate holds before it grows.
    hold: Duration,
    /// The pacer held a request back since the rate last grew.
    limited: bool,
    grown_at: Option<Instant>,
    /// The first cut (from an unlimited start, without `Retry-After`) waits for the quota to
    /// drain, then measures it.
    first_drain: bool,
    /// Successful answers.
    delivered: Meter,
    /// Requests let through.
    sent: Meter,
}

/// A pause while the quota drains: one request probes at its end.
#[derive(Debug, Clone, Copy)]
struct Probe {
    pause: Duration,
    /// The probe went out: nothing more until it is answered, at most until then.
    out_until: Option<Instant>,
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
            resumed_at: None,
            probe: None,
            cut_at: None,
            reacted_at: None,
            rate_at_cut: 0.0,
            hold: Duration::ZERO,
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
        self.permit_ready(now)?;
        if self.rate().is_some() {
            self.tokens -= 1.0;
        }
        if let Some(probe) = self.probe.as_mut() {
            probe.out_until = Some(now + probe.pause.max(MIN_CUT_INTERVAL));
        }
        self.sent.count(now);
        Ok(())
    }

    /// `Ok` when a permit is there at `now` (without taking it), else when the next one
    /// comes (the pacer is then what holds requests back).
    pub(crate) fn permit_ready(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
            self.resumed_at = Some(until);
        }
        if let Some(until) = self.probe.and_then(|probe| probe.out_until)
            && now < until
        {
            return Err(until);
        }
        let Some(rate) = self.rate() else {
            return Ok(());
        };
        self.refill(rate, now);
        if self.tokens >= 1.0 || self.probe.is_some() {
            self.tokens = self.tokens.max(1.0);
            return Ok(());
        }
        self.limited = true;
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        Err(now + wait.max(Duration::from_micros(1)))
    }

    /// A request sent at `sent_at` was answered without throttling at `now`.
    pub(crate) fn answered(&mut self, sent_at: Instant, now: Instant) {
        self.delivered.count(now);
        // A probe's answer (not that of a request sent before the quota ran out) ends the
        // drain.
        if self.probe.is_some() && self.reacted_at.is_some_and(|at| sent_at >= at) {
            if self.first_drain {
                self.drained(now);
            }
            self.probe = None;
        }
        let Some(learned) = self.learned else {
            return;
        };
        let since = self
            .grown_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if since < GROWTH_STEP {
            return;
        }
        self.grown_at = Some(now);
        if self.limited {
            self.limited = false;
            let floor = MIN_INCREASE.min(MIN_INCREASE_SHARE * self.rate_at_cut);
            // Probe gently at first (the quota was met near this rate), faster as the time
            // since the cut grows.
            let ramp = self.cut_at.map_or(1.0, |cut| {
                let since_cut = now.saturating_duration_since(cut + self.hold);
                (since_cut.as_secs_f64() / PROBE_RAMP.as_secs_f64()).min(1.0)
            });
            let step = (INCREASE * self.rate_at_cut).max(floor) * since.as_secs_f64() * ramp;
            self.learned = Some(learned + step);
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
        if self.first_drain || self.cut_at.is_some_and(|cut| now < cut + MIN_CUT_INTERVAL) {
            // The rate was just cut and the quota is still exhausted: wait for it to drain
            // (a quota over a window frees up only as old requests leave it), not cut again.
            if retry_after.is_none() {
                self.probe_pause(now);
            }
            return;
        }
        let unlimited = self.rate().is_none();
        // What the provider accepted while congested is its quota: measured over the
        // `Retry-After` (the time the quota needs to free up), at least a second; from an
        // unlimited start over everything it accepted (the window it filled at once).
        let accepted = if unlimited {
            let horizon = retry_after
                .unwrap_or(Duration::ZERO)
                .max(self.delivered.history(now));
            self.delivered.rate(horizon, now)
        } else {
            let horizon = retry_after.unwrap_or(Duration::ZERO).max(MIN_CUT_INTERVAL);
            // Since the last pause ended (a pause is no measure of the quota), at least
            // `MIN_MEASURE` back.
            let from = match (now.checked_sub(horizon), self.resumed_at) {
                (Some(start), Some(resumed)) => Some(start.max(resumed)),
                (start, resumed) => start.or(resumed),
            };
            let from = from.map(|from| now.checked_sub(MIN_MEASURE).map_or(from, |m| from.min(m)));
            from.and_then(|from| self.delivered.rate_since(from, now))
        };
        // Unlimited so far: the rate requests went out at over the last second.
        let current = self.rate().or_else(|| self.sent.rate(Duration::ZERO, now));
        let quota = match (current, accepted) {
            (Some(current), Some(accepted)) => current.min(accepted),
            (current, accepted) => current.or(accepted).unwrap_or(MIN_RATE),
        };
        let learned = (quota * DECREASE).max(MIN_RATE);
        self.rate_at_cut = learned;
        self.learned = Some(learned);
        self.cut_at = Some(now);
        self.hold = retry_after
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1))
            * PROBE_HOLD_WINDOWS;
        self.grown_at = Some(now);
        self.limited = false;
        self.tokens = 0.0;
        self.refilled_at = Some(self.paused_until.map_or(now, |until| until.max(now)));
        // Without a `Retry-After`, the first cut (from an unlimited start, which filled the
        // quota's window at once) waits for the window to drain, probing, then measures it
        // (see `drained`).
        self.first_drain = unlimited && retry_after.is_none();
        if self.first_drain {
            self.probe_pause(now);
        }
    }

    /// Pauses until the next probe while the quota drains.
    fn probe_pause(&mut self, now: Instant) {
        let since_cut = self
            .cut_at
            .map_or(Duration::ZERO, |cut| now.saturating_duration_since(cut));
        let pause = since_cut
            .mul_f64(PROBE_PAUSE_SHARE)
            .clamp(FIRST_PROBE_PAUSE, MAX_PROBE_PAUSE);
        self.probe = Some(Probe {
            pause,
            out_until: None,
        });
        self.pause_until(now + pause);
    }

    /// The first clean answer after the first cut of an unlimited start without
    /// `Retry-After`, once the route paused for the quota to drain: what the provider
    /// accepted since its first answer is what its window allows (the window ended during
    /// the last pause, in its middle on average).
    fn drained(&mut self, now: Instant) {
        self.first_drain = false;
        let history = self.delivered.history(now);
        let last_pause = self.probe.map_or(FIRST_PROBE_PAUSE, |probe| probe.pause);
        let window = history
            .saturating_sub(last_pause / 2)
            .max(Duration::from_secs(1));
        let accepted = self.delivered.rate(history, now).map(|rate| {
            rate * history.max(Duration::from_secs(1)).as_secs_f64() / window.as_secs_f64()
        });
        if let (Some(learned), Some(accepted)) = (self.learned, accepted) {
            let learned = learned.min(accepted * DECREASE).max(MIN_RATE);
            self.learned = Some(learned);
            self.rate_at_cut = learned;
            self.cut_at = Some(now);
            self.hold = window * PROBE_HOLD_WINDOWS;
        }
    }

    /// Pauses the route until `until` (or later if already paused so). The pause does not
    /// fill the bucket: the route resumes at its rate, not with a burst the quota (which the
    /// pause let drain only as fast as the rate would have used it) may refuse.
    fn pause_until(&mut self, until: Instant) {
        let until = self.paused_until.map_or(until, |at| at.max(until));
        self.paused_until = Some(until);
        self.tokens = 0.0;
        self.refilled_at = Some(until);
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

    /// Events per second since `from` (counted from the first slot after it); `None` if
    /// none.
    fn rate_since(&self, from: Instant, now: Instant) -> Option<f64> {
        let mut slots = self.slots.iter().filter(|(start, _)| *start >= from);
        let first = slots.next()?;
        let count: u64 = std::iter::once(first)
            .chain(slots)
            .map(|(_, count)| u64::from(*count))
            .sum();
        let span = now.saturating_duration_since(from).max(METER_SLOT);
        Some(count as f64 / span.as_secs_f64())
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
