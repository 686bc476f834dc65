//! The APNs gateway connection state machine ([`Gateway`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::encode_checkpoint;
use super::{ErrorResponse, Format, Frame, Status};
use crate::backoff::Backoff;
use crate::device::ApnsToken;
use crate::feedback::DeviceError;
use crate::outcome::{Full, Outcome};

/// How many notifications a checkpoint proved accepted are reported per
/// [`Gateway::handle_timeout`]: a window's outcomes come in slices, between which the driver
/// goes on writing, instead of one burst that holds up the next window.
const RELEASE_SLICE: usize = 1024;

/// What to do with notifications of unknown fate when a connection closes without an error
/// response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilentClose {
    /// Send them again on the next connection (at least once). Each notification is sent at
    /// most `max_attempts` times; after that it is reported [`DeviceError::Unconfirmed`].
    Resend,
    /// Report each as [`DeviceError::Unconfirmed`] and do not send it again (at most once).
    Report,
}

/// Settings of a [`Gateway`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Frame format; command 2 by default.
    pub format: Format,
    /// Largest payload accepted; by default the format's limit (2048 or 256 bytes).
    pub payload_limit: usize,
    /// How long a written notification must go unchallenged before it counts as delivered.
    pub grace: Duration,
    /// Capacity of the resend window (written, unconfirmed notifications); writing pauses
    /// while it is full. It bounds the memory held for resends, and with checkpoints off,
    /// the throughput of a connection (`window / grace`).
    pub window: usize,
    /// Whether a full window ends with a checkpoint: a frame without a device token, which the
    /// gateway answers with status 2 naming it, then closes. That answer proves every
    /// notification written before it accepted, so the window is confirmed at once and the
    /// next connection starts empty, instead of writing pausing until the grace period passes.
    /// Ignored for the simple format (no identifiers). On by default.
    pub checkpoints: bool,
    /// Capacity of the queue of notifications waiting to be written ([`Full`] beyond it).
    pub max_pending: usize,
    /// How many times one notification may be sent before it is given up.
    pub max_attempts: u32,
    /// Consecutive failed connection attempts after which everything queued fails as
    /// `unavailable`.
    pub max_connect_attempts: u32,
    /// First reconnect delay after a failure; doubles per failure.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Seed of the reconnect jitter.
    pub seed: u64,
    /// Policy for notifications of unknown fate after a silent close.
    pub silent_close: SilentClose,
    /// Most bytes one `poll_transmit` call appends.
    pub max_transmit: usize,
    /// Transmits handed to the transport and not yet reported written
    /// ([`Gateway::handle_written`]); `poll_transmit` adds nothing while this many are
    /// outstanding, so a gateway that stops reading pauses the writing instead of growing a
    /// buffer. At least 1.
    pub max_unwritten_transmits: usize,
    /// Identifier of the first notification written (then counting up, wrapping at 2³²).
    pub first_identifier: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig::new(Format::Framed)
    }
}

impl GatewayConfig {
    /// Defaults for `format`: its payload limit, 1 s grace, a 100,000-entry window ended by a
    /// checkpoint, 10,000 queued, 3 attempts, 5 connection attempts with backoff from 100 ms
    /// to 30 s, resend on silent close, 64 KiB per transmit, 4 transmits waiting to be written.
    pub fn new(format: Format) -> Self {
        GatewayConfig {
            format,
            payload_limit: format.payload_limit(),
            grace: Duration::from_secs(1),
            window: 100_000,
            checkpoints: true,
            max_pending: 10_000,
            max_attempts: 3,
            max_connect_attempts: 5,
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            seed: 0,
            silent_close: SilentClose::Resend,
            max_transmit: 64 * 1024,
            max_unwritten_transmits: 4,
            first_identifier: 0,
        }
    }
}

