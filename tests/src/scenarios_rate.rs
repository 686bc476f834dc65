//! Scenarios of issue 12, "never lose a notification to pressure": transient faults cost no
//! notification, a provider's quota slows push down (no loss, no duplicate, few refusals),
//! and a session's deadline ends every device once. Scaled down from the issue's 200,000
//! tokens so that a debug run stays short, keeping the issue's ten quota windows; the
//! issue's own sizes are the `*_at_the_issues_size` scenarios, ignored (run them by hand in
//! release: `cargo test --release -p push-scenarios --test smol -- --ignored
//! at_the_issues_size --nocapture`). The measured shares and ratios are printed
//! (`--nocapture`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use push_client::{HttpConfig, Runtime};
use push_mock::{Certificates, FcmScript, Http2Auth, Http2Options};
use push_proto::Device;

use crate::scenarios_fcm::{self, fcm_token};
use crate::scenarios_http2::{self, KEY_ID, TEAM_ID, TOPIC};
use crate::{builder, by_token, payload, send_all, token, within};

const LIMIT: Duration = Duration::from_secs(600);
/// Connections to a provider with a quota (of 100 streams each). Every request in flight when
/// the quota runs out is refused whatever the pacing, and the issue's sends are 10 times
/// larger than the CI ones: at most 200 streams in flight keep that first overshoot to a
/// small share of a send.
const QUOTA_CONNECTIONS: usize = 2;
/// A send against a quota: devices, the quota's limit and window, and the most time it may
/// take over the quota's least.
type QuotaSend = (u32, u32, Duration, f64);
/// The CI sends: 20,000 devices against 2,000 per sliding 2 s (the issue's ten windows).
/// Debug builds of client and mock share 2 cores with the other scenarios running at once:
/// their jitter can cost the controller one more cut (and `Retry-After`), so CI allows 1.5x
/// the quota's least time; the issue's 1.3x is asserted at its size, in release.
const CI_QUOTA: QuotaSend = (20_000, 2_000, Duration::from_secs(2), 1.5);
/// The issue's: 200,000 devices against 20,000 per sliding 10 s, within 1.3x.
const ISSUE_QUOTA: QuotaSend = (200_000, 20_000, Duration::from_secs(10), 1.3);

/// What a send against a quota measured.
struct Measured {
    /// Requests answered 429, out of all answered.
    throttled_share: f64,
    /// The run's time over the least the quota allows.
    ratio: f64,
}

/// Checks a send of `total` devices against a quota of `limit` per `window`: every device
/// delivered exactly once (`delivered` has the server's count per token), under 2 % of
/// requests answered 429, no faster than the quota allows and at most `max_ratio` times its
/// time.
fn check_quota_run(
    name: &str,
    outcomes: &HashMap<String, Vec<Option<&'static str>>>,
    delivered: &HashMap<String, usize>,
    statuses: &HashMap<u16, usize>,
    (limit, window, max_ratio): (u32, Duration, f64),
    elapsed: Duration,
) -> Measured {
    assert_eq!(
        outcomes.len(),
        delivered.len(),
        "{name}: one outcome per device"
    );
    for (token, outcome) in outcomes {
        assert_eq!(outcome, &[None], "{name}: {token}");
        assert_eq!(delivered.get(token), Some(&1), "{name}: {token}");
    }
    let answered: usize = statuses.values().sum();
    let throttled = statuses.get(&429).copied().unwrap_or(0);
    let windows = u32::try_from(outcomes.len())
        .unwrap_or(u32::MAX)
        .div_ceil(limit)
        - 1;
    let floor = window * windows;
    let measured = Measured {
        throttled_share: throttled as f64 / answered as f64,
        ratio: elapsed.as_secs_f64() / floor.as_secs_f64(),
    };
    println!(
        "{name}: {} devices, quota {limit} per {window:?}: {throttled} of {answered} requests \
         answered 429 ({:.2}%), {elapsed:?} = {:.2}x the {floor:?} the quota allows",
        outcomes.len(),
        measured.throttled_share * 100.0,
        measured.ratio
    );
    assert!(elapsed >= floor, "{name}: faster than the quota allows");
    assert!(
        measured.throttled_share < 0.02,
        "{name}: {:.2}% throttled",
        measured.throttled_share * 100.0
    );
    assert!(
        measured.ratio <= max_ratio,
        "{name}: {:.2}x",
        measured.ratio
    );
    measured
}

/// 20,000 FCM tokens, 5% of requests answered 429 QUOTA_EXCEEDED or 503 UNAVAILABLE
/// (`Retry-After: 1`) at random and 3% of the tokens failing their first two attempts:
/// with the default retry policy every token is delivered exactly once, none unavailable.
pub async fn fcm_random_faults_lose_no_notification<R: Runtime>() {
    fcm_random_faults::<R>(20_000).await;
}

/// [`fcm_random_faults_lose_no_notification`] at the issue's 200,000 tokens.
pub async fn fcm_random_faults_at_the_issues_size<R: Runtime>() {
    fcm_random_faults::<R>(200_000).await;
}

