//! Model-based test: the GCM protocol on the engine against a simulated server with scripted
//! per-token results, random whole-request 503s and transport failures, on simulated time,
//! over connections that take one request each (HTTP/1.1). Every token ends in exactly one
//! correct outcome, whatever the batches, the answer order and the retries.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::tests::{ids, message, response, token};
use super::*;
use crate::engine::{Action, Input, PoolConfig, StreamEnd};
use crate::gcm::HttpDate;
use crate::{Outcome, Payload};

/// What the server answers for one token, by how often it has seen it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    Ok,
    Canonical,
    NotRegistered,
    MessageTooBig,
    UnavailableThenOk(u32),
    AlwaysUnavailable,
    RateLimitedOnce,
}

/// What happens to one whole request.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Normal,
    ServiceUnavailable { retry_after: Option<u64> },
    ServiceUnavailableUntil(u64),
    TransportFailure,
}

const MAX_ATTEMPTS: u32 = 4;

struct Server {
    scripts: Vec<Script>,
    fates: Vec<Fate>,
    next_fate: usize,
    /// Requests that carried each token, whatever became of them.
    attempts: Vec<u32>,
    /// Times each token reached the per-token logic.
    seen: Vec<u32>,
    /// Times each token was delivered.
    delivered: Vec<u32>,
}

impl Server {
    fn answer(&mut self, request: &http::Request<Bytes>) -> Result<http::Response<Bytes>, String> {
        let indices: Vec<usize> = ids(request)
            .iter()
            .map(|id| id[1..].parse().unwrap())
            .collect();
        for &index in &indices {
            self.attempts[index] += 1;
        }
        let fate = self
            .fates
            .get(self.next_fate)
            .copied()
            .unwrap_or(Fate::Normal);
        self.next_fate += 1;
        match fate {
            Fate::TransportFailure => Err("connection reset".into()),
            Fate::ServiceUnavailable { retry_after } => {
                let seconds = retry_after.map(|s| s.to_string());
                let headers: Vec<_> = seconds
                    .iter()
                    .map(|s| ("retry-after", s.as_str()))
                    .collect();
                Ok(response(503, "", &headers))
            }
            Fate::ServiceUnavailableUntil(seconds) => {
                let date = HttpDate::from_unix(1_000_000_000);
                let until = HttpDate::from_unix(1_000_000_000 + i64::try_from(seconds).unwrap());
                let (date, until) = (date.to_string(), until.to_string());
                Ok(response(
                    503,
                    "",
                    &[("date", &date), ("retry-after", &until)],
                ))
            }
            Fate::Normal => {
                let results: Vec<Value> = indices.iter().map(|&i| self.result(i)).collect();
                let body = json!({"multicast_id": 1, "results": results}).to_string();
                Ok(response(200, &body, &[]))
            }
        }
    }

    fn result(&mut self, index: usize) -> Value {
        self.seen[index] += 1;
        let seen = self.seen[index];
        let error = |code: &str| json!({ "error": code });
        match self.scripts[index] {
            Script::NotRegistered => error("NotRegistered"),
            Script::MessageTooBig => error("MessageTooBig"),
            Script::AlwaysUnavailable => error("Unavailable"),
            Script::UnavailableThenOk(k) if seen <= k => error("InternalServerError"),
            Script::RateLimitedOnce if seen == 1 => error("DeviceMessageRateExceeded"),
            Script::Canonical => {
                self.delivered[index] += 1;
                json!({"message_id": "m", "registration_id": format!("c{index}")})
            }
            _ => {
                self.delivered[index] += 1;
                json!({"message_id": "m"})
            }
        }
    }
}

fn scripts() -> impl Strategy<Value = Script> {
    prop_oneof![
        Just(Script::Ok),
        Just(Script::Canonical),
        Just(Script::NotRegistered),
        Just(Script::MessageTooBig),
        (1u32..6).prop_map(Script::UnavailableThenOk),
        Just(Script::AlwaysUnavailable),
        Just(Script::RateLimitedOnce),
    ]
}

fn fates() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Normal),
        1 => proptest::option::of(0u64..5)
            .prop_map(|retry_after| Fate::ServiceUnavailable { retry_after }),
        1 => (0u64..5).prop_map(Fate::ServiceUnavailableUntil),
        1 => Just(Fate::TransportFailure),
    ]
}

