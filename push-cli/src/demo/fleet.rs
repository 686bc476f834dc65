//! The demo's fleet: which devices the store holds, what the mocks answer for each, and the
//! check that the store ends as planned.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use push_mock::{FcmScript, TokenScript};
use push_proto::ApnsToken;
use rusqlite::{Connection, params};

use crate::store;

/// Which protocol the demo's Android devices go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// FCM HTTP v1 with a service account: no canonical ids.
    Fcm,
    /// The legacy GCM HTTP API with an API key: canonical ids.
    GcmLegacy,
}

/// What the Android mock is told to answer for one token.
#[derive(Debug, Clone)]
pub enum Script {
    /// A script of the GCM mock.
    Gcm(TokenScript),
    /// A script of the FCM mock.
    Fcm(FcmScript),
}

/// What the mocks do with one device of the demo fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Delivered.
    Plain,
    /// Rejected as invalid (APNs status 8, HTTP/2 BadDeviceToken / Unregistered, GCM
    /// NotRegistered / InvalidRegistration, FCM UNREGISTERED / SENDER_ID_MISMATCH, Web Push
    /// 410 for an expired subscription).
    Invalid,
    /// Delivered with a new canonical token.
    Canonical(String),
    /// Delivered with a canonical token that is already in the store.
    CanonicalExisting(String),
    /// Delivered after one QUOTA_EXCEEDED (429) or UNAVAILABLE (503) answer (FCM).
    Retried,
    /// Not a valid token at all; never sent, stays in the store.
    Malformed,
}

/// One generated device.
#[derive(Debug, Clone)]
struct Entry {
    /// `ios`, `android` or `web`.
    platform: &'static str,
    /// The token as stored.
    token: String,
    /// What happens to it.
    fate: Fate,
    /// What the Android mock answers for it, if anything special.
    script: Option<Script>,
}

/// A number in 0..1000 spread over the positions, so specials are scattered.
fn spread(i: u64) -> u64 {
    push_smol::push_proto::SplitMix64::new(i).next_u64() % 1000
}

fn is_ios(i: u64) -> bool {
    i % 5 < 3
}

/// One device in 25 is a browser (a fifth of the positions that would be Android).
fn is_web(i: u64) -> bool {
    i % 25 == 24
}

/// The browsers among `n` devices: the subscriptions the demo's push service must mint.
pub fn web_count(n: u64) -> usize {
    usize::try_from(n / 25).unwrap_or(0)
}

/// Whether web subscription `k` has expired: 3 % of them (answered 410).
pub fn web_expired(k: usize) -> bool {
    spread(k as u64 ^ 0x5eb) < 30
}

fn android_token(i: u64) -> String {
    format!("demo:APA91b{i:010}-mock-registration-id-for-the-push-demo")
}

fn android_is_plain(i: u64) -> bool {
    !is_ios(i) && !is_web(i) && spread(i) >= 30
}

/// The device at position `i`: 60 % iOS, 36 % Android, 4 % browsers (their subscriptions in
/// `web`, minted by the demo's push service); about 0.4 % of iOS tokens, 1.3 % of Android
/// ones and 3 % of subscriptions invalid, 0.1 % of iOS rows malformed; 1.3 % of Android ones
/// due a canonical id with GCM (a fifth of those already stored), retried once with FCM
/// (which has no canonical ids) after a 429 QUOTA_EXCEEDED or a 503 UNAVAILABLE.
fn entry(i: u64, protocol: Protocol, web: &[String]) -> Entry {
    let h = spread(i);
    if is_web(i) {
        let k = usize::try_from(i / 25).unwrap_or(usize::MAX);
        return Entry {
            platform: "web",
            token: web.get(k).cloned().unwrap_or_default(),
            fate: if web_expired(k) {
                Fate::Invalid
            } else {
                Fate::Plain
            },
            script: None,
        };
    }
    if is_ios(i) {
        let token = format!("d0{i:062x}");
        return match h {
            0..4 => Entry {
                platform: "ios",
                token,
                fate: Fate::Invalid,
                script: None,
            },
            999 => Entry {
                platform: "ios",
                token: format!("not-a-token-{i}"),
                fate: Fate::Malformed,
                script: None,
            },
            _ => Entry {
                platform: "ios",
                token,
                fate: Fate::Plain,
                script: None,
            },
        };
    }
    let token = android_token(i);
    let (fate, script) = match (protocol, h) {
        (Protocol::Fcm, 0..10) => (Fate::Invalid, Some(Script::Fcm(FcmScript::Unregistered))),
        (Protocol::Fcm, 10..13) => (
            Fate::Invalid,
            Some(Script::Fcm(FcmScript::SenderIdMismatch)),
        ),
        (Protocol::Fcm, 13..20) => (
            Fate::Retried,
            Some(Script::Fcm(FcmScript::QuotaExceeded {
                retry_after_secs: 0,
                first: 1,
            })),
        ),
        (Protocol::Fcm, 20..26) => (
            Fate::Retried,
            Some(Script::Fcm(FcmScript::Unavailable { first: 1 })),
        ),
        (Protocol::GcmLegacy, 0..10) => {
            (Fate::Invalid, Some(Script::Gcm(TokenScript::NotRegistered)))
        }
        (Protocol::GcmLegacy, 10..13) => (
            Fate::Invalid,
            Some(Script::Gcm(TokenScript::InvalidRegistration)),
        ),
        (Protocol::GcmLegacy, 13..26) if h >= 23 && i >= 5 && android_is_plain(i - 5) => {
            let new = android_token(i - 5);
            (
                Fate::CanonicalExisting(new.clone()),
                Some(Script::Gcm(TokenScript::Canonical(new))),
            )
        }
        (Protocol::GcmLegacy, 13..26) => {
            let new = format!("{token}-canonical");
            (
                Fate::Canonical(new.clone()),
                Some(Script::Gcm(TokenScript::Canonical(new))),
            )
        }
        _ => (Fate::Plain, None),
    };
    Entry {
        platform: "android",
        token,
        fate,
        script,
    }
}

