//! `push channel`, `push broadcast`, `push send --live-activity` and `push widgets` against
//! push-mock's APNs HTTP/2 server (which serves the channel API on the same port as the
//! device API).

use std::process::{Command, Output};

use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2};
use push_proto::apns::http2::PushType;
use serde_json::Value;

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";

fn push(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_push"))
        .args(args)
        .output()
        .expect("the push binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The mock with token auth, and the credential flags for it.
struct Apple {
    dir: tempfile::TempDir,
    server: MockApnsHttp2,
    auth: Vec<String>,
}

impl Apple {
    fn start() -> Apple {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = certs.write_to(dir.path()).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        let p8 = dir.path().join("AuthKey.p8");
        std::fs::write(&p8, &key).unwrap();
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).unwrap();
        let server = MockApnsHttp2::start(Http2Options::new(auth).topic(TOPIC), &certs).unwrap();
        let auth = [
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
        ]
        .map(String::from)
        .to_vec();
        Apple { dir, server, auth }
    }

    /// `push` with `args`, then the credentials; `channels` adds --channels-url.
    fn run(&self, args: &[&str], channels: bool) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.auth.iter().cloned());
        if channels {
            all.extend(["--channels-url".to_string(), self.server.url()]);
        }
        push(&all)
    }

    fn ok(&self, args: &[&str], channels: bool) -> String {
        let output = self.run(args, channels);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }
}

#[test]
fn channel_and_broadcast_commands_drive_the_lifecycle() {
    let apple = Apple::start();
    let id = apple
        .ok(&["channel", "create", "--storage", "most-recent"], true)
        .trim()
        .to_owned();
    assert_eq!(apple.server.channels(), std::slice::from_ref(&id));
    assert_eq!(apple.ok(&["channel", "list"], true).trim(), id);
    assert_eq!(
        apple.ok(&["channel", "get", &id], true).trim(),
        format!("{id} storage=most-recent")
    );
    let sent = apple.ok(
        &[
            "broadcast",
            "--channel",
            &id,
            "--content-state",
            r#"{"score":"1-0"}"#,
            "--title",
            "Goal",
            "--body",
            "1-0",
            "--timestamp",
            "1700000000",
            "--stale-date",
            "1700000900",
            "--priority",
            "5",
        ],
        false,
    );
    assert!(sent.contains("apns-request-id"), "{sent}");
    apple.ok(
        &[
            "broadcast",
            "--channel",
            &id,
            "--event",
            "end",
            "--dismissal-date",
            "1700003600",
        ],
        false,
    );
    assert_eq!(apple.server.broadcast_count(&id), 2);
    let broadcasts = apple.server.broadcasts();
    assert_eq!(broadcasts[0].priority, Some(5));
    let first: Value = serde_json::from_slice(&broadcasts[0].payload).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"aps": {
            "event": "update", "timestamp": 1_700_000_000, "stale-date": 1_700_000_900,
            "content-state": {"score": "1-0"}, "alert": {"title": "Goal", "body": "1-0"}
        }})
    );
    let end: Value = serde_json::from_slice(&broadcasts[1].payload).unwrap();
    assert_eq!(end["aps"]["event"], "end");
    assert_eq!(end["aps"]["dismissal-date"], 1_700_003_600);

    assert!(
        apple
            .ok(&["channel", "delete", &id], true)
            .contains("deleted")
    );
    assert_eq!(apple.ok(&["channel", "list"], true).trim(), "");
    let gone = apple.run(&["broadcast", "--channel", &id], false);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("400 Bad Request ChannelNotRegistered"),
        "{}",
        text(&gone.stderr)
    );
    assert_eq!(apple.server.broadcast_count(&id), 2);
}

#[test]
fn broadcast_flags_are_checked_before_sending() {
    let apple = Apple::start();
    for (args, expected) in [
        (vec!["broadcast", "--channel", "a b"], "invalid channel id"),
        (
            vec!["broadcast", "--channel", "abc=", "--content-state", "[1]"],
            "--content-state must be a JSON object",
        ),
        (
            vec!["broadcast", "--channel", "abc=", "--dismissal-date", "5"],
            "--dismissal-date goes with --event end only",
        ),
    ] {
        let output = apple.run(&args, false);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            text(&output.stderr).contains(expected),
            "{}",
            text(&output.stderr)
        );
    }
    assert!(apple.server.broadcasts().is_empty());
}

