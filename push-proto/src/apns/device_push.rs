//! The device request shared by Live Activity and widget pushes: `POST /3/device/<token>`
//! with the push type and topic that kind of push requires.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::broadcast::{ApiError, BuildError, check_bundle_id, expect, uri};
use super::http2::{ApnsId, ApnsPriority};
use crate::ApnsToken;

/// Header options of a Live Activity or widget push to one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// `apns-priority` (APNs' default, 10, when `None`).
    pub priority: Option<ApnsPriority>,
    /// `apns-expiration`: UNIX seconds; 0 means deliver once or drop.
    pub expiration: Option<u64>,
    /// `apns-id`, to correlate the answer.
    pub apns_id: Option<ApnsId>,
}

/// What differs between the kinds of device push built here.
pub(crate) struct Kind {
    /// `apns-push-type`.
    pub(crate) push_type: &'static str,
    /// Appended to the bundle id to form `apns-topic`.
    pub(crate) topic_suffix: &'static str,
}

/// `POST <base_url>/3/device/<token>` with `body`, the kind's push type and topic.
pub(crate) fn device_request(
    base_url: &str,
    token: &ApnsToken,
    bundle_id: &str,
    kind: &Kind,
    options: DeviceOptions,
    body: Bytes,
) -> Result<Request<Bytes>, BuildError> {
    check_bundle_id(bundle_id)?;
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri(base_url, &format!("/3/device/{}", token.to_hex()))?;
    let headers = request.headers_mut();
    headers.insert("apns-push-type", HeaderValue::from_static(kind.push_type));
    let topic = format!("{bundle_id}{}", kind.topic_suffix);
    // Checked above: a bundle id of letters, digits, '.' and '-' is a valid header value.
    let topic = HeaderValue::from_str(&topic).map_err(|_| BuildError::BundleId(topic))?;
    headers.insert("apns-topic", topic);
    delivery_headers(headers, options.priority, options.expiration);
    if let Some(id) = options.apns_id {
        headers.insert("apns-id", id.header_value());
    }
    Ok(request)
}

/// The answer to a Live Activity or widget push: `200` gives the `apns-id` APNs echoed (when
/// it is a valid UUID), a 4xx or 5xx the typed rejection with its reason.
pub fn classify_device(response: &Response<Bytes>) -> Result<Option<ApnsId>, ApiError> {
    expect(response, StatusCode::OK)?;
    Ok(response
        .headers()
        .get("apns-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| ApnsId::parse(text).ok()))
}

/// `apns-priority` and `apns-expiration`, when set.
pub(crate) fn delivery_headers(
    headers: &mut HeaderMap,
    priority: Option<ApnsPriority>,
    expiration: Option<u64>,
) {
    if let Some(priority) = priority {
        headers.insert(
            "apns-priority",
            HeaderValue::from(u16::from(priority.value())),
        );
    }
    if let Some(expiration) = expiration {
        headers.insert("apns-expiration", HeaderValue::from(expiration));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::broadcast::BroadcastReason;
    use crate::apns::http2::Reason;

    fn answer(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Bytes> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Bytes::from_static(body.as_bytes())).unwrap()
    }

    #[test]
    fn device_answers() {
        let id = "ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB";
        assert_eq!(
            classify_device(&answer(200, &[("apns-id", id)], "")),
            Ok(Some(ApnsId::from_bytes([0xab; 16])))
        );
        assert_eq!(classify_device(&answer(200, &[], "")), Ok(None));
        let bad = classify_device(&answer(400, &[], r#"{"reason":"BadPayload"}"#)).unwrap_err();
        assert!(matches!(
            bad,
            ApiError::Rejected { reason: BroadcastReason::Provider(Reason::Other(ref text)), .. }
                if text == "BadPayload"
        ));
        assert!(matches!(
            classify_device(&answer(204, &[], "")),
            Err(ApiError::Malformed { .. })
        ));
    }
}
