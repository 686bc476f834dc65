//! The APNs HTTP/2 provider on the engine: [`ApnsProtocol`] (requests and the response
//! table) and [`ApnsCredential`] (provider tokens or a client certificate).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Version};
use thiserror::Error;

use super::headers::{ApnsId, ApnsIdGenerator};
use super::jwt::{SignError, TokenAuth};
use super::message::Message;
use super::response::{self, classify};
use crate::engine::{
    self, Answer, Answers, Batch, Credential, CredentialStats, Grant, Origin, Protocol,
};
use crate::{ApnsToken, DeviceError};

/// The production endpoint.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// The development (sandbox) endpoint.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";
/// The path of a request, before the device token's hex digits.
const DEVICE_PATH: &str = "/3/device/";

/// The APNs HTTP/2 sender: the engine's [`Sender`](engine::Sender) speaking
/// [`ApnsProtocol`] with an [`ApnsCredential`]. Make one with [`sender`].
pub type Sender<T> = engine::Sender<ApnsProtocol, ApnsCredential, T>;
/// The final result of one notification, with what APNs said (`id` is the `apns-id`).
pub type Report<T> = engine::Report<ApnsToken, T>;
/// A client-wide APNs event.
pub type Event = engine::Event<TokenEvent>;

/// How the sender authenticates.
#[derive(Debug)]
pub enum Auth {
    /// A TLS client certificate, owned by the adapter: no `authorization` header.
    Certificate,
    /// Provider tokens: `authorization: bearer <JWT>` on every request.
    Token(TokenAuth),
}

/// A sender for `config` authenticating with `auth`, or the first invalid field.
pub fn sender<T>(config: Config, auth: Auth) -> Result<Sender<T>, ConfigError> {
    let protocol = ApnsProtocol::new(&config)?;
    let credential = ApnsCredential::new(auth);
    Ok(engine::Sender::new(protocol, credential, config.engine)?)
}

/// Settings of the APNs HTTP/2 sender.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Scheme and authority of the service, e.g. [`PRODUCTION_URL`]; the path is
    /// `/3/device/<hex token>`.
    pub base_url: String,
    /// The default `apns-topic` (usually the bundle id); a message's own topic overrides it.
    /// Required by APNs with token auth.
    pub topic: Option<String>,
    /// The engine's settings (pending bound, attempts, backoff, connections); its seed also
    /// seeds the generated `apns-id`s.
    pub engine: engine::Config,
}

impl Config {
    /// Defaults for `base_url`: no default topic, the engine's defaults (100,000 pending,
    /// 3 attempts, backoff from 1 s to 60 s, seed 0, 1 to 8 connections as the load asks).
    pub fn new(base_url: impl Into<String>) -> Self {
        Config {
            base_url: base_url.into(),
            topic: None,
            engine: engine::Config::default(),
        }
    }

    /// Sets the default topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
}

/// An unusable [`Config`] field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `topic` is not a valid header value.
    #[error("topic is not a valid header value")]
    Topic,
    /// A generic setting (or the base URL) is unusable.
    #[error(transparent)]
    Engine(#[from] engine::ConfigError),
}

/// A client-wide event of the APNs credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEvent {
    /// The [`Signer`](super::Signer) failed; the notification that needed the token failed
    /// with [`DeviceError::Rejected`].
    SignerFailed(SignError),
    /// A new provider token was signed.
    Refreshed {
        /// Its generation (1 for the first token).
        generation: u64,
        /// Its `iat` claim.
        iat: u64,
    },
}

/// APNs' rules: `POST /3/device/<token>` with the `apns-*` headers, and the response table of
/// [`response`].
#[derive(Debug)]
pub struct ApnsProtocol {
    origin: Origin,
    topic: Option<HeaderValue>,
    ids: ApnsIdGenerator,
}

impl ApnsProtocol {
    /// The protocol for `config`'s endpoint and topic.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let origin = Origin::parse(&config.base_url)?;
        let topic = match &config.topic {
            Some(topic) => Some(HeaderValue::from_str(topic).map_err(|_| ConfigError::Topic)?),
            None => None,
        };
        Ok(ApnsProtocol {
            origin,
            topic,
            ids: ApnsIdGenerator::new(config.engine.seed ^ 0x5eed_a9e5),
        })
    }
}

impl Protocol for ApnsProtocol {
    type Token = ApnsToken;
    type Message = Message;
    type Meta = ApnsId;

