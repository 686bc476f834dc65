//! The APNs HTTP/2 provider on the engine: requests byte for byte, the response table as
//! reports and events, provider-token rules, stream limits and resends (ported from the
//! tests of the former APNs sender).

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::apns::http2::jwt::tests::{test_signer, verify};
use crate::apns::http2::{ApnsPriority, Notification, Options, PushType, Reason};
use crate::engine::test_support::{end, poll_send, respond, sends};
use crate::engine::{ConnId, Input, PoolConfig, StreamEnd};
use crate::{Full, Payload};

pub(super) use crate::engine::test_support::response;

const UNIX: u64 = 1_700_000_000;
const MINUTE: Duration = Duration::from_secs(60);

pub(super) fn token(i: u8) -> ApnsToken {
    ApnsToken::from_bytes([i; 32])
}

pub(super) fn alert() -> Message {
    let payload = Payload::new().body("hi");
    Message::new(
        &Notification::from_payload(&payload),
        &Options::from_payload(&payload),
    )
    .unwrap()
}

fn config() -> Config {
    Config::new(PRODUCTION_URL).topic("com.example.app")
}

fn token_sender(now: Instant) -> Sender<u32> {
    let auth = TokenAuth::new(test_signer(), "TEAM123456", now, UNIX).unwrap();
    sender(config(), Auth::Token(auth)).unwrap()
}

fn cert_sender() -> Sender<u32> {
    sender(config(), Auth::Certificate).unwrap()
}

