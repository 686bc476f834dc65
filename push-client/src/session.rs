//! [`Session`]: one payload on its way to many devices, as the application holds it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use async_channel::Receiver;
use push_proto::{Device, Feedback, Payload};

use crate::command::Command;
use crate::error::Error;
use crate::feedbacks::{FEEDBACK_BATCHES, Feedbacks};
use crate::queue::QueueSender;
use crate::report::Report;
use crate::runtime::Runtime;

/// Where a session is in its life.
#[derive(Debug)]
enum Stage {
    /// Devices may be pushed.
    Open,
    /// Closed; the report arrives here once every device has its feedback.
    Finishing(Receiver<Report>),
    /// The report arrived.
    Finished(Report),
}

/// One payload on its way to many devices. Push devices one by one with
/// [`push`](Session::push); read the outcome of each from [`feedbacks`](Session::feedbacks);
/// end with [`finish`](Session::finish).
///
/// Dropping a session without finishing it closes it: everything already pushed is still
/// sent and still gets its feedback (on the stream, if one was taken and is still read; in
/// any case counted), and the client goes on. `R` is the runtime of the client it came from.
///
/// Both async methods are cancel-safe: a `push` or `finish` future may be dropped (a timeout,
/// a `select`) and the session stays consistent.
#[derive(Debug)]
pub struct Session<R: Runtime> {
    key: u64,
    commands: QueueSender<Command>,
    receiver: Option<Receiver<Vec<Feedback>>>,
    listening: Arc<AtomicBool>,
    stage: Stage,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Session<R> {
    /// Starts session `key` in the driver at once (without waiting for room in the queue).
    pub(crate) fn start(key: u64, commands: QueueSender<Command>, payload: Payload) -> Self {
        let (feedback, receiver) = async_channel::bounded(FEEDBACK_BATCHES);
        let listening = Arc::new(AtomicBool::new(false));
        // When the driver is gone, `push` and `finish` say so.
        let _ = commands.send_now(Command::Open {
            key,
            payload: Box::new(payload),
            feedback,
            listening: listening.clone(),
        });
        Session {
            key,
            commands,
            receiver: Some(receiver),
            listening,
            stage: Stage::Open,
            runtime: PhantomData,
        }
    }

    /// The stream of this session's feedback: one [`Feedback`] per device, in the order
    /// outcomes become known. Take it before pushing, and read it concurrently with pushing
    /// (a spawned task, or `zip`/`race` of two futures): when it falls behind by the
    /// client's feedback capacity, pushing waits. Feedback produced while no stream exists,
    /// or after it is dropped, is counted in the [`Report`] only.
    ///
    /// Returns an empty stream when called a second time.
    pub fn feedbacks(&mut self) -> Feedbacks {
        match self.receiver.take() {
            Some(receiver) => Feedbacks::new(receiver, self.listening.clone()),
            None => Feedbacks::empty(),
        }
    }

    /// Sends the session's notification to `device`. Waits while the client's queue is full
    /// (backpressure); a device that cannot be delivered gets a feedback, not an error. Fails
    /// with [`Error::SessionFinished`] after [`finish`](Session::finish) was called, and with
    /// [`Error::Closed`] when the client has shut down.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the device was not pushed
    /// (it gets no feedback and is not counted); the session goes on, and the device may be
    /// pushed again.
    pub async fn push(&mut self, device: Device) -> Result<(), Error> {
        if !matches!(self.stage, Stage::Open) {
            return Err(Error::SessionFinished);
        }
        let command = Command::Push {
            key: self.key,
            device,
        };
        self.commands.send(command).await.map_err(|_| Error::Closed)
    }

    /// Sets the session's deadline: at `at`, every device pushed into it that has no
    /// feedback yet (waiting in the queue, waiting for a retry, or in flight to an HTTP
    /// provider) gets one, `unavailable` with the reason ("the session's deadline passed",
    /// saying when it was in flight and may still have been delivered), and devices pushed
    /// later get it at once; [`finish`](Session::finish) then returns without waiting
    /// longer. Never silence: every device still has exactly one feedback. On the APNs
    /// binary gateway, devices not written yet end the same way; those written end within
    /// the grace period of their write (the protocol never confirms success: one on the wire
    /// is delivered unless an error names it, so it is not reported failed).
    ///
    /// Takes effect once the client's driver reads it, after the devices pushed before it.
    pub fn deadline(&mut self, at: Instant) -> Result<(), Error> {
        let command = Command::Deadline { key: self.key, at };
        self.commands.send_now(command).map_err(|_| Error::Closed)
    }

    /// No more devices: waits until every device pushed has its feedback, then reports.
    /// Client-wide errors that happened meanwhile (TLS, authentication, an unreachable
    /// gateway) are in [`Report::errors`]; every device still has its feedback.
    ///
    /// Cancel-safe: the session is closed when `finish` is first called, whether or not the
    /// future completes; calling `finish` again waits for the same report, and once it has
    /// arrived every call returns it.
    pub async fn finish(&mut self) -> Result<Report, Error> {
        let report = match &self.stage {
            Stage::Finished(report) => return Ok(report.clone()),
            Stage::Finishing(report) => report.clone(),
            Stage::Open => {
                let (reply, report) = async_channel::bounded(1);
                self.stage = Stage::Finishing(report.clone());
                let close = Command::Close {
                    key: self.key,
                    reply: Some(reply),
                };
                self.commands.send_now(close).map_err(|_| Error::Closed)?;
                report
            }
        };
        let report = report.recv().await.map_err(|_| Error::Closed)?;
        self.stage = Stage::Finished(report.clone());
        Ok(report)
    }
}

impl<R: Runtime> Drop for Session<R> {
    fn drop(&mut self) {
        if matches!(self.stage, Stage::Open) {
            let close = Command::Close {
                key: self.key,
                reply: None,
            };
            let _ = self.commands.send_now(close);
        }
    }
}
