//! One push request stream: read, check, record, log, answer.

use std::sync::Arc;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::json;

use super::request::{MAX_BODY, Outcome, evaluate};
use super::state::{Record, Settings, WebPushAnswer, WebPushDelivery};
use crate::http2::{Body, Stream};

pub(crate) const NAME: &str = "mock-webpush";
/// Longest payload text logged.
const MAX_LOGGED: usize = 200;

/// Where the stream arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub(crate) origin: usize,
    pub(crate) connection: usize,
    pub(crate) stream_id: u32,
    /// Over HTTP/1.1 (`stream_id` then counts the connection's requests from 1).
    pub(crate) http1: bool,
}

/// What to send back.
pub(crate) struct Reply {
    status: StatusCode,
    reason: Option<&'static str>,
    retry_after: Option<u64>,
    location: Option<String>,
}

/// Checks one request that arrived at `arrival`, records the answer (and the delivery, its
/// payload logged), and returns it: the same for HTTP/2 and HTTP/1.1.
pub(crate) fn answer(settings: &Settings, head: &Parts, body: &Body, arrival: Arrival) -> Reply {
    let outcome = evaluate(settings, arrival.origin, head, body);
    let reply = settings
        .record
        .update(|r| record(settings, r, outcome, arrival));
    log::trace!(
        "{NAME}: origin {} {} {}: {}",
        arrival.origin,
        if arrival.http1 { "request" } else { "stream" },
        arrival.stream_id,
        reply.status
    );
    reply
}

/// Answers one request stream to `origin`.
pub(crate) async fn handle_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    settings: Arc<Settings>,
    origin: usize,
    stream: Stream,
) {
    let stream_id = u32::from(respond.stream_id());
    let receiving = (MAX_BODY, settings.latency);
    let Some((head, body)) = stream
        .receive(NAME, request, &mut respond, receiving, &settings.record)
        .await
    else {
        return;
    };
    stream.count_answer();
    let arrival = Arrival {
        origin,
        connection: stream.connection(),
        stream_id,
        http1: false,
    };
    let reply = answer(&settings, &head, &body, arrival);
    if let Err(error) = send(&mut respond, &reply) {
        log::debug!("{NAME}: answering stream {stream_id} failed: {error}");
    }
}

/// Records the answer (and the delivery, its payload logged).
fn record(settings: &Settings, r: &mut Record, outcome: Outcome, arrival: Arrival) -> Reply {
    let mut reply = Reply {
        status: StatusCode::CREATED,
        reason: None,
        retry_after: None,
        location: None,
    };
    match outcome.result {
        Ok(accepted) => {
            r.messages += 1;
            let url = r
                .origins
                .get(arrival.origin)
                .map(|o| o.url.as_str())
                .unwrap_or_default();
            let location = format!("{url}/message/{}", r.messages);
            let subscription = outcome.subscription.clone().unwrap_or_default();
            r.total_delivered += 1;
            *r.per_subscription.entry(subscription.clone()).or_insert(0) += 1;
            if !settings.count_only {
                let text = String::from_utf8_lossy(&accepted.plaintext);
                let shown: String = text.chars().take(MAX_LOGGED).collect();
                log::info!("{NAME}: origin {} {subscription}: {shown}", arrival.origin);
                r.deliveries.push(WebPushDelivery {
                    origin: arrival.origin,
                    subscription,
                    plaintext: accepted.plaintext,
                    ttl: accepted.ttl,
                    urgency: accepted.urgency,
                    topic: accepted.topic,
                    location: location.clone(),
                    connection: arrival.connection,
                    stream_id: arrival.stream_id,
                    http1: arrival.http1,
                });
            }
            reply.location = Some(location);
        }
        Err(failure) => {
            reply.status = failure.status;
            reply.reason = Some(failure.reason);
            reply.retry_after = failure.retry_after;
        }
    }
    r.total_answered += 1;
    *r.status_counts.entry(reply.status.as_u16()).or_insert(0) += 1;
    if !settings.count_only {
        r.answers.push(WebPushAnswer {
            status: reply.status.as_u16(),
            reason: reply.reason.map(str::to_owned),
            origin: arrival.origin,
            subscription: outcome.subscription,
            connection: arrival.connection,
            stream_id: arrival.stream_id,
            http1: arrival.http1,
        });
    }
    reply
}

impl Reply {
    /// The response head and, for an error, its JSON body `{"reason": ...}`.
    pub(crate) fn response(&self) -> (Response<()>, Option<Bytes>) {
        let mut response = Response::new(());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if let Some(location) = self
            .location
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            headers.insert(LOCATION, location);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        let body = self.reason.map(|reason| {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(json!({"reason": reason}).to_string())
        });
        (response, body)
    }
}

fn send(respond: &mut SendResponse<Bytes>, reply: &Reply) -> Result<(), h2::Error> {
    let (response, body) = reply.response();
    let Some(body) = body else {
        respond.send_response(response, true)?;
        return Ok(());
    };
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(body, true)
}
