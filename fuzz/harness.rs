//! Fuzz harnesses shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the stable
//! corpus replay test (`push-proto/tests/fuzz_corpus.rs`).
//!
//! One function per target, each taking the fuzzer's bytes. They use only push-proto's public
//! API and assert invariants of the protocol core, so a failing assertion is a finding, not
//! just a panic. Keep them deterministic: the same bytes must always take the same path, or a
//! crash found by the fuzzer would not replay under `cargo test`.

// Each fuzz target uses one function of this file; the replay test uses them all.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use push_proto::apns::broadcast::{
    self, ApiError, ChannelApi, ChannelInfo, ChannelOp, Environment, MAX_BROADCAST_PAYLOAD,
};
use push_proto::apns::http2;
use push_proto::apns::{
    DecodeError, ErrorResponse, Event, FeedbackDecoder, FeedbackTuple, Format, Frame, Gateway,
    GatewayConfig, Notification, SilentClose, Status,
};
use push_proto::engine;
use push_proto::fcm;
use push_proto::gcm::{self, MessageOptions, RequestBody, parse_results};
use push_proto::webpush;
use push_proto::{ApnsToken, DeviceError, GcmToken, Payload};

// ---------------------------------------------------------------------------------------------
// frame
// ---------------------------------------------------------------------------------------------

