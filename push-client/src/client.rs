//! The public face: Client, Session and the feedback stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};

use crate::queue::{QueueSender, queue};
use futures_lite::Stream;
use push_proto::{Device, Feedback, Payload, Push, Route};

use crate::config::ApnsConfig;
use crate::config_fcm::FcmConfig;
use crate::config_gcm::GcmConfig;
use crate::config_http::HttpTransport;
use crate::config_http2::ApnsHttp2Config;
use crate::driver::{ApnsLink, Command, Driver, Transports};
use crate::error::Error;
use crate::feedback_service::{FeedbackService, InactiveDevices};
use crate::h1conn::{H1Setup, Link};
use crate::h2conn::ConnSetup;
use crate::h2route::{Connections, HttpRoute};
use crate::http::{HttpClient, Origin};
use crate::net::Endpoint;
use crate::report::{ClientStats, Report};
use crate::runtime::Runtime;

/// Feedback travels to a session's stream in batches; this many batches may wait in the
/// channel, each at most a quarter of the client's feedback capacity.
pub(crate) const FEEDBACK_BATCHES: usize = 4;

/// Builds a [`Client`]: add providers, adjust the queue bounds, then [`build`](Self::build).
#[derive(Debug)]
pub struct ClientBuilder<R: Runtime> {
    apns: Option<ApnsConfig>,
    apns_http2: Option<ApnsHttp2Config>,
    gcm: Option<GcmConfig>,
    fcm: Option<FcmConfig>,
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
        let mut push = Push::new();
        let mut apns_link = None;
        let mut feedback_service = None;
        if let Some(apns) = &self.apns {
            push = push.with_apns(apns.core.clone());
            let tls = apns.tls.client_config(&[])?;
            apns_link = Some(ApnsLink::new(
                apns.gateway.clone(),
                tls.clone(),
                apns.timeouts,
                apns.write_timeout,
            ));
            feedback_service = apns.feedback.clone().map(|endpoint| FeedbackService {
                endpoint,
                tls,
                timeouts: apns.timeouts,
                read_timeout: apns.read_timeout,
            });
        }
        let mut h2 = None;
        if let Some(apns) = &self.apns_http2 {
            push = push
                .with_apns_http2(apns.core.clone(), apns.auth(runtime.now())?)
                .map_err(|error| Error::Config {
                    field: "apns url",
                    reason: error.to_string(),
                })?;
            let setup = h2_setup(
                &apns.endpoint,
                &apns.transport,
                apns.ping_interval,
                MAX_APNS_BODY,
            )?;
            let streams = apns.core.engine.pool.max_streams_per_connection;
            h2 = Some(HttpRoute::new(Route::ApnsHttp2, setup, streams, None));
        }
        let mut gcm_route = None;
        if let Some(gcm) = &self.gcm {
            push = push
                .with_gcm(gcm.core.clone(), gcm.options.clone())
                .map_err(|error| Error::Config {
                    field: error.field,
                    reason: error.reason,
                })?;
            gcm_route = Some(gcm_transport(gcm)?);
        }
        let mut fcm = None;
        if let Some(config) = &self.fcm {
            push = push
                .with_fcm(
                    config.core.clone(),
                    config.auth(runtime.now())?,
                    config.options.clone(),
                )
                .map_err(|error| Error::Config {
                    field: "fcm",
                    reason: error.to_string(),
                })?;
            fcm = Some(fcm_transport(&runtime, config)?);
        }
        let (commands, receiver) = queue(self.queue_capacity);
        let stats = Arc::new(Mutex::new(ClientStats {
            feedback_capacity: self.feedback_capacity as u64,
            ..ClientStats::default()
        }));
        let driver = Driver::new(
            runtime.clone(),
            push,
            Transports {
                apns: apns_link,
                gcm: gcm_route,
                apns_http2: h2,
                fcm,
            },
            receiver,
            self.feedback_capacity,
            stats.clone(),
        );
        runtime.spawn(driver.run());
        Ok(Client {
            shared: Arc::new(Shared {
                runtime,
                commands,
                next_session: AtomicU64::new(0),
                feedback_capacity: self.feedback_capacity,
                feedback_service,
                stats,
            }),
        })
    }
}

