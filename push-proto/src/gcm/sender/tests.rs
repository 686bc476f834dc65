//! The GCM protocol on the engine, one exchange at a time over HTTP/1.1-like connections
//! (one request each): batches, per-token results, canonical ids, whole-batch errors,
//! `Retry-After`, attempts and the time to live.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{DATE, RETRY_AFTER};

use super::*;
use crate::engine::test_support::{end, poll_send_on, respond};
use crate::engine::{PoolConfig, RequestId, StreamEnd};
use crate::gcm::{Message, MessageOptions, RequestBody};
use crate::{Full, Outcome, Payload};

pub(super) fn token(text: &str) -> GcmToken {
    GcmToken::parse(text).unwrap()
}

pub(super) fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::from(body.to_owned())).unwrap()
}

pub(super) fn ids(request: &http::Request<Bytes>) -> Vec<String> {
    let body: RequestBody = serde_json::from_slice(request.body()).unwrap();
    body.registration_ids
}

/// The next request, on connections that take one request each.
pub(super) fn poll_request(
    sender: &mut Sender<usize>,
    now: Instant,
) -> Option<(RequestId, http::Request<Bytes>)> {
    poll_send_on(sender, now, 1)
}

fn config() -> Config {
    Config::new("test-key")
}

/// Settings with exactly `connections` connections (the automatic pool opens more only
/// once it has measured that they pay off).
fn config_with(connections: u32) -> Config {
    let mut config = config();
    config.engine.pool = PoolConfig::default().fixed(connections);
    config
}

pub(super) fn message(payload: &Payload) -> Encoded {
    Message::new(payload, &MessageOptions::default())
        .unwrap()
        .encode()
        .unwrap()
}

/// A sender with `tokens` (tags 0, 1, ...) of one message queued and flushed.
fn sent(config: Config, payload: Payload, tokens: &[&str], now: Instant) -> Sender<usize> {
    let mut sender = sender(config).unwrap();
    let message = message(&payload);
    for (tag, text) in tokens.iter().enumerate() {
        sender
            .queue(token(text), message.clone(), tag, now)
            .unwrap();
    }
    sender.flush();
    sender
}

fn outcomes(sender: &mut Sender<usize>) -> Vec<Outcome<usize>> {
    let mut all: Vec<_> = std::iter::from_fn(|| sender.poll_outcome())
        .map(|report| report.outcome)
        .collect();
    all.sort_by_key(|outcome| outcome.tag);
    all
}

fn all_failed(sender: &mut Sender<usize>, count: usize, error: &DeviceError) {
    let all = outcomes(sender);
    assert_eq!(all.len(), count);
    for outcome in all {
        assert_eq!(outcome.error.as_ref(), Some(error));
    }
}

fn rejected(code: &str) -> DeviceError {
    DeviceError::Rejected {
        provider: "gcm",
        code: code.into(),
    }
}