pub(super) fn reason(status: u16, reason: &str) -> http::Response<Bytes> {
    response(status, &format!(r#"{{"reason":"{reason}"}}"#))
}

fn events(sender: &mut Sender<u32>) -> Vec<Event> {
    std::iter::from_fn(|| sender.poll_event()).collect()
}

#[test]
fn request_is_byte_exact_with_every_header() {
    let now = Instant::now();
    let mut sender = token_sender(now);
    let id = ApnsId::parse("123e4567-e89b-42d3-a456-426655440000").unwrap();
    let options = Options::new(PushType::Alert)
        .priority(ApnsPriority::Lowest)
        .expiration(UNIX + 3600)
        .collapse_id("score-update")
        .unwrap()
        .apns_id(id);
    let notification = Notification::new().subtitle("s").custom("k", 1);
    let message = Message::new(&notification, &options).unwrap();
    sender.queue(token(0xab), message, 7, now).unwrap();
    let (_, request) = poll_send(&mut sender, now + Duration::from_secs(2)).unwrap();

    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.version(), http::Version::HTTP_2);
    assert_eq!(
        request.uri().to_string(),
        format!("https://api.push.apple.com/3/device/{}", "ab".repeat(32))
    );
    assert_eq!(
        &request.body()[..],
        br#"{"aps":{"alert":{"subtitle":"s"}},"k":1}"#
    );
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let jwt = headers[0].1.strip_prefix("bearer ").unwrap().to_owned();
    assert_eq!(
        headers,
        [
            ("authorization", format!("bearer {jwt}").as_str()),
            ("apns-push-type", "alert"),
            ("apns-topic", "com.example.app"),
            ("apns-priority", "1"),
            ("apns-expiration", "1700003600"),
            ("apns-collapse-id", "score-update"),
            ("apns-id", "123e4567-e89b-42d3-a456-426655440000"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    let (header, claims) = verify(&jwt, &test_signer().verifying_key());
    assert_eq!(header, json!({"alg": "ES256", "kid": "ABC123DEFG"}));
    assert_eq!(claims, json!({"iss": "TEAM123456", "iat": UNIX + 2}));
    assert_eq!(
        sender.poll_event(),
        Some(Event::Credential(TokenEvent::Refreshed {
            generation: 1,
            iat: UNIX + 2
        }))
    );
}

#[test]
fn certificate_mode_has_no_authorization_and_generated_ids() {
    let now = Instant::now();
    let mut sender = cert_sender();
    let background = Payload::new().content_available(true);
    let message = Message::new(
        &Notification::from_payload(&background),
        &Options::from_payload(&background).topic("com.other"),
    )
    .unwrap();
    sender.queue(token(1), message.clone(), 1, now).unwrap();
    sender.queue(token(2), message, 2, now).unwrap();
    let (_, first) = poll_send(&mut sender, now).unwrap();
    let (_, second) = poll_send(&mut sender, now).unwrap();
    assert!(first.headers().get("authorization").is_none());
    assert_eq!(first.headers()["apns-push-type"], "background");
    assert_eq!(first.headers()["apns-priority"], "5");
    assert_eq!(first.headers()["apns-topic"], "com.other");
    assert!(first.headers().get("apns-expiration").is_none());
    assert!(first.headers().get("apns-collapse-id").is_none());
    assert_ne!(first.headers()["apns-id"], second.headers()["apns-id"]);
    // The same seed names notifications identically on every run.
    let mut again = cert_sender();
    again.queue(token(1), alert(), 1, now).unwrap();
    let (_, replay) = poll_send(&mut again, now).unwrap();
    assert_eq!(replay.headers()["apns-id"], first.headers()["apns-id"]);
}

#[test]
fn config_is_validated() {
    for url in [
        "api.push.apple.com",
        "https://api.push.apple.com/3/device",
        "::",
    ] {
        assert!(matches!(
            sender::<u32>(Config::new(url), Auth::Certificate),
            Err(ConfigError::Engine(engine::ConfigError::BaseUrl(_)))
        ));
    }
    assert!(sender::<u32>(Config::new("http://127.0.0.1:2197/"), Auth::Certificate).is_ok());
    let mut config = Config::new(SANDBOX_URL).topic("a\nb");
    assert_eq!(
        sender::<u32>(config.clone(), Auth::Certificate).err(),
        Some(ConfigError::Topic)
    );
    config.topic = None;
    config.engine.max_attempts = 0;
    assert_eq!(
        sender::<u32>(config.clone(), Auth::Certificate).err(),
        Some(ConfigError::Engine(engine::ConfigError::Zero(
            "max_attempts"
        )))
    );
    config.engine.max_attempts = 1;
    config.engine.pool.max_connections = 0;
    assert_eq!(
        sender::<u32>(config, Auth::Certificate).err(),
        Some(ConfigError::Engine(engine::ConfigError::Zero(
            "max_connections"
        )))
    );
}

#[test]
fn queue_is_bounded() {
    let now = Instant::now();
    let mut config = config();
    config.engine.max_pending = 1;
    let mut sender: Sender<u32> = sender(config, Auth::Certificate).unwrap();
    sender.queue(token(1), alert(), 1, now).unwrap();
    let Err(Full((back, _, tag))) = sender.queue(token(2), alert(), 2, now) else {
        panic!("expected Full");
    };
    assert_eq!((back, tag), (token(2), 2));
}

/// Sends one notification and answers it with `answer`; returns its report (if final) and the
/// sender.
fn answer_one(answer: http::Response<Bytes>) -> (Option<Report<u32>>, Sender<u32>) {
    let now = Instant::now();
    let mut sender = token_sender(now);
    sender.queue(token(1), alert(), 1, now).unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, id, answer, now);
    (sender.poll_outcome(), sender)
}

#[test]
fn every_documented_reason_ends_as_documented() {
    for reason_name in Reason::DOCUMENTED {
        let status = reason_name.documented_status().unwrap();
        let (report, mut sender) = answer_one(reason(status, reason_name.as_str()));
        let code = report.as_ref().map(|r| {
            r.outcome
                .error
                .as_ref()
                .map_or("delivered", DeviceError::code)
        });
        let client_wide = events(&mut sender)
            .iter()
            .any(|e| matches!(e, Event::ClientError { .. }));
        let expected = match reason_name {
            Reason::BadDeviceToken | Reason::Unregistered | Reason::ExpiredToken => {
                (Some("invalid_device"), false)
            }
            Reason::PayloadTooLarge => (Some("payload_too_large"), false),
            // Retried later (waiting) or at once with a new token (ready): no report yet.
            Reason::TooManyRequests
            | Reason::InternalServerError
            | Reason::ServiceUnavailable
            | Reason::Shutdown
            | Reason::IdleTimeout
            | Reason::ExpiredProviderToken => (None, false),
            Reason::TooManyProviderTokenUpdates => (None, true),
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
            | Reason::TopicDisallowed => (Some("rejected"), true),
            _ => (Some("rejected"), false),
        };
        assert_eq!((code, client_wide), expected, "{reason_name}");
        if let Some(report) = report {
            assert_eq!(report.status, Some(status));
            // `Report` is now the engine's: the reason is the provider's string.
            assert_eq!(report.reason.as_deref(), Some(reason_name.as_str()));
            if let Some(DeviceError::Rejected { code, .. }) = &report.outcome.error {
                assert_eq!(code, &format!("{status} {reason_name}"));
            }
        } else {
            assert!(!sender.is_idle(), "{reason_name} is retried");
        }
    }
}

#[test]
fn delivered_keeps_apns_id_and_410_keeps_timestamp() {
    let ok = http::Response::builder()
        .status(200)
        .header("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5D")
        .body(Bytes::new())
        .unwrap();
    let (report, sender) = answer_one(ok);
    let report = report.unwrap();
    assert_eq!(report.outcome.error, None);
    // The engine's report: `id` is the apns-id answered, no reason on success.
    assert_eq!(
        report.id.as_deref(),
        Some("ec1bf194-b3b2-424a-89a9-5a918a6e6b5d")
    );
    assert_eq!((report.status, report.reason), (Some(200), None));
    assert_eq!(sender.stats().delivered, 1);

    let gone = response(
        410,
        r#"{"reason":"Unregistered","timestamp":1699999999000}"#,
    );
    let report = answer_one(gone).0.unwrap();
    assert_eq!(report.outcome.error, Some(DeviceError::InvalidDevice));
    assert_eq!(report.unregistered_at, Some(1_699_999_999_000));
    assert_eq!(report.reason.as_deref(), Some("Unregistered"));
    assert_eq!(report.token, token(1));
    // No apns-id answered: the one sent.
    assert_eq!(report.id.map(|id| id.len()), Some(36));
}

#[test]
fn too_many_requests_honours_retry_after_then_gives_up() {
    let now = Instant::now();
    let mut config = config();
    config.engine.max_attempts = 3;
    let mut sender = sender(config, Auth::Certificate).unwrap();
    sender.queue(token(1), alert(), 1, now).unwrap();
    let mut at = now;
    for attempt in 1..=3 {
        let (id, _) = poll_send(&mut sender, at).unwrap();
        let limited = http::Response::builder()
            .status(429)
            .header("retry-after", "7")
            .body(Bytes::from_static(br#"{"reason":"TooManyRequests"}"#))
            .unwrap();
        respond(&mut sender, id, limited, at);
        if attempt < 3 {
            assert_eq!(sender.poll_timeout(), Some(at + Duration::from_secs(7)));
            assert!(poll_send(&mut sender, at + Duration::from_secs(6)).is_none());
            at += Duration::from_secs(7);
            sender.handle_timeout(at);
        }
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 3,
            last_error: "429 TooManyRequests".into()
        })
    );
    assert_eq!(report.reason.as_deref(), Some("TooManyRequests"));
    assert_eq!(sender.stats().retries, 2);
    assert!(sender.is_idle());
}

#[test]
fn server_errors_use_the_backoff_and_transport_failures_count() {
    let now = Instant::now();
    let mut sender = cert_sender();
    sender.queue(token(1), alert(), 1, now).unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, id, reason(503, "Shutdown"), now);
    let due = sender.poll_timeout().unwrap();
    assert!(due >= now + Duration::from_millis(500) && due <= now + Duration::from_secs(1));
    sender.handle_timeout(due);
    let (id, _) = poll_send(&mut sender, due).unwrap();
    let reset = StreamEnd::ConnectionError("connection reset".into());
    end(&mut sender, id, reset, due);
    let later = sender.poll_timeout().unwrap();
    sender.handle_timeout(later);
    let (id, _) = poll_send(&mut sender, later).unwrap();
    respond(&mut sender, id, response(200, ""), later);
    assert_eq!(sender.poll_outcome().unwrap().outcome.error, None);
    let stats = sender.stats();
    assert_eq!((stats.transport_failures, stats.retries), (1, 2));
}

#[test]
fn refused_streams_are_resent_without_counting_an_attempt() {
    let now = Instant::now();
    let mut config = config();
    config.engine.max_attempts = 1;
    let mut sender: Sender<u32> = sender(config, Auth::Certificate).unwrap();
    for i in 0..3 {
        sender.queue(token(i), alert(), u32::from(i), now).unwrap();
    }
    let sent = sends(&mut sender, now);
    assert_eq!(sent.len(), 3);
    // GOAWAY with last-stream-id = the first stream: the other two were not processed.
    respond(&mut sender, sent[0].0, response(200, ""), now);
    end(&mut sender, sent[1].0, StreamEnd::GoAway, now);
    end(&mut sender, sent[2].0, StreamEnd::Refused, now);
    // Resent at once, exactly once more each.
    let resent = sends(&mut sender, now);
    assert_eq!(resent.len(), 2);
    let uris: Vec<_> = resent.iter().map(|(_, r)| r.uri().clone()).collect();
    for (_, original) in &sent[1..] {
        assert!(uris.contains(original.uri()));
    }
    // Their apns-id is kept across the resend.
    for (_, request) in &resent {
        let original = sent.iter().find(|(_, r)| r.uri() == request.uri()).unwrap();
        assert_eq!(
            request.headers()["apns-id"],
            original.1.headers()["apns-id"]
        );
    }
    // max_attempts = 1 and a refusal did not use it: a 503 now gives up after 1 attempt.
    respond(&mut sender, resent[0].0, response(200, ""), now);
    respond(
        &mut sender,
        resent[1].0,
        reason(503, "ServiceUnavailable"),
        now,
    );
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    assert_eq!(reports.len(), 3);
    assert_eq!(
        reports[2].outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 1,
            last_error: "503 ServiceUnavailable".into()
        })
    );
    let stats = sender.stats();
    assert_eq!((stats.requests, stats.refused, stats.delivered), (5, 2, 2));
    assert!(sender.is_idle());
}

