//! Clients for the Web Push mock: requests built by push-proto's Web Push protocol (encrypted,
//! VAPID-signed) and sent on the `h2` client of `fcm.rs`.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use push_mock::{Certificates, MockWebPush};
use push_proto::engine::{Batch, Credential, Grant, Protocol};
use push_proto::webpush::{
    Message, Origin, Subscription, Vapid, VapidCredential, VapidKey, WebPushProtocol,
};

use super::fcm::{Answer, Client, connect_to};

/// The application server's key (RFC 8291's example sender key, used as a VAPID key).
pub const VAPID_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
/// Its public key: the `applicationServerKey`.
pub const VAPID_PUBLIC: &str =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
/// Another key, for mismatches.
pub const OTHER_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";

pub fn unix_now() -> u64 {
    super::fcm::unix_now()
}

pub fn vapid(private: &str) -> Vapid {
    Vapid::new(
        VapidKey::from_base64url(private).unwrap(),
        "mailto:push@example.com",
    )
    .unwrap()
}

/// VAPID tokens of `private` for `origin`, on the real clocks.
pub fn credential(private: &str, origin: &str) -> VapidCredential {
    let origin = Origin::parse(origin).unwrap();
    VapidCredential::new(vapid(private), origin, Instant::now(), unix_now())
}

/// The `Authorization` header `credential` grants now.
pub fn authorization(credential: &mut VapidCredential) -> HeaderValue {
    match credential.grant(Instant::now()) {
        Grant::Ready {
            authorization: Some(authorization),
            ..
        } => authorization,
        other => panic!("no token: {other:?}"),
    }
}

/// The request push-proto builds for `subscription` (its JSON) with `authorization`.
pub fn request(json: &str, message: &Message, authorization: &HeaderValue) -> http::Request<Bytes> {
    let subscription = Subscription::from_json(json).unwrap();
    let protocol = WebPushProtocol::new(subscription.origin().clone());
    protocol
        .request(Batch::one(&subscription), message, &(), Some(authorization))
        .unwrap()
}

/// A connection to `origin` of `mock`.
pub async fn connect(mock: &MockWebPush, origin: usize, certs: &Certificates) -> Client {
    connect_to(mock.addr(origin), mock.origins()[origin].clone(), certs).await
}

/// Sends `request` as it is (method, URI, headers, body).
pub async fn send(client: &Client, request: &http::Request<Bytes>) -> Answer {
    let mut builder = http::Request::builder()
        .method(request.method())
        .uri(request.uri());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    client.send(builder, request.body()).await
}
