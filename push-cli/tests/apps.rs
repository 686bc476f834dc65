//! Several apps in one `push.toml`: each app's devices go out with its own credentials, to
//! mocks that refuse the other app's (APNs: another signing key, key id, team and topic;
//! FCM: another project). `push send --app` needs no Redis; the worker test needs
//! `PUSH_TEST_REDIS_URL` (see queue_redis.rs).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ios_token, push, push_command, text};
use push_mock::fcm::demo_service_account;
use push_mock::{Certificates, FcmOptions, Http2Auth, Http2Options, MockApnsHttp2, MockFcm};

/// One app's mock providers, verifying its credentials only.
struct AppMocks {
    apns: MockApnsHttp2,
    fcm: MockFcm,
}

/// Two apps' mocks and the push.toml that names them, in a temporary directory.
struct TwoApps {
    dir: tempfile::TempDir,
    shop: AppMocks,
    news: AppMocks,
}

impl TwoApps {
    fn start() -> TwoApps {
        let certs = Certificates::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        certs.write_to(dir.path()).unwrap();
        let shop = app_mocks(dir.path(), &certs, "shop");
        let news = app_mocks(dir.path(), &certs, "news");
        let apps = TwoApps { dir, shop, news };
        apps.write_config(
            &format!(
                "# two apps\n{}{}",
                apps.table("shop", "shop"),
                apps.table("news", "news")
            ),
            1,
        );
        apps
    }

    /// The table of app `name` with the credentials and mocks of app `of`; relative paths,
    /// taken from the file's directory.
    fn table(&self, name: &str, of: &str) -> String {
        let mocks = if of == "shop" { &self.shop } else { &self.news };
        format!(
            "[apps.{name}]\n\
             apns_url = \"{}\"\n\
             apns_topic = \"com.example.{of}\"\n\
             apns_key_p8 = \"{of}.p8\"\n\
             apns_key_id = \"{}\"\n\
             apns_team_id = \"{}\"\n\
             apns_ca = \"ca.pem\"\n\
             fcm_service_account = \"{of}.json\"\n\
             fcm_url = \"{}\"\n\
             fcm_ca = \"ca.pem\"\n\n",
            mocks.apns.url(),
            key_id(of),
            team_id(of),
            mocks.fcm.url(),
        )
    }

    /// Writes push.toml with a modification time of its own (`tick` seconds after a fixed
    /// time), so that a worker sees each write as a change whatever the clock's granularity.
    fn write_config(&self, text: &str, tick: u64) {
        let path = self.dir.path().join("push.toml");
        std::fs::write(&path, text).unwrap();
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + tick);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    fn config(&self) -> String {
        self.dir.path().join("push.toml").display().to_string()
    }

    /// A device list of `n` iOS and `n` Android devices of `app`: the file and the tokens.
    fn devices(&self, app: &str, offset: u64, n: u64) -> (String, Vec<String>) {
        let mut list = String::new();
        let mut tokens = Vec::new();
        for i in offset..offset + n {
            let ios = ios_token(i);
            let android = format!("{app}-fcm-{i}");
            list.push_str(&format!("ios {ios}\nandroid {android}\n"));
            tokens.extend([ios, android]);
        }
        let path = self.dir.path().join(format!("{app}-devices.txt"));
        std::fs::write(&path, list).unwrap();
        (path.display().to_string(), tokens)
    }
}

fn key_id(app: &str) -> String {
    format!("{:X<10}", app.to_uppercase())
        .chars()
        .take(10)
        .collect()
}

fn team_id(app: &str) -> String {
    format!("T{:X<9}", app.to_uppercase())
        .chars()
        .take(10)
        .collect()
}

/// The mocks of app `name`: its own .p8 key, key id, team and topic; its own FCM project.
fn app_mocks(dir: &Path, certs: &Certificates, name: &str) -> AppMocks {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    std::fs::write(dir.join(format!("{name}.p8")), &key).unwrap();
    let auth = Http2Auth::token_from_pem(key_id(name), team_id(name), &key).unwrap();
    let apns = MockApnsHttp2::start(
        Http2Options::new(auth).topic(format!("com.example.{name}")),
        certs,
    )
    .unwrap();
    let project = format!("{name}-project");
    let fcm = MockFcm::start(FcmOptions::demo(&project).unwrap(), certs).unwrap();
    std::fs::write(
        dir.join(format!("{name}.json")),
        demo_service_account(&project, &fcm.token_url()),
    )
    .unwrap();
    AppMocks { apns, fcm }
}

/// Each of `tokens` delivered exactly once to `mocks`, and nothing else.
fn assert_delivered_once(mocks: &AppMocks, tokens: &[String]) {
    let mut delivered: HashMap<String, usize> = mocks.apns.delivered_counts();
    delivered.extend(mocks.fcm.delivered_counts());
    assert_eq!(delivered.len(), tokens.len(), "{delivered:?}");
    for token in tokens {
        assert_eq!(delivered.get(token), Some(&1), "{token}");
    }
}

