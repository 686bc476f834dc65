//! The HTTP/2-over-TLS scaffolding the HTTP/2 mocks share: the TLS and HTTP/2 handshakes, one
//! task per stream, connection statistics, the stream limit, GOAWAY injection, and the
//! connection faults of [`Http2Faults`].

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_rustls::TlsAcceptor;
use h2::RecvStream;
use h2::server::SendResponse;
use http::Request;
use http::request::Parts;
use smol::net::TcpStream;
use smol::{LocalExecutor, Timer};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::http2_faults::Http2Faults;
use crate::server::{
    DRAIN_TIMEOUT, IO_TIMEOUT, Records, ServerThread, accept_loop, handshake, timeout,
};
use crate::settings_splice::{SettingsSplice, SpliceState};

/// What the connection layer records, embedded in each HTTP/2 mock's records.
#[derive(Debug, Default)]
pub(crate) struct ConnectionStats {
    /// HTTP/2 connections established (TLS and HTTP/2 handshakes done).
    pub(crate) connections: usize,
    /// Established connections that closed.
    pub(crate) closed: usize,
    /// TLS or HTTP/2 handshakes that failed.
    pub(crate) handshake_failures: usize,
    /// Streams refused with `REFUSED_STREAM` by the mock: after a GOAWAY started, or all of
    /// them ([`Http2Faults::refuse_all_streams`]).
    pub(crate) refused: usize,
    /// GOAWAYs started (also those of [`Http2Faults::goaway_on_connect`]).
    pub(crate) goaways: usize,
    /// Connections broken by a malformed frame ([`Http2Faults::break_connection_after`]).
    pub(crate) broken: usize,
    /// The most streams open at once on one connection.
    pub(crate) max_open: usize,
    /// Stream limits announced mid-connection ([`Http2Setup::stream_limit_changes`]) that
    /// a client acknowledged, in order.
    pub(crate) limits_acknowledged: Vec<u32>,
    /// Streams a client opened while as many as its acknowledged limit were open.
    pub(crate) limit_breaches: usize,
}

/// Records that hold [`ConnectionStats`].
pub(crate) trait Http2Record: Send + 'static {
    /// The connection statistics inside the records.
    fn stats(&mut self) -> &mut ConnectionStats;
}

/// How the connection layer behaves.
#[derive(Debug, Clone)]
pub(crate) struct Http2Setup {
    /// The server's name in logs.
    pub(crate) name: &'static str,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised (and enforced by `h2`).
    pub(crate) max_concurrent_streams: u32,
    /// After this many answers on one connection, start a graceful GOAWAY (`Some(0)`: right
    /// after the handshake).
    pub(crate) goaway_after: Option<usize>,
    /// `(answers, limit)`: after this many answers on a connection, announce
    /// `SETTINGS_MAX_CONCURRENT_STREAMS = limit` mid-connection (see `settings_splice`).
    pub(crate) stream_limit_changes: Vec<(usize, u32)>,
    /// Hostile behaviours.
    pub(crate) faults: Http2Faults,
}

/// The state of one connection, shared by its stream handlers (one thread: `Cell`s).
#[derive(Debug)]
struct Connection {
    index: usize,
    goaway_after: Option<usize>,
    open: Cell<usize>,
    answered: Cell<usize>,
    /// A GOAWAY was asked for: refuse what is not answered yet.
    closing: Cell<bool>,
    goaway: async_channel::Sender<()>,
    /// What the client acknowledged of the stream limits announced mid-connection.
    splice: Rc<SpliceState>,
}

impl Connection {
    /// Stops answering and asks the connection task for a GOAWAY.
    fn start_closing(&self) {
        if !self.closing.replace(true) {
            // Capacity 1 and sent once: cannot be full; closed only if the task is gone.
            let _ = self.goaway.try_send(());
        }
    }
}

/// One request stream, counted as open until dropped (also when its task is cancelled).
#[derive(Debug)]
pub(crate) struct Stream(Rc<Connection>);

impl Stream {
    /// The connection: 0 for the first established one, and so on.
    pub(crate) fn connection(&self) -> usize {
        self.0.index
    }

