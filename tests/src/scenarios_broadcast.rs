//! Scenarios of Apple's broadcast channels, Live Activity and widget pushes: push-client's
//! [`BroadcastClient`] against push-mock's APNs HTTP/2 server (which serves the channel
//! API on the same port as the device API; the client still opens a connection of its own
//! for channel management, as Apple serves it on other hosts).

use std::time::Duration;

use push_client::{
    ApnsHttp2Config, BroadcastClient, BroadcastError, Client, Device, HttpConfig, Runtime,
};
use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2};
use push_proto::apns::DeviceOptions;
use push_proto::apns::broadcast::{
    ApiError, BroadcastOptions, BroadcastReason, ChannelId, StoragePolicy,
};
use push_proto::apns::http2::{PushType, Reason};
use push_proto::apns::live_activity::{
    ActivityAlert, Change, Content, LiveActivityPush, Start, Subscription,
};
use serde_json::{Map, Value, json};

use crate::{mock_tls, payload, send_all, shifted_client, token, within};

const LIMIT: Duration = Duration::from_secs(120);
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";

/// A mock with token auth for [`TOPIC`], changed by `options`, and a client for it.
fn setup<R: Runtime>(
    options: impl FnOnce(Http2Options) -> Http2Options,
) -> (MockApnsHttp2, BroadcastClient<R>) {
    let (server, apns) = mock_and_config(options);
    let client = BroadcastClient::new(R::default(), &apns, &server.url()).expect("client");
    (server, client)
}

/// A mock with token auth for [`TOPIC`], changed by `options`, and the settings for it.
fn mock_and_config(
    options: impl FnOnce(Http2Options) -> Http2Options,
) -> (MockApnsHttp2, ApnsHttp2Config) {
    let certs = Certificates::generate().expect("certificates");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("P-256 key")
        .serialize_pem();
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &key).expect("public key");
    let server = MockApnsHttp2::start(options(Http2Options::new(auth).topic(TOPIC)), &certs)
        .expect("mock APNs HTTP/2 server");
    let apns = ApnsHttp2Config::new(&server.url())
        .expect("URL")
        .topic(TOPIC)
        .tls(mock_tls(&certs))
        .provider_key_pem(&key, KEY_ID, TEAM_ID)
        .expect("provider key");
    (server, apns)
}

