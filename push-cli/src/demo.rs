//! `push demo`: mock servers in process, a generated token store, one broadcast with the
//! feedback applied to the store, and a check that the store ends as expected.

mod android;
mod broadcast;
mod fleet;
mod web;

use std::time::Duration;

use push_mock::{
    Certificates, GatewayOptions, Http2Auth, Http2Options, MockApnsHttp2, MockGateway, ReasonScript,
};
use push_smol::{ApnsConfig, ApnsHttp2Config, Client, HttpConfig, Payload};

use self::android::AndroidMock;
use self::fleet::Protocol;
use self::web::WebMock;
use crate::change::ProviderNames;
use crate::cli::DemoArgs;
use crate::db::Target;
use crate::interrupt::Stop;
use crate::loopback::mock_tls;
use crate::main_error::Failure;
use crate::mock::{KEY_ID, TEAM_ID, generate_p8};
use crate::send::{self, Plan, Source};
use crate::store;
use crate::store_schema::Custom;
use crate::summary;
use crate::workdir::work_dir;

/// The bundle id the demo's HTTP/2 mock expects.
const TOPIC: &str = "com.example.demo";

/// `push demo` with its arguments.
pub fn command(args: DemoArgs) -> Result<(), Failure> {
    let n = args.devices;
    let run = |e: String| Failure::Run(e);
    let (dir, _temporary) = work_dir(args.keep.as_ref(), "push-demo-")?;
    let db = dir.join("devices.sqlite");
    let jsonl = dir.join("feedback.jsonl");

    let protocol = if args.gcm_legacy {
        Protocol::GcmLegacy
    } else {
        Protocol::Fcm
    };
    let certs =
        Certificates::generate().map_err(|e| run(format!("cannot generate certificates: {e}")))?;
    // The browsers' subscriptions come from the push service: it starts first.
    let web = WebMock::start(n, &certs).map_err(run)?;
    let (expected, bad_tokens, scripts) = fleet::plan(n, protocol, &web.subscriptions);
    let bad_ios = bad_tokens.len();
    fleet::create_store(&db, n, protocol, &web.subscriptions).map_err(run)?;

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
    let android = AndroidMock::start(protocol, scripts, &certs).map_err(run)?;

    let mut builder = Client::builder();
    let (apns_line, ios_protocol);
    let mut broadcasts = false;
    if let Some(gateway) = &gateway {
        let address = format!("{}:{}", Certificates::SERVER_NAME, gateway.addr().port());
        builder = builder.apns(
            ApnsConfig::new(&address)
                .map_err(|e| run(e.to_string()))?
                .tls(mock_tls(&certs, true).map_err(run)?)
                .grace(Duration::from_secs(1)),
        );
        apns_line = format!("mock APNs binary gateway {address} (rejects {bad_ios} tokens)");
        ios_protocol = "APNs binary gateway (certificate auth)";
    } else if let (Some(http2), Some(pem)) = (&http2, &p8) {
        let config = ApnsHttp2Config::new(&http2.url())
            .map_err(|e| run(e.to_string()))?
            .topic(TOPIC)
            .provider_key_pem(pem, KEY_ID, TEAM_ID)
            .map_err(|e| run(e.to_string()))?
            .tls(mock_tls(&certs, false).map_err(run)?);
        broadcasts = true;
        builder = builder.apns_http2(config);
        apns_line = format!(
            "mock APNs HTTP/2 {} (provider token auth, key id {KEY_ID}; {bad_ios} tokens answered BadDeviceToken or Unregistered)",
            http2.url()
        );
        ios_protocol = "APNs HTTP/2 (token auth)";
    } else {
        return Err(run("no APNs mock started".into()));
    }
    let builder = web.configure(builder, &certs).map_err(run)?;
    let client = android
        .configure(builder, &certs)
        .map_err(run)?
        .build()
        .map_err(|e| run(e.to_string()))?;

    println!(
        "push demo: {n} devices ({} iOS, {} Android, {} web) in the SQLite store {}",
        expected.ios,
        expected.android,
        expected.web,
        db.display()
    );
    println!(
        "  protocols: iOS: {ios_protocol} · Android: {} · web: Web Push (VAPID, aes128gcm)",
        android.protocol()
    );
    println!("  {apns_line}");
    println!("  {}", android.describe());
    println!("  {}", web.describe());
    let outcome = send::run(
        Plan {
            client: client.clone(),
            payload: Payload::new()
                .title("push demo")
                .body("One notification for every device in the store")
                .badge(1),
            source: Source::Db {
                target: Target::Sqlite(db.clone()),
                schema: Custom::default(),
            },
            feedback: Some(jsonl.clone()),
            apply: Some(send::Apply::default()),
            quiet: false,
            providers: ProviderNames {
                ios: if args.apns_binary {
                    "apns"
                } else {
                    "apns-http2"
                },
                android: if args.gcm_legacy { "gcm" } else { "fcm" },
            },
            resume: None,
            stop_wait: send::DEFAULT_STOP_WAIT,
            in_flight: None,
            deadline: None,
            metrics: None,
        },
        &Stop::default(),
    )
    .map_err(run)?;
    if let Some(reason) = &outcome.stopped {
        return Err(run(format!("the run stopped: {reason:?}")));
    }
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
    match protocol {
        Protocol::GcmLegacy => println!(
            "  delivered {} ({} of them under a new canonical token)",
            tally.delivered, tally.new_tokens
        ),
        Protocol::Fcm => println!(
            "  delivered {} ({} of them after one retry; FCM v1 has no canonical ids)",
            tally.delivered,
            expected.quota + expected.unavailable
        ),
    }
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
    println!("  {}", android.stats());
    println!("  {}", web.stats());
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
    android.check(&expected).map_err(run)?;
    web.check().map_err(run)?;
    let rows = fleet::verify(&db, n, protocol, &web.subscriptions, &expected).map_err(run)?;
    println!(
        "verified: the store holds exactly the expected {rows} devices ({} malformed rows kept for you to fix)",
        expected.malformed
    );
    if let Some(http2) = &http2
        && broadcasts
    {
        broadcast::show(http2, &client).map_err(run)?;
    }
    if args.keep.is_some() {
        println!(
            "kept: {} and the feedback {}",
            db.display(),
            jsonl.display()
        );
    }
    Ok(())
}
