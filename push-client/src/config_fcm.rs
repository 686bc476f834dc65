//! Settings of Google's FCM HTTP v1 API: the service account (whose key signs the OAuth2
//! assertions), the project, the endpoints, and the connection pool.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use push_proto::fcm::{self, OAuth, ServiceAccount};

use crate::error::Error;
use crate::net::{Endpoint, Timeouts, https_endpoint};
use crate::tls::Tls;

/// FCM HTTP v1 (the live Android protocol), authenticated as a Google service account.
///
/// The service account's private key never appears in `Debug` output, logs or errors.
///
/// ```no_run
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::FcmConfig;
/// let fcm = FcmConfig::from_service_account_file("service-account.json")?
///     .validate_only(true);
/// # let _ = fcm;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub(crate) account: ServiceAccount,
    pub(crate) endpoint: Endpoint,
    pub(crate) core: fcm::Config,
    pub(crate) options: fcm::Options,
    pub(crate) tls: Tls,
    pub(crate) timeouts: Timeouts,
    pub(crate) request_timeout: Duration,
    pub(crate) ping_interval: Duration,
}

impl FcmConfig {
    /// Sends as the service account in `json` (the key file downloaded from the Firebase
    /// console), to its project at `https://fcm.googleapis.com`. A missing or malformed field
    /// is an [`Error::Config`] naming it.
    pub fn from_service_account_json(json: &str) -> Result<Self, Error> {
        let account = ServiceAccount::from_json(json).map_err(|error| Error::Config {
            field: "fcm service account",
            reason: error.to_string(),
        })?;
        let core = fcm::Config::for_account(&account);
        let endpoint = https_endpoint(&core.base_url, "fcm url")?;
        let config = FcmConfig {
            account,
            endpoint,
            core,
            options: fcm::Options::new(),
            tls: Tls::default(),
            timeouts: Timeouts::default(),
            request_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
        };
        config.auth(Instant::now())?;
        Ok(config)
    }

    /// Like [`from_service_account_json`](Self::from_service_account_json), reading the
    /// file at `path`; errors name the file.
    pub fn from_service_account_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|error| Error::ReadFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::from_service_account_json(&json).map_err(|error| match error {
            Error::Config { reason, .. } => Error::Config {
                field: "fcm service account",
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }

    /// Sends for this Firebase project instead of the service account's own.
    pub fn project(mut self, project_id: impl Into<String>) -> Self {
        self.core.project_id = project_id.into();
        self
    }

    /// Sends to the service at `url` (`https://host[:port]`) instead of
    /// `https://fcm.googleapis.com`.
    pub fn url(mut self, url: &str) -> Result<Self, Error> {
        self.endpoint = https_endpoint(url, "fcm url")?;
        self.core.base_url = url.trim_end_matches('/').to_owned();
        Ok(self)
    }

    /// Requests access tokens from `url` (also the assertion's audience) instead of the
    /// service account's `token_uri`.
    pub fn token_url(mut self, url: &str) -> Result<Self, Error> {
        self.account.token_uri = url.to_owned();
        self.auth(Instant::now())?;
        Ok(self)
    }

    /// Asks FCM to validate every message without delivering it (`validate_only`): a dry
    /// run that still reports bad tokens and invalid messages.
    pub fn validate_only(mut self, validate_only: bool) -> Self {
        self.core.validate_only = validate_only;
        self
    }

    /// FCM settings that are not part of the payload (image, Android package, `apns` and
    /// `webpush` objects, analytics label).
    pub fn options(mut self, options: fcm::Options) -> Self {
        self.options = options;
        self
    }

    /// TLS roots for the FCM and token endpoints.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// How many times one notification is sent at most.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.core.max_attempts = attempts;
        self
    }

    /// First and longest retry backoff (when FCM gives no `Retry-After`).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.core.initial_backoff = initial;
        self.core.max_backoff = max;
        self
    }

    /// Most requests in flight at once over all connections (default: no cap beyond the
    /// connections' stream limits).
    pub fn max_in_flight(mut self, requests: u32) -> Self {
        self.core.max_in_flight = requests.max(1);
        self
    }

    /// Connect and TLS handshake timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Longest one request may take before it counts as a transport failure.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Keeps exactly `connections` HTTP/2 connections to FCM (at least 1) while there is
    /// work; requests go to the least busy one. Without this, the client opens connections as
    /// the load asks (see [`max_connections`](Self::max_connections)).
    pub fn connections(mut self, connections: usize) -> Self {
        let n = u32::try_from(connections).unwrap_or(u32::MAX);
        self.core.pool = self.core.pool.fixed(n);
        self
    }

    /// How long requests may wait while every connection to FCM allows 0 streams before
    /// they end `unavailable` (default 10 s).
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.core.pool.stall_timeout = timeout;
        self
    }

    /// The delay after a failed dial (or a connection closed before answering anything),
    /// doubling per failure in a row up to `max` (default 250 ms to 30 s); after 5 in a row
    /// the requests waiting for a connection end `unavailable`.
    pub fn dial_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.core.pool.initial_dial_backoff = initial;
        self.core.pool.max_dial_backoff = max;
        self
    }

    /// Opens connections as the load asks, at most `connections` (at least 1; default 8): a
    /// new one when every stream of the open ones is busy and requests wait, as long as the
    /// last one raised the rate of answers (more connections help against a long round trip,
    /// not when the client, the server or the link is the limit); extra ones that stay idle
    /// for a minute are closed.
    pub fn max_connections(mut self, connections: usize) -> Self {
        let n = u32::try_from(connections).unwrap_or(u32::MAX);
        self.core.pool = self.core.pool.automatic(n);
        self
    }

    /// How often an open connection is pinged (default 60 s); an unanswered ping replaces it.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The token endpoint's URL.
    pub(crate) fn token_uri(&self) -> Result<http::Uri, Error> {
        self.account.token_uri.parse().map_err(|_| Error::Config {
            field: "fcm token url",
            reason: format!("must be a URL, got {:?}", self.account.token_uri),
        })
    }

    /// The OAuth2 state machine for the core, with one reading of both clocks for `iat`.
    pub(crate) fn auth(&self, now: Instant) -> Result<OAuth, Error> {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        OAuth::from_service_account(&self.account, now, unix_now).map_err(|error| Error::Config {
            field: "fcm service account",
            reason: error.to_string(),
        })
    }
}
