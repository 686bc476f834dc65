//! One HTTP/2 provider as the driver sees it: its pool of connections ([`H2Link`]), the
//! requests waiting for a connection, and the tasks that dial and exchange. What comes back
//! is turned into [`CoreInput`]s for the protocol core, so every HTTP/2 provider (APNs, FCM)
//! is driven by the same code.

use async_channel::Sender;
use bytes::Bytes;
use h2::client::SendRequest;
use push_proto::apns::http2;
use push_proto::fcm;

use crate::driver::Io;
use crate::error::Error;
use crate::h2link::{self, ConnId, H2Link, H2Result};
use crate::runtime::Runtime;

/// An HTTP/2 provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum H2Service {
    /// APNs' provider API.
    Apns,
    /// FCM HTTP v1.
    Fcm,
}

impl H2Service {
    /// The name used in logs.
    fn name(self) -> &'static str {
        match self {
            H2Service::Apns => "APNs",
            H2Service::Fcm => "FCM",
        }
    }
}

/// The provider a request belongs to, with the core's id for it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum H2Request {
    /// APNs over HTTP/2.
    Apns(http2::RequestId),
    /// FCM HTTP v1.
    Fcm(fcm::RequestId),
}

/// Something that happened on one of a route's connections.
pub(crate) enum H2Io {
    /// Connection `conn` is open.
    Connected {
        conn: ConnId,
        send: SendRequest<Bytes>,
    },
    /// Dialing connection `conn` failed.
    ConnectFailed { conn: ConnId, error: Error },
    /// Connection `conn` ended.
    Closed { conn: ConnId, error: Option<String> },
    /// A request on `conn` ended.
    Done(ConnId, H2Request, H2Result),
}

/// What the core must learn from a route.
pub(crate) enum CoreInput {
    /// A response to the request.
    Response(H2Request, http::Response<Bytes>),
    /// The server did not process the request: send it again.
    Refused(H2Request),
    /// The request failed and may have been processed.
    Failed(H2Request, String),
    /// A client-wide error (e.g. the TLS configuration is unusable).
    ClientError(Error),
}

/// One HTTP/2 provider's connections and waiting requests.
pub(crate) struct H2Route {
    service: H2Service,
    link: H2Link,
    waiting: Vec<(H2Request, http::Request<Bytes>)>,
    in_flight: usize,
}

impl H2Route {
    /// The route of `service` over `link`.
    pub(crate) fn new(service: H2Service, link: H2Link) -> Self {
        H2Route {
            service,
            link,
            waiting: Vec::new(),
            in_flight: 0,
        }
    }

    /// Requests handed to the route and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The streams the core may use: the sum of the open connections' limits.
    pub(crate) fn stream_limit(&self) -> u32 {
        self.link.stream_limit()
    }

    /// Sends `request` on the least busy open connection (or keeps it until one opens), and
    /// dials the closed connections of the pool.
    pub(crate) fn send<R: Runtime>(
        &mut self,
        runtime: &R,
        io: &Sender<Io<R>>,
        id: H2Request,
        request: http::Request<Bytes>,
    ) {
        self.in_flight += 1;
        match self.link.pick() {
            Some((conn, send)) => self.spawn_exchange(runtime, io, conn, id, request, send),
            None => self.waiting.push((id, request)),
        }
        for conn in self.link.dial_closed() {
            self.spawn_connect(runtime, io, conn);
        }
    }

    /// Handles a connection event; returns what the core must learn, in order.
    pub(crate) fn handle<R: Runtime>(
        &mut self,
        runtime: &R,
        io: &Sender<Io<R>>,
        event: H2Io,
    ) -> Vec<CoreInput> {
        let mut inputs = Vec::new();
        match event {
            H2Io::Connected { conn, send } => {
                if !self.link.connected(conn, send) {
                    return inputs;
                }
                for (id, request) in std::mem::take(&mut self.waiting) {
                    match self.link.pick() {
                        Some((conn, send)) => {
                            self.spawn_exchange(runtime, io, conn, id, request, send);
                        }
                        None => self.waiting.push((id, request)),
                    }
                }
            }
            H2Io::ConnectFailed { conn, error } => {
                self.link.closed(conn);
                if error.is_fatal() {
                    inputs.push(CoreInput::ClientError(error.clone()));
                }
                if !self.link.has_prospects() {
                    for (id, _) in std::mem::take(&mut self.waiting) {
                        self.in_flight -= 1;
                        inputs.push(CoreInput::Failed(id, error.to_string()));
                    }
                }
            }
            H2Io::Closed { conn, error } => {
                if let Some(error) = error {
                    log::warn!("{} HTTP/2 connection error: {error}", self.service.name());
                }
                self.link.closed(conn);
            }
            H2Io::Done(conn, id, result) => {
                self.in_flight -= 1;
                self.link.finished(conn);
                inputs.push(match result {
                    H2Result::Response(response) => CoreInput::Response(id, response),
                    H2Result::Refused => {
                        self.link.closed(conn);
                        CoreInput::Refused(id)
                    }
                    H2Result::Failed(error) => CoreInput::Failed(id, error.to_string()),
                });
            }
        }
        inputs
    }

    fn spawn_connect<R: Runtime>(&self, runtime: &R, io: &Sender<Io<R>>, conn: ConnId) {
        let (task_runtime, io) = (runtime.clone(), io.clone());
        let link = &self.link;
        let (endpoint, tls, timeouts) = (link.endpoint.clone(), link.tls.clone(), link.timeouts);
        let (ping_interval, service) = (link.ping_interval, self.service);
        let name = service.name();
        runtime.spawn(async move {
            let runtime = task_runtime;
            match h2link::connect(&runtime, &endpoint, tls, timeouts, ping_interval).await {
                Ok((send, ended)) => {
                    log::info!("connected to {name} over HTTP/2 at {endpoint}");
                    let connected = Io::H2(service, H2Io::Connected { conn, send });
                    if io.send(connected).await.is_ok() {
                        let error = ended.await;
                        log::info!("an {name} HTTP/2 connection to {endpoint} ended");
                        let _ = io.send(Io::H2(service, H2Io::Closed { conn, error })).await;
                    }
                }
                Err(error) => {
                    log::warn!("cannot connect to {name} over HTTP/2: {error}");
                    let failed = H2Io::ConnectFailed { conn, error };
                    let _ = io.send(Io::H2(service, failed)).await;
                }
            }
        });
    }

    fn spawn_exchange<R: Runtime>(
        &self,
        runtime: &R,
        io: &Sender<Io<R>>,
        conn: ConnId,
        id: H2Request,
        request: http::Request<Bytes>,
        send: SendRequest<Bytes>,
    ) {
        let (task_runtime, io) = (runtime.clone(), io.clone());
        let (endpoint, limit) = (self.link.endpoint.clone(), self.link.request_timeout);
        let service = self.service;
        runtime.spawn(async move {
            let result = h2link::exchange(&task_runtime, send, request, &endpoint, limit).await;
            let _ = io.send(Io::H2(service, H2Io::Done(conn, id, result))).await;
        });
    }
}
