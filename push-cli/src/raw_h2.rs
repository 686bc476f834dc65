//! The raw HTTP/2 baseline of `push bench`: the least a client can do to deliver N
//! notifications over h2. One pre-built request (the head built once, the body one shared
//! `Bytes`) is sent N times; each connection is driven by ONE task that keeps up to the
//! stream limit of response futures in a `FuturesUnordered`, sending a new request whenever
//! one completes. No queue, no per-notification task, no feedback: what is left is TLS, h2's
//! framing and HPACK, and the executor.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_lite::{StreamExt, future};
use futures_rustls::TlsConnector;
use futures_util::stream::FuturesUnordered;
use h2::client::{ResponseFuture, SendRequest};
use push_mock::Certificates;
use rustls::pki_types::ServerName;
use smol::net::TcpStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Most streams one connection keeps open whatever the server allows: the same cap as the
/// push client's (`push-client`'s `h2link::MAX_STREAMS`).
pub const MAX_STREAMS: u32 = 1000;

/// A request sent over and over.
#[derive(Debug, Clone)]
pub struct Prebuilt {
    /// Method, absolute URI and headers, cloned for every stream.
    pub head: http::Request<()>,
    /// The body, shared by every stream.
    pub body: Bytes,
}

/// Where to send: a server of push-mock, verified as [`Certificates::SERVER_NAME`].
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// TLS trusting the mocks' CA, with ALPN `h2`.
    pub tls: Arc<rustls::ClientConfig>,
}

impl Target {
    /// The server at `addr`, trusting `certs`' CA.
    pub fn new(addr: SocketAddr, certs: &Certificates) -> Result<Target, String> {
        let config = certs.client_config(false).map_err(|e| e.to_string())?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Target {
            addr,
            tls: Arc::new(config),
        })
    }
}

/// The notifications each of `connections` connections sends: `n` split as evenly as
/// possible.
fn shares(n: u64, connections: usize) -> Vec<u64> {
    let connections = connections.max(1) as u64;
    (0..connections)
        .map(|i| n / connections + u64::from(i < n % connections))
        .collect()
}

/// Sends `request` `n` times over `connections` connections opened now, each driven by one
/// task on smol's global executor (where the push client runs its tasks too); returns how
/// many answers were `2xx`. Fails on any transport or HTTP/2 error.
pub fn send_all(
    target: &Target,
    request: &Prebuilt,
    n: u64,
    connections: usize,
) -> Result<u64, String> {
    smol::block_on(async {
        let tasks: Vec<_> = shares(n, connections)
            .into_iter()
            .map(|share| smol::spawn(one_connection(target.clone(), request.clone(), share)))
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += task.await?;
        }
        Ok(ok)
    })
}

/// One connection: TCP, TLS with ALPN `h2`, the HTTP/2 handshake. Like the push client, it
/// assumes one stream until the server's SETTINGS say more.
async fn connect(
    target: &Target,
) -> Result<
    (
        SendRequest<Bytes>,
        h2::client::Connection<
            tokio_util::compat::Compat<futures_rustls::client::TlsStream<TcpStream>>,
            Bytes,
        >,
    ),
    String,
> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("raw h2: cannot connect to {}: {e}", target.addr))?;
    // As the push client's runtimes do: no small frame waits for the peer's delayed ACK.
    tcp.set_nodelay(true)
        .map_err(|e| format!("raw h2: cannot set TCP_NODELAY: {e}"))?;
    let name = ServerName::try_from(Certificates::SERVER_NAME).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(target.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("raw h2: TLS handshake failed: {e}"))?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("raw h2: the server did not agree to HTTP/2".into());
    }
    h2::client::Builder::new()
        .initial_max_send_streams(1)
        .handshake(tls.compat())
        .await
        .map_err(|e| format!("raw h2: HTTP/2 handshake failed: {e}"))
}

/// The streams one connection may have open now: the server's limit, at most
/// [`MAX_STREAMS`].
fn stream_limit(send: &SendRequest<Bytes>) -> usize {
    send.current_max_send_streams()
        .min(MAX_STREAMS as usize)
        .max(1)
}

/// Waits for one response and reads its body (releasing flow-control capacity); returns
/// the status.
async fn answer(response: ResponseFuture) -> Result<u16, String> {
    let response = response
        .await
        .map_err(|e| format!("raw h2: request failed: {e}"))?;
    let (parts, mut body) = response.into_parts();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("raw h2: reading a response failed: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(parts.status.as_u16())
}

/// Sends `count` copies of `request` on a new connection, keeping up to the stream limit in
/// flight, all from this one task; returns how many answers were `2xx` (Web Push answers
/// `201`).
async fn one_connection(target: Target, request: Prebuilt, count: u64) -> Result<u64, String> {
    let (mut send, connection) = connect(&target).await?;
    let work = async {
        let mut in_flight = FuturesUnordered::new();
        let (mut sent, mut ok) = (0u64, 0u64);
        loop {
            while sent < count && in_flight.len() < stream_limit(&send) {
                future::poll_fn(|cx| send.poll_ready(cx))
                    .await
                    .map_err(|e| format!("raw h2: no stream: {e}"))?;
                let (response, mut stream) = send
                    .send_request(request.head.clone(), false)
                    .map_err(|e| format!("raw h2: cannot send: {e}"))?;
                stream
                    .send_data(request.body.clone(), true)
                    .map_err(|e| format!("raw h2: cannot send the body: {e}"))?;
                in_flight.push(answer(response));
                sent += 1;
            }
            match in_flight.next().await {
                Some(status) => ok += u64::from((200..300).contains(&status?)),
                None => return Ok(ok),
            }
        }
    };
    let driven = async {
        Err(match connection.await {
            Ok(()) => "raw h2: the server closed the connection".to_owned(),
            Err(error) => format!("raw h2: connection failed: {error}"),
        })
    };
    future::or(work, driven).await
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        assert_eq!(shares(10, 1), vec![10]);
        assert_eq!(shares(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(shares(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(shares(5, 0), vec![5]);
    }
}
