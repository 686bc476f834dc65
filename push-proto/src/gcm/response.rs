//! The HTTP 200 response body, and what each per-token result means for the engine.
//!
//! `results[i]` belongs to `registration_ids[i]` of the request. Classification (each result
//! becomes one engine [`Answer`]):
//!
//! | result                                          | [`Verdict`]                                  |
//! |-------------------------------------------------|----------------------------------------------|
//! | `message_id`                                    | `Delivered` (`id`: the message id)           |
//! | `message_id` + `registration_id` ≠ sent token   | `Delivered`, `new_token`: the canonical id   |
//! | `NotRegistered`, `InvalidRegistration`, `MismatchSenderId`, `MissingRegistration` | `InvalidDevice` |
//! | `Unavailable`, `InternalServerError`            | `Retry` after the response's `Retry-After`, else the backoff |
//! | `DeviceMessageRateExceeded`, `TopicsMessageRateExceeded` | `Retry` after the backoff (Google asks for exponential backoff on rate limits) |
//! | any other error string                          | `Rejected` with that code                     |
//! | neither `message_id` nor `error`                | `Rejected` (`malformed result`)               |

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::engine::{Answer, Verdict};

/// The JSON body of an HTTP 200 response. Only `results` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseBody {
    /// Identifies the multicast; a large integer (kept as `i128` to hold both i64 and u64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_id: Option<i128>,
    /// How many results are successes.
    #[serde(default)]
    pub success: u64,
    /// How many results are errors.
    #[serde(default)]
    pub failure: u64,
    /// How many results carry a canonical `registration_id`.
    #[serde(default)]
    pub canonical_ids: u64,
    /// One result per requested token, in request order.
    pub results: Vec<TokenResult>,
}

/// The result for one token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenResult {
    /// Present when the message was accepted (a string; an integer for topic messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Value>,
    /// The canonical token, when the sent one is outdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// The error code, when the message was not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body could not be matched with the request: the whole batch is rejected with this
/// description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed response: {0}")]
pub struct MalformedResponse(pub String);

impl TokenResult {
    /// What this result means for the token it was `sent` to; transient errors retry after
    /// `retry_after` (the response's `Retry-After`) when given.
    pub fn answer(&self, sent: &str, retry_after: Option<Duration>) -> Answer {
        let (verdict, code) = match (&self.error, &self.message_id) {
            (Some(error), _) => (classify_error(error, retry_after), error.clone()),
            (None, Some(id)) => {
                return Answer {
                    status: 200,
                    verdict: Verdict::Delivered,
                    reason: None,
                    id: Some(match id {
                        Value::String(id) => id.clone(),
                        other => other.to_string(),
                    }),
                    new_token: self.registration_id.clone().filter(|id| id != sent),
                    // Nothing to describe, and a batch has a thousand of these.
                    described: String::new(),
                };
            }
            (None, None) => (
                Verdict::Rejected,
                "malformed result: neither message_id nor error".to_owned(),
            ),
        };
        Answer {
            reason: Some(code.clone()),
            described: code,
            ..Answer::new(200, verdict)
        }
    }
}

/// The verdict for an error string; transient errors other than rate limits retry after
/// `retry_after` when given.
pub fn classify_error(error: &str, retry_after: Option<Duration>) -> Verdict {
    let retry = |retry_after| Verdict::Retry {
        retry_after,
        client_wide: false,
    };
    match error {
        "NotRegistered" | "InvalidRegistration" | "MismatchSenderId" | "MissingRegistration" => {
            Verdict::InvalidDevice { since: None }
        }
        "Unavailable" | "InternalServerError" => retry(retry_after),
        "DeviceMessageRateExceeded" | "TopicsMessageRateExceeded" => retry(None),
        _ => Verdict::Rejected,
    }
}