fn state(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn reason_of<T: std::fmt::Debug>(result: Result<T, BroadcastError>) -> (u16, BroadcastReason) {
    match result {
        Err(BroadcastError::Api(ApiError::Rejected { status, reason, .. })) => {
            (status.as_u16(), reason)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Create a channel, find it in the list, read it, broadcast an update and an end on it,
/// delete it: a broadcast to the deleted channel is the typed `ChannelNotRegistered`.
pub async fn apns_broadcast_channel_lifecycle<R: Runtime>() {
    let (server, mut client) = setup::<R>(|options| options);
    within::<R, _>(LIMIT, async {
        let id = client
            .create_channel(StoragePolicy::MostRecent)
            .await
            .expect("created");
        assert_eq!(
            client.list_channels().await.expect("listed"),
            std::slice::from_ref(&id)
        );
        let info = client.read_channel(&id).await.expect("read");
        assert_eq!(info.storage_policy, StoragePolicy::MostRecent);

        let update = Change::Update(
            Content::new(1_700_000_000, state(json!({"score": "1-0"}))).alert(ActivityAlert {
                title: "Goal".into(),
                body: "1-0".into(),
                sound: None,
            }),
        );
        let end = Change::End {
            content: Content::new(1_700_000_060, state(json!({"score": "2-0"}))),
            dismissal_date: Some(1_700_003_600),
        };
        let options = BroadcastOptions {
            expiration: Some(1_900_000_000),
            ..BroadcastOptions::default()
        };
        let sent = client.broadcast(&id, &update, options).await.expect("sent");
        assert!(sent.request_id.is_some());
        client.broadcast(&id, &end, options).await.expect("sent");
        assert_eq!(server.broadcast_count(id.as_str()), 2);
        let broadcasts = server.broadcasts();
        assert_eq!(broadcasts[0].expiration, Some(1_900_000_000));
        let first: Value = serde_json::from_slice(&broadcasts[0].payload).expect("JSON");
        assert_eq!(first["aps"]["event"], "update");
        assert_eq!(
            broadcasts[0].request_id,
            sent.request_id.expect("id").to_string()
        );

        client.delete_channel(&id).await.expect("deleted");
        assert!(client.list_channels().await.expect("listed").is_empty());
        let (status, reason) = reason_of(client.broadcast(&id, &update, options).await);
        assert_eq!(
            (status, reason),
            (400, BroadcastReason::ChannelNotRegistered)
        );
        let (_, reason) = reason_of(client.delete_channel(&id).await);
        assert_eq!(reason, BroadcastReason::ChannelNotRegistered);
        let unknown = ChannelId::new("bm8tc3VjaC1jaGFubmVs").expect("id");
        let (_, reason) = reason_of(client.read_channel(&unknown).await);
        assert_eq!(reason, BroadcastReason::ChannelNotRegistered);
        assert_eq!(server.broadcast_count(id.as_str()), 2);
    })
    .await;
    assert_eq!(
        server.connections(),
        2,
        "one for channel management, one for the broadcasts"
    );
}

/// One [`Client`] sends device pushes (sessions) and broadcasts (through
/// [`Client::broadcasts`]), interleaved, and a widget push: the mock sees every one of them
/// on one connection, which the client dialed once; channel management has a connection of
/// its own, with the same provider token.
pub async fn apns_broadcasts_share_the_device_pushes_connection<R: Runtime>() {
    const DEVICES: u32 = 20;
    let (server, apns) = mock_and_config(|options| options);
    let client = Client::<R>::builder()
        .apns_http2(apns)
        .build()
        .expect("client");
    let mut broadcasts = client.broadcasts(&server.url()).expect("broadcasts");
    within::<R, _>(LIMIT, async {
        let id = broadcasts
            .create_channel(StoragePolicy::NoStorage)
            .await
            .expect("created");
        let update = Change::Update(Content::new(1_700_000_000, state(json!({"score": "0-0"}))));
        for round in 0..2 {
            let devices = (0..DEVICES).map(|n| Device::ios(token(round * DEVICES + n).to_hex()));
            let (_, report) = send_all(client.send(payload()), devices).await;
            assert_eq!(report.delivered, u64::from(DEVICES));
            broadcasts
                .broadcast(&id, &update, BroadcastOptions::default())
                .await
                .expect("broadcast");
        }
        broadcasts
            .widgets(&token(0), DeviceOptions::default())
            .await
            .expect("widget push");
        broadcasts.delete_channel(&id).await.expect("deleted");
    })
    .await;
    let management = 0;
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 2 * DEVICES as usize + 1);
    let sent = server.broadcasts();
    assert_eq!(sent.len(), 2);
    let device = sent[0].connection;
    assert_ne!(
        device, management,
        "channel management has its own connection"
    );
    assert!(sent.iter().all(|b| b.connection == device), "{sent:?}");
    assert!(
        delivered.iter().all(|d| d.connection == device),
        "every device push on the broadcasts' connection"
    );
    assert_eq!(server.connections(), 2);
    assert_eq!(client.stats().apns_http2.expect("stats").dials, 1);
    assert_eq!(
        server.provider_tokens_seen(),
        1,
        "one provider token for both connections"
    );
}

/// Apple's limit of 10,000 channels per app and environment, plus one: the 10,001st is
/// refused with the typed `CannotCreateChannelConfig`; deleting one makes room again. (The
/// mock's default limit; 10,000 sequential round trips on one connection.)
pub async fn apns_broadcast_channel_over_the_limit_is_refused<R: Runtime>() {
    const MAX: usize = 10_000;
    let (server, mut client) = setup::<R>(|options| options);
    within::<R, _>(LIMIT, async {
        let mut ids = Vec::new();
        for _ in 0..MAX {
            ids.push(
                client
                    .create_channel(StoragePolicy::NoStorage)
                    .await
                    .expect("created"),
            );
        }
        let (status, reason) = reason_of(client.create_channel(StoragePolicy::NoStorage).await);
        assert_eq!(
            (status, reason),
            (400, BroadcastReason::CannotCreateChannelConfig)
        );
        assert_eq!(client.list_channels().await.expect("listed"), ids);
        client.delete_channel(&ids[0]).await.expect("deleted");
        client
            .create_channel(StoragePolicy::NoStorage)
            .await
            .expect("room again");
    })
    .await;
    assert_eq!(server.channels().len(), MAX);
}

/// Push-to-start (subscribed to an update token), then an update, then an end, to one
/// device token: all three delivered in order with the Live Activity topic; an update whose
/// timestamp is in milliseconds is refused `BadPayload` by the mock.
pub async fn apns_live_activity_start_update_end_on_one_token<R: Runtime>() {
    let (server, mut client) = setup::<R>(|options| options);
    let device = token(7);
    within::<R, _>(LIMIT, async {
        let start = Start::new(
            "MatchAttributes",
            state(json!({"home": "A", "away": "B"})),
            Content::new(1_700_000_000, state(json!({"score": "0-0"}))),
        )
        .expect("start")
        .subscribe(Subscription::Token);
        let pushes = [
            LiveActivityPush::Start(start),
            LiveActivityPush::Change(Change::Update(
                Content::new(1_700_000_100, state(json!({"score": "1-0"})))
                    .stale_date(1_700_000_900),
            )),
            LiveActivityPush::Change(Change::End {
                content: Content::new(1_700_000_200, state(json!({"score": "1-0"}))),
                dismissal_date: None,
            }),
        ];
        for push in &pushes {
            let id = client
                .live_activity(&device, push, DeviceOptions::default())
                .await
                .expect("delivered");
            assert!(id.is_some());
        }
        let millis =
            LiveActivityPush::Change(Change::Update(Content::new(1_700_000_300_000, Map::new())));
        let (status, reason) = reason_of(
            client
                .live_activity(&device, &millis, DeviceOptions::default())
                .await,
        );
        assert_eq!(status, 400);
        assert_eq!(reason.as_str(), "BadPayload");
    })
    .await;
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 3);
    let events: Vec<String> = delivered
        .iter()
        .map(|d| {
            assert_eq!(d.token, device.to_hex());
            assert_eq!(d.push_type, Some(PushType::LiveActivity));
            assert_eq!(
                d.topic.as_deref(),
                Some("com.example.app.push-type.liveactivity")
            );
            let payload: Value = serde_json::from_slice(&d.payload).expect("JSON");
            payload["aps"]["event"].as_str().expect("event").to_owned()
        })
        .collect();
    assert_eq!(events, ["start", "update", "end"]);
    let start: Value = serde_json::from_slice(&delivered[0].payload).expect("JSON");
    assert_eq!(start["aps"]["input-push-token"], 1);
    assert_eq!(start["aps"]["attributes-type"], "MatchAttributes");
}

/// A widget push is delivered with its push type, topic suffix and payload.
pub async fn apns_widget_push_is_delivered<R: Runtime>() {
    let (server, mut client) = setup::<R>(|options| options);
    within::<R, _>(LIMIT, async {
        client
            .widgets(&token(1), DeviceOptions::default())
            .await
            .expect("delivered");
    })
    .await;
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].push_type, Some(PushType::Widgets));
    assert_eq!(
        delivered[0].topic.as_deref(),
        Some("com.example.app.push-type.widgets")
    );
    assert_eq!(
        &delivered[0].payload[..],
        br#"{"aps":{"content-changed":true}}"#
    );
}

