//! [`Sender`]: the FCM HTTP v1 state machine (requests, in-flight limit, retries, access
//! tokens).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Uri};
use thiserror::Error;

use super::message::{MAX_MESSAGE_SIZE, Message};
use super::oauth::{OAuth, TokenError, TokenUpdate};
use super::response::{ErrorCode, Verdict, classify};
use super::service_account::ServiceAccount;
use crate::jose::SignError;
use crate::sending::{Outbox, RetryQueue};
use crate::{Backoff, DeviceError, Full, GcmToken, Outcome, TokenError as BadToken};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// The FCM endpoint.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";

/// Names a request handed out by [`Sender::poll_request`]; give it back with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// Settings of a [`Sender`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Scheme and authority of the service ([`DEFAULT_BASE_URL`]); the path is
    /// `/v1/projects/<project_id>/messages:send`.
    pub base_url: String,
    /// The Firebase project messages are sent for.
    pub project_id: String,
    /// Ask FCM to validate messages without delivering them (`"validate_only": true`).
    pub validate_only: bool,
    /// Notifications queued and not yet reported, beyond which [`Sender::queue`] answers
    /// [`Full`].
    pub max_pending: usize,
    /// Most requests in flight at once; the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
    /// ([`Sender::handle_max_concurrent_streams`]) lowers it further.
    pub max_in_flight: u32,
    /// How many times one notification may be sent (responses and transport failures count;
    /// refused streams and the one resend after a refused access token do not).
    pub max_attempts: u32,
    /// First retry delay when the response has no `Retry-After`; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Seed of the backoff jitter.
    pub seed: u64,
}

impl Config {
    /// Defaults for `project_id`: [`DEFAULT_BASE_URL`], no validate-only, 100,000 pending,
    /// 100 in flight, 3 attempts, backoff from 1 s to 60 s, seed 0.
    pub fn new(project_id: impl Into<String>) -> Self {
        Config {
            base_url: DEFAULT_BASE_URL.into(),
            project_id: project_id.into(),
            validate_only: false,
            max_pending: 100_000,
            max_in_flight: 100,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            seed: 0,
        }
    }

    /// Defaults for the service account's own project.
    pub fn for_account(account: &ServiceAccount) -> Self {
        Config::new(account.project_id.clone())
    }
}

/// An unusable [`Config`] field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `base_url` is not `scheme://authority` (a path other than `/` is not allowed).
    #[error("base_url must be like https://fcm.googleapis.com, got {0:?}")]
    BaseUrl(String),
    /// `project_id` is empty or has characters a project id cannot have.
    #[error("project_id must be letters, digits, '-', '.', ':' or '_', got {0:?}")]
    ProjectId(String),
    /// `max_attempts`, `max_pending` or `max_in_flight` is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Something that concerns the whole client rather than one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// FCM refused the client's credentials or configuration (`THIRD_PARTY_AUTH_ERROR`,
    /// `PERMISSION_DENIED`, a wrong project, an access token refused again right after a
    /// refresh). The notification failed; later ones will likely fail the same way until it
    /// is fixed. Reported once per distinct status and code until a notification is delivered.
    ClientError {
        /// The HTTP status.
        status: u16,
        /// FCM's `errorCode`, else the RPC status, else empty.
        code: String,
    },
    /// A new access token is in use.
    TokenRefreshed {
        /// Its generation (1 for the first token).
        generation: u64,
        /// Its lifetime.
        expires_in: Duration,
    },
    /// A token request failed. When `retry_at` is `None` it was final: the notifications
    /// waiting for a token failed ([`DeviceError::Rejected`] when the credentials were
    /// refused, [`DeviceError::Unavailable`] after repeated transient failures).
    TokenRequestFailed {
        /// What went wrong.
        error: TokenError,
        /// When the token request goes out again, if it does.
        retry_at: Option<Instant>,
    },
    /// The [`RsaSigner`](super::RsaSigner) failed; the notifications waiting for a token
    /// failed with [`DeviceError::Rejected`].
    SignerFailed(SignError),
}

/// The final result of one notification, with what FCM said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<T> {
    /// The outcome (tag and error), as every provider reports it.
    pub outcome: Outcome<T>,
    /// The registration token.
    pub token: GcmToken,
    /// FCM's message id, for a delivered notification.
    pub message_id: Option<String>,
    /// The status of the last response, if one came.
    pub status: Option<u16>,
    /// The `errorCode` of the last error response, if any.
    pub error_code: Option<ErrorCode>,
}

