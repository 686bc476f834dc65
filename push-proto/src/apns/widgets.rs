//! WidgetKit pushes: ask the system to reload an app's widgets (`apns-push-type: widgets`).
//!
//! The payload is always `{"aps":{"content-changed":true}}` and the topic is the bundle id
//! followed by `.push-type.widgets`. The widget timeline, not the push, carries the data.
//!
//! ```
//! use push_proto::ApnsToken;
//! use push_proto::apns::{DeviceOptions, widgets};
//!
//! let token = ApnsToken::parse(&"ab".repeat(32))?;
//! let request = widgets::request(
//!     "https://api.push.apple.com", &token, "com.example.app", DeviceOptions::default(),
//! )?;
//! assert_eq!(request.headers()["apns-push-type"], "widgets");
//! assert_eq!(request.headers()["apns-topic"], "com.example.app.push-type.widgets");
//! assert_eq!(request.body().as_ref(), br#"{"aps":{"content-changed":true}}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use http::Request;

use super::broadcast::BuildError;
use super::device_push::{DeviceOptions, Kind, device_request};
use crate::ApnsToken;

/// The widget push's topic suffix.
pub const TOPIC_SUFFIX: &str = ".push-type.widgets";

const KIND: Kind = Kind {
    push_type: "widgets",
    topic_suffix: TOPIC_SUFFIX,
};

/// The widget push payload.
pub fn payload() -> Bytes {
    Bytes::from_static(br#"{"aps":{"content-changed":true}}"#)
}

/// A widget push to the device `token` of `bundle_id`, at `base_url` (Apple's device hosts
/// or a mock).
pub fn request(
    base_url: &str,
    token: &ApnsToken,
    bundle_id: &str,
    options: DeviceOptions,
) -> Result<Request<Bytes>, BuildError> {
    device_request(base_url, token, bundle_id, &KIND, options, payload())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::http2::{ApnsId, ApnsPriority};

    #[test]
    fn request_exact() {
        let token = ApnsToken::parse(&"0f".repeat(32)).unwrap();
        let options = DeviceOptions {
            priority: Some(ApnsPriority::PowerAware),
            expiration: Some(1_800_000_000),
            apns_id: Some(ApnsId::from_bytes([0x11; 16])),
        };
        let request = request(
            "https://api.sandbox.push.apple.com/",
            &token,
            "com.example.app",
            options,
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri(),
            format!(
                "https://api.sandbox.push.apple.com/3/device/{}",
                "0f".repeat(32)
            )
            .as_str()
        );
        let headers = request.headers();
        assert_eq!(headers["apns-push-type"], "widgets");
        assert_eq!(headers["apns-topic"], "com.example.app.push-type.widgets");
        assert_eq!(headers["apns-priority"], "5");
        assert_eq!(headers["apns-expiration"], "1800000000");
        assert_eq!(headers["apns-id"], "11111111-1111-1111-1111-111111111111");
        assert_eq!(headers.len(), 5);
        assert_eq!(
            request.body().as_ref(),
            br#"{"aps":{"content-changed":true}}"#
        );
    }

    #[test]
    fn bad_bundle_refused() {
        let token = ApnsToken::parse(&"0f".repeat(32)).unwrap();
        assert!(matches!(
            request("https://x", &token, "a b", DeviceOptions::default()),
            Err(BuildError::BundleId(_))
        ));
    }
}
