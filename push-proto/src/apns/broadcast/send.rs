//! Broadcast send: one `POST /4/broadcasts/apps/<bundle id>` per channel update, on the
//! device API's hosts, with `apns-channel-id`, `apns-push-type: liveactivity`, and optionally
//! `apns-priority`, `apns-expiration` and `apns-request-id`.
//!
//! The answer is one result for the whole audience: 200 with the `apns-request-id`, or an
//! [`ApiError`]. APNs reports nothing per device.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use super::channels::{answered_request_id, expect};
use super::{ApiError, BuildError, ChannelId, check_bundle_id, uri};
use crate::apns::device_push::delivery_headers;
use crate::apns::http2::{ApnsId, ApnsPriority};
use crate::apns::live_activity::Change;

/// The largest broadcast payload, in bytes (5 KB; see docs/apple-broadcast.md for how sure
/// this figure is).
pub const MAX_BROADCAST_PAYLOAD: usize = 5120;

/// One broadcast on one channel: a Live Activity update or end, encoded and size-checked
/// when built.
///
/// ```
/// use push_proto::apns::broadcast::{BroadcastOptions, BroadcastRequest, ChannelId, Environment};
/// use push_proto::apns::live_activity::{Change, Content};
///
/// let channel = ChannelId::new("dHN0LXNyY2gtY2hubA==")?;
/// let change = Change::Update(Content::new(1_700_000_000, Default::default()));
/// let options = BroadcastOptions { expiration: Some(0), ..BroadcastOptions::default() };
/// let broadcast = BroadcastRequest::new(
///     Environment::Production.broadcast_url(), "com.example.app", channel, &change, options,
/// )?;
/// let request = broadcast.to_request();
/// assert_eq!(request.uri(), "https://api.push.apple.com/4/broadcasts/apps/com.example.app");
/// assert_eq!(request.headers()["apns-channel-id"], "dHN0LXNyY2gtY2hubA==");
/// assert_eq!(request.headers()["apns-expiration"], "0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastRequest {
    uri: http::Uri,
    channel: ChannelId,
    body: Bytes,
    options: BroadcastOptions,
}

/// Header options of a broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// `apns-priority`: 10 (immediate), 5 or 1; APNs' default is 10.
    pub priority: Option<ApnsPriority>,
    /// `apns-expiration`: UNIX seconds until which APNs may store the broadcast; channels
    /// with [`StoragePolicy::NoStorage`](super::StoragePolicy::NoStorage) take only 0.
    pub expiration: Option<u64>,
    /// `apns-request-id`, echoed by APNs.
    pub request_id: Option<ApnsId>,
}

impl BroadcastRequest {
    /// `change` on `channel` of `bundle_id`, sent to `base_url` (an
    /// [`Environment::broadcast_url`](super::Environment::broadcast_url) or a mock); refused
    /// when the payload is over [`MAX_BROADCAST_PAYLOAD`].
    pub fn new(
        base_url: &str,
        bundle_id: &str,
        channel: ChannelId,
        change: &Change,
        options: BroadcastOptions,
    ) -> Result<Self, BuildError> {
        check_bundle_id(bundle_id)?;
        Ok(BroadcastRequest {
            uri: uri(base_url, &format!("/4/broadcasts/apps/{bundle_id}"))?,
            channel,
            body: change.encode_within(MAX_BROADCAST_PAYLOAD)?,
            options,
        })
    }

    /// The encoded payload.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The HTTP request (without `authorization`, which the driver's credential adds).
    pub fn to_request(&self) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert("apns-channel-id", self.channel.header_value());
        headers.insert("apns-push-type", HeaderValue::from_static("liveactivity"));
        delivery_headers(headers, self.options.priority, self.options.expiration);
        if let Some(id) = self.options.request_id {
            headers.insert("apns-request-id", id.header_value());
        }
        request
    }
}

/// A broadcast APNs accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastSent {
    /// The `apns-request-id` of the answer, when it carried a valid one.
    pub request_id: Option<ApnsId>,
}

