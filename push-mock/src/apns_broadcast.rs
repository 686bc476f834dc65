//! Broadcast channels on [`MockApnsHttp2`](crate::MockApnsHttp2): the channel-management API
//! (`/1/apps/<bundle id>/channels` and `/all-channels`) and broadcast sends
//! (`POST /4/broadcasts/apps/<bundle id>`), served on the same port as device pushes.
//!
//! Requests are read back with push-proto's `parse_channel_request` and
//! `parse_broadcast_request` (the documented methods, paths, headers and reasons); this module
//! keeps the store of channels (at most [`Http2Options::max_channels`](crate::Http2Options)),
//! counts broadcasts per channel, and checks each broadcast's Live Activity payload.

use std::collections::HashMap;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode};
use push_proto::apns::broadcast::{
    BroadcastCall, BroadcastReason, ChannelCall, ChannelId, ChannelInfo, ChannelOp, StoragePolicy,
    list_body, parse_broadcast_request, parse_channel_request,
};
use push_proto::apns::http2::{ApnsIdGenerator, Reason};

use crate::http2::Body;
use crate::live_activity_check::{Target, check_live_activity};

/// The path prefix of channel-management requests.
const CHANNELS_PREFIX: &str = "/1/apps/";
/// The path prefix of broadcast sends.
const BROADCAST_PREFIX: &str = "/4/broadcasts/apps/";

/// One broadcast the mock accepted (answered `200`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastDelivery {
    /// The channel id (`apns-channel-id`).
    pub channel: String,
    /// The `apns-request-id` answered (the request's, or a generated one).
    pub request_id: String,
    /// `apns-priority`, when sent.
    pub priority: Option<u8>,
    /// `apns-expiration`, when sent.
    pub expiration: Option<u64>,
    /// The JSON payload.
    pub payload: Bytes,
    /// The connection: 0 for the first established one, and so on.
    pub connection: usize,
}

/// True for the paths this module serves.
pub(crate) fn handles(path: &str) -> bool {
    path.starts_with(CHANNELS_PREFIX) || path.starts_with(BROADCAST_PREFIX)
}

/// A request that passed the checks that need no store.
#[derive(Debug)]
pub(crate) enum Call {
    /// A channel-management request.
    Channel(ChannelCall),
    /// A broadcast send.
    Broadcast(BroadcastCall),
}

/// Reads a request on one of the [`handles`] paths: the documented checks, the bundle id
/// against the configured `topic`, and a broadcast's Live Activity payload.
pub(crate) fn parse(
    head: &Parts,
    body: &Body,
    topic: Option<&str>,
) -> Result<Call, BroadcastReason> {
    let Body::Complete(bytes) = body else {
        return Err(BroadcastReason::Provider(Reason::PayloadTooLarge));
    };
    let request = Request::from_parts(head.clone(), bytes.clone());
    let call = if head.uri.path().starts_with(BROADCAST_PREFIX) {
        let call = parse_broadcast_request(&request)?;
        check_live_activity(&call.payload, Target::Channel)
            .map_err(|_| BroadcastReason::Provider(Reason::Other("BadPayload".into())))?;
        Call::Broadcast(call)
    } else {
        Call::Channel(parse_channel_request(&request)?)
    };
    let bundle_id = match &call {
        Call::Channel(call) => &call.bundle_id,
        Call::Broadcast(call) => &call.bundle_id,
    };
    if topic.is_some_and(|topic| topic != bundle_id) {
        return Err(BroadcastReason::Provider(Reason::BadTopic));
    }
    Ok(call)
}

/// The answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status.
    pub(crate) status: StatusCode,
    /// `apns-request-id`.
    pub(crate) request_id: String,
    /// `apns-channel-id` (create answers).
    pub(crate) channel_id: Option<String>,
    /// The JSON body: a channel's configuration, the list, or `{"reason": ...}`.
    pub(crate) body: Option<Bytes>,
}

