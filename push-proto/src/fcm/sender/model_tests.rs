//! A model-based test: random devices with random server behaviour, a simulated FCM server, a
//! simulated token endpoint and simulated time, against the FCM provider on the engine
//! (ported from the former FCM sender's model test; connection policy is the engine model
//! test's business, so the pool here is one fixed connection and the stall timeout is out of
//! reach).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{ZeroSigner, answer, delivered, message, token};
use super::*;
use crate::Full;
use crate::engine::test_support::{
    MAX_ATTEMPTS, MAX_FREE, OneConn, Step, step, take_outcomes, wait,
};
use crate::engine::{Action, Input, PoolConfig, RequestId, StreamEnd};
use crate::fcm::message::SendRequest;
use crate::fcm::oauth::tests::grant;
use crate::fcm::response::tests::rpc_error;
use crate::fcm::service_account::tests::account;

/// What the simulated server does with one device's requests.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// 200.
    Deliver,
    /// 404 UNREGISTERED.
    Unregistered,
    /// 400 INVALID_ARGUMENT on `message.token`.
    BadToken,
    /// 429 QUOTA_EXCEEDED `k` times (with `Retry-After: 1` when the flag is set), then 200.
    Quota(u32, bool),
    /// 503 UNAVAILABLE once, then 200.
    UnavailableOnce,
    /// A bare 500 once, then 200.
    InternalOnce,
    /// 401 UNAUTHENTICATED once (the access token was revoked), then 200.
    UnauthenticatedOnce,
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        3 => Just(Plan::Deliver),
        1 => Just(Plan::Unregistered),
        1 => Just(Plan::BadToken),
        1 => (1u32..5, any::<bool>()).prop_map(|(k, r)| Plan::Quota(k, r)),
        1 => Just(Plan::UnavailableOnce),
        1 => Just(Plan::InternalOnce),
        1 => Just(Plan::UnauthenticatedOnce),
    ]
}

struct Server {
    plans: Vec<Plan>,
    /// Requests processed per device.
    served: Vec<u32>,
    delivered: Vec<u32>,
    /// Counted transient results per device (transient answers and transport failures).
    transient: Vec<u32>,
    /// Streams ended by GOAWAY per device.
    refused: Vec<u32>,
}

impl Server {
    fn answer(&mut self, device: usize) -> http::Response<Bytes> {
        let served = self.served[device];
        self.served[device] += 1;
        let answer = match self.plans[device] {
            Plan::Deliver => delivered(device as u32),
            Plan::Unregistered => answer(
                404,
                &rpc_error(404, "NOT_FOUND", Some("UNREGISTERED"), None),
            ),
            Plan::BadToken => answer(
                400,
                &rpc_error(
                    400,
                    "INVALID_ARGUMENT",
                    Some("INVALID_ARGUMENT"),
                    Some("message.token"),
                ),
            ),
            Plan::Quota(k, with_retry_after) if served < k => {
                self.transient[device] += 1;
                let mut quota = answer(
                    429,
                    &rpc_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), None),
                );
                if with_retry_after {
                    quota
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                }
                quota
            }
            Plan::UnavailableOnce if served == 0 => {
                self.transient[device] += 1;
                answer(
                    503,
                    &rpc_error(503, "UNAVAILABLE", Some("UNAVAILABLE"), None),
                )
            }
            Plan::InternalOnce if served == 0 => {
                self.transient[device] += 1;
                answer(500, "")
            }
            Plan::UnauthenticatedOnce if served == 0 => {
                answer(401, r#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#)
            }
            _ => delivered(device as u32),
        };
        if answer.status() == 200 {
            self.delivered[device] += 1;
        }
        answer
    }

    /// The error code the device must end with.
    fn expected(&self, device: usize) -> &'static str {
        if self.transient[device] >= MAX_ATTEMPTS {
            return "unavailable";
        }
        match self.plans[device] {
            Plan::Unregistered => "invalid_device",
            Plan::BadToken => "invalid_token_format",
            _ => "delivered",
        }
    }
}

