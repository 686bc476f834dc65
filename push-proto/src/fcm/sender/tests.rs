use std::time::{Duration, Instant};

use http::header::RETRY_AFTER;
use serde_json::json;

use super::*;
use crate::Payload;
use crate::fcm::message::SendRequest;
use crate::fcm::oauth::tests::grant;
use crate::fcm::response::tests::rpc_error;
use crate::fcm::service_account::tests::account;
use crate::fcm::{Options, RsaSigner};

/// Signs with zeros: these tests are about the state machine, not the crypto.
pub(super) struct ZeroSigner;

impl RsaSigner for ZeroSigner {
    fn key_id(&self) -> &str {
        "zero"
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(vec![0; 256])
    }
}

pub(super) fn token(i: usize) -> GcmToken {
    GcmToken::parse(&format!("token-{i}")).unwrap()
}

pub(super) fn message(ttl: Option<u32>) -> Message {
    let mut payload = Payload::new().body("hi");
    payload.time_to_live = ttl;
    Message::new(&payload, &Options::new()).unwrap()
}

pub(super) fn sender_with(config: Config, now: Instant) -> Sender<usize> {
    let auth = OAuth::new(&account(), ZeroSigner, now, 1_700_000_000).unwrap();
    Sender::new(config, auth).unwrap()
}

fn sender(now: Instant) -> Sender<usize> {
    sender_with(Config::new("demo-project"), now)
}

pub(super) fn answer(status: u16, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}

pub(super) fn delivered(id: u32) -> http::Response<Bytes> {
    answer(
        200,
        &format!(r#"{{"name":"projects/demo-project/messages/{id}"}}"#),
    )
}

/// Answers the token request with a one-hour token named `name`.
fn authorize(sender: &mut Sender<usize>, name: &str, now: Instant) {
    let request = sender.poll_token_request(now).expect("a token request");
    assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
    sender.handle_token_response(grant(name, 3600), now);
}

fn reports(sender: &mut Sender<usize>) -> Vec<(usize, Option<&'static str>)> {
    std::iter::from_fn(|| sender.poll_outcome())
        .map(|r| {
            (
                r.outcome.tag,
                r.outcome.error.as_ref().map(DeviceError::code),
            )
        })
        .collect()
}

fn events(sender: &mut Sender<usize>) -> Vec<Event> {
    std::iter::from_fn(|| sender.poll_event()).collect()
}

#[test]
fn the_request_is_exact() {
    let now = Instant::now();
    let mut config = Config::new("demo-project");
    config.validate_only = true;
    let mut sender = sender_with(config, now);
    sender.queue(token(1), message(None), 1, now).unwrap();
    assert!(sender.poll_request(now).is_none(), "no token yet");
    authorize(&mut sender, "ya29.a", now);
    let (_, request) = sender.poll_request(now).unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.version(), http::Version::HTTP_2);
    assert_eq!(
        request.uri(),
        "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
    );
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer ya29.a");
    assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(request.headers().len(), 2);
    assert_eq!(
        &request.body()[..],
        br#"{"message":{"token":"token-1","notification":{"body":"hi"}},"validate_only":true}"#
    );
    let body: SendRequest = serde_json::from_slice(request.body()).unwrap();
    assert!(body.validate_only);
}

