//! Response classification: status and Google RPC error body to a [`Verdict`].
//!
//! A success is `200 {"name":"projects/<project>/messages/<id>"}`. An error is
//! `{"error":{"code":404,"message":"...","status":"NOT_FOUND","details":[{"@type":
//! "type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"},
//! {"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":
//! "message.token","description":"..."}]}]}}`. The `errorCode` decides when present; else
//! the status (and the RPC `status` string).
//!
//! | `errorCode` (status) | verdict | outcome |
//! |---|---|---|
//! | — (200) | [`Verdict::Delivered`] | delivered; the message id is in the report |
//! | `UNREGISTERED` (404) | [`Verdict::InvalidDevice`] | `invalid_device`: delete the token |
//! | `SENDER_ID_MISMATCH` (403) | [`Verdict::InvalidDevice`] | `invalid_device`: the token belongs to another sender |
//! | `INVALID_ARGUMENT` (400), field `message.token` | [`Verdict::InvalidToken`] | `invalid_token_format` |
//! | `INVALID_ARGUMENT` (400), message "too big" / "too large" | [`Verdict::PayloadTooLarge`] | `payload_too_large` |
//! | `INVALID_ARGUMENT` (400), another field | [`Verdict::Rejected`] | `rejected`, naming the field |
//! | `QUOTA_EXCEEDED` (429) | [`Verdict::Retry`] | retried after `Retry-After` or the backoff; `unavailable` when attempts run out |
//! | `UNAVAILABLE` (503) | [`Verdict::Retry`] | as `QUOTA_EXCEEDED` |
//! | `INTERNAL` (500) | [`Verdict::Retry`] | as `QUOTA_EXCEEDED` |
//! | — (any 5xx, 429) | [`Verdict::Retry`] | as `QUOTA_EXCEEDED` |
//! | `THIRD_PARTY_AUTH_ERROR` (401) | [`Verdict::ClientError`] | `rejected` + [`Event::ClientError`](super::Event::ClientError): the APNs certificate / web push key in the Firebase project is wrong |
//! | — (401, `UNAUTHENTICATED`) | [`Verdict::Unauthenticated`] | the access token is dropped, a new one requested, the notification sent again once; a second time `rejected` + [`Event::ClientError`](super::Event::ClientError) |
//! | — (403, `PERMISSION_DENIED`) | [`Verdict::ClientError`] | as `THIRD_PARTY_AUTH_ERROR` (the account may not send for this project) |
//! | — (404) | [`Verdict::ClientError`] | as `THIRD_PARTY_AUTH_ERROR` (wrong project id or base URL) |
//! | `UNSPECIFIED_ERROR`, any other code | [`Verdict::Rejected`] | `rejected` with the raw code |
//! | — (other statuses) | [`Verdict::Rejected`] | `rejected` with the status and RPC status |
//!
//! The body is parsed leniently: a missing, malformed or oversized body leaves no code, and
//! the status alone decides.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::gcm::retry_after;

/// Longest text kept from a response (codes, messages, field names, message ids).
const MAX_TEXT: usize = 200;

/// The `@type` of FCM's own error detail.
const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// The `@type` of the detail naming the invalid fields.
const BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";

/// An FCM `errorCode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No more information.
    UnspecifiedError,
    /// 400: a request parameter is invalid (a `BadRequest` detail names it).
    InvalidArgument,
    /// 404: the token is no longer registered.
    Unregistered,
    /// 403: the token belongs to another sender.
    SenderIdMismatch,
    /// 429: a sending quota was exceeded.
    QuotaExceeded,
    /// 503: the server is overloaded.
    Unavailable,
    /// 500: an unknown internal error.
    Internal,
    /// 401: the APNs certificate or web push key is invalid or missing.
    ThirdPartyAuthError,
    /// A code this version does not know (verbatim, at most 200 characters).
    Other(String),
}

impl ErrorCode {
    /// Every documented code, in the order of PROTOCOLS.md §2c.
    pub const DOCUMENTED: [ErrorCode; 8] = [
        ErrorCode::UnspecifiedError,
        ErrorCode::InvalidArgument,
        ErrorCode::Unregistered,
        ErrorCode::SenderIdMismatch,
        ErrorCode::QuotaExceeded,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::ThirdPartyAuthError,
    ];

    /// The code as FCM writes it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::UnspecifiedError => "UNSPECIFIED_ERROR",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::Unregistered => "UNREGISTERED",
            ErrorCode::SenderIdMismatch => "SENDER_ID_MISMATCH",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::ThirdPartyAuthError => "THIRD_PARTY_AUTH_ERROR",
            ErrorCode::Other(other) => other,
        }
    }

    /// The code named `text` (exact match), or [`ErrorCode::Other`].
    pub fn parse(text: &str) -> ErrorCode {
        ErrorCode::DOCUMENTED
            .into_iter()
            .find(|code| code.as_str() == text)
            .unwrap_or_else(|| ErrorCode::Other(cut(text)))
    }

    /// The status FCM documents this code with (`None` for the unspecified and unknown ones).
    pub fn documented_status(&self) -> Option<u16> {
        match self {
            ErrorCode::InvalidArgument => Some(400),
            ErrorCode::Unregistered => Some(404),
            ErrorCode::SenderIdMismatch => Some(403),
            ErrorCode::QuotaExceeded => Some(429),
            ErrorCode::Unavailable => Some(503),
            ErrorCode::Internal => Some(500),
            ErrorCode::ThirdPartyAuthError => Some(401),
            ErrorCode::UnspecifiedError | ErrorCode::Other(_) => None,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one response means for its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: accepted by FCM.
    Delivered,
    /// The token is no longer valid for this sender: delete it.
    InvalidDevice,
    /// FCM says the token is malformed.
    InvalidToken,
    /// The message is too large.
    PayloadTooLarge,
    /// Transient: send again after `retry_after` or the backoff.
    Retry {
        /// The delay the server asked for.
        retry_after: Option<Duration>,
    },
    /// 401 without an FCM code: the access token was refused.
    Unauthenticated,
    /// The client's configuration is wrong (credentials, project, permissions).
    ClientError,
    /// Refused for good, for the reason in [`Classified::describe`].
    Rejected,
}

/// A classified response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The HTTP status.
    pub status: StatusCode,
    /// What it means.
    pub verdict: Verdict,
    /// The message id from a 200's `name` (`projects/<p>/messages/<id>` → `<id>`).
    pub message_id: Option<String>,
    /// The FCM `errorCode`, if the body had one.
    pub error_code: Option<ErrorCode>,
    /// The RPC `status` string (`NOT_FOUND`, `UNAUTHENTICATED`, ...), if any.
    pub rpc_status: Option<String>,
    /// The RPC `message`, if any.
    pub message: Option<String>,
    /// The first field a `BadRequest` detail names, if any.
    pub field: Option<String>,
}

