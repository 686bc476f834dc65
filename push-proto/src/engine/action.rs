//! What the engine asks the transport to do ([`Action`]) and what the transport reports back
//! ([`Input`], [`StreamEnd`]).

use std::fmt;

use bytes::Bytes;

/// Names one connection of a route, for as long as it lives (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// Names a request handed out with [`Action::Send`]; give it back with its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// Something the transport must do for the engine.
#[derive(Debug)]
pub enum Action {
    /// Open connection `ConnId` to the route's host (TLS, ALPN `h2`, HTTP/2 handshake), then
    /// report [`Input::Connected`] or [`Input::DialFailed`].
    Dial(ConnId),
    /// Send `request` as a new stream on connection `conn`, then report its fate with
    /// [`Input::Response`] or [`Input::StreamEnd`]. The engine never sends more streams to a
    /// connection than its last reported limit allows.
    Send {
        /// The connection to use.
        conn: ConnId,
        /// The id to report the fate with.
        id: RequestId,
        /// The request.
        request: http::Request<Bytes>,
    },
    /// Close connection `ConnId` once its streams are done (it is idle or draining); report
    /// nothing more for it (an [`Input::Closed`] is ignored).
    Close(ConnId),
    /// Send this request to the credential's own endpoint (e.g. an OAuth2 token endpoint; its
    /// URI says where), then report [`Input::CredentialResponse`] or
    /// [`Input::CredentialFailure`].
    CredentialRequest(http::Request<Bytes>),
}

/// How a stream ended without a complete response: facts the transport observed. The engine
/// decides what each means (sent again for free, counted as an attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server reset the stream with `REFUSED_STREAM`: it did not process it.
    Refused,
    /// The server's GOAWAY named a last stream id below this stream: it did not process it.
    GoAway,
    /// The stream was never opened (the connection was gone or closing before it could be
    /// written).
    NotSent,
    /// The server reset the stream with another error code: it may have processed it.
    Reset(String),
    /// The connection failed under the stream (an I/O error, or a protocol error the client's
    /// HTTP/2 library detected and answered with its own GOAWAY): it may have been processed.
    ConnectionError(String),
    /// No complete response within the transport's request timeout.
    TimedOut,
    /// The response body was larger than the transport accepts.
    BodyTooLarge,
}

impl StreamEnd {
    /// True when the server certainly did not process the stream, so sending it again cannot
    /// deliver it twice.
    pub fn unprocessed(&self) -> bool {
        matches!(
            self,
            StreamEnd::Refused | StreamEnd::GoAway | StreamEnd::NotSent
        )
    }
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Refused => f.write_str("stream refused (REFUSED_STREAM)"),
            StreamEnd::GoAway => f.write_str("stream above the server's GOAWAY last stream id"),
            StreamEnd::NotSent => f.write_str("stream never opened"),
            StreamEnd::Reset(reason) => write!(f, "stream reset by the server: {reason}"),
            StreamEnd::ConnectionError(reason) => write!(f, "connection error: {reason}"),
            StreamEnd::TimedOut => f.write_str("no response in time"),
            StreamEnd::BodyTooLarge => f.write_str("response body too large"),
        }
    }
}

/// What the transport reports to the engine.
#[derive(Debug)]
pub enum Input {
    /// Connection `conn` is open (HTTP/2 spoken) and allows `max_streams` concurrent streams
    /// (the server's `SETTINGS_MAX_CONCURRENT_STREAMS` as far as known).
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its stream limit.
        max_streams: u32,
    },
    /// The stream limit of `conn` changed (new SETTINGS). `0` pauses it.
    MaxStreams {
        /// The connection.
        conn: ConnId,
        /// Its stream limit.
        max_streams: u32,
    },
    /// Dialing `conn` failed. `fatal` when retrying cannot help (an untrusted certificate, a
    /// server that does not speak HTTP/2).
    DialFailed {
        /// The connection.
        conn: ConnId,
        /// What went wrong.
        reason: String,
        /// Retrying cannot help.
        fatal: bool,
    },
    /// The server sent GOAWAY on `conn`: no new streams go there. Streams it did not process
    /// are reported as [`StreamEnd::GoAway`].
    GoAway {
        /// The connection.
        conn: ConnId,
    },
    /// Connection `conn` ended. Report the fate of its streams first; streams still unreported
    /// count as [`StreamEnd::ConnectionError`].
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// The response to request `id` (body complete).
    Response {
        /// The request.
        id: RequestId,
        /// The response.
        response: http::Response<Bytes>,
    },
    /// Request `id` ended without a response.
    StreamEnd {
        /// The request.
        id: RequestId,
        /// How.
        end: StreamEnd,
    },
    /// The credential endpoint answered [`Action::CredentialRequest`].
    CredentialResponse(http::Response<Bytes>),
    /// The credential request failed in transport.
    CredentialFailure(String),
}