/// Counters since the sender was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Notifications accepted by [`Sender::queue`].
    pub queued: u64,
    /// Requests handed out (first sends, retries and resends).
    pub requests: u64,
    /// Responses handled.
    pub responses: u64,
    /// Transport failures handled.
    pub transport_failures: u64,
    /// Requests the server did not process, sent again.
    pub refused: u64,
    /// Retries scheduled after a transient error.
    pub retries: u64,
    /// Token requests handed out.
    pub token_requests: u64,
    /// Access tokens obtained.
    pub token_refreshes: u64,
    /// Token requests that failed.
    pub token_failures: u64,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications failed.
    pub failed: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: usize,
}

/// One queued notification.
struct Entry<T> {
    token: GcmToken,
    message: Message,
    tag: T,
    attempts: u32,
    /// Sent again once already after FCM refused the access token.
    reauthenticated: bool,
    /// The end of its time to live: no retry is scheduled past it.
    expires: Option<Instant>,
    last_error: String,
    last_status: Option<u16>,
    last_code: Option<ErrorCode>,
}

struct InFlight<T> {
    entry: Entry<T>,
    /// The access token generation it was sent with.
    generation: u64,
}

/// The FCM HTTP v1 sender: a sans-IO state machine that turns queued notifications into
/// `POST /v1/projects/<project>/messages:send` requests, obtains the OAuth2 access token they
/// carry, and turns responses into one [`Report`] per notification.
///
/// # Driving it
/// 1. [`queue`](Self::queue) notifications; on [`Full`], drain the outputs and offer it again.
/// 2. After every input, drain: [`poll_token_request`](Self::poll_token_request) (send it to
///    the account's `token_uri`, then call [`handle_token_response`](Self::handle_token_response)
///    or [`handle_token_failure`](Self::handle_token_failure)), then
///    [`poll_request`](Self::poll_request) until `None` (send each to FCM over HTTP/2, then
///    call [`handle_response`](Self::handle_response), [`handle_failure`](Self::handle_failure)
///    or [`handle_refused`](Self::handle_refused) with its id), then
///    [`poll_outcome`](Self::poll_outcome) and [`poll_event`](Self::poll_event).
/// 3. Report the server's `SETTINGS_MAX_CONCURRENT_STREAMS` with
///    [`handle_max_concurrent_streams`](Self::handle_max_concurrent_streams).
/// 4. Wake up at [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), and go to 2.
///
/// # Rules
/// - Notifications wait, in order, while no access token is usable; the token rules are in
///   [`oauth`](super::oauth).
/// - At most `min(max_in_flight, server streams)` requests are in flight.
/// - Responses are classified per the table in [`response`](super::response); transient
///   errors are retried after `Retry-After` or the backoff, at most `max_attempts` sends, then
///   [`DeviceError::Unavailable`]. A retry that would come after the message's time to live
///   is not made: the notification fails at once.
/// - Requests the server did not process go back to the front of the queue without counting
///   an attempt.
pub struct Sender<T> {
    config: Config,
    uri: Uri,
    auth: OAuth,
    backoff: Backoff,
    queue: RetryQueue<Entry<T>>,
    in_flight: HashMap<RequestId, InFlight<T>>,
    server_streams: u32,
    outbox: Outbox<Report<T>, Event, (u16, String)>,
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
            .field("server_streams", &self.server_streams)
            .field("pending", &self.outbox.pending())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn rejected(code: String) -> DeviceError {
    DeviceError::Rejected {
        provider: "fcm",
        code,
    }
}

/// The `messages:send` URI, or the field that makes it invalid.
fn send_uri(config: &Config) -> Result<Uri, ConfigError> {
    let bad_url = || ConfigError::BaseUrl(config.base_url.clone());
    let base: Uri = config.base_url.parse().map_err(|_| bad_url())?;
    let path_ok = base.path_and_query().is_none_or(|p| p.as_str() == "/");
    let (Some(scheme), Some(authority), true) = (base.scheme(), base.authority(), path_ok) else {
        return Err(bad_url());
    };
    let project = &config.project_id;
    let project_ok = !project.is_empty()
        && project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    if !project_ok {
        return Err(ConfigError::ProjectId(project.chars().take(64).collect()));
    }
    format!("{scheme}://{authority}/v1/projects/{project}/messages:send")
        .parse()
        .map_err(|_| ConfigError::ProjectId(project.clone()))
}

impl<T> Sender<T> {
    /// A sender for `config` authenticating with `auth`, or the first invalid field.
    pub fn new(config: Config, auth: OAuth) -> Result<Self, ConfigError> {
        let uri = send_uri(&config)?;
        for (name, value) in [
            ("max_attempts", config.max_attempts as usize),
            ("max_pending", config.max_pending),
            ("max_in_flight", config.max_in_flight as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(Sender {
            backoff: Backoff::new(config.initial_backoff, config.max_backoff, config.seed),
            config,
            uri,
            auth,
            queue: RetryQueue::new(),
            in_flight: HashMap::new(),
            server_streams: u32::MAX,
            outbox: Outbox::new(),
            next_request: 0,
            stats: Stats::default(),
        })
    }

    /// Queues `message` for `token`. Hands everything back when `max_pending` notifications
    /// are queued and unreported; drain the sender and offer it again. The message's time to
    /// live counts from `now`.
    pub fn queue(
        &mut self,
        token: GcmToken,
        message: Message,
        tag: T,
        now: Instant,
    ) -> Result<(), Full<(GcmToken, Message, T)>> {
        if !self.outbox.admit(self.config.max_pending) {
            return Err(Full((token, message, tag)));
        }
        self.stats.queued += 1;
        let expires = message
            .ttl()
            .and_then(|ttl| now.checked_add(Duration::from_secs(u64::from(ttl))));
        self.queue.push_back(Entry {
            token,
            message,
            tag,
            attempts: 0,
            reauthenticated: false,
            expires,
            last_error: String::new(),
            last_status: None,
            last_code: None,
        });
        Ok(())
    }

    /// The access-token request to send to the service account's `token_uri` (not to FCM),
    /// when notifications wait for a token and none is usable, in flight or delayed.
    pub fn poll_token_request(&mut self, now: Instant) -> Option<http::Request<Bytes>> {
        self.queue.promote(now);
        if !self.queue.has_ready() {
            return None;
        }
        match self.auth.poll_request(now)? {
            Ok(request) => {
                self.stats.token_requests += 1;
                Some(request)
            }
            Err(error) => {
                let code = format!("no access token: {error}");
                self.outbox.event(Event::SignerFailed(error));
                self.fail_ready(|_| rejected(code.clone()));
                None
            }
        }
    }

    /// The token endpoint answered the request from
    /// [`poll_token_request`](Self::poll_token_request).
    pub fn handle_token_response(&mut self, response: http::Response<Bytes>, now: Instant) {
        if let Some(update) = self.auth.handle_response(&response, now) {
            self.token_update(update);
        }
    }

    /// The token request failed in transport (connection refused, reset, timed out).
    pub fn handle_token_failure(&mut self, reason: &str, now: Instant) {
        if let Some(update) = self.auth.handle_failure(reason, now) {
            self.token_update(update);
        }
    }

    /// The next request to send to FCM, if one is ready, a slot is free and an access token is
    /// usable.
    pub fn poll_request(&mut self, now: Instant) -> Option<(RequestId, http::Request<Bytes>)> {
        self.queue.promote(now);
        let limit = self.config.max_in_flight.min(self.server_streams);
        if self.in_flight.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return None;
        }
        if !self.queue.has_ready() {
            return None;
        }
        let token = self.auth.token(now)?;
        let (authorization, generation) = (token.authorization().clone(), token.generation());
        let mut entry = self.queue.pop_front()?;
        let request = self.build_request(&entry, authorization);
        entry.attempts += 1;
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.in_flight.insert(id, InFlight { entry, generation });
        self.stats.requests += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight.len());
        Some((id, request))
    }

