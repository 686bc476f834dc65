//! The generic engine with a tiny test protocol and credential: every verdict, every stream
//! end, connections closing under requests, credentials renewed or failing, receipts, the
//! pool giving up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::*;
use crate::engine::credential::Grant;
use crate::engine::test_support::{end, poll_send, respond, response, sends};
use crate::engine::{Answer, Batch, Verdict};
use crate::engine::{CredentialStats, PoolConfig};

/// A protocol whose answers are spelled by their status: the request goes to
/// `https://test/<token>,<token>...` with header `x-id: <meta>`; see
/// [`TestProtocol::classify`]. With `batch` above 1, notifications with the same time to live
/// share requests.
#[derive(Debug, Default)]
pub(super) struct TestProtocol {
    /// The last meta handed out.
    pub(super) next: u32,
    /// Most notifications per request (0 and 1: one).
    pub(super) batch: usize,
    /// How long a partial batch waits for more.
    pub(super) linger: Duration,
}

/// A test message: its time to live.
pub(super) type Ttl = Option<Duration>;

impl TestProtocol {
    /// The answer `status` spells (see [`TestProtocol::classify`]).
    fn answer(status: u16, response: &http::Response<Bytes>) -> Answer {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after")
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        let verdict = match status {
            200 => Verdict::Delivered,
            410 => Verdict::InvalidDevice {
                since: header("x-since").and_then(|s| s.parse().ok()),
            },
            400 => Verdict::InvalidToken,
            413 => Verdict::PayloadTooLarge,
            429 if header("x-throttle").is_some() => Verdict::Throttled { retry_after },
            429 | 503 => Verdict::Retry {
                retry_after,
                client_wide: status == 503,
            },
            401 => Verdict::Reauthenticate,
            403 => Verdict::ClientError,
            _ => Verdict::Rejected,
        };
        let reason = String::from_utf8_lossy(response.body()).into_owned();
        Answer {
            status,
            verdict,
            described: format!("{status} {reason}"),
            reason: (!reason.is_empty()).then_some(reason),
            id: header("x-answer-id"),
            new_token: header("x-new-token"),
        }
    }
}

impl Protocol for TestProtocol {
    type Token = u32;
    type Message = Ttl;
    type Meta = u32;

    fn provider(&self) -> &'static str {
        "test"
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    fn batchable(&self, a: &Ttl, b: &Ttl) -> bool {
        a == b
    }

    fn linger(&self) -> Duration {
        self.linger
    }

    fn prepare(&mut self, _message: &Ttl) -> u32 {
        self.next += 1;
        self.next
    }

    fn request(
        &self,
        batch: Batch<'_, u32>,
        _message: &Ttl,
        meta: &u32,
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Bytes>, DeviceError> {
        let tokens: Vec<String> = batch.tokens().map(u32::to_string).collect();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("https://test/{}", tokens.join(",")))
            .header("x-id", meta.to_string());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        Ok(request.body(Bytes::new()).unwrap())
    }

    /// 200 delivered (`x-answer-id` is the provider's id, `x-new-token` a new token), 410
    /// invalid device (`x-since`), 400 invalid token, 413 too large, 429 and 503 retry
    /// (`retry-after` seconds; 503 also client-wide; 429 with `x-throttle` throttles the
    /// route), 401 reauthenticate, 403 client error,
    /// anything else rejected. The body is the reason. A header `x-each: <status>,...` answers
    /// a batch notification by notification, each as its status says.
    fn classify(&self, response: &http::Response<Bytes>, _batch: Batch<'_, u32>) -> Answers {
        let each = response
            .headers()
            .get("x-each")
            .and_then(|v| v.to_str().ok());
        match each {
            Some(statuses) => Answers::Each(
                statuses
                    .split(',')
                    .filter_map(|status| status.parse().ok())
                    .map(|status| Self::answer(status, response))
                    .collect(),
            ),
            None => Answers::All(Self::answer(response.status().as_u16(), response)),
        }
    }

