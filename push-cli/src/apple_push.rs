//! Apple's single device pushes from the command line: `push send --live-activity` and
//! `push widgets`, one request per device token through push-client's `BroadcastClient`.

use std::io::{BufRead, BufReader};
use std::path::Path;

use push_smol::push_proto::ApnsToken;
use push_smol::push_proto::apns::DeviceOptions;
use push_smol::push_proto::apns::http2::ApnsId;
use push_smol::push_proto::apns::live_activity::{
    ActivityAlert, Change, LiveActivityPush, Start, Subscription,
};
use push_smol::{BroadcastClient, BroadcastError, Smol};

use crate::apple::{channel_id, client, content, failed, json_object, priority, usage};
use crate::cli::{ApnsArgs, MessageArgs};
use crate::cli_apple::{ActivityEvent, LiveActivityArgs, WidgetsArgs};
use crate::config;
use crate::main_error::Failure;

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
        priority: priority(live.content.priority.as_deref()),
        expiration: live.content.expiration,
        apns_id: None,
    };
    send_each("Live Activity", &tokens, async |token| {
        client.live_activity(token, &push, options).await
    })
}

/// `push widgets --devices FILE ...`: a widget push (`apns-push-type: widgets`, the topic
/// `<bundle id>.push-type.widgets`, `{"aps":{"content-changed":true}}`) to each iOS device
/// of the file; one line per device, exit status 1 when any was refused.
pub fn widgets_command(args: WidgetsArgs) -> Result<(), Failure> {
    let tokens = ios_tokens(&args.devices)?;
    let mut client = client(&args.api)?;
    let options = DeviceOptions {
        priority: priority(args.priority.as_deref()),
        expiration: args.expiration,
        apns_id: None,
    };
    send_each("widget", &tokens, async |token| {
        client.widgets(token, options).await
    })
}

/// Sends to each of `tokens` with `send`, one at a time: prints one line per token, and
/// fails the run when any was refused (a transport error ends it at once).
fn send_each(
    what: &str,
    tokens: &[ApnsToken],
    mut send: impl AsyncFnMut(&ApnsToken) -> Result<Option<ApnsId>, BroadcastError>,
) -> Result<(), Failure> {
    let mut refused = 0usize;
    smol::block_on(async {
        for token in tokens {
            match send(token).await {
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
            "{refused} of {} {what} pushes refused",
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
