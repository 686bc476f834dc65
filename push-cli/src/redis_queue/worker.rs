//! `push worker`: joins the consumer group of the job stream, takes over the jobs another
//! worker left pending too long (`XAUTOCLAIM`), reads new ones (`XREADGROUP`), and sends
//! each with the client. A stop (SIGINT, SIGTERM) ends reading; the job in flight is
//! finished, recorded and acknowledged first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use push_smol::Payload;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingReply, StreamReadReply};
use smol::Timer;

use super::clients::Clients;
use super::conn::{Fault, Server};
use super::{job, keys, message};
use crate::change::ProviderNames;
use crate::config;
use crate::interrupt::{self, Reason, Stop};
use crate::main_error::Failure;
use crate::metrics::{self, Metrics};
use crate::metrics_server;
use crate::redis_queue::args::WorkerArgs;

/// How long one `XREADGROUP` waits for a job, in milliseconds: also how long a stop may
/// wait while no job comes.
const BLOCK_MS: u64 = 1000;

/// The same with `--exit-when-idle`: a worker with nothing left to do exits this soon after
/// the last job anywhere was recorded.
const IDLE_BLOCK_MS: u64 = 100;

/// The first wait before connecting again to a lost server; it doubles up to
/// [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to connect again.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// The `app` label of the campaigns enqueued without `--app`.
const DEFAULT_APP: &str = "default";

/// Campaign notifications kept in memory at most.
const PAYLOADS_KEPT: usize = 64;

