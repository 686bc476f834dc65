//! The Web Push provider on the engine: the request (headers, an encrypted body the user
//! agent can read, a fresh encryption per send), VAPID tokens (one per origin, renewed after a
//! 401), and the response table as reports and events.

use std::time::{Duration, Instant};

use p256::SecretKey;

use super::*;
use crate::engine::test_support::{poll_send, respond, response, sends};
use crate::engine::{Answer, Verdict};
use crate::jose::base64url_decode;
use crate::webpush::ece::tests::{decrypt, rfc8291};
use crate::webpush::message::Options;
use crate::webpush::subscription::tests::{AUTH, subscription};
use crate::webpush::vapid::tests::{PUBLIC, vapid, verify};
use crate::{Payload, webpush::Urgency};

const ORIGIN: &str = "https://push.example.net";

fn endpoint(i: usize) -> String {
    format!("{ORIGIN}/push/{i}")
}

fn new_sender(now: Instant) -> Sender<usize> {
    let origin = Origin::parse(ORIGIN).unwrap();
    let credential = VapidCredential::new(vapid(), origin, now, 1_700_000_000);
    sender(Config::default(), credential).unwrap()
}

fn message(ttl: u32) -> Message {
    let payload = Payload::new().title("Hi").body("There");
    Message::new(
        &payload,
        &Options::new().ttl(ttl).urgency(Urgency::High).topic("t1"),
    )
    .unwrap()
}

fn reports(sender: &mut Sender<usize>) -> Vec<Report<usize>> {
    std::iter::from_fn(|| sender.poll_outcome()).collect()
}

fn events(sender: &mut Sender<usize>) -> Vec<Event> {
    std::iter::from_fn(|| sender.poll_event()).collect()
}

fn ua_secret() -> SecretKey {
    SecretKey::from_slice(&base64url_decode(rfc8291::UA_PRIVATE).unwrap()).unwrap()
}

fn with_header(status: u16, name: &str, value: &str, body: &str) -> http::Response<Bytes> {
    let mut answer = response(status, body);
    answer.headers_mut().insert(
        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    answer
}

#[test]
fn the_request_is_encrypted_for_the_subscription_and_authorized_for_the_origin() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    sender
        .queue(subscription(&endpoint(1)), message(60), 1, now)
        .unwrap();
    let (id, request) = poll_send(&mut sender, now).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), endpoint(1).as_str());
    assert_eq!(request.version(), http::Version::HTTP_2);
    let headers = request.headers();
    assert_eq!(headers["ttl"], "60");
    assert_eq!(headers["urgency"], "high");
    assert_eq!(headers["topic"], "t1");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert_eq!(headers["content-type"], "application/octet-stream");
    let (_, claims, key) = verify(&headers["authorization"]);
    assert_eq!(key, PUBLIC);
    assert_eq!(claims["aud"], ORIGIN);
    assert_eq!(claims["exp"], 1_700_000_000u64 + 12 * 3600);
    let plaintext = decrypt(
        request.body(),
        &ua_secret(),
        &base64url_decode(AUTH).unwrap(),
    );
    assert_eq!(plaintext.unwrap(), br#"{"body":"There","title":"Hi"}"#);

    let receipt = "https://push.example.net/message/m1";
    respond(
        &mut sender,
        id,
        with_header(201, "location", receipt, ""),
        now,
    );
    let report = reports(&mut sender).pop().unwrap();
    assert_eq!((report.outcome.tag, report.outcome.error), (1, None));
    assert_eq!(
        (report.status, report.id.as_deref()),
        (Some(201), Some(receipt))
    );
    assert!(matches!(
        events(&mut sender)[..],
        [engine::Event::Credential(VapidEvent::Signed {
            generation: 1,
            ..
        })]
    ));
    assert!(sender.is_idle());
}

#[test]
fn every_send_is_a_new_encryption_with_the_same_token() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    for i in 0..2 {
        sender
            .queue(subscription(&endpoint(i)), message(600), i, now)
            .unwrap();
    }
    let first = sends(&mut sender, now);
    assert_eq!(first.len(), 2);
    assert_ne!(
        first[0].1.body()[..16],
        first[1].1.body()[..16],
        "a new salt per message"
    );
    assert_ne!(
        first[0].1.body()[21..86],
        first[1].1.body()[21..86],
        "a new key per message"
    );
    assert_eq!(
        first[0].1.headers()["authorization"],
        first[1].1.headers()["authorization"]
    );
    // A retry is encrypted again.
    respond(
        &mut sender,
        first[0].0,
        with_header(503, "retry-after", "7", ""),
        now,
    );
    assert!(poll_send(&mut sender, now + Duration::from_secs(6)).is_none());
    let (_, again) = poll_send(&mut sender, now + Duration::from_secs(7)).unwrap();
    assert_eq!(again.uri(), endpoint(0).as_str());
    assert_ne!(again.body(), first[0].1.body());
    let secret = base64url_decode(AUTH).unwrap();
    assert!(decrypt(again.body(), &ua_secret(), &secret).is_some());
}

