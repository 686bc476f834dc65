//! The GCM mock, driven by a tiny blocking HTTP/1.1 client.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use push_mock::{Certificates, GcmOptions, MockGcm, TokenScript};
use push_proto::gcm::RequestBody;
use serde_json::json;

const AUTH: &str = "key=test-api-key";

fn body(ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({"registration_ids": ids, "data": {"k": "v"}, "time_to_live": 60}))
        .unwrap()
}

fn connect(gcm: &MockGcm) -> TcpStream {
    tcp(gcm.addr())
}

#[test]
fn endpoint_is_plain_http_on_loopback() {
    let gcm = MockGcm::start(GcmOptions::default()).unwrap();
    assert_eq!(
        gcm.endpoint(),
        format!("http://127.0.0.1:{}/gcm/send", gcm.addr().port())
    );
}

#[test]
fn unauthorized_without_the_right_key() {
    let gcm = MockGcm::start(GcmOptions::default()).unwrap();
    let mut conn = connect(&gcm);
    for auth in [None, Some("key=wrong"), Some("test-api-key")] {
        let response = http(&mut conn, "POST", "/gcm/send", auth, &body(&["a"]));
        assert_eq!(response.status, 401, "{auth:?}");
        assert!(!response.body.is_empty());
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
    }
    assert!(gcm.delivered().is_empty());
    assert_eq!(gcm.requests(), 3);
    // Keep-alive: one connection for all of them.
    assert_eq!(gcm.connections(), 1);
}

#[test]
fn bad_requests() {
    let gcm = MockGcm::start(GcmOptions::default()).unwrap();
    let mut conn = connect(&gcm);
    let response = http(&mut conn, "POST", "/gcm/send", Some(AUTH), b"{not json");
    assert_eq!(response.status, 400);
    assert!(
        response.text().starts_with("JSON_PARSING_ERROR"),
        "{}",
        response.text()
    );
    let response = http(&mut conn, "POST", "/gcm/send", Some(AUTH), &body(&[]));
    assert_eq!(response.status, 400);
    let response = http(
        &mut conn,
        "POST",
        "/gcm/send",
        Some(AUTH),
        b"{\"to\":\"x\"}",
    );
    assert_eq!(response.status, 400);
    let ids: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = http(&mut conn, "POST", "/gcm/send", Some(AUTH), &body(&refs));
    assert_eq!(response.status, 400);
    assert_eq!(
        http(&mut conn, "GET", "/gcm/send", Some(AUTH), b"").status,
        405
    );
    assert_eq!(
        http(&mut conn, "POST", "/other", Some(AUTH), b"").status,
        404
    );
    // A thousand is fine.
    let response = http(
        &mut conn,
        "POST",
        "/gcm/send",
        Some(AUTH),
        &body(&refs[..1000]),
    );
    assert_eq!(response.status, 200);
    assert_eq!(gcm.max_batch(), 1000);
    assert_eq!(gcm.statuses(), vec![400, 400, 400, 400, 405, 404, 200]);
}

#[test]
fn every_token_script() {
    let options = GcmOptions::new("secret")
        .script("canon", TokenScript::Canonical("canon2".into()))
        .script("gone", TokenScript::NotRegistered)
        .script("junk", TokenScript::InvalidRegistration)
        .script("other", TokenScript::MismatchSenderId)
        .script("big", TokenScript::Error("MessageTooBig".into()))
        .script("busy", TokenScript::UnavailableFirst(2));
    let gcm = MockGcm::start(options).unwrap();
    let mut conn = connect(&gcm);
    let ids = ["ok", "canon", "gone", "junk", "other", "big", "busy", ""];
    let response = http(
        &mut conn,
        "POST",
        "/gcm/send",
        Some("key=secret"),
        &body(&ids),
    );
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let json = response.json();
    assert_eq!(json["success"], 2);
    assert_eq!(json["failure"], 6);
    assert_eq!(json["canonical_ids"], 1);
    assert!(json["multicast_id"].is_i64() || json["multicast_id"].is_u64());
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), ids.len());
    assert!(results[0]["message_id"].is_string());
    assert!(results[0].get("registration_id").is_none());
    assert!(results[1]["message_id"].is_string());
    assert_eq!(results[1]["registration_id"], "canon2");
    let errors: Vec<&str> = results[2..]
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "NotRegistered",
            "InvalidRegistration",
            "MismatchSenderId",
            "MessageTooBig",
            "Unavailable",
            "MissingRegistration"
        ]
    );
    // push-proto's parser agrees.
    let verdicts = push_proto::gcm::parse_results(&response.body, &ids, None).unwrap();
    assert_eq!(verdicts.len(), ids.len());

    // "busy" is unavailable twice, then delivered.
    let again = |conn: &mut TcpStream| {
        let response = http(
            conn,
            "POST",
            "/gcm/send",
            Some("key=secret"),
            &body(&["busy"]),
        );
        response.json()["results"][0].clone()
    };
    assert_eq!(again(&mut conn)["error"], "Unavailable");
    assert!(again(&mut conn)["message_id"].is_string());
    assert!(again(&mut conn)["message_id"].is_string());

    let delivered = gcm.delivered();
    assert_eq!(delivered.get("ok"), Some(&1));
    assert_eq!(delivered.get("canon"), Some(&1));
    assert_eq!(delivered.get("busy"), Some(&2));
    assert_eq!(delivered.get("gone"), None);
    assert_eq!(gcm.requests(), 4);
    assert_eq!(gcm.max_batch(), ids.len());
    let last: RequestBody = gcm.last_request_body().unwrap();
    assert_eq!(last.registration_ids, vec!["busy".to_owned()]);
    assert_eq!(last.message.time_to_live(), Some(60));
}

