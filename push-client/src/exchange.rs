//! How GCM requests reach the service: hyper's low-level client by default, or an
//! application's own `surf::Client` (feature `surf`).

#[cfg(feature = "surf")]
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::http::HttpClient;
use crate::runtime::Runtime;

/// The HTTP exchange used for GCM.
pub(crate) enum Exchange<R: Runtime> {
    /// Our own keep-alive connections (hyper over futures-rustls).
    Hyper(HttpClient<R>),
    /// The application's surf client.
    #[cfg(feature = "surf")]
    Surf {
        client: surf::Client,
        runtime: R,
        timeout: Duration,
    },
}

impl<R: Runtime> Exchange<R> {
    /// Sends `request` and reads the whole response.
    pub(crate) async fn exchange(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Error> {
        match self {
            Exchange::Hyper(client) => client.exchange(request).await,
            #[cfg(feature = "surf")]
            Exchange::Surf {
                client,
                runtime,
                timeout,
            } => surf_exchange(client, runtime, *timeout, request).await,
        }
    }
}

#[cfg(feature = "surf")]
async fn surf_exchange<R: Runtime>(
    client: &surf::Client,
    runtime: &R,
    timeout: Duration,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, Error> {
    let uri = request.uri().to_string();
    let host = request
        .uri()
        .authority()
        .map_or_else(|| uri.clone(), ToString::to_string);
    let failed = |reason: String| Error::Connect {
        host: host.clone(),
        reason,
    };
    let url = surf::Url::parse(&uri).map_err(|error| failed(format!("bad URL: {error}")))?;
    let method = request
        .method()
        .as_str()
        .parse::<surf::http::Method>()
        .map_err(|error| failed(format!("bad method: {error}")))?;
    let mut builder = surf::Request::builder(method, url);
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| failed(format!("header {name} is not text")))?;
        builder = builder.header(name.as_str(), value);
    }
    let outgoing = builder.body_bytes(request.body()).build();
    let endpoint = crate::net::Endpoint {
        host: host.clone(),
        port: 0,
    };
    let send = async {
        let mut response = client
            .send(outgoing)
            .await
            .map_err(|error| failed(format!("surf: {error}")))?;
        let mut converted = http::Response::builder().status(u16::from(response.status()));
        for (name, values) in response.iter() {
            for value in values.iter() {
                converted = converted.header(name.as_str(), value.as_str());
            }
        }
        let body = response
            .body_bytes()
            .await
            .map_err(|error| failed(format!("surf: {error}")))?;
        converted
            .body(Bytes::from(body))
            .map_err(|error| failed(format!("unusable response: {error}")))
    };
    crate::net::timeout(runtime, timeout, "HTTP exchange", &endpoint, send).await
}
