//! One HTTP provider's transport as the driver sees it: the connection tasks of its route
//! (one [`h2conn`](crate::h2conn) task per connection the core dials, or one
//! [`h1conn`](crate::h1conn) task for a route spoken over HTTP/1.1, or a
//! [`negotiated`](crate::negotiated) one that becomes either) and, for FCM, the
//! HTTP/1.1 exchanges with the credential's token endpoint. It performs the core's
//! [`engine::Action`]s and decides nothing: which connection, when to dial, what a stream end
//! means is the core's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_channel::{Receiver, Sender, TrySendError};
use push_proto::Route;
use push_proto::engine::{self, ConnId, Input, StreamEnd};

use crate::h1conn::{self, H1Setup};
use crate::h2conn::{self, ConnSetup, Outgoing};
use crate::http::HttpClient;
use crate::io::{HttpEvent, Io};
use crate::negotiated::{self, NegotiatedSetup};
use crate::runtime::Runtime;

/// Requests a connection task may hold beyond its streams: the core never sends more than a
/// connection's limit, so this only absorbs a limit lowered while requests were on their way.
const CHANNEL_SLACK: usize = 16;

/// How a route's connections are made.
pub(crate) enum Connections {
    /// HTTP/2: many streams per connection.
    H2(Arc<ConnSetup>),
    /// HTTP/1.1: one request at a time per connection.
    H1(Arc<H1Setup>),
    /// Either, as the server chooses in the TLS handshake (ALPN `h2` or `http/1.1`).
    Negotiated(Arc<NegotiatedSetup>),
}

impl Connections {
    /// The task that dials connection `conn` of `route` and drives it, taking its requests
    /// from `requests` and reporting to `io`.
    fn task<R: Runtime>(
        &self,
        runtime: R,
        route: Route,
        conn: ConnId,
        requests: Receiver<Outgoing>,
        io: &Sender<Io>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let io = io.clone();
        match self {
            Self::H2(s) => Box::pin(h2conn::run(runtime, s.clone(), route, conn, requests, io)),
            Self::H1(s) => Box::pin(h1conn::run(runtime, s.clone(), route, conn, requests, io)),
            Self::Negotiated(s) => Box::pin(negotiated::run(
                runtime,
                s.clone(),
                route,
                conn,
                requests,
                io,
            )),
        }
    }
}

/// One HTTP provider's connections and credential endpoint.
pub(crate) struct HttpRoute<R: Runtime> {
    route: Route,
    setup: Connections,
    channel_capacity: usize,
    conns: HashMap<ConnId, Sender<Outgoing>>,
    /// The HTTP/1.1 client for the credential's endpoint (FCM's OAuth2 token endpoint).
    credential: Option<Arc<HttpClient<R>>>,
}

impl<R: Runtime> HttpRoute<R> {
    /// The transport of `route`; `max_streams` is the core's cap per connection.
    pub(crate) fn new(
        route: Route,
        setup: Connections,
        max_streams: u32,
        credential: Option<HttpClient<R>>,
    ) -> Self {
        HttpRoute {
            route,
            setup,
            channel_capacity: usize::try_from(max_streams).unwrap_or(usize::MAX) + CHANNEL_SLACK,
            conns: HashMap::new(),
            credential: credential.map(Arc::new),
        }
    }

    /// Performs `action`; returns what the core must learn at once (a request for a
    /// connection that is already gone was not sent).
    pub(crate) fn perform(
        &mut self,
        runtime: &R,
        io: &Sender<Io>,
        action: engine::Action,
    ) -> Option<Input> {
        match action {
            engine::Action::Dial(conn) => {
                let (requests, incoming) = async_channel::bounded(self.channel_capacity);
                self.conns.insert(conn, requests);
                let task = self
                    .setup
                    .task(runtime.clone(), self.route, conn, incoming, io);
                runtime.spawn(task);
                None
            }
            engine::Action::Send { conn, id, request } => {
                let sent = match self.conns.get(&conn) {
                    Some(requests) => requests.try_send((id, request)),
                    None => Err(TrySendError::Closed((id, request))),
                };
                sent.err().map(|_| Input::StreamEnd {
                    id,
                    end: StreamEnd::NotSent,
                })
            }
            engine::Action::Close(conn) => {
                // The task finishes the connection's streams, then ends.
                self.conns.remove(&conn);
                None
            }
            engine::Action::CredentialRequest(request) => {
                let Some(client) = self.credential.clone() else {
                    return Some(Input::CredentialFailure(
                        "no credential endpoint is configured".into(),
                    ));
                };
                let (route, io) = (self.route, io.clone());
                runtime.spawn(async move {
                    let result = client.exchange(request).await;
                    let _ = io
                        .send(Io::Http(route, HttpEvent::Credential(result)))
                        .await;
                });
                None
            }
        }
    }

    /// Connection `conn` ended: its task is gone.
    pub(crate) fn closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }
}
