//! The Web Push routes as the driver sees them: one [`HttpRoute`] per origin the core has a
//! sender for, made when the core first acts on it and dropped when the core closes it. Each
//! connection speaks HTTP/2 where the push service offers it, HTTP/1.1 otherwise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use push_proto::{Push, Route};
use rustls::ClientConfig;

use crate::config_webpush::WebPushConfig;
use crate::error::Error;
use crate::h1conn::{H1Setup, Link};
use crate::h2conn::ConnSetup;
use crate::h2route::{Connections, HttpRoute};
use crate::http::Origin;
use crate::negotiated::NegotiatedSetup;
use crate::net::Timeouts;
use crate::runtime::Runtime;

/// Largest response body read from a push service: an empty body or a short error.
const MAX_WEBPUSH_BODY: usize = 64 * 1024;

/// How every origin's connections are made, and the routes open now.
pub(crate) struct WebRoutes<R: Runtime> {
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    request_timeout: Duration,
    ping_interval: Duration,
    max_streams: u32,
    routes: HashMap<u64, HttpRoute<R>>,
}

impl<R: Runtime> WebRoutes<R> {
    /// The routes of `config`.
    pub(crate) fn new(config: &WebPushConfig) -> Result<Self, Error> {
        Ok(WebRoutes {
            tls: config.transport.tls.client_config(&[b"h2", b"http/1.1"])?,
            timeouts: config.transport.timeouts,
            request_timeout: config.transport.request_timeout,
            ping_interval: config.ping_interval,
            max_streams: config.core.engine.pool.max_streams_per_connection,
            routes: HashMap::new(),
        })
    }

    /// The transport of web route `route`, made for its origin (asked of `push`) on first use.
    /// `None` for a route the core no longer has, or an origin that is not an `https` URL.
    pub(crate) fn route(&mut self, route: Route, push: &Push) -> Option<&mut HttpRoute<R>> {
        let Route::WebPush(n) = route else {
            return None;
        };
        if !self.routes.contains_key(&n) {
            let url = push.webpush_origin(route)?.as_str();
            let origin = match Origin::https(url, "web push endpoint", self.tls.clone()) {
                Ok(origin) => origin,
                Err(error) => {
                    log::warn!("{error}");
                    return None;
                }
            };
            let h2 = ConnSetup {
                endpoint: origin.endpoint().clone(),
                tls: self.tls.clone(),
                timeouts: self.timeouts,
                request_timeout: self.request_timeout,
                ping_interval: self.ping_interval,
                max_body: MAX_WEBPUSH_BODY,
            };
            let h1 = H1Setup {
                link: Link::Hyper(origin),
                timeouts: self.timeouts,
                request_timeout: self.request_timeout,
                max_body: MAX_WEBPUSH_BODY,
            };
            let setup = Connections::Negotiated(Arc::new(NegotiatedSetup {
                h2: Arc::new(h2),
                h1: Arc::new(h1),
            }));
            self.routes
                .insert(n, HttpRoute::new(route, setup, self.max_streams, None));
        }
        self.routes.get_mut(&n)
    }

    /// The transport of a web route already made.
    pub(crate) fn existing(&mut self, route: Route) -> Option<&mut HttpRoute<R>> {
        match route {
            Route::WebPush(n) => self.routes.get_mut(&n),
            _ => None,
        }
    }

    /// The core dropped `route`: its connection tasks finish their streams and end.
    pub(crate) fn close(&mut self, route: Route) {
        if let Route::WebPush(n) = route {
            self.routes.remove(&n);
        }
    }
}
