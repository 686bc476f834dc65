//! Response classification: status, `reason` and `timestamp` to a [`Verdict`].
//!
//! The table below is what [`classify`] implements (and what the sender does with it); a unit
//! test walks every reason APNs documents.
//!
//! | status | reason | verdict | outcome |
//! |---|---|---|---|
//! | 200 | — | [`Verdict::Delivered`] | delivered, `apns-id` kept |
//! | 400 | `BadDeviceToken` | [`Verdict::InvalidDevice`] | `invalid_device` (also seen when sandbox and production are mixed up) |
//! | 410 | `Unregistered`, `ExpiredToken`, any | [`Verdict::InvalidDevice`] with `timestamp` | `invalid_device` |
//! | 413 | `PayloadTooLarge`, any | [`Verdict::PayloadTooLarge`] | `payload_too_large` |
//! | 429 | `TooManyRequests`, any other | [`Verdict::Retry`] | retried after `Retry-After` or the backoff; `unavailable` when attempts run out |
//! | 429 | `TooManyProviderTokenUpdates` | [`Verdict::Retry`] (`client_wide`) | retried; [`Event::ClientError`](super::Event::ClientError) |
//! | 500 | `InternalServerError`, any | [`Verdict::Retry`] | as 429 |
//! | 503 | `ServiceUnavailable`, `Shutdown`, any | [`Verdict::Retry`] | as 429 |
//! | other 5xx | any | [`Verdict::Retry`] | as 429 |
//! | 400 | `IdleTimeout` | [`Verdict::Retry`] | as 429 (the connection idled out; normally sent in GOAWAY) |
//! | 403 | `ExpiredProviderToken` | [`Verdict::ExpiredToken`] | token refreshed (not before it is 20 minutes old), the notification retried once; a second time `rejected` + [`Event::ClientError`](super::Event::ClientError) |
//! | 403 | `InvalidProviderToken`, `MissingProviderToken`, `BadCertificate`, `BadCertificateEnvironment`, `Forbidden`, `UnrelatedKeyIdInToken`, `BadEnvironmentKeyIdInToken`, any other | [`Verdict::ClientError`] | `rejected` + [`Event::ClientError`](super::Event::ClientError) |
//! | 400 | `MissingTopic`, `BadTopic`, `TopicDisallowed` | [`Verdict::ClientError`] | as 403 (the sender's topic configuration is wrong) |
//! | 404 | `BadPath`, any | [`Verdict::ClientError`] | as 403 (the base URL is wrong) |
//! | 405 | `MethodNotAllowed`, any | [`Verdict::ClientError`] | as 403 (the adapter is wrong) |
//! | 400 | `DeviceTokenNotForTopic`, `BadCollapseId`, `BadExpirationDate`, `BadMessageId`, `BadPriority`, `DuplicateHeaders`, `InvalidPushType`, `MissingDeviceToken`, `PayloadEmpty`, any other | [`Verdict::Rejected`] | `rejected` with the reason |
//! | other 4xx, 1xx, 2xx, 3xx | any | [`Verdict::Rejected`] | `rejected` with the status and reason |
//!
//! The body is parsed leniently: a missing, malformed or oversized body gives an empty reason,
//! and the status alone decides.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::headers::ApnsId;
use crate::gcm::retry_after;

