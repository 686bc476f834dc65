//! `push enqueue`: stores the notification once in the campaign's hash and appends the
//! devices to the job stream, a batch per job, as they are read (memory flat in the number
//! of devices). Malformed entries get their result at once.

use std::fmt::Write as _;

use redis::aio::MultiplexedConnection;

use super::conn::Server;
use super::{keys, message};
use crate::config;
use crate::db::Target;
use crate::devices::{self, CHANNEL_CAPACITY, Input};
use crate::jsonl::Line;
use crate::main_error::Failure;
use crate::redis_queue::args::EnqueueArgs;
use crate::store;
use crate::store_schema::{Custom, Schema};

/// `push enqueue` with its arguments: prints the campaign id.
pub fn command(args: EnqueueArgs) -> Result<(), Failure> {
    // The notification is checked before anything is queued.
    config::payload(&args.message).map_err(Failure::Usage)?;
    let server = Server::new(&args.redis).map_err(Failure::Usage)?;
    let (sender, receiver) = async_channel::bounded(CHANNEL_CAPACITY);
    let reader = match (&args.devices, &args.db) {
        (Some(path), _) => devices::spawn_file(path, sender),
        (None, Some(db)) => {
            let target = Target::parse(db);
            let custom = Custom {
                query: args.query.clone(),
                ..Custom::default()
            };
            let schema = Schema::new(target.dialect(), &custom).map_err(Failure::Usage)?;
            store::spawn_reader(&target, &schema, None, sender)
        }
        (None, None) => return Err(Failure::Usage("give --devices or --db".into())),
    }
    .map_err(Failure::Run)?;
    let batch = usize::try_from(args.batch).unwrap_or(usize::MAX);
    let queued = smol::block_on(async {
        let mut conn = server.connect().await?;
        let id: u64 = redis::cmd("INCR")
            .arg(keys::CAMPAIGNS)
            .query_async(&mut conn)
            .await
            .map_err(|e| server.error("cannot number the campaign", &e))?;
        let mut hset = redis::cmd("HSET");
        hset.arg(keys::campaign(id));
        for (field, value) in message::to_fields(&args.message) {
            hset.arg(field).arg(value);
        }
        if let Some(app) = &args.app {
            hset.arg("app").arg(app);
        }
        hset.arg("created_at").arg(store::now());
        let () = hset
            .query_async(&mut conn)
            .await
            .map_err(|e| server.error("cannot store the campaign", &e))?;
        let mut queue = Queue {
            server: &server,
            conn,
            id,
            lines: String::new(),
            in_batch: 0,
            jobs: 0,
            queued: 0,
        };
        while let Ok(input) = receiver.recv().await {
            match input {
                Input::Device(device) => {
                    let _ = writeln!(queue.lines, "{} {}", device.platform, device.token);
                    queue.in_batch += 1;
                    queue.queued += 1;
                    if queue.in_batch == batch {
                        queue.flush().await?;
                    }
                }
                Input::Malformed(malformed) => {
                    queue.queued += 1;
                    let line = serde_json::to_string(&Line::from_malformed(&malformed))
                        .map_err(|e| e.to_string())?;
                    queue
                        .malformed(&malformed.token, malformed.code, &line)
                        .await?;
                }
            }
        }
        queue.flush().await?;
        let () = redis::cmd("HSET")
            .arg(keys::campaign(id))
            .arg("queued")
            .arg(queue.queued)
            .arg("jobs")
            .arg(queue.jobs)
            .query_async(&mut queue.conn)
            .await
            .map_err(|e| server.error("cannot store the campaign", &e))?;
        Ok::<_, String>((id, queue.queued, queue.jobs))
    });
    // The reader ends when the channel closes; its error comes first.
    let read = reader
        .join()
        .map_err(|_| Failure::Run("the device reader panicked".into()))?;
    read.map_err(Failure::Run)?;
    let (id, devices, jobs) = queued.map_err(Failure::Run)?;
    eprintln!("push: campaign {id}: {devices} devices in {jobs} jobs");
    println!("{id}");
    Ok(())
}

/// The job being filled and what was queued so far.
struct Queue<'a> {
    server: &'a Server,
    conn: MultiplexedConnection,
    id: u64,
    /// The job's devices, one "platform token" line each.
    lines: String,
    in_batch: usize,
    jobs: u64,
    queued: u64,
}

impl Queue<'_> {
    /// Appends the job being filled to the stream, if it has devices.
    async fn flush(&mut self) -> Result<(), String> {
        if self.in_batch == 0 {
            return Ok(());
        }
        let _: String = redis::cmd("XADD")
            .arg(keys::JOBS)
            .arg("*")
            .arg("campaign")
            .arg(self.id)
            .arg("devices")
            .arg(&self.lines)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.server.error("cannot queue a job", &e))?;
        self.lines.clear();
        self.in_batch = 0;
        self.jobs += 1;
        Ok(())
    }

    /// Records the result of a malformed entry (it is never sent).
    async fn malformed(&mut self, token: &str, code: &str, line: &str) -> Result<(), String> {
        let () = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(keys::results(self.id))
            .arg("*")
            .arg("tokens")
            .arg(token)
            .arg("outcomes")
            .arg(code)
            .arg("lines")
            .arg(line)
            .ignore()
            .cmd("HINCRBY")
            .arg(keys::outcomes(self.id))
            .arg(code)
            .arg(1)
            .ignore()
            .query_async(&mut self.conn)
            .await
            .map_err(|e| self.server.error("cannot record a malformed entry", &e))?;
        Ok(())
    }
}
