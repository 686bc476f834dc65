//! [`ApnsModel`]: an APNs HTTP/2 provider API for the simulation, TLS by rustls and HTTP/2 by
//! h2's server, with the hostile behaviours of [`ApnsBehaviour`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Request, Response};
use push_client::Runtime;
use push_mock::Certificates;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::frame_break::FrameBreak;
use super::{Duplex, Listener, Sim};

/// How an [`ApnsModel`] answers. The default answers every request `200` at once, with a
/// stream limit of 1000.
#[derive(Debug, Clone)]
pub struct ApnsBehaviour {
    max_concurrent_streams: u32,
    latency: Duration,
    refuse_all_streams: bool,
    goaway_on_connect: bool,
    break_after: Option<usize>,
    reset_with: Option<h2::Reason>,
}

impl Default for ApnsBehaviour {
    fn default() -> Self {
        ApnsBehaviour {
            max_concurrent_streams: 1000,
            latency: Duration::ZERO,
            refuse_all_streams: false,
            goaway_on_connect: false,
            break_after: None,
            reset_with: None,
        }
    }
}

impl ApnsBehaviour {
    /// Advertises `SETTINGS_MAX_CONCURRENT_STREAMS = max` (0: the client may open none).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// Answers each request `latency` of simulated time after reading it (a round trip).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Resets every stream with `REFUSED_STREAM` unprocessed; the connection stays healthy.
    pub fn refuse_all_streams(mut self) -> Self {
        self.refuse_all_streams = true;
        self
    }

    /// Sends `GOAWAY(last_stream_id = 0)` right after the HTTP/2 handshake and closes.
    pub fn goaway_on_connect(mut self) -> Self {
        self.goaway_on_connect = true;
        self
    }

    /// After `answers` answers on a connection, replaces the next answer with a malformed
    /// frame (a DATA frame on stream 0) and lets nothing else through: the client's HTTP/2
    /// library detects the protocol error and fails every open stream, also those the model
    /// already processed.
    pub fn break_after(mut self, answers: usize) -> Self {
        self.break_after = Some(answers);
        self
    }

    /// Processes every request (it counts in [`ApnsModel::requests`]), then resets its stream
    /// with `reason` instead of answering.
    pub fn reset_with(mut self, reason: h2::Reason) -> Self {
        self.reset_with = Some(reason);
        self
    }
}

/// What the model saw.
#[derive(Debug, Default)]
struct Record {
    connections: usize,
    handshake_failures: usize,
    requests: HashMap<String, usize>,
    total_requests: usize,
    answers: usize,
    refused: usize,
    refused_by_id: HashMap<String, usize>,
    resets: usize,
    goaways: usize,
    broken: usize,
    max_open: usize,
}

struct Model {
    behaviour: ApnsBehaviour,
    acceptor: TlsAcceptor,
    record: Mutex<Record>,
}

/// A simulated APNs HTTP/2 server: TLS with the server certificate of [`Certificates`]
/// (clients must present its client certificate), ALPN `h2`, HTTP/2 by h2's server. A request
/// is processed once its body is read: it counts in [`requests`](Self::requests) under its
/// `apns-id`, and is answered `200` echoing that `apns-id`, unless the behaviour says
/// otherwise. Register it with [`Sim::listen`]; clones share the records.
#[derive(Clone)]
pub struct ApnsModel {
    inner: Arc<Model>,
}

impl std::fmt::Debug for ApnsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsModel")
            .field("behaviour", &self.inner.behaviour)
            .field("record", &*self.record())
            .finish()
    }
}

impl ApnsModel {
    /// A model behaving as `behaviour`, with the TLS material of `certs`.
    pub fn new(behaviour: ApnsBehaviour, certs: &Certificates) -> Result<Self, rustls::Error> {
        let mut tls = (*certs.server_config(true)?).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ApnsModel {
            inner: Arc::new(Model {
                behaviour,
                acceptor: TlsAcceptor::from(Arc::new(tls)),
                record: Mutex::new(Record::default()),
            }),
        })
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.inner
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// HTTP/2 connections established.
    pub fn connections(&self) -> usize {
        self.record().connections
    }

    /// TLS or HTTP/2 handshakes that failed.
    pub fn handshake_failures(&self) -> usize {
        self.record().handshake_failures
    }

