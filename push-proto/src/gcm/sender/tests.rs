//! Scenario tests for [`Sender`]: one request/response exchange at a time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{DATE, RETRY_AFTER};

use super::*;
use crate::Payload;
use crate::gcm::{MessageOptions, RequestBody};

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

fn config() -> Config {
    Config::new("test-key")
}

fn message(payload: Payload) -> Message {
    Message::new(&payload, &MessageOptions::default()).unwrap()
}

/// A sender with one closed message holding `tokens` (tags 0, 1, ...).
fn sent(config: Config, payload: Payload, tokens: &[&str], now: Instant) -> Sender<usize> {
    let mut sender = Sender::new(config).unwrap();
    let id = sender.open_message(message(payload));
    for (tag, text) in tokens.iter().enumerate() {
        sender.queue(id, token(text), tag, now).unwrap();
    }
    sender.close_message(id);
    sender
}

fn outcomes(sender: &mut Sender<usize>) -> Vec<Outcome<usize>> {
    let mut all: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
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

    let (id, request) = sender.poll_request(now).unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "https://android.googleapis.com/gcm/send");
    assert_eq!(request.headers()["authorization"], "key=test-key");
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(
        request.body(),
        r#"{"registration_ids":["tokA","tokB","tokC","tokD"],"collapse_key":"news","time_to_live":3600,"data":{"ref":"123","title":"Hi"}}"#
    );
    assert!(sender.poll_request(now).is_none());

    let body = r#"{"multicast_id":5555,"success":2,"failure":2,"canonical_ids":1,
 "results":[{"message_id":"0:1%abc"},{"message_id":"0:2%abc","registration_id":"tokB2"},{"error":"NotRegistered"},{"error":"Unavailable"}]}"#;
    sender.handle_response(id, response(200, body, &[]), now);
    assert_eq!(
        outcomes(&mut sender),
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
    assert!(sender.poll_request(now).is_none());
    let due = sender.poll_timeout().unwrap();
    let wait = due - now;
    assert!(wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1));

    sender.handle_timeout(due);
    let (retry, request) = sender.poll_request(due).unwrap();
    assert_eq!(
        request.body(),
        r#"{"registration_ids":["tokD"],"collapse_key":"news","time_to_live":3600,"data":{"ref":"123","title":"Hi"}}"#
    );
    let ok = r#"{"multicast_id":1,"success":1,"results":[{"message_id":"0:3"}]}"#;
    sender.handle_response(retry, response(200, ok, &[]), due);
    assert_eq!(outcomes(&mut sender), [Outcome::delivered(3)]);
    assert!(sender.is_idle());
    assert_eq!(sender.messages(), 0);
    assert_eq!(sender.poll_timeout(), None);
    let stats = sender.stats();
    assert_eq!((stats.requests, stats.retries, stats.delivered), (2, 1, 3));
    assert_eq!((stats.new_tokens, stats.failed), (1, 1));
}

#[test]
fn bad_request_fails_the_batch_without_retry() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    let body = "x".repeat(300);
    sender.handle_response(id, response(400, &body, &[]), now);
    let code = format!("400 Bad Request: {}", "x".repeat(200));
    all_failed(&mut sender, 2, &rejected(code));
    assert!(sender.poll_request(now).is_none());
    assert_eq!(sender.poll_timeout(), None);
    assert!(sender.is_idle());
}

#[test]
fn unauthorized_is_an_event_and_never_retried() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(id, response(401, "Unauthorized", &[]), now);
    let code = "401 Unauthorized: the API key was refused".to_owned();
    all_failed(&mut sender, 2, &rejected(code));
    assert_eq!(
        sender.poll_event(),
        Some(Event::Unauthorized {
            detail: "Unauthorized".into()
        })
    );
    assert!(sender.poll_request(now).is_none());
    assert_eq!(sender.poll_timeout(), None);
    assert!(sender.is_idle());
}

#[test]
fn unavailable_retry_after_seconds_overrides_backoff() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(id, response(503, "", &[("retry-after", "7")]), now);
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(7)));
    assert!(sender.poll_request(now + Duration::from_secs(6)).is_none());
    let later = now + Duration::from_secs(7);
    let (_, request) = sender.poll_request(later).unwrap();
    assert_eq!(ids(&request), ["a", "b"]);
}

#[test]
fn unavailable_retry_after_date_uses_the_server_date() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    let headers = [
        (RETRY_AFTER.as_str(), "Sun, 06 Nov 1994 08:50:07 GMT"),
        (DATE.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    sender.handle_response(id, response(500, "", &headers), now);
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(30)));

    // Without a Date header the date cannot be placed: the backoff applies.
    let (id, _) = sender.poll_request(now + Duration::from_secs(30)).unwrap();
    let later = now + Duration::from_secs(30);
    sender.handle_response(id, response(503, "", &headers[..1]), later);
    let wait = sender.poll_timeout().unwrap() - later;
    assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
}

#[test]
fn result_count_mismatch_fails_the_batch() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    let body = r#"{"results":[{"message_id":"1"}]}"#;
    sender.handle_response(id, response(200, body, &[]), now);
    let code = "malformed response: 1 results for 2 tokens".to_owned();
    all_failed(&mut sender, 2, &rejected(code));
    assert!(sender.is_idle());
}

