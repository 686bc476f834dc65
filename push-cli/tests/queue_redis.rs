//! Campaigns over Redis Streams against a real `redis-server` (`PUSH_TEST_REDIS_URL`, which
//! `.ci/redis` starts) and the mock providers: `push enqueue`, two `push worker`s, a worker
//! killed mid-run, `push campaign status|results`.

mod common;

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Providers, count, default_store, ios_token, push, push_command, strings, text};
use push_mock::{FcmScript, ReasonScript};

/// Devices per job in these tests.
const BATCH: usize = 100;

/// A test's devices: iOS and Android interleaved (every job has both), a few the providers
/// reject, one malformed line; written to `devices.txt`.
struct Devices {
    ios: Vec<String>,
    android: Vec<String>,
    bad_ios: Vec<String>,
    bad_android: Vec<String>,
}

impl Devices {
    fn new(n: u64) -> Devices {
        let ios: Vec<String> = (0..n / 2).map(ios_token).collect();
        let android: Vec<String> = (0..n / 2).map(|i| format!("fcm-token-{i}")).collect();
        Devices {
            bad_ios: ios.iter().step_by(97).cloned().collect(),
            bad_android: android.iter().step_by(89).cloned().collect(),
            ios,
            android,
        }
    }

    fn start_mocks(&self, latency: Duration) -> Providers {
        let apns: Vec<(String, ReasonScript)> = self
            .bad_ios
            .iter()
            .map(|t| (t.clone(), ReasonScript::BadDeviceToken))
            .collect();
        let fcm: Vec<(String, FcmScript)> = self
            .bad_android
            .iter()
            .map(|t| (t.clone(), FcmScript::Unregistered))
            .collect();
        Providers::start_with(&apns, &fcm, &[], |options| options.latency(latency))
    }

    fn write(&self, mocks: &Providers) -> String {
        let mut list = String::from("# a campaign\nwindows not-a-platform\n");
        for (ios, android) in self.ios.iter().zip(&self.android) {
            list.push_str(&format!("ios {ios}\nandroid {android}\n"));
        }
        let path = mocks.path("devices.txt");
        std::fs::write(&path, list).unwrap();
        path.display().to_string()
    }

    fn deliverable(&self) -> usize {
        self.ios.len() + self.android.len() - self.bad_ios.len() - self.bad_android.len()
    }
}

/// `push enqueue`: the campaign id.
fn enqueue(url: &str, devices: &str) -> u64 {
    enqueue_with(url, devices, &[])
}

/// `push enqueue` with more arguments: the campaign id.
fn enqueue_with(url: &str, devices: &str, extra: &[&str]) -> u64 {
    common::enqueue_campaign(url, devices, BATCH, extra)
}

/// A `push worker` with the mocks' provider flags.
fn worker(mocks: &Providers, url: &str, extra: &[&str]) -> Child {
    push_command(&mocks.worker_args(url, extra))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a worker and checks it succeeded: its standard error.
fn finish(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stderr)
}

/// Every device, the malformed one included, has exactly one result, with the right outcome.
fn assert_one_result_each(devices: &Devices, url: &str, id: u64) {
    let results = common::results_by_token(url, id);
    assert_eq!(results.len(), devices.ios.len() + devices.android.len() + 1);
    let bad: HashSet<&String> = devices.bad_ios.iter().chain(&devices.bad_android).collect();
    for (token, outcomes) in &results {
        assert_eq!(outcomes.len(), 1, "{token}: {outcomes:?}");
        let want = if bad.contains(token) {
            "invalid_device"
        } else if token == "not-a-platform" {
            "unknown_platform"
        } else {
            "delivered"
        };
        assert_eq!(outcomes[0], want, "{token}");
    }
}

/// Deliveries the mocks saw beyond one per deliverable device; each deliverable device
/// delivered at least once.
fn duplicates(devices: &Devices, mocks: &Providers) -> usize {
    let apns = mocks.apns.delivered_counts();
    let fcm = mocks.fcm.delivered_counts();
    let bad: HashSet<&String> = devices.bad_ios.iter().chain(&devices.bad_android).collect();
    let mut extra = 0;
    for token in devices.ios.iter().filter(|t| !bad.contains(t)) {
        let n = apns.get(token).copied().unwrap_or(0);
        assert!(n >= 1, "{token} never delivered");
        extra += n - 1;
    }
    for token in devices.android.iter().filter(|t| !bad.contains(t)) {
        let n = fcm.get(token).copied().unwrap_or(0);
        assert!(n >= 1, "{token} never delivered");
        extra += n - 1;
    }
    extra
}

