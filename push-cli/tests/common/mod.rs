//! What the store tests share: the mock providers (APNs HTTP/2 with a provider token, FCM HTTP
//! v1, legacy GCM) and the `push` binary.

#![allow(dead_code)] // Each test crate uses a part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use push_mock::fcm::demo_service_account;
use push_mock::{
    Certificates, FcmOptions, FcmScript, GcmOptions, Http2Auth, Http2Options, MockApnsHttp2,
    MockFcm, MockGcm, ReasonScript, TokenScript,
};
use rusqlite::Connection;

/// The GCM API key of the mock.
pub(crate) const GCM_KEY: &str = "store-test-gcm-key";
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";
const FCM_PROJECT: &str = "store-test";

/// An iOS token: 64 hex characters derived from `n`.
pub(crate) fn ios_token(n: u64) -> String {
    format!("{n:064x}")
}

/// The three mock providers and a work directory.
pub(crate) struct Providers {
    /// Certificates, keys, the store, the feedback.
    pub(crate) dir: tempfile::TempDir,
    /// The APNs HTTP/2 server (token auth).
    pub(crate) apns: MockApnsHttp2,
    /// The FCM HTTP v1 server.
    pub(crate) fcm: MockFcm,
    /// The legacy GCM endpoint.
    pub(crate) gcm: MockGcm,
    ca: PathBuf,
}

impl Providers {
    /// Starts the three mocks with these scripts.
    pub(crate) fn start(
        apns: &[(String, ReasonScript)],
        fcm: &[(String, FcmScript)],
        gcm: &[(String, TokenScript)],
    ) -> Providers {
        Providers::start_with(apns, fcm, gcm, |options| options)
    }

    /// Like [`Providers::start`], the APNs server's options changed by `configure`.
    pub(crate) fn start_with(
        apns: &[(String, ReasonScript)],
        fcm: &[(String, FcmScript)],
        gcm: &[(String, TokenScript)],
        configure: impl FnOnce(Http2Options) -> Http2Options,
    ) -> Providers {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        std::fs::write(dir.path().join("AuthKey.p8"), &key).unwrap();
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).unwrap();
        let mut options = Http2Options::new(auth).topic(TOPIC);
        for (token, script) in apns {
            options = options.script(token.clone(), script.clone());
        }
        let apns = MockApnsHttp2::start(configure(options), &certs).unwrap();
        let mut options = FcmOptions::demo(FCM_PROJECT).unwrap();
        for (token, script) in fcm {
            options = options.script(token.clone(), script.clone());
        }
        let fcm = MockFcm::start(options, &certs).unwrap();
        std::fs::write(
            dir.path().join("account.json"),
            demo_service_account(FCM_PROJECT, &fcm.token_url()),
        )
        .unwrap();
        let mut options = GcmOptions::new(GCM_KEY);
        for (token, script) in gcm {
            options = options.script(token.clone(), script.clone());
        }
        let gcm = MockGcm::start(options).unwrap();
        Providers {
            dir,
            apns,
            fcm,
            gcm,
            ca: paths.ca,
        }
    }

    /// A path in the work directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `push send` arguments: `source` then APNs HTTP/2 and FCM (Android through FCM).
    pub(crate) fn send_args(&self, source: &[&str]) -> Vec<String> {
        let mut args = self.common_args(source);
        args.extend([
            "--fcm-service-account".into(),
            self.path("account.json").display().to_string(),
            "--fcm-url".into(),
            self.fcm.url(),
            "--fcm-ca".into(),
            self.ca.display().to_string(),
        ]);
        args
    }

    /// `push worker --redis URL` arguments, `extra` then the providers of
    /// [`send_args`](Self::send_args) (less the notification, the quiet flag and the feedback
    /// file).
    pub(crate) fn worker_args(&self, url: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["worker", "--redis", url]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        let send = self.send_args(&[]);
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
        args
    }

    /// `push send` arguments: `source` then APNs HTTP/2 and legacy GCM for Android.
    pub(crate) fn send_args_gcm(&self, source: &[&str]) -> Vec<String> {
        let mut args = self.common_args(source);
        args.extend(["--gcm-url".into(), self.gcm.endpoint()]);
        args
    }

    fn common_args(&self, source: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["send", "--title", "Hello", "--body", "World", "--quiet"]
            .iter()
            .chain(source)
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "--apns-url".into(),
            self.apns.url(),
            "--apns-topic".into(),
            TOPIC.into(),
            "--apns-key-p8".into(),
            self.path("AuthKey.p8").display().to_string(),
            "--apns-key-id".into(),
            KEY_ID.into(),
            "--apns-team-id".into(),
            TEAM_ID.into(),
            "--apns-ca".into(),
            self.ca.display().to_string(),
            "--feedback".into(),
            self.path("feedback.jsonl").display().to_string(),
        ]);
        args
    }
}