    /// FCM answered request `id`. Unknown ids are ignored.
    pub fn handle_response(
        &mut self,
        id: RequestId,
        response: http::Response<Bytes>,
        now: Instant,
    ) {
        let Some(InFlight {
            mut entry,
            generation,
        }) = self.in_flight.remove(&id)
        else {
            return;
        };
        self.stats.responses += 1;
        let classified = classify(response.status(), response.headers(), response.body());
        let described = classified.describe();
        let status = classified.status.as_u16();
        entry.last_status = Some(status);
        entry.last_code = classified.error_code.clone();
        match classified.verdict {
            Verdict::Delivered => {
                self.outbox.clear_client_error();
                self.emit(entry, None, classified.message_id);
            }
            Verdict::InvalidDevice => self.emit(entry, Some(DeviceError::InvalidDevice), None),
            Verdict::InvalidToken => {
                let error = BadToken::RejectedByService(described).into();
                self.emit(entry, Some(error), None);
            }
            Verdict::PayloadTooLarge => {
                let error = DeviceError::PayloadTooLarge {
                    size: entry.message.encoded_len(),
                    limit: MAX_MESSAGE_SIZE,
                };
                self.emit(entry, Some(error), None);
            }
            Verdict::Retry { retry_after } => self.retry(entry, described, retry_after, now),
            Verdict::Unauthenticated if !entry.reauthenticated => {
                self.auth.handle_rejected(generation);
                entry.reauthenticated = true;
                entry.attempts = entry.attempts.saturating_sub(1);
                entry.last_error = described;
                self.queue.push_front(entry);
            }
            Verdict::Unauthenticated | Verdict::ClientError => {
                let code = classified
                    .error_code
                    .as_ref()
                    .map(|code| code.as_str().to_owned())
                    .or(classified.rpc_status)
                    .unwrap_or_default();
                self.client_error(status, code);
                self.emit(entry, Some(rejected(described)), None);
            }
            Verdict::Rejected => self.emit(entry, Some(rejected(described)), None),
        }
    }

