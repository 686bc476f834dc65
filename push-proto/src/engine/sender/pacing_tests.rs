//! The route's rate control and the time-bounded retries, in simulated time: the explicit
//! cap paces requests, a quota the route exceeds slows it down to the quota (no notification
//! lost or sent twice, few refusals, no faster than the quota allows and not much slower),
//! scattered throttles delay their device only, retries end at the retry deadline, and a
//! server that refuses every stream is given up on after a few tries.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::tests::{TestSender, test_sender};
use super::*;
use crate::engine::test_support::{SlidingQuota, end, poll_send, respond, response};
use crate::rng::SplitMix64;

/// What a simulated send did.
#[derive(Debug, Default)]
struct Run {
    requests: usize,
    throttled: usize,
    /// Responses `200` per token.
    delivered: HashMap<u32, u32>,
    /// Reports per token, with their error code.
    reports: HashMap<u32, Vec<&'static str>>,
    elapsed: Duration,
}

/// Queues tokens `0..n` and drives `sender` until every one is reported: each request is
/// answered `rtt` after it was sent, by `answer(token, at)` (at: when the server processes it).
fn drive(
    sender: &mut TestSender,
    n: u32,
    rtt: Duration,
    mut answer: impl FnMut(u32, Instant) -> http::Response<Bytes>,
) -> Run {
    let start = Instant::now();
    let mut now = start;
    for token in 0..n {
        sender.queue(token, None, token, now).unwrap();
    }
    let mut run = Run::default();
    let mut in_flight: VecDeque<(Instant, RequestId, u32)> = VecDeque::new();
    let mut reported = 0;
    loop {
        while let Some((id, request)) = poll_send(sender, now) {
            let token = request
                .uri()
                .path()
                .trim_start_matches('/')
                .parse()
                .unwrap();
            in_flight.push_back((now, id, token));
            run.requests += 1;
        }
        while let Some(report) = sender.poll_outcome() {
            let code = report
                .outcome
                .error
                .as_ref()
                .map_or("delivered", |e| e.code());
            run.reports.entry(report.token).or_default().push(code);
            reported += 1;
        }
        while sender.poll_event().is_some() {}
        if reported == n as usize && in_flight.is_empty() {
            break;
        }
        let next_answer = in_flight.front().map(|(sent, ..)| *sent + rtt);
        let timeout = sender.poll_timeout();
        if let Some(timeout) = timeout {
            assert!(
                timeout > now || next_answer.is_some(),
                "spinning at {now:?}"
            );
        }
        now = [next_answer, timeout]
            .into_iter()
            .flatten()
            .min()
            .expect("stuck: nothing in flight, nothing to wait for");
        assert!(
            now - start < Duration::from_secs(3600),
            "the send never ends"
        );
        sender.handle_timeout(now);
        while let Some((sent, id, token)) = in_flight.front().copied() {
            if sent + rtt > now {
                break;
            }
            in_flight.pop_front();
            let response = answer(token, sent + rtt / 2);
            match response.status().as_u16() {
                200 => *run.delivered.entry(token).or_default() += 1,
                429 => run.throttled += 1,
                _ => {}
            }
            respond(sender, id, response, now);
        }
    }
    run.elapsed = now - start;
    run
}

/// A `429` throttling the route, with `Retry-After` when given.
fn throttle(retry_after: Option<u64>) -> http::Response<Bytes> {
    let mut limited = response(429, "QuotaExceeded");
    limited
        .headers_mut()
        .insert("x-throttle", HeaderValue::from_static("route"));
    if let Some(secs) = retry_after {
        let value = HeaderValue::from_str(&secs.to_string()).unwrap();
        limited.headers_mut().insert("retry-after", value);
    }
    limited
}

/// Every token reported once, delivered, and answered `200` exactly once.
fn assert_all_delivered_once(run: &Run, n: u32) {
    for token in 0..n {
        let reports = run.reports.get(&token).map(Vec::as_slice);
        assert_eq!(reports, Some(&["delivered"][..]), "token {token}: {run:?}");
        assert_eq!(run.delivered.get(&token), Some(&1), "token {token}");
    }
}

/// A sliding-window quota of `limit` requests per `window`, answering over HTTP.
struct Quota {
    quota: SlidingQuota,
    /// Throttles say when to come back (FCM); else they do not (APNs).
    retry_after: bool,
}

