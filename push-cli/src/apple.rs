//! `push channel`, `push broadcast` and `push send --live-activity`: Apple's request/response
//! APIs through push-client's `BroadcastClient`, one request at a time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use push_smol::push_proto::ApnsToken;
use push_smol::push_proto::apns::DeviceOptions;
use push_smol::push_proto::apns::broadcast::{
    BroadcastOptions, ChannelId, Environment, StoragePolicy,
};
use push_smol::push_proto::apns::http2::ApnsPriority;
use push_smol::push_proto::apns::live_activity::{
    ActivityAlert, Change, Content, LiveActivityPush, Start, Subscription,
};
use push_smol::{ApnsHttp2Config, BroadcastClient, BroadcastError, HttpConfig, Smol};
use serde_json::{Map, Value};

use crate::cli::{ApnsArgs, MessageArgs};
use crate::cli_apple::{
    ActivityContentArgs, ActivityEvent, AppleApiArgs, BroadcastArgs, ChangeEvent, ChannelArgs,
    ChannelCommand, LiveActivityArgs, Storage,
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
        priority: priority(&args.content),
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

/// `push send --live-activity EVENT ...`: the event to each iOS device of `devices`; one
/// line per device on standard output, exit status 1 when any was refused.
pub fn send_live_activity(
    event: ActivityEvent,
    live: &LiveActivityArgs,
    message: &MessageArgs,
    apns: &ApnsArgs,
    devices: &Path,
) -> Result<(), Failure> {
    let alert = (!live.no_alert).then(|| ActivityAlert {
        title: message.title.clone(),
        body: message.body.clone(),
        sound: message.sound.clone(),
    });
    let content = content(&live.content, alert)?;
    let push = match event {
        ActivityEvent::Start => {
            let Some(kind) = &live.attributes_type else {
                return Err(Failure::Usage(
                    "--live-activity start needs --attributes-type".into(),
                ));
            };
            let attributes = json_object("--attributes", live.attributes.as_deref())?;
            let mut start = Start::new(kind, attributes, content).map_err(usage)?;
            if let Some(id) = &live.input_push_channel {
                start = start.subscribe(Subscription::Channel(channel_id(id)?));
            } else if live.input_push_token {
                start = start.subscribe(Subscription::Token);
            }
            LiveActivityPush::Start(start)
        }
        _ if live.attributes_type.is_some() => {
            return Err(Failure::Usage(
                "--attributes-type and its options go with --live-activity start only".into(),
            ));
        }
        ActivityEvent::Update if live.content.dismissal_date.is_some() => {
            return Err(Failure::Usage(
                "--dismissal-date goes with --live-activity end only".into(),
            ));
        }
        ActivityEvent::Update => LiveActivityPush::Change(Change::Update(content)),
        ActivityEvent::End => LiveActivityPush::Change(Change::End {
            content,
            dismissal_date: live.content.dismissal_date,
        }),
    };
    push.encode().map_err(usage)?;
    let tokens = ios_tokens(devices)?;
    let (Some(url), Some(config)) = (
        &apns.apns_url,
        config::apns_http2(apns).map_err(Failure::Usage)?,
    ) else {
        return Err(Failure::Usage("--live-activity needs --apns-url".into()));
    };
    // Device pushes only: the channel-management URL is not used.
    let mut client = BroadcastClient::new(Smol, &config, url).map_err(usage)?;
    let options = DeviceOptions {
        priority: priority(&live.content),
        expiration: live.content.expiration,
        apns_id: None,
    };
    let mut refused = 0usize;
    smol::block_on(async {
        for token in &tokens {
            match client.live_activity(token, &push, options).await {
                Ok(Some(id)) => println!("{} delivered apns-id {id}", token.to_hex()),
                Ok(None) => println!("{} delivered", token.to_hex()),
                Err(error @ BroadcastError::Api(_)) => {
                    refused += 1;
                    println!("{} refused: {error}", token.to_hex());
                }
                Err(error) => return Err(failed(error)),
            }
        }
        Ok(())
    })?;
    if refused > 0 {
        return Err(Failure::Run(format!(
            "{refused} of {} Live Activity pushes refused",
            tokens.len()
        )));
    }
    Ok(())
}

/// The iOS tokens of a device-list file (`-`: standard input); other platforms are skipped.
fn ios_tokens(path: &Path) -> Result<Vec<ApnsToken>, Failure> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
        Box::new(BufReader::new(file))
    };
    let mut tokens = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::Run(format!("cannot read the devices: {e}")))?;
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some("ios"), Some(hex)) => tokens.push(
                ApnsToken::parse(hex)
                    .map_err(|e| Failure::Usage(format!("line {}: {e}", number + 1)))?,
            ),
            _ => continue,
        }
    }
    Ok(tokens)
}

/// A client for the arguments' app, URLs and credentials.
fn client(api: &AppleApiArgs) -> Result<BroadcastClient, Failure> {
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
fn content(args: &ActivityContentArgs, alert: Option<ActivityAlert>) -> Result<Content, Failure> {
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
fn priority(args: &ActivityContentArgs) -> Option<ApnsPriority> {
    match args.priority.as_deref()? {
        "10" => Some(ApnsPriority::Immediate),
        "5" => Some(ApnsPriority::PowerAware),
        _ => Some(ApnsPriority::Lowest),
    }
}

/// A JSON object flag (`None`: `{}`).
fn json_object(flag: &str, text: Option<&str>) -> Result<Map<String, Value>, Failure> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Failure::Usage(format!("{flag} must be a JSON object"))),
        Err(error) => Err(Failure::Usage(format!("{flag} is not valid JSON: {error}"))),
    }
}

fn channel_id(text: &str) -> Result<ChannelId, Failure> {
    ChannelId::new(text).map_err(usage)
}

fn usage(error: impl std::fmt::Display) -> Failure {
    Failure::Usage(error.to_string())
}

/// A failed call: a build error is a usage error, the rest a failed run.
fn failed(error: BroadcastError) -> Failure {
    match error {
        BroadcastError::Build(error) => Failure::Usage(error.to_string()),
        other => Failure::Run(other.to_string()),
    }
}
