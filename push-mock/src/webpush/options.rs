//! How a [`MockWebPush`](crate::MockWebPush) behaves: [`WebPushOptions`].

use std::time::Duration;

use crate::quota::Quota;

/// How a [`MockWebPush`](crate::MockWebPush) behaves. Build it with [`WebPushOptions::new`]
/// and the builder methods. The defaults: 2 origins, subscriptions not restricted to an
/// application server key, 100 concurrent streams, no seeded faults (`Retry-After: 30`
/// should they be enabled), no quota, no GOAWAY, everything recorded, every origin over HTTP/2.
#[derive(Debug, Clone)]
pub struct WebPushOptions {
    /// How many push services (origins, one listener each) to run; at least 1.
    pub origins: usize,
    /// The application server key (the VAPID public key, uncompressed, base64url) that
    /// subscriptions are made with, as a browser's `applicationServerKey`: requests to them
    /// must carry a VAPID token with this `k`, else `403`. `None`: any valid VAPID token.
    pub application_server_key: Option<String>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised (and enforced by the HTTP/2 layer).
    pub max_concurrent_streams: u32,
    /// Fraction (0.0 to 1.0) of authenticated requests to live subscriptions answered `503`
    /// with `Retry-After`, drawn from a deterministic sequence seeded by [`seed`](Self::seed).
    pub unavailable_rate: f64,
    /// Fraction (0.0 to 1.0) answered `429` with `Retry-After`, from the same draw (below
    /// `unavailable_rate` a 503, below `unavailable_rate + rate_limited_rate` a 429).
    pub rate_limited_rate: f64,
    /// The `Retry-After` (seconds) of seeded faults.
    pub retry_after_secs: u64,
    /// Seed of the fault draws and of the minted subscriptions' keys and ids.
    pub seed: u64,
    /// Each origin's rate limit: at most `limit` messages in any sliding `window`, beyond
    /// which `429` with a `Retry-After` of the seconds until one would be admitted.
    pub quota: Option<Quota>,
    /// After this many answers on one connection, start a graceful GOAWAY.
    pub goaway_after: Option<usize>,
    /// Delay before answering each request (after its body arrived): lets streams overlap.
    pub latency: Option<Duration>,
    /// Only count: [`delivered`](crate::MockWebPush::delivered) and
    /// [`responses`](crate::MockWebPush::responses) stay empty, the payloads are not logged,
    /// while the totals and per-subscription counts count. For benchmarks.
    pub count_only: bool,
    /// The origins (indexes) served over HTTP/1.1 only (ALPN `http/1.1`, one request at a
    /// time per connection), as a push service without HTTP/2; the others serve HTTP/2.
    /// The checks and answers are the same.
    pub http1_origins: Vec<usize>,
}

impl Default for WebPushOptions {
    fn default() -> Self {
        WebPushOptions::new()
    }
}

impl WebPushOptions {
    /// The defaults.
    pub fn new() -> WebPushOptions {
        WebPushOptions {
            origins: 2,
            application_server_key: None,
            max_concurrent_streams: 100,
            unavailable_rate: 0.0,
            rate_limited_rate: 0.0,
            retry_after_secs: 30,
            seed: 0,
            quota: None,
            goaway_after: None,
            latency: None,
            count_only: false,
            http1_origins: Vec::new(),
        }
    }

    /// Sets [`origins`](Self::origins).
    pub fn origins(mut self, origins: usize) -> Self {
        self.origins = origins;
        self
    }

    /// Sets [`application_server_key`](Self::application_server_key).
    pub fn application_server_key(mut self, key: impl Into<String>) -> Self {
        self.application_server_key = Some(key.into());
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// Sets the seeded fault rates, their [`seed`](Self::seed) and
    /// [`retry_after_secs`](Self::retry_after_secs).
    pub fn seeded_faults(
        mut self,
        unavailable_rate: f64,
        rate_limited_rate: f64,
        seed: u64,
        retry_after_secs: u64,
    ) -> Self {
        self.unavailable_rate = unavailable_rate;
        self.rate_limited_rate = rate_limited_rate;
        self.seed = seed;
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// Sets [`seed`](Self::seed) alone.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets each origin's [`quota`](Self::quota): `limit` messages per sliding `window`.
    pub fn quota(mut self, limit: u32, window: Duration) -> Self {
        self.quota = Some(Quota { limit, window });
        self
    }

    /// Sets [`goaway_after`](Self::goaway_after).
    pub fn goaway_after(mut self, answers: usize) -> Self {
        self.goaway_after = Some(answers);
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Sets [`count_only`](Self::count_only).
    pub fn count_only(mut self, count_only: bool) -> Self {
        self.count_only = count_only;
        self
    }

    /// Serves `origin` (an index) over HTTP/1.1 only: adds it to
    /// [`http1_origins`](Self::http1_origins).
    pub fn http1_only(mut self, origin: usize) -> Self {
        self.http1_origins.push(origin);
        self
    }
}