#[test]
fn worked_example() {
    let now = Instant::now();
    let payload = Payload::new()
        .collapse_key("news")
        .time_to_live(3600)
        .data("title", "Hi")
        .data("ref", "123");
    let tokens = ["tokA", "tokB", "tokC", "tokD"];
    let mut sender = sent(config(), payload, &tokens, now);

    let (id, request) = poll_request(&mut sender, now).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), "https://android.googleapis.com/gcm/send");
    assert_eq!(request.headers()["authorization"], "key=test-key");
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(
        request.body(),
        r#"{"registration_ids":["tokA","tokB","tokC","tokD"],"collapse_key":"news","time_to_live":3600,"data":{"ref":"123","title":"Hi"}}"#
    );
    assert!(poll_request(&mut sender, now).is_none());

    let body = r#"{"multicast_id":5555,"success":2,"failure":2,"canonical_ids":1,
 "results":[{"message_id":"0:1%abc"},{"message_id":"0:2%abc","registration_id":"tokB2"},{"error":"NotRegistered"},{"error":"Unavailable"}]}"#;
    respond(&mut sender, id, response(200, body, &[]), now);
    let reports: Vec<Report<usize>> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    let receipt = |tag: usize| {
        let report = reports.iter().find(|r| r.outcome.tag == tag).unwrap();
        (report.id.as_deref(), report.reason.as_deref())
    };
    assert_eq!(receipt(0), (Some("0:1%abc"), None));
    assert_eq!(receipt(2), (None, Some("NotRegistered")));
    let mut settled: Vec<_> = reports.into_iter().map(|r| r.outcome).collect();
    settled.sort_by_key(|outcome| outcome.tag);
    assert_eq!(
        settled,
        [
            Outcome::delivered(0),
            Outcome {
                tag: 1,
                new_token: Some("tokB2".into()),
                error: None
            },
            Outcome::failed(2, DeviceError::InvalidDevice),
        ]
    );
    assert!(poll_request(&mut sender, now).is_none());
    let due = sender.poll_timeout().unwrap();
    let wait = due - now;
    assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1));

    sender.handle_timeout(due);
    let (retry, request) = poll_request(&mut sender, due).unwrap();
    assert_eq!(
        request.body(),
        r#"{"registration_ids":["tokD"],"collapse_key":"news","time_to_live":3600,"data":{"ref":"123","title":"Hi"}}"#
    );
    let ok = r#"{"multicast_id":1,"success":1,"results":[{"message_id":"0:3"}]}"#;
    respond(&mut sender, retry, response(200, ok, &[]), due);
    assert_eq!(outcomes(&mut sender), [Outcome::delivered(3)]);
    assert!(sender.is_idle());
    let stats = sender.stats();
    assert_eq!((stats.requests, stats.retries, stats.delivered), (2, 1, 3));
    assert_eq!((stats.responses, stats.failed), (2, 1));
}

#[test]
fn bad_request_fails_the_batch_without_retry() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    let body = "x".repeat(300);
    respond(&mut sender, id, response(400, &body, &[]), now);
    let code = format!("400 Bad Request: {}", "x".repeat(200));
    all_failed(&mut sender, 2, &rejected(&code));
    assert!(poll_request(&mut sender, now).is_none());
    assert!(sender.is_idle());
}

#[test]
fn unauthorized_is_a_client_error_and_never_retried() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    respond(&mut sender, id, response(401, "Unauthorized", &[]), now);
    all_failed(
        &mut sender,
        2,
        &rejected("401 Unauthorized: the API key was refused"),
    );
    assert_eq!(
        sender.poll_event(),
        Some(Event::ClientError {
            status: 401,
            reason: "Unauthorized".into()
        })
    );
    assert_eq!(sender.poll_event(), None, "once per batch, not per token");
    assert!(poll_request(&mut sender, now).is_none());
    assert!(sender.is_idle());
}

#[test]
fn unavailable_retry_after_seconds_overrides_backoff() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    respond(
        &mut sender,
        id,
        response(503, "", &[("retry-after", "7")]),
        now,
    );
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(7)));
    assert!(poll_request(&mut sender, now + Duration::from_secs(6)).is_none());
    let later = now + Duration::from_secs(7);
    let (_, request) = poll_request(&mut sender, later).unwrap();
    assert_eq!(ids(&request), ["a", "b"], "retried together");
}

#[test]
fn unavailable_retry_after_date_uses_the_server_date() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    let headers = [
        (RETRY_AFTER.as_str(), "Sun, 06 Nov 1994 08:50:07 GMT"),
        (DATE.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    respond(&mut sender, id, response(500, "", &headers), now);
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(30)));

    // Without a Date header the date cannot be placed: the backoff applies.
    let later = now + Duration::from_secs(30);
    let (id, _) = poll_request(&mut sender, later).unwrap();
    respond(&mut sender, id, response(503, "", &headers[..1]), later);
    let wait = sender.poll_timeout().unwrap() - later;
    assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
}

#[test]
fn result_count_mismatch_fails_the_batch() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    let body = r#"{"results":[{"message_id":"1"}]}"#;
    respond(&mut sender, id, response(200, body, &[]), now);
    let code = "malformed response: 1 results for 2 tokens";
    all_failed(&mut sender, 2, &rejected(code));
    assert!(sender.is_idle());
}