/// The broadcast answer: 200 (with `apns-request-id`) or the typed error.
pub fn classify_broadcast(response: &Response<Bytes>) -> Result<BroadcastSent, ApiError> {
    expect(response, StatusCode::OK)?;
    Ok(BroadcastSent {
        request_id: answered_request_id(response),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::broadcast::{BroadcastReason, Environment};
    use crate::apns::live_activity::Content;
    use serde_json::{Map, json};

    fn channel() -> ChannelId {
        ChannelId::new("dHN0LXNyY2gtY2hubA==").unwrap()
    }

    fn end() -> Change {
        Change::End {
            content: Content::new(9, Map::new()),
            dismissal_date: Some(10),
        }
    }

    #[test]
    fn request_exact() {
        let id = ApnsId::from_bytes([0xab; 16]);
        let options = BroadcastOptions {
            priority: Some(ApnsPriority::PowerAware),
            expiration: Some(1_800_000_000),
            request_id: Some(id),
        };
        let request = BroadcastRequest::new(
            Environment::Development.broadcast_url(),
            "com.example.app",
            channel(),
            &end(),
            options,
        )
        .unwrap()
        .to_request();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri(),
            "https://api.sandbox.push.apple.com/4/broadcasts/apps/com.example.app"
        );
        let headers = request.headers();
        assert_eq!(headers["apns-channel-id"], "dHN0LXNyY2gtY2hubA==");
        assert_eq!(headers["apns-push-type"], "liveactivity");
        assert_eq!(headers["apns-priority"], "5");
        assert_eq!(headers["apns-expiration"], "1800000000");
        assert_eq!(
            headers["apns-request-id"],
            "abababab-abab-abab-abab-abababababab"
        );
        assert_eq!(headers.len(), 5);
        assert_eq!(
            request.body().as_ref(),
            br#"{"aps":{"content-state":{},"dismissal-date":10,"event":"end","timestamp":9}}"#
        );
    }

    #[test]
    fn payload_limit_is_checked_before_sending() {
        let overhead = r#"{"aps":{"content-state":{"k":""},"event":"update","timestamp":1}}"#.len();
        let sized = |len: usize| {
            let state = json!({"k": "x".repeat(len - overhead)});
            Change::Update(Content::new(1, state.as_object().unwrap().clone()))
        };
        let base = Environment::Production.broadcast_url();
        let fits = BroadcastRequest::new(
            base,
            "com.example.app",
            channel(),
            &sized(5120),
            BroadcastOptions::default(),
        );
        assert_eq!(fits.unwrap().body().len(), 5120);
        // Over the device limit, within the broadcast one.
        assert!(
            BroadcastRequest::new(
                base,
                "com.example.app",
                channel(),
                &sized(4097),
                BroadcastOptions::default()
            )
            .is_ok()
        );
        assert_eq!(
            BroadcastRequest::new(
                base,
                "com.example.app",
                channel(),
                &sized(5121),
                BroadcastOptions::default()
            )
            .unwrap_err(),
            BuildError::PayloadTooLarge {
                size: 5121,
                limit: 5120
            }
        );
    }

    #[test]
    fn answers() {
        let ok = Response::builder()
            .status(200)
            .header("apns-request-id", "abababab-abab-abab-abab-abababababab")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            classify_broadcast(&ok),
            Ok(BroadcastSent {
                request_id: Some(ApnsId::from_bytes([0xab; 16]))
            })
        );
        let gone = Response::builder()
            .status(400)
            .body(Bytes::from_static(br#"{"reason":"ChannelNotRegistered"}"#))
            .unwrap();
        assert!(matches!(
            classify_broadcast(&gone),
            Err(ApiError::Rejected {
                reason: BroadcastReason::ChannelNotRegistered,
                ..
            })
        ));
        let too_big = Response::builder()
            .status(413)
            .body(Bytes::from_static(br#"{"reason":"PayloadTooLarge"}"#))
            .unwrap();
        assert!(matches!(
            classify_broadcast(&too_big),
            Err(ApiError::Rejected { status, .. }) if status == StatusCode::PAYLOAD_TOO_LARGE
        ));
        let odd = Response::builder().status(202).body(Bytes::new()).unwrap();
        assert!(matches!(
            classify_broadcast(&odd),
            Err(ApiError::Malformed { .. })
        ));
    }
}
