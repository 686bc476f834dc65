//! The public face: the client builder and the [`Client`] that starts sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use push_proto::Payload;
use push_proto::engine::Grant;

use crate::broadcast::BroadcastClient;
use crate::command::{Command, ExchangeResult};
use crate::config::ApnsConfig;
use crate::config_fcm::FcmConfig;
use crate::config_gcm::GcmConfig;
use crate::config_http2::ApnsHttp2Config;
use crate::config_webpush::WebPushConfig;
use crate::driver::Driver;
use crate::error::Error;
use crate::feedback_service::{FeedbackService, InactiveDevices};
use crate::queue::{QueueSender, queue};
use crate::report::ClientStats;
use crate::runtime::Runtime;
use crate::session::Session;
use crate::transports::{Providers, assemble};

/// Builds a [`Client`]: add providers, adjust the queue bounds, then [`build`](Self::build).
#[derive(Debug)]
pub struct ClientBuilder<R: Runtime> {
    apns: Option<ApnsConfig>,
    apns_http2: Option<ApnsHttp2Config>,
    gcm: Option<GcmConfig>,
    fcm: Option<FcmConfig>,
    webpush: Option<WebPushConfig>,
    queue_capacity: usize,
    feedback_capacity: usize,
    runtime: Option<R>,
}

impl<R: Runtime> ClientBuilder<R> {
    /// Runs the client on this runtime instance instead of `R::default()` (e.g. one with a
    /// virtual clock, see [`Runtime::now`]).
    pub fn runtime(mut self, runtime: R) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Sends iOS devices through APNs.
    pub fn apns(mut self, config: ApnsConfig) -> Self {
        self.apns = Some(config);
        self
    }

    /// Sends iOS devices through the APNs HTTP/2 provider API (preferred over the binary
    /// gateway when both are set).
    pub fn apns_http2(mut self, config: ApnsHttp2Config) -> Self {
        self.apns_http2 = Some(config);
        self
    }

    /// Sends Android devices through GCM.
    pub fn gcm(mut self, config: GcmConfig) -> Self {
        self.gcm = Some(config);
        self
    }

    /// Sends Android devices through FCM HTTP v1 (preferred over GCM when both are set).
    pub fn fcm(mut self, config: FcmConfig) -> Self {
        self.fcm = Some(config);
        self
    }

    /// Sends browsers ([`Platform::Web`](crate::Platform::Web) devices, whose token is the
    /// subscription JSON) through Web Push.
    pub fn webpush(mut self, config: WebPushConfig) -> Self {
        self.webpush = Some(config);
        self
    }

    /// Devices that may wait between `Session::push` and the protocol core (default 1024);
    /// `push` waits when it is full.
    pub fn queue_capacity(mut self, devices: usize) -> Self {
        self.queue_capacity = devices.max(1);
        self
    }

    /// Feedbacks that may wait for slow readers, over all sessions (default 4096); pushing
    /// pauses while it is full.
    pub fn feedback_capacity(mut self, feedbacks: usize) -> Self {
        self.feedback_capacity = feedbacks.max(1);
        self
    }

    /// Checks the configuration, then starts the client's background task.
    pub fn build(self) -> Result<Client<R>, Error> {
        let runtime = self.runtime.clone().unwrap_or_default();
        let providers = Providers {
            apns: self.apns.as_ref(),
            apns_http2: self.apns_http2.as_ref(),
            gcm: self.gcm.as_ref(),
            fcm: self.fcm.as_ref(),
            webpush: self.webpush.as_ref(),
        };
        let assembled = assemble(&runtime, providers)?;
        let (commands, receiver) = queue(self.queue_capacity);
        let stats = Arc::new(Mutex::new(ClientStats {
            feedback_capacity: self.feedback_capacity as u64,
            ..ClientStats::default()
        }));
        let driver = Driver::new(
            runtime.clone(),
            assembled.push,
            assembled.transports,
            receiver,
            self.feedback_capacity,
            stats.clone(),
        );
        runtime.spawn(driver.run());
        Ok(Client {
            shared: Arc::new(Shared {
                runtime,
                apns_http2: self.apns_http2,
                commands,
                next_session: AtomicU64::new(0),
                feedback_capacity: self.feedback_capacity,
                feedback_service: assembled.feedback_service,
                stats,
            }),
        })
    }
}

