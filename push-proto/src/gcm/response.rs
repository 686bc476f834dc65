//! The HTTP 200 response body, and what each per-token result means.
//!
//! `results[i]` belongs to `registration_ids[i]` of the request. Classification:
//!
//! | result                                          | [`Verdict`]                                |
//! |-------------------------------------------------|--------------------------------------------|
//! | `message_id`                                    | `Delivered { new_token: None }`            |
//! | `message_id` + `registration_id` ≠ sent token   | `Delivered { new_token: Some(canonical) }` |
//! | `NotRegistered`, `InvalidRegistration`, `MismatchSenderId`, `MissingRegistration` | `Failed(InvalidDevice)` |
//! | `Unavailable`, `InternalServerError`            | `Retry { rate_limited: false }`            |
//! | `DeviceMessageRateExceeded`, `TopicsMessageRateExceeded` | `Retry { rate_limited: true }`    |
//! | any other error string                          | `Failed(Rejected { provider: "gcm", code })` |
//! | neither `message_id` nor `error`                | `Failed(Rejected { .. "malformed result" })` |

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::feedback::DeviceError;

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

/// What to do with one token after its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered; `new_token` is the canonical token when it differs from the sent one.
    Delivered {
        /// The token to store instead of the sent one.
        new_token: Option<String>,
    },
    /// Failed for good.
    Failed(DeviceError),
    /// Failed for now; send again later.
    Retry {
        /// The service's error code (e.g. `Unavailable`).
        error: String,
        /// A rate limit: wait at least the computed backoff even if `Retry-After` is shorter.
        rate_limited: bool,
    },
}

/// The body could not be matched with the request; the whole batch fails with
/// [`MalformedResponse::error`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed response: {0}")]
pub struct MalformedResponse(pub String);

impl MalformedResponse {
    /// The error every token of the batch gets.
    pub fn error(&self) -> DeviceError {
        DeviceError::Rejected {
            provider: "gcm",
            code: self.to_string(),
        }
    }
}

impl TokenResult {
    /// Classifies this result for the token it was `sent` to.
    pub fn verdict(&self, sent: &str) -> Verdict {
        match (&self.error, &self.message_id) {
            (Some(error), _) => classify_error(error),
            (None, Some(_)) => Verdict::Delivered {
                new_token: self.registration_id.clone().filter(|id| id != sent),
            },
            (None, None) => Verdict::Failed(DeviceError::Rejected {
                provider: "gcm",
                code: "malformed result: neither message_id nor error".into(),
            }),
        }
    }
}

/// The verdict for an error string.
pub fn classify_error(error: &str) -> Verdict {
    let retry = |rate_limited| Verdict::Retry {
        error: error.to_owned(),
        rate_limited,
    };
    match error {
        "NotRegistered" | "InvalidRegistration" | "MismatchSenderId" | "MissingRegistration" => {
            Verdict::Failed(DeviceError::InvalidDevice)
        }
        "Unavailable" | "InternalServerError" => retry(false),
        "DeviceMessageRateExceeded" | "TopicsMessageRateExceeded" => retry(true),
        _ => Verdict::Failed(DeviceError::Rejected {
            provider: "gcm",
            code: error.to_owned(),
        }),
    }
}

/// Parses a 200 body for a request that went to `sent`, giving one verdict per token in order.
pub fn parse_results<S: AsRef<str>>(
    body: &[u8],
    sent: &[S],
) -> Result<Vec<Verdict>, MalformedResponse> {
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
        .map(|(result, token)| result.verdict(token.as_ref()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WORKED: &str = r#"{"multicast_id":5555,"success":2,"failure":2,"canonical_ids":1,
 "results":[{"message_id":"0:1%abc"},{"message_id":"0:2%abc","registration_id":"tokB2"},{"error":"NotRegistered"},{"error":"Unavailable"}]}"#;

    #[test]
    fn worked_example() {
        let verdicts = parse_results(WORKED.as_bytes(), &["tokA", "tokB", "tokC", "tokD"]);
        assert_eq!(
            verdicts.unwrap(),
            [
                Verdict::Delivered { new_token: None },
                Verdict::Delivered {
                    new_token: Some("tokB2".into())
                },
                Verdict::Failed(DeviceError::InvalidDevice),
                Verdict::Retry {
                    error: "Unavailable".into(),
                    rate_limited: false
                },
            ]
        );
    }

    #[test]
    fn canonical_equal_to_sent_is_not_new_and_big_ids_parse() {
        let body = format!(
            r#"{{"multicast_id":{},"results":[{{"message_id":7,"registration_id":"a"}}]}}"#,
            u64::MAX
        );
        let verdicts = parse_results(body.as_bytes(), &["a"]).unwrap();
        assert_eq!(verdicts, [Verdict::Delivered { new_token: None }]);
        let negative = r#"{"multicast_id":-5,"results":[]}"#;
        assert_eq!(parse_results::<&str>(negative.as_bytes(), &[]), Ok(vec![]));
    }

    #[test]
    fn error_table() {
        for code in [
            "MismatchSenderId",
            "InvalidRegistration",
            "MissingRegistration",
        ] {
            assert_eq!(
                classify_error(code),
                Verdict::Failed(DeviceError::InvalidDevice)
            );
        }
        assert!(matches!(
            classify_error("InternalServerError"),
            Verdict::Retry {
                rate_limited: false,
                ..
            }
        ));
        for code in ["DeviceMessageRateExceeded", "TopicsMessageRateExceeded"] {
            assert!(matches!(
                classify_error(code),
                Verdict::Retry {
                    rate_limited: true,
                    ..
                }
            ));
        }
        for code in ["MessageTooBig", "InvalidDataKey", "InvalidTtl", "Whatever"] {
            assert_eq!(
                classify_error(code),
                Verdict::Failed(DeviceError::Rejected {
                    provider: "gcm",
                    code: code.into()
                })
            );
        }
    }

    #[test]
    fn mismatch_and_garbage_are_errors() {
        let short = parse_results(WORKED.as_bytes(), &["a", "b", "c"]).unwrap_err();
        assert_eq!(
            short.to_string(),
            "malformed response: 4 results for 3 tokens"
        );
        assert!(parse_results(b"<html>oops</html>", &["a"]).is_err());
        assert!(parse_results(br#"{"success":1}"#, &["a"]).is_err());
        assert!(matches!(
            short.error(),
            DeviceError::Rejected { provider: "gcm", code } if code.starts_with("malformed response: ")
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_results(&body, &["a", "b"]);
        }

        #[test]
        fn json_like_text_never_panics(body in r#"[{}\[\]",:a-z0-9 ]{0,80}"#) {
            let _ = parse_results(body.as_bytes(), &["a"]);
        }
    }
}
