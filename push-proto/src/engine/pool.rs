//! [`Pool`]: the HTTP/2 connection policy of one route, as a sans-IO state machine.

use std::time::Instant;

use super::action::{ConnId, StreamEnd};
use super::config::PoolConfig;
use super::scaling::{Load, Scaling};
use crate::Backoff;

/// A connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Being dialed.
    Dialing,
    /// Open, allowing `limit` streams (already capped by `max_streams_per_connection`).
    Open { limit: u32 },
    /// Open, but taking no new streams: opening it did not raise the rate of answers. Closed
    /// once idle for `idle_timeout`; open again when another connection ends.
    Parked { limit: u32 },
    /// The server sent GOAWAY: no new streams.
    Draining,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    state: State,
    in_flight: u32,
    /// Streams answered with a response on this connection.
    answered: u64,
    /// It refused a stream (REFUSED_STREAM) since it last answered one: new streams go to
    /// other connections first, so a resend does not bounce off a server that is busy or
    /// closing.
    refusing: bool,
    /// Since when nothing is in flight.
    idle_since: Instant,
}

/// Why the requests waiting for a connection cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// Dialing failed too often in a row (or a fatal error): the last reason.
    Unreachable(String),
    /// Every open connection allowed 0 streams for the stall timeout.
    Stalled,
}

/// The connections of one route and the rules that govern them:
/// - connections are dialed when requests wait and no stream is free: up to
///   `min_connections` at once, then one more at a time while every stream of the open ones is
///   busy, up to `max_connections`, as long as each one raised the rate of answers (see
///   [`Scaling`]: measured with the open connections before each dial, and growth stops when
///   the newest one did not pay off, and that one is parked: it takes no new streams, and is
///   closed once idle or used again when another connection ends); never towards a
///   connection that allows 0 streams (that is a pause, not load);
/// - a failed dial, and a connection that closes without answering one stream (GOAWAY(0),
///   every stream refused), back off exponentially; after `max_failed_dials` in a row, or at
///   once on a fatal error, the waiting requests are given up;
/// - while every open connection allows 0 streams and requests wait, a stall timer runs; when
///   it fires, the waiting requests are given up;
/// - a connection the server sent GOAWAY on, or one that could not open a stream, takes no
///   new streams; extra idle connections are closed after `idle_timeout`;
/// - a connection that refused a stream is picked last until it answers one again.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    conns: Vec<Conn>,
    next_conn: u64,
    failed_dials: u32,
    backoff: Backoff,
    dial_at: Option<Instant>,
    stalled_since: Option<Instant>,
    give_up: Option<GiveUp>,
    dials: u64,
    scaling: Scaling,
}

impl Pool {
    /// No connections yet.
    pub fn new(config: PoolConfig, seed: u64) -> Self {
        Pool {
            backoff: Backoff::new(config.initial_dial_backoff, config.max_dial_backoff, seed),
            config,
            conns: Vec::new(),
            next_conn: 0,
            failed_dials: 0,
            dial_at: None,
            stalled_since: None,
            give_up: None,
            dials: 0,
            scaling: Scaling::default(),
        }
    }

