//! Settings of the engine's [`Sender`](super::Sender) and [`Pool`](super::Pool).

use std::time::Duration;

use thiserror::Error;

/// How a route's connections are managed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Connections kept while requests wait (at least 1; default 1).
    pub min_connections: u32,
    /// Most connections open at once (default 8). When every stream of the open connections
    /// is busy and requests wait, another is opened, up to this many, as long as the last one
    /// raised the rate of answers by half a connection's share or more (measured
    /// before and after each); extra ones that stay idle for `idle_timeout` are closed.
    /// `min_connections == max_connections` fixes the number.
    pub max_connections: u32,
    /// Most streams used on one connection, whatever the server allows (default 1000):
    /// bounds the memory a connection holds.
    pub max_streams_per_connection: u32,
    /// First delay after a failed dial (or a connection that closed before answering
    /// anything); doubles per failure in a row (default 250 ms).
    pub initial_dial_backoff: Duration,
    /// Longest delay between dials (default 30 s).
    pub max_dial_backoff: Duration,
    /// Failed dials in a row after which the requests waiting for a connection fail as
    /// `unavailable` (default 5). A connection that closes without answering a single stream
    /// counts as a failed dial, so a server that refuses everything is given up on too.
    pub max_failed_dials: u32,
    /// How long requests may wait while every open connection allows 0 streams before they
    /// fail as `unavailable` (default 10 s).
    pub stall_timeout: Duration,
    /// How long an extra connection (beyond `min_connections`) may stay idle before it is
    /// closed (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_connections: 1,
            max_connections: 8,
            max_streams_per_connection: 1000,
            initial_dial_backoff: Duration::from_millis(250),
            max_dial_backoff: Duration::from_secs(30),
            max_failed_dials: 5,
            stall_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolConfig {
    /// Exactly `n` connections (at least 1), opened when requests wait.
    pub fn fixed(mut self, n: u32) -> Self {
        self.min_connections = n.max(1);
        self.max_connections = n.max(1);
        self
    }

    /// Between 1 and `max` connections (at least 1), as the load asks.
    pub fn automatic(mut self, max: u32) -> Self {
        self.min_connections = 1;
        self.max_connections = max.max(1);
        self
    }
}

/// Settings of a [`Sender`](super::Sender).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Notifications queued and not yet reported, beyond which `queue` answers `Full`.
    pub max_pending: usize,
    /// Most requests in flight at once over all connections (the connections' own limits
    /// lower it further).
    pub max_in_flight: u32,
    /// How many times one notification may be sent (responses and transport failures that may
    /// have been processed count; free resends and the one resend after a refused credential
    /// do not). Default 30: retries are bounded by time ([`retry_deadline`](Self::retry_deadline)
    /// and the time to live), this is a backstop.
    pub max_attempts: u32,
    /// How long after it was queued a notification may still be retried (default 10
    /// minutes; its time to live when that ends earlier): a retry that would come later is
    /// not scheduled, the notification fails as `unavailable`.
    pub retry_deadline: Duration,
    /// How many attempts of one notification may end without any response (the connection
    /// failed under the stream; the stream was refused again after the free resends) before
    /// it fails as `unavailable` (default 3): a server that never answers (every stream
    /// refused, every connection reset) is given up on after a few tries, not after the
    /// whole retry deadline.
    pub max_unanswered_attempts: u32,
    /// The most requests per second the route sends, whatever the provider allows (`None`,
    /// the default: only as fast as the provider's throttling answers allow).
    pub max_rate: Option<u32>,
    /// How many times one notification may be sent again for free because the server did not
    /// process it (REFUSED_STREAM, above a GOAWAY, never opened); beyond that each such end
    /// counts as an attempt, so a server that refuses everything cannot loop forever.
    pub max_free_resends: u32,
    /// First retry delay when the response has no `Retry-After`; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// The connections.
    pub pool: PoolConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_pending: 100_000,
            max_in_flight: u32::MAX,
            max_attempts: 30,
            retry_deadline: Duration::from_secs(600),
            max_unanswered_attempts: 3,
            max_rate: None,
            max_free_resends: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            seed: 0,
            pool: PoolConfig::default(),
        }
    }
}

/// An unusable generic setting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count that must be at least 1 is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A provider's `base_url` is not `scheme://authority` (a path other than `/` is not
    /// allowed).
    #[error("base_url must be scheme://host[:port] without a path, got {0:?}")]
    BaseUrl(String),
}

impl Config {
    /// The first setting that makes the configuration unusable.
    pub fn check(&self) -> Result<(), ConfigError> {
        let counts = [
            ("max_pending", self.max_pending),
            ("max_in_flight", self.max_in_flight as usize),
            ("max_attempts", self.max_attempts as usize),
            (
                "max_unanswered_attempts",
                self.max_unanswered_attempts as usize,
            ),
            ("max_rate", self.max_rate.map_or(1, |rate| rate as usize)),
            ("max_connections", self.pool.max_connections as usize),
            (
                "max_streams_per_connection",
                self.pool.max_streams_per_connection as usize,
            ),
            ("max_failed_dials", self.pool.max_failed_dials as usize),
        ];
        match counts.into_iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(ConfigError::Zero(name)),
            None => Ok(()),
        }
    }
}
