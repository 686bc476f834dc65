//! [`Sender`]: the generic request/response state machine every HTTP provider runs on.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use super::action::{Action, ConnId, Input, RequestId, StreamEnd};
use super::config::{Config, ConfigError};
use super::credential::{Credential, CredentialFailure};
use super::in_flight::InFlightTable;
use super::pacer::Pacer;
use super::pool::{GiveUp, Pool};
use super::protocol::Protocol;
use super::report::{Event, Report, Stats};
use super::verdict::Answers;
use crate::sending::{Outbox, RetryQueue};
use crate::{Backoff, DeviceError, Full};
use batching::with_batch;
use exchange::Exchanges;
pub use exchange::{ExchangeFailure, ExchangeId, Exchanged};
use fate::Fate;

mod batching;
mod exchange;
mod fate;

/// The outbox of a sender: reports, events, and the last client-wide error's kind.
type SenderOutbox<P, C, T> =
    Outbox<Report<<P as Protocol>::Token, T>, Event<<C as Credential>::Event>, (u16, String)>;

/// What `queue` hands back when the sender is full.
type Rejected<P, T> = Full<(<P as Protocol>::Token, <P as Protocol>::Message, T)>;

/// One queued notification.
struct Entry<P: Protocol, T> {
    token: P::Token,
    message: P::Message,
    meta: P::Meta,
    tag: T,
    attempts: u32,
    free_resends: u32,
    /// Sent again once already after the credential was refused.
    reauthenticated: bool,
    /// When it was queued: no retry is scheduled past its time to live nor past the retry
    /// deadline, both counted from here (computed when a retry is due, rarely: an instant
    /// instead of two optional ones per queued notification).
    queued_at: Instant,
    /// Attempts that ended without a response.
    unanswered: u32,
    /// Until when it may wait for more notifications to share its request (a batching
    /// protocol's linger; cleared once it was sent, flushed or waited long enough).
    linger_until: Option<Instant>,
    /// The status of the last response.
    last_status: Option<u16>,
    /// What went wrong last; out of line, as most notifications never fail (a smaller entry
    /// is less memory per queued notification and less to move per request).
    failure: Option<Box<LastFailure>>,
}

/// The last error of a notification and the provider's reason with it.
#[derive(Default)]
struct LastFailure {
    error: String,
    reason: Option<String>,
}

impl<P: Protocol, T> Entry<P, T> {
    fn last_error(&self) -> &str {
        self.failure.as_ref().map_or("", |failure| &failure.error)
    }

    fn set_last_error(&mut self, error: String) {
        self.failure.get_or_insert_default().error = error;
    }

    fn set_last_reason(&mut self, reason: Option<String>) {
        match (&mut self.failure, reason) {
            (Some(failure), reason) => failure.reason = reason,
            (None, None) => {}
            (None, reason) => {
                self.failure = Some(Box::new(LastFailure {
                    error: String::new(),
                    reason,
                }))
            }
        }
    }
}

/// One request handed out: the notification it carries, or the first of its batch and the
/// others (empty, without allocating, for a request per notification).
struct InFlight<P: Protocol, T> {
    entry: Entry<P, T>,
    rest: Vec<Entry<P, T>>,
    conn: ConnId,
    /// The credential generation it was sent with.
    generation: u64,
    /// When it was handed out.
    sent_at: Instant,
}

