//! Interrupt and resume against the FCM mock: SIGINT at a random point of a 100,000-device
//! send, then `--resume`: the mock saw every device exactly once, and the store and the JSONL
//! agree with it. Again with SIGKILL (no graceful stop): at most the devices in flight are sent
//! twice. A failed feedback writer stops sending at once.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Providers, count, default_store, push, push_command, text};
use push_mock::FcmScript;
use serde_json::Value;

const DEVICES: u64 = 100_000;
/// One device in 50 is answered UNREGISTERED (2%, well under the guard's limit).
const INVALID_EVERY: u64 = 50;
/// Devices that can be sent again after a SIGKILL: those sent and not yet in the committed
/// run journal: `--in-flight` (10,000 by default), the recorder's channel of 1,024 records
/// and its uncommitted batch of 1,000.
const IN_FLIGHT_BOUND: usize = 10_000 + 1_024 + 1_000;

fn token(n: u64) -> String {
    format!("fcm-{n}")
}

/// The mocks and a store of `DEVICES` Android rows.
fn setup() -> (Providers, String) {
    let scripts: Vec<_> = (0..DEVICES)
        .step_by(INVALID_EVERY as usize)
        .map(|n| (token(n), FcmScript::Unregistered))
        .collect();
    let mocks = Providers::start(&[], &scripts, &[]);
    let db = mocks.path("devices.sqlite");
    default_store(
        &db,
        (0..DEVICES).map(|n| ("android".to_string(), token(n), None)),
    );
    (mocks, db.display().to_string())
}

/// A point between 10% and 80% of the run, different each time (printed to reproduce).
fn random_point() -> usize {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let point = (DEVICES / 10 + u64::from(nanos) % (DEVICES * 7 / 10)) as usize;
    eprintln!("interrupting after {point} answers");
    point
}

/// Starts `push send` on the store; returns the child and its run id (read from stderr, the
/// rest of which is collected by a thread).
fn start(mocks: &Providers, db: &str) -> (Child, String, mpsc::Receiver<String>) {
    let args = mocks.send_args(&["--db", db, "--apply-feedback"]);
    let mut child = push_command(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, rest) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = rest.recv_timeout(Duration::from_secs(60)).unwrap();
    let run = first
        .strip_prefix("push: run ")
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {first:?}"))
        .to_owned();
    (child, run, rest)
}

fn resume(mocks: &Providers, db: &str, run: &str) -> std::process::Output {
    let mut args = mocks.send_args(&["--db", db, "--apply-feedback", "--resume", run]);
    args.retain(|a| a != "--quiet");
    push(&args)
}

/// Requests the mock answered, by token.
fn answered(mocks: &Providers) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for answer in mocks.fcm.responses() {
        if let Some(token) = answer.token {
            *counts.entry(token).or_default() += 1;
        }
    }
    counts
}

/// JSONL lines by token.
fn lines(mocks: &Providers) -> HashMap<String, Vec<Value>> {
    let mut by_token: HashMap<String, Vec<Value>> = HashMap::new();
    let text = std::fs::read_to_string(mocks.path("feedback.jsonl")).unwrap();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let token = value["token"].as_str().unwrap().to_owned();
        by_token.entry(token).or_default().push(value);
    }
    by_token
}

fn wait_for_answers(mocks: &Providers, count: usize) {
    assert!(
        mocks
            .fcm
            .wait_for_responses(count, Duration::from_secs(300)),
        "the mock never answered {count} requests"
    );
}

#[test]
fn sigint_then_resume_sends_every_device_exactly_once() {
    let (mocks, db) = setup();
    let (mut child, run, stderr) = start(&mocks, &db);
    wait_for_answers(&mocks, random_point());
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let stderr: Vec<String> = stderr.iter().collect();
    assert_eq!(exit.code(), Some(130), "{stderr:?}");
    let last = stderr.last().unwrap();
    assert!(
        last.contains(&format!("interrupted; continue with --resume {run}")),
        "{stderr:?}"
    );
    let first_part = mocks.fcm.total_responses();
    assert!(
        first_part < DEVICES as usize,
        "the run stopped early: {first_part} {stderr:?}"
    );
    let output = resume(&mocks, &db, &run);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("push: resuming run {run}: ")),
        "{stderr}"
    );
    let answered = answered(&mocks);
    assert_eq!(answered.len(), DEVICES as usize);
    assert!(
        answered.values().all(|n| *n == 1),
        "a device was sent twice"
    );
    let lines = lines(&mocks);
    assert_eq!(lines.len(), DEVICES as usize);
    for n in 0..DEVICES {
        let got = &lines[&token(n)];
        assert_eq!(got.len(), 1, "{got:?}");
        let invalid = n % INVALID_EVERY == 0;
        assert_eq!(got[0]["error"] == "invalid_device", invalid, "{got:?}");
    }
    let invalid = DEVICES / INVALID_EVERY;
    let db = std::path::Path::new(&db);
    assert_eq!(
        count(db, "SELECT count(*) FROM devices") as u64,
        DEVICES - invalid
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM push_journal") as u64,
        invalid
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM push_runs WHERE finished_at IS NULL"
        ),
        0
    );
    assert_eq!(count(db, "SELECT count(*) FROM push_run_devices"), 0);
}

