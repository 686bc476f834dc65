//! Settings of the APNs HTTP/2 provider API: the service URL, the topic, and how to
//! authenticate (a provider token signed with a `.p8` key, or a TLS client certificate).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use push_proto::apns::http2::{self, Auth, P8Signer, TokenAuth};

use crate::config_http::{HttpTransport, sealed_settings};
use crate::error::Error;
use crate::net::{Endpoint, https_endpoint};

/// A `.p8` key with its ids; `Debug` never shows the key.
#[derive(Clone)]
struct ProviderKey {
    pem: String,
    key_id: String,
    team_id: String,
}

impl fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKey")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("pem", &"<redacted>")
            .finish()
    }
}

/// APNs over HTTP/2 (the live provider API). The settings it shares with the other HTTP
/// providers (TLS, timeouts, retries, connections) are set through
/// [`HttpConfig`](crate::HttpConfig).
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::ApnsHttp2Config;
/// let apns = ApnsHttp2Config::new("https://api.sandbox.push.apple.com")?.topic("com.example.app");
/// # let _ = apns;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ApnsHttp2Config {
    pub(crate) endpoint: Endpoint,
    pub(crate) core: http2::Config,
    key: Option<ProviderKey>,
    pub(crate) transport: HttpTransport,
    pub(crate) ping_interval: Duration,
}

sealed_settings!(ApnsHttp2Config);

impl ApnsHttp2Config {
    /// Sends to the service at `url` (`https://host[:port]`), authenticating with the TLS
    /// client certificate of [`tls`](crate::HttpConfig::tls) unless a provider key is set.
    pub fn new(url: &str) -> Result<Self, Error> {
        let endpoint = https_endpoint(url, "apns url")?;
        Ok(ApnsHttp2Config {
            endpoint,
            core: http2::Config::new(url.trim_end_matches('/')),
            key: None,
            transport: HttpTransport::default(),
            ping_interval: Duration::from_secs(60),
        })
    }

    /// The `apns-topic` (usually the app's bundle id); required with provider tokens.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.core.topic = Some(topic.into());
        self
    }

    /// Authenticates with provider tokens signed by the `.p8` key in `pem` (`key_id` and
    /// `team_id` from Apple's developer account).
    pub fn provider_key_pem(
        mut self,
        pem: &str,
        key_id: &str,
        team_id: &str,
    ) -> Result<Self, Error> {
        P8Signer::from_pem(pem, key_id).map_err(|error| Error::Pem {
            origin: "APNs provider key (.p8)".into(),
            reason: error.to_string(),
        })?;
        self.key = Some(ProviderKey {
            pem: pem.to_owned(),
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
        });
        Ok(self)
    }

    /// Authenticates with provider tokens signed by the `.p8` key file at `path`.
    pub fn provider_key_file(
        self,
        path: impl AsRef<Path>,
        key_id: &str,
        team_id: &str,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|error| Error::ReadFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        self.provider_key_pem(&pem, key_id, team_id)
            .map_err(|error| match error {
                Error::Pem { reason, .. } => Error::Pem {
                    origin: path.display().to_string(),
                    reason,
                },
                other => other,
            })
    }

    /// How often the open connection is pinged (default 60 s); an unanswered ping closes it,
    /// and the next request opens a new one.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// The authentication for the core: provider tokens (with one reading of both clocks for
    /// `iat`) or the TLS certificate.
    pub(crate) fn auth(&self, now: Instant) -> Result<Auth, Error> {
        let Some(key) = &self.key else {
            return Ok(Auth::Certificate);
        };
        let signer = P8Signer::from_pem(&key.pem, &key.key_id).map_err(|error| Error::Pem {
            origin: "APNs provider key (.p8)".into(),
            reason: error.to_string(),
        })?;
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let auth =
            TokenAuth::new(signer, &key.team_id, now, unix_now).map_err(|error| Error::Config {
                field: "apns team id",
                reason: error.to_string(),
            })?;
        Ok(Auth::Token(auth))
    }
}
