//! `push send`: stream devices from a source into one session, write each feedback as it
//! arrives, and apply it to the store.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use push_proto::{ApnsToken, GcmToken};
use push_smol::{Client, Error, Feedback, Payload, Platform, Report};

use crate::cli::SendArgs;
use crate::config;
use crate::devices::{self, CHANNEL_CAPACITY, Input};
use crate::guard::{Guard, Limits, MaxDelete, Stopped};
use crate::jsonl::{self, Line};
use crate::main_error::Failure;
use crate::store::{self, Applied, Change, ProviderNames};
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
    /// Apply feedback to the store (only with [`Source::Db`]), and how.
    pub apply: Option<Apply>,
    /// No progress bar.
    pub quiet: bool,
    /// The provider of each platform, as the journal names them.
    pub providers: ProviderNames,
}

/// How feedback is applied to the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apply {
    /// When deletions are released, and how many at most.
    pub limits: Limits,
    /// `--max-delete`, resolved against the store's size when the run starts.
    pub max_delete: Option<MaxDelete>,
    /// Roll every store transaction back: report what would change.
    pub dry_run: bool,
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
    /// What the deletion guard held back, when feedback was applied.
    pub guard: Option<GuardReport>,
    /// Canonical ids that were not valid tokens (never written to the store).
    pub bad_canonical: u64,
}

/// What the deletion guard did over a run.
#[derive(Debug, Clone, Default)]
pub struct GuardReport {
    /// Providers stopped for their invalid share, with their lines.
    pub stops: Vec<Stopped>,
    /// Deletions dropped because their provider was stopped.
    pub withheld: u64,
    /// Deletions refused by `--max-delete`.
    pub over_cap: u64,
    /// The `--max-delete` cap, as a count.
    pub cap: Option<u64>,
    /// Devices not sent because their provider was stopped.
    pub skipped: u64,
}

impl Outcome {
    /// The client-wide errors that mean the run did not do its job (TLS, authentication,
    /// configuration); connection refusals and timeouts that were retried are not among them.
    pub fn fatal_errors(&self) -> impl Iterator<Item = &Error> {
        self.report.errors.iter().filter(|e| e.is_fatal())
    }
}

/// The store change a feedback calls for. A canonical id is used only when it is a valid
/// token other than the one sent; `bad_canonical` counts the others.
fn change_for(feedback: &Feedback, bad_canonical: &mut u64) -> Option<Change> {
    let device = &feedback.device;
    if feedback
        .error
        .as_ref()
        .is_some_and(|e| e.is_invalid_device())
    {
        return Some(Change::Delete {
            platform: device.platform,
            token: device.token.clone(),
            unregistered_at: feedback
                .receipt
                .unregistered_at
                .map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
            reason: feedback.receipt.reason.clone(),
        });
    }
    let new = feedback.new_token.as_ref()?;
    let valid = match device.platform {
        Platform::Android => GcmToken::parse(new).is_ok(),
        Platform::Ios => ApnsToken::parse(new).is_ok(),
    };
    if !valid || *new == device.token {
        *bad_canonical += 1;
        return None;
    }
    Some(Change::Replace {
        platform: device.platform,
        old: device.token.clone(),
        new: new.clone(),
    })
}

struct State {
    tally: Tally,
    jsonl: jsonl::Writer,
    guard: Option<Guard>,
    bad_canonical: u64,
    skipped: u64,
}