    fn too_large(&self, _message: &Ttl) -> DeviceError {
        DeviceError::PayloadTooLarge { size: 2, limit: 1 }
    }

    fn time_to_live(&self, message: &Ttl) -> Option<Duration> {
        *message
    }

    fn sent_id(&self, meta: &u32) -> Option<String> {
        Some(format!("sent-{meta}"))
    }

    fn refuses_credential(&self, response: &http::Response<Bytes>) -> bool {
        response.status() == 401
    }
}

/// A credential fetched from `https://token/`: 200 grants generation n+1, 400 refuses for
/// good, anything else (or a transport failure) is unavailable.
#[derive(Debug, Default)]
pub(super) struct TestCredential {
    generation: u64,
    ready: bool,
    requesting: bool,
    /// `poll_request` cannot even build the request.
    pub(super) broken: bool,
    events: VecDeque<String>,
    stats: CredentialStats,
}

impl Credential for TestCredential {
    type Event = String;

    fn grant(&mut self, _now: Instant) -> Grant {
        if self.ready {
            Grant::Ready {
                authorization: Some(
                    HeaderValue::from_str(&format!("gen-{}", self.generation)).unwrap(),
                ),
                generation: self.generation,
            }
        } else {
            Grant::Wait
        }
    }

    fn handle_rejected(&mut self, generation: u64) {
        if generation == self.generation {
            self.ready = false;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_request(&mut self, _now: Instant) -> Option<Result<http::Request<Bytes>, String>> {
        if self.ready || self.requesting {
            return None;
        }
        if self.broken {
            return Some(Err("no key".into()));
        }
        self.requesting = true;
        self.stats.requests += 1;
        Some(Ok(http::Request::post("https://token/")
            .body(Bytes::new())
            .unwrap()))
    }

    fn handle_response(
        &mut self,
        response: &http::Response<Bytes>,
        _now: Instant,
    ) -> Option<CredentialFailure> {
        self.requesting = false;
        match response.status().as_u16() {
            200 => {
                self.generation += 1;
                self.ready = true;
                self.stats.refreshes += 1;
                self.events.push_back(format!("token {}", self.generation));
                None
            }
            400 => {
                self.stats.failures += 1;
                Some(CredentialFailure::Refused("token refused".into()))
            }
            status => {
                self.stats.failures += 1;
                Some(CredentialFailure::Unavailable(format!(
                    "token endpoint {status}"
                )))
            }
        }
    }

    fn handle_failure(&mut self, reason: &str, _now: Instant) -> Option<CredentialFailure> {
        self.requesting = false;
        self.stats.failures += 1;
        Some(CredentialFailure::Unavailable(reason.to_owned()))
    }

    fn poll_event(&mut self) -> Option<String> {
        self.events.pop_front()
    }

    fn stats(&self) -> CredentialStats {
        self.stats
    }
}

pub(super) type TestSender = Sender<TestProtocol, TestCredential, u32>;

/// A sender whose credential is already granted (generation 1).
pub(super) fn test_sender(config: Config) -> TestSender {
    test_sender_with(TestProtocol::default(), config)
}

/// A sender speaking `protocol` whose credential is already granted (generation 1).
pub(super) fn test_sender_with(protocol: TestProtocol, config: Config) -> TestSender {
    let credential = TestCredential {
        generation: 1,
        ready: true,
        ..TestCredential::default()
    };
    Sender::new(protocol, credential, config).unwrap()
}

fn answer(status: u16, reason: &str) -> http::Response<Bytes> {
    response(status, reason)
}

fn code(report: &Report<u32, u32>) -> &'static str {
    report
        .outcome
        .error
        .as_ref()
        .map_or("delivered", DeviceError::code)
}

/// Sends one notification, answers it with `answer`, returns the sender.
fn answer_one(config: Config, answer: http::Response<Bytes>) -> TestSender {
    let now = Instant::now();
    let mut sender = test_sender(config);
    sender.queue(1, None, 1, now).unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, id, answer, now);
    sender
}

