//! One HTTP/2 connection driven by one task: the dial and handshake, then every stream of the
//! connection, the connection itself and its keep-alive pings from a single poll loop. No task
//! per request: a request is a future in a `FuturesUnordered`, woken only when its stream has
//! news. What happens is reported to the driver as facts ([`Input`]s, batched per wake-up);
//! the protocol core decides what they mean.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::StreamExt;
use futures_rustls::client::TlsStream;
use futures_util::stream::FuturesUnordered;
use h2::client::{Connection, SendRequest};
use push_proto::Route;
use push_proto::engine::{ConnId, Input, RequestId, StreamEnd};
use rustls::ClientConfig;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::deadlines::Deadlines;
use crate::error::Error;
use crate::h2stream::{Exchange, stream_end};
use crate::io::{HttpEvent, Io};
use crate::net::{Endpoint, Timeouts, dial_tls, timeout};
use crate::runtime::Runtime;

/// A request for the connection task: the core's id and the request.
pub(crate) type Outgoing = (RequestId, http::Request<Bytes>);

/// How a route's connections are made and bounded.
#[derive(Debug)]
pub(crate) struct ConnSetup {
    /// Where to connect.
    pub(crate) endpoint: Endpoint,
    /// TLS offering ALPN `h2` (and `http/1.1` on a route that falls back to it).
    pub(crate) tls: Arc<ClientConfig>,
    /// Connect and handshake timeouts (the handshake one also bounds a ping's answer).
    pub(crate) timeouts: Timeouts,
    /// Longest time a stream may take to complete.
    pub(crate) request_timeout: Duration,
    /// How often an open connection is pinged.
    pub(crate) ping_interval: Duration,
    /// Largest response body accepted, checked while it is read.
    pub(crate) max_body: usize,
}

type Stream<R> = Compat<TlsStream<<R as Runtime>::Tcp>>;
type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open HTTP/2 connection: its request handle and the connection to drive.
type Connected<R> = (SendRequest<Bytes>, Connection<Stream<R>, Bytes>);

/// Dials, checks that the server speaks HTTP/2, and shakes hands.
async fn connect<R: Runtime>(runtime: &R, setup: &ConnSetup) -> Result<Connected<R>, Error> {
    let endpoint = &setup.endpoint;
    let stream = dial_tls(runtime, endpoint, setup.tls.clone(), setup.timeouts).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(Error::Tls {
            host: endpoint.to_string(),
            reason: "the server did not agree to HTTP/2 (ALPN h2)".into(),
        });
    }
    handshake(runtime, setup, stream).await
}

/// The HTTP/2 handshake over `stream`, on which the server agreed to `h2`.
async fn handshake<R: Runtime>(
    runtime: &R,
    setup: &ConnSetup,
    stream: TlsStream<R::Tcp>,
) -> Result<Connected<R>, Error> {
    let endpoint = &setup.endpoint;
    let handshake = async {
        // No stream until the server's SETTINGS say how many (absent: no limit): a limit
        // guessed before them would let the core send into a server that allows 0, or dial
        // another connection because the guessed one is busy.
        h2::client::Builder::new()
            .initial_max_send_streams(0)
            .handshake(stream.compat())
            .await
            .map_err(|error| Error::Connect {
                host: endpoint.to_string(),
                reason: format!("HTTP/2 handshake failed: {error}"),
            })
    };
    let handshake_timeout = setup.timeouts.handshake;
    timeout(
        runtime,
        handshake_timeout,
        "HTTP/2 handshake",
        endpoint,
        handshake,
    )
    .await
}

/// The connection task: dials, then drives the connection until it ends or the driver lets
/// go of it (closes `requests`) and its streams are done.
pub(crate) async fn run<R: Runtime>(
    runtime: R,
    setup: Arc<ConnSetup>,
    route: Route,
    conn: ConnId,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let connected = connect(&runtime, &setup).await;
    serve(runtime, setup, route, conn, connected, requests, io).await;
}

/// The connection task over `stream`, already connected and secured to `setup`'s endpoint,
/// whose server agreed to `h2`: shakes hands, then as [`run`].
pub(crate) async fn run_over<R: Runtime>(
    runtime: R,
    setup: Arc<ConnSetup>,
    route: Route,
    conn: ConnId,
    stream: TlsStream<R::Tcp>,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let connected = handshake(&runtime, &setup, stream).await;
    serve(runtime, setup, route, conn, connected, requests, io).await;
}

