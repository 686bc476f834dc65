//! [`Push`]: one state machine for all providers. It takes devices, routes each to the
//! provider of its platform, and gives the driver one loop to run.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::apns::{self, Gateway, GatewayConfig, http2};
use crate::device::{ApnsToken, Device, GcmToken, Platform, TokenError};
use crate::engine::{self, Credential, Protocol};
use crate::fcm;
use crate::feedback::{DeviceError, Feedback, Receipt};
use crate::gcm::{self, MessageOptions};
use crate::outcome::{Full, Outcome};
use crate::payload::Payload;
use crate::webpush::{self, Origin, Subscription, Vapid};
use web::{Web, WebAction};

mod web;

pub use web::WebPushSettings;

/// Names a session opened with [`Push::open_session`]: one payload sent to many devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

/// What the providers carry to identify a notification: its session and device.
type Tag = (SessionId, Device);

/// An HTTP provider driven by the [`engine`]: where [`Action::Http`] goes and whose
/// [`engine::Input`]s [`Push::handle_http`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The APNs HTTP/2 provider API.
    ApnsHttp2,
    /// FCM HTTP v1 (its credential requests go to the service account's token endpoint).
    Fcm,
    /// Legacy GCM's HTTP JSON API: batches of tokens over HTTP/1.1.
    Gcm,
    /// One Web Push origin: the number is new for each origin's sender (never reused while
    /// the dispatcher lives), so that what a dropped route's connections still report is
    /// ignored. [`Push::webpush_origin`] tells its origin.
    WebPush(u64),
}

impl Route {
    /// The routes of one provider each, in the order [`Push::poll_action`] serves them (the
    /// Web Push routes come and go, after them).
    const FIXED: [Route; 3] = [Route::ApnsHttp2, Route::Fcm, Route::Gcm];

    /// The provider's name in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Route::ApnsHttp2 => "APNs",
            Route::Fcm => "FCM",
            Route::Gcm => "GCM",
            Route::WebPush(_) => "Web Push",
        }
    }
}

/// Something the driver must do.
// Boxing the HTTP variant would cost an allocation per request; actions are moved, not stored.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Open the APNs gateway connection, then call [`Push::handle_apns_connected`] or
    /// [`Push::handle_apns_connect_failed`].
    ApnsConnect,
    /// Close the APNs gateway connection, then call [`Push::handle_apns_closed`].
    ApnsClose,
    /// Bytes were appended to the transmit buffer: write them all to the gateway connection,
    /// after the bytes of earlier writes, then call [`Push::handle_apns_written`]. At most
    /// [`GatewayConfig::max_unwritten_transmits`] writes wait to be reported at once; the
    /// notifications' grace period counts from the report.
    ApnsWrite,
    /// Something for an HTTP provider's connections: perform the [`engine::Action`], then
    /// report what happens with [`Push::handle_http`] and the same route.
    Http(Route, engine::Action),
    /// A Web Push route was dropped (its origin had no work for a while): close its
    /// connections and forget it; later inputs for it are ignored.
    HttpRouteClosed(Route),
}

/// Something worth knowing that concerns more than one device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A closed session has a feedback for every device pushed into it.
    SessionFinished(SessionId),
    /// A notable APNs gateway event (overflow, protocol violation, gave up connecting).
    Apns(apns::Event),
    /// A notable GCM event (e.g. the API key was refused: a client error with status 401).
    Gcm(gcm::Event),
    /// A notable APNs HTTP/2 event (refused credentials, a new provider token, ...).
    ApnsHttp2(http2::Event),
    /// A notable FCM event (access tokens, refused credentials, ...).
    Fcm(fcm::Event),
    /// A notable Web Push event of one origin (a refused VAPID key, an unreachable push
    /// service, a new VAPID token, ...).
    WebPush(Origin, webpush::Event),
}

