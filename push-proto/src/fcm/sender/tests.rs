//! The FCM provider on the engine: the request byte for byte, access tokens (one request
//! serves all, refreshed before expiry, a refused one replaced once, endpoint failures), the
//! response table as reports and events (ported from the tests of the former FCM sender).

use std::time::{Duration, Instant};

use http::header::RETRY_AFTER;
use serde_json::json;

use super::*;
use crate::engine::test_support::{end, poll_credential, poll_send, respond, sends};
use crate::engine::{Action, Input, PoolConfig, StreamEnd};
use crate::fcm::message::SendRequest;
use crate::fcm::oauth::tests::grant;
use crate::fcm::response::tests::rpc_error;
use crate::fcm::service_account::tests::account;
use crate::fcm::{Options, RsaSigner};
use crate::{Full, Payload};

pub(super) use crate::engine::test_support::response as answer;

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
    sender(config, auth).unwrap()
}

fn new_sender(now: Instant) -> Sender<usize> {
    sender_with(Config::new("demo-project"), now)
}

pub(super) fn delivered(id: u32) -> http::Response<Bytes> {
    answer(
        200,
        &format!(r#"{{"name":"projects/demo-project/messages/{id}"}}"#),
    )
}

/// Answers the token request with a one-hour token named `name`.
fn authorize(sender: &mut Sender<usize>, name: &str, now: Instant) {
    let request = poll_credential(sender, now).expect("a token request");
    assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
    sender.handle(Input::CredentialResponse(grant(name, 3600)), now);
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
    authorize(&mut sender, "ya29.a", now);
    let (_, request) = poll_send(&mut sender, now).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.version(), http::Version::HTTP_2);
    assert_eq!(
        request.uri(),
        "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
    );
    assert_eq!(
        request.headers()[http::header::AUTHORIZATION],
        "Bearer ya29.a"
    );
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
    let mut sender = new_sender(now);
    assert!(sender.poll_action(now).is_none(), "nothing to send");
    for i in 0..3 {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    assert!(matches!(
        sender.poll_action(now),
        Some(Action::CredentialRequest(_))
    ));
    // The connection is dialed while the token is fetched; one token request in flight.
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a dial");
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 100,
        },
        now,
    );
    assert!(sender.poll_action(now).is_none(), "waiting, not failing");
    assert!(reports(&mut sender).is_empty());
    sender.handle(Input::CredentialResponse(grant("t", 3600)), now);
    assert_eq!(
        events(&mut sender),
        [Event::Credential(TokenEvent::Refreshed {
            generation: 1,
            expires_in: Duration::from_secs(3600)
        })]
    );
    let sent = sends(&mut sender, now);
    assert_eq!(sent.len(), 3);
    for (n, (id, _)) in sent.into_iter().enumerate() {
        respond(&mut sender, id, delivered(n as u32), now);
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(report.id.as_deref(), Some("0"));
    assert_eq!((report.status, report.reason), (Some(200), None));
    assert_eq!(report.token, token(0));
    assert_eq!(reports(&mut sender), [(1, None), (2, None)]);
    assert!(sender.is_idle());
    assert_eq!(sender.stats().token_requests, 1);
}

#[test]
fn the_token_is_refreshed_before_it_expires() {
    let start = Instant::now();
    let mut sender = new_sender(start);
    sender.queue(token(0), message(None), 0, start).unwrap();
    authorize(&mut sender, "old", start);
    let (id, _) = poll_send(&mut sender, start).unwrap();
    respond(&mut sender, id, delivered(0), start);
    assert_eq!(
        sender.poll_timeout(),
        None,
        "idle: no wake-up for the token"
    );
    let later = start + Duration::from_secs(55 * 60);
    sender.queue(token(1), message(None), 1, later).unwrap();
    assert!(sender.poll_timeout().is_some_and(|at| at <= later));
    // The next action is the token request, not a send with the old token.
    authorize(&mut sender, "new", later);
    let (_, request) = poll_send(&mut sender, later).unwrap();
    assert_eq!(request.headers()[http::header::AUTHORIZATION], "Bearer new");
}

