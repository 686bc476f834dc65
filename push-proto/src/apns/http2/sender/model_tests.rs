//! A model-based test: random devices with random server behaviour, a simulated APNs server
//! and simulated time, against the APNs provider on the engine (ported from the former APNs
//! sender's model test; connection policy is the engine model test's business, so the pool
//! here is one fixed connection and the stall timeout is out of reach).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{alert, reason, response, token};
use super::*;
use crate::Full;
use crate::apns::http2::jwt::tests::test_signer;
use crate::engine::test_support::{
    MAX_ATTEMPTS, MAX_FREE, OneConn, Step, step, take_outcomes, wait,
};
use crate::engine::{Action, Input, PoolConfig, RequestId, StreamEnd};

/// What the simulated server does with one device's requests.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// 200.
    Deliver,
    /// 400 BadDeviceToken.
    BadDeviceToken,
    /// 410 Unregistered with this timestamp.
    Unregistered(u64),
    /// 429 TooManyRequests `k` times (with `Retry-After: 1` when the flag is set), then 200.
    TooManyRequests(u32, bool),
    /// 503 once, then 200.
    Unavailable,
    /// 403 ExpiredProviderToken once, then 200.
    ExpiredOnce,
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        3 => Just(Plan::Deliver),
        1 => Just(Plan::BadDeviceToken),
        1 => (1u64..u64::from(u32::MAX)).prop_map(Plan::Unregistered),
        1 => (1u32..5, any::<bool>()).prop_map(|(k, r)| Plan::TooManyRequests(k, r)),
        1 => Just(Plan::Unavailable),
        1 => Just(Plan::ExpiredOnce),
    ]
}

struct Server {
    plans: Vec<Plan>,
    /// Requests processed per device.
    served: Vec<u32>,
    delivered: Vec<u32>,
    /// Streams ended by GOAWAY per device.
    refused: Vec<u32>,
}

impl Server {
    fn answer(&mut self, device: usize) -> http::Response<Bytes> {
        let served = self.served[device];
        self.served[device] += 1;
        let ok = || response(200, "");
        let answer = match self.plans[device] {
            Plan::Deliver => ok(),
            Plan::BadDeviceToken => reason(400, "BadDeviceToken"),
            Plan::Unregistered(at) => response(
                410,
                &format!(r#"{{"reason":"Unregistered","timestamp":{at}}}"#),
            ),
            Plan::TooManyRequests(k, with_retry_after) if served < k => {
                let mut answer = reason(429, "TooManyRequests");
                if with_retry_after {
                    answer
                        .headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("1"));
                }
                answer
            }
            Plan::Unavailable if served == 0 => reason(503, "ServiceUnavailable"),
            Plan::ExpiredOnce if served == 0 => reason(403, "ExpiredProviderToken"),
            _ => ok(),
        };
        if answer.status() == 200 {
            self.delivered[device] += 1;
        }
        answer
    }

    /// The error code the device must end with.
    fn expected(&self, device: usize) -> &'static str {
        match self.plans[device] {
            Plan::Deliver | Plan::Unavailable | Plan::ExpiredOnce => "delivered",
            Plan::BadDeviceToken | Plan::Unregistered(_) => "invalid_device",
            Plan::TooManyRequests(k, _) if k < MAX_ATTEMPTS => "delivered",
            Plan::TooManyRequests(..) => "unavailable",
        }
    }
}