#[derive(Debug)]
struct Session {
    /// The APNs JSON, or why this payload cannot go to APNs.
    apns: Result<Bytes, DeviceError>,
    apns_expiry: u32,
    apns_priority: u8,
    /// The APNs HTTP/2 message, when that provider is configured.
    apns_http2: Option<Result<http2::Message, DeviceError>>,
    /// The GCM message, when that provider is configured.
    gcm: Option<Result<gcm::Encoded, DeviceError>>,
    /// The FCM message, when that provider is configured.
    fcm: Option<Result<fcm::Message, DeviceError>>,
    /// The Web Push message, when that provider is configured.
    webpush: Option<Result<webpush::Message, DeviceError>>,
    outstanding: u64,
    closed: bool,
    /// When what has not ended ends `unavailable` (see [`Push::set_session_deadline`]).
    deadline: Option<Instant>,
    /// The deadline passed: devices pushed from now on fail at once.
    expired: bool,
}

/// The dispatcher: holds the configured providers, routes devices by platform, and merges
/// their output into one [`Action`] stream, one feedback stream and one deadline.
///
/// Every device pushed ends in exactly one [`Feedback`], including devices whose platform has
/// no provider ([`DeviceError::NoProvider`]), whose token is malformed, or whose payload
/// does not fit the platform.
///
/// # Driving it
/// After any input (`push`, `close_session`, `handle_*`), call [`poll_action`](Push::poll_action)
/// until it returns `None`, then drain [`poll_feedback`](Push::poll_feedback) and
/// [`poll_event`](Push::poll_event), then wait for I/O or the deadline
/// [`poll_timeout`](Push::poll_timeout) and call [`handle_timeout`](Push::handle_timeout).
#[derive(Debug)]
pub struct Push {
    apns: Option<Gateway<Tag>>,
    apns_http2: Option<http2::Sender<Tag>>,
    gcm: Option<(gcm::Sender<Tag>, MessageOptions)>,
    fcm: Option<(fcm::Sender<Tag>, fcm::Options)>,
    web: Option<Web>,
    sessions: HashMap<SessionId, Session>,
    next_session: u64,
    feedback: VecDeque<(SessionId, Feedback)>,
    events: VecDeque<Event>,
}

impl Default for Push {
    fn default() -> Self {
        Push::new()
    }
}

