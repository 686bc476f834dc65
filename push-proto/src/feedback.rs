//! The outcome of one notification for one device.

use std::fmt;

use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::device::{Device, TokenError};

/// What happened to one device's notification: delivered (`error` is `None`), delivered under a
/// new canonical token (`new_token`), or failed with a [`DeviceError`].
///
/// Every device handed to the core ends in exactly one `Feedback`. Applications usually act on
/// two cases: [`DeviceError::InvalidDevice`] (delete the token) and `new_token` (replace the
/// stored token with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    /// The device, exactly as it was handed in.
    #[serde(flatten)]
    pub device: Device,
    /// GCM's canonical registration id, when the service says the stored token is outdated.
    pub new_token: Option<String>,
    /// Why the notification failed, or `None` when it was delivered.
    pub error: Option<DeviceError>,
    /// What the provider answered about it (HTTP providers only).
    #[serde(flatten)]
    pub receipt: Receipt,
}

/// What a provider answered about one notification, beyond its fate: kept so that an
/// application can log the provider's id, act on the reason, or respect the time a device
/// was last confirmed invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The provider's id of the notification (APNs' `apns-id`, FCM's message id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider's reason or error code of a failure (`BadDeviceToken`, `UNREGISTERED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an invalid device: when the provider last confirmed the token invalid
    /// (milliseconds since the epoch; APNs' 410 `timestamp`). A device that registered again
    /// after it must be kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unregistered_at: Option<u64>,
}

impl Feedback {
    /// A delivered notification.
    pub fn delivered(device: Device) -> Self {
        Feedback {
            device,
            new_token: None,
            error: None,
            receipt: Receipt::default(),
        }
    }

    /// A delivered notification whose device has a new canonical token.
    pub fn replaced(device: Device, new_token: String) -> Self {
        Feedback {
            device,
            new_token: Some(new_token),
            error: None,
            receipt: Receipt::default(),
        }
    }

    /// A failed notification.
    pub fn failed(device: Device, error: DeviceError) -> Self {
        Feedback {
            device,
            new_token: None,
            error: Some(error),
            receipt: Receipt::default(),
        }
    }

    /// True when the notification was delivered (possibly under a new token).
    pub fn is_delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Why a notification could not be delivered to one device.
///
/// Each variant has a stable snake_case [`code`](DeviceError::code), used in JSON output and
/// logs; the `Display` form adds the detail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The service says the token is no longer valid (APNs status 8, the feedback service,
    /// GCM `NotRegistered` / `InvalidRegistration` / `MismatchSenderId`, FCM `UNREGISTERED` /
    /// `SENDER_ID_MISMATCH`). Delete the token.
    #[error("invalid_device: the service marked this device invalid; remove it")]
    InvalidDevice,
    /// The token is not well-formed for its platform; it was never sent.
    #[error("invalid_token_format: {0}")]
    InvalidTokenFormat(#[from] TokenError),
    /// The payload, encoded for this platform, is larger than the service accepts.
    #[error("payload_too_large: {size} bytes, limit {limit}")]
    PayloadTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// The payload cannot be expressed for this platform (e.g. a reserved custom key).
    #[error("invalid_payload: {0}")]
    InvalidPayload(String),
    /// The platform name was not recognised (raised by front ends reading device lists).
    #[error("unknown_platform: {0:?}")]
    UnknownPlatform(String),
    /// No provider is configured for the device's platform.
    #[error("no_provider: no provider is configured for {0}")]
    NoProvider(crate::Platform),
    /// The service stayed unavailable for every allowed attempt.
    #[error("unavailable: gave up after {attempts} attempts, last error: {last_error}")]
    Unavailable {
        /// How many times the notification was sent.
        attempts: u32,
        /// The last transient error seen.
        last_error: String,
    },
    /// The service refused this notification permanently, with its own code.
    #[error("rejected: {provider} said {code}")]
    Rejected {
        /// `apns`, `gcm`, `fcm` (or `push` for the dispatcher's own refusals).
        provider: &'static str,
        /// The provider's code, e.g. `7 (invalid payload size)` or `MessageTooBig`.
        code: String,
    },
    /// The connection closed without a verdict and the configured policy is to report such
    /// notifications rather than risk sending them twice: they may or may not have arrived.
    #[error("unconfirmed: the connection closed before the notification was confirmed")]
    Unconfirmed,
}

impl DeviceError {
    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::InvalidDevice => "invalid_device",
            DeviceError::InvalidTokenFormat(_) => "invalid_token_format",
            DeviceError::PayloadTooLarge { .. } => "payload_too_large",
            DeviceError::InvalidPayload(_) => "invalid_payload",
            DeviceError::UnknownPlatform(_) => "unknown_platform",
            DeviceError::NoProvider(_) => "no_provider",
            DeviceError::Unavailable { .. } => "unavailable",
            DeviceError::Rejected { .. } => "rejected",
            DeviceError::Unconfirmed => "unconfirmed",
        }
    }

    /// True when the application should delete the token.
    pub fn is_invalid_device(&self) -> bool {
        matches!(self, DeviceError::InvalidDevice)
    }
}

/// Serialized as its stable code; the detail is in `Display`.
impl Serialize for DeviceError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl fmt::Display for Feedback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.device.platform, self.device.token)?;
        match (&self.error, &self.new_token) {
            (Some(error), _) => write!(f, "{error}"),
            (None, Some(new_token)) => write!(f, "delivered, new token {new_token}"),
            (None, None) => f.write_str("delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_serializes_to_the_documented_json_shape() {
        let failed = Feedback::failed(Device::ios("ab"), DeviceError::InvalidDevice);
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"platform":"ios","token":"ab","new_token":null,"error":"invalid_device"}"#
        );
        let replaced = Feedback::replaced(Device::android("old"), "new".into());
        assert_eq!(
            serde_json::to_string(&replaced).unwrap(),
            r#"{"platform":"android","token":"old","new_token":"new","error":null}"#
        );
    }

    #[test]
    fn codes_are_stable_snake_case() {
        let errors = [
            DeviceError::InvalidDevice,
            DeviceError::InvalidTokenFormat(TokenError::GcmEmpty),
            DeviceError::PayloadTooLarge { size: 3, limit: 2 },
            DeviceError::InvalidPayload("x".into()),
            DeviceError::UnknownPlatform("x".into()),
            DeviceError::NoProvider(crate::Platform::Ios),
            DeviceError::Unavailable {
                attempts: 3,
                last_error: "Unavailable".into(),
            },
            DeviceError::Rejected {
                provider: "gcm",
                code: "MessageTooBig".into(),
            },
            DeviceError::Unconfirmed,
        ];
        let codes: Vec<_> = errors.iter().map(DeviceError::code).collect();
        assert_eq!(
            codes,
            [
                "invalid_device",
                "invalid_token_format",
                "payload_too_large",
                "invalid_payload",
                "unknown_platform",
                "no_provider",
                "unavailable",
                "rejected",
                "unconfirmed"
            ]
        );
        for error in &errors {
            assert!(error.to_string().starts_with(error.code()));
        }
    }
}