fn run(plans: Vec<Plan>, steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let mut now = start;
    let auth = TokenAuth::new(test_signer(), "TEAM123456", start, 1_700_000_000).unwrap();
    let mut config = Config::new(PRODUCTION_URL).topic("com.example.app");
    config.engine.max_attempts = MAX_ATTEMPTS;
    // Simulated waits add up to hours: attempts bound the retries here, not time.
    config.engine.retry_deadline = Duration::from_secs(1 << 30);
    config.engine.seed = seed;
    config.engine.max_pending = 8;
    config.engine.pool = PoolConfig::default().fixed(1);
    config.engine.pool.stall_timeout = Duration::from_secs(1 << 30);
    let mut sender: Sender<usize> = sender(config, Auth::Token(auth)).unwrap();
    let devices = plans.len();
    let mut server = Server {
        plans,
        served: vec![0; devices],
        delivered: vec![0; devices],
        refused: vec![0; devices],
    };
    let mut conn = OneConn::new();
    let mut flying: Vec<(RequestId, usize)> = Vec::new();
    let mut reports: Vec<Option<Report<usize>>> = vec![None; devices];
    let mut next_device = 0;
    let by_token: HashMap<ApnsToken, usize> = (0..devices).map(|d| (token(d as u8), d)).collect();

    let mut steps = steps.into_iter();
    for _ in 0..20_000 {
        // Offer devices until the queue is full.
        while next_device < devices {
            match sender.queue(token(next_device as u8), alert(), next_device, now) {
                Ok(()) => next_device += 1,
                Err(Full(_)) => break,
            }
        }
        while let Some(action) = sender.poll_action(now) {
            match action {
                Action::Dial(id) => conn.dial(&mut sender, id, now)?,
                Action::Send { id, request, .. } => {
                    prop_assert!(sender.in_flight() <= conn.limit as usize, "stream limit");
                    let hex = request.uri().path().trim_start_matches("/3/device/");
                    let device = by_token[&ApnsToken::parse(hex).unwrap()];
                    flying.push((id, device));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        take_outcomes(&mut sender, &mut reports)?;
        if next_device == devices && sender.is_idle() {
            break;
        }
        let step = steps.next().unwrap_or({
            // Script over: a generous limit, answer everything, let time run.
            if conn.limit < 10 {
                Step::Limit(10)
            } else if flying.is_empty() {
                Step::Wait(0)
            } else {
                Step::Answer(0)
            }
        });
        match step {
            Step::Answer(_) | Step::GoAway(_) if flying.is_empty() => {}
            Step::Answer(i) => {
                let (id, device) = flying.remove(i % flying.len());
                let response = server.answer(device);
                sender.handle(Input::Response { id, response }, now);
            }
            Step::GoAway(i) => {
                for (id, device) in flying.split_off(i % flying.len()) {
                    server.refused[device] += 1;
                    let end = StreamEnd::GoAway;
                    sender.handle(Input::StreamEnd { id, end }, now);
                }
            }
            Step::Limit(n) => conn.set_limit(&mut sender, n, now),
            Step::Wait(ms) => wait(&mut sender, &mut now, ms)?,
            Step::Fail(_) | Step::Token(_) => unreachable!("not scripted here"),
        }
    }
    prop_assert!(sender.is_idle(), "the sender finishes");
    for (device, report) in reports.iter().enumerate() {
        let report = report.as_ref();
        prop_assert!(report.is_some(), "no outcome for {device}");
        let report = report.unwrap();
        let code = report
            .outcome
            .error
            .as_ref()
            .map_or("delivered", DeviceError::code);
        // Changed with the engine: GOAWAY'd streams are free only MAX_FREE times; beyond
        // that they count, and a device may run out of attempts.
        let refused_too_often = server.refused[device] > MAX_FREE && code == "unavailable";
        if !refused_too_often {
            prop_assert_eq!(code, server.expected(device), "device {}", device);
        }
        prop_assert!(server.delivered[device] <= 1, "delivered twice: {}", device);
        prop_assert_eq!(server.delivered[device] == 1, code == "delivered");
        prop_assert!(server.served[device] <= MAX_ATTEMPTS + 1);
        if let Plan::Unregistered(at) = server.plans[device] {
            prop_assert_eq!(report.unregistered_at, Some(at));
            prop_assert_eq!(report.reason.as_deref(), Some("Unregistered"));
        }
    }
    // Tokens were never replaced faster than every 20 minutes: at most one per 20 minutes
    // of simulated time, plus the first.
    let minutes = now.duration_since(start).as_secs() / 60;
    prop_assert!(sender.stats().token_refreshes <= 1 + minutes / 20);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn one_outcome_per_device_and_at_most_one_delivery(
        plans in proptest::collection::vec(plan(), 1..24),
        steps in proptest::collection::vec(step(false), 0..200),
        seed in any::<u64>(),
    ) {
        run(plans, steps, seed)?;
    }
}