#[test]
fn final_verdicts_end_in_one_report_with_the_receipt() {
    let mut ok = answer(200, "");
    ok.headers_mut()
        .insert("x-answer-id", HeaderValue::from_static("p-7"));
    let mut gone = answer(410, "Unregistered");
    gone.headers_mut()
        .insert("x-since", HeaderValue::from_static("1234"));
    let cases = [
        (ok, "delivered", None, Some("p-7"), None, false),
        (
            answer(200, ""),
            "delivered",
            None,
            Some("sent-1"),
            None,
            false,
        ),
        (
            gone,
            "invalid_device",
            Some("Unregistered"),
            Some("sent-1"),
            Some(1234),
            false,
        ),
        (
            answer(400, "Bad"),
            "invalid_token_format",
            Some("Bad"),
            Some("sent-1"),
            None,
            false,
        ),
        (
            answer(413, "Big"),
            "payload_too_large",
            Some("Big"),
            Some("sent-1"),
            None,
            false,
        ),
        (
            answer(403, "Forbidden"),
            "rejected",
            Some("Forbidden"),
            Some("sent-1"),
            None,
            true,
        ),
        (
            answer(404, "Nope"),
            "rejected",
            Some("Nope"),
            Some("sent-1"),
            None,
            false,
        ),
    ];
    for (response, expected, reason, id, since, client_wide) in cases {
        let status = response.status().as_u16();
        let mut sender = answer_one(Config::default(), response);
        let report = sender.poll_outcome().unwrap();
        assert_eq!(code(&report), expected, "{status}");
        assert_eq!(report.status, Some(status));
        assert_eq!(report.reason.as_deref(), reason, "{status}");
        assert_eq!(report.id.as_deref(), id, "{status}");
        assert_eq!(report.unregistered_at, since, "{status}");
        let events: Vec<_> = std::iter::from_fn(|| sender.poll_event()).collect();
        let expected_events = if client_wide {
            vec![Event::ClientError {
                status,
                reason: reason.unwrap_or_default().to_owned(),
            }]
        } else {
            Vec::new()
        };
        assert_eq!(events, expected_events, "{status}");
        assert!(sender.is_idle());
        let stats = sender.stats();
        assert_eq!((stats.requests, stats.responses, stats.dials), (1, 1, 1));
        assert_eq!(stats.delivered + stats.failed, 1);
    }
}

#[test]
fn rejected_and_client_errors_name_the_provider() {
    let mut sender = answer_one(Config::default(), answer(403, "Forbidden"));
    assert_eq!(
        sender.poll_outcome().unwrap().outcome.error,
        Some(DeviceError::Rejected {
            provider: "test",
            code: "403 Forbidden".into()
        })
    );
}

#[test]
fn retries_honour_retry_after_then_the_backoff_and_are_bounded() {
    let start = Instant::now();
    let config = Config {
        max_attempts: 3,
        ..Config::default()
    };
    let mut sender = test_sender(config);
    sender.queue(1, None, 1, start).unwrap();
    let (id, _) = poll_send(&mut sender, start).unwrap();
    let mut limited = answer(429, "Slow");
    limited
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("7"));
    respond(&mut sender, id, limited, start);
    assert_eq!(sender.poll_timeout(), Some(start + Duration::from_secs(7)));
    assert!(poll_send(&mut sender, start + Duration::from_secs(6)).is_none());
    let at = start + Duration::from_secs(7);
    sender.handle_timeout(at);
    let (id, _) = poll_send(&mut sender, at).unwrap();
    // 503 is client-wide here: one event.
    respond(&mut sender, id, answer(503, "Down"), at);
    let due = sender.poll_timeout().unwrap();
    // The second retry: the backoff (1 s doubled once, equal jitter).
    assert!(due >= at + Duration::from_secs(1) && due <= at + Duration::from_secs(2));
    sender.handle_timeout(due);
    let (id, _) = poll_send(&mut sender, due).unwrap();
    respond(&mut sender, id, answer(503, "Down"), due);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 3,
            last_error: "503 Down".into()
        })
    );
    assert_eq!(report.reason.as_deref(), Some("Down"));
    let events: Vec<_> = std::iter::from_fn(|| sender.poll_event()).collect();
    assert_eq!(
        events,
        [Event::ClientError {
            status: 503,
            reason: "Down".into()
        }],
        "once per kind in a row"
    );
    assert_eq!(sender.stats().retries, 2);
}

