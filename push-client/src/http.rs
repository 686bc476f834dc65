//! HTTP/1.1 over hyper's low-level client: an [`Origin`] (where to connect, how to shake
//! hands, the request in origin form) shared by the HTTP/1.1 connection tasks
//! ([`h1conn`](crate::h1conn)) and by [`HttpClient`], the keep-alive exchanges with a
//! credential's endpoint (FCM's OAuth2 token endpoint).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http::header::HOST;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use rustls::ClientConfig;
use smol_hyper::rt::FuturesIo;

use crate::error::Error;
use crate::net::{Endpoint, Timeouts, dial, dial_tls, timeout};
use crate::runtime::Runtime;
use crate::tls::Tls;

/// A byte stream hyper can run over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The hyper connection of one HTTP/1.1 link: drive it for requests to make progress.
pub(crate) type H1Connection = Connection<FuturesIo<Box<dyn Stream>>, Full<Bytes>>;

/// An `http://` or `https://` origin spoken to over HTTP/1.1.
#[derive(Debug)]
pub(crate) struct Origin {
    endpoint: Endpoint,
    host_header: HeaderValue,
    tls: Option<Arc<ClientConfig>>,
}

impl Origin {
    /// The origin of `url`; `field` names the setting in errors.
    pub(crate) fn new(url: &Uri, field: &'static str, tls: &Tls) -> Result<Self, Error> {
        let (endpoint, host_header, https) = parse(url, field)?;
        let tls = if https {
            Some(tls.client_config(&[b"http/1.1"])?)
        } else {
            None
        };
        Ok(Origin {
            endpoint,
            host_header,
            tls,
        })
    }

    /// The origin of the `https` URL `url`, dialed with `tls`; `field` names it in errors.
    pub(crate) fn https(
        url: &str,
        field: &'static str,
        tls: Arc<ClientConfig>,
    ) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::Config {
            field,
            reason: format!("{reason}: {url}"),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("must be a URL"))?;
        let (endpoint, host_header, https) = parse(&uri, field)?;
        if !https {
            return Err(invalid("must be an https:// URL"));
        }
        Ok(Origin {
            endpoint,
            host_header,
            tls: Some(tls),
        })
    }

    /// Where it is.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Dials (with TLS for `https`) and shakes hands; the connection must be driven for the
    /// sender to make progress.
    pub(crate) async fn connect<R: Runtime>(
        &self,
        runtime: &R,
        timeouts: Timeouts,
    ) -> Result<(SendRequest<Full<Bytes>>, H1Connection), Error> {
        let stream: Box<dyn Stream> = match &self.tls {
            Some(config) => {
                Box::new(dial_tls(runtime, &self.endpoint, config.clone(), timeouts).await?)
            }
            None => Box::new(dial(runtime, &self.endpoint, timeouts).await?),
        };
        self.handshake(stream).await
    }

    /// Shakes hands over `stream`, already connected (and secured) to this origin.
    pub(crate) async fn handshake(
        &self,
        stream: Box<dyn Stream>,
    ) -> Result<(SendRequest<Full<Bytes>>, H1Connection), Error> {
        http1::handshake(FuturesIo::new(stream))
            .await
            .map_err(|error| Error::Connect {
                host: self.endpoint.to_string(),
                reason: format!("HTTP handshake failed: {error}"),
            })
    }

    /// `request` as an HTTP/1.1 origin-form request with this origin's `Host` header.
    pub(crate) fn origin_form(&self, request: Request<Bytes>) -> Request<Full<Bytes>> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
        parts.headers.insert(HOST, self.host_header.clone());
        Request::from_parts(parts, Full::new(body))
    }
}

/// The endpoint, `Host` header and whether it is `https` of `url`.
fn parse(url: &Uri, field: &'static str) -> Result<(Endpoint, HeaderValue, bool), Error> {
    let invalid = |reason: &str| Error::Config {
        field,
        reason: format!("{reason}: {url}"),
    };
    let host = url.host().ok_or_else(|| invalid("has no host"))?;
    let https = match url.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => true,
        Some(scheme) if *scheme == Scheme::HTTP => false,
        _ => return Err(invalid("must be an http:// or https:// URL")),
    };
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = url.authority().map_or(host, |authority| authority.as_str());
    let host_header = HeaderValue::from_str(authority).map_err(|_| invalid("bad host"))?;
    let endpoint = Endpoint {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    };
    Ok((endpoint, host_header, https))
}

/// Exchanges requests with one origin over a small pool of keep-alive connections.
pub(crate) struct HttpClient<R: Runtime> {
    runtime: R,
    origin: Origin,
    timeouts: Timeouts,
    exchange_timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl<R: Runtime> HttpClient<R> {
    /// A client for the origin of `url` (`http` or `https`); `field` names the setting.
    pub(crate) fn new(
        runtime: R,
        url: &Uri,
        field: &'static str,
        tls: &Tls,
        timeouts: Timeouts,
        exchange_timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(HttpClient {
            runtime,
            origin: Origin::new(url, field, tls)?,
            timeouts,
            exchange_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` and reads the whole response, within the exchange timeout (plus the
    /// connect and handshake timeouts when a new connection is needed).
    pub(crate) async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => self.open().await?,
        };
        let request = self.origin.origin_form(request);
        let endpoint = self.origin.endpoint();
        let exchange = async {
            let failed = |error: hyper::Error| Error::Connect {
                host: endpoint.to_string(),
                reason: format!("HTTP exchange failed: {error}"),
            };
            sender.ready().await.map_err(failed)?;
            let response = sender.send_request(request).await.map_err(failed)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(failed)?.to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        let response = timeout(
            &self.runtime,
            self.exchange_timeout,
            "HTTP exchange",
            endpoint,
            exchange,
        )
        .await?;
        self.put_idle(sender);
        Ok(response)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.push(sender);
        }
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let (sender, connection) = self.origin.connect(&self.runtime, self.timeouts).await?;
        let host = self.origin.endpoint().to_string();
        self.runtime.spawn(async move {
            if let Err(error) = connection.await {
                log::debug!("HTTP connection to {host} ended: {error}");
            }
        });
        log::debug!("HTTP connection to {} opened", self.origin.endpoint());
        Ok(sender)
    }
}