    /// When a GOAWAY started, refuses the stream with `RST_STREAM(REFUSED_STREAM)`, records
    /// it and returns `true`; otherwise returns `false` and the stream must be answered.
    fn refuse_if_closing<R: Http2Record>(
        &self,
        respond: &mut SendResponse<Bytes>,
        record: &Records<R>,
    ) -> bool {
        if self.0.closing.get() {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            record.update(|r| r.stats().refused += 1);
        }
        self.0.closing.get()
    }

    /// Reads the request's body (at most `limit` bytes), waits `latency`, then refuses the
    /// stream if a GOAWAY started meanwhile. Returns the request to answer, or `None` when
    /// there is nothing to answer (the body could not be read, or the stream was refused).
    pub(crate) async fn receive<R: Http2Record>(
        &self,
        name: &str,
        request: Request<RecvStream>,
        respond: &mut SendResponse<Bytes>,
        (limit, latency): (usize, Option<Duration>),
        record: &Records<R>,
    ) -> Option<(Parts, Body)> {
        let (head, body) = request.into_parts();
        let body = match read_body(body, limit).await {
            Ok(body) => body,
            Err(error) => {
                let stream_id = u32::from(respond.stream_id());
                log::debug!("{name}: reading stream {stream_id} failed: {error}");
                return None;
            }
        };
        if let Some(latency) = latency {
            Timer::after(latency).await;
        }
        if self.refuse_if_closing(respond, record) {
            return None;
        }
        Some((head, body))
    }

    /// Counts an answer on the connection, starting the GOAWAY when the limit is reached.
    pub(crate) fn count_answer(&self) {
        let answered = self.0.answered.get() + 1;
        self.0.answered.set(answered);
        if self.0.goaway_after.is_some_and(|limit| answered >= limit) {
            self.0.start_closing();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
    }
}

/// A request stream as `h2` hands it over.
type Incoming = (Request<RecvStream>, SendResponse<Bytes>);

enum Event {
    Stream(Option<Result<Box<Incoming>, h2::Error>>),
    GoAway,
}

/// Starts an HTTP/2-over-TLS server in a background thread: every connection is served by
/// [`serve`], every request stream by `handle(request, respond, stream)`.
pub(crate) fn spawn<R, H, F>(
    setup: Http2Setup,
    acceptor: TlsAcceptor,
    record: Records<R>,
    handle: H,
) -> io::Result<ServerThread>
where
    R: Http2Record,
    H: Fn(Request<RecvStream>, SendResponse<Bytes>, Stream) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    ServerThread::spawn(setup.name, move |listener, executor| {
        // Weak: the connection tasks live in the executor, which must not be kept alive by
        // them once the server stops (dropping it is what closes the connections).
        let spawner = Rc::downgrade(&executor);
        accept_loop(setup.name, listener, executor, move |tcp, peer| {
            serve(
                setup.clone(),
                tcp,
                peer,
                acceptor.clone(),
                record.clone(),
                spawner.clone(),
                handle.clone(),
            )
        })
    })
}

