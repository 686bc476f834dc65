//! [`ManagementLink`]: the HTTP/2 connection to APNs' channel-management host (Apple:
//! `api-manage-broadcast[.sandbox].push.apple.com`, ports 2195 and 2196), which no device
//! push uses: one connection, opened on first use and kept, one request answered at a time,
//! authenticated with the provider token of a [`Client`]'s APNs connections (or the
//! configured client certificate).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{Request, Response};
use push_proto::apns::broadcast::{ApiError, BroadcastReason};
use push_proto::apns::classify_device;
use push_proto::apns::http2::Reason;
use push_proto::engine::{Grant, StreamEnd};
use rustls::ClientConfig;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::client::Client;
use crate::config_http2::ApnsHttp2Config;
use crate::error::Error;
use crate::h2stream::stream_end;
use crate::net::{Endpoint, Timeouts, dial_tls, https_endpoint, timeout};
use crate::runtime::Runtime;

/// Largest answer body read (a list of 10,000 channel ids fits many times).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The connection to the channel-management host, authorized by `client`'s APNs credential.
pub(crate) struct ManagementLink<R: Runtime> {
    runtime: R,
    client: Client<R>,
    endpoint: Endpoint,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    request_timeout: Duration,
    connection: Option<SendRequest<Bytes>>,
}

impl<R: Runtime> fmt::Debug for ManagementLink<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementLink")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> ManagementLink<R> {
    /// A link to `url` with `apns`'s TLS settings (and client certificate) and timeouts,
    /// authorized by the provider token of `client` (built with `apns`).
    pub(crate) fn new(client: Client<R>, apns: &ApnsHttp2Config, url: &str) -> Result<Self, Error> {
        let endpoint = https_endpoint(url, "broadcast management url")?;
        Ok(ManagementLink {
            tls: apns.transport.tls.client_config(&[b"h2"])?,
            timeouts: apns.transport.timeouts,
            request_timeout: apns.transport.request_timeout,
            runtime: client.runtime().clone(),
            client,
            endpoint,
            connection: None,
        })
    }

    /// Sends `request` and reads the whole answer. A request the server did not process
    /// (its connection was closing: GOAWAY, a refused stream) is sent once more on a new
    /// connection. An answer of `403 ExpiredProviderToken` marks the shared token for
    /// replacement by the next request.
    pub(crate) async fn exchange(
        &mut self,
        mut request: Request<Bytes>,
    ) -> Result<Response<Bytes>, Error> {
        let generation = self.authorize(&mut request).await?;
        let endpoint = self.endpoint.clone();
        let mut unprocessed_before = false;
        let answer = loop {
            let send = self.connection().await?;
            let answer = timeout(
                &self.runtime,
                self.request_timeout,
                "HTTP/2 exchange",
                &endpoint,
                async { Ok(round_trip(send, copy(&request), &endpoint).await) },
            )
            .await
            .map_err(Failure::Other)
            .and_then(|answer| answer);
            match answer {
                Ok(answer) => break answer,
                Err(failure) => {
                    // A broken, closing or stuck connection is not used again.
                    self.connection = None;
                    match failure {
                        Failure::Unprocessed(_) if !unprocessed_before => {
                            unprocessed_before = true;
                        }
                        Failure::Unprocessed(error) | Failure::Other(error) => return Err(error),
                    }
                }
            }
        };
        if let Some(generation) = generation
            && is_expired_token(&answer)
        {
            self.client.apns_credential_refused(generation).await?;
        }
        Ok(answer)
    }

    /// Adds the client's `authorization: bearer <JWT>` with token auth (nothing with a
    /// client certificate); gives the token's generation.
    async fn authorize(&mut self, request: &mut Request<Bytes>) -> Result<Option<u64>, Error> {
        let refused = |reason: String| Error::Config {
            field: "apns provider key",
            reason,
        };
        let grant = self.client.apns_grant().await?.ok_or(Error::Config {
            field: "apns http2",
            reason: "is required for channel management: its credential is used".into(),
        })?;
        match grant {
            Grant::Ready {
                authorization: Some(authorization),
                generation,
            } => {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, authorization);
                Ok(Some(generation))
            }
            Grant::Ready {
                authorization: None,
                ..
            } => Ok(None),
            Grant::Wait => Err(refused(
                "APNs refused the provider token less than 20 minutes after it was signed; \
                 a new one may not be signed yet"
                    .into(),
            )),
            Grant::Fail(reason) => Err(refused(reason)),
        }
    }

    /// The open connection, dialed when there is none.
    async fn connection(&mut self) -> Result<SendRequest<Bytes>, Error> {
        if let Some(send) = &self.connection {
            return Ok(send.clone());
        }
        let endpoint = &self.endpoint;
        let stream = dial_tls(&self.runtime, endpoint, self.tls.clone(), self.timeouts).await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::Tls {
                host: endpoint.to_string(),
                reason: "the server did not agree to HTTP/2 (ALPN h2)".into(),
            });
        }
        let handshake = async {
            h2::client::handshake(stream.compat())
                .await
                .map_err(|error| Error::Connect {
                    host: endpoint.to_string(),
                    reason: format!("HTTP/2 handshake failed: {error}"),
                })
        };
        let (send, connection) = timeout(
            &self.runtime,
            self.timeouts.handshake,
            "HTTP/2 handshake",
            endpoint,
            handshake,
        )
        .await?;
        let host = endpoint.to_string();
        self.runtime.spawn(async move {
            if let Err(error) = connection.await {
                log::debug!("the HTTP/2 connection to {host} ended: {error}");
            }
        });
        self.connection = Some(send.clone());
        Ok(send)
    }
}

