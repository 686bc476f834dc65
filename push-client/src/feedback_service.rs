//! The APNs feedback service: which devices Apple found inactive, and since when.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::AsyncReadExt;
use push_proto::apns::FeedbackDecoder;
use push_proto::{Device, DeviceError, Feedback};
use rustls::ClientConfig;

use crate::error::Error;
use crate::net::{Endpoint, Timeouts, dial_tls, timeout};
use crate::runtime::Runtime;

/// A device the feedback service reported: the app is gone from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveDevice {
    /// The device; its token in lowercase hex.
    pub device: Device,
    /// When APNs decided the app was gone (UNIX seconds). Delete the token only if the device
    /// did not register again after this time.
    pub timestamp: u32,
}

impl InactiveDevice {
    /// The timestamp as a `SystemTime`.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.timestamp.into())
    }

    /// The device as an `invalid_device` feedback.
    pub fn feedback(&self) -> Feedback {
        Feedback::failed(self.device.clone(), DeviceError::InvalidDevice)
    }
}

/// The devices one read of the feedback service returned.
pub type InactiveDevices = Vec<InactiveDevice>;

#[derive(Debug)]
pub(crate) struct FeedbackService {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) timeouts: Timeouts,
    pub(crate) read_timeout: Duration,
}

impl FeedbackService {
    /// Connects, reads every tuple until the service closes, and decodes them.
    pub(crate) async fn fetch<R: Runtime>(&self, runtime: &R) -> Result<InactiveDevices, Error> {
        let endpoint = &self.endpoint;
        let mut stream = dial_tls(runtime, endpoint, self.tls.clone(), self.timeouts).await?;
        log::info!("reading the APNs feedback service {endpoint}");
        let mut decoder = FeedbackDecoder::new();
        let mut devices = Vec::new();
        let mut buffer = vec![0u8; 4096];
        loop {
            let read = async {
                stream
                    .read(&mut buffer)
                    .await
                    .map_err(|error| crate::net::tls_error(endpoint, &error))
            };
            let n = timeout(runtime, self.read_timeout, "read", endpoint, read).await?;
            if n == 0 {
                break;
            }
            decoder.handle_input(&buffer[..n]);
            while let Some(tuple) = decoder.poll_tuple() {
                let Some(token) = tuple.apns_token() else {
                    log::warn!(
                        "feedback tuple with a {}-byte token skipped",
                        tuple.token.len()
                    );
                    continue;
                };
                devices.push(InactiveDevice {
                    device: Device::ios(token.to_hex()),
                    timestamp: tuple.timestamp,
                });
            }
        }
        decoder.finish().map_err(|truncated| Error::Tls {
            host: endpoint.to_string(),
            reason: format!("the feedback service ended mid-tuple: {truncated}"),
        })?;
        Ok(devices)
    }
}
