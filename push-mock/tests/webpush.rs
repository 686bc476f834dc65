//! The Web Push mock, driven by an `h2` client over futures-rustls on smol with requests that
//! push-proto's Web Push protocol built (encrypted for the mock's subscriptions, VAPID-signed),
//! and by hand-made defective ones; push-proto's response table read over every answer.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::SAFETY;
use common::fcm::{Answer, run};
use common::webpush::*;
use http::Method;
use push_mock::{Certificates, MockWebPush, WebPushOptions};
use push_proto::Payload;
use push_proto::engine::{self, Action, Input, Verdict};
use push_proto::webpush::{self, Message, Options, Subscription, Urgency, classify};

fn start(options: WebPushOptions) -> (Certificates, MockWebPush) {
    let certs = Certificates::generate().unwrap();
    let mock = MockWebPush::start(options, &certs).unwrap();
    (certs, mock)
}

fn restricted() -> WebPushOptions {
    WebPushOptions::new().application_server_key(VAPID_PUBLIC)
}

fn message(text: &str) -> Message {
    let payload = Payload::new().title("Hi").body(text);
    let options = Options::new().ttl(600).urgency(Urgency::Low).topic("news");
    Message::new(&payload, &options).unwrap()
}

/// What push-proto makes of an answer of the mock.
fn verdict(answer: &Answer) -> Verdict {
    let mut response = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    classify(&response.body(answer.body.clone()).unwrap()).verdict
}

fn reason(answer: &Answer) -> String {
    answer.json()["reason"].as_str().unwrap().to_owned()
}

