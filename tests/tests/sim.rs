//! The client in the simulation (`push_scenarios::sim`): APNs HTTP/2 against server models
//! over in-memory pipes on a virtual clock. The connection policy's timeouts and backoffs run
//! at their real defaults (seconds of simulated time) in milliseconds of wall time, so these
//! tests may assert on simulated time: it is deterministic.

use std::time::Duration;

use push_client::{ApnsHttp2Config, Client, Error, Feedback, HttpConfig, Report};
use push_mock::Certificates;
use push_proto::Device;
use push_scenarios::sim::{ApnsBehaviour, ApnsModel, Sim};
use push_scenarios::{by_token, mock_tls, payload, send_all, token};

/// The name the mock certificates carry, and the HTTPS port.
const HOST: &str = "localhost";
const PORT: u16 = 443;

/// A simulation with an APNs model at `localhost:443`, and the TLS material to reach it.
struct World {
    sim: Sim,
    server: ApnsModel,
    certs: Certificates,
}

fn world(behaviour: ApnsBehaviour) -> World {
    let certs = Certificates::generate().expect("certificates");
    let server = ApnsModel::new(behaviour, &certs).expect("server TLS");
    let sim = Sim::default();
    sim.listen(HOST, PORT, server.clone());
    World { sim, server, certs }
}

/// Client settings for the model: every timing at its default.
fn config(certs: &Certificates) -> ApnsHttp2Config {
    ApnsHttp2Config::new("https://localhost")
        .expect("URL")
        .tls(mock_tls(certs))
}

/// Sends to `total` devices through a client on `sim`; returns the feedback and the report.
fn run(sim: &Sim, apns: ApnsHttp2Config, total: u32) -> (Vec<Feedback>, Report) {
    sim.block_on(async {
        let client = Client::<Sim>::builder()
            .runtime(sim.clone())
            .apns_http2(apns)
            .build()
            .expect("client");
        let devices = (0..total).map(|n| Device::ios(token(n).to_hex()));
        send_all(client.send(payload()), devices).await
    })
}

/// Every device has exactly one feedback, and it says `unavailable`.
fn all_unavailable(feedback: &[Feedback], total: u32) {
    assert_eq!(feedback.len(), total as usize);
    let outcomes = by_token(feedback);
    for n in 0..total {
        let outcome = &outcomes[&token(n).to_hex()];
        assert_eq!(outcome, &[Some("unavailable")], "device {n}");
    }
}

fn assert_unreachable(report: &Report) {
    let unreachable = report
        .errors
        .iter()
        .any(|e| matches!(e, Error::Unreachable { .. }));
    assert!(unreachable, "{:?}", report.errors);
}

/// The apns-id the client gave device `n`'s notification.
fn apns_id_of(feedback: &[Feedback], n: u32) -> String {
    let hex = token(n).to_hex();
    let found = feedback.iter().find(|f| f.device.token == hex);
    let id = found.and_then(|f| f.receipt.id.clone());
    id.unwrap_or_else(|| panic!("device {n} has no apns-id in its feedback: {found:?}"))
}

#[test]
fn every_device_is_delivered_once() {
    const TOTAL: u32 = 1_000;
    let w = world(ApnsBehaviour::default());
    let (feedback, report) = run(&w.sim, config(&w.certs), TOTAL);
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL), "{report:?}");
    for n in 0..TOTAL {
        let id = apns_id_of(&feedback, n);
        assert_eq!(w.server.requests(&id), 1, "device {n}");
    }
    assert_eq!(w.server.total_requests(), TOTAL as usize);
    assert_eq!(w.server.connections(), 1);
}

/// SETTINGS_MAX_CONCURRENT_STREAMS = 0 for good: nothing is processed, and after the stall
/// timeout (10 s by default, simulated) every device ends `unavailable`.
#[test]
fn stream_limit_zero_ends_unavailable_after_the_stall_timeout() {
    const TOTAL: u32 = 100;
    let w = world(ApnsBehaviour::default().max_concurrent_streams(0));
    let (feedback, report) = run(&w.sim, config(&w.certs), TOTAL);
    all_unavailable(&feedback, TOTAL);
    assert_unreachable(&report);
    assert_eq!(w.server.total_requests(), 0);
    let stall = Duration::from_secs(10);
    assert!(report.elapsed >= stall, "{:?}", report.elapsed);
    assert!(
        report.elapsed < stall + Duration::from_secs(1),
        "{:?}",
        report.elapsed
    );
    assert_eq!(w.sim.dials().len(), 1, "a paused connection is not load");
}

