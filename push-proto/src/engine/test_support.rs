//! Helpers for tests that drive a [`Sender`] by hand, as a transport would.

use std::time::Instant;

use bytes::Bytes;

use super::{Action, Credential, Input, Protocol, RequestId, Sender, StreamEnd};

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