#[test]
fn sends_wait_for_the_token_and_one_token_request_serves_all() {
    let now = Instant::now();
    let mut sender = sender(now);
    assert!(sender.poll_token_request(now).is_none(), "nothing to send");
    for i in 0..3 {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    assert!(sender.poll_token_request(now).is_some());
    assert!(sender.poll_token_request(now).is_none(), "one in flight");
    assert!(sender.poll_request(now).is_none(), "waiting, not failing");
    assert!(reports(&mut sender).is_empty());
    sender.handle_token_response(grant("t", 3600), now);
    assert_eq!(
        events(&mut sender),
        [Event::TokenRefreshed {
            generation: 1,
            expires_in: Duration::from_secs(3600)
        }]
    );
    let ids: Vec<_> = std::iter::from_fn(|| sender.poll_request(now)).collect();
    assert_eq!(ids.len(), 3);
    for (n, (id, _)) in ids.into_iter().enumerate() {
        sender.handle_response(id, delivered(n as u32), now);
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(report.message_id.as_deref(), Some("0"));
    assert_eq!(report.status, Some(200));
    assert_eq!(report.token, token(0));
    assert_eq!(reports(&mut sender), [(1, None), (2, None)]);
    assert!(sender.is_idle());
    assert_eq!(sender.stats().token_requests, 1);
}

#[test]
fn the_token_is_refreshed_before_it_expires() {
    let start = Instant::now();
    let mut sender = sender(start);
    sender.queue(token(0), message(None), 0, start).unwrap();
    authorize(&mut sender, "old", start);
    let (id, _) = sender.poll_request(start).unwrap();
    sender.handle_response(id, delivered(0), start);
    assert_eq!(
        sender.poll_timeout(),
        None,
        "idle: no wake-up for the token"
    );
    let later = start + Duration::from_secs(55 * 60);
    sender.queue(token(1), message(None), 1, later).unwrap();
    assert_eq!(sender.poll_timeout(), Some(later));
    assert!(sender.poll_request(later).is_none());
    authorize(&mut sender, "new", later);
    let (_, request) = sender.poll_request(later).unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer new");
}

#[test]
fn the_in_flight_limit_is_the_smaller_of_config_and_server() {
    let now = Instant::now();
    let mut config = Config::new("demo-project");
    config.max_in_flight = 2;
    let mut sender = sender_with(config, now);
    for i in 0..5 {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    authorize(&mut sender, "t", now);
    sender.handle_max_concurrent_streams(1);
    assert_eq!(sender.max_in_flight(), 1);
    assert!(sender.poll_request(now).is_some());
    assert!(sender.poll_request(now).is_none());
    sender.handle_max_concurrent_streams(1000);
    assert_eq!(sender.max_in_flight(), 2);
    assert!(sender.poll_request(now).is_some());
    assert!(sender.poll_request(now).is_none());
    assert_eq!(sender.in_flight(), 2);
}

#[test]
fn backpressure_hands_the_notification_back() {
    let now = Instant::now();
    let mut config = Config::new("demo-project");
    config.max_pending = 1;
    let mut sender = sender_with(config, now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    let Err(Full((returned, _, 1))) = sender.queue(token(1), message(None), 1, now) else {
        panic!("expected Full");
    };
    assert_eq!(returned, token(1));
}

#[test]
fn refused_streams_are_resent_without_counting_and_failures_are_bounded() {
    let mut now = Instant::now();
    let mut sender = sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    authorize(&mut sender, "t", now);
    for _ in 0..5 {
        let (id, _) = sender.poll_request(now).unwrap();
        sender.handle_refused(id);
    }
    for attempt in 1..=3 {
        let (id, _) = sender.poll_request(now).expect("a resend");
        sender.handle_failure(id, "connection reset", now);
        if attempt < 3 {
            assert!(sender.poll_request(now).is_none(), "backing off");
            now = sender.poll_timeout().unwrap();
            sender.handle_timeout(now);
        }
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 3,
            last_error: "transport failure: connection reset".into()
        })
    );
    assert_eq!(sender.stats().refused, 5);
    assert_eq!(sender.stats().retries, 2);
}

#[test]
fn retry_after_is_waited_for_and_ttl_stops_retries() {
    let now = Instant::now();
    let mut sender = sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.queue(token(1), message(Some(10)), 1, now).unwrap();
    sender.queue(token(2), message(Some(0)), 2, now).unwrap();
    authorize(&mut sender, "t", now);
    let mut quota = answer(
        429,
        &rpc_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), None),
    );
    quota
        .headers_mut()
        .insert(RETRY_AFTER, http::HeaderValue::from_static("30"));
    for _ in 0..3 {
        let (id, _) = sender.poll_request(now).unwrap();
        sender.handle_response(id, quota.clone(), now);
    }
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    assert_eq!(reports.len(), 2, "the two with a short time to live");
    for report in &reports {
        let Some(DeviceError::Unavailable {
            attempts: 1,
            last_error,
        }) = &report.outcome.error
        else {
            panic!("{report:?}");
        };
        assert!(last_error.ends_with("time to live ends before the next attempt"));
        assert_eq!(report.error_code, Some(ErrorCode::QuotaExceeded));
        assert_eq!(report.status, Some(429));
    }
    let due = now + Duration::from_secs(30);
    assert_eq!(sender.poll_timeout(), Some(due));
    assert!(
        sender
            .poll_request(due - Duration::from_millis(1))
            .is_none()
    );
    let (id, _) = sender.poll_request(due).unwrap();
    sender.handle_response(id, delivered(9), due);
    assert_eq!(reports_of(&mut sender), [(0, None)]);
}

