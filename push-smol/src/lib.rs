//! # push-smol: push on the smol runtime
//!
//! The [`push_client`] API with smol's TCP, timers and executor. The recommended way to use
//! push from async Rust.
//!
//! ```no_run
//! use push_smol::{ApnsConfig, Client, Device, GcmConfig, Payload, Tls};
//! use futures_lite::StreamExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let tls = Tls::default().client_identity_files("apns-cert.pem", "apns-key.pem")?;
//!     let client = Client::builder()
//!         .apns(ApnsConfig::new("gateway.push.apple.com:2195")?.tls(tls))
//!         .gcm(GcmConfig::new("server-api-key"))
//!         .build()?;
//!     let mut session = client.send(Payload::new().title("Hello").body("A new product awaits you."));
//!     let mut feedbacks = session.feedbacks();
//!     let reader = smol::spawn(async move {
//!         while let Some(feedback) = feedbacks.next().await {
//!             if feedback.error.as_ref().is_some_and(|e| e.is_invalid_device()) {
//!                 println!("delete {}", feedback.device.token);
//!             }
//!             if let Some(new_token) = &feedback.new_token {
//!                 println!("replace {} by {new_token}", feedback.device.token);
//!             }
//!         }
//!     });
//!     for row in [("ios", "00".repeat(32)), ("android", "APA91b-token".to_string())] {
//!         session.push(Device::new(row.0.parse()?, row.1)).await?;
//!     }
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

/// The smol runtime hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    type Tcp = smol::net::TcpStream;

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Tcp> {
        let stream = smol::net::TcpStream::connect((host, port)).await?;
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
        smol::spawn(task).detach();
    }
}

/// A client on smol.
pub type Client = push_client::Client<Smol>;
/// A session on smol.
pub type Session = push_client::Session<Smol>;
/// A client builder on smol.
pub type ClientBuilder = push_client::ClientBuilder<Smol>;
/// [`push_client::BroadcastClient`] on smol: channels, broadcasts, Live Activity and widget pushes.
pub type BroadcastClient = push_client::BroadcastClient<Smol>;
