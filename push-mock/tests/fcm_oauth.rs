//! The FCM mock's OAuth2 token endpoint, driven by the tiny blocking HTTP/1.1 client with
//! assertions signed by ring.

mod common;

use common::fcm::*;
use common::{http, tls};
use push_mock::fcm::OTHER_PRIVATE_KEY_PEM;
use push_mock::{Certificates, FcmOptions, MockFcm};
use serde_json::json;

fn start(options: FcmOptions) -> (Certificates, MockFcm) {
    let certs = Certificates::generate().unwrap();
    let mock = MockFcm::start(options, &certs).unwrap();
    (certs, mock)
}

fn demo() -> FcmOptions {
    FcmOptions::demo(PROJECT).unwrap()
}

#[test]
fn a_correctly_signed_assertion_gets_an_access_token() {
    let (certs, mock) = start(demo());
    assert_eq!(
        mock.token_url(),
        format!("https://localhost:{}/token", mock.token_addr().port())
    );
    let answer = post_token(&mock, &certs, &grant(&assertion(&mock)));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        answer.json(),
        json!({"access_token": "ya29.mock-1", "expires_in": 3599, "token_type": "Bearer"})
    );
    // Keep-alive: a second grant on the same connection gets the next token.
    let mut stream = tls(mock.token_addr(), certs.client_config(false).unwrap());
    let form = grant(&assertion(&mock));
    for n in 2..4 {
        let answer = http(&mut stream, "POST", "/token", None, form.as_bytes());
        assert_eq!(answer.json()["access_token"], format!("ya29.mock-{n}"));
    }
    assert_eq!(mock.access_tokens_issued(), 3);
    assert_eq!(mock.assertions_verified(), 3);
    assert_eq!(mock.token_requests(), 3);
    assert!(mock.token_failures().is_empty());
}

#[test]
fn each_bad_assertion_gets_googles_error() {
    let (certs, mock) = start(demo());
    let now = unix_now();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = claims(&mock);
        change(&mut claims);
        sign(push_mock::fcm::DEMO_PRIVATE_KEY_PEM, &header(), &claims)
    };
    let wrong_kid = {
        let mut header = header();
        header["kid"] = "0000".into();
        sign(
            push_mock::fcm::DEMO_PRIVATE_KEY_PEM,
            &header,
            &claims(&mock),
        )
    };
    let lifetime = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                    reasonable timeframe. Check your iat and exp values in the JWT claim.";
    let cases = [
        (
            sign(OTHER_PRIVATE_KEY_PEM, &header(), &claims(&mock)),
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (wrong_kid, "invalid_grant", "Invalid JWT Signature."),
        (
            with(&|c| c["aud"] = "https://oauth2.googleapis.com/token".into()),
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        ),
        (
            with(&|c| c["iss"] = "someone@example.com".into()),
            "invalid_grant",
            "Invalid grant: account not found",
        ),
        (
            with(&|c| c["scope"] = "https://www.googleapis.com/auth/cloud-platform".into()),
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ),
        (
            with(&|c| {
                c["iat"] = (now - 7200).into();
                c["exp"] = (now - 3600).into();
            }),
            "invalid_grant",
            lifetime,
        ),
        (
            with(&|c| c["iat"] = (now + 600).into()),
            "invalid_grant",
            lifetime,
        ),
        (
            with(&|c| c["exp"] = (now + 7200).into()),
            "invalid_grant",
            lifetime,
        ),
        (
            "not.a.jwt".to_owned(),
            "invalid_grant",
            "Invalid JWT: Unable to parse the JWT.",
        ),
    ];
    for (assertion, error, description) in &cases {
        let answer = post_token(&mock, &certs, &grant(assertion));
        assert_eq!(answer.status, 400, "{description}");
        assert_eq!(
            answer.json(),
            json!({"error": error, "error_description": description})
        );
    }
    let answer = post_token(&mock, &certs, "grant_type=client_credentials");
    assert_eq!(answer.json()["error"], "unsupported_grant_type");
    let answer = post_token(
        &mock,
        &certs,
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
    );
    assert_eq!(
        answer.json(),
        json!({"error": "invalid_request",
               "error_description": "Missing required parameter: assertion"})
    );
    assert_eq!(post_token(&mock, &certs, "").status, 400);
    assert_eq!(mock.access_tokens_issued(), 0);
    assert_eq!(mock.assertions_verified(), 0);
    assert_eq!(mock.token_failures().len(), cases.len() + 3);
    assert_eq!(mock.token_failures()[0], "Invalid JWT Signature.");
}

#[test]
fn wrong_paths_and_methods_are_refused() {
    let (certs, mock) = start(demo());
    let mut stream = tls(mock.token_addr(), certs.client_config(false).unwrap());
    let answer = http(&mut stream, "GET", "/token", None, b"");
    assert_eq!((answer.status, answer.header("allow")), (405, Some("POST")));
    let form = grant(&assertion(&mock));
    let answer = http(
        &mut stream,
        "POST",
        "/oauth2/v4/token",
        None,
        form.as_bytes(),
    );
    assert_eq!(answer.status, 404);
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(mock.access_tokens_issued(), 0);
}

#[test]
fn failed_token_requests_then_recovery_and_a_configured_lifetime() {
    let (certs, mock) = start(demo().expires_in(120));
    mock.fail_token_requests(2);
    let form = grant(&assertion(&mock));
    // A request the endpoint refuses anyway does not use up a failure.
    let mut stream = tls(mock.token_addr(), certs.client_config(false).unwrap());
    let answer = http(&mut stream, "POST", "/elsewhere", None, form.as_bytes());
    assert_eq!(answer.status, 404);
    for _ in 0..2 {
        let answer = post_token(&mock, &certs, &form);
        assert_eq!(answer.status, 503);
        assert_eq!(answer.json()["error"], "internal_failure");
    }
    let answer = post_token(&mock, &certs, &form);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["expires_in"], 120);
    assert_eq!(mock.token_requests(), 4);
    assert_eq!(mock.token_failures().len(), 3);
    assert_eq!(mock.access_tokens_issued(), 1);
}

#[test]
fn options_come_from_a_service_account_json() {
    let certs = Certificates::generate().unwrap();
    let json = push_mock::fcm::demo_service_account("other-project", "https://x/token");
    let options = FcmOptions::from_service_account_json(&json).unwrap();
    assert_eq!(options.project, "other-project");
    let mock = MockFcm::start(options, &certs).unwrap();
    assert!(
        mock.send_url()
            .ends_with("/v1/projects/other-project/messages:send")
    );
    let wrong = push_mock::fcm::wrong_key_service_account("p", "https://x/token");
    let wrong = push_mock::ServiceAccount::from_json(&wrong).unwrap();
    assert_ne!(
        wrong.public_key(),
        push_mock::ServiceAccount::demo("p").unwrap().public_key()
    );
    assert!(FcmOptions::from_service_account_json("{}").is_err());
}
