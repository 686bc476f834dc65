//! The command line, declared with clap's derive API: one struct per subcommand.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::cli_apple::{BroadcastArgs, ChannelArgs, LiveActivityArgs, WidgetsArgs};
use crate::guard::{DEFAULT_MAX_INVALID_PERCENT, DEFAULT_MIN_ANSWERS, MaxDelete};
use crate::metrics_server::MetricsArgs;

/// A percentage, with or without its `%`.
pub(crate) fn percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text:?} is not between 0 and 100"))
    }
}

/// Send push notifications to Apple (APNs) and Google (FCM HTTP v1, legacy GCM) devices, read
/// the APNs feedback service, or try everything against loopback mock servers.
#[derive(Debug, Parser)]
#[command(name = "push", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one notification to every device of a file or a SQLite token store.
    Send(Box<SendArgs>),
    /// Read the APNs feedback service and optionally delete the tokens it names.
    Feedback(FeedbackArgs),
    /// Work on a token store: put back what feedback deleted or replaced.
    Store(StoreArgs),
    /// Manage APNs broadcast channels (iOS 18 Live Activities): create, list, get, delete.
    Channel(ChannelArgs),
    /// Send one Live Activity update or end to every device subscribed to a channel.
    Broadcast(Box<BroadcastArgs>),
    /// Ask each iOS device of a file to reload the app's widgets (a WidgetKit push:
    /// apns-push-type widgets, the topic suffix added, payload {"aps":{"content-changed":true}}).
    Widgets(Box<WidgetsArgs>),
    /// Run the mock APNs gateway, feedback service, APNs HTTP/2 server, GCM endpoint and FCM
    /// HTTP v1 server (with its OAuth2 token endpoint) until Ctrl-C.
    Mock(MockArgs),
    /// Show everything end to end: mock servers (APNs HTTP/2 with a provider token, FCM HTTP
    /// v1 with a service account, two Web Push services), a token store, one notification to
    /// every device, the feedback applied to the store, then a Live Activity broadcast channel
    /// created, used and deleted.
    Demo(DemoArgs),
    /// Measure end-to-end throughput and peak memory against in-process mock servers.
    Bench(BenchArgs),
    /// Web Push VAPID keys.
    Vapid(VapidArgs),
    /// Queue a campaign on Redis Streams for `push worker`s: store the notification once,
    /// append the devices as jobs, print the campaign id.
    Enqueue(Box<crate::redis_queue::args::EnqueueArgs>),
    /// Send the jobs queued on Redis Streams, with other workers on any machine; one result
    /// per device in the campaign's result stream.
    Worker(Box<crate::redis_queue::args::WorkerArgs>),
    /// A queued campaign's progress or results.
    Campaign(crate::redis_queue::args::CampaignArgs),
}