/// One notification for one device, ready to be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The device.
    pub token: ApnsToken,
    /// The JSON payload, usually shared by many notifications.
    pub payload: Bytes,
    /// UNIX seconds until which APNs retries; 0 = now or never.
    pub expiry: u32,
    /// 10 (now) or 5 (power-efficient).
    pub priority: u8,
}

impl Notification {
    fn frame(&self, format: Format, identifier: u32) -> Frame {
        let payload = self.payload.clone();
        Frame::new(
            format,
            self.token,
            payload,
            identifier,
            self.expiry,
            self.priority,
        )
    }
}

/// Something the driver must act on, or should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Open a connection to the gateway, then call `handle_connected` or
    /// `handle_connect_failed`.
    Connect,
    /// Close the current connection (the gateway has given its verdict), then call
    /// `handle_closed`.
    Close,
    /// An error response named a notification already presumed delivered because it was
    /// older than the grace period; its status could not be attributed to a device, and
    /// everything still in the window was resent. Increase [`GatewayConfig::grace`].
    WindowOverflow {
        /// The status reported.
        status: Status,
        /// The identifier named.
        identifier: u32,
    },
    /// The gateway sent bytes that are not an error response, or named an identifier never
    /// sent. The connection is closed and treated as a silent close.
    ProtocolViolation(String),
    /// Connecting failed `max_connect_attempts` times in a row; everything queued was
    /// reported `unavailable`.
    GaveUp {
        /// The last connection error.
        reason: String,
    },
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Notifications accepted by `queue`.
    pub queued: u64,
    /// Frames written (first sends and resends), counted when the transport reports them
    /// written.
    pub frames_written: u64,
    /// Notifications queued again after an error response or a silent close.
    pub requeued: u64,
    /// Notifications that ended delivered.
    pub delivered: u64,
    /// Notifications that ended failed.
    pub failed: u64,
    /// Connections opened.
    pub connections: u64,
    /// Error responses received (checkpoints' answers not counted).
    pub error_responses: u64,
    /// Bytes written, counted when the transport reports them written.
    pub bytes_written: u64,
    /// Checkpoints answered: each confirmed the window before it at once.
    pub checkpoints: u64,
}

#[derive(Debug)]
struct Queued<T> {
    notification: Notification,
    tag: T,
    attempts: u32,
}

#[derive(Debug)]
struct Written<T> {
    queued: Queued<T>,
    identifier: u32,
    /// When the transport reported the frame's bytes written; `None` while they wait to be.
    written_at: Option<Instant>,
}

/// The frames and bytes of one `poll_transmit`, handed to the transport and not yet reported
/// written.
#[derive(Debug, Clone, Copy)]
struct Transmit {
    frames: usize,
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    /// No connection; `retry_at` is when the next may be opened.
    Down { retry_at: Option<Instant> },
    /// `Event::Connect` was emitted; waiting for the driver.
    Connecting,
    /// Open and writable.
    Up,
    /// The verdict arrived (or the peer misbehaved); `Event::Close` is pending or emitted.
    Closing,
}

