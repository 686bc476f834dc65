//! `push demo`: mock servers in process, a generated token store, one broadcast with the
//! feedback applied to the store, and a check that the store ends as expected.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use push_mock::{
    Certificates, GatewayOptions, GcmOptions, Http2Auth, Http2Options, MockApnsHttp2, MockGateway,
    MockGcm, ReasonScript, TokenScript,
};
use push_proto::ApnsToken;
use push_smol::{ApnsConfig, ApnsHttp2Config, Client, GcmConfig, Payload, Tls};
use rusqlite::{Connection, params};

use crate::cli::DemoArgs;
use crate::main_error::Failure;
use crate::mock::{KEY_ID, TEAM_ID, generate_p8};
use crate::send::{self, Plan, Source};
use crate::store;
use crate::summary;
use crate::workdir::work_dir;

/// The bundle id the demo's HTTP/2 mock expects.
const TOPIC: &str = "com.example.demo";

/// What the mocks do with one device of the demo fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Delivered.
    Plain,
    /// Rejected as invalid (APNs status 8, HTTP/2 BadDeviceToken / Unregistered, GCM
    /// NotRegistered / InvalidRegistration).
    Invalid,
    /// Delivered with a new canonical token.
    Canonical(String),
    /// Delivered with a canonical token that is already in the store.
    CanonicalExisting(String),
    /// Not a valid token at all; never sent, stays in the store.
    Malformed,
}

/// One generated device.
#[derive(Debug, Clone)]
struct Entry {
    platform: &'static str,
    token: String,
    fate: Fate,
    gcm_script: Option<TokenScript>,
}

/// A number in 0..1000 spread over the positions, so specials are scattered.
fn spread(i: u64) -> u64 {
    push_smol::push_proto::SplitMix64::new(i).next_u64() % 1000
}

fn is_ios(i: u64) -> bool {
    i % 5 < 3
}

fn android_token(i: u64) -> String {
    format!("demo:APA91b{i:010}-mock-registration-id-for-the-push-demo")
}

fn android_is_plain(i: u64) -> bool {
    !is_ios(i) && spread(i) >= 30
}

/// The device at position `i`: 60 % iOS, 40 % Android; about 0.4 % of iOS tokens and 1.3 %
/// of Android ones invalid, 1.3 % of Android ones due a canonical id (a fifth of those
/// already stored), 0.1 % of iOS rows malformed.
fn entry(i: u64) -> Entry {
    let h = spread(i);
    if is_ios(i) {
        let token = format!("d0{i:062x}");
        return match h {
            0..4 => Entry {
                platform: "ios",
                token,
                fate: Fate::Invalid,
                gcm_script: None,
            },
            999 => Entry {
                platform: "ios",
                token: format!("not-a-token-{i}"),
                fate: Fate::Malformed,
                gcm_script: None,
            },
            _ => Entry {
                platform: "ios",
                token,
                fate: Fate::Plain,
                gcm_script: None,
            },
        };
    }
    let token = android_token(i);
    let (fate, script) = match h {
        0..10 => (Fate::Invalid, Some(TokenScript::NotRegistered)),
        10..13 => (Fate::Invalid, Some(TokenScript::InvalidRegistration)),
        13..26 if h >= 23 && i >= 5 && android_is_plain(i - 5) => {
            let new = android_token(i - 5);
            (
                Fate::CanonicalExisting(new.clone()),
                Some(TokenScript::Canonical(new)),
            )
        }
        13..26 => {
            let new = format!("{token}-canonical");
            (
                Fate::Canonical(new.clone()),
                Some(TokenScript::Canonical(new)),
            )
        }
        _ => (Fate::Plain, None),
    };
    Entry {
        platform: "android",
        token,
        fate,
        gcm_script: script,
    }
}

/// Writes the store: `n` rows, registered a day ago.
fn create_store(path: &Path, n: u64) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file)
                .map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        }
    }
    let mut conn = store::create(path)?;
    let error = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let tx = conn.transaction().map_err(error)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO devices(platform, token, updated_at) VALUES (?1, ?2, ?3)")
            .map_err(error)?;
        let registered = store::now() - 86_400;
        for i in 0..n {
            let entry = entry(i);
            insert
                .execute(params![entry.platform, entry.token, registered])
                .map_err(error)?;
        }
    }
    tx.commit().map_err(error)
}

/// Expected numbers, from the plan alone.
#[derive(Debug, Default)]
struct Expected {
    ios: u64,
    android: u64,
    invalid: u64,
    canonical: u64,
    merged: u64,
    malformed: u64,
}