/// A `reason` string from an APNs error response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// 400: the collapse id is too long.
    BadCollapseId,
    /// 400: the device token is invalid (or for the other environment).
    BadDeviceToken,
    /// 400: bad `apns-expiration`.
    BadExpirationDate,
    /// 400: bad `apns-id`.
    BadMessageId,
    /// 400: bad `apns-priority`.
    BadPriority,
    /// 400: bad `apns-topic`.
    BadTopic,
    /// 400: the token is not for this topic.
    DeviceTokenNotForTopic,
    /// 400: a header was repeated.
    DuplicateHeaders,
    /// 400: the connection was idle too long.
    IdleTimeout,
    /// 400: bad `apns-push-type`.
    InvalidPushType,
    /// 400: no device token in the path.
    MissingDeviceToken,
    /// 400: no `apns-topic` where one is required.
    MissingTopic,
    /// 400: empty payload.
    PayloadEmpty,
    /// 400: pushing to this topic is not allowed.
    TopicDisallowed,
    /// 403: the client certificate is invalid.
    BadCertificate,
    /// 403: the certificate is for the other environment.
    BadCertificateEnvironment,
    /// 403: the provider token is stale.
    ExpiredProviderToken,
    /// 403: the action is not allowed.
    Forbidden,
    /// 403: the provider token is invalid or its signature does not verify.
    InvalidProviderToken,
    /// 403: no certificate and no provider token.
    MissingProviderToken,
    /// 403: the key id in the token is unrelated to the topic.
    UnrelatedKeyIdInToken,
    /// 403: the key id in the token is for the other environment.
    BadEnvironmentKeyIdInToken,
    /// 404: bad `:path`.
    BadPath,
    /// 405: not `POST`.
    MethodNotAllowed,
    /// 410: the token is no longer active for the topic.
    Unregistered,
    /// 410: the token expired.
    ExpiredToken,
    /// 413: the payload is too large.
    PayloadTooLarge,
    /// 429: the provider token was replaced too often.
    TooManyProviderTokenUpdates,
    /// 429: too many requests to one device token.
    TooManyRequests,
    /// 500: internal server error.
    InternalServerError,
    /// 503: the service is unavailable.
    ServiceUnavailable,
    /// 503: the server is shutting down.
    Shutdown,
    /// A reason this version does not know (kept verbatim, at most 100 characters), or an
    /// empty string when the body had none.
    Other(String),
}

impl Reason {
    /// Every documented reason, in the order of PROTOCOLS.md §2c.
    pub const DOCUMENTED: [Reason; 32] = [
        Reason::BadCollapseId,
        Reason::BadDeviceToken,
        Reason::BadExpirationDate,
        Reason::BadMessageId,
        Reason::BadPriority,
        Reason::BadTopic,
        Reason::DeviceTokenNotForTopic,
        Reason::DuplicateHeaders,
        Reason::IdleTimeout,
        Reason::InvalidPushType,
        Reason::MissingDeviceToken,
        Reason::MissingTopic,
        Reason::PayloadEmpty,
        Reason::TopicDisallowed,
        Reason::BadCertificate,
        Reason::BadCertificateEnvironment,
        Reason::ExpiredProviderToken,
        Reason::Forbidden,
        Reason::InvalidProviderToken,
        Reason::MissingProviderToken,
        Reason::UnrelatedKeyIdInToken,
        Reason::BadEnvironmentKeyIdInToken,
        Reason::BadPath,
        Reason::MethodNotAllowed,
        Reason::Unregistered,
        Reason::ExpiredToken,
        Reason::PayloadTooLarge,
        Reason::TooManyProviderTokenUpdates,
        Reason::TooManyRequests,
        Reason::InternalServerError,
        Reason::ServiceUnavailable,
        Reason::Shutdown,
    ];