/// `push send`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["devices", "db"])))]
pub struct SendArgs {
    /// Device list: lines "ios <64 hex chars>", "android <registration id>" or "web
    /// <PushSubscription JSON>" (the rest of the line); blank lines and lines starting with #
    /// are ignored. "-" reads standard input.
    #[arg(long, value_name = "FILE|-")]
    pub devices: Option<PathBuf>,
    /// The token store: an SQLite file or a postgres://user:password@host:port/database
    /// URL; by default a table devices(platform TEXT, token TEXT PRIMARY KEY, updated_at
    /// BIGINT), read through a cursor (--query and the templates for another schema).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// With --db: the select that yields the devices, with columns named platform and
    /// token (aliases welcome), streamed through a cursor.
    #[arg(long, value_name = "SQL", requires = "db")]
    pub query: Option<String>,
    /// The notification.
    #[command(flatten)]
    pub message: MessageArgs,
    /// A Live Activity event instead of a notification.
    #[command(flatten)]
    pub live: LiveActivityArgs,
    /// The providers' settings.
    #[command(flatten)]
    pub providers: ProviderArgs,
    /// An app of a push.toml instead of the provider flags.
    #[command(flatten)]
    pub app: AppArgs,
    /// Write one JSON object per line: {"platform","token","error","new_token"} plus details
    /// (APNs reports only failures; FCM and GCM report every token; malformed input lines
    /// carry their line number).
    #[arg(long, value_name = "FILE.jsonl")]
    pub feedback: Option<PathBuf>,
    /// --apply-feedback and its safety rules.
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// Continue an interrupted run (its id is printed when it starts): devices that already
    /// have their result are left out, the feedback file is appended to. Give the same
    /// source and notification as the first time.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// After the first Ctrl-C (or a failed write), how many seconds the devices in flight
    /// may take to finish before the run gives up on them (a second Ctrl-C exits at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub stop_wait: u64,
    /// Devices sent and still without feedback at most: bounds what a Ctrl-C waits for and
    /// what a crash can send twice (this plus 2,024), at no cost to throughput as long as it
    /// is above what the providers have in flight (1,000 streams per HTTP/2 connection; the
    /// binary gateway holds each notification for its grace period).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub in_flight: u64,
    /// Connections to keep to each HTTP provider: APNs (--apns-url) and FCM
    /// (--fcm-service-account) over HTTP/2, GCM (--gcm-url) over HTTP/1.1, one request at a
    /// time each; requests go to the least busy one. Default: as the load asks, up to 8 (GCM 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: Option<u16>,
    /// Most requests per second to each HTTP provider (APNs --apns-url, FCM, GCM), over all
    /// its connections. Default: as fast as the provider accepts; a 429 for the whole route
    /// (FCM's project quota, APNs' provider-wide limit) slows push down, clean answers let it
    /// speed up again.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// How long the send may take (`90s`, `10m`, `1h`, `500ms`; a bare number is seconds):
    /// devices without feedback by then end `unavailable` with the reason ("the session's
    /// deadline passed"), the ones read later at once, and the command exits. Devices on
    /// the binary gateway (--apns) still end within their grace period.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub deadline: Option<std::time::Duration>,
    /// No progress bar and no summary.
    #[arg(long)]
    pub quiet: bool,
    /// Prometheus metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// `--apply-feedback` with `--db` and its safety rules, the same for `push send` and
/// `push campaign results`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// With --db: delete the tokens reported invalid_device and replace those that have a
    /// new canonical id (GCM only: FCM HTTP v1 has none); each change is journaled (`push
    /// store restore` undoes it).
    #[arg(long, requires = "db")]
    pub apply_feedback: bool,
    /// With --apply-feedback: change nothing, report what would change (every store
    /// transaction is rolled back).
    #[arg(long, requires = "apply_feedback")]
    pub dry_run_store: bool,
    /// With --apply-feedback: at most N deletions, or P% of the store's devices ("5%");
    /// further deletions are not applied and the command exits with status 1.
    #[arg(long, value_name = "N|P%", requires = "apply_feedback")]
    pub max_delete: Option<MaxDelete>,
    /// With --apply-feedback: a provider whose share of invalid_device answers is over this
    /// percentage is stopped: none of its deletions is applied (`push send` sends none of its
    /// remaining devices), one line names the likely cause and the command exits with
    /// status 1.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_INVALID_PERCENT, value_parser = percent)]
    pub max_invalid: f64,
    /// With --apply-feedback: answers a provider must give before any of its deletions is
    /// applied (they are held back until then; a smaller run is judged at its end).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MIN_ANSWERS)]
    pub hold_deletions: u64,
    /// With --apply-feedback: the statement(s) run for an invalid device, with the named
    /// parameters :token, :platform, :unregistered_at (UNIX seconds or NULL), :reason, :now.
    /// Default: delete the row of devices unless updated_at is newer.
    #[arg(long, value_name = "SQL", requires = "apply_feedback")]
    pub on_invalid: Option<String>,
    /// With --apply-feedback: the statement(s) run for a canonical id, with :token,
    /// :new_token, :platform, :now. Default: replace the token (or delete the row when the
    /// new token is already stored).
    #[arg(long, value_name = "SQL", requires = "apply_feedback")]
    pub on_new_token: Option<String>,
}

/// `push send --config push.toml --app NAME`: the providers of an app of the file.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// The apps file (see README, "Running at scale").
    #[arg(long, value_name = "push.toml", requires = "app")]
    pub config: Option<PathBuf>,
    /// Send with this app's provider settings from --config; refused together with provider
    /// flags (--apns-url, --apns, --fcm-service-account, --gcm-url, --vapid-key).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub app: Option<String>,
}