impl Push {
    /// A dispatcher with no providers: add them with [`with_apns`](Push::with_apns),
    /// [`with_apns_http2`](Push::with_apns_http2), [`with_gcm`](Push::with_gcm) and
    /// [`with_fcm`](Push::with_fcm).
    pub fn new() -> Self {
        Push {
            apns: None,
            apns_http2: None,
            gcm: None,
            fcm: None,
            web: None,
            sessions: HashMap::new(),
            next_session: 0,
            feedback: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends iOS devices through the APNs binary gateway.
    pub fn with_apns(mut self, config: GatewayConfig) -> Self {
        self.apns = Some(Gateway::new(config));
        self
    }

    /// Sends iOS devices through the APNs HTTP/2 provider API (it takes precedence over the
    /// binary gateway when both are configured).
    pub fn with_apns_http2(
        mut self,
        config: http2::Config,
        auth: http2::Auth,
    ) -> Result<Self, http2::ConfigError> {
        self.apns_http2 = Some(http2::sender(config, auth)?);
        Ok(self)
    }

    /// Sends Android devices through GCM.
    pub fn with_gcm(
        mut self,
        config: gcm::Config,
        options: MessageOptions,
    ) -> Result<Self, gcm::ConfigError> {
        self.gcm = Some((gcm::sender(config)?, options));
        Ok(self)
    }

    /// Sends Android devices through FCM HTTP v1 (it takes precedence over legacy GCM when
    /// both are configured), with `options` for every session's message.
    pub fn with_fcm(
        mut self,
        config: fcm::Config,
        auth: fcm::OAuth,
        options: fcm::Options,
    ) -> Result<Self, fcm::ConfigError> {
        self.fcm = Some((fcm::sender(config, auth)?, options));
        Ok(self)
    }

    /// Sends browsers ([`Platform::Web`]) through the push service of each subscription:
    /// one engine sender per origin (see [`WebPushSettings`]), each signing VAPID tokens with
    /// `vapid` for its origin; `(now, unix_now)` is one reading of the core's clock and the
    /// wall clock (UNIX seconds), for the tokens' `exp`.
    pub fn with_webpush(
        mut self,
        settings: WebPushSettings,
        vapid: Vapid,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, engine::ConfigError> {
        self.web = Some(Web::new(settings, vapid, now, unix_now)?);
        Ok(self)
    }

    /// The origin of a Web Push route, while it has a sender (`None` for other routes).
    pub fn webpush_origin(&self, route: Route) -> Option<&Origin> {
        match route {
            Route::WebPush(n) => self.web.as_ref()?.origin(n),
            _ => None,
        }
    }

    /// The Web Push origins with a sender now, in the order they were made.
    pub fn webpush_origins(&self) -> Vec<&Origin> {
        self.web.iter().flat_map(Web::origins).collect()
    }

    /// The engine counters of Web Push, when configured: the sum over every origin's sender,
    /// those already dropped included, so no count ever goes backwards. `peak_in_flight` is
    /// the highest of any one origin's; `in_flight` is over the origins with a sender now.
    pub fn webpush_stats(&self) -> Option<engine::Stats> {
        self.web.as_ref().map(Web::stats)
    }

    /// The APNs gateway state machine, when configured (for stats and configuration).
    pub fn apns(&self) -> Option<&Gateway<Tag>> {
        self.apns.as_ref()
    }

    /// The APNs HTTP/2 sender, when configured (for stats and configuration).
    pub fn apns_http2(&self) -> Option<&http2::Sender<Tag>> {
        self.apns_http2.as_ref()
    }

    /// Queues `request` on the APNs HTTP/2 connections, authorized by their credential (an
    /// APNs broadcast, one Live Activity push: see [`engine::Sender::exchange`]); `None`
    /// without an APNs HTTP/2 sender. Its result comes from
    /// [`poll_apns_exchanged`](Push::poll_apns_exchanged).
    pub fn apns_exchange(&mut self, request: http::Request<Bytes>) -> Option<engine::ExchangeId> {
        Some(self.apns_http2.as_mut()?.exchange(request))
    }

    /// The APNs HTTP/2 credential (the provider token the connections use) for a request
    /// sent elsewhere (channel management); `None` without an APNs HTTP/2 sender. See
    /// [`engine::Sender::grant`].
    pub fn apns_grant(&mut self, now: Instant) -> Option<engine::Grant> {
        Some(self.apns_http2.as_mut()?.grant(now))
    }

    /// APNs refused credential `generation` of an [`apns_grant`](Push::apns_grant).
    pub fn apns_credential_refused(&mut self, generation: u64) {
        if let Some(sender) = &mut self.apns_http2 {
            sender.credential_refused(generation);
        }
    }

    /// The next result of an [`apns_exchange`](Push::apns_exchange).
    pub fn poll_apns_exchanged(&mut self) -> Option<engine::Exchanged> {
        self.apns_http2.as_mut()?.poll_exchanged()
    }

    /// The GCM sender, when configured (for stats and configuration).
    pub fn gcm(&self) -> Option<&gcm::Sender<Tag>> {
        self.gcm.as_ref().map(|(sender, _)| sender)
    }

    /// The FCM sender, when configured (for stats and configuration).
    pub fn fcm(&self) -> Option<&fcm::Sender<Tag>> {
        self.fcm.as_ref().map(|(sender, _)| sender)
    }

    /// Starts a session: `payload` is encoded once per provider here, and every device pushed
    /// into the session gets it.
    pub fn open_session(&mut self, payload: &Payload) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let session = Session {
            apns: payload.to_apns_json().map(Bytes::from),
            apns_expiry: payload.expiry.unwrap_or(0),
            apns_priority: payload.apns_priority(),
            apns_http2: self.apns_http2.as_ref().map(|_| {
                let notification = http2::Notification::from_payload(payload);
                http2::Message::new(&notification, &http2::Options::from_payload(payload))
            }),
            gcm: self.gcm.as_ref().map(|(_, options)| {
                gcm::Message::new(payload, options).and_then(|message| message.encode())
            }),
            fcm: self
                .fcm
                .as_ref()
                .map(|(_, options)| fcm::Message::new(payload, options)),
            webpush: self
                .web
                .as_ref()
                .map(|web| webpush::Message::new(payload, web.options())),
            outstanding: 0,
            closed: false,
            deadline: None,
            expired: false,
        };
        self.sessions.insert(id, session);
        id
    }

    /// Sets the session's deadline: at `deadline` (as [`handle_timeout`](Push::handle_timeout)
    /// sees it), every device of the session without a feedback yet ends
    /// [`DeviceError::Unavailable`] with the reason (queued, waiting for a retry, or in flight
    /// to an HTTP provider, whose late answer is then ignored), and devices pushed later fail
    /// at once. On the APNs binary gateway the ones not written yet end the same way; the
    /// ones written end as usual, within the grace period of their write (see
    /// [`Gateway::expire`]).
    pub fn set_session_deadline(&mut self, session_id: SessionId, deadline: Instant) {
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.deadline = Some(deadline);
        }
    }

    /// Ends what has not ended of every session whose deadline passed at `now`.
    fn expire_sessions(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .sessions
            .iter_mut()
            .filter(|(_, s)| !s.expired && s.deadline.is_some_and(|at| at <= now))
            .map(|(id, session)| {
                session.expired = true;
                *id
            })
            .collect();
        for id in due {
            for route in Route::FIXED {
                if let Some(sender) = self.http(route) {
                    sender.expire(id, DEADLINE_PASSED, now);
                }
            }
            if let Some(gateway) = &mut self.apns {
                gateway.expire(|(session, _)| *session == id, DEADLINE_PASSED);
            }
            let waiting = self
                .web
                .as_mut()
                .map(|web| web.expire(id, DEADLINE_PASSED, now))
                .unwrap_or_default();
            for tag in waiting {
                let error = DeviceError::Unavailable {
                    attempts: 0,
                    last_error: format!("{DEADLINE_PASSED} before it was sent"),
                };
                self.finish_device(Outcome::failed(tag, error));
            }
        }
    }

    /// Sends the session's notification to `device`. Hands the device back when its
    /// provider's queue is full: drive the dispatcher and offer it again. A device of a
    /// closed or unknown session fails with [`DeviceError::Rejected`].
    pub fn push(
        &mut self,
        session_id: SessionId,
        device: Device,
        now: Instant,
    ) -> Result<(), Full<Device>> {
        let Some(session) = self.sessions.get_mut(&session_id).filter(|s| !s.closed) else {
            let error = DeviceError::Rejected {
                provider: "push",
                code: "the session is closed".into(),
            };
            self.feedback
                .push_back((session_id, Feedback::failed(device, error)));
            return Ok(());
        };
        if session.expired || session.deadline.is_some_and(|at| at <= now) {
            let error = DeviceError::Unavailable {
                attempts: 0,
                last_error: format!("{DEADLINE_PASSED} before it was sent"),
            };
            session.outstanding += 1;
            self.finish_device(Outcome::failed((session_id, device), error));
            return Ok(());
        }
        let routed = match device.platform {
            Platform::Ios if self.apns_http2.is_some() => route_http(
                self.apns_http2.as_mut(),
                session.apns_http2.as_ref(),
                ApnsToken::parse,
                (session_id, device),
                now,
            ),
            Platform::Ios => route_apns(&mut self.apns, session, session_id, device),
            Platform::Android if self.fcm.is_some() => route_http(
                self.fcm.as_mut().map(|(sender, _)| sender),
                session.fcm.as_ref(),
                GcmToken::parse,
                (session_id, device),
                now,
            ),
            Platform::Android => route_http(
                self.gcm.as_mut().map(|(sender, _)| sender),
                session.gcm.as_ref(),
                GcmToken::parse,
                (session_id, device),
                now,
            ),
            Platform::Web => route_web(
                self.web.as_mut(),
                session.webpush.as_ref(),
                (session_id, device),
                now,
            ),
        };
        match routed {
            Ok(()) => {
                session.outstanding += 1;
                Ok(())
            }
            Err(Routed::Full(device)) => Err(Full(device)),
            Err(Routed::Failed(device, error)) => {
                session.outstanding += 1;
                self.finish_device(Outcome::failed((session_id, device), error));
                Ok(())
            }
        }
    }

    /// No more devices for this session. Partial GCM batches go out now; once every device
    /// has its feedback, [`Event::SessionFinished`] follows.
    pub fn close_session(&mut self, session_id: SessionId) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        session.closed = true;
        for route in Route::FIXED {
            if let Some(sender) = self.http(route) {
                sender.flush();
            }
        }
        if let Some(web) = &mut self.web {
            web.flush();
        }
        self.finish_session_if_done(session_id);
    }

