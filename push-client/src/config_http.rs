//! What the settings of every HTTP provider share (APNs HTTP/2, FCM HTTP v1, legacy GCM): TLS
//! and timeouts, and the engine's retries and connections. The setters exist once, in
//! [`HttpConfig`].

use std::time::Duration;

use push_proto::engine;

use crate::net::Timeouts;
use crate::tls::Tls;

/// Setters every HTTP provider's settings share: [`ApnsHttp2Config`](crate::ApnsHttp2Config),
/// [`FcmConfig`](crate::FcmConfig) and [`GcmConfig`](crate::GcmConfig). Bring the trait into
/// scope to use them.
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use std::time::Duration;
/// use push_client::{ApnsHttp2Config, HttpConfig};
/// let apns = ApnsHttp2Config::new("https://api.sandbox.push.apple.com")?
///     .max_attempts(5)
///     .max_rate(2_000)
///     .backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .max_connections(4);
/// # let _ = apns;
/// # Ok(())
/// # }
/// ```
pub trait HttpConfig: sealed::Settings + Sized {
    /// TLS roots (and, for APNs certificate authentication, the client certificate).
    fn tls(mut self, tls: Tls) -> Self {
        self.transport().tls = tls;
        self
    }

    /// Connect and TLS handshake timeouts.
    fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.transport().timeouts = timeouts;
        self
    }

    /// Longest one request may take before it counts as a transport failure (default 30 s).
    fn request_timeout(mut self, timeout: Duration) -> Self {
        self.transport().request_timeout = timeout;
        self
    }

    /// How many times one notification is sent at most (default 30: retries are bounded by
    /// time, see [`retry_deadline`](Self::retry_deadline)).
    fn max_attempts(mut self, attempts: u32) -> Self {
        self.engine().max_attempts = attempts;
        self
    }

    /// How long after it was queued a notification may still be retried (default 10
    /// minutes, or its time to live when that ends earlier); then it ends `unavailable`.
    fn retry_deadline(mut self, deadline: Duration) -> Self {
        self.engine().retry_deadline = deadline;
        self
    }

    /// Sends at most `per_second` requests per second to this provider, over all its
    /// connections and sessions (at least 1). Without it, the provider's throttling answers
    /// alone set the pace: a `429` for the route as a whole (FCM's project quota, APNs'
    /// provider-wide limit) slows the route down, clean answers let it speed up again.
    fn max_rate(mut self, per_second: u32) -> Self {
        self.engine().max_rate = Some(per_second.max(1));
        self
    }

    /// First and longest retry backoff (when the provider gives no `Retry-After`).
    fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        let engine = self.engine();
        engine.initial_backoff = initial;
        engine.max_backoff = max;
        self
    }

    /// Keeps exactly `connections` connections to the provider (at least 1) while there is
    /// work; requests go to the least busy one. Without this, the client opens connections as
    /// the load asks (see [`max_connections`](Self::max_connections)).
    fn connections(mut self, connections: usize) -> Self {
        let n = u32::try_from(connections).unwrap_or(u32::MAX);
        let pool = &mut self.engine().pool;
        *pool = pool.clone().fixed(n);
        self
    }

    /// Opens connections as the load asks, at most `connections` (at least 1; default 8 for
    /// HTTP/2, 4 for GCM's HTTP/1.1, which carries one request at a time): a new one when
    /// every stream of the open ones is busy and requests wait, as long as the last one raised
    /// the rate of answers (more connections help against a long round trip, not when the
    /// client, the server or the link is the limit); extra ones that stay idle for a minute
    /// are closed.
    fn max_connections(mut self, connections: usize) -> Self {
        let n = u32::try_from(connections).unwrap_or(u32::MAX);
        let pool = &mut self.engine().pool;
        *pool = pool.clone().automatic(n);
        self
    }

    /// How long requests may wait while every connection allows 0 streams before they end
    /// `unavailable` (default 10 s).
    fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.engine().pool.stall_timeout = timeout;
        self
    }

    /// The delay after a failed dial (or a connection closed before answering anything),
    /// doubling per failure in a row up to `max` (default 250 ms to 30 s); after 5 in a row
    /// the requests waiting for a connection end `unavailable`.
    fn dial_backoff(mut self, initial: Duration, max: Duration) -> Self {
        let pool = &mut self.engine().pool;
        pool.initial_dial_backoff = initial;
        pool.max_dial_backoff = max;
        self
    }
}

impl<T: sealed::Settings> HttpConfig for T {}

pub(crate) use sealed::HttpTransport;

/// Gives [`HttpConfig`] to a provider's settings type with fields `transport`
/// ([`HttpTransport`]) and `core.engine` (the engine's settings).
macro_rules! sealed_settings {
    ($config:ty) => {
        impl crate::config_http::sealed::Settings for $config {
            fn transport(&mut self) -> &mut crate::config_http::HttpTransport {
                &mut self.transport
            }

            fn engine(&mut self) -> &mut push_proto::engine::Config {
                &mut self.core.engine
            }
        }
    };
}
pub(crate) use sealed_settings;

/// The parts [`HttpConfig`] sets; sealed, so that only push-client's settings implement it.
pub(crate) mod sealed {
    use super::*;

    /// How an HTTP provider's connections are made.
    #[derive(Debug, Clone)]
    pub struct HttpTransport {
        /// TLS roots and identity.
        pub(crate) tls: Tls,
        /// Connect and TLS handshake timeouts.
        pub(crate) timeouts: Timeouts,
        /// Longest one request may take.
        pub(crate) request_timeout: Duration,
    }

    impl Default for HttpTransport {
        fn default() -> Self {
            HttpTransport {
                tls: Tls::default(),
                timeouts: Timeouts::default(),
                request_timeout: Duration::from_secs(30),
            }
        }
    }

    /// Access to the settings [`HttpConfig`] changes.
    pub trait Settings {
        /// The transport settings.
        fn transport(&mut self) -> &mut HttpTransport;
        /// The engine's settings.
        fn engine(&mut self) -> &mut engine::Config;
    }
}
