//! A loopback APNs binary gateway: TLS, strict frame decoding, error responses, fault
//! injection.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use push_proto::ApnsToken;
use push_proto::apns::{ErrorResponse, Format, Frame, Status};
use smol::Timer;
use smol::net::TcpStream;

use crate::certs::{Certificates, server_config};
use crate::server::{Records, ServerThread, Shared, accept_loop, close_tls, handshake};

const NAME: &str = "mock-apns-gateway";
/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;
/// How often a stalled connection looks whether reading may resume.
const STALL_CHECK: Duration = Duration::from_millis(5);

/// How a [`MockGateway`] behaves. The default is a well-behaved gateway that accepts every
/// well-formed frame and never closes a connection by itself.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Tokens the gateway rejects: at the first frame for one of them it answers status 8
    /// (invalid token) naming that frame's identifier, flushes, and closes the connection.
    /// Everything the client wrote after that frame is discarded and not recorded, as Apple
    /// did. (A command-0 frame has no identifier and Apple reported nothing for it: the
    /// connection is just closed.)
    pub bad_tokens: HashSet<ApnsToken>,
    /// Require a client certificate signed by the CA of the [`Certificates`] the server was
    /// started with; handshakes without one fail.
    pub require_client_cert: bool,
    /// Silently close a connection once it has accepted this many frames; frames after the
    /// N-th in the same read are discarded. `Some(0)` closes right after the handshake.
    pub close_every: Option<usize>,
    /// Once a connection has accepted this many frames, answer status 10 (shutdown) naming the
    /// last accepted identifier (0 when none) and close; frames after it are discarded.
    /// `Some(0)` does so right after the handshake. When both limits are reached at the same
    /// frame, this one wins.
    pub shutdown_after: Option<usize>,
    /// Sleep this long before each read: a slow server, so that clients meet backpressure.
    pub read_delay: Option<Duration>,
    /// Only count accepted notifications instead of recording each one: [`accepted`],
    /// [`accepted_count`] stay empty while [`total_accepted`] counts. For benchmarks, where
    /// the records would otherwise grow with the number of notifications.
    ///
    /// [`accepted`]: MockGateway::accepted
    /// [`accepted_count`]: MockGateway::accepted_count
    /// [`total_accepted`]: MockGateway::total_accepted
    pub count_only: bool,
}

/// One notification the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The device token.
    pub token: ApnsToken,
    /// The frame's identifier (0 when the frame had none).
    pub identifier: u32,
    /// The JSON payload, as received.
    pub payload: Bytes,
    /// The connection it came on: 0 for the first established TLS connection, and so on.
    pub connection: usize,
    /// The frame's format (command 0, 1 or 2).
    pub format: Format,
    /// The expiry, when the frame carried one.
    pub expiry: Option<u32>,
    /// The priority, when the frame carried one.
    pub priority: Option<u8>,
}

#[derive(Debug, Default)]
struct Record {
    accepted: Vec<Accepted>,
    accepted_total: usize,
    per_token: HashMap<ApnsToken, usize>,
    rejected: Vec<(ApnsToken, u32)>,
    error_responses: Vec<ErrorResponse>,
    connections: usize,
    closed: usize,
    handshake_failures: usize,
}

/// A loopback APNs binary gateway (the "binary provider API" on port 2195).
///
/// It listens on `127.0.0.1` with an ephemeral port, speaks TLS 1.3 or 1.2 with the server
/// certificate of the [`Certificates`] it was started with, decodes frames of all three
/// formats strictly with [`Frame::decode`], records every accepted notification, and stays
/// silent on success, as Apple did. Malformed input is answered with the error response
/// [`DecodeError::status`](push_proto::apns::DecodeError::status) names (if any), then the
/// connection is closed. Faults are injected through [`GatewayOptions`].
///
/// Every close is polite (close_notify, FIN, then reading until the client's FIN) so the
/// six-byte error response is never lost to a TCP reset. Dropping the handle (or
/// [`shutdown`](Self::shutdown)) stops the server; the records stay readable.
#[derive(Debug)]
pub struct MockGateway {
    thread: ServerThread,
    record: Records<Record>,
    stalled: Arc<AtomicBool>,
}

