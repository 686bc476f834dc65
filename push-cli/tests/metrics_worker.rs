//! `push worker --metrics` against a real `redis-server` (`PUSH_TEST_REDIS_URL`) and the mock
//! providers: a scrape after the run counts the campaigns' results by outcome and app, and
//! the worker's jobs.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Providers, ios_token, push, push_command, text};
use push_mock::{FcmScript, ReasonScript};

/// The value of label `name` in a sample's label text.
fn label(labels: &str, name: &str) -> String {
    let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    labels[start..].split('"').next().unwrap().to_owned()
}

/// `push_notifications_total` by app and outcome (over providers and reasons).
fn notifications(exposition: &str) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("push_notifications_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        *counts
            .entry((label(labels, "app"), label(labels, "outcome")))
            .or_default() += value.parse::<u64>().unwrap();
    }
    counts
}

/// `push enqueue` of `devices` with `extra` arguments, 10 devices a job: the campaign id.
fn enqueue(url: &str, devices: &str, extra: &[&str]) -> u64 {
    common::enqueue_campaign(url, devices, 10, extra)
}

/// `push campaign status ID`: the count of each outcome.
fn status(url: &str, id: u64) -> BTreeMap<String, u64> {
    let output = push(&[
        "campaign".into(),
        "--redis".into(),
        url.into(),
        "status".into(),
        id.to_string(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, count) = line.strip_prefix("  ")?.split_once(": ")?;
            Some((name.to_owned(), count.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_scrape_after_the_run_counts_the_results_by_app_and_the_jobs() {
    let Some(url) = common::redis_database(14) else {
        return;
    };
    let ios: Vec<String> = (0..20).map(ios_token).collect();
    let android: Vec<String> = (0..20).map(|i| format!("fcm-token-{i}")).collect();
    let mocks = Providers::start_with(
        &[(ios[3].clone(), ReasonScript::BadDeviceToken)],
        &[
            (android[5].clone(), FcmScript::Unregistered),
            (android[7].clone(), FcmScript::Unregistered),
        ],
        &[],
        |options| options,
    );
    let mut list = String::new();
    for (ios, android) in ios.iter().zip(&android) {
        list.push_str(&format!("ios {ios}\nandroid {android}\n"));
    }
    let devices = mocks.path("devices.txt");
    std::fs::write(&devices, &list).unwrap();
    let devices = devices.display().to_string();
    let sent = enqueue(&url, &devices, &[]);
    // An app this worker (no --config) cannot use: its devices are refused, not sent.
    let blog_devices = mocks.path("blog.txt");
    std::fs::write(
        &blog_devices,
        "android blog-1\nandroid blog-2\nandroid blog-3\n",
    )
    .unwrap();
    let blog = enqueue(
        &url,
        &blog_devices.display().to_string(),
        &["--app", "blog"],
    );

    let args = mocks.worker_args(
        &url,
        &[
            "--exit-when-idle",
            "--metrics",
            "127.0.0.1:0",
            "--metrics-hold",
            "120",
        ],
    );
    let child = push_command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = common::Killed(child);
    let stderr = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut addr = None;
    for line in stderr {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("push: metrics on http://") {
            addr = rest.strip_suffix("/metrics").map(str::to_owned);
        }
        let holding = line.starts_with("push: serving the final metrics");
        seen.push(line);
        if holding {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no metrics address in {seen:#?}"));
    assert!(
        seen.last()
            .is_some_and(|l| l.starts_with("push: serving the final metrics")),
        "{seen:#?}"
    );
    let exposition = common::scrape(&addr);
    drop(child);

    // The scrape matches what the campaigns recorded, per outcome and app.
    let counts = notifications(&exposition);
    let mut expected = BTreeMap::new();
    for (app, id) in [("default", sent), ("blog", blog)] {
        for (outcome, count) in status(&url, id) {
            expected.insert((app.to_owned(), outcome), count);
        }
    }
    assert_eq!(counts, expected, "{exposition}");
    let key = |app: &str, outcome: &str| (app.to_owned(), outcome.to_owned());
    assert_eq!(counts[&key("default", "delivered")], 37, "{exposition}");
    assert_eq!(counts[&key("default", "invalid_device")], 3, "{exposition}");
    assert_eq!(counts[&key("blog", "unknown_app")], 3, "{exposition}");
    assert!(
        exposition.contains(
            r#"push_notifications_total{app="default",provider="fcm",outcome="invalid_device",reason="UNREGISTERED"} 2"#
        ),
        "{exposition}"
    );
    // One set of client series, for the app that sent; all 40 devices requested once.
    assert_eq!(
        common::sample(
            &exposition,
            r#"push_requests_total{app="default",provider="fcm"}"#
        ) + common::sample(
            &exposition,
            r#"push_requests_total{app="default",provider="apns-http2"}"#
        ),
        40
    );
    assert!(!exposition.contains(r#"push_requests_total{app="blog""#));
    assert_eq!(
        common::sample(
            &exposition,
            r#"push_notification_duration_seconds_count{app="default",provider="fcm"}"#
        ),
        20
    );
    // Four jobs of ten devices sent, one refused; none in flight, none taken over.
    assert_eq!(
        common::sample(&exposition, r#"push_worker_jobs_total{outcome="sent"}"#),
        4
    );
    assert_eq!(
        common::sample(&exposition, r#"push_worker_jobs_total{outcome="refused"}"#),
        1
    );
    assert_eq!(
        common::sample(&exposition, "push_worker_jobs_in_flight "),
        0
    );
    assert_eq!(
        common::sample(&exposition, "push_worker_claimed_jobs_total "),
        0
    );
}
