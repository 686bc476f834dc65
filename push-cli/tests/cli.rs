//! The real `push` binary against push-mock's servers over loopback TLS and HTTP.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use push_mock::{
    CertificatePaths, Certificates, GatewayOptions, GcmOptions, Http2Auth, Http2Options,
    MockApnsHttp2, MockFeedback, MockGateway, MockGcm, ReasonScript, TokenScript,
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
    for command in ["send", "feedback", "mock", "demo", "bench"] {
        let output = push(&[command, "--help"], &[]);
        assert!(output.status.success(), "{command}");
        assert!(text(&output.stdout).contains("Usage: push"), "{command}");
    }
}

#[test]
fn demo_finishes_and_the_store_ends_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().display().to_string();
    let output = push(&["demo", "--devices", "3000", "--keep", &keep], &[]);
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
    let rows = tokens(&dir.path().join("devices.sqlite")).len();
    assert!(
        stdout.contains(&format!("expected {rows} devices")),
        "{stdout}"
    );
    assert!(rows < 3000 && rows > 2900, "{rows}");
    assert!(stdout.contains("mock APNs HTTP/2"), "{stdout}");
    let lines = jsonl(&dir.path().join("feedback.jsonl").display().to_string());
    assert!(lines.iter().any(|l| l["error"] == "invalid_device"));
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
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let p8 = dir.path().join("AuthKey.p8");
        std::fs::write(&p8, client_key).unwrap();
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, server_key).unwrap();
        let mut options = Http2Options::new(auth).topic(TOPIC);
        for (token, script) in scripts {
            options = options.script(*token, script.clone());
        }
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
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(!got.contains_key(&good), "APNs successes are not reported");
    for token in [&bad, &gone] {
        assert_eq!(got[token]["error"], "invalid_device", "{lines:?}");
        assert_eq!(got[token]["platform"], "ios");
    }
    assert_eq!(got["nothex"]["error"], "invalid_token_format");
    assert_eq!(h2.server.delivered_count(&good), 1);
    assert_eq!(h2.server.total_delivered(), 1);
    assert!(h2.server.provider_tokens_seen() >= 1);
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
    let output = push(
        &[
            "send",
            "--title",
            "t",
            "--body",
            "b",
            "--devices",
            "-",
            "--apns-url",
            "https://localhost:1",
            "--apns-key-p8",
            "k.p8",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let output = push(
        &[
            "send",
            "--title",
            "t",
            "--body",
            "b",
            "--devices",
            "-",
            "--apns-url",
            "https://localhost:1",
            "--apns",
            "localhost:2",
            "--apns-cert",
            "c",
            "--apns-key",
            "k",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let output = push(
        &[
            "send",
            "--title",
            "t",
            "--body",
            "b",
            "--devices",
            "-",
            "--apns-url",
            "https://localhost:1",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--apns-key-p8"));
}
