//! `push send --metrics`: the real binary against the FCM mock, scraped over HTTP while it
//! holds its final counts.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use push_mock::fcm::demo_service_account;
use push_mock::{Certificates, FcmOptions, FcmScript, MockFcm};

const PROJECT: &str = "metrics-test";

/// `push_notifications_total` by outcome and reason (over providers), from an exposition.
fn notifications(exposition: &str) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("push_notifications_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..].split('"').next().unwrap().to_owned()
        };
        *counts
            .entry((label("outcome"), label("reason")))
            .or_default() += value.parse::<u64>().unwrap();
    }
    counts
}

#[test]
fn scraped_counts_match_the_final_summary() {
    let certs = Certificates::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = certs.write_to(dir.path()).unwrap();
    let mut options = FcmOptions::demo(PROJECT)
        .unwrap()
        .script("gone-1", FcmScript::Unregistered)
        .script("gone-2", FcmScript::Unregistered)
        .script("other-sender", FcmScript::SenderIdMismatch)
        .script("flaky", FcmScript::Unavailable { first: 1 })
        .script(
            "novel",
            FcmScript::ErrorCode {
                status: 400,
                error_code: "BRAND_NEW_CODE".into(),
                first: None,
            },
        );
    // The retry follows at once.
    options.retry_after_secs = 0;
    let server = MockFcm::start(options, &certs).unwrap();
    let account = dir.path().join("account.json");
    std::fs::write(&account, demo_service_account(PROJECT, &server.token_url())).unwrap();
    let devices = dir.path().join("devices.txt");
    let mut list: String = (0..19).map(|i| format!("android ok-{i}\n")).collect();
    list.push_str(
        "android flaky\nandroid gone-1\nandroid gone-2\nandroid other-sender\nandroid novel\n",
    );
    list.push_str("ios nothex\n");
    std::fs::write(&devices, list).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_push"))
        .args(["send", "--title", "Hello", "--body", "World", "--devices"])
        .arg(&devices)
        .args(["--fcm-service-account"])
        .arg(&account)
        .args(["--fcm-url", &server.url(), "--fcm-ca"])
        .arg(&paths.ca)
        .args(["--metrics", "127.0.0.1:0", "--metrics-hold", "120"])
        .env_remove("PUSH_GCM_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = common::Killed(child);
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut addr = None;
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("push: metrics on http://") {
            addr = rest.strip_suffix("/metrics").map(str::to_owned);
            // Up while the run goes (the counts are whatever they are by now).
            common::scrape(addr.as_deref().unwrap());
        }
        let holding = line.starts_with("push: serving the final metrics");
        seen.push(line);
        if holding {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no metrics address in {seen:#?}"));
    let last = seen.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("push: serving the final metrics"),
        "{seen:#?}"
    );
    let exposition = common::scrape(&addr);
    drop(child);
    // The summary: "  delivered        20", "  invalid_device   3", ...
    let summary: BTreeMap<String, u64> = seen
        .iter()
        .filter_map(|line| {
            let (name, count) = line.strip_prefix("  ")?.rsplit_once(' ')?;
            Some((name.trim().to_owned(), count.parse().ok()?))
        })
        .collect();
    assert_eq!(summary["delivered"], 20, "{seen:#?}");
    let counts = notifications(&exposition);
    let mut by_outcome: BTreeMap<String, u64> = BTreeMap::new();
    for ((outcome, _), count) in &counts {
        *by_outcome.entry(outcome.clone()).or_default() += count;
    }
    for (name, count) in &summary {
        if name != "new token" {
            assert_eq!(by_outcome.get(name), Some(count), "{name}: {exposition}");
        }
    }
    assert_eq!(
        by_outcome.values().sum::<u64>(),
        summary
            .iter()
            .filter(|(n, _)| *n != "new token")
            .map(|(_, c)| c)
            .sum::<u64>()
    );
    let key = |outcome: &str, reason: &str| (outcome.to_owned(), reason.to_owned());
    assert_eq!(counts[&key("delivered", "none")], 20, "{exposition}");
    assert_eq!(
        counts[&key("invalid_device", "UNREGISTERED")],
        2,
        "{exposition}"
    );
    assert_eq!(
        counts[&key("invalid_device", "SENDER_ID_MISMATCH")],
        1,
        "{exposition}"
    );
    assert_eq!(
        counts[&key("invalid_token_format", "none")],
        1,
        "{exposition}"
    );
    // An undocumented code is counted under `other`, never as a label of its own.
    assert!(!exposition.contains("BRAND_NEW_CODE"), "{exposition}");
    assert_eq!(
        counts
            .iter()
            .filter(|((_, r), _)| r == "other")
            .map(|(_, c)| c)
            .sum::<u64>(),
        1,
        "{exposition}"
    );
    assert_eq!(
        common::sample(
            &exposition,
            "push_notification_duration_seconds_count{provider=\"fcm\"}"
        ),
        24
    );
    // "flaky" was answered UNAVAILABLE once, then delivered.
    assert_eq!(
        common::sample(&exposition, "push_retries_total{provider=\"fcm\"}"),
        1
    );
    assert_eq!(
        common::sample(&exposition, "push_requests_total{provider=\"fcm\"}"),
        25
    );
    assert!(
        common::sample(
            &exposition,
            "push_connections_dialed_total{provider=\"fcm\"}"
        ) >= 1
    );
    assert_eq!(
        common::sample(&exposition, "push_token_refreshes_total{provider=\"fcm\"}"),
        1
    );
    assert_eq!(
        common::sample(&exposition, "push_in_flight{provider=\"fcm\"}"),
        0
    );
    // Only the configured providers have series.
    assert!(!exposition.contains("provider=\"gcm\""), "{exposition}");
    assert!(
        !exposition.contains("provider=\"apns-http2\""),
        "{exposition}"
    );
}
