//! The FCM mock's HTTP v1 API, driven by an `h2` client over futures-rustls (through
//! tokio-util's compatibility layer) on smol, with access tokens from its token endpoint.

mod common;

use std::time::Duration;

use common::SAFETY;
use common::fcm::*;
use http::Method;
use push_mock::{Certificates, FcmOptions, FcmScript, FcmTarget, MockFcm};
use serde_json::{Value, json};

fn start(options: FcmOptions) -> (Certificates, MockFcm) {
    let certs = Certificates::generate().unwrap();
    let mock = MockFcm::start(options, &certs).unwrap();
    (certs, mock)
}

fn demo() -> FcmOptions {
    FcmOptions::demo(PROJECT).unwrap()
}

#[test]
fn delivers_a_valid_message_and_records_it() {
    let (certs, mock) = start(demo());
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let answer = client.send_json(&token, &message("device-1")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.json(),
            json!({"name": format!("projects/{PROJECT}/messages/0:1%mock")})
        );
        let topic = json!({"message": {"topic": "news", "notification": {"title": "t"}}});
        assert_eq!(client.send_json(&token, &topic).await.status, 200);
    });
    let delivered = mock.delivered();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].target, FcmTarget::Token("device-1".into()));
    assert_eq!(delivered[0].message, message("device-1")["message"]);
    assert_eq!(delivered[0].connection, 0);
    assert_eq!(delivered[1].target, FcmTarget::Topic("news".into()));
    assert_eq!(mock.delivered_count("device-1"), 1);
    assert_eq!(mock.delivered_counts().len(), 1);
    assert_eq!((mock.total_delivered(), mock.total_responses()), (2, 2));
    assert_eq!(mock.statuses(), vec![200, 200]);
    assert_eq!(mock.responses()[0].token.as_deref(), Some("device-1"));
    assert_eq!(mock.connections(), 1);
    assert!(mock.wait_for_delivered(2, SAFETY));
}

#[test]
fn each_invalid_request_gets_fcms_error() {
    let (certs, mock) = start(demo());
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let path = format!("/v1/projects/{PROJECT}/messages:send");
        let answer = client.send(client.request(Method::GET, &path), b"").await;
        assert_eq!(answer.status, 405);
        assert_eq!(answer.headers["allow"], "POST");
        for path in ["/v1/projects/other/messages:send", "/v1/messages:send"] {
            let request = client
                .request(Method::POST, path)
                .header("authorization", format!("Bearer {token}"));
            let answer = client.send(request, b"{}").await;
            assert_eq!(answer.status, 404, "{path}");
            assert_eq!(answer.json()["error"]["status"], "NOT_FOUND");
        }
        let unauthenticated = json!({"error": {"code": 401,
            "message": "Request had invalid authentication credentials.",
            "status": "UNAUTHENTICATED"}});
        let no_auth = client
            .request(Method::POST, &path)
            .header("content-type", "application/json");
        let body = message("d").to_string();
        let answer = client.send(no_auth, body.as_bytes()).await;
        assert_eq!(
            (answer.status, answer.json()),
            (401, unauthenticated.clone())
        );
        let answer = client.send_json("ya29.made-up", &message("d")).await;
        assert_eq!((answer.status, answer.json()), (401, unauthenticated));
        let text = client
            .request(Method::POST, &path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/plain");
        let answer = client.send(text, body.as_bytes()).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.error_code().as_deref(), Some("INVALID_ARGUMENT"));
        let answer = client.send(client.post(&token), b"{not json").await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");

        let bad_token = client.send_json(&token, &message("a b")).await;
        assert_eq!(
            bad_token.json(),
            json!({"error": {
                "code": 400,
                "message": "The registration token is not a valid FCM registration token",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                     "errorCode": "INVALID_ARGUMENT"},
                    {"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"field": "message.token",
                        "description": "The registration token is not a valid FCM registration token"}]},
                ],
            }})
        );
        let big = "x".repeat(5000);
        let cases: [(Value, &str); 9] = [
            (json!({"message": {"data": {"k": "v"}}}), "message"),
            (json!({"message": {"token": "a", "topic": "b"}}), "message"),
            (json!({"message": {"token": ""}}), "message.token"),
            (
                json!({"message": {"token": "a", "data": {"n": 1}}}),
                "message.data.n",
            ),
            (
                json!({"message": {"token": "a", "android": {"priority": "URGENT"}}}),
                "message.android.priority",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "29d"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "2419201s"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a"}, "validate_only": 1}),
                "validate_only",
            ),
            (
                json!({"message": {"token": "a", "data": {"k": big}}}),
                "message",
            ),
        ];
        for (body, field) in &cases {
            let answer = client.send_json(&token, body).await;
            assert_eq!(answer.status, 400, "{body}");
            assert_eq!(answer.error_code().as_deref(), Some("INVALID_ARGUMENT"));
            assert_eq!(answer.field().as_deref(), Some(*field), "{body}");
        }
        let too_big = client.send_json(&token, &cases[8].0).await;
        assert_eq!(too_big.json()["error"]["message"], "Message is too big");
    });
    assert_eq!(mock.total_delivered(), 0);
    let counts = mock.status_counts();
    assert_eq!(counts[&401], 2);
    assert_eq!(counts[&400], 13);
    assert_eq!(mock.total_responses(), 18);
    assert_eq!(
        mock.responses().last().unwrap().error_code.as_deref(),
        Some("INVALID_ARGUMENT")
    );
}