    /// Devices pushed into the session whose feedback has not been produced yet.
    pub fn outstanding(&self, session_id: SessionId) -> u64 {
        self.sessions.get(&session_id).map_or(0, |s| s.outstanding)
    }

    /// True when no provider has work left.
    pub fn is_idle(&self) -> bool {
        self.apns.as_ref().is_none_or(Gateway::is_idle)
            && Route::FIXED
                .into_iter()
                .all(|route| self.http_ref(route).is_none_or(|s| s.is_idle()))
            && self.web.as_ref().is_none_or(Web::is_idle)
    }

    /// The sender of a fixed `route`, when configured.
    fn http(&mut self, route: Route) -> Option<&mut dyn HttpSender> {
        match route {
            Route::ApnsHttp2 => self.apns_http2.as_mut().map(|s| s as &mut dyn HttpSender),
            Route::Fcm => self.fcm.as_mut().map(|(s, _)| s as &mut dyn HttpSender),
            Route::Gcm => self.gcm.as_mut().map(|(s, _)| s as &mut dyn HttpSender),
            Route::WebPush(_) => None,
        }
    }

    /// The sender of a fixed `route`, when configured, to look at.
    fn http_ref(&self, route: Route) -> Option<&dyn HttpSender> {
        match route {
            Route::ApnsHttp2 => self.apns_http2.as_ref().map(|s| s as &dyn HttpSender),
            Route::Fcm => self.fcm.as_ref().map(|(s, _)| s as &dyn HttpSender),
            Route::Gcm => self.gcm.as_ref().map(|(s, _)| s as &dyn HttpSender),
            Route::WebPush(_) => None,
        }
    }

