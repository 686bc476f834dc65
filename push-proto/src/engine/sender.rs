//! [`Sender`]: the generic request/response state machine every HTTP provider runs on.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::action::{Action, ConnId, Input, RequestId, StreamEnd};
use super::config::{Config, ConfigError};
use super::credential::{Credential, CredentialFailure, Grant};
use super::in_flight::InFlightTable;
use super::pool::{GiveUp, Pool};
use super::protocol::Protocol;
use super::report::{Event, Report, Stats};
use super::verdict::{Answer, Verdict};
use crate::sending::{Outbox, RetryQueue};
use crate::{Backoff, DeviceError, Full, Outcome, TokenError};

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
    /// The end of its time to live: no retry is scheduled past it.
    expires: Option<Instant>,
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

struct InFlight<P: Protocol, T> {
    entry: Entry<P, T>,
    conn: ConnId,
    /// The credential generation it was sent with.
    generation: u64,
}

/// The engine: turns queued notifications into requests on the route's connections, and
/// every answer, stream end and connection event into one [`Report`] per notification.
///
/// # Driving it
/// 1. [`queue`](Self::queue) notifications; on [`Full`], drain the outputs and offer it again.
/// 2. After every input, drain [`poll_action`](Self::poll_action) until `None` and perform each
///    [`Action`]; report what happens with [`handle`](Self::handle).
/// 3. Drain [`poll_outcome`](Self::poll_outcome) and [`poll_event`](Self::poll_event).
/// 4. Wake up at [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), and go to 2.
///
/// # Rules
/// - Every queued notification ends in exactly one report, in bounded time: each send that the
///   server may have processed counts an attempt (at most `max_attempts`), each send it
///   certainly did not process is free but bounded (`max_free_resends`), a retry never goes
///   past the time to live, and the [`Pool`] gives up on a route it cannot reach or that
///   allows no streams.
/// - Nothing the server may have processed is sent again without counting an attempt: a
///   stream ended by a connection error (including one the client's HTTP/2 library detected)
///   counts, only `REFUSED_STREAM`, a GOAWAY's unprocessed streams and never-opened streams
///   are free.
/// - Responses are classified by the [`Protocol`]; transient verdicts retry after
///   `Retry-After` or the backoff; a refused credential is renewed and the notification sent
///   once more; client-wide refusals are reported once per distinct kind in a row.
pub struct Sender<P: Protocol, C: Credential, T> {
    protocol: P,
    credential: C,
    config: Config,
    backoff: Backoff,
    pool: Pool,
    queue: RetryQueue<Entry<P, T>>,
    in_flight: InFlightTable<InFlight<P, T>>,
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
            protocol,
            credential,
            config,
            queue: RetryQueue::new(),
            in_flight: InFlightTable::new(),
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
        let expires = self
            .protocol
            .time_to_live(&message)
            .and_then(|ttl| now.checked_add(ttl));
        let meta = self.protocol.prepare(&message);
        self.queue.push_back(Entry {
            token,
            message,
            meta,
            tag,
            attempts: 0,
            free_resends: 0,
            reauthenticated: false,
            expires,
            last_status: None,
            failure: None,
        });
        Ok(())
    }

    /// The next thing the transport must do, if any.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        self.queue.promote(now);
        self.settle(now);
        if self.queue.has_ready() {
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
        if let Some(conn) = self.pool.poll_dial(now, self.queue.ready_len()) {
            self.stats.dials += 1;
            return Some(Action::Dial(conn));
        }
        self.poll_send(now)
    }

    /// The next request to send, when one is ready, a stream is free and the credential
    /// allows it.
    fn poll_send(&mut self, now: Instant) -> Option<Action> {
        let limit = usize::try_from(self.config.max_in_flight).unwrap_or(usize::MAX);
        while self.in_flight.len() < limit && self.queue.has_ready() {
            if self.pool.free_streams() == 0 {
                return None;
            }
            let (authorization, generation) = match self.credential.grant(now) {
                Grant::Wait => return None,
                Grant::Ready {
                    authorization,
                    generation,
                } => (authorization, generation),
                Grant::Fail(error) => {
                    let entry = self.queue.pop_front()?;
                    let error = self.rejected(format!("no credential: {error}"));
                    self.emit(entry, Some(error), None);
                    continue;
                }
            };
            let mut entry = self.queue.pop_front()?;
            let built = self.protocol.request(
                &entry.token,
                &entry.message,
                &entry.meta,
                authorization.as_ref(),
            );
            let request = match built {
                Ok(request) => request,
                Err(error) => {
                    self.emit(entry, Some(error), None);
                    continue;
                }
            };
            let Some(conn) = self.pool.pick() else {
                self.queue.push_front(entry);
                return None;
            };
            entry.attempts += 1;
            let id = self.in_flight.insert(InFlight {
                entry,
                conn,
                generation,
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
            Input::GoAway { conn } => self.pool.handle_goaway(conn),
            Input::Closed { conn } => self.handle_closed(conn, now),
            Input::Response { id, response } => self.handle_response(id, &response, now),
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
        for id in orphans {
            let end = StreamEnd::ConnectionError("the connection closed".into());
            self.handle_stream_end(id, end, now);
        }
        self.pool.handle_closed(conn, now);
    }

    fn handle_response(&mut self, id: RequestId, response: &http::Response<Bytes>, now: Instant) {
        let Some(InFlight {
            mut entry,
            conn,
            generation,
        }) = self.in_flight.remove(id)
        else {
            return;
        };
        self.pool.release(conn, true, now);
        self.stats.responses += 1;
        let answer = self.protocol.classify(response);
        entry.last_status = Some(answer.status);
        entry.set_last_reason(answer.reason.clone());
        match answer.verdict {
            Verdict::Delivered => {
                self.outbox.clear_client_error();
                self.emit(entry, None, Some(answer));
            }
            Verdict::InvalidDevice { .. } => {
                self.emit(entry, Some(DeviceError::InvalidDevice), Some(answer));
            }
            Verdict::InvalidToken => {
                let error = TokenError::RejectedByService(answer.described.clone()).into();
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::PayloadTooLarge => {
                let error = self.protocol.too_large(&entry.message);
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::Retry {
                retry_after,
                client_wide,
            } => {
                if client_wide {
                    self.client_error(&answer);
                }
                self.retry(entry, answer.described, retry_after, now);
            }
            Verdict::Reauthenticate if !entry.reauthenticated => {
                self.credential.handle_rejected(generation);
                entry.reauthenticated = true;
                entry.attempts = entry.attempts.saturating_sub(1);
                entry.set_last_error(answer.described);
                self.queue.push_front(entry);
            }
            Verdict::Reauthenticate | Verdict::ClientError => {
                self.client_error(&answer);
                let error = self.rejected(answer.described.clone());
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::Rejected => {
                let error = self.rejected(answer.described.clone());
                self.emit(entry, Some(error), Some(answer));
            }
        }
    }

    fn handle_stream_end(&mut self, id: RequestId, end: StreamEnd, now: Instant) {
        let Some(InFlight {
            mut entry, conn, ..
        }) = self.in_flight.remove(id)
        else {
            return;
        };
        self.pool.release(conn, false, now);
        if end.unprocessed() && entry.free_resends < self.config.max_free_resends {
            self.stats.refused += 1;
            entry.free_resends += 1;
            entry.attempts = entry.attempts.saturating_sub(1);
            entry.set_last_error(end.to_string());
            self.queue.push_front(entry);
            return;
        }
        self.stats.transport_failures += 1;
        let error = if end.unprocessed() {
            format!("{end}, {} times", entry.free_resends + 1)
        } else {
            format!("transport failure: {end}")
        };
        self.retry(entry, error, None, now);
    }

    /// Time has passed: due retries become ready, the pool's timers run.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue.promote(now);
        self.settle(now);
    }

    /// Applies the pool's decisions: when it gave up, the notifications waiting for a stream
    /// fail as `unavailable`.
    fn settle(&mut self, now: Instant) {
        self.pool.update(now, self.queue.ready_len());
        let Some(give_up) = self.pool.take_give_up() else {
            return;
        };
        let reason = match give_up {
            GiveUp::Unreachable(reason) => format!("cannot reach the server: {reason}"),
            GiveUp::Stalled => "the server allows no concurrent streams".to_owned(),
        };
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
        let waiting = self.queue.ready_len();
        let credential = if waiting > 0 {
            self.credential.poll_timeout()
        } else {
            None
        };
        [
            self.queue.next_due(),
            credential,
            self.pool.poll_timeout(waiting),
        ]
        .into_iter()
        .flatten()
        .min()
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

    /// True when every queued notification's report has been polled, no event waits and no
    /// request is in flight.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_idle() && self.in_flight.is_empty()
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
            ..self.stats
        }
    }

    fn rejected(&self, code: String) -> DeviceError {
        DeviceError::Rejected {
            provider: self.protocol.provider(),
            code,
        }
    }

    /// Fails every notification waiting to be sent: the credential they wait for will not
    /// come.
    fn fail_ready_credential(&mut self, failure: &CredentialFailure) {
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

    /// Reports a client-wide error, once per distinct status and reason in a row.
    fn client_error(&mut self, answer: &Answer) {
        self.collect_credential_events();
        let reason = answer.reason.clone().unwrap_or_default();
        self.outbox
            .client_error((answer.status, reason), |(status, reason)| {
                Event::ClientError {
                    status: *status,
                    reason: reason.clone(),
                }
            });
    }

    /// Schedules `entry` again after `retry_after` or the backoff, unless it is out of
    /// attempts or the retry would come after its time to live.
    fn retry(
        &mut self,
        mut entry: Entry<P, T>,
        error: String,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        entry.set_last_error(error);
        let give_up = |entry: &Entry<P, T>, why: &str| DeviceError::Unavailable {
            attempts: entry.attempts,
            last_error: format!("{}{why}", entry.last_error()),
        };
        if entry.attempts >= self.config.max_attempts {
            let error = give_up(&entry, "");
            return self.emit(entry, Some(error), None);
        }
        let delay =
            retry_after.unwrap_or_else(|| self.backoff.delay(entry.attempts.saturating_sub(1)));
        let Some(due) = now.checked_add(delay) else {
            let error = give_up(&entry, "; retry delay out of range");
            return self.emit(entry, Some(error), None);
        };
        if entry.expires.is_some_and(|expires| due > expires) {
            let error = give_up(&entry, "; its time to live ends before the next attempt");
            return self.emit(entry, Some(error), None);
        }
        self.stats.retries += 1;
        self.queue.schedule(due, entry);
    }

    /// Records the final report of `entry`.
    fn emit(&mut self, entry: Entry<P, T>, error: Option<DeviceError>, answer: Option<Answer>) {
        let (answered_id, unregistered_at) = match answer {
            Some(answer) => (
                answer.id,
                match answer.verdict {
                    Verdict::InvalidDevice { since } => since,
                    _ => None,
                },
            ),
            None => (None, None),
        };
        let id = answered_id.or_else(|| self.protocol.sent_id(&entry.meta));
        let outcome = match error {
            Some(error) => {
                self.stats.failed += 1;
                Outcome::failed(entry.tag, error)
            }
            None => {
                self.stats.delivered += 1;
                Outcome::delivered(entry.tag)
            }
        };
        let reason = entry
            .failure
            .and_then(|failure| failure.reason)
            .filter(|_| outcome.error.is_some());
        self.outbox.report(Report {
            outcome,
            token: entry.token,
            status: entry.last_status,
            reason,
            id,
            unregistered_at,
        });
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
