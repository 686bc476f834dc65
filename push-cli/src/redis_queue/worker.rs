//! `push worker`: joins the consumer group of the job stream, takes over the jobs another
//! worker left pending too long (`XAUTOCLAIM`), reads new ones (`XREADGROUP`), and sends
//! each with the client. A stop (SIGINT, SIGTERM) ends reading; the job in flight is
//! finished, recorded and acknowledged first.

use std::collections::HashMap;

use push_smol::{Client, Payload};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingReply, StreamReadReply};

use super::conn::Server;
use super::{job, keys, message};
use crate::cli_queue::WorkerArgs;
use crate::config;
use crate::interrupt::{self, Stop};
use crate::main_error::Failure;

/// How long one `XREADGROUP` waits for a job, in milliseconds: also how long a stop may
/// wait while no job comes.
const BLOCK_MS: u64 = 1000;

/// Campaign notifications kept in memory at most.
const PAYLOADS_KEPT: usize = 64;

/// `push worker` with its arguments.
pub fn command(args: WorkerArgs) -> Result<(), Failure> {
    let server = Server::new(&args.redis).map_err(Failure::Usage)?;
    let connections = args.connections.map(usize::from);
    let client =
        config::client(&args.apns, &args.gcm, &args.fcm, connections).map_err(Failure::Usage)?;
    let stop = Stop::default();
    interrupt::on_ctrl_c(stop.clone()).map_err(Failure::Run)?;
    let mut worker = Worker {
        server,
        client,
        push_type: args.apns.apns_push_type,
        claim_idle_ms: (args.claim_idle * 1000.0).round() as u64,
        consumer: consumer_name(),
        payloads: HashMap::new(),
        jobs: 0,
        results: 0,
    };
    smol::block_on(worker.run(&stop, args.exit_when_idle)).map_err(Failure::Run)?;
    eprintln!(
        "push: worker {}: {} jobs, {} results",
        worker.consumer, worker.jobs, worker.results
    );
    Ok(())
}

/// A name no other worker has: host, process id, start time.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{host}-{}-{started}", std::process::id())
}

struct Worker {
    server: Server,
    client: Client,
    push_type: Option<push_smol::push_proto::apns::http2::PushType>,
    claim_idle_ms: u64,
    consumer: String,
    payloads: HashMap<u64, Payload>,
    jobs: u64,
    results: u64,
}

impl Worker {
    /// Takes jobs until `stop` (or, with `exit_when_idle`, until none is left anywhere).
    async fn run(&mut self, stop: &Stop, exit_when_idle: bool) -> Result<(), String> {
        let mut conn = self.server.connect().await?;
        self.join_group(&mut conn).await?;
        while !stop.is_stopped() {
            let entry = match self.claim(&mut conn).await? {
                Some(entry) => Some(entry),
                None => self.read(&mut conn).await?,
            };
            match entry {
                Some(entry) => self.handle(&mut conn, entry).await?,
                None if exit_when_idle && self.pending(&mut conn).await? == 0 => break,
                None => {}
            }
        }
        Ok(())
    }

    /// Creates the consumer group (and the stream) unless it exists.
    async fn join_group(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let created: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::JOBS)
            .arg(keys::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(self
                .server
                .error("cannot create the consumer group", &error)),
        }
    }

    /// A job pending at another consumer for longer than the claim time, taken over.
    async fn claim(&self, conn: &mut MultiplexedConnection) -> Result<Option<StreamId>, String> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(keys::JOBS)
            .arg(keys::GROUP)
            .arg(&self.consumer)
            .arg(self.claim_idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await
            .map_err(|e| self.server.error("cannot claim pending jobs", &e))?;
        Ok(reply.claimed.into_iter().next())
    }

    /// A new job, waiting up to [`BLOCK_MS`] for one.
    async fn read(&self, conn: &mut MultiplexedConnection) -> Result<Option<StreamId>, String> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(keys::JOBS)
            .arg(">")
            .query_async(conn)
            .await
            .map_err(|e| self.server.error("cannot read jobs", &e))?;
        Ok(reply.and_then(|reply| reply.keys.into_iter().next()?.ids.into_iter().next()))
    }

    /// Jobs read by some worker and not acknowledged yet.
    async fn pending(&self, conn: &mut MultiplexedConnection) -> Result<usize, String> {
        let reply: StreamPendingReply = redis::cmd("XPENDING")
            .arg(keys::JOBS)
            .arg(keys::GROUP)
            .query_async(conn)
            .await
            .map_err(|e| self.server.error("cannot count pending jobs", &e))?;
        Ok(reply.count())
    }

    /// Sends one job and records its results with its acknowledgement.
    async fn handle(
        &mut self,
        conn: &mut MultiplexedConnection,
        entry: StreamId,
    ) -> Result<(), String> {
        let campaign: Option<u64> = entry.get("campaign");
        let devices: Option<String> = entry.get("devices");
        let payload = match campaign {
            Some(campaign) => self.payload(conn, campaign).await?,
            None => None,
        };
        let (Some(campaign), Some(devices), Some(payload)) = (campaign, devices, payload) else {
            eprintln!(
                "push: warning: job {} names no known campaign: acknowledged without sending",
                entry.id
            );
            let () = redis::cmd("XACK")
                .arg(keys::JOBS)
                .arg(keys::GROUP)
                .arg(&entry.id)
                .query_async(conn)
                .await
                .map_err(|e| self.server.error("cannot acknowledge a job", &e))?;
            return Ok(());
        };
        let devices = job::devices_of(&devices);
        let devices = job::not_done(&self.server, conn, campaign, devices).await?;
        let outcomes = job::send(&self.client, payload, devices).await?;
        let written = job::record(&self.server, conn, campaign, &entry.id, &outcomes).await?;
        self.jobs += 1;
        self.results += written;
        Ok(())
    }

    /// The notification of `campaign`, read once; `None` when the campaign is gone.
    async fn payload(
        &mut self,
        conn: &mut MultiplexedConnection,
        campaign: u64,
    ) -> Result<Option<Payload>, String> {
        if let Some(payload) = self.payloads.get(&campaign) {
            return Ok(Some(payload.clone()));
        }
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::campaign(campaign))
            .query_async(conn)
            .await
            .map_err(|e| self.server.error("cannot read the campaign", &e))?;
        let Some(message) =
            message::from_fields(&fields).map_err(|e| format!("campaign {campaign}: {e}"))?
        else {
            return Ok(None);
        };
        let mut payload =
            config::payload(&message).map_err(|e| format!("campaign {campaign}: {e}"))?;
        if let Some(push_type) = self.push_type {
            payload = payload.apns_push_type(push_type);
        }
        if self.payloads.len() >= PAYLOADS_KEPT {
            self.payloads.clear();
        }
        self.payloads.insert(campaign, payload.clone());
        Ok(Some(payload))
    }
}
