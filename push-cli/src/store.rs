//! The token store, SQLite or PostgreSQL: reading the devices through a cursor, preparing it
//! for the recorder, and applying feedback through the schema's statements
//! ([`crate::store_schema`]).
//!
//! Today's table (created by `push demo`, upgraded when feedback is applied):
//!
//! ```sql
//! CREATE TABLE devices(
//!     platform   TEXT NOT NULL,     -- 'ios', 'android' or 'web'
//!     token      TEXT PRIMARY KEY,  -- as the app registered it
//!     updated_at BIGINT             -- UNIX seconds of the last registration; NULL = unknown
//! );
//! ```
//!
//! A table with only `platform` and `token` works for sending; applying feedback adds the
//! `updated_at` column. The store is read by a cursor in a blocking thread (never loaded
//! whole) while the recorder ([`crate::recorder`]) writes the run journal and the feedback
//! through a second connection in another thread; an SQLite store is switched to WAL mode so
//! the two run together, the reader seeing the store as it was when sending began.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use async_channel::Sender;
use rusqlite::Connection;

use crate::change::{Applied, Change, ProviderNames};
use crate::db::{self, Db, Target, Value};
use crate::devices::{Input, Origin, check};
use crate::journal::{self, Entry, Kind};
use crate::run_journal;
use crate::sql_template::{Dialect, Param, Statement};
use crate::store_schema::Schema;

/// The `CREATE TABLE` statement of a new SQLite store.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS devices(\
    platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at INTEGER)";

/// Now, in UNIX seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Creates a new SQLite store (or opens one) with today's table.
pub fn create(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path)
        .map_err(|error| format!("cannot create the store {}: {error}", path.display()))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(conn)
}

/// Checks today's table is there (when the schema is today's).
pub fn check_table(db: &mut Db, schema: &Schema) -> Result<(), String> {
    if schema.default_table && !db.has_table("devices")? {
        return Err(db.error(
            "no table `devices` in the store (give --query and the templates for another schema)",
        ));
    }
    Ok(())
}

/// Prepares the recorder's connection: WAL mode for SQLite (a reader and a writer work at
/// once), the run journal, and with `apply` the undo journal and today's table's
/// `updated_at` column.
pub fn prepare(db: &mut Db, schema: &Schema, apply: bool) -> Result<(), String> {
    check_table(db, schema)?;
    let dialect = db.dialect();
    if dialect == Dialect::Sqlite {
        db.script("PRAGMA journal_mode = WAL")?;
    }
    db.script(run_journal::SCHEMA)?;
    if !apply {
        return Ok(());
    }
    db.script(&journal::schema(dialect))?;
    if schema.default_table {
        match dialect {
            Dialect::Sqlite => {
                let has = db.run(
                    &db::internal(
                        dialect,
                        "SELECT count(*) FROM pragma_table_info('devices') WHERE name = 'updated_at'",
                    ),
                    &[],
                )?;
                if has
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_int)
                    == Some(0)
                {
                    db.script("ALTER TABLE devices ADD COLUMN updated_at INTEGER")?;
                }
            }
            Dialect::Postgres => {
                db.script("ALTER TABLE devices ADD COLUMN IF NOT EXISTS updated_at BIGINT")?
            }
        }
    }
    Ok(())
}

