//! Driving the APNs [`Gateway`] with blocking IO: a `std::net::TcpStream`, rustls, no async.
//!
//! The core does no IO; this file is the loop that does it for it. Each turn:
//!
//! 1. queue notifications while the gateway has room;
//! 2. act on `poll_event`: `Connect` = dial and shake hands, then `handle_connected` (or
//!    `handle_connect_failed`); `Close` = close the stream, then `handle_closed`;
//! 3. write what `poll_transmit` produces, then report it with `handle_written`;
//! 4. collect the verdicts from `poll_outcome`;
//! 5. block in `read` until bytes arrive (`handle_input`; end of stream: `handle_closed`) or
//!    the deadline from `poll_timeout` passes (`handle_timeout`).
//!
//! Any event loop (mio, a select on a channel, an async runtime) has the same shape. To make it
//! self-contained the gateway is a loopback TLS server in a thread, with its own CA, that
//! answers like Apple's did: it stays silent for good tokens, and for a bad token writes one
//! error response, closes, and discards everything sent after it.
//!
//! Run it with `cargo run -p push-proto --example blocking`.
#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use push_proto::apns::{ErrorResponse, Event, Frame, Gateway, GatewayConfig, Notification, Status};
use push_proto::{ApnsToken, Outcome, Payload};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::StreamOwned;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

type BoxError = Box<dyn Error + Send + Sync>;
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// The name the server certificate is issued for and the client checks.
const HOST: &str = "localhost";
/// Unchallenged for this long, a notification counts as delivered. Apple needed about a
/// second; a loopback server answers within microseconds, but a loaded test machine can
/// delay it by hundreds of milliseconds, so keep the usual second.
const GRACE: Duration = Duration::from_secs(1);
/// Safety net for any single blocking call; never reached when things work.
const SAFETY: Duration = Duration::from_secs(10);

fn main() -> Result<(), BoxError> {
    run(1_000, &[17, 404, 998])?;
    Ok(())
}

/// What happened to the notifications, as the client saw it and as the server recorded it.
#[derive(Debug, Default)]
struct Summary {
    /// Devices (indices) whose notification was delivered.
    delivered: Vec<usize>,
    /// Devices the gateway reported invalid: their tokens should be deleted.
    invalid_devices: Vec<usize>,
    /// Any other failure, with its reason (none expected here).
    failed: Vec<(usize, String)>,
    /// Events other than `Connect` and `Close` (none expected here).
    notices: Vec<String>,
    /// Connections the client opened.
    connections: u64,
    /// Every token the server accepted, in arrival order.
    accepted_by_server: Vec<ApnsToken>,
}

/// Sends one notification to each of `devices` devices, the ones listed in `bad` having tokens
/// the server rejects, and reports what happened.
fn run(devices: usize, bad: &[usize]) -> Result<Summary, BoxError> {
    let pki = Pki::generate()?;
    let bad_tokens = bad.iter().map(|&device| token(device)).collect();
    let server = MockGateway::start(pki.server_config()?, bad_tokens)?;

    // One payload shared by every notification (`Bytes` clones are cheap).
    let payload = Bytes::from(
        Payload::new()
            .title("Hello")
            .body("From a blocking loop")
            .to_apns_json()?,
    );
    let notifications = (0..devices).map(|device| {
        let notification = Notification {
            token: token(device),
            payload: payload.clone(),
            expiry: 0,
            priority: 10,
        };
        (notification, device)
    });
    let mut summary = send(server.addr, pki.client_config()?, notifications)?;
    summary.accepted_by_server = server.finish()?;

    println!(
        "{} delivered, {} invalid devices {:?}, {} other failures, {} connections",
        summary.delivered.len(),
        summary.invalid_devices.len(),
        summary.invalid_devices,
        summary.failed.len(),
        summary.connections,
    );
    Ok(summary)
}

/// The device token of device number `device`.
fn token(device: usize) -> ApnsToken {
    let mut bytes = [0xa5; ApnsToken::LEN];
    bytes[..8].copy_from_slice(&(device as u64).to_be_bytes());
    ApnsToken::from_bytes(bytes)
}

// ---------------------------------------------------------------------------------------------
// The client: the gateway state machine and the blocking loop that drives it.
// ---------------------------------------------------------------------------------------------