#[test]
fn a_delivery_resets_the_client_error_kind() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    for i in 0..3 {
        sender.queue(i, None, i, now).unwrap();
    }
    let sent = sends(&mut sender, now);
    respond(&mut sender, sent[0].0, answer(403, "Forbidden"), now);
    respond(&mut sender, sent[1].0, answer(200, ""), now);
    respond(&mut sender, sent[2].0, answer(403, "Forbidden"), now);
    let events = std::iter::from_fn(|| sender.poll_event()).count();
    assert_eq!(events, 2);
}

#[test]
fn the_time_to_live_bounds_retries() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender
        .queue(1, Some(Duration::from_secs(5)), 1, now)
        .unwrap();
    sender
        .queue(2, Some(Duration::from_secs(60)), 2, now)
        .unwrap();
    let sent = sends(&mut sender, now);
    for (id, _) in sent {
        let mut limited = answer(429, "Slow");
        limited
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("10"));
        respond(&mut sender, id, limited, now);
    }
    let report = sender.poll_outcome().unwrap();
    assert_eq!(report.outcome.tag, 1);
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 1,
            last_error: "429 Slow; its time to live ends before the next attempt".into()
        })
    );
    assert!(sender.poll_outcome().is_none(), "the other one is retried");
    assert_eq!(sender.stats().retries, 1);
}

/// Streams the server certainly did not process are sent again for free, `max_free_resends`
/// times; beyond that each counts as an attempt. (A stream that could not be opened drains
/// its connection, which answered nothing: the next one is dialed after the dial backoff.)
#[test]
fn unprocessed_stream_ends_are_free_up_to_max_free_resends() {
    for kind in [StreamEnd::Refused, StreamEnd::GoAway, StreamEnd::NotSent] {
        let mut now = Instant::now();
        let config = Config {
            max_attempts: 1,
            max_free_resends: 2,
            ..Config::default()
        };
        let mut sender = test_sender(config);
        sender.queue(1, None, 1, now).unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (id, request) = poll_send(&mut sender, now).expect("sent again");
            // The same notification (its meta) each time.
            assert_eq!(request.headers()["x-id"], "1");
            ids.push(id);
            end(&mut sender, id, kind.clone(), now);
            if kind == StreamEnd::NotSent {
                // The drained connection closes (a failed dial: it answered nothing); the
                // next is dialed once the backoff has passed.
                assert!(poll_send(&mut sender, now).is_none());
                now += Duration::from_secs(60);
                sender.handle_timeout(now);
            }
        }
        ids.dedup();
        assert_eq!(ids.len(), 3, "a new request id per send");
        let report = sender
            .poll_outcome()
            .expect("the third end counted the attempt");
        assert_eq!(
            report.outcome.error,
            Some(DeviceError::Unavailable {
                attempts: 1,
                last_error: format!("{kind}, 3 times")
            })
        );
        let stats = sender.stats();
        assert_eq!(
            (stats.requests, stats.refused, stats.transport_failures),
            (3, 2, 1),
            "{kind}"
        );
    }
}