/// The devices the run will read (for the progress bar and `--max-delete P%`).
pub fn count(db: &mut Db, schema: &Schema, resume: Option<&str>) -> Result<u64, String> {
    let pending = schema.pending(db.dialect(), resume.is_some());
    let statement = Statement {
        sql: format!("SELECT count(*) FROM ({}) AS c", pending.sql),
        params: pending.params,
    };
    let values: Vec<Value> = resume
        .map(|run| Value::Text(run.into()))
        .into_iter()
        .collect();
    let counted = db.run(&statement, &values)?;
    let n = counted
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_int)
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Starts a thread that streams the rows of the schema's query (columns `platform` and
/// `token`, and `row_id` when it has one) into `sender` through one cursor; when resuming
/// `run`, the devices it journaled are left out. Stops early when the receiver is gone.
pub fn spawn_reader(
    target: &Target,
    schema: &Schema,
    resume: Option<&str>,
    sender: Sender<Input>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let mut db = Db::open(target)?;
    let statement = schema.pending(db.dialect(), resume.is_some());
    let values: Vec<Value> = resume
        .map(|run| Value::Text(run.into()))
        .into_iter()
        .collect();
    std::thread::Builder::new()
        .name("push-store-reader".into())
        .spawn(move || {
            let mut position = 0i64;
            db.stream(
                &statement,
                &values,
                &["platform", "token", "row_id"],
                &["platform", "token"],
                &mut |row| {
                    position += 1;
                    let row_id = row[2].as_int().unwrap_or(position);
                    let input = check(row[0].as_text(), row[1].as_text(), Origin::Row(row_id));
                    sender.send_blocking(input).is_ok()
                },
            )
        })
        .map_err(|error| format!("cannot start the store reader: {error}"))
}

/// The value of a template parameter for `change`.
fn value_of(change: &Change, param: Param, now: i64) -> Value {
    let (platform, token) = match change {
        Change::Delete {
            platform, token, ..
        } => (platform, token),
        Change::Replace { platform, old, .. } => (platform, old),
    };
    match (param, change) {
        (Param::Token, _) => Value::Text(token.clone()),
        (Param::Platform, _) => Value::Text(platform.as_str().into()),
        (Param::Now, _) => Value::Int(now),
        (Param::NewToken, Change::Replace { new, .. }) => Value::Text(new.clone()),
        (
            Param::UnregisteredAt,
            Change::Delete {
                unregistered_at, ..
            },
        ) => (*unregistered_at).into(),
        (Param::Reason, Change::Delete { reason, .. }) => reason.as_deref().into(),
        _ => Value::Null,
    }
}

/// Applies one change through the schema's templates and journals what it did.
pub fn apply(
    db: &mut Db,
    schema: &Schema,
    change: &Change,
    applied: &mut Applied,
    providers: ProviderNames,
) -> Result<(), String> {
    let at = now();
    let values = |param| value_of(change, param, at);
    match change {
        Change::Delete {
            platform,
            token,
            reason,
            ..
        } => {
            for statement in &schema.on_invalid {
                let affected = db.run_named(statement, &values)?;
                applied.deleted += affected.count;
                // Today's table returns each deleted row's updated_at; other templates
                // journal one entry when they changed rows.
                let updated: Vec<Option<i64>> = if affected.rows.is_empty() {
                    vec![None; usize::from(affected.count > 0)]
                } else {
                    affected
                        .rows
                        .iter()
                        .map(|row| row.first().and_then(Value::as_int))
                        .collect()
                };
                for updated_at in updated {
                    let entry = Entry {
                        kind: Kind::Delete,
                        platform: platform.as_str(),
                        token,
                        new_token: None,
                        reason: reason.as_deref(),
                        provider: providers.of(*platform),
                        updated_at,
                    };
                    journal::record(db, &entry, at)?;
                }
            }
        }
        Change::Replace { platform, old, new } => {
            let mut kind = None;
            for (at_statement, statement) in schema.on_new_token.iter().enumerate() {
                let affected = db.run_named(statement, &values)?;
                if affected.count == 0 {
                    continue;
                }
                if schema.merge_first && at_statement == 0 {
                    applied.merged += affected.count;
                    kind = Some(Kind::Merge);
                    break;
                }
                applied.replaced += affected.count;
                kind = Some(Kind::Replace);
            }
            if let Some(kind) = kind {
                let entry = Entry {
                    kind,
                    platform: platform.as_str(),
                    token: old,
                    new_token: Some(new),
                    reason: None,
                    provider: providers.of(*platform),
                    updated_at: None,
                };
                journal::record(db, &entry, at)?;
            }
        }
    }
    Ok(())
}