/// The server closes every connection after one answer (GOAWAY): each call finds its cached
/// connection closing, and the request, which the server did not process, goes once more on
/// a new connection. Every call succeeds; nothing is done twice.
pub async fn apns_broadcast_client_replaces_a_closing_connection<R: Runtime>() {
    let (server, mut client) = setup::<R>(|options| options.goaway_after(1));
    within::<R, _>(LIMIT, async {
        let id = client
            .create_channel(StoragePolicy::NoStorage)
            .await
            .expect("created");
        let update = Change::Update(Content::new(1_700_000_000, Map::new()));
        for _ in 0..3 {
            client
                .broadcast(&id, &update, BroadcastOptions::default())
                .await
                .expect("sent");
        }
        client.delete_channel(&id).await.expect("deleted");
        assert!(client.list_channels().await.expect("listed").is_empty());
        assert_eq!(server.broadcast_count(id.as_str()), 3);
    })
    .await;
    assert!(
        server.connections() >= 6,
        "{} connections",
        server.connections()
    );
}

/// Certificate authentication: the channel API and broadcasts take the client certificate
/// of the TLS settings instead of a provider token.
pub async fn apns_broadcast_with_a_client_certificate<R: Runtime>() {
    let certs = Certificates::generate().expect("certificates");
    let server = MockApnsHttp2::start(
        Http2Options::new(Http2Auth::Certificate).topic(TOPIC),
        &certs,
    )
    .expect("mock APNs HTTP/2 server");
    let apns = ApnsHttp2Config::new(&server.url())
        .expect("URL")
        .topic(TOPIC)
        .tls(mock_tls(&certs));
    let mut client = BroadcastClient::<R>::new(R::default(), &apns, &server.url()).expect("client");
    within::<R, _>(LIMIT, async {
        let id = client
            .create_channel(StoragePolicy::MostRecent)
            .await
            .expect("created");
        let end = Change::End {
            content: Content::new(1_700_000_000, Map::new()),
            dismissal_date: None,
        };
        client
            .broadcast(&id, &end, BroadcastOptions::default())
            .await
            .expect("sent");
        client.delete_channel(&id).await.expect("deleted");
        assert_eq!(server.broadcast_count(id.as_str()), 1);
    })
    .await;
    assert_eq!(server.provider_tokens_seen(), 0);
}

