//! Scenarios of the APNs HTTP/2 provider API against push-mock's HTTP/2 server.

use std::time::Duration;

use futures_lite::StreamExt;
use push_client::{ApnsHttp2Config, Error, HttpConfig, Runtime};
use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2, ReasonScript};
use push_proto::Device;

use crate::{builder, by_token, mock_tls, payload, send_all, shifted_client, token, within};

const LIMIT: Duration = Duration::from_secs(300);
pub(crate) const KEY_ID: &str = "ABC123DEFG";
pub(crate) const TEAM_ID: &str = "TEAM123456";
pub(crate) const TOPIC: &str = "com.example.app";

/// A fresh P-256 provider key as a `.p8` PEM.
pub(crate) fn provider_key() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("P-256 key")
        .serialize_pem()
}

pub(crate) fn start(options: Http2Options, certs: &Certificates) -> MockApnsHttp2 {
    MockApnsHttp2::start(options, certs).expect("mock APNs HTTP/2 server")
}

/// Client settings for the mock at `server`, with fast retries.
pub(crate) fn config(server: &MockApnsHttp2, certs: &Certificates) -> ApnsHttp2Config {
    ApnsHttp2Config::new(&server.url())
        .expect("URL")
        .topic(TOPIC)
        .tls(mock_tls(certs))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// 100,000 devices over token auth (every JWT verified by the mock), 1% of them each with
/// BadDeviceToken, Unregistered (with its timestamp), TooManyRequests once and
/// ServiceUnavailable once: every device ends in exactly one outcome, and the deliverable ones
/// reach the server exactly once.
pub async fn apns_http2_reasons_give_one_outcome_per_device<R: Runtime>() {
    const TOTAL: u32 = 100_000;
    let certs = Certificates::generate().expect("certificates");
    let key = provider_key();
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).expect("public key");
    let mut options = Http2Options::new(auth).topic(TOPIC);
    for n in 0..TOTAL {
        let script = match n % 100 {
            1 => ReasonScript::BadDeviceToken,
            2 => ReasonScript::Unregistered {
                timestamp_ms: 1_700_000_000_000,
            },
            3 => ReasonScript::TooManyRequests { first: 1 },
            4 => ReasonScript::ServiceUnavailable { first: 1 },
            _ => continue,
        };
        options = options.script(token(n).to_hex(), script);
    }
    let server = start(options, &certs);
    let apns = config(&server, &certs)
        .provider_key_pem(&key, KEY_ID, TEAM_ID)
        .expect("provider key");
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    for n in 0..TOTAL {
        let hex = token(n).to_hex();
        let expected = match n % 100 {
            1 | 2 => Some("invalid_device"),
            _ => None,
        };
        assert_eq!(outcomes[&hex], [expected], "device {n}");
        let delivered = usize::from(expected.is_none());
        assert_eq!(server.delivered_count(&hex), delivered, "device {n}");
    }
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(server.provider_tokens_seen() >= 1);
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
}

/// The server sends GOAWAY after every 500 answers: the streams it did not process are sent
/// again on a new connection; nothing is lost, nothing duplicated.
pub async fn apns_http2_goaway_mid_stream_loses_nothing<R: Runtime>() {
    const TOTAL: u32 = 3_000;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate).goaway_after(500);
    let server = start(options, &certs);
    let client = builder::<R>()
        .apns_http2(config(&server, &certs))
        .build()
        .expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL), "{report:?}");
    for n in 0..TOTAL {
        assert_eq!(server.delivered_count(&token(n).to_hex()), 1, "device {n}");
    }
    assert!(server.goaways_sent() >= 1);
    assert!(server.connections() >= 2);
}

/// The server allows one stream at a time: the client never opens more, and completes
/// (pinging the connection every few milliseconds meanwhile).
pub async fn apns_http2_stream_limit_of_one_is_respected<R: Runtime>() {
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate)
        .max_concurrent_streams(1)
        .latency(Duration::from_millis(1));
    let server = start(options, &certs);
    let apns = config(&server, &certs).ping_interval(Duration::from_millis(5));
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..300).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 300);
    assert_eq!(report.delivered, 300);
    assert_eq!(server.max_concurrent_seen(), 1);
}

