//! The undo journal: every deletion and replacement feedback makes in the store is written,
//! in the same transaction, to the table `push_journal`; `push store restore --since TIME`
//! puts the rows back, newest change first.
//!
//! ```sql
//! CREATE TABLE push_journal(
//!     id          INTEGER PRIMARY KEY,
//!     at          INTEGER NOT NULL,  -- UNIX seconds of the change
//!     change      TEXT NOT NULL,     -- 'delete', 'replace' or 'merge'
//!     platform    TEXT NOT NULL,
//!     token       TEXT NOT NULL,     -- the token sent (deleted or replaced)
//!     new_token   TEXT,              -- the canonical token of a replacement
//!     reason      TEXT,              -- the provider's reason (BadDeviceToken, UNREGISTERED)
//!     provider    TEXT,              -- apns, apns-http2, fcm, gcm
//!     updated_at  INTEGER,           -- the deleted row's updated_at (today's table only)
//!     restored_at INTEGER            -- set by `push store restore`
//! );
//! ```

use rusqlite::{Connection, OptionalExtension, params};

/// The `CREATE TABLE` statement of the journal.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS push_journal(\
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, change TEXT NOT NULL, \
    platform TEXT NOT NULL, token TEXT NOT NULL, new_token TEXT, reason TEXT, \
    provider TEXT, updated_at INTEGER, restored_at INTEGER)";

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The row of `token` was deleted.
    Delete,
    /// The row's `token` became `new_token`.
    Replace,
    /// The row of `token` was deleted because `new_token` was already stored.
    Merge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Delete => "delete",
            Kind::Replace => "replace",
            Kind::Merge => "merge",
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What changed.
    pub kind: Kind,
    /// `ios` or `android`.
    pub platform: &'a str,
    /// The token deleted or replaced.
    pub token: &'a str,
    /// The canonical token of a replacement or merge.
    pub new_token: Option<&'a str>,
    /// The provider's reason.
    pub reason: Option<&'a str>,
    /// The provider that answered.
    pub provider: &'a str,
    /// The deleted row's `updated_at`, when known.
    pub updated_at: Option<i64>,
}

/// Writes `entry`, changed at `at` (UNIX seconds).
pub fn record(conn: &Connection, entry: &Entry<'_>, at: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO push_journal(at, change, platform, token, new_token, reason, provider, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        at,
        entry.kind.as_str(),
        entry.platform,
        entry.token,
        entry.new_token,
        entry.reason,
        entry.provider,
        entry.updated_at
    ])?;
    Ok(())
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Deleted rows put back.
    pub deleted: u64,
    /// Replaced tokens changed back.
    pub replaced: u64,
    /// Journal entries whose row could not be restored (the token is stored again, or the
    /// replacement is gone).
    pub skipped: u64,
}

/// A journal entry as read back.
struct Stored {
    id: i64,
    change: String,
    platform: String,
    token: String,
    new_token: Option<String>,
    updated_at: Option<i64>,
}

/// Undoes, newest first, every change journaled at or after `since` and not restored yet,
/// in today's table, in one transaction; marks the entries restored. With `dry_run` the
/// transaction is rolled back.
pub fn restore(
    conn: &mut Connection,
    since: i64,
    now: i64,
    dry_run: bool,
) -> rusqlite::Result<Restored> {
    let tx = conn.transaction()?;
    let mut restored = Restored::default();
    let entries: Vec<Stored> = tx
        .prepare(
            "SELECT id, change, platform, token, new_token, updated_at FROM push_journal \
             WHERE at >= ?1 AND restored_at IS NULL ORDER BY id DESC",
        )?
        .query_map(params![since], |row| {
            Ok(Stored {
                id: row.get(0)?,
                change: row.get(1)?,
                platform: row.get(2)?,
                token: row.get(3)?,
                new_token: row.get(4)?,
                updated_at: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for Stored {
        id,
        change,
        platform,
        token,
        new_token,
        updated_at,
    } in entries
    {
        let done = match change.as_str() {
            "replace" => {
                let n = tx.execute(
                    "UPDATE devices SET token = ?1 WHERE token = ?2 \
                     AND NOT EXISTS (SELECT 1 FROM devices WHERE token = ?1)",
                    params![token, new_token],
                )?;
                restored.replaced += n as u64;
                n > 0
            }
            _ => {
                let n = tx.execute(
                    "INSERT INTO devices(platform, token, updated_at) SELECT ?1, ?2, ?3 \
                     WHERE NOT EXISTS (SELECT 1 FROM devices WHERE token = ?2)",
                    params![platform, token, updated_at],
                )?;
                restored.deleted += n as u64;
                n > 0
            }
        };
        if done {
            tx.execute(
                "UPDATE push_journal SET restored_at = ?1 WHERE id = ?2",
                params![now, id],
            )?;
        } else {
            restored.skipped += 1;
        }
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(restored)
}

/// True when the store has a journal.
pub fn exists(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'push_journal'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn entry<'a>(kind: Kind, token: &'a str, new_token: Option<&'a str>) -> Entry<'a> {
        Entry {
            kind,
            platform: "android",
            token,
            new_token,
            reason: None,
            provider: "gcm",
            updated_at: Some(7),
        }
    }

    fn tokens(conn: &Connection) -> Vec<(String, Option<i64>)> {
        conn.prepare("SELECT token, updated_at FROM devices ORDER BY token")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn restore_undoes_changes_since_a_time_newest_first_and_once() {
        let mut conn = store();
        conn.execute("INSERT INTO devices VALUES ('android', 'b2', 1)", [])
            .unwrap();
        conn.execute("INSERT INTO devices VALUES ('android', 'c', 1)", [])
            .unwrap();
        record(&conn, &entry(Kind::Delete, "old", None), 50).unwrap();
        record(&conn, &entry(Kind::Delete, "a", None), 100).unwrap();
        record(&conn, &entry(Kind::Replace, "b", Some("b2")), 100).unwrap();
        record(&conn, &entry(Kind::Merge, "d", Some("c")), 100).unwrap();
        let restored = restore(&mut conn, 100, 200, true).unwrap();
        assert_eq!(restored.deleted, 2);
        assert_eq!(tokens(&conn).len(), 2, "a dry run changes nothing");
        let restored = restore(&mut conn, 100, 200, false).unwrap();
        assert_eq!(
            restored,
            Restored {
                deleted: 2,
                replaced: 1,
                skipped: 0
            }
        );
        let names: Vec<String> = tokens(&conn).into_iter().map(|(t, _)| t).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(tokens(&conn).contains(&("a".into(), Some(7))));
        assert_eq!(restore(&mut conn, 0, 300, false).unwrap().deleted, 1);
        assert_eq!(
            restore(&mut conn, 0, 300, false).unwrap(),
            Restored::default()
        );
    }
}
