//! One engine for every HTTP provider: the request/response [`Sender`] and the connection
//! policy ([`Pool`]) that APNs HTTP/2, FCM HTTP v1 and legacy GCM (and any later provider)
//! share.
//!
//! A provider is two small pieces plugged into the engine:
//! - a [`Protocol`]: how to build the request for one notification (or a [`Batch`] of them,
//!   for GCM), and what a response means ([`Answers`]: one [`Answer`] for the whole request,
//!   or one per notification of a batch; one shared [`Verdict`] type);
//! - a [`Credential`]: what goes into the `authorization` header (an APNs provider token, an
//!   OAuth2 access token, a fixed API key, nothing for client certificates), with the same
//!   handle/poll shape whatever it is.
//!
//! Everything else is the engine's, written once: the queue of notifications and the retries
//! waiting for their time, batches (gathered from consecutive notifications of one message;
//! each notification keeps its own attempts and report), attempts bounded per notification,
//! backoff with jitter and `Retry-After`, retries bounded by time (a retry deadline and the
//! time to live), the pacing of the route's requests by a rate controller that learns the
//! provider's quota from its throttling answers (and an optional cap), free resends of streams the
//! server did not process (bounded), the connections of the route (dial, backoff, give up,
//! stream limits, GOAWAY, idle ones closed, more opened under load; an HTTP/1.1 connection
//! is one that allows one stream), stats, and one [`Report`] per notification.
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
mod batch;
mod config;
mod credential;
mod in_flight;
mod origin;
mod pacer;
mod pool;
mod protocol;
mod rate;
mod report;
mod scaling;
mod sender;
#[cfg(test)]
pub(crate) mod test_support;
mod verdict;

pub use action::{Action, ConnId, Input, RequestId, StreamEnd};
pub use batch::Batch;
pub use config::{Config, ConfigError, PoolConfig};
pub use credential::{Credential, CredentialFailure, CredentialStats, FixedCredential, Grant};
pub(crate) use origin::Origin;
pub use pool::Pool;
pub use protocol::Protocol;
pub(crate) use protocol::post;
pub use report::{Event, Report, Stats};
pub use sender::{ExchangeFailure, ExchangeId, Exchanged, Sender};
pub use verdict::{Answer, Answers, Verdict};