/// Parses a 200 body for a request that went to `sent`, giving one answer per token in
/// order (see [`TokenResult::answer`]).
pub fn parse_results<S: AsRef<str>>(
    body: &[u8],
    sent: &[S],
    retry_after: Option<Duration>,
) -> Result<Vec<Answer>, MalformedResponse> {
    let parsed: ResponseBody =
        serde_json::from_slice(body).map_err(|error| MalformedResponse(error.to_string()))?;
    if parsed.results.len() != sent.len() {
        return Err(MalformedResponse(format!(
            "{} results for {} tokens",
            parsed.results.len(),
            sent.len()
        )));
    }
    Ok(parsed
        .results
        .iter()
        .zip(sent)
        .map(|(result, token)| result.answer(token.as_ref(), retry_after))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WORKED: &str = r#"{"multicast_id":5555,"success":2,"failure":2,"canonical_ids":1,
 "results":[{"message_id":"0:1%abc"},{"message_id":"0:2%abc","registration_id":"tokB2"},{"error":"NotRegistered"},{"error":"Unavailable"}]}"#;

    fn verdicts(answers: &[Answer]) -> Vec<&Verdict> {
        answers.iter().map(|answer| &answer.verdict).collect()
    }

    #[test]
    fn worked_example() {
        let wait = Some(Duration::from_secs(3));
        let answers =
            parse_results(WORKED.as_bytes(), &["tokA", "tokB", "tokC", "tokD"], wait).unwrap();
        assert_eq!(
            verdicts(&answers),
            [
                &Verdict::Delivered,
                &Verdict::Delivered,
                &Verdict::InvalidDevice { since: None },
                &Verdict::Retry {
                    retry_after: wait,
                    client_wide: false
                },
            ]
        );
        assert_eq!(answers[0].id.as_deref(), Some("0:1%abc"));
        assert_eq!(answers[0].new_token, None);
        assert_eq!(answers[1].new_token.as_deref(), Some("tokB2"));
        assert_eq!(answers[2].reason.as_deref(), Some("NotRegistered"));
        assert_eq!(answers[3].described, "Unavailable");
    }

    #[test]
    fn canonical_equal_to_sent_is_not_new_and_big_ids_parse() {
        let body = format!(
            r#"{{"multicast_id":{},"results":[{{"message_id":7,"registration_id":"a"}}]}}"#,
            u64::MAX
        );
        let answers = parse_results(body.as_bytes(), &["a"], None).unwrap();
        assert_eq!(verdicts(&answers), [&Verdict::Delivered]);
        assert_eq!(
            (answers[0].new_token.as_deref(), answers[0].id.as_deref()),
            (None, Some("7"))
        );
        let negative = r#"{"multicast_id":-5,"results":[]}"#;
        assert_eq!(
            parse_results::<&str>(negative.as_bytes(), &[], None),
            Ok(vec![])
        );
    }

    #[test]
    fn error_table() {
        let wait = Some(Duration::from_secs(9));
        for code in [
            "NotRegistered",
            "MismatchSenderId",
            "InvalidRegistration",
            "MissingRegistration",
        ] {
            assert_eq!(
                classify_error(code, wait),
                Verdict::InvalidDevice { since: None }
            );
        }
        let retry = |retry_after| Verdict::Retry {
            retry_after,
            client_wide: false,
        };
        assert_eq!(classify_error("InternalServerError", wait), retry(wait));
        for code in ["DeviceMessageRateExceeded", "TopicsMessageRateExceeded"] {
            assert_eq!(
                classify_error(code, wait),
                retry(None),
                "rate limits back off"
            );
        }
        for code in ["MessageTooBig", "InvalidDataKey", "InvalidTtl", "Whatever"] {
            assert_eq!(classify_error(code, wait), Verdict::Rejected);
            let answer = TokenResult {
                error: Some(code.into()),
                ..TokenResult::default()
            }
            .answer("a", wait);
            assert_eq!((answer.described.as_str(), answer.status), (code, 200));
        }
        let neither = TokenResult::default().answer("a", None);
        assert_eq!(neither.verdict, Verdict::Rejected);
        assert!(neither.described.starts_with("malformed result"));
    }

    #[test]
    fn mismatch_and_garbage_are_errors() {
        let short = parse_results(WORKED.as_bytes(), &["a", "b", "c"], None).unwrap_err();
        assert_eq!(
            short.to_string(),
            "malformed response: 4 results for 3 tokens"
        );
        assert!(parse_results(b"<html>oops</html>", &["a"], None).is_err());
        assert!(parse_results(br#"{"success":1}"#, &["a"], None).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_results(&body, &["a", "b"], None);
        }

        #[test]
        fn json_like_text_never_panics(body in r#"[{}\[\]",:a-z0-9 ]{0,80}"#) {
            let _ = parse_results(body.as_bytes(), &["a"], None);
        }
    }
}
