//! Batches on the engine, with the test protocol taking up to three notifications per
//! request: how they form (consecutive, one message, lingering), and how each notification of
//! a batch keeps its own fate.

use std::time::{Duration, Instant};

use http::HeaderValue;

use super::tests::{TestProtocol, TestSender, test_sender_with};
use super::*;
use crate::engine::test_support::{end, poll_send, respond, response, sends};

fn batching(linger: Duration) -> TestSender {
    let protocol = TestProtocol {
        batch: 3,
        linger,
        ..TestProtocol::default()
    };
    test_sender_with(protocol, Config::default())
}

/// The tokens a request carries.
fn tokens(request: &http::Request<Bytes>) -> String {
    request.uri().path()[1..].to_owned()
}

fn reports(sender: &mut TestSender) -> Vec<(u32, Option<&'static str>, Option<String>)> {
    let mut all: Vec<_> = std::iter::from_fn(|| sender.poll_outcome())
        .map(|report| {
            let outcome = report.outcome;
            (
                outcome.tag,
                outcome.error.as_ref().map(DeviceError::code),
                outcome.new_token,
            )
        })
        .collect();
    all.sort();
    all
}

/// A sender that sent notifications 1, 2 and 3 in request `id`.
fn one_full_batch(now: Instant) -> (TestSender, RequestId) {
    let mut sender = batching(Duration::ZERO);
    for token in 1..=3 {
        sender.queue(token, None, token, now).unwrap();
    }
    let (id, _) = poll_send(&mut sender, now).unwrap();
    (sender, id)
}

#[test]
fn consecutive_notifications_of_one_message_share_requests() {
    let now = Instant::now();
    let mut sender = batching(Duration::ZERO);
    let other = Some(Duration::from_secs(60));
    for (token, message) in [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
        (5, other),
        (6, None),
    ] {
        sender.queue(token, message, token, now).unwrap();
    }
    let batches: Vec<String> = sends(&mut sender, now)
        .iter()
        .map(|(_, request)| tokens(request))
        .collect();
    assert_eq!(batches, ["1,2,3", "4", "5", "6"]);
    assert_eq!(sender.stats().requests, 4);
}

#[test]
fn a_partial_batch_lingers_until_full_its_linger_passes_or_a_flush() {
    let now = Instant::now();
    let linger = Duration::from_millis(10);
    let mut sender = batching(linger);
    sender.queue(1, None, 1, now).unwrap();
    sender.queue(2, None, 2, now).unwrap();
    assert!(poll_send(&mut sender, now).is_none(), "waits for a third");
    assert_eq!(sender.poll_timeout(), Some(now + linger));
    sender.queue(3, None, 3, now).unwrap();
    let (_, full) = poll_send(&mut sender, now).unwrap();
    assert_eq!(tokens(&full), "1,2,3", "full: goes at once");

    sender.queue(4, None, 4, now).unwrap();
    let later = now + linger;
    sender.handle_timeout(later);
    let (_, lingered) = poll_send(&mut sender, later).unwrap();
    assert_eq!(tokens(&lingered), "4", "its linger passed");

    sender.queue(5, None, 5, later).unwrap();
    assert!(poll_send(&mut sender, later).is_none());
    sender.flush();
    assert_eq!(sender.poll_timeout(), None);
    let (_, flushed) = poll_send(&mut sender, later).unwrap();
    assert_eq!(tokens(&flushed), "5", "flushed");
}

#[test]
fn a_batch_followed_by_another_message_does_not_linger() {
    let now = Instant::now();
    let mut sender = batching(Duration::from_secs(1));
    sender.queue(1, None, 1, now).unwrap();
    sender
        .queue(2, Some(Duration::from_secs(60)), 2, now)
        .unwrap();
    let (_, first) = poll_send(&mut sender, now).unwrap();
    assert_eq!(tokens(&first), "1", "it cannot grow any more");
    assert!(
        poll_send(&mut sender, now).is_none(),
        "the last one may still grow"
    );
}

#[test]
fn each_notification_of_a_batch_gets_its_own_answer() {
    let now = Instant::now();
    let (mut sender, id) = one_full_batch(now);
    let mut answer = response(200, "");
    let headers = answer.headers_mut();
    headers.insert("x-each", HeaderValue::from_static("200,410,503"));
    headers.insert("x-new-token", HeaderValue::from_static("fresh"));
    headers.insert("retry-after", HeaderValue::from_static("2"));
    respond(&mut sender, id, answer, now);
    assert_eq!(
        reports(&mut sender),
        [
            (1, None, Some("fresh".into())),
            (2, Some("invalid_device"), None)
        ]
    );
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(2)));
    let later = now + Duration::from_secs(2);
    let (id, retry) = poll_send(&mut sender, later).unwrap();
    assert_eq!(
        tokens(&retry),
        "3",
        "only the one that needs it is sent again"
    );
    respond(&mut sender, id, response(200, ""), later);
    assert_eq!(reports(&mut sender), [(3, None, None)]);
    while sender.poll_event().is_some() {}
    assert!(sender.is_idle());
}

#[test]
fn a_notification_the_answers_leave_out_is_rejected() {
    let now = Instant::now();
    let (mut sender, id) = one_full_batch(now);
    let mut answer = response(200, "");
    answer
        .headers_mut()
        .insert("x-each", HeaderValue::from_static("200,200"));
    respond(&mut sender, id, answer, now);
    assert_eq!(
        reports(&mut sender),
        [
            (1, None, None),
            (2, None, None),
            (3, Some("rejected"), None)
        ]
    );
}

#[test]
fn a_whole_answer_or_a_stream_end_applies_to_every_notification_of_the_batch() {
    let now = Instant::now();
    let (mut sender, id) = one_full_batch(now);
    end(&mut sender, id, StreamEnd::Refused, now);
    let (id, again) = poll_send(&mut sender, now).unwrap();
    assert_eq!(
        tokens(&again),
        "1,2,3",
        "resent together, in order, for free"
    );
    respond(&mut sender, id, response(503, ""), now);
    let due = sender.poll_timeout().unwrap();
    sender.handle_timeout(due);
    let (id, retried) = poll_send(&mut sender, due).unwrap();
    assert_eq!(tokens(&retried), "1,2,3");
    respond(&mut sender, id, response(200, ""), due);
    assert_eq!(reports(&mut sender).len(), 3);
    let stats = sender.stats();
    assert_eq!((stats.requests, stats.refused, stats.retries), (3, 3, 3));
}
