//! Requests through an application's own `surf::Client` (feature `surf`): the HTTP/1.1 link
//! of a route whose connections the application's client owns.

use bytes::Bytes;
use futures_lite::AsyncReadExt;
use push_proto::engine::StreamEnd;

/// Sends `request` with `client` and reads the response, its body at most `max_body` bytes
/// (checked while it is read). Any failure may have reached the server: it is a connection
/// error, counted as an attempt.
pub(crate) async fn exchange(
    client: &surf::Client,
    request: http::Request<Bytes>,
    max_body: usize,
) -> Result<http::Response<Bytes>, StreamEnd> {
    let failed = |reason: String| StreamEnd::ConnectionError(format!("surf: {reason}"));
    let url = surf::Url::parse(&request.uri().to_string())
        .map_err(|error| failed(format!("bad URL: {error}")))?;
    let method = request
        .method()
        .as_str()
        .parse::<surf::http::Method>()
        .map_err(|error| failed(format!("bad method: {error}")))?;
    let mut builder = surf::Request::builder(method, url);
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| failed(format!("header {name} is not text")))?;
        builder = builder.header(name.as_str(), value);
    }
    let outgoing = builder.body_bytes(request.body()).build();
    let mut response = client
        .send(outgoing)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let mut converted = http::Response::builder().status(u16::from(response.status()));
    for (name, values) in response.iter() {
        for value in values.iter() {
            converted = converted.header(name.as_str(), value.as_str());
        }
    }
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut body = Vec::new();
    response
        .take_body()
        .take(limit)
        .read_to_end(&mut body)
        .await
        .map_err(|error| failed(error.to_string()))?;
    if body.len() > max_body {
        return Err(StreamEnd::BodyTooLarge);
    }
    converted
        .body(Bytes::from(body))
        .map_err(|error| failed(format!("unusable response: {error}")))
}
