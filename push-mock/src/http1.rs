//! The HTTP/1.1 scaffolding the hyper-based mocks share: one keep-alive connection served by a
//! request handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol_hyper::rt::FuturesIo;

use crate::server::SmolTimer;

/// hyper closes connections whose request head does not arrive within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 with keep-alive on one connection until the client closes it, answering
/// each request with `handle`.
pub(crate) async fn serve<S, H, F>(name: &str, io: S, peer: SocketAddr, handle: H)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Request<Incoming>) -> F + 'static,
    F: Future<Output = Response<Full<Bytes>>> + 'static,
{
    let service = service_fn(move |request| {
        let answer = handle(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let mut builder = http1::Builder::new();
    // hyper panics if a timeout is configured without a timer: give it smol's.
    builder
        .timer(SmolTimer)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    match builder.serve_connection(FuturesIo::new(io), service).await {
        Ok(()) => log::debug!("{name}: {peer} closed"),
        Err(error) => log::info!("{name}: connection with {peer} failed: {error}"),
    }
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}
