//! [`Config`]: how a GCM [`Sender`](super::Sender) batches, paces and retries.

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Uri};
use thiserror::Error;

/// The original GCM endpoint. `https://fcm.googleapis.com/fcm/send` speaks the same protocol.
pub const DEFAULT_ENDPOINT: &str = "https://android.googleapis.com/gcm/send";

/// Most tokens GCM accepts in one request.
pub const MAX_BATCH_SIZE: usize = 1000;

/// Settings of a GCM [`Sender`](super::Sender). Start from [`Config::new`] and adjust fields.
///
/// `Debug` never shows the API key.
#[derive(Clone)]
pub struct Config {
    /// The server API key, sent as `Authorization: key=<api_key>`.
    pub api_key: String,
    /// Where requests go (default [`DEFAULT_ENDPOINT`]).
    pub endpoint: Uri,
    /// Tokens per request, `1..=1000` (default 1000).
    pub batch_size: usize,
    /// How many times one token is sent at most, counting the first send (default 5).
    pub max_attempts: u32,
    /// Backoff before the first retry (default 1 s); doubles per retry, with jitter.
    pub initial_backoff: Duration,
    /// Backoff ceiling (default 60 s).
    pub max_backoff: Duration,
    /// Seed for the backoff jitter, so runs are reproducible (default 0).
    pub seed: u64,
    /// Requests in flight at once (default 4).
    pub max_in_flight: usize,
    /// How long a partial batch waits for more tokens after its first one (default 10 ms).
    pub linger: Duration,
    /// Tokens accepted but whose outcome has not been polled yet, before
    /// [`queue`](super::Sender::queue) says [`Full`](crate::Full) (default 10,000).
    pub max_pending: usize,
}

/// A [`Config`] field has an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid gcm config: `{field}` {reason}")]
pub struct ConfigError {
    /// The field's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Config {
    /// Defaults, with `api_key`.
    pub fn new(api_key: impl Into<String>) -> Self {
        Config {
            api_key: api_key.into(),
            endpoint: Uri::from_static(DEFAULT_ENDPOINT),
            batch_size: MAX_BATCH_SIZE,
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            seed: 0,
            max_in_flight: 4,
            linger: Duration::from_millis(10),
            max_pending: 10_000,
        }
    }

    /// Checks every field; returns the `Authorization` header value on success.
    pub(crate) fn validate(&self) -> Result<HeaderValue, ConfigError> {
        let error = |field, reason: String| Err(ConfigError { field, reason });
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return error(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}, got {}", self.batch_size),
            );
        }
        if self.max_attempts == 0 {
            return error("max_attempts", "must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return error("max_in_flight", "must be at least 1".into());
        }
        if self.max_pending == 0 {
            return error("max_pending", "must be at least 1".into());
        }
        if self.endpoint.scheme().is_none() || self.endpoint.authority().is_none() {
            return error(
                "endpoint",
                format!("must be an absolute URI, got {}", self.endpoint),
            );
        }
        if self.api_key.is_empty() {
            return error("api_key", "must not be empty".into());
        }
        let mut header = HeaderValue::from_str(&format!("key={}", self.api_key))
            .or_else(|_| error("api_key", "must be printable ASCII".into()))?;
        header.set_sensitive(true);
        Ok(header)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("batch_size", &self.batch_size)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("seed", &self.seed)
            .field("max_in_flight", &self.max_in_flight)
            .field("linger", &self.linger)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_key_is_redacted() {
        let config = Config::new("secret-key");
        assert_eq!(
            config.validate().unwrap().to_str().unwrap(),
            "key=secret-key"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-key"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn bad_fields_are_named() {
        let check = |change: fn(&mut Config), field| {
            let mut config = Config::new("k");
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert_eq!(error.field, field);
            assert!(error.to_string().contains(field));
        };
        check(|c| c.batch_size = 0, "batch_size");
        check(|c| c.batch_size = 1001, "batch_size");
        check(|c| c.max_attempts = 0, "max_attempts");
        check(|c| c.max_in_flight = 0, "max_in_flight");
        check(|c| c.max_pending = 0, "max_pending");
        check(|c| c.api_key = "bad\nkey".into(), "api_key");
        check(|c| c.api_key = String::new(), "api_key");
        check(|c| c.endpoint = Uri::from_static("/gcm/send"), "endpoint");
    }
}
