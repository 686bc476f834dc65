//! The server side of the two APIs: a channel-management or broadcast request read back
//! into its parts, or the reason APNs would refuse it with. Mocks answer with these; the
//! round trip with the builders is what the tests check.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};

use super::channels::ChannelInfo;
use super::send::MAX_BROADCAST_PAYLOAD;
use super::{BroadcastOptions, BroadcastReason, ChannelId, StoragePolicy, check_bundle_id};
use crate::apns::http2::{ApnsId, ApnsPriority, Reason};

/// The operation a channel-management request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOp {
    /// Create a channel with this policy.
    Create(StoragePolicy),
    /// Read this channel's configuration.
    Read(ChannelId),
    /// Delete this channel.
    Delete(ChannelId),
    /// List every channel.
    List,
}

/// A channel-management request, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCall {
    /// The bundle id from the path.
    pub bundle_id: String,
    /// The operation.
    pub op: ChannelOp,
    /// `apns-request-id`, when present.
    pub request_id: Option<ApnsId>,
}

/// A broadcast request, read back (the payload itself is left to the caller to judge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastCall {
    /// The bundle id from the path.
    pub bundle_id: String,
    /// `apns-channel-id`.
    pub channel: ChannelId,
    /// Priority, expiration and request id.
    pub options: BroadcastOptions,
    /// The payload, at most [`MAX_BROADCAST_PAYLOAD`] bytes and not empty.
    pub payload: Bytes,
}

/// Reads a channel-management request; the error is the reason to refuse it with.
pub fn parse_channel_request(request: &Request<Bytes>) -> Result<ChannelCall, BroadcastReason> {
    let path = request.uri().path();
    let rest = path
        .strip_prefix("/1/apps/")
        .ok_or(BroadcastReason::Provider(Reason::BadPath))?;
    let (bundle_id, resource) = rest
        .split_once('/')
        .ok_or(BroadcastReason::Provider(Reason::BadPath))?;
    check_bundle_id(bundle_id).map_err(|_| BroadcastReason::Provider(Reason::BadPath))?;
    let headers = request.headers();
    let method = request.method();
    let op = match (resource, method) {
        ("all-channels", &Method::GET) => ChannelOp::List,
        ("channels", &Method::POST) => ChannelOp::Create(create_policy(request.body())?),
        ("channels", &Method::GET) => ChannelOp::Read(channel_id(headers)?),
        ("channels", &Method::DELETE) => ChannelOp::Delete(channel_id(headers)?),
        ("channels" | "all-channels", _) => {
            return Err(BroadcastReason::Provider(Reason::MethodNotAllowed));
        }
        _ => return Err(BroadcastReason::Provider(Reason::BadPath)),
    };
    Ok(ChannelCall {
        bundle_id: bundle_id.to_owned(),
        op,
        request_id: request_id(headers)?,
    })
}

/// Reads a broadcast request; the error is the reason to refuse it with.
pub fn parse_broadcast_request(request: &Request<Bytes>) -> Result<BroadcastCall, BroadcastReason> {
    let bundle_id = request
        .uri()
        .path()
        .strip_prefix("/4/broadcasts/apps/")
        .ok_or(BroadcastReason::Provider(Reason::BadPath))?;
    check_bundle_id(bundle_id).map_err(|_| BroadcastReason::Provider(Reason::BadPath))?;
    if request.method() != Method::POST {
        return Err(BroadcastReason::Provider(Reason::MethodNotAllowed));
    }
    let headers = request.headers();
    match text(headers, "apns-push-type")? {
        None => return Err(BroadcastReason::MissingPushType),
        Some("liveactivity") => {}
        Some(_) => return Err(BroadcastReason::Provider(Reason::InvalidPushType)),
    }
    let channel = channel_id(headers)?;
    let priority = match text(headers, "apns-priority")? {
        None => None,
        Some("10") => Some(ApnsPriority::Immediate),
        Some("5") => Some(ApnsPriority::PowerAware),
        Some("1") => Some(ApnsPriority::Lowest),
        Some(_) => return Err(BroadcastReason::Provider(Reason::BadPriority)),
    };
    let expiration = text(headers, "apns-expiration")?
        .map(|text| text.parse::<u64>())
        .transpose()
        .map_err(|_| BroadcastReason::Provider(Reason::BadExpirationDate))?;
    let payload = request.body();
    if payload.is_empty() {
        return Err(BroadcastReason::Provider(Reason::PayloadEmpty));
    }
    if payload.len() > MAX_BROADCAST_PAYLOAD {
        return Err(BroadcastReason::Provider(Reason::PayloadTooLarge));
    }
    Ok(BroadcastCall {
        bundle_id: bundle_id.to_owned(),
        channel,
        options: BroadcastOptions {
            priority,
            expiration,
            request_id: request_id(headers)?,
        },
        payload: payload.clone(),
    })
}

