//! [`Scaling`]: whether the automatic pool opens one more connection.
//!
//! Another connection raises throughput only while the connections are bound by the round
//! trip (every stream waits for the network or the server's own latency). Bound by CPU, by
//! the server's capacity or by the link, it adds cost and no throughput. So the pool
//! measures the rate of answers with the connections it has (twice, keeping the better: a
//! first measurement may fall in a busy moment of the client, such as the start of a large
//! session), opens one more only once it knows that rate, measures again, and stops growing
//! when the newest connection did not raise the rate by at least half an average
//! connection's share. That newest connection is
//! then parked (the pool gives it no new streams and closes it once idle, rather than cutting
//! its streams); the limit holds until a connection ends (idle, GOAWAY, failure), when the
//! pool may grow again.

use std::time::{Duration, Instant};

/// One more connection keeps the pool growing when it raised the rate of answers by at least
/// 1/`GAIN_DIVISOR` of an average connection's share: a connection bound by the round trip
/// adds a whole share, one that only adds load adds nothing; half is clear of measurement
/// noise on both sides (a CPU shared with other processes makes rates vary by a quarter).
const GAIN_DIVISOR: u128 = 2;
/// A measurement skips as many answers as streams were in flight when it started (they were
/// sent before), then counts `TURNS` times as many (each stream turns over that often).
const TURNS: u64 = 4;

/// The rate of answers with `conns` connections: `answers` in `elapsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    conns: usize,
    answers: u64,
    elapsed: Duration,
}

impl Rate {
    /// True when `self` is at least as fast as `other`.
    fn at_least(&self, other: &Rate) -> bool {
        u128::from(self.answers) * other.elapsed.as_nanos()
            >= u128::from(other.answers) * self.elapsed.as_nanos()
    }

    /// True when `self`, measured with one connection more than `before`, is at least
    /// 1 + 1/(`GAIN_DIVISOR` × `before.conns`) times `before` (exact integer arithmetic).
    fn gained_over(&self, before: &Rate) -> bool {
        let shares = before.conns as u128 * GAIN_DIVISOR;
        let now = u128::from(self.answers) * before.elapsed.as_nanos() * shares;
        let then = u128::from(before.answers) * self.elapsed.as_nanos() * (shares + 1);
        now >= then
    }
}

/// A measurement under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// The open connections it measures.
    conns: usize,
    /// The answer count at which the warm-up ends.
    warm_until: u64,
    /// The instant and answer count at the end of the warm-up.
    start: Option<(Instant, u64)>,
    /// Answers to count after the warm-up.
    answers: u64,
}

/// What the pool looks like after an input, for [`Scaling::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Connections open (none dialing or draining: otherwise the pool is not `steady`).
    pub(crate) open: usize,
    /// Connections open, being dialed, or draining.
    pub(crate) live: usize,
    /// Every connection is open, none dialing or draining.
    pub(crate) steady: bool,
    /// Requests wait for a stream.
    pub(crate) waiting: bool,
    /// No stream is free.
    pub(crate) busy: bool,
    /// Streams in flight.
    pub(crate) in_flight: u32,
}

/// The automatic pool's measurements and its decision to grow.
#[derive(Debug, Default)]
pub(crate) struct Scaling {
    /// Answers on every connection since creation.
    answered: u64,
    window: Option<Window>,
    /// The first of the two measurements with the connections open now.
    first: Option<Rate>,
    /// The rate with the connections open now (the better of two measurements).
    measured: Option<Rate>,
    /// The rate measured before the last scale-out.
    before_dial: Option<Rate>,
    /// No scale-out while this many connections or more are live.
    ceiling: Option<usize>,
    /// The newest connection did not pay off: the pool parks it.
    park: bool,
}