/// Changed with the engine: refused streams are free only `max_free_resends` times (5 by
/// default); after that each refusal counts as an attempt, so a server that refuses
/// everything cannot keep a notification forever.
#[test]
fn a_server_refusing_every_stream_is_given_up_on() {
    let now = Instant::now();
    let mut config = config();
    config.engine.max_attempts = 2;
    let mut sender: Sender<u32> = sender(config, Auth::Certificate).unwrap();
    sender.queue(token(1), alert(), 1, now).unwrap();
    let mut at = now;
    let mut sent = 0;
    while sender.poll_outcome().is_none() {
        match poll_send(&mut sender, at) {
            Some((id, _)) => {
                sent += 1;
                end(&mut sender, id, StreamEnd::Refused, at);
            }
            None => {
                at = sender.poll_timeout().unwrap();
                sender.handle_timeout(at);
            }
        }
        assert!(sent <= 20, "bounded");
    }
    // 5 free, then 2 counted (the 6th and 7th refusals).
    assert_eq!(sent, 7);
    let stats = sender.stats();
    assert_eq!((stats.refused, stats.transport_failures), (5, 2));
    assert!(at - now < Duration::from_secs(5), "{:?}", at - now);
}

/// Changed with the engine: the stream limit is per connection, reported with
/// `Input::Connected` / `Input::MaxStreams`; one fixed connection keeps the old scenario
/// (otherwise the pool opens another connection when every stream is busy).
#[test]
fn stream_limit_drops_to_one_and_is_restored() {
    let now = Instant::now();
    let mut config = config();
    config.engine.pool = PoolConfig::default().fixed(1);
    let mut sender: Sender<u32> = sender(config, Auth::Certificate).unwrap();
    for i in 0..10 {
        sender.queue(token(i), alert(), u32::from(i), now).unwrap();
    }
    let Some(engine::Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a connection first");
    };
    let limit = |sender: &mut Sender<u32>, conn: ConnId, max_streams: u32| {
        sender.handle(Input::MaxStreams { conn, max_streams }, now);
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 4,
        },
        now,
    );
    let first = sends(&mut sender, now);
    assert_eq!(first.len(), 4);
    limit(&mut sender, conn, 1);
    // Four in flight above the new limit: nothing new until they drop below 1.
    for (id, _) in &first[..3] {
        respond(&mut sender, *id, response(200, ""), now);
        assert!(sender.poll_action(now).is_none());
    }
    respond(&mut sender, first[3].0, response(200, ""), now);
    let (id, _) = poll_send(&mut sender, now).unwrap();
    assert!(sender.poll_action(now).is_none());
    assert_eq!(sender.in_flight(), 1);
    respond(&mut sender, id, response(200, ""), now);
    limit(&mut sender, conn, 0);
    assert!(sender.poll_action(now).is_none());
    limit(&mut sender, conn, 1000);
    let rest = sends(&mut sender, now);
    assert_eq!(rest.len(), 5);
    for (id, _) in rest {
        respond(&mut sender, id, response(200, ""), now);
    }
    assert_eq!(std::iter::from_fn(|| sender.poll_outcome()).count(), 10);
    let stats = sender.stats();
    assert_eq!((stats.peak_in_flight, stats.dials), (5, 1));
    assert!(sender.is_idle());
}

