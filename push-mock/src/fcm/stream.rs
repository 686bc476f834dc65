//! One `messages:send` stream: read, check, record, answer.

use std::sync::Arc;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::request::{Outcome, evaluate};
use super::state::{Context, FcmAnswer, FcmDelivery, Record};
use crate::http2::Stream;

pub(crate) const NAME: &str = "mock-fcm";
/// Request bodies longer than this are not read further (`Message is too big`).
const MAX_READ: usize = 64 * 1024;

/// Answers one request stream.
pub(crate) async fn handle_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    context: Arc<Context>,
    stream: Stream,
) {
    let stream_id = u32::from(respond.stream_id());
    let receiving = (MAX_READ, context.latency);
    let Some((head, body)) = stream
        .receive(NAME, request, &mut respond, receiving, &context.record)
        .await
    else {
        return;
    };
    let outcome = evaluate(&context, &head, &body);
    stream.count_answer();
    let connection = stream.connection();
    let (status, body, retry_after) = context
        .record
        .update(|r| record(&context, r, outcome, connection, stream_id));
    log::trace!("{NAME}: stream {stream_id}: {status}");
    if let Err(error) = send(&mut respond, status, &body, retry_after) {
        log::debug!("{NAME}: answering stream {stream_id} failed: {error}");
    }
}

/// Records the answer (and the delivery); returns the status, body and `Retry-After`.
fn record(
    context: &Context,
    r: &mut Record,
    outcome: Outcome,
    connection: usize,
    stream_id: u32,
) -> (StatusCode, Value, Option<u64>) {
    let mut answer = FcmAnswer {
        status: 200,
        rpc_status: None,
        error_code: None,
        token: outcome.token,
        validate_only: false,
        connection,
        stream_id,
    };
    let (status, body, retry_after) = match outcome.result {
        Ok(parsed) => {
            r.message_ids += 1;
            let name = format!(
                "projects/{}/messages/0:{}%mock",
                context.project, r.message_ids
            );
            answer.validate_only = parsed.validate_only;
            if parsed.validate_only {
                r.validated += 1;
            } else {
                r.total_delivered += 1;
                if !context.count_only {
                    if let Some(token) = parsed.target.token() {
                        *r.per_token.entry(token.to_owned()).or_insert(0) += 1;
                    }
                    r.deliveries.push(FcmDelivery {
                        target: parsed.target,
                        message: parsed.message,
                        name: name.clone(),
                        connection,
                        stream_id,
                    });
                }
            }
            (StatusCode::OK, json!({ "name": name }), None)
        }
        Err(error) => {
            answer.status = error.status.as_u16();
            answer.rpc_status = Some(error.rpc_status.to_owned());
            answer.error_code = error.error_code.clone();
            (error.status, error.to_json(), error.retry_after)
        }
    };
    r.total_answered += 1;
    *r.status_counts.entry(status.as_u16()).or_insert(0) += 1;
    if !context.count_only {
        r.answers.push(answer);
    }
    (status, body, retry_after)
}

fn send(
    respond: &mut SendResponse<Bytes>,
    status: StatusCode,
    body: &Value,
    retry_after: Option<u64>,
) -> Result<(), h2::Error> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("POST"));
    }
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(Bytes::from(body.to_string()), true)
}