#[test]
fn garbage_body_fails_the_batch() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    respond(&mut sender, id, response(200, "<html>\u{0}", &[]), now);
    let all = outcomes(&mut sender);
    assert_eq!(all.len(), 2);
    for outcome in all {
        assert!(matches!(
            outcome.error,
            Some(DeviceError::Rejected { provider: "gcm", code }) if code.starts_with("malformed response: ")
        ));
    }
}

#[test]
fn seven_tokens_in_batches_of_three() {
    let now = Instant::now();
    let config = Config {
        batch_size: 3,
        ..config_with(3)
    };
    let tokens = ["t0", "t1", "t2", "t3", "t4", "t5", "t6"];
    let mut sender = sent(config, Payload::new(), &tokens, now);
    let sizes: Vec<_> = std::iter::from_fn(|| poll_request(&mut sender, now))
        .map(|(_, request)| ids(&request))
        .collect();
    assert_eq!(
        sizes,
        [vec!["t0", "t1", "t2"], vec!["t3", "t4", "t5"], vec!["t6"]]
    );
    assert_eq!(
        sender.pool().live(),
        3,
        "one connection per request in flight"
    );
}

#[test]
fn tokens_of_different_messages_never_share_a_request() {
    let now = Instant::now();
    let mut sender = sender(config_with(3)).unwrap();
    let (hello, bye) = (
        message(&Payload::new().body("hello")),
        message(&Payload::new().body("bye")),
    );
    sender.queue(token("a"), hello.clone(), 0, now).unwrap();
    sender.queue(token("b"), bye, 1, now).unwrap();
    sender.queue(token("c"), hello, 2, now).unwrap();
    sender.flush();
    let batches: Vec<_> = std::iter::from_fn(|| poll_request(&mut sender, now))
        .map(|(_, request)| ids(&request))
        .collect();
    assert_eq!(batches, [vec!["a"], vec!["b"], vec!["c"]]);
}

#[test]
fn partial_batch_waits_for_linger_or_a_flush() {
    let now = Instant::now();
    let mut sender = sender(config_with(2)).unwrap();
    let message = message(&Payload::new());
    sender.queue(token("a"), message.clone(), 0, now).unwrap();
    let later = now + Duration::from_millis(4);
    sender.queue(token("b"), message.clone(), 1, later).unwrap();
    assert!(poll_request(&mut sender, later).is_none());
    let due = now + Duration::from_millis(10);
    assert_eq!(sender.poll_timeout(), Some(due));
    sender.handle_timeout(due);
    let (_, request) = poll_request(&mut sender, due).unwrap();
    assert_eq!(ids(&request), ["a", "b"]);

    sender.queue(token("c"), message, 2, due).unwrap();
    assert!(poll_request(&mut sender, due).is_none(), "lingers");
    sender.flush();
    let (_, request) = poll_request(&mut sender, due).unwrap();
    assert_eq!(ids(&request), ["c"], "flushed: goes at once");
}

#[test]
fn connections_bound_the_requests_in_flight() {
    let now = Instant::now();
    let config = Config {
        batch_size: 1,
        ..config_with(2)
    };
    let mut sender = sent(config, Payload::new(), &["a", "b", "c"], now);
    let (first, _) = poll_request(&mut sender, now).unwrap();
    assert!(poll_request(&mut sender, now).is_some());
    assert!(poll_request(&mut sender, now).is_none());
    assert_eq!(sender.in_flight(), 2);
    let ok = r#"{"results":[{"message_id":"1"}]}"#;
    respond(&mut sender, first, response(200, ok, &[]), now);
    let (_, request) = poll_request(&mut sender, now).unwrap();
    assert_eq!(ids(&request), ["c"]);
}

