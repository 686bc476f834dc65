//! The run journal: which devices of a `push send` run have their final result, so that
//! `push send --resume RUN` sends to the others only. In the store for `--db`:
//!
//! ```sql
//! CREATE TABLE push_runs(run TEXT PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER);
//! CREATE TABLE push_run_devices(run TEXT NOT NULL, token TEXT NOT NULL);
//! ```
//!
//! and a file beside the device list for `--devices` (one token a line). A run that
//! completes is marked finished and its device rows are removed (its file too).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

/// The tables of the run journal in a store.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS push_runs(\
    run TEXT PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER); \
    CREATE TABLE IF NOT EXISTS push_run_devices(run TEXT NOT NULL, token TEXT NOT NULL); \
    CREATE INDEX IF NOT EXISTS push_run_devices_token ON push_run_devices(run, token)";

/// A new run id: the start time and the process id, unique on one machine.
pub fn new_run_id(now: i64) -> String {
    format!("{now}-{}", std::process::id())
}

/// Registers a new run, or checks that `run` can be resumed (it exists, unfinished).
pub fn begin(conn: &Connection, run: &str, resume: bool, now: i64) -> Result<(), String> {
    let finished: Option<Option<i64>> = conn
        .query_row(
            "SELECT finished_at FROM push_runs WHERE run = ?1",
            params![run],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    match (resume, finished) {
        (false, _) => conn
            .execute(
                "INSERT INTO push_runs(run, started_at) VALUES (?1, ?2)",
                params![run, now],
            )
            .map(|_| ())
            .map_err(|e| e.to_string()),
        (true, Some(None)) => Ok(()),
        (true, Some(Some(_))) => Err(format!("--resume {run}: that run is complete")),
        (true, None) => Err(format!("--resume {run}: no such run in the store")),
    }
}

/// Journals that `token` has its final result in `run`.
pub fn record(conn: &Connection, run: &str, token: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO push_run_devices(run, token) VALUES (?1, ?2)")?
        .execute(params![run, token])?;
    Ok(())
}

/// Marks `run` complete and forgets its devices.
pub fn finish(conn: &Connection, run: &str, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE push_runs SET finished_at = ?2 WHERE run = ?1",
        params![run, now],
    )?;
    conn.execute("DELETE FROM push_run_devices WHERE run = ?1", params![run])?;
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
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        assert!(
            begin(&conn, "r1", true, 1)
                .unwrap_err()
                .contains("no such run")
        );
        begin(&conn, "r1", false, 1).unwrap();
        record(&conn, "r1", "a").unwrap();
        begin(&conn, "r1", true, 2).unwrap();
        finish(&conn, "r1", 3).unwrap();
        assert!(
            begin(&conn, "r1", true, 4)
                .unwrap_err()
                .contains("complete")
        );
        let left: i64 = conn
            .query_row("SELECT count(*) FROM push_run_devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn journal_files_sit_beside_the_list() {
        assert_eq!(
            file_path(Path::new("/x/devices.txt"), "5-7"),
            PathBuf::from("/x/devices.txt.push-run-5-7")
        );
    }
}
