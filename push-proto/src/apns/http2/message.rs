//! [`Message`]: a notification encoded once, with its validated headers, ready to be queued
//! for any number of devices.

use std::sync::Arc;

use bytes::Bytes;

use super::headers::{ApnsId, HeaderSet, Options, PushType};
use super::notification::Notification;
use crate::feedback::DeviceError;

/// An encoded notification and its request headers. Cloning is cheap (the body is shared), so
/// one `Message` is queued for many devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) body: Bytes,
    pub(crate) headers: Arc<HeaderSet>,
}

impl Message {
    /// Encodes `notification` for `options`, checking the size limit of the push type (4096
    /// bytes, 5120 for VoIP) and the header values before anything is sent.
    ///
    /// Fails with [`DeviceError::PayloadTooLarge`], or [`DeviceError::InvalidPayload`] for a
    /// reserved custom key or a topic that is not a valid header value.
    pub fn new(notification: &Notification, options: &Options) -> Result<Self, DeviceError> {
        let headers =
            HeaderSet::new(options).map_err(|e| DeviceError::InvalidPayload(e.to_string()))?;
        let body = notification.encode(options.push_type)?;
        Ok(Message {
            body,
            headers: Arc::new(headers),
        })
    }

    /// The JSON body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The push type.
    pub fn push_type(&self) -> PushType {
        self.headers.push_type
    }

    /// The supplied `apns-id`, if any.
    pub fn apns_id(&self) -> Option<ApnsId> {
        self.headers.apns_id
    }
}
