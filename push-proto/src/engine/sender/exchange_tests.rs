//! Exchanges on the engine: they share the notifications' connections and credential, are
//! sent again only when the server did not process them, and end when the route does.

use std::time::Instant;

use bytes::Bytes;

use super::tests::{TestCredential, TestProtocol, TestSender, test_sender};
use super::*;
use crate::engine::PoolConfig;
use crate::engine::credential::Grant;
use crate::engine::test_support::{end, respond, response};

/// A `POST https://test/broadcast` with body `body`.
fn request(body: &'static str) -> http::Request<Bytes> {
    http::Request::post("https://test/broadcast")
        .header("x-kind", "broadcast")
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

/// Polls until a request is handed out, connecting dials at once; gives its connection.
fn next_send(
    sender: &mut TestSender,
    now: Instant,
) -> Option<(ConnId, RequestId, http::Request<Bytes>)> {
    loop {
        match sender.poll_action(now)? {
            Action::Dial(conn) => sender.handle(
                Input::Connected {
                    conn,
                    max_streams: 100,
                },
                now,
            ),
            Action::Send { conn, id, request } => return Some((conn, id, request)),
            Action::Close(_) => {}
            Action::CredentialRequest(request) => panic!("unexpected {request:?}"),
        }
    }
}

/// An exchange's result as the tests compare it: the status and body, or the failure.
type Seen = (ExchangeId, Result<(u16, Bytes), ExchangeFailure>);

/// The results polled now.
fn results(sender: &mut TestSender) -> Vec<Seen> {
    std::iter::from_fn(|| sender.poll_exchanged())
        .map(|(id, result)| {
            let answer = result.map(|response| (response.status().as_u16(), response.into_body()));
            (id, answer)
        })
        .collect()
}

#[test]
fn exchanges_share_the_notifications_connection_and_credential() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, now).unwrap();
    let exchange = sender.exchange(request("{}"));
    let (first_conn, first, first_request) = next_send(&mut sender, now).unwrap();
    let (second_conn, second, second_request) = next_send(&mut sender, now).unwrap();
    assert!(next_send(&mut sender, now).is_none());
    assert_eq!(first_conn, second_conn, "one connection carries both");
    assert_eq!(sender.stats().dials, 1);
    // The exchange goes first (it is one request a caller waits for), as built, with the
    // route's credential added.
    assert_eq!(first_request.uri(), "https://test/broadcast");
    assert_eq!(first_request.headers()["x-kind"], "broadcast");
    assert_eq!(first_request.headers()["authorization"], "gen-1");
    assert_eq!(first_request.body(), "{}");
    assert_eq!(second_request.headers()["authorization"], "gen-1");
    respond(&mut sender, second, response(200, ""), now);
    assert!(sender.poll_outcome().unwrap().outcome.error.is_none());
    assert!(!sender.is_idle(), "the exchange is in flight");
    respond(
        &mut sender,
        first,
        response(400, "ChannelNotRegistered"),
        now,
    );
    let done = results(&mut sender);
    assert_eq!(done.len(), 1);
    let (id, result) = &done[0];
    assert_eq!(*id, exchange);
    let (status, body) = result.as_ref().unwrap();
    assert_eq!(*status, 400, "any answer is the caller's to classify");
    assert_eq!(body, "ChannelNotRegistered");
    assert!(sender.is_idle());
    assert_eq!((sender.stats().requests, sender.stats().responses), (2, 2));
}

#[test]
fn an_exchange_alone_dials_the_route() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    let exchange = sender.exchange(request("a"));
    let Some(Action::Dial(dialed)) = sender.poll_action(now) else {
        panic!("a dial");
    };
    assert!(!sender.is_idle());
    assert!(
        sender.poll_action(now).is_none(),
        "it waits for the connection"
    );
    let connected = Input::Connected {
        conn: dialed,
        max_streams: 100,
    };
    sender.handle(connected, now);
    let (conn, id, _) = next_send(&mut sender, now).unwrap();
    assert_eq!(conn, dialed);
    respond(&mut sender, id, response(200, ""), now);
    assert_eq!(results(&mut sender)[0].0, exchange);
    assert!(sender.is_idle());
}

