//! `push send`: stream devices from a source into one session, write each feedback as it
//! arrives, and apply it to the store.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{StreamExt, future};
use push_smol::{Client, Error, Payload, Platform, Report};
use smol::Timer;

use crate::change::{self, Applied, ProviderNames};
use crate::cli::SendArgs;
use crate::config;
use crate::db::{Db, Target};
use crate::devices::{self, CHANNEL_CAPACITY, Input};
use crate::guard::{Guard, Limits, MaxDelete, Stopped};
use crate::interrupt::{self, Reason, Stop};
use crate::jsonl::{self, Line};
use crate::main_error::Failure;
use crate::metrics::{self, Metrics};
use crate::metrics_server;
use crate::recorder::{self, Applying, Journal, Record, Sinks};
use crate::run_journal;
use crate::store;
use crate::store_schema::{Custom, Schema};
use crate::summary::{self, Tally};

/// Where devices come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A device-list file, `-` for standard input.
    File(PathBuf),
    /// A token store (SQLite or PostgreSQL), read and written through `schema`'s
    /// statements.
    Db {
        /// Where the store is.
        target: Target,
        /// The user's query and templates (empty: today's table).
        schema: Custom,
    },
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
    /// Continue this run: leave out the devices it journaled.
    pub resume: Option<String>,
    /// After a stop, how long the devices in flight may take to finish.
    pub stop_wait: Duration,
    /// Devices sent and still without feedback at most (`None`: as many as the client
    /// takes). Bounds what a stop has to wait for and what a crash can send twice.
    pub in_flight: Option<usize>,
    /// How long the run may take: devices without feedback by then end `unavailable`
    /// (with the reason), later ones at once, and the run ends.
    pub deadline: Option<Duration>,
    /// Where to count outcomes and time notifications, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
}

/// How long the devices in flight may take to finish after a stop, by default.
pub const DEFAULT_STOP_WAIT: Duration = Duration::from_secs(30);

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
    /// The client's report of the session (`None` when the run gave up waiting for the
    /// devices in flight after a stop).
    pub report: Option<Report>,
    /// Changes made to the store, when feedback was applied.
    pub applied: Option<Applied>,
    /// From the start of reading to the last feedback.
    pub elapsed: Duration,
    /// What the deletion guard held back, when feedback was applied.
    pub guard: Option<GuardReport>,
    /// Canonical ids that were not valid tokens (never written to the store).
    pub bad_canonical: u64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<Reason>,
    /// The run id, when the run is journaled (resumable).
    pub run: Option<String>,
    /// Devices left out because the resumed run already had their result.
    pub resumed: u64,
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

impl GuardReport {
    /// What `guard` did, with `skipped` devices not sent.
    pub fn of(guard: &Guard, skipped: u64) -> Self {
        GuardReport {
            stops: guard.stops().to_vec(),
            withheld: guard.withheld(),
            over_cap: guard.over_cap(),
            cap: guard.cap(),
            skipped,
        }
    }
}

impl Outcome {
    /// The client-wide errors that mean the run did not do its job (TLS, authentication,
    /// configuration); connection refusals and timeouts that were retried are not among them.
    pub fn fatal_errors(&self) -> impl Iterator<Item = &Error> {
        self.report
            .iter()
            .flat_map(|report| report.errors.iter())
            .filter(|e| e.is_fatal())
    }
}

struct State {
    tally: Tally,
    guard: Option<Guard>,
    bad_canonical: u64,
    skipped: u64,
    /// Devices left out because the resumed run already has their result.
    resumed: u64,
}

/// The journal, JSONL and store sinks of a run, the run id, and the devices the run will
/// read when the source says.
fn sinks(plan: &Plan) -> Result<(Sinks, Option<String>, Option<u64>), String> {
    let resume = plan.resume.as_deref();
    let run = resume.map_or_else(|| run_journal::new_run_id(store::now()), str::to_owned);
    let jsonl = jsonl::Writer::open(plan.feedback.as_deref(), resume.is_some())?;
    match &plan.source {
        Source::Db { target, schema } => {
            let schema = Schema::new(target.dialect(), schema)?;
            let mut db = Db::open(target)?;
            store::prepare(&mut db, &schema, plan.apply.is_some())?;
            run_journal::begin(&mut db, &run, resume.is_some(), store::now())?;
            let total = store::count(&mut db, &schema, resume)?;
            let apply = plan.apply.map(|apply| Applying {
                schema,
                providers: plan.providers,
                dry_run: apply.dry_run,
            });
            let sinks = Sinks {
                jsonl,
                journal: Journal::Store(run.clone()),
                store: Some(db),
                apply,
            };
            Ok((sinks, Some(run), Some(total)))
        }
        Source::File(path) if path.as_os_str() == "-" => {
            if resume.is_some() {
                return Err("--resume needs a device list file or --db, not standard input".into());
            }
            let sinks = Sinks {
                jsonl,
                journal: Journal::None,
                store: None,
                apply: None,
            };
            Ok((sinks, None, None))
        }
        Source::File(path) => {
            let journal = run_journal::file_path(path, &run);
            if resume.is_some() && !journal.exists() {
                return Err(format!(
                    "--resume {run}: no run journal {} (the run is complete, or another device list)",
                    journal.display()
                ));
            }
            let sinks = Sinks {
                jsonl,
                journal: Journal::File(journal),
                store: None,
                apply: None,
            };
            Ok((sinks, Some(run), None))
        }
    }
}

