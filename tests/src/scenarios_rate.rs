//! Scenarios of issue 12, "never lose a notification to pressure": transient faults cost no
//! notification, a provider's quota slows push down (no loss, no duplicate, few refusals),
//! and a session's deadline ends every device once. Scaled down from the 200,000
//! tokens so that a debug run stays short; the measured shares and ratios are printed
//! (`--nocapture`), and timing bounds are generous (not a benchmark).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use push_client::{HttpConfig, Runtime};
use push_mock::{Certificates, FcmScript, Http2Auth, Http2Options};
use push_proto::Device;

use crate::scenarios_fcm::{self, fcm_token};
use crate::scenarios_http2::{self, KEY_ID, TEAM_ID, TOPIC};
use crate::{builder, by_token, payload, send_all, token, within};

const LIMIT: Duration = Duration::from_secs(300);
/// Connections to a provider with a quota (of 100 streams each). Every request in flight when
/// the quota runs out is refused whatever the pacing, and the sends are 20 times
/// larger than these: at most 200 streams in flight keep that first overshoot to the same
/// share of a send.
const QUOTA_CONNECTIONS: usize = 2;

/// What a send against a quota measured.
struct Measured {
    /// Requests answered 429, out of all answered.
    throttled_share: f64,
    /// The run's time over the least the quota allows.
    ratio: f64,
}

/// Checks a send of `total` devices against a quota of `limit` per `window`: every device
/// delivered exactly once (`delivered` has the server's count per token), few 429s, no
/// faster than the quota allows and at most 3x its time.
fn check_quota_run(
    name: &str,
    outcomes: &HashMap<String, Vec<Option<&'static str>>>,
    delivered: &HashMap<String, usize>,
    statuses: &HashMap<u16, usize>,
    (limit, window): (u32, Duration),
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
        measured.throttled_share < 0.05,
        "{name}: {:.2}% throttled",
        measured.throttled_share * 100.0
    );
    assert!(measured.ratio <= 3.0, "{name}: {:.2}x", measured.ratio);
    measured
}

/// 20,000 FCM tokens, 5% of requests answered 429 QUOTA_EXCEEDED or 503 UNAVAILABLE
/// (`Retry-After: 1`) at random and 3% of the tokens failing their first two attempts:
/// with the default retry policy every token is delivered exactly once, none unavailable.
pub async fn fcm_random_faults_lose_no_notification<R: Runtime>() {
    const TOTAL: u32 = 20_000;
    let certs = Certificates::generate().expect("certificates");
    let mut options = scenarios_fcm::demo_options().seeded_faults(0.025, 0.025, 12, 1);
    for n in (0..TOTAL).filter(|n| n % 100 < 3) {
        options = options.script(fcm_token(n), FcmScript::Unavailable { first: 2 });
    }
    let server = scenarios_fcm::start(options, &certs);
    let fcm = scenarios_fcm::config(&server, &certs);
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::android(fcm_token(n)));
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let outcomes = by_token(&feedback);
    assert_eq!(feedback.len(), TOTAL as usize);
    for n in 0..TOTAL {
        let token = fcm_token(n);
        assert_eq!(outcomes[&token], [None], "token {n}");
        assert_eq!(server.delivered_count(&token), 1, "token {n}");
    }
    let statuses = server.status_counts();
    println!("FCM with random faults: answers {statuses:?}");
    assert!(statuses[&429] > 200 && statuses[&503] > 200, "{statuses:?}");
}

/// 10,000 FCM tokens against a project quota of 2,000 messages per sliding 2 s.
pub async fn fcm_quota_is_followed<R: Runtime>() {
    const TOTAL: u32 = 10_000;
    let quota = (2_000, Duration::from_secs(2));
    let certs = Certificates::generate().expect("certificates");
    let options = scenarios_fcm::demo_options().quota(quota.0, quota.1);
    let server = scenarios_fcm::start(options, &certs);
    let fcm = scenarios_fcm::config(&server, &certs).max_connections(QUOTA_CONNECTIONS);
    let client = builder::<R>().fcm(fcm).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::android(fcm_token(n)));
    let started = Instant::now();
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let elapsed = started.elapsed();
    assert_eq!(feedback.len(), TOTAL as usize);
    check_quota_run(
        "FCM",
        &by_token(&feedback),
        &server.delivered_counts(),
        &server.status_counts(),
        quota,
        elapsed,
    );
}

/// 10,000 APNs devices over HTTP/2 against a provider-wide limit of 2,000 requests per
/// sliding 2 s (429 TooManyRequests beyond it, without `Retry-After`, as APNs answers).
pub async fn apns_http2_provider_limit_is_followed<R: Runtime>() {
    const TOTAL: u32 = 10_000;
    let quota = (2_000, Duration::from_secs(2));
    let certs = Certificates::generate().expect("certificates");
    let key = scenarios_http2::provider_key();
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).expect("public key");
    let options = Http2Options::new(auth)
        .topic(TOPIC)
        .max_concurrent_streams(100)
        .rate_limit(quota.0, quota.1);
    let server = scenarios_http2::start(options, &certs);
    let apns = scenarios_http2::config(&server, &certs)
        .provider_key_pem(&key, KEY_ID, TEAM_ID)
        .expect("provider key")
        .max_connections(QUOTA_CONNECTIONS);
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let started = Instant::now();
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let elapsed = started.elapsed();
    assert_eq!(feedback.len(), TOTAL as usize);
    check_quota_run(
        "APNs HTTP/2",
        &by_token(&feedback),
        &server.delivered_counts(),
        &server.status_counts(),
        quota,
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
