//! Dispatcher tests: routing, per-device errors, sessions, and both providers in one loop.

use std::time::Duration;

use super::*;
use crate::apns::http2;
use crate::apns::{ErrorResponse, Frame, Status};
use crate::gcm::RequestBody;

fn apns_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn both() -> Push {
    let gcm = gcm::Config::new("test-key");
    Push::new()
        .with_apns(GatewayConfig::default())
        .with_gcm(gcm, MessageOptions::default())
        .unwrap()
}

fn feedback(push: &mut Push) -> Vec<(String, Option<&'static str>, Option<String>)> {
    std::iter::from_fn(|| push.poll_feedback())
        .map(|(_, f)| {
            (
                f.device.token,
                f.error.as_ref().map(DeviceError::code),
                f.new_token,
            )
        })
        .collect()
}

#[test]
fn devices_without_a_provider_or_with_bad_tokens_get_feedback_not_silence() {
    let mut push = Push::new().with_apns(GatewayConfig::default());
    let session = push.open_session(&Payload::new().body("Hi"));
    let now = Instant::now();
    push.push(session, Device::android("tok"), now).unwrap();
    push.push(session, Device::ios("xyz"), now).unwrap();
    assert_eq!(
        feedback(&mut push),
        [
            ("tok".into(), Some("no_provider"), None),
            ("xyz".into(), Some("invalid_token_format"), None)
        ]
    );
    push.close_session(session);
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    assert!(push.is_idle());
}

#[test]
fn a_payload_one_platform_cannot_carry_fails_only_that_platform() {
    let mut push = both();
    let session = push.open_session(&Payload::new().body("Hi").data("aps", 1));
    let now = Instant::now();
    push.push(session, Device::ios(apns_token(1)), now).unwrap();
    push.push(session, Device::android("tok"), now).unwrap();
    assert_eq!(
        feedback(&mut push),
        [(apns_token(1), Some("invalid_payload"), None)]
    );
    assert_eq!(push.outstanding(session), 1, "the android device is queued");
}

#[test]
fn pushing_into_a_closed_session_is_reported() {
    let mut push = both();
    let session = push.open_session(&Payload::new().body("Hi"));
    push.close_session(session);
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    push.push(session, Device::android("tok"), Instant::now())
        .unwrap();
    assert_eq!(
        feedback(&mut push),
        [("tok".into(), Some("rejected"), None)]
    );
}

#[test]
fn a_full_provider_queue_hands_the_device_back() {
    let config = GatewayConfig {
        max_pending: 1,
        ..GatewayConfig::default()
    };
    let mut push = Push::new().with_apns(config);
    let session = push.open_session(&Payload::new().body("Hi"));
    let now = Instant::now();
    push.push(session, Device::ios(apns_token(1)), now).unwrap();
    let Err(Full(device)) = push.push(session, Device::ios(apns_token(2)), now) else {
        panic!("expected Full");
    };
    assert_eq!(device, Device::ios(apns_token(2)));
    assert_eq!(push.outstanding(session), 1);
}

/// One loop driving both providers against scripted servers: APNs rejects token 2, GCM
/// answers with a canonical id and a NotRegistered.
#[test]
fn one_loop_drives_both_providers_to_one_feedback_per_device() {
    let mut push = both();
    let session = push.open_session(&Payload::new().title("T").body("B"));
    let mut now = Instant::now();
    for n in 1..=3 {
        push.push(session, Device::ios(apns_token(n)), now).unwrap();
    }
    for token in ["a", "b", "c"] {
        push.push(session, Device::android(token), now).unwrap();
    }
    push.close_session(session);

    let mut apns_out = Vec::new();
    let mut finished = false;
    for _ in 0..100 {
        while let Some(action) = push.poll_action(now, &mut apns_out) {
            match action {
                Action::ApnsConnect => push.handle_apns_connected(now),
                Action::ApnsClose => push.handle_apns_closed(now),
                Action::ApnsWrite => {
                    let mut rest = &apns_out[..];
                    while let Some((frame, used)) = Frame::decode(rest).unwrap() {
                        rest = &rest[used..];
                        if frame.token.to_hex() == apns_token(2) {
                            let identifier = frame.identifier.unwrap();
                            let response = ErrorResponse {
                                status: Status::InvalidToken,
                                identifier,
                            };
                            push.handle_apns_input(now, &response.encode());
                            break;
                        }
                    }
                    apns_out.clear();
                    push.handle_apns_written(now);
                }
                Action::Http(Route::Gcm, engine::Action::Dial(conn)) => {
                    let connected = engine::Input::Connected {
                        conn,
                        max_streams: 1,
                    };
                    push.handle_http(Route::Gcm, connected, now);
                }
                Action::Http(Route::Gcm, engine::Action::Send { id, request, .. }) => {
                    assert_eq!(request.headers()["authorization"], "key=test-key");
                    let body: RequestBody = serde_json::from_slice(request.body()).unwrap();
                    assert_eq!(body.registration_ids, ["a", "b", "c"]);
                    let results = r#"{"multicast_id":1,"success":2,"failure":1,"canonical_ids":1,"results":[
                        {"message_id":"1"},{"message_id":"2","registration_id":"b2"},{"error":"NotRegistered"}]}"#;
                    let response = http::Response::new(Bytes::from(results));
                    push.handle_http(Route::Gcm, engine::Input::Response { id, response }, now);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        while let Some(event) = push.poll_event() {
            finished |= event == Event::SessionFinished(session);
        }
        if finished {
            break;
        }
        now = push
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(10));
        push.handle_timeout(now);
    }
    assert!(finished, "the session finished");
    let mut results = feedback(&mut push);
    results.sort();
    assert_eq!(
        results,
        [
            (apns_token(1), None, None),
            (apns_token(2), Some("invalid_device"), None),
            (apns_token(3), None, None),
            ("a".into(), None, None),
            ("b".into(), None, Some("b2".into())),
            ("c".into(), Some("invalid_device"), None),
        ]
    );
    assert!(push.is_idle());
}

