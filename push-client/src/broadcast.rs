//! Apple's request/response APIs beside the per-device sending engine: broadcast channel
//! management, broadcast sends, and single Live Activity or widget pushes. Each call builds
//! push-proto's sans-IO request, sends it over an HTTP/2 connection kept per host, and
//! classifies the answer into a typed result.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderValue, Request, Response};
use push_proto::ApnsToken;
use push_proto::apns::broadcast::{
    ApiError, BroadcastOptions, BroadcastReason, BroadcastRequest, BroadcastSent, BuildError,
    ChannelApi, ChannelId, ChannelInfo, StoragePolicy, classify_broadcast,
};
use push_proto::apns::http2::{ApnsId, Auth, Reason};
use push_proto::apns::live_activity::{self, Change, LiveActivityPush};
use push_proto::apns::{DeviceOptions, classify_device, widgets};
use push_proto::engine::StreamEnd;
use rustls::ClientConfig;
use thiserror::Error;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::config_http2::ApnsHttp2Config;
use crate::error::Error;
use crate::h2stream::stream_end;
use crate::net::{Endpoint, Timeouts, dial_tls, https_endpoint, timeout};
use crate::runtime::Runtime;

/// Largest answer body read (a list of 10,000 channel ids fits many times).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a [`BroadcastClient`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The request could not be built (a payload over its limit, an invalid id, ...);
    /// nothing was sent.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// APNs answered with an error (`reason` typed), or with something undocumented.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The connection failed (dial, TLS, HTTP/2, timeout).
    #[error(transparent)]
    Transport(#[from] Error),
}

impl BroadcastError {
    /// The APNs reason of a rejection (`ChannelNotRegistered`, `BadPayload`, ...).
    pub fn reason(&self) -> Option<&BroadcastReason> {
        match self {
            BroadcastError::Api(ApiError::Rejected { reason, .. }) => Some(reason),
            _ => None,
        }
    }
}

/// A client for APNs' request/response APIs, on runtime `R`, with the credentials, TLS
/// settings and timeouts of an [`ApnsHttp2Config`] (its topic is the app's bundle id):
///
/// - channel management on `management_url` (Apple: `api-manage-broadcast[.sandbox]
///   .push.apple.com`, ports 2195 and 2196; see
///   [`Environment::management_url`](push_proto::apns::broadcast::Environment::management_url));
/// - broadcast sends, Live Activity and widget pushes on the config's URL (the device API).
///
/// One HTTP/2 connection is opened per host on first use and kept; a request is answered
/// before the call returns. A request the server did not process (its connection was
/// closing) is sent once more on a new connection; nothing else is retried: a transient
/// [`ApiError`] says so with [`ApiError::is_transient`].
pub struct BroadcastClient<R: Runtime> {
    runtime: R,
    channels: ChannelApi,
    device_url: String,
    bundle_id: String,
    management: Endpoint,
    device: Endpoint,
    tls: Arc<ClientConfig>,
    timeouts: Timeouts,
    request_timeout: Duration,
    auth: Auth,
    connections: Vec<(Endpoint, SendRequest<Bytes>)>,
}

