//! [`Config`]: where GCM requests go, with which key, how tokens are batched, and the
//! engine's settings.

use std::fmt;
use std::time::Duration;

use http::Uri;
use thiserror::Error;

use crate::engine::{self, PoolConfig};

/// The original GCM endpoint. `https://fcm.googleapis.com/fcm/send` speaks the same protocol.
pub const DEFAULT_ENDPOINT: &str = "https://android.googleapis.com/gcm/send";

/// Most tokens GCM accepts in one request.
pub const MAX_BATCH_SIZE: usize = 1000;

/// Settings of the GCM sender. Start from [`Config::new`] and adjust fields.
///
/// `Debug` never shows the API key.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server API key, sent as `Authorization: key=<api_key>`.
    pub api_key: String,
    /// Where requests go (default [`DEFAULT_ENDPOINT`]).
    pub endpoint: Uri,
    /// Tokens per request, `1..=1000` (default 1000).
    pub batch_size: usize,
    /// How long a partial batch waits for more tokens (default 10 ms); a session's close
    /// sends it at once.
    pub linger: Duration,
    /// The engine's settings. GCM's defaults: 10,000 pending, 5 attempts, backoff from 1 s to
    /// 60 s, 1 to 4 connections as the load asks (HTTP/1.1: one request per connection).
    pub engine: engine::Config,
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

impl From<engine::ConfigError> for ConfigError {
    fn from(error: engine::ConfigError) -> Self {
        match error {
            engine::ConfigError::Zero(field) => ConfigError {
                field,
                reason: "must be at least 1".into(),
            },
            engine::ConfigError::BaseUrl(url) => ConfigError {
                field: "endpoint",
                reason: format!("must be an absolute URL, got {url:?}"),
            },
        }
    }
}

impl Config {
    /// Defaults, with `api_key`.
    pub fn new(api_key: impl Into<String>) -> Self {
        Config {
            api_key: api_key.into(),
            endpoint: Uri::from_static(DEFAULT_ENDPOINT),
            batch_size: MAX_BATCH_SIZE,
            linger: Duration::from_millis(10),
            engine: engine::Config {
                max_pending: 10_000,
                max_attempts: 5,
                pool: PoolConfig::default().automatic(4),
                ..engine::Config::default()
            },
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("batch_size", &self.batch_size)
            .field("linger", &self.linger)
            .field("engine", &self.engine)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_redacted() {
        let debug = format!("{:?}", Config::new("secret-key"));
        assert!(!debug.contains("secret-key"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
