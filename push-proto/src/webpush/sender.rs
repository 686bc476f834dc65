//! Web Push on the engine: [`WebPushProtocol`] (encrypted requests and the response table)
//! with a [`VapidCredential`], one sender per push-service origin.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, Method};

use super::credential::{VapidCredential, VapidEvent};
use super::ece::{EncryptError, MAX_BODY, encrypt};
use super::message::Message;
use super::origin::Origin;
use super::randomness::{Randomness, SystemRandomness};
use super::response::classify;
use super::subscription::Subscription;
use crate::DeviceError;
use crate::engine::{self, Answer, PoolConfig, Protocol};

/// The provider name in errors.
const PROVIDER: &str = "webpush";

/// The Web Push sender for one origin: the engine's [`Sender`](engine::Sender) speaking
/// [`WebPushProtocol`] with a [`VapidCredential`]. Make one with [`sender`].
pub type Sender<T> = engine::Sender<WebPushProtocol, VapidCredential, T>;
/// The final result of one notification, with what the push service said (`id` is the
/// message's `Location`).
pub type Report<T> = engine::Report<Subscription, T>;
/// A client-wide Web Push event.
pub type Event = engine::Event<VapidEvent>;

/// Settings of a Web Push sender (the engine's, with Web Push's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Notifications queued and not yet reported, beyond which `queue` answers `Full`.
    pub max_pending: usize,
    /// Most requests in flight at once over all connections; the service's stream limits
    /// lower it further.
    pub max_in_flight: u32,
    /// How many times one notification may be sent (see [`engine::Config::max_attempts`]).
    pub max_attempts: u32,
    /// First retry delay when the response has no `Retry-After`; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// The connections to the origin.
    pub pool: PoolConfig,
}

impl Default for Config {
    /// 100,000 pending, no in-flight cap beyond the stream limits, 3 attempts, backoff from
    /// 1 s to 60 s, seed 0, the default pool.
    fn default() -> Self {
        Config {
            max_pending: 100_000,
            max_in_flight: u32::MAX,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            seed: 0,
            pool: PoolConfig::default(),
        }
    }
}

/// A sender for the origin of `credential`, with the system's randomness.
pub fn sender<T>(
    config: Config,
    credential: VapidCredential,
) -> Result<Sender<T>, engine::ConfigError> {
    let protocol = WebPushProtocol::new(credential.origin().clone());
    let engine = engine::Config {
        max_pending: config.max_pending,
        max_in_flight: config.max_in_flight,
        max_attempts: config.max_attempts,
        initial_backoff: config.initial_backoff,
        max_backoff: config.max_backoff,
        seed: config.seed,
        pool: config.pool,
        ..engine::Config::default()
    };
    engine::Sender::new(protocol, credential, engine)
}

/// Web Push's rules for one origin: `POST <endpoint>` with the message encrypted for the
/// subscription (a new key and salt each time, from its [`Randomness`]), `TTL`, `Urgency`,
/// `Topic`, `Content-Encoding: aes128gcm`; and the response table of [`classify`].
pub struct WebPushProtocol {
    origin: Origin,
    randomness: Box<dyn Randomness>,
}

impl fmt::Debug for WebPushProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebPushProtocol")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl WebPushProtocol {
    /// The protocol for subscriptions at `origin`, encrypting with [`SystemRandomness`].
    pub fn new(origin: Origin) -> Self {
        WebPushProtocol {
            origin,
            randomness: Box::new(SystemRandomness::new()),
        }
    }

    /// Draws the ephemeral keys and salts from `randomness` instead.
    pub fn with_randomness(mut self, randomness: impl Randomness + 'static) -> Self {
        self.randomness = Box::new(randomness);
        self
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl Protocol for WebPushProtocol {
    type Token = Subscription;
    type Message = Message;
    type Meta = ();

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn prepare(&mut self, _message: &Message) {}

    fn request(
        &self,
        subscription: &Subscription,
        message: &Message,
        _meta: &(),
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        if subscription.origin() != &self.origin {
            return Err(DeviceError::Rejected {
                provider: PROVIDER,
                code: format!(
                    "the subscription is at {}, this sender sends to {}",
                    subscription.origin(),
                    self.origin
                ),
            });
        }
        let body = encrypt(
            message.plaintext(),
            message.padding(),
            subscription,
            self.randomness.as_ref(),
        )
        .map_err(|error| match error {
            EncryptError::TooLarge { size } => DeviceError::PayloadTooLarge {
                size,
                limit: MAX_BODY,
            },
            other => DeviceError::Rejected {
                provider: PROVIDER,
                code: format!("cannot encrypt: {other}"),
            },
        })?;
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = subscription.endpoint().clone();
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        message.write_headers(headers);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(request)
    }

    fn classify(&self, response: &http::Response<Bytes>) -> Answer {
        classify(response)
    }

    fn too_large(&self, message: &Message) -> DeviceError {
        DeviceError::PayloadTooLarge {
            size: message.encrypted_len(),
            limit: MAX_BODY,
        }
    }

    fn time_to_live(&self, message: &Message) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(message.ttl())))
    }

    fn sent_id(&self, _meta: &()) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests;