#[test]
fn expired_provider_token_refreshes_once_respecting_20_minutes() {
    let start = Instant::now();
    let mut sender = token_sender(start);
    sender.queue(token(1), alert(), 1, start).unwrap();
    let (id, first) = poll_send(&mut sender, start).unwrap();
    // ExpiredProviderToken 21 minutes in: a new token at once, the notification retried.
    let at = start + 21 * MINUTE;
    respond(&mut sender, id, reason(403, "ExpiredProviderToken"), at);
    let (id, second) = poll_send(&mut sender, at).unwrap();
    assert_ne!(
        first.headers()["authorization"],
        second.headers()["authorization"]
    );
    // Expired again right after the refresh: the notification fails, the client is told.
    respond(&mut sender, id, reason(403, "ExpiredProviderToken"), at);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(report.outcome.error.unwrap().code(), "rejected");
    let events = events(&mut sender);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(
        events[1],
        Event::Credential(TokenEvent::Refreshed { generation: 2, .. })
    ));
    assert_eq!(
        events[2],
        Event::ClientError {
            status: 403,
            reason: "ExpiredProviderToken".into()
        }
    );
    let stats = sender.stats();
    assert_eq!((stats.token_refreshes, stats.requests), (2, 2));
}

#[test]
fn expired_provider_token_early_waits_until_20_minutes() {
    let start = Instant::now();
    let mut sender = token_sender(start);
    sender.queue(token(1), alert(), 1, start).unwrap();
    sender.queue(token(2), alert(), 2, start).unwrap();
    let (a, first) = poll_send(&mut sender, start).unwrap();
    let (b, _) = poll_send(&mut sender, start).unwrap();
    let at = start + 5 * MINUTE;
    respond(&mut sender, a, reason(403, "ExpiredProviderToken"), at);
    // The other request, sent with the same token, answers the same way: one refresh only.
    respond(&mut sender, b, reason(403, "ExpiredProviderToken"), at);
    assert!(poll_send(&mut sender, at).is_none());
    assert_eq!(sender.poll_timeout(), Some(start + 20 * MINUTE));
    let at = start + 20 * MINUTE;
    sender.handle_timeout(at);
    let retried = sends(&mut sender, at);
    assert_eq!(retried.len(), 2);
    for (_, request) in &retried {
        assert_ne!(
            request.headers()["authorization"],
            first.headers()["authorization"]
        );
    }
    for (id, _) in retried {
        respond(&mut sender, id, response(200, ""), at);
    }
    assert_eq!(std::iter::from_fn(|| sender.poll_outcome()).count(), 2);
    assert_eq!(sender.stats().token_refreshes, 2);
}

