//! End-to-end scenarios: the client against push-mock's servers over real loopback TLS and
//! HTTP. Each scenario is written once, generic over the [`Runtime`], and instantiated for
//! every runtime by [`scenarios!`] in `tests/<runtime>.rs`. Assertions are about outcomes, never
//! about timing; timeouts are safety nets.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use push_client::{
    ApnsConfig, Client, Feedback, GcmConfig, HttpConfig, Report, Runtime, Session, Tls,
};
use push_mock::{Certificates, GatewayOptions, GcmOptions, MockGateway, MockGcm, TokenScript};
use push_proto::{ApnsToken, Device, Payload};

mod clock;
mod scenarios;
mod scenarios_broadcast;
mod scenarios_fcm;
mod scenarios_hostile;
mod scenarios_http2;
mod scenarios_rate;
mod scenarios_safety;
mod scenarios_webpush;
pub mod sim;
pub use clock::{Shifted, shifted_client};
pub use scenarios::*;
pub use scenarios_broadcast::*;
pub use scenarios_fcm::*;
pub use scenarios_hostile::*;
pub use scenarios_http2::*;
pub use scenarios_rate::*;
pub use scenarios_safety::*;
pub use scenarios_webpush::*;

/// Instantiates every scenario as a `#[test]` for one runtime:
/// `push_scenarios::scenarios!(push_smol::Smol, smol::block_on);`
#[macro_export]
macro_rules! scenarios {
    ($runtime:ty, $block_on:path) => {
        $crate::scenarios!(@each $runtime, $block_on,
            apns_bad_tokens_are_reported_and_everything_else_delivered_once,
            apns_silent_closes_lose_nothing,
            apns_shutdown_resends_the_rest,
            apns_checkpoints_confirm_full_windows_and_errors_resend_only_the_rest,
            gcm_mixed_outcomes_with_503s,
            bad_input_gets_feedback_and_the_rest_goes_through,
            untrusted_server_certificate_is_a_clear_error,
            wrong_host_name_is_a_clear_error,
            missing_client_certificate_is_a_clear_error,
            slow_feedback_reader_keeps_memory_bounded,
            dropped_feedback_stream_does_not_block_sending,
            feedback_service_tuples_split_across_records,
            gcm_unauthorized_is_a_clear_error,
            gcm_over_https,
            sessions_share_one_gateway_connection,
            gcm_through_the_applications_surf_client,
            gcm_oversized_answer_is_cut_while_read,
            a_dropped_session_still_delivers_and_the_client_goes_on,
            apns_http2_reasons_give_one_outcome_per_device,
            apns_http2_goaway_mid_stream_loses_nothing,
            apns_http2_stream_limit_of_one_is_respected,
            apns_http2_wrong_provider_key_is_a_clear_error,
            apns_http2_pool_spreads_over_connections,
            apns_http2_expired_token_is_refreshed_once,
            apns_broadcast_channel_lifecycle,
            apns_broadcasts_share_the_device_pushes_connection,
            apns_channel_management_and_broadcasts_share_one_provider_token,
            apns_broadcast_channel_over_the_limit_is_refused,
            apns_live_activity_start_update_end_on_one_token,
            apns_widget_push_is_delivered,
            apns_broadcast_client_replaces_a_closing_connection,
            apns_broadcast_with_a_client_certificate,
            apns_http2_stream_limit_dropped_to_one_and_restored,
            fcm_mixed_outcomes_with_503s,
            fcm_access_token_expiry_mid_run_fetches_one_new_token,
            fcm_revoked_access_token_is_replaced_once,
            fcm_bad_service_account_names_the_missing_field,
            fcm_wrong_service_account_key_is_a_clear_error,
            apns_http2_stream_limit_zero_ends_unavailable,
            apns_http2_every_stream_refused_ends_unavailable,
            apns_http2_goaway_zero_on_every_connection_ends_unavailable,
            apns_http2_library_error_mid_flight_resends_nothing_uncounted,
            a_cancelled_push_loses_nothing_and_the_session_goes_on,
            a_cancelled_finish_can_be_finished_again_and_a_dropped_session_still_ends,
            a_stalled_gateway_does_not_hold_up_other_providers,
            a_feedback_stream_dropped_while_full_unblocks_the_client,
            fcm_random_faults_lose_no_notification,
            fcm_quota_is_followed,
            apns_http2_provider_limit_is_followed,
            a_deadline_mid_run_gives_every_device_one_feedback,
            webpush_mixed_outcomes_over_three_origins,
            webpush_wrong_vapid_key_is_a_clear_error,
            webpush_http1_origin_beside_an_http2_one
        );
        $crate::scenarios!(@ignored $runtime, $block_on,
            fcm_random_faults_at_the_issues_size,
            fcm_quota_at_the_issues_size,
            apns_http2_provider_limit_at_the_issues_size
        );
    };
    (@ignored $runtime:ty, $block_on:path, $($name:ident),* $(,)?) => {
        $(
            #[test]
            #[ignore = "issue 12's full size: minutes; run by hand in release"]
            fn $name() {
                $block_on($crate::$name::<$runtime>());
            }
        )*
    };
    (@each $runtime:ty, $block_on:path, $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $block_on($crate::$name::<$runtime>());
            }
        )*
    };
}

