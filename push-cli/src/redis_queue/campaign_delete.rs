//! `push campaign delete ID`: a finished campaign's keys removed (its notification, results,
//! done set and counts); an unfinished one is refused unless forced, and then its jobs left
//! in the job stream are removed too.

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;

use super::campaign::read_campaign;
use super::conn::Server;
use super::keys;
use crate::main_error::Failure;

/// Job entries read per round trip when a forced delete looks for the campaign's jobs.
const PAGE: usize = 500;

/// Deletes campaign `id`'s keys; refuses an unfinished campaign unless `force`.
pub async fn delete(server: &Server, id: u64, force: bool) -> Result<(), Failure> {
    let mut conn = server.connect().await.map_err(Failure::Run)?;
    let campaign = read_campaign(server, &mut conn, id).await?;
    let count = |field: &str| campaign.get(field).and_then(|n| n.parse::<u64>().ok());
    let jobs_done = count("jobs_done").unwrap_or(0);
    let unfinished = match count("jobs") {
        Some(jobs) if jobs_done >= jobs => None,
        Some(jobs) => Some(format!("{jobs_done} of {jobs} jobs done")),
        None => Some("still being enqueued".to_owned()),
    };
    let removed_jobs = match (unfinished, force) {
        (Some(why), false) => {
            return Err(Failure::Run(format!(
                "campaign {id} is not finished ({why}): not deleted (--force deletes it, and its jobs not sent yet)"
            )));
        }
        (Some(_), true) => remove_jobs(server, &mut conn, id).await?,
        (None, _) => 0,
    };
    let removed: u64 = redis::cmd("DEL")
        .arg(keys::campaign(id))
        .arg(keys::results(id))
        .arg(keys::done(id))
        .arg(keys::outcomes(id))
        .query_async(&mut conn)
        .await
        .map_err(|e| Failure::Run(server.error("cannot delete the campaign", &e)))?;
    eprintln!("push: campaign {id} deleted: {removed} keys, {removed_jobs} jobs not sent removed");
    Ok(())
}

/// Removes campaign `id`'s jobs from the job stream (acknowledged, then deleted), a page at
/// a time; returns how many. A job a worker holds right now may still write its results.
async fn remove_jobs(
    server: &Server,
    conn: &mut MultiplexedConnection,
    id: u64,
) -> Result<u64, Failure> {
    let fail = |e: redis::RedisError| Failure::Run(server.error("cannot remove the jobs", &e));
    let mut start = "-".to_owned();
    let mut removed = 0;
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(keys::JOBS)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await
            .map_err(fail)?;
        let ids: Vec<&str> = page
            .ids
            .iter()
            .filter(|entry| entry.get::<u64>("campaign") == Some(id))
            .map(|entry| entry.id.as_str())
            .collect();
        if !ids.is_empty() {
            let acked: Result<u64, _> = redis::cmd("XACK")
                .arg(keys::JOBS)
                .arg(keys::GROUP)
                .arg(&ids)
                .query_async(conn)
                .await;
            // No group yet: no worker has read a job, nothing to acknowledge.
            match acked {
                Err(e) if e.code() != Some("NOGROUP") => return Err(fail(e)),
                _ => {}
            }
            let deleted: u64 = redis::cmd("XDEL")
                .arg(keys::JOBS)
                .arg(&ids)
                .query_async(conn)
                .await
                .map_err(fail)?;
            removed += deleted;
        }
        match page.ids.last() {
            Some(last) if page.ids.len() == PAGE => start = format!("({}", last.id),
            _ => return Ok(removed),
        }
    }
}
