//! An in-memory, simulated-time world for the client (quinn's `Pair` idea): no sockets, no
//! threads, no real waiting.
//!
//! [`Sim`] implements push-client's [`Runtime`]:
//!
//! - **Connections** are in-memory byte pipes ([`Duplex`]). [`Runtime::connect`] hands one end
//!   to the [`Listener`] registered for `host:port` with [`Sim::listen`] and returns the other;
//!   with no listener the dial fails at once with `ConnectionRefused`. The client's own TLS
//!   (rustls) and HTTP/2 (h2) code runs unchanged over the pipe; so does the server side of a
//!   model such as [`ApnsModel`], which terminates TLS with rustls and serves HTTP/2 with h2's
//!   server, scripted per scenario by an [`ApnsBehaviour`]. Every dial is recorded
//!   ([`Sim::dials`]) with its simulated time.
//! - **Time** is virtual: [`Runtime::now`] reads a clock that starts at the real instant the
//!   `Sim` was made and moves only when nothing else can happen. [`Sim::block_on`] polls every
//!   woken task (client, server models, the test's own future) on the calling thread; when no
//!   task is ready, the clock jumps to the earliest deadline a sleep waits for and wakes it.
//!   So a 10 s stall timeout or a 30 s dial backoff costs no wall time, and work done between
//!   two deadlines takes zero simulated time (a server model adds latency by sleeping).
//!   Scheduling is a FIFO of wake-ups on one thread: runs are reproducible, up to the
//!   client's own use of randomly seeded hash maps (which may reorder events that happen at
//!   the same simulated instant) and TLS's random keys.
//! - **Hangs fail fast**: when no task is ready and no sleep waits while the test's future is
//!   unfinished, [`Sim::block_on`] panics ("stuck"); it also panics past an hour of simulated
//!   time or after millions of polls without the clock moving (a busy loop).
//!
//! When the test's future completes, every task still alive (connections, the client's
//! background task) is dropped.

mod apns;
mod clock;
mod executor;
mod frame_break;
mod pipe;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use push_client::Runtime;

pub use apns::{ApnsBehaviour, ApnsModel};
pub use clock::Sleep;
pub use pipe::{Duplex, duplex};

use clock::Clock;
use executor::Executor;

/// Simulated time past which [`Sim::block_on`] gives up: far beyond any scenario, so reaching
/// it means the client loops in simulated time.
const TIME_LIMIT: Duration = Duration::from_secs(3600);
/// Task polls without the clock moving after which [`Sim::block_on`] gives up (a busy loop).
const POLL_LIMIT: usize = 20_000_000;

/// A server model: what answers a simulated connection to its `host:port`.
pub trait Listener: Send + Sync + 'static {
    /// A client connected: serve `stream` (typically by spawning a task on `sim`).
    fn accept(&self, sim: &Sim, stream: Duplex);
}

/// One dial of the client, as the simulation saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The host dialed.
    pub host: String,
    /// The port dialed.
    pub port: u16,
    /// Simulated time since the simulation began.
    pub at: Duration,
    /// A listener took the connection (otherwise it was refused).
    pub accepted: bool,
}

struct Inner {
    clock: Arc<Clock>,
    executor: Executor,
    listeners: Mutex<HashMap<(String, u16), Arc<dyn Listener>>>,
    dials: Mutex<Vec<Dial>>,
}

/// The simulated world: a [`Runtime`] with in-memory connections, a virtual clock and a
/// single-threaded executor. Clones share the world; `Sim::default()` makes a new one.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            inner: Arc::new(Inner {
                clock: Arc::new(Clock::new()),
                executor: Executor::new(),
                listeners: Mutex::new(HashMap::new()),
                dials: Mutex::new(Vec::new()),
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes [`Sim::block_on`]'s own future.
struct MainWaker(AtomicBool);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Sim {
    /// Connections to `host:port` are served by `listener` from now on.
    pub fn listen(&self, host: &str, port: u16, listener: impl Listener) {
        lock(&self.inner.listeners).insert((host.to_owned(), port), Arc::new(listener));
    }

    /// Simulated time since the simulation began.
    pub fn elapsed(&self) -> Duration {
        self.inner.clock.elapsed()
    }

