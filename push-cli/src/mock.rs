//! `push mock`: the push-mock servers in the foreground, for trying `push send` and
//! `push feedback` by hand.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use push_mock::{
    Certificates, FcmScript, GatewayOptions, GcmOptions, Http2Auth, Http2Options, MockApnsHttp2,
    MockFeedback, MockGateway, MockGcm, MockWebPush, ReasonScript, TokenScript, WebPushOptions,
};
use push_proto::ApnsToken;
use push_proto::apns::FeedbackTuple;

use crate::cli::MockArgs;
use crate::loopback::{FCM_PROJECT, fcm_options, fcm_service_account, start_fcm};
use crate::main_error::Failure;
use crate::workdir::work_dir;

/// The key id and team id of the provider key `push mock` generates.
pub const KEY_ID: &str = "MOCKKEY123";
/// See [`KEY_ID`].
pub const TEAM_ID: &str = "MOCKTEAM12";

/// A fresh P-256 provider key as a `.p8` PEM (PKCS#8), like the ones Apple issues.
pub fn generate_p8() -> Result<String, String> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|key| key.serialize_pem())
        .map_err(|e| format!("cannot generate a provider key: {e}"))
}

/// `push mock` with its arguments.
pub fn command(args: MockArgs) -> Result<(), Failure> {
    let bad_tokens = args
        .bad_token
        .iter()
        .map(|hex| {
            ApnsToken::parse(hex).map_err(|e| Failure::Usage(format!("--bad-token {hex}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut gcm_options = GcmOptions::new(&args.gcm_key);
    for token in &args.gcm_not_registered {
        gcm_options = gcm_options.script(token, TokenScript::NotRegistered);
    }
    for pair in &args.gcm_canonical {
        let Some((old, new)) = pair.split_once('=') else {
            return Err(Failure::Usage(format!(
                "--gcm-canonical {pair}: expected OLD=NEW"
            )));
        };
        gcm_options = gcm_options.script(old, TokenScript::Canonical(new.to_owned()));
    }
    let certs = Certificates::generate()
        .map_err(|e| Failure::Run(format!("cannot generate certificates: {e}")))?;
    let (dir, _temporary) = work_dir(args.dir.as_ref(), "push-mock-")?;
    let paths = certs
        .write_to(&dir)
        .map_err(|e| Failure::Run(format!("cannot write to {}: {e}", dir.display())))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let tuples = bad_tokens
        .iter()
        .map(|token| FeedbackTuple {
            timestamp: now,
            token: Bytes::copy_from_slice(token.as_bytes()),
        })
        .collect();
    let io = |what: &str, e: std::io::Error| Failure::Run(format!("cannot start the {what}: {e}"));
    let gateway = MockGateway::start(
        GatewayOptions {
            bad_tokens: bad_tokens.into_iter().collect(),
            require_client_cert: true,
            ..GatewayOptions::default()
        },
        &certs,
    )
    .map_err(|e| io("mock gateway", e))?;
    let feedback =
        MockFeedback::start(tuples, false, true, &certs).map_err(|e| io("mock feedback", e))?;
    gcm_options.tls = Some(certs.clone());
    let gcm = MockGcm::start(gcm_options).map_err(|e| io("mock GCM", e))?;
    let token_auth = args.http2_auth == "token";
    let p8 = if token_auth {
        let pem = generate_p8().map_err(Failure::Run)?;
        let path = dir.join("provider-key.p8");
        std::fs::write(&path, &pem)
            .map_err(|e| Failure::Run(format!("cannot write {}: {e}", path.display())))?;
        Some((path, pem))
    } else {
        None
    };
    let auth = match &p8 {
        Some((_, pem)) => Http2Auth::token_from_pem(KEY_ID, TEAM_ID, pem)
            .map_err(|e| Failure::Run(format!("cannot read the generated provider key: {e}")))?,
        None => Http2Auth::Certificate,
    };
    let mut http2_options = Http2Options::new(auth).topic(&args.apns_topic);
    for token in &args.bad_token {
        http2_options = http2_options.script(token, ReasonScript::BadDeviceToken);
    }
    let mut fcm_options = fcm_options().map_err(Failure::Run)?;
    if args.latency_ms > 0 {
        let latency = Duration::from_millis(args.latency_ms);
        http2_options = http2_options.latency(latency);
        fcm_options = fcm_options.latency(latency);
    }
    let http2 =
        MockApnsHttp2::start(http2_options, &certs).map_err(|e| io("mock APNs HTTP/2", e))?;
    for token in &args.fcm_unregistered {
        fcm_options = fcm_options.script(token, FcmScript::Unregistered);
    }
    let fcm = start_fcm(fcm_options, &certs).map_err(Failure::Run)?;
    let account = dir.join("fcm-service-account.json");
    std::fs::write(&account, fcm_service_account(&fcm))
        .map_err(|e| Failure::Run(format!("cannot write {}: {e}", account.display())))?;
    let (web, web_lines) = start_web(&dir, &certs)?;
    let host = Certificates::SERVER_NAME;
    println!("APNs gateway   {host}:{}", gateway.addr().port());
    println!("APNs feedback  {host}:{}", feedback.addr().port());
    println!("GCM endpoint   {}", gcm.endpoint());
    println!("CA             {}", paths.ca.display());
    println!("client cert    {}", paths.client_cert.display());
    println!("client key     {}", paths.client_key.display());
    println!(
        "try: push send --devices FILE --title Hi --body Hello --apns {host}:{} --apns-cert {} --apns-key {} --apns-ca {} --gcm-url {} --gcm-ca {}  (GCM key: the --gcm-key of push mock)",
        gateway.addr().port(),
        paths.client_cert.display(),
        paths.client_key.display(),
        paths.ca.display(),
        gcm.endpoint(),
        paths.ca.display(),
    );
    match &p8 {
        Some((path, _)) => {
            println!(
                "APNs HTTP/2    {} (token auth, topic {})",
                http2.url(),
                args.apns_topic
            );
            println!(
                "provider key   {} (key id {KEY_ID}, team id {TEAM_ID})",
                path.display()
            );
            println!(
                "try HTTP/2: push send --devices FILE --title Hi --body Hello --apns-url {} --apns-topic {} --apns-key-p8 {} --apns-key-id {KEY_ID} --apns-team-id {TEAM_ID} --apns-ca {}",
                http2.url(),
                args.apns_topic,
                path.display(),
                paths.ca.display(),
            );
            println!(
                "try channels: push channel create --apns-url {url} --channels-url {url} --apns-topic {} --apns-key-p8 {} --apns-key-id {KEY_ID} --apns-team-id {TEAM_ID} --apns-ca {}  (then push broadcast --channel ID ... with the same flags)",
                args.apns_topic,
                path.display(),
                paths.ca.display(),
                url = http2.url(),
            );
        }
        None => {
            println!(
                "APNs HTTP/2    {} (certificate auth, topic {})",
                http2.url(),
                args.apns_topic
            );
            println!(
                "try HTTP/2: push send --devices FILE --title Hi --body Hello --apns-url {} --apns-topic {} --apns-cert {} --apns-key {} --apns-ca {}",
                http2.url(),
                args.apns_topic,
                paths.client_cert.display(),
                paths.client_key.display(),
                paths.ca.display(),
            );
        }
    }
    for line in web_lines {
        println!("{line}");
    }
    println!(
        "try Web Push: push send --devices FILE --title Hi --body Hello --vapid-key {} --vapid-subject mailto:you@example.com --web-ca {}  (FILE with the web line above)",
        dir.join(VAPID_FILE).display(),
        paths.ca.display(),
    );
    println!(
        "FCM HTTP v1    {} (project {FCM_PROJECT}, OAuth2 token endpoint {})",
        fcm.url(),
        fcm.token_url()
    );
    println!("service account {} (test-only key)", account.display());
    println!(
        "try FCM: push send --devices FILE --title Hi --body Hello --fcm-service-account {} --fcm-url {} --fcm-ca {}",
        account.display(),
        fcm.url(),
        paths.ca.display(),
    );
    match args.for_secs {
        Some(seconds) => std::thread::sleep(Duration::from_secs(seconds)),
        None => {
            let (stop, stopped) = std::sync::mpsc::channel();
            ctrlc::set_handler(move || {
                let _ = stop.send(());
            })
            .map_err(|e| Failure::Run(format!("cannot handle Ctrl-C: {e}")))?;
            println!("running until Ctrl-C");
            let _ = stopped.recv();
        }
    }
    drop((gateway, feedback, gcm, http2, fcm, web));
    Ok(())
}

/// The VAPID key `push mock` writes next to the certificates.
const VAPID_FILE: &str = "vapid.pem";

/// The mock Web Push service on two origins, a VAPID key in `dir` and a subscription made
/// for it; returns the lines to print (the last one a device line for `push send`).
fn start_web(
    dir: &std::path::Path,
    certs: &Certificates,
) -> Result<(MockWebPush, Vec<String>), Failure> {
    let path = dir.join(VAPID_FILE);
    // A key left by an earlier run in the same --dir is replaced, like the certificates.
    let _ = std::fs::remove_file(&path);
    let public = crate::web::generate_key(&path).map_err(Failure::Run)?;
    let web = MockWebPush::start(
        WebPushOptions::new()
            .origins(2)
            .application_server_key(&public),
        certs,
    )
    .map_err(|e| Failure::Run(format!("cannot start the mock Web Push service: {e}")))?;
    let subscription = web.subscribe(0);
    let lines = vec![
        format!("Web Push       {}", web.origins().join(", ")),
        format!("VAPID key      {} (public key {public})", path.display()),
        format!("web line       web {}", subscription.json),
    ];
    Ok((web, lines))
}