#[test]
fn decrypts_what_push_proto_sends_on_every_origin() {
    let (certs, mock) = start(restricted().origins(2));
    let origins = mock.origins();
    assert_ne!(origins[0], origins[1]);
    run(async {
        for (origin, url) in origins.iter().enumerate() {
            let subscription = mock.subscribe(origin);
            let mut credential = credential(VAPID_PRIVATE, url);
            let client = connect(&mock, origin, &certs).await;
            let request = request(
                &subscription.json,
                &message("m"),
                &authorization(&mut credential),
            );
            let answer = send(&client, &request).await;
            assert_eq!(answer.status, 201, "{:?}", answer.body);
            let location = answer.headers["location"].to_str().unwrap();
            assert_eq!(
                location,
                format!("{}/message/{}", origins[origin], origin + 1)
            );
            assert_eq!(verdict(&answer), Verdict::Delivered);
        }
    });
    let delivered = mock.delivered();
    assert_eq!(delivered.len(), 2);
    for (origin, delivery) in delivered.iter().enumerate() {
        assert_eq!(delivery.origin, origin);
        assert_eq!(delivery.plaintext, br#"{"body":"m","title":"Hi"}"#);
        assert_eq!(
            (
                delivery.ttl,
                delivery.urgency.as_deref(),
                delivery.topic.as_deref()
            ),
            (600, Some("low"), Some("news"))
        );
    }
    assert_eq!(mock.total_delivered(), 2);
    assert_eq!(mock.connections(), 2);
}

#[test]
fn each_defect_gets_its_answer_and_push_proto_reads_it() {
    let (certs, mock) = start(restricted().origins(2));
    let origins = mock.origins();
    let subscription = mock.subscribe(0);
    let gone = mock.subscribe(0);
    assert!(mock.expire(&gone.endpoint));
    assert!(!mock.expire("https://localhost:1/push/unknown"));
    let other_key = mock
        .subscribe_for(0, &vapid(OTHER_PRIVATE).key().public_key())
        .unwrap();
    let mut good = credential(VAPID_PRIVATE, &origins[0]);
    let auth = authorization(&mut good);
    let mut other_origin = credential(VAPID_PRIVATE, &origins[1]);
    let mut other_signer = credential(OTHER_PRIVATE, &origins[0]);
    let valid = request(&subscription.json, &message("m"), &auth);
    run(async {
        let client = connect(&mock, 0, &certs).await;
        let expect = |answer: Answer, status: u16, why: &str, verdict_wanted: Verdict| {
            assert_eq!((answer.status, reason(&answer).as_str()), (status, why));
            assert_eq!(verdict(&answer), verdict_wanted, "{why}");
        };
        let with = |change: &dyn Fn(&mut http::Request<Bytes>)| {
            let mut request = valid.clone();
            change(&mut request);
            request
        };
        let get = with(&|r| *r.method_mut() = Method::GET);
        expect(
            send(&client, &get).await,
            405,
            "MethodNotAllowed",
            Verdict::Rejected,
        );
        let unknown =
            with(&|r| *r.uri_mut() = format!("{}/push/unknown", origins[0]).parse().unwrap());
        expect(
            send(&client, &unknown).await,
            404,
            "NotFound",
            Verdict::InvalidDevice { since: None },
        );
        let no_auth = with(&|r| {
            r.headers_mut().remove("authorization");
        });
        expect(
            send(&client, &no_auth).await,
            401,
            "MissingAuthorization",
            Verdict::Reauthenticate,
        );
        let wrong_aud = request(
            &subscription.json,
            &message("m"),
            &authorization(&mut other_origin),
        );
        expect(
            send(&client, &wrong_aud).await,
            401,
            "BadJwtAudience",
            Verdict::Reauthenticate,
        );
        let mismatch = request(
            &subscription.json,
            &message("m"),
            &authorization(&mut other_signer),
        );
        expect(
            send(&client, &mismatch).await,
            403,
            "VapidPkHashMismatch",
            Verdict::ClientError,
        );
        let mismatch = request(&other_key.json, &message("m"), &auth);
        expect(
            send(&client, &mismatch).await,
            403,
            "VapidPkHashMismatch",
            Verdict::ClientError,
        );
        let gone = request(&gone.json, &message("m"), &auth);
        expect(
            send(&client, &gone).await,
            410,
            "Unregistered",
            Verdict::InvalidDevice { since: None },
        );
        let no_ttl = with(&|r| {
            r.headers_mut().remove("ttl");
        });
        expect(
            send(&client, &no_ttl).await,
            400,
            "BadTtl",
            Verdict::Rejected,
        );
        let urgency = with(&|r| {
            r.headers_mut().insert("urgency", "urgent".parse().unwrap());
        });
        expect(
            send(&client, &urgency).await,
            400,
            "BadUrgency",
            Verdict::Rejected,
        );
        let topic = with(&|r| {
            r.headers_mut().insert("topic", "a/b".parse().unwrap());
        });
        expect(
            send(&client, &topic).await,
            400,
            "BadWebPushTopic",
            Verdict::Rejected,
        );
        let encoding = with(&|r| {
            r.headers_mut()
                .insert("content-encoding", "aesgcm".parse().unwrap());
        });
        expect(
            send(&client, &encoding).await,
            415,
            "UnsupportedContentEncoding",
            Verdict::Rejected,
        );
        let large = with(&|r| *r.body_mut() = Bytes::from(vec![1; 4097]));
        expect(
            send(&client, &large).await,
            413,
            "PayloadTooLarge",
            Verdict::PayloadTooLarge,
        );
        let mangled = with(&|r| {
            let mut body = r.body().to_vec();
            let last = body.len() - 1;
            body[last] ^= 1;
            *r.body_mut() = body.into();
        });
        expect(
            send(&client, &mangled).await,
            400,
            "DecryptionFailed",
            Verdict::Rejected,
        );
        let empty = with(&|r| {
            *r.body_mut() = Bytes::new();
            r.headers_mut().remove("content-encoding");
        });
        assert_eq!(send(&client, &empty).await.status, 201);
        // The token expires on the mock's clock.
        mock.advance_clock(Duration::from_secs(13 * 3600));
        expect(
            send(&client, &valid).await,
            401,
            "ExpiredJwtToken",
            Verdict::Reauthenticate,
        );
    });
    let delivered = mock.delivered();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].plaintext.is_empty());
    assert_eq!(mock.total_responses(), 15);
    let answers = mock.responses();
    assert_eq!(
        (
            answers[0].subscription.as_ref(),
            answers[1].subscription.as_ref()
        ),
        (None, None)
    );
    assert_eq!(
        answers[2].subscription.as_deref(),
        Some(subscription.id.as_str())
    );
}

#[test]
fn seeded_faults_quota_and_outages_ask_to_retry() {
    let options = WebPushOptions::new()
        .origins(1)
        .seeded_faults(0.5, 0.5, 3, 17);
    let (certs, mock) = start(options);
    let subscription = mock.subscribe(0);
    let mut good = credential(VAPID_PRIVATE, &mock.origins()[0]);
    let valid = request(&subscription.json, &message("m"), &authorization(&mut good));
    let statuses = run(async {
        let client = connect(&mock, 0, &certs).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let answer = send(&client, &valid).await;
            assert_eq!(answer.retry_after(), Some("17"));
            let seventeen = Some(Duration::from_secs(17));
            match verdict(&answer) {
                // 429: the origin's rate controller slows down.
                Verdict::Throttled { retry_after } => {
                    assert_eq!((answer.status, retry_after), (429, seventeen));
                }
                Verdict::Retry { retry_after, .. } => {
                    assert_eq!((answer.status, retry_after), (503, seventeen));
                }
                other => panic!("{other:?}"),
            }
            statuses.push(answer.status);
        }
        statuses
    });
    assert!(
        statuses.contains(&503) && statuses.contains(&429),
        "{statuses:?}"
    );
    assert_eq!(mock.total_delivered(), 0);

    let (certs, mock) = start(
        WebPushOptions::new()
            .origins(2)
            .quota(2, Duration::from_secs(600)),
    );
    let subscription = mock.subscribe(1);
    let mut good = credential(VAPID_PRIVATE, &mock.origins()[1]);
    let valid = request(&subscription.json, &message("m"), &authorization(&mut good));
    run(async {
        let client = connect(&mock, 1, &certs).await;
        assert_eq!(send(&client, &valid).await.status, 201);
        assert_eq!(send(&client, &valid).await.status, 201);
        let limited = send(&client, &valid).await;
        assert_eq!(
            (limited.status, reason(&limited).as_str()),
            (429, "TooManyRequests")
        );
        let wait: u64 = limited.retry_after().unwrap().parse().unwrap();
        assert!((599..=600).contains(&wait), "{wait}");

        mock.set_down(1, true);
        let down = send(&client, &valid).await;
        assert_eq!((down.status, down.retry_after()), (503, None));
        mock.set_down(1, false);
        assert_eq!(send(&client, &valid).await.status, 429, "still over quota");
    });
    assert_eq!(mock.delivered_count(&subscription.endpoint), 2);
    assert_eq!(
        mock.status_counts(),
        HashMap::from([(201, 2), (429, 2), (503, 1)])
    );
}

