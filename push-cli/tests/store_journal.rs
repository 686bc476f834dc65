//! The undo journal: a send that deletes and replaces, then `push store restore`.

mod common;

use common::{Providers, count, default_store, push, strings, text};
use push_mock::TokenScript;

#[test]
fn restore_puts_back_every_deleted_and_replaced_row() {
    let scripts = [
        ("and-gone-1".to_string(), TokenScript::NotRegistered),
        ("and-gone-2".to_string(), TokenScript::NotRegistered),
        (
            "and-old".to_string(),
            TokenScript::Canonical("and-new".into()),
        ),
    ];
    let mocks = Providers::start(&[], &[], &scripts);
    let db = mocks.path("devices.sqlite");
    let mut rows: Vec<(String, String, Option<i64>)> = (0..7)
        .map(|n| ("android".into(), format!("and-ok-{n}"), Some(n)))
        .collect();
    rows.extend([
        ("android".into(), "and-gone-1".into(), Some(11)),
        ("android".into(), "and-gone-2".into(), None),
        ("android".into(), "and-old".into(), Some(13)),
    ]);
    default_store(&db, rows.clone());
    let before = strings(
        &db,
        "SELECT token || ':' || ifnull(updated_at, '-') FROM devices ORDER BY token",
    );
    let db_arg = db.display().to_string();
    let output = push(&mocks.send_args_gcm(&["--db", &db_arg, "--apply-feedback"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), 8);
    let journal = strings(
        &db,
        "SELECT change || ' ' || platform || ' ' || token || ' ' || ifnull(new_token, '-') || ' ' || provider FROM push_journal ORDER BY token",
    );
    assert_eq!(
        journal,
        [
            "delete android and-gone-1 - gcm",
            "delete android and-gone-2 - gcm",
            "replace android and-old and-new gcm",
        ]
    );
    let restore = |extra: &[&str]| {
        let mut args: Vec<String> = ["store", "restore", "--db", &db_arg, "--since", "1h"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        push(&args)
    };
    let output = restore(&["--dry-run"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("would put back 2 deleted rows and 1 replaced"));
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), 8);
    let output = restore(&[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The replaced row keeps the time of its replacement; the rest is as it was.
    let after = strings(
        &db,
        "SELECT token || ':' || CASE WHEN token = 'and-old' THEN 13 ELSE ifnull(updated_at, '-') END FROM devices ORDER BY token",
    );
    assert_eq!(after, before);
    // Each change is undone once.
    let output = restore(&[]);
    assert!(text(&output.stdout).contains("put back 0 deleted rows and 0 replaced"));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM push_journal WHERE restored_at IS NULL"
        ),
        0
    );
}

#[test]
fn restore_needs_a_journal_and_a_valid_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("devices.sqlite");
    default_store(&db, []);
    let db = db.display().to_string();
    let run =
        |since: &str| push(&["store", "restore", "--db", &db, "--since", since].map(String::from));
    let output = run("1h");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no journal"));
    let output = run("yesterday");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--since"));
}

#[test]
fn store_restore_has_help() {
    let output = push(&["store", "restore", "--help"].map(String::from));
    assert!(output.status.success());
    let help = text(&output.stdout);
    assert!(help.contains("Usage: push store restore"), "{help}");
    assert!(help.contains("--on-restore-invalid"), "{help}");
}