/// The APNs gateway connection state machine: queueing, identifiers, the resend window, and
/// what a silent protocol means for delivery.
///
/// The binary protocol never acknowledges success. It answers a bad notification with one
/// error response naming it, then closes the connection, and everything written after that
/// notification was discarded. So the gateway keeps every written notification in an ordered
/// window until its fate is known:
///
/// - An error response for identifier X: everything written before X was delivered; X gets the
///   outcome its status implies ([`Status`] table below); everything after X goes back to the
///   front of the queue, in the original order, for the next connection.
/// - Status 10 (shutdown) and 0 name the last notification processed: it and everything
///   before it were delivered, the rest is resent.
/// - No error response: a notification counts as delivered once it has been on the wire for
///   the grace period ([`GatewayConfig::grace`]) while the connection stayed open. The grace
///   period counts from the moment the transport reports the bytes written
///   ([`handle_written`](Gateway::handle_written)), not from when they were produced: a
///   gateway that stops reading delays confirmations instead of having unread notifications
///   presumed delivered.
/// - A close without an error response leaves the younger notifications of unknown fate. The
///   policy [`SilentClose`] decides: resend them (default; a notification is never lost but
///   may arrive twice), or report each as [`DeviceError::Unconfirmed`]. A silent close also
///   halves how many notifications may be unconfirmed at once, and each confirmation raises
///   that limit again (up to the window): a gateway that drops connections after some frames
///   is probed with smaller bursts instead of having the same tail resent until it gives up.
/// - The window is bounded ([`GatewayConfig::window`]): when it is full, nothing more is
///   written on the connection. By default ([`GatewayConfig::checkpoints`]) the full window
///   ends with a checkpoint, a frame without a device token that the gateway must reject:
///   its error response names the checkpoint, so everything written before it was read and
///   accepted, and the whole window is delivered (reported in slices, one per
///   [`handle_timeout`](Gateway::handle_timeout), due at once, so that writing the next
///   window goes on between them); the gateway closes, and writing goes on over a new
///   connection. Without checkpoints, writing waits until the oldest entry is confirmed, so
///   one connection carries at most `window / grace` notifications per second. A checkpoint
///   left unanswered changes nothing: its window is confirmed by the grace period, then the
///   connection is closed and the next one opened. Nothing is ever presumed delivered early:
///   an error response that arrives after the grace period, naming a notification already
///   presumed delivered, is reported as [`Event::WindowOverflow`] and everything still in
///   the window is resent.
///
/// | status | outcome of the named notification | the rest |
/// |---|---|---|
/// | 8 invalid token, 5 invalid token size | `invalid_device` | resent |
/// | 7 invalid payload size | `payload_too_large` | resent |
/// | 1 processing error, 255 unknown | retried (bounded by `max_attempts`), then `unavailable` | resent |
/// | 0 no errors, 10 shutdown | delivered | resent |
/// | 2, 3, 4, 6, 128, others | `rejected` with the status | resent |
///
/// Identifiers are a 32-bit counter shared by all connections; it wraps, and because the window
/// is far smaller than 2³², an identifier is always located unambiguously by its distance from
/// the oldest entry. An identifier is assigned when a notification is encoded, so every frame
/// in the window carries the identifier it was written with.
///
/// # Driving it
/// Inputs are `queue`, `handle_connected`, `handle_connect_failed`, `handle_written`,
/// `handle_input`, `handle_closed` and `handle_timeout`; outputs are `poll_event`, `poll_transmit`,
/// `poll_outcome` and `poll_timeout`. After any input, drain the outputs in that order, then
/// wait for the next input or the deadline `poll_timeout` returns. Time only enters as `now`
/// and must never go backwards.
///
/// `T` is the caller's tag for each notification (the dispatcher uses the device and session);
/// it comes back in that notification's [`Outcome`].
#[derive(Debug)]
pub struct Gateway<T> {
    config: GatewayConfig,
    pending: VecDeque<Queued<T>>,
    window: VecDeque<Written<T>>,
    next_identifier: u32,
    /// Notifications presumed delivered on the current connection (aged past the grace
    /// period): the identifiers just before the oldest in the window. Tells a late error
    /// response from one naming an identifier never sent.
    presumed_on_connection: u64,
    /// Transmits handed to the transport, oldest first, not yet reported written; their
    /// frames are the newest in the window.
    unwritten: VecDeque<Transmit>,
    /// The frames of `unwritten`, together.
    unwritten_frames: usize,
    connection: Connection,
    /// How many notifications may be unconfirmed at once: the window, less after silent
    /// closes (halved each time, regrown by confirmations).
    unconfirmed_limit: usize,
    /// The identifier of the checkpoint written on this connection, if any: nothing more is
    /// written on it.
    checkpoint: Option<u32>,
    /// The tags of notifications a checkpoint proved accepted, oldest first, not reported yet
    /// (only the tag: the window keeps its allocation for the next connection); a slice is
    /// reported from `release_at` on, at every `handle_timeout`.
    confirmed: VecDeque<T>,
    /// When the next slice of `confirmed` is due (the checkpoint's answer).
    release_at: Option<Instant>,
    connect_requested: bool,
    close_requested: bool,
    received: Vec<u8>,
    failures: u32,
    backoff: Backoff,
    outcomes: VecDeque<Outcome<T>>,
    events: VecDeque<Event>,
    stats: GatewayStats,
}