/// Drives `connected` until it ends or the driver lets go of it and its streams are done;
/// reports a connection that could not be opened as a failed dial.
async fn serve<R: Runtime>(
    runtime: R,
    setup: Arc<ConnSetup>,
    route: Route,
    conn: ConnId,
    connected: Result<Connected<R>, Error>,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let (send, connection) = match connected {
        Ok(parts) => parts,
        Err(error) => {
            log::warn!("cannot connect to {} over HTTP/2: {error}", route.name());
            let _ = io
                .send(Io::Http(route, HttpEvent::DialFailed(conn, error)))
                .await;
            return;
        }
    };
    log::info!(
        "connected to {} over HTTP/2 at {}",
        route.name(),
        setup.endpoint
    );
    let mut driver = ConnDriver::new(runtime, setup, conn, send, connection, requests);
    let max_streams = driver.max_streams();
    driver.events.push(Input::Connected { conn, max_streams });
    loop {
        std::future::poll_fn(|cx| driver.poll_round(cx)).await;
        let events = std::mem::take(&mut driver.events);
        let done = driver.done;
        if !events.is_empty()
            && io
                .send(Io::Http(route, HttpEvent::Inputs(events)))
                .await
                .is_err()
        {
            return;
        }
        if done {
            log::info!("an {} HTTP/2 connection ended", route.name());
            return;
        }
    }
}

/// Keep-alive: waiting for the next ping, or for the answer to one.
enum Ping {
    Idle(Sleep),
    Waiting(Sleep),
}

/// The state of one connection's task.
struct ConnDriver<R: Runtime> {
    runtime: R,
    setup: Arc<ConnSetup>,
    conn: ConnId,
    send: SendRequest<Bytes>,
    connection: Option<Connection<Stream<R>, Bytes>>,
    ping_pong: Option<h2::PingPong>,
    ping: Ping,
    requests: Pin<Box<Receiver<Outgoing>>>,
    exchanges: FuturesUnordered<Exchange>,
    /// The request timeout of every open stream.
    deadlines: Deadlines,
    /// Wakes the task at the earliest deadline of an open stream.
    timer: Option<(Instant, Sleep)>,
    reported_streams: u32,
    goaway_reported: bool,
    /// The driver closed the request channel: finish the streams, then end.
    closing: bool,
    /// The connection cannot take new streams.
    broken: bool,
    /// Everything is reported; the task ends.
    done: bool,
    events: Vec<Input>,
}

impl<R: Runtime> ConnDriver<R> {
    fn new(
        runtime: R,
        setup: Arc<ConnSetup>,
        conn: ConnId,
        send: SendRequest<Bytes>,
        mut connection: Connection<Stream<R>, Bytes>,
        requests: Receiver<Outgoing>,
    ) -> Self {
        let ping_pong = connection.ping_pong();
        let ping = Ping::Idle(sleep(&runtime, setup.ping_interval));
        let deadlines = Deadlines::new(setup.request_timeout);
        let mut driver = ConnDriver {
            runtime,
            setup,
            conn,
            send,
            connection: Some(connection),
            ping_pong,
            ping,
            requests: Box::pin(requests),
            exchanges: FuturesUnordered::new(),
            deadlines,
            timer: None,
            reported_streams: 0,
            goaway_reported: false,
            closing: false,
            broken: false,
            done: false,
            events: Vec::new(),
        };
        driver.reported_streams = driver.max_streams();
        driver
    }

    /// The connection's stream limit as h2 knows it.
    fn max_streams(&self) -> u32 {
        u32::try_from(self.send.current_max_send_streams()).unwrap_or(u32::MAX)
    }

    /// One round: drives the connection, starts waiting requests, collects finished streams.
    /// Ready when there is something to report or the task is done.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_connection(cx);
        self.poll_ping(cx);
        self.start_requests(cx);
        self.collect(cx);
        self.poll_deadlines(cx);
        let streams = self.max_streams();
        if streams != self.reported_streams && self.connection.is_some() {
            self.reported_streams = streams;
            self.events.push(Input::MaxStreams {
                conn: self.conn,
                max_streams: streams,
            });
        }
        self.finish_if_over();
        if self.events.is_empty() && !self.done {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    fn poll_connection(&mut self, cx: &mut Context<'_>) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        if let Poll::Ready(result) = Pin::new(connection).poll(cx) {
            if let Err(error) = result {
                log::warn!("HTTP/2 connection error ({}): {error}", self.setup.endpoint);
            }
            self.connection = None;
            self.broken = true;
        }
    }

    fn poll_ping(&mut self, cx: &mut Context<'_>) {
        let Some(ping_pong) = &mut self.ping_pong else {
            return;
        };
        if self.connection.is_none() {
            return;
        }
        loop {
            match &mut self.ping {
                Ping::Idle(timer) => {
                    if timer.as_mut().poll(cx).is_pending() {
                        return;
                    }
                    if ping_pong.send_ping(h2::Ping::opaque()).is_err() {
                        return;
                    }
                    let answer_by = self.setup.timeouts.handshake;
                    self.ping = Ping::Waiting(sleep(&self.runtime, answer_by));
                }
                Ping::Waiting(deadline) => {
                    match ping_pong.poll_pong(cx) {
                        Poll::Ready(Ok(_)) => {
                            let interval = self.setup.ping_interval;
                            self.ping = Ping::Idle(sleep(&self.runtime, interval));
                            continue;
                        }
                        Poll::Ready(Err(_)) => return,
                        Poll::Pending => {}
                    }
                    if deadline.as_mut().poll(cx).is_ready() {
                        log::warn!(
                            "no answer to an HTTP/2 ping from {}: the connection is given up",
                            self.setup.endpoint
                        );
                        // Dropping the connection fails its streams; they are collected next.
                        self.connection = None;
                        self.broken = true;
                    }
                    return;
                }
            }
        }
    }