    fn find(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|conn| conn.id == id)
    }

    fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let index = self.conns.iter().position(|conn| conn.id == id)?;
        Some(self.conns.swap_remove(index))
    }

    /// Streams free on open connections.
    pub fn free_streams(&self) -> u32 {
        self.conns
            .iter()
            .map(|conn| match conn.state {
                State::Open { limit } => limit.saturating_sub(conn.in_flight),
                _ => 0,
            })
            .fold(0, u32::saturating_add)
    }

    /// Streams in flight on all connections.
    pub fn in_flight(&self) -> u32 {
        self.conns.iter().map(|conn| conn.in_flight).sum()
    }

    /// Connections open or being dialed (not draining).
    pub fn live(&self) -> usize {
        self.conns
            .iter()
            .filter(|conn| conn.state != State::Draining)
            .count()
    }

    /// Connections dialed since creation.
    pub fn dials(&self) -> u64 {
        self.dials
    }

    /// The next connection to dial, when `waiting` requests wait and the rules allow one now.
    pub fn poll_dial(&mut self, now: Instant, waiting: usize) -> Option<ConnId> {
        if waiting == 0 || self.dial_at.is_some_and(|at| now < at) {
            return None;
        }
        let live = self.live();
        let dialing = self.conns.iter().any(|conn| conn.state == State::Dialing);
        let paused = self
            .conns
            .iter()
            .any(|conn| conn.state == State::Open { limit: 0 });
        let below_min = live < self.config.min_connections as usize;
        let grow = !below_min
            && !dialing
            && !paused
            && self.free_streams() == 0
            && live < self.config.max_connections as usize
            && self.scaling.may_grow(live);
        if !(below_min || grow) {
            return None;
        }
        if grow {
            self.scaling.grew(live);
        }
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.dials += 1;
        self.conns.push(Conn {
            id,
            state: State::Dialing,
            in_flight: 0,
            answered: 0,
            refusing: false,
            idle_since: now,
        });
        Some(id)
    }

    /// Connection `id` is open with `max_streams`.
    pub fn handle_connected(&mut self, id: ConnId, max_streams: u32, now: Instant) {
        let cap = self.config.max_streams_per_connection;
        if let Some(conn) = self.find(id) {
            conn.state = State::Open {
                limit: max_streams.min(cap),
            };
            conn.idle_since = now;
        }
    }

    /// The stream limit of `id` changed.
    pub fn handle_max_streams(&mut self, id: ConnId, max_streams: u32) {
        let cap = self.config.max_streams_per_connection;
        if let Some(Conn {
            state: State::Open { limit } | State::Parked { limit },
            ..
        }) = self.find(id)
        {
            *limit = max_streams.min(cap);
        }
    }

    /// Dialing `id` failed; `fatal` gives up at once.
    pub fn handle_dial_failed(&mut self, id: ConnId, reason: &str, fatal: bool, now: Instant) {
        if self.remove(id).is_some() {
            self.failure(reason, fatal, now);
        }
    }

    /// The server sent GOAWAY on `id`.
    pub fn handle_goaway(&mut self, id: ConnId) {
        if let Some(conn) = self.find(id) {
            conn.state = State::Draining;
            self.unpark();
        }
    }

    /// Connection `id` ended; one that never answered a stream counts as a failed dial.
    pub fn handle_closed(&mut self, id: ConnId, now: Instant) {
        let closed = self.remove(id);
        if closed.is_some() {
            self.unpark();
        }
        if closed.is_some_and(|conn| conn.answered == 0) {
            self.failure(
                "the connection closed before answering any request",
                false,
                now,
            );
        }
    }

    fn failure(&mut self, reason: &str, fatal: bool, now: Instant) {
        self.failed_dials += 1;
        let delay = self.backoff.delay(self.failed_dials - 1);
        self.dial_at = now.checked_add(delay);
        if fatal || self.failed_dials >= self.config.max_failed_dials {
            self.failed_dials = 0;
            self.give_up = Some(GiveUp::Unreachable(reason.to_owned()));
        }
    }

    /// A stream on `id` ended without a response (after [`release`](Self::release)): a
    /// stream that could not be opened means the connection takes no new ones (the server
    /// is going away, or the connection broke before saying so); a refused one makes it the
    /// last choice until it answers again.
    pub fn handle_stream_end(&mut self, id: ConnId, end: &StreamEnd) {
        let Some(conn) = self.find(id) else {
            return;
        };
        match end {
            StreamEnd::NotSent if conn.state != State::Draining => self.handle_goaway(id),
            StreamEnd::Refused => conn.refusing = true,
            _ => {}
        }
    }

    /// The least busy open connection with a free stream (one that refused a stream only
    /// when no other has room), counting one more stream on it.
    pub fn pick(&mut self) -> Option<ConnId> {
        let conn = self
            .conns
            .iter_mut()
            .filter(|conn| matches!(conn.state, State::Open { limit } if conn.in_flight < limit))
            .min_by_key(|conn| (conn.refusing, conn.in_flight))?;
        conn.in_flight += 1;
        Some(conn.id)
    }

    /// A stream on `id` ended; `answered` when it got a response.
    pub fn release(&mut self, id: ConnId, answered: bool, now: Instant) {
        if answered {
            self.failed_dials = 0;
            self.dial_at = None;
            self.scaling.answered(now);
            if self.scaling.take_park() {
                self.park_newest();
            }
        }
        if let Some(conn) = self.find(id) {
            conn.in_flight = conn.in_flight.saturating_sub(1);
            conn.answered += u64::from(answered);
            conn.refusing &= !answered;
            if conn.in_flight == 0 {
                conn.idle_since = now;
            }
        }
    }

    /// Parks the newest open connection (the one whose opening did not pay off), unless only
    /// `min_connections` are open.
    fn park_newest(&mut self) {
        let min = self.config.min_connections as usize;
        let open = self.conns.iter().filter(|conn| is_open(conn.state));
        if open.count() <= min {
            return;
        }
        let newest = self
            .conns
            .iter_mut()
            .filter(|conn| is_open(conn.state))
            .max_by_key(|conn| conn.id);
        if let Some(conn) = newest
            && let State::Open { limit } = conn.state
        {
            conn.state = State::Parked { limit };
        }
    }

    /// Another connection ended (or none open allows a stream): parked ones are used again.
    fn unpark(&mut self) {
        for conn in &mut self.conns {
            if let State::Parked { limit } = conn.state {
                conn.state = State::Open { limit };
            }
        }
    }

    /// True when `id` is a connection of the pool (dialing, open, parked or draining).
    pub fn contains(&self, id: ConnId) -> bool {
        self.conns.iter().any(|conn| conn.id == id)
    }

    /// Updates the timers: a dial backoff that has passed is forgotten (it must not stay a
    /// deadline in the past), the stall timer runs while `waiting` requests wait for a stream
    /// and every open connection allows 0.
    pub fn update(&mut self, now: Instant, waiting: usize) {
        if self.dial_at.is_some_and(|at| at <= now) {
            self.dial_at = None;
        }
        let usable = self
            .conns
            .iter()
            .any(|conn| matches!(conn.state, State::Open { limit } if limit > 0));
        if !usable {
            self.unpark();
        }
        let mut open = self.conns.iter().filter_map(|conn| match conn.state {
            State::Open { limit } => Some(limit),
            _ => None,
        });
        // Runs after every input and action: no allocation, the cheap tests first.
        let stalled = waiting > 0
            && open.next() == Some(0)
            && open.all(|limit| limit == 0)
            && self.in_flight() == 0;
        self.scaling.update(self.load(waiting));
        match (stalled, self.stalled_since) {
            (false, _) => self.stalled_since = None,
            (true, None) => self.stalled_since = Some(now),
            (true, Some(since)) => {
                if now.saturating_duration_since(since) >= self.config.stall_timeout {
                    self.stalled_since = None;
                    self.give_up = Some(GiveUp::Stalled);
                }
            }
        }
    }

    /// What [`Scaling`] needs to know of the pool.
    fn load(&self, waiting: usize) -> Load {
        let open = self
            .conns
            .iter()
            .filter(|conn| matches!(conn.state, State::Open { .. }))
            .count();
        Load {
            open,
            live: self.live(),
            steady: open == self.conns.len(),
            waiting: waiting > 0,
            busy: self.free_streams() == 0,
            in_flight: self.in_flight(),
        }
    }

    /// Takes the reason the waiting requests must fail, when the pool gave up.
    pub(crate) fn take_give_up(&mut self) -> Option<GiveUp> {
        self.give_up.take()
    }

    /// The next connection to close: an extra one idle for `idle_timeout`, or a draining one
    /// with nothing in flight (one that never answered a stream counts as a failed dial, as
    /// it would had the transport reported it closed first).
    pub fn poll_close(&mut self, now: Instant) -> Option<ConnId> {
        let min = self.config.min_connections as usize;
        let idle = self.config.idle_timeout;
        let live = self.live();
        let index = self.conns.iter().position(|conn| match conn.state {
            State::Draining => conn.in_flight == 0,
            State::Open { .. } | State::Parked { .. } => {
                live > min
                    && conn.in_flight == 0
                    && now.saturating_duration_since(conn.idle_since) >= idle
            }
            State::Dialing => false,
        })?;
        let conn = self.conns.swap_remove(index);
        if conn.state == State::Draining && conn.answered == 0 {
            self.failure(
                "the server sent GOAWAY before answering any request",
                false,
                now,
            );
        }
        Some(conn.id)
    }

    /// When the pool's state changes by itself: the end of the dial backoff (while requests
    /// wait), the stall timeout, an idle timeout.
    pub fn poll_timeout(&self, waiting: usize) -> Option<Instant> {
        let dial = self.dial_at.filter(|_| waiting > 0);
        let stall = self
            .stalled_since
            .and_then(|since| since.checked_add(self.config.stall_timeout));
        let live = self.live();
        let idle = self
            .conns
            .iter()
            .filter(|conn| {
                live > self.config.min_connections as usize
                    && conn.in_flight == 0
                    && matches!(conn.state, State::Open { .. } | State::Parked { .. })
            })
            .filter_map(|conn| conn.idle_since.checked_add(self.config.idle_timeout))
            .min();
        [dial, stall, idle].into_iter().flatten().min()
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }
}

/// Open and taking new streams (possibly none, while its limit is 0).
fn is_open(state: State) -> bool {
    matches!(state, State::Open { .. })
}

#[cfg(test)]
mod tests;
