//! [`Protocol`]: what a provider adds to the engine.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

use super::verdict::Answer;
use crate::feedback::DeviceError;

/// One HTTP provider's rules: how a notification becomes a request, and what a response
/// means. Everything else (queues, retries, connections, stats) is the engine's.
pub trait Protocol {
    /// A device token, validated for this provider.
    type Token: Clone;
    /// One notification's content, encoded once per session and cloned per device (cheap:
    /// shared buffers).
    type Message: Clone;
    /// What the protocol keeps per notification (APNs: its `apns-id`).
    type Meta;

    /// The provider's name in errors (`apns`, `fcm`).
    fn provider(&self) -> &'static str;

    /// The per-notification state for `message`, made when it is queued.
    fn prepare(&mut self, message: &Self::Message) -> Self::Meta;

    /// The request that sends `message` to `token`, with the credential's `authorization`
    /// header, or why it cannot be built (the notification fails with that error).
    fn request(
        &self,
        token: &Self::Token,
        message: &Self::Message,
        meta: &Self::Meta,
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError>;

    /// What `response` means. Never panics, whatever the peer sent.
    fn classify(&self, response: &http::Response<Bytes>) -> Answer;

    /// The error of a notification the provider found too large.
    fn too_large(&self, message: &Self::Message) -> DeviceError;

    /// How long the notification stays worth delivering: no retry is scheduled past it.
    fn time_to_live(&self, message: &Self::Message) -> Option<Duration>;

    /// The notification id sent with the request, if the protocol sends one.
    fn sent_id(&self, meta: &Self::Meta) -> Option<String>;
}
