//! HTTP/2 for APNs: one connection (h2 over futures-rustls, ALPN `h2`), requests multiplexed
//! as streams, GOAWAY and refused streams told apart from real failures.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use rustls::ClientConfig;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::error::Error;
use crate::net::{Endpoint, Timeouts, dial_tls, timeout};
use crate::runtime::Runtime;

/// Most concurrent streams used on one connection, whatever the server allows: each stream in
/// flight holds a request and its task, so this bounds memory.
pub(crate) const MAX_STREAMS: u32 = 1000;

/// One connection's stream limit: the server's, at most [`MAX_STREAMS`].
fn stream_limit(send: &SendRequest<Bytes>) -> u32 {
    u32::try_from(send.current_max_send_streams())
        .unwrap_or(u32::MAX)
        .min(MAX_STREAMS)
}

/// How one HTTP/2 request ended.
pub(crate) enum H2Result {
    /// A complete response.
    Response(http::Response<Bytes>),
    /// The server never processed the stream (refused, or beyond a GOAWAY): safe to resend.
    Refused,
    /// The request failed; it may or may not have been processed.
    Failed(Error),
}

/// Where to connect, and the pool of connections: requests go to the open connection with
/// the fewest in flight; closed ones are dialed again when requests come.
pub(crate) struct H2Link {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) request_timeout: Duration,
    /// How often an open connection is pinged (a dead one is noticed and replaced).
    pub(crate) ping_interval: Duration,
    conns: Vec<H2Conn>,
    /// Counts dials, so that events of a replaced connection are recognised.
    generations: u64,
}

/// One connection of the pool.
struct H2Conn {
    generation: u64,
    state: H2State,
    in_flight: usize,
}

/// Names one connection of the pool: its slot and the dial it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId {
    slot: usize,
    generation: u64,
}

impl H2Link {
    /// A pool of `connections` (at least one), none open yet.
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
        request_timeout: Duration,
        ping_interval: Duration,
        connections: usize,
    ) -> Self {
        let conns = (0..connections.max(1))
            .map(|_| H2Conn {
                generation: 0,
                state: H2State::Down,
                in_flight: 0,
            })
            .collect();
        H2Link {
            endpoint,
            tls,
            timeouts,
            request_timeout,
            ping_interval,
            conns,
            generations: 0,
        }
    }

    /// The open connection with the fewest requests in flight, counting one more on it.
    pub(crate) fn pick(&mut self) -> Option<(ConnId, SendRequest<Bytes>)> {
        let (slot, conn) = self
            .conns
            .iter_mut()
            .enumerate()
            .filter(|(_, conn)| matches!(conn.state, H2State::Up(_)))
            .min_by_key(|(_, conn)| conn.in_flight)?;
        let H2State::Up(send) = &conn.state else {
            return None;
        };
        conn.in_flight += 1;
        let id = ConnId {
            slot,
            generation: conn.generation,
        };
        Some((id, send.clone()))
    }

    /// The closed connections to dial now; they count as connecting from here on.
    pub(crate) fn dial_closed(&mut self) -> Vec<ConnId> {
        let mut dials = Vec::new();
        for (slot, conn) in self.conns.iter_mut().enumerate() {
            if matches!(conn.state, H2State::Down) {
                self.generations += 1;
                conn.generation = self.generations;
                conn.state = H2State::Connecting;
                conn.in_flight = 0;
                dials.push(ConnId {
                    slot,
                    generation: conn.generation,
                });
            }
        }
        dials
    }

    /// True while some connection is open or being dialed.
    pub(crate) fn has_prospects(&self) -> bool {
        self.conns
            .iter()
            .any(|conn| !matches!(conn.state, H2State::Down))
    }

    fn current(&mut self, id: ConnId) -> Option<&mut H2Conn> {
        self.conns
            .get_mut(id.slot)
            .filter(|conn| conn.generation == id.generation)
    }

    /// Connection `id` is open; false when it was replaced meanwhile.
    pub(crate) fn connected(&mut self, id: ConnId, send: SendRequest<Bytes>) -> bool {
        match self.current(id) {
            Some(conn) => {
                conn.state = H2State::Up(send);
                true
            }
            None => false,
        }
    }

    /// Connection `id` failed or closed: the next request dials it again.
    pub(crate) fn closed(&mut self, id: ConnId) {
        if let Some(conn) = self.current(id) {
            conn.state = H2State::Down;
        }
    }

    /// A request on connection `id` ended.
    pub(crate) fn finished(&mut self, id: ConnId) {
        if let Some(conn) = self.current(id) {
            conn.in_flight = conn.in_flight.saturating_sub(1);
        }
    }

    /// The streams the core may use: the sum over open connections, at least one.
    pub(crate) fn stream_limit(&self) -> u32 {
        let total: u32 = self
            .conns
            .iter()
            .filter_map(|conn| match &conn.state {
                H2State::Up(send) => Some(stream_limit(send)),
                _ => None,
            })
            .fold(0, u32::saturating_add);
        total.max(1)
    }
}