/// The `push` binary, ready to run with `args` (no GCM key from the environment unless
/// given).
pub(crate) fn push_command(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_push"));
    command.args(args).env("PUSH_GCM_KEY", GCM_KEY);
    command
}

/// Runs `push` with `args`.
pub(crate) fn push(args: &[String]) -> Output {
    push_command(args).output().expect("the push binary runs")
}

/// Standard error (or output) as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A SQLite store of today's schema holding `rows` (platform, token, updated_at).
pub(crate) fn default_store(
    path: &Path,
    rows: impl IntoIterator<Item = (String, String, Option<i64>)>,
) {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE devices(platform TEXT NOT NULL, token TEXT PRIMARY KEY, updated_at INTEGER)",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for (platform, token, updated_at) in rows {
        tx.execute(
            "INSERT INTO devices VALUES (?1, ?2, ?3)",
            rusqlite::params![platform, token, updated_at],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The rows of a query with one text column.
pub(crate) fn strings(path: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A count.
pub(crate) fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

/// A store the tests fill and inspect: an SQLite file or a PostgreSQL database.
pub(crate) enum TestStore {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl TestStore {
    /// The `--db` argument.
    pub(crate) fn arg(&self) -> String {
        match self {
            TestStore::Sqlite(path) => path.display().to_string(),
            TestStore::Postgres(url) => url.clone(),
        }
    }

    /// Runs statements.
    pub(crate) fn batch(&self, sql: &str) {
        match self {
            TestStore::Sqlite(path) => Connection::open(path).unwrap().execute_batch(sql).unwrap(),
            TestStore::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// The rows of a query with one text column.
    pub(crate) fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            TestStore::Sqlite(path) => strings(path, sql),
            TestStore::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect(),
        }
    }
}

/// The URL of the PostgreSQL server the tests use (`PUSH_TEST_POSTGRES_URL`, set by
/// `.ci/run`): a fresh database on it for one test. Without the variable the test is skipped
/// with a note, except in CI (`CI` set), where it fails: PostgreSQL tests must really run.
pub(crate) fn postgres_database() -> Option<String> {
    let Ok(url) = std::env::var("PUSH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PUSH_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it"
        );
        eprintln!("skipped: PUSH_TEST_POSTGRES_URL is not set (see .ci/run to start PostgreSQL)");
        return None;
    };
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "push_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// The Redis URL for one test: its own database number on the server, emptied. Without
/// `PUSH_TEST_REDIS_URL` the test is skipped with a note, except in CI (`CI` set), where it
/// fails: the queue tests must really run.
pub(crate) fn redis_database(db: u8) -> Option<String> {
    let Ok(url) = std::env::var("PUSH_TEST_REDIS_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PUSH_TEST_REDIS_URL is not set: .ci/run starts Redis (.ci/redis) and sets it"
        );
        eprintln!("skipped: PUSH_TEST_REDIS_URL is not set (start one with .ci/redis start DIR)");
        return None;
    };
    let url = format!("{}/{db}", url.trim_end_matches('/'));
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("FLUSHDB").query(&mut conn).unwrap();
    Some(url)
}

/// `push enqueue` of the device list `devices` with a title and body, `batch` devices a job,
/// and `extra` arguments: the campaign id.
pub(crate) fn enqueue_campaign(url: &str, devices: &str, batch: usize, extra: &[&str]) -> u64 {
    let batch = batch.to_string();
    let args: Vec<String> = [
        "enqueue",
        "--redis",
        url,
        "--devices",
        devices,
        "--title",
        "Hello",
        "--body",
        "World",
        "--batch",
        &batch,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    let output = push(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().parse().unwrap()
}

/// The campaign's result stream: the outcomes per token.
pub(crate) fn results_by_token(
    url: &str,
    id: u64,
) -> std::collections::HashMap<String, Vec<String>> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("push:results:{id}"))
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    let mut by_token: std::collections::HashMap<String, Vec<String>> = Default::default();
    // One entry per job recorded, a line per result in each field.
    for entry in reply.ids {
        let tokens: String = entry.get("tokens").unwrap();
        let outcomes: String = entry.get("outcomes").unwrap();
        assert_eq!(tokens.lines().count(), outcomes.lines().count());
        for (token, outcome) in tokens.lines().zip(outcomes.lines()) {
            by_token
                .entry(token.to_owned())
                .or_default()
                .push(outcome.to_owned());
        }
    }
    by_token
}

/// A `push` process killed when the test ends (one holding its metrics would wait minutes).
pub(crate) struct Killed(pub(crate) std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of `GET /metrics` at `addr`, checked to be a 200 in Prometheus text format.
pub(crate) fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics port answers");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: push\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample line of `exposition` starting with `prefix`.
pub(crate) fn sample(exposition: &str, prefix: &str) -> u64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{exposition}"))
        .trim()
        .parse()
        .unwrap()
}