    /// Request `id` failed in transport after it may have been processed (connection reset,
    /// stream reset other than REFUSED_STREAM, timeout): it is retried after the backoff,
    /// counting an attempt.
    pub fn handle_failure(&mut self, id: RequestId, reason: &str, now: Instant) {
        if let Some(InFlight { entry, .. }) = self.in_flight.remove(&id) {
            self.stats.transport_failures += 1;
            self.retry(entry, format!("transport failure: {reason}"), None, now);
        }
    }

    /// The server did not process request `id` (REFUSED_STREAM, above a GOAWAY's
    /// last-stream-id, or never sent): it goes back to the front of the queue and is sent
    /// again without counting an attempt.
    pub fn handle_refused(&mut self, id: RequestId) {
        if let Some(InFlight { mut entry, .. }) = self.in_flight.remove(&id) {
            self.stats.refused += 1;
            entry.attempts = entry.attempts.saturating_sub(1);
            self.queue.push_front(entry);
        }
    }

    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` is now `n`; the limit in force is the
    /// smaller of it and `max_in_flight`. `0` pauses sending; requests already in flight
    /// above a lowered limit run to completion.
    pub fn handle_max_concurrent_streams(&mut self, n: u32) {
        self.server_streams = n;
    }

    /// Re-anchors the wall clock used for the assertion's `iat`.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.auth.handle_wall_clock(now, unix_now);
    }

    /// Time has passed: retries that are due become ready.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue.promote(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the earliest due
    /// retry, or, while notifications wait, the moment the token state changes by itself (a
    /// token request's retry delay ends, the token is due for a refresh).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let token = if self.queue.has_ready() {
            self.auth.poll_timeout()
        } else {
            None
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

    /// The in-flight limit in force.
    pub fn max_in_flight(&self) -> u32 {
        self.config.max_in_flight.min(self.server_streams)
    }

    /// The access-token state.
    pub fn auth(&self) -> &OAuth {
        &self.auth
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn build_request(&self, entry: &Entry<T>, authorization: HeaderValue) -> http::Request<Bytes> {
        let body = entry
            .message
            .body_for(entry.token.as_str(), self.config.validate_only);
        let mut request = http::Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    fn token_update(&mut self, update: TokenUpdate) {
        match update {
            TokenUpdate::Refreshed {
                generation,
                expires_in,
            } => {
                self.stats.token_refreshes += 1;
                self.outbox.event(Event::TokenRefreshed {
                    generation,
                    expires_in,
                });
            }
            TokenUpdate::Retrying { error, at } => {
                self.stats.token_failures += 1;
                self.outbox.event(Event::TokenRequestFailed {
                    error,
                    retry_at: Some(at),
                });
            }
            TokenUpdate::GaveUp { error, attempts } => {
                self.stats.token_failures += 1;
                let last_error =
                    format!("no access token after {attempts} token requests: {error}");
                self.outbox.event(Event::TokenRequestFailed {
                    error,
                    retry_at: None,
                });
                self.fail_ready(|entry| DeviceError::Unavailable {
                    attempts: entry.attempts,
                    last_error: last_error.clone(),
                });
            }
            TokenUpdate::Refused(error) => {
                self.stats.token_failures += 1;
                let code = format!("access token refused: {error}");
                self.outbox.event(Event::TokenRequestFailed {
                    error,
                    retry_at: None,
                });
                self.fail_ready(|_| rejected(code.clone()));
            }
        }
    }

    /// Fails every notification waiting to be sent (they wait for a token that will not come).
    fn fail_ready(&mut self, error: impl Fn(&Entry<T>) -> DeviceError) {
        for entry in self.queue.take_ready() {
            let error = error(&entry);
            self.emit(entry, Some(error), None);
        }
    }

    /// Reports a client-wide error, once per distinct status and code in a row.
    fn client_error(&mut self, status: u16, code: String) {
        self.outbox
            .client_error((status, code), |(status, code)| Event::ClientError {
                status: *status,
                code: code.clone(),
            });
    }

    /// Schedules `entry` again after `retry_after` or the backoff, unless it is out of
    /// attempts or the retry would come after its time to live.
    fn retry(
        &mut self,
        mut entry: Entry<T>,
        error: String,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        entry.last_error = error;
        let give_up = |entry: &Entry<T>, why: &str| DeviceError::Unavailable {
            attempts: entry.attempts,
            last_error: format!("{}{why}", entry.last_error),
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
    fn emit(&mut self, entry: Entry<T>, error: Option<DeviceError>, message_id: Option<String>) {
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
        self.outbox.report(Report {
            outcome,
            token: entry.token,
            message_id,
            status: entry.last_status,
            error_code: entry.last_code,
        });
    }
}
