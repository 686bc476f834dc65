//! One engine for every HTTP provider: the request/response [`Sender`] and the HTTP/2
//! connection policy ([`Pool`]) that APNs HTTP/2 and FCM HTTP v1 (and any later provider)
//! share.
//!
//! A provider is two small pieces plugged into the engine:
//! - a [`Protocol`]: how to build the request for one notification, and what a response
//!   means ([`Answer`], one shared [`Verdict`] type);
//! - a [`Credential`]: what goes into the `authorization` header (an APNs provider token, an
//!   OAuth2 access token, nothing for client certificates), with the same handle/poll shape
//!   whatever it is.
//!
//! Everything else is the engine's, written once: the queue of notifications and the retries
//! waiting for their time, attempts bounded per notification, backoff with jitter and
//! `Retry-After`, the time to live, free resends of streams the server did not process
//! (bounded), the connections of the route (dial, backoff, give up, stream limits, GOAWAY,
//! idle ones closed, more opened under load), stats, and one [`Report`] per notification.
//!
//! The transport (push-client) only moves values: it performs each [`Action`] and feeds back
//! each [`Input`]. It reports facts ("the server reset the stream with REFUSED_STREAM", "the
//! connection failed under the stream, detected locally"); the engine decides what they mean.
//!
//! ```text
//!   queue ─► Sender ──Action::Dial / Send / Close / CredentialRequest──► transport
//!              ▲                                                           │
//!              └──Input::Connected / MaxStreams / Response / StreamEnd ────┘
//! ```

mod action;
mod config;
mod credential;
mod in_flight;
mod pool;
mod protocol;
// The rate controller of issue 12, proven against simulated quotas; compiled for its tests
// only until the sender paces requests through it (the next step of that issue).
#[cfg(test)]
mod rate;
mod report;
mod scaling;
mod sender;
#[cfg(test)]
pub(crate) mod test_support;
mod verdict;

pub use action::{Action, ConnId, Input, RequestId, StreamEnd};
pub use config::{Config, ConfigError, PoolConfig};
pub use credential::{Credential, CredentialFailure, CredentialStats, Grant, NoCredential};
pub use pool::Pool;
pub use protocol::Protocol;
pub use report::{Event, Report, Stats};
pub use sender::Sender;
pub use verdict::{Answer, Verdict};
