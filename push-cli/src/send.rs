//! `push send`: stream devices from a source into one session, write each feedback as it
//! arrives, and apply it to the store.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use push_smol::{Client, Error, Feedback, Payload, Platform, Report};

use crate::cli::SendArgs;
use crate::config;
use crate::devices::{self, CHANNEL_CAPACITY, Input};
use crate::jsonl::{self, Line};
use crate::main_error::Failure;
use crate::store::{self, Applied, Change};
use crate::summary::{self, Tally};

/// Where devices come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A device-list file, `-` for standard input.
    File(PathBuf),
    /// A SQLite store.
    Db(PathBuf),
}

/// Everything one run needs.
#[derive(Debug)]
pub struct Plan {
    /// The configured client.
    pub client: Client,
    /// The notification.
    pub payload: Payload,
    /// The devices.
    pub source: Source,
    /// Where to write the feedback JSONL, if anywhere.
    pub feedback: Option<PathBuf>,
    /// Apply feedback to the store (only with [`Source::Db`]).
    pub apply: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// Outcomes counted, malformed input included.
    pub tally: Tally,
    /// The client's report of the session.
    pub report: Report,
    /// Changes made to the store, when feedback was applied.
    pub applied: Option<Applied>,
    /// From the start of reading to the last feedback.
    pub elapsed: Duration,
}

impl Outcome {
    /// The client-wide errors that mean the run did not do its job (TLS, authentication,
    /// configuration); connection refusals and timeouts that were retried are not among them.
    pub fn fatal_errors(&self) -> impl Iterator<Item = &Error> {
        self.report.errors.iter().filter(|e| e.is_fatal())
    }
}

/// The store change a feedback calls for.
fn change_for(feedback: &Feedback) -> Option<Change> {
    if feedback
        .error
        .as_ref()
        .is_some_and(|e| e.is_invalid_device())
    {
        return Some(Change::Delete(feedback.device.token.clone()));
    }
    feedback.new_token.as_ref().map(|new| Change::Replace {
        old: feedback.device.token.clone(),
        new: new.clone(),
    })
}

struct State {
    tally: Tally,
    jsonl: jsonl::Writer,
}

/// Runs one broadcast.
pub fn run(plan: Plan) -> Result<Outcome, String> {
    let (sender, receiver) = async_channel::bounded(CHANNEL_CAPACITY);
    // The writer goes first: it switches the store to WAL mode before the reader opens its
    // cursor.
    let (changes, writer) = match (&plan.source, plan.apply) {
        (Source::Db(path), true) => {
            let (tx, rx) = async_channel::bounded(CHANNEL_CAPACITY);
            (Some(tx), Some(store::spawn_writer(path, rx)?))
        }
        (Source::File(_), true) => return Err("--apply-feedback needs --db".into()),
        _ => (None, None),
    };
    let total = match &plan.source {
        Source::Db(path) => Some(store::count(&store::open_existing(path)?, path)?),
        Source::File(_) => None,
    };
    let jsonl = jsonl::Writer::create(plan.feedback.as_deref())?;
    let reader = match &plan.source {
        Source::File(path) => devices::spawn_file(path, sender)?,
        Source::Db(path) => store::spawn_reader(path, sender)?,
    };
    let bar = summary::progress(total, plan.quiet);
    let start = Instant::now();
    let state = RefCell::new(State {
        tally: Tally::default(),
        jsonl,
    });
    let (pushed, read) = smol::block_on(async {
        let mut session = plan.client.send(plan.payload);
        let mut feedbacks = session.feedbacks();
        let (state, bar, changes) = (&state, &bar, &changes);
        let push = async move {
            while let Ok(input) = receiver.recv().await {
                match input {
                    Input::Device(device) => {
                        session.push(device).await.map_err(|e| e.to_string())?
                    }
                    Input::Malformed(malformed) => {
                        let mut state = state.borrow_mut();
                        state.tally.fail(malformed.code);
                        state.jsonl.write(&Line::from_malformed(&malformed))?;
                        bar.inc(1);
                    }
                }
            }
            session.finish().await.map_err(|e| e.to_string())
        };
        let read = async move {
            while let Some(feedback) = feedbacks.next().await {
                {
                    let mut state = state.borrow_mut();
                    state.tally.feedback(&feedback);
                    // The binary gateway acknowledges nothing (no receipt id): only its
                    // failures are worth a line. HTTP providers answer every notification.
                    if feedback.device.platform == Platform::Android
                        || feedback.error.is_some()
                        || feedback.receipt.id.is_some()
                    {
                        state.jsonl.write(&Line::from_feedback(&feedback))?;
                    }
                }
                bar.inc(1);
                if let (Some(changes), Some(change)) = (changes, change_for(&feedback)) {
                    changes
                        .send(change)
                        .await
                        .map_err(|_| "the store writer stopped".to_owned())?;
                }
            }
            Ok::<(), String>(())
        };
        futures_lite::future::zip(push, read).await
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    drop(changes);
    let source_result = reader
        .join()
        .map_err(|_| "the device reader panicked".to_owned())?;
    let applied = match writer {
        Some(writer) => Some(
            writer
                .join()
                .map_err(|_| "the store writer panicked".to_owned())??,
        ),
        None => None,
    };
    let mut state = state.into_inner();
    state.jsonl.finish()?;
    source_result?;
    read?;
    let report = pushed?;
    Ok(Outcome {
        tally: state.tally,
        report,
        applied,
        elapsed,
    })
}

/// `push send` with its arguments.
pub fn command(args: SendArgs) -> Result<(), Failure> {
    let mut payload = config::payload(&args.message).map_err(Failure::Usage)?;
    if let Some(push_type) = args.apns.apns_push_type {
        payload = payload.apns_push_type(push_type);
    }
    let source = match (args.devices, args.db) {
        (Some(path), _) => Source::File(path),
        (None, Some(path)) => Source::Db(path),
        (None, None) => return Err(Failure::Usage("give --devices or --db".into())),
    };
    let connections = args.connections.map(usize::from);
    let client =
        config::client(&args.apns, &args.gcm, &args.fcm, connections).map_err(Failure::Usage)?;
    let outcome = run(Plan {
        client,
        payload,
        source,
        feedback: args.feedback,
        apply: args.apply_feedback,
        quiet: args.quiet,
    })
    .map_err(Failure::Run)?;
    if !args.quiet {
        eprint!(
            "{}",
            summary::render(&outcome.tally, outcome.elapsed, outcome.applied)
        );
    }
    for error in outcome.report.errors.iter().filter(|e| !e.is_fatal()) {
        eprintln!("push: warning: {error}");
    }
    match outcome.fatal_errors().next() {
        Some(error) => Err(Failure::Run(error.to_string())),
        None => Ok(()),
    }
}
