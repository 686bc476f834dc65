//! An origin served over HTTP/1.1 only (ALPN `http/1.1`): each request gets the same checks,
//! records and answers as a request stream over HTTP/2.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_rustls::TlsAcceptor;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use smol::Timer;
use smol::net::TcpStream;

use super::request::MAX_BODY;
use super::state::Settings;
use super::stream::{Arrival, NAME, answer};
use crate::http1;
use crate::http2::{Body, Http2Record};
use crate::server::handshake;

/// Serves one connection to `origin`: the TLS handshake, then HTTP/1.1 with keep-alive.
pub(crate) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    settings: Arc<Settings>,
    origin: usize,
) {
    let Some(tls) = handshake(NAME, &acceptor, tcp, peer).await else {
        settings
            .record
            .update(|r| r.stats().handshake_failures += 1);
        return;
    };
    let connection = settings.record.update(|r| {
        r.stats().connections += 1;
        r.stats().connections - 1
    });
    let requests = Rc::new(Cell::new(0u32));
    let handler_settings = settings.clone();
    http1::serve(NAME, tls, peer, move |request| {
        let settings = handler_settings.clone();
        let requests = requests.clone();
        async move {
            requests.set(requests.get() + 1);
            let arrival = Arrival {
                origin,
                connection,
                stream_id: requests.get(),
                http1: true,
            };
            respond(&settings, request, arrival).await
        }
    })
    .await;
    settings.record.update(|r| r.stats().closed += 1);
}

/// Reads the body (at most [`MAX_BODY`] bytes), waits the latency, and answers.
async fn respond(
    settings: &Settings,
    request: Request<Incoming>,
    arrival: Arrival,
) -> Response<Full<Bytes>> {
    let (head, incoming) = request.into_parts();
    let body = read_body(incoming).await;
    if let Some(latency) = settings.latency {
        Timer::after(latency).await;
    }
    let reply = answer(settings, &head, &body, arrival);
    let (response, body) = reply.response();
    response.map(|()| Full::new(body.unwrap_or_default()))
}

/// The body, or [`Body::TooLarge`] beyond [`MAX_BODY`] (the rest unread); a body cut short
/// counts as what arrived.
async fn read_body(mut incoming: Incoming) -> Body {
    let mut buffer = BytesMut::new();
    while let Some(frame) = incoming.frame().await {
        let Ok(frame) = frame else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > MAX_BODY {
                return Body::TooLarge;
            }
            buffer.extend_from_slice(&data);
        }
    }
    Body::Complete(buffer.freeze())
}