    /// The reason string as APNs writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::BadCollapseId => "BadCollapseId",
            Reason::BadDeviceToken => "BadDeviceToken",
            Reason::BadExpirationDate => "BadExpirationDate",
            Reason::BadMessageId => "BadMessageId",
            Reason::BadPriority => "BadPriority",
            Reason::BadTopic => "BadTopic",
            Reason::DeviceTokenNotForTopic => "DeviceTokenNotForTopic",
            Reason::DuplicateHeaders => "DuplicateHeaders",
            Reason::IdleTimeout => "IdleTimeout",
            Reason::InvalidPushType => "InvalidPushType",
            Reason::MissingDeviceToken => "MissingDeviceToken",
            Reason::MissingTopic => "MissingTopic",
            Reason::PayloadEmpty => "PayloadEmpty",
            Reason::TopicDisallowed => "TopicDisallowed",
            Reason::BadCertificate => "BadCertificate",
            Reason::BadCertificateEnvironment => "BadCertificateEnvironment",
            Reason::ExpiredProviderToken => "ExpiredProviderToken",
            Reason::Forbidden => "Forbidden",
            Reason::InvalidProviderToken => "InvalidProviderToken",
            Reason::MissingProviderToken => "MissingProviderToken",
            Reason::UnrelatedKeyIdInToken => "UnrelatedKeyIdInToken",
            Reason::BadEnvironmentKeyIdInToken => "BadEnvironmentKeyIdInToken",
            Reason::BadPath => "BadPath",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::Unregistered => "Unregistered",
            Reason::ExpiredToken => "ExpiredToken",
            Reason::PayloadTooLarge => "PayloadTooLarge",
            Reason::TooManyProviderTokenUpdates => "TooManyProviderTokenUpdates",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalServerError => "InternalServerError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Shutdown => "Shutdown",
            Reason::Other(other) => other,
        }
    }

    /// The reason named `text` (exact match), or [`Reason::Other`].
    pub fn parse(text: &str) -> Reason {
        Reason::DOCUMENTED
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .unwrap_or_else(|| Reason::Other(text.chars().take(100).collect()))
    }

    /// The status APNs documents this reason with (`None` for [`Reason::Other`]).
    pub fn documented_status(&self) -> Option<u16> {
        use Reason::*;
        Some(match self {
            BadCollapseId
            | BadDeviceToken
            | BadExpirationDate
            | BadMessageId
            | BadPriority
            | BadTopic
            | DeviceTokenNotForTopic
            | DuplicateHeaders
            | IdleTimeout
            | InvalidPushType
            | MissingDeviceToken
            | MissingTopic
            | PayloadEmpty
            | TopicDisallowed => 400,
            BadCertificate
            | BadCertificateEnvironment
            | ExpiredProviderToken
            | Forbidden
            | InvalidProviderToken
            | MissingProviderToken
            | UnrelatedKeyIdInToken
            | BadEnvironmentKeyIdInToken => 403,
            BadPath => 404,
            MethodNotAllowed => 405,
            Unregistered | ExpiredToken => 410,
            PayloadTooLarge => 413,
            TooManyProviderTokenUpdates | TooManyRequests => 429,
            InternalServerError => 500,
            ServiceUnavailable | Shutdown => 503,
            Other(_) => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one response means for its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: delivered to APNs.
    Delivered,
    /// The token is invalid: delete it.
    InvalidDevice {
        /// For 410: milliseconds since the epoch when APNs last confirmed the token was
        /// invalid for the topic.
        timestamp: Option<u64>,
    },
    /// 413: the payload is too large.
    PayloadTooLarge,
    /// Transient: send it again later.
    Retry {
        /// The delay `Retry-After` asks for, if any.
        retry_after: Option<Duration>,
        /// Also report a client-wide event (`TooManyProviderTokenUpdates`).
        client_wide: bool,
    },
    /// 403 `ExpiredProviderToken`: refresh the token, retry once.
    ExpiredToken,
    /// The client's credentials or configuration are wrong: fail the notification and report
    /// a client-wide event.
    ClientError,
    /// This notification is refused for good.
    Rejected,
}

/// A classified response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's `reason` ([`Reason::Other`] with an empty string when there was none).
    pub reason: Reason,
    /// The `apns-id` response header, when present and a UUID.
    pub apns_id: Option<ApnsId>,
    /// What it means.
    pub verdict: Verdict,
}

/// Bodies longer than this are not parsed: APNs error bodies are tiny.
const MAX_BODY: usize = 4096;

/// The `reason` and `timestamp` of an error body; both `None` when it is not the documented
/// JSON object.
pub fn parse_body(body: &[u8]) -> (Option<String>, Option<u64>) {
    if body.is_empty() || body.len() > MAX_BODY {
        return (None, None);
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let reason = object
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let timestamp = object.get("timestamp").and_then(|value| {
        value
            .as_u64()
            // Seen as a float in the wild; accept whole non-negative numbers.
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            })
    });
    (reason, timestamp)
}