#[test]
fn the_response_table_as_reports() {
    let now = Instant::now();
    let cases: [(http::Response<Bytes>, Option<&str>); 5] = [
        (
            response(410, r#"{"reason":"Unregistered"}"#),
            Some("invalid_device"),
        ),
        (response(404, ""), Some("invalid_device")),
        (response(413, ""), Some("payload_too_large")),
        (
            response(400, r#"{"reason":"BadWebPushTopic"}"#),
            Some("rejected"),
        ),
        (response(201, ""), None),
    ];
    for (answer, code) in cases {
        let mut sender = new_sender(now);
        sender
            .queue(subscription(&endpoint(1)), message(60), 1, now)
            .unwrap();
        let (id, _) = poll_send(&mut sender, now).unwrap();
        respond(&mut sender, id, answer, now);
        let report = reports(&mut sender).pop().unwrap();
        assert_eq!(report.outcome.error.as_ref().map(DeviceError::code), code);
        assert!(sender.is_idle() || !events(&mut sender).is_empty());
    }
}

#[test]
fn a_refused_token_is_renewed_once_then_the_client_is_told() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    sender
        .queue(subscription(&endpoint(1)), message(60), 1, now)
        .unwrap();
    let (id, first) = poll_send(&mut sender, now).unwrap();
    respond(
        &mut sender,
        id,
        response(401, r#"{"message":"Request did not validate"}"#),
        now,
    );
    let later = now + Duration::from_secs(1);
    let (id, second) = poll_send(&mut sender, later).unwrap();
    assert_ne!(
        first.headers()["authorization"],
        second.headers()["authorization"]
    );
    respond(
        &mut sender,
        id,
        response(401, r#"{"message":"Request did not validate"}"#),
        later,
    );
    let report = reports(&mut sender).pop().unwrap();
    assert_eq!(
        report.outcome.error.as_ref().map(DeviceError::code),
        Some("rejected")
    );
    assert_eq!(report.reason.as_deref(), Some("Request did not validate"));
    let client_errors: Vec<_> = events(&mut sender)
        .into_iter()
        .filter(|event| matches!(event, engine::Event::ClientError { .. }))
        .collect();
    assert_eq!(
        client_errors,
        [engine::Event::ClientError {
            status: 401,
            reason: "Request did not validate".into()
        }]
    );
}

#[test]
fn a_vapid_key_mismatch_is_a_client_wide_error() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    for i in 0..2 {
        sender
            .queue(subscription(&endpoint(i)), message(60), i, now)
            .unwrap();
    }
    for (id, _) in sends(&mut sender, now) {
        respond(
            &mut sender,
            id,
            response(403, r#"{"reason":"VapidPkHashMismatch"}"#),
            now,
        );
    }
    for report in reports(&mut sender) {
        let error = report.outcome.error.unwrap().to_string();
        assert!(
            error.contains("VapidPkHashMismatch (the VAPID public key is not"),
            "{error}"
        );
    }
    let client_errors: Vec<_> = events(&mut sender)
        .into_iter()
        .filter(|event| matches!(event, engine::Event::ClientError { .. }))
        .collect();
    assert_eq!(
        client_errors,
        [engine::Event::ClientError {
            status: 403,
            reason: "VapidPkHashMismatch".into()
        }],
        "reported once"
    );
}

#[test]
fn nothing_is_sent_to_another_origin_or_past_the_ttl() {
    let now = Instant::now();
    let mut sender = new_sender(now);
    sender
        .queue(
            subscription("https://other.example/push/1"),
            message(60),
            1,
            now,
        )
        .unwrap();
    assert!(poll_send(&mut sender, now).is_none());
    let error = reports(&mut sender).pop().unwrap().outcome.error.unwrap();
    assert!(
        error
            .to_string()
            .contains("the subscription is at https://other.example"),
        "{error}"
    );

    sender
        .queue(subscription(&endpoint(1)), message(0), 2, now)
        .unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, id, response(503, ""), now);
    let report = reports(&mut sender).pop().unwrap();
    assert_eq!(
        report.outcome.error.as_ref().map(DeviceError::code),
        Some("unavailable")
    );
}

#[test]
fn the_protocol_describes_itself() {
    let protocol = WebPushProtocol::new(Origin::parse(ORIGIN).unwrap());
    assert_eq!(protocol.provider(), "webpush");
    assert_eq!(protocol.origin().as_str(), ORIGIN);
    assert!(format!("{protocol:?}").contains(ORIGIN));
    let big = Message::raw(vec![0; 100], &Options::new().pad_to(MAX_BODY)).unwrap();
    assert_eq!(
        protocol.too_large(&big),
        DeviceError::PayloadTooLarge {
            size: MAX_BODY,
            limit: MAX_BODY
        }
    );
    assert_eq!(
        protocol.time_to_live(&message(9)),
        Some(Duration::from_secs(9))
    );
    let subscription = subscription(&endpoint(1));
    let answers = protocol.classify(&response(201, ""), Batch::one(&subscription));
    assert!(matches!(
        answers,
        Answers::All(Answer {
            verdict: Verdict::Delivered,
            ..
        })
    ));
}