impl Quota {
    fn new(limit: usize, window: Duration, retry_after: bool) -> Quota {
        Quota {
            quota: SlidingQuota::new(limit, window),
            retry_after,
        }
    }

    /// `200`, or a throttle with the whole seconds until a request would be admitted.
    fn answer(&mut self, at: Instant) -> http::Response<Bytes> {
        match self.quota.admit(at) {
            Ok(()) => response(200, ""),
            Err(wait) => throttle(self.retry_after.then_some(wait.as_secs())),
        }
    }

    /// The shortest time `n` requests can take.
    fn floor(&self, n: usize) -> Duration {
        self.quota.least_time(n)
    }
}

#[test]
fn the_cap_paces_requests() {
    let mut sender = test_sender(Config {
        max_rate: Some(50),
        ..Config::default()
    });
    let run = drive(&mut sender, 100, Duration::from_millis(5), |_, _| {
        response(200, "")
    });
    assert_all_delivered_once(&run, 100);
    // One request of burst, then 50 per second.
    let elapsed = run.elapsed.as_secs_f64();
    assert!((1.9..2.1).contains(&elapsed), "{elapsed} s");
}

#[test]
fn a_route_over_its_quota_follows_it() {
    // Requests in flight when the quota runs out are refused whatever the pacing (here up to
    // 400): the sends are large enough for that first overshoot to stay a small share. With
    // `Retry-After` (FCM) and without (APNs).
    for (n, limit, window_ms, retry_after) in [
        (10_000, 2_000, 2_000, true),
        (10_000, 2_000, 2_000, false),
        (60_000, 5_000, 5_000, true),
        (60_000, 5_000, 5_000, false),
    ] {
        let mut quota = Quota::new(limit, Duration::from_millis(window_ms), retry_after);
        let floor = quota.floor(n);
        let mut sender = test_sender(Config::default());
        let rtt = Duration::from_millis(20);
        let run = drive(&mut sender, n as u32, rtt, |_, at| quota.answer(at));
        assert_all_delivered_once(&run, n as u32);
        let share = run.throttled as f64 / run.requests as f64;
        let ratio = run.elapsed.as_secs_f64() / floor.as_secs_f64();
        println!(
            "{n} over {limit}/{window_ms} ms (Retry-After: {retry_after}): {:.2}% throttled, \
             {ratio:.2}x the quota's time",
            share * 100.0
        );
        assert!(share < 0.05, "{:.2}% of requests throttled", share * 100.0);
        assert!(run.elapsed >= floor, "faster than the quota: {run:?}");
        assert!(ratio <= 3.0, "{ratio:.2}x the quota's time");
        assert!(sender.stats().slowed > 0);
    }
}

#[test]
fn scattered_faults_cost_no_notification() {
    let n = 10_000;
    let mut rng = SplitMix64::new(12);
    let flaky: Vec<bool> = (0..n).map(|_| rng.next_u64() % 100 < 3).collect();
    let mut seen = vec![0u32; n as usize];
    let mut sender = test_sender(Config::default());
    let run = drive(&mut sender, n, Duration::from_millis(10), |token, _| {
        let nth = &mut seen[token as usize];
        *nth += 1;
        if flaky[token as usize] && *nth <= 2 {
            return response(503, "Unavailable");
        }
        match rng.next_u64() % 100 {
            0..=1 => throttle(Some(1)),
            2..=4 => {
                let mut down = response(503, "Unavailable");
                let one = HeaderValue::from_static("1");
                down.headers_mut().insert("retry-after", one);
                down
            }
            _ => response(200, ""),
        }
    });
    assert_all_delivered_once(&run, n);
    let stats = sender.stats();
    println!("{stats:?}, {:?}", run.elapsed);
    assert!(stats.throttled > 0);
    // Scattered throttles never make the route congested.
    assert_eq!(stats.slowed, 0);
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
}

#[test]
fn a_scattered_throttle_delays_its_device_only() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    for token in 0..20 {
        sender.queue(token, None, token, now).unwrap();
    }
    let sent: Vec<_> = std::iter::from_fn(|| poll_send(&mut sender, now)).collect();
    assert_eq!(sent.len(), 20);
    for (i, (id, _)) in sent.into_iter().enumerate() {
        let answer = if i == 3 {
            throttle(Some(5))
        } else {
            response(200, "")
        };
        respond(&mut sender, id, answer, now);
    }
    // The route goes on at once; the device waits its `Retry-After`.
    sender.queue(20, None, 20, now).unwrap();
    assert!(poll_send(&mut sender, now).is_some());
    assert!(poll_send(&mut sender, now).is_none());
    assert_eq!(sender.poll_timeout(), Some(now + Duration::from_secs(5)));
    assert_eq!(sender.stats().throttled, 1);
    assert_eq!(sender.stats().slowed, 0);
}