#[test]
fn attempts_exhausted_after_transport_failures() {
    let mut now = Instant::now();
    let mut config = config();
    config.engine.max_attempts = 3;
    let mut sender = sent(config, Payload::new(), &["a"], now);
    for _ in 0..3 {
        let (id, _) = poll_request(&mut sender, now).unwrap();
        let failure = StreamEnd::ConnectionError("connection reset".into());
        end(&mut sender, id, failure, now);
        if let Some(due) = sender.poll_timeout() {
            now = due;
        }
    }
    let error = DeviceError::Unavailable {
        attempts: 3,
        last_error: "transport failure: connection error: connection reset".into(),
    };
    all_failed(&mut sender, 1, &error);
    assert_eq!(sender.stats().transport_failures, 3);
    assert!(sender.is_idle());
}

#[test]
fn retry_after_the_time_to_live_fails_instead() {
    let now = Instant::now();
    let payload = Payload::new().time_to_live(5);
    let mut sender = sent(config(), payload, &["a"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    respond(
        &mut sender,
        id,
        response(503, "", &[("retry-after", "10")]),
        now,
    );
    let error = DeviceError::Unavailable {
        attempts: 1,
        last_error: "HTTP 503 Service Unavailable; its time to live ends before the next attempt"
            .into(),
    };
    all_failed(&mut sender, 1, &error);
    assert!(sender.is_idle());
}

#[test]
fn retry_within_the_time_to_live_goes_ahead() {
    let now = Instant::now();
    let payload = Payload::new().time_to_live(60);
    let mut sender = sent(config(), payload, &["a"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    respond(
        &mut sender,
        id,
        response(503, "", &[("retry-after", "60")]),
        now,
    );
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(60)));
    assert!(sender.poll_outcome().is_none());
}

#[test]
fn full_hands_the_token_back() {
    let now = Instant::now();
    let mut config = config();
    config.engine.max_pending = 1;
    let mut sender = sender(config).unwrap();
    let message = message(&Payload::new());
    sender.queue(token("a"), message.clone(), 0, now).unwrap();
    let full = sender.queue(token("b"), message.clone(), 1, now);
    assert!(matches!(full, Err(Full((t, _, 1))) if t == token("b")));
    sender.flush();
    let (request, _) = poll_request(&mut sender, now).unwrap();
    let ok = r#"{"results":[{"message_id":"1"}]}"#;
    respond(&mut sender, request, response(200, ok, &[]), now);
    let full = sender.queue(token("b"), message.clone(), 1, now);
    assert!(full.is_err(), "an unpolled outcome still counts");
    assert_eq!(outcomes(&mut sender), [Outcome::delivered(0)]);
    assert!(
        sender.queue(token("b"), message, 1, now).is_ok(),
        "room again"
    );
}

#[test]
fn rate_limited_results_wait_at_least_the_backoff() {
    let now = Instant::now();
    let mut config = config();
    config.engine.initial_backoff = Duration::from_secs(10);
    let mut sender = sent(config, Payload::new(), &["a"], now);
    let (id, _) = poll_request(&mut sender, now).unwrap();
    let body = r#"{"results":[{"error":"DeviceMessageRateExceeded"}]}"#;
    respond(
        &mut sender,
        id,
        response(200, body, &[("retry-after", "1")]),
        now,
    );
    let wait = sender.poll_timeout().unwrap() - now;
    assert!(wait >= Duration::from_secs(5), "{wait:?}");
}

#[test]
fn bad_settings_are_named() {
    let check = |change: fn(&mut Config), field| {
        let mut config = Config::new("k");
        change(&mut config);
        let error = sender::<()>(config).unwrap_err();
        assert_eq!(error.field, field);
        assert!(error.to_string().contains(field));
    };
    check(|c| c.batch_size = 0, "batch_size");
    check(|c| c.batch_size = 1001, "batch_size");
    check(|c| c.engine.max_attempts = 0, "max_attempts");
    check(|c| c.engine.pool.max_connections = 0, "max_connections");
    check(|c| c.engine.max_pending = 0, "max_pending");
    check(|c| c.api_key = "bad\nkey".into(), "api_key");
    check(|c| c.api_key = String::new(), "api_key");
    check(
        |c| c.endpoint = http::Uri::from_static("/gcm/send"),
        "endpoint",
    );
    let sender = sender::<()>(Config::new("secret-key")).unwrap();
    assert!(!format!("{sender:?}").contains("secret-key"));
}
