//! Settings of the APNs binary gateway and feedback service: where to connect, how to
//! authenticate, how to pace.

use std::time::Duration;

use push_proto::apns::{Format, GatewayConfig, SilentClose};

use crate::error::Error;
use crate::net::{Endpoint, Timeouts};
use crate::tls::Tls;

/// APNs (binary gateway and feedback service) settings.
///
/// ```
/// # fn main() -> Result<(), push_client::Error> {
/// use push_client::{ApnsConfig, Tls};
/// let apns = ApnsConfig::new("gateway.sandbox.push.apple.com:2195")?
///     .feedback_service("feedback.sandbox.push.apple.com:2196")?
///     .grace(std::time::Duration::from_millis(500));
/// # let _ = apns;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    pub(crate) gateway: Endpoint,
    pub(crate) feedback: Option<Endpoint>,
    pub(crate) tls: Tls,
    pub(crate) core: GatewayConfig,
    pub(crate) timeouts: Timeouts,
    pub(crate) write_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

impl ApnsConfig {
    /// Sends through the gateway at `host:port`, with default settings otherwise.
    pub fn new(gateway: &str) -> Result<Self, Error> {
        Ok(ApnsConfig {
            gateway: Endpoint::parse(gateway, "apns gateway")?,
            feedback: None,
            tls: Tls::default(),
            core: GatewayConfig::default(),
            timeouts: Timeouts::default(),
            write_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
        })
    }

    /// Reads inactive devices from the feedback service at `host:port`.
    pub fn feedback_service(mut self, address: &str) -> Result<Self, Error> {
        self.feedback = Some(Endpoint::parse(address, "apns feedback service")?);
        Ok(self)
    }

    /// TLS roots and the client identity (APNs requires a client certificate).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Every setting of the gateway state machine at once.
    pub fn gateway(mut self, config: GatewayConfig) -> Self {
        self.core = config;
        self
    }

    /// Frame format (command 2 by default); resets the payload limit to the format's.
    pub fn format(mut self, format: Format) -> Self {
        self.core.format = format;
        self.core.payload_limit = format.payload_limit();
        self
    }

    /// Largest payload accepted, in bytes.
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.core.payload_limit = bytes;
        self
    }

    /// How long a notification must go unchallenged to count as delivered.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.core.grace = grace;
        self
    }

    /// Capacity of the resend window.
    pub fn resend_window(mut self, notifications: usize) -> Self {
        self.core.window = notifications;
        self
    }

    /// Whether a full resend window ends with a checkpoint (on by default): a frame the
    /// gateway must reject, whose answer confirms the window at once, after which writing
    /// goes on over a new connection. Off, a full window waits for the grace period, so a
    /// connection carries at most window / grace notifications per second.
    pub fn checkpoints(mut self, on: bool) -> Self {
        self.core.checkpoints = on;
        self
    }

    /// What to do with unconfirmed notifications when the gateway closes silently.
    pub fn silent_close(mut self, policy: SilentClose) -> Self {
        self.core.silent_close = policy;
        self
    }

    /// Connect and TLS handshake timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Longest a write to the gateway, or a read from the feedback service, may stall.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self.read_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_field() {
        let error = ApnsConfig::new("no-port").unwrap_err();
        assert!(error.to_string().contains("`apns gateway`"), "{error}");
    }

    #[test]
    fn setters_reach_the_core_settings() {
        let apns = ApnsConfig::new("localhost:2195")
            .unwrap()
            .format(Format::Enhanced)
            .grace(Duration::from_millis(5))
            .resend_window(7)
            .checkpoints(false);
        assert!(!apns.core.checkpoints);
        assert_eq!(apns.core.payload_limit, 256);
        assert_eq!(apns.core.grace, Duration::from_millis(5));
        assert_eq!(apns.core.window, 7);
    }
}