impl Scaling {
    /// A response came at `now`.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.answered += 1;
        let Some(window) = &mut self.window else {
            return;
        };
        if self.answered < window.warm_until {
            return;
        }
        let Some((start, from)) = window.start else {
            window.start = Some((now, self.answered));
            return;
        };
        if self.answered - from < window.answers {
            return;
        }
        let rate = Rate {
            conns: window.conns,
            answers: self.answered - from,
            elapsed: now.saturating_duration_since(start),
        };
        self.window = None;
        if let Some(before) = self.before_dial.take()
            && before.conns + 1 == rate.conns
            && !rate.gained_over(&before)
        {
            self.ceiling = Some(rate.conns);
            self.park = true;
            self.first = None;
            return;
        }
        match self.first.take() {
            Some(first) if first.conns == rate.conns => {
                self.measured = Some(if rate.at_least(&first) { rate } else { first });
            }
            _ => self.first = Some(rate),
        }
    }

    /// Follows the pool's load: a measurement runs while the pool is steady, requests wait
    /// and (to start) every stream is busy; it is dropped when any of that changes.
    pub(crate) fn update(&mut self, load: Load) {
        if self.ceiling.is_some_and(|ceiling| load.live < ceiling) {
            self.ceiling = None;
        }
        if !load.waiting && load.in_flight == 0 {
            // Idle: the next burst is measured afresh.
            self.first = None;
            self.measured = None;
            self.before_dial = None;
        }
        if !(load.steady && load.waiting)
            || self.window.is_some_and(|window| window.conns != load.open)
        {
            self.window = None;
        }
        let unmeasured = self.measured.is_none_or(|rate| rate.conns != load.open);
        if self.window.is_none()
            && load.steady
            && load.waiting
            && load.busy
            && load.in_flight > 0
            && unmeasured
        {
            let in_flight = u64::from(load.in_flight);
            self.window = Some(Window {
                conns: load.open,
                warm_until: self.answered + in_flight,
                start: None,
                answers: TURNS * in_flight,
            });
        }
    }

    /// True when one more connection may be opened beyond the minimum: the rate with the
    /// `open` connections is known, and the pool has not stopped growing.
    pub(crate) fn may_grow(&self, open: usize) -> bool {
        self.ceiling.is_none_or(|ceiling| open < ceiling)
            && self.measured.is_some_and(|rate| rate.conns == open)
    }

    /// True once after the newest connection was found not to pay off.
    pub(crate) fn take_park(&mut self) -> bool {
        std::mem::take(&mut self.park)
    }

    /// One more connection is being dialed beyond the minimum, with `open` open.
    pub(crate) fn grew(&mut self, open: usize) {
        self.before_dial = self.measured.filter(|rate| rate.conns == open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn load(open: usize, in_flight: u32) -> Load {
        Load {
            open,
            live: open,
            steady: true,
            waiting: true,
            busy: true,
            in_flight,
        }
    }

    /// Feeds enough answers for one measurement, one every `per_answer`, while `open`
    /// connections with `streams` in flight stay busy.
    fn run_once(
        scaling: &mut Scaling,
        open: usize,
        streams: u32,
        per_answer: Duration,
        now: &mut Instant,
    ) {
        for _ in 0..u64::from(streams) * (1 + TURNS) + 1 {
            scaling.update(load(open, streams));
            *now += per_answer;
            scaling.answered(*now);
        }
    }

    /// Feeds enough answers for two measurements, one every `per_answer`, while `open`
    /// connections with `streams` in flight stay busy.
    fn run(
        scaling: &mut Scaling,
        open: usize,
        streams: u32,
        per_answer: Duration,
        now: &mut Instant,
    ) {
        for _ in 0..2 * (u64::from(streams) * (1 + TURNS) + 1) {
            scaling.update(load(open, streams));
            *now += per_answer;
            scaling.answered(*now);
        }
    }

    #[test]
    fn grows_while_each_connection_raises_the_rate() {
        let mut now = Instant::now();
        let mut scaling = Scaling::default();
        assert!(!scaling.may_grow(1), "the rate with one is not known yet");
        // Bound by the round trip: each connection's 10 streams answer every 10 ms.
        for open in 1..=4 {
            let streams = 10 * open as u32;
            run(&mut scaling, open, streams, MS * 10 / streams, &mut now);
            assert!(scaling.may_grow(open), "{open} connections measured");
            scaling.grew(open);
        }
        assert_eq!(scaling.ceiling, None);
    }

    #[test]
    fn stops_when_one_more_connection_adds_no_rate_until_one_closes() {
        let mut now = Instant::now();
        let mut scaling = Scaling::default();
        // Bound by CPU: one answer every millisecond, however many connections.
        run(&mut scaling, 1, 10, MS, &mut now);
        assert!(scaling.may_grow(1));
        scaling.grew(1);
        run(&mut scaling, 2, 20, MS, &mut now);
        assert!(!scaling.may_grow(2), "the second one did not pay off");
        assert_eq!(scaling.ceiling, Some(2));
        assert!(scaling.take_park() && !scaling.take_park(), "parked once");
        // One of them closes: the pool may grow again once it measured the one left.
        scaling.update(Load {
            live: 1,
            ..load(1, 10)
        });
        assert_eq!(scaling.ceiling, None);
        run(&mut scaling, 1, 10, MS, &mut now);
        assert!(scaling.may_grow(1));
    }

    #[test]
    fn the_better_of_two_measurements_is_the_reference() {
        let mut now = Instant::now();
        let mut scaling = Scaling::default();
        // A busy start: the first measurement is slow, the second at full speed.
        run_once(&mut scaling, 1, 10, MS * 2, &mut now);
        assert!(!scaling.may_grow(1), "one measurement is not enough");
        run_once(&mut scaling, 1, 10, MS, &mut now);
        assert!(scaling.may_grow(1));
        scaling.grew(1);
        // Two connections at the full speed of one: twice the slow start, no gain.
        run_once(&mut scaling, 2, 20, MS, &mut now);
        assert!(scaling.take_park());
    }

    #[test]
    fn no_measurement_while_the_pool_changes_or_nothing_waits() {
        let mut now = Instant::now();
        let mut scaling = Scaling::default();
        for unsteady in [
            Load {
                steady: false,
                ..load(1, 10)
            },
            Load {
                waiting: false,
                ..load(1, 10)
            },
        ] {
            for _ in 0..100 {
                scaling.update(unsteady);
                now += MS;
                scaling.answered(now);
            }
            assert!(!scaling.may_grow(1));
        }
        // Idle: what was measured is forgotten.
        run(&mut scaling, 1, 10, MS, &mut now);
        assert!(scaling.may_grow(1));
        scaling.update(Load {
            waiting: false,
            in_flight: 0,
            ..load(1, 0)
        });
        assert!(!scaling.may_grow(1));
    }

    #[test]
    fn the_gain_needed_shrinks_with_the_connections() {
        let ms = |n| Duration::from_millis(n);
        let rate = |conns, answers| Rate {
            conns,
            answers,
            elapsed: ms(1000),
        };
        // From 1 to 2: at least 1.5 times; from 4 to 5: at least 1.125 times.
        assert!(rate(2, 150).gained_over(&rate(1, 100)));
        assert!(!rate(2, 149).gained_over(&rate(1, 100)));
        assert!(rate(5, 11_250).gained_over(&rate(4, 10_000)));
        assert!(!rate(5, 11_240).gained_over(&rate(4, 10_000)));
    }
}
