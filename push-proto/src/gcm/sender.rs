//! The legacy GCM provider on the engine: [`GcmProtocol`] (batched requests, per-token
//! results) authenticated by the API key as a [`FixedCredential`].

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode, Uri, Version};

use super::config::{Config, ConfigError, MAX_BATCH_SIZE};
use super::message::{Encoded, MAX_DATA_LEN};
use super::response::parse_results;
use super::retry_after::retry_after;
use crate::engine::{self, Answer, Answers, Batch, FixedCredential, Protocol, Verdict};
use crate::{DeviceError, GcmToken};

/// The GCM sender: the engine's [`Sender`](engine::Sender) speaking [`GcmProtocol`] with the
/// API key. Make one with [`sender`].
pub type Sender<T> = engine::Sender<GcmProtocol, FixedCredential, T>;
/// The final result of one token, with what GCM said (`id` is the `message_id`, a canonical
/// id is the outcome's `new_token`).
pub type Report<T> = engine::Report<GcmToken, T>;
/// A client-wide GCM event (a 401 is a [`ClientError`](engine::Event::ClientError)).
pub type Event = engine::Event<Infallible>;

/// A sender for `config`, or the first invalid field.
pub fn sender<T>(config: Config) -> Result<Sender<T>, ConfigError> {
    let protocol = GcmProtocol::new(&config)?;
    let credential = FixedCredential::header(authorization(&config.api_key)?);
    Ok(engine::Sender::new(protocol, credential, config.engine)?)
}

/// The `authorization` header for `api_key`.
fn authorization(api_key: &str) -> Result<HeaderValue, ConfigError> {
    let error = |reason: &str| ConfigError {
        field: "api_key",
        reason: reason.into(),
    };
    if api_key.is_empty() {
        return Err(error("must not be empty"));
    }
    HeaderValue::from_str(&format!("key={api_key}")).map_err(|_| error("must be printable ASCII"))
}

/// GCM's rules: `POST <endpoint>` with a batch of `registration_ids`, and a 200 answered token
/// by token (see [`parse_results`]); 400 and other statuses reject the batch, 401 rejects it
/// as a client-wide error, 5xx and 429 retry it after `Retry-After` or the backoff.
#[derive(Debug)]
pub struct GcmProtocol {
    endpoint: Uri,
    batch_size: usize,
    linger: Duration,
}

impl GcmProtocol {
    /// The protocol for `config`'s endpoint and batching.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let error = |field, reason: String| Err(ConfigError { field, reason });
        if !(1..=MAX_BATCH_SIZE).contains(&config.batch_size) {
            return error(
                "batch_size",
                format!("must be in 1..={MAX_BATCH_SIZE}, got {}", config.batch_size),
            );
        }
        let endpoint = &config.endpoint;
        if endpoint.scheme().is_none() || endpoint.authority().is_none() {
            return error(
                "endpoint",
                format!("must be an absolute URI, got {endpoint}"),
            );
        }
        Ok(GcmProtocol {
            endpoint: endpoint.clone(),
            batch_size: config.batch_size,
            linger: config.linger,
        })
    }
}

/// The first `limit` characters of a body, for error descriptions.
fn excerpt(body: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(body).chars().take(limit).collect()
}

/// An answer for every token of the batch, described by `described`.
fn all(status: u16, verdict: Verdict, described: String) -> Answers {
    Answers::All(Answer {
        described,
        ..Answer::new(status, verdict)
    })
}

impl Protocol for GcmProtocol {
    type Token = GcmToken;
    type Message = Encoded;
    type Meta = ();

    fn provider(&self) -> &'static str {
        "gcm"
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    fn batchable(&self, a: &Encoded, b: &Encoded) -> bool {
        a.same_as(b)
    }

    fn linger(&self) -> Duration {
        self.linger
    }

    fn prepare(&mut self, _message: &Encoded) {}

    fn request(
        &self,
        batch: Batch<'_, GcmToken>,
        message: &Encoded,
        _meta: &(),
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let ids: Vec<&str> = batch.tokens().map(GcmToken::as_str).collect();
        let body = message.request_body(&ids)?;
        let mut request =
            engine::post(self.endpoint.clone(), Version::HTTP_11, body, authorization);
        let json = HeaderValue::from_static("application/json");
        request.headers_mut().insert(CONTENT_TYPE, json);
        Ok(request)
    }

    fn classify(&self, response: &http::Response<Bytes>, batch: Batch<'_, GcmToken>) -> Answers {
        let status = response.status();
        let body = response.body();
        let code = status.as_u16();
        match status {
            StatusCode::OK => {
                let ids: Vec<&str> = batch.tokens().map(GcmToken::as_str).collect();
                match parse_results(body, &ids, retry_after(response.headers())) {
                    Ok(answers) => Answers::Each(answers),
                    Err(malformed) => all(code, Verdict::Rejected, malformed.to_string()),
                }
            }
            StatusCode::BAD_REQUEST => {
                let described = format!("400 Bad Request: {}", excerpt(body, 200));
                all(code, Verdict::Rejected, described)
            }
            StatusCode::UNAUTHORIZED => Answers::All(Answer {
                reason: Some(excerpt(body, 200)),
                described: "401 Unauthorized: the API key was refused".into(),
                ..Answer::new(code, Verdict::ClientError)
            }),
            _ if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                let verdict = Verdict::Retry {
                    retry_after: retry_after(response.headers()),
                    client_wide: false,
                };
                all(code, verdict, format!("HTTP {status}"))
            }
            _ => {
                let described = format!("HTTP {status}: {}", excerpt(body, 200));
                all(code, Verdict::Rejected, described)
            }
        }
    }

    fn too_large(&self, message: &Encoded) -> DeviceError {
        DeviceError::PayloadTooLarge {
            size: message.encoded_len(),
            limit: MAX_DATA_LEN,
        }
    }

    fn time_to_live(&self, message: &Encoded) -> Option<Duration> {
        message
            .time_to_live()
            .map(|ttl| Duration::from_secs(u64::from(ttl)))
    }

    fn sent_id(&self, _meta: &()) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
