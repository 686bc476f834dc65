//! [`Protocol`]: what a provider adds to the engine.

use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, Uri, Version};

use super::batch::Batch;
use super::verdict::Answers;
use crate::feedback::DeviceError;

/// One HTTP provider's rules: how a notification (or a batch of them, for a provider that
/// takes several tokens per request) becomes a request, and what a response means.
/// Everything else (queues, batching, retries, connections, stats) is the engine's.
pub trait Protocol {
    /// A device token, validated for this provider.
    type Token: Clone;
    /// One notification's content, encoded once per session and cloned per device (cheap:
    /// shared buffers).
    type Message: Clone;
    /// What the protocol keeps per notification (APNs: its `apns-id`).
    type Meta;

    /// The provider's name in errors (`apns`, `fcm`, `gcm`).
    fn provider(&self) -> &'static str;

    /// Most notifications one request may carry: 1 (the default) for a request per
    /// notification. Above 1, the engine gathers consecutive ready notifications whose
    /// messages are [`batchable`](Self::batchable) into one request, and each keeps its own
    /// attempts, retries and report.
    fn max_batch(&self) -> usize {
        1
    }

    /// True when notifications of messages `a` and `b` may travel in one request (asked only
    /// when [`max_batch`](Self::max_batch) is above 1).
    fn batchable(&self, _a: &Self::Message, _b: &Self::Message) -> bool {
        false
    }

    /// How long a partial batch that could still grow waits for more notifications before it
    /// is sent anyway (the default: not at all). [`Sender::flush`](super::Sender::flush) ends
    /// the wait of the notifications queued so far.
    fn linger(&self) -> Duration {
        Duration::ZERO
    }

    /// The per-notification state for `message`, made when it is queued.
    fn prepare(&mut self, message: &Self::Message) -> Self::Meta;

    /// The request that sends `message` to the tokens of `batch` (`meta` is the first
    /// notification's), with the credential's `authorization` header, or why it cannot be
    /// built (the notifications fail with that error).
    fn request(
        &self,
        batch: Batch<'_, Self::Token>,
        message: &Self::Message,
        meta: &Self::Meta,
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError>;

    /// What `response` to the request for `batch` means. Never panics, whatever the peer
    /// sent.
    fn classify(&self, response: &http::Response<Bytes>, batch: Batch<'_, Self::Token>) -> Answers;

    /// The error of a notification the provider found too large.
    fn too_large(&self, message: &Self::Message) -> DeviceError;

    /// How long the notification stays worth delivering: no retry is scheduled past it.
    fn time_to_live(&self, message: &Self::Message) -> Option<Duration>;

    /// The notification id sent with the request, if the protocol sends one.
    fn sent_id(&self, meta: &Self::Meta) -> Option<String>;

    /// True when `response` (to any request on the route, also an
    /// [exchange](super::Sender::exchange)) refuses the credential it was sent with, so that
    /// the credential is renewed (the default: never).
    fn refuses_credential(&self, _response: &http::Response<Bytes>) -> bool {
        false
    }
}

/// A `POST` of `body` to `uri` over `version`, with the credential's `authorization` header
/// when there is one: the request every protocol starts from.
pub(crate) fn post(
    uri: Uri,
    version: Version,
    body: Bytes,
    authorization: Option<&HeaderValue>,
) -> http::Request<Bytes> {
    let mut request = http::Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    if let Some(authorization) = authorization {
        request
            .headers_mut()
            .insert(AUTHORIZATION, authorization.clone());
    }
    request
}
