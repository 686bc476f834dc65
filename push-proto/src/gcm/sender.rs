//! [`Sender`]: the GCM state machine (batching, in-flight requests, retries).

use std::collections::{BTreeMap, HashMap};

use crate::sending::{Outbox, RetryQueue};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};

use super::config::{Config, ConfigError};
use super::message::Message;
use super::response::{Verdict, parse_results};
use super::retry_after::retry_after;
use crate::{Backoff, DeviceError, Full, GcmToken, Outcome};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// Names a message opened with [`Sender::open_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

/// Names a request handed out by [`Sender::poll_request`]; give it back with its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message {}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// Something that concerns the whole client rather than one token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The service refused the API key (HTTP 401). Later requests will most likely fail too;
    /// the configuration needs fixing.
    Unauthorized {
        /// The start of the response body, for the operator.
        detail: String,
    },
}

/// Counters since the sender was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tokens accepted by [`Sender::queue`].
    pub queued: u64,
    /// Requests handed out (first sends and retries).
    pub requests: u64,
    /// HTTP responses handled.
    pub responses: u64,
    /// Transport failures handled.
    pub transport_failures: u64,
    /// Retry requests scheduled (whole batches or subsets).
    pub retries: u64,
    /// Tokens delivered.
    pub delivered: u64,
    /// Delivered tokens that came back with a canonical replacement.
    pub new_tokens: u64,
    /// Tokens that failed.
    pub failed: u64,
}

/// One token and the caller's tag for it.
struct Entry<T> {
    token: GcmToken,
    tag: T,
}

/// Tokens of one message that travel in one request. Retries are smaller batches made from the
/// tokens that failed transiently; they keep the attempt count and the first send time.
struct Batch<T> {
    message: MessageId,
    entries: Vec<Entry<T>>,
    attempts: u32,
    first_sent: Option<Instant>,
    last_error: String,
}

struct MessageState<T> {
    message: Message,
    open: bool,
    partial: Vec<Entry<T>>,
    partial_since: Option<Instant>,
    /// Tokens queued for this message whose outcome is not out yet.
    live: usize,
}

/// The GCM sender: a sans-IO state machine that turns queued tokens into HTTP requests and
/// HTTP responses into one [`Outcome`] per token.
///
/// `T` is the caller's tag for each token (for instance a device and a session); it comes back
/// in the token's outcome, also after retries.
///
/// # Driving it
///
/// 1. [`open_message`](Self::open_message), then [`queue`](Self::queue) tokens (on
///    [`Full`], drain the outputs below and offer the token again), then
///    [`close_message`](Self::close_message).
/// 2. After every input (`queue`, `close_message`, `handle_*`), drain the outputs in this
///    order: [`poll_request`](Self::poll_request) until `None` (send each request, and feed
///    its answer to [`handle_response`](Self::handle_response) or
///    [`handle_failure`](Self::handle_failure)), then [`poll_outcome`](Self::poll_outcome)
///    and [`poll_event`](Self::poll_event) until `None`.
/// 3. Wake up at [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), and go to 2.
///
/// It is done with everything queued when [`is_idle`](Self::is_idle) is true.
///
/// # Rules
///
/// - Tokens of one message gather into batches of `batch_size`; a partial batch is sent after
///   `linger`, or at once on `close_message`. At most `max_in_flight` requests are out.
/// - 200: each result applies to the token at its position (see [`Verdict`]). Tokens with a
///   transient error are sent again in a new, smaller request.
/// - 5xx, 429 and transport failures: the whole batch is sent again.
/// - Retries wait `Retry-After` when the response has one (rate-limit errors wait at least the
///   backoff), else an exponential backoff with seeded jitter. A token is sent at most
///   `max_attempts` times, and never after its batch's first send + `time_to_live`; then it
///   fails with [`DeviceError::Unavailable`].
/// - 400, 401 and other statuses fail the whole batch with [`DeviceError::Rejected`], never
///   retried; 401 also raises [`Event::Unauthorized`].
pub struct Sender<T> {
    config: Config,
    authorization: HeaderValue,
    backoff: Backoff,
    messages: BTreeMap<MessageId, MessageState<T>>,
    queue: RetryQueue<Batch<T>>,
    in_flight: HashMap<RequestId, Batch<T>>,
    /// Outcomes and events; counts the tokens accepted whose outcome has not been polled.
    outbox: Outbox<Outcome<T>, Event, ()>,
    next_message: u64,
    next_request: u64,
    stats: Stats,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("config", &self.config)
            .field("messages", &self.messages.len())
            .field("in_flight", &self.in_flight.len())
            .field("pending", &self.outbox.pending())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn rejected(code: String) -> DeviceError {
    DeviceError::Rejected {
        provider: "gcm",
        code,
    }
}

/// The first `limit` characters of a body, for error messages.
fn excerpt(body: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(body).chars().take(limit).collect()
}

impl<T> Sender<T> {
    /// A sender with `config`, or the first invalid field.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let authorization = config.validate()?;
        Ok(Sender {
            backoff: Backoff::new(config.initial_backoff, config.max_backoff, config.seed),
            config,
            authorization,
            messages: BTreeMap::new(),
            queue: RetryQueue::new(),
            in_flight: HashMap::new(),
            outbox: Outbox::new(),
            next_message: 0,
            next_request: 0,
            stats: Stats::default(),
        })
    }

