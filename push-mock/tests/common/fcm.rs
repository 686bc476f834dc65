//! Clients for the FCM mock: RS256 assertions signed with ring, the token endpoint over the
//! tiny blocking HTTP/1.1 client, and an `h2` client over futures-rustls on smol.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_rustls::TlsConnector;
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request};
use push_mock::fcm::{DEMO_PRIVATE_KEY_ID, DEMO_PRIVATE_KEY_PEM, FCM_SCOPE, demo_client_email};
use push_mock::{Certificates, MockFcm};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use smol::Timer;
use smol::net::TcpStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::{HttpResponse, SAFETY, http, tls};

pub const PROJECT: &str = "demo-project";

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs a test body on smol, failing it if it hangs.
pub fn run<T>(test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(3 * SAFETY).await;
        panic!("the test hung");
    }))
}

/// A JWT signed RS256 with the PKCS#8 PEM key.
pub fn sign(pem: &str, header: &Value, claims: &Value) -> String {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", Base64UrlUnpadded::encode_string(&signature))
}

/// The header of the demo account's assertions.
pub fn header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": DEMO_PRIVATE_KEY_ID})
}

/// The claims of a correct assertion for `mock`, issued now.
pub fn claims(mock: &MockFcm) -> Value {
    let now = unix_now();
    json!({
        "iss": demo_client_email(PROJECT),
        "scope": FCM_SCOPE,
        "aud": mock.token_url(),
        "iat": now,
        "exp": now + 3600,
    })
}

/// A correct assertion of the demo account for `mock`.
pub fn assertion(mock: &MockFcm) -> String {
    sign(DEMO_PRIVATE_KEY_PEM, &header(), &claims(mock))
}

/// Posts `form` to the token endpoint on a new connection.
pub fn post_token(mock: &MockFcm, certs: &Certificates, form: &str) -> HttpResponse {
    let mut stream = tls(mock.token_addr(), certs.client_config(false).unwrap());
    http(&mut stream, "POST", "/token", None, form.as_bytes())
}

/// The JWT-bearer form for `assertion`.
pub fn grant(assertion: &str) -> String {
    format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    )
}

/// A fresh access token from the token endpoint.
pub fn access_token(mock: &MockFcm, certs: &Certificates) -> String {
    let answer = post_token(mock, certs, &grant(&assertion(mock)));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["access_token"].as_str().unwrap().to_owned()
}

/// An HTTP/2 connection to the FCM API.
pub struct Client {
    send: SendRequest<Bytes>,
    base: String,
    _driver: smol::Task<Result<(), h2::Error>>,
}

/// An answer as the client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `FcmError` detail's `errorCode`.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["details"]
            .as_array()?
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.firebase.fcm.v1.FcmError")
            .and_then(|d| d["errorCode"].as_str())
            .map(str::to_owned)
    }

    /// The `BadRequest` detail's first field violation's `field`.
    pub fn field(&self) -> Option<String> {
        self.json()["error"]["details"]
            .as_array()?
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .and_then(|d| d["fieldViolations"][0]["field"].as_str())
            .map(str::to_owned)
    }

    pub fn retry_after(&self) -> Option<&str> {
        self.headers.get("retry-after").map(|v| v.to_str().unwrap())
    }
}

pub async fn connect(mock: &MockFcm, certs: &Certificates) -> Client {
    connect_to(mock.addr(), mock.url(), certs).await
}

/// An HTTP/2 connection to `addr`, whose requests go to `base` (`https://localhost:PORT`).
pub async fn connect_to(addr: SocketAddr, base: String, certs: &Certificates) -> Client {
    let mut config = (*certs.client_config(false).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(Certificates::SERVER_NAME).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (send, connection) = h2::client::handshake(tls.compat()).await.unwrap();
    Client {
        send,
        base,
        _driver: smol::spawn(connection),
    }
}

impl Client {
    /// `POST /v1/projects/<PROJECT>/messages:send` with the access token and JSON content.
    pub fn post(&self, access_token: &str) -> http::request::Builder {
        self.request(
            Method::POST,
            &format!("/v1/projects/{PROJECT}/messages:send"),
        )
        .header("authorization", format!("Bearer {access_token}"))
        .header("content-type", "application/json")
    }

    /// A request without any header.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
    }

    pub async fn send(&self, request: http::request::Builder, body: &[u8]) -> Answer {
        self.try_send(request, body).await.unwrap()
    }

    pub async fn try_send(
        &self,
        request: http::request::Builder,
        body: &[u8],
    ) -> Result<Answer, h2::Error> {
        let request = request.body(()).unwrap();
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(request, body.is_empty())?;
        if !body.is_empty() {
            stream.send_data(Bytes::from(body.to_vec()), true)?;
        }
        let (parts, mut body) = response.await?.into_parts();
        let mut bytes = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            body.flow_control().release_capacity(chunk.len())?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes.freeze(),
        })
    }

    /// Sends `body` as JSON with the access token.
    pub async fn send_json(&self, access_token: &str, body: &Value) -> Answer {
        self.send(self.post(access_token), body.to_string().as_bytes())
            .await
    }
}

/// A message to `token`.
pub fn message(token: &str) -> Value {
    json!({"message": {"token": token, "data": {"k": "v"}, "android": {"priority": "HIGH"}}})
}

/// Runs the futures concurrently on the current task; their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
