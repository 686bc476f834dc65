//! Loopback push servers for tests, demos and benchmarks.
//!
//! Six stand-ins for the services `push` talks to, each listening on `127.0.0.1` with an
//! ephemeral port:
//!
//! - [`MockGateway`]: Apple's binary gateway (port 2195 in production), TLS, strict frame
//!   decoding, error responses, and fault injection (bad tokens, silent closes, shutdowns, a
//!   slow reader).
//! - [`MockFeedback`]: Apple's feedback service (port 2196), which streams feedback tuples and
//!   closes.
//! - [`MockGcm`]: Google's legacy GCM HTTP JSON endpoint (`POST /gcm/send`), plain HTTP or
//!   HTTPS, with per-token scripted outcomes and seeded `503`s.
//! - [`MockApnsHttp2`]: Apple's current HTTP/2 provider API (`POST /3/device/<token>`), TLS
//!   with ALPN `h2`, certificate or ES256 provider-token auth, strict request validation,
//!   per-token scripted reasons, a configurable stream limit (also changed mid-connection,
//!   or zero) and GOAWAY injection.
//! - [`MockFcm`]: Google's FCM HTTP v1 API (`POST /v1/projects/<project>/messages:send`),
//!   HTTP/2 over TLS, with Google's OAuth2 token endpoint (`POST /token`, HTTPS/1.1) that
//!   verifies a service account's RS256 assertion and issues the access tokens the API
//!   checks; strict message validation with Google RPC error JSON, per-token scripted
//!   `errorCode`s, seeded `503`/`429` with `Retry-After`, revocable access tokens. The
//!   [`fcm`] module also holds committed **test-only** service-account keys
//!   ([`fcm::demo_service_account`]).
//! - [`MockWebPush`]: a Web Push service (RFC 8030) on several origins, HTTP/2 over TLS, that
//!   mints subscriptions and keeps their private keys, checks each request's VAPID token
//!   (RFC 8292) and headers, decrypts every message (RFC 8291) with its own code, answers
//!   `201` with `Location`, `410` for expired subscriptions, `413`, seeded `429`/`503` with
//!   `Retry-After`, and logs the decrypted payloads.
//!
//! Both HTTP/2 mocks also reproduce hostile servers ([`Http2Faults`]): every stream refused
//! with `REFUSED_STREAM`, a GOAWAY naming stream 0 on every connection, and a connection
//! broken by a malformed frame after some answers (so the client's HTTP/2 library fails
//! requests the server already processed).
//!
//! Every server runs in its own background thread with its own smol executor, so tests on any
//! runtime (smol, async-std, blocking `std::net`) can use them. A handle exposes the address,
//! read accessors for what the server recorded, and `wait_*` helpers that block (with a
//! timeout) until a condition on the records holds, so tests never need to sleep. Dropping a
//! handle (or calling its `shutdown`) stops the thread and every connection it served; the
//! records stay readable.
//!
//! TLS material comes from [`Certificates::generate`]: a fresh CA, a server certificate for
//! `localhost` and `127.0.0.1`, and a client certificate, all signed by that CA.
//!
//! ```
//! use std::collections::HashSet;
//! use push_mock::{Certificates, GatewayOptions, MockGateway};
//!
//! let certs = Certificates::generate()?;
//! let gateway = MockGateway::start(GatewayOptions::default(), &certs)?;
//! assert_eq!(gateway.addr().ip().to_string(), "127.0.0.1");
//! assert_eq!(gateway.total_accepted(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod apns_broadcast;
mod apns_feedback;
mod apns_gateway;
mod apns_http2;
mod certs;
pub mod fcm;
mod gcm;
mod http1;
mod http2;
mod http2_faults;
mod live_activity_check;
mod quota;
mod server;
mod settings_splice;
mod webpush;

pub use apns_broadcast::BroadcastDelivery;
pub use apns_feedback::MockFeedback;
pub use apns_gateway::{Accepted, GatewayOptions, MockGateway};
pub use apns_http2::{
    Http2Answer, Http2Auth, Http2Delivery, Http2Options, MockApnsHttp2, ReasonScript,
};
pub use certs::{CertificatePaths, Certificates};
pub use fcm::{FcmAnswer, FcmDelivery, FcmOptions, FcmScript, FcmTarget, MockFcm, ServiceAccount};
pub use gcm::{GcmOptions, MockGcm, TokenScript};
pub use http2_faults::Http2Faults;
pub use quota::Quota;
pub use webpush::{
    MintedSubscription, MockWebPush, WebPushAnswer, WebPushDelivery, WebPushOptions,
};