/// The channels of the mock's app (one environment) and the broadcasts sent to them.
#[derive(Debug)]
pub(crate) struct Channels {
    max: usize,
    /// Live channels with their creation number and policy.
    live: HashMap<ChannelId, (u64, StoragePolicy)>,
    created: u64,
    deliveries: Vec<BroadcastDelivery>,
    /// Broadcasts accepted per channel id, deleted channels included.
    counts: HashMap<String, usize>,
    ids: ApnsIdGenerator,
}

impl Channels {
    /// An empty store that holds at most `max` channels.
    pub(crate) fn new(max: usize, seed: u64) -> Self {
        Channels {
            max,
            live: HashMap::new(),
            created: 0,
            deliveries: Vec::new(),
            counts: HashMap::new(),
            ids: ApnsIdGenerator::new(seed ^ 0xb40a_dca5),
        }
    }

    /// Applies a parsed request (or its refusal) and gives the answer.
    pub(crate) fn answer(
        &mut self,
        call: Result<Call, BroadcastReason>,
        connection: usize,
    ) -> Reply {
        let request_id = match &call {
            Ok(Call::Channel(call)) => call.request_id,
            Ok(Call::Broadcast(call)) => call.options.request_id,
            Err(_) => None,
        }
        .unwrap_or_else(|| self.ids.next_id())
        .to_string();
        let result = call.and_then(|call| match call {
            Call::Channel(call) => self.channel(call.op),
            Call::Broadcast(call) => self.broadcast(call, &request_id, connection),
        });
        match result {
            Ok((status, channel_id, body)) => Reply {
                status,
                request_id,
                channel_id,
                body,
            },
            Err(reason) => Reply {
                status: status_of(&reason),
                request_id,
                channel_id: None,
                body: Some(Bytes::from(
                    serde_json::json!({ "reason": reason.as_str() }).to_string(),
                )),
            },
        }
    }