    /// Starts sending `message`; queue tokens for it with the returned id.
    pub fn open_message(&mut self, message: Message) -> MessageId {
        let id = MessageId(self.next_message);
        self.next_message += 1;
        let state = MessageState {
            message,
            open: true,
            partial: Vec::new(),
            partial_since: None,
            live: 0,
        };
        self.messages.insert(id, state);
        id
    }

    /// Queues `token` for `message`. Hands the token back when `max_pending` outcomes are
    /// outstanding; drain the sender and offer it again. A token for a closed or unknown
    /// message is accepted and fails at once with [`DeviceError::Rejected`].
    pub fn queue(
        &mut self,
        message: MessageId,
        token: GcmToken,
        tag: T,
        now: Instant,
    ) -> Result<(), Full<(GcmToken, T)>> {
        if !self.outbox.admit(self.config.max_pending) {
            return Err(Full((token, tag)));
        }
        self.stats.queued += 1;
        let Some(state) = self.messages.get_mut(&message).filter(|state| state.open) else {
            let error = rejected(format!("{message} is closed or unknown"));
            self.emit(message, Outcome::failed(tag, error));
            return Ok(());
        };
        state.live += 1;
        if state.partial.is_empty() {
            state.partial_since = Some(now);
        }
        state.partial.push(Entry { token, tag });
        if state.partial.len() >= self.config.batch_size {
            self.flush(message);
        }
        Ok(())
    }

    /// No more tokens for `message`: its partial batch is sent now, and the message is
    /// forgotten once all its tokens have outcomes.
    pub fn close_message(&mut self, message: MessageId) {
        if let Some(state) = self.messages.get_mut(&message) {
            state.open = false;
            self.flush(message);
            self.forget_if_done(message);
        }
    }

    /// The next request to send, if one is ready and fewer than `max_in_flight` are out.
    pub fn poll_request(&mut self, now: Instant) -> Option<(RequestId, http::Request<Bytes>)> {
        self.promote(now);
        while self.in_flight.len() < self.config.max_in_flight {
            let mut batch = self.queue.pop_front()?;
            let ids: Vec<&str> = batch.entries.iter().map(|e| e.token.as_str()).collect();
            let body = match self.messages.get(&batch.message) {
                Some(state) => state.message.request_body(&ids),
                None => Err(rejected(format!("{} is unknown", batch.message))),
            };
            let body = match body {
                Ok(body) => body,
                Err(error) => {
                    self.fail_batch(batch, error);
                    continue;
                }
            };
            batch.attempts += 1;
            batch.first_sent.get_or_insert(now);
            let id = RequestId(self.next_request);
            self.next_request += 1;
            self.in_flight.insert(id, batch);
            self.stats.requests += 1;
            return Some((id, self.build_request(body)));
        }
        None
    }