    /// Opens a stream for each waiting request while h2 has room.
    fn start_requests(&mut self, cx: &mut Context<'_>) {
        let mut now = None;
        while !self.closing && !self.broken {
            match self.send.poll_ready(cx) {
                Poll::Pending => return,
                Poll::Ready(Err(error)) => {
                    self.note_goaway(&error);
                    self.broken = true;
                    return;
                }
                Poll::Ready(Ok(())) => {}
            }
            match self.requests.as_mut().poll_next(cx) {
                Poll::Ready(Some((id, request))) => {
                    let now = *now.get_or_insert_with(|| self.runtime.now());
                    self.start(id, request, now);
                }
                Poll::Ready(None) => self.closing = true,
                Poll::Pending => return,
            }
        }
    }

    fn start(&mut self, id: RequestId, request: http::Request<Bytes>, now: Instant) {
        let (parts, body) = request.into_parts();
        let end_of_stream = body.is_empty();
        let request = http::Request::from_parts(parts, ());
        let (response, mut stream) = match self.send.send_request(request, end_of_stream) {
            Ok(started) => started,
            Err(error) => {
                // No stream was opened: nothing reached the server.
                self.note_goaway(&error);
                self.events.push(Input::StreamEnd {
                    id,
                    end: StreamEnd::NotSent,
                });
                return;
            }
        };
        if !end_of_stream && let Err(error) = stream.send_data(body, true) {
            self.events.push(Input::StreamEnd {
                id,
                end: stream_end(&error),
            });
            return;
        }
        let number = self.deadlines.start(now);
        let exchange = Exchange::new(id, number, response, self.setup.max_body);
        self.exchanges.push(exchange);
    }

    fn collect(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some((id, number, result))) = self.exchanges.poll_next(cx) {
            self.deadlines.done(number);
            match result {
                Ok(response) => self.events.push(Input::Response { id, response }),
                Err(end) => {
                    if end == StreamEnd::GoAway && !self.goaway_reported {
                        self.goaway_reported = true;
                        self.events.push(Input::GoAway { conn: self.conn });
                    }
                    self.events.push(Input::StreamEnd { id, end });
                }
            }
        }
    }

    /// Times out the streams past their deadline (dropping a stream resets it), and keeps
    /// the timer on the next deadline.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(deadline) = self.deadlines.next_deadline() else {
                self.timer = None;
                return;
            };
            let (at, timer) = match &mut self.timer {
                Some((at, timer)) if *at == deadline => (at, timer),
                _ => {
                    let timer = sleep_until(&self.runtime, deadline);
                    let (at, timer) = self.timer.insert((deadline, timer));
                    (at, timer)
                }
            };
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            let now = self.runtime.now().max(*at);
            self.timer = None;
            if let Some(below) = self.deadlines.expire(now) {
                self.time_out(below);
            }
        }
    }

    /// Reports the open streams numbered below `below` as timed out and drops them.
    fn time_out(&mut self, below: u64) {
        for exchange in std::mem::take(&mut self.exchanges) {
            if exchange.number() < below {
                self.events.push(Input::StreamEnd {
                    id: exchange.id(),
                    end: StreamEnd::TimedOut,
                });
            } else {
                self.exchanges.push(exchange);
            }
        }
    }

    fn note_goaway(&mut self, error: &h2::Error) {
        if error.is_go_away() && error.is_remote() && !self.goaway_reported {
            self.goaway_reported = true;
            self.events.push(Input::GoAway { conn: self.conn });
        }
    }

    /// Ends the task once no stream is left: when the connection broke, or the driver closed
    /// it. Requests that never got a stream are reported unsent, then the close. (Every
    /// stream has reported by then: dropping the connection ends its streams with an error.)
    fn finish_if_over(&mut self) {
        let over = (self.broken || self.closing) && self.exchanges.is_empty();
        if !over || self.done {
            return;
        }
        self.done = true;
        self.requests.close();
        while let Ok((id, _)) = self.requests.try_recv() {
            self.events.push(Input::StreamEnd {
                id,
                end: StreamEnd::NotSent,
            });
        }
        self.events.push(Input::Closed { conn: self.conn });
    }
}

fn sleep<R: Runtime>(runtime: &R, after: Duration) -> Sleep {
    sleep_until(runtime, runtime.now() + after)
}

fn sleep_until<R: Runtime>(runtime: &R, deadline: Instant) -> Sleep {
    let runtime = runtime.clone();
    Box::pin(async move { runtime.sleep_until(deadline).await })
}
