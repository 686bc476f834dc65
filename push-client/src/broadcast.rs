//! Apple's request/response APIs beside the per-device sending engine: broadcast channel
//! management, broadcast sends, and single Live Activity or widget pushes. Each call builds
//! push-proto's sans-IO request, sends it, and classifies the answer into a typed result:
//! broadcasts and pushes as exchanges on a [`Client`]'s APNs HTTP/2 connections (the device
//! host), channel management on a [`ManagementLink`] of its own.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use push_proto::ApnsToken;
use push_proto::apns::broadcast::{
    ApiError, BroadcastOptions, BroadcastReason, BroadcastRequest, BroadcastSent, BuildError,
    ChannelApi, ChannelId, ChannelInfo, StoragePolicy, classify_broadcast,
};
use push_proto::apns::http2::ApnsId;
use push_proto::apns::live_activity::{self, Change, LiveActivityPush};
use push_proto::apns::{DeviceOptions, classify_device, widgets};
use push_proto::engine::ExchangeFailure;
use thiserror::Error;

use crate::client::Client;
use crate::config_http2::ApnsHttp2Config;
use crate::error::Error;
use crate::management::ManagementLink;
use crate::net::{Endpoint, timeout};
use crate::runtime::Runtime;

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
/// - broadcast sends, Live Activity and widget pushes on the device API (the config's URL),
///   as streams of a [`Client`]'s APNs HTTP/2 connections, with its provider token: the
///   same connections as its sessions' device pushes when made by [`Client::broadcasts`];
/// - channel management on `management_url` (Apple: `api-manage-broadcast[.sandbox]
///   .push.apple.com`, ports 2195 and 2196; see
///   [`Environment::management_url`](push_proto::apns::broadcast::Environment::management_url)),
///   on one HTTP/2 connection of its own, opened on first use and kept, with the same
///   provider token as the client's APNs connections.
///
/// A request is answered before the call returns. A request the server did not process
/// (its connection was closing) is sent again on another connection; nothing else is
/// retried: a transient [`ApiError`] says so with [`ApiError::is_transient`].
pub struct BroadcastClient<R: Runtime> {
    client: Client<R>,
    runtime: R,
    management: ManagementLink<R>,
    channels: ChannelApi,
    device_url: String,
    device: Endpoint,
    bundle_id: String,
    /// Longest wait for a device-host answer: a dial, a handshake and a request.
    device_timeout: Duration,
}

impl<R: Runtime> fmt::Debug for BroadcastClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastClient")
            .field("bundle_id", &self.bundle_id)
            .field("device", &self.device)
            .field("management", &self.management)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> BroadcastClient<R> {
    /// A client for the app of `apns`'s topic, managing channels at `management_url`, with
    /// a [`Client`] of its own for the device API (use [`Client::broadcasts`] to share a
    /// client's connections instead).
    pub fn new(runtime: R, apns: &ApnsHttp2Config, management_url: &str) -> Result<Self, Error> {
        let client = Client::builder()
            .runtime(runtime)
            .apns_http2(apns.clone())
            .build()?;
        Self::sharing(client, apns, management_url)
    }

    /// A client whose device-host requests go through `client` (built with `apns`).
    pub(crate) fn sharing(
        client: Client<R>,
        apns: &ApnsHttp2Config,
        management_url: &str,
    ) -> Result<Self, Error> {
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
        let runtime = client.runtime().clone();
        let management = ManagementLink::new(client.clone(), apns, management_url)?;
        let timeouts = apns.transport.timeouts;
        Ok(BroadcastClient {
            device_timeout: timeouts.connect + timeouts.handshake + apns.transport.request_timeout,
            device_url: apns.core.base_url.clone(),
            device: apns.endpoint.clone(),
            client,
            runtime,
            management,
            channels,
            bundle_id,
        })
    }

    /// Creates a channel with `policy`; APNs gives its id.
    pub async fn create_channel(
        &mut self,
        policy: StoragePolicy,
    ) -> Result<ChannelId, BroadcastError> {
        let request = self.channels.create(policy, None);
        let answer = Box::pin(self.management.exchange(request)).await?;
        Ok(self.channels.classify_create(&answer)?)
    }

    /// Reads a channel's configuration.
    pub async fn read_channel(&mut self, id: &ChannelId) -> Result<ChannelInfo, BroadcastError> {
        let request = self.channels.read(id, None);
        let answer = Box::pin(self.management.exchange(request)).await?;
        Ok(self.channels.classify_read(&answer)?)
    }

    /// Deletes a channel.
    pub async fn delete_channel(&mut self, id: &ChannelId) -> Result<(), BroadcastError> {
        let request = self.channels.delete(id, None);
        let answer = Box::pin(self.management.exchange(request)).await?;
        Ok(self.channels.classify_delete(&answer)?)
    }

    /// Every channel of the app in this environment.
    pub async fn list_channels(&mut self) -> Result<Vec<ChannelId>, BroadcastError> {
        let request = self.channels.list(None);
        let answer = Box::pin(self.management.exchange(request)).await?;
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
        let answer = self.device_exchange(request).await?;
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
        let answer = self.device_exchange(request).await?;
        Ok(classify_device(&answer)?)
    }

    /// Sends a widget push (reload the app's widgets) to one device token.
    pub async fn widgets(
        &mut self,
        token: &ApnsToken,
        options: DeviceOptions,
    ) -> Result<Option<ApnsId>, BroadcastError> {
        let request = widgets::request(&self.device_url, token, &self.bundle_id, options)?;
        let answer = self.device_exchange(request).await?;
        Ok(classify_device(&answer)?)
    }

    /// Sends `request` on the client's APNs connections and waits for the whole answer, at
    /// most a dial, a handshake and a request timeout long: past that the call fails with a
    /// timeout, and a request still waiting for a stream (a pool saturated by device pushes)
    /// may be sent later.
    async fn device_exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let device = &self.device;
        let exchange = async {
            self.client
                .apns_exchange(request)
                .await?
                .map_err(|failure| transport_error(failure, device))
        };
        Box::pin(timeout(
            &self.runtime,
            self.device_timeout,
            "HTTP/2 exchange",
            device,
            exchange,
        ))
        .await
    }
}

/// The client error of an exchange that ended without an answer.
fn transport_error(failure: ExchangeFailure, device: &Endpoint) -> Error {
    match failure {
        ExchangeFailure::Credential(reason) => Error::Config {
            field: "apns provider key",
            reason,
        },
        other => Error::Connect {
            host: device.to_string(),
            reason: format!("HTTP/2 exchange failed: {other}"),
        },
    }
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
