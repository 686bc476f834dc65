//! A loopback APNs feedback service: streams feedback tuples on every connection, then closes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use futures_rustls::TlsAcceptor;
use push_proto::apns::FeedbackTuple;
use smol::net::TcpStream;

use crate::certs::{Certificates, server_config};
use crate::server::{
    IO_TIMEOUT, Records, ServerThread, Shared, accept_loop, close_tls, handshake, invalid_input,
    timeout,
};

const NAME: &str = "mock-apns-feedback";
/// Chunk sizes used in turn for split writes: odd, small, and never a multiple of the 38 bytes
/// of a tuple, so tuples and even their headers straddle TLS records.
const SPLIT_SIZES: [usize; 6] = [5, 17, 1, 29, 3, 11];

#[derive(Debug, Default)]
struct Record {
    connections: usize,
    served: usize,
    handshake_failures: usize,
}

/// A loopback APNs feedback service (port 2196 in production).
///
/// On every established TLS connection it writes all its tuples, then closes politely
/// (close_notify, FIN, then waits for the client's FIN). Unlike Apple's service, which cleared
/// the list once read, every connection gets the same tuples, so tests can poll repeatedly.
/// Dropping the handle (or [`shutdown`](Self::shutdown)) stops the server.
#[derive(Debug)]
pub struct MockFeedback {
    thread: ServerThread,
    record: Records<Record>,
}

impl MockFeedback {
    /// Starts a feedback service serving `tuples`.
    ///
    /// With `split_writes`, the stream is written in small odd-sized chunks with a flush after
    /// each, so that tuples cross TLS records and arrive split across reads. With
    /// `require_client_cert`, clients must present a certificate signed by the CA of `certs`.
    /// Fails when a tuple's token is too long to encode.
    pub fn start(
        tuples: Vec<FeedbackTuple>,
        split_writes: bool,
        require_client_cert: bool,
        certs: &Certificates,
    ) -> io::Result<MockFeedback> {
        let mut stream = Vec::new();
        for tuple in &tuples {
            tuple.encode(&mut stream).map_err(invalid_input)?;
        }
        let stream: Arc<[u8]> = stream.into();
        let acceptor = TlsAcceptor::from(server_config(certs, require_client_cert)?);
        let record = Arc::new(Shared::new(Record::default()));
        let shared = record.clone();
        let thread = ServerThread::spawn(NAME, move |listener, executor| {
            accept_loop(NAME, listener, executor, move |tcp, peer| {
                serve(
                    tcp,
                    peer,
                    acceptor.clone(),
                    stream.clone(),
                    split_writes,
                    shared.clone(),
                )
            })
        })?;
        Ok(MockFeedback { thread, record })
    }

    /// The address to connect to (`127.0.0.1` and an ephemeral port). Verify the server
    /// certificate as [`Certificates::SERVER_NAME`].
    pub fn addr(&self) -> SocketAddr {
        self.thread.addr()
    }

    /// How many TLS connections were established (failed handshakes do not count).
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.connections)
    }

    /// How many connections received every tuple and were closed.
    pub fn served(&self) -> usize {
        self.record.read(|r| r.served)
    }

    /// How many TLS handshakes failed or timed out.
    pub fn handshake_failures(&self) -> usize {
        self.record.read(|r| r.handshake_failures)
    }

    /// Blocks until at least `count` connections were served completely, or `timeout` passes;
    /// returns whether they were.
    pub fn wait_for_served(&self, count: usize, timeout: Duration) -> bool {
        self.record.wait_until(timeout, |r| r.served >= count)
    }

    /// Blocks until at least `count` handshakes failed, or `timeout` passes; returns whether
    /// they did.
    pub fn wait_for_handshake_failures(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.handshake_failures >= count)
    }

    /// Stops the server and every connection; idempotent. The counts stay readable.
    pub fn shutdown(&mut self) {
        self.thread.stop();
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    stream: Arc<[u8]>,
    split_writes: bool,
    record: Records<Record>,
) {
    let Some(mut tls) = handshake(NAME, &acceptor, tcp, peer).await else {
        record.update(|r| r.handshake_failures += 1);
        return;
    };
    record.update(|r| r.connections += 1);
    let written = timeout(IO_TIMEOUT, async {
        if split_writes {
            let mut rest: &[u8] = &stream;
            for size in SPLIT_SIZES.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                tls.write_all(chunk).await?;
                tls.flush().await?;
                rest = tail;
            }
        } else {
            tls.write_all(&stream).await?;
        }
        tls.flush().await
    })
    .await;
    match written {
        Some(Ok(())) => log::debug!("{NAME}: sent {} bytes to {peer}", stream.len()),
        Some(Err(error)) => log::info!("{NAME}: writing to {peer} failed: {error}"),
        None => log::info!("{NAME}: {peer} did not read the tuples in time"),
    }
    close_tls(NAME, peer, tls).await;
    record.update(|r| r.served += 1);
}