/// Classifies one response per the table in the module docs. Never panics.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Classified {
    let apns_id = headers
        .get("apns-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| ApnsId::parse(text).ok());
    let (reason, timestamp) = parse_body(body);
    let reason = reason.map_or_else(|| Reason::Other(String::new()), |r| Reason::parse(&r));
    let retry = |client_wide| Verdict::Retry {
        retry_after: retry_after(headers),
        client_wide,
    };
    let verdict = match (status.as_u16(), &reason) {
        (200, _) => Verdict::Delivered,
        (410, _) => Verdict::InvalidDevice { timestamp },
        (400, Reason::BadDeviceToken) => Verdict::InvalidDevice { timestamp: None },
        (413, _) => Verdict::PayloadTooLarge,
        (429, Reason::TooManyProviderTokenUpdates) => retry(true),
        (429, _) => retry(false),
        (400, Reason::IdleTimeout) => retry(false),
        (500..=599, _) => retry(false),
        (403, Reason::ExpiredProviderToken) => Verdict::ExpiredToken,
        (403..=405, _) => Verdict::ClientError,
        (400, Reason::MissingTopic | Reason::BadTopic | Reason::TopicDisallowed) => {
            Verdict::ClientError
        }
        _ => Verdict::Rejected,
    };
    Classified {
        status,
        reason,
        apns_id,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(reason: &str) -> Vec<u8> {
        format!(r#"{{"reason":"{reason}"}}"#).into_bytes()
    }

    fn verdict(status: u16, body: &[u8]) -> Verdict {
        let status = StatusCode::from_u16(status).unwrap();
        classify(status, &HeaderMap::new(), body).verdict
    }

    /// The whole documented table: every reason with its documented status.
    #[test]
    fn every_documented_reason_has_its_documented_verdict() {
        let retry = Verdict::Retry {
            retry_after: None,
            client_wide: false,
        };
        for reason in Reason::DOCUMENTED {
            let status = reason.documented_status().unwrap();
            let expected = match reason {
                Reason::BadDeviceToken => Verdict::InvalidDevice { timestamp: None },
                Reason::Unregistered | Reason::ExpiredToken => {
                    Verdict::InvalidDevice { timestamp: None }
                }
                Reason::PayloadTooLarge => Verdict::PayloadTooLarge,
                Reason::TooManyProviderTokenUpdates => Verdict::Retry {
                    retry_after: None,
                    client_wide: true,
                },
                Reason::TooManyRequests
                | Reason::InternalServerError
                | Reason::ServiceUnavailable
                | Reason::Shutdown
                | Reason::IdleTimeout => retry.clone(),
                Reason::ExpiredProviderToken => Verdict::ExpiredToken,
                Reason::BadCertificate
                | Reason::BadCertificateEnvironment
                | Reason::Forbidden
                | Reason::InvalidProviderToken
                | Reason::MissingProviderToken
                | Reason::UnrelatedKeyIdInToken
                | Reason::BadEnvironmentKeyIdInToken
                | Reason::BadPath
                | Reason::MethodNotAllowed
                | Reason::MissingTopic
                | Reason::BadTopic
                | Reason::TopicDisallowed => Verdict::ClientError,
                Reason::BadCollapseId
                | Reason::BadExpirationDate
                | Reason::BadMessageId
                | Reason::BadPriority
                | Reason::DeviceTokenNotForTopic
                | Reason::DuplicateHeaders
                | Reason::InvalidPushType
                | Reason::MissingDeviceToken
                | Reason::PayloadEmpty => Verdict::Rejected,
                Reason::Other(_) => unreachable!(),
            };
            let classified = classify(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                &body(reason.as_str()),
            );
            assert_eq!(classified.verdict, expected, "{reason} ({status})");
            assert_eq!(classified.reason, reason);
            assert_eq!(Reason::parse(reason.as_str()), reason);
        }
    }

    /// The reason strings exactly as PROTOCOLS.md §2c lists them.
    #[test]
    fn documented_list_matches_protocols_md() {
        let listed = "BadCollapseId BadDeviceToken BadExpirationDate BadMessageId BadPriority \
            BadTopic DeviceTokenNotForTopic DuplicateHeaders IdleTimeout InvalidPushType \
            MissingDeviceToken MissingTopic PayloadEmpty TopicDisallowed BadCertificate \
            BadCertificateEnvironment ExpiredProviderToken Forbidden InvalidProviderToken \
            MissingProviderToken UnrelatedKeyIdInToken BadEnvironmentKeyIdInToken BadPath \
            MethodNotAllowed Unregistered ExpiredToken PayloadTooLarge \
            TooManyProviderTokenUpdates TooManyRequests InternalServerError \
            ServiceUnavailable Shutdown";
        let names: Vec<&str> = Reason::DOCUMENTED.iter().map(Reason::as_str).collect();
        assert_eq!(names, listed.split_whitespace().collect::<Vec<_>>());
        for name in names {
            assert!(!matches!(Reason::parse(name), Reason::Other(_)));
        }
    }

    #[test]
    fn status_decides_when_the_reason_is_unknown_or_missing() {
        assert_eq!(verdict(200, b"garbage"), Verdict::Delivered);
        assert_eq!(
            verdict(410, b""),
            Verdict::InvalidDevice { timestamp: None }
        );
        assert_eq!(verdict(413, b"{}"), Verdict::PayloadTooLarge);
        assert!(matches!(verdict(502, b"<html>"), Verdict::Retry { .. }));
        assert_eq!(verdict(403, &body("Novel")), Verdict::ClientError);
        assert_eq!(verdict(400, &body("Novel")), Verdict::Rejected);
        assert_eq!(verdict(418, b""), Verdict::Rejected);
        assert_eq!(verdict(301, b""), Verdict::Rejected);
        let long = "x".repeat(500);
        assert_eq!(Reason::parse(&long).as_str().len(), 100);
    }

    #[test]
    fn unregistered_keeps_its_timestamp_and_ok_its_apns_id() {
        let gone = br#"{"reason":"Unregistered","timestamp":1700000000123}"#;
        assert_eq!(
            verdict(410, gone),
            Verdict::InvalidDevice {
                timestamp: Some(1_700_000_000_123)
            }
        );
        assert_eq!(
            verdict(410, br#"{"reason":"Unregistered","timestamp":12.0}"#),
            Verdict::InvalidDevice {
                timestamp: Some(12)
            }
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "apns-id",
            "EC1BF194-B3B2-424A-89A9-5A918A6E6B5D".parse().unwrap(),
        );
        let classified = classify(StatusCode::OK, &headers, b"");
        assert_eq!(
            classified.apns_id.unwrap().to_string(),
            "ec1bf194-b3b2-424a-89a9-5a918a6e6b5d"
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        let classified = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            &body("TooManyRequests"),
        );
        assert_eq!(
            classified.verdict,
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(7)),
                client_wide: false
            }
        );
    }

    proptest! {
        #[test]
        fn classification_never_panics(
            status in 100u16..1000,
            body in proptest::collection::vec(any::<u8>(), 0..300),
            reason in "[A-Za-z]{0,30}",
            timestamp in any::<i128>(),
            apns_id in ".{0,40}",
        ) {
            let status = StatusCode::from_u16(status).unwrap();
            let mut headers = HeaderMap::new();
            if let Ok(value) = apns_id.parse() {
                headers.insert("apns-id", value);
            }
            let _ = classify(status, &headers, &body);
            let json = format!(r#"{{"reason":"{reason}","timestamp":{timestamp}}}"#);
            let classified = classify(status, &headers, json.as_bytes());
            prop_assert_eq!(classified.status, status);
        }
    }
}
