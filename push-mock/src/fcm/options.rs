//! How a [`MockFcm`](crate::MockFcm) behaves: [`FcmOptions`] and per-token [`FcmScript`]s.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use super::account::ServiceAccount;
use super::rpc::RpcError;
use crate::http2_faults::Http2Faults;
use crate::quota::Quota;

/// The scripted answer of a [`MockFcm`](crate::MockFcm) for one registration token, applied
/// to requests that pass every validation (also `validate_only` ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FcmScript {
    /// Always `404 NOT_FOUND`, `errorCode` `UNREGISTERED`.
    Unregistered,
    /// Always `403 PERMISSION_DENIED`, `errorCode` `SENDER_ID_MISMATCH`.
    SenderIdMismatch,
    /// Always `400 INVALID_ARGUMENT` with a `BadRequest` detail naming `field`.
    InvalidArgument {
        /// The field violation's `field` (`message.token`, say).
        field: String,
        /// Its `description`, also the error's `message`.
        description: String,
    },
    /// `429 RESOURCE_EXHAUSTED`, `errorCode` `QUOTA_EXCEEDED`, with `Retry-After`, for the
    /// first `first` requests, then delivered.
    QuotaExceeded {
        /// The `Retry-After` header, seconds.
        retry_after_secs: u64,
        /// How many requests get the 429.
        first: u32,
    },
    /// `503 UNAVAILABLE`, `errorCode` `UNAVAILABLE`, for the first `first` requests, then
    /// delivered. Carries `Retry-After` ([`FcmOptions::retry_after_secs`]).
    Unavailable {
        /// How many requests get the 503.
        first: u32,
    },
    /// `500 INTERNAL`, `errorCode` `INTERNAL`, for the first `first` requests, then
    /// delivered.
    Internal {
        /// How many requests get the 500.
        first: u32,
    },
    /// Always `401 UNAUTHENTICATED`, `errorCode` `THIRD_PARTY_AUTH_ERROR`.
    ThirdPartyAuthError,
    /// Any status and `errorCode`: for the first `first` requests then delivered, or always
    /// when `first` is `None`.
    ErrorCode {
        /// The HTTP status (the RPC status follows it: 404 `NOT_FOUND`, ...).
        status: u16,
        /// The `FcmError` detail's `errorCode`.
        error_code: String,
        /// How many requests get it (`None`: all).
        first: Option<u32>,
    },
}

impl FcmScript {
    /// The failure for the `nth` request (from 1) to the token, or `None` to deliver.
    pub(crate) fn failure(&self, nth: u32, retry_after_secs: u64) -> Option<RpcError> {
        match self {
            FcmScript::Unregistered => Some(RpcError::fcm("UNREGISTERED")),
            FcmScript::SenderIdMismatch => Some(RpcError::fcm("SENDER_ID_MISMATCH")),
            FcmScript::InvalidArgument { field, description } => {
                Some(RpcError::invalid_field(field, description))
            }
            FcmScript::QuotaExceeded {
                retry_after_secs,
                first,
            } => (nth <= *first)
                .then(|| RpcError::fcm("QUOTA_EXCEEDED").retry_after(*retry_after_secs)),
            FcmScript::Unavailable { first } => {
                (nth <= *first).then(|| RpcError::fcm("UNAVAILABLE").retry_after(retry_after_secs))
            }
            FcmScript::Internal { first } => (nth <= *first).then(|| RpcError::fcm("INTERNAL")),
            FcmScript::ThirdPartyAuthError => Some(RpcError::fcm("THIRD_PARTY_AUTH_ERROR")),
            FcmScript::ErrorCode {
                status,
                error_code,
                first,
            } => first.is_none_or(|first| nth <= first).then(|| {
                let message = RpcError::fcm(error_code).message;
                RpcError::with_status(*status, error_code, &message)
            }),
        }
    }
}