/// The notification's content.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// Title shown above the body.
    #[arg(long, value_name = "TEXT")]
    pub title: String,
    /// The message text.
    #[arg(long, value_name = "TEXT")]
    pub body: String,
    /// Custom data, a JSON object such as '{"order":42}'.
    #[arg(long, value_name = "JSON_OBJECT")]
    pub data: Option<String>,
    /// App icon badge number.
    #[arg(long, value_name = "N")]
    pub badge: Option<u32>,
    /// Sound to play ("default" or a bundled sound name).
    #[arg(long, value_name = "NAME")]
    pub sound: Option<String>,
}

/// The settings of every provider: what a client is built from, by flags or by an app of a
/// push.toml (which never sets legacy GCM: it takes a key, not a path).
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// APNs settings.
    #[command(flatten)]
    pub apns: ApnsArgs,
    /// GCM settings.
    #[command(flatten)]
    pub gcm: GcmArgs,
    /// FCM HTTP v1 settings.
    #[command(flatten)]
    pub fcm: FcmArgs,
    /// Web Push settings.
    #[command(flatten)]
    pub web: WebArgs,
}

impl ProviderArgs {
    /// Whether any provider is named (with an app, the provider flags are refused or, for a
    /// worker, send the campaigns without one).
    pub fn any_given(&self) -> bool {
        self.apns.apns.is_some()
            || self.apns.apns_url.is_some()
            || self.gcm.gcm_url.is_some()
            || self.fcm.fcm_service_account.is_some()
            || self.web.vapid_key.is_some()
    }
}

/// APNs settings: the binary gateway (`--apns`) or the HTTP/2 provider API (`--apns-url`).
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("apns_service").args(["apns", "apns_url"])))]
pub struct ApnsArgs {
    /// The legacy APNs binary gateway, e.g. gateway.push.apple.com:2195 (certificate auth).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["apns_cert", "apns_key"])]
    pub apns: Option<String>,
    /// With --apns: whether a full resend window ends with a checkpoint, a frame the gateway
    /// must reject, whose answer confirms the window at once (`on`); `off` waits the grace
    /// period instead, for a gateway that treats malformed frames as abuse.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub apns_checkpoints: bool,
    /// The APNs HTTP/2 provider API, e.g. https://api.push.apple.com (or
    /// https://api.sandbox.push.apple.com): iOS devices go over HTTP/2 instead of the binary
    /// gateway. Authenticate with --apns-key-p8, --apns-key-id, --apns-team-id (token) or with
    /// --apns-cert, --apns-key (certificate).
    #[arg(long, value_name = "URL", conflicts_with = "apns")]
    pub apns_url: Option<String>,
    /// With --apns-url: the apns-topic, usually the app's bundle id (required with token
    /// auth).
    #[arg(long, value_name = "BUNDLE_ID", requires = "apns_url")]
    pub apns_topic: Option<String>,
    /// With --apns-url: the apns-push-type (alert, background, voip, liveactivity,
    /// complication, fileprovider, mdm, location, pushtotalk); by default alert.
    #[arg(long, value_name = "TYPE", requires = "apns_url")]
    pub apns_push_type: Option<push_smol::push_proto::apns::http2::PushType>,
    /// With --apns-url: the provider token signing key (.p8, PEM) from Apple's developer
    /// account. Never printed.
    #[arg(
        long,
        value_name = "FILE.p8",
        requires_all = ["apns_url", "apns_key_id", "apns_team_id", "apns_topic"],
        conflicts_with_all = ["apns_cert", "apns_key"]
    )]
    pub apns_key_p8: Option<PathBuf>,
    /// The 10-character key id of --apns-key-p8.
    #[arg(long, value_name = "ID", requires = "apns_key_p8")]
    pub apns_key_id: Option<String>,
    /// The 10-character team id that --apns-key-p8 belongs to.
    #[arg(long, value_name = "ID", requires = "apns_key_p8")]
    pub apns_team_id: Option<String>,
    /// Client certificate (PEM) presented to APNs (certificate auth).
    #[arg(long, value_name = "PEM", requires = "apns_service")]
    pub apns_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, value_name = "PEM", requires = "apns_service")]
    pub apns_key: Option<PathBuf>,
    /// Trust only this CA (PEM) for APNs instead of the public roots.
    #[arg(long, value_name = "PEM", requires = "apns_service")]
    pub apns_ca: Option<PathBuf>,
}