    /// The live channel ids, oldest first.
    pub(crate) fn ids(&self) -> Vec<ChannelId> {
        let mut live: Vec<(&u64, &ChannelId)> =
            self.live.iter().map(|(id, (n, _))| (n, id)).collect();
        live.sort();
        live.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Every accepted broadcast, in order.
    pub(crate) fn deliveries(&self) -> &[BroadcastDelivery] {
        &self.deliveries
    }

    /// Broadcasts accepted for `channel`.
    pub(crate) fn count(&self, channel: &str) -> usize {
        self.counts.get(channel).copied().unwrap_or(0)
    }

    fn channel(
        &mut self,
        op: ChannelOp,
    ) -> Result<(StatusCode, Option<String>, Option<Bytes>), BroadcastReason> {
        match op {
            ChannelOp::Create(policy) => {
                if self.live.len() >= self.max {
                    return Err(BroadcastReason::CannotCreateChannelConfig);
                }
                self.created += 1;
                let id = new_channel_id(self.created);
                self.live.insert(id.clone(), (self.created, policy));
                Ok((StatusCode::CREATED, Some(id.to_string()), None))
            }
            ChannelOp::Read(id) => {
                let (_, policy) = self
                    .live
                    .get(&id)
                    .ok_or(BroadcastReason::ChannelNotRegistered)?;
                let info = ChannelInfo {
                    storage_policy: *policy,
                };
                Ok((StatusCode::OK, None, Some(info.to_body())))
            }
            ChannelOp::Delete(id) => {
                self.live
                    .remove(&id)
                    .ok_or(BroadcastReason::ChannelNotRegistered)?;
                Ok((StatusCode::NO_CONTENT, None, None))
            }
            ChannelOp::List => Ok((StatusCode::OK, None, Some(list_body(&self.ids())))),
        }
    }

    fn broadcast(
        &mut self,
        call: BroadcastCall,
        request_id: &str,
        connection: usize,
    ) -> Result<(StatusCode, Option<String>, Option<Bytes>), BroadcastReason> {
        let (_, policy) = self
            .live
            .get(&call.channel)
            .ok_or(BroadcastReason::ChannelNotRegistered)?;
        // A channel that stores nothing takes only broadcasts that expire at once.
        if *policy == StoragePolicy::NoStorage && call.options.expiration.is_some_and(|e| e != 0) {
            return Err(BroadcastReason::Provider(Reason::BadExpirationDate));
        }
        let channel = call.channel.to_string();
        *self.counts.entry(channel.clone()).or_insert(0) += 1;
        self.deliveries.push(BroadcastDelivery {
            channel,
            request_id: request_id.to_owned(),
            priority: call.options.priority.map(|p| p.value()),
            expiration: call.options.expiration,
            payload: call.payload,
            connection,
        });
        Ok((StatusCode::OK, None, None))
    }
}

/// The status a refusal is answered with: the device API's documented one, else 400.
pub(crate) fn status_of(reason: &BroadcastReason) -> StatusCode {
    match reason {
        BroadcastReason::Provider(reason) => reason
            .documented_status()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::BAD_REQUEST),
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The `n`th channel id: base64 of `mock-channel-<n>`, like the base64 ids APNs returns.
fn new_channel_id(n: u64) -> ChannelId {
    use base64ct::{Base64, Encoding};
    let text = Base64::encode_string(format!("mock-channel-{n:06}").as_bytes());
    // Base64 text is visible ASCII without quotes or backslashes: always a valid id.
    ChannelId::new(&text).unwrap_or_else(|_| unreachable!("base64 is a valid channel id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use push_proto::apns::broadcast::{BroadcastOptions, BroadcastRequest, ChannelApi};
    use push_proto::apns::live_activity::{Change, Content};

    fn api() -> ChannelApi {
        ChannelApi::with_base_url("https://localhost:1", "com.example.app").unwrap()
    }

    fn parsed(request: http::Request<Bytes>) -> Result<Call, BroadcastReason> {
        let (head, body) = request.into_parts();
        parse(&head, &Body::Complete(body), Some("com.example.app"))
    }

    fn broadcast(channel: &ChannelId, expiration: Option<u64>) -> http::Request<Bytes> {
        let change = Change::Update(Content::new(1, Default::default()));
        let options = BroadcastOptions {
            expiration,
            ..BroadcastOptions::default()
        };
        BroadcastRequest::new(
            "https://localhost:1",
            "com.example.app",
            channel.clone(),
            &change,
            options,
        )
        .unwrap()
        .to_request()
    }

    fn reason(reply: &Reply) -> String {
        let body: serde_json::Value = serde_json::from_slice(reply.body.as_ref().unwrap()).unwrap();
        body["reason"].as_str().unwrap().to_owned()
    }

    #[test]
    fn lifecycle_and_counts() {
        let mut channels = Channels::new(10, 0);
        let created = channels.answer(parsed(api().create(StoragePolicy::MostRecent, None)), 0);
        assert_eq!(created.status, StatusCode::CREATED);
        let id = ChannelId::new(created.channel_id.as_deref().unwrap()).unwrap();
        assert_eq!(id.as_str(), "bW9jay1jaGFubmVsLTAwMDAwMQ==");

        let read = channels.answer(parsed(api().read(&id, None)), 0);
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(
            ChannelInfo::from_body(read.body.as_ref().unwrap())
                .unwrap()
                .storage_policy,
            StoragePolicy::MostRecent
        );
        let list = channels.answer(parsed(api().list(None)), 0);
        assert_eq!(
            api()
                .classify_list(&http::Response::new(list.body.clone().unwrap()))
                .unwrap(),
            std::slice::from_ref(&id)
        );
        for _ in 0..3 {
            let sent = channels.answer(parsed(broadcast(&id, Some(1_900_000_000))), 1);
            assert_eq!(sent.status, StatusCode::OK);
        }
        assert_eq!(channels.count(id.as_str()), 3);
        assert_eq!(channels.deliveries()[0].connection, 1);

        let deleted = channels.answer(parsed(api().delete(&id, None)), 0);
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        for request in [
            broadcast(&id, None),
            api().read(&id, None),
            api().delete(&id, None),
        ] {
            let gone = channels.answer(parsed(request), 0);
            assert_eq!(gone.status, StatusCode::BAD_REQUEST);
            assert_eq!(reason(&gone), "ChannelNotRegistered");
        }
        assert_eq!(channels.count(id.as_str()), 3);
        assert!(channels.ids().is_empty());
    }

    #[test]
    fn the_limit_refuses_one_more() {
        let mut channels = Channels::new(3, 0);
        for _ in 0..3 {
            let reply = channels.answer(parsed(api().create(StoragePolicy::NoStorage, None)), 0);
            assert_eq!(reply.status, StatusCode::CREATED);
        }
        let refused = channels.answer(parsed(api().create(StoragePolicy::NoStorage, None)), 0);
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(reason(&refused), "CannotCreateChannelConfig");
        assert_eq!(channels.ids().len(), 3);
    }

    #[test]
    fn the_default_limit_refuses_the_10001st() {
        let mut channels = Channels::new(push_proto::apns::broadcast::MAX_CHANNELS, 0);
        let create = parsed(api().create(StoragePolicy::MostRecent, None)).unwrap();
        let Call::Channel(call) = create else {
            unreachable!("a channel call")
        };
        for _ in 0..10_000 {
            let reply = channels.answer(Ok(Call::Channel(call.clone())), 0);
            assert_eq!(reply.status, StatusCode::CREATED);
        }
        let refused = channels.answer(Ok(Call::Channel(call)), 0);
        assert_eq!(reason(&refused), "CannotCreateChannelConfig");
        assert_eq!(channels.ids().len(), 10_000);
    }

    #[test]
    fn request_ids_are_echoed_or_generated() {
        let mut channels = Channels::new(3, 0);
        let id = push_proto::apns::http2::ApnsId::from_bytes([0x12; 16]);
        let reply = channels.answer(parsed(api().list(Some(id))), 0);
        assert_eq!(reply.request_id, id.to_string());
        let other = channels.answer(parsed(api().list(None)), 0);
        assert!(push_proto::apns::http2::ApnsId::parse(&other.request_id).is_ok());
    }

    #[test]
    fn no_storage_channels_take_only_expiration_zero() {
        let mut channels = Channels::new(3, 0);
        let created = channels.answer(parsed(api().create(StoragePolicy::NoStorage, None)), 0);
        let id = ChannelId::new(created.channel_id.as_deref().unwrap()).unwrap();
        let refused = channels.answer(parsed(broadcast(&id, Some(5))), 0);
        assert_eq!(reason(&refused), "BadExpirationDate");
        for expiration in [None, Some(0)] {
            let sent = channels.answer(parsed(broadcast(&id, expiration)), 0);
            assert_eq!(sent.status, StatusCode::OK);
        }
    }

    #[test]
    fn refusals_before_the_store() {
        let id = ChannelId::new("abc=").unwrap();
        let mut request = broadcast(&id, None);
        *request.body_mut() = Bytes::from_static(br#"{"aps":{"event":"start"}}"#);
        let error = parsed(request).unwrap_err();
        assert_eq!(error.as_str(), "BadPayload");
        let other_app = ChannelApi::with_base_url("https://localhost:1", "com.other.app").unwrap();
        assert_eq!(
            parsed(other_app.list(None)).unwrap_err(),
            BroadcastReason::Provider(Reason::BadTopic)
        );
        let (head, _) = api().list(None).into_parts();
        assert_eq!(
            parse(&head, &Body::TooLarge, None).unwrap_err(),
            BroadcastReason::Provider(Reason::PayloadTooLarge)
        );
        assert_eq!(status_of(&BroadcastReason::Provider(Reason::BadPath)), 404);
        assert_eq!(status_of(&BroadcastReason::MissingChannelId), 400);
    }
}