/// Sends `notifications` (each with its device index as tag) through the gateway at `addr`.
fn send(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    notifications: impl IntoIterator<Item = (Notification, usize)>,
) -> Result<Summary, BoxError> {
    let mut config = GatewayConfig::default();
    config.grace = GRACE;
    let mut gateway = Gateway::new(config);
    let mut todo = notifications.into_iter().peekable();
    let mut conn: Option<Tls> = None;
    let mut out = Vec::new(); // reused for every transmit
    let mut buf = [0; 4096];
    let mut summary = Summary::default();

    loop {
        // 1. Queue as much as the gateway takes (a real dispatcher pulls from its source here).
        while gateway.has_capacity()
            && let Some((notification, device)) = todo.next()
        {
            gateway.queue(notification, device)?;
        }

        // 2. Do what the gateway asks.
        while let Some(event) = gateway.poll_event() {
            match event {
                Event::Connect => match connect(addr, &tls) {
                    Ok(stream) => {
                        conn = Some(stream);
                        gateway.handle_connected(Instant::now());
                    }
                    Err(error) => gateway.handle_connect_failed(Instant::now(), &error.to_string()),
                },
                Event::Close => {
                    if let Some(stream) = conn.take() {
                        close(stream);
                    }
                    gateway.handle_closed(Instant::now());
                }
                other => summary.notices.push(format!("{other:?}")),
            }
        }

        // 3. Write. A failed write ends the connection: the gateway resends what it cannot
        //    confirm.
        if let Some(stream) = &mut conn
            && let Err(error) = transmit(&mut gateway, stream, &mut out)
        {
            summary.notices.push(format!("write failed: {error}"));
            conn = None;
            gateway.handle_closed(Instant::now());
            continue;
        }

        // 4. Collect verdicts.
        while let Some(outcome) = gateway.poll_outcome() {
            record(&mut summary, outcome);
        }
        if gateway.is_idle() && todo.peek().is_none() {
            break;
        }

        // 5. Wait for input or the deadline, whichever comes first.
        let deadline = gateway.poll_timeout();
        match &mut conn {
            Some(stream) => match read(stream, deadline, &mut buf) {
                Input::Bytes(n) => gateway.handle_input(Instant::now(), &buf[..n]),
                Input::Closed => {
                    conn = None;
                    gateway.handle_closed(Instant::now());
                }
                Input::Nothing => {}
            },
            // No connection: only a reconnect backoff can be pending.
            None => match deadline {
                Some(deadline) => thread::sleep(deadline.saturating_duration_since(Instant::now())),
                None => return Err("the gateway is waiting for nothing".into()),
            },
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            gateway.handle_timeout(Instant::now());
        }
    }

    if let Some(stream) = conn.take() {
        close(stream);
    }
    summary.connections = gateway.stats().connections;
    Ok(summary)
}

/// Dials `addr` and completes the TLS handshake.
fn connect(addr: SocketAddr, tls: &Arc<ClientConfig>) -> Result<Tls, BoxError> {
    let tcp = TcpStream::connect_timeout(&addr, SAFETY)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(SAFETY))?;
    tcp.set_write_timeout(Some(SAFETY))?;
    let connection = ClientConnection::new(tls.clone(), ServerName::try_from(HOST)?)?;
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Writes every frame the gateway has ready.
fn transmit(gateway: &mut Gateway<usize>, stream: &mut Tls, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        out.clear();
        if gateway.poll_transmit(out) == 0 {
            return Ok(());
        }
        stream.write_all(out)?;
        stream.flush()?;
        gateway.handle_written(Instant::now());
    }
}

enum Input {
    Bytes(usize),
    Closed,
    Nothing,
}

/// Blocks until bytes arrive, the stream ends, or `deadline` passes.
fn read(stream: &mut Tls, deadline: Option<Instant>, buf: &mut [u8]) -> Input {
    let wait = deadline.map_or(SAFETY, |deadline| {
        deadline.saturating_duration_since(Instant::now())
    });
    // A zero timeout means "block forever" to the OS; always look at least briefly, so that
    // input that already arrived is seen before the deadline is acted on.
    if stream
        .sock
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .is_err()
    {
        return Input::Closed;
    }
    match stream.read(buf) {
        Ok(0) => Input::Closed,
        Ok(n) => Input::Bytes(n),
        Err(error) if is_timeout(&error) || error.kind() == io::ErrorKind::Interrupted => {
            Input::Nothing
        }
        Err(_) => Input::Closed, // reset, TLS alert, EOF without close_notify: all the same here
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Closes politely: TLS close_notify, then our FIN, then waits for the peer's FIN. Leaving
/// unread bytes behind would turn the close into a reset, which can destroy data in flight.
fn close(mut stream: Tls) {
    stream.conn.send_close_notify();
    // Best effort from here on: the peer may be gone already.
    let _ = stream.flush();
    let _ = stream.sock.shutdown(Shutdown::Write);
    let _ = stream.sock.set_read_timeout(Some(SAFETY));
    let _ = io::copy(&mut stream.sock, &mut io::sink());
}

fn record(summary: &mut Summary, outcome: Outcome<usize>) {
    match outcome.error {
        None => summary.delivered.push(outcome.tag),
        Some(error) if error.is_invalid_device() => summary.invalid_devices.push(outcome.tag),
        Some(error) => summary.failed.push((outcome.tag, error.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// The stand-in for Apple's gateway and its certificates.
// ---------------------------------------------------------------------------------------------

/// A CA, and a certificate for `localhost` and 127.0.0.1 signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    fn generate() -> Result<Self, BoxError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "push-proto example CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec![HOST.into(), "127.0.0.1".into()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, HOST);
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        Ok(Pki {
            ca: ca.der().clone(),
            server_cert: server_cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        })
    }

    /// Trusts only our CA. The real gateway also wanted a client certificate
    /// (`with_client_auth_cert`).
    fn client_config(&self) -> Result<Arc<ClientConfig>, BoxError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let config = ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, BoxError> {
        let config = ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_cert.clone()],
                self.server_key.clone_key().into(),
            )?;
        Ok(Arc::new(config))
    }
}

/// The crypto provider, chosen explicitly: nothing depends on a process-wide default.
fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loopback gateway serving one connection at a time, in a thread.
struct MockGateway {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Vec<ApnsToken>, BoxError>>,
}

impl MockGateway {
    fn start(config: Arc<ServerConfig>, bad: HashSet<ApnsToken>) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut accepted = Vec::new();
            for tcp in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                serve(config.clone(), tcp?, &bad, &mut accepted)?;
            }
            Ok(accepted)
        });
        Ok(MockGateway { addr, stop, thread })
    }

    /// Stops the server once the current connection has ended; returns the accepted tokens.
    fn finish(self) -> Result<Vec<ApnsToken>, BoxError> {
        self.stop.store(true, Ordering::SeqCst);
        // Wake up `accept`; if the server already ended, `join` tells why.
        let _ = TcpStream::connect(self.addr);
        self.thread
            .join()
            .map_err(|_| "the server thread panicked")?
    }
}

