//! FCM's error answers: Google RPC status JSON with an `FcmError` and, for bad fields, a
//! `BadRequest` detail.

use http::StatusCode;
use serde_json::{Value, json};

/// The `@type` of FCM's error detail.
const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// The `@type` of the field-violation detail.
const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";

/// One error answer of the FCM mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcError {
    /// The HTTP status (also the JSON's `code`).
    pub(crate) status: StatusCode,
    /// The JSON's `message`.
    pub(crate) message: String,
    /// The JSON's `status`: the `google.rpc.Code` name.
    pub(crate) rpc_status: &'static str,
    /// The `FcmError` detail's `errorCode`, when there is one.
    pub(crate) error_code: Option<String>,
    /// The `BadRequest` detail's one field violation: field and description.
    pub(crate) violation: Option<Box<(String, String)>>,
    /// A `Retry-After` header, seconds.
    pub(crate) retry_after: Option<u64>,
}

impl RpcError {
    /// An error with an `FcmError` detail whose HTTP status, RPC status and message are the
    /// ones FCM documents for `error_code` (unknown codes: `500 INTERNAL`).
    pub(crate) fn fcm(error_code: &str) -> RpcError {
        let (status, message) = match error_code {
            "INVALID_ARGUMENT" => (400, "Request contains an invalid argument."),
            "UNREGISTERED" => (404, "Requested entity was not found."),
            "SENDER_ID_MISMATCH" => (403, "SenderId mismatch"),
            "QUOTA_EXCEEDED" => (429, "Quota exceeded for quota metric 'Send requests'."),
            "UNAVAILABLE" => (503, "The service is currently unavailable."),
            "THIRD_PARTY_AUTH_ERROR" => (401, "Auth error from APNS or Web Push Service"),
            _ => (500, "Internal error encountered."),
        };
        RpcError::with_status(status, error_code, message)
    }

    /// An error with an `FcmError` detail, any HTTP status (its RPC status follows it).
    pub(crate) fn with_status(status: u16, error_code: &str, message: &str) -> RpcError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        RpcError {
            status,
            message: message.to_owned(),
            rpc_status: rpc_status(status),
            error_code: Some(error_code.to_owned()),
            violation: None,
            retry_after: None,
        }
    }

    /// `400 INVALID_ARGUMENT` naming the bad `field`; `description` is also the message.
    pub(crate) fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        let description = description.into();
        RpcError {
            message: description.clone(),
            violation: Some(Box::new((field.into(), description))),
            ..RpcError::fcm("INVALID_ARGUMENT")
        }
    }

    /// `400 INVALID_ARGUMENT` that names no field (unparsable JSON, say).
    pub(crate) fn invalid(message: impl Into<String>) -> RpcError {
        RpcError {
            message: message.into(),
            ..RpcError::fcm("INVALID_ARGUMENT")
        }
    }

    /// `401 UNAUTHENTICATED` for a missing, unknown, expired or revoked access token; no
    /// `FcmError` detail, as FCM.
    pub(crate) fn unauthenticated() -> RpcError {
        RpcError::plain(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        )
    }

    /// An error without details (`404` for a wrong path, `405` for a wrong method).
    pub(crate) fn plain(status: StatusCode, message: &str) -> RpcError {
        RpcError {
            status,
            message: message.to_owned(),
            rpc_status: rpc_status(status),
            error_code: None,
            violation: None,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub(crate) fn retry_after(mut self, seconds: u64) -> RpcError {
        self.retry_after = Some(seconds);
        self
    }

    /// The answer's JSON body.
    pub(crate) fn to_json(&self) -> Value {
        let mut error = json!({
            "code": self.status.as_u16(),
            "message": self.message,
            "status": self.rpc_status,
        });
        let mut details = Vec::new();
        if let Some(code) = &self.error_code {
            details.push(json!({"@type": FCM_ERROR_TYPE, "errorCode": code}));
        }
        if let Some((field, description)) = self.violation.as_deref() {
            details.push(json!({
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field, "description": description}],
            }));
        }
        if !details.is_empty() {
            error["details"] = Value::Array(details);
        }
        json!({ "error": error })
    }
}

/// The `google.rpc.Code` name Google's HTTP mapping gives a status.
fn rpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_exactly_fcms_shape() {
        let error = RpcError::invalid_field("message.token", "bad token");
        assert_eq!(
            error.to_json(),
            json!({"error": {
                "code": 400, "message": "bad token", "status": "INVALID_ARGUMENT",
                "details": [
                    {"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
                    {"@type": BAD_REQUEST_TYPE,
                     "fieldViolations": [{"field": "message.token", "description": "bad token"}]},
                ],
            }})
        );
        assert_eq!(
            RpcError::unauthenticated().to_json(),
            json!({"error": {"code": 401,
                "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED"}})
        );
        let gone = RpcError::fcm("UNREGISTERED");
        assert_eq!((gone.status.as_u16(), gone.rpc_status), (404, "NOT_FOUND"));
        let quota = RpcError::fcm("QUOTA_EXCEEDED");
        assert_eq!(quota.rpc_status, "RESOURCE_EXHAUSTED");
        let odd = RpcError::with_status(409, "WHATEVER", "m");
        assert_eq!(
            odd.to_json()["error"]["details"][0]["errorCode"],
            "WHATEVER"
        );
        assert_eq!(odd.rpc_status, "ABORTED");
        assert_eq!(RpcError::fcm("UNSPECIFIED_ERROR").status.as_u16(), 500);
    }
}