/// How a [`MockFcm`](crate::MockFcm) behaves. Build it with [`FcmOptions::new`] or
/// [`FcmOptions::demo`], then the builder methods. The defaults: 100 concurrent streams, every
/// valid request delivered, no seeded faults (`Retry-After: 30` should they be enabled),
/// access tokens valid 3599 s, no GOAWAY, no [`Http2Faults`], everything recorded.
#[derive(Debug, Clone)]
pub struct FcmOptions {
    /// The Firebase project id of the path `/v1/projects/<project>/messages:send`.
    pub project: String,
    /// The service account whose signed assertions the token endpoint accepts.
    pub account: ServiceAccount,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised (and enforced by the HTTP/2 layer).
    ///
    /// `0` is kept as is, for the whole connection: the server advertises that it accepts no
    /// stream at all (RFC 9113 §6.5.2 allows it, "a temporary state"), as a server shedding
    /// load might, and refuses any stream a client opens anyway (one sent before the
    /// client read the SETTINGS, say). A client must neither spin nor send.
    pub max_concurrent_streams: u32,
    /// Scripted answers per registration token (exact, case-sensitive).
    pub scripts: HashMap<String, FcmScript>,
    /// Fraction (0.0 to 1.0) of authenticated requests answered `503 UNAVAILABLE` with
    /// `Retry-After`, drawn from a deterministic sequence seeded by [`seed`](Self::seed).
    pub unavailable_rate: f64,
    /// Fraction (0.0 to 1.0) of authenticated requests answered `429 QUOTA_EXCEEDED` with
    /// `Retry-After`, from the same draw (a draw below `unavailable_rate` is a 503, below
    /// `unavailable_rate + quota_rate` a 429).
    pub quota_rate: f64,
    /// The `Retry-After` (seconds) of seeded faults and [`FcmScript::Unavailable`].
    pub retry_after_secs: u64,
    /// Seed of the fault draws.
    pub seed: u64,
    /// The `expires_in` of issued access tokens, seconds; they stop working after it.
    pub expires_in: u64,
    /// After this many answers on one connection, start a graceful GOAWAY (unanswered
    /// streams are refused with `REFUSED_STREAM`); `Some(0)`: right after the handshake.
    pub goaway_after: Option<usize>,
    /// Delay before answering each request (after its body arrived): lets streams overlap.
    pub latency: Option<Duration>,
    /// Only count: [`MockFcm::delivered`](crate::MockFcm::delivered),
    /// [`delivered_counts`](crate::MockFcm::delivered_counts),
    /// [`responses`](crate::MockFcm::responses) and [`statuses`](crate::MockFcm::statuses)
    /// stay empty while the totals and status counts count. For benchmarks.
    pub count_only: bool,
    /// Hostile connection behaviours of the FCM API (see [`Http2Faults`] and the builders
    /// [`refuse_all_streams`](Self::refuse_all_streams),
    /// [`goaway_on_connect`](Self::goaway_on_connect) and
    /// [`break_connection_after`](Self::break_connection_after)).
    pub faults: Http2Faults,
    /// The project's quota: at most `limit` messages (validated or sent) in any `window`,
    /// counted over a sliding window as FCM does; beyond it `429 RESOURCE_EXHAUSTED` with
    /// `QUOTA_EXCEEDED` and a `Retry-After` of the seconds until a message would be admitted.
    /// Refused requests do not count. `None`: unlimited.
    pub quota: Option<Quota>,
    /// Whether the quota's `429`s carry `Retry-After` (default true; false answers them
    /// without it, as APNs does, to measure a client that must find the quota's window alone).
    pub quota_retry_after: bool,
}

impl FcmOptions {
    /// The defaults for `project` and `account`.
    pub fn new(project: impl Into<String>, account: ServiceAccount) -> FcmOptions {
        FcmOptions {
            project: project.into(),
            account,
            max_concurrent_streams: 100,
            scripts: HashMap::new(),
            unavailable_rate: 0.0,
            quota_rate: 0.0,
            retry_after_secs: 30,
            seed: 0,
            expires_in: 3599,
            goaway_after: None,
            latency: None,
            count_only: false,
            faults: Http2Faults::default(),
            quota: None,
            quota_retry_after: true,
        }
    }