/// One connection: records good tokens; at the first bad one answers with an error response
/// and stops reading frames.
fn serve(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    bad: &HashSet<ApnsToken>,
    accepted: &mut Vec<ApnsToken>,
) -> Result<(), BoxError> {
    tcp.set_read_timeout(Some(SAFETY))?;
    let mut tls = StreamOwned::new(ServerConnection::new(config)?, tcp);
    let mut received = Vec::new();
    let mut chunk = [0; 16 * 1024];
    loop {
        let n = match tls.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            result => result?,
        };
        received.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        loop {
            let verdict = match Frame::decode(&received[used..]) {
                Ok(None) => break,
                Ok(Some((frame, len))) if !bad.contains(&frame.token) => {
                    accepted.push(frame.token);
                    used += len;
                    continue;
                }
                Ok(Some((frame, _))) => Some((Status::InvalidToken, frame.identifier.unwrap_or(0))),
                Err(error) => error.status(),
            };
            return reject(tls, verdict);
        }
        received.drain(..used);
    }
}

/// Writes the error response (if any), closes our side, and discards whatever the client
/// still sends until it closes too.
fn reject(
    mut tls: StreamOwned<ServerConnection, TcpStream>,
    verdict: Option<(Status, u32)>,
) -> Result<(), BoxError> {
    if let Some((status, identifier)) = verdict {
        tls.write_all(&ErrorResponse { status, identifier }.encode())?;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    tls.sock.shutdown(Shutdown::Write)?;
    let _ = io::copy(&mut tls.sock, &mut io::sink()); // the client may reset; nothing to lose
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Checks the summary of `run(devices, bad)` against what Apple promised.
    fn check(devices: usize, bad: &[usize]) -> Summary {
        let summary = run(devices, bad).unwrap();
        let good: Vec<usize> = (0..devices).filter(|d| !bad.contains(d)).collect();

        let mut delivered = summary.delivered.clone();
        delivered.sort_unstable();
        assert_eq!(delivered, good, "each good device delivered exactly once");
        let mut invalid = summary.invalid_devices.clone();
        invalid.sort_unstable();
        assert_eq!(
            invalid, bad,
            "each bad device reported invalid exactly once"
        );
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
        assert!(summary.notices.is_empty(), "{:?}", summary.notices);

        let mut times_accepted = HashMap::new();
        for token in &summary.accepted_by_server {
            *times_accepted.entry(*token).or_insert(0) += 1;
        }
        for device in &good {
            assert_eq!(
                times_accepted.get(&token(*device)),
                Some(&1),
                "device {device}"
            );
        }
        for device in bad {
            assert_eq!(times_accepted.get(&token(*device)), None, "device {device}");
        }
        assert_eq!(summary.accepted_by_server.len(), good.len());
        summary
    }

    #[test]
    fn a_thousand_notifications_three_bad_tokens() {
        let summary = check(1_000, &[17, 404, 998]);
        // One connection, plus one after each error response that left work behind.
        assert_eq!(summary.connections, 4);
    }

    #[test]
    fn bad_tokens_first_in_a_row_and_last() {
        let summary = check(50, &[0, 1, 2, 49]);
        assert_eq!(summary.connections, 4);
    }
}