/// The engine: turns queued notifications into requests on the route's connections, and
/// every answer, stream end and connection event into one [`Report`] per notification.
///
/// # Driving it
/// 1. [`queue`](Self::queue) notifications; on [`Full`], drain the outputs and offer it again.
///    With a batching protocol, [`flush`](Self::flush) when no more are coming for now.
/// 2. After every input, drain [`poll_action`](Self::poll_action) until `None` and perform each
///    [`Action`]; report what happens with [`handle`](Self::handle).
/// 3. Drain [`poll_outcome`](Self::poll_outcome) and [`poll_event`](Self::poll_event).
/// 4. Wake up at [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), and go to 2.
///
/// # Rules
/// - Every queued notification ends in exactly one report, in bounded time: a retry never goes
///   past the time to live nor the retry deadline (`retry_deadline` after it was queued), each
///   send that the server may have processed counts an attempt (at most `max_attempts`), at
///   most `max_unanswered_attempts` of them may end without a response, each send it
///   certainly did not process is free but bounded (`max_free_resends`), and the [`Pool`]
///   gives up on a route it cannot reach or that allows no streams.
/// - Requests are paced by the route's rate controller, shared by all its connections: no
///   faster than `max_rate`, and slowed down (the rate cut, `Retry-After` pausing the route)
///   when throttling answers ([`Verdict::Throttled`](super::Verdict::Throttled)) are a
///   sizeable share of the recent ones; the rate grows back while answers are clean.
/// - Nothing the server may have processed is sent again without counting an attempt: a
///   stream ended by a connection error (including one the client's HTTP/2 library detected)
///   counts, only `REFUSED_STREAM`, a GOAWAY's unprocessed streams and never-opened streams
///   are free.
/// - A batching protocol's request carries up to [`Protocol::max_batch`] consecutive ready
///   notifications of one message; a partial batch at the end of the queue waits up to
///   [`Protocol::linger`] for more. Each notification of a batch keeps its own attempts,
///   retries (only the ones that need it are sent again) and report.
/// - Responses are classified by the [`Protocol`]; transient verdicts retry after
///   `Retry-After` or the backoff; a refused credential is renewed and the notification sent
///   once more; client-wide refusals are reported once per distinct kind in a row.
pub struct Sender<P: Protocol, C: Credential, T> {
    protocol: P,
    credential: C,
    config: Config,
    backoff: Backoff,
    pool: Pool,
    /// The route's rate control, shared by every connection.
    pacer: Pacer,
    queue: RetryQueue<Entry<P, T>>,
    in_flight: InFlightTable<InFlight<P, T>>,
    /// Single requests built by the caller, sharing the connections and the credential.
    exchanges: Exchanges,
    outbox: SenderOutbox<P, C, T>,
    stats: Stats,
}

