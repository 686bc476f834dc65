//! Provider settings for the client: where to connect, how to authenticate, how to pace.

use std::time::Duration;

use http::Uri;
use push_proto::apns::{Format, GatewayConfig, SilentClose};
use push_proto::gcm;

use crate::error::Error;
use crate::net::{Endpoint, Timeouts};
use crate::tls::Tls;

/// APNs (binary gateway and feedback service) settings.
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::{ApnsConfig, Tls};
/// let apns = ApnsConfig::new("gateway.sandbox.push.apple.com:2195")?
///     .feedback_service("feedback.sandbox.push.apple.com:2196")?
///     .grace(std::time::Duration::from_millis(500));
/// # let _ = apns;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    pub(crate) gateway: Endpoint,
    pub(crate) feedback: Option<Endpoint>,
    pub(crate) tls: Tls,
    pub(crate) core: GatewayConfig,
    pub(crate) timeouts: Timeouts,
    pub(crate) write_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

impl ApnsConfig {
    /// Sends through the gateway at `host:port`, with default settings otherwise.
    pub fn new(gateway: &str) -> Result<Self, Error> {
        Ok(ApnsConfig {
            gateway: Endpoint::parse(gateway, "apns gateway")?,
            feedback: None,
            tls: Tls::default(),
            core: GatewayConfig::default(),
            timeouts: Timeouts::default(),
            write_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
        })
    }

    /// Reads inactive devices from the feedback service at `host:port`.
    pub fn feedback_service(mut self, address: &str) -> Result<Self, Error> {
        self.feedback = Some(Endpoint::parse(address, "apns feedback service")?);
        Ok(self)
    }

    /// TLS roots and the client identity (APNs requires a client certificate).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Every setting of the gateway state machine at once.
    pub fn gateway(mut self, config: GatewayConfig) -> Self {
        self.core = config;
        self
    }

    /// Frame format (command 2 by default); resets the payload limit to the format's.
    pub fn format(mut self, format: Format) -> Self {
        self.core.format = format;
        self.core.payload_limit = format.payload_limit();
        self
    }

    /// Largest payload accepted, in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.core.payload_limit = bytes;
        self
    }

    /// How long a notification must go unchallenged to count as delivered.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.core.grace = grace;
        self
    }

    /// Capacity of the resend window.
    pub fn resend_window(mut self, notifications: usize) -> Self {
        self.core.window = notifications;
        self
    }

    /// What to do with unconfirmed notifications when the gateway closes silently.
    pub fn silent_close(mut self, policy: SilentClose) -> Self {
        self.core.silent_close = policy;
        self
    }

    /// Connect and TLS handshake timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Longest a write to the gateway, or a read from the feedback service, may stall.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self.read_timeout = timeout;
        self
    }
}

/// GCM settings.
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::GcmConfig;
/// let gcm = GcmConfig::new("server-api-key")
///     .endpoint("https://fcm.googleapis.com/fcm/send")?
///     .batch_size(500)?;
/// assert!(!format!("{gcm:?}").contains("server-api-key"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GcmConfig {
    pub(crate) core: gcm::Config,
    pub(crate) options: gcm::MessageOptions,
    pub(crate) tls: Tls,
    pub(crate) timeouts: Timeouts,
    pub(crate) exchange_timeout: Duration,
    #[cfg(feature = "surf")]
    pub(crate) surf: Option<surf::Client>,
}

impl GcmConfig {
    /// Sends with the server API key `api_key`, to the default endpoint.
    pub fn new(api_key: impl Into<String>) -> Self {
        GcmConfig {
            core: gcm::Config::new(api_key),
            options: gcm::MessageOptions::default(),
            tls: Tls::default(),
            timeouts: Timeouts::default(),
            exchange_timeout: Duration::from_secs(30),
            #[cfg(feature = "surf")]
            surf: None,
        }
    }