/// Runs one broadcast, until every device has its feedback or `stop` is asked: then no
/// more devices are read, the ones in flight get up to [`Plan::stop_wait`] to finish, and
/// everything received is recorded.
pub fn run(plan: Plan, stop: &Stop) -> Result<Outcome, String> {
    if plan.apply.is_some() && !matches!(plan.source, Source::Db { .. }) {
        return Err("--apply-feedback needs --db".into());
    }
    let (sinks, run_id, total) = sinks(&plan)?;
    if let Some(run) = &run_id
        && plan.resume.is_none()
    {
        eprintln!("push: run {run} (after an interruption, continue it with --resume {run})");
    }
    if let Some(run) = &plan.resume {
        match total {
            Some(left) => eprintln!("push: resuming run {run}: {left} devices left"),
            None => eprintln!("push: resuming run {run}"),
        }
    }
    let done_before = match (&plan.source, &plan.resume) {
        (Source::File(path), Some(run)) => {
            run_journal::load_file(&run_journal::file_path(path, run))?
        }
        _ => HashSet::new(),
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
    let (records, records_rx) = async_channel::bounded(CHANNEL_CAPACITY);
    let recorder = recorder::spawn(sinks, records_rx, stop.clone())?;
    let (sender, receiver) = async_channel::bounded(CHANNEL_CAPACITY);
    let reader = match &plan.source {
        Source::File(path) => devices::spawn_file(path, sender)?,
        Source::Db { target, schema } => {
            let schema = Schema::new(target.dialect(), schema)?;
            store::spawn_reader(target, &schema, plan.resume.as_deref(), sender)?
        }
    };
    let bar = summary::progress(total, plan.quiet);
    let start = Instant::now();
    let state = RefCell::new(State {
        tally: Tally::default(),
        guard,
        bad_canonical: 0,
        skipped: 0,
        resumed: 0,
    });
    // One slot per device sent and still without feedback (unused without a bound).
    let (slots, freed) = async_channel::bounded(plan.in_flight.unwrap_or(1).max(1));
    let timer = RefCell::new(
        plan.metrics
            .clone()
            .map(|m| metrics::Timer::new(m, plan.providers)),
    );
    let finished = smol::block_on(async {
        let mut session = plan.client.send(plan.payload);
        let mut feedbacks = session.feedbacks();
        if let Some(deadline) = plan.deadline {
            // Fails only when the client is gone, which the first push reports.
            let _ = session.deadline(start + deadline);
        }
        let (state, bar, records, slots) = (&state, &bar, &records, &slots);
        let done_before = &done_before;
        let timer = &timer;
        let push = async move {
            // `or` polls its first future first: a full channel would never let the stop
            // through, so the flag is checked before each device.
            while !stop.is_stopped() {
                let next = future::or(async { Some(receiver.recv().await) }, async {
                    stop.wait().await;
                    None
                })
                .await;
                let Some(Ok(input)) = next else {
                    break;
                };
                match input {
                    Input::Device(device) => {
                        if done_before.contains(&device.token) {
                            state.borrow_mut().resumed += 1;
                            continue;
                        }
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
                        let pushed = future::or(
                            async {
                                if plan.in_flight.is_some() && slots.send(()).await.is_err() {
                                    return None;
                                }
                                let token = timer.borrow().is_some().then(|| device.token.clone());
                                let pushed = session.push(device).await;
                                if let (Some(timer), Some(token)) =
                                    (&mut *timer.borrow_mut(), token)
                                    && pushed.is_ok()
                                {
                                    timer.sent(token);
                                }
                                Some(pushed)
                            },
                            async {
                                stop.wait().await;
                                None
                            },
                        )
                        .await;
                        match pushed {
                            Some(result) => result.map_err(|e| e.to_string())?,
                            None => break,
                        }
                    }
                    Input::Malformed(malformed) => {
                        if done_before.contains(&malformed.token) {
                            state.borrow_mut().resumed += 1;
                            continue;
                        }
                        state.borrow_mut().tally.fail(malformed.code);
                        if let Some(timer) = &*timer.borrow() {
                            timer.malformed(malformed.code);
                        }
                        bar.inc(1);
                        let line = serde_json::to_string(&Line::from_malformed(&malformed))
                            .map_err(|e| e.to_string())?;
                        record(records, Record::Line(line)).await;
                        record(records, Record::Done(malformed.token)).await;
                    }
                }
            }
            drop(receiver);
            session.finish().await.map_err(|e| e.to_string())
        };
        let read = async move {
            while let Some(feedback) = feedbacks.next().await {
                let _ = freed.try_recv();
                if let Some(timer) = &mut *timer.borrow_mut() {
                    timer.feedback(&feedback);
                }
                let released = {
                    let mut state = state.borrow_mut();
                    state.tally.feedback(&feedback);
                    let State {
                        guard,
                        bad_canonical,
                        ..
                    } = &mut *state;
                    match guard {
                        Some(guard) => {
                            let change = change::change_for(&feedback, bad_canonical);
                            guard.observe(&feedback, change)
                        }
                        None => Vec::new(),
                    }
                };
                bar.inc(1);
                // The binary gateway acknowledges nothing (no receipt id): only its failures
                // are worth a line. HTTP providers answer every notification.
                if feedback.device.platform == Platform::Android
                    || feedback.error.is_some()
                    || feedback.receipt.id.is_some()
                {
                    let line = serde_json::to_string(&Line::from_feedback(&feedback))
                        .map_err(|e| e.to_string())?;
                    record(records, Record::Line(line)).await;
                }
                for change in released {
                    record(records, Record::Change(change)).await;
                }
                if let Some(new_token) = &feedback.new_token {
                    record(records, Record::Done(new_token.clone())).await;
                }
                record(records, Record::Done(feedback.device.token)).await;
            }
            let released = state
                .borrow_mut()
                .guard
                .as_mut()
                .map(Guard::finish)
                .unwrap_or_default();
            for change in released {
                record(records, Record::Change(change)).await;
            }
            Ok::<(), String>(())
        };
        let work = future::zip(push, read);
        let give_up = async {
            stop.wait().await;
            Timer::after(plan.stop_wait).await;
        };
        future::or(async { Some(work.await) }, async {
            give_up.await;
            None
        })
        .await
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let stopped = stop.reason();
    if finished.is_some() && stopped.is_none() {
        // Fails only when the recorder already failed, which `stopped` then says.
        let _ = records.send_blocking(Record::Complete);
    }
    drop(records);
    let source_result = reader
        .join()
        .map_err(|_| "the device reader panicked".to_owned())?;
    let recorded = recorder
        .join()
        .map_err(|_| "the recorder panicked".to_owned())?;
    let state = state.into_inner();
    let applied = match recorded {
        Ok(applied) => plan.apply.map(|_| applied),
        // The recorder stopped the run with its error: `stopped` says it.
        Err(_) => None,
    };
    source_result?;
    let report = match finished {
        Some((pushed, read)) => {
            read?;
            Some(pushed?)
        }
        None => None,
    };
    let guard = state
        .guard
        .map(|guard| GuardReport::of(&guard, state.skipped));
    Ok(Outcome {
        tally: state.tally,
        report,
        applied,
        elapsed,
        guard,
        bad_canonical: state.bad_canonical,
        stopped,
        run: run_id,
        resumed: state.resumed,
    })
}

/// Hands a record to the recorder; when it has failed (and stopped the run), the record is
/// dropped: the run is ending anyway.
async fn record(records: &async_channel::Sender<Record>, record: Record) {
    let _ = records.send(record).await;
}

/// `push send` with its arguments.
pub fn command(mut args: SendArgs) -> Result<(), Failure> {
    if let (Some(file), Some(app)) = (&args.app.config, &args.app.app) {
        if args.providers.any_given() {
            return Err(Failure::Usage(
                "--app takes every provider setting from --config: give no provider flags with it"
                    .into(),
            ));
        }
        args.providers = crate::apps::load(file)
            .and_then(|apps| apps.get(app).map(|app| app.args()))
            .map_err(Failure::Usage)?;
    }
    if let Some(event) = args.live.live_activity {
        let Some(devices) = &args.devices else {
            return Err(Failure::Usage("--live-activity needs --devices".into()));
        };
        return crate::apple_push::send_live_activity(
            event,
            &args.live,
            &args.message,
            &args.providers.apns,
            devices,
        );
    }
    if args.live.content.any_given() {
        return Err(Failure::Usage(
            "--content-state, --timestamp, --stale-date, --dismissal-date, --relevance-score, --priority and --expiration go with --live-activity".into(),
        ));
    }
    let mut payload = config::payload(&args.message).map_err(Failure::Usage)?;
    if let Some(push_type) = args.providers.apns.apns_push_type {
        payload = payload.apns_push_type(push_type);
    }
    let source = match (args.devices, args.db) {
        (Some(path), _) => Source::File(path),
        (None, Some(db)) => Source::Db {
            target: Target::parse(&db),
            schema: Custom {
                query: args.query,
                on_invalid: args.apply.on_invalid,
                on_new_token: args.apply.on_new_token,
                on_restore_invalid: None,
                on_restore_new_token: None,
            },
        },
        (None, None) => return Err(Failure::Usage("give --devices or --db".into())),
    };
    if let Source::Db { target, schema } = &source {
        // Templates are checked before anything is sent.
        Schema::new(target.dialect(), schema).map_err(Failure::Usage)?;
    }
    let connections = args.connections.map(usize::from);
    let client = config::client(&args.providers, connections, args.rate).map_err(Failure::Usage)?;
    let metrics = metrics_server::start(&args.metrics).map_err(Failure::Usage)?;
    if let Some(metrics) = &metrics {
        let client = client.clone();
        metrics.watch_client(move || client.stats());
    }
    let apply = args.apply.apply_feedback.then_some(Apply {
        limits: Limits {
            min_answers: args.apply.hold_deletions,
            max_invalid_percent: args.apply.max_invalid,
            max_delete: None,
        },
        max_delete: args.apply.max_delete,
        dry_run: args.apply.dry_run_store,
    });
    let stop = Stop::default();
    interrupt::on_ctrl_c(stop.clone()).map_err(Failure::Run)?;
    let outcome = run(
        Plan {
            client,
            payload,
            source,
            feedback: args.feedback,
            apply,
            quiet: args.quiet,
            providers: config::provider_names(&args.providers.apns, &args.providers.fcm),
            resume: args.resume,
            stop_wait: Duration::from_secs(args.stop_wait),
            in_flight: Some(usize::try_from(args.in_flight).unwrap_or(usize::MAX)),
            deadline: args.deadline,
            metrics,
        },
        &stop,
    )
    .map_err(Failure::Run)?;
    if !args.quiet {
        eprint!(
            "{}",
            summary::render(&outcome.tally, outcome.elapsed, outcome.applied)
        );
        if args.apply.dry_run_store {
            eprintln!(
                "store: dry run, nothing was changed (the counts above are what would have changed)"
            );
        }
        if outcome.resumed > 0 {
            eprintln!(
                "resumed: {} devices already had their result and were not sent again",
                outcome.resumed
            );
        }
    }
    for error in outcome
        .report
        .iter()
        .flat_map(|report| report.errors.iter())
        .filter(|e| !e.is_fatal())
    {
        eprintln!("push: warning: {error}");
    }
    if outcome.bad_canonical > 0 {
        eprintln!(
            "push: warning: {} canonical ids were not valid tokens and were not written to the store",
            outcome.bad_canonical
        );
    }
    if outcome.report.is_none() {
        eprintln!(
            "push: gave up waiting for the devices in flight after {} s: they have no result and a resumed run sends them again",
            args.stop_wait
        );
    }
    metrics_server::hold(&args.metrics, &stop);
    let resume = |reason: &str| match &outcome.run {
        Some(run) => format!("{reason}; continue with --resume {run}"),
        None => reason.to_owned(),
    };
    match &outcome.stopped {
        Some(Reason::Interrupted) => {
            return Err(Failure::Interrupted(resume("interrupted")));
        }
        Some(Reason::Failed(error)) => {
            return Err(Failure::Run(resume(&format!("stopped: {error}"))));
        }
        None => {}
    }
    if let Some(error) = outcome.fatal_errors().next() {
        return Err(Failure::Run(error.to_string()));
    }
    guard_verdict(outcome.guard.as_ref())
}

/// Fails the run when the guard stopped a provider or refused deletions over the cap.
pub fn guard_verdict(guard: Option<&GuardReport>) -> Result<(), Failure> {
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