impl Classified {
    /// A one-line description for reports: status, code or RPC status, field, message.
    pub fn describe(&self) -> String {
        let mut text = self.status.as_u16().to_string();
        if let Some(code) = self
            .error_code
            .as_ref()
            .map(ErrorCode::as_str)
            .or(self.rpc_status.as_deref())
        {
            text.push(' ');
            text.push_str(code);
        }
        if let Some(field) = &self.field {
            text.push_str(&format!(" (field {field})"));
        }
        if let Some(message) = &self.message {
            text.push_str(": ");
            text.push_str(message);
        }
        text
    }
}

/// Classifies a response per the table in the module docs.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Classified {
    let mut classified = Classified {
        status,
        verdict: Verdict::Rejected,
        message_id: None,
        error_code: None,
        rpc_status: None,
        message: None,
        field: None,
    };
    if status == StatusCode::OK {
        classified.verdict = Verdict::Delivered;
        // Nearly every answer: only its name is read, borrowed from the body.
        let sent: Option<Sent<'_>> = serde_json::from_slice(body).ok();
        classified.message_id = sent
            .and_then(|sent| sent.name)
            .map(|name| cut(name.rsplit('/').next().unwrap_or(&name)));
        return classified;
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(error) = json.as_ref().and_then(|json| json.get("error")) {
        read_error(error, &mut classified);
    }
    classified.verdict = verdict(&classified, headers);
    classified
}

/// What a success body says: the message's name (`projects/<project>/messages/<id>`).
#[derive(Deserialize)]
struct Sent<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// Fills in code, RPC status, message and field from the `error` object.
fn read_error(error: &Value, classified: &mut Classified) {
    let text = |value: &Value, name| value.get(name).and_then(Value::as_str).map(cut);
    classified.rpc_status = text(error, "status");
    classified.message = text(error, "message");
    let details = error.get("details").and_then(Value::as_array);
    for detail in details.into_iter().flatten() {
        match detail.get("@type").and_then(Value::as_str) {
            Some(FCM_ERROR) => {
                if let Some(code) = detail.get("errorCode").and_then(Value::as_str) {
                    classified
                        .error_code
                        .get_or_insert_with(|| ErrorCode::parse(code));
                }
            }
            Some(BAD_REQUEST) => {
                let violations = detail.get("fieldViolations").and_then(Value::as_array);
                let field = violations
                    .into_iter()
                    .flatten()
                    .find_map(|violation| text(violation, "field"));
                if classified.field.is_none() {
                    classified.field = field;
                }
            }
            _ => {}
        }
    }
}

fn verdict(classified: &Classified, headers: &HeaderMap) -> Verdict {
    let status = classified.status;
    let retry = || Verdict::Retry {
        retry_after: retry_after(headers),
    };
    match &classified.error_code {
        Some(ErrorCode::Unregistered | ErrorCode::SenderIdMismatch) => Verdict::InvalidDevice,
        Some(ErrorCode::InvalidArgument) => invalid_argument(classified),
        Some(ErrorCode::QuotaExceeded | ErrorCode::Unavailable | ErrorCode::Internal) => retry(),
        Some(ErrorCode::ThirdPartyAuthError) => Verdict::ClientError,
        Some(ErrorCode::UnspecifiedError | ErrorCode::Other(_)) => Verdict::Rejected,
        None if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => retry(),
        None if status == StatusCode::UNAUTHORIZED => Verdict::Unauthenticated,
        None if status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND => {
            Verdict::ClientError
        }
        None if status == StatusCode::BAD_REQUEST => invalid_argument(classified),
        None => Verdict::Rejected,
    }
}

/// `INVALID_ARGUMENT`: the field at fault decides.
fn invalid_argument(classified: &Classified) -> Verdict {
    let too_big = |text: &str| {
        let text = text.to_ascii_lowercase();
        text.contains("too big") || text.contains("too large")
    };
    if classified.field.as_deref() == Some("message.token") {
        Verdict::InvalidToken
    } else if classified.message.as_deref().is_some_and(too_big) {
        Verdict::PayloadTooLarge
    } else {
        Verdict::Rejected
    }
}

/// `text`, cut to [`MAX_TEXT`] characters.
fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        // At most MAX_TEXT bytes, so at most as many characters: copied whole.
        return text.to_owned();
    }
    text.chars().take(MAX_TEXT).collect()
}

#[cfg(test)]
pub(crate) mod tests;
