//! The real `push` binary against push-mock's servers over loopback TLS and HTTP.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use push_mock::fcm::{demo_service_account, wrong_key_service_account};
use push_mock::{
    CertificatePaths, Certificates, FcmOptions, FcmScript, GatewayOptions, GcmOptions, Http2Auth,
    Http2Options, MockApnsHttp2, MockFcm, MockFeedback, MockGateway, MockGcm, ReasonScript,
    TokenScript,
};
use push_proto::ApnsToken;
use push_proto::apns::FeedbackTuple;
use rusqlite::Connection;
use serde_json::Value;

const KEY: &str = "secret-gcm-key-123";

fn push(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_push"));
    command.args(args).env_remove("PUSH_GCM_KEY");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("the push binary runs")
}

/// `push send` of a short notification to the devices on standard input, with `extra`.
fn send_stdin(extra: &[&str]) -> Output {
    let mut args = vec!["send", "--title", "t", "--body", "b", "--devices", "-"];
    args.extend(extra);
    push(&args, &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ios_token(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

struct Mocks {
    dir: tempfile::TempDir,
    paths: CertificatePaths,
    gateway: MockGateway,
    gcm: MockGcm,
}

impl Mocks {
    fn start(bad_ios: &[&str], scripts: &[(&str, TokenScript)]) -> Mocks {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let gateway = MockGateway::start(
            GatewayOptions {
                bad_tokens: bad_ios
                    .iter()
                    .map(|t| ApnsToken::parse(t).unwrap())
                    .collect(),
                require_client_cert: true,
                ..GatewayOptions::default()
            },
            &certs,
        )
        .unwrap();
        let mut options = GcmOptions::new(KEY);
        for (token, script) in scripts {
            options = options.script(*token, script.clone());
        }
        let gcm = MockGcm::start(options).unwrap();
        Mocks {
            dir,
            paths,
            gateway,
            gcm,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `send` arguments for both mocks, after the source arguments.
    fn send_args(&self, source: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["send", "--title", "Hello", "--body", "World"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(source.iter().map(|s| s.to_string()));
        args.extend([
            "--apns".into(),
            format!("localhost:{}", self.gateway.addr().port()),
            "--apns-cert".into(),
            self.paths.client_cert.display().to_string(),
            "--apns-key".into(),
            self.paths.client_key.display().to_string(),
            "--apns-ca".into(),
            self.paths.ca.display().to_string(),
            "--gcm-url".into(),
            self.gcm.endpoint(),
            "--feedback".into(),
            self.path("feedback.jsonl"),
        ]);
        args
    }
}

fn run(args: &[String], envs: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    push(&args, envs)
}

fn jsonl(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn by_token(lines: &[Value]) -> HashMap<String, Value> {
    lines
        .iter()
        .map(|line| (line["token"].as_str().unwrap().to_owned(), line.clone()))
        .collect()
}

fn tokens(db: &Path) -> HashSet<String> {
    let conn = Connection::open(db).unwrap();
    let mut statement = conn.prepare("SELECT token FROM devices").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for command in ["send", "feedback", "mock", "demo", "bench", "vapid"] {
        let output = push(&[command, "--help"], &[]);
        assert!(output.status.success(), "{command}");
        assert!(text(&output.stdout).contains("Usage: push"), "{command}");
    }
}

/// Runs `push demo` with `extra` arguments on 2000 devices, kept in `dir`; returns stdout and
/// the feedback lines after checking the run verified the store.
fn demo(dir: &Path, extra: &[&str]) -> (String, Vec<Value>) {
    let keep = dir.display().to_string();
    let mut args = vec!["demo", "--devices", "2000", "--keep", &keep];
    args.extend(extra);
    let output = push(&args, &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("verified: the store holds exactly the expected"),
        "{stdout}"
    );
    let rows = tokens(&dir.join("devices.sqlite")).len();
    assert!(
        stdout.contains(&format!("expected {rows} devices")),
        "{stdout}"
    );
    assert!(rows < 2000 && rows > 1900, "{rows}");
    assert!(stdout.contains("mock APNs HTTP/2"), "{stdout}");
    // 80 browsers over two Web Push origins, the expired ones deleted from the store.
    assert!(stdout.contains("1200 iOS, 720 Android, 80 web"), "{stdout}");
    assert!(
        stdout.contains("mock Web Push https://localhost:"),
        "{stdout}"
    );
    let lines = jsonl(&dir.join("feedback.jsonl").display().to_string());
    assert!(lines.iter().any(|l| l["error"] == "invalid_device"));
    let web: Vec<_> = lines.iter().filter(|l| l["platform"] == "web").collect();
    assert!(
        web.iter().any(|l| l["error"] == "invalid_device"),
        "{web:?}"
    );
    let stored = tokens(&dir.join("devices.sqlite"));
    let expired = web.iter().filter(|l| l["error"] == "invalid_device");
    for line in expired {
        let token = line["token"].as_str().unwrap();
        assert!(!stored.contains(token), "{token} still stored");
    }
    (stdout, lines)
}

#[test]
fn demo_sends_android_through_fcm_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, lines) = demo(dir.path(), &[]);
    assert!(
        stdout.contains("iOS: APNs HTTP/2 (token auth) · Android: FCM HTTP v1 (service account)"),
        "{stdout}"
    );
    assert!(stdout.contains("mock FCM https://localhost:"), "{stdout}");
    assert!(!stdout.contains("mock GCM"), "{stdout}");
    // Scripted 429s and 503s were retried (the demo checks their exact counts).
    assert!(stdout.contains("answered 429 and"), "{stdout}");
    assert!(
        stdout.contains("a broadcast to it now is refused ChannelNotRegistered"),
        "{stdout}"
    );
    let android: Vec<_> = lines
        .iter()
        .filter(|l| l["platform"] == "android")
        .collect();
    assert!(android.len() >= 700, "{}", android.len());
    assert!(android.iter().all(|l| l["new_token"].is_null()));
    assert!(android.iter().any(|l| l["error"] == "invalid_device"));
}

#[test]
fn demo_with_gcm_legacy_uses_canonical_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, lines) = demo(dir.path(), &["--gcm-legacy"]);
    assert!(
        stdout.contains("Android: legacy GCM HTTP (API key)"),
        "{stdout}"
    );
    assert!(stdout.contains("mock GCM https://localhost:"), "{stdout}");
    assert!(!stdout.contains("mock FCM"), "{stdout}");
    assert!(lines.iter().any(|l| l["new_token"].is_string()));
}

#[test]
fn demo_with_the_binary_gateway_also_verifies() {
    let output = push(&["demo", "--devices", "2000", "--apns-binary"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("mock APNs binary gateway"), "{stdout}");
    assert!(
        stdout.contains("verified: the store holds exactly the expected"),
        "{stdout}"
    );
}

#[test]
fn send_from_a_file_writes_the_expected_jsonl() {
    let bad = ios_token(0xbb);
    let mocks = Mocks::start(
        &[&bad],
        &[
            ("and-bad", TokenScript::NotRegistered),
            ("and-old", TokenScript::Canonical("and-new".into())),
        ],
    );
    let list = format!(
        "# devices\n\nios {}\nios {bad}\nios nothex\nwindows abc\nandroid and-ok\nandroid and-bad\nandroid and-old\n",
        ios_token(0x11)
    );
    let devices = mocks.path("devices.txt");
    std::fs::write(&devices, list).unwrap();
    let output = run(
        &mocks.send_args(&["--devices", &devices]),
        &[("PUSH_GCM_KEY", KEY)],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(KEY));
    let lines = jsonl(&mocks.path("feedback.jsonl"));
    let got = by_token(&lines);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(
        !got.contains_key(&ios_token(0x11)),
        "APNs successes are not reported"
    );
    assert_eq!(got[&bad]["error"], "invalid_device");
    assert_eq!(got[&bad]["platform"], "ios");
    assert_eq!(got["nothex"]["error"], "invalid_token_format");
    assert_eq!(got["nothex"]["line"], 5);
    assert_eq!(got["abc"]["error"], "unknown_platform");
    assert_eq!(got["abc"]["platform"], "windows");
    assert_eq!(got["abc"]["line"], 6);
    assert_eq!(got["and-ok"]["error"], Value::Null);
    assert_eq!(got["and-ok"]["new_token"], Value::Null);
    assert_eq!(got["and-bad"]["error"], "invalid_device");
    assert_eq!(got["and-old"]["new_token"], "and-new");
    assert_eq!(
        mocks
            .gateway
            .accepted_count(&ApnsToken::parse(&ios_token(0x11)).unwrap()),
        1
    );
}

#[test]
fn send_from_a_store_applies_the_feedback() {
    let bad = ios_token(0xbb);
    let good = ios_token(0x22);
    let mocks = Mocks::start(
        &[&bad],
        &[
            ("and-bad", TokenScript::InvalidRegistration),
            ("and-old", TokenScript::Canonical("and-new".into())),
            ("and-dup", TokenScript::Canonical("and-ok".into())),
        ],
    );
    let db = mocks.dir.path().join("devices.sqlite");
    {
        // The minimal schema of the issue, without updated_at: the run adds it.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE devices(platform TEXT, token TEXT PRIMARY KEY)")
            .unwrap();
        for (platform, token) in [
            ("ios", good.as_str()),
            ("ios", bad.as_str()),
            ("ios", "short"),
            ("android", "and-ok"),
            ("android", "and-bad"),
            ("android", "and-old"),
            ("android", "and-dup"),
        ] {
            conn.execute("INSERT INTO devices VALUES (?1, ?2)", [platform, token])
                .unwrap();
        }
    }
    let db_arg = db.display().to_string();
    let output = run(
        &mocks.send_args(&["--db", &db_arg, "--apply-feedback", "--quiet"]),
        &[("PUSH_GCM_KEY", KEY)],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected: HashSet<String> = [good.as_str(), "short", "and-ok", "and-new"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(tokens(&db), expected);
    let lines = jsonl(&mocks.path("feedback.jsonl"));
    let got = by_token(&lines);
    assert_eq!(got["short"]["error"], "invalid_token_format");
    assert!(got["short"]["row"].is_number());
}

#[test]
fn a_wrong_gcm_key_fails_with_a_clear_message() {
    let mocks = Mocks::start(&[], &[]);
    let devices = mocks.path("devices.txt");
    std::fs::write(&devices, "android and-1\nandroid and-2\n").unwrap();
    let output = run(
        &mocks.send_args(&["--devices", &devices]),
        &[("PUSH_GCM_KEY", "the-wrong-key")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.contains("GCM refused the API key"), "{stderr}");
    assert!(!stderr.contains("the-wrong-key"), "{stderr}");
}

#[test]
fn an_untrusted_ca_fails() {
    let mocks = Mocks::start(&[], &[]);
    let other = Certificates::generate().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_paths = other.write_to(other_dir.path()).unwrap();
    let devices = mocks.path("devices.txt");
    std::fs::write(&devices, format!("ios {}\n", ios_token(0x33))).unwrap();
    let mut args = mocks.send_args(&["--devices", &devices]);
    let ca = args.iter().position(|a| a == "--apns-ca").unwrap();
    args[ca + 1] = other_paths.ca.display().to_string();
    let output = run(&args, &[("PUSH_GCM_KEY", KEY)]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.lines().last().unwrap().contains("TLS"), "{stderr}");
}

#[test]
fn feedback_service_tokens_are_deleted_unless_registered_again() {
    let certs = Certificates::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = certs.write_to(dir.path()).unwrap();
    let (old, renewed) = (ios_token(0x44), ios_token(0x55));
    let tuples = [&old, &renewed]
        .iter()
        .map(|t| FeedbackTuple {
            timestamp: 1_000_000,
            token: Bytes::copy_from_slice(ApnsToken::parse(t).unwrap().as_bytes()),
        })
        .collect();
    let service = MockFeedback::start(tuples, true, true, &certs).unwrap();
    let db = dir.path().join("devices.sqlite");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE devices(platform TEXT, token TEXT PRIMARY KEY, updated_at INTEGER)",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO devices VALUES ('ios', ?1, 999999)",
            [&old.to_uppercase()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO devices VALUES ('ios', ?1, 2000000)",
            [&renewed],
        )
        .unwrap();
    }
    let address = format!("localhost:{}", service.addr().port());
    let out = dir.path().join("inactive.jsonl").display().to_string();
    let output = push(
        &[
            "feedback",
            "--apns-feedback",
            &address,
            "--apns-cert",
            &paths.client_cert.display().to_string(),
            "--apns-key",
            &paths.client_key.display().to_string(),
            "--apns-ca",
            &paths.ca.display().to_string(),
            "--out",
            &out,
            "--db",
            &db.display().to_string(),
            "--apply-feedback",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines = jsonl(&out);
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| l["error"] == "invalid_device" && l["timestamp"] == 1_000_000)
    );
    assert_eq!(tokens(&db), HashSet::from([renewed]));
}

/// A fresh P-256 provider key as a `.p8` PEM.
fn provider_key() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem()
}

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";

/// The HTTP/2 mock with token auth for `server_key`, `client_key` written as a .p8, and the
/// `send` arguments for it.
struct Http2 {
    dir: tempfile::TempDir,
    server: MockApnsHttp2,
    args: Vec<String>,
}

impl Http2 {
    fn start(server_key: &str, client_key: &str, scripts: &[(&str, ReasonScript)]) -> Http2 {
        Http2::start_with(server_key, client_key, |mut options| {
            for (token, script) in scripts {
                options = options.script(*token, script.clone());
            }
            options
        })
    }

    /// Like [`Http2::start`], the server's options changed by `configure`.
    fn start_with(
        server_key: &str,
        client_key: &str,
        configure: impl FnOnce(Http2Options) -> Http2Options,
    ) -> Http2 {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let p8 = dir.path().join("AuthKey.p8");
        std::fs::write(&p8, client_key).unwrap();
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, server_key).unwrap();
        let options = configure(Http2Options::new(auth).topic(TOPIC));
        let server = MockApnsHttp2::start(options, &certs).unwrap();
        let devices = dir.path().join("devices.txt");
        let feedback = dir.path().join("feedback.jsonl");
        let args = [
            "send",
            "--title",
            "Hello",
            "--body",
            "World",
            "--devices",
            &devices.display().to_string(),
            "--apns-url",
            &server.url(),
            "--apns-topic",
            TOPIC,
            "--apns-key-p8",
            &p8.display().to_string(),
            "--apns-key-id",
            KEY_ID,
            "--apns-team-id",
            TEAM_ID,
            "--apns-ca",
            &paths.ca.display().to_string(),
            "--feedback",
            &feedback.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Http2 { dir, server, args }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn send_over_http2_with_a_provider_token_writes_the_expected_jsonl() {
    let key = provider_key();
    let (good, bad, gone) = (ios_token(0x11), ios_token(0xbb), ios_token(0xcc));
    let h2 = Http2::start(
        &key,
        &key,
        &[
            (&bad, ReasonScript::BadDeviceToken),
            (
                &gone,
                ReasonScript::Unregistered {
                    timestamp_ms: 1_700_000_000_000,
                },
            ),
        ],
    );
    std::fs::write(
        h2.path("devices.txt"),
        format!("ios {good}\nios {bad}\nios {gone}\nios nothex\n"),
    )
    .unwrap();
    let mut args = h2.args.clone();
    args.extend(["--apns-push-type".to_string(), "voip".to_string()]);
    let output = run(&args, &[]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    let delivered = h2.server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].push_type.map(|t| t.as_str()), Some("voip"));
    let lines = jsonl(&h2.path("feedback.jsonl"));
    let got = by_token(&lines);
    assert_eq!(lines.len(), 4, "{lines:?}");
    // Over HTTP/2 APNs answers every notification: deliveries get a line with the apns-id.
    assert_eq!(got[&good]["error"], serde_json::Value::Null, "{lines:?}");
    assert_eq!(
        got[&good]["id"].as_str().map(str::len),
        Some(36),
        "{lines:?}"
    );
    for token in [&bad, &gone] {
        assert_eq!(got[token]["error"], "invalid_device", "{lines:?}");
        assert_eq!(got[token]["platform"], "ios");
        assert!(got[token]["id"].is_string(), "{lines:?}");
    }
    assert_eq!(got[&bad]["reason"], "BadDeviceToken");
    assert_eq!(got[&gone]["reason"], "Unregistered");
    assert_eq!(got[&gone]["unregistered_at"], 1_700_000_000_000u64);
    assert!(got["nothex"].get("id").is_none(), "{lines:?}");
    assert_eq!(got["nothex"]["error"], "invalid_token_format");
    assert_eq!(h2.server.delivered_count(&good), 1);
    assert_eq!(h2.server.total_delivered(), 1);
    assert!(h2.server.provider_tokens_seen() >= 1);
}

#[test]
fn send_with_connections_opens_that_many_http2_connections() {
    let key = provider_key();
    // Answers wait, so the session lasts long enough for every connection of the pool to be
    // dialed (the pool dials them all at the first request).
    let h2 = Http2::start_with(&key, &key, |options| {
        options.latency(Duration::from_millis(300))
    });
    let devices: String = (0..20u8)
        .map(|i| format!("ios {}\n", ios_token(i)))
        .collect();
    std::fs::write(h2.path("devices.txt"), devices).unwrap();
    let mut args = h2.args.clone();
    args.extend(["--connections".to_string(), "3".to_string()]);
    let output = run(&args, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(h2.server.total_delivered(), 20);
    assert_eq!(h2.server.connections(), 3);
    // At least one connection is a usage error.
    let mut args = h2.args.clone();
    args.extend(["--connections".to_string(), "0".to_string()]);
    assert_eq!(run(&args, &[]).status.code(), Some(2));
}

#[test]
fn a_wrong_provider_key_fails_with_a_clear_message() {
    let client_key = provider_key();
    let h2 = Http2::start(&provider_key(), &client_key, &[]);
    std::fs::write(h2.path("devices.txt"), format!("ios {}\n", ios_token(0x11))).unwrap();
    let output = run(&h2.args, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("push: error:"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(error.contains("InvalidProviderToken"), "{error}");
    assert!(error.contains("403"), "{error}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    let body = client_key.lines().nth(1).unwrap();
    assert!(!stderr.contains(body), "the key leaked: {stderr}");
    assert_eq!(h2.server.total_delivered(), 0);
}

#[test]
fn http2_flags_are_checked() {
    // Token auth without its ids, and both APNs services at once, are usage errors.
    let url = ["--apns-url", "https://localhost:1"];
    let output = send_stdin(&[&url[..], &["--apns-key-p8", "k.p8"]].concat());
    assert_eq!(output.status.code(), Some(2));
    let binary = [
        "--apns",
        "localhost:2",
        "--apns-cert",
        "c",
        "--apns-key",
        "k",
    ];
    let output = send_stdin(&[&url[..], &binary].concat());
    assert_eq!(output.status.code(), Some(2));
    let output = send_stdin(&url);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--apns-key-p8"));
}

const FCM_PROJECT: &str = "cli-test";

/// A mock FCM server and a work directory holding its CA and the demo service account.
struct Fcm {
    dir: tempfile::TempDir,
    paths: CertificatePaths,
    server: MockFcm,
}

impl Fcm {
    fn start(scripts: &[(&str, FcmScript)]) -> Fcm {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let mut options = FcmOptions::demo(FCM_PROJECT).unwrap();
        for (token, script) in scripts {
            options = options.script(*token, script.clone());
        }
        let server = MockFcm::start(options, &certs).unwrap();
        let fcm = Fcm { dir, paths, server };
        let account = demo_service_account(FCM_PROJECT, &fcm.server.token_url());
        std::fs::write(fcm.path("account.json"), account).unwrap();
        fcm
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `send` arguments for the mock, after the source arguments.
    fn send_args(&self, source: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["send", "--title", "Hello", "--body", "World"]
            .iter()
            .chain(source)
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "--fcm-service-account".into(),
            self.path("account.json"),
            "--fcm-url".into(),
            self.server.url(),
            "--fcm-ca".into(),
            self.paths.ca.display().to_string(),
            "--feedback".into(),
            self.path("feedback.jsonl"),
        ]);
        args
    }
}

#[test]
fn send_through_fcm_applies_the_feedback_and_wins_over_gcm() {
    let fcm = Fcm::start(&[
        ("fcm-gone", FcmScript::Unregistered),
        ("fcm-other", FcmScript::SenderIdMismatch),
    ]);
    let gcm = MockGcm::start(GcmOptions::new(KEY)).unwrap();
    let db = fcm.dir.path().join("devices.sqlite");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE devices(platform TEXT, token TEXT PRIMARY KEY)")
            .unwrap();
        for token in ["fcm-ok-1", "fcm-ok-2", "fcm-gone", "fcm-other"] {
            conn.execute("INSERT INTO devices VALUES ('android', ?1)", [token])
                .unwrap();
        }
    }
    let db_arg = db.display().to_string();
    let mut args = fcm.send_args(&["--db", &db_arg, "--apply-feedback"]);
    args.extend(["--gcm-url".into(), gcm.endpoint()]);
    let output = run(&args, &[("PUSH_GCM_KEY", KEY)]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("delivered        2"), "{stderr}");
    assert!(stderr.contains("invalid_device   2"), "{stderr}");
    assert!(stderr.contains("2 invalid tokens deleted"), "{stderr}");
    let expected: HashSet<String> = ["fcm-ok-1", "fcm-ok-2"].map(String::from).into();
    assert_eq!(tokens(&db), expected);
    let got = by_token(&jsonl(&fcm.path("feedback.jsonl")));
    assert_eq!(got.len(), 4, "{got:?}");
    for token in ["fcm-ok-1", "fcm-ok-2"] {
        assert_eq!(got[token]["error"], Value::Null, "{token}");
        assert_eq!(got[token]["platform"], "android", "{token}");
        assert_eq!(fcm.server.delivered_count(token), 1, "{token}");
    }
    for token in ["fcm-gone", "fcm-other"] {
        assert_eq!(got[token]["error"], "invalid_device", "{token}");
        assert_eq!(got[token]["new_token"], Value::Null, "{token}");
    }
    assert_eq!(gcm.requests(), 0, "FCM wins over GCM for Android devices");
}

#[test]
fn fcm_dry_run_validates_and_delivers_nothing() {
    let fcm = Fcm::start(&[("fcm-gone", FcmScript::Unregistered)]);
    let devices = fcm.path("devices.txt");
    std::fs::write(&devices, "android fcm-1\nandroid fcm-2\nandroid fcm-gone\n").unwrap();
    let mut args = fcm.send_args(&["--devices", &devices]);
    args.push("--dry-run".into());
    let output = run(&args, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(fcm.server.total_delivered(), 0);
    assert_eq!(fcm.server.validated(), 2);
    let got = by_token(&jsonl(&fcm.path("feedback.jsonl")));
    assert_eq!(got["fcm-1"]["error"], Value::Null);
    assert_eq!(got["fcm-2"]["error"], Value::Null);
    assert_eq!(got["fcm-gone"]["error"], "invalid_device");
}

#[test]
fn a_service_account_without_client_email_is_a_usage_error_naming_it() {
    let fcm = Fcm::start(&[]);
    let mut account: Value =
        serde_json::from_str(&std::fs::read_to_string(fcm.path("account.json")).unwrap()).unwrap();
    account.as_object_mut().unwrap().remove("client_email");
    std::fs::write(fcm.path("account.json"), account.to_string()).unwrap();
    let devices = fcm.path("devices.txt");
    std::fs::write(&devices, "android fcm-1\n").unwrap();
    let output = run(&fcm.send_args(&["--devices", &devices]), &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let error = stderr.lines().last().unwrap();
    assert!(
        error.starts_with("push: error: --fcm-service-account"),
        "{stderr}"
    );
    assert!(error.contains("client_email"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    assert_eq!(fcm.server.token_requests(), 0);
}

#[test]
fn a_wrong_service_account_key_fails_the_run() {
    let fcm = Fcm::start(&[]);
    let account = wrong_key_service_account(FCM_PROJECT, &fcm.server.token_url());
    std::fs::write(fcm.path("account.json"), account).unwrap();
    let devices = fcm.path("devices.txt");
    std::fs::write(&devices, "android fcm-1\n").unwrap();
    let output = run(&fcm.send_args(&["--devices", &devices]), &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = stderr.lines().last().unwrap();
    assert!(error.contains("no FCM access token"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    assert_eq!(fcm.server.total_delivered(), 0);
}

#[test]
fn fcm_project_and_token_url_override_the_service_account() {
    let fcm = Fcm::start(&[]);
    // The file points at a dead token endpoint and another project: the flags win.
    let mut account: Value = serde_json::from_str(&demo_service_account(
        FCM_PROJECT,
        "https://localhost:1/token",
    ))
    .unwrap();
    account["project_id"] = "elsewhere".into();
    std::fs::write(fcm.path("account.json"), account.to_string()).unwrap();
    let devices = fcm.path("devices.txt");
    std::fs::write(&devices, "android fcm-1\n").unwrap();
    let mut args = fcm.send_args(&["--devices", &devices]);
    let token_url = fcm.server.token_url();
    args.extend(["--fcm-token-url", &token_url, "--fcm-project"].map(String::from));
    let mut right = args.clone();
    right.push(FCM_PROJECT.into());
    let output = run(&right, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(fcm.server.delivered_count("fcm-1"), 1);
    args.push("another-project".into());
    let output = run(&args, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().last().unwrap().contains("FCM refused"),
        "{stderr}"
    );
    assert_eq!(fcm.server.delivered_count("fcm-1"), 1);
}

#[test]
fn fcm_flags_need_a_service_account() {
    for flag in [
        &["--dry-run"][..],
        &["--fcm-url", "https://localhost:1"],
        &["--fcm-project", "p"],
    ] {
        let output = send_stdin(flag);
        assert_eq!(output.status.code(), Some(2), "{flag:?}");
        assert!(
            text(&output.stderr).contains("--fcm-service-account"),
            "{flag:?}"
        );
    }
}

#[test]
fn the_fcm_line_printed_by_push_mock_sends() {
    let dir = tempfile::tempdir().unwrap();
    let mut mock = Command::new(env!("CARGO_BIN_EXE_push"))
        .args([
            "mock",
            "--for",
            "60",
            "--fcm-unregistered",
            "fcm-gone",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(mock.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|line| line.starts_with("try FCM: push send"))
        .expect("push mock prints how to send through FCM");
    let devices = dir.path().join("devices.txt");
    std::fs::write(&devices, "android fcm-1\nandroid fcm-gone\n").unwrap();
    let devices = devices.display().to_string();
    let feedback = dir.path().join("feedback.jsonl").display().to_string();
    let mut args: Vec<&str> = line
        .trim_start_matches("try FCM: push ")
        .split_whitespace()
        .map(|arg| if arg == "FILE" { &devices } else { arg })
        .collect();
    args.extend(["--feedback", &feedback]);
    let output = push(&args, &[]);
    mock.kill().unwrap();
    mock.wait().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        dir.path().join("fcm-service-account.json").exists(),
        "written beside the certificates"
    );
    let got = by_token(&jsonl(&feedback));
    assert_eq!(got["fcm-1"]["error"], Value::Null);
    assert_eq!(got["fcm-gone"]["error"], "invalid_device");
}

#[test]
fn bench_measures_fcm() {
    let output = push(&["bench", "--only", "fcm", "--devices", "2000"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|line| line.starts_with("push FCM v1 (") && line.contains("1000 streams)"))
        .unwrap_or_else(|| panic!("no FCM line in {stdout}"));
    assert!(line.contains(" 2000 in "), "{line}");
    assert!(line.contains("notifications/s"), "{line}");
    assert!(!stdout.contains("push APNs"), "only the FCM part: {stdout}");
}

#[test]
fn bench_measures_the_raw_http2_baselines_with_client_cpu() {
    let output = push(
        &[
            "bench",
            "--devices",
            "200",
            "--only",
            "raw-apns-http2",
            "--only",
            "raw-fcm",
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for label in [
        "raw h2 APNs HTTP/2 (token, 1 conn, 1000 streams)",
        "raw h2 FCM v1 (1 conn, 1000 streams)",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line in {stdout}"));
        assert!(line.contains(" 200 in "), "{line}");
        assert!(line.contains("notifications/s"), "{line}");
        assert!(line.contains("client CPU "), "{line}");
        assert!(line.contains(" us/notification (process "), "{line}");
    }
    for push_part in ["push APNs", "push FCM", "ratio"] {
        assert!(!stdout.contains(push_part), "only the raw parts: {stdout}");
    }
}

#[test]
fn bench_rejects_an_unknown_part() {
    let output = push(&["bench", "--devices", "10", "--only", "apns-h2"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--only apns-h2"));
}

/// `--rate` paces the requests and `--deadline` ends the run: every device has one line,
/// the ones not delivered by then `unavailable` with the reason.
#[test]
fn send_with_rate_and_deadline_ends_every_device_once() {
    let fcm = Fcm::start(&[]);
    let devices = fcm.path("devices.txt");
    let list: String = (0..100).map(|n| format!("android fcm-{n}\n")).collect();
    std::fs::write(&devices, list).unwrap();
    let mut args = fcm.send_args(&["--devices", &devices]);
    args.extend(["--rate", "20", "--deadline", "1s"].map(String::from));
    let started = std::time::Instant::now();
    let output = run(&args, &[]);
    let elapsed = started.elapsed();
    let stderr = text(&output.stderr);
    let lines = jsonl(&fcm.path("feedback.jsonl"));
    assert_eq!(lines.len(), 100, "{stderr}");
    let got = by_token(&lines);
    assert_eq!(got.len(), 100, "one line per device");
    let delivered = got.values().filter(|l| l["error"].is_null()).count();
    let unavailable: Vec<_> = got
        .values()
        .filter(|l| l["error"] == "unavailable")
        .collect();
    assert_eq!(delivered + unavailable.len(), 100, "{stderr}");
    // 20 per second for about a second (plus the burst, and the time to connect).
    assert!((5..=30).contains(&delivered), "{delivered} delivered");
    // A request in flight at the deadline may still have been delivered.
    let server = fcm.server.total_delivered();
    assert!(
        (delivered..=delivered + 5).contains(&server),
        "{server} vs {delivered}"
    );
    let line = unavailable[0].to_string();
    assert!(line.contains("deadline passed"), "{line}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
