//! [`Shifted`]: a runtime whose clock the test can move forward, so that scenarios about
//! long spans of time (provider tokens that expire after tens of minutes) run in seconds.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use push_client::{Client, ClientBuilder, Runtime};

/// Wraps runtime `R`; its clock runs ahead of `R`'s by a shared offset that only grows.
/// Clones share the offset, so the handle a test keeps moves the client's clock too.
#[derive(Debug, Clone, Default)]
pub struct Shifted<R> {
    inner: R,
    ahead_nanos: Arc<AtomicU64>,
}

impl<R: Runtime> Shifted<R> {
    /// Moves the clock `by` ahead: deadlines already waited for keep their real duration.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.ahead_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    fn ahead(&self) -> Duration {
        Duration::from_nanos(self.ahead_nanos.load(Ordering::SeqCst))
    }
}

/// A client that `configure` sets up, built on a fresh [`Shifted`] clock; returned with the
/// handle that moves that clock.
pub fn shifted_client<R: Runtime + Default>(
    configure: impl FnOnce(ClientBuilder<Shifted<R>>) -> ClientBuilder<Shifted<R>>,
) -> (Shifted<R>, Client<Shifted<R>>) {
    let clock = Shifted::<R>::default();
    let client = configure(Client::<Shifted<R>>::builder().runtime(clock.clone()))
        .build()
        .expect("client");
    (clock, client)
}

impl<R: Runtime> Runtime for Shifted<R> {
    type Tcp = R::Tcp;

    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<R::Tcp>> + Send {
        self.inner.connect(host, port)
    }

    fn now(&self) -> Instant {
        self.inner.now() + self.ahead()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        let real = deadline
            .checked_sub(self.ahead())
            .unwrap_or_else(|| self.inner.now());
        self.inner.sleep_until(real)
    }

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(task);
    }
}
