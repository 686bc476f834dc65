//! Helpers for tests that drive a [`Sender`] by hand, as a transport would.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::{Action, ConnId, Credential, Input, Protocol, Report, RequestId, Sender, StreamEnd};

/// The stream limit of the connections [`poll_send`] opens.
pub(crate) const STREAMS: u32 = 100;

/// Polls `sender` until it hands out a request: dials succeed at once with [`STREAMS`]
/// streams, closes are performed silently. Panics on a credential request (take those with
/// [`poll_credential`]).
pub(crate) fn poll_send<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    now: Instant,
) -> Option<(RequestId, http::Request<Bytes>)> {
    poll_send_on(sender, now, STREAMS)
}

/// Like [`poll_send`], with connections that allow `streams` streams (1: HTTP/1.1).
pub(crate) fn poll_send_on<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    now: Instant,
    streams: u32,
) -> Option<(RequestId, http::Request<Bytes>)> {
    loop {
        match sender.poll_action(now)? {
            Action::Dial(conn) => sender.handle(
                Input::Connected {
                    conn,
                    max_streams: streams,
                },
                now,
            ),
            Action::Send { id, request, .. } => return Some((id, request)),
            Action::Close(_) => {}
            Action::CredentialRequest(request) => {
                panic!("unexpected credential request {request:?}")
            }
        }
    }
}

/// Every request `sender` hands out now (see [`poll_send`]).
pub(crate) fn sends<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    now: Instant,
) -> Vec<(RequestId, http::Request<Bytes>)> {
    std::iter::from_fn(|| poll_send(sender, now)).collect()
}

/// The credential request `sender` hands out now, if any: dials before it succeed at once
/// with [`STREAMS`] streams (the engine dials while the credential is fetched). Panics on a
/// request sent without it.
pub(crate) fn poll_credential<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    now: Instant,
) -> Option<http::Request<Bytes>> {
    loop {
        match sender.poll_action(now)? {
            Action::CredentialRequest(request) => return Some(request),
            Action::Dial(conn) => sender.handle(
                Input::Connected {
                    conn,
                    max_streams: STREAMS,
                },
                now,
            ),
            Action::Close(_) => {}
            Action::Send { request, .. } => panic!("expected a credential request: {request:?}"),
        }
    }
}

/// Answers request `id`.
pub(crate) fn respond<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    id: RequestId,
    response: http::Response<Bytes>,
    now: Instant,
) {
    sender.handle(Input::Response { id, response }, now);
}

/// Ends request `id` without a response.
pub(crate) fn end<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    id: RequestId,
    end: StreamEnd,
    now: Instant,
) {
    sender.handle(Input::StreamEnd { id, end }, now);
}

/// A response with `status` and `body`.
pub(crate) fn response(status: u16, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}

/// `max_attempts` in the providers' model tests.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// The engine's default `max_free_resends`.
pub(crate) const MAX_FREE: u32 = 5;

/// The one fixed connection of a provider's model test: dialed with the scripted stream
/// limit, told of every change of it.
pub(crate) struct OneConn {
    /// The server's stream limit now.
    pub(crate) limit: u32,
    conn: Option<ConnId>,
}

impl OneConn {
    /// No connection yet, a limit of one stream.
    pub(crate) fn new() -> Self {
        Self {
            limit: 1,
            conn: None,
        }
    }

    /// Performs `Action::Dial(id)`: the connection opens at once with the current limit.
    pub(crate) fn dial<P: Protocol, C: Credential, T>(
        &mut self,
        sender: &mut Sender<P, C, T>,
        id: ConnId,
        now: Instant,
    ) -> Result<(), TestCaseError> {
        prop_assert!(self.conn.is_none(), "one fixed connection");
        self.conn = Some(id);
        let max_streams = self.limit;
        sender.handle(
            Input::Connected {
                conn: id,
                max_streams,
            },
            now,
        );
        Ok(())
    }

    /// The server's stream limit becomes `max_streams`.
    pub(crate) fn set_limit<P: Protocol, C: Credential, T>(
        &mut self,
        sender: &mut Sender<P, C, T>,
        max_streams: u32,
        now: Instant,
    ) {
        self.limit = max_streams;
        if let Some(conn) = self.conn {
            sender.handle(Input::MaxStreams { conn, max_streams }, now);
        }
    }
}

