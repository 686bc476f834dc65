//! GCM's transport: each request the core hands out is one HTTP exchange in its own task,
//! whose response (or transport failure) goes back to the core.

use std::sync::Arc;
use std::time::Instant;

use async_channel::Sender;
use bytes::Bytes;
use push_proto::Push;
use push_proto::gcm::RequestId;

use crate::config::GcmConfig;
use crate::error::Error;
use crate::exchange::Exchange;
use crate::http::HttpClient;
use crate::io::Io;
use crate::runtime::Runtime;

/// The GCM exchange and the requests on their way.
pub(crate) struct GcmLink<R: Runtime> {
    exchange: Arc<Exchange<R>>,
    in_flight: usize,
}

impl<R: Runtime> GcmLink<R> {
    /// The exchange `config` asks for: the application's surf client, else our own.
    pub(crate) fn new(runtime: &R, config: &GcmConfig) -> Result<Self, Error> {
        #[cfg(feature = "surf")]
        let exchange = config.surf.clone().map(|client| Exchange::Surf {
            client,
            runtime: runtime.clone(),
            timeout: config.exchange_timeout,
        });
        #[cfg(not(feature = "surf"))]
        let exchange = None;
        let exchange = match exchange {
            Some(exchange) => exchange,
            None => Exchange::Hyper(HttpClient::new(
                runtime.clone(),
                &config.core.endpoint,
                "gcm endpoint",
                &config.tls,
                config.timeouts,
                config.exchange_timeout,
            )?),
        };
        Ok(GcmLink {
            exchange: Arc::new(exchange),
            in_flight: 0,
        })
    }

    /// True when no request waits for its answer.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    /// Sends request `id`; the outcome comes back as [`Io::Gcm`].
    pub(crate) fn send(
        &mut self,
        runtime: &R,
        io: &Sender<Io>,
        id: RequestId,
        request: http::Request<Bytes>,
    ) {
        log::debug!("GCM {id}: {} bytes", request.body().len());
        self.in_flight += 1;
        let (exchange, io) = (self.exchange.clone(), io.clone());
        runtime.spawn(async move {
            let result = exchange.exchange(request).await;
            let _ = io.send(Io::Gcm(id, result)).await;
        });
    }

    /// Hands the outcome of request `id` to the core. Returns the error every session's
    /// report must name, if any.
    pub(crate) fn handle(
        &mut self,
        push: &mut Push,
        id: RequestId,
        result: Result<http::Response<Bytes>, Error>,
        now: Instant,
    ) -> Option<Error> {
        self.in_flight = self.in_flight.saturating_sub(1);
        match result {
            Ok(response) => {
                log::debug!("GCM {id}: HTTP {}", response.status());
                push.handle_gcm_response(id, response, now);
                None
            }
            Err(error) => {
                log::warn!("GCM request failed: {error}");
                push.handle_gcm_failure(id, &error.to_string(), now);
                error.is_fatal().then_some(error)
            }
        }
    }
}
