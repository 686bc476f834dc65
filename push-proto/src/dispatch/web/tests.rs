//! Web Push in the dispatcher: a route per origin, made on the first subscription, dropped
//! when idle, a bounded table where new origins wait, and bad subscriptions answered at once.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::dispatch::{Action, Event, Push, Route, WebPushSettings};
use crate::engine::{self, Input};
use crate::webpush::{Options, Vapid, VapidKey};
use crate::{Device, DeviceError, Payload, SessionId};

const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const KEY: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";

/// The subscription JSON of browser `n` at push service `host`.
fn subscription(host: &str, n: u32) -> String {
    format!(
        r#"{{"endpoint":"https://{host}/push/{n}","keys":{{"p256dh":"{P256DH}","auth":"{AUTH}"}}}}"#
    )
}

fn web(settings: WebPushSettings, now: Instant) -> Push {
    let vapid = Vapid::new(
        VapidKey::from_base64url(KEY).unwrap(),
        "mailto:ops@example.com",
    );
    Push::new()
        .with_webpush(settings, vapid.unwrap(), now, 1_700_000_000)
        .unwrap()
}

/// What the driver did: the routes it dialed and the routes it closed.
#[derive(Debug, Default)]
struct Seen {
    dialed: Vec<(Route, String)>,
    closed: Vec<Route>,
    sent: Vec<String>,
}