/// A tiny transport: drives push-proto's Web Push sender over one `h2` connection to the
/// mock until every message is reported.
async fn drive(
    sender: &mut webpush::Sender<usize>,
    client: &common::fcm::Client,
) -> Vec<webpush::Report<usize>> {
    let mut reports = Vec::new();
    let deadline = Instant::now() + SAFETY;
    while !sender.is_idle() {
        assert!(Instant::now() < deadline, "the sender finishes");
        let now = Instant::now();
        match sender.poll_action(now) {
            Some(Action::Dial(conn)) => sender.handle(
                Input::Connected {
                    conn,
                    max_streams: 100,
                },
                now,
            ),
            Some(Action::Send { id, request, .. }) => {
                let answer = send(client, &request).await;
                let mut response = http::Response::builder().status(answer.status);
                for (name, value) in &answer.headers {
                    response = response.header(name, value);
                }
                let response = response.body(answer.body).unwrap();
                sender.handle(Input::Response { id, response }, Instant::now());
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                reports.extend(std::iter::from_fn(|| sender.poll_outcome()));
                while sender.poll_event().is_some() {}
                if let Some(at) = sender.poll_timeout() {
                    smol::Timer::at(at).await;
                    sender.handle_timeout(Instant::now());
                }
            }
        }
    }
    reports
}

#[test]
fn push_protos_sender_through_the_mock_one_report_each_decrypted_once() {
    let (certs, mock) = start(restricted().origins(1));
    let minted: Vec<_> = (0..20).map(|_| mock.subscribe(0)).collect();
    for gone in minted.iter().step_by(10) {
        mock.expire(&gone.endpoint);
    }
    let origin = mock.origins()[0].clone();
    let mut sender = webpush::sender(
        webpush::Config::default(),
        credential(VAPID_PRIVATE, &origin),
    )
    .unwrap();
    let now = Instant::now();
    for (tag, subscription) in minted.iter().enumerate() {
        let subscription = Subscription::from_json(&subscription.json).unwrap();
        sender
            .queue(subscription, message(&format!("n{tag}")), tag, now)
            .unwrap();
    }
    let mut reports = run(async {
        let client = connect(&mock, 0, &certs).await;
        drive(&mut sender, &client).await
    });
    reports.sort_by_key(|report| report.outcome.tag);
    assert_eq!(reports.len(), 20);
    for (tag, report) in reports.iter().enumerate() {
        assert_eq!(report.outcome.tag, tag);
        if tag % 10 == 0 {
            assert_eq!(
                report.outcome.error.as_ref().map(|e| e.code()),
                Some("invalid_device")
            );
            assert_eq!(report.reason.as_deref(), Some("Unregistered"));
        } else {
            assert_eq!(report.outcome.error, None);
            assert!(
                report
                    .id
                    .as_deref()
                    .unwrap()
                    .starts_with(&format!("{origin}/message/"))
            );
            assert_eq!(mock.delivered_count(&minted[tag].endpoint), 1);
        }
    }
    let delivered = mock.delivered();
    assert_eq!(delivered.len(), 18);
    let by_subscription: HashMap<_, _> = delivered
        .iter()
        .map(|d| (d.subscription.clone(), d.plaintext.clone()))
        .collect();
    for (tag, minted) in minted.iter().enumerate().filter(|(tag, _)| tag % 10 != 0) {
        let expected = format!(r#"{{"body":"n{tag}","title":"Hi"}}"#);
        assert_eq!(by_subscription[&minted.id], expected.as_bytes());
    }
    let stats: engine::Stats = sender.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.token_refreshes),
        (18, 2, 1)
    );
    assert!(mock.wait_for_delivered(18, SAFETY));
}
