//! One HTTP/1.1 connection driven by one task, for a route whose requests go one at a time
//! (legacy GCM): the dial and handshake, then each request in turn while the connection is
//! driven. To the engine it is a connection that allows one stream; what happens is reported
//! to the driver as facts ([`Input`]s), and the protocol core decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use push_proto::Route;
use push_proto::engine::{ConnId, Input, StreamEnd};

use crate::error::Error;
use crate::h2conn::Outgoing;
use crate::http::{H1Connection, Origin, Stream};
use crate::io::{HttpEvent, Io};
use crate::net::Timeouts;
use crate::runtime::Runtime;

/// How a route's HTTP/1.1 connections are made and bounded.
#[derive(Debug)]
pub(crate) struct H1Setup {
    /// What carries the requests.
    pub(crate) link: Link,
    /// Connect and TLS handshake timeouts.
    pub(crate) timeouts: Timeouts,
    /// Longest time one exchange may take.
    pub(crate) request_timeout: Duration,
    /// Largest response body accepted, checked while it is read.
    pub(crate) max_body: usize,
}

/// What carries a route's HTTP/1.1 requests.
#[derive(Debug)]
pub(crate) enum Link {
    /// push's own connections: hyper over TCP, with TLS for `https`.
    Hyper(Origin),
    /// The application's surf client (feature `surf`); each connection of the route is a
    /// slot of it.
    #[cfg(feature = "surf")]
    Surf(surf::Client),
}

/// An open connection of a [`Link`].
enum Open {
    Hyper {
        sender: SendRequest<Full<Bytes>>,
        /// `None` once it ended.
        connection: Option<Box<H1Connection>>,
    },
    #[cfg(feature = "surf")]
    Surf(surf::Client),
}

/// The connection task: dials, then serves requests one at a time until the connection ends
/// or the driver lets go of it (closes `requests`).
pub(crate) async fn run<R: Runtime>(
    runtime: R,
    setup: Arc<H1Setup>,
    route: Route,
    conn: ConnId,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let open = connect(&runtime, &setup).await;
    serve(runtime, setup, route, conn, open, requests, io).await;
}

/// The connection task over `stream`, already connected and secured to the origin of
/// `setup`'s link (a [`Link::Hyper`]), whose server chose HTTP/1.1: shakes hands, then as
/// [`run`].
pub(crate) async fn run_over<R: Runtime>(
    runtime: R,
    setup: Arc<H1Setup>,
    route: Route,
    conn: ConnId,
    stream: Box<dyn Stream>,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let open = match &setup.link {
        Link::Hyper(origin) => origin.handshake(stream).await.map(|(sender, connection)| {
            log::info!("connected over HTTP/1.1 to {}", origin.endpoint());
            Open::Hyper {
                sender,
                connection: Some(Box::new(connection)),
            }
        }),
        #[cfg(feature = "surf")]
        Link::Surf(_) => Err(Error::Connect {
            host: route.name().into(),
            reason: "an established connection cannot be handed to surf".into(),
        }),
    };
    serve(runtime, setup, route, conn, open, requests, io).await;
}