#[test]
fn validate_only_is_answered_but_not_delivered() {
    let (certs, mock) = start(demo());
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let mut body = message("device-1");
        body["validate_only"] = true.into();
        let answer = client.send_json(&token, &body).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.json()["name"]
                .as_str()
                .unwrap()
                .starts_with("projects/")
        );
    });
    assert_eq!((mock.validated(), mock.total_delivered()), (1, 0));
    assert!(mock.delivered().is_empty());
    assert!(mock.responses()[0].validate_only);
}

#[test]
fn revoked_and_expired_access_tokens_get_401_until_a_new_one() {
    let (certs, mock) = start(demo());
    let first = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        assert_eq!(client.send_json(&first, &message("d")).await.status, 200);
        mock.revoke_access_tokens();
        assert_eq!(client.send_json(&first, &message("d")).await.status, 401);
        let second = access_token(&mock, &certs);
        assert_ne!(first, second);
        assert_eq!(client.send_json(&second, &message("d")).await.status, 200);
        assert_eq!(client.send_json(&first, &message("d")).await.status, 401);
    });
    assert_eq!(mock.statuses(), vec![200, 401, 200, 401]);
    assert_eq!(mock.access_tokens_issued(), 2);

    // Tokens that live 0 seconds are expired when first used.
    let (certs, mock) = start(demo().expires_in(0));
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        assert_eq!(client.send_json(&token, &message("d")).await.status, 401);
    });
}

#[test]
fn scripts_answer_their_error_codes() {
    let options = demo()
        .seeded_faults(0.0, 0.0, 0, 11)
        .script("gone", FcmScript::Unregistered)
        .script("other-sender", FcmScript::SenderIdMismatch)
        .script(
            "bad",
            FcmScript::InvalidArgument {
                field: "message.apns.payload".into(),
                description: "Invalid APNs payload".into(),
            },
        )
        .script(
            "busy",
            FcmScript::QuotaExceeded {
                retry_after_secs: 9,
                first: 1,
            },
        )
        .script("flaky", FcmScript::Unavailable { first: 2 })
        .script("broken", FcmScript::Internal { first: 1 })
        .script("apns-auth", FcmScript::ThirdPartyAuthError)
        .script(
            "odd",
            FcmScript::ErrorCode {
                status: 500,
                error_code: "UNSPECIFIED_ERROR".into(),
                first: None,
            },
        );
    let (certs, mock) = start(options);
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let expect = [
            ("gone", 404, "NOT_FOUND", "UNREGISTERED", None),
            (
                "other-sender",
                403,
                "PERMISSION_DENIED",
                "SENDER_ID_MISMATCH",
                None,
            ),
            ("bad", 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", None),
            (
                "busy",
                429,
                "RESOURCE_EXHAUSTED",
                "QUOTA_EXCEEDED",
                Some("9"),
            ),
            ("flaky", 503, "UNAVAILABLE", "UNAVAILABLE", Some("11")),
            ("flaky", 503, "UNAVAILABLE", "UNAVAILABLE", Some("11")),
            ("broken", 500, "INTERNAL", "INTERNAL", None),
            (
                "apns-auth",
                401,
                "UNAUTHENTICATED",
                "THIRD_PARTY_AUTH_ERROR",
                None,
            ),
            ("odd", 500, "INTERNAL", "UNSPECIFIED_ERROR", None),
            ("odd", 500, "INTERNAL", "UNSPECIFIED_ERROR", None),
            ("gone", 404, "NOT_FOUND", "UNREGISTERED", None),
        ];
        for (device, status, rpc, code, retry_after) in expect {
            let answer = client.send_json(&token, &message(device)).await;
            assert_eq!(answer.status, status, "{device}");
            assert_eq!(answer.json()["error"]["status"], rpc, "{device}");
            assert_eq!(answer.error_code().as_deref(), Some(code), "{device}");
            assert_eq!(answer.retry_after(), retry_after, "{device}");
        }
        let bad = client.send_json(&token, &message("bad")).await;
        assert_eq!(bad.field().as_deref(), Some("message.apns.payload"));
        for device in ["busy", "flaky", "broken"] {
            let answer = client.send_json(&token, &message(device)).await;
            assert_eq!(answer.status, 200, "{device}");
        }
    });
    assert_eq!(mock.total_delivered(), 3);
    assert_eq!(mock.delivered_count("flaky"), 1);
    assert_eq!(mock.delivered_count("gone"), 0);
    let codes: Vec<_> = mock
        .responses()
        .iter()
        .map(|a| a.error_code.clone())
        .collect();
    assert_eq!(codes[0].as_deref(), Some("UNREGISTERED"));
}

