//! The SQLite token store.
//!
//! Schema (created by `push demo`, upgraded when feedback is applied):
//!
//! ```sql
//! CREATE TABLE devices(
//!     platform   TEXT NOT NULL,     -- 'ios' or 'android'
//!     token      TEXT PRIMARY KEY,  -- as the app registered it
//!     updated_at INTEGER            -- UNIX seconds of the last registration; NULL = unknown
//! );
//! ```
//!
//! A store with only `platform` and `token` works for sending; applying feedback adds the
//! `updated_at` column. The store is read by a cursor in a blocking thread (never loaded
//! whole) while feedback is written by a second connection in another thread; WAL mode lets
//! the two run together, the reader seeing the store as it was when sending began.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags, params};

use push_proto::Platform;

use crate::devices::{Input, Origin, check};
use crate::journal::{self, Entry, Kind};

/// The `CREATE TABLE` statement of a new store.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS devices(\
    platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at INTEGER)";

/// Changes committed per transaction.
const BATCH: usize = 5000;

/// A change to the store that feedback calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The device is gone (`invalid_device`): delete its row, unless it registered again
    /// after `unregistered_at`.
    Delete {
        /// The device's platform.
        platform: Platform,
        /// The token sent.
        token: String,
        /// When the provider last confirmed the token invalid (UNIX seconds; APNs' 410
        /// `timestamp`): a row with a newer `updated_at` is kept.
        unregistered_at: Option<i64>,
        /// The provider's reason (`BadDeviceToken`, `UNREGISTERED`), if it gave one.
        reason: Option<String>,
    },
    /// The token has a new canonical form: replace it (or, when the new token is already
    /// stored, delete the old row).
    Replace {
        /// The device's platform.
        platform: Platform,
        /// The token sent.
        old: String,
        /// Its canonical replacement.
        new: String,
    },
}

/// What applying feedback did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows deleted for `invalid_device`.
    pub deleted: u64,
    /// Rows whose token was replaced.
    pub replaced: u64,
    /// Rows deleted because their canonical token was already stored.
    pub merged: u64,
}

/// Now, in UNIX seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn sql_error(path: &Path, error: rusqlite::Error) -> String {
    format!("{}: {error}", path.display())
}

/// Opens an existing store (never creates one) and checks it has a `devices` table.
pub fn open_existing(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|error| format!("cannot open the store {}: {error}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sql_error(path, e))?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| sql_error(path, e))?;
    if tables == 0 {
        return Err(format!(
            "{}: no table `devices` in the store",
            path.display()
        ));
    }
    Ok(conn)
}

/// Creates a new store (or opens one) with the current schema.
pub fn create(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path)
        .map_err(|error| format!("cannot create the store {}: {error}", path.display()))?;
    conn.execute_batch(SCHEMA).map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

/// Prepares a store for writing feedback: WAL mode (so a reader and a writer can work at
/// once), the `updated_at` column and the journal.
pub fn upgrade(conn: &Connection, path: &Path) -> Result<(), String> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| sql_error(path, e))?;
    let has_updated_at: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('devices') WHERE name = 'updated_at'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| sql_error(path, e))?;
    if has_updated_at == 0 {
        conn.execute_batch("ALTER TABLE devices ADD COLUMN updated_at INTEGER")
            .map_err(|e| sql_error(path, e))?;
    }
    conn.execute_batch(journal::SCHEMA)
        .map_err(|e| sql_error(path, e))?;
    Ok(())
}

/// Rows in the store.
pub fn count(conn: &Connection, path: &Path) -> Result<u64, String> {
    conn.query_row("SELECT count(*) FROM devices", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|n| u64::try_from(n).unwrap_or(0))
    .map_err(|e| sql_error(path, e))
}

