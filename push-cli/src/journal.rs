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

use crate::db::{self, Db, Value};
use crate::sql_template::{Dialect, Param};
use crate::store_schema::Schema;

/// The `CREATE TABLE` statement of the journal in `dialect`.
pub fn schema(dialect: Dialect) -> String {
    let id = match dialect {
        Dialect::Sqlite => "id INTEGER PRIMARY KEY",
        Dialect::Postgres => "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS push_journal({id}, at BIGINT NOT NULL, \
         change TEXT NOT NULL, platform TEXT NOT NULL, token TEXT NOT NULL, new_token TEXT, \
         reason TEXT, provider TEXT, updated_at BIGINT, restored_at BIGINT)"
    )
}

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
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
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
pub fn record(db: &mut Db, entry: &Entry<'_>, at: i64) -> Result<(), String> {
    let statement = db::internal(
        db.dialect(),
        "INSERT INTO push_journal(at, change, platform, token, new_token, reason, provider, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    );
    db.run(
        &statement,
        &[
            Value::Int(at),
            Value::Text(entry.kind.as_str().into()),
            Value::Text(entry.platform.into()),
            Value::Text(entry.token.into()),
            entry.new_token.into(),
            entry.reason.into(),
            Value::Text(entry.provider.into()),
            entry.updated_at.into(),
        ],
    )?;
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

/// Undoes, newest first, every change journaled at or after `since` and not restored yet,
/// through the schema's restore templates, in one transaction; marks the entries restored.
/// With `dry_run` the transaction is rolled back.
pub fn restore(
    db: &mut Db,
    schema: &Schema,
    since: i64,
    now: i64,
    dry_run: bool,
) -> Result<Restored, String> {
    db.begin()?;
    let result = restore_in_transaction(db, schema, since, now);
    let end = if dry_run || result.is_err() {
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    db.script(end)?;
    result
}

fn restore_in_transaction(
    db: &mut Db,
    schema: &Schema,
    since: i64,
    now: i64,
) -> Result<Restored, String> {
    let dialect = db.dialect();
    let entries = db.run(
        &db::internal(
            dialect,
            "SELECT id, change, platform, token, new_token, updated_at FROM push_journal \
             WHERE at >= ?1 AND restored_at IS NULL ORDER BY id DESC",
        ),
        &[Value::Int(since)],
    )?;
    let mark = db::internal(
        dialect,
        "UPDATE push_journal SET restored_at = ?1 WHERE id = ?2",
    );
    let mut restored = Restored::default();
    for entry in entries.rows {
        let text = |at: usize| entry.get(at).cloned().unwrap_or(Value::Null);
        let values = |param: Param| match param {
            Param::Token => text(3),
            Param::NewToken => text(4),
            Param::Platform => text(2),
            Param::UpdatedAt => text(5),
            Param::Now => Value::Int(now),
            _ => Value::Null,
        };
        let replace = text(1).as_text() == Some("replace");
        let statements = if replace {
            &schema.on_restore_new_token
        } else {
            &schema.on_restore_invalid
        };
        let mut changed = 0;
        for statement in statements {
            changed += db.run_named(statement, &values)?.count;
        }
        if changed == 0 {
            restored.skipped += 1;
            continue;
        }
        if replace {
            restored.replaced += changed;
        } else {
            restored.deleted += changed;
        }
        db.run(&mark, &[Value::Int(now), text(0)])?;
    }
    Ok(restored)
}

/// True when the store has a journal.
pub fn exists(db: &mut Db) -> Result<bool, String> {
    db.has_table("push_journal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Target;
    use crate::store_schema::Custom;

    fn store() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        crate::store::create(&path).unwrap();
        let mut db = Db::open(&Target::Sqlite(path)).unwrap();
        db.script(&schema(Dialect::Sqlite)).unwrap();
        (dir, db)
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

    fn tokens(db: &mut Db) -> Vec<(String, Option<i64>)> {
        db.run(
            &db::internal(
                Dialect::Sqlite,
                "SELECT token, updated_at FROM devices ORDER BY token",
            ),
            &[],
        )
        .unwrap()
        .rows
        .into_iter()
        .map(|row| (row[0].as_text().unwrap().to_owned(), row[1].as_int()))
        .collect()
    }

    #[test]
    fn restore_undoes_changes_since_a_time_newest_first_and_once() {
        let (_dir, mut db) = store();
        db.script("INSERT INTO devices VALUES ('android', 'b2', 1); INSERT INTO devices VALUES ('android', 'c', 1)")
            .unwrap();
        record(&mut db, &entry(Kind::Delete, "old", None), 50).unwrap();
        record(&mut db, &entry(Kind::Delete, "a", None), 100).unwrap();
        record(&mut db, &entry(Kind::Replace, "b", Some("b2")), 100).unwrap();
        record(&mut db, &entry(Kind::Merge, "d", Some("c")), 100).unwrap();
        let schema = Schema::new(Dialect::Sqlite, &Custom::default()).unwrap();
        let restored = restore(&mut db, &schema, 100, 200, true).unwrap();
        assert_eq!(restored.deleted, 2);
        assert_eq!(tokens(&mut db).len(), 2, "a dry run changes nothing");
        let restored = restore(&mut db, &schema, 100, 200, false).unwrap();
        assert_eq!(
            restored,
            Restored {
                deleted: 2,
                replaced: 1,
                skipped: 0
            }
        );
        let names: Vec<String> = tokens(&mut db).into_iter().map(|(t, _)| t).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(tokens(&mut db).contains(&("a".into(), Some(7))));
        assert_eq!(restore(&mut db, &schema, 0, 300, false).unwrap().deleted, 1);
        assert_eq!(
            restore(&mut db, &schema, 0, 300, false).unwrap(),
            Restored::default()
        );
    }
}