    /// The APNs gateway connection is open.
    pub fn handle_apns_connected(&mut self, now: Instant) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_connected(now);
        }
    }

    /// Opening the APNs gateway connection failed.
    pub fn handle_apns_connect_failed(&mut self, now: Instant, reason: &str) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_connect_failed(now, reason);
        }
    }

    /// Connecting to the APNs gateway cannot succeed (see
    /// [`Gateway::handle_fatal_error`]): its queued notifications fail at once.
    pub fn handle_apns_fatal_error(&mut self, now: Instant, reason: &str) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_fatal_error(now, reason);
        }
    }

    /// The bytes of the oldest [`Action::ApnsWrite`] not reported yet are written to the
    /// current gateway connection (never report a write of a connection already reported
    /// closed).
    pub fn handle_apns_written(&mut self, now: Instant) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_written(now);
        }
    }

    /// Bytes read from the APNs gateway connection.
    pub fn handle_apns_input(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_input(now, bytes);
        }
    }

    /// The APNs gateway connection ended.
    pub fn handle_apns_closed(&mut self, now: Instant) {
        if let Some(gateway) = &mut self.apns {
            gateway.handle_closed(now);
        }
    }

    /// What happened to an HTTP provider's connection, stream or credential request.
    pub fn handle_http(&mut self, route: Route, input: engine::Input, now: Instant) {
        if let (Route::WebPush(n), Some(web)) = (route, &mut self.web) {
            web.handle(n, input, now);
        } else if let Some(sender) = self.http(route) {
            sender.handle(input, now);
        }
    }

    /// The deadline from [`poll_timeout`](Push::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_sessions(now);
        if let Some(gateway) = &mut self.apns {
            gateway.handle_timeout(now);
        }
        for route in Route::FIXED {
            if let Some(sender) = self.http(route) {
                sender.handle_timeout(now);
            }
        }
        if let Some(web) = &mut self.web {
            web.handle_timeout(now);
        }
    }

    /// The next action for the driver. APNs bytes are appended to `apns_out`; write them
    /// when [`Action::ApnsWrite`] is returned, and report them with
    /// [`handle_apns_written`](Push::handle_apns_written) once written.
    pub fn poll_action(&mut self, now: Instant, apns_out: &mut Vec<u8>) -> Option<Action> {
        if let Some(gateway) = &mut self.apns {
            while let Some(event) = gateway.poll_event() {
                match event {
                    apns::Event::Connect => return Some(Action::ApnsConnect),
                    apns::Event::Close => return Some(Action::ApnsClose),
                    other => self.events.push_back(Event::Apns(other)),
                }
            }
            if gateway.poll_transmit(apns_out) > 0 {
                return Some(Action::ApnsWrite);
            }
        }
        let fixed = Route::FIXED.into_iter().find_map(|route| {
            let action = self.http(route)?.poll_action(now)?;
            Some(Action::Http(route, action))
        });
        fixed.or_else(|| match self.web.as_mut()?.poll_action(now)? {
            WebAction::Http(n, action) => Some(Action::Http(Route::WebPush(n), action)),
            WebAction::Closed(n) => Some(Action::HttpRouteClosed(Route::WebPush(n))),
        })
    }

    /// The next device feedback, with the session it belongs to.
    pub fn poll_feedback(&mut self) -> Option<(SessionId, Feedback)> {
        self.collect_outcomes();
        self.feedback.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.collect_outcomes();
        if let Some(sender) = &mut self.apns_http2 {
            while let Some(event) = sender.poll_event() {
                self.events.push_back(Event::ApnsHttp2(event));
            }
        }
        if let Some((sender, _)) = &mut self.fcm {
            while let Some(event) = sender.poll_event() {
                self.events.push_back(Event::Fcm(event));
            }
        }
        if let Some((sender, _)) = &mut self.gcm {
            while let Some(event) = sender.poll_event() {
                self.events.push_back(Event::Gcm(event));
            }
        }
        if let Some(web) = &mut self.web {
            while let Some((origin, event)) = web.poll_event() {
                self.events.push_back(Event::WebPush(origin, event));
            }
        }
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Push::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let apns = self.apns.as_ref().and_then(Gateway::poll_timeout);
        let http = Route::FIXED
            .into_iter()
            .filter_map(|route| self.http_ref(route)?.poll_timeout());
        let deadlines = self
            .sessions
            .values()
            .filter(|s| !s.expired && s.outstanding > 0)
            .filter_map(|s| s.deadline);
        let web = self.web.as_ref().and_then(Web::poll_timeout);
        http.chain(apns).chain(web).chain(deadlines).min()
    }

    fn collect_outcomes(&mut self) {
        while let Some(outcome) = self.apns.as_mut().and_then(Gateway::poll_outcome) {
            self.finish_device(outcome);
        }
        for route in Route::FIXED {
            while let Some((outcome, receipt)) = self.http(route).and_then(|s| s.poll_report()) {
                self.finish_device_with(outcome, receipt);
            }
        }
        while let Some((outcome, receipt)) = self.web.as_mut().and_then(Web::poll_report) {
            self.finish_device_with(outcome, receipt);
        }
    }

    fn finish_device(&mut self, outcome: Outcome<Tag>) {
        self.finish_device_with(outcome, Receipt::default());
    }

    fn finish_device_with(&mut self, outcome: Outcome<Tag>, receipt: Receipt) {
        let Outcome {
            tag: (session_id, device),
            new_token,
            error,
        } = outcome;
        self.feedback.push_back((
            session_id,
            Feedback {
                device,
                new_token,
                error,
                receipt,
            },
        ));
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.outstanding = session.outstanding.saturating_sub(1);
        }
        self.finish_session_if_done(session_id);
    }

    fn finish_session_if_done(&mut self, session_id: SessionId) {
        let done = self
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.closed && s.outstanding == 0);
        if done {
            self.sessions.remove(&session_id);
            self.events.push_back(Event::SessionFinished(session_id));
        }
    }
}

