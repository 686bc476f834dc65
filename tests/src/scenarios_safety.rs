//! Scenarios of the client's own safety: futures cancelled while the client's queue is full,
//! sessions dropped without finishing, and a gateway that stops reading while other providers
//! carry on.

use std::collections::HashSet;
use std::time::Duration;

use futures_lite::StreamExt;
use futures_lite::future::poll_once;
use push_client::{Client, Error, Feedback, Runtime, Session};
use push_mock::{Certificates, GatewayOptions};
use push_proto::{Device, Payload};

use crate::scenarios_fcm::{config as fcm_config, demo_options, fcm_token, start as start_fcm};
use crate::{
    builder, by_token, gcm_options, localhost, mock_apns, mock_gcm, payload, send_all,
    start_gateway, start_gcm, token, within,
};

const LIMIT: Duration = Duration::from_secs(120);
/// Room for waiting feedbacks (and devices in the queue) of the clients that get stuck.
const TIGHT: usize = 4;
/// How long the test waits before pushing again while the client is not stuck yet (a pace,
/// not a measurement).
const PACE: Duration = Duration::from_millis(1);

/// A GCM client with a tight queue and feedback capacity.
fn tight_client<R: Runtime>() -> (push_mock::MockGcm, Client<R>) {
    let gcm = start_gcm(gcm_options());
    let client = builder::<R>()
        .gcm(mock_gcm(&gcm.endpoint()))
        .queue_capacity(TIGHT)
        .feedback_capacity(TIGHT)
        .build()
        .expect("client");
    (gcm, client)
}

/// Pushes devices named `prefix-n` into `session`, whose feedback nobody reads yet, each
/// push polled once and dropped (cancelled) when it has to wait, until the client is stuck:
/// its feedback capacity is used up, so it takes no more devices, and a push had to wait.
/// Returns the tokens pushed; the cancelled ones were not.
async fn push_until_stuck<R: Runtime>(
    client: &Client<R>,
    session: &mut Session<R>,
    prefix: &str,
) -> Vec<String> {
    let runtime = R::default();
    let mut pushed = Vec::new();
    for n in 0.. {
        let token = format!("{prefix}-{n}");
        match poll_once(session.push(Device::android(token.clone()))).await {
            Some(result) => {
                result.expect("running");
                pushed.push(token);
            }
            None if client.stats().feedback_waiting >= TIGHT as u64 => break,
            None => runtime.sleep_until(runtime.now() + PACE).await,
        }
    }
    pushed
}

/// The tokens of `feedback`, asserting each came once.
fn tokens_once(feedback: &[Feedback]) -> HashSet<String> {
    let grouped = by_token(feedback);
    for (token, outcomes) in &grouped {
        assert_eq!(outcomes.len(), 1, "{token}: {outcomes:?}");
    }
    grouped.into_keys().collect()
}

/// While the queue is full, a session's very first push and a later one are cancelled: both
/// sessions go on, every device pushed gets exactly one feedback, and the cancelled devices
/// none.
pub async fn a_cancelled_push_loses_nothing_and_the_session_goes_on<R: Runtime>() {
    let (_gcm, client) = tight_client::<R>();
    let scenario = async {
        let mut first = client.send(payload());
        let first_feedbacks = first.feedbacks();
        let mut first_pushed = push_until_stuck(&client, &mut first, "first").await;

        let mut second = client.send(payload());
        let second_feedbacks = second.feedbacks();
        let cancelled = poll_once(second.push(Device::android("second-cancelled"))).await;
        assert!(
            cancelled.is_none(),
            "the queue is full and nothing drains it"
        );

        let read_first = first_feedbacks.collect::<Vec<_>>();
        let read_second = second_feedbacks.collect::<Vec<_>>();
        let more_first: Vec<String> = (0..100).map(|n| format!("first-more-{n}")).collect();
        let second_pushed: Vec<String> = (0..100).map(|n| format!("second-{n}")).collect();
        let write = async {
            for token in &second_pushed {
                second.push(Device::android(token)).await.expect("running");
            }
            for token in &more_first {
                first.push(Device::android(token)).await.expect("running");
            }
            let second_report = second.finish().await.expect("running");
            let first_report = first.finish().await.expect("running");
            (first_report, second_report)
        };
        let (first_feedback, (second_feedback, (first_report, second_report))) =
            futures_lite::future::zip(read_first, futures_lite::future::zip(read_second, write))
                .await;

        first_pushed.extend(more_first);
        assert_eq!(first_report.pushed, first_pushed.len() as u64);
        assert_eq!(first_report.delivered, first_pushed.len() as u64);
        assert_eq!(
            tokens_once(&first_feedback),
            first_pushed.into_iter().collect()
        );
        assert_eq!(second_report.pushed, 100);
        assert_eq!(second_report.delivered, 100);
        assert_eq!(
            tokens_once(&second_feedback),
            second_pushed.into_iter().collect()
        );
    };
    within::<R, _>(LIMIT, scenario).await;
}

/// A `finish` cancelled while the client is stuck still closes the session: pushing into it
/// fails with `SessionFinished`, and finishing again returns the report, twice. A session
/// dropped without finishing still delivers what was pushed, and its feedback stream ends.
pub async fn a_cancelled_finish_can_be_finished_again_and_a_dropped_session_still_ends<
    R: Runtime,