#[test]
fn unprocessed_exchanges_are_sent_again_and_processed_ones_fail() {
    let now = Instant::now();
    let config = Config {
        max_free_resends: 1,
        ..Config::default()
    };
    let mut sender = test_sender(config);
    let refused = sender.exchange(request("a"));
    let (_, id, _) = next_send(&mut sender, now).unwrap();
    end(&mut sender, id, StreamEnd::Refused, now);
    let (_, id, again) = next_send(&mut sender, now).expect("sent again for free");
    assert_eq!(again.body(), "a");
    end(&mut sender, id, StreamEnd::GoAway, now);
    assert_eq!(
        results(&mut sender),
        vec![(refused, Err(ExchangeFailure::Stream(StreamEnd::GoAway)))],
        "free resends are bounded"
    );
    let reset = sender.exchange(request("b"));
    let (_, id, _) = next_send(&mut sender, now).unwrap();
    let cut = StreamEnd::Reset("INTERNAL_ERROR".into());
    end(&mut sender, id, cut.clone(), now);
    assert_eq!(
        results(&mut sender),
        vec![(reset, Err(ExchangeFailure::Stream(cut)))],
        "it may have been processed: not sent again"
    );
    assert!(next_send(&mut sender, now).is_none());
}

#[test]
fn a_closed_connection_fails_its_exchanges() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    let exchange = sender.exchange(request("a"));
    let (conn, _, _) = next_send(&mut sender, now).unwrap();
    sender.handle(Input::Closed { conn }, now);
    let done = results(&mut sender);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, exchange);
    assert!(matches!(
        &done[0].1,
        Err(ExchangeFailure::Stream(StreamEnd::ConnectionError(_)))
    ));
    assert!(sender.is_idle());
}

#[test]
fn an_unreachable_route_fails_the_waiting_exchanges() {
    let mut now = Instant::now();
    let config = Config {
        pool: PoolConfig {
            max_failed_dials: 2,
            ..PoolConfig::default()
        },
        ..Config::default()
    };
    let mut sender = test_sender(config);
    let exchange = sender.exchange(request("a"));
    while sender.exchanges.waiting() > 0 {
        match sender.poll_action(now) {
            Some(Action::Dial(conn)) => sender.handle(
                Input::DialFailed {
                    conn,
                    reason: "connection refused".into(),
                    fatal: false,
                },
                now,
            ),
            Some(other) => panic!("{other:?}"),
            None => {
                now = sender.poll_timeout().expect("a dial backoff");
                sender.handle_timeout(now);
            }
        }
    }
    assert_eq!(
        results(&mut sender),
        vec![(
            exchange,
            Err(ExchangeFailure::Unavailable(
                "cannot reach the server: connection refused".into()
            ))
        )]
    );
}

#[test]
fn a_refused_credential_is_renewed_for_the_next_request() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    let refused = sender.exchange(request("a"));
    let (_, id, _) = next_send(&mut sender, now).unwrap();
    respond(&mut sender, id, response(401, "Expired"), now);
    let done = results(&mut sender);
    assert_eq!(done[0].0, refused);
    assert_eq!(done[0].1.as_ref().unwrap().0, 401, "the caller sees it");
    let next = sender.exchange(request("b"));
    let Some(Action::CredentialRequest(_)) = sender.poll_action(now) else {
        panic!("the credential is renewed first");
    };
    sender.handle(Input::CredentialResponse(response(200, "")), now);
    let (_, id, sent) = next_send(&mut sender, now).unwrap();
    assert_eq!(sent.headers()["authorization"], "gen-2");
    respond(&mut sender, id, response(200, ""), now);
    assert_eq!(results(&mut sender)[0].0, next);
}

#[test]
fn a_credential_that_cannot_be_fetched_fails_the_waiting_exchanges() {
    let now = Instant::now();
    let mut credential = TestCredential::default();
    credential.broken = true;
    let mut sender = Sender::new(TestProtocol::default(), credential, Config::default()).unwrap();
    let exchange = sender.exchange(request("a"));
    while let Some(action) = sender.poll_action(now) {
        if let Action::Dial(conn) = action {
            sender.handle(
                Input::Connected {
                    conn,
                    max_streams: 100,
                },
                now,
            );
        }
    }
    assert_eq!(
        results(&mut sender),
        vec![(exchange, Err(ExchangeFailure::Credential("no key".into())))]
    );
    assert!(sender.is_idle());
}

#[test]
fn a_grant_is_the_credential_the_requests_use_and_a_refusal_renews_it() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    let Grant::Ready {
        authorization,
        generation,
    } = sender.grant(now)
    else {
        panic!("granted");
    };
    assert_eq!(authorization.unwrap(), "gen-1");
    sender.queue(1, None, 1, now).unwrap();
    let (_, id, sent) = next_send(&mut sender, now).unwrap();
    assert_eq!(sent.headers()["authorization"], "gen-1");
    respond(&mut sender, id, response(200, ""), now);
    sender.credential_refused(generation);
    assert!(matches!(sender.grant(now), Grant::Wait), "being renewed");
    sender.queue(2, None, 2, now).unwrap();
    let Some(Action::CredentialRequest(_)) = sender.poll_action(now) else {
        panic!("renewed when a request waits");
    };
}