#[test]
fn two_workers_give_every_device_exactly_one_result() {
    let Some(url) = common::redis_database(1) else {
        return;
    };
    let devices = Devices::new(3000);
    let mocks = devices.start_mocks(Duration::ZERO);
    let list = devices.write(&mocks);
    let id = enqueue(&url, &list);
    let workers = [
        worker(&mocks, &url, &["--exit-when-idle"]),
        worker(&mocks, &url, &["--exit-when-idle"]),
    ];
    for child in workers {
        finish(child);
    }
    assert_one_result_each(&devices, &url, id);
    assert_eq!(duplicates(&devices, &mocks), 0);
    assert_eq!(
        mocks.apns.total_delivered() + mocks.fcm.total_delivered(),
        devices.deliverable()
    );

    let status = push(&[
        "campaign".into(),
        "--redis".into(),
        url.clone(),
        "status".into(),
        id.to_string(),
    ]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status = text(&status.stdout);
    assert!(status.contains("queued: 3001\n"), "{status}");
    assert!(status.contains("done: 3001\n"), "{status}");
    assert!(status.contains("left: 0\n"), "{status}");
    assert!(status.contains("jobs: 30 of 30 done\n"), "{status}");
    let invalid = devices.bad_ios.len() + devices.bad_android.len();
    assert!(
        status.contains(&format!("  invalid_device: {invalid}\n")),
        "{status}"
    );
    assert!(
        status.contains(&format!("  delivered: {}\n", devices.deliverable())),
        "{status}"
    );

    // The same lines as `push send --feedback`.
    let results = push(&[
        "campaign".into(),
        "--redis".into(),
        url.clone(),
        "results".into(),
        id.to_string(),
    ]);
    assert!(results.status.success(), "{}", text(&results.stderr));
    let lines: Vec<serde_json::Value> = text(&results.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3001);
    let invalid_lines = lines
        .iter()
        .filter(|line| line["error"] == "invalid_device")
        .count();
    assert_eq!(invalid_lines, invalid);
    assert!(lines.iter().any(|line| line["error"] == "unknown_platform"
        && line["line"] == 2
        && line["token"] == "not-a-platform"));
}

#[test]
fn a_killed_workers_jobs_are_claimed_and_sent_at_most_once_more() {
    let Some(url) = common::redis_database(2) else {
        return;
    };
    let devices = Devices::new(3000);
    // Each job takes the round trip: the first worker is killed with jobs left.
    let mocks = devices.start_mocks(Duration::from_millis(40));
    let list = devices.write(&mocks);
    let id = enqueue(&url, &list);
    let mut first = worker(&mocks, &url, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::results_by_token(&url, id).len() < 600 {
        assert!(
            Instant::now() < deadline,
            "the first worker made no progress"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before = common::results_by_token(&url, id).len();
    assert!(
        before < 3001,
        "the first worker finished before it was killed"
    );
    let second = worker(&mocks, &url, &["--exit-when-idle", "--claim-idle", "0.5"]);
    finish(second);
    assert_one_result_each(&devices, &url, id);
    // At most the jobs in flight in the killed worker (--jobs, 2 by default) are sent twice.
    let extra = duplicates(&devices, &mocks);
    eprintln!("killed after {before} results; {extra} devices sent twice");
    assert!(
        extra <= 2 * BATCH,
        "{extra} duplicates, more than two jobs of {BATCH}"
    );
}

#[test]
fn a_stopped_worker_finishes_and_acknowledges_its_job() {
    let Some(url) = common::redis_database(3) else {
        return;
    };
    let devices = Devices::new(3000);
    let mocks = devices.start_mocks(Duration::from_millis(40));
    let list = devices.write(&mocks);
    let id = enqueue(&url, &list);
    let first = worker(&mocks, &url, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::results_by_token(&url, id).len() < 600 {
        assert!(
            Instant::now() < deadline,
            "the first worker made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    finish(first);
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg("push:jobs")
        .arg("push-workers")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending.count(), 0, "the stopped worker left a job pending");
    let before = common::results_by_token(&url, id).len();
    assert!(
        before < 3001,
        "the first worker finished before it was stopped"
    );
    finish(worker(&mocks, &url, &["--exit-when-idle"]));
    assert_one_result_each(&devices, &url, id);
    assert_eq!(duplicates(&devices, &mocks), 0);
}

#[test]
fn a_campaign_is_enqueued_from_a_sqlite_store() {
    let Some(url) = common::redis_database(4) else {
        return;
    };
    let devices = Devices::new(200);
    let mocks = devices.start_mocks(Duration::ZERO);
    let store = store_of(&devices, &mocks);
    let output = push(&[
        "enqueue".into(),
        "--redis".into(),
        url.clone(),
        "--db".into(),
        store.display().to_string(),
        "--title".into(),
        "Hello".into(),
        "--body".into(),
        "World".into(),
        "--batch".into(),
        "7".into(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id: u64 = text(&output.stdout).trim().parse().unwrap();
    finish(worker(&mocks, &url, &["--exit-when-idle"]));
    assert_one_result_each(&devices, &url, id);
    assert_eq!(duplicates(&devices, &mocks), 0);
}

/// A `redis-server` of one test's own, which the test can restart, on a fixed port and
/// directory (append-only file, each write synced).
struct OwnRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    listen: Vec<String>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        OwnRedis::start_with(|port| vec!["--port".into(), port.to_string()])
    }

    /// A server with these listening arguments for the port given.
    fn start_with(listen: impl Fn(u16) -> Vec<String>) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = OwnRedis::spawn(dir.path(), port, &listen(port));
        OwnRedis {
            dir,
            port,
            child,
            listen: listen(port),
        }
    }

    fn spawn(dir: &std::path::Path, port: u16, listen: &[String]) -> Child {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(listen)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (.ci/redis installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM: it writes its data and exits), waits a little, starts it
    /// again on the same port and directory.
    fn restart(&mut self, down: Duration) {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        self.child.wait().unwrap();
        std::thread::sleep(down);
        self.child = OwnRedis::spawn(self.dir.path(), self.port, &self.listen);
        self.wait_loaded();
    }

    /// Waits until the server answers PING: a restarted server accepts connections while it
    /// still loads its append-only file, and answers `LOADING` to commands until it is done.
    fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            let pong = client
                .get_connection()
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            match pong {
                Ok(_) => return,
                Err(error) => {
                    assert!(Instant::now() < deadline, "redis-server not ready: {error}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn workers_connect_again_after_a_redis_restart_and_lose_nothing() {
    // Gated like the others: CI has redis-server, a developer may not.
    if common::redis_database(5).is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let devices = Devices::new(3000);
    let mocks = devices.start_mocks(Duration::from_millis(40));
    let list = devices.write(&mocks);
    let id = enqueue(&url, &list);
    let first = worker(
        &mocks,
        &url,
        &[
            "--exit-when-idle",
            "--claim-idle",
            "1",
            "--redis-wait",
            "20",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::results_by_token(&url, id).len() < 600 {
        assert!(Instant::now() < deadline, "the worker made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    redis.restart(Duration::from_millis(300));
    let before = common::results_by_token(&url, id).len();
    assert!(before < 3001, "the worker finished before the restart");
    let stderr = finish(first);
    assert!(stderr.contains("connecting again"), "{stderr}");
    assert_one_result_each(&devices, &url, id);
    assert_eq!(duplicates(&devices, &mocks), 0);
}

#[test]
fn rediss_with_a_password_verifies_the_server_and_never_prints_the_password() {
    if common::redis_database(6).is_none() {
        return;
    }
    let devices = Devices::new(200);
    let mocks = devices.start_mocks(Duration::ZERO);
    let (ca, cert, key) = (
        mocks.path("ca.pem").display().to_string(),
        mocks.path("server.pem").display().to_string(),
        mocks.path("server.key").display().to_string(),
    );
    let redis = OwnRedis::start_with(|port| {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cret-pass",
        ]
        .map(String::from)
        .to_vec()
    });
    let url = format!("rediss://:s3cret-pass@localhost:{}", redis.port);
    let list = devices.write(&mocks);
    let id = enqueue_with(&url, &list, &["--redis-ca", &ca]);
    finish(worker(
        &mocks,
        &url,
        &["--exit-when-idle", "--redis-ca", &ca],
    ));
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&ca).unwrap()),
        },
    )
    .unwrap();
    let mut conn = client.get_connection().unwrap();
    let done: usize = redis::cmd("SCARD")
        .arg(format!("push:done:{id}"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(done, devices.ios.len() + devices.android.len());

    let status = |url: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["campaign", "--redis", url]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        args.extend(["status".to_string(), id.to_string()]);
        push(&args)
    };
    let output = status(&url, &["--redis-ca", &ca]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("left: 0\n"));
    // A wrong password: refused, and never printed.
    let wrong = format!("rediss://:wrong-pass@localhost:{}", redis.port);
    let output = status(&wrong, &["--redis-ca", &ca]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(!stderr.contains("wrong-pass"), "{stderr}");
    assert!(stderr.contains("rediss://:***@localhost"), "{stderr}");
    // The server is verified: without its CA, the system's roots do not trust it.
    let output = status(&url, &[]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "an untrusted server was accepted");
    assert!(!stderr.contains("s3cret-pass"), "{stderr}");
}

/// The jobs a worker says it sent, from its last line.
fn jobs_sent(stderr: &str) -> u64 {
    let summary = stderr
        .lines()
        .rfind(|line| line.starts_with("push: worker "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let (_, counts) = summary.rsplit_once(": ").unwrap();
    counts.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_worker_started_later_joins_and_takes_work() {
    let Some(url) = common::redis_database(8) else {
        return;
    };
    let devices = Devices::new(3000);
    let mocks = devices.start_mocks(Duration::from_millis(40));
    let list = devices.write(&mocks);
    let id = enqueue(&url, &list);
    let first = worker(&mocks, &url, &["--exit-when-idle", "--jobs", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::results_by_token(&url, id).len() < 300 {
        assert!(
            Instant::now() < deadline,
            "the first worker made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let later = worker(&mocks, &url, &["--exit-when-idle", "--jobs", "1"]);
    let (first, later) = (finish(first), finish(later));
    assert!(jobs_sent(&later) > 0, "{later}");
    assert_eq!(jobs_sent(&first) + jobs_sent(&later), 30);
    assert_one_result_each(&devices, &url, id);
    assert_eq!(duplicates(&devices, &mocks), 0);
}

/// A SQLite store of `devices` (and a malformed row) in the mocks' directory.
fn store_of(devices: &Devices, mocks: &Providers) -> std::path::PathBuf {
    let store = mocks.path("devices.sqlite");
    let rows = devices
        .ios
        .iter()
        .map(|t| ("ios".to_string(), t.clone(), None))
        .chain(
            devices
                .android
                .iter()
                .map(|t| ("android".to_string(), t.clone(), None)),
        )
        .chain([("windows".to_string(), "not-a-platform".to_string(), None)]);
    default_store(&store, rows);
    store
}

/// A campaign from `store`, sent by one worker until the queue is empty: its id.
fn send_campaign_from(mocks: &Providers, url: &str, store: &std::path::Path) -> u64 {
    let output = push(&[
        "enqueue".into(),
        "--redis".into(),
        url.into(),
        "--db".into(),
        store.display().to_string(),
        "--title".into(),
        "Hello".into(),
        "--body".into(),
        "World".into(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id: u64 = text(&output.stdout).trim().parse().unwrap();
    finish(worker(mocks, url, &["--exit-when-idle"]));
    id
}

/// `push campaign results ID --db STORE --apply-feedback`.
fn apply_results(url: &str, id: u64, store: &std::path::Path) -> std::process::Output {
    push(&[
        "campaign".into(),
        "--redis".into(),
        url.into(),
        "results".into(),
        id.to_string(),
        "--db".into(),
        store.display().to_string(),
        "--apply-feedback".into(),
    ])
}

#[test]
fn campaign_results_apply_exactly_the_rejected_tokens_once() {
    let Some(url) = common::redis_database(13) else {
        return;
    };
    let devices = Devices::new(400);
    let mocks = devices.start_mocks(Duration::ZERO);
    let store = store_of(&devices, &mocks);
    let id = send_campaign_from(&mocks, &url, &store);
    let all = |sql: &str| strings(&store, sql);
    let before = all("SELECT token FROM devices ORDER BY token");

    let output = apply_results(&url, id, &store);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut rejected: Vec<String> = devices
        .bad_ios
        .iter()
        .chain(&devices.bad_android)
        .cloned()
        .collect();
    rejected.sort();
    let mut want: Vec<String> = before
        .iter()
        .filter(|t| !rejected.contains(t))
        .cloned()
        .collect();
    want.sort();
    assert_eq!(all("SELECT token FROM devices ORDER BY token"), want);
    assert_eq!(
        all("SELECT token FROM push_journal WHERE change = 'delete' ORDER BY token"),
        rejected
    );
    let stderr = text(&output.stderr);
    let deleted = format!("store: {} invalid tokens deleted", rejected.len());
    assert!(stderr.contains(&deleted), "{stderr}");
    let journaled = count(&store, "SELECT count(*) FROM push_journal");
    assert_eq!(journaled, rejected.len() as i64);

    // A second run changes nothing.
    let again = apply_results(&url, id, &store);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(all("SELECT token FROM devices ORDER BY token"), want);
    assert_eq!(
        count(&store, "SELECT count(*) FROM push_journal"),
        journaled
    );
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("store: 0 invalid tokens deleted, 0 tokens replaced"),
        "{stderr}"
    );

    // `push store restore` undoes it.
    let restore = push(&[
        "store".into(),
        "restore".into(),
        "--db".into(),
        store.display().to_string(),
        "--since".into(),
        "1h".into(),
    ]);
    assert!(restore.status.success(), "{}", text(&restore.stderr));
    assert_eq!(all("SELECT token FROM devices ORDER BY token"), before);
}

#[test]
fn campaign_results_with_every_token_rejected_delete_nothing() {
    let Some(url) = common::redis_database(15) else {
        return;
    };
    let mut devices = Devices::new(40);
    devices.bad_ios = devices.ios.clone();
    devices.bad_android = devices.android.clone();
    let mocks = devices.start_mocks(Duration::ZERO);
    let store = store_of(&devices, &mocks);
    let id = send_campaign_from(&mocks, &url, &store);

    let output = apply_results(&url, id, &store);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("iOS stopped, no token deleted"), "{stderr}");
    assert!(stderr.contains("BadDeviceToken"), "{stderr}");
    assert!(stderr.contains("Android stopped"), "{stderr}");
    assert_eq!(count(&store, "SELECT count(*) FROM devices"), 41);
    assert_eq!(count(&store, "SELECT count(*) FROM push_journal"), 0);
}

/// The recording script run directly: a job recorded by two workers (taken over from one
/// that was only slow) keeps each device's first result.
#[test]
fn a_job_recorded_twice_keeps_each_devices_first_result() {
    let Some(url) = common::redis_database(7) else {
        return;
    };
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("XGROUP")
        .arg(&["CREATE", "push:jobs", "push-workers", "0", "MKSTREAM"])
        .query(&mut conn)
        .unwrap();
    let job: String = redis::cmd("XADD")
        .arg(&["push:jobs", "*", "campaign", "9", "devices", "-"])
        .query(&mut conn)
        .unwrap();
    // Read by a worker: pending until acknowledged.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "push-workers", "w", "STREAMS", "push:jobs", ">"])
        .query(&mut conn)
        .unwrap();
    let mut record = |args: &[&str]| -> u64 {
        redis::cmd("EVAL")
            .arg(include_str!("../src/redis_queue/record.lua"))
            .arg(5)
            .arg(&["push:done:9", "push:results:9", "push:outcomes:9"])
            .arg(&["push:jobs", "push:campaign:9", "push-workers", &job])
            .arg(args)
            .query(&mut conn)
            .unwrap()
    };
    // tokens, outcomes, lines packed; the outcome counts; each token.
    let first = ["a\nb", "delivered\ninvalid_device", "\n{\"b\":1}", "2"];
    let first = [
        &first[..],
        &["delivered", "1", "invalid_device", "1", "a", "b"],
    ]
    .concat();
    assert_eq!(record(&first), 2);
    let second = ["b\nc", "delivered\ndelivered", "{\"b\":2}\n{\"c\":2}", "1"];
    let second = [&second[..], &["delivered", "2", "b", "c"]].concat();
    assert_eq!(record(&second), 1);
    let by_token = common::results_by_token(&url, 9);
    assert_eq!(by_token["a"], ["delivered"]);
    assert_eq!(by_token["b"], ["invalid_device"]);
    assert_eq!(by_token["c"], ["delivered"]);
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&["push:results:9", "-", "+"])
        .query(&mut conn)
        .unwrap();
    let lines: Vec<String> = entries
        .ids
        .iter()
        .map(|entry| entry.get("lines").unwrap())
        .collect();
    assert_eq!(lines, ["\n{\"b\":1}", "{\"c\":2}"]);
    let outcomes: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg("push:outcomes:9")
        .query(&mut conn)
        .unwrap();
    assert_eq!(outcomes["delivered"], 2);
    assert_eq!(outcomes["invalid_device"], 1);
    let jobs_done: u64 = redis::cmd("HGET")
        .arg(&["push:campaign:9", "jobs_done"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(jobs_done, 1, "a job is counted done once");
}

/// `push campaign --redis URL ARGS...`.
fn campaign(url: &str, args: &[&str]) -> std::process::Output {
    let args: Vec<String> = ["campaign", "--redis", url]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    push(&args)
}

/// The keys of the Redis database at `url`.
fn redis_keys(url: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.sort();
    keys
}

#[test]
fn campaign_delete_removes_a_finished_campaign_and_refuses_an_unfinished_one() {
    let Some(url) = common::redis_database(9) else {
        return;
    };
    let devices = Devices::new(400);
    let mocks = devices.start_mocks(Duration::ZERO);
    let list = devices.write(&mocks);
    let sent = enqueue(&url, &list);
    finish(worker(&mocks, &url, &["--exit-when-idle"]));
    // A second campaign, never sent: 4 jobs wait in the stream.
    let waiting = enqueue(&url, &list);

    let output = campaign(&url, &["delete", &waiting.to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("not finished (0 of 4 jobs done)"),
        "{stderr}"
    );
    assert!(redis_keys(&url).contains(&format!("push:campaign:{waiting}")));

    let output = campaign(&url, &["delete", &sent.to_string()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("campaign {sent} deleted: 4 keys")),
        "{stderr}"
    );
    assert!(
        !redis_keys(&url)
            .iter()
            .any(|key| key.ends_with(&format!(":{sent}"))),
        "{:?}",
        redis_keys(&url)
    );
    let output = campaign(&url, &["status", &sent.to_string()]);
    assert!(text(&output.stderr).contains(&format!("no campaign {sent}")));

    let output = campaign(&url, &["delete", &waiting.to_string(), "--force"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("4 jobs not sent removed"), "{stderr}");
    // The job stream is empty: a worker now has nothing to do.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let left: u64 = redis::cmd("XLEN")
        .arg("push:jobs")
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(redis_keys(&url), ["push:campaigns", "push:jobs"]);
}

/// Devices of the scenario below: `PUSH_TEST_SCALE_DEVICES`, or the 300,000.
fn scale_devices() -> u64 {
    std::env::var("PUSH_TEST_SCALE_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300_000)
}

/// The devices of `campaign` with a result, from its done set (the malformed entry has none).
fn done_count(url: &str, id: u64) -> u64 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("SCARD")
        .arg(format!("push:done:{id}"))
        .query(&mut conn)
        .unwrap()
}

#[test]
fn three_workers_one_killed_one_joining_give_every_device_one_result() {
    let Some(url) = common::redis_database(12) else {
        return;
    };
    let n = scale_devices();
    let devices = Devices::new(n);
    let mocks = devices.start_mocks(Duration::from_millis(10));
    let list = devices.write(&mocks);
    let batch = 500;
    let id = common::enqueue_campaign(&url, &list, batch, &[]);
    // Jobs pending 5 s are taken over: well above a job's sending time here.
    let claim = ["--exit-when-idle", "--claim-idle", "5"];
    let mut killed = worker(&mocks, &url, &[]);
    let others = [worker(&mocks, &url, &claim), worker(&mocks, &url, &claim)];
    let deadline = Instant::now() + Duration::from_secs(120);
    while done_count(&url, id) < n / 4 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(killed.try_wait().unwrap().is_none(), "the worker exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let at_kill = done_count(&url, id);
    let later = worker(&mocks, &url, &claim);
    let mut stderrs: Vec<String> = others.into_iter().map(finish).collect();
    let later = finish(later);
    assert!(
        jobs_sent(&later) > 0,
        "the later worker took no job: {later}"
    );
    stderrs.push(later);
    assert_one_result_each(&devices, &url, id);
    // At most the killed worker's jobs in flight (--jobs 2 by default) are sent twice.
    let extra = duplicates(&devices, &mocks);
    eprintln!(
        "{n} devices: killed at {at_kill} results; {extra} devices sent twice; jobs per worker: {:?}",
        stderrs.iter().map(|e| jobs_sent(e)).collect::<Vec<_>>()
    );
    assert!(
        extra <= 2 * batch,
        "{extra} duplicates, more than two jobs of {batch}"
    );
    assert_eq!(
        mocks.apns.total_delivered() + mocks.fcm.total_delivered(),
        devices.deliverable() + extra
    );
}
