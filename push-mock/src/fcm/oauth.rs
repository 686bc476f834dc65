//! Google's OAuth2 token endpoint (`POST /token`, JWT-bearer grant) over HTTPS/1.1: verifies
//! the service account's signed assertion and issues the access tokens the FCM API accepts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use smol::net::TcpStream;

use super::account::ServiceAccount;
use super::jwt;
use super::state::Record;
use crate::certs::{Certificates, server_config_with_alpn};
use crate::http1::{self, text};
use crate::server::{Records, ServerThread, accept_loop, handshake};

const NAME: &str = "mock-oauth";
/// The path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/token";
/// The grant type of service accounts.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

/// What every token request handler needs.
#[derive(Debug)]
struct Context {
    account: ServiceAccount,
    /// The expected `aud`: this endpoint's URL.
    token_url: String,
    record: Records<Record>,
}

/// The URL of a token endpoint listening on `port`.
pub(crate) fn token_url(port: u16) -> String {
    format!("https://{}:{port}{TOKEN_PATH}", Certificates::SERVER_NAME)
}

/// Starts the token endpoint in a background thread.
pub(crate) fn start(
    account: ServiceAccount,
    certs: &Certificates,
    record: Records<Record>,
) -> io::Result<ServerThread> {
    let acceptor = TlsAcceptor::from(server_config_with_alpn(
        certs,
        false,
        vec![b"http/1.1".to_vec()],
    )?);
    ServerThread::spawn(NAME, move |listener, executor| {
        let port = listener.local_addr().map_or(0, |addr| addr.port());
        let context = Arc::new(Context {
            account,
            token_url: token_url(port),
            record,
        });
        accept_loop(NAME, listener, executor, move |tcp, peer| {
            serve(tcp, peer, acceptor.clone(), context.clone())
        })
    })
}

async fn serve(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, context: Arc<Context>) {
    if let Some(tls) = handshake(NAME, &acceptor, tcp, peer).await {
        http1::serve(NAME, tls, peer, move |request| {
            let context = context.clone();
            async move { answer(&context, request).await }
        })
        .await;
    }
}

/// Answers one token request and records it.
async fn answer(context: &Context, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    // Read the whole body first, so that every answer keeps the connection alive.
    let body = Limited::new(body, MAX_BODY).collect().await;
    let record = &context.record;
    record.update(|r| r.tokens.requests += 1);
    let (status, failure, response) = if head.uri.path() != TOKEN_PATH {
        let response = text(StatusCode::NOT_FOUND, "Not Found");
        (StatusCode::NOT_FOUND, "Not Found".to_owned(), response)
    } else if head.method != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        let status = StatusCode::METHOD_NOT_ALLOWED;
        (status, "Method Not Allowed".to_owned(), response)
    } else if record.update(|r| {
        let fail = r.tokens.fail_next > 0;
        r.tokens.fail_next = r.tokens.fail_next.saturating_sub(1);
        fail
    }) {
        let error = ("internal_failure", "The service is currently unavailable.");
        oauth_error(StatusCode::SERVICE_UNAVAILABLE, error)
    } else {
        match body {
            Ok(body) => grant(context, &body.to_bytes()),
            Err(error) => {
                log::info!("{NAME}: reading a request body failed: {error}");
                let error = ("invalid_request", "Request body too large.");
                oauth_error(StatusCode::PAYLOAD_TOO_LARGE, error)
            }
        }
    };
    if status != StatusCode::OK {
        log::debug!("{NAME}: {status}: {failure}");
        record.update(|r| r.tokens.failures.push(failure));
    }
    response
}

/// The JWT-bearer grant: the form, the assertion, then a new access token. Returns the
/// status, the failure's description (empty on success) and the response.
fn grant(context: &Context, body: &[u8]) -> (StatusCode, String, Response<Full<Bytes>>) {
    let mut grant_type = None;
    let mut assertion = None;
    for (name, value) in form_urlencoded::parse(body) {
        match name.as_ref() {
            "grant_type" if grant_type.is_none() => grant_type = Some(value.into_owned()),
            "assertion" if assertion.is_none() => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    let bad = StatusCode::BAD_REQUEST;
    let Some(grant_type) = grant_type else {
        return oauth_error(
            bad,
            ("invalid_request", "Missing required parameter: grant_type"),
        );
    };
    if grant_type != JWT_BEARER {
        let description = format!("Invalid grant_type: {grant_type}");
        return oauth_error(bad, ("unsupported_grant_type", &description));
    }
    let Some(assertion) = assertion else {
        return oauth_error(
            bad,
            ("invalid_request", "Missing required parameter: assertion"),
        );
    };
    let ahead = context.record.read(|r| r.tokens.ahead.as_secs());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        .saturating_add(ahead);
    if let Err(rejection) = jwt::verify(&assertion, &context.account, &context.token_url, now) {
        return oauth_error(bad, (rejection.error(), rejection.description()));
    }
    let (token, expires_in) = context.record.update(|r| {
        r.tokens.verified += 1;
        r.tokens.issue()
    });
    let body = json!({
        "access_token": token,
        "expires_in": expires_in,
        "token_type": "Bearer",
    });
    (
        StatusCode::OK,
        String::new(),
        json_response(StatusCode::OK, &body),
    )
}

/// An OAuth2 error answer `{"error": ..., "error_description": ...}`.
fn oauth_error(
    status: StatusCode,
    (error, description): (&str, &str),
) -> (StatusCode, String, Response<Full<Bytes>>) {
    let body = json!({ "error": error, "error_description": description });
    (status, description.to_owned(), json_response(status, &body))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
