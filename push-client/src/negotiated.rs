//! A connection whose protocol the server picks (Web Push: HTTP/2 where the push service
//! offers it, HTTP/1.1 otherwise): one TLS handshake offering ALPN `h2` and `http/1.1`, then
//! the [`h2conn`](crate::h2conn) task when the server chose `h2`, else the
//! [`h1conn`](crate::h1conn) one (one request at a time; the core learns `max_streams = 1`).

use std::sync::Arc;

use async_channel::{Receiver, Sender};
use push_proto::Route;
use push_proto::engine::ConnId;

use crate::h1conn::{self, H1Setup};
use crate::h2conn::{self, ConnSetup, Outgoing};
use crate::io::{HttpEvent, Io};
use crate::net::dial_tls;
use crate::runtime::Runtime;

/// How a route's connections are made over either protocol.
#[derive(Debug)]
pub(crate) struct NegotiatedSetup {
    /// HTTP/2: the endpoint, timeouts, and the TLS configuration offering both protocols,
    /// used for every dial.
    pub(crate) h2: Arc<ConnSetup>,
    /// HTTP/1.1 over the same origin (a hyper link).
    pub(crate) h1: Arc<H1Setup>,
}

/// The connection task: dials, then runs the connection in the protocol the server chose.
pub(crate) async fn run<R: Runtime>(
    runtime: R,
    setup: Arc<NegotiatedSetup>,
    route: Route,
    conn: ConnId,
    requests: Receiver<Outgoing>,
    io: Sender<Io>,
) {
    let h2 = &setup.h2;
    let stream = match dial_tls(&runtime, &h2.endpoint, h2.tls.clone(), h2.timeouts).await {
        Ok(stream) => stream,
        Err(error) => {
            log::warn!(
                "cannot connect to {} at {}: {error}",
                route.name(),
                h2.endpoint
            );
            let _ = io
                .send(Io::Http(route, HttpEvent::DialFailed(conn, error)))
                .await;
            return;
        }
    };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        h2conn::run_over(runtime, h2.clone(), route, conn, stream, requests, io).await;
    } else {
        let h1 = setup.h1.clone();
        h1conn::run_over(runtime, h1, route, conn, Box::new(stream), requests, io).await;
    }
}
