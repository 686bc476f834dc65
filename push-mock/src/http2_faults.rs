//! [`Http2Faults`]: hostile HTTP/2 server behaviours, shared by the HTTP/2 mocks
//! ([`MockApnsHttp2`](crate::MockApnsHttp2) and [`MockFcm`](crate::MockFcm)) and implemented
//! once in their connection layer.

/// Connection-level faults of an HTTP/2 mock, each reproducing a server a client must survive.
/// Set them with the builders of [`Http2Options`](crate::Http2Options) and
/// [`FcmOptions`](crate::FcmOptions) (`refuse_all_streams()`, `goaway_on_connect()`,
/// `break_connection_after(n)`); the default is none of them. A stream limit of zero, the
/// fourth hostile server, is plain `max_concurrent_streams(0)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http2Faults {
    /// Every request stream is reset with `RST_STREAM(REFUSED_STREAM)` as soon as its headers
    /// arrive, without being processed: nothing is answered, delivered or recorded except the
    /// refusal count (`refused_streams()`). The connection itself stays open and healthy
    /// (pings are answered, SETTINGS acknowledged).
    ///
    /// Simulates an overloaded or draining server (a front end whose back ends are all busy,
    /// say): RFC 9113 §8.7 lets a server refuse a stream it has not processed, so the client
    /// may retry it; a client that retries at once on the same connection spins, one that
    /// never gives up never finishes.
    pub refuse_all_streams: bool,
    /// Every connection, right after the HTTP/2 handshake (the server's SETTINGS), gets
    /// `GOAWAY(last_stream_id = 0, NO_ERROR)` and is closed: no stream is ever processed, so
    /// no request is answered or delivered. Each GOAWAY counts in `goaways_sent()`.
    ///
    /// Unlike `goaway_after(0)`, which starts `h2`'s graceful shutdown (a first GOAWAY with
    /// last-stream-id 2³¹−1, then after a PING round trip a final one naming the last stream
    /// the server received, whose requests it refuses with `REFUSED_STREAM`), the client
    /// sees last-stream-id 0 at once: every stream it opened fails as "not processed, safe to
    /// retry elsewhere". Simulates a server being taken out of rotation (maintenance, a
    /// deploy) that still accepts TCP connections; a client that reconnects without backing
    /// off loops.
    pub goaway_on_connect: bool,
    /// After this many answers on a connection (counted per connection: `DATA` or `HEADERS`
    /// frames ending a stream), the next response frame for a stream is replaced by a
    /// malformed frame, a `DATA` frame on stream 0 (RFC 9113 §6.1: a connection error of type
    /// `PROTOCOL_ERROR`), and nothing else the server writes on that connection reaches the
    /// client. The client's HTTP/2 library detects the protocol error, sends its own GOAWAY
    /// and fails every open stream, also those the mock already processed: the request whose
    /// answer was replaced was always processed (delivered or answered, and recorded like
    /// any other), and so were any requests answered after it. The connection counts in
    /// `broken_connections()`.
    ///
    /// Simulates a buggy server or middlebox corrupting the stream. It is the case where a
    /// failed request may nevertheless have been delivered: the client must not count it as
    /// failed-and-never-sent, and a resend may duplicate it (compare the client's view with
    /// the mock's `delivered()`, which records connection and stream id).
    pub break_connection_after: Option<usize>,
}
