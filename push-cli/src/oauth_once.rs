//! One OAuth2 access token from a mock FCM's token endpoint, for the raw FCM baseline of
//! `push bench`: the demo service account's RS256 assertion (push-proto signs it) posted
//! once over a blocking rustls connection with a hand-written HTTP/1.1 request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use push_mock::{Certificates, MockFcm};
use push_proto::fcm::{RingSigner, ServiceAccount, assertion, parse_token_response};
use rustls::pki_types::ServerName;

use crate::loopback::fcm_service_account;

/// The largest answer read from the token endpoint.
const MAX_ANSWER: usize = 64 * 1024;

/// An access token for `fcm`, as its token endpoint grants it to the demo service account.
pub fn access_token(fcm: &MockFcm, certs: &Certificates) -> Result<String, String> {
    let account =
        ServiceAccount::from_json(&fcm_service_account(fcm)).map_err(|e| e.to_string())?;
    let signer = RingSigner::from_service_account(&account).map_err(|e| e.to_string())?;
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let jwt = assertion(&signer, &account.client_email, &account.token_uri, iat)
        .map_err(|e| e.to_string())?;
    let body =
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}");
    let uri: http::Uri = account.token_uri.parse().map_err(|_| "bad token_uri")?;
    let (Some(authority), path) = (uri.authority(), uri.path()) else {
        return Err(format!("token_uri {} has no host", account.token_uri));
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/x-www-form-urlencoded\r\naccept: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = exchange(fcm, certs, request.as_bytes())?;
    let grant = parse_token_response(status, &answer).map_err(|e| e.to_string())?;
    Ok(grant.access_token)
}

/// Sends `request` to the token endpoint and reads one answer: its status and body.
fn exchange(
    fcm: &MockFcm,
    certs: &Certificates,
    request: &[u8],
) -> Result<(StatusCode, Vec<u8>), String> {
    let config = certs.client_config(false).map_err(|e| e.to_string())?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(Certificates::SERVER_NAME).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(fcm.token_addr()).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(request).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(answer) = parse_answer(&received)? {
            return Ok(answer);
        }
        if received.len() > MAX_ANSWER {
            return Err("the token endpoint's answer is too long".into());
        }
        let read = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the token endpoint's answer: {e}"))?;
        if read == 0 {
            return Err("the token endpoint closed before answering in full".into());
        }
        received.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
}

/// The status and body of an HTTP/1.1 answer with a `content-length`, once all of it is in
/// `received`; `None` while more is needed.
fn parse_answer(received: &[u8]) -> Result<Option<(StatusCode, Vec<u8>)>, String> {
    let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(received.get(..end).unwrap_or_default())
        .map_err(|_| "the token endpoint's answer head is not text")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or("the token endpoint's answer has no status")?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .ok_or("the token endpoint's answer has no content-length")?;
    let body = received.get(end + 4..).unwrap_or_default();
    Ok((body.len() >= length).then(|| (status, body.get(..length).unwrap_or_default().to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_only_with_its_whole_body() {
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 4\r\n\r\n{\"a\"";
        assert_eq!(parse_answer(&answer[..20]), Ok(None));
        assert_eq!(parse_answer(&answer[..answer.len() - 1]), Ok(None));
        assert_eq!(
            parse_answer(answer),
            Ok(Some((StatusCode::OK, b"{\"a\"".to_vec())))
        );
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn the_mock_grants_a_token() {
        let certs = Certificates::generate().unwrap();
        let fcm =
            crate::loopback::start_fcm(crate::loopback::fcm_options().unwrap(), &certs).unwrap();
        let token = access_token(&fcm, &certs).unwrap();
        assert!(token.starts_with("ya29."), "{token}");
        assert_eq!(fcm.access_tokens_issued(), 1);
    }
}
