//! The FCM HTTP v1 provider on the engine: [`FcmProtocol`] (requests and the response table)
//! and [`FcmCredential`] (service-account OAuth2 access tokens).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Uri, Version};
use thiserror::Error;

use super::message::{MAX_MESSAGE_SIZE, Message};
use super::oauth::{OAuth, TokenError, TokenUpdate};
use super::response::{self, classify};
use super::service_account::ServiceAccount;
use crate::engine::{
    self, Answer, Answers, Batch, Credential, CredentialFailure, CredentialStats, Origin, Protocol,
};
use crate::jose::SignError;
use crate::{DeviceError, GcmToken};

/// The FCM endpoint.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";

/// The FCM HTTP v1 sender: the engine's [`Sender`](engine::Sender) speaking [`FcmProtocol`]
/// with an [`FcmCredential`]. Make one with [`sender`].
pub type Sender<T> = engine::Sender<FcmProtocol, FcmCredential, T>;
/// The final result of one notification, with what FCM said (`id` is the message id).
pub type Report<T> = engine::Report<GcmToken, T>;
/// A client-wide FCM event.
pub type Event = engine::Event<TokenEvent>;

/// Settings of the FCM sender.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Scheme and authority of the service ([`DEFAULT_BASE_URL`]); the path is
    /// `/v1/projects/<project_id>/messages:send`.
    pub base_url: String,
    /// The Firebase project messages are sent for.
    pub project_id: String,
    /// Ask FCM to validate messages without delivering them (`"validate_only": true`).
    pub validate_only: bool,
    /// The engine's settings (pending bound, requests in flight, attempts, backoff,
    /// connections).
    pub engine: engine::Config,
}

impl Config {
    /// Defaults for `project_id`: [`DEFAULT_BASE_URL`], no validate-only, the engine's
    /// defaults (100,000 pending, no in-flight cap beyond the connections' stream limits,
    /// 3 attempts, backoff from 1 s to 60 s, seed 0, the default pool).
    pub fn new(project_id: impl Into<String>) -> Self {
        Config {
            base_url: DEFAULT_BASE_URL.into(),
            project_id: project_id.into(),
            validate_only: false,
            engine: engine::Config::default(),
        }
    }

    /// Defaults for the service account's own project.
    pub fn for_account(account: &ServiceAccount) -> Self {
        Config::new(account.project_id.clone())
    }
}

/// An unusable [`Config`] field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `project_id` is empty or has characters a project id cannot have.
    #[error("project_id must be letters, digits, '-', '.', ':' or '_', got {0:?}")]
    ProjectId(String),
    /// A generic setting (or the base URL) is unusable.
    #[error(transparent)]
    Engine(#[from] engine::ConfigError),
}

/// A client-wide event of the FCM credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A new access token is in use.
    Refreshed {
        /// Its generation (1 for the first token).
        generation: u64,
        /// Its lifetime.
        expires_in: Duration,
    },
    /// A token request failed. When `retry_at` is `None` it was final: the notifications
    /// waiting for a token failed ([`DeviceError::Rejected`] when the credentials were
    /// refused, [`DeviceError::Unavailable`] after repeated transient failures).
    RequestFailed {
        /// What went wrong.
        error: TokenError,
        /// When the token request goes out again, if it does.
        retry_at: Option<Instant>,
    },
    /// The [`RsaSigner`](super::RsaSigner) failed; the notifications waiting for a token
    /// failed with [`DeviceError::Rejected`].
    SignerFailed(SignError),
}

/// A sender for `config` authenticating with `auth`, or the first invalid field.
pub fn sender<T>(config: Config, auth: OAuth) -> Result<Sender<T>, ConfigError> {
    let protocol = FcmProtocol::new(&config)?;
    let credential = FcmCredential::new(auth);
    Ok(engine::Sender::new(protocol, credential, config.engine)?)
}

/// FCM's rules: `POST /v1/projects/<project>/messages:send` with the message spliced per
/// token, and the response table of [`response`].
#[derive(Debug)]
pub struct FcmProtocol {
    uri: Uri,
    validate_only: bool,
}

impl FcmProtocol {
    /// The protocol for `config`'s endpoint and project.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let origin = Origin::parse(&config.base_url)?;
        let project = &config.project_id;
        let project_ok = !project.is_empty()
            && project
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
        if !project_ok {
            return Err(ConfigError::ProjectId(project.chars().take(64).collect()));
        }
        let uri = origin
            .uri(format!("/v1/projects/{project}/messages:send"))
            .map_err(|_| ConfigError::ProjectId(project.clone()))?;
        Ok(FcmProtocol {
            uri,
            validate_only: config.validate_only,
        })
    }
}

impl Protocol for FcmProtocol {
    type Token = GcmToken;
    type Message = Message;
    type Meta = ();

