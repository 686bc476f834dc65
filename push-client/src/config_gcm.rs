//! Settings of legacy GCM's HTTP JSON API: the endpoint, the API key, batching, and the
//! application's own HTTP client (feature `surf`).

use http::Uri;
use push_proto::gcm;

use crate::config_http::{HttpTransport, sealed_settings};
use crate::error::Error;

/// Legacy GCM over HTTP/1.1 (the API key is never shown in `Debug`). The settings it shares
/// with the other HTTP providers (TLS, timeouts, retries, connections: one request at a time
/// each, 4 by default) are set through [`HttpConfig`](crate::HttpConfig).
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::{GcmConfig, HttpConfig};
/// let gcm = GcmConfig::new("server-api-key")
///     .endpoint("https://fcm.googleapis.com/fcm/send")?
///     .batch_size(500)?
///     .max_connections(2);
/// assert!(!format!("{gcm:?}").contains("server-api-key"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GcmConfig {
    pub(crate) core: gcm::Config,
    pub(crate) options: gcm::MessageOptions,
    pub(crate) transport: HttpTransport,
    #[cfg(feature = "surf")]
    pub(crate) surf: Option<surf::Client>,
}

sealed_settings!(GcmConfig);

impl GcmConfig {
    /// Sends with the server API key `api_key`, to the default endpoint.
    pub fn new(api_key: impl Into<String>) -> Self {
        GcmConfig {
            core: gcm::Config::new(api_key),
            options: gcm::MessageOptions::default(),
            transport: HttpTransport::default(),
            #[cfg(feature = "surf")]
            surf: None,
        }
    }

    /// Sends GCM requests with the application's own `surf::Client` instead of push's
    /// built-in HTTP client (feature `surf`). TLS is then the surf backend's business:
    /// [`tls`](crate::HttpConfig::tls) and [`timeouts`](crate::HttpConfig::timeouts) no longer
    /// apply, the request timeout and the number of connections (here: requests at once)
    /// still do.
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

    /// Tokens the GCM state machine holds at most (queued, in flight, or waiting for a
    /// retry); with the client's feedback capacity, this bounds the memory of a session.
    pub fn max_pending(mut self, tokens: usize) -> Self {
        self.core.engine.max_pending = tokens;
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

    /// Every setting of the GCM state machine at once (the endpoint and key included).
    pub fn sender(mut self, config: gcm::Config) -> Self {
        self.core = config;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpConfig;

    #[test]
    fn bad_values_name_their_field() {
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
        let gcm = GcmConfig::new("k")
            .batch_size(10)
            .unwrap()
            .max_attempts(2)
            .max_connections(3);
        assert_eq!(gcm.core.batch_size, 10);
        assert_eq!(gcm.core.engine.max_attempts, 2);
        assert_eq!(gcm.core.engine.pool.max_connections, 3);
    }
}
