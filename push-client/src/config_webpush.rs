//! Settings of Web Push: the VAPID key and contact, the message defaults (TTL, urgency,
//! topic), and how many push-service origins are kept connected.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use push_proto::webpush::{Declarative, Topic, Urgency, Vapid, VapidKey};
use push_proto::{Push, WebPushSettings};

use crate::config_http::{HttpTransport, sealed_settings};
use crate::error::Error;

/// Web Push to browsers (RFC 8030): each subscription's push service is reached at its own
/// origin over HTTP/2, messages are encrypted for the subscription (RFC 8291) and signed for
/// with a VAPID key (RFC 8292). The settings it shares with the other HTTP providers (TLS,
/// timeouts, retries, connections per origin) are set through
/// [`HttpConfig`](crate::HttpConfig); a test push service's CA goes in with
/// [`Tls::add_ca_file`](crate::Tls::add_ca_file).
///
/// `Debug` shows the VAPID public key and subject, never the private key.
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::WebPushConfig;
/// let web = WebPushConfig::from_base64url(
///     "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
///     "mailto:ops@example.com",
/// )?
/// .ttl(3600);
/// # let _ = web;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WebPushConfig {
    vapid: Vapid,
    pub(crate) core: WebPushSettings,
    pub(crate) transport: HttpTransport,
    pub(crate) ping_interval: Duration,
}

sealed_settings!(WebPushConfig);

impl WebPushConfig {
    /// Signs with the P-256 key of `pem` (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`), naming
    /// `subject` (`mailto:` or `https:`) as the contact for the push services.
    pub fn from_pem(pem: &str, subject: &str) -> Result<Self, Error> {
        let key = VapidKey::from_pem(pem).map_err(|error| Error::Pem {
            origin: "VAPID key".into(),
            reason: error.to_string(),
        })?;
        Self::with_key(key, subject)
    }

    /// Signs with the P-256 key in the PEM file at `path`.
    pub fn from_pem_file(path: impl AsRef<Path>, subject: &str) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|error| Error::ReadFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::from_pem(&pem, subject).map_err(|error| match error {
            Error::Pem { reason, .. } => Error::Pem {
                origin: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Signs with the raw private key in base64url (the 32-byte scalar, as the web-push tools
    /// print it).
    pub fn from_base64url(key: &str, subject: &str) -> Result<Self, Error> {
        let key = VapidKey::from_base64url(key).map_err(|error| Error::Config {
            field: "vapid key",
            reason: error.to_string(),
        })?;
        Self::with_key(key, subject)
    }

    fn with_key(key: VapidKey, subject: &str) -> Result<Self, Error> {
        let vapid = Vapid::new(key, subject).map_err(|error| Error::Config {
            field: "vapid subject",
            reason: error.to_string(),
        })?;
        Ok(WebPushConfig {
            vapid,
            core: WebPushSettings::default(),
            transport: HttpTransport::default(),
            ping_interval: Duration::from_secs(60),
        })
    }

    /// The VAPID public key (uncompressed point, base64url): the web app's
    /// `applicationServerKey`.
    pub fn public_key(&self) -> String {
        self.vapid.key().public_key()
    }

    /// How long push services keep a message for an offline browser, in seconds (default
    /// 4 weeks; 0 = deliver now or never).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.core.options = self.core.options.ttl(seconds);
        self
    }

    /// The `Urgency` of every message (default: none sent, which services treat as `normal`).
    pub fn urgency(mut self, urgency: Urgency) -> Self {
        self.core.options = self.core.options.urgency(urgency);
        self
    }

    /// The `Topic` of every message: a newer message with the same topic replaces one the
    /// service still holds (1 to 32 base64url characters).
    pub fn topic(mut self, topic: &str) -> Result<Self, Error> {
        Topic::new(topic).map_err(|error| Error::Config {
            field: "web push topic",
            reason: error.to_string(),
        })?;
        self.core.options = self.core.options.topic(topic);
        Ok(self)
    }

    /// Sends the declarative form (WebKit's Declarative Web Push, `"web_push": 8030`) that
    /// Safari shows without a service worker, opening `navigate` on a click; by default the
    /// plain form, for the page's service worker.
    pub fn declarative(mut self, declarative: Declarative) -> Self {
        self.core.options = self.core.options.declarative(declarative);
        self
    }

    /// Most push-service origins connected at once (default 16); subscriptions of further
    /// origins wait until one has been idle.
    pub fn max_origins(mut self, origins: usize) -> Self {
        self.core.max_origins = origins.max(1);
        self
    }

    /// How long an origin's connections stay open without work (default 60 s).
    pub fn origin_idle_timeout(mut self, timeout: Duration) -> Self {
        self.core.idle_timeout = timeout;
        self
    }

    /// How often an open connection is pinged (default 60 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Adds Web Push to `push`, with one reading of both clocks for the VAPID tokens' `exp`.
    pub(crate) fn install(&self, push: Push, now: Instant) -> Result<Push, Error> {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        push.with_webpush(self.core.clone(), self.vapid.clone(), now, unix_now)
            .map_err(|error| Error::Config {
                field: "web push",
                reason: error.to_string(),
            })
    }
}
