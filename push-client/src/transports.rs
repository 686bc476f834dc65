//! Turns the client's provider configurations into the protocol core and the transports the
//! driver performs its actions with.

use push_proto::{Push, Route};

use crate::config::{ApnsConfig, GcmConfig};
use crate::config_fcm::FcmConfig;
use crate::config_http2::ApnsHttp2Config;
use crate::error::Error;
use crate::feedback_service::FeedbackService;
use crate::gateway_link::GatewayLink;
use crate::gcm_link::GcmLink;
use crate::h2conn::ConnSetup;
use crate::h2route::HttpRoute;
use crate::http::HttpClient;
use crate::runtime::Runtime;

/// Largest APNs response body read: APNs answers with an empty body or a small JSON object.
const MAX_APNS_BODY: usize = 16 * 1024;
/// Largest FCM response body read: Google's error bodies are a few KiB.
const MAX_FCM_BODY: usize = 256 * 1024;

/// The providers a client was configured with.
pub(crate) struct Providers<'a> {
    pub(crate) apns: Option<&'a ApnsConfig>,
    pub(crate) apns_http2: Option<&'a ApnsHttp2Config>,
    pub(crate) gcm: Option<&'a GcmConfig>,
    pub(crate) fcm: Option<&'a FcmConfig>,
}

/// How the driver reaches each configured provider.
pub(crate) struct Transports<R: Runtime> {
    /// The APNs binary gateway.
    pub(crate) gateway: Option<GatewayLink<R>>,
    /// GCM's HTTP exchange.
    pub(crate) gcm: Option<GcmLink<R>>,
    /// APNs over HTTP/2.
    pub(crate) apns_http2: Option<HttpRoute<R>>,
    /// FCM HTTP v1 and its token endpoint.
    pub(crate) fcm: Option<HttpRoute<R>>,
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
        let setup = ConnSetup {
            endpoint: apns.endpoint.clone(),
            tls: apns.tls.client_config(&[b"h2"])?,
            timeouts: apns.timeouts,
            request_timeout: apns.request_timeout,
            ping_interval: apns.ping_interval,
            max_body: MAX_APNS_BODY,
        };
        let streams = apns.core.pool.max_streams_per_connection;
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
        gcm = Some(GcmLink::new(runtime, config)?);
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
    Ok(Assembled {
        push,
        transports: Transports {
            gateway,
            gcm,
            apns_http2,
            fcm,
        },
        feedback_service,
    })
}

/// FCM's HTTP/2 route with the HTTP/1.1 client of its token endpoint.
fn fcm_route<R: Runtime>(runtime: &R, config: &FcmConfig) -> Result<HttpRoute<R>, Error> {
    let setup = ConnSetup {
        endpoint: config.endpoint.clone(),
        tls: config.tls.client_config(&[b"h2"])?,
        timeouts: config.timeouts,
        request_timeout: config.request_timeout,
        ping_interval: config.ping_interval,
        max_body: MAX_FCM_BODY,
    };
    let token = HttpClient::new(
        runtime.clone(),
        &config.token_uri()?,
        "fcm token url",
        &config.tls,
        config.timeouts,
        config.request_timeout,
    )?;
    let streams = config.core.pool.max_streams_per_connection;
    Ok(HttpRoute::new(Route::Fcm, setup, streams, Some(token)))
}
