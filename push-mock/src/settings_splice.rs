//! [`SettingsSplice`]: changes a live HTTP/2 connection's `SETTINGS_MAX_CONCURRENT_STREAMS`.
//!
//! The `h2` server fixes its settings at the handshake, while real servers (APNs among them)
//! lower and raise the stream limit at runtime. This layer sits between the TLS stream and the
//! `h2` server and speaks just enough HTTP/2 framing (RFC 9113 §4.1: a 9-byte header with a
//! 24-bit length, type, flags and stream id) to do it:
//! - server to client: it counts answers (a DATA or HEADERS frame ending a stream) and, once
//!   a scheduled count is reached, slips a SETTINGS frame between two frames (never inside a
//!   header block);
//! - client to server: it removes the client's acknowledgements of those frames (the `h2`
//!   server never sent them and would treat an extra ACK as a protocol error), and publishes
//!   the limit the client has acknowledged, from which the mock judges whether the client
//!   kept to it.
//!
//! Two faults live here too, as they need the frame level:
//! - breaking the connection ([`SettingsSplice::break_after`]): once a number of answers went
//!   out, the next response frame is replaced by a malformed frame (`DATA` on stream 0, a
//!   connection error for the client) and nothing after it reaches the client;
//! - lingering on close ([`SettingsSplice::linger_on_close`]): after closing its side, keep
//!   reading (and discarding) until the client closes, so that the kernel does not answer
//!   unread client bytes with a TCP reset that could destroy the server's last frames (a
//!   GOAWAY) before the client read them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use smol::Timer;

/// The client connection preface (RFC 9113 §3.4) precedes the client's first frame.
const PREFACE_LEN: usize = 24;
const HEADER_LEN: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Bytes buffered towards the client before writes wait for the socket.
const MAX_BUFFERED: usize = 64 * 1024;
/// The malformed frame that breaks a connection: `DATA` on stream 0, which RFC 9113 §6.1
/// makes a connection error of type `PROTOCOL_ERROR`.
const BREAKING_FRAME: &[u8] = &[
    0, 0, 10, TYPE_DATA, 0, 0, 0, 0, 0, b'p', b'u', b's', b'h', b'-', b'm', b'o', b'c', b'k', b'!',
];

/// A frame header as read off the wire.
#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    length: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHeader {
    fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        FrameHeader {
            length: usize::from(bytes[0]) << 16
                | usize::from(bytes[1]) << 8
                | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

/// Splits a byte stream into frames: feed bytes, learn where headers complete.
#[derive(Debug, Default)]
struct Framer {
    header: [u8; HEADER_LEN],
    header_len: usize,
    payload_left: usize,
}

/// One step of [`Framer::next`].
enum Piece<'a> {
    /// Payload bytes of the current frame.
    Payload(&'a [u8]),
    /// A complete frame header (its bytes are `Framer::header`).
    Header(FrameHeader),
    /// A header is incomplete: all input was taken.
    Partial,
}

impl Framer {
    /// Takes the next piece from the front of `input`, advancing it.
    fn next<'a>(&mut self, input: &mut &'a [u8]) -> Piece<'a> {
        if self.payload_left > 0 {
            let n = self.payload_left.min(input.len());
            let (taken, rest) = input.split_at(n);
            *input = rest;
            self.payload_left -= n;
            return Piece::Payload(taken);
        }
        let n = (HEADER_LEN - self.header_len).min(input.len());
        self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
        self.header_len += n;
        *input = &input[n..];
        if self.header_len < HEADER_LEN {
            return Piece::Partial;
        }
        self.header_len = 0;
        let header = FrameHeader::parse(&self.header);
        self.payload_left = header.length;
        Piece::Header(header)
    }

    /// True between frames (no header or payload half-way).
    fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0
    }
}

/// Who sent a SETTINGS frame the client will acknowledge.
#[derive(Debug, Clone, Copy)]
enum SettingsOrigin {
    /// The `h2` server: its ACK goes through.
    Server,
    /// This layer, with the limit it announced: its ACK is removed.
    Spliced(u32),
}

/// What the mock learns from the layer.
pub(crate) struct SpliceState {
    /// `(last stream, limit)` per acknowledged limit, in order: the limit binds the streams
    /// the client opened after `last stream` (those it opened knowing the limit).
    acknowledged: RefCell<Vec<(u32, u32)>>,
    /// Called with each limit the client acknowledges.
    on_acknowledged: Box<dyn Fn(u32)>,
    /// Called once when the connection is broken ([`SettingsSplice::break_after`]).
    on_broken: Box<dyn Fn()>,
}

