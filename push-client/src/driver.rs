//! The driver: one background task that owns the protocol core and moves its actions onto
//! the network. The same code runs on every runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use push_proto::engine::{self, Input};
use push_proto::{
    Action, Device, Event, Feedback, Full, Payload, Push, Route, SessionId, apns, fcm,
};
use rustls::ClientConfig;

use crate::error::Error;
use crate::h2route::{HttpEvent, HttpRoute};
use crate::net::{Endpoint, Timeouts, dial_tls, timeout};
use crate::queue::QueueReceiver;
use crate::report::{ClientStats, Report};
use crate::runtime::Runtime;

/// A request from a session to the driver.
pub(crate) enum Command {
    /// A new session (sent before its first device).
    Open {
        key: u64,
        payload: Box<Payload>,
        feedback: Sender<Vec<Feedback>>,
        listening: Arc<AtomicBool>,
    },
    /// One device for a session.
    Push { key: u64, device: Device },
    /// No more devices; `reply` receives the report once every device has its feedback.
    Close {
        key: u64,
        reply: Option<Sender<Report>>,
    },
}

/// Something that happened on a connection task.
pub(crate) enum Io<R: Runtime> {
    ApnsConnected {
        connection: u64,
        writer: WriteHalf<TlsStream<R::Tcp>>,
        stop: Sender<()>,
    },
    ApnsConnectFailed(Error),
    ApnsRead {
        connection: u64,
        bytes: Vec<u8>,
    },
    ApnsClosed {
        connection: u64,
        error: Option<Error>,
    },
    /// What an HTTP provider's connection tasks or credential exchange report.
    Http(Route, HttpEvent),
}

/// The writing half of a gateway connection, and the handle whose drop stops its reader.
type Writer<R> = (WriteHalf<TlsStream<<R as Runtime>::Tcp>>, Sender<()>);

/// The APNs side of the driver: where to connect and the connection in use.
pub(crate) struct ApnsLink<R: Runtime> {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) write_timeout: Duration,
    connection: u64,
    writer: Option<Writer<R>>,
}

impl<R: Runtime> ApnsLink<R> {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        timeouts: Timeouts,
        write_timeout: Duration,
    ) -> Self {
        ApnsLink {
            endpoint,
            tls,
            timeouts,
            write_timeout,
            connection: 0,
            writer: None,
        }
    }
}

/// How the driver reaches each configured provider.
pub(crate) struct Transports<R: Runtime> {
    /// The APNs binary gateway.
    pub(crate) apns: Option<ApnsLink<R>>,
    /// Legacy GCM over HTTP/1.1.
    pub(crate) gcm: Option<HttpRoute<R>>,
    /// APNs over HTTP/2.
    pub(crate) apns_http2: Option<HttpRoute<R>>,
    /// FCM HTTP v1 and its token endpoint.
    pub(crate) fcm: Option<HttpRoute<R>>,
}

struct SessionState {
    id: SessionId,
    feedback: Sender<Vec<Feedback>>,
    listening: Arc<AtomicBool>,
    /// Feedbacks the reader has not made room for yet.
    waiting: VecDeque<Feedback>,
    report: Report,
    started: Instant,
    reply: Option<Sender<Report>>,
    closed: bool,
    core_finished: bool,
}

