//! Your schema: a table `push_tokens(id, user_id, kind, value, deleted_at)` with soft
//! deletes, driven only by `--query` and the templates, on SQLite and on PostgreSQL.

mod common;

use common::{Providers, TestStore, ios_token, postgres_database, push, text};
use push_mock::{ReasonScript, TokenScript};

const QUERY: &str = "SELECT id AS row_id, \
    CASE kind WHEN 'apple' THEN 'ios' ELSE 'android' END AS platform, value AS token \
    FROM push_tokens WHERE deleted_at IS NULL";
const ON_INVALID: &str =
    "UPDATE push_tokens SET deleted_at = :now WHERE value = :token AND deleted_at IS NULL";
const ON_NEW_TOKEN: &str = "UPDATE push_tokens SET value = :new_token WHERE value = :token";
const ON_RESTORE_INVALID: &str =
    "UPDATE push_tokens SET deleted_at = NULL WHERE value = :token AND deleted_at IS NOT NULL";
const ON_RESTORE_NEW_TOKEN: &str = "UPDATE push_tokens SET value = :token WHERE value = :new_token";

/// 20 iOS devices (2 answered BadDeviceToken), 20 Android devices through GCM (2
/// NotRegistered, 1 with a canonical id) and 3 iOS rows deleted before the run.
fn custom_schema_round_trip(store: TestStore) {
    let ios: Vec<String> = (0..23).map(ios_token).collect();
    let android: Vec<String> = (0..20).map(|n| format!("gcm-{n}")).collect();
    let mocks = Providers::start(
        &[
            (ios[0].clone(), ReasonScript::BadDeviceToken),
            (ios[1].clone(), ReasonScript::BadDeviceToken),
        ],
        &[],
        &[
            (android[0].clone(), TokenScript::NotRegistered),
            (android[1].clone(), TokenScript::NotRegistered),
            (android[2].clone(), TokenScript::Canonical("gcm-new".into())),
        ],
    );
    let mut sql = String::from(
        "CREATE TABLE push_tokens(id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, \
         kind TEXT NOT NULL, value TEXT NOT NULL UNIQUE, deleted_at BIGINT);",
    );
    for (n, token) in ios.iter().enumerate() {
        let deleted = if n >= 20 { "1" } else { "NULL" };
        sql.push_str(&format!(
            "INSERT INTO push_tokens VALUES ({n}, {}, 'apple', '{token}', {deleted});",
            n % 7
        ));
    }
    for (n, token) in android.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO push_tokens VALUES ({}, {}, 'google', '{token}', NULL);",
            100 + n,
            n % 7
        ));
    }
    store.batch(&sql);
    let db = store.arg();
    let mut args = mocks.send_args_gcm(&[
        "--db",
        &db,
        "--apply-feedback",
        "--query",
        QUERY,
        "--on-invalid",
        ON_INVALID,
        "--on-new-token",
        ON_NEW_TOKEN,
    ]);
    args.retain(|a| a != "--quiet");
    let output = push(&args);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("40 devices in"), "{stderr}");
    for token in &ios[20..] {
        assert_eq!(
            mocks.apns.delivered_count(token),
            0,
            "a deleted row was sent"
        );
    }
    assert_eq!(mocks.apns.total_delivered(), 18);
    let deleted =
        store.strings("SELECT value FROM push_tokens WHERE deleted_at IS NOT NULL ORDER BY id");
    let mut want: Vec<String> = vec![ios[0].clone(), ios[1].clone()];
    want.extend(ios[20..].iter().cloned());
    want.extend([android[0].clone(), android[1].clone()]);
    assert_eq!(deleted, want);
    assert_eq!(
        store.strings("SELECT value FROM push_tokens WHERE id = 102"),
        ["gcm-new"]
    );
    assert_eq!(
        store.strings("SELECT CAST(count(*) AS TEXT) FROM push_tokens"),
        ["43"],
        "soft deletes only"
    );
    let journal = store.strings("SELECT change FROM push_journal ORDER BY change");
    assert_eq!(journal, ["delete", "delete", "delete", "delete", "replace"]);
    let output = push(
        &[
            "store",
            "restore",
            "--db",
            &db,
            "--since",
            "1h",
            "--on-restore-invalid",
            ON_RESTORE_INVALID,
            "--on-restore-new-token",
            ON_RESTORE_NEW_TOKEN,
        ]
        .map(String::from),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let deleted =
        store.strings("SELECT value FROM push_tokens WHERE deleted_at IS NOT NULL ORDER BY id");
    assert_eq!(
        deleted,
        ios[20..],
        "only the rows deleted before the run stay deleted"
    );
    assert_eq!(
        store.strings("SELECT value FROM push_tokens WHERE id = 102"),
        [android[2].clone()]
    );
    // A template naming an unknown parameter is a usage error, before anything is sent.
    let mut bad = args.clone();
    let at = bad.iter().position(|a| a == "--on-invalid").unwrap();
    bad[at + 1] = "DELETE FROM push_tokens WHERE value = :tokn".into();
    let output = push(&bad);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("unknown parameter :tokn"));
}

#[test]
fn a_custom_schema_with_soft_deletes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    rusqlite::Connection::open(&path).unwrap();
    custom_schema_round_trip(TestStore::Sqlite(path));
}

#[test]
fn a_custom_schema_with_soft_deletes_on_postgres() {
    if let Some(url) = postgres_database() {
        custom_schema_round_trip(TestStore::Postgres(url));
    }
}