impl MockGateway {
    /// Starts a gateway in a background thread.
    pub fn start(options: GatewayOptions, certs: &Certificates) -> io::Result<MockGateway> {
        let acceptor = TlsAcceptor::from(server_config(certs, options.require_client_cert)?);
        let record = Arc::new(Shared::new(Record::default()));
        let options = Arc::new(options);
        let shared = record.clone();
        let stalled = Arc::new(AtomicBool::new(false));
        let stall = stalled.clone();
        let thread = ServerThread::spawn(NAME, move |listener, executor| {
            accept_loop(NAME, listener, executor, move |stream, peer| {
                let connection = ConnectionContext {
                    peer,
                    options: options.clone(),
                    record: shared.clone(),
                    stalled: stall.clone(),
                };
                serve(stream, acceptor.clone(), connection)
            })
        })?;
        Ok(MockGateway {
            thread,
            record,
            stalled,
        })
    }

    /// Stops reading on every connection, open or opened later (after its TLS handshake),
    /// until [`resume_reads`](Self::resume_reads): a gateway that no longer reads, so a
    /// client's writes block once the socket buffers are full.
    pub fn stall_reads(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Reads again after [`stall_reads`](Self::stall_reads).
    pub fn resume_reads(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// The address to connect to (`127.0.0.1` and an ephemeral port). Verify the server
    /// certificate as [`Certificates::SERVER_NAME`].
    pub fn addr(&self) -> SocketAddr {
        self.thread.addr()
    }

    /// Every accepted notification, in the order the gateway decoded them.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.record.read(|r| r.accepted.clone())
    }

    /// How many notifications for `token` were accepted (resends count again).
    pub fn accepted_count(&self, token: &ApnsToken) -> usize {
        self.record
            .read(|r| r.per_token.get(token).copied().unwrap_or(0))
    }

    /// How many notifications were accepted in all.
    pub fn total_accepted(&self) -> usize {
        self.record.read(|r| r.accepted_total)
    }

    /// How many TLS connections were established (failed handshakes do not count).
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.connections)
    }

    /// How many established connections have been closed completely.
    pub fn closed_connections(&self) -> usize {
        self.record.read(|r| r.closed)
    }

    /// How many TLS handshakes failed or timed out (for example a missing client certificate).
    pub fn handshake_failures(&self) -> usize {
        self.record.read(|r| r.handshake_failures)
    }

    /// The frames rejected for a bad token: the token and the frame's identifier (0 when none),
    /// in order.
    pub fn rejected(&self) -> Vec<(ApnsToken, u32)> {
        self.record.read(|r| r.rejected.clone())
    }

    /// Every error response the gateway wrote, in order (bad tokens, shutdowns, malformed
    /// frames).
    pub fn error_responses(&self) -> Vec<ErrorResponse> {
        self.record.read(|r| r.error_responses.clone())
    }

    /// Blocks until at least `count` notifications were accepted in all, or `timeout` passes;
    /// returns whether the count was reached.
    pub fn wait_for_accepted(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.accepted_total >= count)
    }

    /// Blocks until at least `count` connections were established and closed again, or
    /// `timeout` passes; returns whether they were.
    pub fn wait_for_closed(&self, count: usize, timeout: Duration) -> bool {
        self.record.wait_until(timeout, |r| r.closed >= count)
    }

    /// Blocks until at least `count` handshakes failed, or `timeout` passes; returns whether
    /// they did.
    pub fn wait_for_handshake_failures(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.handshake_failures >= count)
    }

    /// Stops the server and every connection; idempotent. The records stay readable.
    pub fn shutdown(&mut self) {
        self.thread.stop();
    }
}

/// Why the gateway ends a connection.
enum End {
    /// The client closed (or the connection failed): just close.
    Peer,
    /// Close without a word (close_every, command-0 bad token, unreportable garbage).
    Silent,
    /// Write this error response, then close.
    Answer(ErrorResponse),
}

/// What a connection's frames did to it.
struct Connection {
    index: usize,
    accepted: usize,
    last_identifier: u32,
}

/// What serving one connection needs.
struct ConnectionContext {
    peer: SocketAddr,
    options: Arc<GatewayOptions>,
    record: Records<Record>,
    /// Set while reads are stalled.
    stalled: Arc<AtomicBool>,
}

async fn serve(stream: TcpStream, acceptor: TlsAcceptor, context: ConnectionContext) {
    let ConnectionContext {
        peer,
        options,
        record,
        stalled,
    } = context;
    let Some(mut tls) = handshake(NAME, &acceptor, stream, peer).await else {
        record.update(|r| r.handshake_failures += 1);
        return;
    };
    let index = record.update(|r| {
        r.connections += 1;
        r.connections - 1
    });
    let mut conn = Connection {
        index,
        accepted: 0,
        last_identifier: 0,
    };
    let end = match limit_reached(&options, &conn) {
        Some(end) => end,
        None => read_frames(&mut tls, peer, &options, &record, &stalled, &mut conn).await,
    };
    if let End::Answer(response) = end {
        record.update(|r| r.error_responses.push(response));
        log::info!(
            "{NAME}: answering {peer} (connection {index}) with status {} for identifier {:#010x}",
            response.status.code(),
            response.identifier
        );
        let written = async {
            tls.write_all(&response.encode()).await?;
            tls.flush().await
        };
        if let Err(error) = written.await {
            log::info!("{NAME}: writing the error response to {peer} failed: {error}");
        }
    }
    close_tls(NAME, peer, tls).await;
    record.update(|r| r.closed += 1);
}