/// Runs `scenario`, failing the test if it has not finished after `limit` (a safety net
/// against hangs, not a measurement).
pub async fn within<R: Runtime, T>(limit: Duration, scenario: impl Future<Output = T>) -> T {
    let runtime = R::default();
    let deadline = Instant::now() + limit;
    let expired = async move {
        runtime.sleep_until(deadline).await;
        panic!("scenario still running after {limit:?}");
    };
    futures_lite::future::or(scenario, expired).await
}

/// A token numbered `n`: 32 bytes, `n` in the first four.
pub fn token(n: u32) -> ApnsToken {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[31] = 0x5a;
    ApnsToken::from_bytes(bytes)
}

/// `count` distinct positions out of `0..total`, chosen by a seeded generator.
pub fn random_positions(total: u32, count: usize, seed: u64) -> HashSet<u32> {
    let mut state = seed;
    let mut positions = HashSet::new();
    while positions.len() < count {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        positions.insert(((state >> 33) % u64::from(total)) as u32);
    }
    positions
}

/// TLS trusting the mock CA and presenting its client certificate.
pub fn mock_tls(certs: &Certificates) -> Tls {
    Tls::default()
        .only_custom_roots()
        .add_ca_pem(certs.ca_pem.as_bytes())
        .expect("CA PEM")
        .client_identity_pem(
            certs.client_cert_pem.as_bytes(),
            certs.client_key_pem.as_bytes(),
        )
        .expect("client identity PEM")
}

/// APNs settings for a mock gateway at `gateway` (host:port). The grace period stays at its
/// default (1 s): on a loaded 2-core CI machine running many scenarios at once, the mock's
/// verdict can take a few hundred milliseconds, and a notification confirmed by age before
/// its verdict arrives would be misreported (the protocol's one timing assumption).
pub fn mock_apns(gateway: &str, certs: &Certificates) -> ApnsConfig {
    ApnsConfig::new(gateway)
        .expect("gateway address")
        .tls(mock_tls(certs))
}

/// `localhost:<port>` of a mock gateway: the name its certificate carries.
pub fn localhost(gateway: &MockGateway) -> String {
    format!("localhost:{}", gateway.addr().port())
}

/// Pushes `devices` into `session` while reading its feedback concurrently; returns the
/// feedback and the report.
pub async fn send_all<R: Runtime>(
    mut session: Session<R>,
    devices: impl IntoIterator<Item = Device>,
) -> (Vec<Feedback>, Report) {
    let feedbacks = session.feedbacks();
    let reader = feedbacks.collect::<Vec<_>>();
    let writer = async move {
        for device in devices {
            session.push(device).await.expect("client running");
        }
        session.finish().await.expect("client running")
    };
    let (feedback, report) = futures_lite::future::zip(reader, writer).await;
    (feedback, report)
}

/// Feedback grouped by token: token -> list of error codes (`None` = delivered).
pub fn by_token(feedback: &[Feedback]) -> HashMap<String, Vec<Option<&'static str>>> {
    let mut grouped: HashMap<String, Vec<Option<&'static str>>> = HashMap::new();
    for f in feedback {
        grouped
            .entry(f.device.token.clone())
            .or_default()
            .push(f.error.as_ref().map(|e| e.code()));
    }
    grouped
}

/// A fresh client builder for the runtime.
pub fn builder<R: Runtime>() -> push_client::ClientBuilder<R> {
    Client::<R>::builder()
}

/// Mock GCM options with the test key.
pub fn gcm_options() -> GcmOptions {
    GcmOptions::new("test-api-key")
}

/// GCM settings for a mock at `endpoint`, fast retries.
pub fn mock_gcm(endpoint: &str) -> GcmConfig {
    GcmConfig::new("test-api-key")
        .endpoint(endpoint)
        .expect("endpoint URL")
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .max_attempts(6)
}

/// Starts a mock gateway.
pub fn start_gateway(options: GatewayOptions, certs: &Certificates) -> MockGateway {
    MockGateway::start(options, certs).expect("mock gateway starts")
}

/// Starts a mock GCM server.
pub fn start_gcm(options: GcmOptions) -> MockGcm {
    MockGcm::start(options).expect("mock GCM starts")
}

/// The script type, re-exported for the scenarios.
pub type Script = TokenScript;

/// A payload for the scenarios.
pub fn payload() -> Payload {
    Payload::new()
        .title("Hello")
        .body("A scenario is running")
        .badge(1)
}