/// The create body's policy; a body without `push-type` is `MissingPushType`, one with
/// another push type `InvalidPushType`, any other defect `BadMessageStoragePolicy`.
fn create_policy(body: &[u8]) -> Result<StoragePolicy, BroadcastReason> {
    if let Some(info) = ChannelInfo::from_body(body) {
        return Ok(info.storage_policy);
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| BroadcastReason::BadMessageStoragePolicy)?;
    match object.get("push-type") {
        None => Err(BroadcastReason::MissingPushType),
        Some(push_type) if push_type != "LiveActivity" => {
            Err(BroadcastReason::Provider(Reason::InvalidPushType))
        }
        Some(_) => Err(BroadcastReason::BadMessageStoragePolicy),
    }
}

/// A header as text, `None` when absent; a repeated header is `DuplicateHeaders`. A value
/// that is not visible ASCII reads as U+FFFD, which every caller's check refuses with that
/// header's own reason.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, BroadcastReason> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BroadcastReason::Provider(Reason::DuplicateHeaders));
    }
    Ok(Some(value.to_str().unwrap_or("\u{fffd}")))
}

fn channel_id(headers: &HeaderMap) -> Result<ChannelId, BroadcastReason> {
    let text = text(headers, "apns-channel-id")?.ok_or(BroadcastReason::MissingChannelId)?;
    ChannelId::new(text).map_err(|_| BroadcastReason::BadChannelId)
}

