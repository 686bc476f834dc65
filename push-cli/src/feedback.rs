//! `push feedback`: read the APNs feedback service, write its devices as JSONL, and delete
//! the tokens that were not registered again since.

use push_smol::{ApnsConfig, Client};

use crate::cli::FeedbackArgs;
use crate::config;
use crate::db::{Db, Target};
use crate::jsonl::{Line, Writer};
use crate::main_error::Failure;
use crate::store;
use crate::store_schema::{Custom, Schema};

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
    let mut db = match (&args.db, args.apply_feedback) {
        (Some(path), true) => {
            let target = Target::parse(path);
            let schema =
                Schema::new(target.dialect(), &Custom::default()).map_err(Failure::Usage)?;
            let mut db = Db::open(&target).map_err(Failure::Usage)?;
            store::prepare(&mut db, &schema, true).map_err(Failure::Usage)?;
            Some(db)
        }
        _ => None,
    };
    let client = Client::builder()
        .apns(apns)
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // The whole list is read before the store's transaction opens: no write lock is held
    // across the network.
    let devices =
        smol::block_on(client.fetch_inactive_devices()).map_err(|e| Failure::Run(e.to_string()))?;
    let mut deleted = 0u64;
    if let Some(db) = &mut db {
        db.begin().map_err(Failure::Run)?;
    }
    for inactive in &devices {
        let feedback = inactive.feedback();
        let mut line = Line::from_feedback(&feedback);
        line.timestamp = Some(inactive.timestamp);
        line.detail = None;
        out.write(&line).map_err(Failure::Run)?;
        if let Some(db) = &mut db {
            let gone = store::delete_inactive(db, &inactive.device.token, inactive.timestamp)
                .map_err(Failure::Run)?;
            deleted += u64::from(gone);
        }
    }
    if let Some(db) = &mut db {
        db.script("COMMIT").map_err(Failure::Run)?;
    }
    out.finish().map_err(Failure::Run)?;
    eprintln!("{} inactive devices reported", devices.len());
    if db.is_some() {
        eprintln!(
            "store: {deleted} tokens deleted, {} kept (registered again since, or not stored)",
            devices.len() as u64 - deleted
        );
    }
    Ok(())
}
