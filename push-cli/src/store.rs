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
//! whole) while the recorder ([`crate::recorder`]) writes the run journal and the feedback
//! through a second connection in another thread; WAL mode lets the two run together, the
//! reader seeing the store as it was when sending began.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use async_channel::Sender;
use rusqlite::{Connection, OpenFlags, params};

use push_proto::{ApnsToken, Feedback, GcmToken, Platform};

use crate::devices::{Input, Origin, check};
use crate::journal::{self, Entry, Kind};

/// The `CREATE TABLE` statement of a new store.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS devices(\
    platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at INTEGER)";

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

/// The store change a feedback calls for. A canonical id is used only when it is a valid
/// token other than the one sent; `bad_canonical` counts the others.
pub fn change_for(feedback: &Feedback, bad_canonical: &mut u64) -> Option<Change> {
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

/// The select that yields the devices of today's table (`row_id` names malformed rows).
pub const DEFAULT_QUERY: &str = "SELECT rowid AS row_id, platform, token FROM devices";

/// `query`, without the devices `resume` has journaled as done, when resuming.
fn pending(query: &str, resume: bool) -> String {
    let query = query.trim().trim_end_matches(';');
    if resume {
        format!(
            "SELECT * FROM ({query}) AS q WHERE NOT EXISTS (SELECT 1 FROM push_run_devices d \
             WHERE d.run = ?1 AND d.token = q.token)"
        )
    } else {
        query.to_owned()
    }
}

/// The devices the run will read (for the progress bar and `--max-delete P%`).
pub fn count(path: &Path, query: &str, resume: Option<&str>) -> Result<u64, String> {
    let conn = open_existing(path)?;
    let sql = format!(
        "SELECT count(*) FROM ({}) AS c",
        pending(query, resume.is_some())
    );
    let mut statement = conn.prepare(&sql).map_err(|e| sql_error(path, e))?;
    if let Some(run) = resume {
        statement
            .raw_bind_parameter(1, run)
            .map_err(|e| sql_error(path, e))?;
    }
    let mut rows = statement.raw_query();
    let n: i64 = match rows.next().map_err(|e| sql_error(path, e))? {
        Some(row) => row.get(0).map_err(|e| sql_error(path, e))?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The write connection of a run: WAL mode (a reader and a writer work at once), the run
/// journal, and with `apply` the `updated_at` column and the undo journal.
pub fn open_writer(path: &Path, apply: bool) -> Result<Connection, String> {
    let conn = open_existing(path)?;
    if apply {
        upgrade(&conn, path)?;
    } else {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| sql_error(path, e))?;
    }
    conn.execute_batch(crate::run_journal::SCHEMA)
        .map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

/// Starts a thread that streams the rows of `query` (columns `platform` and `token`, and
/// `row_id` when it has one) into `sender` through one cursor; when resuming `run`, the
/// devices it journaled are left out. Stops early when the receiver is gone.
pub fn spawn_reader(
    path: &Path,
    query: &str,
    resume: Option<&str>,
    sender: Sender<Input>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let conn = open_existing(path)?;
    let path = path.to_owned();
    let sql = pending(query, resume.is_some());
    let resume = resume.map(str::to_owned);
    std::thread::Builder::new()
        .name("push-store-reader".into())
        .spawn(move || {
            let error = |e| sql_error(&path, e);
            let mut statement = conn.prepare(&sql).map_err(error)?;
            let column = |name: &str| statement.column_index(name).ok();
            let (Some(platform_at), Some(token_at)) = (column("platform"), column("token")) else {
                return Err(format!(
                    "{}: the query must yield columns named platform and token",
                    path.display()
                ));
            };
            let row_at = column("row_id");
            if let Some(run) = &resume {
                statement.raw_bind_parameter(1, run).map_err(error)?;
            }
            let mut rows = statement.raw_query();
            let mut position = 0i64;
            while let Some(row) = rows.next().map_err(error)? {
                position += 1;
                let row_id = match row_at {
                    Some(at) => row.get(at).unwrap_or(position),
                    None => position,
                };
                let platform: Option<String> = row.get(platform_at).unwrap_or(None);
                let token: Option<String> = row.get(token_at).unwrap_or(None);
                let input = check(platform.as_deref(), token.as_deref(), Origin::Row(row_id));
                if sender.send_blocking(input).is_err() {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|error| format!("cannot start the store reader: {error}"))
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
