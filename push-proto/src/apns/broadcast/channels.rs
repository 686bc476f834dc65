//! Channel management: create, read, delete and list the channels of one app in one
//! environment.
//!
//! | operation | method and path | headers | success |
//! |---|---|---|---|
//! | create | `POST /1/apps/<bundle id>/channels`, body `{"message-storage-policy":0\|1,"push-type":"LiveActivity"}` | — | 201, the id in `apns-channel-id` |
//! | read | `GET /1/apps/<bundle id>/channels` | `apns-channel-id` | 200, body as for create |
//! | delete | `DELETE /1/apps/<bundle id>/channels` | `apns-channel-id` | 204 |
//! | list | `GET /1/apps/<bundle id>/all-channels` | — | 200, body `{"channels":[...]}` |
//!
//! Every request may carry an `apns-request-id` (a UUID) that APNs echoes.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::reason::{MAX_BODY, rejected, request_id};
use super::{ApiError, BuildError, ChannelId, Environment, check_bundle_id, uri};
use crate::apns::http2::ApnsId;

/// The only `push-type` a channel has.
const LIVE_ACTIVITY: &str = "LiveActivity";

/// What APNs does with a broadcast it cannot deliver at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoragePolicy {
    /// 0: nothing is stored; broadcasts on the channel must have `apns-expiration: 0`.
    NoStorage,
    /// 1: the most recent broadcast is stored for devices that are offline.
    MostRecent,
}

impl StoragePolicy {
    /// The JSON value (0 or 1).
    pub fn value(self) -> u8 {
        match self {
            StoragePolicy::NoStorage => 0,
            StoragePolicy::MostRecent => 1,
        }
    }

    fn from_value(value: u64) -> Option<Self> {
        match value {
            0 => Some(StoragePolicy::NoStorage),
            1 => Some(StoragePolicy::MostRecent),
            _ => None,
        }
    }
}

/// A channel's configuration, as the read request returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelInfo {
    /// `message-storage-policy`.
    pub storage_policy: StoragePolicy,
}

impl ChannelInfo {
    /// The JSON body (`{"message-storage-policy":N,"push-type":"LiveActivity"}`): the create
    /// request's body and the read answer's.
    pub fn to_body(self) -> Bytes {
        let body = json!({
            "message-storage-policy": self.storage_policy.value(),
            "push-type": LIVE_ACTIVITY,
        });
        Bytes::from(body.to_string())
    }

    /// Parses a create or read body; `None` unless it is the documented object.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        if body.len() > MAX_BODY {
            return None;
        }
        let object: Map<String, Value> = serde_json::from_slice(body).ok()?;
        if object.get("push-type")?.as_str()? != LIVE_ACTIVITY {
            return None;
        }
        let policy = object.get("message-storage-policy")?.as_u64()?;
        Some(ChannelInfo {
            storage_policy: StoragePolicy::from_value(policy)?,
        })
    }
}

/// The list answer's body: `{"channels":[...]}`, for servers and mocks.
pub fn list_body(ids: &[ChannelId]) -> Bytes {
    let ids: Vec<&str> = ids.iter().map(ChannelId::as_str).collect();
    Bytes::from(json!({ "channels": ids }).to_string())
}

#[derive(Deserialize)]
struct ListBody {
    channels: Vec<String>,
}

/// Builds the channel-management requests of one app and classifies their answers.
///
/// ```
/// use push_proto::apns::broadcast::{ChannelApi, Environment, StoragePolicy};
///
/// let api = ChannelApi::new(Environment::Production, "com.example.app")?;
/// let request = api.create(StoragePolicy::MostRecent, None);
/// assert_eq!(request.method(), "POST");
/// assert_eq!(
///     request.uri(),
///     "https://api-manage-broadcast.push.apple.com:2196/1/apps/com.example.app/channels"
/// );
/// let answer = http::Response::builder()
///     .status(201)
///     .header("apns-channel-id", "dHN0LXNyY2gtY2hubA==")
///     .body(bytes::Bytes::new())?;
/// assert_eq!(api.classify_create(&answer)?.as_str(), "dHN0LXNyY2gtY2hubA==");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChannelApi {
    channels: http::Uri,
    all_channels: http::Uri,
}