/// With the HTTP/2 provider configured, iOS devices become HTTP/2 requests and their
/// responses become feedback.
#[test]
fn ios_devices_go_through_the_http2_provider_when_configured() {
    let config = http2::Config::new(http2::PRODUCTION_URL).topic("com.example.app");
    let mut push = Push::new()
        .with_apns(GatewayConfig::default())
        .with_apns_http2(config, http2::Auth::Certificate)
        .unwrap();
    let session = push.open_session(&Payload::new().title("T").body("B"));
    let now = Instant::now();
    push.push(session, Device::ios(apns_token(1)), now).unwrap();
    push.push(session, Device::ios(apns_token(2)), now).unwrap();
    push.close_session(session);
    let mut apns_out = Vec::new();
    let mut requests = Vec::new();
    while let Some(action) = push.poll_action(now, &mut apns_out) {
        match action {
            Action::Http(Route::ApnsHttp2, engine::Action::Dial(conn)) => {
                let connected = engine::Input::Connected {
                    conn,
                    max_streams: 10,
                };
                push.handle_http(Route::ApnsHttp2, connected, now);
            }
            Action::Http(Route::ApnsHttp2, engine::Action::Send { id, request, .. }) => {
                requests.push((id, request));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(apns_out.is_empty(), "the binary gateway is not used");
    assert_eq!(requests.len(), 2);
    for (id, request) in requests {
        let path = request.uri().path().to_owned();
        assert!(path.starts_with("/3/device/"), "{path}");
        assert_eq!(request.headers()["apns-topic"], "com.example.app");
        let response = if path.ends_with(&apns_token(2)) {
            http::Response::builder()
                .status(410)
                .body(Bytes::from_static(
                    br#"{"reason":"Unregistered","timestamp":1700000000000}"#,
                ))
        } else {
            http::Response::builder()
                .status(200)
                .header("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5D")
                .body(Bytes::new())
        };
        let response = engine::Input::Response {
            id,
            response: response.unwrap(),
        };
        push.handle_http(Route::ApnsHttp2, response, now);
    }
    let mut results: Vec<_> = std::iter::from_fn(|| push.poll_feedback())
        .map(|(_, f)| {
            (
                f.device.token,
                f.error.as_ref().map(DeviceError::code),
                f.receipt,
            )
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let delivered = Receipt {
        id: Some("ec1bf194-b3b2-424a-89a9-5a918a6e6b5d".into()),
        reason: None,
        unregistered_at: None,
    };
    assert_eq!(results[0], (apns_token(1), None, delivered));
    let (token, code, receipt) = &results[1];
    assert_eq!((token, *code), (&apns_token(2), Some("invalid_device")));
    assert_eq!(receipt.reason.as_deref(), Some("Unregistered"));
    assert_eq!(receipt.unregistered_at, Some(1_700_000_000_000));
    assert!(receipt.id.is_some(), "the apns-id sent");
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    assert!(push.is_idle());
}

fn with_fcm(push: Push, now: Instant) -> Push {
    let account = crate::fcm::ServiceAccount::new(
        "demo-project",
        "push@demo-project.iam.gserviceaccount.com",
        "kid",
        include_str!("../fcm/testdata/test-only-rsa2048-a.pem"),
    );
    let auth = fcm::OAuth::from_service_account(&account, now, 1_700_000_000).unwrap();
    let options = fcm::Options::new().analytics_label("campaign");
    push.with_fcm(fcm::Config::for_account(&account), auth, options)
        .unwrap()
}

/// With FCM configured next to GCM, Android devices go through FCM: first the access token
/// from the token endpoint, then one request per device; answers become feedback.
#[test]
fn android_devices_go_through_fcm_when_configured() {
    let mut now = Instant::now();
    let mut push = with_fcm(both(), now);
    let session = push.open_session(&Payload::new().title("T").data("n", 1));
    for token in ["a", "b", "c"] {
        push.push(session, Device::android(token), now).unwrap();
    }
    push.push(session, Device::android("bad token"), now)
        .unwrap();
    push.close_session(session);
    assert_eq!(
        feedback(&mut push),
        [("bad token".into(), Some("invalid_token_format"), None)]
    );

    let mut apns_out = Vec::new();
    let mut token_requests = 0;
    let mut fcm_requests = Vec::new();
    let mut events = Vec::new();
    for _ in 0..20 {
        while let Some(action) = push.poll_action(now, &mut apns_out) {
            match action {
                Action::Http(Route::Fcm, engine::Action::CredentialRequest(request)) => {
                    token_requests += 1;
                    assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
                    let input = if token_requests == 1 {
                        engine::Input::CredentialFailure("connection reset".into())
                    } else {
                        let grant = r#"{"access_token":"ya29.t","expires_in":3600}"#;
                        engine::Input::CredentialResponse(http::Response::new(grant.into()))
                    };
                    push.handle_http(Route::Fcm, input, now);
                }
                Action::Http(Route::Fcm, engine::Action::Dial(conn)) => {
                    let connected = engine::Input::Connected {
                        conn,
                        max_streams: 10,
                    };
                    push.handle_http(Route::Fcm, connected, now);
                }
                Action::Http(Route::Fcm, engine::Action::Send { id, request, .. }) => {
                    fcm_requests.push((id, request));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for (id, request) in fcm_requests.drain(..) {
            assert_eq!(
                request.uri(),
                "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
            );
            assert_eq!(request.headers()["authorization"], "Bearer ya29.t");
            let body: fcm::SendRequest = serde_json::from_slice(request.body()).unwrap();
            assert_eq!(body.message.content.data["n"], "1");
            let answer = match body.message.token.as_str() {
                "a" => (200, r#"{"name":"projects/demo-project/messages/1"}"#),
                "b" => (503, ""),
                _ => (
                    404,
                    r#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#,
                ),
            };
            let seen = push.fcm().unwrap().stats().responses;
            let (status, body) = if seen >= 3 { (200, answer.1) } else { answer };
            let response = http::Response::builder()
                .status(status)
                .body(Bytes::from(body))
                .unwrap();
            push.handle_http(Route::Fcm, engine::Input::Response { id, response }, now);
        }
        events.extend(std::iter::from_fn(|| push.poll_event()));
        if events.contains(&Event::SessionFinished(session)) {
            break;
        }
        now = push.poll_timeout().expect("something to wait for").max(now);
        push.handle_timeout(now);
    }
    assert!(apns_out.is_empty());
    assert_eq!(token_requests, 2, "one failure, one grant");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Fcm(fcm::Event::Credential(fcm::TokenEvent::Refreshed {
            generation: 1,
            ..
        }))
    )));
    let mut results = feedback(&mut push);
    results.sort();
    assert_eq!(
        results,
        [
            ("a".into(), None, None),
            ("b".into(), None, None),
            ("c".into(), Some("invalid_device"), None),
        ]
    );
    assert_eq!(push.fcm().unwrap().stats().requests, 4, "b was retried");
    assert!(push.is_idle());
    assert!(push.gcm().unwrap().stats().requests == 0, "GCM is not used");
}

#[test]
fn a_payload_fcm_cannot_carry_fails_only_android_devices() {
    let now = Instant::now();
    let mut push = with_fcm(Push::new(), now);
    let session = push.open_session(&Payload::new().data("n", serde_json::Value::Null));
    push.push(session, Device::android("a"), now).unwrap();
    push.push(session, Device::ios(apns_token(1)), now).unwrap();
    assert_eq!(
        feedback(&mut push),
        [
            ("a".into(), Some("invalid_payload"), None),
            (apns_token(1), Some("no_provider"), None)
        ]
    );
    push.close_session(session);
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    let mut out = Vec::new();
    assert!(push.poll_action(now, &mut out).is_none(), "no token needed");
    assert!(push.is_idle());
}

/// Refused service-account credentials fail the waiting Android devices with a clear
/// `rejected` and one client-wide event.
#[test]
fn refused_fcm_credentials_fail_the_waiting_devices() {
    let now = Instant::now();
    let mut push = with_fcm(Push::new(), now);
    let session = push.open_session(&Payload::new().body("B"));
    push.push(session, Device::android("a"), now).unwrap();
    push.push(session, Device::android("b"), now).unwrap();
    push.close_session(session);
    let mut out = Vec::new();
    let Some(Action::Http(Route::Fcm, engine::Action::CredentialRequest(_))) =
        push.poll_action(now, &mut out)
    else {
        panic!("the token comes first");
    };
    // The engine dials the FCM connection while the token is fetched (the old sender only
    // waited); no request goes out before the token.
    assert!(matches!(
        push.poll_action(now, &mut out),
        Some(Action::Http(Route::Fcm, engine::Action::Dial(_)))
    ));
    assert!(
        push.poll_action(now, &mut out).is_none(),
        "sends wait for it"
    );
    let refusal = http::Response::builder()
        .status(400)
        .body(Bytes::from_static(
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        ))
        .unwrap();
    push.handle_http(Route::Fcm, engine::Input::CredentialResponse(refusal), now);
    assert_eq!(
        feedback(&mut push),
        [
            ("a".into(), Some("rejected"), None),
            ("b".into(), Some("rejected"), None)
        ]
    );
    let events: Vec<_> = std::iter::from_fn(|| push.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [
                Event::SessionFinished(_),
                Event::Fcm(fcm::Event::Credential(fcm::TokenEvent::RequestFailed {
                    retry_at: None,
                    ..
                }))
            ]
        ),
        "{events:?}"
    );
    assert!(push.is_idle());
}

/// A session's deadline ends what has not ended, once: queued, waiting for a retry, in flight
/// (whose late answer is ignored); devices pushed later fail at once; other sessions go on.
#[test]
fn a_session_deadline_ends_what_has_not_ended_with_a_reason() {
    let config = http2::Config::new(http2::PRODUCTION_URL).topic("com.example.app");
    let mut push = Push::new()
        .with_apns_http2(config, http2::Auth::Certificate)
        .unwrap();
    let now = Instant::now();
    let deadline = now + Duration::from_secs(5);
    let session = push.open_session(&Payload::new().body("B"));
    let other = push.open_session(&Payload::new().body("B"));
    push.set_session_deadline(session, deadline);
    for n in 1..=3 {
        push.push(session, Device::ios(apns_token(n)), now).unwrap();
    }
    push.push(other, Device::ios(apns_token(4)), now).unwrap();
    let mut apns_out = Vec::new();
    let mut requests = HashMap::new();
    while let Some(action) = push.poll_action(now, &mut apns_out) {
        match action {
            Action::Http(route, engine::Action::Dial(conn)) => {
                let max_streams = 10;
                push.handle_http(route, engine::Input::Connected { conn, max_streams }, now);
            }
            Action::Http(_, engine::Action::Send { id, request, .. }) => {
                let token = request.uri().path().rsplit('/').next().unwrap().to_owned();
                requests.insert(token, id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let answer = |push: &mut Push, token: String, status: u16, at: Instant| {
        let response = http::Response::builder()
            .status(status)
            .header("retry-after", "60")
            .body(Bytes::new())
            .unwrap();
        let id = requests[&token];
        push.handle_http(
            Route::ApnsHttp2,
            engine::Input::Response { id, response },
            at,
        );
    };
    answer(&mut push, apns_token(1), 200, now);
    answer(&mut push, apns_token(2), 503, now);
    assert_eq!(feedback(&mut push), [(apns_token(1), None, None)]);
    assert_eq!(push.poll_timeout(), Some(deadline));
    push.handle_timeout(deadline);
    let ended: Vec<_> = std::iter::from_fn(|| push.poll_feedback())
        .map(|(id, f)| (id, f.device.token, f.error))
        .collect();
    let reason = |last_error: &str| {
        Some(DeviceError::Unavailable {
            attempts: 1,
            last_error: last_error.into(),
        })
    };
    assert_eq!(
        ended,
        [
            (
                session,
                apns_token(2),
                reason("the session's deadline passed; before: HTTP 503")
            ),
            (
                session,
                apns_token(3),
                reason(
                    "the session's deadline passed while it was in flight (it may have been \
                     delivered)"
                )
            ),
        ]
    );
    // A late answer is ignored; a device pushed now fails at once.
    answer(&mut push, apns_token(3), 200, deadline);
    push.push(session, Device::ios(apns_token(5)), deadline)
        .unwrap();
    assert_eq!(
        feedback(&mut push),
        [(apns_token(5), Some("unavailable"), None)]
    );
    push.close_session(session);
    assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
    // The other session is untouched.
    assert_eq!(push.outstanding(other), 1);
    answer(&mut push, apns_token(4), 200, deadline);
    assert_eq!(feedback(&mut push), [(apns_token(4), None, None)]);
}
