//! # push-client: the async client of push, written once for every runtime
//!
//! The [`Client`] / [`Session`] / [`Feedbacks`] API over the sans-IO core `push-proto`: TLS by
//! futures-rustls, HTTP/2 by h2 and HTTP/1.1 by hyper's low-level client, and a small
//! [`Runtime`] trait for what differs between runtimes (dialing TCP, timers, spawning). Use it through an adapter crate:
//! `push-smol` (recommended) or `push-asyncstd`.
//!
//! One background task owns the protocol core; sessions talk to it over bounded channels, so
//! memory stays flat however many devices stream through.

mod broadcast;
mod client;
mod command;
mod config;
mod config_fcm;
mod config_gcm;
mod config_http;
mod config_http2;
mod config_webpush;
mod core_event;
mod deadlines;
mod driver;
mod error;
mod feedback_service;
mod feedbacks;
mod gateway_link;
mod h1conn;
mod h2conn;
mod h2route;
mod h2stream;
mod http;
mod io;
mod management;
mod negotiated;
mod net;
mod queue;
mod report;
mod runtime;
mod session;
mod session_table;
#[cfg(feature = "surf")]
mod surf;
mod tls;
mod transports;
mod webroutes;

pub use broadcast::{BroadcastClient, BroadcastError};
pub use client::{Client, ClientBuilder};
pub use config::ApnsConfig;
pub use config_fcm::FcmConfig;
pub use config_gcm::GcmConfig;
pub use config_http::HttpConfig;
pub use config_http2::ApnsHttp2Config;
pub use config_webpush::WebPushConfig;
pub use error::Error;
pub use feedback_service::{InactiveDevice, InactiveDevices};
pub use feedbacks::Feedbacks;
pub use net::Timeouts;
pub use push_proto::{self, Device, DeviceError, Feedback, Payload, Platform};
pub use report::{ClientStats, Report};
pub use runtime::Runtime;
pub use session::Session;
pub use tls::Tls;
