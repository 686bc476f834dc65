//! What a push service's answer means: [`classify`] maps it onto the engine's verdicts.
//!
//! | status | verdict | outcome |
//! |---|---|---|
//! | 2xx (RFC 8030: 201 Created) | [`Verdict::Delivered`] | delivered; `Location` (the push message resource) kept as the receipt's id |
//! | 404, 410 | [`Verdict::InvalidDevice`] | `invalid_device`: the subscription expired or was removed; delete it |
//! | 413 | [`Verdict::PayloadTooLarge`] | `payload_too_large` |
//! | 429 | [`Verdict::Throttled`] | the service limits this sender: the origin's route slows down (its rate controller), the message is retried after `Retry-After` or the backoff; `unavailable` when the retry deadline passes |
//! | 5xx | [`Verdict::Retry`] | retried after `Retry-After` or the backoff |
//! | 401 | [`Verdict::Reauthenticate`] | the VAPID token was refused: a new one is signed and the message sent once more; a second time `rejected` + [`Event::ClientError`](crate::engine::Event::ClientError) |
//! | 403 | [`Verdict::ClientError`] | `rejected` + [`Event::ClientError`](crate::engine::Event::ClientError): the VAPID key is not the one the subscription was made with (or the service refuses this sender) |
//! | 400, any other | [`Verdict::Rejected`] | `rejected` with the service's reason |
//!
//! The service's reason is taken leniently from the body: JSON `reason` (Apple), `message`
//! (Mozilla), `error` (a string, or an object with a `message`), else the first line of a
//! text body; at most [`MAX_REASON`] characters.

use bytes::Bytes;
use http::header::LOCATION;
use serde_json::Value;

use crate::engine::{Answer, Verdict};
use crate::gcm::retry_after;

/// Longest reason kept from a response body, in characters.
pub const MAX_REASON: usize = 200;
/// Longest `Location` kept, in bytes.
const MAX_LOCATION: usize = 2048;

/// The verdict on a push service's `response`, with its reason and the message's `Location`.
/// Never panics, whatever the service sent.
pub fn classify(response: &http::Response<Bytes>) -> Answer {
    let status = response.status();
    let code = status.as_u16();
    let verdict = match code {
        200..=299 => Verdict::Delivered,
        404 | 410 => Verdict::InvalidDevice { since: None },
        413 => Verdict::PayloadTooLarge,
        429 => Verdict::Throttled {
            retry_after: retry_after(response.headers()),
        },
        500..=599 => Verdict::Retry {
            retry_after: retry_after(response.headers()),
            client_wide: false,
        },
        401 => Verdict::Reauthenticate,
        403 => Verdict::ClientError,
        _ => Verdict::Rejected,
    };
    let reason = if status.is_success() {
        None
    } else {
        reason(response.body())
    };
    let id = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .filter(|location| status.is_success() && !location.is_empty())
        .filter(|location| location.len() <= MAX_LOCATION)
        .map(str::to_owned);
    let mut described = match &reason {
        Some(reason) => format!("{code} {reason}"),
        None => format!("HTTP {code}"),
    };
    if code == 403 {
        described.push_str(
            " (the VAPID public key is not the applicationServerKey the subscription was \
             made with, or the push service refuses this sender)",
        );
    }
    Answer {
        status: code,
        verdict,
        reason,
        id,
        new_token: None,
        described,
    }
}