    /// The service answered request `id`.
    pub fn handle_response(
        &mut self,
        id: RequestId,
        response: http::Response<Bytes>,
        now: Instant,
    ) {
        let Some(batch) = self.in_flight.remove(&id) else {
            return;
        };
        self.stats.responses += 1;
        let status = response.status();
        let body = response.body();
        match status {
            StatusCode::OK => self.handle_results(batch, &response, now),
            StatusCode::BAD_REQUEST => {
                let code = format!("400 Bad Request: {}", excerpt(body, 200));
                self.fail_batch(batch, rejected(code));
            }
            StatusCode::UNAUTHORIZED => {
                let detail = excerpt(body, 200);
                self.outbox.event(Event::Unauthorized { detail });
                let code = "401 Unauthorized: the API key was refused".to_owned();
                self.fail_batch(batch, rejected(code));
            }
            _ if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                let delay = retry_after(response.headers());
                self.retry(batch, format!("HTTP {status}"), delay, false, now);
            }
            _ => {
                let code = format!("HTTP {status}: {}", excerpt(body, 200));
                self.fail_batch(batch, rejected(code));
            }
        }
    }

    /// Request `id` failed in transport (connection refused, reset, timed out, ...); the
    /// whole batch is retried.
    pub fn handle_failure(&mut self, id: RequestId, reason: &str, now: Instant) {
        if let Some(batch) = self.in_flight.remove(&id) {
            self.stats.transport_failures += 1;
            self.retry(
                batch,
                format!("transport failure: {reason}"),
                None,
                false,
                now,
            );
        }
    }

    /// Time has passed: partial batches whose linger ran out and retries that are due become
    /// ready for [`poll_request`](Self::poll_request).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.promote(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if anything waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lingers = self.messages.values().filter_map(|state| {
            let since = state.partial_since.filter(|_| !state.partial.is_empty())?;
            since.checked_add(self.config.linger)
        });
        lingers.chain(self.queue.next_due()).min()
    }

    /// The next final result of a queued token.
    pub fn poll_outcome(&mut self) -> Option<Outcome<T>> {
        self.outbox.poll_outcome()
    }

    /// The next client-wide event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox.poll_event()
    }

    /// True when every queued token's outcome has been polled and no event is waiting.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_idle()
    }

    /// Requests handed out and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Messages not yet forgotten (open, or closed with tokens still awaiting outcomes).
    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn build_request(&self, body: Bytes) -> http::Request<Bytes> {
        let mut request = http::Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.config.endpoint.clone();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    /// Per-token results of a 200: outcomes for the settled, one retry for the transient.
    fn handle_results(&mut self, batch: Batch<T>, response: &http::Response<Bytes>, now: Instant) {
        let ids: Vec<&str> = batch.entries.iter().map(|e| e.token.as_str()).collect();
        let verdicts = match parse_results(response.body(), &ids) {
            Ok(verdicts) => verdicts,
            Err(malformed) => return self.fail_batch(batch, malformed.error()),
        };
        let Batch {
            message,
            entries,
            attempts,
            first_sent,
            mut last_error,
        } = batch;
        let mut again = Vec::new();
        let mut rate_limited = false;
        for (entry, verdict) in entries.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Delivered { new_token } => {
                    let outcome = Outcome {
                        tag: entry.tag,
                        new_token,
                        error: None,
                    };
                    self.emit(message, outcome);
                }
                Verdict::Failed(error) => self.emit(message, Outcome::failed(entry.tag, error)),
                Verdict::Retry {
                    error,
                    rate_limited: limited,
                } => {
                    rate_limited |= limited;
                    last_error = error;
                    again.push(entry);
                }
            }
        }
        if !again.is_empty() {
            let retry = Batch {
                message,
                entries: again,
                attempts,
                first_sent,
                last_error: String::new(),
            };
            let delay = retry_after(response.headers());
            self.retry(retry, last_error, delay, rate_limited, now);
        }
    }

    /// Schedules `batch` again after `retry_after` or the backoff, unless it is out of
    /// attempts or the retry would come after its time to live.
    fn retry(
        &mut self,
        mut batch: Batch<T>,
        error: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
        now: Instant,
    ) {
        batch.last_error = error;
        if batch.attempts >= self.config.max_attempts {
            return self.give_up(batch, None);
        }
        let backoff = self.backoff.delay(batch.attempts.saturating_sub(1));
        let delay = match retry_after {
            Some(asked) if rate_limited => asked.max(backoff),
            Some(asked) => asked,
            None => backoff,
        };
        let deadline = self.messages.get(&batch.message).and_then(|state| {
            let ttl = Duration::from_secs(state.message.time_to_live()?.into());
            batch.first_sent?.checked_add(ttl)
        });
        match now.checked_add(delay) {
            Some(due) if deadline.is_none_or(|deadline| due <= deadline) => {
                self.stats.retries += 1;
                self.queue.schedule(due, batch);
            }
            Some(_) => self.give_up(
                batch,
                Some("time_to_live would pass before the next attempt"),
            ),
            None => self.give_up(batch, Some("retry delay out of range")),
        }
    }

    fn give_up(&mut self, batch: Batch<T>, why: Option<&str>) {
        let last_error = match why {
            Some(why) => format!("{}; {why}", batch.last_error),
            None => batch.last_error.clone(),
        };
        let error = DeviceError::Unavailable {
            attempts: batch.attempts,
            last_error,
        };
        self.fail_batch(batch, error);
    }

    fn fail_batch(&mut self, batch: Batch<T>, error: DeviceError) {
        for entry in batch.entries {
            self.emit(batch.message, Outcome::failed(entry.tag, error.clone()));
        }
    }

    /// Records a final outcome and forgets a closed message whose tokens are all settled.
    fn emit(&mut self, message: MessageId, outcome: Outcome<T>) {
        match (&outcome.error, &outcome.new_token) {
            (Some(_), _) => self.stats.failed += 1,
            (None, new_token) => {
                self.stats.delivered += 1;
                self.stats.new_tokens += u64::from(new_token.is_some());
            }
        }
        self.outbox.report(outcome);
        if let Some(state) = self.messages.get_mut(&message) {
            state.live = state.live.saturating_sub(1);
            self.forget_if_done(message);
        }
    }

    fn forget_if_done(&mut self, message: MessageId) {
        if self
            .messages
            .get(&message)
            .is_some_and(|state| !state.open && state.live == 0)
        {
            self.messages.remove(&message);
        }
    }

    /// Turns `message`'s partial batch into a ready one.
    fn flush(&mut self, message: MessageId) {
        let Some(state) = self.messages.get_mut(&message) else {
            return;
        };
        if state.partial.is_empty() {
            return;
        }
        state.partial_since = None;
        self.queue.push_back(Batch {
            message,
            entries: std::mem::take(&mut state.partial),
            attempts: 0,
            first_sent: None,
            last_error: String::new(),
        });
    }

    /// Moves lingered-out partial batches and due retries to the ready queue.
    fn promote(&mut self, now: Instant) {
        let linger = self.config.linger;
        let expired: Vec<MessageId> = self
            .messages
            .iter()
            .filter(|(_, state)| !state.partial.is_empty())
            .filter(|(_, state)| {
                let due = state
                    .partial_since
                    .and_then(|since| since.checked_add(linger));
                due.is_some_and(|due| due <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.flush(id);
        }
        self.queue.promote(now);
    }
}
