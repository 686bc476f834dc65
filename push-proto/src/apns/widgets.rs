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

    use proptest::prelude::*;

    proptest! {
        /// Any token and options: the request reads back to them (the token from the path,
        /// each option from its header, nothing else), with the fixed type, topic and body.
        #[test]
        fn requests_read_back_to_their_token_and_options(
            token in any::<[u8; 32]>(),
            priority in proptest::option::of(prop_oneof![
                Just(ApnsPriority::Immediate),
                Just(ApnsPriority::PowerAware),
                Just(ApnsPriority::Lowest),
            ]),
            expiration in proptest::option::of(any::<u64>()),
            apns_id in proptest::option::of(any::<[u8; 16]>()),
            bundle in "[a-z][a-z0-9.-]{0,30}",
        ) {
            let token = ApnsToken::from_bytes(token);
            let options = DeviceOptions {
                priority,
                expiration,
                apns_id: apns_id.map(ApnsId::from_bytes),
            };
            let request = request("https://api.push.apple.com", &token, &bundle, options).unwrap();
            let hex = request.uri().path().strip_prefix("/3/device/").unwrap();
            prop_assert_eq!(ApnsToken::parse(hex).unwrap(), token);
            let headers = request.headers();
            let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
            prop_assert_eq!(header("apns-push-type"), Some("widgets".to_owned()));
            prop_assert_eq!(header("apns-topic"), Some(format!("{bundle}{TOPIC_SUFFIX}")));
            prop_assert_eq!(
                header("apns-priority"),
                priority.map(|p| p.value().to_string())
            );
            prop_assert_eq!(
                header("apns-expiration").map(|v| v.parse::<u64>().unwrap()),
                expiration
            );
            prop_assert_eq!(
                header("apns-id").map(|v| ApnsId::parse(&v).unwrap()),
                options.apns_id
            );
            let count = 2 + usize::from(priority.is_some())
                + usize::from(expiration.is_some())
                + usize::from(apns_id.is_some());
            prop_assert_eq!(headers.len(), count);
            prop_assert_eq!(request.body(), &payload());
        }
    }
}