/// `push enqueue --app APP`: the campaign id.
fn enqueue(url: &str, devices: &str, app: &str) -> u64 {
    common::enqueue_campaign(url, devices, 50, &["--app", app])
}

/// Every one of `tokens` has exactly one result, `want`.
fn assert_results(url: &str, id: u64, tokens: &[String], want: &str) {
    let results = common::results_by_token(url, id);
    assert_eq!(results.len(), tokens.len());
    for token in tokens {
        assert_eq!(results.get(token), Some(&vec![want.to_owned()]), "{token}");
    }
}

#[test]
fn one_worker_sends_each_campaign_with_its_apps_credentials() {
    let Some(url) = common::redis_database(10) else {
        return;
    };
    let apps = TwoApps::start();
    let (shop_list, shop_tokens) = apps.devices("shop", 0, 150);
    let (news_list, news_tokens) = apps.devices("news", 1000, 150);
    let (blog_list, blog_tokens) = apps.devices("blog", 2000, 3);
    let shop = enqueue(&url, &shop_list, "shop");
    let news = enqueue(&url, &news_list, "news");
    let blog = enqueue(&url, &blog_list, "blog");
    // No provider flags: only the apps of the file.
    let worker = push_command(&[
        "worker".into(),
        "--redis".into(),
        url.clone(),
        "--config".into(),
        apps.config(),
        "--exit-when-idle".into(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let output = worker.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    assert_delivered_once(&apps.shop, &shop_tokens);
    assert_delivered_once(&apps.news, &news_tokens);
    assert_results(&url, shop, &shop_tokens, "delivered");
    assert_results(&url, news, &news_tokens, "delivered");
    // An app the file does not name: every device gets a failed result, none is sent.
    assert_results(&url, blog, &blog_tokens, "unknown_app");
    assert!(stderr.contains("has no app \"blog\""), "{stderr}");

    let status = push(&[
        "campaign".into(),
        "--redis".into(),
        url.clone(),
        "status".into(),
        news.to_string(),
    ]);
    assert!(text(&status.stdout).contains("app: news\n"));
}

/// `push send` arguments for `devices`, with the feedback file.
fn send_args(apps: &TwoApps, devices: &str, extra: &[&str]) -> Vec<String> {
    let feedback = apps.dir.path().join("feedback.jsonl");
    [
        "send",
        "--title",
        "Hello",
        "--body",
        "World",
        "--quiet",
        "--devices",
        devices,
        "--feedback",
        &feedback.display().to_string(),
        "--config",
        &apps.config(),
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn push_send_takes_an_apps_providers_from_the_file() {
    let apps = TwoApps::start();
    let (list, tokens) = apps.devices("news", 0, 20);
    let output = push(&send_args(&apps, &list, &["--app", "news"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_delivered_once(&apps.news, &tokens);
    assert_eq!(
        apps.shop.apns.total_delivered() + apps.shop.fcm.total_delivered(),
        0
    );
    let feedback = std::fs::read_to_string(apps.dir.path().join("feedback.jsonl")).unwrap();
    assert_eq!(feedback.lines().count(), 40);
    assert!(!feedback.contains("\"error\":\""), "{feedback}");

    // An app the file does not name, and provider flags with --app, are refused.
    let output = push(&send_args(&apps, &list, &["--app", "blog"]));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("push.toml has no app \"blog\" (it has: news, shop)"),
        "{stderr}"
    );
    let output = push(&send_args(
        &apps,
        &list,
        &[
            "--app",
            "news",
            "--vapid-key",
            "k.pem",
            "--vapid-subject",
            "mailto:a@b",
        ],
    ));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("give no provider flags"));
}

/// Waits until campaign `id` has a result for each of `tokens` (at most 20 s).
fn wait_for_results(url: &str, id: u64, tokens: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::results_by_token(url, id).len() < tokens.len() {
        assert!(Instant::now() < deadline, "campaign {id} unfinished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_worker_reads_a_changed_file_again_and_keeps_its_apps_when_it_breaks() {
    let Some(url) = common::redis_database(11) else {
        return;
    };
    let apps = TwoApps::start();
    apps.write_config(&apps.table("shop", "shop"), 1);
    let worker = push_command(&[
        "worker".into(),
        "--redis".into(),
        url.clone(),
        "--config".into(),
        apps.config(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // No app news yet.
    let (list, before) = apps.devices("a", 0, 5);
    let id = enqueue(&url, &list, "news");
    wait_for_results(&url, id, &before);
    assert_results(&url, id, &before, "unknown_app");
    // News added: read again.
    apps.write_config(
        &format!(
            "{}{}",
            apps.table("shop", "shop"),
            apps.table("news", "news")
        ),
        2,
    );
    let (list, added) = apps.devices("b", 100, 5);
    let id = enqueue(&url, &list, "news");
    wait_for_results(&url, id, &added);
    assert_results(&url, id, &added, "delivered");
    // A broken file: the apps read before stay.
    apps.write_config("[apps.news\n", 3);
    let (list, kept) = apps.devices("c", 200, 5);
    let id = enqueue(&url, &list, "news");
    wait_for_results(&url, id, &kept);
    assert_results(&url, id, &kept, "delivered");
    // News' settings changed (now shop's credentials and mocks): a new client.
    apps.write_config(&apps.table("news", "shop"), 4);
    let (list, moved) = apps.devices("d", 300, 5);
    let id = enqueue(&url, &list, "news");
    wait_for_results(&url, id, &moved);
    assert_results(&url, id, &moved, "delivered");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let output = worker.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let news_tokens: Vec<String> = added.iter().chain(&kept).cloned().collect();
    assert_delivered_once(&apps.news, &news_tokens);
    assert_delivered_once(&apps.shop, &moved);
    assert_eq!(
        stderr.matches("keeping the apps read before").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("read again").count(), 2, "{stderr}");
}

/// A device list of `n` Android devices: the file and the tokens.
fn android_devices(apps: &TwoApps, name: &str, offset: u64, n: u64) -> (String, Vec<String>) {
    let tokens: Vec<String> = (offset..offset + n)
        .map(|i| format!("{name}-{i}"))
        .collect();
    let list: String = tokens.iter().map(|t| format!("android {t}\n")).collect();
    let path = apps.dir.path().join(format!("{name}-devices.txt"));
    std::fs::write(&path, list).unwrap();
    (path.display().to_string(), tokens)
}

#[test]
fn a_worker_opens_a_new_client_when_an_apps_key_is_rotated_in_place() {
    let Some(url) = common::redis_database(12) else {
        return;
    };
    let apps = TwoApps::start();
    // Shop's APNs mock accepts only the key the file will hold after the rotation.
    let certs = Certificates::generate().unwrap();
    certs.write_to(apps.dir.path()).unwrap();
    let rotated_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let auth = Http2Auth::token_from_pem(key_id("shop"), team_id("shop"), &rotated_key).unwrap();
    let apns =
        MockApnsHttp2::start(Http2Options::new(auth).topic("com.example.shop"), &certs).unwrap();
    // The FCM mock of shop, with the CA just written.
    let fcm = MockFcm::start(FcmOptions::demo("shop-project").unwrap(), &certs).unwrap();
    std::fs::write(
        apps.dir.path().join("shop.json"),
        demo_service_account("shop-project", &fcm.token_url()),
    )
    .unwrap();
    let quoted = |url: String| format!("\"{url}\"");
    let table = apps
        .table("shop", "shop")
        .replace(&quoted(apps.shop.apns.url()), &quoted(apns.url()))
        .replace(&quoted(apps.shop.fcm.url()), &quoted(fcm.url()));
    apps.write_config(&table, 1);
    let worker = push_command(&[
        "worker".into(),
        "--redis".into(),
        url.clone(),
        "--config".into(),
        apps.config(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Opened with the key before the rotation (sending to Android only).
    let (list, first) = android_devices(&apps, "a", 0, 5);
    let id = enqueue(&url, &list, "shop");
    wait_for_results(&url, id, &first);
    assert_results(&url, id, &first, "delivered");
    // The key file broken in place: the client before stays, one warning for two jobs.
    let p8 = apps.dir.path().join("shop.p8");
    std::fs::write(
        &p8,
        "-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut kept = Vec::new();
    for name in ["b", "c"] {
        let (list, tokens) = android_devices(&apps, name, 0, 5);
        let id = enqueue(&url, &list, "shop");
        wait_for_results(&url, id, &tokens);
        assert_results(&url, id, &tokens, "delivered");
        kept.extend(tokens);
    }
    // The new key in place, push.toml untouched: the next jobs sign with it.
    std::fs::write(&p8, &rotated_key).unwrap();
    let (list, after) = apps.devices("shop", 0, 5);
    let id = enqueue(&url, &list, "shop");
    wait_for_results(&url, id, &after);
    assert_results(&url, id, &after, "delivered");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let output = worker.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let ios: Vec<String> = after.iter().step_by(2).cloned().collect();
    let mut delivered = apns.delivered_counts();
    assert_eq!(delivered.len(), ios.len(), "{delivered:?}");
    delivered.retain(|_, count| *count == 1);
    assert_eq!(delivered.len(), ios.len(), "each iOS device once");
    let android = first
        .iter()
        .chain(&kept)
        .chain(after.iter().skip(1).step_by(2));
    for token in android {
        assert_eq!(fcm.delivered_count(token), 1, "{token}");
    }
    assert_eq!(
        stderr.matches("keeping the client opened before").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("a new client for the next jobs").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("SECRETBYTES"), "{stderr}");
    assert!(
        !stderr.contains("read again"),
        "push.toml unchanged: {stderr}"
    );
}
