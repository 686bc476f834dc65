//! Turns the client's provider configurations into the protocol core and the transports the
//! driver performs its actions with.

use std::sync::Arc;
use std::time::Duration;

use push_proto::{Push, Route};

use crate::config::ApnsConfig;
use crate::config_fcm::FcmConfig;
use crate::config_gcm::GcmConfig;
use crate::config_http::HttpTransport;
use crate::config_http2::ApnsHttp2Config;
use crate::config_webpush::WebPushConfig;
use crate::error::Error;
use crate::feedback_service::FeedbackService;
use crate::gateway_link::GatewayLink;
use crate::h1conn::{H1Setup, Link};
use crate::h2conn::ConnSetup;
use crate::h2route::{Connections, HttpRoute};
use crate::http::{HttpClient, Origin};
use crate::net::Endpoint;
use crate::runtime::Runtime;
use crate::webroutes::WebRoutes;

/// Largest APNs response body read: APNs answers with an empty body or a small JSON object.
const MAX_APNS_BODY: usize = 16 * 1024;
/// Largest FCM response body read: Google's error bodies are a few KiB.
const MAX_FCM_BODY: usize = 256 * 1024;
/// Largest GCM response body read: a result per token of a batch of up to 1,000, each well
/// under 200 bytes even with a canonical id.
const MAX_GCM_BODY: usize = 1024 * 1024;

/// The providers a client was configured with.
pub(crate) struct Providers<'a> {
    pub(crate) apns: Option<&'a ApnsConfig>,
    pub(crate) apns_http2: Option<&'a ApnsHttp2Config>,
    pub(crate) gcm: Option<&'a GcmConfig>,
    pub(crate) fcm: Option<&'a FcmConfig>,
    pub(crate) webpush: Option<&'a WebPushConfig>,
}

/// How the driver reaches each configured provider.
pub(crate) struct Transports<R: Runtime> {
    /// The APNs binary gateway.
    pub(crate) gateway: Option<GatewayLink<R>>,
    /// Legacy GCM over HTTP/1.1.
    pub(crate) gcm: Option<HttpRoute<R>>,
    /// APNs over HTTP/2.
    pub(crate) apns_http2: Option<HttpRoute<R>>,
    /// FCM HTTP v1 and its token endpoint.
    pub(crate) fcm: Option<HttpRoute<R>>,
    /// Web Push: a route per push-service origin.
    pub(crate) web: Option<WebRoutes<R>>,
}

/// The core, its transports, and the APNs feedback service when one is configured.
pub(crate) struct Assembled<R: Runtime> {
    pub(crate) push: Push,
    pub(crate) transports: Transports<R>,
    pub(crate) feedback_service: Option<FeedbackService>,
}

/// Checks every configuration and builds the core and transports for them.
pub(crate) fn assemble<R: Runtime>(
    runtime: &R,
    providers: Providers<'_>,
) -> Result<Assembled<R>, Error> {
    let mut push = Push::new();
    let mut gateway = None;
    let mut feedback_service = None;
    if let Some(apns) = providers.apns {
        push = push.with_apns(apns.core.clone());
        let tls = apns.tls.client_config(&[])?;
        gateway = Some(GatewayLink::new(
            runtime.clone(),
            apns.gateway.clone(),
            tls.clone(),
            apns.timeouts,
            apns.write_timeout,
            apns.core.max_unwritten_transmits,
        ));
        feedback_service = apns.feedback.clone().map(|endpoint| FeedbackService {
            endpoint,
            tls,
            timeouts: apns.timeouts,
            read_timeout: apns.read_timeout,
        });
    }
    let mut apns_http2 = None;
    if let Some(apns) = providers.apns_http2 {
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
        apns_http2 = Some(HttpRoute::new(Route::ApnsHttp2, setup, streams, None));
    }
    let mut gcm = None;
    if let Some(config) = providers.gcm {
        push = push
            .with_gcm(config.core.clone(), config.options.clone())
            .map_err(|error| Error::Config {
                field: error.field,
                reason: error.reason,
            })?;
        gcm = Some(gcm_route(config)?);
    }
    let mut fcm = None;
    if let Some(config) = providers.fcm {
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
        fcm = Some(fcm_route(runtime, config)?);
    }
    let mut web = None;
    if let Some(config) = providers.webpush {
        push = config.install(push, runtime.now())?;
        web = Some(WebRoutes::new(config)?);
    }
    Ok(Assembled {
        push,
        transports: Transports {
            gateway,
            gcm,
            apns_http2,
            fcm,
            web,
        },
        feedback_service,
    })
}

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
fn fcm_route<R: Runtime>(runtime: &R, config: &FcmConfig) -> Result<HttpRoute<R>, Error> {
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
fn gcm_route<R: Runtime>(config: &GcmConfig) -> Result<HttpRoute<R>, Error> {
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
    let connections = Connections::H1(Arc::new(setup));
    Ok(HttpRoute::new(Route::Gcm, connections, 1, None))
}