/// `apns-request-id`; a value that is not a UUID is refused like a bad `apns-id`.
fn request_id(headers: &HeaderMap) -> Result<Option<ApnsId>, BroadcastReason> {
    text(headers, "apns-request-id")?
        .map(ApnsId::parse)
        .transpose()
        .map_err(|_| BroadcastReason::Provider(Reason::BadMessageId))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::broadcast::{BroadcastRequest, ChannelApi, Environment};
    use crate::apns::live_activity::{Change, Content};
    use proptest::prelude::*;

    fn api(bundle: &str) -> ChannelApi {
        ChannelApi::new(Environment::Production, bundle).unwrap()
    }

    fn with(request: Request<Bytes>, edit: impl FnOnce(&mut Request<Bytes>)) -> Request<Bytes> {
        let mut request = request;
        edit(&mut request);
        request
    }

    #[test]
    fn channel_requests_refused_with_their_reasons() {
        let id = ChannelId::new("abc=").unwrap();
        let read = api("com.example.app").read(&id, None);
        let cases: Vec<(Request<Bytes>, BroadcastReason)> = vec![
            (
                with(read.clone(), |r| {
                    r.headers_mut().remove("apns-channel-id");
                }),
                BroadcastReason::MissingChannelId,
            ),
            (
                with(read.clone(), |r| {
                    r.headers_mut()
                        .insert("apns-channel-id", "a b".parse().unwrap());
                }),
                BroadcastReason::BadChannelId,
            ),
            (
                with(read.clone(), |r| {
                    r.headers_mut()
                        .append("apns-channel-id", "other".parse().unwrap());
                }),
                BroadcastReason::Provider(Reason::DuplicateHeaders),
            ),
            (
                with(read.clone(), |r| *r.method_mut() = Method::PUT),
                BroadcastReason::Provider(Reason::MethodNotAllowed),
            ),
            (
                with(read.clone(), |r| {
                    *r.uri_mut() = "/1/apps/x/other".parse().unwrap()
                }),
                BroadcastReason::Provider(Reason::BadPath),
            ),
            (
                with(read.clone(), |r| {
                    r.headers_mut()
                        .insert("apns-request-id", "nope".parse().unwrap());
                }),
                BroadcastReason::Provider(Reason::BadMessageId),
            ),
        ];
        for (request, reason) in cases {
            assert_eq!(parse_channel_request(&request), Err(reason));
        }
        let create = api("com.example.app").create(StoragePolicy::NoStorage, None);
        for (body, reason) in [
            (
                r#"{"message-storage-policy":0}"#,
                BroadcastReason::MissingPushType,
            ),
            (
                r#"{"message-storage-policy":0,"push-type":"alert"}"#,
                BroadcastReason::Provider(Reason::InvalidPushType),
            ),
            (
                r#"{"message-storage-policy":3,"push-type":"LiveActivity"}"#,
                BroadcastReason::BadMessageStoragePolicy,
            ),
            ("", BroadcastReason::BadMessageStoragePolicy),
        ] {
            let request = with(create.clone(), |r| *r.body_mut() = Bytes::from(body));
            assert_eq!(parse_channel_request(&request), Err(reason), "{body}");
        }
    }

    #[test]
    fn broadcast_requests_refused_with_their_reasons() {
        let change = Change::Update(Content::new(1, Default::default()));
        let request = BroadcastRequest::new(
            "https://x",
            "com.example.app",
            ChannelId::new("abc=").unwrap(),
            &change,
            BroadcastOptions::default(),
        )
        .unwrap()
        .to_request();
        let header = |name: &'static str, value: &'static str| {
            with(request.clone(), move |r| {
                r.headers_mut().insert(name, value.parse().unwrap());
            })
        };
        let cases = [
            (
                with(request.clone(), |r| {
                    r.headers_mut().remove("apns-push-type");
                }),
                BroadcastReason::MissingPushType,
            ),
            (
                header("apns-push-type", "alert"),
                BroadcastReason::Provider(Reason::InvalidPushType),
            ),
            (
                header("apns-priority", "7"),
                BroadcastReason::Provider(Reason::BadPriority),
            ),
            (
                header("apns-expiration", "soon"),
                BroadcastReason::Provider(Reason::BadExpirationDate),
            ),
            (
                with(request.clone(), |r| {
                    r.headers_mut().remove("apns-channel-id");
                }),
                BroadcastReason::MissingChannelId,
            ),
            (
                with(request.clone(), |r| *r.body_mut() = Bytes::new()),
                BroadcastReason::Provider(Reason::PayloadEmpty),
            ),
            (
                with(request.clone(), |r| {
                    *r.body_mut() = Bytes::from(vec![b' '; MAX_BROADCAST_PAYLOAD + 1]);
                }),
                BroadcastReason::Provider(Reason::PayloadTooLarge),
            ),
            (
                with(request.clone(), |r| *r.method_mut() = Method::GET),
                BroadcastReason::Provider(Reason::MethodNotAllowed),
            ),
        ];
        for (request, reason) in cases {
            assert_eq!(
                parse_broadcast_request(&request),
                Err(reason.clone()),
                "{reason:?}"
            );
        }
    }

    fn priority() -> impl Strategy<Value = Option<ApnsPriority>> {
        prop_oneof![
            Just(None),
            Just(Some(ApnsPriority::Immediate)),
            Just(Some(ApnsPriority::PowerAware)),
            Just(Some(ApnsPriority::Lowest)),
        ]
    }

    proptest! {
        #[test]
        fn channel_requests_round_trip(
            bundle in "[a-z][a-z0-9.-]{0,30}",
            id in "[!#-\\[\\]-~]{1,60}",
            op_pick in 0u8..5,
            request_id in proptest::option::of(any::<[u8; 16]>()),
        ) {
            let api = api(&bundle);
            let channel = ChannelId::new(&id).unwrap();
            let request_id = request_id.map(ApnsId::from_bytes);
            let (request, op) = match op_pick {
                0 => (api.create(StoragePolicy::NoStorage, request_id), ChannelOp::Create(StoragePolicy::NoStorage)),
                1 => (api.create(StoragePolicy::MostRecent, request_id), ChannelOp::Create(StoragePolicy::MostRecent)),
                2 => (api.read(&channel, request_id), ChannelOp::Read(channel.clone())),
                3 => (api.delete(&channel, request_id), ChannelOp::Delete(channel.clone())),
                _ => (api.list(request_id), ChannelOp::List),
            };
            prop_assert_eq!(
                parse_channel_request(&request),
                Ok(ChannelCall { bundle_id: bundle, op, request_id })
            );
        }

        #[test]
        fn broadcast_requests_round_trip(
            bundle in "[a-z][a-z0-9.-]{0,30}",
            id in "[!#-\\[\\]-~]{1,60}",
            priority in priority(),
            expiration in proptest::option::of(any::<u64>()),
            request_id in proptest::option::of(any::<[u8; 16]>()),
            timestamp: u64,
        ) {
            let options = BroadcastOptions {
                priority,
                expiration,
                request_id: request_id.map(ApnsId::from_bytes),
            };
            let change = Change::Update(Content::new(timestamp, Default::default()));
            let channel = ChannelId::new(&id).unwrap();
            let built = BroadcastRequest::new("https://x", &bundle, channel.clone(), &change, options)
                .unwrap();
            prop_assert_eq!(
                parse_broadcast_request(&built.to_request()),
                Ok(BroadcastCall { bundle_id: bundle, channel, options, payload: built.body().clone() })
            );
        }
    }
}
