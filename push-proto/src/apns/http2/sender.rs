//! [`Sender`]: the APNs HTTP/2 state machine (requests, stream limit, retries, tokens).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Uri};
use thiserror::Error;

use super::headers::{ApnsId, ApnsIdGenerator};
use super::jwt::{SignError, TokenAuth};
use super::message::Message;
use super::response::{Reason, Verdict, classify};
use crate::sending::{Outbox, RetryQueue};
use crate::{ApnsToken, Backoff, DeviceError, Full, Outcome};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// The production endpoint.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// The development (sandbox) endpoint.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// Names a request handed out by [`Sender::poll_request`]; give it back with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// How the sender authenticates.
#[derive(Debug)]
pub enum Auth {
    /// A TLS client certificate, owned by the adapter: no `authorization` header.
    Certificate,
    /// Provider tokens: `authorization: bearer <JWT>` on every request.
    Token(TokenAuth),
}

/// Settings of a [`Sender`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Scheme and authority of the service, e.g. [`PRODUCTION_URL`]; the path is
    /// `/3/device/<hex token>`.
    pub base_url: String,
    /// The default `apns-topic` (usually the bundle id); a message's own topic overrides it.
    /// Required by APNs with token auth.
    pub topic: Option<String>,
    /// Notifications queued and not yet reported, beyond which [`Sender::queue`] answers
    /// [`Full`].
    pub max_pending: usize,
    /// How many times one notification may be sent (responses and transport failures count;
    /// refused streams and the one retry after `ExpiredProviderToken` do not).
    pub max_attempts: u32,
    /// First retry delay when the response has no `Retry-After`; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Seed of the backoff jitter and of generated `apns-id`s.
    pub seed: u64,
    /// The stream limit assumed until the adapter reports the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub initial_max_concurrent_streams: u32,
}

impl Config {
    /// Defaults for `base_url`: no default topic, 100,000 pending, 3 attempts, backoff from
    /// 1 s to 60 s, seed 0, 1 stream until the server's SETTINGS arrive (APNs starts low).
    pub fn new(base_url: impl Into<String>) -> Self {
        Config {
            base_url: base_url.into(),
            topic: None,
            max_pending: 100_000,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            seed: 0,
            initial_max_concurrent_streams: 1,
        }
    }

    /// Sets the default topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
}

/// An unusable [`Config`] field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `base_url` is not `scheme://authority` (a path other than `/` is not allowed).
    #[error("base_url must be like https://api.push.apple.com, got {0:?}")]
    BaseUrl(String),
    /// `topic` is not a valid header value.
    #[error("topic is not a valid header value")]
    Topic,
    /// `max_attempts` or `max_pending` is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Something that concerns the whole client rather than one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// APNs refused the client's credentials or configuration (bad or missing provider
    /// token, certificate, topic, path; or a token expired again right after a refresh). The
    /// notification failed; later ones will likely fail the same way until it is fixed.
    /// Reported once per distinct status and reason until a notification is delivered.
    ClientError {
        /// The HTTP status.
        status: u16,
        /// APNs' reason.
        reason: Reason,
    },
    /// A new provider token was signed.
    TokenRefreshed {
        /// Its generation (1 for the first token).
        generation: u64,
        /// Its `iat` claim.
        iat: u64,
    },
    /// The [`Signer`](super::Signer) failed; the notification that needed the token failed
    /// with [`DeviceError::Rejected`].
    SignerFailed(SignError),
}

/// The final result of one notification, with what APNs said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<T> {
    /// The outcome (tag and error), as every provider reports it.
    pub outcome: Outcome<T>,
    /// The device token.
    pub token: ApnsToken,
    /// The `apns-id`: the one APNs answered with, else the one sent.
    pub apns_id: ApnsId,
    /// The status of the last response, if one came.
    pub status: Option<u16>,
    /// The reason of the last error response, if any.
    pub reason: Option<Reason>,
    /// For 410: when APNs last confirmed the token invalid (milliseconds since the epoch).
    pub unregistered_at: Option<u64>,
}

/// Counters since the sender was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Notifications accepted by [`Sender::queue`].
    pub queued: u64,
    /// Requests handed out (first sends, retries and resends of refused streams).
    pub requests: u64,
    /// Responses handled.
    pub responses: u64,
    /// Transport failures handled.
    pub transport_failures: u64,
    /// Requests the server did not process (GOAWAY, REFUSED_STREAM), sent again.
    pub refused: u64,
    /// Retries scheduled after a transient error.
    pub retries: u64,
    /// Provider tokens signed.
    pub token_refreshes: u64,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications failed.
    pub failed: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: usize,
}

/// One queued notification.
struct Entry<T> {
    token: ApnsToken,
    message: Message,
    tag: T,
    apns_id: ApnsId,
    attempts: u32,
    expired_retried: bool,
    last_error: String,
}

