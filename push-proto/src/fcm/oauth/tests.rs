use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::fcm::assertion::tests::{signer, verify};
use crate::fcm::service_account::tests::account;

const UNIX: u64 = 1_700_000_000;
const MINUTE: Duration = Duration::from_secs(60);

pub(crate) fn oauth(now: Instant) -> OAuth {
    OAuth::from_service_account(&account(), now, UNIX).unwrap()
}

pub(crate) fn grant(token: &str, expires_in: u64) -> http::Response<Bytes> {
    let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
    http::Response::new(Bytes::from(body.to_string()))
}

fn answer(status: u16, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}

#[test]
fn the_token_request_is_a_signed_jwt_bearer_grant() {
    let start = Instant::now();
    let mut auth = oauth(start);
    let request = auth
        .poll_request(start + Duration::from_secs(7))
        .unwrap()
        .unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
    assert_eq!(
        request.headers()[CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
    let body = std::str::from_utf8(request.body()).unwrap();
    let jwt = body
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap();
    let (header, claims) = verify(jwt, signer().public_key()).unwrap();
    assert_eq!(header["kid"], "0123456789abcdef");
    assert_eq!(claims["iat"], UNIX + 7);
    assert_eq!(claims["exp"], UNIX + 7 + 3600);
    assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
}

#[test]
fn one_request_in_flight_and_the_token_is_used_until_the_margin() {
    let start = Instant::now();
    let mut auth = oauth(start);
    assert!(auth.token(start).is_none());
    assert!(auth.poll_request(start).is_some());
    assert!(auth.poll_request(start).is_none(), "one request in flight");
    assert!(auth.is_requesting());
    assert_eq!(auth.poll_timeout(), None);
    let later = start + Duration::from_secs(2);
    let update = auth.handle_response(&grant("ya29.a", 3600), later);
    assert_eq!(
        update,
        Some(TokenUpdate::Refreshed {
            generation: 1,
            expires_in: Duration::from_secs(3600)
        })
    );
    assert_eq!(auth.handle_response(&grant("ya29.b", 3600), later), None);
    let token = auth.token(later).unwrap();
    assert_eq!(token.authorization(), "Bearer ya29.a");
    assert!(token.authorization().is_sensitive());
    // Counted from the request, five minutes early.
    assert_eq!(token.refresh_at(), start + 55 * MINUTE);
    assert_eq!(auth.poll_timeout(), Some(start + 55 * MINUTE));
    assert!(auth.poll_request(start + 55 * MINUTE - MINUTE).is_none());
    assert!(auth.token(start + 55 * MINUTE).is_none());
    assert!(auth.poll_request(start + 55 * MINUTE).is_some());
    assert_eq!(
        auth.current().unwrap().generation(),
        1,
        "kept until replaced"
    );
}

#[test]
fn short_lived_tokens_refresh_at_half_their_life() {
    let start = Instant::now();
    let mut auth = oauth(start).refresh_margin(Duration::from_secs(600));
    auth.poll_request(start);
    auth.handle_response(&grant("t", 120), start);
    assert_eq!(auth.token(start).unwrap().refresh_at(), start + MINUTE);
}

#[test]
fn a_refused_token_is_dropped_once() {
    let start = Instant::now();
    let mut auth = oauth(start);
    auth.poll_request(start);
    auth.handle_response(&grant("t1", 3600), start);
    auth.handle_rejected(2);
    assert!(auth.token(start).is_some(), "not the current generation");
    auth.handle_rejected(1);
    assert!(auth.token(start).is_none());
    assert!(auth.poll_request(start).is_some());
    auth.handle_response(&grant("t2", 3600), start);
    auth.handle_rejected(1);
    assert_eq!(auth.token(start).unwrap().generation(), 2);
}

#[test]
fn transient_failures_back_off_then_give_up() {
    let start = Instant::now();
    let mut auth = oauth(start).retry(3, Duration::from_secs(2), Duration::from_secs(60), 1);
    auth.poll_request(start);
    let Some(TokenUpdate::Retrying { error, at }) = auth.handle_response(&answer(503, ""), start)
    else {
        panic!("expected a retry");
    };
    assert_eq!(error.status, Some(503));
    assert!(!error.permanent);
    assert!(at >= start + Duration::from_secs(1) && at <= start + Duration::from_secs(2));
    assert!(auth.poll_request(start).is_none(), "waits for the delay");
    assert_eq!(auth.poll_timeout(), Some(at));
    auth.poll_request(at).unwrap().unwrap();
    let Some(TokenUpdate::Retrying { at, .. }) = auth.handle_failure("connection reset", at) else {
        panic!("expected a retry");
    };
    auth.poll_request(at).unwrap().unwrap();
    let update = auth.handle_response(&answer(200, "<html>"), at);
    let Some(TokenUpdate::GaveUp { error, attempts: 3 }) = update else {
        panic!("expected to give up: {update:?}");
    };
    assert_eq!(
        error.to_string(),
        "token endpoint answered 200: malformed token response: not a JSON object"
    );
    // A fresh round starts at once.
    assert!(auth.poll_request(at).is_some());
}

#[test]
fn refused_credentials_are_permanent() {
    let start = Instant::now();
    let mut auth = oauth(start);
    auth.poll_request(start);
    let body = r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    let update = auth.handle_response(&answer(400, body), start);
    assert_eq!(
        update,
        Some(TokenUpdate::Refused(TokenError {
            status: Some(400),
            permanent: true,
            detail: "invalid_grant (Invalid JWT Signature.)".into()
        }))
    );
    assert_eq!(auth.handle_failure("late", start), None);
}

#[test]
fn token_responses_table() {
    let ok = |body: &str| parse_token_response(StatusCode::OK, body.as_bytes());
    assert_eq!(
        ok(r#"{"access_token":"ya29.c","expires_in":3599,"token_type":"Bearer"}"#),
        Ok(Grant {
            access_token: "ya29.c".into(),
            expires_in: Duration::from_secs(3599)
        })
    );
    assert!(
        ok(r#"{"access_token":"a","expires_in":1}"#).is_ok(),
        "no type"
    );
    for bad in [
        "",
        "null",
        "[]",
        r#"{"expires_in":3599}"#,
        r#"{"access_token":"","expires_in":3599}"#,
        r#"{"access_token":"a b","expires_in":3599}"#,
        r#"{"access_token":"a","expires_in":0}"#,
        r#"{"access_token":"a","expires_in":-5}"#,
        r#"{"access_token":"a","expires_in":"3599"}"#,
        r#"{"access_token":"a","expires_in":1,"token_type":"mac"}"#,
    ] {
        let error = ok(bad).unwrap_err();
        assert!(
            !error.permanent && error.detail.starts_with("malformed"),
            "{bad}"
        );
    }
    for (status, permanent) in [
        (400, true),
        (401, true),
        (403, true),
        (404, true),
        (408, false),
        (429, false),
        (500, false),
        (503, false),
        (302, true),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        let error = parse_token_response(status, b"{}").unwrap_err();
        assert_eq!(error.permanent, permanent, "{status}");
        assert_eq!(error.status, Some(status.as_u16()));
    }
    let error = parse_token_response(StatusCode::UNAUTHORIZED, br#"{"error":"invalid_client"}"#)
        .unwrap_err();
    assert_eq!(error.detail, "invalid_client");
}

#[test]
fn secrets_stay_out_of_debug_and_bad_uris_are_refused() {
    let start = Instant::now();
    let mut auth = oauth(start);
    auth.poll_request(start);
    auth.handle_response(&grant("ya29.secret", 3600), start);
    let text = format!("{auth:?} {:?}", auth.current());
    assert!(
        !text.contains("ya29.secret") && !text.contains("PRIVATE"),
        "{text}"
    );
    let grant = parse_token_response(
        StatusCode::OK,
        br#"{"access_token":"ya29.secret","expires_in":1}"#,
    );
    assert!(!format!("{grant:?}").contains("ya29.secret"));

    let mut account = account();
    for uri in ["", "/token", "ftp://host/token", "not a uri"] {
        account.token_uri = uri.into();
        assert!(matches!(
            OAuth::new(&account, signer(), start, 0),
            Err(CredentialsError::TokenUri(_))
        ));
    }
}

proptest! {
    #[test]
    fn grants_round_trip(token in "[!-~]{1,200}", expires_in in 1u64..1_000_000) {
        let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "bearer"});
        let grant = parse_token_response(StatusCode::OK, body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(grant.access_token, token);
        prop_assert_eq!(grant.expires_in, Duration::from_secs(expires_in));
    }

    #[test]
    fn parsing_arbitrary_answers_never_panics(
        status in 100u16..600,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        if let Err(error) = parse_token_response(status, &body) {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
