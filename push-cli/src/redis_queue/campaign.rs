//! `push campaign status|results ID`: a queued campaign's progress, and its results as the
//! JSON Lines `push send --feedback` writes.

use std::collections::{BTreeMap, HashMap};

use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamPendingReply, StreamRangeReply};

use super::conn::Server;
use super::keys;
use crate::jsonl;
use crate::main_error::Failure;
use crate::redis_queue::args::{CampaignArgs, CampaignCommand};

/// Result entries read per round trip: each holds the results of one job (up to its
/// `--batch` devices), so memory stays bounded by this many jobs' lines.
const PAGE: usize = 8;

/// `push campaign` with its arguments.
pub fn command(args: CampaignArgs) -> Result<(), Failure> {
    let server = Server::new(&args.redis).map_err(Failure::Usage)?;
    match args.command {
        CampaignCommand::Status { id } => smol::block_on(status(&server, id)),
        CampaignCommand::Delete { id, force } => {
            smol::block_on(super::campaign_delete::delete(&server, id, force))
        }
        CampaignCommand::Results { id, out, store } if store.apply.apply_feedback => {
            super::campaign_apply::command(&server, id, out.as_deref(), &store)
        }
        CampaignCommand::Results { id, out, .. } => {
            let mut writer = match &out {
                Some(path) => jsonl::Writer::create(Some(path)),
                None => Ok(jsonl::Writer::stdout()),
            }
            .map_err(Failure::Run)?;
            smol::block_on(results(&server, id, &mut writer))?;
            writer.finish().map_err(Failure::Run)
        }
    }
}

/// Prints the campaign's progress and its results by outcome.
async fn status(server: &Server, id: u64) -> Result<(), Failure> {
    let mut conn = server.connect().await.map_err(Failure::Run)?;
    let campaign = read_campaign(server, &mut conn, id).await?;
    let outcomes: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(keys::outcomes(id))
        .query_async(&mut conn)
        .await
        .map_err(|e| Failure::Run(server.error("cannot read the outcomes", &e)))?;
    let outcomes: BTreeMap<String, u64> = outcomes.into_iter().collect();
    let done: u64 = outcomes.values().sum();
    let count = |field: &str| campaign.get(field).and_then(|n| n.parse::<u64>().ok());
    let in_flight: StreamPendingReply = redis::cmd("XPENDING")
        .arg(keys::JOBS)
        .arg(keys::GROUP)
        .query_async(&mut conn)
        .await
        .or_else(|e| match e.code() {
            // No worker has created the group yet: nothing is in flight.
            Some("NOGROUP") => Ok(StreamPendingReply::Empty),
            _ => Err(e),
        })
        .map_err(|e| Failure::Run(server.error("cannot count the jobs in flight", &e)))?;
    println!("campaign {id}");
    if let Some(app) = campaign.get("app") {
        println!("app: {app}");
    }
    match count("queued") {
        Some(queued) => {
            println!("queued: {queued}");
            println!("done: {done}");
            println!("left: {}", queued.saturating_sub(done));
        }
        None => {
            println!("queued: still being enqueued");
            println!("done: {done}");
        }
    }
    let jobs_done = count("jobs_done").unwrap_or(0);
    match count("jobs") {
        Some(jobs) => println!("jobs: {jobs_done} of {jobs} done"),
        None => println!("jobs: {jobs_done} done"),
    }
    println!(
        "jobs in flight at the workers (every campaign): {}",
        in_flight.count()
    );
    for (outcome, count) in &outcomes {
        println!("  {outcome}: {count}");
    }
    Ok(())
}

/// The fields of campaign `id`'s hash; fails when there is no such campaign.
pub(super) async fn read_campaign(
    server: &Server,
    conn: &mut MultiplexedConnection,
    id: u64,
) -> Result<HashMap<String, String>, Failure> {
    let campaign: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::campaign(id))
        .query_async(conn)
        .await
        .map_err(|e| Failure::Run(server.error("cannot read the campaign", &e)))?;
    if campaign.is_empty() {
        return Err(Failure::Run(format!("no campaign {id}")));
    }
    Ok(campaign)
}

/// Writes the campaign's result lines, oldest first.
async fn results(server: &Server, id: u64, writer: &mut jsonl::Writer) -> Result<(), Failure> {
    read_lines(server, id, |line| {
        writer.write_serialized(line).map_err(Failure::Run)
    })
    .await
}

/// Hands each of the campaign's result lines to `each`, oldest first, reading the stream a
/// page at a time (memory stays flat however many results there are).
pub(super) async fn read_lines(
    server: &Server,
    id: u64,
    mut each: impl FnMut(&str) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut conn = server.connect().await.map_err(Failure::Run)?;
    let exists: bool = redis::cmd("EXISTS")
        .arg(keys::campaign(id))
        .query_async(&mut conn)
        .await
        .map_err(|e| Failure::Run(server.error("cannot read the campaign", &e)))?;
    if !exists {
        return Err(Failure::Run(format!("no campaign {id}")));
    }
    // "(" makes the start exclusive: the page goes on after the last id read.
    let mut start = "-".to_owned();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys::results(id))
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(|e| Failure::Run(server.error("cannot read the results", &e)))?;
        for entry in &page.ids {
            if let Some(Value::BulkString(lines)) = entry.map.get("lines") {
                for line in String::from_utf8_lossy(lines).split('\n') {
                    if !line.is_empty() {
                        each(line)?;
                    }
                }
            }
        }
        match page.ids.last() {
            Some(last) if page.ids.len() == PAGE => start = format!("({}", last.id),
            _ => return Ok(()),
        }
    }
}