    /// Every dial so far, in order.
    pub fn dials(&self) -> Vec<Dial> {
        lock(&self.inner.dials).clone()
    }

    /// Completes `after` the current simulated time.
    pub fn sleep(&self, after: Duration) -> Sleep {
        self.inner.clock.sleep_until(self.inner.clock.now() + after)
    }

    /// Runs the simulation until `main` completes, then drops every task left.
    ///
    /// # Panics
    /// When the simulation is stuck (nothing can run, no sleep waits, `main` unfinished),
    /// loops in simulated time past an hour, or busy-loops without the clock moving.
    pub fn block_on<T>(&self, main: impl Future<Output = T>) -> T {
        let woken = Arc::new(MainWaker(AtomicBool::new(true)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut main = pin!(main);
        let executor = &self.inner.executor;
        let mut polls = 0;
        let output = loop {
            if woken.0.swap(false, Ordering::SeqCst)
                && let Poll::Ready(output) = main.as_mut().poll(&mut cx)
            {
                break output;
            }
            let ran = executor.run_ready();
            polls += ran;
            assert!(
                polls < POLL_LIMIT,
                "the simulation busy-loops: {polls} polls at {:?} without the clock moving",
                self.elapsed()
            );
            if ran > 0 || woken.0.load(Ordering::SeqCst) {
                continue;
            }
            assert!(
                self.inner.clock.advance(),
                "the simulation is stuck at {:?}: no task can run and no sleep waits",
                self.elapsed()
            );
            polls = 0;
            assert!(
                self.elapsed() <= TIME_LIMIT,
                "the simulation ran past {TIME_LIMIT:?} of simulated time"
            );
        };
        executor.shutdown();
        output
    }

    fn dial(&self, host: &str, port: u16) -> io::Result<Duplex> {
        let listener = lock(&self.inner.listeners)
            .get(&(host.to_owned(), port))
            .cloned();
        lock(&self.inner.dials).push(Dial {
            host: host.to_owned(),
            port,
            at: self.elapsed(),
            accepted: listener.is_some(),
        });
        let Some(listener) = listener else {
            return Err(io::ErrorKind::ConnectionRefused.into());
        };
        let (client, server) = duplex();
        listener.accept(self, server);
        Ok(client)
    }
}

impl Runtime for Sim {
    type Tcp = Duplex;

    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Duplex>> + Send {
        let (sim, host) = (self.clone(), host.to_owned());
        async move { sim.dial(&host, port) }
    }

    fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        self.inner.clock.sleep_until(deadline)
    }

    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.executor.spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_jumps_to_the_next_deadline_only_when_every_task_is_idle() {
        let sim = Sim::default();
        let (done, finished) = async_channel::unbounded();
        for seconds in [5, 1, 3] {
            let (task_sim, done) = (sim.clone(), done.clone());
            sim.spawn(async move {
                task_sim.sleep(Duration::from_secs(seconds)).await;
                done.send((seconds, task_sim.elapsed())).await.unwrap();
            });
        }
        let order = sim.block_on(async {
            let mut order = Vec::new();
            for _ in 0..3 {
                order.push(finished.recv().await.unwrap());
            }
            order
        });
        let expected = [1, 3, 5].map(|s| (s, Duration::from_secs(s)));
        assert_eq!(order, expected);
        assert_eq!(sim.elapsed(), Duration::from_secs(5));
    }

    #[test]
    #[should_panic(expected = "stuck")]
    fn a_simulation_that_can_never_finish_panics() {
        Sim::default().block_on(std::future::pending::<()>());
    }

    #[test]
    fn dials_reach_the_listener_or_are_refused() {
        struct Echo;
        impl Listener for Echo {
            fn accept(&self, sim: &Sim, mut stream: Duplex) {
                sim.spawn(async move {
                    use futures_lite::{AsyncReadExt, AsyncWriteExt};
                    let mut byte = [0u8];
                    while stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                    }
                });
            }
        }
        let sim = Sim::default();
        sim.listen("echo", 7, Echo);
        sim.block_on(async {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let refused = sim.connect("nobody", 7).await.unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
            let mut stream = sim.connect("echo", 7).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"ping");
        });
        let accepted: Vec<bool> = sim.dials().iter().map(|dial| dial.accepted).collect();
        assert_eq!(accepted, [false, true]);
    }
}