/// Serves requests one at a time on `open` until the connection ends or the driver lets go
/// of it; reports a connection that could not be opened as a failed dial.
async fn serve<R: Runtime>(
    runtime: R,
    setup: Arc<H1Setup>,
    route: Route,
    conn: ConnId,
    open: Result<Open, Error>,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let mut open = match open {
        Ok(open) => open,
        Err(error) => {
            log::warn!("cannot connect to {} over HTTP/1.1: {error}", route.name());
            let _ = io
                .send(Io::Http(route, HttpEvent::DialFailed(conn, error)))
                .await;
            return;
        }
    };
    let report = |inputs| io.send(Io::Http(route, HttpEvent::Inputs(inputs)));
    let connected = Input::Connected {
        conn,
        max_streams: 1,
    };
    if report(vec![connected]).await.is_err() {
        return;
    }
    while let Some((id, request)) = open.next_request(&requests).await {
        let exchange = open.exchange(&setup, request);
        let deadline = runtime.now() + setup.request_timeout;
        let timed_out = async {
            runtime.sleep_until(deadline).await;
            Err(StreamEnd::TimedOut)
        };
        let result = future::or(exchange, timed_out).await;
        let usable = result.is_ok();
        let input = match result {
            Ok(response) => Input::Response { id, response },
            Err(end) => Input::StreamEnd { id, end },
        };
        if report(vec![input]).await.is_err() {
            return;
        }
        if !usable {
            // Cut short, broken, or never written: the connection cannot carry the next one.
            break;
        }
    }
    requests.close();
    let mut inputs: Vec<Input> = std::iter::from_fn(|| requests.try_recv().ok())
        .map(|(id, _)| Input::StreamEnd {
            id,
            end: StreamEnd::NotSent,
        })
        .collect();
    inputs.push(Input::Closed { conn });
    log::info!("an {} HTTP/1.1 connection ended", route.name());
    let _ = report(inputs).await;
}

/// Opens a connection of `setup`'s link.
async fn connect<R: Runtime>(runtime: &R, setup: &H1Setup) -> Result<Open, Error> {
    match &setup.link {
        Link::Hyper(origin) => {
            let (sender, connection) = origin.connect(runtime, setup.timeouts).await?;
            log::info!("connected over HTTP/1.1 to {}", origin.endpoint());
            Ok(Open::Hyper {
                sender,
                connection: Some(Box::new(connection)),
            })
        }
        #[cfg(feature = "surf")]
        Link::Surf(client) => Ok(Open::Surf(client.clone())),
    }
}

impl Open {
    /// The next request, or `None` when the driver let go of the connection or it ended
    /// while idle (the server closed a keep-alive connection).
    async fn next_request(&mut self, requests: &Receiver<Outgoing>) -> Option<Outgoing> {
        let next = async { requests.recv().await.ok() };
        match self {
            Open::Hyper { connection, .. } => {
                let ended = async {
                    drive(connection).await;
                    None
                };
                future::or(next, ended).await
            }
            #[cfg(feature = "surf")]
            Open::Surf(_) => next.await,
        }
    }

    /// Sends `request` and reads its response, driving the connection meanwhile.
    async fn exchange(
        &mut self,
        setup: &H1Setup,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, StreamEnd> {
        match (self, &setup.link) {
            (Open::Hyper { sender, connection }, Link::Hyper(origin)) => {
                let request = origin.origin_form(request);
                let exchange = async {
                    // Not ready: the connection is gone before anything was written.
                    sender.ready().await.map_err(|_| StreamEnd::NotSent)?;
                    let response = sender.send_request(request).await.map_err(|error| {
                        if error.is_canceled() {
                            StreamEnd::NotSent
                        } else {
                            StreamEnd::ConnectionError(error.to_string())
                        }
                    })?;
                    read_response(response, setup.max_body).await
                };
                let driven = async {
                    drive(connection).await;
                    // Dropped: the exchange fails on its own.
                    std::future::pending().await
                };
                future::or(exchange, driven).await
            }
            #[cfg(feature = "surf")]
            (Open::Surf(client), _) => crate::surf::exchange(client, request, setup.max_body).await,
            #[cfg(feature = "surf")]
            _ => Err(StreamEnd::NotSent),
        }
    }
}

/// Drives `connection` until it ends, then drops it (a request still in flight fails).
async fn drive(connection: &mut Option<Box<H1Connection>>) {
    if let Some(open) = connection
        && let Err(error) = open.await
    {
        log::debug!("HTTP/1.1 connection error: {error}");
    }
    *connection = None;
}

/// Reads the response body, at most `max_body` bytes.
async fn read_response(
    response: http::Response<Incoming>,
    max_body: usize,
) -> Result<http::Response<Bytes>, StreamEnd> {
    let (parts, mut body) = response.into_parts();
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| StreamEnd::ConnectionError(error.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > max_body {
                return Err(StreamEnd::BodyTooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(http::Response::from_parts(parts, collected.freeze()))
}