/// The server lowers its stream limit to one mid-connection (after 500 answers) and raises
/// it to 1000 again (after 800): the client acknowledges both, never opens a stream beyond
/// the limit it acknowledged, and delivers everything exactly once on the one connection.
pub async fn apns_http2_stream_limit_dropped_to_one_and_restored<R: Runtime>() {
    const TOTAL: u32 = 3_000;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate)
        .latency(Duration::from_millis(1))
        .change_stream_limit(500, 1)
        .change_stream_limit(800, 1000);
    let server = start(options, &certs);
    // One connection, so that the limits announced on it are the only ones in force.
    let client = builder::<R>()
        .apns_http2(config(&server, &certs).connections(1))
        .build()
        .expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL), "{report:?}");
    for n in 0..TOTAL {
        assert_eq!(server.delivered_count(&token(n).to_hex()), 1, "device {n}");
    }
    assert_eq!(server.stream_limits_acknowledged(), [1, 1000]);
    assert_eq!(server.stream_limit_breaches(), 0);
    assert_eq!(server.connections(), 1);
    assert!(
        server.max_concurrent_seen() > 1,
        "the limit was above one before and after"
    );
}

/// Provider tokens signed with a key the server does not know: a clear client-wide error,
/// and a feedback for every device.
pub async fn apns_http2_wrong_provider_key_is_a_clear_error<R: Runtime>() {
    let certs = Certificates::generate().expect("certificates");
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &provider_key()).expect("key");
    let server = start(Http2Options::new(auth).topic(TOPIC), &certs);
    let apns = config(&server, &certs)
        .provider_key_pem(&provider_key(), KEY_ID, TEAM_ID)
        .expect("provider key");
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..5).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 5);
    assert!(feedback.iter().all(|f| f.error.is_some()));
    let error = report.errors.first().expect("a client-wide error");
    assert!(
        matches!(error, Error::ApnsRefused { status: 403, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("InvalidProviderToken"),
        "{error}"
    );
}

/// A pool of three connections, ten streams each: every connection carries requests, none
/// exceeds its limit, and every device is delivered exactly once.
pub async fn apns_http2_pool_spreads_over_connections<R: Runtime>() {
    const TOTAL: u32 = 3_000;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate)
        .max_concurrent_streams(10)
        .latency(Duration::from_millis(1));
    let server = start(options, &certs);
    let apns = config(&server, &certs).connections(3);
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL));
    for n in 0..TOTAL {
        assert_eq!(server.delivered_count(&token(n).to_hex()), 1, "device {n}");
    }
    assert_eq!(server.connections(), 3);
    assert!(server.max_concurrent_seen() <= 10);
    let per_connection = server
        .delivered()
        .iter()
        .fold([0usize; 3], |mut counts, d| {
            counts[d.connection % 3] += 1;
            counts
        });
    assert!(per_connection.iter().all(|&n| n > 0), "{per_connection:?}");
}

/// The provider token expires mid-run: the client's clock and the server's move 21 minutes
/// ahead, past the server's 20-minute token lifetime (APNs allows an hour; the refresh rules
/// forbid re-signing within 20 minutes). Requests carrying the old token get `403
/// ExpiredProviderToken`; the client signs exactly one new token and sends them again:
/// nothing fails, nothing is delivered twice.
pub async fn apns_http2_expired_token_is_refreshed_once<R: Runtime>() {
    const HALF: u32 = 1_000;
    const AHEAD: Duration = Duration::from_secs(21 * 60);
    let certs = Certificates::generate().expect("certificates");
    let key = provider_key();
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).expect("public key");
    let options = Http2Options::new(auth)
        .topic(TOPIC)
        .max_token_age(Duration::from_secs(20 * 60));
    let server = start(options, &certs);
    let apns = config(&server, &certs)
        .provider_key_pem(&key, KEY_ID, TEAM_ID)
        .expect("provider key");
    let (clock, client) = shifted_client::<R>(|builder| builder.apns_http2(apns));
    let mut session = client.send(payload());
    let reader = session.feedbacks().collect::<Vec<_>>();
    let writer = async {
        for n in 0..HALF {
            session
                .push(Device::ios(token(n).to_hex()))
                .await
                .expect("running");
        }
        while server.total_delivered() < HALF as usize {
            clock
                .sleep_until(clock.now() + Duration::from_millis(5))
                .await;
        }
        clock.advance(AHEAD);
        server.advance_clock(AHEAD);
        for n in HALF..2 * HALF {
            session
                .push(Device::ios(token(n).to_hex()))
                .await
                .expect("running");
        }
        session.finish().await.expect("running")
    };
    let (feedback, report) = within::<R, _>(LIMIT, futures_lite::future::zip(reader, writer)).await;
    assert_eq!(feedback.len(), 2 * HALF as usize);
    assert_eq!(report.delivered, u64::from(2 * HALF), "{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for n in 0..2 * HALF {
        assert_eq!(server.delivered_count(&token(n).to_hex()), 1, "device {n}");
    }
    let expired = server.status_counts().get(&403).copied().unwrap_or(0);
    assert!(expired >= 1, "the old token was refused at least once");
    assert_eq!(server.provider_tokens_seen(), 2, "exactly one refresh");
}
