//! Campaigns over Redis Streams against a real `redis-server` (`PUSH_TEST_REDIS_URL`, which
//! `.ci/redis` starts) and the mock providers: `push enqueue`, two `push worker`s, a worker
//! killed mid-run, `push campaign status|results`.

mod common;

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
    // `push send`'s arguments less the notification, the quiet flag and the feedback file.
    let send = mocks.send_args(&[]);
    let mut args: Vec<String> = ["worker", "--redis", url]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    let mut rest = send.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--title" | "--body" | "--feedback" => {
                rest.next();
            }
            "--quiet" => {}
            _ => args.push(arg.clone()),
        }
    }
    push_command(&args)
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
    for (token, outcomes) in &results {
        assert_eq!(outcomes.len(), 1, "{token}: {outcomes:?}");
        let want = if devices.bad_ios.contains(token) || devices.bad_android.contains(token) {
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
    let mut extra = 0;
    for token in devices.ios.iter().filter(|t| !devices.bad_ios.contains(t)) {
        let n = apns.get(token).copied().unwrap_or(0);
        assert!(n >= 1, "{token} never delivered");
        extra += n - 1;
    }
    for token in devices
        .android
        .iter()
        .filter(|t| !devices.bad_android.contains(t))
    {
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
    let Some(url) = common::redis_database(14) else {
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
