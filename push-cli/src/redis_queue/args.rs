//! The command line of the Redis Streams queue: `push enqueue`, `push worker`,
//! `push campaign`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::cli::{ApplyArgs, MessageArgs, ProviderArgs};
use crate::metrics_server::MetricsArgs;

/// The Redis server of the queue.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// The Redis server: redis://[user:password@]host:port[/db], or rediss:// for TLS. The
    /// password is never printed.
    #[arg(
        long,
        value_name = "URL",
        env = "PUSH_REDIS_URL",
        hide_env_values = true
    )]
    pub redis: String,
    /// With rediss://: trust only this CA (PEM) instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    pub redis_ca: Option<PathBuf>,
}

/// `push enqueue`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["devices", "db"])))]
pub struct EnqueueArgs {
    /// The Redis server.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Device list, as `push send --devices` reads it ("-" reads standard input).
    #[arg(long, value_name = "FILE|-")]
    pub devices: Option<PathBuf>,
    /// The token store, as `push send --db` reads it: an SQLite file or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// With --db: the select that yields the devices (columns platform and token).
    #[arg(long, value_name = "SQL", requires = "db")]
    pub query: Option<String>,
    /// Devices per job: a worker sends a job's devices together and acknowledges them in one
    /// transaction; a worker killed mid-job may have sent this many without recording them.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// The notification.
    #[command(flatten)]
    pub message: MessageArgs,
    /// The app of the workers' push.toml (`push worker --config`) whose providers send the
    /// campaign; without it, the workers' provider flags do.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
}

/// `push worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The Redis server.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Jobs pending this long at another worker (dead, or stuck) are taken over, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = seconds)]
    pub claim_idle: f64,
    /// How long to keep connecting again to a Redis server that went away (restarting,
    /// say) before giving up, in seconds; a job already sent is recorded once it is back.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = seconds)]
    pub redis_wait: f64,
    /// Jobs sent at once, each read and recorded on its own connection: more of them hide
    /// Redis' round trips and a job's slowest device; a crash re-sends at most this many
    /// jobs.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Exit once no job is left to read or to claim (for tests and one-off runs).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// The apps file: a campaign enqueued with --app is sent with that app's providers (one
    /// client per app, opened on first use, opened again when the file changes). Provider
    /// flags, when also given, send the campaigns without an app.
    #[arg(long, value_name = "push.toml")]
    pub config: Option<PathBuf>,
    /// Connections to keep to each HTTP provider (see `push send --connections`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: Option<u16>,
    /// The providers' settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
    /// The most requests per second this worker sends to each HTTP provider (see `push send
    /// --rate`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Prometheus metrics: the results by app, the clients' counters, the jobs.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// `push campaign`.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The Redis server.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// What to show.
    #[command(subcommand)]
    pub command: CampaignCommand,
}

/// The `push campaign` subcommands.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Progress: devices queued, done, left, and the results by outcome.
    Status {
        /// The campaign id `push enqueue` printed.
        id: u64,
    },
    /// The results as JSON Lines, the same as `push send --feedback` writes.
    Results {
        /// The campaign id `push enqueue` printed.
        id: u64,
        /// Write the lines to this file instead of standard output (with --apply-feedback:
        /// the lines are written only when this is given).
        #[arg(long, value_name = "FILE.jsonl")]
        out: Option<PathBuf>,
        /// Apply the results to a token store, as `push send --db --apply-feedback` does.
        #[command(flatten)]
        store: ResultsStoreArgs,
    },
    /// Remove a finished campaign from Redis: its notification, results, done set and
    /// counts.
    Delete {
        /// The campaign id `push enqueue` printed.
        id: u64,
        /// Delete an unfinished campaign too, with its jobs not sent yet (a job a worker
        /// holds at that moment may still write its results).
        #[arg(long)]
        force: bool,
    },
}

/// `push campaign results --db --apply-feedback`: the store and the same safety rules as
/// `push send --apply-feedback`.
#[derive(Debug, Args)]
pub struct ResultsStoreArgs {
    /// The token store (an SQLite file or a postgres:// URL) the results are applied to.
    #[arg(long, value_name = "PATH|URL", requires = "apply_feedback")]
    pub db: Option<PathBuf>,
    /// --apply-feedback and its safety rules, as `push send`'s.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// A non-negative number of seconds.
fn seconds(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('s').parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn claim_idle_is_seconds() {
        assert_eq!(seconds("30"), Ok(30.0));
        assert_eq!(seconds("0.5s"), Ok(0.5));
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
    }
}