/// Runs one broadcast.
pub fn run(plan: Plan) -> Result<Outcome, String> {
    let (sender, receiver) = async_channel::bounded(CHANNEL_CAPACITY);
    // The writer goes first: it switches the store to WAL mode before the reader opens its
    // cursor.
    let (changes, writer) = match (&plan.source, plan.apply) {
        (Source::Db(path), Some(apply)) => {
            let (tx, rx) = async_channel::bounded(CHANNEL_CAPACITY);
            (
                Some(tx),
                Some(store::spawn_writer(
                    path,
                    rx,
                    apply.dry_run,
                    plan.providers,
                )?),
            )
        }
        (Source::File(_), Some(_)) => return Err("--apply-feedback needs --db".into()),
        _ => (None, None),
    };
    let total = match &plan.source {
        Source::Db(path) => Some(store::count(&store::open_existing(path)?, path)?),
        Source::File(_) => None,
    };
    let guard = match plan.apply {
        Some(apply) => {
            let max_delete = apply.max_delete.map(|m| m.resolve(total)).transpose()?;
            Some(Guard::new(Limits {
                max_delete,
                ..apply.limits
            }))
        }
        None => None,
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
        guard,
        bad_canonical: 0,
        skipped: 0,
    });
    let (pushed, read) = smol::block_on(async {
        let mut session = plan.client.send(plan.payload);
        let mut feedbacks = session.feedbacks();
        let (state, bar, changes) = (&state, &bar, &changes);
        let push = async move {
            while let Ok(input) = receiver.recv().await {
                match input {
                    Input::Device(device) => {
                        let stopped = state
                            .borrow()
                            .guard
                            .as_ref()
                            .is_some_and(|g| g.is_stopped(device.platform));
                        if stopped {
                            state.borrow_mut().skipped += 1;
                            bar.inc(1);
                            continue;
                        }
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
                let released = {
                    let mut state = state.borrow_mut();
                    state.tally.feedback(&feedback);
                    // APNs acknowledges nothing: only its failures are worth a line.
                    if feedback.device.platform == Platform::Android || feedback.error.is_some() {
                        state.jsonl.write(&Line::from_feedback(&feedback))?;
                    }
                    let State {
                        guard,
                        bad_canonical,
                        ..
                    } = &mut *state;
                    match guard {
                        Some(guard) => {
                            let change = change_for(&feedback, bad_canonical);
                            guard.observe(&feedback, change)
                        }
                        None => Vec::new(),
                    }
                };
                bar.inc(1);
                send_changes(changes.as_ref(), released).await?;
            }
            let released = state
                .borrow_mut()
                .guard
                .as_mut()
                .map(Guard::finish)
                .unwrap_or_default();
            send_changes(changes.as_ref(), released).await?;
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
    let guard = state.guard.map(|guard| GuardReport {
        stops: guard.stops().to_vec(),
        withheld: guard.withheld(),
        over_cap: guard.over_cap(),
        cap: guard.cap(),
        skipped: state.skipped,
    });
    Ok(Outcome {
        tally: state.tally,
        report,
        applied,
        elapsed,
        guard,
        bad_canonical: state.bad_canonical,
    })
}

/// Hands released changes to the store writer.
async fn send_changes(
    changes: Option<&async_channel::Sender<Change>>,
    released: Vec<Change>,
) -> Result<(), String> {
    let Some(changes) = changes else {
        return Ok(());
    };
    for change in released {
        changes
            .send(change)
            .await
            .map_err(|_| "the store writer stopped".to_owned())?;
    }
    Ok(())
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
    let apply = args.apply_feedback.then_some(Apply {
        limits: Limits {
            min_answers: args.hold_deletions,
            max_invalid_percent: args.max_invalid,
            max_delete: None,
        },
        max_delete: args.max_delete,
        dry_run: args.dry_run_store,
    });
    let outcome = run(Plan {
        client,
        payload,
        source,
        feedback: args.feedback,
        apply,
        quiet: args.quiet,
        providers: config::provider_names(&args.apns, &args.fcm),
    })
    .map_err(Failure::Run)?;
    if !args.quiet {
        eprint!(
            "{}",
            summary::render(&outcome.tally, outcome.elapsed, outcome.applied)
        );
        if args.dry_run_store {
            eprintln!(
                "store: dry run, nothing was changed (the counts above are what would have changed)"
            );
        }
    }
    for error in outcome.report.errors.iter().filter(|e| !e.is_fatal()) {
        eprintln!("push: warning: {error}");
    }
    if outcome.bad_canonical > 0 {
        eprintln!(
            "push: warning: {} canonical ids were not valid tokens and were not written to the store",
            outcome.bad_canonical
        );
    }
    if let Some(error) = outcome.fatal_errors().next() {
        return Err(Failure::Run(error.to_string()));
    }
    guard_verdict(outcome.guard.as_ref())
}

/// Fails the run when the guard stopped a provider or refused deletions over the cap.
fn guard_verdict(guard: Option<&GuardReport>) -> Result<(), Failure> {
    let Some(guard) = guard else {
        return Ok(());
    };
    if guard.skipped > 0 {
        eprintln!(
            "push: {} devices of the stopped providers were not sent",
            guard.skipped
        );
    }
    if guard.withheld > 0 {
        eprintln!(
            "push: {} deletions withheld (their provider was stopped)",
            guard.withheld
        );
    }
    let mut lines: Vec<String> = guard.stops.iter().map(|stop| stop.line.clone()).collect();
    if guard.over_cap > 0 {
        lines.push(format!(
            "--max-delete reached ({} deletions): {} more deletions were not applied",
            guard.cap.unwrap_or(0),
            guard.over_cap
        ));
    }
    let Some(last) = lines.pop() else {
        return Ok(());
    };
    for line in lines {
        eprintln!("push: error: {line}");
    }
    Err(Failure::Run(last))
}