struct InFlight<T> {
    entry: Entry<T>,
    /// The provider token generation it was sent with (token auth).
    generation: Option<u64>,
}

/// The APNs HTTP/2 sender: a sans-IO state machine that turns queued notifications into
/// `POST /3/device/<token>` requests and responses into one [`Report`] per notification.
///
/// The adapter owns the HTTP/2 connection (TLS, ALPN `h2`, framing, PING); the sender decides
/// what to send, when, and what an answer means.
///
/// # Driving it
/// 1. [`queue`](Self::queue) notifications; on [`Full`], drain the outputs and offer it again.
/// 2. After every input, drain: [`poll_request`](Self::poll_request) until `None` (open a
///    stream for each request, then feed its fate to [`handle_response`](Self::handle_response),
///    [`handle_failure`](Self::handle_failure) or [`handle_refused`](Self::handle_refused)),
///    then [`poll_outcome`](Self::poll_outcome) and [`poll_event`](Self::poll_event).
/// 3. Report the server's `SETTINGS_MAX_CONCURRENT_STREAMS` with
///    [`handle_max_concurrent_streams`](Self::handle_max_concurrent_streams) whenever it
///    changes.
/// 4. Wake up at [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), and go to 2.
///
/// # Rules
/// - At most `max_concurrent_streams` requests are in flight; the rest wait in order.
/// - Responses are classified per the table in [`response`](super::response); transient
///   errors are retried after `Retry-After` or the backoff, at most `max_attempts` sends, then
///   [`DeviceError::Unavailable`].
/// - Streams the server did not process (GOAWAY above its last-stream-id, REFUSED_STREAM) go
///   back to the front of the queue without counting an attempt: never lost, never doubled.
/// - `ExpiredProviderToken` refreshes the token (not before it is 20 minutes old: requests
///   wait until then) and retries the notification once.
pub struct Sender<T> {
    config: Config,
    scheme: Scheme,
    authority: Authority,
    topic: Option<HeaderValue>,
    auth: Auth,
    backoff: Backoff,
    ids: ApnsIdGenerator,
    queue: RetryQueue<Entry<T>>,
    in_flight: HashMap<RequestId, InFlight<T>>,
    max_streams: u32,
    outbox: Outbox<Report<T>, Event, (u16, Reason)>,
    next_request: u64,
    stats: Stats,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .field("ready", &self.queue.ready_len())
            .field("waiting", &self.queue.waiting_len())
            .field("in_flight", &self.in_flight.len())
            .field("max_streams", &self.max_streams)
            .field("pending", &self.outbox.pending())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn rejected(code: String) -> DeviceError {
    DeviceError::Rejected {
        provider: "apns",
        code,
    }
}

impl<T> Sender<T> {
    /// A sender for `config` authenticating with `auth`, or the first invalid field.
    pub fn new(config: Config, auth: Auth) -> Result<Self, ConfigError> {
        let bad_url = || ConfigError::BaseUrl(config.base_url.clone());
        let uri: Uri = config.base_url.parse().map_err(|_| bad_url())?;
        let path_ok = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        let (Some(scheme), Some(authority), true) =
            (uri.scheme().cloned(), uri.authority().cloned(), path_ok)
        else {
            return Err(bad_url());
        };
        let topic = match &config.topic {
            Some(topic) => Some(HeaderValue::from_str(topic).map_err(|_| ConfigError::Topic)?),
            None => None,
        };
        if config.max_attempts == 0 {
            return Err(ConfigError::Zero("max_attempts"));
        }
        if config.max_pending == 0 {
            return Err(ConfigError::Zero("max_pending"));
        }
        Ok(Sender {
            backoff: Backoff::new(config.initial_backoff, config.max_backoff, config.seed),
            ids: ApnsIdGenerator::new(config.seed ^ 0x5eed_a9e5),
            max_streams: config.initial_max_concurrent_streams,
            config,
            scheme,
            authority,
            topic,
            auth,
            queue: RetryQueue::new(),
            in_flight: HashMap::new(),
            outbox: Outbox::new(),
            next_request: 0,
            stats: Stats::default(),
        })
    }

    /// Queues `message` for `token`. Hands everything back when `max_pending` notifications
    /// are queued and unreported; drain the sender and offer it again. The `apns-id` is the
    /// message's own, or generated from the seed.
    pub fn queue(
        &mut self,
        token: ApnsToken,
        message: Message,
        tag: T,
    ) -> Result<(), Full<(ApnsToken, Message, T)>> {
        if !self.outbox.admit(self.config.max_pending) {
            return Err(Full((token, message, tag)));
        }
        self.stats.queued += 1;
        let apns_id = match message.apns_id() {
            Some(id) => id,
            None => self.ids.next_id(),
        };
        self.queue.push_back(Entry {
            token,
            message,
            tag,
            apns_id,
            attempts: 0,
            expired_retried: false,
            last_error: String::new(),
        });
        Ok(())
    }

