//! Broadcast push (iOS 18): channel management and one-request-per-channel Live Activity
//! updates, as sans-IO request builders and response classifiers.
//!
//! - [`ChannelApi`] builds the four channel-management requests (create, read, delete,
//!   list) for the management hosts, and [`ChannelApi::classify_create`] and its siblings turn
//!   the answers into a [`ChannelId`], a [`ChannelInfo`], `()` or a list, or an [`ApiError`].
//! - [`BroadcastRequest`] builds the one `POST /4/broadcasts/apps/<bundle id>` request for
//!   a channel, its payload size checked before anything is sent; [`classify_broadcast`] gives
//!   the request id or an [`ApiError`] (a broadcast has no per-device feedback).
//! - [`parse_channel_request`] and [`parse_broadcast_request`] read those requests back, for
//!   servers and mocks, or give the [`BroadcastReason`] to refuse them with.
//!
//! Nothing here opens a connection or signs a token: the driver sends the requests over
//! HTTP/2 with the same credential as device sends (`authorization: bearer <JWT>` or the
//! client certificate). Facts and sources: `docs/apple-broadcast.md`.

mod channels;
mod reason;
mod send;
mod server;

use std::fmt;

use http::HeaderValue;
use thiserror::Error;

pub(crate) use channels::expect;
pub use channels::{ChannelApi, ChannelInfo, StoragePolicy, list_body};
pub use reason::{ApiError, BroadcastReason};
pub use send::{
    BroadcastOptions, BroadcastRequest, BroadcastSent, MAX_BROADCAST_PAYLOAD, classify_broadcast,
};
pub use server::{
    BroadcastCall, ChannelCall, ChannelOp, parse_broadcast_request, parse_channel_request,
};

/// The most channels an app may keep per environment (development and production each).
pub const MAX_CHANNELS: usize = 10_000;

/// Longest channel id accepted (Apple documents none; ids seen are short base64 strings).
pub const MAX_CHANNEL_ID: usize = 256;

/// An APNs environment: channels live in one of them only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// The development (sandbox) environment.
    Development,
    /// The production environment.
    Production,
}

impl Environment {
    /// Base URL of the channel-management API.
    pub fn management_url(self) -> &'static str {
        match self {
            Environment::Development => "https://api-manage-broadcast.sandbox.push.apple.com:2195",
            Environment::Production => "https://api-manage-broadcast.push.apple.com:2196",
        }
    }

    /// Base URL of the broadcast send API (the device API's hosts).
    pub fn broadcast_url(self) -> &'static str {
        match self {
            Environment::Development => "https://api.sandbox.push.apple.com",
            Environment::Production => "https://api.push.apple.com",
        }
    }
}

/// Why a channel id, bundle id or request is invalid before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A channel id that is empty, too long, or not visible ASCII.
    #[error("invalid channel id ({len} bytes): visible ASCII, 1 to {MAX_CHANNEL_ID} bytes")]
    ChannelId {
        /// Its length in bytes.
        len: usize,
    },
    /// A bundle id that is empty or has characters other than letters, digits, `.` and `-`.
    #[error("invalid bundle id {0:?}")]
    BundleId(String),
    /// A base URL that does not form a valid URI with the path.
    #[error("invalid base URL {0:?}")]
    BaseUrl(String),
    /// The encoded payload is over the limit.
    #[error("payload of {size} bytes is over the {limit}-byte limit")]
    PayloadTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The payload is not the documented JSON.
    #[error("invalid payload: {0}")]
    Payload(String),
}

/// A channel id as APNs returns it in `apns-channel-id` (opaque; base64 in practice).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(String);

impl ChannelId {
    /// Checks `text`: 1 to [`MAX_CHANNEL_ID`] bytes of visible ASCII (so it is a valid header
    /// value and a JSON string without escapes).
    pub fn new(text: &str) -> Result<Self, BuildError> {
        let valid = (1..=MAX_CHANNEL_ID).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if valid {
            Ok(ChannelId(text.to_owned()))
        } else {
            Err(BuildError::ChannelId { len: text.len() })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        // Checked in `new`: visible ASCII is always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({})", self.0)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a bundle id for use in a path: letters, digits, `.` and `-`, not empty.
pub(crate) fn check_bundle_id(bundle_id: &str) -> Result<(), BuildError> {
    let valid = !bundle_id.is_empty()
        && bundle_id.len() <= 255
        && bundle_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(BuildError::BundleId(bundle_id.chars().take(100).collect()))
    }
}

/// `base` (trailing `/` dropped) followed by `path`, as a URI.
pub(crate) fn uri(base: &str, path: &str) -> Result<http::Uri, BuildError> {
    let text = format!("{}{path}", base.trim_end_matches('/'));
    text.parse()
        .map_err(|_| BuildError::BaseUrl(base.chars().take(100).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_per_environment() {
        assert_eq!(
            Environment::Development.management_url(),
            "https://api-manage-broadcast.sandbox.push.apple.com:2195"
        );
        assert_eq!(
            Environment::Production.management_url(),
            "https://api-manage-broadcast.push.apple.com:2196"
        );
        assert_eq!(
            Environment::Development.broadcast_url(),
            "https://api.sandbox.push.apple.com"
        );
        assert_eq!(
            Environment::Production.broadcast_url(),
            "https://api.push.apple.com"
        );
    }

    #[test]
    fn channel_ids_are_checked() {
        assert_eq!(
            ChannelId::new("dHN0LXNyY2gtY2hubA==").unwrap().as_str(),
            "dHN0LXNyY2gtY2hubA=="
        );
        for bad in ["", "has space", "quote\"", "back\\slash", "é"] {
            assert!(ChannelId::new(bad).is_err(), "{bad:?}");
        }
        assert!(ChannelId::new(&"a".repeat(MAX_CHANNEL_ID)).is_ok());
        assert_eq!(
            ChannelId::new(&"a".repeat(MAX_CHANNEL_ID + 1)),
            Err(BuildError::ChannelId {
                len: MAX_CHANNEL_ID + 1
            })
        );
    }

    #[test]
    fn bundle_ids_are_checked() {
        assert!(check_bundle_id("com.example.app-2").is_ok());
        for bad in ["", "com/example", "com example", "a?b"] {
            assert!(check_bundle_id(bad).is_err(), "{bad:?}");
        }
    }
}