#[test]
fn send_live_activity_start_update_end_to_a_device() {
    let apple = Apple::start();
    let token = "7a".repeat(32);
    let devices = apple.dir.path().join("devices.txt");
    std::fs::write(&devices, format!("ios {token}\nandroid abc\n")).unwrap();
    let devices = devices.display().to_string();
    let base = [
        "send",
        "--devices",
        &devices,
        "--title",
        "Match",
        "--body",
        "On",
    ];
    fn join<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let with = |extra: &[&'static str]| join(&base, extra);
    let started = apple.ok(
        &with(&[
            "--live-activity",
            "start",
            "--attributes-type",
            "MatchAttributes",
            "--attributes",
            r#"{"home":"A"}"#,
            "--input-push-token",
            "--content-state",
            r#"{"score":"0-0"}"#,
        ]),
        false,
    );
    assert!(started.contains(&format!("{token} delivered")), "{started}");
    apple.ok(
        &with(&[
            "--live-activity",
            "update",
            "--no-alert",
            "--timestamp",
            "1700000100",
        ]),
        false,
    );
    apple.ok(
        &with(&["--live-activity", "end", "--dismissal-date", "1700000900"]),
        false,
    );
    let delivered = apple.server.delivered();
    assert_eq!(delivered.len(), 3);
    let payloads: Vec<Value> = delivered
        .iter()
        .map(|d| {
            assert_eq!(d.token, token);
            assert_eq!(
                d.topic.as_deref(),
                Some("com.example.app.push-type.liveactivity")
            );
            serde_json::from_slice(&d.payload).unwrap()
        })
        .collect();
    assert_eq!(payloads[0]["aps"]["event"], "start");
    assert_eq!(payloads[0]["aps"]["attributes-type"], "MatchAttributes");
    assert_eq!(payloads[0]["aps"]["input-push-token"], 1);
    assert_eq!(payloads[0]["aps"]["alert"]["title"], "Match");
    assert_eq!(payloads[1]["aps"]["event"], "update");
    assert!(payloads[1]["aps"].get("alert").is_none());
    assert_eq!(payloads[2]["aps"]["dismissal-date"], 1_700_000_900);

    for (extra, expected) in [
        (vec!["--live-activity", "start"], "needs --attributes-type"),
        (
            vec!["--live-activity", "update", "--attributes-type", "M"],
            "go with --live-activity start only",
        ),
        (vec!["--content-state", "{}"], "go with --live-activity"),
    ] {
        let output = apple.run(&with(&extra), false);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&output.stderr).contains(expected),
            "{}",
            text(&output.stderr)
        );
    }
    // A timestamp in milliseconds: the mock refuses the payload, the run fails.
    let refused = apple.run(
        &with(&["--live-activity", "update", "--timestamp", "1700000100000"]),
        false,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout).contains("BadPayload"),
        "{}",
        text(&refused.stdout)
    );
    assert_eq!(apple.server.delivered().len(), 3);
}

#[test]
fn widgets_command_pushes_each_ios_device() {
    let apple = Apple::start();
    let tokens = ["1b".repeat(32), "2c".repeat(32)];
    let devices = apple.dir.path().join("devices.txt");
    let list = format!(
        "# two phones\nios {}\nandroid abc\nios {}\n",
        tokens[0], tokens[1]
    );
    std::fs::write(&devices, list).unwrap();
    let devices = devices.display().to_string();
    let out = apple.ok(
        &[
            "widgets",
            "--devices",
            &devices,
            "--priority",
            "5",
            "--expiration",
            "1900000000",
        ],
        false,
    );
    for token in &tokens {
        assert!(out.contains(&format!("{token} delivered")), "{out}");
    }
    let delivered = apple.server.delivered();
    assert_eq!(delivered.len(), 2);
    for (delivery, token) in delivered.iter().zip(&tokens) {
        assert_eq!(&delivery.token, token);
        assert_eq!(delivery.push_type, Some(PushType::Widgets));
        assert_eq!(
            delivery.topic.as_deref(),
            Some("com.example.app.push-type.widgets")
        );
        assert_eq!(
            &delivery.payload[..],
            br#"{"aps":{"content-changed":true}}"#
        );
        assert_eq!(delivery.priority, Some(5));
        assert_eq!(delivery.expiration, Some(1_900_000_000));
    }
    // A malformed token is a usage error, and nothing is sent.
    std::fs::write(apple.dir.path().join("bad.txt"), "ios 12zz\n").unwrap();
    let bad = apple.dir.path().join("bad.txt").display().to_string();
    let output = apple.run(&["widgets", "--devices", &bad], false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_eq!(apple.server.delivered().len(), 2);
}

#[test]
fn apple_commands_have_help() {
    for (args, expected) in [
        (vec!["channel", "--help"], "create"),
        (vec!["channel", "create", "--help"], "most-recent"),
        (vec!["broadcast", "--help"], "--content-state"),
        (vec!["send", "--help"], "--live-activity"),
        (vec!["widgets", "--help"], "content-changed"),
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let output = push(&args);
        assert!(output.status.success(), "{args:?}");
        let help = text(&output.stdout);
        assert!(help.contains("Usage: push"), "{help}");
        assert!(help.contains(expected), "{args:?}: {help}");
    }
}
