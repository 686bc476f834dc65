//! The checks of one `messages:send` request, in FCM's order: method, path, access token,
//! the project's quota, seeded faults, content type, body, script.

use std::time::Instant;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, StatusCode};
use serde_json::Value;

use super::message::{self, Parsed};
use super::rpc::RpcError;
use super::state::Context;
use crate::http2::Body;
use crate::quota::retry_after_secs;
use crate::server::unit_interval;

/// What to answer one request.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The message's registration token, when it had a string one.
    pub(crate) token: Option<String>,
    pub(crate) result: Result<Parsed, RpcError>,
}

/// Runs every check on a request.
pub(crate) fn evaluate(context: &Context, head: &Parts, body: &Body) -> Outcome {
    let mut token = None;
    let result = validate(context, head, body, &mut token);
    Outcome { token, result }
}

fn validate(
    context: &Context,
    head: &Parts,
    body: &Body,
    token_out: &mut Option<String>,
) -> Result<Parsed, RpcError> {
    if head.method != Method::POST {
        return Err(RpcError::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: messages:send takes POST.",
        ));
    }
    let path = head.uri.path();
    if path != context.path {
        let message = if path.starts_with("/v1/projects/") && path.ends_with("/messages:send") {
            "Requested entity was not found."
        } else {
            "The requested URL was not found on this server."
        };
        return Err(RpcError::plain(StatusCode::NOT_FOUND, message));
    }
    let access_token = head
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let authenticated = access_token
        .is_some_and(|access_token| context.record.read(|r| r.tokens.accepts(access_token)));
    if !authenticated {
        return Err(RpcError::unauthenticated());
    }
    let admitted = context.record.update(|r| match r.quota.as_mut() {
        Some(quota) => quota.admit(Instant::now()),
        None => Ok(()),
    });
    if let Err(wait) = admitted {
        let refusal = RpcError::fcm("QUOTA_EXCEEDED");
        return Err(if context.quota_retry_after {
            refusal.retry_after(retry_after_secs(wait))
        } else {
            refusal
        });
    }
    let draw = context.record.update(|r| unit_interval(&mut r.rng));
    if draw < context.unavailable_rate {
        return Err(RpcError::fcm("UNAVAILABLE").retry_after(context.retry_after_secs));
    }
    if draw < context.unavailable_rate + context.quota_rate {
        return Err(RpcError::fcm("QUOTA_EXCEEDED").retry_after(context.retry_after_secs));
    }
    let json_content = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json_content {
        return Err(RpcError::invalid(
            "Invalid JSON payload received. The Content-Type must be application/json.",
        ));
    }
    let bytes = match body {
        Body::TooLarge => return Err(RpcError::invalid_field("message", "Message is too big")),
        Body::Complete(bytes) => bytes,
    };
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| RpcError::invalid(format!("Invalid JSON payload received. {error}")))?;
    *token_out = message::token_of(&value);
    let parsed = message::check(value)?;
    if let Some(token) = parsed.target.token()
        && let Some(script) = context.scripts.get(token)
    {
        let nth = context.record.update(|r| {
            let seen = r.scripted_seen.entry(token.to_owned()).or_insert(0);
            *seen = seen.saturating_add(1);
            *seen
        });
        if let Some(failure) = script.failure(nth, context.retry_after_secs) {
            return Err(failure);
        }
    }
    Ok(parsed)
}