fn reports_of(sender: &mut Sender<usize>) -> Vec<(usize, Option<&'static str>)> {
    reports(sender)
}

#[test]
fn an_unauthenticated_answer_refreshes_the_token_once() {
    let now = Instant::now();
    let mut sender = sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.queue(token(1), message(None), 1, now).unwrap();
    authorize(&mut sender, "stale", now);
    let unauthenticated = answer(
        401,
        r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
    );
    let (first, _) = sender.poll_request(now).unwrap();
    let (second, _) = sender.poll_request(now).unwrap();
    sender.handle_response(first, unauthenticated.clone(), now);
    sender.handle_response(second, unauthenticated.clone(), now);
    assert!(sender.poll_request(now).is_none(), "the token was dropped");
    authorize(&mut sender, "fresh", now);
    let (first, request) = sender.poll_request(now).unwrap();
    assert_eq!(request.headers()[AUTHORIZATION], "Bearer fresh");
    let (second, _) = sender.poll_request(now).unwrap();
    sender.handle_response(first, delivered(1), now);
    sender.handle_response(second, unauthenticated, now);
    assert_eq!(reports(&mut sender), [(1, None), (0, Some("rejected"))]);
    assert!(events(&mut sender).contains(&Event::ClientError {
        status: 401,
        code: "UNAUTHENTICATED".into()
    }));
    assert_eq!(sender.stats().requests, 4);
}

#[test]
fn device_level_answers() {
    let now = Instant::now();
    let mut sender = sender(now);
    let answers = [
        answer(
            404,
            &rpc_error(404, "NOT_FOUND", Some("UNREGISTERED"), None),
        ),
        answer(
            403,
            &rpc_error(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), None),
        ),
        answer(
            400,
            &rpc_error(
                400,
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                Some("message.token"),
            ),
        ),
        answer(
            400,
            &json!({"error": {"code": 400, "message": "Message is too big"}}).to_string(),
        ),
        answer(
            400,
            &rpc_error(
                400,
                "INVALID_ARGUMENT",
                Some("INVALID_ARGUMENT"),
                Some("message.data"),
            ),
        ),
        answer(500, &rpc_error(400, "X", Some("UNSPECIFIED_ERROR"), None)),
    ];
    for i in 0..answers.len() {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    authorize(&mut sender, "t", now);
    for answer in answers {
        let (id, _) = sender.poll_request(now).unwrap();
        sender.handle_response(id, answer, now);
    }
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    let errors: Vec<String> = reports
        .iter()
        .map(|r| r.outcome.error.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        errors[0],
        "invalid_device: the service marked this device invalid; remove it"
    );
    assert_eq!(errors[1], errors[0]);
    assert!(errors[2].starts_with("invalid_token_format: the service says the token is malformed: 400 INVALID_ARGUMENT (field message.token)"), "{}", errors[2]);
    assert_eq!(
        errors[3],
        format!("payload_too_large: 30 bytes, limit {MAX_MESSAGE_SIZE}")
    );
    assert!(
        errors[4].starts_with("rejected: fcm said 400 INVALID_ARGUMENT (field message.data)"),
        "{}",
        errors[4]
    );
    assert!(
        errors[5].starts_with("rejected: fcm said 500 UNSPECIFIED_ERROR"),
        "{}",
        errors[5]
    );
    assert_eq!(reports[0].error_code, Some(ErrorCode::Unregistered));
    assert!(
        events(&mut sender)
            .iter()
            .all(|e| matches!(e, Event::TokenRefreshed { .. }))
    );
}