>() {
    let (_gcm, client) = tight_client::<R>();
    let scenario = async {
        let mut dropped = client.send(payload());
        let dropped_feedbacks = dropped.feedbacks();
        let dropped_pushed: HashSet<String> = (0..10).map(|n| format!("dropped-{n}")).collect();
        for token in &dropped_pushed {
            dropped.push(Device::android(token)).await.expect("running");
        }
        drop(dropped);

        let mut stuck = client.send(payload());
        let stuck_feedbacks = stuck.feedbacks();
        let stuck_pushed = push_until_stuck(&client, &mut stuck, "stuck").await;

        let mut finishing = client.send(payload());
        assert!(
            poll_once(finishing.finish()).await.is_none(),
            "no report while the client is stuck"
        );
        let refused = finishing.push(Device::android("too-late")).await;
        assert!(
            matches!(refused, Err(Error::SessionFinished)),
            "{refused:?}"
        );

        let read_dropped = dropped_feedbacks.collect::<Vec<_>>();
        let read_stuck = stuck_feedbacks.collect::<Vec<_>>();
        let finish = async {
            let report = finishing.finish().await.expect("running");
            assert_eq!(finishing.finish().await.expect("running"), report);
            let stuck_report = stuck.finish().await.expect("running");
            (report, stuck_report)
        };
        let (dropped_feedback, (stuck_feedback, (report, stuck_report))) =
            futures_lite::future::zip(read_dropped, futures_lite::future::zip(read_stuck, finish))
                .await;

        assert_eq!((report.pushed, report.delivered), (0, 0));
        assert_eq!(tokens_once(&dropped_feedback), dropped_pushed);
        assert_eq!(stuck_report.delivered, stuck_pushed.len() as u64);
        assert_eq!(
            tokens_once(&stuck_feedback),
            stuck_pushed.into_iter().collect()
        );
    };
    within::<R, _>(LIMIT, scenario).await;
}

/// A binary gateway that stops reading while megabytes wait to be written (more than the
/// socket buffers hold, so the writer blocks): FCM devices of another session are delivered
/// meanwhile. Once the gateway reads again, every iOS device reaches it exactly once.
pub async fn a_stalled_gateway_does_not_hold_up_other_providers<R: Runtime>() {
    const IOS: u32 = 6_000;
    const ANDROID: u32 = 200;
    let certs = Certificates::generate().expect("certificates");
    let gateway = start_gateway(GatewayOptions::default(), &certs);
    gateway.stall_reads();
    let fcm = start_fcm(demo_options(), &certs);
    let apns = mock_apns(&localhost(&gateway), &certs).io_timeout(Duration::from_secs(3600));
    let client = builder::<R>()
        .apns(apns)
        .fcm(fcm_config(&fcm, &certs))
        .build()
        .expect("client");
    // About 1.9 KB per frame: 11 MB for the gateway, twice what loopback sockets buffer.
    let large = Payload::new().title("Hello").body("x".repeat(1_800));
    let scenario = async {
        let mut ios = client.send(large);
        let ios_feedbacks = ios.feedbacks();
        for n in 0..IOS {
            ios.push(Device::ios(token(n).to_hex()))
                .await
                .expect("running");
        }
        let android = (0..ANDROID).map(|n| Device::android(fcm_token(n)));
        let (feedback, report) = send_all(client.send(payload()), android).await;
        assert_eq!(report.delivered, u64::from(ANDROID), "{report:?}");
        assert_eq!(feedback.len(), ANDROID as usize);
        assert_eq!(
            gateway.total_accepted(),
            0,
            "the gateway read nothing so far"
        );

        gateway.resume_reads();
        let finish = async { ios.finish().await.expect("running") };
        let (ios_feedback, ios_report) =
            futures_lite::future::zip(ios_feedbacks.collect::<Vec<_>>(), finish).await;
        assert_eq!(ios_report.delivered, u64::from(IOS), "{ios_report:?}");
        assert_eq!(tokens_once(&ios_feedback).len(), IOS as usize);
    };
    within::<R, _>(LIMIT, scenario).await;
    for n in 0..IOS {
        assert_eq!(gateway.accepted_count(&token(n)), 1, "token {n}");
    }
}

/// A feedback stream dropped while full (its reader gave up on a stuck client): the feedback
/// waiting for it is counted as not read, and the client takes devices again.
pub async fn a_feedback_stream_dropped_while_full_unblocks_the_client<R: Runtime>() {
    let (_gcm, client) = tight_client::<R>();
    let scenario = async {
        let mut session = client.send(payload());
        let feedbacks = session.feedbacks();
        let mut pushed = push_until_stuck(&client, &mut session, "full").await.len();
        drop(feedbacks);
        for n in 0..100 {
            let device = Device::android(format!("after-{n}"));
            session.push(device).await.expect("running");
            pushed += 1;
        }
        let report = session.finish().await.expect("running");
        assert_eq!(report.pushed, pushed as u64);
        assert_eq!(report.delivered, pushed as u64);
        assert!(report.feedback_not_read >= TIGHT as u64, "{report:?}");
    };
    within::<R, _>(LIMIT, scenario).await;
}