/// Performs every action as a push service that answers `status` to everything.
fn drive(push: &mut Push, now: Instant, status: u16, seen: &mut Seen) {
    while let Some(action) = push.poll_action(now, &mut Vec::new()) {
        match action {
            Action::Http(route, engine::Action::Dial(conn)) => {
                let origin = push.webpush_origin(route).unwrap().to_string();
                seen.dialed.push((route, origin));
                let connected = Input::Connected {
                    conn,
                    max_streams: 100,
                };
                push.handle_http(route, connected, now);
            }
            Action::Http(route, engine::Action::Send { id, request, .. }) => {
                seen.sent.push(request.uri().to_string());
                let response = http::Response::builder()
                    .status(status)
                    .body(Bytes::new())
                    .unwrap();
                push.handle_http(route, Input::Response { id, response }, now);
            }
            Action::HttpRouteClosed(route) => seen.closed.push(route),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn feedback(push: &mut Push) -> Vec<(String, Option<&'static str>)> {
    std::iter::from_fn(|| push.poll_feedback())
        .map(|(_, f)| (f.device.token, f.error.as_ref().map(DeviceError::code)))
        .collect()
}

fn open(push: &mut Push) -> SessionId {
    push.open_session(&Payload::new().title("Hi").body("there"))
}

#[test]
fn each_origin_gets_its_own_route_and_every_browser_one_feedback() {
    let now = Instant::now();
    let mut push = web(WebPushSettings::default(), now);
    let session = open(&mut push);
    for n in 0..6 {
        let host = ["a.example", "b.example", "c.example"][n as usize % 3];
        push.push(session, Device::web(subscription(host, n)), now)
            .unwrap();
    }
    push.close_session(session);
    let mut seen = Seen::default();
    drive(&mut push, now, 201, &mut seen);
    assert_eq!(
        seen.dialed,
        [
            (Route::WebPush(0), "https://a.example".to_owned()),
            (Route::WebPush(1), "https://b.example".to_owned()),
            (Route::WebPush(2), "https://c.example".to_owned()),
        ]
    );
    assert_eq!(seen.sent.len(), 6);
    let feedback = feedback(&mut push);
    assert_eq!(feedback.len(), 6);
    assert!(feedback.iter().all(|(_, error)| error.is_none()));
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    assert!(push.is_idle());
    assert_eq!(push.webpush_origins().len(), 3);
}

#[test]
fn a_malformed_subscription_fails_at_once_and_web_needs_a_provider() {
    let now = Instant::now();
    let mut push = web(WebPushSettings::default(), now);
    let session = open(&mut push);
    push.push(session, Device::web("{\"endpoint\": 1}"), now)
        .unwrap();
    let http = subscription("a.example", 1).replace("https://", "http://");
    push.push(session, Device::web(http.clone()), now).unwrap();
    assert_eq!(
        feedback(&mut push),
        [
            ("{\"endpoint\": 1}".to_owned(), Some("invalid_token_format")),
            (http, Some("invalid_token_format")),
        ]
    );
    assert!(push.poll_action(now, &mut Vec::new()).is_none());

    let mut none = Push::new();
    let session = open(&mut none);
    let json = subscription("a.example", 1);
    none.push(session, Device::web(json.clone()), now).unwrap();
    assert_eq!(feedback(&mut none), [(json, Some("no_provider"))]);
}

#[test]
fn an_idle_origin_is_dropped_after_the_idle_timeout_and_stale_inputs_are_ignored() {
    let start = Instant::now();
    let settings = WebPushSettings::default().idle_timeout(Duration::from_secs(30));
    let mut push = web(settings, start);
    let session = open(&mut push);
    push.push(session, Device::web(subscription("a.example", 1)), start)
        .unwrap();
    let mut seen = Seen::default();
    drive(&mut push, start, 201, &mut seen);
    assert_eq!(feedback(&mut push).len(), 1);
    assert!(push.is_idle(), "an idle origin kept for later is no work");

    // Nothing closes before the timeout; the deadline is the timeout.
    let later = start + Duration::from_secs(10);
    push.handle_timeout(later);
    drive(&mut push, later, 201, &mut seen);
    assert!(seen.closed.is_empty());
    assert_eq!(push.poll_timeout(), Some(start + Duration::from_secs(30)));

    let expired = start + Duration::from_secs(30);
    push.handle_timeout(expired);
    drive(&mut push, expired, 201, &mut seen);
    assert_eq!(seen.closed, [Route::WebPush(0)]);
    assert!(push.webpush_origins().is_empty());
    assert_eq!(push.poll_timeout(), None);

    // What the dropped route's connections still report goes nowhere.
    let closed = Input::Closed {
        conn: engine::ConnId(0),
    };
    push.handle_http(Route::WebPush(0), closed, expired);
    assert!(push.poll_action(expired, &mut Vec::new()).is_none());

    // The same origin again: a new route.
    push.push(session, Device::web(subscription("a.example", 2)), expired)
        .unwrap();
    drive(&mut push, expired, 201, &mut seen);
    assert_eq!(seen.dialed.last().unwrap().0, Route::WebPush(1));
    assert_eq!(feedback(&mut push).len(), 1);
}

#[test]
fn a_full_table_makes_new_origins_wait_never_drops_them() {
    let now = Instant::now();
    let settings = WebPushSettings::new(Options::new().ttl(60)).max_origins(2);
    let mut push = web(settings, now);
    let session = open(&mut push);
    for (n, host) in ["a.example", "b.example", "c.example", "a.example"]
        .into_iter()
        .enumerate()
    {
        push.push(session, Device::web(subscription(host, n as u32)), now)
            .unwrap();
    }
    push.close_session(session);
    let mut seen = Seen::default();
    // The first turn serves a and b; c waits, then takes the room of an idle one.
    for _ in 0..4 {
        drive(&mut push, now, 410, &mut seen);
        while push.poll_feedback().is_some() {}
    }
    let origins: Vec<&str> = seen.dialed.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(origins[..2], ["https://a.example", "https://b.example"]);
    assert!(origins.contains(&"https://c.example"));
    assert!(!seen.closed.is_empty());
    assert!(push.webpush_origins().len() <= 2);
    assert_eq!(seen.sent.len(), 4);
    assert!(push.is_idle());
}

#[test]
fn a_refused_vapid_key_is_an_event_naming_the_origin() {
    let now = Instant::now();
    let mut push = web(WebPushSettings::default(), now);
    let session = open(&mut push);
    push.push(session, Device::web(subscription("a.example", 1)), now)
        .unwrap();
    let mut seen = Seen::default();
    drive(&mut push, now, 403, &mut seen);
    assert_eq!(
        feedback(&mut push),
        [(subscription("a.example", 1), Some("rejected"))]
    );
    let events: Vec<Event> = std::iter::from_fn(|| push.poll_event()).collect();
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::WebPush(origin, engine::Event::ClientError { status: 403, .. })
                if origin.as_str() == "https://a.example"
        )),
        "{events:?}"
    );
}