impl<T> Gateway<T> {
    /// A gateway with no connection and nothing queued.
    pub fn new(config: GatewayConfig) -> Self {
        let backoff = Backoff::new(config.reconnect_initial, config.reconnect_max, config.seed);
        let next_identifier = config.first_identifier;
        let window = config.window;
        Gateway {
            config,
            pending: VecDeque::new(),
            window: VecDeque::new(),
            next_identifier,
            presumed_on_connection: 0,
            unwritten: VecDeque::new(),
            unwritten_frames: 0,
            connection: Connection::Down { retry_at: None },
            unconfirmed_limit: window,
            checkpoint: None,
            confirmed: VecDeque::new(),
            release_at: None,
            connect_requested: false,
            close_requested: false,
            received: Vec::with_capacity(ErrorResponse::LEN),
            failures: 0,
            backoff,
            outcomes: VecDeque::new(),
            events: VecDeque::new(),
            stats: GatewayStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// True when `queue` would accept a notification now.
    pub fn has_capacity(&self) -> bool {
        self.pending.len() < self.config.max_pending
    }

    /// Notifications queued or written whose outcome is not known yet.
    pub fn unresolved(&self) -> usize {
        self.pending.len() + self.window.len() + self.confirmed.len()
    }

    /// True when every queued notification has an outcome (drained or not).
    pub fn is_idle(&self) -> bool {
        self.unresolved() == 0
    }

    /// Queues a notification. A payload over the limit, or an empty one, is not queued: it
    /// gets a `payload_too_large` or `invalid_payload` outcome right away. Fails only when the queue is full, handing
    /// the notification back.
    pub fn queue(
        &mut self,
        notification: Notification,
        tag: T,
    ) -> Result<(), Full<(Notification, T)>> {
        if !self.has_capacity() {
            return Err(Full((notification, tag)));
        }
        self.stats.queued += 1;
        let size = notification.payload.len();
        if size > self.config.payload_limit {
            let limit = self.config.payload_limit;
            self.fail(tag, DeviceError::PayloadTooLarge { size, limit });
            return Ok(());
        }
        if size == 0 {
            let reason = "an empty payload (APNs answers status 4, missing payload)";
            self.fail(tag, DeviceError::InvalidPayload(reason.into()));
            return Ok(());
        }
        self.pending.push_back(Queued {
            notification,
            tag,
            attempts: 0,
        });
        self.want_connection();
        Ok(())
    }

    /// The driver opened the connection.
    pub fn handle_connected(&mut self, _now: Instant) {
        self.connection = Connection::Up;
        self.presumed_on_connection = 0;
        self.checkpoint = None;
        self.forget_transmits();
        self.received.clear();
        self.stats.connections += 1;
    }

    /// Opening the connection failed; the gateway retries after a backoff, and after
    /// `max_connect_attempts` failures in a row fails everything queued.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        self.connection = Connection::Down { retry_at: None };
        self.record_failure(now, reason);
        self.want_connection();
    }

    /// The driver knows that connecting cannot succeed (an untrusted server certificate, a
    /// refused client certificate): everything queued or unconfirmed fails as `unavailable`
    /// with `reason` at once, and [`Event::GaveUp`] follows. Later notifications start over.
    pub fn handle_fatal_error(&mut self, _now: Instant, reason: &str) {
        self.release_confirmed(usize::MAX);
        match self.connection {
            Connection::Up => self.begin_close(),
            Connection::Connecting => self.connection = Connection::Down { retry_at: None },
            Connection::Down { .. } | Connection::Closing => {}
        }
        let unconfirmed: Vec<_> = self
            .window
            .drain(..)
            .map(|written| written.queued)
            .collect();
        self.forget_transmits();
        let pending = std::mem::take(&mut self.pending);
        for queued in unconfirmed.into_iter().chain(pending) {
            let error = DeviceError::Unavailable {
                attempts: queued.attempts,
                last_error: reason.to_owned(),
            };
            self.fail(queued.tag, error);
        }
        self.failures = 0;
        self.events.push_back(Event::GaveUp {
            reason: reason.to_owned(),
        });
    }

    /// Ends every notification not written yet whose tag `matches` (a session's deadline
    /// passed), [`DeviceError::Unavailable`] with `reason`: queued ones, and ones put back
    /// for a resend (the gateway discarded them). Written ones keep their place in the
    /// window: the protocol never confirms success, so one on the wire is delivered unless an
    /// error response names it, and it ends as usual, within the grace period of its write
    /// (or at its connection's verdict, which may resend it once).
    pub fn expire(&mut self, matches: impl Fn(&T) -> bool, reason: &str) {
        let (expired, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|queued| matches(&queued.tag));
        self.pending = kept;
        for queued in expired {
            let error = DeviceError::Unavailable {
                attempts: queued.attempts,
                last_error: format!("{reason} before it was written"),
            };
            self.fail(queued.tag, error);
        }
    }

    /// Bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.connection != Connection::Up {
            return; // The verdict is in; anything after it means nothing.
        }
        let wanted = ErrorResponse::LEN - self.received.len();
        self.received
            .extend_from_slice(&bytes[..wanted.min(bytes.len())]);
        match ErrorResponse::decode(&self.received) {
            Ok(None) => {}
            Ok(Some(response)) => self.handle_error_response(now, response),
            Err(error) => self.protocol_violation(now, error.to_string()),
        }
    }

    /// The connection ended (closed by either side, or failed). Frames whose bytes were not
    /// reported written may still have reached the gateway: they are notifications of unknown
    /// fate like the rest of the window (resent with their attempt counted, or reported, by
    /// [`SilentClose`]).
    pub fn handle_closed(&mut self, now: Instant) {
        let silent = self.connection == Connection::Up;
        self.connection = Connection::Down { retry_at: None };
        self.checkpoint = None;
        self.close_requested = false;
        self.received.clear();
        self.forget_transmits();
        if silent {
            self.confirm_aged(now);
            if self.window.is_empty() {
                // Nothing in flight: the connection itself failed (refused, reset at once).
                self.record_failure(now, "the gateway closed the connection without a verdict");
            } else {
                // The connection carried notifications: resend them (bounded by each one's
                // attempts) after the shortest backoff, without counting towards giving up.
                self.handle_silent_close();
                self.failures = 0;
                self.schedule_reconnect(now);
            }
        } else if self.failures > 0 {
            self.schedule_reconnect(now);
        }
        self.want_connection();
    }

    /// Time passed: reports the next slice of what a checkpoint confirmed, confirms
    /// notifications older than the grace period and allows reconnecting once a backoff
    /// expired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.release_at.is_some_and(|at| now >= at) {
            self.release_confirmed(RELEASE_SLICE);
        }
        if self.connection == Connection::Up {
            self.confirm_aged(now);
            if self.checkpoint.is_some() && self.window.is_empty() {
                // Unanswered, yet its window is confirmed: move on to a new connection.
                self.begin_close();
            }
        }
        if let Connection::Down {
            retry_at: Some(retry_at),
        } = self.connection
            && now >= retry_at
        {
            self.connection = Connection::Down { retry_at: None };
            self.want_connection();
        }
    }

    /// The next thing the driver must do, if any: connect or close.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.close_requested {
            self.close_requested = false;
            return Some(Event::Close);
        }
        if self.connect_requested {
            self.connect_requested = false;
            self.connection = Connection::Connecting;
            return Some(Event::Connect);
        }
        self.events.pop_front()
    }

    /// Appends frames for queued notifications to `out` (at most
    /// [`GatewayConfig::max_transmit`] bytes, at least one frame) and returns how many bytes
    /// were added. Write them all to the connection, after the bytes of earlier transmits,
    /// then report [`handle_written`](Gateway::handle_written). Adds nothing while
    /// [`GatewayConfig::max_unwritten_transmits`] transmits wait to be reported written.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        if self.connection != Connection::Up
            || self.checkpoint.is_some()
            || self.unwritten.len() >= self.config.max_unwritten_transmits.max(1)
        {
            return 0;
        }
        let mut frames = 0;
        let start = out.len();
        let limit = self.unconfirmed_limit.min(self.config.window);
        // What a checkpoint confirmed and is not reported yet counts against the window too:
        // the memory held stays bounded by it.
        let room = limit.saturating_sub(self.confirmed.len());
        while out.len() - start < self.config.max_transmit && self.window.len() < room {
            let Some(queued) = self.pending.pop_front() else {
                break;
            };
            let identifier = self.next_identifier;
            self.next_identifier = self.next_identifier.wrapping_add(1);
            let frame = queued.notification.frame(self.config.format, identifier);
            if frame.encode(out).is_err() {
                // Unreachable with a payload limit below 64 KiB; never lose it silently.
                let size = queued.notification.payload.len();
                self.fail(
                    queued.tag,
                    DeviceError::PayloadTooLarge {
                        size,
                        limit: u16::MAX as usize,
                    },
                );
                continue;
            }
            frames += 1;
            self.window.push_back(Written {
                queued: Queued {
                    attempts: queued.attempts + 1,
                    ..queued
                },
                identifier,
                written_at: None,
            });
        }
        if self.window.len() >= limit && !self.window.is_empty() {
            self.write_checkpoint(out);
        }
        let bytes = out.len() - start;
        if bytes > 0 {
            self.unwritten.push_back(Transmit { frames, bytes });
            self.unwritten_frames += frames;
        }
        bytes
    }

    /// The transport wrote every byte of the oldest transmit not reported yet: its
    /// notifications' grace period starts now, and the next transmit may follow. Report only
    /// writes on the current connection (after `handle_closed`, a late report of the old
    /// connection's write must not be passed on); a report with nothing outstanding is ignored.
    pub fn handle_written(&mut self, now: Instant) {
        let Some(transmit) = self.unwritten.pop_front() else {
            return;
        };
        let first = self.window.len().saturating_sub(self.unwritten_frames);
        self.unwritten_frames -= transmit.frames;
        for written in self.window.range_mut(first..).take(transmit.frames) {
            written.written_at = Some(now);
        }
        self.stats.frames_written += transmit.frames as u64;
        self.stats.bytes_written += transmit.bytes as u64;
    }

    /// The next final outcome.
    pub fn poll_outcome(&mut self) -> Option<Outcome<T>> {
        self.outcomes.pop_front()
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connection = match self.connection {
            Connection::Up => self
                .window
                .front()
                .and_then(|oldest| oldest.written_at)
                .map(|written_at| written_at + self.config.grace),
            Connection::Down { retry_at } if !self.pending.is_empty() => retry_at,
            _ => None,
        };
        connection.into_iter().chain(self.release_at).min()
    }

    fn want_connection(&mut self) {
        if matches!(self.connection, Connection::Down { retry_at: None })
            && !self.pending.is_empty()
        {
            self.connect_requested = true;
        }
    }

    /// Counts a connection that failed or closed before confirming anything: reconnect after a
    /// backoff, or give up on everything queued after too many in a row.
    fn record_failure(&mut self, now: Instant, reason: &str) {
        self.failures += 1;
        if self.failures < self.config.max_connect_attempts {
            return self.schedule_reconnect(now);
        }
        let attempts = self.failures;
        self.failures = 0;
        for queued in std::mem::take(&mut self.pending) {
            let error = DeviceError::Unavailable {
                attempts,
                last_error: reason.to_owned(),
            };
            self.fail(queued.tag, error);
        }
        self.events.push_back(Event::GaveUp {
            reason: reason.to_owned(),
        });
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let delay = self.backoff.delay(self.failures.saturating_sub(1));
        self.connection = Connection::Down {
            retry_at: Some(now + delay),
        };
        self.connect_requested = false;
    }

    fn deliver(&mut self, tag: T) {
        self.unconfirmed_limit = (self.unconfirmed_limit + 1).min(self.config.window);
        self.report_delivered(tag);
    }

    fn report_delivered(&mut self, tag: T) {
        self.stats.delivered += 1;
        self.outcomes.push_back(Outcome::delivered(tag));
    }

    /// Reports up to `slice` notifications a checkpoint confirmed, oldest first.
    fn release_confirmed(&mut self, slice: usize) {
        for _ in 0..slice {
            let Some(tag) = self.confirmed.pop_front() else {
                break;
            };
            self.report_delivered(tag);
        }
        if self.confirmed.is_empty() {
            self.release_at = None;
        }
    }

    fn fail(&mut self, tag: T, error: DeviceError) {
        self.stats.failed += 1;
        self.outcomes.push_back(Outcome::failed(tag, error));
    }

    /// Delivers every notification written at least `grace` ago (written frames are the
    /// oldest in the window, so this stops at the first one still waiting to be written).
    fn confirm_aged(&mut self, now: Instant) {
        while let Some(oldest) = self.window.front()
            && oldest
                .written_at
                .is_some_and(|written_at| written_at + self.config.grace <= now)
        {
            if let Some(oldest) = self.window.pop_front() {
                self.deliver(oldest.queued.tag);
                self.presumed_on_connection += 1;
                self.failures = 0;
            }
        }
    }

    fn handle_error_response(&mut self, now: Instant, response: ErrorResponse) {
        if self.checkpoint == Some(response.identifier) {
            return self.checkpoint_answered(now);
        }
        self.stats.error_responses += 1;
        let Some(oldest) = self.window.front().map(|written| written.identifier) else {
            return self.late_or_bogus(now, response);
        };
        let index = response.identifier.wrapping_sub(oldest) as usize;
        if index >= self.window.len() {
            return self.late_or_bogus(now, response);
        }
        for _ in 0..index {
            if let Some(before) = self.window.pop_front() {
                self.deliver(before.queued.tag);
            }
        }
        self.failures = 0;
        let named = self.window.pop_front();
        self.requeue_window();
        if let Some(named) = named {
            self.settle(named.queued, response.status);
        }
        self.begin_close();
    }

    /// The named notification's fate by status; transient statuses send it again first.
    fn settle(&mut self, queued: Queued<T>, status: Status) {
        let error = match status {
            Status::NoErrors | Status::Shutdown => return self.deliver(queued.tag),
            Status::InvalidToken | Status::InvalidTokenSize => DeviceError::InvalidDevice,
            Status::InvalidPayloadSize => DeviceError::PayloadTooLarge {
                size: queued.notification.payload.len(),
                limit: self.config.payload_limit,
            },
            Status::ProcessingError | Status::Unknown => {
                if queued.attempts < self.config.max_attempts {
                    self.stats.requeued += 1;
                    self.pending.push_front(queued);
                    return;
                }
                DeviceError::Unavailable {
                    attempts: queued.attempts,
                    last_error: format!("APNs status {status}"),
                }
            }
            Status::MissingDeviceToken
            | Status::MissingTopic
            | Status::MissingPayload
            | Status::InvalidTopicSize
            | Status::ProtocolError
            | Status::Other(_) => DeviceError::Rejected {
                provider: "apns",
                code: status.to_string(),
            },
        };
        self.fail(queued.tag, error);
    }

    /// An identifier outside the window: evicted earlier on this connection (overflow: every
    /// buffered notification came after it), or never sent (a misbehaving peer).
    fn late_or_bogus(&mut self, now: Instant, response: ErrorResponse) {
        let oldest = self
            .window
            .front()
            .map_or(self.next_identifier, |written| written.identifier);
        let distance = u64::from(oldest.wrapping_sub(response.identifier));
        if distance >= 1 && distance <= self.presumed_on_connection {
            self.events.push_back(Event::WindowOverflow {
                status: response.status,
                identifier: response.identifier,
            });
            self.requeue_window();
            self.begin_close();
        } else {
            let reason = format!(
                "error response {} for identifier {} that was never written on this connection",
                response.status, response.identifier
            );
            self.protocol_violation(now, reason);
        }
    }

    fn protocol_violation(&mut self, now: Instant, reason: String) {
        self.events.push_back(Event::ProtocolViolation(reason));
        self.confirm_aged(now);
        self.handle_silent_close();
        self.failures += 1;
        self.begin_close();
    }

    /// Ends a full window with a checkpoint, when the format can name one.
    fn write_checkpoint(&mut self, out: &mut Vec<u8>) {
        if !self.config.checkpoints {
            return;
        }
        let identifier = self.next_identifier;
        if encode_checkpoint(self.config.format, identifier, out) {
            self.next_identifier = self.next_identifier.wrapping_add(1);
            self.checkpoint = Some(identifier);
        }
    }

    /// The gateway rejected the checkpoint: it read and accepted everything written before
    /// it (the rest of the window, as nothing is written after a checkpoint), and closes. The
    /// window is delivered: its first slice is reported now, the rest at the next timeouts.
    fn checkpoint_answered(&mut self, now: Instant) {
        self.stats.checkpoints += 1;
        self.forget_transmits();
        self.unconfirmed_limit =
            (self.unconfirmed_limit + self.window.len()).min(self.config.window);
        let tags = self.window.drain(..).map(|written| written.queued.tag);
        self.confirmed.extend(tags);
        self.release_at = Some(now);
        self.release_confirmed(RELEASE_SLICE);
        self.failures = 0;
        self.begin_close();
    }

    fn begin_close(&mut self) {
        self.connection = Connection::Closing;
        self.close_requested = true;
    }

    /// The window's unwritten frames left it (or the connection did): no write report is
    /// expected any more.
    fn forget_transmits(&mut self) {
        self.unwritten.clear();
        self.unwritten_frames = 0;
    }

    /// Puts every written notification back at the front of the queue, in written order;
    /// they were discarded by the gateway, so the attempt does not count against them.
    fn requeue_window(&mut self) {
        self.forget_transmits();
        while let Some(written) = self.window.pop_back() {
            let mut queued = written.queued;
            queued.attempts -= 1;
            self.stats.requeued += 1;
            self.pending.push_front(queued);
        }
    }

    /// Applies [`SilentClose`] to the notifications of unknown fate.
    fn handle_silent_close(&mut self) {
        self.forget_transmits();
        if !self.window.is_empty() {
            self.unconfirmed_limit = (self.window.len() / 2).max(1);
        }
        let mut resend = Vec::new();
        for written in std::mem::take(&mut self.window) {
            let queued = written.queued;
            if self.config.silent_close == SilentClose::Resend
                && queued.attempts < self.config.max_attempts
            {
                resend.push(queued);
            } else {
                self.fail(queued.tag, DeviceError::Unconfirmed);
            }
        }
        self.stats.requeued += resend.len() as u64;
        for queued in resend.into_iter().rev() {
            self.pending.push_front(queued);
        }
    }
}

#[cfg(test)]
mod tests;