/// Writes the store: `n` rows, registered a day ago.
pub fn create_store(path: &Path, n: u64, protocol: Protocol, web: &[String]) -> Result<(), String> {
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
            let entry = entry(i, protocol, web);
            insert
                .execute(params![entry.platform, entry.token, registered])
                .map_err(error)?;
        }
    }
    tx.commit().map_err(error)
}

/// Expected numbers, from the plan alone.
#[derive(Debug, Default)]
pub struct Expected {
    /// iOS devices.
    pub ios: u64,
    /// Android devices.
    pub android: u64,
    /// Browsers (Web Push).
    pub web: u64,
    /// Devices rejected as invalid (deleted from the store).
    pub invalid: u64,
    /// Devices delivered under a new canonical token (GCM).
    pub canonical: u64,
    /// Devices whose canonical token is already stored (their row goes).
    pub merged: u64,
    /// Devices delivered after one 429 QUOTA_EXCEEDED (FCM).
    pub quota: u64,
    /// Devices delivered after one 503 UNAVAILABLE (FCM).
    pub unavailable: u64,
    /// Rows that are not a valid token (never sent, kept).
    pub malformed: u64,
}

/// The plan of `n` devices: the expected numbers, the invalid iOS tokens, and the Android
/// scripts.
pub fn plan(
    n: u64,
    protocol: Protocol,
    web: &[String],
) -> (Expected, HashSet<ApnsToken>, Vec<(String, Script)>) {
    let mut expected = Expected::default();
    let mut bad_tokens = HashSet::new();
    let mut scripts = Vec::new();
    for i in 0..n {
        let entry = entry(i, protocol, web);
        match entry.platform {
            "ios" => expected.ios += 1,
            "web" => expected.web += 1,
            _ => expected.android += 1,
        }
        match &entry.fate {
            Fate::Invalid => expected.invalid += 1,
            Fate::Canonical(_) => expected.canonical += 1,
            Fate::CanonicalExisting(_) => expected.merged += 1,
            Fate::Malformed => expected.malformed += 1,
            Fate::Retried | Fate::Plain => {}
        }
        match &entry.script {
            Some(Script::Fcm(FcmScript::QuotaExceeded { .. })) => expected.quota += 1,
            Some(Script::Fcm(FcmScript::Unavailable { .. })) => expected.unavailable += 1,
            _ => {}
        }
        if entry.platform == "ios"
            && entry.fate == Fate::Invalid
            && let Ok(token) = ApnsToken::parse(&entry.token)
        {
            bad_tokens.insert(token);
        }
        if let Some(script) = entry.script {
            scripts.push((entry.token, script));
        }
    }
    (expected, bad_tokens, scripts)
}

/// Checks the store row by row against the plan; returns the rows left.
pub fn verify(
    path: &Path,
    n: u64,
    protocol: Protocol,
    web: &[String],
    expected: &Expected,
) -> Result<u64, String> {
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
        let entry = entry(i, protocol, web);
        let ok = match &entry.fate {
            Fate::Plain | Fate::Retried | Fate::Malformed => has(&entry.token)?,
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
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM devices", [], |row| row.get(0))
        .map_err(error)?;
    let rows = u64::try_from(rows).unwrap_or(0);
    let want = n - expected.invalid - expected.merged;
    if rows != want {
        return Err(format!("store check failed: {rows} rows, expected {want}"));
    }
    Ok(rows)
}