/// The service's reason, from a JSON or text body.
fn reason(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            ["reason", "message", "error"]
                .into_iter()
                .find_map(|key| match json.get(key) {
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(Value::Object(error)) => error
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                })?
        }
        Err(_) => std::str::from_utf8(body).ok()?.lines().next()?.to_owned(),
    };
    let text: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Bytes> {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(Bytes::copy_from_slice(body.as_bytes()))
            .unwrap()
    }

    #[test]
    fn the_table() {
        let throttled = |seconds: Option<u64>| Verdict::Throttled {
            retry_after: seconds.map(Duration::from_secs),
        };
        let retry = |seconds: Option<u64>| Verdict::Retry {
            retry_after: seconds.map(Duration::from_secs),
            client_wide: false,
        };
        let cases = [
            (201, vec![], "", Verdict::Delivered),
            (200, vec![], "", Verdict::Delivered),
            (202, vec![], "", Verdict::Delivered),
            (404, vec![], "", Verdict::InvalidDevice { since: None }),
            (
                410,
                vec![],
                r#"{"reason":"Unregistered"}"#,
                Verdict::InvalidDevice { since: None },
            ),
            (413, vec![], "", Verdict::PayloadTooLarge),
            (429, vec![("retry-after", "7")], "", throttled(Some(7))),
            (429, vec![], "", throttled(None)),
            (500, vec![], "", retry(None)),
            (503, vec![("retry-after", "120")], "", retry(Some(120))),
            (599, vec![], "", retry(None)),
            (401, vec![], "", Verdict::Reauthenticate),
            (403, vec![], "", Verdict::ClientError),
            (400, vec![], "", Verdict::Rejected),
            (405, vec![], "", Verdict::Rejected),
            (302, vec![], "", Verdict::Rejected),
            (100, vec![], "", Verdict::Rejected),
        ];
        for (status, headers, body, verdict) in cases {
            let answer = classify(&response(status, &headers, body));
            assert_eq!(
                (answer.status, &answer.verdict),
                (status, &verdict),
                "{status}"
            );
        }
    }

    #[test]
    fn location_is_the_receipt_of_a_delivery() {
        let location = "https://push.example.net/message/qDIYHNcfAIPP_5tlUI-45n9Y";
        let answer = classify(&response(201, &[("location", location)], ""));
        assert_eq!(answer.id.as_deref(), Some(location));
        assert_eq!(
            (answer.reason, answer.described.as_str()),
            (None, "HTTP 201")
        );
        let long = format!("https://a/{}", "x".repeat(MAX_LOCATION));
        assert_eq!(
            classify(&response(201, &[("location", &long)], "")).id,
            None
        );
        assert_eq!(
            classify(&response(410, &[("location", location)], "")).id,
            None
        );
    }

    #[test]
    fn reasons_from_every_service_shape() {
        let reason = |status, body: &str| classify(&response(status, &[], body)).reason;
        assert_eq!(
            reason(410, r#"{"reason":"Unregistered"}"#).as_deref(),
            Some("Unregistered")
        );
        let mozilla = r#"{"code":401,"errno":109,"error":"Unauthorized","message":"Request did not validate"}"#;
        assert_eq!(
            reason(401, mozilla).as_deref(),
            Some("Request did not validate")
        );
        assert_eq!(
            reason(400, r#"{"error":"Bad topic"}"#).as_deref(),
            Some("Bad topic")
        );
        assert_eq!(
            reason(400, r#"{"error":{"message":"nested"}}"#).as_deref(),
            Some("nested")
        );
        assert_eq!(
            reason(400, "plain text\nsecond line").as_deref(),
            Some("plain text")
        );
        assert_eq!(reason(400, r#"{"other":1}"#), None);
        assert_eq!(reason(400, "   "), None);
        assert_eq!(reason(400, "\u{7}bell"), Some("bell".into()));
        assert_eq!(reason(400, &"x".repeat(500)).unwrap().len(), MAX_REASON);
        assert_eq!(classify(&response(400, &[], "\u{0}")).reason, None);
        let invalid = http::Response::builder()
            .status(400)
            .body(Bytes::from_static(&[0xff, 0xfe]))
            .unwrap();
        assert_eq!(classify(&invalid).reason, None);
        assert_eq!(reason(201, r#"{"reason":"ignored"}"#), None);
    }

    #[test]
    fn a_vapid_mismatch_is_described_clearly() {
        let answer = classify(&response(403, &[], r#"{"reason":"VapidPkHashMismatch"}"#));
        assert_eq!(answer.reason.as_deref(), Some("VapidPkHashMismatch"));
        assert!(
            answer
                .described
                .starts_with("403 VapidPkHashMismatch (the VAPID public key")
        );
        assert!(
            classify(&response(403, &[], ""))
                .described
                .starts_with("HTTP 403 (the VAPID")
        );
    }
}