impl std::fmt::Debug for SpliceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpliceState")
            .field("acknowledged", &self.acknowledged.borrow())
            .finish_non_exhaustive()
    }
}

impl SpliceState {
    /// No limit acknowledged yet; `on_acknowledged` hears of each one, `on_broken` of the
    /// connection being broken.
    pub(crate) fn new(
        on_acknowledged: impl Fn(u32) + 'static,
        on_broken: impl Fn() + 'static,
    ) -> Rc<Self> {
        Rc::new(SpliceState {
            acknowledged: RefCell::new(Vec::new()),
            on_acknowledged: Box::new(on_acknowledged),
            on_broken: Box::new(on_broken),
        })
    }

    /// The acknowledged limit that binds client stream `stream` (`u32::MAX`: none).
    pub(crate) fn limit_for(&self, stream: u32) -> u32 {
        let acknowledged = self.acknowledged.borrow();
        acknowledged
            .iter()
            .rev()
            .find(|(last_stream, _)| stream > *last_stream)
            .map_or(u32::MAX, |(_, limit)| *limit)
    }
}

/// Wraps the server's side of a connection; see the module docs.
pub(crate) struct SettingsSplice<S> {
    inner: S,
    state: Rc<SpliceState>,
    /// `(answers, limit)`: once this many answers were written, announce `limit`.
    schedule: VecDeque<(usize, u32)>,
    answers: usize,
    /// Once this many answers were written, break the connection at the next response frame.
    break_after: Option<usize>,
    /// The connection was broken: nothing more goes to the client.
    broken: bool,
    /// How long to keep reading after closing (`None`: do not).
    linger: Option<Duration>,
    /// The end of the lingering, once closed.
    linger_until: Option<Timer>,
    /// Our side is closed.
    closed: bool,
    /// Towards the client: frames seen, header block open, bytes not yet written.
    outgoing: Framer,
    in_header_block: bool,
    to_client: Vec<u8>,
    /// SETTINGS frames sent and not yet acknowledged, in order.
    unacknowledged: VecDeque<SettingsOrigin>,
    /// From the client: preface bytes still to pass, frames seen, bytes for the server.
    preface_left: usize,
    incoming: Framer,
    /// Dropping the payload of the current incoming frame.
    dropping: bool,
    /// The highest stream id the client has opened.
    last_client_stream: u32,
    to_server: Vec<u8>,
    to_server_pos: usize,
}

impl<S> SettingsSplice<S> {
    /// Wraps `inner`; `schedule` lists `(answers, limit)` pairs in increasing answer order.
    pub(crate) fn new(inner: S, schedule: Vec<(usize, u32)>, state: Rc<SpliceState>) -> Self {
        SettingsSplice {
            inner,
            state,
            schedule: schedule.into(),
            answers: 0,
            break_after: None,
            broken: false,
            linger: None,
            linger_until: None,
            closed: false,
            outgoing: Framer::default(),
            in_header_block: false,
            to_client: Vec::new(),
            unacknowledged: VecDeque::new(),
            preface_left: PREFACE_LEN,
            incoming: Framer::default(),
            dropping: false,
            last_client_stream: 0,
            to_server: Vec::new(),
            to_server_pos: 0,
        }
    }

    /// Once `answers` answers were written, replaces the next response frame (`HEADERS` or
    /// `DATA` on a stream) by a malformed frame and drops everything the server writes after
    /// it: the client sees a connection error while the server believes it answered.
    pub(crate) fn break_after(mut self, answers: Option<usize>) -> Self {
        self.break_after = answers;
        self
    }

    /// After closing, keeps reading and discarding what the client sends until it closes too,
    /// or `timeout` passes (`None`: close at once).
    pub(crate) fn linger_on_close(mut self, timeout: Option<Duration>) -> Self {
        self.linger = timeout;
        self
    }