/// Which of `n` single-token requests got a 503.
fn unavailable_pattern(options: GcmOptions, n: usize) -> Vec<bool> {
    let gcm = MockGcm::start(options).unwrap();
    let mut conn = connect(&gcm);
    (0..n)
        .map(|_| {
            let response = http(&mut conn, "POST", "/gcm/send", Some(AUTH), &body(&["t"]));
            match response.status {
                503 => {
                    assert_eq!(response.header("retry-after"), Some("7"));
                    true
                }
                200 => false,
                other => panic!("unexpected status {other}"),
            }
        })
        .collect()
}

#[test]
fn seeded_unavailable_rate() {
    let options = |seed| GcmOptions {
        unavailable_rate: 0.3,
        retry_after_secs: 7,
        seed,
        ..GcmOptions::default()
    };
    let first = unavailable_pattern(options(11), 300);
    let count = first.iter().filter(|u| **u).count();
    assert!((60..=120).contains(&count), "{count} of 300");
    assert_eq!(unavailable_pattern(options(11), 300), first);
    assert_ne!(unavailable_pattern(options(12), 300), first);
    let never = GcmOptions {
        unavailable_rate: 0.0,
        ..options(11)
    };
    assert!(unavailable_pattern(never, 50).iter().all(|u| !u));
    let always = GcmOptions {
        unavailable_rate: 1.0,
        ..options(11)
    };
    assert!(unavailable_pattern(always, 50).iter().all(|u| *u));
}

#[test]
fn latency_delays_answers() {
    let gcm = MockGcm::start(GcmOptions {
        latency: Some(Duration::from_millis(50)),
        ..GcmOptions::default()
    })
    .unwrap();
    let mut conn = connect(&gcm);
    let started = std::time::Instant::now();
    assert_eq!(
        http(&mut conn, "POST", "/gcm/send", Some(AUTH), &body(&["a"])).status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn https_with_the_test_ca() {
    let certs = Certificates::generate().unwrap();
    let gcm = MockGcm::start(GcmOptions {
        tls: Some(certs.clone()),
        ..GcmOptions::default()
    })
    .unwrap();
    assert_eq!(
        gcm.endpoint(),
        format!("https://localhost:{}/gcm/send", gcm.addr().port())
    );
    let mut conn = tls(gcm.addr(), certs.client_config(false).unwrap());
    for _ in 0..3 {
        let response = http(
            &mut conn,
            "POST",
            "/gcm/send",
            Some(AUTH),
            &body(&["a", "b"]),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["success"], 2);
    }
    close(conn);
    assert_eq!(gcm.delivered().get("a"), Some(&3));
    assert_eq!(gcm.connections(), 1);

    // A client trusting another CA is refused.
    let stranger = Certificates::generate().unwrap();
    assert!(try_tls(gcm.addr(), stranger.client_config(false).unwrap()).is_err());
}

#[test]
fn concurrent_clients() {
    let gcm = MockGcm::start(GcmOptions::default()).unwrap();
    let addr = gcm.addr();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut conn = tcp(addr);
                for _ in 0..25 {
                    let token = format!("t{i}");
                    let response =
                        http(&mut conn, "POST", "/gcm/send", Some(AUTH), &body(&[&token]));
                    assert_eq!(response.status, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(gcm.requests(), 100);
    assert!(gcm.wait_for_answers(100, SAFETY));
    assert_eq!(gcm.delivered().values().sum::<usize>(), 100);
    assert_eq!(gcm.connections(), 4);
}