    /// The next request to send, if one is ready, a stream is free, and (token auth) a usable
    /// token exists or may be signed now. Signs a new provider token when the refresh rules
    /// call for it.
    pub fn poll_request(&mut self, now: Instant) -> Option<(RequestId, http::Request<Bytes>)> {
        self.queue.promote(now);
        while self.in_flight.len() < usize::try_from(self.max_streams).unwrap_or(usize::MAX) {
            if !self.queue.has_ready() {
                return None;
            }
            let (authorization, generation) = match &mut self.auth {
                Auth::Certificate => (None, None),
                Auth::Token(auth) => match auth.token(now) {
                    Ok(None) => return None,
                    Ok(Some((token, fresh))) => {
                        if fresh {
                            self.stats.token_refreshes += 1;
                            self.outbox.event(Event::TokenRefreshed {
                                generation: token.generation(),
                                iat: token.iat(),
                            });
                        }
                        (
                            Some(token.authorization().clone()),
                            Some(token.generation()),
                        )
                    }
                    Err(error) => {
                        let entry = self.queue.pop_front()?;
                        self.outbox.event(Event::SignerFailed(error.clone()));
                        self.fail(entry, rejected(format!("provider token: {error}")), None);
                        continue;
                    }
                },
            };
            let mut entry = self.queue.pop_front()?;
            let request = match self.build_request(&entry, authorization) {
                Ok(request) => request,
                Err(error) => {
                    self.fail(entry, error, None);
                    continue;
                }
            };
            entry.attempts += 1;
            let id = RequestId(self.next_request);
            self.next_request += 1;
            self.in_flight.insert(id, InFlight { entry, generation });
            self.stats.requests += 1;
            self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight.len());
            return Some((id, request));
        }
        None
    }