    /// Sends GCM requests with the application's own `surf::Client` instead of push's
    /// built-in HTTP client (feature `surf`). TLS is then the surf backend's business:
    /// [`tls`](Self::tls) and [`timeouts`](Self::timeouts) no longer apply, the exchange
    /// timeout still does.
    #[cfg(feature = "surf")]
    pub fn surf_client(mut self, client: surf::Client) -> Self {
        self.surf = Some(client);
        self
    }

    /// Sends to `url` (`http://` or `https://`).
    pub fn endpoint(mut self, url: &str) -> Result<Self, Error> {
        self.core.endpoint = url.parse::<Uri>().map_err(|error| Error::Config {
            field: "gcm endpoint",
            reason: format!("{url:?} is not a URL: {error}"),
        })?;
        Ok(self)
    }

    /// Tokens per request, 1..=1000.
    pub fn batch_size(mut self, tokens: usize) -> Result<Self, Error> {
        if !(1..=gcm::MAX_BATCH_SIZE).contains(&tokens) {
            return Err(Error::Config {
                field: "gcm batch_size",
                reason: format!("must be in 1..={}, got {tokens}", gcm::MAX_BATCH_SIZE),
            });
        }
        self.core.batch_size = tokens;
        Ok(self)
    }

    /// How many times one token is sent at most.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.core.max_attempts = attempts;
        self
    }

    /// First and longest retry backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.core.initial_backoff = initial;
        self.core.max_backoff = max;
        self
    }

    /// Requests in flight at once (each on its own keep-alive connection).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.core.max_in_flight = requests;
        self
    }

    /// Tokens the GCM state machine holds at most (queued, in flight, or waiting for a
    /// retry); with the client's feedback capacity, this bounds the memory of a session.
    pub fn max_pending(mut self, tokens: usize) -> Self {
        self.core.max_pending = tokens;
        self
    }

    /// Ask the service to validate without delivering.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }

    /// Only deliver to tokens of this Android package.
    pub fn restricted_package_name(mut self, package: impl Into<String>) -> Self {
        self.options.restricted_package_name = Some(package.into());
        self
    }

    /// TLS roots for an `https://` endpoint.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Connect and TLS handshake timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Longest one HTTP exchange may take before it counts as a transport failure.
    pub fn exchange_timeout(mut self, timeout: Duration) -> Self {
        self.exchange_timeout = timeout;
        self
    }

    /// Every setting of the GCM state machine at once (the endpoint and key included).
    pub fn sender(mut self, config: gcm::Config) -> Self {
        self.core = config;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_field() {
        let error = ApnsConfig::new("no-port").unwrap_err();
        assert!(error.to_string().contains("`apns gateway`"), "{error}");
        let error = GcmConfig::new("k").batch_size(0).unwrap_err();
        assert!(error.to_string().contains("`gcm batch_size`"), "{error}");
        let error = GcmConfig::new("k").batch_size(1001).unwrap_err();
        assert!(error.to_string().contains("1..=1000"), "{error}");
        let error = GcmConfig::new("k").endpoint("not a url").unwrap_err();
        assert!(error.to_string().contains("`gcm endpoint`"), "{error}");
    }

    #[test]
    fn the_api_key_never_shows_in_debug() {
        let config = GcmConfig::new("very-secret-key");
        assert!(!format!("{config:?}").contains("very-secret-key"));
    }

    #[test]
    fn setters_reach_the_core_settings() {
        let apns = ApnsConfig::new("localhost:2195")
            .unwrap()
            .format(Format::Enhanced)
            .grace(Duration::from_millis(5))
            .resend_window(7);
        assert_eq!(apns.core.payload_limit, 256);
        assert_eq!(apns.core.grace, Duration::from_millis(5));
        assert_eq!(apns.core.window, 7);
        let gcm = GcmConfig::new("k").batch_size(10).unwrap().max_attempts(2);
        assert_eq!((gcm.core.batch_size, gcm.core.max_attempts), (10, 2));
    }
}