    /// Buffers bytes the server wrote, splicing SETTINGS frames in where due.
    fn server_wrote(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match self.outgoing.next(&mut input) {
                Piece::Payload(bytes) if !self.broken => self.to_client.extend_from_slice(bytes),
                Piece::Payload(_) | Piece::Partial => {}
                Piece::Header(header) => {
                    if self.breaks_at(header) {
                        self.broken = true;
                        self.to_client.extend_from_slice(BREAKING_FRAME);
                        (self.state.on_broken)();
                    }
                    if !self.broken {
                        self.to_client.extend_from_slice(&self.outgoing.header);
                        self.observe_outgoing(header);
                    }
                }
            }
            if self.outgoing.at_boundary() && !self.in_header_block && !self.broken {
                self.splice_due();
            }
        }
    }

    /// True when `header` starts the response frame that breaks the connection.
    fn breaks_at(&self, header: FrameHeader) -> bool {
        !self.broken
            && !self.in_header_block
            && header.stream != 0
            && matches!(header.kind, TYPE_DATA | TYPE_HEADERS)
            && self.break_after.is_some_and(|after| self.answers >= after)
    }

    fn observe_outgoing(&mut self, header: FrameHeader) {
        match header.kind {
            TYPE_SETTINGS if header.flags & FLAG_ACK == 0 => {
                self.unacknowledged.push_back(SettingsOrigin::Server);
            }
            TYPE_HEADERS | TYPE_PUSH_PROMISE | TYPE_CONTINUATION => {
                self.in_header_block = header.flags & FLAG_END_HEADERS == 0;
            }
            _ => {}
        }
        let ends_stream = matches!(header.kind, TYPE_DATA | TYPE_HEADERS)
            && header.flags & FLAG_END_STREAM != 0
            && header.stream != 0;
        if ends_stream {
            self.answers += 1;
        }
    }

    fn splice_due(&mut self) {
        while let Some(&(after, limit)) = self.schedule.front() {
            if self.answers < after {
                break;
            }
            self.schedule.pop_front();
            let [a, b, c, d] = limit.to_be_bytes();
            let [id_high, id_low] = SETTINGS_MAX_CONCURRENT_STREAMS.to_be_bytes();
            self.to_client
                .extend_from_slice(&[0, 0, 6, TYPE_SETTINGS, 0, 0, 0, 0, 0]);
            self.to_client
                .extend_from_slice(&[id_high, id_low, a, b, c, d]);
            self.unacknowledged
                .push_back(SettingsOrigin::Spliced(limit));
        }
    }

    /// Filters bytes the client sent into `to_server`.
    fn client_sent(&mut self, mut input: &[u8]) {
        let preface = self.preface_left.min(input.len());
        self.to_server.extend_from_slice(&input[..preface]);
        self.preface_left -= preface;
        input = &input[preface..];
        while !input.is_empty() {
            match self.incoming.next(&mut input) {
                Piece::Payload(bytes) if !self.dropping => self.to_server.extend_from_slice(bytes),
                Piece::Payload(_) | Piece::Partial => {}
                Piece::Header(header) => {
                    if header.kind == TYPE_HEADERS {
                        self.last_client_stream = self.last_client_stream.max(header.stream);
                    }
                    self.dropping = self.is_spliced_ack(header);
                    if !self.dropping {
                        self.to_server.extend_from_slice(&self.incoming.header);
                    }
                }
            }
        }
    }

    /// True for the acknowledgement of a SETTINGS frame this layer sent (then recorded).
    fn is_spliced_ack(&mut self, header: FrameHeader) -> bool {
        if header.kind != TYPE_SETTINGS || header.flags & FLAG_ACK == 0 {
            return false;
        }
        match self.unacknowledged.pop_front() {
            Some(SettingsOrigin::Spliced(limit)) => {
                let binds_after = self.last_client_stream;
                self.state
                    .acknowledged
                    .borrow_mut()
                    .push((binds_after, limit));
                (self.state.on_acknowledged)(limit);
                true
            }
            Some(SettingsOrigin::Server) | None => false,
        }
    }
}