/// Stream ends after which the server may have processed the request count an attempt.
#[test]
fn processed_or_unknown_stream_ends_count_an_attempt() {
    let kinds = [
        StreamEnd::Reset("INTERNAL_ERROR".into()),
        StreamEnd::ConnectionError("broken pipe".into()),
        StreamEnd::TimedOut,
        StreamEnd::BodyTooLarge,
    ];
    for kind in kinds {
        assert!(!kind.unprocessed());
        let start = Instant::now();
        let config = Config {
            max_attempts: 2,
            ..Config::default()
        };
        let mut sender = test_sender(config);
        sender.queue(1, None, 1, start).unwrap();
        let (id, _) = poll_send(&mut sender, start).unwrap();
        end(&mut sender, id, kind.clone(), start);
        assert!(
            poll_send(&mut sender, start).is_none(),
            "backing off: {kind}"
        );
        let at = sender.poll_timeout().unwrap();
        sender.handle_timeout(at);
        let (id, _) = poll_send(&mut sender, at).unwrap();
        end(&mut sender, id, kind.clone(), at);
        let report = sender.poll_outcome().unwrap();
        assert_eq!(
            report.outcome.error,
            Some(DeviceError::Unavailable {
                attempts: 2,
                last_error: format!("transport failure: {kind}")
            })
        );
        let stats = sender.stats();
        assert_eq!((stats.transport_failures, stats.refused), (2, 0), "{kind}");
    }
}

#[test]
fn a_closed_connection_fails_its_orphans_as_counted_attempts() {
    let now = Instant::now();
    let config = Config {
        max_attempts: 1,
        ..Config::default()
    };
    let mut sender = test_sender(config);
    sender.queue(1, None, 1, now).unwrap();
    sender.queue(2, None, 2, now).unwrap();
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a dial");
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 10,
        },
        now,
    );
    assert_eq!(sends(&mut sender, now).len(), 2);
    sender.handle(Input::Closed { conn }, now);
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    assert_eq!(reports.len(), 2);
    for report in reports {
        assert_eq!(
            report.outcome.error,
            Some(DeviceError::Unavailable {
                attempts: 1,
                last_error: "transport failure: connection error: the connection closed".into()
            })
        );
    }
    assert_eq!(sender.in_flight(), 0);
    // Late reports about those requests are ignored.
    sender.queue(3, None, 3, now).unwrap();
    // The connection answered nothing: a failed dial, so the next one waits for the backoff.
    assert!(sender.poll_action(now).is_none());
    let at = sender.poll_timeout().unwrap();
    assert!(at > now && at <= now + Duration::from_millis(250));
    assert!(matches!(sender.poll_action(at), Some(Action::Dial(_))));
}

#[test]
fn reports_about_unknown_requests_are_ignored() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, now).unwrap();
    let (id, _) = poll_send(&mut sender, now).unwrap();
    respond(&mut sender, id, answer(200, ""), now);
    respond(&mut sender, id, answer(403, "late"), now);
    end(&mut sender, id, StreamEnd::Refused, now);
    sender.handle(Input::Closed { conn: ConnId(99) }, now);
    sender.handle(
        Input::MaxStreams {
            conn: ConnId(99),
            max_streams: 0,
        },
        now,
    );
    assert_eq!(std::iter::from_fn(|| sender.poll_outcome()).count(), 1);
    assert_eq!(sender.poll_event(), None);
    assert!(sender.is_idle());
}

