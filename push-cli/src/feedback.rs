//! `push feedback`: read the APNs feedback service, write its devices as JSONL, and delete
//! the tokens that were not registered again since.

use push_smol::{ApnsConfig, Client};

use crate::cli::FeedbackArgs;
use crate::config;
use crate::jsonl::{Line, Writer};
use crate::main_error::Failure;
use crate::store;

/// `push feedback` with its arguments.
pub fn command(args: FeedbackArgs) -> Result<(), Failure> {
    let tls = config::tls(
        args.apns_ca.as_deref(),
        Some((&args.apns_cert, &args.apns_key)),
    )
    .map_err(Failure::Usage)?;
    let apns = ApnsConfig::new(&args.apns_feedback)
        .and_then(|config| config.feedback_service(&args.apns_feedback))
        .map_err(|e| Failure::Usage(e.to_string()))?
        .tls(tls);
    let mut out = match &args.out {
        Some(path) => Writer::create(Some(path)).map_err(Failure::Usage)?,
        None => Writer::stdout(),
    };
    let conn = match (&args.db, args.apply_feedback) {
        (Some(path), true) => {
            let conn = store::open_existing(path).map_err(Failure::Usage)?;
            store::upgrade(&conn, path).map_err(Failure::Usage)?;
            Some((conn, path))
        }
        _ => None,
    };
    let client = Client::builder()
        .apns(apns)
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let devices =
        smol::block_on(client.fetch_inactive_devices()).map_err(|e| Failure::Run(e.to_string()))?;
    let mut deleted = 0u64;
    let transaction = match &conn {
        Some((conn, path)) => Some((
            conn.unchecked_transaction()
                .map_err(|e| Failure::Run(format!("{}: {e}", path.display())))?,
            path,
        )),
        None => None,
    };
    for inactive in &devices {
        let feedback = inactive.feedback();
        let mut line = Line::from_feedback(&feedback);
        line.timestamp = Some(inactive.timestamp);
        line.detail = None;
        out.write(&line).map_err(Failure::Run)?;
        if let Some((tx, path)) = &transaction {
            let gone = store::delete_inactive(tx, &inactive.device.token, inactive.timestamp)
                .map_err(|e| Failure::Run(format!("{}: {e}", path.display())))?;
            deleted += u64::from(gone);
        }
    }
    if let Some((tx, path)) = transaction {
        tx.commit()
            .map_err(|e| Failure::Run(format!("{}: {e}", path.display())))?;
    }
    out.finish().map_err(Failure::Run)?;
    eprintln!("{} inactive devices reported", devices.len());
    if conn.is_some() {
        eprintln!(
            "store: {deleted} tokens deleted, {} kept (registered again since, or not stored)",
            devices.len() as u64 - deleted
        );
    }
    Ok(())
}
