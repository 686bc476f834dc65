//! Today's table in PostgreSQL: feedback applied with its timestamps, journaled and restored;
//! a run interrupted and resumed. Against the server `.ci/run` starts
//! (`PUSH_TEST_POSTGRES_URL`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Providers, TestStore, ios_token, postgres_database, push, push_command, text};
use push_mock::{ReasonScript, TokenScript};

const TABLE: &str =
    "CREATE TABLE devices(platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at BIGINT);";

#[test]
fn feedback_is_applied_journaled_and_restored_in_postgres() {
    let Some(url) = postgres_database() else {
        return;
    };
    let store = TestStore::Postgres(url);
    let ios: Vec<String> = (0..10).map(ios_token).collect();
    let mocks = Providers::start(
        &[
            (
                ios[0].clone(),
                ReasonScript::Unregistered {
                    timestamp_ms: 1_700_000_000_000,
                },
            ),
            (
                ios[1].clone(),
                ReasonScript::Unregistered {
                    timestamp_ms: 1_700_000_000_000,
                },
            ),
        ],
        &[],
        &[
            ("gcm-gone".to_string(), TokenScript::NotRegistered),
            (
                "gcm-old".to_string(),
                TokenScript::Canonical("gcm-new".into()),
            ),
            (
                "gcm-dup".to_string(),
                TokenScript::Canonical("gcm-ok".into()),
            ),
        ],
    );
    let mut sql = String::from(TABLE);
    for (n, token) in ios.iter().enumerate() {
        // ios[1] registered again after the 410's timestamp: kept.
        let updated = if n == 1 { 1_800_000_000 } else { 1_600_000_000 };
        sql.push_str(&format!(
            "INSERT INTO devices VALUES ('ios', '{token}', {updated});"
        ));
    }
    for token in ["gcm-gone", "gcm-old", "gcm-dup", "gcm-ok"] {
        sql.push_str(&format!(
            "INSERT INTO devices VALUES ('android', '{token}', NULL);"
        ));
    }
    store.batch(&sql);
    let before = store.strings("SELECT token FROM devices ORDER BY token");
    let db = store.arg();
    let output = push(&mocks.send_args_gcm(&["--db", &db, "--apply-feedback"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut want: Vec<String> = ios[1..].to_vec();
    want.extend(["gcm-new", "gcm-ok"].map(String::from));
    want.sort();
    assert_eq!(
        store.strings("SELECT token FROM devices ORDER BY token"),
        want
    );
    let mut journal = store.strings("SELECT change || ' ' || token FROM push_journal");
    journal.sort();
    let mut want_journal: Vec<String> = vec![
        format!("delete {}", ios[0]),
        "delete gcm-gone".into(),
        "merge gcm-dup".into(),
        "replace gcm-old".into(),
    ];
    want_journal.sort();
    assert_eq!(journal, want_journal);
    let output = push(&["store", "restore", "--db", &db, "--since", "1h"].map(String::from));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        store.strings("SELECT token FROM devices ORDER BY token"),
        before
    );
    assert_eq!(
        store.strings(&format!(
            "SELECT CAST(updated_at AS TEXT) FROM devices WHERE token = '{}'",
            ios[0]
        )),
        ["1600000000"],
        "a restored row keeps its updated_at"
    );
}

#[test]
fn a_postgres_run_interrupted_and_resumed_sends_each_device_once() {
    const DEVICES: usize = 20_000;
    let Some(url) = postgres_database() else {
        return;
    };
    let store = TestStore::Postgres(url);
    store.batch(&format!(
        "{TABLE} INSERT INTO devices SELECT 'android', 'fcm-' || n, NULL FROM generate_series(0, {}) AS n;",
        DEVICES - 1
    ));
    let mocks = Providers::start(&[], &[], &[]);
    let db = store.arg();
    let args = mocks.send_args(&["--db", &db, "--apply-feedback"]);
    let mut child = push_command(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next().unwrap().unwrap();
    let run = first
        .strip_prefix("push: run ")
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {first:?}"))
        .to_owned();
    assert!(
        mocks
            .fcm
            .wait_for_responses(3_000, Duration::from_secs(120))
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(mocks.fcm.total_responses() < DEVICES);
    let mut resume = args.clone();
    resume.extend(["--resume".to_string(), run]);
    let output = push(&resume);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for answer in mocks.fcm.responses() {
        *counts.entry(answer.token.unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len(), DEVICES);
    assert!(counts.values().all(|n| *n == 1), "a device was sent twice");
    assert_eq!(
        store.strings("SELECT CAST(count(*) AS TEXT) FROM push_run_devices"),
        ["0"]
    );
}
