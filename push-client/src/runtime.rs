//! The runtime hooks: everything push needs from an async runtime, and nothing more.

use std::future::Future;
use std::io;
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite};

/// What an async runtime provides to the client: TCP connections, timers and tasks.
///
/// Implemented by the adapter crates (`push-smol`, `push-asyncstd`); each implementation is a
/// few lines. Everything else — TLS, HTTP, the protocol loop — is written once in this crate.
pub trait Runtime: Clone + Default + Send + Sync + 'static {
    /// A connected TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Opens a TCP connection to `host:port`.
    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// The current instant on this runtime's clock. Every deadline handed to
    /// [`sleep_until`](Self::sleep_until) and every `now` the protocol core sees comes from
    /// here. The default is [`Instant::now`]; a simulation or a test may run the client on a
    /// virtual clock by overriding both methods together.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Completes at `deadline` (an instant on [`now`](Self::now)'s clock).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;

    /// Runs `task` in the background until it completes.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static;
}