#[test]
fn client_errors_are_reported_once_in_a_row() {
    let now = Instant::now();
    let mut sender = sender(now);
    for i in 0..3 {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    authorize(&mut sender, "t", now);
    events(&mut sender);
    let auth_error = answer(
        401,
        &rpc_error(401, "UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR"), None),
    );
    for _ in 0..2 {
        let (id, _) = sender.poll_request(now).unwrap();
        sender.handle_response(id, auth_error.clone(), now);
    }
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(
        id,
        answer(403, r#"{"error":{"status":"PERMISSION_DENIED"}}"#),
        now,
    );
    assert_eq!(
        events(&mut sender),
        [
            Event::ClientError {
                status: 401,
                code: "THIRD_PARTY_AUTH_ERROR".into()
            },
            Event::ClientError {
                status: 403,
                code: "PERMISSION_DENIED".into()
            },
        ]
    );
    assert_eq!(
        reports(&mut sender),
        [
            (0, Some("rejected")),
            (1, Some("rejected")),
            (2, Some("rejected"))
        ]
    );
}

#[test]
fn refused_credentials_fail_the_waiting_notifications() {
    let now = Instant::now();
    let mut sender = sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.queue(token(1), message(None), 1, now).unwrap();
    sender.poll_token_request(now).unwrap();
    let body = r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    sender.handle_token_response(answer(400, body), now);
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports[0].outcome.error,
        Some(DeviceError::Rejected {
            provider: "fcm",
            code: "access token refused: token endpoint answered 400: invalid_grant (Invalid JWT Signature.)".into()
        })
    );
    let [
        Event::TokenRequestFailed {
            error,
            retry_at: None,
        },
    ] = &events(&mut sender)[..]
    else {
        panic!("one final token event");
    };
    assert!(error.permanent);
    assert!(sender.is_idle());
}

#[test]
fn token_endpoint_hiccups_are_retried_then_fail_unavailable() {
    let mut now = Instant::now();
    let mut sender = sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.poll_token_request(now).unwrap();
    sender.handle_token_failure("connection refused", now);
    assert!(sender.poll_token_request(now).is_none(), "backing off");
    now = sender.poll_timeout().unwrap();
    sender.poll_token_request(now).unwrap();
    sender.handle_token_response(answer(503, ""), now);
    now = sender.poll_timeout().unwrap();
    sender.poll_token_request(now).unwrap();
    sender.handle_token_response(answer(500, ""), now);
    let report = sender.poll_outcome().unwrap();
    let Some(DeviceError::Unavailable {
        attempts: 0,
        last_error,
    }) = report.outcome.error
    else {
        panic!("{report:?}");
    };
    assert_eq!(
        last_error,
        "no access token after 3 token requests: token endpoint answered 500: Internal Server Error"
    );
    let retries: Vec<_> = events(&mut sender)
        .into_iter()
        .map(|e| {
            matches!(
                e,
                Event::TokenRequestFailed {
                    retry_at: Some(_),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(retries, [true, true, false]);
    assert_eq!(sender.stats().token_failures, 3);
}

#[test]
fn a_failing_signer_fails_the_waiting_notifications() {
    struct Offline;
    impl RsaSigner for Offline {
        fn key_id(&self) -> &str {
            "kms"
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Err(SignError("kms offline".into()))
        }
    }
    let now = Instant::now();
    let auth = OAuth::new(&account(), Offline, now, 0).unwrap();
    let mut sender: Sender<usize> = Sender::new(Config::new("p"), auth).unwrap();
    sender.queue(token(0), message(None), 0, now).unwrap();
    assert!(sender.poll_token_request(now).is_none());
    assert_eq!(reports(&mut sender), [(0, Some("rejected"))]);
    assert_eq!(
        events(&mut sender),
        [Event::SignerFailed(SignError("kms offline".into()))]
    );
}

#[test]
fn bad_configurations_are_refused() {
    let now = Instant::now();
    let attempt = |config: Config| {
        let auth = OAuth::new(&account(), ZeroSigner, now, 0).unwrap();
        Sender::<()>::new(config, auth).map(|_| ()).unwrap_err()
    };
    let mut config = Config::new("p");
    config.base_url = "https://fcm.googleapis.com/v1".into();
    assert!(matches!(attempt(config), ConfigError::BaseUrl(_)));
    for project in ["", "a/b", "a b", "x?y"] {
        assert!(
            matches!(attempt(Config::new(project)), ConfigError::ProjectId(_)),
            "{project}"
        );
    }
    let mut config = Config::new("p");
    config.max_in_flight = 0;
    assert_eq!(attempt(config), ConfigError::Zero("max_in_flight"));
    let mut config = Config::for_account(&account());
    config.base_url = "http://127.0.0.1:8080".into();
    let auth = OAuth::new(&account(), ZeroSigner, now, 0).unwrap();
    let sender = Sender::<()>::new(config, auth).unwrap();
    assert_eq!(
        sender.uri,
        "http://127.0.0.1:8080/v1/projects/demo-project/messages:send"
    );
}