/// `Frame::decode` on arbitrary bytes: never panics, never claims more bytes than it was given,
/// and a decoded frame re-encodes to exactly the bytes it used and decodes back to itself.
pub fn frame(data: &[u8]) {
    let decoded = Frame::decode(data);
    match &decoded {
        Ok(Some((frame, used))) => {
            let used = *used;
            assert!(used <= data.len(), "used {used} of {} bytes", data.len());
            assert!(!frame.payload.is_empty(), "a decoded frame has a payload");
            assert_eq!(
                data[0],
                frame.format.command(),
                "format from the command byte"
            );

            let mut encoded = Vec::new();
            frame.encode(&mut encoded).expect("a decoded frame encodes");
            assert_eq!(encoded.len(), used, "re-encoding gives the bytes used");
            assert_eq!(frame.encoded_len(), used, "encoded_len agrees");
            assert_eq!(
                Frame::decode(&encoded),
                Ok(Some((frame.clone(), used))),
                "the re-encoded frame decodes to the same frame"
            );
            match frame.format {
                // Classic frames have exactly one encoding.
                Format::Simple | Format::Enhanced => {
                    assert_eq!(
                        encoded,
                        data[..used],
                        "classic frames re-encode byte for byte"
                    );
                }
                // Command 2 items may come in any order; the header still matches.
                Format::Framed => {
                    assert_eq!(encoded[..5], data[..5], "command 2 header");
                    let frame_len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
                    assert_eq!(frame_len as usize, used - 5, "frame length field");
                }
            }

            // Trailing bytes do not change the frame; every strict prefix asks for more.
            assert_eq!(Frame::decode(&data[..used]), decoded, "exact slice");
            assert_eq!(Frame::decode(&data[..used - 1]), Ok(None), "one byte short");
            assert_eq!(Frame::decode(&data[..used / 2]), Ok(None), "half");
        }
        Ok(None) => {
            // Only the start of a frame: a known command whose length is not all there.
            if let Some(&command) = data.first() {
                assert!(command <= 2, "need-more for unknown command {command}");
            }
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = error.status();
            assert!(!data.is_empty(), "an empty input is never an error");
        }
    }
    // Appending bytes never changes a verdict that was already reached.
    if let Ok(None) = decoded {
    } else {
        let mut longer = data.to_vec();
        longer.push(data.first().copied().unwrap_or(0) ^ 0x5a);
        assert_eq!(
            Frame::decode(&longer),
            decoded,
            "verdict changed by a trailing byte"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// error_response
// ---------------------------------------------------------------------------------------------

/// `ErrorResponse::decode`: a decoded response re-encodes to the first six bytes; need-more and
/// errors happen exactly when the bytes say so.
pub fn error_response(data: &[u8]) {
    match ErrorResponse::decode(data) {
        Ok(Some(response)) => {
            assert!(data.len() >= ErrorResponse::LEN);
            assert_eq!(response.encode()[..], data[..ErrorResponse::LEN]);
            assert_eq!(Status::from_code(response.status.code()), response.status);
            assert!(!response.status.description().is_empty());
            let shown = response.status.to_string();
            assert!(
                shown.starts_with(&response.status.code().to_string()),
                "{shown}"
            );
        }
        Ok(None) => {
            assert!(
                data.is_empty() || (data[0] == ErrorResponse::COMMAND && data.len() < 6),
                "need-more for {data:02x?}"
            );
        }
        Err(error) => {
            assert_eq!(Some(&error.0), data.first());
            assert_ne!(error.0, ErrorResponse::COMMAND);
            let _ = error.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// feedback
// ---------------------------------------------------------------------------------------------

/// The feedback stream `data`, fed to a [`FeedbackDecoder`] in chunks whose sizes come from the
/// data itself, sometimes without polling in between: the tuples re-encode to a prefix of the
/// input, the decoder buffers exactly what it has not returned, and `finish` reports the
/// leftover.
pub fn feedback(data: &[u8]) {
    let mut decoder = FeedbackDecoder::new();
    let mut tuples = Vec::new();
    let mut consumed = 0usize;
    let mut fed = 0usize;
    let mut round = 0u8;
    while fed < data.len() {
        let control = data[fed] ^ round;
        round = round.wrapping_add(37);
        let mut len = usize::from(control % 33);
        if len == 0 {
            decoder.handle_input(&[]);
            len = 1;
        }
        let end = (fed + len).min(data.len());
        decoder.handle_input(&data[fed..end]);
        fed = end;
        if control & 0x40 == 0 {
            while let Some(tuple) = decoder.poll_tuple() {
                consumed += tuple.encoded_len();
                tuples.push(tuple);
            }
        }
        assert_eq!(
            decoder.buffered(),
            fed - consumed,
            "buffered after {fed} bytes"
        );
    }
    while let Some(tuple) = decoder.poll_tuple() {
        consumed += tuple.encoded_len();
        tuples.push(tuple);
    }
    assert_eq!(decoder.buffered(), data.len() - consumed);

    // The tuples are the stream's prefix, and the same as a one-shot decode finds.
    let mut encoded = Vec::new();
    for tuple in &tuples {
        tuple.encode(&mut encoded).expect("a decoded tuple encodes");
        assert_eq!(tuple.apns_token().is_some(), tuple.token.len() == 32);
    }
    assert_eq!(encoded.len(), consumed);
    assert_eq!(
        encoded[..],
        data[..consumed],
        "tuples re-encode to the input's prefix"
    );
    let mut one_shot = Vec::new();
    let mut rest = data;
    while let Some((tuple, used)) = FeedbackTuple::decode(rest) {
        assert!(used <= rest.len());
        one_shot.push(tuple);
        rest = &rest[used..];
    }
    assert_eq!(one_shot, tuples, "chunked and one-shot decoding agree");
    assert_eq!(rest.len(), data.len() - consumed);

    let leftover = &data[consumed..];
    match decoder.finish() {
        Ok(()) => assert!(
            leftover.is_empty(),
            "finish ok with {} bytes left",
            leftover.len()
        ),
        Err(truncated) => {
            assert_eq!(truncated.leftover, leftover.len());
            assert!(truncated.leftover > 0);
            let expected = match leftover {
                [_, _, _, _, hi, lo, ..] => {
                    Some(FeedbackTuple::HEADER_LEN + usize::from(u16::from_be_bytes([*hi, *lo])))
                }
                _ => None,
            };
            assert_eq!(truncated.expected, expected);
            if let Some(expected) = truncated.expected {
                assert!(expected > truncated.leftover);
            }
            let _ = truncated.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------------

/// Reads the fuzzer's bytes front to back; past the end, every byte is 0.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// What the driver knows of its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    Closed,
    /// `Event::Connect` was received and not yet answered.
    Connecting,
    Open,
}

/// Most notifications one run queues, so every run stays short.
const MAX_NOTIFICATIONS: u32 = 64;

/// A driver that follows the gateway's contract and checks what comes out.
struct Driver {
    gateway: Gateway<u32>,
    format: Format,
    payload_limit: usize,
    max_transmit: usize,
    t0: Instant,
    now: Instant,
    socket: Socket,
    /// Per tag: the payload length it was queued with, if accepted.
    queued: Vec<Option<usize>>,
    /// Per tag: outcomes received.
    outcomes: Vec<u32>,
    outcomes_total: u64,
    /// The identifier the next written frame must carry.
    next_identifier: u32,
    frames_written: u64,
    bytes_written: u64,
    max_unwritten: usize,
    /// Writes are reported one per time step instead of at once.
    lagging_writer: bool,
    /// Transmits of the open connection not reported written yet: (frames, bytes).
    unwritten: VecDeque<(u64, u64)>,
}

fn token_for(tag: u32) -> ApnsToken {
    let mut bytes = [0xa5u8; 32];
    bytes[..4].copy_from_slice(&tag.to_be_bytes());
    ApnsToken::from_bytes(bytes)
}

fn tag_of(token: &ApnsToken) -> u32 {
    let bytes = token.as_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl Driver {
    fn new(input: &mut Input<'_>) -> Self {
        let format = match input.byte() % 3 {
            0 => Format::Framed,
            1 => Format::Enhanced,
            _ => Format::Simple,
        };
        let mut config = GatewayConfig::new(format);
        let knobs = input.byte();
        config.payload_limit = 8 + usize::from(input.byte() % 64);
        config.grace = Duration::from_millis(1 + u64::from(input.byte()) * 4);
        config.window = 1 + usize::from(knobs % 8);
        config.max_pending = 1 + usize::from(input.byte() % 24);
        config.max_attempts = 1 + u32::from((knobs >> 3) % 4);
        config.max_connect_attempts = 1 + u32::from(input.byte() % 4);
        config.reconnect_initial = Duration::from_millis(10);
        config.reconnect_max = Duration::from_millis(200);
        config.seed = u64::from(input.byte());
        config.silent_close = if knobs & 0x20 == 0 {
            SilentClose::Resend
        } else {
            SilentClose::Report
        };
        config.max_transmit = match knobs >> 6 {
            0 => 64 * 1024,
            1 => 1,
            2 => 100,
            _ => 300,
        };
        // Start near the wrap of the identifier counter half of the time.
        let start = input.byte();
        config.first_identifier = if start & 1 == 0 {
            u32::from(start)
        } else {
            u32::MAX - u32::from(start >> 2)
        };
        let writer = input.byte();
        config.max_unwritten_transmits = 1 + usize::from(writer % 4);
        let t0 = Instant::now();
        Driver {
            max_unwritten: config.max_unwritten_transmits,
            lagging_writer: writer & 0x10 != 0,
            unwritten: VecDeque::new(),
            format,
            payload_limit: config.payload_limit,
            max_transmit: config.max_transmit,
            next_identifier: config.first_identifier,
            gateway: Gateway::new(config),
            t0,
            now: t0,
            socket: Socket::Closed,
            queued: Vec::new(),
            outcomes: Vec::new(),
            outcomes_total: 0,
            frames_written: 0,
            bytes_written: 0,
        }
    }

    fn queue(&mut self, size: usize) {
        let tag = self.queued.len() as u32;
        if tag >= MAX_NOTIFICATIONS {
            return;
        }
        let notification = Notification {
            token: token_for(tag),
            payload: vec![b'x'; size.max(1)].into(),
            expiry: tag,
            priority: 10,
        };
        let had_capacity = self.gateway.has_capacity();
        match self.gateway.queue(notification, tag) {
            Ok(()) => {
                assert!(had_capacity, "queue accepted without capacity");
                self.queued.push(Some(size.max(1)));
            }
            Err(full) => {
                assert!(!had_capacity, "queue refused with capacity");
                assert_eq!(full.0.1, tag, "Full hands the tag back");
                assert_eq!(
                    full.0.0.token,
                    token_for(tag),
                    "Full hands the notification back"
                );
                self.queued.push(None);
            }
        }
        self.outcomes.push(0);
    }

    /// Drains the outputs in the documented order, acting on events, until nothing is left.
    fn drain(&mut self) {
        loop {
            let mut acted = false;
            while let Some(event) = self.gateway.poll_event() {
                match event {
                    Event::Connect => {
                        assert_eq!(
                            self.socket,
                            Socket::Closed,
                            "Connect while {:?}",
                            self.socket
                        );
                        self.socket = Socket::Connecting;
                    }
                    Event::Close => {
                        assert_eq!(self.socket, Socket::Open, "Close while {:?}", self.socket);
                        self.socket = Socket::Closed;
                        self.unwritten.clear();
                        self.gateway.handle_closed(self.now);
                        acted = true;
                    }
                    Event::WindowOverflow { .. } | Event::ProtocolViolation(_) => {}
                    Event::GaveUp { reason } => assert!(!reason.is_empty()),
                    other => panic!("unexpected event {other:?}"),
                }
            }
            if acted {
                continue;
            }
            self.transmit();
            self.collect_outcomes();
            break;
        }
        self.check_stats();
    }

    fn transmit(&mut self) {
        let mut out = vec![0xee]; // poll_transmit appends: keep what was there
        let written = self.gateway.poll_transmit(&mut out);
        assert_eq!(out[0], 0xee);
        assert_eq!(written, out.len() - 1);
        if self.socket != Socket::Open {
            assert_eq!(written, 0, "wrote {written} bytes without a connection");
            return;
        }
        if self.unwritten.len() >= self.max_unwritten {
            assert_eq!(
                written, 0,
                "transmitted with {} writes outstanding",
                self.max_unwritten
            );
        }
        let mut frames = 0;
        let mut rest = &out[1..];
        let mut last_len = 0;
        let mut checkpoint_len = 0;
        while !rest.is_empty() {
            let (frame, used) = match Frame::decode(rest) {
                Ok(Some(decoded)) => decoded,
                // A checkpoint: no token, the next identifier, and the last bytes written
                // until the connection closes.
                Err(DecodeError::MissingToken {
                    identifier: Some(identifier),
                }) if self.format != Format::Simple => {
                    assert_eq!(identifier, self.next_identifier, "checkpoint identifier");
                    self.next_identifier = self.next_identifier.wrapping_add(1);
                    checkpoint_len = rest.len();
                    assert!(checkpoint_len <= 13, "a checkpoint ends the transmit");
                    break;
                }
                other => panic!("poll_transmit wrote an undecodable frame: {other:?}"),
            };
            assert_eq!(frame.format, self.format);
            let expected_identifier = match self.format {
                Format::Simple => None,
                Format::Enhanced | Format::Framed => Some(self.next_identifier),
            };
            assert_eq!(
                frame.identifier, expected_identifier,
                "identifiers count up"
            );
            self.next_identifier = self.next_identifier.wrapping_add(1);
            let tag = tag_of(&frame.token);
            assert_eq!(frame.token, token_for(tag));
            let size = self.queued.get(tag as usize).copied().flatten();
            assert_eq!(size, Some(frame.payload.len()), "frame for tag {tag}");
            assert!(frame.payload.len() <= self.payload_limit);
            assert_eq!(
                self.outcomes[tag as usize], 0,
                "tag {tag} written after its outcome"
            );
            frames += 1;
            last_len = used;
            rest = &rest[used..];
        }
        if written > 0 {
            assert!(
                written - checkpoint_len - last_len < self.max_transmit,
                "{written} bytes written with max_transmit {}",
                self.max_transmit
            );
        }
        if written > 0 {
            self.unwritten.push_back((frames, written as u64));
            if !self.lagging_writer {
                self.report_written();
            }
        }
    }

    /// The oldest outstanding transmit is written.
    fn report_written(&mut self) {
        if let Some((frames, bytes)) = self.unwritten.pop_front() {
            self.gateway.handle_written(self.now);
            self.frames_written += frames;
            self.bytes_written += bytes;
        }
    }

    fn collect_outcomes(&mut self) {
        while let Some(outcome) = self.gateway.poll_outcome() {
            let tag = outcome.tag as usize;
            let size = self.queued.get(tag).copied().flatten();
            let Some(size) = size else {
                panic!("outcome for tag {tag}, never accepted: {outcome:?}");
            };
            assert_eq!(
                self.outcomes[tag], 0,
                "second outcome for tag {tag}: {outcome:?}"
            );
            self.outcomes[tag] += 1;
            self.outcomes_total += 1;
            assert_eq!(outcome.new_token, None, "APNs never replaces tokens");
            if size > self.payload_limit {
                assert!(
                    matches!(outcome.error, Some(DeviceError::PayloadTooLarge { .. })),
                    "oversized payload of tag {tag}: {outcome:?}"
                );
            }
        }
    }

    fn check_stats(&self) {
        let stats = self.gateway.stats();
        let accepted = self.queued.iter().flatten().count() as u64;
        assert_eq!(stats.queued, accepted, "stats.queued");
        assert_eq!(
            stats.delivered + stats.failed,
            self.outcomes_total,
            "stats outcomes"
        );
        assert_eq!(
            stats.frames_written, self.frames_written,
            "stats.frames_written"
        );
        assert_eq!(
            stats.bytes_written, self.bytes_written,
            "stats.bytes_written"
        );
        let unresolved = self
            .queued
            .iter()
            .zip(&self.outcomes)
            .filter(|(q, n)| q.is_some() && **n == 0);
        assert_eq!(self.gateway.unresolved(), unresolved.count(), "unresolved");
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.report_written();
        self.gateway.handle_timeout(self.now);
        self.drain();
        self.check_deadline_ahead();
    }

    /// Right after `handle_timeout(now)` and draining, the next deadline is in the future:
    /// a driver that waits for it never spins.
    fn check_deadline_ahead(&self) {
        if let Some(deadline) = self.gateway.poll_timeout() {
            assert!(
                deadline > self.now,
                "deadline {:?} not after now {:?}",
                deadline - self.t0,
                self.now - self.t0
            );
        }
    }

    fn input(&mut self, bytes: &[u8]) {
        if self.socket == Socket::Open {
            self.gateway.handle_input(self.now, bytes);
            self.drain();
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        match op % 8 {
            0 => {
                let size = usize::from(input.byte() % 96);
                self.queue(size);
                self.drain();
            }
            1 => {
                let answer = input.byte();
                if self.socket == Socket::Connecting {
                    if answer & 1 == 0 {
                        self.socket = Socket::Open;
                        self.gateway.handle_connected(self.now);
                    } else {
                        self.socket = Socket::Closed;
                        self.gateway
                            .handle_connect_failed(self.now, "refused by the fuzzer");
                    }
                    self.drain();
                }
            }
            2 | 3 => {
                // Raw server bytes, in one or two reads.
                let len = 1 + usize::from(op >> 4);
                let bytes = input.take(len);
                let split = usize::from((op >> 3) & 1) * bytes.len() / 2;
                self.input(&bytes[..split]);
                self.input(&bytes[split..]);
            }
            4 => {
                // A well-formed error response naming a recent identifier (or one never sent).
                let status = Status::from_code(input.byte());
                let back = input.byte();
                let identifier = if back < 240 {
                    self.next_identifier.wrapping_sub(1 + u32::from(back % 12))
                } else {
                    self.next_identifier.wrapping_add(u32::from(back - 240))
                };
                let bytes = ErrorResponse { status, identifier }.encode();
                let split = usize::from(op >> 3) % 7;
                self.input(&bytes[..split]);
                self.input(&bytes[split..]);
            }
            5 => {
                if self.socket == Socket::Open {
                    self.socket = Socket::Closed;
                    self.unwritten.clear();
                    self.gateway.handle_closed(self.now);
                    self.drain();
                }
            }
            6 => {
                let millis = u64::from(input.byte()) * u64::from(op >> 3 | 1);
                self.advance(Duration::from_millis(millis));
            }
            _ => {
                // Wake exactly at the deadline the gateway asked for.
                match self.gateway.poll_timeout() {
                    Some(deadline) if deadline > self.now => self.advance(deadline - self.now),
                    _ => self.advance(Duration::ZERO),
                }
            }
        }
    }

    /// Lets time pass with a well-behaved server until every notification has its outcome.
    fn finish(&mut self) {
        self.drain();
        for _ in 0..10_000 {
            if self.gateway.is_idle() && self.socket != Socket::Connecting {
                break;
            }
            if self.socket == Socket::Connecting {
                self.socket = Socket::Open;
                self.gateway.handle_connected(self.now);
                self.drain();
            } else if !self.unwritten.is_empty() {
                self.report_written();
                self.drain();
            } else if let Some(deadline) = self.gateway.poll_timeout() {
                let by = deadline.saturating_duration_since(self.now);
                self.advance(by);
            } else {
                panic!(
                    "gateway stalled: {} unresolved, socket {:?}, nothing to wait for",
                    self.gateway.unresolved(),
                    self.socket
                );
            }
        }
        assert!(self.gateway.is_idle(), "not idle after the bounded finish");
        self.collect_outcomes();
        for (tag, (queued, outcomes)) in self.queued.iter().zip(&self.outcomes).enumerate() {
            let expected = u32::from(queued.is_some());
            assert_eq!(*outcomes, expected, "tag {tag}: {outcomes} outcomes");
        }
        self.check_stats();
    }
}

/// A `Gateway<u32>` driven by the fuzzer's bytes: the first bytes pick a small config, the
/// rest is a script of queue / connect answers / server bytes / closes / time steps, after
/// which time runs on until the gateway is idle. Every notification gets exactly one outcome,
/// every frame written decodes, and the gateway asks for nothing the driver cannot do.
pub fn gateway(data: &[u8]) {
    let mut input = Input { data };
    let mut driver = Driver::new(&mut input);
    // Something to send from the start.
    let initial = input.byte() % 8;
    for _ in 0..initial {
        driver.queue(20);
    }
    driver.drain();
    while !input.is_empty() {
        driver.step(&mut input);
    }
    driver.finish();
}

// ---------------------------------------------------------------------------------------------
// gcm_response
// ---------------------------------------------------------------------------------------------

/// A GCM response made of the fuzzer's bytes — status and `Retry-After` / `Date` headers picked
/// by the first bytes, the rest the body — answering the first batch of a GCM sender on the
/// engine; then every request fails in transport until the sender gives up. The parser never
/// panics, every token gets exactly one outcome, and no token is sent more than
/// `max_attempts` times.
pub fn gcm_response(data: &[u8]) {
    let [tokens, status, retry, body @ ..] = data else {
        return;
    };
    let tokens = usize::from(tokens % 8) + 1;
    let sent: Vec<String> = (0..tokens).map(|i| format!("token-{i}")).collect();
    if let Ok(answers) = parse_results(body, &sent, None) {
        assert_eq!(answers.len(), tokens, "one answer per token");
    }

    let mut config = gcm::Config::new("key");
    config.engine.max_attempts = 3;
    let mut sender: gcm::Sender<usize> = gcm::sender(config).expect("valid config");
    let message = gcm::Message::new(&Payload::new().body("hi"), &MessageOptions::default())
        .and_then(|message| message.encode())
        .expect("valid message");
    let mut now = Instant::now();
    for (tag, token) in sent.iter().enumerate() {
        let token = GcmToken::parse(token).expect("valid token");
        assert!(sender.queue(token, message.clone(), tag, now).is_ok());
    }
    sender.flush();

    let status = [200, 200, 200, 400, 401, 404, 429, 500, 503][usize::from(status % 9)];
    let mut response = http::Response::builder().status(status);
    response = match retry % 4 {
        0 => response,
        1 => response.header("retry-after", (retry / 4).to_string()),
        2 => response
            .header("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")
            .header("date", "Sun, 06 Nov 1994 08:49:30 GMT"),
        // Arbitrary text: only bytes a header value may hold (anything else cannot arrive).
        _ => match http::HeaderValue::from_bytes(body) {
            Ok(value) => response.header("retry-after", value),
            Err(_) => response,
        },
    };
    let mut first = Some(
        response
            .body(bytes::Bytes::copy_from_slice(body))
            .expect("valid response"),
    );

    let mut outcomes = vec![0u32; tokens];
    let mut sends = vec![0u32; tokens];
    for _ in 0..200 {
        while let Some(report) = sender.poll_outcome() {
            outcomes[report.outcome.tag] += 1;
        }
        while sender.poll_event().is_some() {}
        if sender.is_idle() {
            break;
        }
        let input = match sender.poll_action(now) {
            Some(engine::Action::Dial(conn)) => engine::Input::Connected {
                conn,
                max_streams: 1,
            },
            Some(engine::Action::Close(_)) => continue,
            Some(engine::Action::CredentialRequest(_)) => panic!("an API key needs no request"),
            Some(engine::Action::Send { id, request, .. }) => {
                let body: RequestBody = serde_json::from_slice(request.body()).expect("our JSON");
                for token in &body.registration_ids {
                    let index = sent.iter().position(|t| t == token).expect("a sent token");
                    sends[index] += 1;
                }
                match first.take() {
                    Some(response) => engine::Input::Response { id, response },
                    None => engine::Input::StreamEnd {
                        id,
                        end: engine::StreamEnd::ConnectionError("connection reset".into()),
                    },
                }
            }
            None => {
                now = sender
                    .poll_timeout()
                    .expect("waiting for something")
                    .max(now);
                sender.handle_timeout(now);
                continue;
            }
        };
        sender.handle(input, now);
    }
    assert!(sender.is_idle(), "the sender finishes");
    assert!(
        outcomes.iter().all(|&n| n == 1),
        "one outcome per token: {outcomes:?}"
    );
    assert!(sends.iter().all(|&n| n <= 3), "bounded attempts: {sends:?}");
}

// ---------------------------------------------------------------------------------------------
// apns_http2_response
// ---------------------------------------------------------------------------------------------

/// A signer that needs no key: the harness checks classification and bookkeeping, not crypto.
struct ZeroSigner;

impl http2::Signer for ZeroSigner {
    fn key_id(&self) -> &str {
        "FUZZKEY123"
    }

    fn sign(&self, _: &[u8]) -> Result<[u8; 64], http2::SignError> {
        Ok([0; 64])
    }
}

/// An APNs HTTP/2 response made of the fuzzer's bytes — status, `Retry-After` and `apns-id`
/// picked by the first bytes, the rest the body — classified directly, then handed to a token-
/// auth `Sender` with one notification in flight; every later request is answered with a
/// transport failure or the same response until the sender gives up. Classification never
/// panics, the notification gets exactly one report, and it is sent a bounded number of times.
pub fn apns_http2_response(data: &[u8]) {
    let [status_pick, extras, body @ ..] = data else {
        return;
    };
    let statuses = [200, 400, 403, 404, 405, 410, 413, 429, 500, 503];
    let status = match statuses.get(usize::from(*status_pick)) {
        Some(status) => *status,
        // Any other status, including odd ones.
        None => 100 + u16::from(*status_pick) * 3,
    };
    let mut response = http::Response::builder().status(status);
    response = match extras % 4 {
        0 => response,
        1 => response.header("retry-after", (extras / 4).to_string()),
        2 => response.header("apns-id", "EC1BF194-B3B2-424A-89A9-5A918A6E6B5D"),
        _ => match http::HeaderValue::from_bytes(body) {
            Ok(value) => response
                .header("retry-after", value.clone())
                .header("apns-id", value),
            Err(_) => response,
        },
    };
    let Ok(response) = response.body(bytes::Bytes::copy_from_slice(body)) else {
        return;
    };
    let classified = http2::classify(response.status(), response.headers(), response.body());
    assert_eq!(classified.status.as_u16(), status);
    let _ = http2::response::parse_body(body);

    let now = Instant::now();
    let auth =
        http2::TokenAuth::new(ZeroSigner, "FUZZTEAM12", now, 1_700_000_000).expect("valid ids");
    let mut config = http2::Config::new(http2::PRODUCTION_URL).topic("com.example.fuzz");
    config.engine.max_attempts = 3;
    let mut sender: http2::Sender<u32> =
        http2::sender(config, http2::Auth::Token(auth)).expect("valid config");
    let notification = http2::Notification::new().custom("fuzz", 1);
    let message = http2::Message::new(&notification, &http2::Options::new(http2::PushType::Alert))
        .expect("small message");
    let token = ApnsToken::from_bytes([7; 32]);
    assert!(sender.queue(token, message, 0, now).is_ok());

    let mut sends = 0u32;
    let (reports, _) = drive_engine(
        &mut sender,
        now,
        |_| None,
        |request, round| {
            sends += 1;
            assert_eq!(
                request.uri().path(),
                format!("/3/device/{}", "07".repeat(32))
            );
            assert!(request.headers().contains_key("authorization"));
            (round % 2 == 0).then(|| response.clone())
        },
    );
    assert_eq!(reports, 1, "one report per notification");
    // Three counted attempts plus the one retry after ExpiredProviderToken.
    assert!(sends <= 4, "bounded attempts: {sends}");
}

// ---------------------------------------------------------------------------------------------
// fcm_response, fcm_token_response
// ---------------------------------------------------------------------------------------------

/// An RSA signer that needs no key: the harnesses check parsing and bookkeeping, not crypto.
struct ZeroRsaSigner;

impl fcm::RsaSigner for ZeroRsaSigner {
    fn key_id(&self) -> &str {
        "fuzz-key"
    }

    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, fcm::SignError> {
        Ok(vec![0; 256])
    }
}

/// A sender for project `fuzz` with one notification queued, tagged 0.
fn fcm_sender(now: Instant) -> fcm::Sender<u32> {
    let account = fcm::ServiceAccount::new("fuzz", "fuzz@fuzz.iam.gserviceaccount.com", "k", "");
    let auth = fcm::OAuth::new(&account, ZeroRsaSigner, now, 1_700_000_000).expect("valid uri");
    let mut config = fcm::Config::for_account(&account);
    config.engine.max_attempts = 3;
    let mut sender = fcm::sender(config, auth).expect("valid config");
    let message =
        fcm::Message::new(&Payload::new().body("hi"), &fcm::Options::new()).expect("small message");
    let token = GcmToken::parse("fuzz-token").expect("valid token");
    assert!(sender.queue(token, message, 0, now).is_ok());
    sender
}

fn grant() -> http::Response<bytes::Bytes> {
    http::Response::new(bytes::Bytes::from_static(
        br#"{"access_token":"ya29.fuzz","expires_in":3600,"token_type":"Bearer"}"#,
    ))
}

/// Drives the FCM `sender` until it is idle: token requests are answered by
/// `token_answer(round)` (`None` = transport failure), FCM requests by `fcm_answer(round)`
/// (`None` = the connection failed under the stream). Returns (reports, token requests, FCM
/// requests).
fn drive_fcm(
    sender: &mut fcm::Sender<u32>,
    now: Instant,
    token_answer: impl Fn(u32) -> Option<http::Response<bytes::Bytes>>,
    fcm_answer: impl Fn(u32) -> Option<http::Response<bytes::Bytes>>,
) -> (u32, u32, u32) {
    let mut sends = 0;
    let (reports, token_requests) = drive_engine(sender, now, token_answer, |request, round| {
        sends += 1;
        let body: fcm::SendRequest = serde_json::from_slice(request.body()).expect("our JSON");
        assert_eq!(body.message.token, "fuzz-token");
        fcm_answer(round)
    });
    (reports, token_requests, sends)
}

/// Drives an engine `sender` until it is idle, as a transport would: every dial succeeds with
/// 100 streams, credential requests are answered by `token_answer(round)` (`None` = transport
/// failure), requests by `answer(request, round)` (`None` = the connection failed under the
/// stream), and time jumps to each deadline. Returns (reports, credential requests).
fn drive_engine<P: engine::Protocol, C: engine::Credential>(
    sender: &mut engine::Sender<P, C, u32>,
    mut now: Instant,
    token_answer: impl Fn(u32) -> Option<http::Response<bytes::Bytes>>,
    mut answer: impl FnMut(&http::Request<bytes::Bytes>, u32) -> Option<http::Response<bytes::Bytes>>,
) -> (u32, u32) {
    let (mut reports, mut token_requests) = (0, 0);
    for round in 0..200u32 {
        while let Some(report) = sender.poll_outcome() {
            assert_eq!(report.outcome.tag, 0);
            reports += 1;
        }
        while sender.poll_event().is_some() {}
        if sender.is_idle() {
            break;
        }
        let input = match sender.poll_action(now) {
            Some(engine::Action::Dial(conn)) => engine::Input::Connected {
                conn,
                max_streams: 100,
            },
            Some(engine::Action::Close(_)) => continue,
            Some(engine::Action::CredentialRequest(request)) => {
                token_requests += 1;
                assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
                match token_answer(round) {
                    Some(response) => engine::Input::CredentialResponse(response),
                    None => engine::Input::CredentialFailure("connection reset".into()),
                }
            }
            Some(engine::Action::Send { id, request, .. }) => match answer(&request, round) {
                Some(response) => engine::Input::Response { id, response },
                None => engine::Input::StreamEnd {
                    id,
                    end: engine::StreamEnd::ConnectionError("connection reset".into()),
                },
            },
            None => {
                now = sender
                    .poll_timeout()
                    .expect("waiting for something")
                    .max(now);
                sender.handle_timeout(now);
                continue;
            }
        };
        sender.handle(input, now);
    }
    assert!(sender.is_idle(), "the sender finishes");
    (reports, token_requests)
}

/// An FCM response made of the fuzzer's bytes — status and `Retry-After` picked by the first
/// bytes, the rest the body — classified directly, then handed to a `Sender` with one
/// notification in flight; later requests get the same response or a transport failure, in
/// turn, until the sender gives up. Classification never panics, the notification gets
/// exactly one report, and it is sent a bounded number of times.
pub fn fcm_response(data: &[u8]) {
    let [status_pick, extras, body @ ..] = data else {
        return;
    };
    let statuses = [200, 400, 401, 403, 404, 429, 500, 503];
    let status = match statuses.get(usize::from(*status_pick)) {
        Some(status) => *status,
        None => 100 + u16::from(*status_pick) * 3,
    };
    let mut response = http::Response::builder().status(status);
    response = match extras % 3 {
        0 => response,
        1 => response.header("retry-after", (extras / 3).to_string()),
        _ => match http::HeaderValue::from_bytes(body) {
            Ok(value) => response.header("retry-after", value),
            Err(_) => response,
        },
    };
    let Ok(response) = response.body(bytes::Bytes::copy_from_slice(body)) else {
        return;
    };
    let classified = fcm::classify(response.status(), response.headers(), response.body());
    assert_eq!(classified.status.as_u16(), status);
    assert!(!classified.describe().is_empty());

    let now = Instant::now();
    let mut sender = fcm_sender(now);
    let (reports, _, sends) = drive_fcm(
        &mut sender,
        now,
        |_| Some(grant()),
        |round| (round % 2 == 1).then(|| response.clone()),
    );
    assert_eq!(reports, 1, "one report per notification");
    // Three counted attempts plus the one resend after a refused access token.
    assert!(sends <= 4, "bounded attempts: {sends}");
}

/// A token endpoint answer made of the fuzzer's bytes — status picked by the first byte, the
/// rest the body — parsed directly, then given to a `Sender` waiting for its first token;
/// later token requests get the same answer or a transport failure, in turn. Parsing never
/// panics, a grant is usable, and the waiting notification ends in exactly one report after a
/// bounded number of token requests.
pub fn fcm_token_response(data: &[u8]) {
    let [status_pick, body @ ..] = data else {
        return;
    };
    let statuses = [200, 200, 400, 401, 403, 429, 500, 503];
    let status = match statuses.get(usize::from(*status_pick)) {
        Some(status) => *status,
        None => 100 + u16::from(*status_pick) * 3,
    };
    let Ok(response) = http::Response::builder()
        .status(status)
        .body(bytes::Bytes::copy_from_slice(body))
    else {
        return;
    };
    match fcm::parse_token_response(response.status(), body) {
        Ok(grant) => {
            assert_eq!(status, 200);
            assert!(!grant.access_token.is_empty() && grant.expires_in.as_secs() > 0);
        }
        Err(error) => assert!(error.status == Some(status) && !error.to_string().is_empty()),
    }

    let now = Instant::now();
    let mut sender = fcm_sender(now);
    let ok = http::Response::new(bytes::Bytes::from_static(
        br#"{"name":"projects/fuzz/messages/1"}"#,
    ));
    let (reports, token_requests, sends) = drive_fcm(
        &mut sender,
        now,
        |round| (round % 2 == 0).then(|| response.clone()),
        |_| Some(ok.clone()),
    );
    assert_eq!(reports, 1, "one report per notification");
    assert!(
        token_requests <= 3,
        "bounded token requests: {token_requests}"
    );
    assert!(sends <= 1, "one send at most: {sends}");
}

// ---------------------------------------------------------------------------------------------
// webpush_subscription
// ---------------------------------------------------------------------------------------------

/// The fuzzer's bytes (as UTF-8, lossily) parsed as a browser's `PushSubscription` JSON:
/// never panics; a parsed subscription is at the origin of its own endpoint, reads back equal
/// from its own JSON, and its `Debug` and errors never show its authentication secret.
pub fn webpush_subscription(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match webpush::Subscription::from_json(&text) {
        Ok(subscription) => {
            let endpoint = subscription.endpoint().to_string();
            let origin = webpush::Origin::parse(&endpoint).expect("the endpoint has an origin");
            assert_eq!(&origin, subscription.origin());
            let json = subscription.to_json();
            let again = webpush::Subscription::from_json(&json).expect("its own JSON parses");
            assert_eq!(again, subscription);
            let auth =
                serde_json::from_str::<serde_json::Value>(&json).expect("JSON")["keys"]["auth"]
                    .as_str()
                    .expect("auth")
                    .to_owned();
            // (Unless the endpoint, which Debug shows, happens to contain the same text.)
            if !endpoint.contains(&auth) {
                assert!(!format!("{subscription:?}").contains(&auth));
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------
// webpush_response
// ---------------------------------------------------------------------------------------------

/// A push service's answer made of the fuzzer's bytes — status, `Retry-After` and `Location`
/// picked by the first bytes, the rest the body — classified directly, then handed to a Web
/// Push `Sender` with one message in flight; later requests get the same answer or a
/// transport failure, in turn, until the sender gives up. Classification never panics and
/// keeps to the status class, the message gets exactly one report, and it is sent a bounded
/// number of times.
pub fn webpush_response(data: &[u8]) {
    let [status_pick, extras, body @ ..] = data else {
        return;
    };
    let statuses = [201, 200, 400, 401, 403, 404, 410, 413, 429, 500, 503];
    let status = match statuses.get(usize::from(*status_pick)) {
        Some(status) => *status,
        None => 100 + u16::from(*status_pick) * 3,
    };
    let mut response = http::Response::builder().status(status);
    let header = |value: &[u8]| http::HeaderValue::from_bytes(value).ok();
    response = match (extras % 4, header(body)) {
        (1, _) => response.header("retry-after", (extras / 4).to_string()),
        (2, Some(value)) => response.header("retry-after", value),
        (3, Some(value)) => response.header("location", value),
        _ => response,
    };
    let Ok(response) = response.body(bytes::Bytes::copy_from_slice(body)) else {
        return;
    };
    let answer = webpush::classify(&response);
    assert_eq!(answer.status, status);
    assert!(!answer.described.is_empty());
    let success = (200..300).contains(&status);
    assert_eq!(answer.verdict == engine::Verdict::Delivered, success);
    assert!(answer.id.is_none() || success);
    assert!(answer.reason.is_none() || !success);
    let reason_len = answer.reason.as_ref().map_or(0, |r| r.chars().count());
    assert!(reason_len <= webpush::response::MAX_REASON);

    let now = Instant::now();
    let mut sender = webpush_sender(now);
    let mut sends = 0;
    let (reports, _) = drive_engine(
        &mut sender,
        now,
        |_| None,
        |request, round| {
            sends += 1;
            assert!(request.body().len() <= webpush::MAX_BODY);
            (round % 2 == 1).then(|| response.clone())
        },
    );
    assert_eq!(reports, 1, "one report per message");
    // Three counted attempts plus the one resend after a refused VAPID token.
    assert!(sends <= 4, "bounded attempts: {sends}");
}

/// A Web Push sender for `https://push.example.net` with one message queued.
fn webpush_sender(now: Instant) -> webpush::Sender<u32> {
    let key = webpush::VapidKey::from_base64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")
        .expect("a key");
    let vapid = webpush::Vapid::new(key, "mailto:fuzz@example.com").expect("a subject");
    let origin = webpush::Origin::parse("https://push.example.net").expect("an origin");
    let credential = webpush::VapidCredential::new(vapid, origin, now, 1_700_000_000);
    let mut config = webpush::Config::default();
    config.max_attempts = 3;
    let mut sender = webpush::sender(config, credential).expect("config");
    let subscription = webpush::Subscription::new(
        "https://push.example.net/push/1",
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        "BTBZMqHH6r4Tts7J_aSIgg",
    )
    .expect("a subscription");
    let message = webpush::Message::new(
        &Payload::new().title("fuzz"),
        &webpush::Options::new().ttl(3600),
    )
    .expect("a message");
    sender
        .queue(subscription, message, 0, now)
        .expect("room for one");
    sender
}

// ---------------------------------------------------------------------------------------------
// apns_broadcast_response
// ---------------------------------------------------------------------------------------------

/// The channel-management and broadcast classifiers on arbitrary answers: never panic, succeed
/// only on the documented status of their operation, return ids that are valid and survive a
/// round trip, and call an answer rejected exactly when its status is 4xx or 5xx.
pub fn apns_broadcast_response(data: &[u8]) {
    let [op, status_pick, extras, body @ ..] = data else {
        return;
    };
    let statuses = [200, 201, 204, 400, 403, 404, 405, 410, 413, 429, 500, 503];
    let status = statuses
        .get(usize::from(*status_pick))
        .copied()
        .unwrap_or(100 + u16::from(*status_pick) * 3);
    // The body's bytes double as a header value, when they form one.
    let raw = http::HeaderValue::from_bytes(body).ok();
    let fixed = |text: &'static str| Some(http::HeaderValue::from_static(text));
    let headers: Vec<(&str, Option<http::HeaderValue>)> = match extras % 4 {
        0 => vec![],
        1 => vec![("apns-channel-id", raw)],
        2 => vec![
            (
                "apns-request-id",
                fixed("EC1BF194-B3B2-424A-89A9-5A918A6E6B5D"),
            ),
            ("apns-channel-id", fixed("dHN0LXNyY2gtY2hubA==")),
            (
                "retry-after",
                http::HeaderValue::from_str(&(extras / 4).to_string()).ok(),
            ),
        ],
        _ => vec![("apns-request-id", raw.clone()), ("retry-after", raw)],
    };
    let mut response = http::Response::builder().status(status);
    for (name, value) in headers {
        if let Some(value) = value {
            response = response.header(name, value);
        }
    }
    let Ok(response) = response.body(bytes::Bytes::copy_from_slice(body)) else {
        return;
    };
    let api = ChannelApi::new(Environment::Development, "com.example.fuzz").expect("valid ids");
    let (success, error) = match op % 5 {
        0 => {
            let result = api.classify_create(&response);
            if let Ok(id) = &result {
                assert_eq!(broadcast::ChannelId::new(id.as_str()).as_ref(), Ok(id));
                assert_eq!(response.headers()["apns-channel-id"], id.as_str());
            }
            (201, result.err())
        }
        1 => {
            let result = api.classify_read(&response);
            if let Ok(info) = result {
                assert_eq!(ChannelInfo::from_body(&info.to_body()), Some(info));
            }
            (200, result.err())
        }
        2 => (204, api.classify_delete(&response).err()),
        3 => {
            let result = api.classify_list(&response);
            if let Ok(ids) = &result {
                let again = response_with(200, broadcast::list_body(ids));
                assert_eq!(
                    api.classify_list(&again).as_ref(),
                    Ok(ids),
                    "list round trip"
                );
            }
            (200, result.err())
        }
        _ => (200, broadcast::classify_broadcast(&response).err()),
    };
    match error {
        None => assert_eq!(status, success, "success only on the documented status"),
        Some(ApiError::Rejected {
            status: got,
            reason,
            ..
        }) => {
            assert_eq!(got.as_u16(), status);
            assert!(got.is_client_error() || got.is_server_error());
            assert!(
                reason.as_str().chars().count() <= 100,
                "reason kept bounded"
            );
        }
        Some(ApiError::Malformed { status: got, .. }) => {
            assert_eq!(got.as_u16(), status);
            assert!(!got.is_client_error() && !got.is_server_error());
        }
        Some(other) => panic!("undocumented error kind: {other:?}"),
    }
    exchange_answer(&response);
}

/// `response` answers a broadcast sent as an exchange on an APNs HTTP/2 sender (token
/// auth): it comes back whole and once, whatever it says (an `ExpiredProviderToken` only
/// marks the token for renewal), and the sender ends idle.
fn exchange_answer(response: &http::Response<bytes::Bytes>) {
    let now = Instant::now();
    let auth =
        http2::TokenAuth::new(ZeroSigner, "FUZZTEAM12", now, 1_700_000_000).expect("valid ids");
    let config = http2::Config::new(http2::PRODUCTION_URL).topic("com.example.fuzz");
    let mut sender: http2::Sender<u32> =
        http2::sender(config, http2::Auth::Token(auth)).expect("valid config");
    let mut request = http::Request::new(bytes::Bytes::from_static(b"{}"));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() =
        http::Uri::from_static("https://api.push.apple.com/4/broadcasts/apps/com.example.fuzz");
    let exchange = sender.exchange(request);
    let mut sent = 0;
    while let Some(action) = sender.poll_action(now) {
        match action {
            engine::Action::Dial(conn) => sender.handle(
                engine::Input::Connected {
                    conn,
                    max_streams: 10,
                },
                now,
            ),
            engine::Action::Send { id, request, .. } => {
                sent += 1;
                assert!(request.headers().contains_key("authorization"));
                let response = response_with(response.status().as_u16(), response.body().clone());
                sender.handle(engine::Input::Response { id, response }, now);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent, 1, "an exchange is sent once");
    let (id, result) = sender.poll_exchanged().expect("a result");
    assert_eq!(id, exchange);
    let answer = result.expect("answered");
    assert_eq!(answer.status(), response.status());
    assert_eq!(answer.body(), response.body());
    assert!(sender.poll_exchanged().is_none(), "one result");
    while sender.poll_event().is_some() {}
    assert!(sender.is_idle());
}

fn response_with(status: u16, body: bytes::Bytes) -> http::Response<bytes::Bytes> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    response
}

// ---------------------------------------------------------------------------------------------
// apns_broadcast_request
// ---------------------------------------------------------------------------------------------

/// The server-side readers on arbitrary requests (what a mock receives): never panic, and a
/// channel request they accept is rebuilt by `ChannelApi` into one they read identically; a
/// broadcast they accept has a payload within the limit.
///
/// Layout: a method byte, a path byte, then `0xff`-separated fields: bundle id, channel id,
/// priority, expiration, request id, push type, body.
pub fn apns_broadcast_request(data: &[u8]) {
    let [method, path, rest @ ..] = data else {
        return;
    };
    let mut fields = rest.split(|&b| b == 0xff);
    let mut field = || fields.next().unwrap_or_default();
    let bundle = String::from_utf8_lossy(field()).into_owned();
    let method = [
        http::Method::GET,
        http::Method::POST,
        http::Method::DELETE,
        http::Method::PUT,
    ][usize::from(method % 4)]
    .clone();
    let path = match path % 4 {
        0 => format!("/1/apps/{bundle}/channels"),
        1 => format!("/1/apps/{bundle}/all-channels"),
        2 => format!("/4/broadcasts/apps/{bundle}"),
        _ => bundle.clone(),
    };
    let Ok(uri) = format!("https://fuzz{path}").parse::<http::Uri>() else {
        return;
    };
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for name in [
        "apns-channel-id",
        "apns-priority",
        "apns-expiration",
        "apns-request-id",
        "apns-push-type",
    ] {
        let value = field();
        if let (false, Ok(value)) = (value.is_empty(), http::HeaderValue::from_bytes(value)) {
            request.headers_mut().insert(name, value);
        }
    }
    *request.body_mut() = bytes::Bytes::copy_from_slice(field());

    if let Ok(call) = broadcast::parse_channel_request(&request) {
        let api = ChannelApi::with_base_url("https://fuzz", &call.bundle_id).expect("checked");
        let rebuilt = match &call.op {
            ChannelOp::Create(policy) => api.create(*policy, call.request_id),
            ChannelOp::Read(id) => api.read(id, call.request_id),
            ChannelOp::Delete(id) => api.delete(id, call.request_id),
            ChannelOp::List => api.list(call.request_id),
        };
        assert_eq!(
            broadcast::parse_channel_request(&rebuilt).as_ref(),
            Ok(&call),
            "round trip"
        );
    }
    if let Ok(call) = broadcast::parse_broadcast_request(&request) {
        assert!(!call.payload.is_empty() && call.payload.len() <= MAX_BROADCAST_PAYLOAD);
        assert_eq!(request.headers()["apns-channel-id"], call.channel.as_str());
    }
}