#[test]
fn garbage_body_fails_the_batch() {
    let now = Instant::now();
    let mut sender = sent(config(), Payload::new(), &["a", "b"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(id, response(200, "<html>\u{0}", &[]), now);
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
        ..config()
    };
    let tokens = ["t0", "t1", "t2", "t3", "t4", "t5", "t6"];
    let mut sender = sent(config, Payload::new(), &tokens, now);
    let sizes: Vec<_> = std::iter::from_fn(|| sender.poll_request(now))
        .map(|(_, request)| ids(&request))
        .collect();
    assert_eq!(
        sizes,
        [vec!["t0", "t1", "t2"], vec!["t3", "t4", "t5"], vec!["t6"]]
    );
}

#[test]
fn partial_batch_waits_for_linger() {
    let now = Instant::now();
    let mut sender = Sender::new(config()).unwrap();
    let id = sender.open_message(message(Payload::new()));
    sender.queue(id, token("a"), 0, now).unwrap();
    let later = now + Duration::from_millis(4);
    sender.queue(id, token("b"), 1, later).unwrap();
    assert!(sender.poll_request(later).is_none());
    let due = now + Duration::from_millis(10);
    assert_eq!(sender.poll_timeout(), Some(due));
    sender.handle_timeout(due);
    let (_, request) = sender.poll_request(due).unwrap();
    assert_eq!(ids(&request), ["a", "b"]);
    assert_eq!(sender.poll_timeout(), None);
    assert_eq!(sender.messages(), 1, "still open");
}

#[test]
fn max_in_flight_limits_requests() {
    let now = Instant::now();
    let config = Config {
        batch_size: 1,
        max_in_flight: 2,
        ..config()
    };
    let mut sender = sent(config, Payload::new(), &["a", "b", "c"], now);
    let (first, _) = sender.poll_request(now).unwrap();
    assert!(sender.poll_request(now).is_some());
    assert!(sender.poll_request(now).is_none());
    assert_eq!(sender.in_flight(), 2);
    let ok = r#"{"results":[{"message_id":"1"}]}"#;
    sender.handle_response(first, response(200, ok, &[]), now);
    let (_, request) = sender.poll_request(now).unwrap();
    assert_eq!(ids(&request), ["c"]);
}

#[test]
fn attempts_exhausted_after_transport_failures() {
    let mut now = Instant::now();
    let config = Config {
        max_attempts: 3,
        ..config()
    };
    let mut sender = sent(config, Payload::new(), &["a"], now);
    for _ in 0..3 {
        let (id, _) = sender.poll_request(now).unwrap();
        sender.handle_failure(id, "connection reset", now);
        if let Some(due) = sender.poll_timeout() {
            now = due;
        }
    }
    let error = DeviceError::Unavailable {
        attempts: 3,
        last_error: "transport failure: connection reset".into(),
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
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(id, response(503, "", &[("retry-after", "10")]), now);
    let error = DeviceError::Unavailable {
        attempts: 1,
        last_error: "HTTP 503 Service Unavailable; time_to_live would pass before the next attempt"
            .into(),
    };
    all_failed(&mut sender, 1, &error);
    assert!(sender.is_idle());
}

#[test]
fn full_hands_the_token_back() {
    let now = Instant::now();
    let config = Config {
        max_pending: 1,
        ..config()
    };
    let mut sender = Sender::new(config).unwrap();
    let id = sender.open_message(message(Payload::new()));
    sender.queue(id, token("a"), 0, now).unwrap();
    assert_eq!(
        sender.queue(id, token("b"), 1, now),
        Err(Full((token("b"), 1)))
    );
    sender.close_message(id);
    let (request, _) = sender.poll_request(now).unwrap();
    let ok = r#"{"results":[{"message_id":"1"}]}"#;
    sender.handle_response(request, response(200, ok, &[]), now);
    let full = sender.queue(id, token("b"), 1, now);
    assert!(full.is_err(), "an unpolled outcome still counts");
    assert_eq!(outcomes(&mut sender), [Outcome::delivered(0)]);
    assert!(sender.queue(id, token("b"), 1, now).is_ok(), "room again");
    let rejected = sender.poll_outcome().unwrap();
    assert!(rejected.error.is_some(), "the message was closed");
}

#[test]
fn closed_or_unknown_message_rejects_the_token() {
    let now = Instant::now();
    let mut sender = Sender::new(config()).unwrap();
    let id = sender.open_message(message(Payload::new()));
    sender.close_message(id);
    assert_eq!(sender.messages(), 0);
    sender.queue(id, token("a"), 7, now).unwrap();
    let outcome = sender.poll_outcome().unwrap();
    assert_eq!(outcome.tag, 7);
    assert!(matches!(
        outcome.error,
        Some(DeviceError::Rejected {
            provider: "gcm",
            ..
        })
    ));
    assert!(sender.is_idle());
}

#[test]
fn rate_limited_results_wait_at_least_the_backoff() {
    let now = Instant::now();
    let config = Config {
        initial_backoff: Duration::from_secs(10),
        ..config()
    };
    let mut sender = sent(config, Payload::new(), &["a"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    let body = r#"{"results":[{"error":"DeviceMessageRateExceeded"}]}"#;
    sender.handle_response(id, response(200, body, &[("retry-after", "1")]), now);
    let wait = sender.poll_timeout().unwrap() - now;
    assert!(wait >= Duration::from_secs(5), "{wait:?}");
}

#[test]
fn retry_within_the_time_to_live_goes_ahead() {
    let now = Instant::now();
    let payload = Payload::new().time_to_live(60);
    let mut sender = sent(config(), payload, &["a"], now);
    let (id, _) = sender.poll_request(now).unwrap();
    sender.handle_response(id, response(503, "", &[("retry-after", "60")]), now);
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(60)));
    assert!(sender.poll_outcome().is_none());
}
