//! [`OAuth`]: service-account access tokens as a sans-IO state machine.
//!
//! The flow is OAuth2's JWT bearer grant (RFC 7523): sign an [assertion](super::assertion),
//! `POST` it to the account's `token_uri` as
//! `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<jwt>`
//! (`application/x-www-form-urlencoded`), and receive
//! `{"access_token":"...","expires_in":3599,"token_type":"Bearer"}`.
//!
//! # Rules
//! - At most one token request is in flight. Requests that need a token wait for it; they are
//!   never failed merely because a refresh is under way.
//! - A token is used until its lifetime, counted from the moment its request was handed out
//!   (so the network time is on the safe side), minus the refresh margin: [`REFRESH_MARGIN`]
//!   (5 minutes), or half the lifetime for tokens shorter than 10 minutes. After that the next
//!   send asks for a new token first.
//! - FCM answering `401 UNAUTHENTICATED` drops the token it was sent with
//!   ([`OAuth::handle_rejected`]); a token already replaced is not dropped again.
//! - Answers: 200 with a usable body gives a token; `408`, `429`, `5xx`, a transport failure
//!   or a malformed `200` are transient: the request is retried after the backoff, at most
//!   `max_attempts` times in a row, then [`TokenUpdate::GaveUp`]; any other status (`400
//!   invalid_grant`, `401 invalid_client`, `403`, `404`...) is [`TokenUpdate::Refused`]:
//!   retrying the same credentials cannot help. After either, the state starts afresh: the
//!   next send that needs a token asks again.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode, Uri};
use serde_json::Value;
use thiserror::Error;

use super::assertion::{RingSigner, RsaKeyError, RsaSigner, assertion};
use super::service_account::ServiceAccount;
use crate::Backoff;
use crate::jose::{SignError, unix_time};

/// How long before its expiry a token is replaced (see the module docs).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// Longest error text kept from a token endpoint's answer.
const MAX_DETAIL: usize = 200;

/// Why credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The private key is unusable.
    #[error(transparent)]
    Key(#[from] RsaKeyError),
    /// `token_uri` is not an absolute `http(s)` URL.
    #[error("the service account's token_uri is not an absolute URL: {0:?}")]
    TokenUri(String),
}

/// A failed token request: what the endpoint (or the transport) said.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.describe())]
pub struct TokenError {
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// True when retrying the same credentials cannot help.
    pub permanent: bool,
    /// The endpoint's `error` and `error_description`, or what was wrong with the answer.
    pub detail: String,
}

impl TokenError {
    fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("token endpoint answered {status}: {}", self.detail),
            None => format!("token request failed: {}", self.detail),
        }
    }
}

/// A granted access token, as parsed from the endpoint's answer. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The bearer token.
    pub access_token: String,
    /// Its lifetime.
    pub expires_in: Duration,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Parses a token endpoint's answer (see the module docs for what is transient).
pub fn parse_token_response(status: StatusCode, body: &[u8]) -> Result<Grant, TokenError> {
    let json: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let field = |name| json.as_ref().and_then(|json| json.get(name));
    let text = |name| field(name).and_then(Value::as_str);
    if status != StatusCode::OK {
        let transient = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        let detail = match (text("error"), text("error_description")) {
            (Some(error), Some(description)) => format!("{error} ({description})"),
            (Some(error), None) => error.to_owned(),
            _ => status
                .canonical_reason()
                .unwrap_or("no error code")
                .to_owned(),
        };
        return Err(TokenError {
            status: Some(status.as_u16()),
            permanent: !transient,
            detail: detail.chars().take(MAX_DETAIL).collect(),
        });
    }
    if json.is_none() {
        return Err(malformed("not a JSON object"));
    }
    let access_token = text("access_token")
        .filter(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| malformed("no usable access_token"))?;
    let expires_in = field("expires_in")
        .and_then(Value::as_u64)
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| malformed("expires_in is not a positive integer"))?;
    let bearer_type = |kind: &Value| {
        kind.as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
    };
    if field("token_type").is_some_and(|kind| !bearer_type(kind)) {
        return Err(malformed("token_type is not Bearer"));
    }
    Ok(Grant {
        access_token: access_token.to_owned(),
        expires_in: Duration::from_secs(expires_in),
    })
}

