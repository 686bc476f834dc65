//! The run journal: which devices of a `push send` run have their final result, so that
//! `push send --resume RUN` sends to the others only. In the store for `--db`:
//!
//! ```sql
//! CREATE TABLE push_runs(run TEXT PRIMARY KEY, started_at BIGINT NOT NULL, finished_at BIGINT);
//! CREATE TABLE push_run_devices(run TEXT NOT NULL, token TEXT NOT NULL);
//! ```
//!
//! and a file beside the device list for `--devices` (one token a line). A run that
//! completes is marked finished and its device rows are removed (its file too).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::db::{self, Db, Value};
use crate::sql_template::Dialect;

/// The tables of the run journal (the same in both dialects).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS push_runs(\
    run TEXT PRIMARY KEY, started_at BIGINT NOT NULL, finished_at BIGINT); \
    CREATE TABLE IF NOT EXISTS push_run_devices(run TEXT NOT NULL, token TEXT NOT NULL); \
    CREATE INDEX IF NOT EXISTS push_run_devices_token ON push_run_devices(run, token)";

/// A new run id: the start time and the process id, unique on one machine.
pub fn new_run_id(now: i64) -> String {
    format!("{now}-{}", std::process::id())
}

/// Registers a new run, or checks that `run` can be resumed (it exists, unfinished).
pub fn begin(db: &mut Db, run: &str, resume: bool, now: i64) -> Result<(), String> {
    let dialect = db.dialect();
    let found = db.run(
        &db::internal(dialect, "SELECT finished_at FROM push_runs WHERE run = ?1"),
        &[Value::Text(run.into())],
    )?;
    let finished = found
        .rows
        .first()
        .map(|row| row.first().and_then(Value::as_int));
    match (resume, finished) {
        (false, _) => db
            .run(
                &db::internal(
                    dialect,
                    "INSERT INTO push_runs(run, started_at) VALUES (?1, ?2)",
                ),
                &[Value::Text(run.into()), Value::Int(now)],
            )
            .map(|_| ()),
        (true, Some(None)) => Ok(()),
        (true, Some(Some(_))) => Err(format!("--resume {run}: that run is complete")),
        (true, None) => Err(format!("--resume {run}: no such run in the store")),
    }
}

/// Journals that `tokens` have their final result in `run`: one statement per token in
/// SQLite (in process), one for all in PostgreSQL (a round trip each would bound the rate).
pub fn record(db: &mut Db, run: &str, tokens: &[String]) -> Result<(), String> {
    match db.dialect() {
        Dialect::Sqlite => {
            let statement = db::internal(
                Dialect::Sqlite,
                "INSERT INTO push_run_devices(run, token) VALUES (?1, ?2)",
            );
            for token in tokens {
                db.run(
                    &statement,
                    &[Value::Text(run.into()), Value::Text(token.clone())],
                )?;
            }
        }
        Dialect::Postgres => {
            let statement = db::internal(
                Dialect::Postgres,
                "INSERT INTO push_run_devices(run, token) SELECT ?1, unnest(CAST(?2 AS TEXT[]))",
            );
            db.run(
                &statement,
                &[Value::Text(run.into()), Value::TextList(tokens.to_vec())],
            )?;
        }
    }
    Ok(())
}

/// Marks `run` complete and forgets its devices.
pub fn finish(db: &mut Db, run: &str, now: i64) -> Result<(), String> {
    let dialect = db.dialect();
    db.run(
        &db::internal(
            dialect,
            "UPDATE push_runs SET finished_at = ?2 WHERE run = ?1",
        ),
        &[Value::Text(run.into()), Value::Int(now)],
    )?;
    db.run(
        &db::internal(dialect, "DELETE FROM push_run_devices WHERE run = ?1"),
        &[Value::Text(run.into())],
    )?;
    Ok(())
}

/// The journal file of `run` for the device list `devices`.
pub fn file_path(devices: &Path, run: &str) -> PathBuf {
    let mut name = devices.as_os_str().to_owned();
    name.push(format!(".push-run-{run}"));
    PathBuf::from(name)
}

/// The tokens a journal file lists.
pub fn load_file(path: &Path) -> Result<HashSet<String>, String> {
    let file = File::open(path).map_err(|e| {
        format!(
            "--resume: cannot open the run journal {}: {e}",
            path.display()
        )
    })?;
    BufReader::new(file)
        .lines()
        .map(|line| line.map_err(|e| format!("reading {} failed: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_resumable_until_it_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        crate::store::create(&path).unwrap();
        let mut db = Db::open(&crate::db::Target::Sqlite(path)).unwrap();
        db.script(SCHEMA).unwrap();
        assert!(
            begin(&mut db, "r1", true, 1)
                .unwrap_err()
                .contains("no such run")
        );
        begin(&mut db, "r1", false, 1).unwrap();
        record(&mut db, "r1", &["a".to_owned(), "b".to_owned()]).unwrap();
        begin(&mut db, "r1", true, 2).unwrap();
        finish(&mut db, "r1", 3).unwrap();
        assert!(
            begin(&mut db, "r1", true, 4)
                .unwrap_err()
                .contains("complete")
        );
        let count = db::internal(Dialect::Sqlite, "SELECT count(*) FROM push_run_devices");
        assert_eq!(db.run(&count, &[]).unwrap().rows[0][0], Value::Int(0));
    }

    #[test]
    fn journal_files_sit_beside_the_list() {
        assert_eq!(
            file_path(Path::new("/x/devices.txt"), "5-7"),
            PathBuf::from("/x/devices.txt.push-run-5-7")
        );
    }
}
