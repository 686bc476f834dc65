//! [`Credential`]: what goes into a request's `authorization` header, behind one seam.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;

/// What a credential allows at a given moment.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Send now with this header (none for client certificates); `generation` names the
    /// credential, so that a refusal renews only the one that was refused.
    Ready {
        /// The `authorization` header value.
        authorization: Option<HeaderValue>,
        /// Which credential it is.
        generation: u64,
    },
    /// Not yet: requests wait (a token request is in flight, or a refresh is not allowed yet).
    Wait,
    /// The credential cannot be made: the notification asking fails with this description.
    Fail(String),
}

impl Grant {
    /// The header and generation to send with (`Ok(None)`: wait), or why there is none.
    pub(crate) fn ready(self) -> Result<Option<(Option<HeaderValue>, u64)>, String> {
        match self {
            Grant::Ready {
                authorization,
                generation,
            } => Ok(Some((authorization, generation))),
            Grant::Wait => Ok(None),
            Grant::Fail(error) => Err(error),
        }
    }
}

/// The credential cannot be had: the notifications waiting for it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialFailure {
    /// Refused for good (wrong key, revoked account): they fail as `rejected`.
    Refused(String),
    /// Repeated transient failures: they fail as `unavailable`.
    Unavailable(String),
}

/// Counters a credential keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialStats {
    /// Requests to the credential's endpoint handed out.
    pub requests: u64,
    /// New credentials in use (tokens signed or obtained).
    pub refreshes: u64,
    /// Credential requests that failed.
    pub failures: u64,
}

/// A source of `authorization` headers with the engine's handle/poll shape: an APNs provider
/// token signed locally, an OAuth2 access token obtained from an endpoint, a fixed key, or
/// nothing (client certificates).
pub trait Credential {
    /// Events worth reporting (a new token, a failed token request, ...).
    type Event;

    /// What a request sent at `now` carries.
    fn grant(&mut self, now: Instant) -> Grant;

    /// The provider refused credential `generation` (expired, revoked): renew it.
    fn handle_rejected(&mut self, generation: u64);

    /// While requests wait: when the credential's state changes by itself (a refresh becomes
    /// allowed, a token request's retry delay ends).
    fn poll_timeout(&self) -> Option<Instant>;

    /// A request to the credential's own endpoint, when one is needed now; `Err` when it
    /// cannot even be made (the waiting notifications fail).
    fn poll_request(&mut self, _now: Instant) -> Option<Result<http::Request<Bytes>, String>> {
        None
    }

    /// The endpoint answered; `Some` when the waiting notifications must fail.
    fn handle_response(
        &mut self,
        _response: &http::Response<Bytes>,
        _now: Instant,
    ) -> Option<CredentialFailure> {
        None
    }

    /// The endpoint request failed in transport; `Some` when the waiting notifications must
    /// fail.
    fn handle_failure(&mut self, _reason: &str, _now: Instant) -> Option<CredentialFailure> {
        None
    }

    /// Re-anchors the wall clock (`unix_now` UNIX seconds at `now`) for claims like `iat`.
    fn handle_wall_clock(&mut self, _now: Instant, _unix_now: u64) {}

    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Counters since creation.
    fn stats(&self) -> CredentialStats;
}

/// A credential that never changes: a fixed `authorization` header (GCM's `key=<API key>`),
/// or none (a TLS client certificate authenticates). `Debug` never shows the header.
#[derive(Clone, Default)]
pub struct FixedCredential {
    authorization: Option<HeaderValue>,
}

impl FixedCredential {
    /// No `authorization` header.
    pub fn none() -> Self {
        FixedCredential::default()
    }

    /// `authorization` on every request (marked sensitive).
    pub fn header(mut authorization: HeaderValue) -> Self {
        authorization.set_sensitive(true);
        FixedCredential {
            authorization: Some(authorization),
        }
    }
}

impl fmt::Debug for FixedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.authorization.as_ref().map(|_| "<redacted>");
        f.debug_struct("FixedCredential")
            .field("authorization", &shown)
            .finish()
    }
}

impl Credential for FixedCredential {
    type Event = std::convert::Infallible;

    fn grant(&mut self, _now: Instant) -> Grant {
        Grant::Ready {
            authorization: self.authorization.clone(),
            generation: 0,
        }
    }

    fn handle_rejected(&mut self, _generation: u64) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        None
    }

    fn stats(&self) -> CredentialStats {
        CredentialStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_header_is_granted_and_never_shown() {
        let mut key = FixedCredential::header(HeaderValue::from_static("key=secret"));
        assert!(!format!("{key:?}").contains("secret"));
        let Grant::Ready { authorization, .. } = key.grant(Instant::now()) else {
            panic!("a fixed credential is always ready");
        };
        assert_eq!(authorization.unwrap(), "key=secret");
        let Grant::Ready { authorization, .. } = FixedCredential::none().grant(Instant::now())
        else {
            panic!("no credential is always ready");
        };
        assert!(authorization.is_none());
    }
}
