//! Hostile HTTP/2 servers: a stream limit of 0, every stream refused, GOAWAY(0) on every
//! connection, a connection error the client's HTTP/2 library detects mid-flight. Every device
//! still ends with exactly one feedback in bounded time, and nothing the server may have
//! processed is sent again without counting an attempt.

use std::time::Duration;

use push_client::{ApnsHttp2Config, Error, HttpConfig, Runtime};
use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2};
use push_proto::Device;

use crate::{builder, by_token, mock_tls, payload, send_all, token, within};

/// A safety net against hangs, never the thing measured.
const LIMIT: Duration = Duration::from_secs(120);

fn start(options: Http2Options, certs: &Certificates) -> MockApnsHttp2 {
    MockApnsHttp2::start(options, certs).expect("mock APNs HTTP/2 server")
}

/// Client settings for the mock at `server`, with fast retries and dials.
fn config(server: &MockApnsHttp2, certs: &Certificates) -> ApnsHttp2Config {
    ApnsHttp2Config::new(&server.url())
        .expect("URL")
        .tls(mock_tls(certs))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .dial_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// Every device has exactly one feedback and it says `unavailable`.
fn all_unavailable(feedback: &[push_client::Feedback], total: u32) {
    assert_eq!(feedback.len(), total as usize);
    let outcomes = by_token(feedback);
    for n in 0..total {
        assert_eq!(
            outcomes[&token(n).to_hex()],
            [Some("unavailable")],
            "device {n}"
        );
    }
}

/// The report names the provider as unreachable, a client-wide error.
fn assert_unreachable(report: &push_client::Report) {
    let unreachable = report
        .errors
        .iter()
        .any(|e| matches!(e, Error::Unreachable { .. }));
    assert!(unreachable, "{:?}", report.errors);
}

/// The server advertises `SETTINGS_MAX_CONCURRENT_STREAMS = 0` for good: the client sends
/// nothing it is not allowed to, and after the stall timeout every device ends
/// `unavailable` with a client-wide error naming the cause.
pub async fn apns_http2_stream_limit_zero_ends_unavailable<R: Runtime>() {
    const TOTAL: u32 = 100;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate).max_concurrent_streams(0);
    let server = start(options, &certs);
    let apns = config(&server, &certs).stall_timeout(Duration::from_millis(500));
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    all_unavailable(&feedback, TOTAL);
    assert_eq!(server.total_delivered(), 0);
    assert_unreachable(&report);
}

/// The server resets every stream with `REFUSED_STREAM`: refusals are free resends only up
/// to a bound, then count as attempts; every device ends `unavailable`, and the connection
/// was never torn down for a stream-level refusal.
pub async fn apns_http2_every_stream_refused_ends_unavailable<R: Runtime>() {
    const TOTAL: u32 = 100;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate).refuse_all_streams();
    let server = start(options, &certs);
    let apns = config(&server, &certs).connections(1);
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    all_unavailable(&feedback, TOTAL);
    assert_eq!(server.total_delivered(), 0);
    assert_eq!(
        server.connections(),
        1,
        "a refused stream keeps the connection"
    );
    // Each device: 5 free resends, then 3 counted attempts.
    assert!(server.refused_streams() <= (TOTAL * 9) as usize);
}

/// Every connection is answered with GOAWAY(last_stream_id = 0) and closed: the streams are
/// free resends (the server processed none), the connections count as failed dials with
/// backoff, and after five in a row every device ends `unavailable`.
pub async fn apns_http2_goaway_zero_on_every_connection_ends_unavailable<R: Runtime>() {
    const TOTAL: u32 = 100;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate).goaway_on_connect();
    let server = start(options, &certs);
    let client = builder::<R>()
        .apns_http2(config(&server, &certs))
        .build()
        .expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    all_unavailable(&feedback, TOTAL);
    assert_eq!(server.total_delivered(), 0);
    assert!(server.goaways_sent() >= 5);
    assert_unreachable(&report);
}

/// After 100 answers on each connection the server sends a malformed frame: the client's
/// HTTP/2 library detects a protocol error and fails every open stream, including streams
/// the server already processed. With one attempt allowed, such a stream must end
/// `unavailable` instead of being resent for free: no device reaches the server twice, and
/// every device has exactly one feedback (delivered ones reached the server once).
pub async fn apns_http2_library_error_mid_flight_resends_nothing_uncounted<R: Runtime>() {
    const TOTAL: u32 = 2_000;
    let certs = Certificates::generate().expect("certificates");
    let options = Http2Options::new(Http2Auth::Certificate)
        .latency(Duration::from_millis(1))
        .break_connection_after(100);
    let server = start(options, &certs);
    let apns = config(&server, &certs).max_attempts(1);
    let client = builder::<R>().apns_http2(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    let mut cut = 0;
    for n in 0..TOTAL {
        let hex = token(n).to_hex();
        let outcome = &outcomes[&hex];
        assert_eq!(outcome.len(), 1, "device {n}: {outcome:?}");
        let delivered_at_server = server.delivered_count(&hex);
        assert!(
            delivered_at_server <= 1,
            "device {n} reached the server twice"
        );
        match outcome[0] {
            None => assert_eq!(delivered_at_server, 1, "device {n}"),
            Some(code) => {
                assert_eq!(code, "unavailable", "device {n}");
                cut += 1;
            }
        }
    }
    assert!(server.broken_connections() >= 1);
    assert!(cut >= 1, "some streams were cut by the library error");
    assert_eq!(report.delivered + cut, u64::from(TOTAL));
}