impl<S: AsyncWrite + Unpin> SettingsSplice<S> {
    /// Writes buffered bytes to the client until done or the socket is busy.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.to_client.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.to_client) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.to_client.drain(..n);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SettingsSplice<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut chunk = [0u8; 8192];
        while this.to_server_pos == this.to_server.len() {
            this.to_server.clear();
            this.to_server_pos = 0;
            let n = match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            this.client_sent(&chunk[..n]);
        }
        let ready = &this.to_server[this.to_server_pos..];
        let n = ready.len().min(buf.len());
        buf[..n].copy_from_slice(&ready[..n]);
        this.to_server_pos += n;
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SettingsSplice<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.to_client.len() >= MAX_BUFFERED {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending if this.to_client.len() >= MAX_BUFFERED => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        this.server_wrote(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closed {
            ready!(this.poll_drain(cx))?;
            ready!(Pin::new(&mut this.inner).poll_close(cx))?;
            this.closed = true;
        }
        match this.linger {
            Some(timeout) => this.poll_linger(cx, timeout),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + Unpin> SettingsSplice<S> {
    /// Reads and discards until the client closes, fails, or `timeout` passes.
    fn poll_linger(&mut self, cx: &mut Context<'_>, timeout: Duration) -> Poll<io::Result<()>> {
        let until = self
            .linger_until
            .get_or_insert_with(|| Timer::after(timeout));
        if Pin::new(until).poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 4096];
        loop {
            match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut scratch)) {
                Ok(0) | Err(_) => return Poll::Ready(Ok(())),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        bytes.extend_from_slice(&stream.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn splice(schedule: Vec<(usize, u32)>) -> (SettingsSplice<()>, Rc<std::cell::Cell<Vec<u32>>>) {
        let acknowledged = Rc::new(std::cell::Cell::new(Vec::new()));
        let seen = acknowledged.clone();
        let state = SpliceState::new(
            move |limit| {
                let mut all = seen.take();
                all.push(limit);
                seen.set(all);
            },
            || {},
        );
        (SettingsSplice::new((), schedule, state), acknowledged)
    }

    /// Feeds `bytes` one at a time, the worst split.
    fn server_writes(splice: &mut SettingsSplice<()>, bytes: &[u8]) {
        for byte in bytes {
            splice.server_wrote(std::slice::from_ref(byte));
        }
    }

    fn client_sends(splice: &mut SettingsSplice<()>, bytes: &[u8]) {
        for byte in bytes {
            splice.client_sent(std::slice::from_ref(byte));
        }
    }

    #[test]
    fn settings_go_in_after_the_scheduled_answer_and_their_ack_is_removed() {
        let (mut splice, acknowledged) = splice(vec![(2, 1), (3, 100)]);
        let server_settings = frame(TYPE_SETTINGS, 0, 0, &[0, 3, 0, 0, 3, 232]);
        let answer = |stream| {
            let mut bytes = frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, b"h");
            bytes.extend(frame(TYPE_DATA, FLAG_END_STREAM, stream, b"{}"));
            bytes
        };
        let mut written = server_settings.clone();
        written.extend(answer(1));
        written.extend(answer(3));
        written.extend(answer(5));
        server_writes(&mut splice, &written);

        let limit = |n: u32| frame(TYPE_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, n as u8]);
        let mut expected = server_settings;
        expected.extend(answer(1));
        expected.extend(answer(3));
        expected.extend(limit(1));
        expected.extend(answer(5));
        expected.extend(limit(100));
        assert_eq!(splice.to_client, expected);

        let ack = frame(TYPE_SETTINGS, FLAG_ACK, 0, &[]);
        let request = |stream| frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, b"r");
        let mut sent = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        sent.extend(&ack);
        sent.extend(request(7));
        sent.extend(&ack);
        sent.extend(request(9));
        client_sends(&mut splice, &sent);
        assert_eq!(splice.state.limit_for(7), u32::MAX, "opened before the ACK");
        assert_eq!(splice.state.limit_for(9), 1);
        client_sends(&mut splice, &ack);
        let mut expected = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        expected.extend(&ack);
        expected.extend(request(7));
        expected.extend(request(9));
        assert_eq!(
            splice.to_server, expected,
            "only the server's own ACK passes"
        );
        assert_eq!(splice.state.limit_for(9), 1);
        assert_eq!(splice.state.limit_for(11), 100);
        assert_eq!(acknowledged.take(), [1, 100]);
    }

    #[test]
    fn a_broken_connection_gets_the_malformed_frame_instead_of_the_next_answer() {
        let (splice, _) = splice(vec![(1, 1)]);
        let mut splice = splice.break_after(Some(1));
        let first = frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, b"h");
        let window_update = frame(0x8, 0, 0, &[0, 0, 1, 0]);
        let mut written = first.clone();
        written.extend(&window_update);
        written.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"));
        written.extend(frame(TYPE_DATA, FLAG_END_STREAM, 3, b"{}"));
        written.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            5,
            b"h",
        ));
        server_writes(&mut splice, &written);
        // The scheduled SETTINGS went in after the first answer; nothing after the break.
        let mut expected = first;
        expected.extend(frame(TYPE_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1]));
        expected.extend(&window_update);
        expected.extend(frame(TYPE_DATA, 0, 0, b"push-mock!"));
        assert_eq!(splice.to_client, expected);
        assert!(splice.broken);
    }

    #[test]
    fn nothing_is_spliced_into_a_header_block() {
        let (mut splice, _) = splice(vec![(1, 1)]);
        let mut written = frame(TYPE_HEADERS, FLAG_END_STREAM, 1, b"part");
        written.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b"rest"));
        server_writes(&mut splice, &written);
        let mut expected = written.clone();
        expected.extend(frame(TYPE_SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1]));
        assert_eq!(splice.to_client, expected);
    }
}