/// What every clone of a client shares.
struct Shared<R: Runtime> {
    runtime: R,
    /// The APNs HTTP/2 settings, for [`Client::broadcasts`].
    apns_http2: Option<ApnsHttp2Config>,
    commands: QueueSender<Command>,
    next_session: AtomicU64,
    feedback_capacity: usize,
    feedback_service: Option<FeedbackService>,
    stats: Arc<Mutex<ClientStats>>,
}

impl<R: Runtime> std::fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("feedback_capacity", &self.feedback_capacity)
            .field("feedback_service", &self.feedback_service)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A push client: one long-lived connection per provider, shared by every session.
///
/// Cheap to clone; the background task stops when the last clone and the last session are
/// gone and every notification has its feedback.
#[derive(Debug)]
pub struct Client<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Runtime> Client<R> {
    /// A builder with no providers, a queue of 1024 devices and room for 4096 waiting
    /// feedbacks.
    pub fn builder() -> ClientBuilder<R> {
        ClientBuilder {
            apns: None,
            apns_http2: None,
            gcm: None,
            fcm: None,
            webpush: None,
            queue_capacity: 1024,
            feedback_capacity: 4096,
            runtime: None,
        }
    }

    /// Starts a session that sends `payload` to every device pushed into it.
    pub fn send(&self, payload: Payload) -> Session<R> {
        let key = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
        Session::start(key, self.shared.commands.clone(), payload)
    }

    /// Counters of the client.
    pub fn stats(&self) -> ClientStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the APNs feedback service: every device Apple found inactive since the last read,
    /// with the time it did. Apple clears the list once it is read.
    pub async fn fetch_inactive_devices(&self) -> Result<InactiveDevices, Error> {
        let service = self.shared.feedback_service.as_ref().ok_or(Error::Config {
            field: "apns feedback service",
            reason: "is not configured".into(),
        })?;
        service.fetch(&self.shared.runtime).await
    }

    /// The runtime it runs on.
    pub(crate) fn runtime(&self) -> &R {
        &self.shared.runtime
    }

    /// A client for APNs' broadcast channels and single Live Activity or widget pushes that
    /// shares this client's APNs HTTP/2 connections and provider token: broadcasts and
    /// pushes travel as streams of the connections the sessions' device pushes use (Apple
    /// serves both on the device host); channel management goes to `management_url` on a
    /// connection of its own (Apple serves it on other hosts and ports). Needs
    /// [`apns_http2`](ClientBuilder::apns_http2) with a topic (the app's bundle id).
    pub fn broadcasts(&self, management_url: &str) -> Result<BroadcastClient<R>, Error> {
        let apns = self.shared.apns_http2.as_ref().ok_or(Error::Config {
            field: "apns http2",
            reason: "is required for broadcasts: they travel on its connections".into(),
        })?;
        BroadcastClient::sharing(self.clone(), apns, management_url)
    }

    /// The APNs HTTP/2 credential (the provider token of the connections), for a request
    /// sent on another connection; `None` without APNs HTTP/2.
    pub(crate) async fn apns_grant(&self) -> Result<Option<Grant>, Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.command(Command::ApnsGrant { reply }).await?;
        answer.recv().await.map_err(|_| stopped())
    }

    /// APNs refused credential `generation` of an [`apns_grant`](Self::apns_grant): it is
    /// renewed for the next request.
    pub(crate) async fn apns_credential_refused(&self, generation: u64) -> Result<(), Error> {
        self.command(Command::ApnsRefused { generation }).await
    }

    /// Queues `command` for the driver.
    async fn command(&self, command: Command) -> Result<(), Error> {
        self.shared
            .commands
            .send(command)
            .await
            .map_err(|_| stopped())
    }

    /// Sends `request` on the APNs HTTP/2 connections, authorized by their credential, and
    /// gives the whole answer (see [`push_proto::engine::Sender::exchange`]).
    pub(crate) async fn apns_exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<ExchangeResult, Error> {
        let (reply, answer) = async_channel::bounded(1);
        self.command(Command::ApnsExchange {
            request: Box::new(request),
            reply,
        })
        .await?;
        answer.recv().await.map_err(|_| stopped())
    }
}

/// The error of a command the driver can no longer take or answer.
fn stopped() -> Error {
    Error::Config {
        field: "client",
        reason: "its background task has stopped".into(),
    }
}