/// Changed with the engine: the server's limit is per connection (`Input::Connected` /
/// `Input::MaxStreams`); one fixed connection keeps the old scenario (otherwise the pool
/// opens another connection when every stream is busy).
#[test]
fn the_in_flight_limit_is_the_smaller_of_config_and_server() {
    let now = Instant::now();
    let mut config = Config::new("demo-project");
    config.engine.max_in_flight = 2;
    config.engine.pool = PoolConfig::default().fixed(1);
    let mut sender = sender_with(config, now);
    for i in 0..5 {
        sender.queue(token(i), message(None), i, now).unwrap();
    }
    sender.poll_action(now).unwrap();
    sender.handle(Input::CredentialResponse(grant("t", 3600)), now);
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a dial");
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 1,
        },
        now,
    );
    assert_eq!(sends(&mut sender, now).len(), 1);
    sender.handle(
        Input::MaxStreams {
            conn,
            max_streams: 1000,
        },
        now,
    );
    assert_eq!(sends(&mut sender, now).len(), 1);
    assert_eq!(sender.in_flight(), 2);
}

#[test]
fn backpressure_hands_the_notification_back() {
    let now = Instant::now();
    let mut config = Config::new("demo-project");
    config.engine.max_pending = 1;
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
    let mut sender = new_sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    authorize(&mut sender, "t", now);
    // The engine's default `max_free_resends`: 5 free resends.
    for _ in 0..5 {
        let (id, _) = poll_send(&mut sender, now).unwrap();
        end(&mut sender, id, StreamEnd::Refused, now);
    }
    for attempt in 1..=3 {
        let (id, _) = poll_send(&mut sender, now).expect("a resend");
        let reset = StreamEnd::ConnectionError("connection reset".into());
        end(&mut sender, id, reset, now);
        if attempt < 3 {
            assert!(poll_send(&mut sender, now).is_none(), "backing off");
            now = sender.poll_timeout().unwrap();
            sender.handle_timeout(now);
        }
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 3,
            last_error: "transport failure: connection error: connection reset".into()
        })
    );
    assert_eq!(sender.stats().refused, 5);
    assert_eq!(sender.stats().retries, 2);
}

#[test]
fn retry_after_is_waited_for_and_ttl_stops_retries() {
    let now = Instant::now();
    let mut sender = new_sender(now);
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
        let (id, _) = poll_send(&mut sender, now).unwrap();
        respond(&mut sender, id, quota.clone(), now);
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
        assert_eq!(report.reason.as_deref(), Some("QUOTA_EXCEEDED"));
        assert_eq!(report.status, Some(429));
    }
    let due = now + Duration::from_secs(30);
    assert_eq!(sender.poll_timeout(), Some(due));
    assert!(poll_send(&mut sender, due - Duration::from_millis(1)).is_none());
    let (id, _) = poll_send(&mut sender, due).unwrap();
    respond(&mut sender, id, delivered(9), due);
    assert_eq!(reports_of(&mut sender), [(0, None)]);
}

fn reports_of(sender: &mut Sender<usize>) -> Vec<(usize, Option<&'static str>)> {
    reports(sender)
}

#[test]
fn an_unauthenticated_answer_refreshes_the_token_once() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.queue(token(1), message(None), 1, now).unwrap();
    authorize(&mut sender, "stale", now);
    let unauthenticated = answer(
        401,
        r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
    );
    let (first, _) = poll_send(&mut sender, now).unwrap();
    let (second, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, first, unauthenticated.clone(), now);
    respond(&mut sender, second, unauthenticated.clone(), now);
    // The token was dropped: the next action is one token request, no send.
    authorize(&mut sender, "fresh", now);
    let (first, request) = poll_send(&mut sender, now).unwrap();
    assert_eq!(
        request.headers()[http::header::AUTHORIZATION],
        "Bearer fresh"
    );
    let (second, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, first, delivered(1), now);
    respond(&mut sender, second, unauthenticated, now);
    assert_eq!(reports(&mut sender), [(1, None), (0, Some("rejected"))]);
    assert!(events(&mut sender).contains(&Event::ClientError {
        status: 401,
        reason: "UNAUTHENTICATED".into()
    }));
    let stats = sender.stats();
    assert_eq!((stats.requests, stats.token_requests), (4, 2));
}

#[test]
fn device_level_answers() {
    let now = Instant::now();
    let mut sender = new_sender(now);
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
        let (id, _) = poll_send(&mut sender, now).unwrap();
        respond(&mut sender, id, answer, now);
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
    assert_eq!(reports[0].reason.as_deref(), Some("UNREGISTERED"));
    assert_eq!(reports[0].unregistered_at, None, "FCM gives no time");
    assert!(
        events(&mut sender)
            .iter()
            .all(|e| matches!(e, Event::Credential(TokenEvent::Refreshed { .. })))
    );
}