/// Deletes an iOS token the feedback service reported at `timestamp` from today's table,
/// unless the device registered again later (`updated_at > timestamp`), and journals it.
/// Tokens are compared ignoring case. Returns whether a row was deleted.
pub fn delete_inactive(db: &mut Db, token: &str, timestamp: u32) -> Result<bool, String> {
    let statement = db::internal(
        db.dialect(),
        "DELETE FROM devices WHERE platform = 'ios' AND lower(token) = lower(?1) \
         AND (updated_at IS NULL OR updated_at <= ?2) RETURNING token, updated_at",
    );
    let affected = db.run(
        &statement,
        &[Value::Text(token.into()), Value::Int(i64::from(timestamp))],
    )?;
    let at = now();
    for row in &affected.rows {
        let stored = row.first().and_then(Value::as_text).unwrap_or(token);
        let entry = Entry {
            kind: Kind::Delete,
            platform: "ios",
            token: stored,
            new_token: None,
            reason: Some("feedback service"),
            provider: "apns-feedback",
            updated_at: row.get(1).and_then(Value::as_int),
        };
        journal::record(db, &entry, at)?;
    }
    Ok(affected.count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_schema::Custom;
    use push_proto::Platform;

    const NAMES: ProviderNames = ProviderNames {
        ios: "apns-http2",
        android: "gcm",
    };

    fn store(rows: &[(&str, &str, Option<i64>)]) -> (tempfile::TempDir, Db, Schema) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let conn = create(&path).unwrap();
        for (platform, token, updated_at) in rows {
            conn.execute(
                "INSERT INTO devices VALUES (?1, ?2, ?3)",
                rusqlite::params![platform, token, updated_at],
            )
            .unwrap();
        }
        let mut db = Db::open(&Target::Sqlite(path)).unwrap();
        let schema = Schema::new(Dialect::Sqlite, &Custom::default()).unwrap();
        prepare(&mut db, &schema, true).unwrap();
        (dir, db, schema)
    }

    fn column(db: &mut Db, sql: &str) -> Vec<String> {
        db.run(&db::internal(Dialect::Sqlite, sql), &[])
            .unwrap()
            .rows
            .into_iter()
            .map(|row| row[0].as_text().unwrap_or_default().to_owned())
            .collect()
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
    fn replace_merges_into_an_existing_token() {
        let rows = ["a", "b", "c", "d"].map(|t| ("android", t, Some(0)));
        let (_dir, mut db, schema) = store(&rows);
        let mut applied = Applied::default();
        let replace = |old: &str, new: &str| Change::Replace {
            platform: Platform::Android,
            old: old.into(),
            new: new.into(),
        };
        for change in [replace("a", "a2"), replace("b", "c"), delete("d", None)] {
            apply(&mut db, &schema, &change, &mut applied, NAMES).unwrap();
        }
        assert_eq!(
            column(&mut db, "SELECT token FROM devices ORDER BY token"),
            ["a2", "c"]
        );
        assert_eq!(
            column(
                &mut db,
                "SELECT change || ' ' || token || ' ' || provider FROM push_journal ORDER BY id"
            ),
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

    #[test]
    fn a_410_timestamp_keeps_devices_registered_again_since() {
        let rows = [
            ("ios", "old", Some(100)),
            ("ios", "new", Some(300)),
            ("ios", "unknown", None),
        ];
        let (_dir, mut db, schema) = store(&rows);
        let mut applied = Applied::default();
        for token in ["old", "new", "unknown"] {
            apply(
                &mut db,
                &schema,
                &delete(token, Some(200)),
                &mut applied,
                NAMES,
            )
            .unwrap();
        }
        assert_eq!(applied.deleted, 2);
        assert_eq!(column(&mut db, "SELECT token FROM devices"), ["new"]);
    }

    #[test]
    fn inactive_tokens_registered_again_are_kept() {
        let (_dir, mut db, _) = store(&[("ios", "AA", Some(100)), ("ios", "bb", Some(300))]);
        assert!(delete_inactive(&mut db, "aa", 200).unwrap());
        assert!(!delete_inactive(&mut db, "bb", 200).unwrap());
        assert_eq!(column(&mut db, "SELECT token FROM push_journal"), ["AA"]);
    }
}
