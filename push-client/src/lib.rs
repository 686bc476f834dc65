//! # push-client: the async client of push, written once for every runtime
//!
//! The [`Client`] / [`Session`] / [`Feedbacks`] API over the sans-IO core `push-proto`: TLS by
//! futures-rustls, HTTP by hyper's low-level client, and a small [`Runtime`] trait for what
//! differs between runtimes (dialing TCP, timers, spawning). Use it through an adapter crate:
//! `push-smol` (recommended) or `push-asyncstd`.
//!
//! One background task owns the protocol core; sessions talk to it over bounded channels, so
//! memory stays flat however many devices stream through.

mod client;
mod config;
mod config_fcm;
mod config_http2;
mod deadlines;
mod driver;
mod error;
mod exchange;
mod feedback_service;
mod h2conn;
mod h2route;
mod h2stream;
mod http;
mod net;
mod queue;
mod report;
mod runtime;
mod tls;

pub use client::{Client, ClientBuilder, Feedbacks, Session};
pub use config::{ApnsConfig, GcmConfig};
pub use config_fcm::FcmConfig;
pub use config_http2::ApnsHttp2Config;
pub use error::Error;
pub use feedback_service::{InactiveDevice, InactiveDevices};
pub use net::Timeouts;
pub use push_proto::{self, Device, DeviceError, Feedback, Payload, Platform};
pub use report::{ClientStats, Report};
pub use runtime::Runtime;
pub use tls::Tls;
