use http::HeaderValue;
use http::header::RETRY_AFTER;
use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A Google RPC error body with an FCM code and, optionally, a field violation.
pub(crate) fn rpc_error(status: u16, rpc: &str, code: Option<&str>, field: Option<&str>) -> String {
    let mut details = Vec::new();
    if let Some(code) = code {
        details.push(json!({"@type": FCM_ERROR, "errorCode": code}));
    }
    if let Some(field) = field {
        details.push(json!({"@type": BAD_REQUEST,
            "fieldViolations": [{"field": field, "description": "bad"}]}));
    }
    json!({"error": {"code": status, "message": "Request contains an invalid argument.",
        "status": rpc, "details": details}})
    .to_string()
}

fn run(status: u16, body: &str) -> Classified {
    classify(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
    )
}

fn verdict_of(status: u16, body: &str) -> Verdict {
    run(status, body).verdict
}

#[test]
fn delivered_keeps_the_message_id() {
    let classified = run(
        200,
        r#"{"name":"projects/p/messages/0:1500415314455276%31bd"}"#,
    );
    assert_eq!(classified.verdict, Verdict::Delivered);
    assert_eq!(
        classified.message_id.as_deref(),
        Some("0:1500415314455276%31bd")
    );
    assert_eq!(run(200, "garbage").verdict, Verdict::Delivered);
    assert_eq!(run(200, "garbage").message_id, None);
}

#[test]
fn every_documented_code_has_its_row() {
    let retry = Verdict::Retry { retry_after: None };
    for code in ErrorCode::DOCUMENTED {
        let status = code.documented_status().unwrap_or(400);
        let body = rpc_error(status, "X", Some(code.as_str()), None);
        let expected = match code {
            ErrorCode::Unregistered | ErrorCode::SenderIdMismatch => Verdict::InvalidDevice,
            ErrorCode::InvalidArgument | ErrorCode::UnspecifiedError => Verdict::Rejected,
            ErrorCode::QuotaExceeded | ErrorCode::Unavailable | ErrorCode::Internal => {
                retry.clone()
            }
            ErrorCode::ThirdPartyAuthError => Verdict::ClientError,
            ErrorCode::Other(_) => unreachable!(),
        };
        let classified = run(status, &body);
        assert_eq!(classified.verdict, expected, "{code}");
        assert_eq!(classified.error_code, Some(code.clone()));
        assert_eq!(ErrorCode::parse(code.as_str()), code);
    }
}

#[test]
fn invalid_argument_is_decided_by_the_field() {
    let token = rpc_error(
        400,
        "INVALID_ARGUMENT",
        Some("INVALID_ARGUMENT"),
        Some("message.token"),
    );
    assert_eq!(verdict_of(400, &token), Verdict::InvalidToken);
    let ttl = run(
        400,
        &rpc_error(
            400,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            Some("message.android.ttl"),
        ),
    );
    assert_eq!(ttl.verdict, Verdict::Rejected);
    assert_eq!(
        ttl.describe(),
        "400 INVALID_ARGUMENT (field message.android.ttl): Request contains an invalid argument."
    );
    let big = json!({"error": {"code": 400, "message": "Android message is too big",
        "status": "INVALID_ARGUMENT", "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}]}});
    assert_eq!(verdict_of(400, &big.to_string()), Verdict::PayloadTooLarge);
    // Without the FCM detail, a 400 is read the same way.
    let bare = rpc_error(400, "INVALID_ARGUMENT", None, Some("message.token"));
    assert_eq!(verdict_of(400, &bare), Verdict::InvalidToken);
}

#[test]
fn statuses_without_a_code() {
    let retry = Verdict::Retry { retry_after: None };
    assert_eq!(verdict_of(500, ""), retry);
    assert_eq!(verdict_of(502, "<html>"), retry);
    assert_eq!(verdict_of(429, "{}"), retry);
    let unauthenticated = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
    assert_eq!(verdict_of(401, unauthenticated), Verdict::Unauthenticated);
    let denied = r#"{"error":{"code":403,"message":"Permission 'cloudmessaging.messages.create' denied","status":"PERMISSION_DENIED"}}"#;
    let classified = run(403, denied);
    assert_eq!(classified.verdict, Verdict::ClientError);
    assert_eq!(classified.rpc_status.as_deref(), Some("PERMISSION_DENIED"));
    assert_eq!(verdict_of(404, ""), Verdict::ClientError, "wrong project");
    assert_eq!(verdict_of(400, ""), Verdict::Rejected);
    assert_eq!(verdict_of(413, ""), Verdict::Rejected);
    assert_eq!(verdict_of(302, ""), Verdict::Rejected);
    let unknown = run(
        400,
        &rpc_error(400, "FAILED_PRECONDITION", Some("NEW_CODE"), None),
    );
    assert_eq!(unknown.verdict, Verdict::Rejected);
    assert_eq!(
        unknown.error_code,
        Some(ErrorCode::Other("NEW_CODE".into()))
    );
    assert!(unknown.describe().starts_with("400 NEW_CODE"));
}

#[test]
fn retry_after_is_honoured_in_both_forms() {
    let body = rpc_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), None);
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
    let classified = classify(StatusCode::TOO_MANY_REQUESTS, &headers, body.as_bytes());
    assert_eq!(
        classified.verdict,
        Verdict::Retry {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:50:07 GMT"),
    );
    headers.insert(
        http::header::DATE,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    let classified = classify(StatusCode::SERVICE_UNAVAILABLE, &headers, b"");
    assert_eq!(
        classified.verdict,
        Verdict::Retry {
            retry_after: Some(Duration::from_secs(30))
        }
    );
}

#[test]
fn long_texts_are_cut() {
    let long = "X".repeat(1000);
    let classified = run(400, &rpc_error(400, &long, Some(&long), Some(&long)));
    assert_eq!(classified.error_code.unwrap().as_str().len(), MAX_TEXT);
    assert_eq!(classified.field.unwrap().len(), MAX_TEXT);
    assert_eq!(classified.rpc_status.unwrap().len(), MAX_TEXT);
}

proptest! {
    #[test]
    fn classification_never_panics(
        status in 100u16..1000,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        let classified = classify(status, &HeaderMap::new(), &body);
        prop_assert_eq!(classified.status, status);
        prop_assert!(!classified.describe().is_empty());
    }

    #[test]
    fn structured_errors_round_trip(
        status in 400u16..600,
        code in "[A-Z_]{1,20}",
        field in proptest::option::of("[a-z.]{1,20}"),
    ) {
        let body = rpc_error(status, "STATUS", Some(&code), field.as_deref());
        let classified = run(status, &body);
        prop_assert_eq!(classified.error_code, Some(ErrorCode::parse(&code)));
        prop_assert_eq!(classified.field, field);
    }
}