impl ChannelApi {
    /// The API of `bundle_id` in `environment`, on Apple's management host.
    pub fn new(environment: Environment, bundle_id: &str) -> Result<Self, BuildError> {
        Self::with_base_url(environment.management_url(), bundle_id)
    }

    /// The API of `bundle_id` at another base URL (a mock, a proxy).
    pub fn with_base_url(base_url: &str, bundle_id: &str) -> Result<Self, BuildError> {
        check_bundle_id(bundle_id)?;
        Ok(ChannelApi {
            channels: uri(base_url, &format!("/1/apps/{bundle_id}/channels"))?,
            all_channels: uri(base_url, &format!("/1/apps/{bundle_id}/all-channels"))?,
        })
    }

    /// `POST .../channels`: a new channel with `policy`.
    pub fn create(&self, policy: StoragePolicy, request_id: Option<ApnsId>) -> Request<Bytes> {
        let info = ChannelInfo {
            storage_policy: policy,
        };
        let mut request = self.request(Method::POST, &self.channels, request_id, info.to_body());
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        request
    }

    /// `GET .../channels` for `channel`.
    pub fn read(&self, channel: &ChannelId, request_id: Option<ApnsId>) -> Request<Bytes> {
        self.with_channel(Method::GET, channel, request_id)
    }

    /// `DELETE .../channels` for `channel`.
    pub fn delete(&self, channel: &ChannelId, request_id: Option<ApnsId>) -> Request<Bytes> {
        self.with_channel(Method::DELETE, channel, request_id)
    }

    /// `GET .../all-channels`.
    pub fn list(&self, request_id: Option<ApnsId>) -> Request<Bytes> {
        self.request(Method::GET, &self.all_channels, request_id, Bytes::new())
    }

    /// The create answer: 201 with the new id in `apns-channel-id`.
    pub fn classify_create(&self, response: &Response<Bytes>) -> Result<ChannelId, ApiError> {
        expect(response, StatusCode::CREATED)?;
        response
            .headers()
            .get("apns-channel-id")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| ChannelId::new(text).ok())
            .ok_or(ApiError::Malformed {
                status: response.status(),
                detail: "no valid apns-channel-id header",
            })
    }

    /// The read answer: 200 with the channel's configuration.
    pub fn classify_read(&self, response: &Response<Bytes>) -> Result<ChannelInfo, ApiError> {
        expect(response, StatusCode::OK)?;
        ChannelInfo::from_body(response.body()).ok_or(ApiError::Malformed {
            status: response.status(),
            detail: "body is not a channel configuration",
        })
    }

    /// The delete answer: 204.
    pub fn classify_delete(&self, response: &Response<Bytes>) -> Result<(), ApiError> {
        expect(response, StatusCode::NO_CONTENT)
    }

    /// The list answer: 200 with every channel id of the app in this environment.
    pub fn classify_list(&self, response: &Response<Bytes>) -> Result<Vec<ChannelId>, ApiError> {
        expect(response, StatusCode::OK)?;
        let malformed = ApiError::Malformed {
            status: response.status(),
            detail: "body is not a channel list",
        };
        if response.body().len() > MAX_BODY * 64 {
            return Err(malformed);
        }
        let list: ListBody =
            serde_json::from_slice(response.body()).map_err(|_| malformed.clone())?;
        list.channels
            .iter()
            .map(|id| ChannelId::new(id).map_err(|_| malformed.clone()))
            .collect()
    }

    fn with_channel(
        &self,
        method: Method,
        channel: &ChannelId,
        request_id: Option<ApnsId>,
    ) -> Request<Bytes> {
        let mut request = self.request(method, &self.channels, request_id, Bytes::new());
        request
            .headers_mut()
            .insert("apns-channel-id", channel.header_value());
        request
    }

    fn request(
        &self,
        method: Method,
        uri: &http::Uri,
        request_id: Option<ApnsId>,
        body: Bytes,
    ) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        if let Some(id) = request_id {
            request
                .headers_mut()
                .insert("apns-request-id", id.header_value());
        }
        request
    }
}