/// Starts a thread that streams every row of `devices` into `sender` through one cursor.
pub fn spawn_reader(
    path: &Path,
    sender: Sender<Input>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let conn = open_existing(path)?;
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("push-store-reader".into())
        .spawn(move || {
            let mut statement = conn
                .prepare("SELECT rowid, platform, token FROM devices")
                .map_err(|e| sql_error(&path, e))?;
            let mut rows = statement.query([]).map_err(|e| sql_error(&path, e))?;
            while let Some(row) = rows.next().map_err(|e| sql_error(&path, e))? {
                let rowid: i64 = row.get(0).map_err(|e| sql_error(&path, e))?;
                let platform: Option<String> = row.get(1).unwrap_or(None);
                let token: Option<String> = row.get(2).unwrap_or(None);
                let input = check(platform.as_deref(), token.as_deref(), Origin::Row(rowid));
                if sender.send_blocking(input).is_err() {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|error| format!("cannot start the store reader: {error}"))
}

/// Starts a thread that applies changes from `changes` until the channel closes, committing
/// every few thousand; with `dry_run`, every transaction is rolled back instead (the counts
/// are what would have changed).
pub fn spawn_writer(
    path: &Path,
    changes: Receiver<Change>,
    dry_run: bool,
    providers: ProviderNames,
) -> Result<JoinHandle<Result<Applied, String>>, String> {
    let mut conn = open_existing(path)?;
    upgrade(&conn, path)?;
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("push-store-writer".into())
        .spawn(move || {
            let mut applied = Applied::default();
            let mut done = false;
            while !done {
                let Ok(first) = changes.recv_blocking() else {
                    break;
                };
                let tx = conn.transaction().map_err(|e| sql_error(&path, e))?;
                let mut next = Some(first);
                let mut in_batch = 0;
                while let Some(change) = next.take() {
                    apply(&tx, &change, &mut applied, providers)
                        .map_err(|e| sql_error(&path, e))?;
                    in_batch += 1;
                    if in_batch < BATCH {
                        match changes.try_recv() {
                            Ok(change) => next = Some(change),
                            Err(async_channel::TryRecvError::Closed) => done = true,
                            Err(async_channel::TryRecvError::Empty) => {}
                        }
                    }
                }
                if dry_run {
                    tx.rollback().map_err(|e| sql_error(&path, e))?;
                } else {
                    tx.commit().map_err(|e| sql_error(&path, e))?;
                }
            }
            Ok(applied)
        })
        .map_err(|error| format!("cannot start the store writer: {error}"))
}

/// The provider of each platform in a run, as the journal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderNames {
    /// `apns` (binary gateway) or `apns-http2`.
    pub ios: &'static str,
    /// `fcm` or `gcm`.
    pub android: &'static str,
}

impl ProviderNames {
    /// The provider of `platform`.
    pub fn of(&self, platform: Platform) -> &'static str {
        match platform {
            Platform::Ios => self.ios,
            Platform::Android => self.android,
        }
    }
}

/// Applies one change and journals what it did.
pub fn apply(
    conn: &Connection,
    change: &Change,
    applied: &mut Applied,
    providers: ProviderNames,
) -> rusqlite::Result<()> {
    let at = now();
    match change {
        Change::Delete {
            platform,
            token,
            unregistered_at,
            reason,
        } => {
            let mut statement = conn.prepare_cached(
                "DELETE FROM devices WHERE token = ?1 \
                 AND (?2 IS NULL OR updated_at IS NULL OR updated_at <= ?2) RETURNING updated_at",
            )?;
            let mut rows = statement.query(params![token, unregistered_at])?;
            while let Some(row) = rows.next()? {
                applied.deleted += 1;
                let entry = Entry {
                    kind: Kind::Delete,
                    platform: platform.as_str(),
                    token,
                    new_token: None,
                    reason: reason.as_deref(),
                    provider: providers.of(*platform),
                    updated_at: row.get(0)?,
                };
                journal::record(conn, &entry, at)?;
            }
        }
        Change::Replace { platform, old, new } => {
            let updated = conn
                .prepare_cached(
                    "UPDATE OR IGNORE devices SET token = ?2, updated_at = ?3 WHERE token = ?1",
                )?
                .execute(params![old, new, at])?;
            let kind = if updated > 0 {
                applied.replaced += updated as u64;
                Kind::Replace
            } else {
                // The canonical token is already stored: the old row is a duplicate.
                let n = conn
                    .prepare_cached("DELETE FROM devices WHERE token = ?1")?
                    .execute(params![old])?;
                applied.merged += n as u64;
                if n == 0 {
                    return Ok(());
                }
                Kind::Merge
            };
            let entry = Entry {
                kind,
                platform: platform.as_str(),
                token: old,
                new_token: Some(new),
                reason: None,
                provider: providers.of(*platform),
                updated_at: None,
            };
            journal::record(conn, &entry, at)?;
        }
    }
    Ok(())
}

/// Deletes an iOS token the feedback service reported at `timestamp`, unless the device
/// registered again later (`updated_at > timestamp`). Tokens are compared ignoring case.
/// Returns whether a row was deleted.
pub fn delete_inactive(conn: &Connection, token: &str, timestamp: u32) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare_cached(
        "DELETE FROM devices WHERE platform = 'ios' AND lower(token) = lower(?1) \
         AND (updated_at IS NULL OR updated_at <= ?2) RETURNING token, updated_at",
    )?;
    let mut rows = statement.query(params![token, i64::from(timestamp)])?;
    let mut deleted = false;
    let at = now();
    while let Some(row) = rows.next()? {
        deleted = true;
        let stored: String = row.get(0)?;
        let entry = Entry {
            kind: Kind::Delete,
            platform: "ios",
            token: &stored,
            new_token: None,
            reason: Some("feedback service"),
            provider: "apns-feedback",
            updated_at: row.get(1)?,
        };
        journal::record(conn, &entry, at)?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: ProviderNames = ProviderNames {
        ios: "apns-http2",
        android: "gcm",
    };

    #[test]
    fn replace_merges_into_an_existing_token() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(journal::SCHEMA).unwrap();
        for token in ["a", "b", "c", "d"] {
            conn.execute("INSERT INTO devices VALUES ('android', ?1, 0)", [token])
                .unwrap();
        }
        let mut applied = Applied::default();
        let replace = |old: &str, new: &str| Change::Replace {
            platform: Platform::Android,
            old: old.into(),
            new: new.into(),
        };
        apply(&conn, &replace("a", "a2"), &mut applied, NAMES).unwrap();
        apply(&conn, &replace("b", "c"), &mut applied, NAMES).unwrap();
        apply(&conn, &delete("d", None), &mut applied, NAMES).unwrap();
        let tokens: Vec<String> = conn
            .prepare("SELECT token FROM devices ORDER BY token")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tokens, ["a2", "c"]);
        let kinds: Vec<String> = conn
            .prepare(
                "SELECT change || ' ' || token || ' ' || provider FROM push_journal ORDER BY id",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            kinds,
            ["replace a gcm", "merge b gcm", "delete d apns-http2"]
        );
        assert_eq!(
            applied,
            Applied {
                deleted: 1,
                replaced: 1,
                merged: 1
            }
        );
    }

    fn delete(token: &str, unregistered_at: Option<i64>) -> Change {
        Change::Delete {
            platform: Platform::Ios,
            token: token.into(),
            unregistered_at,
            reason: None,
        }
    }

    #[test]
    fn a_410_timestamp_keeps_devices_registered_again_since() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(journal::SCHEMA).unwrap();
        for (token, updated_at) in [("old", Some(100)), ("new", Some(300)), ("unknown", None)] {
            conn.execute(
                "INSERT INTO devices VALUES ('ios', ?1, ?2)",
                params![token, updated_at],
            )
            .unwrap();
        }
        let mut applied = Applied::default();
        for token in ["old", "new", "unknown"] {
            apply(&conn, &delete(token, Some(200)), &mut applied, NAMES).unwrap();
        }
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM devices WHERE token = 'new'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((applied.deleted, left), (2, 1));
    }

    #[test]
    fn inactive_tokens_registered_again_are_kept() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(journal::SCHEMA).unwrap();
        conn.execute("INSERT INTO devices VALUES ('ios', 'AA', 100)", [])
            .unwrap();
        conn.execute("INSERT INTO devices VALUES ('ios', 'bb', 300)", [])
            .unwrap();
        assert!(delete_inactive(&conn, "aa", 200).unwrap());
        assert!(!delete_inactive(&conn, "bb", 200).unwrap());
    }
}