    /// APNs answered request `id`. Unknown ids are ignored.
    pub fn handle_response(
        &mut self,
        id: RequestId,
        response: http::Response<Bytes>,
        now: Instant,
    ) {
        let Some(InFlight { entry, generation }) = self.in_flight.remove(&id) else {
            return;
        };
        self.stats.responses += 1;
        let classified = classify(response.status(), response.headers(), response.body());
        let status = classified.status.as_u16();
        let reason = classified.reason;
        let described = if reason.as_str().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("{status} {reason}")
        };
        let mut report = Report {
            token: entry.token,
            apns_id: classified.apns_id.unwrap_or(entry.apns_id),
            status: Some(status),
            reason: (status != 200).then(|| reason.clone()),
            unregistered_at: None,
            outcome: Outcome::delivered(()),
        };
        match classified.verdict {
            Verdict::Delivered => {
                self.outbox.clear_client_error();
                self.emit(report, entry.tag, None);
            }
            Verdict::InvalidDevice { timestamp } => {
                report.unregistered_at = timestamp;
                self.emit(report, entry.tag, Some(DeviceError::InvalidDevice));
            }
            Verdict::PayloadTooLarge => {
                let error = DeviceError::PayloadTooLarge {
                    size: entry.message.body.len(),
                    limit: entry.message.push_type().payload_limit(),
                };
                self.emit(report, entry.tag, Some(error));
            }
            Verdict::Retry {
                retry_after,
                client_wide,
            } => {
                if client_wide {
                    self.client_error(status, reason);
                }
                self.retry(entry, described, retry_after, now);
            }
            Verdict::ExpiredToken => match (&mut self.auth, generation) {
                (Auth::Token(auth), Some(generation)) if !entry.expired_retried => {
                    auth.handle_expired(generation);
                    let mut entry = entry;
                    entry.expired_retried = true;
                    entry.attempts = entry.attempts.saturating_sub(1);
                    entry.last_error = described;
                    self.queue.push_front(entry);
                }
                _ => {
                    self.client_error(status, reason);
                    self.emit(report, entry.tag, Some(rejected(described)));
                }
            },
            Verdict::ClientError => {
                self.client_error(status, reason);
                self.emit(report, entry.tag, Some(rejected(described)));
            }
            Verdict::Rejected => self.emit(report, entry.tag, Some(rejected(described))),
        }
    }

    /// Request `id` failed in transport after it may have been processed (connection reset,
    /// stream reset other than REFUSED_STREAM, timeout, a GOAWAY covering the stream): it is
    /// retried after the backoff, counting an attempt. `reason` is kept for the report.
    pub fn handle_failure(&mut self, id: RequestId, reason: &str, now: Instant) {
        if let Some(InFlight { entry, .. }) = self.in_flight.remove(&id) {
            self.stats.transport_failures += 1;
            let error = format!("transport failure: {reason}");
            self.retry(entry, error, None, now);
        }
    }

    /// The server did not process request `id` (its stream is above a GOAWAY's
    /// last-stream-id, or was reset with REFUSED_STREAM, or never opened because the
    /// connection was lost first): it goes back to the front of the queue and is sent again
    /// without counting an attempt.
    pub fn handle_refused(&mut self, id: RequestId) {
        if let Some(InFlight { mut entry, .. }) = self.in_flight.remove(&id) {
            self.stats.refused += 1;
            entry.attempts = entry.attempts.saturating_sub(1);
            self.queue.push_front(entry);
        }
    }

    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` (or the adapter's own cap) is now `n`.
    /// No new request goes out while `n` or more are in flight; `0` pauses sending. Requests
    /// already in flight above a lowered limit run to completion.
    pub fn handle_max_concurrent_streams(&mut self, n: u32) {
        self.max_streams = n;
    }

    /// Re-anchors the wall clock used for the provider token's `iat` (token auth; ignored for
    /// certificate auth). See [`TokenAuth::handle_wall_clock`].
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        if let Auth::Token(auth) = &mut self.auth {
            auth.handle_wall_clock(now, unix_now);
        }
    }

    /// Time has passed: retries that are due become ready for
    /// [`poll_request`](Self::poll_request).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue.promote(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the earliest due
    /// retry, or the moment a stale provider token may be replaced while requests wait for it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let token = match &self.auth {
            Auth::Token(auth) if self.queue.has_ready() => auth.refresh_allowed_at(),
            _ => None,
        };
        self.queue.next_due().into_iter().chain(token).min()
    }

    /// The next final result of a queued notification.
    pub fn poll_outcome(&mut self) -> Option<Report<T>> {
        self.outbox.poll_outcome()
    }

    /// The next client-wide event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox.poll_event()
    }

    /// True when every queued notification's report has been polled and no event waits.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_idle()
    }

    /// Requests handed out and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The stream limit in force.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_streams
    }

    /// The token authentication state, when using tokens.
    pub fn token_auth(&self) -> Option<&TokenAuth> {
        match &self.auth {
            Auth::Token(auth) => Some(auth),
            Auth::Certificate => None,
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn build_request(
        &self,
        entry: &Entry<T>,
        authorization: Option<HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("/3/device/{}", entry.token))
            .build()
            .map_err(|e| rejected(format!("cannot build the request URI: {e}")))?;
        let mut request = http::Request::new(entry.message.body.clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        entry
            .message
            .headers
            .write(headers, self.topic.as_ref(), entry.apns_id);
        Ok(request)
    }

    /// Reports a client-wide error, once per distinct status and reason in a row.
    fn client_error(&mut self, status: u16, reason: Reason) {
        self.outbox
            .client_error((status, reason), |(status, reason)| Event::ClientError {
                status: *status,
                reason: reason.clone(),
            });
    }

    /// Schedules `entry` again after `retry_after` or the backoff, unless it is out of
    /// attempts.
    fn retry(
        &mut self,
        mut entry: Entry<T>,
        error: String,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        entry.last_error = error;
        if entry.attempts >= self.config.max_attempts {
            let error = DeviceError::Unavailable {
                attempts: entry.attempts,
                last_error: entry.last_error.clone(),
            };
            return self.fail(entry, error, None);
        }
        let delay =
            retry_after.unwrap_or_else(|| self.backoff.delay(entry.attempts.saturating_sub(1)));
        match now.checked_add(delay) {
            Some(due) => {
                self.stats.retries += 1;
                self.queue.schedule(due, entry);
            }
            None => {
                let error = DeviceError::Unavailable {
                    attempts: entry.attempts,
                    last_error: format!("{}; retry delay out of range", entry.last_error),
                };
                self.fail(entry, error, None);
            }
        }
    }

    /// Reports `entry` failed without a (final) response.
    fn fail(&mut self, entry: Entry<T>, error: DeviceError, status: Option<u16>) {
        let report = Report {
            token: entry.token,
            apns_id: entry.apns_id,
            status,
            reason: None,
            unregistered_at: None,
            outcome: Outcome::delivered(()),
        };
        self.emit(report, entry.tag, Some(error));
    }

    /// Records a final report, attaching `tag` and `error`.
    fn emit(&mut self, report: Report<()>, tag: T, error: Option<DeviceError>) {
        match error {
            Some(_) => self.stats.failed += 1,
            None => self.stats.delivered += 1,
        }
        let Report {
            token,
            apns_id,
            status,
            reason,
            unregistered_at,
            ..
        } = report;
        let outcome = match error {
            Some(error) => Outcome::failed(tag, error),
            None => Outcome::delivered(tag),
        };
        self.outbox.report(Report {
            outcome,
            token,
            apns_id,
            status,
            reason,
            unregistered_at,
        });
    }
}