/// True for an answer `{"reason":"ExpiredProviderToken"}`.
fn is_expired_token(answer: &Response<Bytes>) -> bool {
    matches!(
        classify_device(answer),
        Err(ApiError::Rejected {
            reason: BroadcastReason::Provider(Reason::ExpiredProviderToken),
            ..
        })
    )
}

/// Why an exchange failed.
enum Failure {
    /// The server did not process the request: it may be sent again.
    Unprocessed(Error),
    /// Anything else.
    Other(Error),
}

/// A copy of `request` (method, URI, headers, body).
fn copy(request: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Sends one request and reads its answer, at most [`MAX_ANSWER`] bytes.
async fn round_trip(
    send: SendRequest<Bytes>,
    request: Request<Bytes>,
    endpoint: &Endpoint,
) -> Result<Response<Bytes>, Failure> {
    let failed = |error: h2::Error| {
        let unprocessed = matches!(stream_end(&error), StreamEnd::GoAway | StreamEnd::Refused);
        let error = Error::Connect {
            host: endpoint.to_string(),
            reason: format!("HTTP/2 exchange failed: {error}"),
        };
        if unprocessed {
            Failure::Unprocessed(error)
        } else {
            Failure::Other(error)
        }
    };
    let (head, body) = request.into_parts();
    // A connection that cannot take a new stream has sent nothing of this request.
    let mut send = send.ready().await.map_err(|error| match failed(error) {
        Failure::Other(error) | Failure::Unprocessed(error) => Failure::Unprocessed(error),
    })?;
    let (answer, mut stream) = send
        .send_request(Request::from_parts(head, ()), body.is_empty())
        .map_err(failed)?;
    if !body.is_empty() {
        stream.send_data(body, true).map_err(failed)?;
    }
    let (head, mut incoming) = answer.await.map_err(failed)?.into_parts();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = incoming.data().await {
        let chunk = chunk.map_err(failed)?;
        let _ = incoming.flow_control().release_capacity(chunk.len());
        if buffer.len() + chunk.len() > MAX_ANSWER {
            return Err(Failure::Other(Error::Connect {
                host: endpoint.to_string(),
                reason: format!("answer over {MAX_ANSWER} bytes"),
            }));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Response::from_parts(head, buffer.freeze()))
}