/// Why a device ended at its session's deadline.
const DEADLINE_PASSED: &str = "the session's deadline passed";

/// How routing one device went, when it did not simply go to a provider's queue.
enum Routed {
    Full(Device),
    Failed(Device, DeviceError),
}

/// The device's token parsed for its provider and the session's content for that provider,
/// or the reason the device fails without being sent.
fn prepare<K, C: Clone>(
    device: Device,
    parse: impl FnOnce(&str) -> Result<K, TokenError>,
    content: Result<&C, &DeviceError>,
) -> Result<(K, C, Device), Routed> {
    let token = match parse(&device.token) {
        Ok(token) => token,
        Err(error) => return Err(Routed::Failed(device, error.into())),
    };
    match content {
        Ok(content) => Ok((token, content.clone(), device)),
        Err(error) => Err(Routed::Failed(device, error.clone())),
    }
}

fn no_provider(device: Device) -> Routed {
    let platform = device.platform;
    Routed::Failed(device, DeviceError::NoProvider(platform))
}

fn route_apns(
    gateway: &mut Option<Gateway<Tag>>,
    session: &Session,
    session_id: SessionId,
    device: Device,
) -> Result<(), Routed> {
    let Some(gateway) = gateway else {
        return Err(no_provider(device));
    };
    let (token, payload, device) = prepare(device, ApnsToken::parse, session.apns.as_ref())?;
    let notification = apns::Notification {
        token,
        payload,
        expiry: session.apns_expiry,
        priority: session.apns_priority,
    };
    gateway
        .queue(notification, (session_id, device))
        .map_err(|Full((_, (_, device)))| Routed::Full(device))
}