/// Checks the store row by row against the plan; returns the rows left.
fn verify(path: &Path, n: u64, expected: &Expected) -> Result<u64, String> {
    let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let error = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let mut exists = conn
        .prepare("SELECT count(*) FROM devices WHERE token = ?1")
        .map_err(error)?;
    let mut has = |token: &str| -> Result<bool, String> {
        exists
            .query_row([token], |row| row.get::<_, i64>(0))
            .map(|n| n > 0)
            .map_err(error)
    };
    for i in 0..n {
        let entry = entry(i);
        let ok = match &entry.fate {
            Fate::Plain | Fate::Malformed => has(&entry.token)?,
            Fate::Invalid => !has(&entry.token)?,
            Fate::Canonical(new) | Fate::CanonicalExisting(new) => !has(&entry.token)? && has(new)?,
        };
        if !ok {
            return Err(format!(
                "store check failed: device {i} ({} {}) should be {:?}",
                entry.platform, entry.token, entry.fate
            ));
        }
    }
    let rows = store::count(&conn, path)?;
    let want = n - expected.invalid - expected.merged;
    if rows != want {
        return Err(format!("store check failed: {rows} rows, expected {want}"));
    }
    Ok(rows)
}

/// `push demo` with its arguments.
pub fn command(args: DemoArgs) -> Result<(), Failure> {
    let n = args.devices;
    let run = |e: String| Failure::Run(e);
    let (dir, _temporary) = work_dir(args.keep.as_ref(), "push-demo-")?;
    let db = dir.join("devices.sqlite");
    let jsonl = dir.join("feedback.jsonl");

    let mut expected = Expected::default();
    let mut bad_tokens = HashSet::new();
    let mut scripts = HashMap::new();
    for i in 0..n {
        let entry = entry(i);
        match entry.platform {
            "ios" => expected.ios += 1,
            _ => expected.android += 1,
        }
        match &entry.fate {
            Fate::Invalid => expected.invalid += 1,
            Fate::Canonical(_) => expected.canonical += 1,
            Fate::CanonicalExisting(_) => expected.merged += 1,
            Fate::Malformed => expected.malformed += 1,
            Fate::Plain => {}
        }
        if entry.platform == "ios"
            && entry.fate == Fate::Invalid
            && let Ok(token) = ApnsToken::parse(&entry.token)
        {
            bad_tokens.insert(token);
        }
        if let Some(script) = entry.gcm_script {
            scripts.insert(entry.token, script);
        }
    }
    let bad_ios = bad_tokens.len();
    create_store(&db, n).map_err(run)?;

    let certs =
        Certificates::generate().map_err(|e| run(format!("cannot generate certificates: {e}")))?;
    // iOS goes to one of the two APNs mocks: the binary gateway, or (by default) the HTTP/2
    // provider API with token auth, its invalid tokens split between BadDeviceToken (400) and
    // Unregistered (410).
    let mut gateway = None;
    let mut http2 = None;
    let mut p8 = None;
    if args.apns_binary {
        gateway = Some(
            MockGateway::start(
                GatewayOptions {
                    bad_tokens,
                    require_client_cert: true,
                    count_only: true,
                    ..GatewayOptions::default()
                },
                &certs,
            )
            .map_err(|e| run(format!("cannot start the mock gateway: {e}")))?,
        );
    } else {
        let pem = generate_p8().map_err(run)?;
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &pem)
            .map_err(|e| run(format!("cannot read the generated provider key: {e}")))?;
        let mut options = Http2Options::new(auth).topic(TOPIC);
        options.count_only = true;
        let unregistered_at = u64::try_from(store::now()).unwrap_or(0) * 1000;
        for (k, token) in bad_tokens.iter().enumerate() {
            let script = if k % 2 == 0 {
                ReasonScript::BadDeviceToken
            } else {
                ReasonScript::Unregistered {
                    timestamp_ms: unregistered_at,
                }
            };
            options = options.script(token.to_hex(), script);
        }
        http2 = Some(
            MockApnsHttp2::start(options, &certs)
                .map_err(|e| run(format!("cannot start the mock APNs HTTP/2 server: {e}")))?,
        );
        p8 = Some(pem);
    }
    let gcm = MockGcm::start(GcmOptions {
        api_key: "demo-key".into(),
        tls: Some(certs.clone()),
        scripts,
        unavailable_rate: 0.02,
        retry_after_secs: 0,
        seed: 7,
        count_only: true,
        ..GcmOptions::default()
    })
    .map_err(|e| run(format!("cannot start the mock GCM: {e}")))?;

    let tls = |identity: bool| -> Result<Tls, String> {
        let tls = Tls::default()
            .only_custom_roots()
            .add_ca_pem(certs.ca_pem.as_bytes())
            .map_err(|e| e.to_string())?;
        if identity {
            tls.client_identity_pem(
                certs.client_cert_pem.as_bytes(),
                certs.client_key_pem.as_bytes(),
            )
            .map_err(|e| e.to_string())
        } else {
            Ok(tls)
        }
    };
    let mut builder = Client::builder();
    let apns_line;
    if let Some(gateway) = &gateway {
        let address = format!("{}:{}", Certificates::SERVER_NAME, gateway.addr().port());
        builder = builder.apns(
            ApnsConfig::new(&address)
                .map_err(|e| run(e.to_string()))?
                .tls(tls(true).map_err(run)?)
                .grace(Duration::from_secs(1)),
        );
        apns_line = format!("mock APNs binary gateway {address} (rejects {bad_ios} tokens)");
    } else if let (Some(http2), Some(pem)) = (&http2, &p8) {
        builder = builder.apns_http2(
            ApnsHttp2Config::new(&http2.url())
                .map_err(|e| run(e.to_string()))?
                .topic(TOPIC)
                .provider_key_pem(pem, KEY_ID, TEAM_ID)
                .map_err(|e| run(e.to_string()))?
                .tls(tls(false).map_err(run)?),
        );
        apns_line = format!(
            "mock APNs HTTP/2 {} (provider token auth, key id {KEY_ID}; {bad_ios} tokens answered BadDeviceToken or Unregistered)",
            http2.url()
        );
    } else {
        return Err(run("no APNs mock started".into()));
    }
    let client = builder
        .gcm(
            GcmConfig::new("demo-key")
                .endpoint(&gcm.endpoint())
                .map_err(|e| run(e.to_string()))?
                .tls(tls(false).map_err(run)?)
                .backoff(Duration::from_millis(10), Duration::from_millis(200))
                .max_attempts(10),
        )
        .build()
        .map_err(|e| run(e.to_string()))?;

    println!(
        "push demo: {n} devices ({} iOS, {} Android) in the SQLite store {}",
        expected.ios,
        expected.android,
        db.display()
    );
    println!(
        "  {apns_line}, mock GCM {} (NotRegistered, InvalidRegistration, canonical ids, 2 % of requests answered 503)",
        gcm.endpoint()
    );
    let outcome = send::run(Plan {
        client,
        payload: Payload::new()
            .title("push demo")
            .body("One notification for every device in the store")
            .badge(1),
        source: Source::Db(db.clone()),
        feedback: Some(jsonl.clone()),
        apply: true,
        quiet: false,
    })
    .map_err(run)?;
    if let Some(error) = outcome.fatal_errors().next() {
        return Err(run(error.to_string()));
    }
    let tally = &outcome.tally;
    let applied = outcome.applied.unwrap_or_default();
    println!(
        "sent one notification to {} devices in {:.2} s: {:.0} notifications/s",
        tally.total(),
        outcome.elapsed.as_secs_f64(),
        summary::rate(tally.total(), outcome.elapsed)
    );
    println!(
        "  delivered {} ({} of them under a new canonical token)",
        tally.delivered, tally.new_tokens
    );
    for (code, count) in &tally.failed {
        println!("  {code}: {count}");
    }
    if let Some(http2) = &http2 {
        println!(
            "  APNs HTTP/2: {} requests on {} connection(s), {} provider token(s) verified",
            http2.total_responses(),
            http2.connections(),
            http2.provider_tokens_seen()
        );
    }
    println!(
        "  GCM: {} requests, {} answered 503 and retried",
        gcm.requests(),
        gcm.statuses().iter().filter(|s| **s == 503).count()
    );
    println!(
        "store updated: {} invalid tokens removed, {} tokens replaced, {} rows removed whose canonical token was already stored",
        applied.deleted, applied.replaced, applied.merged
    );
    if tally.failed_with("invalid_device") != expected.invalid
        || tally.failed_with("invalid_token_format") != expected.malformed
        || tally.new_tokens != expected.canonical + expected.merged
        || tally.delivered + expected.invalid + expected.malformed != n
    {
        return Err(run(format!(
            "unexpected outcomes: {tally:?}, planned {expected:?}"
        )));
    }
    let rows = verify(&db, n, &expected).map_err(run)?;
    println!(
        "verified: the store holds exactly the expected {rows} devices ({} malformed rows kept for you to fix)",
        expected.malformed
    );
    if args.keep.is_some() {
        println!(
            "kept: {} and the feedback {}",
            db.display(),
            jsonl.display()
        );
    }
    Ok(())
}