/// The provider token expires (both clocks move 21 minutes ahead, past the mock's 20-minute
/// token lifetime): channel management is refused `ExpiredProviderToken` first, which renews
/// the token the engine's connections carry; the next broadcast and channel request both use
/// the new one. One refresh in all: channel management and broadcasts share one token.
pub async fn apns_channel_management_and_broadcasts_share_one_provider_token<R: Runtime>() {
    const AHEAD: Duration = Duration::from_secs(21 * 60);
    let (server, apns) =
        mock_and_config(|options| options.max_token_age(Duration::from_secs(20 * 60)));
    let (clock, client) = shifted_client::<R>(|builder| builder.apns_http2(apns));
    let mut broadcasts = client.broadcasts(&server.url()).expect("broadcasts");
    let update = Change::Update(Content::new(1_700_000_000, Map::new()));
    let id = within::<R, _>(LIMIT, async {
        let id = broadcasts
            .create_channel(StoragePolicy::NoStorage)
            .await
            .expect("created");
        broadcasts
            .broadcast(&id, &update, BroadcastOptions::default())
            .await
            .expect("sent");
        clock.advance(AHEAD);
        server.advance_clock(AHEAD);
        let (status, reason) = reason_of(broadcasts.list_channels().await);
        assert_eq!(
            (status, reason),
            (403, BroadcastReason::Provider(Reason::ExpiredProviderToken))
        );
        broadcasts
            .broadcast(&id, &update, BroadcastOptions::default())
            .await
            .expect("sent with the new token");
        assert_eq!(
            broadcasts.list_channels().await.expect("listed"),
            std::slice::from_ref(&id)
        );
        id
    })
    .await;
    assert_eq!(server.broadcast_count(id.as_str()), 2);
    assert_eq!(server.provider_tokens_seen(), 2, "one refresh, shared");
}
