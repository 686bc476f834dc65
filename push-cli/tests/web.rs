//! The real `push` binary sending Web Push to push-mock's push service: `push vapid
//! generate`, `push send --vapid-key`, and the web line `push mock` prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use push_mock::{Certificates, MockWebPush, WebPushOptions};
use serde_json::Value;

fn push(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_push"))
        .args(args)
        .output()
        .expect("the push binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `push vapid generate --out <dir>/<name>`: the public key it prints.
fn generate(dir: &std::path::Path, name: &str) -> (String, String) {
    let out = dir.join(name).display().to_string();
    let output = push(&["vapid", "generate", "--out", &out]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let public = text(&output.stdout).trim().to_owned();
    assert_eq!(public.len(), 87, "{public}");
    (out, public)
}

fn send(devices: &str, key: &str, ca: &str, feedback: &str) -> Output {
    send_with(devices, key, ca, feedback, &[])
}

fn send_with(devices: &str, key: &str, ca: &str, feedback: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "send",
        "--title",
        "Hello",
        "--body",
        "from the CLI",
        "--devices",
        devices,
        "--vapid-key",
        key,
        "--vapid-subject",
        "mailto:ops@example.com",
        "--web-ca",
        ca,
        "--feedback",
        feedback,
    ];
    args.extend(extra);
    push(&args)
}

#[test]
fn send_to_browsers_over_two_origins_with_a_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certificates::generate().unwrap();
    let paths = certs.write_to(dir.path()).unwrap();
    let (key, public) = generate(dir.path(), "vapid.pem");
    let options = WebPushOptions::new()
        .origins(2)
        .application_server_key(&public);
    let mock = MockWebPush::start(options, &certs).unwrap();
    let subscriptions: Vec<_> = (0..4).map(|n| mock.subscribe(n % 2)).collect();
    assert!(mock.expire(&subscriptions[3].endpoint));
    let mut lines: Vec<String> = subscriptions
        .iter()
        .map(|s| format!("web {}", s.json))
        .collect();
    lines.push(r#"web {"endpoint": "http://insecure.example/1"}"#.into());
    let devices = dir.path().join("devices.txt");
    std::fs::write(&devices, lines.join("\n")).unwrap();
    let feedback = dir.path().join("feedback.jsonl").display().to_string();

    let output = send(
        &devices.display().to_string(),
        &key,
        &paths.ca.display().to_string(),
        &feedback,
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for s in &subscriptions[..3] {
        assert_eq!(mock.delivered_count(&s.endpoint), 1, "{}", s.endpoint);
    }
    assert_eq!(mock.total_delivered(), 3);
    let delivered = mock.delivered();
    assert!(text(&delivered[0].plaintext).contains("from the CLI"));
    let lines: Vec<Value> = std::fs::read_to_string(&feedback)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let error_of = |token: &str| {
        lines
            .iter()
            .find(|l| l["token"] == token)
            .map(|l| l["error"].clone())
    };
    assert_eq!(
        error_of(&subscriptions[3].json),
        Some(Value::from("invalid_device"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l["platform"] == "web" && l["error"] == "invalid_token_format"),
        "{lines:?}"
    );
    let pem = std::fs::read_to_string(&key).unwrap();
    let secret = pem.lines().nth(1).unwrap();
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

#[test]
fn a_key_the_subscriptions_were_not_made_for_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certificates::generate().unwrap();
    let paths = certs.write_to(dir.path()).unwrap();
    let (_, public) = generate(dir.path(), "right.pem");
    let (wrong, _) = generate(dir.path(), "wrong.pem");
    let options = WebPushOptions::new()
        .origins(1)
        .application_server_key(&public);
    let mock = MockWebPush::start(options, &certs).unwrap();
    let devices = dir.path().join("devices.txt");
    std::fs::write(&devices, format!("web {}\n", mock.subscribe(0).json)).unwrap();
    let feedback = dir.path().join("feedback.jsonl").display().to_string();

    let output = send(
        &devices.display().to_string(),
        &wrong,
        &paths.ca.display().to_string(),
        &feedback,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the VAPID credentials"), "{stderr}");
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert_eq!(mock.total_delivered(), 0);
}

#[test]
fn the_web_line_push_mock_prints_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut mock = Command::new(env!("CARGO_BIN_EXE_push"))
        .args(["mock", "--for", "60", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(mock.stdout.take().unwrap()).lines();
    let mut web_line = None;
    let mut try_line = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("web line") {
            web_line = Some(rest.trim().to_owned());
        }
        if line.starts_with("try Web Push:") {
            try_line = Some(line);
            break;
        }
    }
    // The mock prints more (FCM's lines): keep reading, so that it never writes to a closed
    // pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let (web_line, try_line) = (web_line.unwrap(), try_line.unwrap());
    let devices = dir.path().join("web-devices.txt");
    std::fs::write(&devices, format!("{web_line}\n")).unwrap();
    let word_after = |flag: &str| {
        let words: Vec<&str> = try_line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == flag).unwrap();
        words[at + 1].to_owned()
    };
    let feedback = dir.path().join("feedback.jsonl").display().to_string();
    let output = send(
        &devices.display().to_string(),
        &word_after("--vapid-key"),
        &word_after("--web-ca"),
        &feedback,
    );
    mock.kill().unwrap();
    mock.wait().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines = std::fs::read_to_string(&feedback).unwrap();
    assert!(!lines.contains("\"error\":\"invalid"), "{lines}");
}

#[test]
fn bench_measures_web_push_beside_its_raw_baseline() {
    let output = push(&[
        "bench",
        "--devices",
        "60",
        "--only",
        "raw-webpush",
        "--only",
        "webpush",
    ]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for prefix in ["raw h2 Web Push (1 origin", "push Web Push (3 origins"] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in {stdout}"));
        assert!(line.contains(" 60 in "), "{line}");
    }
    assert!(stdout.contains("ratio push/raw (Web Push)"), "{stdout}");
}

#[test]
fn web_navigate_sends_the_declarative_form() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certificates::generate().unwrap();
    let paths = certs.write_to(dir.path()).unwrap();
    let (key, _) = generate(dir.path(), "vapid.pem");
    let mock = MockWebPush::start(WebPushOptions::new().origins(1), &certs).unwrap();
    let devices = dir.path().join("devices.txt");
    std::fs::write(&devices, format!("web {}\n", mock.subscribe(0).json)).unwrap();
    let feedback = dir.path().join("feedback.jsonl").display().to_string();
    let output = send_with(
        &devices.display().to_string(),
        &key,
        &paths.ca.display().to_string(),
        &feedback,
        &[
            "--web-navigate",
            "https://example.com/orders/1",
            "--web-ttl",
            "120",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let delivered = mock.delivered();
    let body: Value = serde_json::from_slice(&delivered[0].plaintext).unwrap();
    assert_eq!(body["web_push"], 8030, "{body}");
    assert_eq!(
        body["notification"]["navigate"],
        "https://example.com/orders/1"
    );
    assert_eq!(body["notification"]["title"], "Hello");
    assert_eq!(delivered[0].ttl, 120);
}
