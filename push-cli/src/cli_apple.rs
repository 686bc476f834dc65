//! The command line of Apple's broadcast channels, Live Activities and widget pushes: `push
//! channel`, `push broadcast`, `push widgets`, and the `--live-activity` flags of `push send`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

/// How to reach and authenticate to APNs for channels, broadcasts and Live Activity pushes.
#[derive(Debug, Clone, Args)]
pub struct AppleApiArgs {
    /// The device API, where broadcasts go (default https://api.push.apple.com, or
    /// https://api.sandbox.push.apple.com with --sandbox).
    #[arg(long, value_name = "URL")]
    pub apns_url: Option<String>,
    /// The channel-management API (default
    /// https://api-manage-broadcast.push.apple.com:2196, or
    /// https://api-manage-broadcast.sandbox.push.apple.com:2195 with --sandbox).
    #[arg(long, value_name = "URL")]
    pub channels_url: Option<String>,
    /// Use Apple's development environment (channels exist in one environment only).
    #[arg(long)]
    pub sandbox: bool,
    /// The app's bundle id.
    #[arg(long, value_name = "BUNDLE_ID")]
    pub apns_topic: String,
    /// The provider token signing key (.p8, PEM). Never printed.
    #[arg(long, value_name = "FILE.p8", requires_all = ["apns_key_id", "apns_team_id"], conflicts_with_all = ["apns_cert", "apns_key"])]
    pub apns_key_p8: Option<PathBuf>,
    /// The 10-character key id of --apns-key-p8.
    #[arg(long, value_name = "ID", requires = "apns_key_p8")]
    pub apns_key_id: Option<String>,
    /// The 10-character team id that --apns-key-p8 belongs to.
    #[arg(long, value_name = "ID", requires = "apns_key_p8")]
    pub apns_team_id: Option<String>,
    /// Client certificate (PEM) presented to APNs (certificate auth).
    #[arg(long, value_name = "PEM", requires = "apns_key")]
    pub apns_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, value_name = "PEM", requires = "apns_cert")]
    pub apns_key: Option<PathBuf>,
    /// Trust only this CA (PEM) instead of the public roots.
    #[arg(long, value_name = "PEM")]
    pub apns_ca: Option<PathBuf>,
}

/// `push channel`.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// The operation.
    #[command(subcommand)]
    pub command: ChannelCommand,
}

/// The channel operations.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel; prints its id.
    Create {
        /// What APNs keeps of a broadcast for devices that are offline.
        #[arg(long, value_enum, default_value_t = Storage::None)]
        storage: Storage,
        /// Connection and credentials.
        #[command(flatten)]
        api: AppleApiArgs,
    },
    /// List the app's channels, one id per line.
    List {
        /// Connection and credentials.
        #[command(flatten)]
        api: AppleApiArgs,
    },
    /// Show a channel's storage policy.
    Get {
        /// The channel id.
        id: String,
        /// Connection and credentials.
        #[command(flatten)]
        api: AppleApiArgs,
    },
    /// Delete a channel.
    Delete {
        /// The channel id.
        id: String,
        /// Connection and credentials.
        #[command(flatten)]
        api: AppleApiArgs,
    },
}

impl ChannelCommand {
    /// The connection and credentials of any operation.
    pub fn api(&self) -> &AppleApiArgs {
        match self {
            ChannelCommand::Create { api, .. }
            | ChannelCommand::List { api }
            | ChannelCommand::Get { api, .. }
            | ChannelCommand::Delete { api, .. } => api,
        }
    }
}

/// A channel's message storage policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    /// Keep nothing: a broadcast to an offline device is dropped (and must have expiration 0).
    None,
    /// Keep the most recent broadcast for offline devices.
    MostRecent,
}

/// The Live Activity content every event carries, and its optional fields.
#[derive(Debug, Clone, Args)]
pub struct ActivityContentArgs {
    /// The activity's ContentState as a JSON object (default {}).
    #[arg(long, value_name = "JSON_OBJECT")]
    pub content_state: Option<String>,
    /// The event's timestamp, UNIX seconds (default: now).
    #[arg(long, value_name = "UNIX")]
    pub timestamp: Option<u64>,
    /// When the activity shows as outdated, UNIX seconds.
    #[arg(long, value_name = "UNIX")]
    pub stale_date: Option<u64>,
    /// With the end event: when the ended activity leaves the Lock Screen, UNIX seconds.
    #[arg(long, value_name = "UNIX")]
    pub dismissal_date: Option<u64>,
    /// Orders the app's activities (higher first).
    #[arg(long, value_name = "NUMBER")]
    pub relevance_score: Option<f64>,
    /// With 10 (immediate, default), 5 or 1.
    #[arg(long, value_name = "10|5|1", value_parser = ["10", "5", "1"])]
    pub priority: Option<String>,
    /// apns-expiration, UNIX seconds (0: deliver now or never).
    #[arg(long, value_name = "UNIX")]
    pub expiration: Option<u64>,
}

