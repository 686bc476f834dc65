//! Exchanges: single requests built outside the engine (an APNs broadcast, one Live Activity
//! push) sent on the route's own connections with the route's credential, their response
//! handed back whole for the caller to classify. They share the pool (streams, dials,
//! GOAWAY, give-up) and the credential with the notifications; they take no attempts, no
//! retries and no pacing of their own: the caller decides what a response means.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use thiserror::Error;

use super::Sender;
use crate::engine::action::{Action, ConnId, RequestId, StreamEnd};
use crate::engine::credential::{Credential, Grant};
use crate::engine::in_flight::InFlightTable;
use crate::engine::protocol::Protocol;

/// Names an exchange queued with [`Sender::exchange`]; its result comes back with it from
/// [`Sender::poll_exchanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(u64);

/// Why an exchange ended without a response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExchangeFailure {
    /// The credential could not authorize it (e.g. a provider token could not be signed).
    #[error("no credential: {0}")]
    Credential(String),
    /// The route's server cannot be reached, or allows no streams: the pool gave up.
    #[error("{0}")]
    Unavailable(String),
    /// Its stream ended without a response, and the server may have processed it (or it
    /// was not processed more times than the free resends allow).
    #[error("{0}")]
    Stream(StreamEnd),
}

/// The result of an exchange.
pub type Exchanged = (ExchangeId, Result<http::Response<Bytes>, ExchangeFailure>);

/// An exchange waiting for a stream.
struct Waiting {
    id: ExchangeId,
    request: http::Request<Bytes>,
    free_resends: u32,
}

/// An exchange on a stream.
struct Flight {
    waiting: Waiting,
    conn: ConnId,
    generation: u64,
}

/// The exchanges of a sender: waiting, on a stream, and done.
pub(super) struct Exchanges {
    next: u64,
    waiting: VecDeque<Waiting>,
    flying: InFlightTable<Flight>,
    done: VecDeque<Exchanged>,
}

impl Exchanges {
    pub(super) fn new() -> Self {
        Exchanges {
            next: 0,
            waiting: VecDeque::new(),
            flying: InFlightTable::tagged(),
            done: VecDeque::new(),
        }
    }

    /// Exchanges waiting for a stream.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// True when `id` names an exchange's stream (not a notification's).
    pub(super) fn owns(&self, id: RequestId) -> bool {
        self.flying.owns(id)
    }

    /// True when no exchange waits, flies or has a result not polled yet.
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.flying.is_empty() && self.done.is_empty()
    }

    /// Ends every waiting exchange with `failure`.
    pub(super) fn fail_waiting(&mut self, failure: &ExchangeFailure) {
        for waiting in self.waiting.drain(..) {
            self.done.push_back((waiting.id, Err(failure.clone())));
        }
    }

    /// The streams of exchanges on connection `conn`.
    pub(super) fn on(&self, conn: ConnId) -> Vec<RequestId> {
        self.flying.ids_where(|flight| flight.conn == conn)
    }
}

impl<P: Protocol, C: Credential, T> Sender<P, C, T> {
    /// Queues `request` for the route's connections: the credential's `authorization`
    /// header is added (it replaces one already there); the answer comes back whole from
    /// [`poll_exchanged`](Self::poll_exchanged). The request's URI should name the route's
    /// host: the engine sends it on a connection to that host whatever it says.
    pub fn exchange(&mut self, request: http::Request<Bytes>) -> ExchangeId {
        let id = ExchangeId(self.exchanges.next);
        self.exchanges.next += 1;
        self.exchanges.waiting.push_back(Waiting {
            id,
            request,
            free_resends: 0,
        });
        id
    }

    /// The next result of an exchange.
    pub fn poll_exchanged(&mut self) -> Option<Exchanged> {
        self.exchanges.done.pop_front()
    }

    /// The route's credential for a request the caller sends elsewhere itself (APNs channel
    /// management, on another host with the same provider token), as the engine's own
    /// requests get it; report a refusal with [`credential_refused`](Self::credential_refused).
    pub fn grant(&mut self, now: Instant) -> Grant {
        self.credential.grant(now)
    }

    /// The provider refused credential `generation` on a request sent with a
    /// [`grant`](Self::grant): it is renewed for the next request.
    pub fn credential_refused(&mut self, generation: u64) {
        self.credential.handle_rejected(generation);
    }

    /// The next waiting exchange's [`Action::Send`], when a stream is free and the
    /// credential allows it.
    pub(super) fn poll_exchange(&mut self, now: Instant) -> Option<Action> {
        if self.exchanges.waiting.is_empty() || self.pool.free_streams() == 0 {
            return None;
        }
        let (authorization, generation) = match self.credential.grant(now).ready() {
            Ok(ready) => ready?,
            Err(error) => {
                self.exchanges
                    .fail_waiting(&ExchangeFailure::Credential(error));
                return None;
            }
        };
        let conn = self.pool.pick()?;
        let waiting = self.exchanges.waiting.pop_front()?;
        let mut request = copy(&waiting.request);
        if let Some(authorization) = authorization {
            request.headers_mut().insert(AUTHORIZATION, authorization);
        }
        let id = self.exchanges.flying.insert(Flight {
            waiting,
            conn,
            generation,
        });
        self.stats.requests += 1;
        Some(Action::Send { conn, id, request })
    }

    /// The response to exchange stream `id`.
    pub(super) fn exchange_response(
        &mut self,
        id: RequestId,
        response: http::Response<Bytes>,
        now: Instant,
    ) {
        let Some(flight) = self.exchanges.flying.remove(id) else {
            return;
        };
        self.pool.release(flight.conn, true, now);
        self.stats.responses += 1;
        if self.protocol.refuses_credential(&response) {
            // Renewed for the next request; this one's refusal goes to the caller.
            self.credential.handle_rejected(flight.generation);
        }
        self.exchanges
            .done
            .push_back((flight.waiting.id, Ok(response)));
    }

    /// Exchange stream `id` ended without a response: sent again when the server did not
    /// process it (bounded by the free resends), otherwise failed.
    pub(super) fn exchange_stream_end(&mut self, id: RequestId, end: StreamEnd, now: Instant) {
        let Some(Flight {
            mut waiting, conn, ..
        }) = self.exchanges.flying.remove(id)
        else {
            return;
        };
        self.pool.release(conn, false, now);
        self.pool.handle_stream_end(conn, &end);
        if end.unprocessed() && waiting.free_resends < self.config.max_free_resends {
            waiting.free_resends += 1;
            self.exchanges.waiting.push_front(waiting);
        } else {
            self.exchanges
                .done
                .push_back((waiting.id, Err(ExchangeFailure::Stream(end))));
        }
    }
}

/// A copy of `request` (method, URI, version, headers, body: the body is shared).
fn copy(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}