fn run(plans: Vec<Plan>, steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let mut now = start;
    // Token hiccups are retried quickly and never given up on here, so that every device's
    // outcome is decided by the FCM answers alone (giving up is a unit test).
    let auth = OAuth::new(&account(), ZeroSigner, start, 1_700_000_000)
        .unwrap()
        .retry(
            u32::MAX,
            Duration::from_millis(100),
            Duration::from_secs(2),
            seed,
        );
    let mut config = Config::new("demo-project");
    config.engine.max_attempts = MAX_ATTEMPTS;
    // Simulated waits add up to hours: attempts bound the retries here, not time.
    config.engine.retry_deadline = Duration::from_secs(1 << 30);
    config.engine.seed = seed;
    config.engine.max_pending = 8;
    config.engine.max_in_flight = 4;
    config.engine.pool = PoolConfig::default().fixed(1);
    config.engine.pool.stall_timeout = Duration::from_secs(1 << 30);
    let mut sender: Sender<usize> = sender(config, auth).unwrap();
    let devices = plans.len();
    let mut server = Server {
        plans,
        served: vec![0; devices],
        delivered: vec![0; devices],
        transient: vec![0; devices],
        refused: vec![0; devices],
    };
    let mut conn = OneConn::new();
    let mut flying: Vec<(RequestId, usize, String)> = Vec::new();
    let mut token_in_flight = false;
    let mut grants = 0u32;
    let mut reports: Vec<Option<Report<usize>>> = vec![None; devices];
    let mut next_device = 0;
    let by_token: HashMap<String, usize> = (0..devices)
        .map(|d| (token(d).as_str().to_owned(), d))
        .collect();

    let mut steps = steps.into_iter();
    for _ in 0..20_000 {
        while next_device < devices {
            match sender.queue(token(next_device), message(None), next_device, now) {
                Ok(()) => next_device += 1,
                Err(Full(_)) => break,
            }
        }
        while let Some(action) = sender.poll_action(now) {
            match action {
                Action::CredentialRequest(request) => {
                    prop_assert!(!token_in_flight, "two token requests in flight");
                    prop_assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
                    token_in_flight = true;
                }
                Action::Dial(id) => conn.dial(&mut sender, id, now)?,
                Action::Send { id, request, .. } => {
                    prop_assert!(
                        sender.in_flight() <= conn.limit.min(4) as usize,
                        "in-flight limit"
                    );
                    let body: SendRequest = serde_json::from_slice(request.body()).unwrap();
                    let device = by_token[&body.message.token];
                    let bearer = request.headers()[http::header::AUTHORIZATION]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    flying.push((id, device, bearer));
                }
                Action::Close(other) => prop_assert!(false, "closed {}", other),
            }
        }
        take_outcomes(&mut sender, &mut reports)?;
        if next_device == devices && sender.is_idle() {
            break;
        }
        let step = steps.next().unwrap_or({
            // Script over: tokens granted, a generous limit, everything answered, time runs.
            if token_in_flight {
                Step::Token(0)
            } else if conn.limit < 10 {
                Step::Limit(10)
            } else if flying.is_empty() {
                Step::Wait(0)
            } else {
                Step::Answer(0)
            }
        });
        match step {
            Step::Answer(_) | Step::Fail(_) | Step::GoAway(_) if flying.is_empty() => {}
            Step::Answer(i) => {
                let (id, device, bearer) = flying.remove(i % flying.len());
                // A request made with a revoked token gets 401 like the plan's first answer.
                let answer = server.answer(device);
                prop_assert!(bearer.starts_with("Bearer token-"));
                sender.handle(
                    Input::Response {
                        id,
                        response: answer,
                    },
                    now,
                );
            }
            Step::Fail(i) => {
                let (id, device, _) = flying.remove(i % flying.len());
                server.transient[device] += 1;
                let end = StreamEnd::ConnectionError("connection reset".into());
                sender.handle(Input::StreamEnd { id, end }, now);
            }
            Step::GoAway(i) => {
                for (id, device, _) in flying.split_off(i % flying.len()) {
                    server.refused[device] += 1;
                    // Changed with the engine: free MAX_FREE times, then counted.
                    if server.refused[device] > MAX_FREE {
                        server.transient[device] += 1;
                    }
                    let end = StreamEnd::GoAway;
                    sender.handle(Input::StreamEnd { id, end }, now);
                }
            }
            Step::Limit(n) => conn.set_limit(&mut sender, n, now),
            Step::Token(_) if !token_in_flight => {}
            Step::Token(kind) => {
                token_in_flight = false;
                match kind {
                    0 => {
                        grants += 1;
                        let grant = grant(&format!("token-{grants}"), 3600);
                        sender.handle(Input::CredentialResponse(grant), now);
                    }
                    1 => sender.handle(Input::CredentialResponse(answer(503, "")), now),
                    _ => sender.handle(Input::CredentialFailure("connection reset".into()), now),
                }
            }
            Step::Wait(ms) => wait(&mut sender, &mut now, ms)?,
        }
    }
    prop_assert!(sender.is_idle(), "the sender finishes");
    for (device, report) in reports.iter().enumerate() {
        let report = report.as_ref();
        prop_assert!(report.is_some(), "no outcome for {}", device);
        let report = report.unwrap();
        let code = report
            .outcome
            .error
            .as_ref()
            .map_or("delivered", DeviceError::code);
        prop_assert_eq!(code, server.expected(device), "device {}", device);
        prop_assert!(server.delivered[device] <= 1, "delivered twice: {}", device);
        prop_assert_eq!(server.delivered[device] == 1, code == "delivered");
        if code == "delivered" {
            prop_assert_eq!(report.id.clone(), Some(device.to_string()));
        }
        // Counted attempts, plus the one resend after a refused access token.
        prop_assert!(server.served[device] + server.transient[device] <= 2 * MAX_ATTEMPTS + 1);
        prop_assert!(server.served[device] <= MAX_ATTEMPTS + 1);
    }
    let stats = sender.stats();
    prop_assert_eq!(stats.token_refreshes, u64::from(grants));
    prop_assert_eq!(stats.delivered + stats.failed, devices as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn one_outcome_per_device_and_delivered_exactly_when_the_server_delivered(
        plans in proptest::collection::vec(plan(), 1..24),
        steps in proptest::collection::vec(step(true), 0..200),
        seed in any::<u64>(),
    ) {
        run(plans, steps, seed)?;
    }
}