/// Queues `device` (tagged with its session) on an HTTP provider's `sender` with the session's
/// `message` for that provider.
fn route_http<P: Protocol, C: Credential>(
    sender: Option<&mut engine::Sender<P, C, Tag>>,
    message: Option<&Result<P::Message, DeviceError>>,
    parse: impl FnOnce(&str) -> Result<P::Token, TokenError>,
    (session_id, device): Tag,
    now: Instant,
) -> Result<(), Routed> {
    let (Some(sender), Some(message)) = (sender, message) else {
        return Err(no_provider(device));
    };
    let (token, message, device) = prepare(device, parse, message.as_ref())?;
    sender
        .queue(token, message, (session_id, device), now)
        .map_err(|Full((_, _, (_, device)))| Routed::Full(device))
}

/// Queues `device` (tagged with its session) on the Web Push route of its subscription's
/// origin with the session's `message`.
fn route_web(
    web: Option<&mut Web>,
    message: Option<&Result<webpush::Message, DeviceError>>,
    (session_id, device): Tag,
    now: Instant,
) -> Result<(), Routed> {
    let (Some(web), Some(message)) = (web, message) else {
        return Err(no_provider(device));
    };
    let parse = |json: &str| {
        Subscription::from_json(json)
            .map_err(|error| TokenError::WebSubscription(error.to_string()))
    };
    let (subscription, message, device) = prepare(device, parse, message.as_ref())?;
    web.queue(subscription, message, (session_id, device), now)
        .map_err(|Full((_, device))| Routed::Full(device))
}

/// What [`Push`] needs of an HTTP provider's engine sender, whatever its protocol and
/// credential.
trait HttpSender {
    fn handle(&mut self, input: engine::Input, now: Instant);
    fn poll_action(&mut self, now: Instant) -> Option<engine::Action>;
    fn flush(&mut self);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn is_idle(&self) -> bool;
    /// Ends the devices of `session` that have no outcome yet (see [`engine::Sender::expire`]).
    fn expire(&mut self, session: SessionId, reason: &str, now: Instant);
    /// The next device's outcome with what the provider said about it.
    fn poll_report(&mut self) -> Option<(Outcome<Tag>, Receipt)>;
}

impl<P: Protocol, C: Credential> HttpSender for engine::Sender<P, C, Tag> {
    fn handle(&mut self, input: engine::Input, now: Instant) {
        engine::Sender::handle(self, input, now);
    }

    fn poll_action(&mut self, now: Instant) -> Option<engine::Action> {
        engine::Sender::poll_action(self, now)
    }

    fn flush(&mut self) {
        engine::Sender::flush(self);
    }

    fn handle_timeout(&mut self, now: Instant) {
        engine::Sender::handle_timeout(self, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        engine::Sender::poll_timeout(self)
    }

    fn is_idle(&self) -> bool {
        engine::Sender::is_idle(self)
    }

    fn expire(&mut self, session: SessionId, reason: &str, now: Instant) {
        engine::Sender::expire(self, |(id, _)| *id == session, reason, now);
    }

    fn poll_report(&mut self) -> Option<(Outcome<Tag>, Receipt)> {
        let report = self.poll_outcome()?;
        let receipt = Receipt {
            id: report.id,
            reason: report.reason,
            unregistered_at: report.unregistered_at,
        };
        Some((report.outcome, receipt))
    }
}

#[cfg(test)]
mod tests;