/// The driver task's state.
pub(crate) struct Driver<R: Runtime> {
    runtime: R,
    push: Push,
    apns: Option<ApnsLink<R>>,
    gcm: Option<HttpRoute<R>>,
    apns_http2: Option<HttpRoute<R>>,
    fcm: Option<HttpRoute<R>>,
    commands: QueueReceiver<Command>,
    /// Commands taken from the queue and not handled yet.
    inbox: VecDeque<Command>,
    io_tx: Sender<Io<R>>,
    io_rx: Receiver<Io<R>>,
    sessions: HashMap<u64, SessionState>,
    by_id: HashMap<SessionId, u64>,
    /// A device the core had no room for; no command is taken until it is placed.
    parked: Option<(u64, Device)>,
    feedback_capacity: usize,
    feedback_waiting: usize,
    apns_out: Vec<u8>,
    late_verdicts: u64,
    stats: Arc<Mutex<ClientStats>>,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        runtime: R,
        push: Push,
        transports: Transports<R>,
        commands: QueueReceiver<Command>,
        feedback_capacity: usize,
        stats: Arc<Mutex<ClientStats>>,
    ) -> Self {
        let (io_tx, io_rx) = async_channel::unbounded();
        Driver {
            runtime,
            push,
            apns: transports.apns,
            gcm: transports.gcm,
            apns_http2: transports.apns_http2,
            fcm: transports.fcm,
            commands,
            inbox: VecDeque::new(),
            io_tx,
            io_rx,
            sessions: HashMap::new(),
            by_id: HashMap::new(),
            parked: None,
            feedback_capacity,
            feedback_waiting: 0,
            apns_out: Vec::new(),
            late_verdicts: 0,
            stats,
        }
    }

    /// Runs until every client handle and session is gone and all work is done.
    pub(crate) async fn run(mut self) {
        log::debug!("push driver started");
        loop {
            self.handle_due_timeout();
            let mut progressed = self.take_io();
            progressed |= self.take_commands();
            self.perform_actions().await;
            self.route_feedback();
            self.publish_stats();
            if self.finished() {
                break;
            }
            if !progressed {
                self.wait().await;
            }
        }
        if let Some(apns) = &mut self.apns {
            apns.writer = None;
        }
        log::debug!("push driver stopped");
    }

    fn accepting(&self) -> bool {
        self.parked.is_none() && self.feedback_waiting < self.feedback_capacity
    }

    fn finished(&self) -> bool {
        self.commands.is_finished()
            && self.inbox.is_empty()
            && self.sessions.is_empty()
            && self.parked.is_none()
            && self.push.is_idle()
    }

    /// Waits for the next input: a connection event, a command, the core's deadline, or
    /// (when a reader is slow) a moment to retry handing over feedback.
    async fn wait(&mut self) {
        let now = self.runtime.now();
        let mut deadline = self.push.poll_timeout();
        if self.feedback_waiting > 0 {
            let retry = now + Duration::from_millis(2);
            deadline = Some(deadline.map_or(retry, |d| d.min(retry)));
        }
        let commands = async {
            if self.accepting() && !self.commands.is_finished() {
                self.commands.ready().await;
                return Some(Wake::Commands);
            }
            std::future::pending().await
        };
        let timer = async {
            match deadline {
                Some(deadline) => self.runtime.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
            Some(Wake::Timer)
        };
        let io = async { self.io_rx.recv().await.ok().map(Wake::Io) };
        let woke = futures_lite::future::or(io, futures_lite::future::or(commands, timer)).await;
        match woke {
            Some(Wake::Io(io)) => self.handle_io(io),
            Some(Wake::Commands | Wake::Timer) | None => {}
        }
    }

    /// Lets the core act on a deadline that has passed (also while busy, so grace periods,
    /// lingering batches and retries are never starved by a stream of commands).
    fn handle_due_timeout(&mut self) {
        let now = self.runtime.now();
        if self
            .push
            .poll_timeout()
            .is_some_and(|deadline| deadline <= now)
        {
            self.push.handle_timeout(now);
        }
    }

    /// Handles every connection event already waiting.
    fn take_io(&mut self) -> bool {
        let mut progressed = false;
        while let Ok(io) = self.io_rx.try_recv() {
            self.handle_io(io);
            progressed = true;
        }
        progressed
    }

    /// Takes commands while the core has room (a bounded number per turn, for fairness).
    fn take_commands(&mut self) -> bool {
        let mut progressed = false;
        let now = self.runtime.now();
        if let Some((key, device)) = self.parked.take() {
            self.place(key, device, now);
            progressed = self.parked.is_none();
        }
        if self.inbox.is_empty() && self.accepting() {
            self.commands.try_drain(&mut self.inbox, 4096);
        }
        while self.accepting() {
            let Some(command) = self.inbox.pop_front() else {
                break;
            };
            self.handle_command(command, now);
            progressed = true;
        }
        progressed
    }

    fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Open {
                key,
                payload,
                feedback,
                listening,
            } => {
                let id = self.push.open_session(&payload);
                self.by_id.insert(id, key);
                self.sessions.insert(
                    key,
                    SessionState {
                        id,
                        feedback,
                        listening,
                        waiting: VecDeque::new(),
                        report: Report::default(),
                        started: self.runtime.now(),
                        reply: None,
                        closed: false,
                        core_finished: false,
                    },
                );
            }
            Command::Push { key, device } => {
                if let Some(session) = self.sessions.get_mut(&key) {
                    session.report.pushed += 1;
                }
                self.place(key, device, now);
            }
            Command::Close { key, reply } => {
                if let Some(session) = self.sessions.get_mut(&key) {
                    session.closed = true;
                    session.reply = reply;
                    let id = session.id;
                    self.push.close_session(id);
                }
            }
        }
    }

    /// Hands a device to the core, or parks it when the core is full.
    fn place(&mut self, key: u64, device: Device, now: Instant) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if let Err(Full(device)) = self.push.push(session.id, device, now) {
            self.parked = Some((key, device));
        }
    }

    /// Performs every action the core asks for.
    async fn perform_actions(&mut self) {
        loop {
            let now = self.runtime.now();
            let Some(action) = self.push.poll_action(now, &mut self.apns_out) else {
                return;
            };
            match action {
                Action::ApnsConnect => self.connect_apns(),
                Action::ApnsClose => {
                    if let Some(apns) = &mut self.apns {
                        apns.writer = None;
                        apns.connection += 1;
                    }
                    self.push.handle_apns_closed(now);
                }
                Action::ApnsWrite => self.write_apns().await,
                Action::Http(route, action) => {
                    let transport = match route {
                        Route::ApnsHttp2 => self.apns_http2.as_mut(),
                        Route::Fcm => self.fcm.as_mut(),
                        Route::Gcm => self.gcm.as_mut(),
                    };
                    let input = transport.and_then(|transport| {
                        transport.perform(&self.runtime, &self.io_tx, action)
                    });
                    if let Some(input) = input {
                        self.push.handle_http(route, input, now);
                    }
                }
            }
        }
    }

    fn connect_apns(&mut self) {
        let Some(apns) = &mut self.apns else {
            return;
        };
        apns.connection += 1;
        let connection = apns.connection;
        let (runtime, io) = (self.runtime.clone(), self.io_tx.clone());
        let (endpoint, tls, timeouts) = (apns.endpoint.clone(), apns.tls.clone(), apns.timeouts);
        self.runtime.spawn(async move {
            match dial_tls(&runtime, &endpoint, tls, timeouts).await {
                Ok(stream) => {
                    log::info!("connected to the APNs gateway {endpoint}");
                    let (reader, writer) = futures_lite::io::split(stream);
                    let (stop, stopped) = async_channel::bounded(1);
                    let connected = Io::ApnsConnected {
                        connection,
                        writer,
                        stop,
                    };
                    if io.send(connected).await.is_ok() {
                        read_apns(reader, stopped, connection, &endpoint, &io).await;
                    }
                }
                Err(error) => {
                    log::warn!("cannot connect to the APNs gateway: {error}");
                    let _ = io.send(Io::ApnsConnectFailed(error)).await;
                }
            }
        });
    }

    async fn write_apns(&mut self) {
        let Some(apns) = &mut self.apns else {
            return;
        };
        let now = self.runtime.now();
        let Some((writer, _)) = &mut apns.writer else {
            // Closed while the bytes were being produced: the core resends them.
            self.apns_out.clear();
            self.push.handle_apns_closed(now);
            return;
        };
        let bytes = &self.apns_out;
        let write = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        let endpoint = apns.endpoint.clone();
        let write = async {
            write.await.map_err(|error| Error::Connect {
                host: endpoint.to_string(),
                reason: format!("write failed: {error}"),
            })
        };
        let result = timeout(
            &self.runtime,
            apns.write_timeout,
            "write",
            &apns.endpoint,
            write,
        )
        .await;
        self.apns_out.clear();
        if let Err(error) = result {
            log::warn!("APNs gateway connection lost: {error}");
            apns.writer = None;
            apns.connection += 1;
            self.push.handle_apns_closed(self.runtime.now());
        }
    }

    fn http_route(&mut self, route: Route) -> Option<&mut HttpRoute<R>> {
        match route {
            Route::ApnsHttp2 => self.apns_http2.as_mut(),
            Route::Fcm => self.fcm.as_mut(),
            Route::Gcm => self.gcm.as_mut(),
        }
    }

    /// Hands what an HTTP provider's tasks observed to the core.
    fn handle_http(&mut self, route: Route, event: HttpEvent, now: Instant) {
        match event {
            HttpEvent::Inputs(inputs) => {
                for input in inputs {
                    if let Input::Closed { conn } = input
                        && let Some(transport) = self.http_route(route)
                    {
                        transport.closed(conn);
                    }
                    self.push.handle_http(route, input, now);
                }
            }
            HttpEvent::DialFailed(conn, error) => {
                if let Some(transport) = self.http_route(route) {
                    transport.closed(conn);
                }
                let fatal = error.is_fatal();
                if fatal {
                    self.client_error(error.clone());
                }
                let reason = error.to_string();
                let input = Input::DialFailed {
                    conn,
                    reason,
                    fatal,
                };
                self.push.handle_http(route, input, now);
            }
            HttpEvent::Credential(Ok(response)) => {
                self.push
                    .handle_http(route, Input::CredentialResponse(response), now);
            }
            HttpEvent::Credential(Err(error)) => {
                log::warn!("{} credential request failed: {error}", route.name());
                if error.is_fatal() {
                    self.client_error(error.clone());
                }
                let input = Input::CredentialFailure(error.to_string());
                self.push.handle_http(route, input, now);
            }
        }
    }

    fn handle_io(&mut self, io: Io<R>) {
        let now = self.runtime.now();
        match io {
            Io::Http(route, event) => self.handle_http(route, event, now),
            Io::ApnsConnected {
                connection,
                writer,
                stop,
            } => {
                let Some(apns) = &mut self.apns else { return };
                if connection == apns.connection {
                    apns.writer = Some((writer, stop));
                    self.push.handle_apns_connected(now);
                }
            }
            Io::ApnsConnectFailed(error) => {
                if error.is_fatal() {
                    self.client_error(error.clone());
                    self.push.handle_apns_fatal_error(now, &error.to_string());
                } else {
                    self.push
                        .handle_apns_connect_failed(now, &error.to_string());
                }
            }
            Io::ApnsRead { connection, bytes } => {
                if self
                    .apns
                    .as_ref()
                    .is_some_and(|a| a.connection == connection)
                {
                    self.push.handle_apns_input(now, &bytes);
                }
            }
            Io::ApnsClosed { connection, error } => {
                let Some(apns) = &mut self.apns else { return };
                if connection != apns.connection {
                    return;
                }
                apns.writer = None;
                apns.connection += 1;
                match error {
                    Some(error) if error.is_fatal() => {
                        self.client_error(error.clone());
                        self.push.handle_apns_closed(now);
                        self.push.handle_apns_fatal_error(now, &error.to_string());
                    }
                    _ => self.push.handle_apns_closed(now),
                }
            }
        }
    }

    /// Records a client-wide error in every open session's report (once per session).
    fn client_error(&mut self, error: Error) {
        for session in self.sessions.values_mut() {
            if !session.report.errors.contains(&error) {
                session.report.errors.push(error.clone());
            }
        }
    }

    /// Hands feedback to the sessions' streams and finishes sessions that are done.
    fn route_feedback(&mut self) {
        while let Some((id, feedback)) = self.push.poll_feedback() {
            let Some(session) = self
                .by_id
                .get(&id)
                .and_then(|key| self.sessions.get_mut(key))
            else {
                continue;
            };
            session.report.count(&feedback);
            if session.listening.load(Ordering::Relaxed) {
                session.waiting.push_back(feedback);
                self.feedback_waiting += 1;
            } else {
                session.report.feedback_not_read += 1;
            }
        }
        while let Some(event) = self.push.poll_event() {
            match event {
                Event::SessionFinished(id) => {
                    let session = self
                        .by_id
                        .get(&id)
                        .and_then(|key| self.sessions.get_mut(key));
                    if let Some(session) = session {
                        session.core_finished = true;
                    }
                }
                Event::Apns(apns::Event::GaveUp { reason }) => {
                    self.client_error(Error::GatewayUnreachable { reason });
                }
                Event::Gcm(engine::Event::ClientError { reason, .. }) => {
                    self.client_error(Error::Unauthorized { detail: reason });
                }
                Event::Gcm(engine::Event::Unreachable { reason }) => {
                    self.client_error(Error::Unreachable {
                        provider: Route::Gcm.name(),
                        reason,
                    });
                }
                Event::ApnsHttp2(engine::Event::ClientError { status, reason }) => {
                    self.client_error(Error::ApnsRefused { status, reason });
                }
                Event::Fcm(engine::Event::ClientError { status, reason }) => {
                    self.client_error(Error::FcmRefused {
                        status,
                        code: reason,
                    });
                }
                Event::ApnsHttp2(engine::Event::Unreachable { reason }) => {
                    self.client_error(Error::Unreachable {
                        provider: Route::ApnsHttp2.name(),
                        reason,
                    });
                }
                Event::Fcm(engine::Event::Unreachable { reason }) => {
                    self.client_error(Error::Unreachable {
                        provider: Route::Fcm.name(),
                        reason,
                    });
                }
                Event::Fcm(engine::Event::Credential(fcm::TokenEvent::RequestFailed {
                    error,
                    retry_at: None,
                })) => {
                    self.client_error(Error::FcmToken {
                        reason: error.to_string(),
                    });
                }
                Event::Apns(apns::Event::WindowOverflow { status, identifier }) => {
                    log::warn!(
                        "APNs answered {status} for notification {identifier} after its grace \
                         period; it was reported delivered (raise the grace period)"
                    );
                    self.late_verdicts += 1;
                }
                other => log::warn!("{other:?}"),
            }
        }
        let mut done = Vec::new();
        let batch = (self.feedback_capacity / crate::client::FEEDBACK_BATCHES).max(1);
        for (key, session) in &mut self.sessions {
            self.feedback_waiting -= hand_over(session, batch);
            if session.core_finished && session.waiting.is_empty() {
                done.push(*key);
            }
        }
        let now = self.runtime.now();
        for key in done {
            if let Some(mut session) = self.sessions.remove(&key) {
                self.by_id.remove(&session.id);
                session.report.elapsed = now.saturating_duration_since(session.started);
                if let Some(reply) = session.reply.take() {
                    let _ = reply.try_send(session.report);
                }
            }
        }
    }

    fn publish_stats(&mut self) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.sessions = self.sessions.len() as u64;
        stats.feedback_waiting = self.feedback_waiting as u64;
        stats.feedback_waiting_peak = stats.feedback_waiting_peak.max(stats.feedback_waiting);
        stats.apns_connections = self.push.apns().map_or(0, |g| g.stats().connections);
        stats.gcm_requests = self.push.gcm().map_or(0, |s| s.stats().requests);
        let fcm = self.push.fcm().map(|s| s.stats()).unwrap_or_default();
        stats.fcm_requests = fcm.requests;
        stats.fcm_token_refreshes = fcm.token_refreshes;
        stats.late_verdicts = self.late_verdicts;
    }
}