/// GCM settings.
#[derive(Debug, Clone, Args)]
pub struct GcmArgs {
    /// The legacy GCM endpoint, e.g. https://gcm-http.googleapis.com/gcm/send (unused for
    /// Android devices when --fcm-service-account is given: FCM wins).
    #[arg(long, value_name = "URL", requires = "gcm_key")]
    pub gcm_url: Option<String>,
    /// The server API key; prefer the environment variable, which stays out of shell history.
    /// Never printed.
    #[arg(long, value_name = "KEY", env = "PUSH_GCM_KEY", hide_env_values = true)]
    pub gcm_key: Option<String>,
    /// Trust only this CA (PEM) for the GCM endpoint instead of the public roots.
    #[arg(long, value_name = "PEM", requires = "gcm_url")]
    pub gcm_ca: Option<PathBuf>,
    /// Registration ids per GCM request, 1 to 1000.
    #[arg(long, value_name = "N", requires = "gcm_url")]
    pub gcm_batch: Option<usize>,
}

/// FCM HTTP v1 settings: the live Android protocol, authenticated as a service account.
#[derive(Debug, Clone, Args)]
pub struct FcmArgs {
    /// The service-account JSON key file from the Firebase console: Android devices go
    /// through FCM HTTP v1. With --gcm-url (legacy GCM) also given, FCM wins: every Android
    /// device goes through FCM. The private key is never printed.
    #[arg(long, value_name = "FILE.json")]
    pub fcm_service_account: Option<PathBuf>,
    /// The Firebase project to send for (default: the service account's project_id).
    #[arg(long, value_name = "ID", requires = "fcm_service_account")]
    pub fcm_project: Option<String>,
    /// The FCM API (default https://fcm.googleapis.com).
    #[arg(long, value_name = "URL", requires = "fcm_service_account")]
    pub fcm_url: Option<String>,
    /// The OAuth2 token endpoint (default: the service account's token_uri).
    #[arg(long, value_name = "URL", requires = "fcm_service_account")]
    pub fcm_token_url: Option<String>,
    /// Trust only this CA (PEM) for FCM and its token endpoint instead of the public roots.
    #[arg(long, value_name = "PEM", requires = "fcm_service_account")]
    pub fcm_ca: Option<PathBuf>,
    /// Ask FCM to validate every message without delivering it (validate_only): bad tokens
    /// and invalid messages are still reported. Only FCM has it: iOS devices, and Android
    /// devices sent through legacy GCM, are still delivered.
    #[arg(long, requires = "fcm_service_account")]
    pub dry_run: bool,
}

/// Web Push settings: browsers (`web` devices) through their subscriptions' push services.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// The VAPID private key: a PEM file (PKCS#8 or SEC1, as `push vapid generate` writes) or
    /// a file holding the raw key in base64url. Web devices are sent with it; the web app must
    /// have subscribed with its public key. Never printed.
    #[arg(long, value_name = "FILE", requires = "vapid_subject")]
    pub vapid_key: Option<PathBuf>,
    /// The contact the push services may reach: mailto:you@example.com or an https: URL.
    #[arg(long, value_name = "mailto:...|https:...", requires = "vapid_key")]
    pub vapid_subject: Option<String>,
    /// Trust only this CA (PEM) for the push services instead of the public roots (for
    /// `push mock`'s).
    #[arg(long, value_name = "PEM", requires = "vapid_key")]
    pub web_ca: Option<PathBuf>,
    /// Seconds a push service keeps the message for an offline browser (default 4 weeks).
    #[arg(long, value_name = "SECONDS", requires = "vapid_key")]
    pub web_ttl: Option<u32>,
    /// The Urgency of the message: very-low, low, normal or high.
    #[arg(long, value_name = "URGENCY", requires = "vapid_key")]
    pub web_urgency: Option<push_smol::push_proto::webpush::Urgency>,
    /// The Topic of the message (1 to 32 of A-Z a-z 0-9 - _): replaces an undelivered one
    /// with the same topic.
    #[arg(long, value_name = "TOPIC", requires = "vapid_key")]
    pub web_topic: Option<String>,
    /// Send the declarative form (`"web_push": 8030`) that Safari shows by itself, opening
    /// this URL on a click; without it, the plain JSON for the page's service worker.
    #[arg(long, value_name = "URL", requires = "vapid_key")]
    pub web_navigate: Option<String>,
}

/// `push vapid`.
#[derive(Debug, Args)]
pub struct VapidArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VapidCommand,
}