    fn provider(&self) -> &'static str {
        "apns"
    }

    fn prepare(&mut self, message: &Message) -> ApnsId {
        message.apns_id().unwrap_or_else(|| self.ids.next_id())
    }

    fn request(
        &self,
        batch: Batch<'_, ApnsToken>,
        message: &Message,
        apns_id: &ApnsId,
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let mut path = String::with_capacity(DEVICE_PATH.len() + 2 * ApnsToken::LEN);
        path.push_str(DEVICE_PATH);
        batch.first().write_hex(&mut path);
        let uri = self.origin.uri(path).map_err(|e| DeviceError::Rejected {
            provider: "apns",
            code: format!("cannot build the request URI: {e}"),
        })?;
        let body = message.body.clone();
        let mut request = engine::post(uri, Version::HTTP_2, body, None);
        *request.headers_mut() =
            message
                .headers
                .to_map(authorization, self.topic.as_ref(), *apns_id);
        Ok(request)
    }

    fn classify(&self, response: &http::Response<Bytes>, _batch: Batch<'_, ApnsToken>) -> Answers {
        let classified = classify(response.status(), response.headers(), response.body());
        let status = classified.status.as_u16();
        let reason = classified.reason.as_str();
        // Only a failure is ever described; a delivery (nearly every answer) skips the text.
        let described = if classified.verdict == response::Verdict::Delivered {
            String::new()
        } else if reason.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("{status} {reason}")
        };
        let verdict = match classified.verdict {
            response::Verdict::Delivered => engine::Verdict::Delivered,
            response::Verdict::InvalidDevice { timestamp } => {
                engine::Verdict::InvalidDevice { since: timestamp }
            }
            response::Verdict::PayloadTooLarge => engine::Verdict::PayloadTooLarge,
            // APNs does not say whether `TooManyRequests` concerns the token or the provider:
            // the engine's pacer tells by their share (see `engine::Verdict::Throttled`).
            response::Verdict::Retry {
                retry_after,
                client_wide: false,
            } if status == 429 => engine::Verdict::Throttled { retry_after },
            response::Verdict::Retry {
                retry_after,
                client_wide,
            } => engine::Verdict::Retry {
                retry_after,
                client_wide,
            },
            response::Verdict::ExpiredToken => engine::Verdict::Reauthenticate,
            response::Verdict::ClientError => engine::Verdict::ClientError,
            response::Verdict::Rejected => engine::Verdict::Rejected,
        };
        Answers::All(Answer {
            status,
            verdict,
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            id: classified.apns_id.map(|id| id.to_string()),
            new_token: None,
            described,
        })
    }

    fn too_large(&self, message: &Message) -> DeviceError {
        DeviceError::PayloadTooLarge {
            size: message.body.len(),
            limit: message.push_type().payload_limit(),
        }
    }

    fn time_to_live(&self, _message: &Message) -> Option<Duration> {
        // `apns-expiration` is an absolute wall-clock time that APNs enforces itself.
        None
    }

    fn sent_id(&self, apns_id: &ApnsId) -> Option<String> {
        Some(apns_id.to_string())
    }

    fn refuses_credential(&self, response: &http::Response<Bytes>) -> bool {
        let classified = classify(response.status(), response.headers(), response.body());
        classified.verdict == response::Verdict::ExpiredToken
    }
}

/// APNs authentication as an engine [`Credential`]: provider tokens signed locally and
/// refreshed on the core's clock, or a client certificate (no header).
#[derive(Debug)]
pub struct ApnsCredential {
    auth: Auth,
    events: VecDeque<TokenEvent>,
    refreshes: u64,
}

impl ApnsCredential {
    /// The credential for `auth`.
    pub fn new(auth: Auth) -> Self {
        ApnsCredential {
            auth,
            events: VecDeque::new(),
            refreshes: 0,
        }
    }

    /// The token authentication state, when using tokens.
    pub fn token_auth(&self) -> Option<&TokenAuth> {
        match &self.auth {
            Auth::Token(auth) => Some(auth),
            Auth::Certificate => None,
        }
    }
}

impl Credential for ApnsCredential {
    type Event = TokenEvent;

    fn grant(&mut self, now: Instant) -> Grant {
        let auth = match &mut self.auth {
            Auth::Certificate => {
                return Grant::Ready {
                    authorization: None,
                    generation: 0,
                };
            }
            Auth::Token(auth) => auth,
        };
        match auth.token(now) {
            Ok(None) => Grant::Wait,
            Ok(Some((token, fresh))) => {
                let grant = Grant::Ready {
                    authorization: Some(token.authorization().clone()),
                    generation: token.generation(),
                };
                if fresh {
                    self.refreshes += 1;
                    self.events.push_back(TokenEvent::Refreshed {
                        generation: token.generation(),
                        iat: token.iat(),
                    });
                }
                grant
            }
            Err(error) => {
                let description = format!("provider token: {error}");
                self.events.push_back(TokenEvent::SignerFailed(error));
                Grant::Fail(description)
            }
        }
    }

    fn handle_rejected(&mut self, generation: u64) {
        if let Auth::Token(auth) = &mut self.auth {
            auth.handle_expired(generation);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.auth {
            Auth::Token(auth) => auth.refresh_allowed_at(),
            Auth::Certificate => None,
        }
    }

    fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        if let Auth::Token(auth) = &mut self.auth {
            auth.handle_wall_clock(now, unix_now);
        }
    }

    fn poll_event(&mut self) -> Option<TokenEvent> {
        self.events.pop_front()
    }

    fn stats(&self) -> CredentialStats {
        CredentialStats {
            requests: 0,
            refreshes: self.refreshes,
            failures: 0,
        }
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
