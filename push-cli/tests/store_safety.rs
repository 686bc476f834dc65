//! Safety before deletion, against the mock providers: a misconfiguration deletes nothing,
//! 410 timestamps are respected, `--max-delete` caps, `--dry-run-store` changes nothing,
//! canonical ids are validated.

mod common;

use common::{Providers, count, default_store, ios_token, push, strings, text};
use push_mock::{FcmScript, ReasonScript, TokenScript};

const DEVICES: u64 = 10_000;

#[test]
fn a_sandbox_endpoint_with_a_production_store_deletes_nothing() {
    let tokens: Vec<String> = (0..DEVICES).map(ios_token).collect();
    let scripts: Vec<_> = tokens
        .iter()
        .map(|t| (t.clone(), ReasonScript::BadDeviceToken))
        .collect();
    let mocks = Providers::start(&scripts, &[], &[]);
    let db = mocks.path("devices.sqlite");
    default_store(&db, tokens.iter().map(|t| ("ios".into(), t.clone(), None)));
    let db_arg = db.display().to_string();
    let output = push(&mocks.send_args(&["--db", &db_arg, "--apply-feedback"]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), DEVICES as i64);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("push: error: iOS stopped"), "{stderr}");
    assert!(last.contains("sandbox vs production"), "{stderr}");
    assert!(last.contains("--apns-url"), "{stderr}");
    assert!(last.contains("BadDeviceToken"), "{stderr}");
}

#[test]
fn a_service_account_of_another_project_deletes_nothing() {
    let tokens: Vec<String> = (0..DEVICES).map(|n| format!("fcm-{n}")).collect();
    let scripts: Vec<_> = tokens
        .iter()
        .map(|t| (t.clone(), FcmScript::SenderIdMismatch))
        .collect();
    let mocks = Providers::start(&[], &scripts, &[]);
    let db = mocks.path("devices.sqlite");
    default_store(
        &db,
        tokens.iter().map(|t| ("android".into(), t.clone(), None)),
    );
    let db_arg = db.display().to_string();
    let output = push(&mocks.send_args(&["--db", &db_arg, "--apply-feedback"]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), DEVICES as i64);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("push: error: Android stopped"), "{stderr}");
    assert!(last.contains("SENDER_ID_MISMATCH"), "{stderr}");
    assert!(last.contains("another Firebase project"), "{stderr}");
}

/// 20 iOS devices, `bad` of them answered 410 Unregistered at `at_ms`; the others delivered.
fn unregistered(bad: u64, at_ms: u64) -> (Providers, Vec<String>) {
    let tokens: Vec<String> = (0..20).map(ios_token).collect();
    let scripts: Vec<_> = tokens[..bad as usize]
        .iter()
        .map(|t| {
            (
                t.clone(),
                ReasonScript::Unregistered {
                    timestamp_ms: at_ms,
                },
            )
        })
        .collect();
    (Providers::start(&scripts, &[], &[]), tokens)
}

#[test]
fn a_device_registered_after_the_410_timestamp_is_kept() {
    let (mocks, tokens) = unregistered(3, 1_700_000_000_000);
    let db = mocks.path("devices.sqlite");
    // Registered before, after, and at an unknown time.
    let updated = [Some(1_600_000_000), Some(1_800_000_000), None];
    default_store(
        &db,
        tokens.iter().enumerate().map(|(i, t)| {
            let at = updated.get(i).copied().unwrap_or(Some(1_600_000_000));
            ("ios".into(), t.clone(), at)
        }),
    );
    let db_arg = db.display().to_string();
    let output = push(&mocks.send_args(&["--db", &db_arg, "--apply-feedback"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let left = strings(&db, "SELECT token FROM devices");
    assert_eq!(left.len(), 18);
    assert!(!left.contains(&tokens[0]) && !left.contains(&tokens[2]));
    assert!(left.contains(&tokens[1]), "registered again after the 410");
}

#[test]
fn max_delete_caps_the_deletions_and_fails_the_run() {
    let (mocks, tokens) = unregistered(5, 1_700_000_000_000);
    let db = mocks.path("devices.sqlite");
    default_store(&db, tokens.iter().map(|t| ("ios".into(), t.clone(), None)));
    let db_arg = db.display().to_string();
    let mut args = mocks.send_args(&["--db", &db_arg, "--apply-feedback"]);
    args.extend(["--max-delete".into(), "10%".into()]);
    let output = push(&args);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), 18);
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("--max-delete reached (2 deletions)"),
        "{last}"
    );
    assert!(last.contains("3 more deletions were not applied"), "{last}");
}

#[test]
fn dry_run_store_reports_and_changes_nothing() {
    let (mocks, tokens) = unregistered(5, 1_700_000_000_000);
    let db = mocks.path("devices.sqlite");
    default_store(&db, tokens.iter().map(|t| ("ios".into(), t.clone(), None)));
    let db_arg = db.display().to_string();
    let mut args = mocks.send_args(&["--db", &db_arg, "--apply-feedback", "--dry-run-store"]);
    args.retain(|a| a != "--quiet");
    let output = push(&args);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("5 invalid tokens deleted"), "{stderr}");
    assert!(stderr.contains("dry run, nothing was changed"), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM devices"), 20);
}

#[test]
fn an_invalid_canonical_id_never_replaces_a_token() {
    let scripts = [
        (
            "and-empty".to_string(),
            TokenScript::Canonical(String::new()),
        ),
        (
            "and-space".to_string(),
            TokenScript::Canonical("a b".into()),
        ),
        (
            "and-old".to_string(),
            TokenScript::Canonical("and-new".into()),
        ),
    ];
    let mocks = Providers::start(&[], &[], &scripts);
    let db = mocks.path("devices.sqlite");
    default_store(
        &db,
        ["and-empty", "and-space", "and-old", "and-ok"]
            .map(|t| ("android".to_string(), t.to_string(), None)),
    );
    let db_arg = db.display().to_string();
    let output = push(&mocks.send_args_gcm(&["--db", &db_arg, "--apply-feedback"]));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let mut left = strings(&db, "SELECT token FROM devices");
    left.sort();
    assert_eq!(left, ["and-empty", "and-new", "and-ok", "and-space"]);
    assert!(
        stderr.contains("2 canonical ids were not valid tokens"),
        "{stderr}"
    );
}