#[test]
fn client_errors_are_reported_once_in_a_row() {
    let now = Instant::now();
    let mut sender = new_sender(now);
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
        let (id, _) = poll_send(&mut sender, now).unwrap();
        respond(&mut sender, id, auth_error.clone(), now);
    }
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(
        &mut sender,
        id,
        answer(403, r#"{"error":{"status":"PERMISSION_DENIED"}}"#),
        now,
    );
    assert_eq!(
        events(&mut sender),
        [
            Event::ClientError {
                status: 401,
                reason: "THIRD_PARTY_AUTH_ERROR".into()
            },
            Event::ClientError {
                status: 403,
                reason: "PERMISSION_DENIED".into()
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
    let mut sender = new_sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    sender.queue(token(1), message(None), 1, now).unwrap();
    poll_credential(&mut sender, now).unwrap();
    let body = r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    sender.handle(Input::CredentialResponse(answer(400, body)), now);
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
        Event::Credential(TokenEvent::RequestFailed {
            error,
            retry_at: None,
        }),
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
    let mut sender = new_sender(now);
    sender.queue(token(0), message(None), 0, now).unwrap();
    poll_credential(&mut sender, now).unwrap();
    sender.handle(Input::CredentialFailure("connection refused".into()), now);
    assert!(poll_credential(&mut sender, now).is_none(), "backing off");
    now = sender.poll_timeout().unwrap();
    poll_credential(&mut sender, now).unwrap();
    sender.handle(Input::CredentialResponse(answer(503, "")), now);
    now = sender.poll_timeout().unwrap();
    poll_credential(&mut sender, now).unwrap();
    sender.handle(Input::CredentialResponse(answer(500, "")), now);
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
                Event::Credential(TokenEvent::RequestFailed {
                    retry_at: Some(_),
                    ..
                })
            )
        })
        .collect();
    assert_eq!(retries, [true, true, false]);
    let stats = sender.stats();
    assert_eq!((stats.token_failures, stats.token_requests), (3, 3));
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
    let mut sender: Sender<usize> = sender(Config::new("p"), auth).unwrap();
    sender.queue(token(0), message(None), 0, now).unwrap();
    assert!(poll_credential(&mut sender, now).is_none());
    assert_eq!(reports(&mut sender), [(0, Some("rejected"))]);
    assert_eq!(
        events(&mut sender),
        [Event::Credential(TokenEvent::SignerFailed(SignError(
            "kms offline".into()
        )))]
    );
    assert!(sender.is_idle());
}

#[test]
fn bad_configurations_are_refused() {
    let now = Instant::now();
    let attempt = |config: Config| {
        let auth = OAuth::new(&account(), ZeroSigner, now, 0).unwrap();
        sender::<()>(config, auth).map(|_| ()).unwrap_err()
    };
    let mut config = Config::new("p");
    config.base_url = "https://fcm.googleapis.com/v1".into();
    assert!(matches!(
        attempt(config),
        ConfigError::Engine(engine::ConfigError::BaseUrl(_))
    ));
    for project in ["", "a/b", "a b", "x?y"] {
        assert!(
            matches!(attempt(Config::new(project)), ConfigError::ProjectId(_)),
            "{project}"
        );
    }
    let mut config = Config::new("p");
    config.engine.max_in_flight = 0;
    assert_eq!(
        attempt(config),
        ConfigError::Engine(engine::ConfigError::Zero("max_in_flight"))
    );
    let mut config = Config::for_account(&account());
    config.base_url = "http://127.0.0.1:8080".into();
    let auth = OAuth::new(&account(), ZeroSigner, now, 0).unwrap();
    let sender = sender::<()>(config, auth).unwrap();
    assert_eq!(
        sender.protocol().uri,
        "http://127.0.0.1:8080/v1/projects/demo-project/messages:send"
    );
}

/// A 429 about the project's quota throttles the route; one about a device's message rate
/// only delays that device.
#[test]
fn quota_answers_throttle_the_route_unless_they_name_a_device() {
    let classified = |message: &str| {
        let body = json!({"error": {"code": 429, "message": message,
            "status": "RESOURCE_EXHAUSTED", "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "QUOTA_EXCEEDED"}]}})
        .to_string();
        classify(
            http::StatusCode::TOO_MANY_REQUESTS,
            &http::HeaderMap::new(),
            body.as_bytes(),
        )
    };
    assert!(throttles_project(&classified(
        "Quota exceeded for quota metric 'Send requests'."
    )));
    assert!(!throttles_project(&classified(
        "Message rate exceeded for the device."
    )));
    let unavailable = classify(
        http::StatusCode::SERVICE_UNAVAILABLE,
        &http::HeaderMap::new(),
        b"",
    );
    assert!(!throttles_project(&unavailable));
}
