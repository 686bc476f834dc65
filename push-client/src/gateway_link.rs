//! The APNs binary gateway's transport: one TLS connection at a time, read by one task and
//! written by another, so a gateway that stops reading blocks nothing but its own writer.
//! It decides nothing: when to connect, what to write and what the bytes read mean is the
//! core's; the writer's reports tell the core when bytes are really written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use push_proto::Push;
use rustls::ClientConfig;

use crate::error::Error;
use crate::io::{GatewayReport, Io};
use crate::net::{Endpoint, Timeouts, dial_tls, timeout};
use crate::runtime::Runtime;

/// Bytes asked for per read: the gateway only ever sends a 6-byte error response.
const READ_CHUNK: usize = 1024;

/// The driver's handles on the current connection's tasks.
struct Connection {
    /// Transmits for the writer task.
    transmits: Sender<Vec<u8>>,
    /// Dropping it stops both tasks.
    _stop: Sender<()>,
}

/// Where the gateway is, how to reach it, and the connection in use.
pub(crate) struct GatewayLink<R: Runtime> {
    endpoint: Endpoint,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    write_timeout: Duration,
    /// Transmits the core may have outstanding: the writer's channel never fills.
    max_unwritten: usize,
    /// Numbers connections, so reports of one already let go are ignored.
    number: u64,
    connection: Option<Connection>,
    runtime: R,
}

impl<R: Runtime> GatewayLink<R> {
    /// The link to `endpoint`; `max_unwritten` is the core's
    /// [`max_unwritten_transmits`](push_proto::apns::GatewayConfig::max_unwritten_transmits).
    pub(crate) fn new(
        runtime: R,
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
        write_timeout: Duration,
        max_unwritten: usize,
    ) -> Self {
        GatewayLink {
            endpoint,
            tls,
            timeouts,
            write_timeout,
            max_unwritten: max_unwritten.max(1),
            number: 0,
            connection: None,
            runtime,
        }
    }

    /// Dials a new connection (the core's `ApnsConnect`); its tasks report as `Io::Gateway`.
    pub(crate) fn connect(&mut self, io: &Sender<Io>) {
        self.number += 1;
        let (transmits, pending) = async_channel::bounded(self.max_unwritten);
        let (stop, stopped) = async_channel::bounded(1);
        self.connection = Some(Connection {
            transmits,
            _stop: stop,
        });
        let tasks = Tasks {
            runtime: self.runtime.clone(),
            endpoint: self.endpoint.clone(),
            connection: self.number,
            write_timeout: self.write_timeout,
            stopped,
            io: io.clone(),
        };
        let (tls, timeouts) = (self.tls.clone(), self.timeouts);
        self.runtime.spawn(tasks.dial(tls, timeouts, pending));
    }

    /// Lets go of the connection: its tasks stop and it closes.
    pub(crate) fn close(&mut self) {
        self.connection = None;
        self.number += 1;
    }

    /// Hands `bytes` to the writer task. False when there is no writer to take them (the
    /// connection failed meanwhile): the caller reports the connection closed.
    pub(crate) fn write(&mut self, bytes: Vec<u8>) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|connection| connection.transmits.try_send(bytes).is_ok())
    }

    /// Passes a report of connection `number` to the core, unless the connection was let go
    /// since. Returns the error every session's report must name, if any.
    pub(crate) fn handle(
        &mut self,
        push: &mut Push,
        number: u64,
        report: GatewayReport,
        now: Instant,
    ) -> Option<Error> {
        if number != self.number {
            return None;
        }
        match report {
            GatewayReport::Connected => push.handle_apns_connected(now),
            GatewayReport::Read(bytes) => push.handle_apns_input(now, &bytes),
            GatewayReport::Written => push.handle_apns_written(now),
            GatewayReport::ConnectFailed(error) => {
                self.close();
                if error.is_fatal() {
                    push.handle_apns_fatal_error(now, &error.to_string());
                    return Some(error);
                }
                push.handle_apns_connect_failed(now, &error.to_string());
            }
            GatewayReport::Closed(error) => {
                self.close();
                push.handle_apns_closed(now);
                if let Some(error) = error.filter(Error::is_fatal) {
                    push.handle_apns_fatal_error(now, &error.to_string());
                    return Some(error);
                }
            }
        }
        None
    }
}