/// `push worker` with its arguments.
pub fn command(args: WorkerArgs) -> Result<(), Failure> {
    let server = Server::new(&args.redis).map_err(Failure::Usage)?;
    let connections = args.connections.map(usize::from);
    // With --config, the provider flags are optional: they send the campaigns without an
    // app.
    let flags = args.providers.any_given();
    let client = if flags || args.config.is_none() {
        Some(config::client(&args.providers, connections, args.rate).map_err(Failure::Usage)?)
    } else {
        None
    };
    let clients = Rc::new(RefCell::new(
        Clients::new(client, args.config.clone(), connections, args.rate)
            .map_err(Failure::Usage)?,
    ));
    let metrics =
        metrics_server::start_with(&args.metrics, Metrics::for_worker).map_err(Failure::Usage)?;
    let stop = Stop::default();
    interrupt::on_ctrl_c(stop.clone()).map_err(Failure::Run)?;
    let name = consumer_name();
    let providers = config::provider_names(&args.providers.apns, &args.providers.fcm);
    let slots: Vec<Worker> = (0..args.jobs)
        .map(|slot| Worker {
            server: server.clone(),
            clients: clients.clone(),
            push_type: args.providers.apns.apns_push_type,
            claim_idle_ms: (args.claim_idle * 1000.0).round() as u64,
            redis_wait: Duration::from_secs_f64(args.redis_wait),
            consumer: format!("{name}-{slot}"),
            payloads: HashMap::new(),
            jobs: 0,
            results: 0,
            metrics: metrics.clone(),
            providers,
        })
        .collect();
    // One task per job in flight, each with its own connection (a blocking read holds
    // one) and consumer name; the first fatal error stops the others after their job.
    let executor = smol::LocalExecutor::new();
    let stop = &stop;
    let finished = smol::block_on(executor.run(async {
        let tasks: Vec<_> = slots
            .into_iter()
            .map(|mut worker| {
                executor.spawn(async move {
                    let result = worker.run(stop, args.exit_when_idle).await;
                    if let Err(error) = &result {
                        stop.stop(Reason::Failed(error.clone()));
                    }
                    (worker, result)
                })
            })
            .collect();
        let mut finished = Vec::new();
        for task in tasks {
            finished.push(task.await);
        }
        finished
    }));
    let (jobs, results) = finished
        .iter()
        .fold((0, 0), |(jobs, results), (worker, _)| {
            (jobs + worker.jobs, results + worker.results)
        });
    eprintln!("push: worker {name}: {jobs} jobs, {results} results");
    metrics_server::hold(&args.metrics, stop);
    for (_, result) in finished {
        result.map_err(Failure::Run)?;
    }
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

/// A job taken from the stream.
enum Taken {
    /// Read for the first time (`XREADGROUP`).
    New(StreamId),
    /// Taken over from another worker (`XAUTOCLAIM`).
    Claimed(StreamId),
}

struct Worker {
    server: Server,
    clients: Rc<RefCell<Clients>>,
    push_type: Option<push_smol::push_proto::apns::http2::PushType>,
    claim_idle_ms: u64,
    redis_wait: Duration,
    consumer: String,
    payloads: HashMap<u64, (Payload, Option<String>)>,
    jobs: u64,
    results: u64,
    /// The metrics served with `--metrics`.
    metrics: Option<Arc<Metrics>>,
    /// The providers of the provider flags, for the campaigns without an app.
    providers: ProviderNames,
}

impl Worker {
    /// Takes jobs until `stop` (or, with `exit_when_idle`, until none is left anywhere). A
    /// lost connection is opened again (for up to `--redis-wait`), and the step retried.
    async fn run(&mut self, stop: &Stop, exit_when_idle: bool) -> Result<(), String> {
        let mut conn = self.server.connect().await?;
        self.join_group(&mut conn).await.map_err(fault_message)?;
        while !stop.is_stopped() {
            match self.step(&mut conn, exit_when_idle).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(Fault::Fatal(message)) => return Err(message),
                Err(Fault::Lost(message)) => {
                    eprintln!("push: warning: {message}: connecting again");
                    conn = self.reconnect().await?;
                }
            }
        }
        Ok(())
    }

    /// Takes and sends one job; false when idle with `exit_when_idle`.
    async fn step(
        &mut self,
        conn: &mut MultiplexedConnection,
        exit_when_idle: bool,
    ) -> Result<bool, Fault> {
        let entry = match self.claim(conn).await? {
            Some(entry) => {
                if let Some(series) = self.metrics.as_ref().and_then(|m| m.worker()) {
                    series.claimed();
                }
                Some(Taken::Claimed(entry))
            }
            None => {
                let block = if exit_when_idle {
                    IDLE_BLOCK_MS
                } else {
                    BLOCK_MS
                };
                self.read(conn, block).await?.map(Taken::New)
            }
        };
        match entry {
            Some(entry) => self.handle(conn, entry).await?,
            None if exit_when_idle && self.pending(conn).await? == 0 => return Ok(false),
            None => {}
        }
        Ok(true)
    }

    /// A new connection to a server that was lost (restarting, say), with the consumer
    /// group created again if the server lost it; fails after `--redis-wait`.
    async fn reconnect(&self) -> Result<MultiplexedConnection, String> {
        let deadline = Instant::now() + self.redis_wait;
        let mut wait = RECONNECT_FIRST;
        loop {
            Timer::after(wait).await;
            let attempt = match self.server.connect().await {
                Ok(mut conn) => match self.join_group(&mut conn).await {
                    Ok(()) => return Ok(conn),
                    Err(Fault::Fatal(message)) => return Err(message),
                    Err(Fault::Lost(message)) => message,
                },
                Err(message) => message,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{attempt} (for {} s, --redis-wait)",
                    self.redis_wait.as_secs()
                ));
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Creates the consumer group (and the stream) unless it exists.
    async fn join_group(&self, conn: &mut MultiplexedConnection) -> Result<(), Fault> {
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
                .fault("cannot create the consumer group", &error)),
        }
    }

    /// A job pending at another consumer for longer than the claim time, taken over.
    async fn claim(&self, conn: &mut MultiplexedConnection) -> Result<Option<StreamId>, Fault> {
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
            .map_err(|e| self.server.fault("cannot claim pending jobs", &e))?;
        Ok(reply.claimed.into_iter().next())
    }

    /// A new job, waiting up to `block_ms` for one.
    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        block_ms: u64,
    ) -> Result<Option<StreamId>, Fault> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(keys::JOBS)
            .arg(">")
            .query_async(conn)
            .await
            .map_err(|e| self.server.fault("cannot read jobs", &e))?;
        Ok(reply.and_then(|reply| reply.keys.into_iter().next()?.ids.into_iter().next()))
    }

    /// Jobs read by some worker and not acknowledged yet.
    async fn pending(&self, conn: &mut MultiplexedConnection) -> Result<usize, Fault> {
        let reply: StreamPendingReply = redis::cmd("XPENDING")
            .arg(keys::JOBS)
            .arg(keys::GROUP)
            .query_async(conn)
            .await
            .map_err(|e| self.server.fault("cannot count pending jobs", &e))?;
        Ok(reply.count())
    }

    /// Sends one job and records its results, counted in the job series.
    async fn handle(
        &mut self,
        conn: &mut MultiplexedConnection,
        entry: Taken,
    ) -> Result<(), Fault> {
        let series = self.metrics.clone();
        let series = series.as_ref().and_then(|m| m.worker());
        if let Some(series) = series {
            series.in_flight(1);
        }
        let outcome = self.handle_job(conn, entry).await;
        if let Some(series) = series {
            series.in_flight(-1);
            series.job(match &outcome {
                Ok(outcome) => outcome,
                Err(_) => "failed",
            });
        }
        outcome.map(|_| ())
    }

    /// Sends one job and records its results with its acknowledgement; when the connection
    /// is lost after sending, the results are recorded over a new one (nothing is sent
    /// twice). Returns the job's outcome for the metrics: `sent`, `refused`, `skipped`.
    async fn handle_job(
        &mut self,
        conn: &mut MultiplexedConnection,
        taken: Taken,
    ) -> Result<&'static str, Fault> {
        let (entry, claimed) = match taken {
            Taken::New(entry) => (entry, false),
            Taken::Claimed(entry) => (entry, true),
        };
        let campaign: Option<u64> = entry.get("campaign");
        let devices: Option<String> = entry.get("devices");
        let payload = match campaign {
            Some(campaign) => self.payload(conn, campaign).await?,
            None => None,
        };
        let (Some(campaign), Some(devices), Some((payload, app))) = (campaign, devices, payload)
        else {
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
                .map_err(|e| self.server.fault("cannot acknowledge a job", &e))?;
            return Ok("skipped");
        };
        let mut devices = job::devices_of(&devices);
        // A job read for the first time has no device recorded (a token also listed in
        // another job aside: the recording script still keeps one result); one taken over
        // may have been recorded in part or in full by a worker that was only slow.
        if claimed {
            devices = job::not_done(&self.server, conn, campaign, devices).await?;
        }
        // The client is taken when the job starts: a reload meanwhile leaves this job on it.
        let client = self.clients.borrow_mut().client(app.as_deref());
        let label = app.as_deref().unwrap_or(DEFAULT_APP);
        let (outcomes, job_outcome) = match client {
            Ok(client) => {
                let timer = self.metrics.as_ref().map(|metrics| {
                    let stats = client.clone();
                    metrics.watch_app_client(label, move || stats.stats());
                    let providers = match app.as_deref() {
                        Some(app) => self.clients.borrow().app_providers(app),
                        None => None,
                    };
                    metrics::Timer::for_app(
                        metrics.clone(),
                        providers.unwrap_or(self.providers),
                        label,
                    )
                });
                (job::send(&client, payload, devices, timer).await?, "sent")
            }
            Err(refusal) => {
                eprintln!(
                    "push: warning: campaign {campaign}: {} ({}): its devices are not sent",
                    refusal.detail, refusal.code
                );
                if let Some(metrics) = &self.metrics {
                    for _ in &devices {
                        metrics.unsent(Some(label), refusal.code);
                    }
                }
                let refused = job::refused(&devices, refusal.code, &refusal.detail)?;
                (refused, "refused")
            }
        };
        let written = loop {
            match job::record(&self.server, conn, campaign, &entry.id, &outcomes).await {
                Err(Fault::Lost(message)) => {
                    eprintln!("push: warning: {message}: connecting again to record the job");
                    *conn = self.reconnect().await?;
                }
                recorded => break recorded?,
            }
        };
        self.jobs += 1;
        self.results += written;
        Ok(job_outcome)
    }

    /// The notification of `campaign` and its app, read once; `None` when the campaign is
    /// gone.
    async fn payload(
        &mut self,
        conn: &mut MultiplexedConnection,
        campaign: u64,
    ) -> Result<Option<(Payload, Option<String>)>, Fault> {
        if let Some(known) = self.payloads.get(&campaign) {
            return Ok(Some(known.clone()));
        }
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::campaign(campaign))
            .query_async(conn)
            .await
            .map_err(|e| self.server.fault("cannot read the campaign", &e))?;
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
        let known = (payload, fields.get("app").cloned());
        self.payloads.insert(campaign, known.clone());
        Ok(Some(known))
    }
}

/// The message of a fault, for a failure at start.
fn fault_message(fault: Fault) -> String {
    match fault {
        Fault::Lost(message) | Fault::Fatal(message) => message,
    }
}