impl<P: Protocol, C: Credential, T> fmt::Debug for Sender<P, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("provider", &self.protocol.provider())
            .field("config", &self.config)
            .field("pool", &self.pool)
            .field("ready", &self.queue.ready_len())
            .field("waiting", &self.queue.waiting_len())
            .field("in_flight", &self.in_flight.len())
            .field("exchanges_waiting", &self.exchanges.waiting())
            .field("pending", &self.outbox.pending())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol, C: Credential, T> Sender<P, C, T> {
    /// A sender speaking `protocol`, authenticated by `credential`.
    pub fn new(protocol: P, credential: C, config: Config) -> Result<Self, ConfigError> {
        config.check()?;
        Ok(Sender {
            backoff: Backoff::new(config.initial_backoff, config.max_backoff, config.seed),
            pool: Pool::new(config.pool.clone(), config.seed ^ 0xd1a1),
            pacer: Pacer::new(config.max_rate),
            protocol,
            credential,
            config,
            queue: RetryQueue::new(),
            in_flight: InFlightTable::new(),
            exchanges: Exchanges::new(),
            outbox: Outbox::new(),
            stats: Stats::default(),
        })
    }

    /// Queues `message` for `token`. Hands everything back when `max_pending` notifications
    /// are queued and unreported; drain the sender and offer it again. The time to live counts
    /// from `now`.
    pub fn queue(
        &mut self,
        token: P::Token,
        message: P::Message,
        tag: T,
        now: Instant,
    ) -> Result<(), Rejected<P, T>> {
        if !self.outbox.admit(self.config.max_pending) {
            return Err(Full((token, message, tag)));
        }
        self.stats.queued += 1;
        let meta = self.protocol.prepare(&message);
        let linger = self.protocol.linger();
        let linger_until = (self.protocol.max_batch() > 1 && !linger.is_zero())
            .then(|| now.checked_add(linger))
            .flatten();
        self.queue.push_back(Entry {
            token,
            message,
            meta,
            tag,
            attempts: 0,
            free_resends: 0,
            reauthenticated: false,
            queued_at: now,
            unanswered: 0,
            linger_until,
            last_status: None,
            failure: None,
        });
        Ok(())
    }

    /// No more notifications are coming for now: the partial batch of those queued so far
    /// goes out without waiting for its linger.
    pub fn flush(&mut self) {
        for entry in self.queue.ready_mut() {
            entry.linger_until = None;
        }
    }

    /// The next thing the transport must do, if any.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        self.queue.promote(now);
        self.end_linger(now);
        self.settle(now);
        if self.ready_load() > 0 {
            match self.credential.poll_request(now) {
                Some(Ok(request)) => {
                    self.stats.token_requests += 1;
                    return Some(Action::CredentialRequest(request));
                }
                Some(Err(error)) => {
                    let failure = CredentialFailure::Refused(error);
                    self.fail_ready_credential(&failure);
                }
                None => {}
            }
        }
        if let Some(conn) = self.pool.poll_close(now) {
            return Some(Action::Close(conn));
        }
        if let Some(conn) = self.pool.poll_dial(now, self.ready_load()) {
            self.stats.dials += 1;
            return Some(Action::Dial(conn));
        }
        self.poll_exchange(now).or_else(|| self.poll_send(now))
    }

    /// Requests waiting for a stream: ready notifications and exchanges.
    fn ready_load(&self) -> usize {
        self.queue.ready_len() + self.exchanges.waiting()
    }

    /// The next request to send, when one is ready, a stream is free and the credential
    /// allows it.
    fn poll_send(&mut self, now: Instant) -> Option<Action> {
        let limit = usize::try_from(self.config.max_in_flight).unwrap_or(usize::MAX);
        self.pacer.idle();
        while self.in_flight.len() < limit && self.queue.has_ready() {
            if self.pool.free_streams() == 0 {
                return None;
            }
            let size = self.next_batch(now)?;
            if self.pacer.wait(now).is_some() {
                return None;
            }
            let (authorization, generation) = match self.credential.grant(now).ready() {
                Ok(ready) => ready?,
                Err(error) => {
                    let entry = self.queue.pop_front()?;
                    let error = self.rejected(format!("no credential: {error}"));
                    self.emit(entry, Some(error), None);
                    continue;
                }
            };
            let mut entry = self.queue.pop_front()?;
            let mut rest: Vec<Entry<P, T>> = std::iter::from_fn(|| self.queue.pop_front())
                .take(size - 1)
                .collect();
            let built = with_batch(&entry, &rest, |batch| {
                let auth = authorization.as_ref();
                self.protocol
                    .request(batch, &entry.message, &entry.meta, auth)
            });
            let request = match built {
                Ok(request) => request,
                Err(error) => {
                    for entry in std::iter::once(entry).chain(rest) {
                        self.emit(entry, Some(error.clone()), None);
                    }
                    continue;
                }
            };
            let Some(conn) = self.pool.pick() else {
                for entry in rest.into_iter().rev() {
                    self.queue.push_front(entry);
                }
                self.queue.push_front(entry);
                return None;
            };
            for sent in std::iter::once(&mut entry).chain(&mut rest) {
                sent.attempts += 1;
                sent.linger_until = None;
            }
            self.pacer.sent(now);
            let id = self.in_flight.insert(InFlight {
                entry,
                rest,
                conn,
                generation,
                sent_at: now,
            });
            self.stats.requests += 1;
            self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight.len());
            return Some(Action::Send { conn, id, request });
        }
        None
    }

    /// Feeds what the transport observed.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Connected { conn, max_streams } => {
                self.pool.handle_connected(conn, max_streams, now);
            }
            Input::MaxStreams { conn, max_streams } => {
                self.pool.handle_max_streams(conn, max_streams);
            }
            Input::DialFailed {
                conn,
                reason,
                fatal,
            } => self.pool.handle_dial_failed(conn, &reason, fatal, now),
            Input::GoAway { conn } => {
                self.stats.goaways += 1;
                self.pool.handle_goaway(conn);
            }
            Input::Closed { conn } => self.handle_closed(conn, now),
            Input::Response { id, response } if self.exchanges.owns(id) => {
                self.exchange_response(id, response, now);
            }
            Input::Response { id, response } => self.handle_response(id, &response, now),
            Input::StreamEnd { id, end } if self.exchanges.owns(id) => {
                self.exchange_stream_end(id, end, now);
            }
            Input::StreamEnd { id, end } => self.handle_stream_end(id, end, now),
            Input::CredentialResponse(response) => {
                if let Some(failure) = self.credential.handle_response(&response, now) {
                    self.fail_ready_credential(&failure);
                }
            }
            Input::CredentialFailure(reason) => {
                if let Some(failure) = self.credential.handle_failure(&reason, now) {
                    self.fail_ready_credential(&failure);
                }
            }
        }
        self.settle(now);
    }

    fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        let orphans = self.in_flight.ids_where(|flight| flight.conn == conn);
        let end = StreamEnd::ConnectionError("the connection closed".into());
        for id in orphans {
            self.handle_stream_end(id, end.clone(), now);
        }
        for id in self.exchanges.on(conn) {
            self.exchange_stream_end(id, end.clone(), now);
        }
        self.pool.handle_closed(conn, now);
    }

    /// Takes request `id` out of flight (it `answered`, or ended without a response) and
    /// frees its stream.
    fn land(&mut self, id: RequestId, answered: bool, now: Instant) -> Option<InFlight<P, T>> {
        let flight = self.in_flight.remove(id)?;
        self.pool.release(flight.conn, answered, now);
        Some(flight)
    }

    fn handle_response(&mut self, id: RequestId, response: &http::Response<Bytes>, now: Instant) {
        let Some(InFlight {
            entry,
            rest,
            generation,
            sent_at,
            ..
        }) = self.land(id, true, now)
        else {
            return;
        };
        self.stats.responses += 1;
        let answers = with_batch(&entry, &rest, |batch| {
            self.protocol.classify(response, batch)
        });
        let mut fate = Fate::new(generation, sent_at, now);
        self.pace(&answers, &fate);
        let mut again = Vec::new();
        match answers {
            Answers::All(answer) => {
                // In order; the last (usually the only) notification takes the answer itself.
                let mut answer = Some(answer);
                let mut entries = std::iter::once(entry).chain(rest).peekable();
                while let Some(entry) = entries.next() {
                    let this = match entries.peek() {
                        Some(_) => answer.clone(),
                        None => answer.take(),
                    };
                    if let Some(this) = this {
                        again.extend(self.answer(entry, this, &mut fate));
                    }
                }
            }
            Answers::Each(answers) => {
                let mut answers = answers.into_iter();
                for entry in std::iter::once(entry).chain(rest) {
                    match answers.next() {
                        Some(answer) => again.extend(self.answer(entry, answer, &mut fate)),
                        None => {
                            let error = self.rejected("the response has no result for it".into());
                            self.emit(entry, Some(error), None);
                        }
                    }
                }
            }
        }
        self.send_next(again);
    }

    fn handle_stream_end(&mut self, id: RequestId, end: StreamEnd, now: Instant) {
        let Some(flight) = self.land(id, false, now) else {
            return;
        };
        let InFlight {
            entry,
            rest,
            generation,
            conn,
            sent_at,
        } = flight;
        self.pool.handle_stream_end(conn, &end);
        let mut fate = Fate::new(generation, sent_at, now);
        let again = std::iter::once(entry)
            .chain(rest)
            .filter_map(|entry| self.stream_ended(entry, &end, &mut fate))
            .collect();
        self.send_next(again);
    }

    /// Time has passed: due retries become ready, lingering batches may go, the pool's timers
    /// run.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue.promote(now);
        self.end_linger(now);
        self.settle(now);
    }

    /// Applies the pool's decisions: when it gave up, the notifications waiting for a stream
    /// fail as `unavailable`.
    fn settle(&mut self, now: Instant) {
        self.pool.update(now, self.ready_load());
        let Some(give_up) = self.pool.take_give_up() else {
            return;
        };
        let reason = match give_up {
            GiveUp::Unreachable(reason) => format!("cannot reach the server: {reason}"),
            GiveUp::Stalled => "the server allows no concurrent streams".to_owned(),
        };
        self.exchanges
            .fail_waiting(&ExchangeFailure::Unavailable(reason.clone()));
        if self.queue.has_ready() {
            self.collect_credential_events();
            self.outbox.event(Event::Unreachable {
                reason: reason.clone(),
            });
        }
        for entry in self.queue.take_ready() {
            let last_error = if entry.last_error().is_empty() {
                reason.clone()
            } else {
                format!("{reason}; before: {}", entry.last_error())
            };
            let error = DeviceError::Unavailable {
                attempts: entry.attempts,
                last_error,
            };
            self.emit(entry, Some(error), None);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = self.ready_load();
        let credential = if waiting > 0 {
            self.credential.poll_timeout()
        } else {
            None
        };
        [
            self.queue.next_due(),
            self.lingering_until(),
            credential,
            self.pool.poll_timeout(waiting),
            self.pacer.blocked_until(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends now, as `unavailable` with `reason`, every notification whose tag `matches` and
    /// that has no report yet (a session's deadline passed): queued ones, retries waiting for
    /// their time, and requests in flight (their stream is forgotten: an answer that comes
    /// later is ignored, so the report says it may still have been delivered).
    pub fn expire(&mut self, matches: impl Fn(&T) -> bool, reason: &str, now: Instant) {
        let fail = |sender: &mut Self, entry: Entry<P, T>, why: &str| {
            let last_error = match entry.last_error() {
                "" => why.to_owned(),
                before => format!("{why}; before: {before}"),
            };
            let error = DeviceError::Unavailable {
                attempts: entry.attempts,
                last_error,
            };
            sender.emit(entry, Some(error), None);
        };
        for entry in self.queue.take_where(|entry| matches(&entry.tag)) {
            fail(self, entry, reason);
        }
        let flying = self.in_flight.ids_where(|flight| {
            std::iter::once(&flight.entry)
                .chain(&flight.rest)
                .any(|entry| matches(&entry.tag))
        });
        let in_flight = format!("{reason} while it was in flight (it may have been delivered)");
        for id in flying {
            let Some(flight) = self.land(id, false, now) else {
                continue;
            };
            for entry in std::iter::once(flight.entry).chain(flight.rest) {
                if matches(&entry.tag) {
                    fail(self, entry, &in_flight);
                } else {
                    // Another session's notification of the same batch: sent again.
                    self.queue.push_front(entry);
                }
            }
        }
    }

    /// Re-anchors the wall clock of the credential (for claims like `iat`).
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.credential.handle_wall_clock(now, unix_now);
    }

    /// The next final result of a queued notification.
    pub fn poll_outcome(&mut self) -> Option<Report<P::Token, T>> {
        self.outbox.poll_outcome()
    }

    /// The next client-wide event.
    pub fn poll_event(&mut self) -> Option<Event<C::Event>> {
        self.collect_credential_events();
        self.outbox.poll_event()
    }

    /// Moves the credential's events into the outbox, so that they keep their place before
    /// the engine's own later events (a new token before the refusal of that token).
    fn collect_credential_events(&mut self) {
        while let Some(event) = self.credential.poll_event() {
            self.outbox.event(Event::Credential(event));
        }
    }

    /// True when every queued notification's report and every exchange's result has been
    /// polled, no event waits and no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_idle() && self.in_flight.is_empty() && self.exchanges.is_idle()
    }

    /// Requests handed out and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The connection policy's state.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The credential.
    pub fn credential(&self) -> &C {
        &self.credential
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The generic settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        let credential = self.credential.stats();
        Stats {
            token_refreshes: credential.refreshes,
            token_failures: credential.failures,
            token_requests: self.stats.token_requests.max(credential.requests),
            in_flight: self.in_flight.len(),
            ..self.stats
        }
    }

    /// Fails every notification waiting to be sent: the credential they wait for will not
    /// come.
    fn fail_ready_credential(&mut self, failure: &CredentialFailure) {
        let detail = match failure {
            CredentialFailure::Refused(detail) | CredentialFailure::Unavailable(detail) => detail,
        };
        self.exchanges
            .fail_waiting(&ExchangeFailure::Credential(detail.clone()));
        for entry in self.queue.take_ready() {
            let error = match failure {
                CredentialFailure::Refused(detail) => self.rejected(detail.clone()),
                CredentialFailure::Unavailable(detail) => DeviceError::Unavailable {
                    attempts: entry.attempts,
                    last_error: detail.clone(),
                },
            };
            self.emit(entry, Some(error), None);
        }
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod exchange_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod pacing_tests;
#[cfg(test)]
mod tests;