/// Serves one TCP connection: TLS, the HTTP/2 handshake, then every stream as a task on
/// `executor` running `handle(request, respond, stream)`, until the peer closes or a GOAWAY
/// completes.
async fn serve<R, H, F>(
    setup: Http2Setup,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    record: Records<R>,
    executor: Weak<LocalExecutor<'static>>,
    handle: H,
) where
    R: Http2Record,
    H: Fn(Request<RecvStream>, SendResponse<Bytes>, Stream) -> F,
    F: Future<Output = ()> + 'static,
{
    let name = setup.name;
    let Some(tls) = handshake(name, &acceptor, tcp, peer).await else {
        record.update(|r| r.stats().handshake_failures += 1);
        return;
    };
    if tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
        log::info!("{name}: {peer} negotiated no ALPN protocol; trying HTTP/2 anyway");
    }
    let mut builder = h2::server::Builder::new();
    builder.max_concurrent_streams(setup.max_concurrent_streams);
    let acknowledgements = record.clone();
    let breaks = record.clone();
    let splice = SpliceState::new(
        move |limit| {
            acknowledgements.update(|r| r.stats().limits_acknowledged.push(limit));
        },
        move || {
            log::debug!("{name}: breaking the connection with {peer}");
            breaks.update(|r| r.stats().broken += 1);
        },
    );
    let faults = &setup.faults;
    let io = SettingsSplice::new(tls, setup.stream_limit_changes.clone(), splice.clone())
        .break_after(faults.break_connection_after)
        .linger_on_close(faults.goaway_on_connect.then_some(DRAIN_TIMEOUT));
    let mut connection = match timeout(IO_TIMEOUT, builder.handshake::<_, Bytes>(io.compat())).await
    {
        Some(Ok(connection)) => connection,
        Some(Err(error)) => {
            log::info!("{name}: HTTP/2 handshake with {peer} failed: {error}");
            record.update(|r| r.stats().handshake_failures += 1);
            return;
        }
        None => {
            log::info!("{name}: HTTP/2 handshake with {peer} timed out");
            record.update(|r| r.stats().handshake_failures += 1);
            return;
        }
    };
    let index = record.update(|r| {
        r.stats().connections += 1;
        r.stats().connections - 1
    });
    let (goaway, goaway_requested) = async_channel::bounded(1);
    let conn = Rc::new(Connection {
        index,
        goaway_after: setup.goaway_after,
        open: Cell::new(0),
        answered: Cell::new(0),
        closing: Cell::new(false),
        goaway,
        splice,
    });
    if setup.goaway_after == Some(0) {
        conn.start_closing();
    }
    let mut shutting_down = false;
    if faults.goaway_on_connect {
        // Nothing past the preface was read: the GOAWAY names stream 0, then `h2` closes.
        log::debug!("{name}: GOAWAY(0) to {peer}");
        connection.abrupt_shutdown(h2::Reason::NO_ERROR);
        shutting_down = true;
        record.update(|r| r.stats().goaways += 1);
    }
    loop {
        let event = if shutting_down {
            Event::Stream(connection.accept().await.map(|r| r.map(Box::new)))
        } else {
            future::or(
                async { Event::Stream(connection.accept().await.map(|r| r.map(Box::new))) },
                async {
                    // The sender lives in `conn`: this only resolves on a request.
                    let _ = goaway_requested.recv().await;
                    Event::GoAway
                },
            )
            .await
        };
        match event {
            Event::GoAway => {
                log::debug!("{name}: GOAWAY to {peer}");
                connection.graceful_shutdown();
                shutting_down = true;
                record.update(|r| r.stats().goaways += 1);
            }
            Event::Stream(Some(Ok(incoming))) => {
                let (request, mut respond) = *incoming;
                if faults.refuse_all_streams || faults.goaway_on_connect {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                    record.update(|r| r.stats().refused += 1);
                    continue;
                }
                let stream = u32::from(respond.stream_id());
                let limit = usize::try_from(conn.splice.limit_for(stream));
                let breach = limit.is_ok_and(|limit| conn.open.get() >= limit);
                let open = conn.open.get() + 1;
                conn.open.set(open);
                record.update(|r| {
                    let stats = r.stats();
                    stats.max_open = stats.max_open.max(open);
                    stats.limit_breaches += usize::from(breach);
                });
                let stream = Stream(conn.clone());
                let Some(executor) = executor.upgrade() else {
                    // The server is stopping.
                    break;
                };
                executor.spawn(handle(request, respond, stream)).detach();
            }
            Event::Stream(Some(Err(error))) => {
                log::info!("{name}: connection with {peer} failed: {error}");
                break;
            }
            Event::Stream(None) => {
                log::debug!("{name}: {peer} closed");
                break;
            }
        }
    }
    record.update(|r| r.stats().closed += 1);
}

/// A request body as far as it was read.
#[derive(Debug)]
pub(crate) enum Body {
    /// The whole body.
    Complete(Bytes),
    /// Longer than the limit; the rest was not read.
    TooLarge,
}

/// Reads a request body, up to `limit` bytes.
async fn read_body(mut body: RecvStream, limit: usize) -> Result<Body, h2::Error> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        // Let the client send more; never fails for a length that was just received.
        let _ = body.flow_control().release_capacity(chunk.len());
        if buffer.len() + chunk.len() > limit {
            return Ok(Body::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Body::Complete(buffer.freeze()))
}