/// Reads and decodes until the client closes or a frame ends the connection.
async fn read_frames(
    tls: &mut TlsStream<TcpStream>,
    peer: SocketAddr,
    options: &GatewayOptions,
    record: &Shared<Record>,
    stalled: &AtomicBool,
    conn: &mut Connection,
) -> End {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        if let Some(delay) = options.read_delay {
            Timer::after(delay).await;
        }
        while stalled.load(Ordering::SeqCst) {
            Timer::after(STALL_CHECK).await;
        }
        let n = match tls.read(&mut chunk).await {
            Ok(0) => {
                if !buffer.is_empty() {
                    log::info!(
                        "{NAME}: {peer} closed with {} bytes of an incomplete frame",
                        buffer.len()
                    );
                }
                log::debug!("{NAME}: {peer} closed connection {}", conn.index);
                return End::Peer;
            }
            Ok(n) => n,
            Err(error) => {
                log::info!("{NAME}: reading from {peer} failed: {error}");
                return End::Peer;
            }
        };
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let (used, end) = decode_frames(&buffer, peer, options, record, conn);
        if let Some(end) = end {
            return end;
        }
        buffer.drain(..used);
    }
}

/// Decodes the complete frames at the start of `input`, recording the accepted ones. Returns
/// the bytes used and, when a frame ends the connection, how.
fn decode_frames(
    input: &[u8],
    peer: SocketAddr,
    options: &GatewayOptions,
    record: &Shared<Record>,
    conn: &mut Connection,
) -> (usize, Option<End>) {
    let mut used = 0;
    let mut accepted = Vec::new();
    let mut counted = 0;
    let mut rejected = None;
    let end = loop {
        let rest = input.get(used..).unwrap_or_default();
        let (frame, len) = match Frame::decode(rest) {
            Ok(None) => break None,
            Ok(Some(decoded)) => decoded,
            Err(error) => {
                log::info!("{NAME}: malformed frame from {peer}: {error}");
                break Some(match error.status() {
                    Some((status, identifier)) => End::Answer(ErrorResponse { status, identifier }),
                    None => End::Silent,
                });
            }
        };
        used += len;
        let identifier = frame.identifier.unwrap_or(0);
        if options.bad_tokens.contains(&frame.token) {
            log::info!("{NAME}: {peer} sent bad token {}", frame.token);
            rejected = Some((frame.token, identifier));
            break Some(if frame.format == Format::Simple {
                End::Silent
            } else {
                End::Answer(ErrorResponse {
                    status: Status::InvalidToken,
                    identifier,
                })
            });
        }
        counted += 1;
        if !options.count_only {
            accepted.push(Accepted {
                token: frame.token,
                identifier,
                payload: frame.payload,
                connection: conn.index,
                format: frame.format,
                expiry: frame.expiry,
                priority: frame.priority,
            });
        }
        conn.accepted += 1;
        conn.last_identifier = identifier;
        if let Some(end) = limit_reached(options, conn) {
            break Some(end);
        }
    };
    // Record before anything is written back, so a client that saw the answer sees the records.
    if counted > 0 || rejected.is_some() {
        record.update(|r| {
            r.accepted_total += counted;
            for notification in accepted {
                *r.per_token.entry(notification.token).or_insert(0) += 1;
                r.accepted.push(notification);
            }
            r.rejected.extend(rejected);
        });
    }
    (used, end)
}

/// Whether the connection reached its `shutdown_after` or `close_every` limit.
fn limit_reached(options: &GatewayOptions, conn: &Connection) -> Option<End> {
    if options.shutdown_after == Some(conn.accepted) {
        log::info!(
            "{NAME}: shutting connection {} down after {} frames",
            conn.index,
            conn.accepted
        );
        return Some(End::Answer(ErrorResponse {
            status: Status::Shutdown,
            identifier: conn.last_identifier,
        }));
    }
    if options.close_every == Some(conn.accepted) {
        log::info!(
            "{NAME}: closing connection {} after {} frames",
            conn.index,
            conn.accepted
        );
        return Some(End::Silent);
    }
    None
}