/// `Ok` for the documented success status, the typed rejection for a 4xx/5xx, and
/// [`ApiError::Malformed`] for any other status.
pub(crate) fn expect(response: &Response<Bytes>, success: StatusCode) -> Result<(), ApiError> {
    let status = response.status();
    if status == success {
        Ok(())
    } else if status.is_client_error() || status.is_server_error() {
        Err(rejected(status, response.headers(), response.body()))
    } else {
        Err(ApiError::Malformed {
            status,
            detail: "unexpected status",
        })
    }
}

/// The `apns-request-id` of a successful answer (for [`super::send`]).
pub(crate) fn answered_request_id(response: &Response<Bytes>) -> Option<ApnsId> {
    request_id(response.headers())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::broadcast::BroadcastReason;
    use crate::apns::http2::Reason;
    use proptest::prelude::*;

    const ID: &str = "dHN0LXNyY2gtY2hubA==";

    fn api() -> ChannelApi {
        ChannelApi::new(Environment::Development, "com.example.app").unwrap()
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Bytes> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Bytes::from(body.to_owned())).unwrap()
    }

    fn request_id() -> ApnsId {
        ApnsId::parse("12345678-1234-4234-8234-123456789abc").unwrap()
    }

    #[test]
    fn create_request_exact() {
        for (policy, body) in [
            (
                StoragePolicy::NoStorage,
                r#"{"message-storage-policy":0,"push-type":"LiveActivity"}"#,
            ),
            (
                StoragePolicy::MostRecent,
                r#"{"message-storage-policy":1,"push-type":"LiveActivity"}"#,
            ),
        ] {
            let request = api().create(policy, Some(request_id()));
            assert_eq!(request.method(), Method::POST);
            assert_eq!(
                request.uri(),
                "https://api-manage-broadcast.sandbox.push.apple.com:2195/1/apps/com.example.app/channels"
            );
            assert_eq!(
                request.headers()["apns-request-id"],
                "12345678-1234-4234-8234-123456789abc"
            );
            assert_eq!(request.headers()["content-type"], "application/json");
            assert_eq!(request.body().as_ref(), body.as_bytes());
        }
    }

    #[test]
    fn read_delete_list_requests_exact() {
        let id = ChannelId::new(ID).unwrap();
        let read = api().read(&id, None);
        assert_eq!(read.method(), Method::GET);
        assert_eq!(read.uri().path(), "/1/apps/com.example.app/channels");
        assert_eq!(read.headers()["apns-channel-id"], ID);
        assert!(read.headers().get("apns-request-id").is_none());
        assert!(read.body().is_empty());

        let delete = api().delete(&id, Some(request_id()));
        assert_eq!(delete.method(), Method::DELETE);
        assert_eq!(delete.uri().path(), "/1/apps/com.example.app/channels");
        assert_eq!(delete.headers()["apns-channel-id"], ID);
        assert!(delete.body().is_empty());

        let list = api().list(None);
        assert_eq!(list.method(), Method::GET);
        assert_eq!(
            list.uri(),
            "https://api-manage-broadcast.sandbox.push.apple.com:2195/1/apps/com.example.app/all-channels"
        );
        assert!(list.headers().get("apns-channel-id").is_none());
    }

    #[test]
    fn base_url_override_and_bad_bundle() {
        let api = ChannelApi::with_base_url("https://127.0.0.1:4443/", "com.example.app").unwrap();
        assert_eq!(
            api.list(None).uri(),
            "https://127.0.0.1:4443/1/apps/com.example.app/all-channels"
        );
        assert!(matches!(
            ChannelApi::new(Environment::Production, "com/evil"),
            Err(BuildError::BundleId(_))
        ));
        assert!(matches!(
            ChannelApi::with_base_url("not a url", "com.example.app"),
            Err(BuildError::BaseUrl(_))
        ));
    }

    #[test]
    fn create_answers() {
        let id = api()
            .classify_create(&answer(201, &[("apns-channel-id", ID)], ""))
            .unwrap();
        assert_eq!(id.as_str(), ID);
        assert_eq!(
            api().classify_create(&answer(201, &[], "")),
            Err(ApiError::Malformed {
                status: StatusCode::CREATED,
                detail: "no valid apns-channel-id header"
            })
        );
        let limit = api()
            .classify_create(&answer(
                400,
                &[],
                r#"{"reason":"CannotCreateChannelConfig"}"#,
            ))
            .unwrap_err();
        assert!(matches!(
            limit,
            ApiError::Rejected {
                reason: BroadcastReason::CannotCreateChannelConfig,
                ..
            }
        ));
        assert!(!limit.is_transient());
        // A 200 is not the documented 201.
        assert!(matches!(
            api().classify_create(&answer(200, &[("apns-channel-id", ID)], "")),
            Err(ApiError::Malformed { .. })
        ));
    }

    #[test]
    fn read_answers() {
        let info = api()
            .classify_read(&answer(
                200,
                &[],
                r#"{"message-storage-policy":1,"push-type":"LiveActivity"}"#,
            ))
            .unwrap();
        assert_eq!(info.storage_policy, StoragePolicy::MostRecent);
        for bad in [
            r#"{"message-storage-policy":2,"push-type":"LiveActivity"}"#,
            r#"{"message-storage-policy":0,"push-type":"alert"}"#,
            r#"{"message-storage-policy":0}"#,
            "[]",
            "",
        ] {
            assert!(
                matches!(
                    api().classify_read(&answer(200, &[], bad)),
                    Err(ApiError::Malformed { .. })
                ),
                "{bad}"
            );
        }
        let gone = api()
            .classify_read(&answer(404, &[], r#"{"reason":"ChannelNotRegistered"}"#))
            .unwrap_err();
        assert!(matches!(
            gone,
            ApiError::Rejected { status, reason: BroadcastReason::ChannelNotRegistered, .. }
                if status == StatusCode::NOT_FOUND
        ));
    }

    #[test]
    fn delete_answers() {
        assert_eq!(api().classify_delete(&answer(204, &[], "")), Ok(()));
        let missing = api()
            .classify_delete(&answer(400, &[], r#"{"reason":"MissingChannelId"}"#))
            .unwrap_err();
        assert!(matches!(
            missing,
            ApiError::Rejected {
                reason: BroadcastReason::MissingChannelId,
                ..
            }
        ));
        let token = api()
            .classify_delete(&answer(403, &[], r#"{"reason":"ExpiredProviderToken"}"#))
            .unwrap_err();
        assert!(matches!(
            token,
            ApiError::Rejected {
                reason: BroadcastReason::Provider(Reason::ExpiredProviderToken),
                ..
            }
        ));
        let busy = api()
            .classify_delete(&answer(503, &[("retry-after", "3")], ""))
            .unwrap_err();
        assert!(busy.is_transient());
    }

    #[test]
    fn list_answers() {
        let ids = api()
            .classify_list(&answer(200, &[], r#"{"channels":["a==","b=="]}"#))
            .unwrap();
        assert_eq!(
            ids.iter().map(ChannelId::as_str).collect::<Vec<_>>(),
            ["a==", "b=="]
        );
        assert_eq!(
            api().classify_list(&answer(200, &[], r#"{"channels":[]}"#)),
            Ok(vec![])
        );
        for bad in [r#"{"channels":[""]}"#, r#"{"channels":[1]}"#, "{}", "x"] {
            assert!(
                matches!(
                    api().classify_list(&answer(200, &[], bad)),
                    Err(ApiError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn list_body_exact() {
        let ids = [ChannelId::new("a==").unwrap(), ChannelId::new("b").unwrap()];
        assert_eq!(list_body(&ids).as_ref(), br#"{"channels":["a==","b"]}"#);
        assert_eq!(list_body(&[]).as_ref(), br#"{"channels":[]}"#);
    }

    proptest! {
        #[test]
        fn list_round_trips(ids in proptest::collection::vec("[!#-\\[\\]-~]{1,40}", 0..50)) {
            let ids: Vec<ChannelId> = ids.iter().map(|id| ChannelId::new(id).unwrap()).collect();
            let response = answer(200, &[], std::str::from_utf8(&list_body(&ids)).unwrap());
            prop_assert_eq!(api().classify_list(&response), Ok(ids));
        }

        #[test]
        fn info_round_trips(most_recent: bool) {
            let policy = if most_recent { StoragePolicy::MostRecent } else { StoragePolicy::NoStorage };
            let info = ChannelInfo { storage_policy: policy };
            prop_assert_eq!(ChannelInfo::from_body(&info.to_body()), Some(info));
            // The create request's body is the same document.
            let create = api().create(policy, None);
            prop_assert_eq!(create.body(), &info.to_body());
        }
    }
}
