//! The demo's broadcast part: on the HTTP/2 mock, create a channel, broadcast a Live
//! Activity update and end on it (over the demo client's APNs connections, with its provider
//! token), delete it, and check that a broadcast to the deleted channel is refused
//! `ChannelNotRegistered`.

use std::time::{SystemTime, UNIX_EPOCH};

use push_mock::MockApnsHttp2;
use push_smol::Client;
use push_smol::push_proto::apns::broadcast::{BroadcastOptions, BroadcastReason, StoragePolicy};
use push_smol::push_proto::apns::live_activity::{Change, Content};
use serde_json::{Map, Value};

/// Runs the broadcast part against `server` with the demo's `client` (whose APNs HTTP/2
/// connections go to `server`, which also serves the channel API); prints what happened.
pub fn show(server: &MockApnsHttp2, client: &Client) -> Result<(), String> {
    let mut client = client
        .broadcasts(&server.url())
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let state = |score: &str| {
        let mut state = Map::new();
        state.insert("score".into(), Value::from(score));
        state
    };
    smol::block_on(async {
        let id = client
            .create_channel(StoragePolicy::MostRecent)
            .await
            .map_err(|e| format!("creating a channel: {e}"))?;
        let update = Change::Update(Content::new(now, state("1-0")));
        let end = Change::End {
            content: Content::new(now + 1, state("2-0")),
            dismissal_date: Some(now + 3600),
        };
        for change in [&update, &end] {
            client
                .broadcast(&id, change, BroadcastOptions::default())
                .await
                .map_err(|e| format!("broadcasting: {e}"))?;
        }
        client
            .delete_channel(&id)
            .await
            .map_err(|e| format!("deleting the channel: {e}"))?;
        let refused = client
            .broadcast(&id, &update, BroadcastOptions::default())
            .await;
        let reason = refused.as_ref().err().and_then(|error| error.reason());
        if reason != Some(&BroadcastReason::ChannelNotRegistered) {
            return Err(format!(
                "a broadcast to the deleted channel was not refused ChannelNotRegistered: {refused:?}"
            ));
        }
        let received = server.broadcast_count(id.as_str());
        if received != 2 {
            return Err(format!("the channel received {received} broadcasts, not 2"));
        }
        println!(
            "broadcast: channel {id} created, a Live Activity update and end broadcast on it over the client's APNs connections ({received} received), deleted; a broadcast to it now is refused ChannelNotRegistered"
        );
        Ok(())
    })
}