/// Largest APNs response body read: APNs answers with an empty body or a small JSON object.
const MAX_APNS_BODY: usize = 16 * 1024;
/// Largest FCM response body read: Google's error bodies are a few KiB.
const MAX_FCM_BODY: usize = 256 * 1024;
/// Largest GCM response body read: a result per token of a batch of up to 1,000, each well
/// under 200 bytes even with a canonical id.
const MAX_GCM_BODY: usize = 1024 * 1024;

/// How an HTTP/2 route's connections to `endpoint` are made.
fn h2_setup(
    endpoint: &Endpoint,
    transport: &HttpTransport,
    ping_interval: Duration,
    max_body: usize,
) -> Result<Connections, Error> {
    Ok(Connections::H2(Arc::new(ConnSetup {
        endpoint: endpoint.clone(),
        tls: transport.tls.client_config(&[b"h2"])?,
        timeouts: transport.timeouts,
        request_timeout: transport.request_timeout,
        ping_interval,
        max_body,
    })))
}

/// FCM's HTTP/2 route with the HTTP/1.1 client of its token endpoint.
fn fcm_transport<R: Runtime>(runtime: &R, config: &FcmConfig) -> Result<HttpRoute<R>, Error> {
    let transport = &config.transport;
    let setup = h2_setup(
        &config.endpoint,
        transport,
        config.ping_interval,
        MAX_FCM_BODY,
    )?;
    let token = HttpClient::new(
        runtime.clone(),
        &config.token_uri()?,
        "fcm token url",
        &transport.tls,
        transport.timeouts,
        transport.request_timeout,
    )?;
    let streams = config.core.engine.pool.max_streams_per_connection;
    Ok(HttpRoute::new(Route::Fcm, setup, streams, Some(token)))
}

/// GCM's HTTP/1.1 route: push's own connections, or the application's surf client.
fn gcm_transport<R: Runtime>(config: &GcmConfig) -> Result<HttpRoute<R>, Error> {
    let transport = &config.transport;
    #[cfg(feature = "surf")]
    let surf = config.surf.clone().map(Link::Surf);
    #[cfg(not(feature = "surf"))]
    let surf = None;
    let link = match surf {
        Some(link) => link,
        None => Link::Hyper(Origin::new(
            &config.core.endpoint,
            "gcm endpoint",
            &transport.tls,
        )?),
    };
    let setup = H1Setup {
        link,
        timeouts: transport.timeouts,
        request_timeout: transport.request_timeout,
        max_body: MAX_GCM_BODY,
    };
    Ok(HttpRoute::new(
        Route::Gcm,
        Connections::H1(Arc::new(setup)),
        1,
        None,
    ))
}

/// What every clone of a client shares.
struct Shared<R: Runtime> {
    runtime: R,
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
            queue_capacity: 1024,
            feedback_capacity: 4096,
            runtime: None,
        }
    }

    /// Starts a session that sends `payload` to every device pushed into it.
    pub fn send(&self, payload: Payload) -> Session<R> {
        let key = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
        let (feedback, receiver) = async_channel::bounded(FEEDBACK_BATCHES);
        Session {
            key,
            client: self.clone(),
            opening: Some((Box::new(payload), feedback)),
            receiver: Some(receiver),
            listening: Arc::new(AtomicBool::new(false)),
            closed: false,
        }
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
}

