//! The recorder: one thread that writes everything a run leaves behind, in order: the
//! feedback JSONL, the run journal (which devices have their final result) and the store
//! changes. Each batch is applied in one store transaction holding only the batch's
//! statements (never network I/O), the JSONL is flushed before the commit, and a failure
//! stops the run at once.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::thread::JoinHandle;

use async_channel::Receiver;

use crate::change::{Applied, Change, ProviderNames};
use crate::db::Db;
use crate::interrupt::{Reason, Stop};
use crate::jsonl;
use crate::run_journal;
use crate::store;
use crate::store_schema::Schema;

/// Records handled per store transaction at most.
pub const BATCH: usize = 1000;

/// One thing to record.
#[derive(Debug)]
pub enum Record {
    /// A JSONL line, serialized (without its newline).
    Line(String),
    /// A token whose device has its final result.
    Done(String),
    /// A store change that feedback calls for (already let through by the guard).
    Change(Change),
    /// The run went through every device: mark it complete.
    Complete,
}

/// Where the run journal goes.
#[derive(Debug)]
pub enum Journal {
    /// Nowhere (a device list on standard input).
    None,
    /// A file beside the device list.
    File(PathBuf),
    /// The store, under this run id.
    Store(String),
}

/// What the recorder writes to.
#[derive(Debug)]
pub struct Sinks {
    /// The feedback JSONL.
    pub jsonl: jsonl::Writer,
    /// The run journal.
    pub journal: Journal,
    /// The store's write connection, when the source is a store.
    pub store: Option<Db>,
    /// How changes are applied; `None` when feedback is not applied.
    pub apply: Option<Applying>,
}

/// How the recorder applies changes.
#[derive(Debug, Clone)]
pub struct Applying {
    /// The schema's statements.
    pub schema: Schema,
    /// The provider names for the undo journal.
    pub providers: ProviderNames,
    /// Roll each change back (a dry run): the counts are what would have changed.
    pub dry_run: bool,
}

/// Starts the recorder thread; it ends when every sender of `records` is gone, returning
/// what it applied. On a write failure it stops the run through `stop` and returns the
/// error.
pub fn spawn(
    sinks: Sinks,
    records: Receiver<Record>,
    stop: Stop,
) -> Result<JoinHandle<Result<Applied, String>>, String> {
    std::thread::Builder::new()
        .name("push-recorder".into())
        .spawn(move || {
            let result = Recorder::open(sinks).and_then(|mut r| r.run(&records));
            if let Err(error) = &result {
                stop.stop(Reason::Failed(error.clone()));
            }
            result
        })
        .map_err(|error| format!("cannot start the recorder: {error}"))
}

struct Recorder {
    jsonl: jsonl::Writer,
    file: Option<(BufWriter<File>, PathBuf)>,
    run: Option<String>,
    store: Option<Db>,
    apply: Option<Applying>,
    applied: Applied,
    complete: bool,
    /// Tokens done in the current batch, journaled in the store before its commit.
    done: Vec<String>,
}

impl Recorder {
    fn open(sinks: Sinks) -> Result<Recorder, String> {
        let (file, run) = match sinks.journal {
            Journal::None => (None, None),
            Journal::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("cannot open the run journal {}: {e}", path.display()))?;
                (Some((BufWriter::new(file), path)), None)
            }
            Journal::Store(run) => (None, Some(run)),
        };
        Ok(Recorder {
            jsonl: sinks.jsonl,
            file,
            run,
            store: sinks.store,
            apply: sinks.apply,
            applied: Applied::default(),
            complete: false,
            done: Vec::new(),
        })
    }

    fn run(&mut self, records: &Receiver<Record>) -> Result<Applied, String> {
        while let Ok(first) = records.recv_blocking() {
            self.begin()?;
            let mut next = Some(first);
            let mut in_batch = 0;
            while let Some(record) = next.take() {
                self.handle(record)?;
                in_batch += 1;
                if in_batch < BATCH {
                    next = records.try_recv().ok();
                }
            }
            self.flush()?;
            self.commit()?;
        }
        self.flush()?;
        if self.complete
            && let Some((_, path)) = self.file.take()
        {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
        Ok(self.applied)
    }

    fn begin(&mut self) -> Result<(), String> {
        match &mut self.store {
            Some(db) => db.begin(),
            None => Ok(()),
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        let Some(db) = &mut self.store else {
            return Ok(());
        };
        if let Some(run) = &self.run
            && !self.done.is_empty()
        {
            run_journal::record(db, run, &self.done)?;
            self.done.clear();
        }
        db.script("COMMIT")
    }

    fn handle(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Line(line) => self.jsonl.write_serialized(&line),
            Record::Done(token) => {
                if let Some((file, path)) = &mut self.file {
                    return writeln!(file, "{token}")
                        .map_err(|e| format!("writing {} failed: {e}", path.display()));
                }
                if self.run.is_some() {
                    self.done.push(token);
                }
                Ok(())
            }
            Record::Change(change) => match (&mut self.store, &self.apply) {
                (Some(db), Some(applying)) => apply(db, applying, &change, &mut self.applied),
                _ => Ok(()),
            },
            Record::Complete => {
                self.complete = true;
                // Forgotten with the run's journal.
                self.done.clear();
                match (&mut self.store, &self.run) {
                    (Some(db), Some(run)) => run_journal::finish(db, run, store::now()),
                    _ => Ok(()),
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        self.jsonl.finish()?;
        if let Some((file, path)) = &mut self.file {
            file.flush()
                .map_err(|e| format!("writing {} failed: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Applies a change, or in a dry run applies it and rolls it back (so the counts are what
/// would have changed, while the run journal of the same transaction is kept).
fn apply(
    db: &mut Db,
    applying: &Applying,
    change: &Change,
    applied: &mut Applied,
) -> Result<(), String> {
    let Applying {
        schema,
        providers,
        dry_run,
    } = applying;
    if !dry_run {
        return store::apply(db, schema, change, applied, *providers);
    }
    db.script("SAVEPOINT dry_run")?;
    let result = store::apply(db, schema, change, applied, *providers);
    db.script("ROLLBACK TO SAVEPOINT dry_run; RELEASE SAVEPOINT dry_run")?;
    result
}
