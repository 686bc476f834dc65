//! The error side of the channel-management and broadcast APIs: the reason strings APNs
//! answers with ([`BroadcastReason`]) and the typed error every classifier returns
//! ([`ApiError`]).
//!
//! Channel-specific reasons get their own variants; every other documented reason (provider
//! tokens, certificates, paths, throttling, server errors) is the HTTP/2 provider API's
//! [`Reason`], so one reason string never has two spellings in the crate.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use thiserror::Error;

use crate::apns::http2::{ApnsId, Reason};
use crate::gcm::retry_after;

/// Longest body the classifiers read; anything longer is not a documented answer.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A `reason` from a channel-management or broadcast error response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BroadcastReason {
    /// `BadChannelId`: the `apns-channel-id` is malformed.
    BadChannelId,
    /// `MissingChannelId`: the request needed an `apns-channel-id` and had none.
    MissingChannelId,
    /// `ChannelNotRegistered`: no channel with that id in this environment (deleted, never
    /// created, or created in the other environment).
    ChannelNotRegistered,
    /// `CannotCreateChannelConfig`: the app already has the most channels it may have in
    /// this environment ([`MAX_CHANNELS`](super::MAX_CHANNELS)).
    CannotCreateChannelConfig,
    /// `FeatureNotEnabled`: the broadcast capability is not enabled for this app.
    FeatureNotEnabled,
    /// `MissingPushType`: the request body or header had no push type.
    MissingPushType,
    /// `BadMessageStoragePolicy`: the storage policy was neither 0 nor 1 (not confirmed on
    /// Apple's stored pages; see docs/apple-broadcast.md).
    BadMessageStoragePolicy,
    /// Any reason shared with the device API (`InvalidPushType`, `ExpiredProviderToken`,
    /// `TooManyRequests`, ...), or [`Reason::Other`] for one this version does not know.
    Provider(Reason),
}

impl BroadcastReason {
    /// The channel-specific reasons, in the order of docs/apple-broadcast.md.
    pub const CHANNEL: [BroadcastReason; 7] = [
        BroadcastReason::BadChannelId,
        BroadcastReason::MissingChannelId,
        BroadcastReason::ChannelNotRegistered,
        BroadcastReason::CannotCreateChannelConfig,
        BroadcastReason::FeatureNotEnabled,
        BroadcastReason::MissingPushType,
        BroadcastReason::BadMessageStoragePolicy,
    ];

    /// The reason string as APNs writes it.
    pub fn as_str(&self) -> &str {
        match self {
            BroadcastReason::BadChannelId => "BadChannelId",
            BroadcastReason::MissingChannelId => "MissingChannelId",
            BroadcastReason::ChannelNotRegistered => "ChannelNotRegistered",
            BroadcastReason::CannotCreateChannelConfig => "CannotCreateChannelConfig",
            BroadcastReason::FeatureNotEnabled => "FeatureNotEnabled",
            BroadcastReason::MissingPushType => "MissingPushType",
            BroadcastReason::BadMessageStoragePolicy => "BadMessageStoragePolicy",
            BroadcastReason::Provider(reason) => reason.as_str(),
        }
    }

    /// The reason named `text` (exact match); unknown text is kept as
    /// `Provider(Reason::Other)`, at most 100 characters.
    pub fn parse(text: &str) -> BroadcastReason {
        BroadcastReason::CHANNEL
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .unwrap_or_else(|| BroadcastReason::Provider(Reason::parse(text)))
    }
}

/// Why a channel-management or broadcast request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// APNs refused the request with a non-success status.
    #[error("APNs answered {status} {}", reason.as_str())]
    Rejected {
        /// The HTTP status.
        status: StatusCode,
        /// The body's `reason` (`Provider(Reason::Other(""))` when the body had none).
        reason: BroadcastReason,
        /// The `apns-request-id` APNs echoed, when it sent a valid one.
        request_id: Option<ApnsId>,
        /// `Retry-After` (capped), when a 429 or 503 carried one.
        retry_after: Option<Duration>,
    },
    /// A success status whose headers or body are not what Apple documents (a missing
    /// channel id, a body that is not the documented JSON, an unexpected 2xx code).
    #[error("malformed APNs answer ({status}): {detail}")]
    Malformed {
        /// The HTTP status.
        status: StatusCode,
        /// What was wrong, for logs (never contains secrets: only our own wording).
        detail: &'static str,
    },
}

impl ApiError {
    /// Whether sending the same request again later may succeed (429, 500, 503 and other
    /// 5xx); every other error needs a change first.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Rejected { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            ApiError::Malformed { .. } => false,
        }
    }
}

/// The error body: `{"reason": "..."}`.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
}

/// The `apns-request-id` header, when it is a valid UUID.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<ApnsId> {
    let text = headers.get("apns-request-id")?.to_str().ok()?;
    ApnsId::parse(text).ok()
}

/// The typed error for a non-success answer; the body is read leniently (a missing,
/// malformed or oversized body gives an empty reason and the status alone decides).
pub(crate) fn rejected(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let reason = (body.len() <= MAX_BODY)
        .then(|| serde_json::from_slice::<ErrorBody>(body).ok())
        .flatten()
        .and_then(|body| body.reason)
        .unwrap_or_default();
    let retry_after = matches!(status.as_u16(), 429 | 503)
        .then(|| retry_after(headers))
        .flatten();
    ApiError::Rejected {
        status,
        reason: BroadcastReason::parse(&reason),
        request_id: request_id(headers),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_channel_reason_round_trips() {
        for reason in BroadcastReason::CHANNEL {
            assert_eq!(BroadcastReason::parse(reason.as_str()), reason);
        }
        for reason in Reason::DOCUMENTED {
            assert_eq!(
                BroadcastReason::parse(reason.as_str()),
                BroadcastReason::Provider(reason)
            );
        }
        assert_eq!(
            BroadcastReason::parse("SomethingNew"),
            BroadcastReason::Provider(Reason::Other("SomethingNew".into()))
        );
    }

    #[test]
    fn rejected_reads_reason_request_id_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "apns-request-id",
            "0A1B2C3D-0000-4000-8000-00000000000F".parse().unwrap(),
        );
        headers.insert("retry-after", "7".parse().unwrap());
        let error = rejected(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            br#"{"reason":"TooManyRequests"}"#,
        );
        let ApiError::Rejected {
            reason,
            request_id,
            retry_after,
            ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(*reason, BroadcastReason::Provider(Reason::TooManyRequests));
        assert_eq!(
            request_id.map(|id| id.to_string()).as_deref(),
            Some("0a1b2c3d-0000-4000-8000-00000000000f")
        );
        assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        assert!(error.is_transient());
    }

    #[test]
    fn bad_bodies_leave_the_status_to_decide() {
        for body in [&b""[..], b"not json", b"{\"reason\":7}", b"[]"] {
            let error = rejected(StatusCode::BAD_REQUEST, &HeaderMap::new(), body);
            assert!(matches!(
                error,
                ApiError::Rejected { reason: BroadcastReason::Provider(Reason::Other(ref r)), .. } if r.is_empty()
            ));
            assert!(!error.is_transient());
        }
    }

    proptest! {
        #[test]
        fn parse_as_str_round_trips(text in "[A-Za-z]{0,120}") {
            let reason = BroadcastReason::parse(&text);
            let expected: String = text.chars().take(100).collect();
            prop_assert_eq!(reason.as_str(), expected.as_str());
        }
    }
}