/// Runs the sender against the server until it is idle; returns every outcome.
fn run(sender: &mut Sender<usize>, server: &mut Server, reverse: bool) -> Vec<Outcome<usize>> {
    let mut now = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..10_000 {
        let mut requests = Vec::new();
        while let Some(action) = sender.poll_action(now) {
            match action {
                Action::Dial(conn) => {
                    let connected = Input::Connected {
                        conn,
                        max_streams: 1,
                    };
                    sender.handle(connected, now);
                }
                Action::Send { id, request, .. } => requests.push((id, request)),
                Action::Close(_) => {}
                Action::CredentialRequest(_) => panic!("an API key needs no request"),
            }
        }
        if reverse {
            requests.reverse();
        }
        for (id, request) in requests.iter().cloned() {
            let input = match server.answer(&request) {
                Ok(response) => Input::Response { id, response },
                Err(reason) => Input::StreamEnd {
                    id,
                    end: StreamEnd::ConnectionError(reason),
                },
            };
            sender.handle(input, now);
        }
        outcomes.extend(std::iter::from_fn(|| sender.poll_outcome()).map(|r| r.outcome));
        if requests.is_empty() {
            match sender.poll_timeout() {
                Some(due) => {
                    now = now.max(due);
                    sender.handle_timeout(now);
                }
                None => break,
            }
        }
    }
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_token_ends_in_exactly_one_correct_outcome(
        scripts in proptest::collection::vec(scripts(), 1..25),
        fates in proptest::collection::vec(fates(), 0..12),
        batch_size in 1usize..6,
        connections in 1u32..4,
        seed in any::<u64>(),
        flush in any::<bool>(),
        reverse in any::<bool>(),
    ) {
        let mut config = Config {
            batch_size,
            ..Config::new("k")
        };
        config.engine.pool = PoolConfig::default().automatic(connections);
        config.engine.max_attempts = MAX_ATTEMPTS;
        // Every attempt of this model may end unanswered (transport failures): the bound on
        // those is the engine's own test (pacing_tests); here every attempt counts alike.
        config.engine.max_unanswered_attempts = MAX_ATTEMPTS;
        config.engine.retry_deadline = Duration::from_secs(1 << 30);
        config.engine.initial_backoff = Duration::from_millis(100);
        config.engine.max_backoff = Duration::from_secs(2);
        config.engine.seed = seed;
        let mut sender = sender(config).unwrap();
        let message = message(&Payload::new().data("k", "v"));
        let start = Instant::now();
        for index in 0..scripts.len() {
            let token = token(&format!("t{index}"));
            sender.queue(token, message.clone(), index, start).unwrap();
        }
        if flush {
            sender.flush();
        }
        let count = scripts.len();
        let mut server = Server {
            scripts,
            fates,
            next_fate: 0,
            attempts: vec![0; count],
            seen: vec![0; count],
            delivered: vec![0; count],
        };
        let mut outcomes = run(&mut sender, &mut server, reverse);
        prop_assert!(sender.is_idle());
        prop_assert_eq!(sender.in_flight(), 0);
        outcomes.sort_by_key(|outcome| outcome.tag);
        let tags: Vec<usize> = outcomes.iter().map(|outcome| outcome.tag).collect();
        prop_assert_eq!(tags, (0..count).collect::<Vec<_>>(), "one outcome per token");

        for (index, outcome) in outcomes.iter().enumerate() {
            let script = server.scripts[index];
            let delivered = server.delivered[index];
            prop_assert!(server.attempts[index] <= MAX_ATTEMPTS);
            prop_assert!(delivered <= 1, "token {} delivered {} times", index, delivered);
            prop_assert_eq!(outcome.error.is_none(), delivered == 1, "{:?}", outcome);
            let expected_new = (script == Script::Canonical && delivered == 1)
                .then(|| format!("c{index}"));
            prop_assert_eq!(&outcome.new_token, &expected_new);
            match &outcome.error {
                None => {}
                Some(DeviceError::Unavailable { attempts, .. }) => {
                    prop_assert_eq!(*attempts, MAX_ATTEMPTS);
                    prop_assert_eq!(server.attempts[index], MAX_ATTEMPTS);
                    let permanent = matches!(
                        script,
                        Script::NotRegistered | Script::MessageTooBig
                    );
                    prop_assert!(!permanent || server.seen[index] == 0);
                }
                Some(DeviceError::InvalidDevice) => {
                    prop_assert_eq!(script, Script::NotRegistered);
                }
                Some(DeviceError::Rejected { provider: "gcm", code }) => {
                    prop_assert_eq!(script, Script::MessageTooBig);
                    prop_assert_eq!(code, "MessageTooBig");
                }
                Some(other) => prop_assert!(false, "unexpected {:?}", other),
            }
            if script == Script::AlwaysUnavailable {
                let is_unavailable = matches!(outcome.error, Some(DeviceError::Unavailable { .. }));
                prop_assert!(is_unavailable);
            }
        }
        let stats = sender.stats();
        prop_assert_eq!(stats.delivered + stats.failed, count as u64);
    }
}