impl<R: Runtime> fmt::Debug for BroadcastClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastClient")
            .field("bundle_id", &self.bundle_id)
            .field("management", &self.management)
            .field("device", &self.device)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> BroadcastClient<R> {
    /// A client for the app of `apns`'s topic, managing channels at `management_url`.
    pub fn new(runtime: R, apns: &ApnsHttp2Config, management_url: &str) -> Result<Self, Error> {
        let bundle_id = apns.core.topic.clone().ok_or(Error::Config {
            field: "apns topic",
            reason: "is required: it is the app's bundle id for channels and broadcasts".into(),
        })?;
        let channels = ChannelApi::with_base_url(management_url, &bundle_id).map_err(|error| {
            Error::Config {
                field: "broadcast management url",
                reason: error.to_string(),
            }
        })?;
        let management = https_endpoint(management_url, "broadcast management url")?;
        let auth = apns.auth(runtime.now())?;
        Ok(BroadcastClient {
            tls: apns.transport.tls.client_config(&[b"h2"])?,
            timeouts: apns.transport.timeouts,
            request_timeout: apns.transport.request_timeout,
            device_url: apns.core.base_url.clone(),
            device: apns.endpoint.clone(),
            runtime,
            channels,
            bundle_id,
            management,
            auth,
            connections: Vec::new(),
        })
    }

    /// Creates a channel with `policy`; APNs gives its id.
    pub async fn create_channel(
        &mut self,
        policy: StoragePolicy,
    ) -> Result<ChannelId, BroadcastError> {
        let request = self.channels.create(policy, None);
        let answer = Box::pin(self.exchange(Host::Management, request)).await?;
        Ok(self.channels.classify_create(&answer)?)
    }

    /// Reads a channel's configuration.
    pub async fn read_channel(&mut self, id: &ChannelId) -> Result<ChannelInfo, BroadcastError> {
        let request = self.channels.read(id, None);
        let answer = Box::pin(self.exchange(Host::Management, request)).await?;
        Ok(self.channels.classify_read(&answer)?)
    }

    /// Deletes a channel.
    pub async fn delete_channel(&mut self, id: &ChannelId) -> Result<(), BroadcastError> {
        let request = self.channels.delete(id, None);
        let answer = Box::pin(self.exchange(Host::Management, request)).await?;
        Ok(self.channels.classify_delete(&answer)?)
    }

    /// Every channel of the app in this environment.
    pub async fn list_channels(&mut self) -> Result<Vec<ChannelId>, BroadcastError> {
        let request = self.channels.list(None);
        let answer = Box::pin(self.exchange(Host::Management, request)).await?;
        Ok(self.channels.classify_list(&answer)?)
    }

    /// Broadcasts a Live Activity `change` on `channel`.
    pub async fn broadcast(
        &mut self,
        channel: &ChannelId,
        change: &Change,
        options: BroadcastOptions,
    ) -> Result<BroadcastSent, BroadcastError> {
        let request = BroadcastRequest::new(
            &self.device_url,
            &self.bundle_id,
            channel.clone(),
            change,
            options,
        )?
        .to_request();
        let answer = Box::pin(self.exchange(Host::Device, request)).await?;
        Ok(classify_broadcast(&answer)?)
    }

    /// Sends a Live Activity push (start, update or end) to one device token; gives the
    /// `apns-id` APNs answered.
    pub async fn live_activity(
        &mut self,
        token: &ApnsToken,
        push: &LiveActivityPush,
        options: DeviceOptions,
    ) -> Result<Option<ApnsId>, BroadcastError> {
        let request =
            live_activity::request(&self.device_url, token, &self.bundle_id, push, options)?;
        let answer = Box::pin(self.exchange(Host::Device, request)).await?;
        Ok(classify_device(&answer)?)
    }

    /// Sends a widget push (reload the app's widgets) to one device token.
    pub async fn widgets(
        &mut self,
        token: &ApnsToken,
        options: DeviceOptions,
    ) -> Result<Option<ApnsId>, BroadcastError> {
        let request = widgets::request(&self.device_url, token, &self.bundle_id, options)?;
        let answer = Box::pin(self.exchange(Host::Device, request)).await?;
        Ok(classify_device(&answer)?)
    }

    /// Sends `request` to `host` and reads the whole answer (boxed by the callers: the
    /// dial, TLS and HTTP/2 futures are large). An answer of `403
    /// ExpiredProviderToken` marks the token for replacement by the next request.
    async fn exchange(
        &mut self,
        host: Host,
        mut request: Request<Bytes>,
    ) -> Result<Response<Bytes>, Error> {
        let generation = self.authorize(&mut request)?;
        let endpoint = match host {
            Host::Management => self.management.clone(),
            Host::Device => self.device.clone(),
        };
        // A request the server did not process (its connection was closing: GOAWAY, a
        // refused stream) is sent once more, on a new connection.
        let mut unprocessed_before = false;
        let answer = loop {
            let send = self.connection(&endpoint).await?;
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
                    self.connections.retain(|(open, _)| *open != endpoint);
                    match failure {
                        Failure::Unprocessed(_) if !unprocessed_before => {
                            unprocessed_before = true;
                        }
                        Failure::Unprocessed(error) | Failure::Other(error) => return Err(error),
                    }
                }
            }
        };
        if let (Auth::Token(auth), Some(generation)) = (&mut self.auth, generation)
            && is_expired_token(&answer)
        {
            auth.handle_expired(generation);
        }
        Ok(answer)
    }

    /// Adds `authorization: bearer <JWT>` with token auth; gives the token's generation.
    fn authorize(&mut self, request: &mut Request<Bytes>) -> Result<Option<u64>, Error> {
        let Auth::Token(auth) = &mut self.auth else {
            return Ok(None);
        };
        let now = self.runtime.now();
        let refused = |reason: String| Error::Config {
            field: "apns provider key",
            reason,
        };
        let Some((token, _)) = auth.token(now).map_err(|e| refused(e.to_string()))? else {
            return Err(refused(
                "APNs refused the provider token less than 20 minutes after it was signed; \
                 a new one may not be signed yet"
                    .into(),
            ));
        };
        let value = HeaderValue::from_str(&format!("bearer {}", token.jwt()))
            .map_err(|_| refused("the token is not a valid header value".into()))?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        Ok(Some(token.generation()))
    }

    /// The open connection to `endpoint`, dialed when there is none.
    async fn connection(&mut self, endpoint: &Endpoint) -> Result<SendRequest<Bytes>, Error> {
        if let Some((_, send)) = self.connections.iter().find(|(open, _)| open == endpoint) {
            return Ok(send.clone());
        }
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
        self.connections.push((endpoint.clone(), send.clone()));
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

/// Which host a request goes to.
#[derive(Debug, Clone, Copy)]
enum Host {
    /// The channel-management host.
    Management,
    /// The device API's host (broadcasts, device pushes).
    Device,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_of_a_rejection() {
        let error = BroadcastError::Api(ApiError::Rejected {
            status: http::StatusCode::BAD_REQUEST,
            reason: BroadcastReason::ChannelNotRegistered,
            request_id: None,
            retry_after: None,
        });
        assert_eq!(error.reason(), Some(&BroadcastReason::ChannelNotRegistered));
        assert!(
            error.to_string().contains("ChannelNotRegistered"),
            "{error}"
        );
        let build = BroadcastError::from(BuildError::BundleId("x/y".into()));
        assert_eq!(build.reason(), None);
    }
}
