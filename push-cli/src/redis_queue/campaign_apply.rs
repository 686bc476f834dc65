//! `push campaign results ID --db --apply-feedback`: a campaign's results applied to a token
//! store through the same guard, recorder and journal as `push send --apply-feedback`.

use std::path::Path;
use std::time::Instant;

use super::campaign::read_lines;
use super::conn::Server;
use crate::change::{self, ProviderNames};
use crate::db::{Db, Target};
use crate::guard::{Guard, Limits};
use crate::interrupt::Stop;
use crate::jsonl;
use crate::main_error::Failure;
use crate::recorder::{self, Applying, Journal, Record, Sinks};
use crate::redis_queue::args::ResultsStoreArgs;
use crate::send::{GuardReport, guard_verdict};
use crate::store;
use crate::store_schema::{Custom, Schema};
use crate::summary::{self, Tally};

/// The providers as the journal names them: campaigns are sent by workers over HTTP, and
/// the results do not say whether FCM or GCM answered (FCM HTTP v1 is the default).
const PROVIDERS: ProviderNames = ProviderNames {
    ios: "apns-http2",
    android: "fcm",
};

/// Reads campaign `id`'s results and applies them to the store of `args`, writing the lines
/// to `out` when given.
pub fn command(
    server: &Server,
    id: u64,
    out: Option<&Path>,
    args: &ResultsStoreArgs,
) -> Result<(), Failure> {
    let Some(db) = &args.db else {
        return Err(Failure::Usage("--apply-feedback needs --db".into()));
    };
    let target = Target::parse(db);
    let custom = Custom {
        query: None,
        on_invalid: args.apply.on_invalid.clone(),
        on_new_token: args.apply.on_new_token.clone(),
        on_restore_invalid: None,
        on_restore_new_token: None,
    };
    let schema = Schema::new(target.dialect(), &custom).map_err(Failure::Usage)?;
    let mut db = Db::open(&target).map_err(Failure::Usage)?;
    store::prepare(&mut db, &schema, true).map_err(Failure::Usage)?;
    let max_delete = match args.apply.max_delete {
        Some(max) => {
            let total = store::count(&mut db, &schema, None).map_err(Failure::Run)?;
            Some(max.resolve(Some(total)).map_err(Failure::Usage)?)
        }
        None => None,
    };
    let mut guard = Guard::new(Limits {
        min_answers: args.apply.hold_deletions,
        max_invalid_percent: args.apply.max_invalid,
        max_delete,
    });
    let sinks = Sinks {
        jsonl: jsonl::Writer::create(out).map_err(Failure::Usage)?,
        journal: Journal::None,
        store: Some(db),
        apply: Some(Applying {
            schema,
            providers: PROVIDERS,
            dry_run: args.apply.dry_run_store,
        }),
    };
    let stop = Stop::default();
    let (records, records_rx) = async_channel::bounded(recorder::BATCH);
    let recorder = recorder::spawn(sinks, records_rx, stop.clone()).map_err(Failure::Run)?;
    let start = Instant::now();
    let mut tally = Tally::default();
    let mut bad_canonical = 0;
    // The recorder is a thread of its own: a full channel only waits for it.
    let send = |record: Record| {
        records
            .send_blocking(record)
            .map_err(|_| Failure::Run("the recorder stopped".into()))
    };
    let read = smol::block_on(read_lines(server, id, |line| {
        send(Record::Line(line.to_owned()))?;
        let Some(feedback) = jsonl::read_feedback(line) else {
            return Ok(());
        };
        tally.feedback(&feedback);
        let change = change::change_for(&feedback, &mut bad_canonical);
        for change in guard.observe(&feedback, change) {
            send(Record::Change(change))?;
        }
        Ok(())
    }));
    let finished = read.and_then(|()| {
        guard
            .finish()
            .into_iter()
            .try_for_each(|change| send(Record::Change(change)))
    });
    drop(records);
    let applied = recorder
        .join()
        .map_err(|_| Failure::Run("the recorder panicked".into()))?;
    // A recorder failure is the cause of a failed send: report it first.
    let applied = applied.map_err(Failure::Run)?;
    finished?;
    eprint!(
        "{}",
        summary::render(&tally, start.elapsed(), Some(applied))
    );
    if args.apply.dry_run_store {
        eprintln!(
            "store: dry run, nothing was changed (the counts above are what would have changed)"
        );
    }
    if bad_canonical > 0 {
        eprintln!(
            "push: warning: {bad_canonical} canonical ids were not valid tokens and were not written to the store"
        );
    }
    guard_verdict(Some(&GuardReport::of(&guard, 0)))
}