#[test]
fn a_congested_route_pauses_for_retry_after() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    for token in 0..40 {
        sender.queue(token, None, token, now).unwrap();
    }
    let sent: Vec<_> = std::iter::from_fn(|| poll_send(&mut sender, now)).collect();
    for (i, (id, _)) in sent.into_iter().enumerate() {
        let answer = if i < 20 {
            response(200, "")
        } else {
            throttle(Some(3))
        };
        respond(&mut sender, id, answer, now);
    }
    assert!(sender.stats().slowed > 0);
    // Nothing goes during the pause, not even a new notification; the sender wakes at its end.
    sender.queue(40, None, 40, now).unwrap();
    let later = now + Duration::from_secs(2);
    sender.handle_timeout(later);
    assert!(poll_send(&mut sender, later).is_none());
    let resume = now + Duration::from_secs(3);
    assert_eq!(sender.poll_timeout(), Some(resume));
    sender.handle_timeout(resume);
    // Then it goes at the route's new rate (the pause gave no burst).
    let next = match poll_send(&mut sender, resume) {
        Some(_) => resume,
        None => sender.poll_timeout().unwrap(),
    };
    assert!(
        next < resume + Duration::from_secs(1),
        "{:?}",
        next - resume
    );
    sender.handle_timeout(next);
    assert!(next == resume || poll_send(&mut sender, next).is_some());
}

#[test]
fn the_default_retries_through_many_transient_answers() {
    let mut sender = test_sender(Config::default());
    let mut answered = 0;
    let run = drive(&mut sender, 1, Duration::from_millis(10), |_, _| {
        answered += 1;
        if answered <= 12 {
            response(503, "Unavailable")
        } else {
            response(200, "")
        }
    });
    assert_all_delivered_once(&run, 1);
    assert_eq!(run.requests, 13);
}

#[test]
fn the_retry_deadline_bounds_retries() {
    let mut sender = test_sender(Config {
        retry_deadline: Duration::from_secs(20),
        ..Config::default()
    });
    let run = drive(&mut sender, 1, Duration::from_millis(10), |_, _| {
        response(503, "Unavailable")
    });
    assert_eq!(run.reports[&0], ["unavailable"]);
    assert!(run.elapsed <= Duration::from_secs(20), "{:?}", run.elapsed);
    assert!(run.requests > 3 && run.requests < 30, "{}", run.requests);
    let mut sender = test_sender(Config {
        retry_deadline: Duration::from_secs(20),
        ..Config::default()
    });
    let now = Instant::now();
    sender.queue(1, None, 1, now).unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    let mut limited = response(503, "Unavailable");
    let long = HeaderValue::from_static("21");
    limited.headers_mut().insert("retry-after", long);
    respond(&mut sender, id, limited, now);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 1,
            last_error: "503 Unavailable; the retry deadline passes before the next attempt".into()
        })
    );
}

/// A server that refuses every stream: the free resends, then `max_unanswered_attempts`
/// counted ones, then `unavailable`, whatever `max_attempts` allows.
#[test]
fn every_stream_refused_is_given_up_after_a_few_tries() {
    let config = Config::default();
    let bound = config.max_free_resends + config.max_unanswered_attempts;
    let mut sender = test_sender(config);
    let mut now = Instant::now();
    sender.queue(1, None, 1, now).unwrap();
    let mut sends = 0;
    let report = loop {
        if let Some(report) = sender.poll_outcome() {
            break report;
        }
        match poll_send(&mut sender, now) {
            Some((id, _)) => {
                sends += 1;
                end(&mut sender, id, StreamEnd::Refused, now);
            }
            None => {
                now = sender.poll_timeout().unwrap();
                sender.handle_timeout(now);
            }
        }
    };
    assert_eq!(sends, bound);
    assert_eq!(
        report.outcome.error.as_ref().map(|e| e.code()),
        Some("unavailable")
    );
}
