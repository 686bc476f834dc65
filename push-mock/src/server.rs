//! The scaffolding every mock shares: a thread running a smol executor, recorded state behind a
//! mutex with a condition variable, TLS handshakes and polite closes, and a timer for hyper.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use push_proto::SplitMix64;
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};

/// Longest a TLS handshake, a close, or writing a response may take before the server gives
/// up on the peer.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the server keeps reading (and discarding) after it closed its side, waiting for the
/// peer's FIN; reading until then keeps the kernel from answering late data with a reset that
/// could destroy an error response still in flight.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A server's background thread; stops (and joins) on [`stop`](Self::stop) or drop.
#[derive(Debug)]
pub(crate) struct ServerThread {
    addr: SocketAddr,
    stop: async_channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `127.0.0.1:0` and runs `serve(listener, executor)` in a new thread until stopped.
    /// `serve` spawns its connection tasks on the executor; stopping drops the executor, which
    /// cancels them (their sockets close).
    pub(crate) fn spawn<F, Fut>(name: &str, serve: F) -> io::Result<Self>
    where
        F: FnOnce(TcpListener, Rc<LocalExecutor<'static>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::try_from(listener)?;
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let executor = Rc::new(LocalExecutor::new());
                let main = serve(listener, executor.clone());
                let stopped = async move {
                    // Resolves when the handle closes the channel.
                    let _ = stopped.recv().await;
                };
                smol::block_on(executor.run(future::or(main, stopped)));
                // Dropping the executor (last reference) cancels every connection task.
            })?;
        log::debug!("{name}: listening on {addr}");
        Ok(ServerThread {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread; idempotent.
    pub(crate) fn stop(&mut self) {
        self.stop.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("mock server on {} panicked", self.addr);
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// State recorded by a server and read by the test thread, with a condition variable so that
/// readers can wait for a change instead of sleeping.
#[derive(Debug, Default)]
pub(crate) struct Shared<T> {
    state: Mutex<T>,
    changed: Condvar,
    /// Readers blocked in [`wait_until`](Self::wait_until); changed and read only with
    /// `state` locked, so that an update wakes (a system call) only when someone waits and
    /// no waiter misses the update it waits for.
    waiters: AtomicUsize,
}

impl<T> Shared<T> {
    pub(crate) fn new(state: T) -> Self {
        Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        // A panicking reader cannot leave the records half-updated: keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes the waiters.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let mut state = self.lock();
        let result = change(&mut state);
        let waiting = self.waiters.load(Ordering::Relaxed) > 0;
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
        result
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.lock())
    }

    /// Blocks until `ready` holds or `timeout` passes; returns whether it holds.
    pub(crate) fn wait_until(&self, timeout: Duration, mut ready: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if ready(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.waiters.fetch_add(1, Ordering::Relaxed);
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            self.waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Runs `task`, giving up after `limit`.
pub(crate) async fn timeout<T>(limit: Duration, task: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(task.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// Accepts connections forever, handing each to `handle` as a task on `executor`.
pub(crate) async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    executor: Rc<LocalExecutor<'static>>,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                log::debug!("{name}: connection from {peer}");
                if let Err(error) = stream.set_nodelay(true) {
                    log::debug!("{name}: set_nodelay for {peer}: {error}");
                }
                executor.spawn(handle(stream, peer)).detach();
            }
            Err(error) => {
                // Typically "too many open files": back off briefly instead of spinning.
                log::warn!("{name}: accept failed: {error}");
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The TLS handshake, bounded by [`IO_TIMEOUT`].
pub(crate) async fn handshake(
    name: &str,
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match timeout(IO_TIMEOUT, acceptor.accept(stream)).await {
        Some(Ok(tls)) => {
            let (_, session) = tls.get_ref();
            log::debug!(
                "{name}: TLS with {peer}: {:?}, client certificate: {}",
                session.protocol_version(),
                session.peer_certificates().is_some_and(|c| !c.is_empty()),
            );
            Some(tls)
        }
        Some(Err(error)) => {
            log::info!("{name}: TLS handshake with {peer} failed: {error}");
            None
        }
        None => {
            log::info!("{name}: TLS handshake with {peer} timed out");
            None
        }
    }
}

/// Closes a TLS connection without losing data in flight: flushes, sends close_notify, shuts
/// down the write side (FIN), then reads and discards until the peer's FIN (or
/// [`DRAIN_TIMEOUT`]), so that unread input never turns the close into a reset.
pub(crate) async fn close_tls(name: &str, peer: SocketAddr, mut tls: TlsStream<TcpStream>) {
    match timeout(IO_TIMEOUT, tls.close()).await {
        Some(Ok(())) => {}
        Some(Err(error)) => log::debug!("{name}: closing {peer}: {error}"),
        None => log::debug!("{name}: closing {peer} timed out"),
    }
    let (tcp, _) = tls.get_mut();
    let mut sink = [0; 4096];
    let drained = timeout(DRAIN_TIMEOUT, async {
        let mut discarded = 0usize;
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return discarded,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
    match drained {
        Some(discarded) => log::debug!("{name}: closed {peer} ({discarded} bytes discarded)"),
        None => log::debug!("{name}: {peer} did not close within {DRAIN_TIMEOUT:?}"),
    }
}

/// hyper's timer on top of smol's, so that hyper's timeouts work outside tokio.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SmolTimer;

impl hyper::rt::Timer for SmolTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(Timer::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(Timer::at(deadline)))
    }
}

struct SmolSleep(Timer);

impl Future for SmolSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for SmolSleep {}

/// The error of a server that could not be configured.
pub(crate) fn invalid_input(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

/// Records shared between a server thread and its handle.
pub(crate) type Records<T> = Arc<Shared<T>>;

/// The next number in [0, 1) drawn from `rng`.
pub(crate) fn unit_interval(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::unit_interval;
    use push_proto::SplitMix64;

    #[test]
    fn the_sequence_is_deterministic_and_uniform_enough() {
        let draw = |seed: u64| {
            let mut rng = SplitMix64::new(seed);
            (0..1000)
                .map(|_| unit_interval(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let values = draw(42);
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let below = values.iter().filter(|v| **v < 0.3).count();
        assert!((250..350).contains(&below), "{below}");
    }
}
