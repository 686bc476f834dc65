//! The driver: one background task that owns the protocol core, feeds it what sessions and
//! connection tasks bring, and performs its actions through the transports. It never blocks
//! on a transport: gateway bytes go to a writer task, HTTP requests to connection tasks, and
//! everything that comes back arrives on one bounded channel it drains. The same code runs on
//! every runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use push_proto::engine::{self, ExchangeFailure, ExchangeId, Input, StreamEnd};
use push_proto::{Action, Device, Full, Push, Route};

use crate::command::{Command, ExchangeResult};
use crate::core_event::{Meaning, meaning};
use crate::error::Error;
use crate::gateway_link::GatewayLink;
use crate::h2route::HttpRoute;
use crate::io::{HttpEvent, IO_CAPACITY, Io};
use crate::queue::QueueReceiver;
use crate::report::ClientStats;
use crate::runtime::Runtime;
use crate::session_table::SessionTable;
use crate::transports::Transports;
use crate::webroutes::WebRoutes;

/// Most commands taken from the queue per turn.
const COMMANDS_PER_TURN: usize = 4096;
/// How soon handing feedback to a slow reader is tried again.
const FEEDBACK_RETRY: Duration = Duration::from_millis(2);

/// The driver task's state.
pub(crate) struct Driver<R: Runtime> {
    runtime: R,
    push: Push,
    gateway: Option<GatewayLink<R>>,
    gcm: Option<HttpRoute<R>>,
    apns_http2: Option<HttpRoute<R>>,
    fcm: Option<HttpRoute<R>>,
    web: Option<WebRoutes<R>>,
    commands: QueueReceiver<Command>,
    /// Commands taken from the queue and not handled yet.
    inbox: VecDeque<Command>,
    io_tx: Sender<Io>,
    io_rx: Receiver<Io>,
    sessions: SessionTable,
    /// Who waits for each APNs exchange's answer.
    exchanges: HashMap<ExchangeId, Sender<ExchangeResult>>,
    /// A device the core had no room for; no command is taken until it is placed.
    parked: Option<(u64, Device)>,
    /// The gateway bytes of the transmit being produced.
    apns_out: Vec<u8>,
    late_verdicts: u64,
    stats: Arc<Mutex<ClientStats>>,
}

impl<R: Runtime> Driver<R> {
    /// A driver for `push` over `transports`, taking sessions' commands from `commands`.
    pub(crate) fn new(
        runtime: R,
        push: Push,
        transports: Transports<R>,
        commands: QueueReceiver<Command>,
        feedback_capacity: usize,
        stats: Arc<Mutex<ClientStats>>,
    ) -> Self {
        let (io_tx, io_rx) = async_channel::bounded(IO_CAPACITY);
        Driver {
            runtime,
            push,
            gateway: transports.gateway,
            gcm: transports.gcm,
            apns_http2: transports.apns_http2,
            fcm: transports.fcm,
            web: transports.web,
            commands,
            inbox: VecDeque::new(),
            io_tx,
            io_rx,
            sessions: SessionTable::new(feedback_capacity),
            exchanges: HashMap::new(),
            parked: None,
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
            self.perform_actions();
            self.route_feedback();
            self.answer_exchanges();
            self.publish_stats();
            if self.finished() {
                break;
            }
            if !progressed {
                self.wait().await;
            }
        }
        if let Some(gateway) = &mut self.gateway {
            gateway.close();
        }
        log::debug!("push driver stopped");
    }

    fn accepting(&self) -> bool {
        self.parked.is_none() && self.sessions.has_room()
    }

    fn finished(&self) -> bool {
        self.commands.is_finished()
            && self.inbox.is_empty()
            && self.sessions.is_empty()
            && self.parked.is_none()
            && self.push.is_idle()
    }

