//! Dialing: TCP and TLS connections with timeouts, written once for every runtime.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::error::Error;
use crate::runtime::Runtime;

/// A `host:port` to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host name or IP address, also the name the server certificate must carry.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
}

/// The endpoint of an `https://host[:port]` URL (port 443 by default); `field` names the
/// setting in the error.
pub(crate) fn https_endpoint(url: &str, field: &'static str) -> Result<Endpoint, Error> {
    let invalid = |reason: &str| Error::Config {
        field,
        reason: format!("{reason}, got {url:?}"),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("must be a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid("must be https://"));
    }
    let host = uri.host().ok_or_else(|| invalid("has no host"))?;
    Ok(Endpoint {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: uri.port_u16().unwrap_or(443),
    })
}

impl Endpoint {
    /// Parses `host:port`; `field` names the setting in the error.
    pub(crate) fn parse(text: &str, field: &'static str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::Config {
            field,
            reason: format!("{reason}, got {text:?}"),
        };
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| invalid("must be host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("has no host"));
        }
        let port = port.parse().map_err(|_| invalid("has no valid port"))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Timeouts for opening connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// TLS handshake.
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
        }
    }
}

/// Runs `future`, or fails with [`Error::Timeout`] after `after`.
pub(crate) async fn timeout<R: Runtime, T>(
    runtime: &R,
    after: Duration,
    what: &'static str,
    endpoint: &Endpoint,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let deadline = runtime.now() + after;
    let expired = async {
        runtime.sleep_until(deadline).await;
        Err(Error::Timeout {
            what,
            host: endpoint.to_string(),
            after,
        })
    };
    futures_lite::future::or(future, expired).await
}

/// Opens a TCP connection.
pub(crate) async fn dial<R: Runtime>(
    runtime: &R,
    endpoint: &Endpoint,
    timeouts: Timeouts,
) -> Result<R::Tcp, Error> {
    let connect = async {
        runtime
            .connect(&endpoint.host, endpoint.port)
            .await
            .map_err(|error| Error::Connect {
                host: endpoint.to_string(),
                reason: error.to_string(),
            })
    };
    timeout(runtime, timeouts.connect, "connect", endpoint, connect).await
}

/// Opens a TCP connection and completes a TLS handshake, verifying the server as `endpoint.host`.
pub(crate) async fn dial_tls<R: Runtime>(
    runtime: &R,
    endpoint: &Endpoint,
    config: Arc<ClientConfig>,
    timeouts: Timeouts,
) -> Result<TlsStream<R::Tcp>, Error> {
    let tcp = dial(runtime, endpoint, timeouts).await?;
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| Error::Config {
        field: "host",
        reason: format!("{:?} is not a valid TLS server name", endpoint.host),
    })?;
    let handshake = async {
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|error| tls_error(endpoint, &error))
    };
    timeout(
        runtime,
        timeouts.handshake,
        "TLS handshake",
        endpoint,
        handshake,
    )
    .await
}

/// Names a TLS failure (it arrives wrapped in an `io::Error`).
pub(crate) fn tls_error(endpoint: &Endpoint, error: &std::io::Error) -> Error {
    let is_tls = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_tls {
        Error::Tls {
            host: endpoint.to_string(),
            reason: error.to_string(),
        }
    } else {
        Error::Connect {
            host: endpoint.to_string(),
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_name_the_field() {
        let endpoint = Endpoint::parse("gateway.push.apple.com:2195", "gateway").unwrap();
        assert_eq!(endpoint.host, "gateway.push.apple.com");
        assert_eq!(endpoint.port, 2195);
        assert_eq!(Endpoint::parse("[::1]:443", "x").unwrap().host, "::1");
        let error = Endpoint::parse("localhost", "gateway").unwrap_err();
        assert!(error.to_string().contains("`gateway`"), "{error}");
        assert!(Endpoint::parse("host:99999", "gateway").is_err());
        assert!(Endpoint::parse(":80", "gateway").is_err());
    }
}