#[test]
fn sigkill_then_resume_sends_at_most_the_devices_in_flight_twice() {
    let (mocks, db) = setup();
    let (mut child, run, _stderr) = start(&mocks, &db);
    wait_for_answers(&mocks, random_point());
    child.kill().unwrap();
    child.wait().unwrap();
    let output = resume(&mocks, &db, &run);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answered = answered(&mocks);
    assert_eq!(answered.len(), DEVICES as usize, "no device skipped");
    let twice = answered.values().filter(|n| **n > 1).count();
    eprintln!("{twice} devices sent twice");
    assert!(answered.values().all(|n| *n <= 2));
    assert!(twice <= IN_FLIGHT_BOUND, "{twice} devices sent twice");
    let lines = lines(&mocks);
    assert_eq!(lines.len(), DEVICES as usize, "every device has a line");
    let db = std::path::Path::new(&db);
    let valid = strings_set(db);
    for n in (0..DEVICES).filter(|n| n % INVALID_EVERY != 0) {
        assert!(valid.contains(&token(n)), "a valid device was deleted");
    }
}

fn strings_set(db: &std::path::Path) -> std::collections::HashSet<String> {
    common::strings(db, "SELECT token FROM devices")
        .into_iter()
        .collect()
}

#[test]
fn a_failed_feedback_writer_stops_sending_at_once() {
    let (mocks, db) = setup();
    let mut args = mocks.send_args(&["--db", &db]);
    let at = args.iter().position(|a| a == "--feedback").unwrap();
    args[at + 1] = "/dev/full".into();
    let output = push(&args);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.contains("stopped: writing /dev/full failed"), "{last}");
    assert!(last.contains("--resume"), "{last}");
    let sent = mocks.fcm.total_responses();
    assert!(
        sent <= IN_FLIGHT_BOUND,
        "{sent} devices sent after the writer failed"
    );
}

/// Starts `push send` on a device list of `n` Android devices; returns the child, its run id
/// and the rest of its stderr.
fn start_list(mocks: &Providers, n: u64) -> (Child, String, mpsc::Receiver<String>) {
    let list: String = (0..n).map(|i| format!("android {}\n", token(i))).collect();
    let devices = mocks.path("devices.txt");
    std::fs::write(&devices, list).unwrap();
    let args = mocks.send_args(&["--devices", &devices.display().to_string()]);
    let mut child = push_command(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, rest) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = rest.recv_timeout(Duration::from_secs(60)).unwrap();
    let run = first
        .strip_prefix("push: run ")
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {first:?}"))
        .to_owned();
    (child, run, rest)
}

fn sigint(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_device_list_resumes_from_its_journal_file() {
    const LIST: u64 = 30_000;
    let mocks = Providers::start(&[], &[], &[]);
    let (mut child, run, _stderr) = start_list(&mocks, LIST);
    wait_for_answers(&mocks, 5_000);
    sigint(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let journal = mocks.path(&format!("devices.txt.push-run-{run}"));
    assert!(journal.exists());
    let devices = mocks.path("devices.txt").display().to_string();
    let mut args = mocks.send_args(&["--devices", &devices, "--resume", &run]);
    args.retain(|a| a != "--quiet");
    let output = push(&args);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("already had their result"), "{stderr}");
    let answered = answered(&mocks);
    assert_eq!(answered.len(), LIST as usize);
    assert!(
        answered.values().all(|n| *n == 1),
        "a device was sent twice"
    );
    let lines = lines(&mocks);
    assert_eq!(lines.len(), LIST as usize);
    assert!(lines.values().all(|l| l.len() == 1));
    assert!(!journal.exists(), "a complete run forgets its journal");
    let output = push(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no run journal"));
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let mocks = Providers::start(&[], &[], &[]);
    let (mut child, _run, stderr) = start_list(&mocks, 30_000);
    wait_for_answers(&mocks, 2_000);
    sigint(&child);
    // The first Ctrl-C is being handled once its line is printed.
    let stopping = stderr.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(stopping.starts_with("push: stopping"), "{stopping}");
    sigint(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let rest: Vec<String> = stderr.iter().collect();
    assert_eq!(rest, ["push: exiting at once"]);
}