impl ActivityContentArgs {
    /// True when any of the flags was given.
    pub fn any_given(&self) -> bool {
        self.content_state.is_some()
            || self.timestamp.is_some()
            || self.stale_date.is_some()
            || self.dismissal_date.is_some()
            || self.relevance_score.is_some()
            || self.priority.is_some()
            || self.expiration.is_some()
    }
}

/// The event of a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangeEvent {
    /// `event: update`.
    Update,
    /// `event: end`.
    End,
}

/// `push broadcast`.
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The channel id (from `push channel create`).
    #[arg(long, value_name = "ID")]
    pub channel: String,
    /// The Live Activity event.
    #[arg(long, value_enum, default_value_t = ChangeEvent::Update)]
    pub event: ChangeEvent,
    /// Alert title (with --body: the event also alerts).
    #[arg(long, value_name = "TEXT", requires = "body")]
    pub title: Option<String>,
    /// Alert body.
    #[arg(long, value_name = "TEXT", requires = "title")]
    pub body: Option<String>,
    /// Alert sound (a sound file of the app, or "default").
    #[arg(long, value_name = "NAME", requires = "title")]
    pub sound: Option<String>,
    /// The content.
    #[command(flatten)]
    pub content: ActivityContentArgs,
    /// Connection and credentials.
    #[command(flatten)]
    pub api: AppleApiArgs,
}

/// `push widgets`.
#[derive(Debug, Args)]
pub struct WidgetsArgs {
    /// Device list: lines "ios <64 hex chars>"; other lines are skipped. "-" reads standard
    /// input.
    #[arg(long, value_name = "FILE|-")]
    pub devices: PathBuf,
    /// apns-priority: 10 (at once), 5 or 1 (power-aware); none sent by default (APNs'
    /// default applies; Apple's pages name no rule for widget pushes).
    #[arg(long, value_name = "10|5|1", value_parser = ["10", "5", "1"])]
    pub priority: Option<String>,
    /// apns-expiration: until when (UNIX seconds) APNs keeps trying; 0 or none: once.
    #[arg(long, value_name = "UNIX")]
    pub expiration: Option<u64>,
    /// Connection and credentials (--channels-url is not used).
    #[command(flatten)]
    pub api: AppleApiArgs,
}

/// A Live Activity event sent to device tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActivityEvent {
    /// Push-to-start (iOS 17.2): needs --attributes-type.
    Start,
    /// `event: update`.
    Update,
    /// `event: end`.
    End,
}

/// `push send --live-activity`: the flags of a Live Activity push to each iOS device of
/// --devices (over --apns-url; --title and --body are its alert, --sound its sound).
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("subscription").args(["input_push_channel", "input_push_token"])))]
pub struct LiveActivityArgs {
    /// Send a Live Activity event instead of a notification, to each iOS device of
    /// --devices (needs --apns-url and --apns-topic, the bundle id).
    #[arg(
        long,
        value_enum,
        value_name = "start|update|end",
        requires = "apns_url"
    )]
    pub live_activity: Option<ActivityEvent>,
    /// With --live-activity start: the ActivityAttributes type name.
    #[arg(long, value_name = "NAME", requires = "live_activity")]
    pub attributes_type: Option<String>,
    /// With --live-activity start: the static attributes as a JSON object (default {}).
    #[arg(long, value_name = "JSON_OBJECT", requires = "attributes_type")]
    pub attributes: Option<String>,
    /// With --live-activity start: the started activity receives this channel's broadcasts
    /// (iOS 18).
    #[arg(long, value_name = "ID", requires = "attributes_type")]
    pub input_push_channel: Option<String>,
    /// With --live-activity start: the started activity gets an update token (iOS 18).
    #[arg(long, requires = "attributes_type")]
    pub input_push_token: bool,
    /// With --live-activity: no alert (--title and --body are not shown).
    #[arg(long, requires = "live_activity")]
    pub no_alert: bool,
    /// The content.
    #[command(flatten)]
    pub content: ActivityContentArgs,
}