    /// Requests processed with this `apns-id`.
    pub fn requests(&self, apns_id: &str) -> usize {
        self.record().requests.get(apns_id).copied().unwrap_or(0)
    }

    /// Requests processed, per `apns-id`.
    pub fn requests_by_id(&self) -> HashMap<String, usize> {
        self.record().requests.clone()
    }

    /// Requests processed in all.
    pub fn total_requests(&self) -> usize {
        self.record().total_requests
    }

    /// `200` answers sent (also those a broken connection swallowed).
    pub fn answers(&self) -> usize {
        self.record().answers
    }

    /// Streams refused with `REFUSED_STREAM` unprocessed.
    pub fn refused(&self) -> usize {
        self.record().refused
    }

    /// Streams refused with `REFUSED_STREAM` unprocessed, per `apns-id`.
    pub fn refused_by_id(&self) -> HashMap<String, usize> {
        self.record().refused_by_id.clone()
    }

    /// Streams reset after processing ([`ApnsBehaviour::reset_with`]).
    pub fn resets(&self) -> usize {
        self.record().resets
    }

    /// GOAWAYs sent.
    pub fn goaways(&self) -> usize {
        self.record().goaways
    }

    /// Connections broken by a malformed frame.
    pub fn broken(&self) -> usize {
        self.record().broken
    }

    /// The most streams open at once on one connection.
    pub fn max_open(&self) -> usize {
        self.record().max_open
    }

    /// Serves one connection: TLS, the HTTP/2 handshake, then each stream as its own task.
    async fn serve(self, sim: Sim, stream: Duplex) {
        let behaviour = &self.inner.behaviour;
        let Ok(tls) = self.inner.acceptor.accept(stream).await else {
            self.record().handshake_failures += 1;
            return;
        };
        let breaks = self.clone();
        let io = FrameBreak::new(tls, behaviour.break_after, move || {
            breaks.record().broken += 1;
        });
        let mut builder = h2::server::Builder::new();
        builder.max_concurrent_streams(behaviour.max_concurrent_streams);
        let Ok(mut connection) = builder.handshake::<_, Bytes>(io.compat()).await else {
            self.record().handshake_failures += 1;
            return;
        };
        self.record().connections += 1;
        if behaviour.goaway_on_connect {
            connection.abrupt_shutdown(h2::Reason::NO_ERROR);
            self.record().goaways += 1;
        }
        let open = Arc::new(AtomicUsize::new(0));
        while let Some(Ok((request, mut respond))) = connection.accept().await {
            if behaviour.refuse_all_streams || behaviour.goaway_on_connect {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                let mut record = self.record();
                record.refused += 1;
                *record.refused_by_id.entry(apns_id(&request)).or_default() += 1;
                continue;
            }
            let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
            let max_open = &mut self.record().max_open;
            *max_open = (*max_open).max(now_open);
            let stream = OpenStream(open.clone());
            sim.spawn(self.clone().answer(sim.clone(), request, respond, stream));
        }
    }

    /// Processes one request and answers it.
    async fn answer(
        self,
        sim: Sim,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        _open: OpenStream,
    ) {
        let behaviour = &self.inner.behaviour;
        let id = apns_id(&request);
        let (head, mut body) = request.into_parts();
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else { return };
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        {
            let mut record = self.record();
            *record.requests.entry(id).or_default() += 1;
            record.total_requests += 1;
        }
        if let Some(reason) = behaviour.reset_with {
            respond.send_reset(reason);
            self.record().resets += 1;
            return;
        }
        if !behaviour.latency.is_zero() {
            sim.sleep(behaviour.latency).await;
        }
        let mut response = Response::new(());
        if let Some(apns_id) = head.headers.get("apns-id").cloned() {
            response.headers_mut().insert("apns-id", apns_id);
        }
        if respond.send_response(response, true).is_ok() {
            self.record().answers += 1;
        }
    }
}

/// The request's `apns-id` (empty when it has none).
fn apns_id<B>(request: &Request<B>) -> String {
    let id = request.headers().get("apns-id");
    id.and_then(|id| id.to_str().ok()).unwrap_or("").to_owned()
}

/// Counts a stream as open until dropped.
struct OpenStream(Arc<AtomicUsize>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Listener for ApnsModel {
    fn accept(&self, sim: &Sim, stream: Duplex) {
        sim.spawn(self.clone().serve(sim.clone(), stream));
    }
}