#[test]
fn a_refused_credential_is_renewed_once_and_the_notification_resent() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, now).unwrap();
    sender.queue(2, None, 2, now).unwrap();
    let sent = sends(&mut sender, now);
    assert_eq!(sent[0].1.headers()["authorization"], "gen-1");
    // Both were refused: one renewal.
    respond(&mut sender, sent[0].0, answer(401, "Expired"), now);
    respond(&mut sender, sent[1].0, answer(401, "Expired"), now);
    let Some(Action::CredentialRequest(request)) = sender.poll_action(now) else {
        panic!("a credential request");
    };
    assert_eq!(request.uri(), "https://token/");
    assert!(
        sender.poll_action(now).is_none(),
        "sends wait for the credential"
    );
    sender.handle(Input::CredentialResponse(answer(200, "")), now);
    let resent = sends(&mut sender, now);
    assert_eq!(resent.len(), 2);
    assert_eq!(resent[0].1.headers()["authorization"], "gen-2");
    // Refused again: no second renewal, the notification fails and the client is told.
    respond(&mut sender, resent[0].0, answer(401, "Expired"), now);
    respond(&mut sender, resent[1].0, answer(200, ""), now);
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    let codes: Vec<_> = reports.iter().map(|r| (r.outcome.tag, code(r))).collect();
    assert!(codes.contains(&(2, "delivered")) || codes.contains(&(1, "delivered")));
    assert!(codes.iter().any(|(_, c)| *c == "rejected"), "{codes:?}");
    let events: Vec<_> = std::iter::from_fn(|| sender.poll_event()).collect();
    assert_eq!(
        events,
        [
            Event::Credential("token 2".into()),
            Event::ClientError {
                status: 401,
                reason: "Expired".into()
            }
        ],
        "the new credential before the refusal of it"
    );
    let stats = sender.stats();
    assert_eq!(
        (stats.requests, stats.token_requests, stats.token_refreshes),
        (4, 1, 1)
    );
    assert!(sender.poll_action(now).is_none(), "no second renewal");
}

fn waiting_for_credential() -> (TestSender, Instant) {
    let now = Instant::now();
    let mut sender = Sender::new(
        TestProtocol::default(),
        TestCredential::default(),
        Config::default(),
    )
    .unwrap();
    sender.queue(1, None, 1, now).unwrap();
    sender.queue(2, None, 2, now).unwrap();
    assert!(matches!(
        sender.poll_action(now),
        Some(Action::CredentialRequest(_))
    ));
    (sender, now)
}

#[test]
fn credential_failures_fail_the_waiting_notifications() {
    let (mut sender, now) = waiting_for_credential();
    sender.handle(Input::CredentialResponse(answer(400, "")), now);
    let reports: Vec<_> = std::iter::from_fn(|| sender.poll_outcome()).collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports[0].outcome.error,
        Some(DeviceError::Rejected {
            provider: "test",
            code: "token refused".into()
        })
    );

    let (mut sender, now) = waiting_for_credential();
    sender.handle(Input::CredentialFailure("connection refused".into()), now);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 0,
            last_error: "connection refused".into()
        })
    );
    assert_eq!(sender.stats().token_failures, 1);

    let now = Instant::now();
    let credential = TestCredential {
        broken: true,
        ..TestCredential::default()
    };
    let mut sender = Sender::new(TestProtocol::default(), credential, Config::default()).unwrap();
    sender.queue(1, None, 1, now).unwrap();
    assert!(sender.poll_action(now).is_none());
    assert_eq!(code(&sender.poll_outcome().unwrap()), "rejected");
    assert!(sender.is_idle());
}

#[test]
fn max_in_flight_bounds_requests_over_all_connections() {
    let now = Instant::now();
    let config = Config {
        max_in_flight: 3,
        ..Config::default()
    };
    let mut sender = test_sender(config);
    for i in 0..10 {
        sender.queue(i, None, i, now).unwrap();
    }
    let sent = sends(&mut sender, now);
    assert_eq!(sent.len(), 3);
    assert_eq!(sender.in_flight(), 3);
    respond(&mut sender, sent[0].0, answer(200, ""), now);
    assert_eq!(sends(&mut sender, now).len(), 1);
    assert_eq!(sender.stats().peak_in_flight, 3);
    assert_eq!(sender.stats().in_flight, 3);
}