/// One payload on its way to many devices. Push devices one by one with
/// [`push`](Session::push); read the outcome of each from [`feedbacks`](Session::feedbacks);
/// end with [`finish`](Session::finish).
///
/// Dropping a session without finishing it still sends everything already pushed; its
/// feedback is then only counted, never buffered.
#[derive(Debug)]
pub struct Session<R: Runtime> {
    key: u64,
    client: Client<R>,
    opening: Option<(Box<Payload>, Sender<Vec<Feedback>>)>,
    receiver: Option<Receiver<Vec<Feedback>>>,
    listening: Arc<AtomicBool>,
    closed: bool,
}

impl<R: Runtime> Session<R> {
    /// The stream of this session's feedback: one [`Feedback`] per device, in the order
    /// outcomes become known. Take it before pushing, and read it concurrently with pushing
    /// (a spawned task, or `zip`/`race` of two futures): when it falls behind by the
    /// client's feedback capacity, pushing waits. Feedback produced while no stream exists,
    /// or after it is dropped, is counted in the [`Report`] only.
    ///
    /// Returns an empty stream when called a second time.
    pub fn feedbacks(&mut self) -> Feedbacks {
        match self.receiver.take() {
            Some(receiver) => {
                self.listening.store(true, Ordering::Relaxed);
                Feedbacks {
                    receiver: Some(Box::pin(receiver)),
                    batch: Vec::new().into_iter(),
                    listening: self.listening.clone(),
                }
            }
            None => Feedbacks {
                receiver: None,
                batch: Vec::new().into_iter(),
                listening: Arc::new(AtomicBool::new(false)),
            },
        }
    }

    /// Sends the session's notification to `device`. Waits while the client's queue is full
    /// (backpressure); a device that cannot be delivered gets a feedback, not an error. Fails
    /// only when the client has shut down.
    pub async fn push(&mut self, device: Device) -> Result<(), Error> {
        self.open().await?;
        let command = Command::Push {
            key: self.key,
            device,
        };
        self.send(command).await
    }

    /// No more devices: waits until every device pushed has its feedback, then reports.
    /// Client-wide errors that happened meanwhile (TLS, authentication, an unreachable
    /// gateway) are in [`Report::errors`]; every device still has its feedback.
    pub async fn finish(mut self) -> Result<Report, Error> {
        self.open().await?;
        let (reply, report) = async_channel::bounded(1);
        self.closed = true;
        let command = Command::Close {
            key: self.key,
            reply: Some(reply),
        };
        self.send(command).await?;
        report.recv().await.map_err(|_| Error::Closed)
    }

    async fn open(&mut self) -> Result<(), Error> {
        if let Some((payload, feedback)) = self.opening.take() {
            let command = Command::Open {
                key: self.key,
                payload,
                feedback,
                listening: self.listening.clone(),
            };
            self.send(command).await?;
        }
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.client
            .shared
            .commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)
    }
}

impl<R: Runtime> Drop for Session<R> {
    fn drop(&mut self) {
        if self.closed || self.opening.is_some() {
            return;
        }
        let commands = self.client.shared.commands.clone();
        let key = self.key;
        self.client.shared.runtime.spawn(async move {
            let _ = commands.send(Command::Close { key, reply: None }).await;
        });
    }
}

/// The feedback stream of a session; see [`Session::feedbacks`]. Ends when every device of
/// the finished session has its feedback.
#[derive(Debug)]
pub struct Feedbacks {
    receiver: Option<Pin<Box<Receiver<Vec<Feedback>>>>>,
    /// The rest of the batch being read.
    batch: std::vec::IntoIter<Feedback>,
    listening: Arc<AtomicBool>,
}

impl Stream for Feedbacks {
    type Item = Feedback;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Feedback>> {
        loop {
            if let Some(feedback) = self.batch.next() {
                return Poll::Ready(Some(feedback));
            }
            let Some(receiver) = &mut self.receiver else {
                return Poll::Ready(None);
            };
            match receiver.as_mut().poll_next(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Feedbacks {
    fn drop(&mut self) {
        self.listening.store(false, Ordering::Relaxed);
    }
}
