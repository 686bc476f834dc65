//! Scenarios of FCM HTTP v1 against push-mock's FCM server and OAuth2 token endpoint: every
//! access token comes from a service-account assertion the mock verifies.

use std::time::Duration;

use futures_lite::StreamExt;
use push_client::{Client, Error, FcmConfig, HttpConfig, Runtime};
use push_mock::fcm::{demo_service_account, wrong_key_service_account};
use push_mock::{Certificates, FcmOptions, FcmScript, MockFcm};
use push_proto::Device;

use crate::{Shifted, builder, by_token, mock_tls, payload, send_all, shifted_client, within};

const LIMIT: Duration = Duration::from_secs(300);
const PROJECT: &str = "push-scenarios";

/// An FCM registration token numbered `n`.
pub fn fcm_token(n: u32) -> String {
    format!("fcm:{n:08}-scenario-registration-token")
}

pub(crate) fn start(options: FcmOptions, certs: &Certificates) -> MockFcm {
    MockFcm::start(options, certs).expect("mock FCM server")
}

pub(crate) fn demo_options() -> FcmOptions {
    FcmOptions::demo(PROJECT).expect("demo service account")
}

/// Client settings for the mock at `server` with the demo service account, fast retries.
pub(crate) fn config(server: &MockFcm, certs: &Certificates) -> FcmConfig {
    FcmConfig::from_service_account_json(&demo_service_account(PROJECT, &server.token_url()))
        .expect("service account")
        .url(&server.url())
        .expect("URL")
        .tls(mock_tls(certs))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// 50,000 tokens over one HTTP/2 connection with every error class mixed in (UNREGISTERED,
/// SENDER_ID_MISMATCH, INVALID_ARGUMENT on the token, QUOTA_EXCEEDED / UNAVAILABLE / INTERNAL
/// once, an unknown code, THIRD_PARTY_AUTH_ERROR) and 5% seeded 503s with `Retry-After: 0`:
/// every token ends in exactly one outcome, the deliverable ones reach the server exactly
/// once, and the credentials error is reported client-wide.
pub async fn fcm_mixed_outcomes_with_503s<R: Runtime>() {
    const TOTAL: u32 = 50_000;
    let certs = Certificates::generate().expect("certificates");
    let mut options = demo_options().seeded_faults(0.05, 0.0, 7, 0);
    for n in 0..TOTAL {
        let script = match n % 100 {
            1 => FcmScript::Unregistered,
            2 => FcmScript::SenderIdMismatch,
            3 => FcmScript::InvalidArgument {
                field: "message.token".into(),
                description: "The registration token is not a valid FCM registration token".into(),
            },
            4 => FcmScript::QuotaExceeded {
                retry_after_secs: 1,
                first: 1,
            },
            5 => FcmScript::Unavailable { first: 1 },
            6 => FcmScript::Internal { first: 1 },
            7 => FcmScript::ErrorCode {
                status: 400,
                error_code: "SOMETHING_NEW".into(),
                first: None,
            },
            8 => FcmScript::ThirdPartyAuthError,
            _ => continue,
        };
        options = options.script(fcm_token(n), script);
    }
    let server = start(options, &certs);
    let fcm = config(&server, &certs).max_attempts(10);
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::android(fcm_token(n)));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    for n in 0..TOTAL {
        let token = fcm_token(n);
        let expected = match n % 100 {
            1 | 2 => Some("invalid_device"),
            3 => Some("invalid_token_format"),
            7 | 8 => Some("rejected"),
            _ => None,
        };
        assert_eq!(outcomes[&token], [expected], "token {n}");
        let delivered = usize::from(expected.is_none());
        assert_eq!(server.delivered_count(&token), delivered, "token {n}");
    }
    assert!(
        server.status_counts()[&503] > 2_000,
        "the seeded 503s were answered"
    );
    // The pool opens more connections while every stream is busy (at most 8 by default),
    // none was lost and redialed. (An extra connection that did not raise the rate is parked
    // and closed after 60 s idle, which a run slowed by a loaded machine reaches: the first
    // one stays.)
    let connections = server.connections();
    assert!((1..=8).contains(&connections), "{connections} connections");
    assert!(
        server.closed_connections() < connections,
        "{} of {connections} connections closed",
        server.closed_connections()
    );
    assert_eq!(server.access_tokens_issued(), 1);
    assert_eq!(
        report.errors,
        [Error::FcmRefused {
            status: 401,
            code: "THIRD_PARTY_AUTH_ERROR".into()
        }]
    );
}