    /// Waits for the next input: a task's report, a command, the core's deadline, or (when a
    /// reader is slow) a moment to retry handing over feedback.
    async fn wait(&mut self) {
        let now = self.runtime.now();
        let mut deadline = self.push.poll_timeout();
        if self.sessions.waiting() > 0 {
            let retry = now + FEEDBACK_RETRY;
            deadline = Some(deadline.map_or(retry, |d| d.min(retry)));
        }
        let commands = async {
            if self.accepting() && !self.commands.is_finished() {
                self.commands.ready().await;
                return None;
            }
            std::future::pending().await
        };
        let timer = async {
            match deadline {
                Some(deadline) => self.runtime.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
            None
        };
        let io = async { self.io_rx.recv().await.ok() };
        let woke = futures_lite::future::or(io, futures_lite::future::or(commands, timer)).await;
        if let Some(io) = woke {
            self.handle_io(io);
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

    /// Handles the reports already waiting (at most a channel's worth per turn).
    fn take_io(&mut self) -> bool {
        let mut progressed = false;
        for _ in 0..IO_CAPACITY {
            let Ok(io) = self.io_rx.try_recv() else {
                break;
            };
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
            self.commands.try_drain(&mut self.inbox, COMMANDS_PER_TURN);
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
                self.sessions.open(key, id, feedback, listening);
            }
            Command::Push { key, device } => {
                if self.sessions.pushed(key, now).is_some() {
                    self.place(key, device, now);
                }
            }
            Command::Deadline { key, at } => {
                if let Some(id) = self.sessions.id(key) {
                    self.push.set_session_deadline(id, at);
                }
            }
            Command::Close { key, reply } => {
                if let Some(id) = self.sessions.close(key, reply) {
                    self.push.close_session(id);
                }
            }
            Command::ApnsGrant { reply } => {
                let _ = reply.try_send(self.push.apns_grant(now));
            }
            Command::ApnsRefused { generation } => self.push.apns_credential_refused(generation),
            Command::ApnsExchange { request, reply } => match self.push.apns_exchange(*request) {
                Some(id) => {
                    self.exchanges.insert(id, reply);
                }
                None => {
                    let none = "no APNs HTTP/2 provider is configured".to_owned();
                    let _ = reply.try_send(Err(ExchangeFailure::Unavailable(none)));
                }
            },
        }
    }

    /// Hands each finished APNs exchange's answer to whoever waits for it (gone: dropped).
    fn answer_exchanges(&mut self) {
        while let Some((id, result)) = self.push.poll_apns_exchanged() {
            if let Some(reply) = self.exchanges.remove(&id) {
                let _ = reply.try_send(result);
            }
        }
    }

    /// Hands a device to the core, or parks it when the core is full.
    fn place(&mut self, key: u64, device: Device, now: Instant) {
        let Some(id) = self.sessions.id(key) else {
            return;
        };
        if let Err(Full(device)) = self.push.push(id, device, now) {
            self.parked = Some((key, device));
        }
    }

    /// Performs every action the core asks for; none of them waits.
    fn perform_actions(&mut self) {
        loop {
            let now = self.runtime.now();
            let Some(action) = self.push.poll_action(now, &mut self.apns_out) else {
                return;
            };
            match action {
                Action::ApnsConnect => {
                    if let Some(gateway) = &mut self.gateway {
                        gateway.connect(&self.io_tx);
                    }
                }
                Action::ApnsClose => {
                    if let Some(gateway) = &mut self.gateway {
                        gateway.close();
                    }
                    self.push.handle_apns_closed(now);
                }
                Action::ApnsWrite => {
                    let bytes = std::mem::take(&mut self.apns_out);
                    let taken = self
                        .gateway
                        .as_mut()
                        .is_some_and(|gateway| gateway.write(bytes));
                    if !taken {
                        // The connection failed while the bytes were produced: the core
                        // decides what becomes of them.
                        if let Some(gateway) = &mut self.gateway {
                            gateway.close();
                        }
                        self.push.handle_apns_closed(now);
                    }
                }
                Action::Http(route, action) => {
                    let transport = match route {
                        Route::ApnsHttp2 => self.apns_http2.as_mut(),
                        Route::Fcm => self.fcm.as_mut(),
                        Route::Gcm => self.gcm.as_mut(),
                        Route::WebPush(_) => self
                            .web
                            .as_mut()
                            .and_then(|web| web.route(route, &self.push)),
                    };
                    let input = match transport {
                        Some(transport) => transport.perform(&self.runtime, &self.io_tx, action),
                        None => unperformed(action),
                    };
                    if let Some(input) = input {
                        self.push.handle_http(route, input, now);
                    }
                }
                Action::HttpRouteClosed(route) => {
                    if let Some(web) = &mut self.web {
                        web.close(route);
                    }
                }
            }
        }
    }

    fn http_route(&mut self, route: Route) -> Option<&mut HttpRoute<R>> {
        match route {
            Route::ApnsHttp2 => self.apns_http2.as_mut(),
            Route::Fcm => self.fcm.as_mut(),
            Route::Gcm => self.gcm.as_mut(),
            Route::WebPush(_) => self.web.as_mut()?.existing(route),
        }
    }

    fn handle_io(&mut self, io: Io) {
        let now = self.runtime.now();
        let error = match io {
            Io::Http(route, event) => self.handle_http(route, event, now),
            Io::Gateway { connection, report } => self
                .gateway
                .as_mut()
                .and_then(|gateway| gateway.handle(&mut self.push, connection, report, now)),
        };
        if let Some(error) = error {
            self.sessions.client_error(&error);
        }
    }

    /// Hands what an HTTP provider's tasks observed to the core. Returns the error every
    /// session's report must name, if any.
    fn handle_http(&mut self, route: Route, event: HttpEvent, now: Instant) -> Option<Error> {
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
                None
            }
            HttpEvent::DialFailed(conn, error) => {
                if let Some(transport) = self.http_route(route) {
                    transport.closed(conn);
                }
                let fatal = error.is_fatal();
                let input = Input::DialFailed {
                    conn,
                    reason: error.to_string(),
                    fatal,
                };
                self.push.handle_http(route, input, now);
                fatal.then_some(error)
            }
            HttpEvent::Credential(Ok(response)) => {
                self.push
                    .handle_http(route, Input::CredentialResponse(response), now);
                None
            }
            HttpEvent::Credential(Err(error)) => {
                log::warn!("{} credential request failed: {error}", route.name());
                let input = Input::CredentialFailure(error.to_string());
                self.push.handle_http(route, input, now);
                error.is_fatal().then_some(error)
            }
        }
    }