/// What a connection's tasks share.
#[derive(Clone)]
struct Tasks<R: Runtime> {
    runtime: R,
    endpoint: Endpoint,
    connection: u64,
    write_timeout: Duration,
    /// Closes when the driver lets go of the connection.
    stopped: Receiver<()>,
    io: Sender<Io>,
}

impl<R: Runtime> Tasks<R> {
    async fn report(&self, report: GatewayReport) -> bool {
        let connection = self.connection;
        self.io
            .send(Io::Gateway { connection, report })
            .await
            .is_ok()
    }

    /// Completes when the driver lets go of the connection.
    async fn stop(&self) {
        let _ = self.stopped.recv().await;
    }

    /// Dials, starts the writer task, then reads until the connection ends.
    async fn dial(self, tls: Arc<ClientConfig>, timeouts: Timeouts, pending: Receiver<Vec<u8>>) {
        let stream = match dial_tls(&self.runtime, &self.endpoint, tls, timeouts).await {
            Ok(stream) => stream,
            Err(error) => {
                log::warn!("cannot connect to the APNs gateway: {error}");
                self.report(GatewayReport::ConnectFailed(error)).await;
                return;
            }
        };
        log::info!("connected to the APNs gateway {}", self.endpoint);
        let (reader, writer) = futures_lite::io::split(stream);
        self.runtime.spawn(self.clone().write(writer, pending));
        if self.report(GatewayReport::Connected).await {
            self.read(reader).await;
        }
    }

    /// The reading half: forwards what the gateway says until it closes or the driver lets
    /// go of the connection.
    async fn read(self, mut reader: ReadHalf<TlsStream<R::Tcp>>) {
        let mut buffer = vec![0u8; READ_CHUNK];
        let error = loop {
            let read = async { Some(reader.read(&mut buffer).await) };
            let stop = async {
                self.stop().await;
                None
            };
            match futures_lite::future::or(read, stop).await {
                None => return,
                Some(Ok(0)) => break None,
                Some(Ok(n)) => {
                    if !self.report(GatewayReport::Read(buffer[..n].to_vec())).await {
                        return;
                    }
                }
                Some(Err(error)) => break Some(crate::net::tls_error(&self.endpoint, &error)),
            }
        };
        log::info!("the APNs gateway {} closed the connection", self.endpoint);
        self.report(GatewayReport::Closed(error)).await;
    }

    /// The writing half: writes each transmit in order and reports it written, until the
    /// driver lets go of the connection or a write fails or times out.
    async fn write(self, mut writer: WriteHalf<TlsStream<R::Tcp>>, pending: Receiver<Vec<u8>>) {
        loop {
            let next = async { pending.recv().await.ok() };
            let stop = async {
                self.stop().await;
                None
            };
            let Some(bytes) = futures_lite::future::or(next, stop).await else {
                return;
            };
            let write = async {
                let written = async {
                    writer.write_all(&bytes).await?;
                    writer.flush().await
                };
                written.await.map_err(|error| Error::Connect {
                    host: self.endpoint.to_string(),
                    reason: format!("write failed: {error}"),
                })
            };
            let write = timeout(
                &self.runtime,
                self.write_timeout,
                "write",
                &self.endpoint,
                write,
            );
            let stop = async {
                self.stop().await;
                None
            };
            let report = match futures_lite::future::or(async { Some(write.await) }, stop).await {
                None => return,
                Some(Ok(())) => GatewayReport::Written,
                Some(Err(error)) => {
                    log::warn!("APNs gateway connection lost: {error}");
                    GatewayReport::Closed(Some(error))
                }
            };
            let closed = matches!(report, GatewayReport::Closed(_));
            if !self.report(report).await || closed {
                return;
            }
        }
    }
}