async fn fcm_random_faults<R: Runtime>(total: u32) {
    let certs = Certificates::generate().expect("certificates");
    let mut options = scenarios_fcm::demo_options().seeded_faults(0.025, 0.025, 12, 1);
    for n in (0..total).filter(|n| n % 100 < 3) {
        options = options.script(fcm_token(n), FcmScript::Unavailable { first: 2 });
    }
    let server = scenarios_fcm::start(options, &certs);
    let fcm = scenarios_fcm::config(&server, &certs);
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..total).map(|n| Device::android(fcm_token(n)));
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let outcomes = by_token(&feedback);
    assert_eq!(feedback.len(), total as usize);
    for n in 0..total {
        let token = fcm_token(n);
        assert_eq!(outcomes[&token], [None], "token {n}");
        assert_eq!(server.delivered_count(&token), 1, "token {n}");
    }
    let statuses = server.status_counts();
    println!("FCM with random faults: answers {statuses:?}");
    assert!(statuses[&429] > 200 && statuses[&503] > 200, "{statuses:?}");
}

/// 20,000 FCM tokens against a project quota of 2,000 messages per sliding 2 s.
pub async fn fcm_quota_is_followed<R: Runtime>() {
    fcm_quota::<R>(CI_QUOTA, Some(QUOTA_CONNECTIONS)).await;
}

/// The issue's 200,000 FCM tokens against 20,000 messages per sliding 10 s, with the client's
/// default pool.
pub async fn fcm_quota_at_the_issues_size<R: Runtime>() {
    fcm_quota::<R>(ISSUE_QUOTA, None).await;
}

async fn fcm_quota<R: Runtime>(
    (total, limit, window, max_ratio): QuotaSend,
    connections: Option<usize>,
) {
    let certs = Certificates::generate().expect("certificates");
    let options = scenarios_fcm::demo_options().quota(limit, window);
    let server = scenarios_fcm::start(options, &certs);
    let mut fcm = scenarios_fcm::config(&server, &certs);
    if let Some(connections) = connections {
        fcm = fcm.max_connections(connections);
    }
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..total).map(|n| Device::android(fcm_token(n)));
    let started = Instant::now();
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let elapsed = started.elapsed();
    assert_eq!(feedback.len(), total as usize);
    check_quota_run(
        "FCM",
        &by_token(&feedback),
        &server.delivered_counts(),
        &server.status_counts(),
        (limit, window, max_ratio),
        elapsed,
    );
}

/// 20,000 APNs devices over HTTP/2 against a provider-wide limit of 2,000 requests per
/// sliding 2 s (429 TooManyRequests beyond it, without `Retry-After`, as APNs answers).
pub async fn apns_http2_provider_limit_is_followed<R: Runtime>() {
    apns_http2_provider_limit::<R>(CI_QUOTA, Some(QUOTA_CONNECTIONS)).await;
}

/// The same at the issue's size: 200,000 devices against 20,000 per sliding 10 s, with the
/// client's default pool.
pub async fn apns_http2_provider_limit_at_the_issues_size<R: Runtime>() {
    apns_http2_provider_limit::<R>(ISSUE_QUOTA, None).await;
}

async fn apns_http2_provider_limit<R: Runtime>(
    (total, limit, window, max_ratio): QuotaSend,
    connections: Option<usize>,
) {
    let certs = Certificates::generate().expect("certificates");
    let key = scenarios_http2::provider_key();
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).expect("public key");
    let options = Http2Options::new(auth)
        .topic(TOPIC)
        .max_concurrent_streams(100)
        .rate_limit(limit, window);
    let server = scenarios_http2::start(options, &certs);
    let mut apns = scenarios_http2::config(&server, &certs)
        .provider_key_pem(&key, KEY_ID, TEAM_ID)
        .expect("provider key");
    if let Some(connections) = connections {
        apns = apns.max_connections(connections);
    }
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..total).map(|n| Device::ios(token(n).to_hex()));
    let started = Instant::now();
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let elapsed = started.elapsed();
    assert_eq!(feedback.len(), total as usize);
    check_quota_run(
        "APNs HTTP/2",
        &by_token(&feedback),
        &server.delivered_counts(),
        &server.status_counts(),
        (limit, window, max_ratio),
        elapsed,
    );
}

/// 3,000 FCM tokens against a quota of 500 per second, with a session deadline 2 s in:
/// every device gets exactly one feedback; the ones not delivered by then are `unavailable`
/// with the reason, and none of those reached the server twice.
pub async fn a_deadline_mid_run_gives_every_device_one_feedback<R: Runtime>() {
    const TOTAL: u32 = 3_000;
    let certs = Certificates::generate().expect("certificates");
    let options = scenarios_fcm::demo_options().quota(500, Duration::from_secs(1));
    let server = scenarios_fcm::start(options, &certs);
    let fcm = scenarios_fcm::config(&server, &certs);
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let mut session = client.send(payload());
    session
        .deadline(Instant::now() + Duration::from_secs(2))
        .expect("client running");
    let devices = (0..TOTAL).map(|n| Device::android(fcm_token(n)));
    let (feedback, _) = within::<R, _>(LIMIT, send_all(session, devices)).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    let mut delivered = 0;
    for n in 0..TOTAL {
        let token = fcm_token(n);
        let outcome = &outcomes[&token];
        assert_eq!(outcome.len(), 1, "token {n}: one feedback");
        match outcome[0] {
            None => {
                delivered += 1;
                assert_eq!(server.delivered_count(&token), 1, "token {n}");
            }
            Some(code) => {
                assert_eq!(code, "unavailable", "token {n}");
                assert!(server.delivered_count(&token) <= 1, "token {n}");
            }
        }
    }
    let reasons: Vec<String> = feedback
        .iter()
        .filter_map(|f| f.error.as_ref().map(ToString::to_string))
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("deadline passed")),
        "{:?}",
        reasons.first()
    );
    println!("deadline mid-run: {delivered} of {TOTAL} delivered, the rest unavailable");
    assert!(delivered > 0 && delivered < TOTAL, "{delivered}");
}
