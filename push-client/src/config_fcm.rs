//! Settings of Google's FCM HTTP v1 API: the service account (whose key signs the OAuth2
//! assertions), the project, the endpoints, and the connection pool.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use push_proto::fcm::{self, OAuth, ServiceAccount};

use crate::config_http::{HttpTransport, sealed_settings};
use crate::error::Error;
use crate::net::{Endpoint, https_endpoint};

/// FCM HTTP v1 (the live Android protocol), authenticated as a Google service account. The
/// settings it shares with the other HTTP providers (TLS, timeouts, retries, connections) are
/// set through [`HttpConfig`](crate::HttpConfig).
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
    pub(crate) transport: HttpTransport,
    pub(crate) ping_interval: Duration,
}

sealed_settings!(FcmConfig);

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
            transport: HttpTransport::default(),
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

    /// Most requests in flight at once over all connections (default: no cap beyond the
    /// connections' stream limits).
    pub fn max_in_flight(mut self, requests: u32) -> Self {
        self.core.engine.max_in_flight = requests.max(1);
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