    /// The defaults for the account and project of a service-account JSON key file.
    pub fn from_service_account_json(json: &str) -> io::Result<FcmOptions> {
        let account = ServiceAccount::from_json(json)?;
        let project = account.project_id.clone().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the service account has no \"project_id\"",
            )
        })?;
        Ok(FcmOptions::new(project, account))
    }

    /// The defaults for the demo account of `project` (the one
    /// [`demo_service_account`](super::demo_service_account) describes).
    pub fn demo(project: &str) -> io::Result<FcmOptions> {
        Ok(FcmOptions::new(project, ServiceAccount::demo(project)?))
    }

    /// Adds (or replaces) the script of `token`.
    pub fn script(mut self, token: impl Into<String>, script: FcmScript) -> Self {
        self.scripts.insert(token.into(), script);
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// Sets the seeded fault rates ([`unavailable_rate`](Self::unavailable_rate),
    /// [`quota_rate`](Self::quota_rate)), their [`seed`](Self::seed) and
    /// [`retry_after_secs`](Self::retry_after_secs).
    pub fn seeded_faults(
        mut self,
        unavailable_rate: f64,
        quota_rate: f64,
        seed: u64,
        retry_after_secs: u64,
    ) -> Self {
        self.unavailable_rate = unavailable_rate;
        self.quota_rate = quota_rate;
        self.seed = seed;
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// Sets [`expires_in`](Self::expires_in).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Sets [`goaway_after`](Self::goaway_after).
    pub fn goaway_after(mut self, answers: usize) -> Self {
        self.goaway_after = Some(answers);
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Sets [`count_only`](Self::count_only).
    pub fn count_only(mut self, count_only: bool) -> Self {
        self.count_only = count_only;
        self
    }

    /// Sets the project's [`quota`](Self::quota): `limit` messages per sliding `window`.
    pub fn quota(mut self, limit: u32, window: Duration) -> Self {
        self.quota = Some(Quota { limit, window });
        self
    }

    /// The quota's `429`s without `Retry-After` ([`quota_retry_after`](Self::quota_retry_after)).
    pub fn quota_without_retry_after(mut self) -> Self {
        self.quota_retry_after = false;
        self
    }

    /// Refuses every request stream with `RST_STREAM(REFUSED_STREAM)` before processing it,
    /// keeping the connection open: an overloaded server (see
    /// [`Http2Faults::refuse_all_streams`]). Counted in `refused_streams()`.
    pub fn refuse_all_streams(mut self) -> Self {
        self.faults.refuse_all_streams = true;
        self
    }

    /// Sends every connection `GOAWAY(last_stream_id = 0, NO_ERROR)` right after the HTTP/2
    /// handshake and closes it, processing no stream: a server out of rotation (see
    /// [`Http2Faults::goaway_on_connect`]). Counted in `goaways_sent()`.
    pub fn goaway_on_connect(mut self) -> Self {
        self.faults.goaway_on_connect = true;
        self
    }

    /// After `answers` answers on a connection, replaces the next response frame by a
    /// malformed one (`DATA` on stream 0), so the client's HTTP/2 library fails the
    /// connection and every open stream, including requests already processed: a corrupting
    /// server (see [`Http2Faults::break_connection_after`]). Counted in
    /// `broken_connections()`.
    pub fn break_connection_after(mut self, answers: usize) -> Self {
        self.faults.break_connection_after = Some(answers);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_fail_the_first_requests_then_deliver() {
        let quota = FcmScript::QuotaExceeded {
            retry_after_secs: 7,
            first: 2,
        };
        let failure = quota.failure(1, 30).unwrap();
        assert_eq!(
            (failure.status.as_u16(), failure.retry_after),
            (429, Some(7))
        );
        assert!(quota.failure(2, 30).is_some());
        assert!(quota.failure(3, 30).is_none());
        let unavailable = FcmScript::Unavailable { first: 1 }.failure(1, 30).unwrap();
        assert_eq!(unavailable.retry_after, Some(30));
        assert!(FcmScript::Internal { first: 1 }.failure(2, 30).is_none());
        let always = FcmScript::ErrorCode {
            status: 404,
            error_code: "UNREGISTERED".into(),
            first: None,
        };
        let failure = always.failure(1000, 30).unwrap();
        assert_eq!(
            (failure.status.as_u16(), failure.rpc_status),
            (404, "NOT_FOUND")
        );
        assert_eq!(
            FcmScript::ThirdPartyAuthError.failure(1, 0).unwrap().status,
            401
        );
    }
}
