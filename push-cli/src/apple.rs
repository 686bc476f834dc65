//! `push channel` and `push broadcast`: Apple's request/response APIs through push-client's
//! `BroadcastClient`, one request at a time (and the helpers of
//! [`apple_push`](crate::apple_push)).

use std::time::{SystemTime, UNIX_EPOCH};

use push_smol::push_proto::apns::broadcast::{
    BroadcastOptions, ChannelId, Environment, StoragePolicy,
};
use push_smol::push_proto::apns::http2::ApnsPriority;
use push_smol::push_proto::apns::live_activity::{ActivityAlert, Change, Content};
use push_smol::{ApnsHttp2Config, BroadcastClient, BroadcastError, HttpConfig, Smol};
use serde_json::{Map, Value};

use crate::cli_apple::{
    ActivityContentArgs, AppleApiArgs, BroadcastArgs, ChangeEvent, ChannelArgs, ChannelCommand,
    Storage,
};
use crate::config;
use crate::main_error::Failure;

/// `push channel ...`.
pub fn channel_command(args: ChannelArgs) -> Result<(), Failure> {
    let mut client = client(args.command.api())?;
    smol::block_on(async {
        match args.command {
            ChannelCommand::Create { storage, .. } => {
                let policy = match storage {
                    Storage::None => StoragePolicy::NoStorage,
                    Storage::MostRecent => StoragePolicy::MostRecent,
                };
                let id = client.create_channel(policy).await.map_err(failed)?;
                println!("{id}");
            }
            ChannelCommand::List { .. } => {
                for id in client.list_channels().await.map_err(failed)? {
                    println!("{id}");
                }
            }
            ChannelCommand::Get { id, .. } => {
                let info = client
                    .read_channel(&channel_id(&id)?)
                    .await
                    .map_err(failed)?;
                let storage = match info.storage_policy {
                    StoragePolicy::NoStorage => "none",
                    StoragePolicy::MostRecent => "most-recent",
                };
                println!("{id} storage={storage}");
            }
            ChannelCommand::Delete { id, .. } => {
                client
                    .delete_channel(&channel_id(&id)?)
                    .await
                    .map_err(failed)?;
                println!("deleted {id}");
            }
        }
        Ok(())
    })
}

/// `push broadcast ...`.
pub fn broadcast_command(args: BroadcastArgs) -> Result<(), Failure> {
    let channel = channel_id(&args.channel)?;
    let alert = match (args.title, args.body) {
        (Some(title), Some(body)) => Some(ActivityAlert {
            title,
            body,
            sound: args.sound,
        }),
        _ => None,
    };
    let content = content(&args.content, alert)?;
    let change = match args.event {
        ChangeEvent::Update if args.content.dismissal_date.is_some() => {
            return Err(Failure::Usage(
                "--dismissal-date goes with --event end only".into(),
            ));
        }
        ChangeEvent::Update => Change::Update(content),
        ChangeEvent::End => Change::End {
            content,
            dismissal_date: args.content.dismissal_date,
        },
    };
    let options = BroadcastOptions {
        priority: priority(args.content.priority.as_deref()),
        expiration: args.content.expiration,
        request_id: None,
    };
    let mut client = client(&args.api)?;
    let sent = smol::block_on(client.broadcast(&channel, &change, options)).map_err(failed)?;
    match sent.request_id {
        Some(id) => println!("broadcast to {channel}: apns-request-id {id}"),
        None => println!("broadcast to {channel}: accepted"),
    }
    Ok(())
}

/// A client for the arguments' app, URLs and credentials.
pub(crate) fn client(api: &AppleApiArgs) -> Result<BroadcastClient, Failure> {
    let environment = if api.sandbox {
        Environment::Development
    } else {
        Environment::Production
    };
    let apns_url = api
        .apns_url
        .clone()
        .unwrap_or_else(|| environment.broadcast_url().to_owned());
    let channels_url = api
        .channels_url
        .clone()
        .unwrap_or_else(|| environment.management_url().to_owned());
    let mut config = ApnsHttp2Config::new(&apns_url)
        .map_err(usage)?
        .topic(&api.apns_topic);
    let identity = match (&api.apns_key_p8, &api.apns_cert, &api.apns_key) {
        (Some(p8), _, _) => {
            let (Some(key_id), Some(team_id)) = (&api.apns_key_id, &api.apns_team_id) else {
                return Err(usage(
                    "--apns-key-p8 needs --apns-key-id and --apns-team-id",
                ));
            };
            config = config
                .provider_key_file(p8, key_id, team_id)
                .map_err(usage)?;
            None
        }
        (None, Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => {
            return Err(usage(
                "give --apns-key-p8 with --apns-key-id and --apns-team-id (token auth), or --apns-cert and --apns-key (certificate auth)",
            ));
        }
    };
    let config = config.tls(config::tls(api.apns_ca.as_deref(), identity).map_err(Failure::Usage)?);
    BroadcastClient::new(Smol, &config, &channels_url).map_err(usage)
}

/// The content of an event from the flags, with `alert`.
pub(crate) fn content(
    args: &ActivityContentArgs,
    alert: Option<ActivityAlert>,
) -> Result<Content, Failure> {
    let state = json_object("--content-state", args.content_state.as_deref())?;
    let timestamp = args.timestamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    });
    let mut content = Content::new(timestamp, state);
    if let Some(stale) = args.stale_date {
        content = content.stale_date(stale);
    }
    if let Some(score) = args.relevance_score {
        content = content.relevance_score(score);
    }
    if let Some(alert) = alert {
        content = content.alert(alert);
    }
    Ok(content)
}

/// `--priority`: 10, 5 or 1 (checked by clap).
pub(crate) fn priority(text: Option<&str>) -> Option<ApnsPriority> {
    match text? {
        "10" => Some(ApnsPriority::Immediate),
        "5" => Some(ApnsPriority::PowerAware),
        _ => Some(ApnsPriority::Lowest),
    }
}

/// A JSON object flag (`None`: `{}`).
pub(crate) fn json_object(flag: &str, text: Option<&str>) -> Result<Map<String, Value>, Failure> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Failure::Usage(format!("{flag} must be a JSON object"))),
        Err(error) => Err(Failure::Usage(format!("{flag} is not valid JSON: {error}"))),
    }
}

/// A channel id flag.
pub(crate) fn channel_id(text: &str) -> Result<ChannelId, Failure> {
    ChannelId::new(text).map_err(usage)
}

/// A usage error saying `error`.
pub(crate) fn usage(error: impl std::fmt::Display) -> Failure {
    Failure::Usage(error.to_string())
}

/// A failed call: a build error is a usage error, the rest a failed run.
pub(crate) fn failed(error: BroadcastError) -> Failure {
    match error {
        BroadcastError::Build(error) => Failure::Usage(error.to_string()),
        other => Failure::Run(other.to_string()),
    }
}