#[test]
fn tokens_are_reused_for_19_minutes_and_replaced_at_50() {
    let start = Instant::now();
    let mut sender = token_sender(start);
    let mut authorization_at = |minutes: u32| {
        let at = start + minutes * MINUTE;
        sender.queue(token(1), alert(), 1, at).unwrap();
        let (id, request) = poll_send(&mut sender, at).unwrap();
        respond(&mut sender, id, response(200, ""), at);
        request.headers()["authorization"].clone()
    };
    let first = authorization_at(0);
    assert_eq!(authorization_at(19), first);
    assert_eq!(authorization_at(49), first);
    let second = authorization_at(50);
    assert_ne!(second, first);
    assert_eq!(authorization_at(99), second);
    assert_ne!(authorization_at(100), second);
}

#[test]
fn client_errors_are_reported_once_in_a_row() {
    let now = Instant::now();
    let mut sender = token_sender(now);
    for i in 0..3 {
        sender.queue(token(i), alert(), u32::from(i), now).unwrap();
    }
    for (id, _) in sends(&mut sender, now) {
        respond(&mut sender, id, reason(403, "InvalidProviderToken"), now);
    }
    let client: Vec<_> = events(&mut sender)
        .into_iter()
        .filter(|e| matches!(e, Event::ClientError { .. }))
        .collect();
    assert_eq!(
        client,
        [Event::ClientError {
            status: 403,
            reason: "InvalidProviderToken".into()
        }]
    );
    assert_eq!(std::iter::from_fn(|| sender.poll_outcome()).count(), 3);
}

#[test]
fn a_failing_signer_fails_the_notification() {
    struct Offline;
    impl crate::apns::http2::Signer for Offline {
        fn key_id(&self) -> &str {
            "KEY"
        }
        fn sign(&self, _: &[u8]) -> Result<[u8; 64], SignError> {
            Err(SignError("offline".into()))
        }
    }
    let now = Instant::now();
    let auth = TokenAuth::new(Offline, "TEAM", now, UNIX).unwrap();
    let mut sender: Sender<u32> = sender(config(), Auth::Token(auth)).unwrap();
    sender.queue(token(1), alert(), 1, now).unwrap();
    assert!(poll_send(&mut sender, now).is_none());
    assert_eq!(
        sender.poll_event(),
        Some(Event::Credential(TokenEvent::SignerFailed(SignError(
            "offline".into()
        ))))
    );
    assert_eq!(
        sender.poll_outcome().unwrap().outcome.error.unwrap().code(),
        "rejected"
    );
    assert!(sender.is_idle());
}
