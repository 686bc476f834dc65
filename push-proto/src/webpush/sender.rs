//! Web Push on the engine: [`WebPushProtocol`] (encrypted requests and the response table)
//! with a [`VapidCredential`], one sender per push-service origin.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, Version};

use super::credential::{VapidCredential, VapidEvent};
use super::ece::{EncryptError, MAX_BODY, encrypt};
use super::message::Message;
use super::origin::Origin;
use super::randomness::{Randomness, SystemRandomness};
use super::response::classify;
use super::subscription::Subscription;
use crate::DeviceError;
use crate::engine::{self, Answers, Batch, Protocol};

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

/// Settings of a Web Push sender: the engine's (Web Push adds none; its defaults are the
/// engine's: 100,000 pending, no in-flight cap beyond the stream limits, 3 attempts, backoff
/// from 1 s to 60 s, seed 0, the default pool).
pub type Config = engine::Config;

/// A sender for the origin of `credential`, with the system's randomness.
pub fn sender<T>(
    config: Config,
    credential: VapidCredential,
) -> Result<Sender<T>, engine::ConfigError> {
    let protocol = WebPushProtocol::new(credential.origin().clone());
    engine::Sender::new(protocol, credential, config)
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
        batch: Batch<'_, Subscription>,
        message: &Message,
        _meta: &(),
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let subscription = batch.first();
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
        let uri = subscription.endpoint().clone();
        let mut request = engine::post(uri, Version::HTTP_2, Bytes::from(body), authorization);
        let headers = request.headers_mut();
        message.write_headers(headers);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(request)
    }

    fn classify(
        &self,
        response: &http::Response<Bytes>,
        _batch: Batch<'_, Subscription>,
    ) -> Answers {
        Answers::All(classify(response))
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