#[test]
fn an_unreachable_route_fails_the_waiting_notifications_once_given_up() {
    let start = Instant::now();
    let config = Config {
        pool: PoolConfig {
            max_failed_dials: 3,
            ..PoolConfig::default()
        },
        ..Config::default()
    };
    let mut sender = test_sender(config);
    sender.queue(1, None, 1, start).unwrap();
    let mut now = start;
    let mut dials = 0;
    while sender.poll_outcome().is_none() {
        match sender.poll_action(now) {
            Some(Action::Dial(conn)) => {
                dials += 1;
                let failed = Input::DialFailed {
                    conn,
                    reason: "connection refused".into(),
                    fatal: false,
                };
                sender.handle(failed, now);
            }
            Some(other) => panic!("{other:?}"),
            None => {
                now = sender.poll_timeout().unwrap();
                sender.handle_timeout(now);
            }
        }
        assert!(dials <= 3);
    }
    assert_eq!(dials, 3);
    assert!(
        now - start < Duration::from_secs(1),
        "250 ms then 500 ms at most"
    );
    assert_eq!(
        sender.poll_event(),
        Some(Event::Unreachable {
            reason: "cannot reach the server: connection refused".into()
        })
    );
    assert!(sender.is_idle());
}

#[test]
fn a_fatal_dial_error_fails_at_once() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, now).unwrap();
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a dial");
    };
    let failed = Input::DialFailed {
        conn,
        reason: "no h2".into(),
        fatal: true,
    };
    sender.handle(failed, now);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 0,
            last_error: "cannot reach the server: no h2".into()
        })
    );
}

#[test]
fn a_server_allowing_no_streams_is_given_up_after_the_stall_timeout() {
    let start = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, start).unwrap();
    let Some(Action::Dial(conn)) = sender.poll_action(start) else {
        panic!("a dial");
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 0,
        },
        start,
    );
    assert!(
        sender.poll_action(start).is_none(),
        "no scale-out towards a pause"
    );
    let deadline = sender.poll_timeout().unwrap();
    assert_eq!(deadline, start + Duration::from_secs(10));
    sender.handle_timeout(deadline);
    let report = sender.poll_outcome().unwrap();
    assert_eq!(
        report.outcome.error,
        Some(DeviceError::Unavailable {
            attempts: 0,
            last_error: "the server allows no concurrent streams".into()
        })
    );
}

#[test]
fn goaway_moves_new_requests_to_a_new_connection() {
    let now = Instant::now();
    let mut sender = test_sender(Config::default());
    sender.queue(1, None, 1, now).unwrap();
    sender.queue(2, None, 2, now).unwrap();
    let sent = sends(&mut sender, now);
    assert_eq!(sender.pool().live(), 1);
    // GOAWAY with the first stream processed, the second not.
    let conn = ConnId(0);
    sender.handle(Input::GoAway { conn }, now);
    assert_eq!(sender.stats().goaways, 1);
    end(&mut sender, sent[1].0, StreamEnd::GoAway, now);
    // Resent on a new connection, the old one drains.
    let Some(Action::Dial(second)) = sender.poll_action(now) else {
        panic!("a new connection");
    };
    assert_ne!(second, conn);
    sender.handle(
        Input::Connected {
            conn: second,
            max_streams: 10,
        },
        now,
    );
    let Some(Action::Send { conn: on, id, .. }) = sender.poll_action(now) else {
        panic!("the resend");
    };
    assert_eq!(on, second);
    respond(&mut sender, sent[0].0, answer(200, ""), now);
    assert!(matches!(sender.poll_action(now), Some(Action::Close(c)) if c == conn));
    respond(&mut sender, id, answer(200, ""), now);
    assert_eq!(std::iter::from_fn(|| sender.poll_outcome()).count(), 2);
    assert_eq!(sender.stats().refused, 1);
}

#[test]
fn a_full_sender_hands_the_notification_back() {
    let now = Instant::now();
    let config = Config {
        max_pending: 1,
        ..Config::default()
    };
    let mut sender = test_sender(config);
    sender.queue(1, None, 1, now).unwrap();
    assert_eq!(sender.queue(2, None, 2, now), Err(Full((2, None, 2))));
    let config = Config {
        max_attempts: 0,
        ..Config::default()
    };
    let error = TestSender::new(TestProtocol::default(), TestCredential::default(), config).err();
    assert_eq!(error, Some(ConfigError::Zero("max_attempts")));
}
