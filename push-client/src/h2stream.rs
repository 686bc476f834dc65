//! [`Exchange`]: one stream of an HTTP/2 connection, from the response's head to the end of
//! its body, as a plain future (no box, no timer: the connection task keeps the deadlines of
//! all its streams, see [`crate::deadlines`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::client::ResponseFuture;
use push_proto::engine::{RequestId, StreamEnd};

/// What an exchange ends with: its request, its number among the connection's streams, and
/// the complete response or how the stream ended without one.
pub(crate) type Exchanged = (RequestId, u64, Result<http::Response<Bytes>, StreamEnd>);

/// The response body read so far: most bodies arrive in one chunk, kept as it came.
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(bytes) => bytes.len(),
            Body::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, chunk: Bytes) {
        *self = match std::mem::replace(self, Body::Empty) {
            Body::Empty => Body::One(chunk),
            Body::One(first) => {
                let mut many = BytesMut::with_capacity(first.len() + chunk.len());
                many.extend_from_slice(&first);
                many.extend_from_slice(&chunk);
                Body::Many(many)
            }
            Body::Many(mut many) => {
                many.extend_from_slice(&chunk);
                Body::Many(many)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(bytes) => bytes,
            Body::Many(bytes) => bytes.freeze(),
        }
    }
}

enum State {
    Head(ResponseFuture),
    Body {
        parts: http::response::Parts,
        stream: RecvStream,
        body: Body,
    },
}

/// Waits for the response to one request and reads its body, at most `max_body` bytes.
/// Dropping it resets the stream.
pub(crate) struct Exchange {
    id: RequestId,
    number: u64,
    max_body: usize,
    state: State,
}

impl Exchange {
    /// The exchange of request `id`, stream `number` of its connection.
    pub(crate) fn new(
        id: RequestId,
        number: u64,
        response: ResponseFuture,
        max_body: usize,
    ) -> Self {
        Exchange {
            id,
            number,
            max_body,
            state: State::Head(response),
        }
    }

    /// The request.
    pub(crate) fn id(&self) -> RequestId {
        self.id
    }

    /// Its number among the connection's streams.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Result<http::Response<Bytes>, StreamEnd>> {
        loop {
            match &mut self.state {
                State::Head(response) => {
                    let (parts, stream) = ready!(Pin::new(response).poll(cx))
                        .map_err(|e| stream_end(&e))?
                        .into_parts();
                    if stream.is_end_stream() {
                        return Poll::Ready(Ok(http::Response::from_parts(parts, Bytes::new())));
                    }
                    self.state = State::Body {
                        parts,
                        stream,
                        body: Body::Empty,
                    };
                }
                State::Body {
                    parts,
                    stream,
                    body,
                } => match ready!(stream.poll_data(cx)) {
                    Some(chunk) => {
                        let chunk = chunk.map_err(|e| stream_end(&e))?;
                        let _ = stream.flow_control().release_capacity(chunk.len());
                        if body.len() + chunk.len() > self.max_body {
                            return Poll::Ready(Err(StreamEnd::BodyTooLarge));
                        }
                        body.push(chunk);
                    }
                    None => {
                        // An empty head in its place (no allocation): the future is done.
                        let parts =
                            std::mem::replace(parts, http::Response::new(()).into_parts().0);
                        let body = std::mem::replace(body, Body::Empty).into_bytes();
                        return Poll::Ready(Ok(http::Response::from_parts(parts, body)));
                    }
                },
            }
        }
    }
}

impl Future for Exchange {
    type Output = Exchanged;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Exchanged> {
        let this = self.get_mut();
        let result = ready!(this.step(cx));
        Poll::Ready((this.id, this.number, result))
    }
}

/// What an h2 stream error says happened, as a fact for the core. h2 gives a stream the
/// remote GOAWAY's error only when the stream is above its last stream id, so "GOAWAY from
/// the remote" means "not processed"; a GOAWAY h2 sent itself (a protocol error it detected)
/// or an I/O error may have cut a stream the server already processed.
pub(crate) fn stream_end(error: &h2::Error) -> StreamEnd {
    if error.is_go_away() && error.is_remote() {
        StreamEnd::GoAway
    } else if error.is_reset() && error.is_remote() {
        match error.reason() {
            Some(h2::Reason::REFUSED_STREAM) => StreamEnd::Refused,
            _ => StreamEnd::Reset(error.to_string()),
        }
    } else {
        StreamEnd::ConnectionError(error.to_string())
    }
}