/// The `push vapid` subcommands.
#[derive(Debug, Subcommand)]
pub enum VapidCommand {
    /// Make a new VAPID key pair: the private key goes to a PKCS#8 PEM file (for
    /// --vapid-key), the public key is printed in base64url (the web app's
    /// applicationServerKey).
    Generate(VapidGenerateArgs),
}

/// `push vapid generate`.
#[derive(Debug, Args)]
pub struct VapidGenerateArgs {
    /// Where to write the private key (refused if the file exists).
    #[arg(long, value_name = "FILE.pem")]
    pub out: PathBuf,
}

/// `push feedback`.
#[derive(Debug, Args)]
pub struct FeedbackArgs {
    /// The APNs feedback service, e.g. feedback.push.apple.com:2196.
    #[arg(long, value_name = "HOST:PORT")]
    pub apns_feedback: String,
    /// Client certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub apns_cert: PathBuf,
    /// Private key (PEM) of the client certificate.
    #[arg(long, value_name = "PEM")]
    pub apns_key: PathBuf,
    /// Trust only this CA (PEM) instead of the public roots.
    #[arg(long, value_name = "PEM")]
    pub apns_ca: Option<PathBuf>,
    /// Write the JSONL lines to this file instead of standard output.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    /// The token store with today's table devices: an SQLite file or a postgres:// URL
    /// (see `push send --db`).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// With --db: delete each reported token unless it was registered again
    /// (updated_at) after the service's timestamp.
    #[arg(long, requires = "db")]
    pub apply_feedback: bool,
}

/// `push store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The `push store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Undo, newest first, the deletions and replacements journaled since a time (each at
    /// most once).
    Restore(RestoreArgs),
}

/// `push store restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The token store: an SQLite file or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL")]
    pub db: PathBuf,
    /// The statement(s) that put back a deleted device, with :token, :platform,
    /// :updated_at (as journaled), :now. Default: insert the row into devices.
    #[arg(long, value_name = "SQL")]
    pub on_restore_invalid: Option<String>,
    /// The statement(s) that change a replaced token back, with :token (the old one),
    /// :new_token, :platform, :now. Default: update devices.
    #[arg(long, value_name = "SQL")]
    pub on_restore_new_token: Option<String>,
    /// From when: UNIX seconds, a duration ago (30m, 12h, 7d) or a UTC time
    /// (2025-01-31T12:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: String,
    /// Report what would be put back without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// `push mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Directory for the generated CA, server and client certificates (default: a
    /// temporary directory removed at exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long = "for", value_name = "SECONDS")]
    pub for_secs: Option<u64>,
    /// An APNs token (64 hex chars) the gateway rejects as invalid (status 8), the HTTP/2
    /// server answers 400 BadDeviceToken and the feedback service reports; repeatable.
    #[arg(long, value_name = "HEX")]
    pub bad_token: Vec<String>,
    /// A GCM registration id answered NotRegistered; repeatable.
    #[arg(long, value_name = "TOKEN")]
    pub gcm_not_registered: Vec<String>,
    /// A GCM registration id answered with a canonical id, as OLD=NEW; repeatable.
    #[arg(long, value_name = "OLD=NEW")]
    pub gcm_canonical: Vec<String>,
    /// How the mock APNs HTTP/2 server authenticates: "token" (a .p8 provider key is
    /// generated next to the certificates) or "certificate" (the client certificate).
    #[arg(long, value_name = "token|certificate", default_value = "token", value_parser = ["token", "certificate"])]
    pub http2_auth: String,
    /// The apns-topic (bundle id) the mock APNs HTTP/2 server expects.
    #[arg(long, value_name = "BUNDLE_ID", default_value = "com.example.app")]
    pub apns_topic: String,
    /// An FCM registration token the mock FCM server answers UNREGISTERED; repeatable.
    #[arg(long, value_name = "TOKEN")]
    pub fcm_unregistered: Vec<String>,
    /// The API key the mock GCM endpoint expects.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "test-api-key",
        hide_default_value = true
    )]
    pub gcm_key: String,
    /// Milliseconds the mock APNs HTTP/2 and FCM servers wait before each answer (a stand-in
    /// for the network round trip, as `push bench --latency`); 0 for none.
    #[arg(long = "latency", value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
}

/// `push demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Devices in the generated token store.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub devices: u64,
    /// Keep the token store (devices.sqlite) and the feedback (feedback.jsonl) in this
    /// directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Send iOS devices through the legacy binary gateway instead of the HTTP/2 provider API.
    #[arg(long)]
    pub apns_binary: bool,
    /// Send Android devices through the legacy GCM HTTP API (API key, canonical ids) instead
    /// of FCM HTTP v1 (service account).
    #[arg(long)]
    pub gcm_legacy: bool,
}