/// Every stream refused unprocessed: 5 free resends per notification, then each refusal counts
/// as an attempt (3 by default), on the one connection, with the default retry backoff.
#[test]
fn every_stream_refused_ends_after_bounded_resends() {
    const TOTAL: u32 = 100;
    let w = world(ApnsBehaviour::default().refuse_all_streams());
    let (feedback, report) = run(&w.sim, config(&w.certs).connections(1), TOTAL);
    all_unavailable(&feedback, TOTAL);
    assert_eq!(w.server.total_requests(), 0);
    assert_eq!(
        w.server.connections(),
        1,
        "a refused stream keeps the connection"
    );
    let refused = w.server.refused_by_id();
    for n in 0..TOTAL {
        let id = apns_id_of(&feedback, n);
        assert_eq!(
            refused.get(&id),
            Some(&8),
            "device {n}: 5 free resends + 3 attempts"
        );
    }
    // Retry backoff 1 s then 2 s at most (jittered down to half).
    assert!(
        report.elapsed >= Duration::from_millis(1_500),
        "{:?}",
        report.elapsed
    );
    assert!(
        report.elapsed <= Duration::from_secs(4),
        "{:?}",
        report.elapsed
    );
}

/// GOAWAY(last_stream_id = 0) on every connection: each connection is a failed dial, the
/// dials back off (250 ms doubling, jittered), and after 5 every device ends `unavailable`.
#[test]
fn goaway_zero_on_every_connection_ends_after_five_dials() {
    const TOTAL: u32 = 100;
    let w = world(ApnsBehaviour::default().goaway_on_connect());
    let (feedback, report) = run(&w.sim, config(&w.certs), TOTAL);
    all_unavailable(&feedback, TOTAL);
    assert_unreachable(&report);
    assert_eq!(w.server.total_requests(), 0);
    assert_eq!(w.sim.dials().len(), 5);
    assert_eq!(w.server.goaways(), 5);
    // Backoffs of at most 250 + 500 + 1000 + 2000 ms, at least half of that.
    assert!(
        report.elapsed >= Duration::from_millis(1_875),
        "{:?}",
        report.elapsed
    );
    assert!(
        report.elapsed <= Duration::from_millis(3_750),
        "{:?}",
        report.elapsed
    );
}

/// After 100 answers per connection the model sends a malformed frame: the client's HTTP/2
/// library fails every open stream, also those the model processed. With one attempt allowed,
/// none of them may be sent again: no notification reaches the model twice.
#[test]
fn a_library_detected_connection_error_counts_an_attempt() {
    const TOTAL: u32 = 1_000;
    let behaviour = ApnsBehaviour::default()
        .latency(Duration::from_millis(1))
        .break_after(100);
    let w = world(behaviour);
    let (feedback, report) = run(&w.sim, config(&w.certs).max_attempts(1), TOTAL);
    assert_eq!(feedback.len(), TOTAL as usize);
    let outcomes = by_token(&feedback);
    let mut cut = 0;
    for n in 0..TOTAL {
        let outcome = &outcomes[&token(n).to_hex()];
        assert_eq!(outcome.len(), 1, "device {n}: {outcome:?}");
        let requests = w.server.requests(&apns_id_of(&feedback, n));
        assert!(
            requests <= 1,
            "device {n} reached the model {requests} times"
        );
        match outcome[0] {
            None => assert_eq!(requests, 1, "device {n}"),
            Some(code) => {
                assert_eq!(code, "unavailable", "device {n}");
                cut += 1;
            }
        }
    }
    assert!(w.server.broken() >= 1);
    assert!(cut >= 1, "some processed streams were cut");
    assert_eq!(report.delivered + cut, u64::from(TOTAL));
}

/// Every stream processed, then reset with PROTOCOL_ERROR (it may have been delivered):
/// each reset counts an attempt, so each notification is sent exactly `max_attempts` times.
#[test]
fn streams_reset_after_processing_are_sent_max_attempts_times() {
    const TOTAL: u32 = 100;
    let w = world(ApnsBehaviour::default().reset_with(h2::Reason::PROTOCOL_ERROR));
    let (feedback, report) = run(&w.sim, config(&w.certs), TOTAL);
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, 0);
    for n in 0..TOTAL {
        let id = apns_id_of(&feedback, n);
        assert_eq!(w.server.requests(&id), 3, "device {n}");
    }
    assert!(
        report.elapsed <= Duration::from_secs(4),
        "{:?}",
        report.elapsed
    );
}