/// What ended a wait.
enum Wake<R: Runtime> {
    Io(Io<R>),
    Commands,
    Timer,
}

/// Moves a session's waiting feedback into its stream, in batches of at most `batch`, while
/// there is room; drops it when the stream is gone. Returns how many left the waiting queue.
fn hand_over(session: &mut SessionState, batch: usize) -> usize {
    let mut moved = 0;
    while !session.waiting.is_empty() && !session.feedback.is_full() {
        let take = session.waiting.len().min(batch);
        let feedbacks: Vec<Feedback> = session.waiting.drain(..take).collect();
        match session.feedback.try_send(feedbacks) {
            Ok(()) => moved += take,
            Err(TrySendError::Full(feedbacks)) => {
                for feedback in feedbacks.into_iter().rev() {
                    session.waiting.push_front(feedback);
                }
                break;
            }
            Err(TrySendError::Closed(_)) => {
                moved += take;
                session.report.feedback_not_read += take as u64;
                session.listening.store(false, Ordering::Relaxed);
            }
        }
    }
    moved
}

/// The reading half of a gateway connection: forwards what the gateway says until it closes
/// or the driver lets go of the connection.
async fn read_apns<R: Runtime>(
    mut reader: ReadHalf<TlsStream<R::Tcp>>,
    stopped: Receiver<()>,
    connection: u64,
    endpoint: &Endpoint,
    io: &Sender<Io<R>>,
) {
    let mut buffer = vec![0u8; 1024];
    let error = loop {
        let read = async { Some(reader.read(&mut buffer).await) };
        let stop = async {
            let _ = stopped.recv().await;
            None
        };
        match futures_lite::future::or(read, stop).await {
            None => return,
            Some(Ok(0)) => break None,
            Some(Ok(n)) => {
                let bytes = buffer[..n].to_vec();
                if io.send(Io::ApnsRead { connection, bytes }).await.is_err() {
                    return;
                }
            }
            Some(Err(error)) => break Some(crate::net::tls_error(endpoint, &error)),
        }
    };
    log::info!("the APNs gateway {endpoint} closed the connection");
    let _ = io.send(Io::ApnsClosed { connection, error }).await;
}