    /// Hands feedback to the sessions' streams, acts on the core's events, and finishes
    /// sessions that are done.
    fn route_feedback(&mut self) {
        while let Some((id, feedback)) = self.push.poll_feedback() {
            self.sessions.feedback(id, feedback);
        }
        while let Some(event) = self.push.poll_event() {
            match meaning(event) {
                Meaning::SessionFinished(id) => self.sessions.core_finished(id),
                Meaning::ClientError(error) => self.sessions.client_error(&error),
                Meaning::LateVerdict => self.late_verdicts += 1,
                Meaning::Logged => {}
            }
        }
        self.sessions.hand_over(self.runtime.now());
    }

    fn publish_stats(&mut self) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.sessions = self.sessions.len() as u64;
        stats.feedback_waiting = self.sessions.waiting() as u64;
        stats.feedback_waiting_peak = stats.feedback_waiting_peak.max(stats.feedback_waiting);
        stats.apns_connections = self.push.apns().map_or(0, |g| g.stats().connections);
        stats.gcm_requests = self.push.gcm().map_or(0, |s| s.stats().requests);
        let fcm = self.push.fcm().map(|s| s.stats()).unwrap_or_default();
        stats.fcm_requests = fcm.requests;
        stats.fcm_token_refreshes = fcm.token_refreshes;
        stats.late_verdicts = self.late_verdicts;
        stats.apns = self.push.apns().map(|g| g.stats());
        stats.apns_http2 = self.push.apns_http2().map(|s| s.stats());
        stats.gcm = self.push.gcm().map(|s| s.stats());
        stats.fcm = self.push.fcm().map(|s| s.stats());
        stats.web_push = self.push.webpush_stats();
    }
}

/// What the core must learn of an action no transport could take (a route without one): a
/// dial failed for good, a request was not sent.
fn unperformed(action: engine::Action) -> Option<Input> {
    match action {
        engine::Action::Dial(conn) => Some(Input::DialFailed {
            conn,
            reason: "no transport for this route".into(),
            fatal: true,
        }),
        engine::Action::Send { id, .. } => Some(Input::StreamEnd {
            id,
            end: StreamEnd::NotSent,
        }),
        engine::Action::CredentialRequest(_) => Some(Input::CredentialFailure(
            "no credential endpoint for this route".into(),
        )),
        engine::Action::Close(_) => None,
    }
}
