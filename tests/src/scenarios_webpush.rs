//! Scenarios of Web Push against push-mock's push service on several loopback origins: it
//! decrypts every message with the subscription's private key and verifies each VAPID token.

use std::collections::HashSet;
use std::time::Duration;

use push_client::{Error, HttpConfig, Runtime, WebPushConfig};
use push_mock::{Certificates, MockWebPush, WebPushOptions};
use push_proto::Device;
use push_proto::engine::Stats as EngineStats;

use crate::{builder, by_token, mock_tls, payload, random_positions, send_all, within};

const LIMIT: Duration = Duration::from_secs(300);
/// A VAPID private key for the scenarios (the raw base64url form).
const VAPID_KEY: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
/// Another one, that the subscriptions were not made for.
const OTHER_KEY: &str = "IQ9Ur0ykXoHS9gzfYX0aBjy9lvdrjx_PFUXmie9YRcY";

/// Client settings for the mock's origins, signing with `key`, fast retries.
fn config(key: &str, certs: &Certificates) -> WebPushConfig {
    WebPushConfig::from_base64url(key, "mailto:scenarios@example.com")
        .expect("VAPID key")
        .ttl(600)
        .tls(mock_tls(certs))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// Subscriptions over 3 origins with 2% expired (410), 5% answered 429/503 with
/// `Retry-After: 0`, and origin 0 down (every push 503) until it refused about two attempts
/// per subscription; at most 2 origins connected at once, so the third waits for the room of an idle one (its
/// route closed). Every subscription ends in exactly one feedback, the deliverable ones are
/// decrypted by the mock exactly once, the expired ones are `invalid_device`.
///
/// 1,500 subscriptions in a debug build (the mock's pure-Rust P-256 decryption is slow
/// unoptimized; about 15 s), 50,000 in a release build (`cargo test --release`; 45 s on the
/// shared 2-core machine).
pub async fn webpush_mixed_outcomes_over_three_origins<R: Runtime>() {
    const TOTAL: u32 = if cfg!(debug_assertions) {
        1_500
    } else {
        50_000
    };
    let certs = Certificates::generate().expect("certificates");
    let web = config(VAPID_KEY, &certs);
    let options = WebPushOptions::new()
        .origins(3)
        .application_server_key(web.public_key())
        .seeded_faults(0.03, 0.02, 11, 0);
    let mock = std::sync::Arc::new(MockWebPush::start(options, &certs).expect("mock push service"));
    let subscriptions: Vec<_> = (0..TOTAL).map(|n| mock.subscribe(n as usize % 3)).collect();
    let expired = random_positions(TOTAL, TOTAL as usize / 50, 5);
    for &n in &expired {
        assert!(mock.expire(&subscriptions[n as usize].endpoint));
    }
    mock.set_down(0, true);
    // Origin 0 comes back once it has refused each of its subscriptions about twice (well
    // within the 20 attempts).
    let watcher = {
        let mock = mock.clone();
        let refusals = TOTAL as usize / 3 * 2;
        let give_up = std::time::Instant::now() + LIMIT;
        std::thread::spawn(move || {
            while mock.status_counts().get(&503).copied().unwrap_or(0) < refusals
                && std::time::Instant::now() < give_up
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            mock.set_down(0, false);
        })
    };

    let client = builder::<R>()
        .webpush(web.max_attempts(20).max_origins(2))
        .build()
        .expect("client");
    let devices = subscriptions.iter().map(|s| Device::web(s.json.clone()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    watcher.join().expect("watcher");

    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    for (n, subscription) in subscriptions.iter().enumerate() {
        let outcome = &outcomes[&subscription.json];
        let delivered = mock.delivered_count(&subscription.endpoint);
        if expired.contains(&(n as u32)) {
            assert_eq!(outcome, &[Some("invalid_device")], "subscription {n}");
            assert_eq!(delivered, 0, "subscription {n}");
        } else {
            assert_eq!(outcome, &[None], "subscription {n}");
            assert_eq!(delivered, 1, "subscription {n} decrypted once");
        }
    }
    let statuses = mock.status_counts();
    let refusals = TOTAL as usize / 3 * 2;
    assert!(
        statuses[&503] >= refusals,
        "origin 0 was down: {statuses:?}"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    let first = &mock.delivered()[0];
    let text = String::from_utf8_lossy(&first.plaintext);
    assert!(text.contains("A scenario is running"), "{text}");
    assert_eq!(first.ttl, 600);
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    // The engine counters, summed over the origins (a closed route's included).
    let stats = within::<R, _>(LIMIT, settled_stats(&client, u64::from(TOTAL))).await;
    assert_eq!(stats.failed, expired.len() as u64, "{stats:?}");
    assert!(stats.queued >= u64::from(TOTAL), "{stats:?}");
    let answered = statuses.values().sum::<usize>() as u64;
    assert!(
        stats.requests >= answered && answered >= stats.responses,
        "every answer was to a counted request: {stats:?} {statuses:?}"
    );
    assert!(stats.responses >= u64::from(TOTAL), "{stats:?}");
    assert!(stats.retries >= statuses[&503] as u64 / 2, "{stats:?}");
    assert!(stats.dials >= 3, "three origins: {stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
}

/// The client's Web Push counters once they count `total` notifications ended (the driver
/// publishes them just after handing over the last feedback).
async fn settled_stats<R: Runtime>(client: &push_client::Client<R>, total: u64) -> EngineStats {
    let runtime = R::default();
    loop {
        let stats = client.stats().web_push.expect("Web Push is configured");
        if stats.delivered + stats.failed == total {
            return stats;
        }
        runtime
            .sleep_until(std::time::Instant::now() + Duration::from_millis(5))
            .await;
    }
}

/// Subscriptions over 2 origins, origin 0 speaking HTTP/2 and origin 1 HTTP/1.1 only (its
/// TLS handshake offers no `h2`), a few expired on each: every subscription ends in exactly
/// one feedback, the live ones decrypted by the mock exactly once, the expired ones
/// `invalid_device`; origin 1's requests came over HTTP/1.1 (one at a time
/// per connection, so the pool opened more than one) and origin 0's over HTTP/2.
pub async fn webpush_http1_origin_beside_an_http2_one<R: Runtime>() {
    const TOTAL: usize = 300;
    let certs = Certificates::generate().expect("certificates");
    let web = config(VAPID_KEY, &certs);
    let options = WebPushOptions::new()
        .origins(2)
        .application_server_key(web.public_key())
        .http1_only(1);
    let mock = MockWebPush::start(options, &certs).expect("mock push service");
    let subscriptions: Vec<_> = (0..TOTAL).map(|n| mock.subscribe(n % 2)).collect();
    // Two in every 30 expired, 10 on each origin: answered 410 with a JSON reason either way.
    let expired = |n: usize| n % 30 == 7 || n % 30 == 8;
    for (n, subscription) in subscriptions.iter().enumerate() {
        if expired(n) {
            assert!(mock.expire(&subscription.endpoint));
        }
    }
    let client = builder::<R>().webpush(web).build().expect("client");
    let devices = subscriptions.iter().map(|s| Device::web(s.json.clone()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_eq!(feedback.len(), TOTAL);
    let outcomes = by_token(&feedback);
    for (n, subscription) in subscriptions.iter().enumerate() {
        let delivered = mock.delivered_count(&subscription.endpoint);
        if expired(n) {
            let outcome = &outcomes[&subscription.json];
            assert_eq!(outcome, &[Some("invalid_device")], "subscription {n}");
            assert_eq!(delivered, 0, "subscription {n}");
        } else {
            assert_eq!(outcomes[&subscription.json], [None], "subscription {n}");
            assert_eq!(delivered, 1, "subscription {n} decrypted once");
        }
    }
    let answers = mock.responses();
    assert_eq!(answers.len(), TOTAL, "no request refused or repeated");
    for answer in &answers {
        assert_eq!(answer.http1, answer.origin == 1, "{answer:?}");
    }
    let gone = answers.iter().filter(|a| a.status == 410);
    let gone_per_origin = gone.fold([0; 2], |mut counts, a| {
        counts[a.origin] += 1;
        counts
    });
    assert_eq!(gone_per_origin, [10, 10], "410s over both protocols");
    // One request at a time per connection: the pool opened more than one for origin 1.
    let http1_connections: HashSet<usize> = answers
        .iter()
        .filter(|a| a.http1)
        .map(|a| a.connection)
        .collect();
    assert!(http1_connections.len() >= 2, "{http1_connections:?}");
    let delivered = mock.delivered();
    let text = String::from_utf8_lossy(&delivered[0].plaintext);
    assert!(text.contains("A scenario is running"), "{text}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// Subscriptions made for another VAPID key: the push service answers 403 and the report names
/// a client-wide refusal with the origin, never the key.
pub async fn webpush_wrong_vapid_key_is_a_clear_error<R: Runtime>() {
    let certs = Certificates::generate().expect("certificates");
    let right = config(VAPID_KEY, &certs);
    let options = WebPushOptions::new()
        .origins(1)
        .application_server_key(right.public_key());
    let mock = MockWebPush::start(options, &certs).expect("mock push service");
    let subscriptions: Vec<_> = (0..3).map(|_| mock.subscribe(0)).collect();
    let client = builder::<R>()
        .webpush(config(OTHER_KEY, &certs))
        .build()
        .expect("client");
    let devices = subscriptions.iter().map(|s| Device::web(s.json.clone()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_eq!(feedback.len(), 3);
    assert!(
        feedback
            .iter()
            .all(|f| f.error.as_ref().map(|e| e.code()) == Some("rejected"))
    );
    assert_eq!(mock.total_delivered(), 0);
    let [Error::WebPushRefused { origin, status, .. }] = &report.errors[..] else {
        panic!("{:?}", report.errors);
    };
    assert_eq!(
        (origin.as_str(), *status),
        (mock.origins()[0].as_str(), 403)
    );
    let shown = report.errors[0].to_string();
    assert!(!shown.contains(OTHER_KEY), "{shown}");
}