/// `push bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Notifications per provider (and raw frames for the baseline).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub devices: u64,
    /// Registration ids per GCM request.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub gcm_batch: usize,
    /// APNs resend window (notifications held until confirmed): it bounds memory, and with
    /// --apns-checkpoints off, throughput (window / grace).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub apns_window: usize,
    /// APNs checkpoints: whether a full window ends with a frame the gateway must reject,
    /// which confirms the window at once (`on`, the client's default) instead of after the
    /// grace period (`off`).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub apns_checkpoints: bool,
    /// APNs grace period in milliseconds: how long a notification must go unchallenged to
    /// count as delivered.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub apns_grace_ms: u64,
    /// HTTP/2 connections per provider for apns-http2 and fcm: `auto` (the default) leaves
    /// them to the push client's automatic pool (as many as the load asks, up to 8), a
    /// number N fixes them (the client's `connections(n)`, FCM also `max_in_flight` 1000 per
    /// connection). The raw baselines use N connections (the notifications split evenly
    /// between them), 1 with `auto`.
    #[arg(long, value_name = "N|auto", default_value = "auto", value_parser = parse_connections)]
    pub connections: Connections,
    /// Milliseconds the mock APNs HTTP/2 and FCM servers wait before each answer (a stand-in
    /// for the network round trip), for the push and the raw parts alike; 0 for none.
    #[arg(long = "latency", value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// The sliding window of fcm-quota's quota, seconds (it admits a tenth of the devices per
    /// window): 1 by default; 10 with 200,000 devices is issue 12's send (20,000 per 10 s).
    #[arg(long = "quota-window", value_name = "SECONDS", default_value_t = 1)]
    pub quota_window_secs: u64,
    /// Concurrent streams the mock APNs HTTP/2 and FCM servers allow per connection, for the
    /// push and the raw parts alike (1 to 1000, the clients' own cap): fewer streams make a
    /// connection's window, not the CPU, the limit under --latency.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub streams: u32,
    /// Only run these parts (raw, apns, raw-apns-http2, apns-http2, gcm, raw-fcm, fcm,
    /// fcm-quota, raw-webpush, webpush); repeatable; default all. raw-apns-http2, raw-fcm and
    /// raw-webpush are raw h2 clients sending one pre-built request over and over (for Web
    /// Push, one message encrypted once), the baselines of apns-http2, fcm and webpush;
    /// fcm-quota sends through the push client to a mock FCM whose project quota admits a
    /// tenth of the devices per sliding window (about ten windows at least), with
    /// `Retry-After` and without, and reports the rate achieved as a share of the quota's
    /// rate and the share of 429s.
    #[arg(long, value_name = "PART")]
    pub only: Vec<String>,
}

/// `on` or `off`.
/// A duration: a number with `ms`, `s`, `m` or `h` (seconds without a unit).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 90s, 10m, 500ms)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{other:?}: expected ms, s, m or h")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other}: expected on or off")),
    }
}

/// How many HTTP/2 connections `push bench` uses per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// The push client's automatic pool.
    Auto,
    /// Exactly this many (at least 1).
    Fixed(u16),
}

/// Parses `auto` or a number from 1 to 65535.
fn parse_connections(text: &str) -> Result<Connections, String> {
    if text == "auto" {
        return Ok(Connections::Auto);
    }
    match text.parse::<u16>() {
        Ok(n) if n >= 1 => Ok(Connections::Fixed(n)),
        _ => Err(format!(
            "{text:?} is neither auto nor a number from 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{Connections, parse_connections, parse_on_off};

    #[test]
    fn checkpoints_are_on_or_off() {
        assert_eq!(parse_on_off("on"), Ok(true));
        assert_eq!(parse_on_off("off"), Ok(false));
        assert!(parse_on_off("yes").is_err());
    }

    #[test]
    fn bench_connections_are_auto_or_a_positive_number() {
        assert_eq!(parse_connections("auto"), Ok(Connections::Auto));
        assert_eq!(parse_connections("4"), Ok(Connections::Fixed(4)));
        assert!(parse_connections("0").is_err());
        assert!(parse_connections("many").is_err());
    }
}
