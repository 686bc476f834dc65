//! What sessions ask of the driver, through the client's command queue.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use async_channel::Sender;
use bytes::Bytes;
use push_proto::engine::{ExchangeFailure, Grant};
use push_proto::{Device, Feedback, Payload};

use crate::report::Report;

/// A request from a session to the driver. A session's `Open` is queued when it is created
/// and its `Close` when it is finished or dropped, both without waiting for room
/// ([`QueueSender::send_now`](crate::queue::QueueSender::send_now)); its devices queue in
/// between, waiting for room.
pub(crate) enum Command {
    /// A new session.
    Open {
        key: u64,
        payload: Box<Payload>,
        feedback: Sender<Vec<Feedback>>,
        listening: Arc<AtomicBool>,
    },
    /// One device for a session.
    Push { key: u64, device: Device },
    /// The session's deadline (see [`Session::deadline`](crate::Session::deadline)).
    Deadline { key: u64, at: Instant },
    /// No more devices; `reply` receives the report once every device has its feedback
    /// (`None`: the session was dropped without finishing).
    Close {
        key: u64,
        reply: Option<Sender<Report>>,
    },
    /// One request for the APNs HTTP/2 connections (a broadcast, one Live Activity push),
    /// authorized by their credential; `reply` receives the whole answer.
    ApnsExchange {
        request: Box<http::Request<Bytes>>,
        reply: Sender<ExchangeResult>,
    },
    /// The APNs HTTP/2 credential, for a request sent on another connection (channel
    /// management); `None` without APNs HTTP/2.
    ApnsGrant { reply: Sender<Option<Grant>> },
    /// APNs refused credential `generation` of an [`ApnsGrant`](Command::ApnsGrant).
    ApnsRefused { generation: u64 },
}

/// The answer to a [`Command::ApnsExchange`].
pub(crate) type ExchangeResult = Result<http::Response<Bytes>, ExchangeFailure>;