/// Pushes devices `range` into a session on a [`Shifted`] clock; after the first half
/// reached the server, `midway` runs; returns the feedback and the report.
async fn send_in_two_halves<R: Runtime>(
    client: &Client<Shifted<R>>,
    clock: &Shifted<R>,
    server: &MockFcm,
    total: u32,
    midway: impl FnOnce(),
) -> (Vec<push_client::Feedback>, push_client::Report) {
    let mut session = client.send(payload());
    let reader = session.feedbacks().collect::<Vec<_>>();
    let writer = async {
        for n in 0..total / 2 {
            session
                .push(Device::android(fcm_token(n)))
                .await
                .expect("running");
        }
        while server.total_delivered() < (total / 2) as usize {
            clock
                .sleep_until(clock.now() + Duration::from_millis(5))
                .await;
        }
        midway();
        for n in total / 2..total {
            session
                .push(Device::android(fcm_token(n)))
                .await
                .expect("running");
        }
        session.finish().await.expect("running")
    };
    within::<R, _>(LIMIT, futures_lite::future::zip(reader, writer)).await
}

/// The access token expires mid-run: the client's and the server's clocks move an hour
/// ahead. The client fetches exactly one new token before sending with the old one (no
/// request is refused), and every device is delivered exactly once.
pub async fn fcm_access_token_expiry_mid_run_fetches_one_new_token<R: Runtime>() {
    const TOTAL: u32 = 2_000;
    const AHEAD: Duration = Duration::from_secs(60 * 60);
    let certs = Certificates::generate().expect("certificates");
    let server = start(demo_options(), &certs);
    let (clock, client) = shifted_client::<R>(|builder| builder.fcm(config(&server, &certs)));
    let midway = || {
        clock.advance(AHEAD);
        server.advance_clock(AHEAD);
    };
    let (feedback, report) = send_in_two_halves(&client, &clock, &server, TOTAL, midway).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL), "{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for n in 0..TOTAL {
        assert_eq!(server.delivered_count(&fcm_token(n)), 1, "token {n}");
    }
    assert_eq!(server.access_tokens_issued(), 2, "exactly one refresh");
    assert_eq!(
        server.status_counts().get(&401),
        None,
        "never sent a stale token"
    );
}

/// The server revokes the access token mid-run: requests with it get `401
/// UNAUTHENTICATED`; the client fetches exactly one new token and sends them again. Nothing
/// fails, nothing is delivered twice.
pub async fn fcm_revoked_access_token_is_replaced_once<R: Runtime>() {
    const TOTAL: u32 = 2_000;
    let certs = Certificates::generate().expect("certificates");
    let server = start(demo_options(), &certs);
    let (clock, client) = shifted_client::<R>(|builder| builder.fcm(config(&server, &certs)));
    let midway = || server.revoke_access_tokens();
    let (feedback, report) = send_in_two_halves(&client, &clock, &server, TOTAL, midway).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL), "{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for n in 0..TOTAL {
        assert_eq!(server.delivered_count(&fcm_token(n)), 1, "token {n}");
    }
    assert_eq!(server.access_tokens_issued(), 2, "exactly one refresh");
    assert!(
        server.status_counts()[&401] >= 1,
        "the revoked token was refused"
    );
}

/// A service-account file without `client_email`: a configuration error that names the
/// missing field, before anything is sent; the private key never shows in it.
pub async fn fcm_bad_service_account_names_the_missing_field<R: Runtime>() {
    let json = demo_service_account(PROJECT, "https://localhost:1/token");
    let mut account: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let key = account["private_key"].as_str().expect("key").to_owned();
    account
        .as_object_mut()
        .expect("object")
        .remove("client_email");
    let error =
        FcmConfig::from_service_account_json(&account.to_string()).expect_err("no client_email");
    let text = error.to_string();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    assert!(text.contains("client_email"), "{text}");
    assert!(!text.contains(&key[40..80]), "the key leaked: {text}");
    assert!(!format!("{error:?}").contains(&key[40..80]));
    // The runtime is not needed to find out, but the scenario runs on each like the others.
    let _ = builder::<R>();
}

/// A service account whose key the server does not know: the token endpoint refuses the
/// assertion; a clear client-wide error, and a feedback for every device.
pub async fn fcm_wrong_service_account_key_is_a_clear_error<R: Runtime>() {
    let certs = Certificates::generate().expect("certificates");
    let server = start(demo_options(), &certs);
    let json = wrong_key_service_account(PROJECT, &server.token_url());
    let fcm = FcmConfig::from_service_account_json(&json)
        .expect("service account")
        .url(&server.url())
        .expect("URL")
        .tls(mock_tls(&certs));
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..5).map(|n| Device::android(fcm_token(n)));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 5);
    assert!(feedback.iter().all(|f| f.error.is_some()), "{feedback:?}");
    assert_eq!(server.total_delivered(), 0);
    let error = report.errors.first().expect("a client-wide error");
    assert!(matches!(error, Error::FcmToken { .. }), "{error:?}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
}
