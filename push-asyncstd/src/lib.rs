//! # push-asyncstd: push on the async-std runtime
//!
//! The [`push_client`] API with async-std's TCP, timers and tasks; the same public names as
//! `push-smol`, so code moves between the two by changing the import.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052) and recommends smol: use
//! `push-smol` for new code. This adapter exists for applications that already run on
//! async-std.
//!
//! ```no_run
//! use push_asyncstd::{ApnsConfig, Client, Device, Payload, Tls};
//! use futures_lite::StreamExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async_std::task::block_on(async {
//!     let tls = Tls::default().client_identity_files("apns-cert.pem", "apns-key.pem")?;
//!     let client = Client::builder()
//!         .apns(ApnsConfig::new("gateway.push.apple.com:2195")?.tls(tls))
//!         .build()?;
//!     let mut session = client.send(Payload::new().title("Hello").body("From async-std"));
//!     let mut feedbacks = session.feedbacks();
//!     let reader = async_std::task::spawn(async move {
//!         while let Some(feedback) = feedbacks.next().await {
//!             println!("{feedback}");
//!         }
//!     });
//!     session.push(Device::ios("00".repeat(32))).await?;
//!     let report = session.finish().await?;
//!     reader.await;
//!     println!("{} delivered, {} failed", report.delivered, report.failed_total());
//!     Ok(())
//! })
//! # }
//! ```

use std::future::Future;
use std::io;
use std::time::Instant;

pub use push_client::*;

/// The async-std runtime hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Tcp = async_std::net::TcpStream;

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Tcp> {
        let stream = async_std::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn sleep_until(&self, deadline: Instant) {
        async_io::Timer::at(deadline).await;
    }

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(async_std::task::spawn(task));
    }
}

/// A client on async-std.
pub type Client = push_client::Client<AsyncStd>;
/// A session on async-std.
pub type Session = push_client::Session<AsyncStd>;
/// A client builder on async-std.
pub type ClientBuilder = push_client::ClientBuilder<AsyncStd>;
/// [`push_client::BroadcastClient`] on async-std: channels, broadcasts, Live Activity and widget
/// pushes.
pub type BroadcastClient = push_client::BroadcastClient<AsyncStd>;