/// The status and `Retry-After` of `n` sequential sends to a mock with seeded faults.
fn fault_pattern(seed: u64, n: usize) -> Vec<(u16, Option<String>)> {
    let (certs, mock) = start(demo().seeded_faults(0.3, 0.2, seed, 5));
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let mut pattern = Vec::new();
        for i in 0..n {
            let answer = client.send_json(&token, &message(&format!("d{i}"))).await;
            if answer.status != 200 {
                let code = answer.error_code().unwrap();
                let expected = if answer.status == 503 {
                    "UNAVAILABLE"
                } else {
                    "QUOTA_EXCEEDED"
                };
                assert_eq!(code, expected);
            }
            pattern.push((answer.status, answer.retry_after().map(str::to_owned)));
        }
        pattern
    })
}

#[test]
fn seeded_faults_are_deterministic_and_carry_retry_after() {
    let pattern = fault_pattern(7, 60);
    assert_eq!(pattern, fault_pattern(7, 60));
    assert_ne!(pattern, fault_pattern(8, 60));
    let count = |status| pattern.iter().filter(|(s, _)| *s == status).count();
    assert!((8..=30).contains(&count(503)), "{pattern:?}");
    assert!((4..=24).contains(&count(429)), "{pattern:?}");
    assert_eq!(count(503) + count(429) + count(200), 60);
    for (status, retry_after) in &pattern {
        let expected = (*status != 200).then(|| "5".to_owned());
        assert_eq!(retry_after, &expected);
    }
}

#[test]
fn streams_overlap_up_to_the_limit() {
    let options = demo()
        .max_concurrent_streams(4)
        .latency(Duration::from_millis(100));
    let (certs, mock) = start(options);
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        // One request first: the client then knows the server's SETTINGS (its stream limit).
        assert_eq!(
            client.send_json(&token, &message("first")).await.status,
            200
        );
        let bodies: Vec<Value> = (0..12).map(|i| message(&format!("d{i}"))).collect();
        let tasks: Vec<_> = bodies
            .iter()
            .map(|body| client.send_json(&token, body))
            .collect();
        for answer in join_all(tasks).await {
            assert_eq!(answer.status, 200);
        }
    });
    assert_eq!(mock.total_delivered(), 13);
    let seen = mock.max_concurrent_seen();
    assert!((2..=4).contains(&seen), "{seen}");
}

#[test]
fn goaway_after_answers_and_count_only() {
    let (certs, mock) = start(demo().goaway_after(2).count_only(true));
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        for i in 0..2 {
            let answer = client.send_json(&token, &message(&format!("d{i}"))).await;
            assert_eq!(answer.status, 200);
        }
        // A new connection after the GOAWAY.
        let client = connect(&mock, &certs).await;
        assert_eq!(client.send_json(&token, &message("d")).await.status, 200);
    });
    assert!(mock.wait_for_goaways(1, SAFETY));
    assert_eq!(mock.goaways_sent(), 1);
    assert_eq!(mock.connections(), 2);
    assert_eq!(mock.total_delivered(), 3);
    assert!(mock.delivered().is_empty() && mock.statuses().is_empty());
    assert_eq!(mock.status_counts()[&200], 3);
}

#[test]
fn shutdown_closes_both_listeners_and_keeps_the_records() {
    let (certs, mut mock) = start(demo());
    let token = access_token(&mock, &certs);
    let mut oauth = common::tls(mock.token_addr(), certs.client_config(false).unwrap());
    run(async {
        let client = connect(&mock, &certs).await;
        assert_eq!(client.send_json(&token, &message("d")).await.status, 200);
        mock.shutdown();
        mock.shutdown();
        let body = message("d").to_string();
        assert!(
            client
                .try_send(client.post(&token), body.as_bytes())
                .await
                .is_err()
        );
    });
    // The kept-alive token connection was closed too.
    let (bytes, _) = common::read_to_close(&mut oauth);
    assert!(bytes.is_empty());
    assert_eq!(
        (mock.total_delivered(), mock.access_tokens_issued()),
        (1, 1)
    );
}

#[test]
fn a_project_quota_answers_quota_exceeded_with_the_wait() {
    let (certs, mock) = start(demo().quota(2, Duration::from_secs(90)));
    let token = access_token(&mock, &certs);
    run(async {
        let client = connect(&mock, &certs).await;
        let mut answers = Vec::new();
        for i in 0..4 {
            let answer = client.send_json(&token, &message(&format!("d{i}"))).await;
            let refused = (answer.status == 429).then(|| {
                let wait: u64 = answer.retry_after().unwrap().parse().unwrap();
                assert!((89..=90).contains(&wait), "{wait}");
                answer.error_code().unwrap()
            });
            answers.push((answer.status, refused));
        }
        let quota = Some("QUOTA_EXCEEDED".to_owned());
        assert_eq!(
            answers,
            [(200, None), (200, None), (429, quota.clone()), (429, quota)]
        );
    });
    assert_eq!(mock.total_delivered(), 2);
}