/// A session's deadline ends its web notifications too: those queued on an origin's sender
/// and those still waiting for room in a full table, each once.
#[test]
fn a_session_deadline_ends_web_notifications_queued_and_waiting_for_an_origin() {
    let now = Instant::now();
    let settings = WebPushSettings::new(Options::new().ttl(60)).max_origins(1);
    let mut push = web(settings, now);
    let session = open(&mut push);
    let deadline = now + Duration::from_secs(5);
    push.set_session_deadline(session, deadline);
    let queued = subscription("a.example", 1);
    let waiting = subscription("b.example", 2);
    push.push(session, Device::web(queued.clone()), now)
        .unwrap();
    push.push(session, Device::web(waiting.clone()), now)
        .unwrap();
    assert!(feedback(&mut push).is_empty());
    assert_eq!(push.poll_timeout().map(|at| at <= deadline), Some(true));
    push.handle_timeout(deadline);
    let mut ended = feedback(&mut push);
    ended.sort();
    assert_eq!(
        ended,
        [
            (queued, Some("unavailable")),
            (waiting, Some("unavailable"))
        ]
    );
    push.close_session(session);
    let mut seen = Seen::default();
    drive(&mut push, deadline, 201, &mut seen);
    assert!(seen.sent.is_empty(), "nothing sent after the deadline");
    assert!(feedback(&mut push).is_empty(), "one feedback each");
}

#[test]
fn web_push_counters_sum_every_origin_and_keep_a_dropped_ones() {
    let start = Instant::now();
    assert_eq!(Push::new().webpush_stats(), None);
    let settings = WebPushSettings::default().idle_timeout(Duration::from_secs(30));
    let mut push = web(settings, start);
    assert_eq!(push.webpush_stats(), Some(engine::Stats::default()));
    let session = open(&mut push);
    for n in 0..3 {
        push.push(session, Device::web(subscription("a.example", n)), start)
            .unwrap();
    }
    let mut seen = Seen::default();
    drive(&mut push, start, 201, &mut seen);
    let later = start + Duration::from_secs(20);
    for n in 0..2 {
        push.push(session, Device::web(subscription("b.example", n)), later)
            .unwrap();
    }
    drive(&mut push, later, 410, &mut seen);
    assert_eq!(feedback(&mut push).len(), 5);
    let before = push.webpush_stats().unwrap();
    assert_eq!(
        (before.queued, before.requests, before.responses),
        (5, 5, 5)
    );
    assert_eq!((before.delivered, before.failed, before.dials), (3, 2, 2));

    // a.example idles out; its counts stay in the sum.
    let expired = start + Duration::from_secs(30);
    push.handle_timeout(expired);
    drive(&mut push, expired, 201, &mut seen);
    assert_eq!(seen.closed, [Route::WebPush(0)]);
    assert_eq!(push.webpush_stats(), Some(before));

    // A new route for a.example adds to what the dropped one counted.
    push.push(session, Device::web(subscription("a.example", 9)), expired)
        .unwrap();
    drive(&mut push, expired, 201, &mut seen);
    let after = push.webpush_stats().unwrap();
    assert_eq!((after.requests, after.delivered, after.dials), (6, 4, 3));
    assert_eq!(after.in_flight, 0);
    assert_eq!(feedback(&mut push).len(), 1);
}