    fn provider(&self) -> &'static str {
        "fcm"
    }

    fn prepare(&mut self, _message: &Message) {}

    fn request(
        &self,
        batch: Batch<'_, GcmToken>,
        message: &Message,
        _meta: &(),
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let body = message.body_for(batch.first().as_str(), self.validate_only);
        let mut request = engine::post(self.uri.clone(), Version::HTTP_2, body, authorization);
        let json = HeaderValue::from_static("application/json");
        request.headers_mut().insert(CONTENT_TYPE, json);
        Ok(request)
    }

    fn classify(&self, response: &http::Response<Bytes>, _batch: Batch<'_, GcmToken>) -> Answers {
        let classified = classify(response.status(), response.headers(), response.body());
        let verdict = match classified.verdict {
            response::Verdict::Delivered => engine::Verdict::Delivered,
            response::Verdict::InvalidDevice => engine::Verdict::InvalidDevice { since: None },
            response::Verdict::InvalidToken => engine::Verdict::InvalidToken,
            response::Verdict::PayloadTooLarge => engine::Verdict::PayloadTooLarge,
            response::Verdict::Retry { retry_after } if throttles_project(&classified) => {
                engine::Verdict::Throttled { retry_after }
            }
            response::Verdict::Retry { retry_after } => engine::Verdict::Retry {
                retry_after,
                client_wide: false,
            },
            response::Verdict::Unauthenticated => engine::Verdict::Reauthenticate,
            response::Verdict::ClientError => engine::Verdict::ClientError,
            response::Verdict::Rejected => engine::Verdict::Rejected,
        };
        let reason = classified
            .error_code
            .as_ref()
            .map(|code| code.as_str().to_owned())
            .or_else(|| classified.rpc_status.clone());
        // Only a failure is ever described; a delivery (nearly every answer) skips the text.
        let described = if verdict == engine::Verdict::Delivered {
            String::new()
        } else {
            classified.describe()
        };
        Answers::All(Answer {
            status: classified.status.as_u16(),
            verdict,
            reason,
            described,
            id: classified.message_id,
            new_token: None,
        })
    }

    fn too_large(&self, message: &Message) -> DeviceError {
        DeviceError::PayloadTooLarge {
            size: message.encoded_len(),
            limit: MAX_MESSAGE_SIZE,
        }
    }

    fn time_to_live(&self, message: &Message) -> Option<Duration> {
        message.ttl().map(|ttl| Duration::from_secs(u64::from(ttl)))
    }

    fn sent_id(&self, _meta: &()) -> Option<String> {
        None
    }
}

/// Service-account OAuth2 access tokens as an engine [`Credential`]: one token request at a
/// time to the account's `token_uri`, refreshed before it expires, a refused one replaced.
#[derive(Debug)]
pub struct FcmCredential {
    oauth: OAuth,
    events: VecDeque<TokenEvent>,
    stats: CredentialStats,
}

impl FcmCredential {
    /// The credential for `oauth`.
    pub fn new(oauth: OAuth) -> Self {
        FcmCredential {
            oauth,
            events: VecDeque::new(),
            stats: CredentialStats::default(),
        }
    }

    /// The access-token state.
    pub fn oauth(&self) -> &OAuth {
        &self.oauth
    }

    fn update(&mut self, update: TokenUpdate) -> Option<CredentialFailure> {
        match update {
            TokenUpdate::Refreshed {
                generation,
                expires_in,
            } => {
                self.stats.refreshes += 1;
                self.events.push_back(TokenEvent::Refreshed {
                    generation,
                    expires_in,
                });
                None
            }
            TokenUpdate::Retrying { error, at } => {
                self.stats.failures += 1;
                self.events.push_back(TokenEvent::RequestFailed {
                    error,
                    retry_at: Some(at),
                });
                None
            }
            TokenUpdate::GaveUp { error, attempts } => {
                self.stats.failures += 1;
                let detail = format!("no access token after {attempts} token requests: {error}");
                self.events.push_back(TokenEvent::RequestFailed {
                    error,
                    retry_at: None,
                });
                Some(CredentialFailure::Unavailable(detail))
            }
            TokenUpdate::Refused(error) => {
                self.stats.failures += 1;
                let detail = format!("access token refused: {error}");
                self.events.push_back(TokenEvent::RequestFailed {
                    error,
                    retry_at: None,
                });
                Some(CredentialFailure::Refused(detail))
            }
        }
    }
}

impl Credential for FcmCredential {
    type Event = TokenEvent;

    fn grant(&mut self, now: Instant) -> engine::Grant {
        match self.oauth.token(now) {
            Some(token) => engine::Grant::Ready {
                authorization: Some(token.authorization().clone()),
                generation: token.generation(),
            },
            None => engine::Grant::Wait,
        }
    }

    fn handle_rejected(&mut self, generation: u64) {
        self.oauth.handle_rejected(generation);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.oauth.poll_timeout()
    }

    fn poll_request(&mut self, now: Instant) -> Option<Result<http::Request<Bytes>, String>> {
        match self.oauth.poll_request(now)? {
            Ok(request) => {
                self.stats.requests += 1;
                Some(Ok(request))
            }
            Err(error) => {
                let detail = format!("no access token: {error}");
                self.events.push_back(TokenEvent::SignerFailed(error));
                Some(Err(detail))
            }
        }
    }

    fn handle_response(
        &mut self,
        response: &http::Response<Bytes>,
        now: Instant,
    ) -> Option<CredentialFailure> {
        let update = self.oauth.handle_response(response, now)?;
        self.update(update)
    }

    fn handle_failure(&mut self, reason: &str, now: Instant) -> Option<CredentialFailure> {
        let update = self.oauth.handle_failure(reason, now)?;
        self.update(update)
    }

    fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.oauth.handle_wall_clock(now, unix_now);
    }

    fn poll_event(&mut self) -> Option<TokenEvent> {
        self.events.pop_front()
    }

    fn stats(&self) -> CredentialStats {
        self.stats
    }
}

/// A `429` about the project's quota (FCM's `QUOTA_EXCEEDED`, or no code at all), which
/// throttles the whole route; not one about a single device's message rate (its message names
/// the device), which only that device waits out.
fn throttles_project(classified: &response::Classified) -> bool {
    let about_device = classified
        .message
        .as_deref()
        .is_some_and(|message| message.to_ascii_lowercase().contains("device"));
    classified.status == http::StatusCode::TOO_MANY_REQUESTS
        && matches!(
            classified.error_code,
            None | Some(response::ErrorCode::QuotaExceeded)
        )
        && !about_device
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