/// A connection's state.
enum H2State {
    /// No connection; one is opened for the next request.
    Down,
    /// Dialing; requests wait.
    Connecting,
    /// Open.
    Up(SendRequest<Bytes>),
}

/// Dials, checks that the server speaks HTTP/2, and returns the request handle and a future
/// that drives the connection until it ends: it pings every `ping_interval` and gives the
/// connection up when a ping goes unanswered for the handshake timeout.
pub(crate) async fn connect<R: Runtime>(
    runtime: &R,
    endpoint: &Endpoint,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    ping_interval: Duration,
) -> Result<
    (
        SendRequest<Bytes>,
        impl std::future::Future<Output = Option<String>> + Send + 'static,
    ),
    Error,
> {
    let stream = dial_tls(runtime, endpoint, tls, timeouts).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(Error::Tls {
            host: endpoint.to_string(),
            reason: "the server did not agree to HTTP/2 (ALPN h2)".into(),
        });
    }
    let handshake = async {
        // One stream until the server's SETTINGS say more (h2 would assume no limit).
        h2::client::Builder::new()
            .initial_max_send_streams(1)
            .handshake(stream.compat())
            .await
            .map_err(|error| Error::Connect {
                host: endpoint.to_string(),
                reason: format!("HTTP/2 handshake failed: {error}"),
            })
    };
    let (send, connection) = timeout(
        runtime,
        timeouts.handshake,
        "HTTP/2 handshake",
        endpoint,
        handshake,
    )
    .await?;
    let mut connection = connection;
    let ping_pong = connection.ping_pong();
    let (runtime, endpoint) = (runtime.clone(), endpoint.clone());
    let ended = async move {
        let keep_alive = async {
            let Some(mut ping_pong) = ping_pong else {
                return std::future::pending().await;
            };
            loop {
                runtime.sleep_until(runtime.now() + ping_interval).await;
                let ping = async {
                    ping_pong
                        .ping(h2::Ping::opaque())
                        .await
                        .map_err(|error| Error::Connect {
                            host: endpoint.to_string(),
                            reason: format!("ping failed: {error}"),
                        })
                };
                if let Err(error) =
                    timeout(&runtime, timeouts.handshake, "ping", &endpoint, ping).await
                {
                    return Some(error.to_string());
                }
            }
        };
        let run = async { connection.await.err().map(|error| error.to_string()) };
        futures_lite::future::or(run, keep_alive).await
    };
    Ok((send, ended))
}

/// Sends one request on the connection and reads the whole response.
pub(crate) async fn exchange<R: Runtime>(
    runtime: &R,
    send: SendRequest<Bytes>,
    request: http::Request<Bytes>,
    endpoint: &Endpoint,
    limit: Duration,
) -> H2Result {
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, ());
    // Until the stream is open nothing was sent: a failure or a timeout there is a refusal.
    let ready = async {
        send.ready().await.map_err(|error| Error::Connect {
            host: endpoint.to_string(),
            reason: format!("no HTTP/2 stream: {error}"),
        })
    };
    let Ok(mut send) = timeout(runtime, limit, "HTTP/2 stream", endpoint, ready).await else {
        return H2Result::Refused;
    };
    let round_trip = async {
        let (response, mut stream) = send.send_request(request, body.is_empty())?;
        if !body.is_empty() {
            stream.send_data(body, true)?;
        }
        let (parts, mut incoming) = response.await?.into_parts();
        let mut collected = BytesMut::new();
        while let Some(chunk) = incoming.data().await {
            let chunk = chunk?;
            let _ = incoming.flow_control().release_capacity(chunk.len());
            collected.extend_from_slice(&chunk);
        }
        Ok::<_, h2::Error>(http::Response::from_parts(parts, collected.freeze()))
    };
    let round_trip = async {
        match round_trip.await {
            Ok(response) => Ok(H2Result::Response(response)),
            Err(error) if unprocessed(&error) => Ok(H2Result::Refused),
            Err(error) => Err(Error::Connect {
                host: endpoint.to_string(),
                reason: format!("HTTP/2 request failed: {error}"),
            }),
        }
    };
    match timeout(runtime, limit, "HTTP/2 request", endpoint, round_trip).await {
        Ok(result) => result,
        Err(error) => H2Result::Failed(error),
    }
}

/// True when the server certainly did not process the stream: refused, or cut by a GOAWAY
/// whose last stream id is below it.
fn unprocessed(error: &h2::Error) -> bool {
    error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM)
}