/// The transient error of a `200` whose body is unusable.
fn malformed(what: &str) -> TokenError {
    TokenError {
        status: Some(200),
        permanent: false,
        detail: format!("malformed token response: {what}"),
    }
}

/// `Bearer <token>` as a sensitive header value.
fn bearer(access_token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {access_token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The access token in use. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    authorization: HeaderValue,
    generation: u64,
    expires_in: Duration,
    refresh_at: Instant,
}

impl AccessToken {
    /// Counts tokens obtained by one [`OAuth`], from 1.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The lifetime the endpoint granted.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// When it stops being used and a new one is requested.
    pub fn refresh_at(&self) -> Instant {
        self.refresh_at
    }

    /// The `authorization` header value, `Bearer <token>` (marked sensitive).
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("generation", &self.generation)
            .field("expires_in", &self.expires_in)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// What one answer to a token request changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUpdate {
    /// A new token is in use.
    Refreshed {
        /// Its generation.
        generation: u64,
        /// Its lifetime.
        expires_in: Duration,
    },
    /// A transient failure; the request is sent again at `at`.
    Retrying {
        /// What went wrong.
        error: TokenError,
        /// When the next token request may go out.
        at: Instant,
    },
    /// Transient failures `attempts` times in a row: sends waiting for a token should fail.
    GaveUp {
        /// The last failure.
        error: TokenError,
        /// Token requests made in this round.
        attempts: u32,
    },
    /// The endpoint refused the credentials: sends waiting for a token should fail.
    Refused(TokenError),
}

/// Service-account access tokens: when to ask, what to send, what the answer means.
pub struct OAuth {
    signer: Box<dyn RsaSigner>,
    client_email: String,
    token_uri: String,
    uri: Uri,
    wall: (Instant, u64),
    refresh_margin: Duration,
    max_attempts: u32,
    backoff: Backoff,
    current: Option<AccessToken>,
    /// The moment the request in flight was handed out.
    in_flight: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    generation: u64,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("key_id", &self.signer.key_id())
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("current", &self.current)
            .field("in_flight", &self.in_flight.is_some())
            .field("failures", &self.failures)
            .field("retry_at", &self.retry_at)
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// Tokens for `account`, signing with its own key through [`RingSigner`]; `(now,
    /// unix_now)` is one reading of the monotonic and the wall clock (UNIX seconds).
    pub fn from_service_account(
        account: &ServiceAccount,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, CredentialsError> {
        let signer = RingSigner::from_service_account(account)?;
        OAuth::new(account, signer, now, unix_now)
    }

    /// Tokens for `account` signed by `signer` (whose key is the account's).
    pub fn new(
        account: &ServiceAccount,
        signer: impl RsaSigner + 'static,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, CredentialsError> {
        let bad_uri = || CredentialsError::TokenUri(account.token_uri.clone());
        let uri: Uri = account.token_uri.parse().map_err(|_| bad_uri())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
        if !scheme_ok || uri.authority().is_none() {
            return Err(bad_uri());
        }
        Ok(OAuth {
            signer: Box::new(signer),
            client_email: account.client_email.clone(),
            token_uri: account.token_uri.clone(),
            uri,
            wall: (now, unix_now),
            refresh_margin: REFRESH_MARGIN,
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0),
            current: None,
            in_flight: None,
            failures: 0,
            retry_at: None,
            generation: 0,
        })
    }

    /// Token requests in a row before giving up (at least 1; default 3) and the backoff
    /// between them (default 1 s doubling to 60 s, jitter from `seed`).
    pub fn retry(mut self, max_attempts: u32, initial: Duration, max: Duration, seed: u64) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.backoff = Backoff::new(initial, max, seed);
        self
    }

    /// Replaces tokens this long before they expire (default [`REFRESH_MARGIN`]; at most
    /// half a token's lifetime is used).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The endpoint token requests go to.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Re-anchors wall-clock time (for the assertion's `iat`): `unix_now` is the time at `now`.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.wall = (now, unix_now);
    }

    /// The token to send with at `now`, if one is usable.
    pub fn token(&self, now: Instant) -> Option<&AccessToken> {
        self.current.as_ref().filter(|token| now < token.refresh_at)
    }

    /// The token in use, even if it is due for a refresh.
    pub fn current(&self) -> Option<&AccessToken> {
        self.current.as_ref()
    }

    /// True while a token request is in flight.
    pub fn is_requesting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The token request to send now, when no token is usable, none is in flight and no
    /// retry delay runs. `Some(Err)` when signing failed (nothing is in flight then).
    pub fn poll_request(
        &mut self,
        now: Instant,
    ) -> Option<Result<http::Request<Bytes>, SignError>> {
        if self.token(now).is_some()
            || self.in_flight.is_some()
            || self.retry_at.is_some_and(|at| now < at)
        {
            return None;
        }
        self.retry_at = None;
        let iat = unix_time(self.wall, now);
        let jwt = match assertion(&*self.signer, &self.client_email, &self.token_uri, iat) {
            Ok(jwt) => jwt,
            Err(error) => return Some(Err(error)),
        };
        let body = format!("grant_type={GRANT_TYPE}&assertion={jwt}");
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        self.in_flight = Some(now);
        Some(Ok(request))
    }

    /// The token endpoint answered. `None` when no request was in flight.
    pub fn handle_response(
        &mut self,
        response: &http::Response<Bytes>,
        now: Instant,
    ) -> Option<TokenUpdate> {
        let sent = self.in_flight.take()?;
        match parse_token_response(response.status(), response.body()) {
            Ok(grant) => match bearer(&grant.access_token) {
                Some(authorization) => Some(self.install(authorization, grant.expires_in, sent)),
                None => Some(self.transient(malformed("access_token is not a header value"), now)),
            },
            Err(error) if error.permanent => {
                self.failures = 0;
                Some(TokenUpdate::Refused(error))
            }
            Err(error) => Some(self.transient(error, now)),
        }
    }

    /// The token request failed in transport. `None` when no request was in flight.
    pub fn handle_failure(&mut self, reason: &str, now: Instant) -> Option<TokenUpdate> {
        self.in_flight.take()?;
        let error = TokenError {
            status: None,
            permanent: false,
            detail: reason.chars().take(MAX_DETAIL).collect(),
        };
        Some(self.transient(error, now))
    }

    /// FCM answered `401` to a request sent with token `generation`: it is dropped, unless
    /// it was already replaced.
    pub fn handle_rejected(&mut self, generation: u64) {
        if self.current.as_ref().map(AccessToken::generation) == Some(generation) {
            self.current = None;
        }
    }

    /// When something changes by itself: the end of a retry delay, else the current token's
    /// refresh time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.retry_at
            .or_else(|| self.current.as_ref().map(AccessToken::refresh_at))
    }

    fn install(
        &mut self,
        authorization: HeaderValue,
        expires_in: Duration,
        sent: Instant,
    ) -> TokenUpdate {
        let margin = self.refresh_margin.min(expires_in / 2);
        let lifetime = expires_in.saturating_sub(margin);
        // A lifetime beyond what `Instant` can hold means "for as long as we run".
        let refresh_at = sent
            .checked_add(lifetime)
            .or_else(|| sent.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(sent);
        self.generation += 1;
        self.failures = 0;
        self.current = Some(AccessToken {
            authorization,
            generation: self.generation,
            expires_in,
            refresh_at,
        });
        TokenUpdate::Refreshed {
            generation: self.generation,
            expires_in,
        }
    }

    fn transient(&mut self, error: TokenError, now: Instant) -> TokenUpdate {
        self.failures += 1;
        if self.failures >= self.max_attempts {
            let attempts = self.failures;
            self.failures = 0;
            return TokenUpdate::GaveUp { error, attempts };
        }
        let delay = self.backoff.delay(self.failures - 1);
        let at = now.checked_add(delay).unwrap_or(now);
        self.retry_at = Some(at);
        TokenUpdate::Retrying { error, at }
    }
}

#[cfg(test)]
pub(crate) mod tests;
