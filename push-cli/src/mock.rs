//! `push mock`: the push-mock servers in the foreground, for trying `push send` and
//! `push feedback` by hand.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use push_mock::{
    Certificates, GatewayOptions, GcmOptions, MockFeedback, MockGateway, MockGcm, TokenScript,
};
use push_proto::ApnsToken;
use push_proto::apns::FeedbackTuple;

use crate::cli::MockArgs;
use crate::main_error::Failure;

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
    let (dir, _temporary) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
            (dir.clone(), None)
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("push-mock-")
                .tempdir()
                .map_err(|e| Failure::Run(format!("cannot create a temporary directory: {e}")))?;
            (PathBuf::from(temporary.path()), Some(temporary))
        }
    };
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
    drop((gateway, feedback, gcm));
    Ok(())
}