/// A model that answers after 40 s: each request times out after the 30 s request timeout
/// and counts an attempt.
#[test]
fn answers_slower_than_the_request_timeout_count_attempts() {
    const TOTAL: u32 = 10;
    let w = world(ApnsBehaviour::default().latency(Duration::from_secs(40)));
    let apns = config(&w.certs).max_attempts(2);
    let (feedback, report) = run(&w.sim, apns, TOTAL);
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, 0, "{report:?}");
    for n in 0..TOTAL {
        let id = apns_id_of(&feedback, n);
        assert_eq!(w.server.requests(&id), 2, "device {n}");
    }
    // Two request timeouts and one retry backoff (at most 1 s); a connection's deadline
    // buckets fire up to 1/16 of the timeout late (1.875 s per attempt).
    assert!(
        report.elapsed >= Duration::from_secs(60),
        "{:?}",
        report.elapsed
    );
    assert!(
        report.elapsed <= Duration::from_secs(66),
        "{:?}",
        report.elapsed
    );
}

/// Simulated time to deliver `total` notifications over a 40 ms round trip with a stream
/// limit of 50 per connection.
fn time_to_deliver(total: u32, apns: impl FnOnce(ApnsHttp2Config) -> ApnsHttp2Config) -> Duration {
    let behaviour = ApnsBehaviour::default()
        .latency(Duration::from_millis(40))
        .max_concurrent_streams(50);
    let w = world(behaviour);
    let (_, report) = run(&w.sim, apns(config(&w.certs)), total);
    assert_eq!(report.delivered, u64::from(total));
    report.elapsed
}

/// Over a 40 ms round trip one connection is the limit: four deliver four times as fast, and
/// the automatic pool grows to the same without being told. It opens another connection only
/// once the last one has paid off, each step measured twice over several turns of the
/// streams, so a short run (20 round trips on one connection) gets only part of the way
/// (1.33× when written) while a long one (1,000 round trips) reaches 3.79×.
#[test]
fn four_connections_deliver_four_times_as_fast_over_a_40ms_round_trip() {
    let one = time_to_deliver(1_000, |apns| apns.connections(1));
    let four = time_to_deliver(1_000, |apns| apns.connections(4));
    let automatic = time_to_deliver(1_000, |apns| apns.max_connections(4));
    // 1,000 / 50 streams = 20 round trips of 40 ms on one connection, 5 on four.
    assert_eq!(one, Duration::from_millis(800), "one connection");
    let speedup = one.as_secs_f64() / four.as_secs_f64();
    assert!((3.5..=4.5).contains(&speedup), "{one:?} / {four:?}");
    let speedup = one.as_secs_f64() / automatic.as_secs_f64();
    assert!(
        speedup >= 1.25,
        "{one:?} / {automatic:?} (automatic, short)"
    );
    let one = time_to_deliver(50_000, |apns| apns.connections(1));
    let automatic = time_to_deliver(50_000, |apns| apns.max_connections(4));
    assert_eq!(one, Duration::from_secs(40), "one connection, long");
    let speedup = one.as_secs_f64() / automatic.as_secs_f64();
    assert!(speedup >= 3.5, "{one:?} / {automatic:?} (automatic, long)");
}

/// Nothing listens: each dial is refused at once, and the dials are spaced as configured
/// (1 s doubling up to 4 s, each delay jittered between half and all of it), 5 in all.
#[test]
fn refused_dials_back_off_as_configured() {
    const TOTAL: u32 = 10;
    let certs = Certificates::generate().expect("certificates");
    let sim = Sim::default();
    let apns = config(&certs).dial_backoff(Duration::from_secs(1), Duration::from_secs(4));
    let (feedback, report) = run(&sim, apns, TOTAL);
    all_unavailable(&feedback, TOTAL);
    assert_unreachable(&report);
    let dials: Vec<Duration> = sim.dials().iter().map(|dial| dial.at).collect();
    assert_eq!(dials.len(), 5, "{dials:?}");
    let ceilings = [1, 2, 4, 4].map(Duration::from_secs);
    for (gap, ceiling) in dials.windows(2).map(|w| w[1] - w[0]).zip(ceilings) {
        assert!(gap >= ceiling / 2 && gap <= ceiling, "{dials:?}");
    }
}