/// Takes every outcome `sender` has into `reports` (indexed by the tag, a device number) and
/// drops its events; fails on a second outcome for a device.
pub(crate) fn take_outcomes<P: Protocol, C: Credential>(
    sender: &mut Sender<P, C, usize>,
    reports: &mut [Option<Report<P::Token, usize>>],
) -> Result<(), TestCaseError> {
    while let Some(report) = sender.poll_outcome() {
        let device = report.outcome.tag;
        prop_assert!(reports[device].is_none(), "two outcomes for {}", device);
        reports[device] = Some(report);
    }
    while sender.poll_event().is_some() {}
    Ok(())
}

/// Lets `ms` milliseconds of simulated time pass (0: up to the next deadline, which must
/// exist) and hands `sender` the timeout.
pub(crate) fn wait<P: Protocol, C: Credential, T>(
    sender: &mut Sender<P, C, T>,
    now: &mut Instant,
    ms: u64,
) -> Result<(), TestCaseError> {
    *now += Duration::from_millis(ms);
    if ms == 0 {
        let due = sender.poll_timeout();
        prop_assert!(due.is_some(), "stuck: nothing in flight, nothing due");
        *now = due.unwrap_or(*now).max(*now);
    }
    sender.handle_timeout(*now);
    Ok(())
}

/// One step of the scripted part of a provider's model test.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Answer the in-flight request at this index (modulo).
    Answer(usize),
    /// The request at this index (modulo) failed in transport before the server saw it.
    Fail(usize),
    /// GOAWAY: every in-flight request from this index (modulo) on was not processed.
    GoAway(usize),
    /// The server's stream limit changes.
    Limit(u32),
    /// The token endpoint answers the request in flight: a grant, a 503, or a lost
    /// connection.
    Token(u8),
    /// Time passes (scripted: at least 1 ms; 0 runs to the next deadline, only once nothing
    /// is in flight).
    Wait(u64),
}

/// Scripted steps: answers, GOAWAYs, limit changes and time; with `credential_and_failures`,
/// also transport failures and answers of the token endpoint.
pub(crate) fn step(credential_and_failures: bool) -> BoxedStrategy<Step> {
    let common = prop_oneof![
        6 => any::<usize>().prop_map(Step::Answer),
        1 => any::<usize>().prop_map(Step::GoAway),
        1 => (0u32..5).prop_map(Step::Limit),
        1 => (1u64..120_000).prop_map(Step::Wait),
    ];
    if !credential_and_failures {
        return common.boxed();
    }
    prop_oneof![
        9 => common,
        1 => any::<usize>().prop_map(Step::Fail),
        2 => (0u8..3).prop_map(Step::Token),
    ]
    .boxed()
}

/// A provider's quota in simulated time: `limit` requests per sliding `window`.
pub(crate) struct SlidingQuota {
    limit: usize,
    window: Duration,
    admitted: std::collections::VecDeque<Instant>,
}

impl SlidingQuota {
    /// An empty quota of `limit` requests per `window`.
    pub(crate) fn new(limit: usize, window: Duration) -> SlidingQuota {
        SlidingQuota {
            limit,
            window,
            admitted: std::collections::VecDeque::new(),
        }
    }

    /// Admits a request arriving `at`, or says when one would be admitted: the `Retry-After`
    /// in whole seconds, rounded up, at least one.
    pub(crate) fn admit(&mut self, at: Instant) -> Result<(), Duration> {
        while self
            .admitted
            .front()
            .is_some_and(|oldest| *oldest + self.window <= at)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.limit {
            self.admitted.push_back(at);
            return Ok(());
        }
        let wait = self.admitted.front().map_or(self.window, |oldest| {
            (*oldest + self.window).saturating_duration_since(at)
        });
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(Duration::from_secs(secs.max(1)))
    }

    /// The shortest time `n` requests can take: a window's worth at once, then one window
    /// per further window's worth.
    pub(crate) fn least_time(&self, n: usize) -> Duration {
        let windows = n.div_ceil(self.limit).saturating_sub(1);
        self.window * u32::try_from(windows).unwrap_or(u32::MAX)
    }
}
