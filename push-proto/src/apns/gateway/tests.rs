//! Gateway tests: scripted exchanges, then a model-based proptest against a simulated gateway
//! server that behaves as Apple's did.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const GRACE: Duration = Duration::from_secs(1);

fn token(n: u32) -> ApnsToken {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    ApnsToken::from_bytes(bytes)
}

fn notification(n: u32) -> Notification {
    Notification {
        token: token(n),
        payload: Bytes::from_static(br#"{"aps":{"alert":"Hi"}}"#),
        expiry: 0,
        priority: 10,
    }
}

fn token_number(token: &ApnsToken) -> u32 {
    u32::from_be_bytes(token.as_bytes()[..4].try_into().unwrap())
}

fn config() -> GatewayConfig {
    GatewayConfig {
        grace: GRACE,
        ..GatewayConfig::default()
    }
}

/// [`config`] without checkpoints: a full window waits for the grace period.
fn grace_only() -> GatewayConfig {
    GatewayConfig {
        checkpoints: false,
        ..config()
    }
}

/// Queues `0..n` tagged by number and connects.
fn connected(config: GatewayConfig, n: u32, now: Instant) -> Gateway<u32> {
    let mut gateway = Gateway::new(config);
    for i in 0..n {
        gateway.queue(notification(i), i).unwrap();
    }
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(now);
    gateway
}

/// Frames written by one `poll_transmit`, reported written at once: (identifier, token
/// number).
fn transmit(gateway: &mut Gateway<u32>, now: Instant) -> Vec<(u32, u32)> {
    let frames = transmit_unwritten(gateway);
    gateway.handle_written(now);
    frames
}

/// The token number standing for a checkpoint in [`transmit`]'s list.
const CHECKPOINT: u32 = u32::MAX;

/// Frames of one `poll_transmit` the transport has not written yet; a checkpoint (always
/// last) is listed as `(identifier, CHECKPOINT)`.
fn transmit_unwritten(gateway: &mut Gateway<u32>) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    gateway.poll_transmit(&mut out);
    let mut rest = &out[..];
    let mut frames = Vec::new();
    loop {
        match Frame::decode(rest) {
            Ok(Some((frame, used))) => {
                frames.push((frame.identifier.unwrap(), token_number(&frame.token)));
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(error) => {
                let Some((Status::MissingDeviceToken, identifier)) = error.status() else {
                    panic!("not a checkpoint: {error}");
                };
                frames.push((identifier, CHECKPOINT));
                let mut checkpoint = Vec::new();
                assert!(encode_checkpoint(
                    gateway.config.format,
                    identifier,
                    &mut checkpoint
                ));
                assert_eq!(rest, checkpoint, "a checkpoint ends the transmit");
                rest = &[];
            }
        }
    }
    assert!(rest.is_empty());
    frames
}

fn outcomes(gateway: &mut Gateway<u32>) -> Vec<(u32, Option<&'static str>)> {
    std::iter::from_fn(|| gateway.poll_outcome())
        .map(|outcome| (outcome.tag, outcome.error.as_ref().map(DeviceError::code)))
        .collect()
}

fn error_response(status: Status, identifier: u32) -> [u8; 6] {
    ErrorResponse { status, identifier }.encode()
}

#[test]
fn expiry_ends_the_unwritten_and_leaves_the_written_to_their_grace() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        window: 3,
        ..grace_only()
    };
    let mut gateway = connected(config, 6, t0);
    assert_eq!(transmit(&mut gateway, t0), [(0, 0), (1, 1), (2, 2)]);
    // Odd tags are the expired session's: 3 and 5 were never written, 1 is on the wire.
    gateway.expire(|tag| tag % 2 == 1, "the session's deadline passed");
    let failed: Vec<_> = std::iter::from_fn(|| gateway.poll_outcome())
        .map(|outcome| (outcome.tag, outcome.error.map(|e| e.to_string())))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (tag, error) in &failed {
        assert!([3, 5].contains(tag), "{tag}");
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.contains("deadline passed before it was written"),
            "{error}"
        );
    }
    // The written one ends after its grace as delivered; 4 is written and ends the same way.
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None), (2, None)]);
    assert_eq!(transmit(&mut gateway, t0 + GRACE), [(3, 4)]);
    gateway.handle_timeout(t0 + GRACE * 2);
    assert_eq!(outcomes(&mut gateway), [(4, None)]);
    assert!(gateway.is_idle());
}

#[test]
fn silence_for_the_grace_period_means_delivered() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 3, t0);
    assert_eq!(transmit(&mut gateway, t0), [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(gateway.poll_timeout(), Some(t0 + GRACE));
    gateway.handle_timeout(t0 + GRACE - Duration::from_millis(1));
    assert_eq!(outcomes(&mut gateway), []);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None), (2, None)]);
    assert!(gateway.is_idle());
    assert_eq!(gateway.poll_timeout(), None);
}

#[test]
fn invalid_token_fails_it_delivers_before_and_resends_after_in_order() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 5, t0);
    assert_eq!(transmit(&mut gateway, t0).len(), 5);
    // The response may arrive split across reads.
    let response = error_response(Status::InvalidToken, 2);
    gateway.handle_input(t0, &response[..4]);
    gateway.handle_input(t0, &response[4..]);
    assert_eq!(
        outcomes(&mut gateway),
        [(0, None), (1, None), (2, Some("invalid_device"))]
    );
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    assert_eq!(
        transmit(&mut gateway, t0),
        [],
        "nothing is written after the verdict"
    );
    gateway.handle_closed(t0);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0);
    assert_eq!(transmit(&mut gateway, t0), [(5, 3), (6, 4)]);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(3, None), (4, None)]);
    let stats = gateway.stats();
    assert_eq!((stats.delivered, stats.failed, stats.requeued), (4, 1, 2));
}

#[test]
fn shutdown_delivers_the_named_notification_and_resends_the_rest() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 3, t0);
    transmit(&mut gateway, t0);
    gateway.handle_input(t0, &error_response(Status::Shutdown, 1));
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None)]);
    assert_eq!(gateway.unresolved(), 1);
}

#[test]
fn payload_and_other_statuses_map_to_their_errors() {
    let cases = [
        (Status::InvalidPayloadSize, "payload_too_large"),
        (Status::InvalidTokenSize, "invalid_device"),
        (Status::MissingTopic, "rejected"),
        (Status::ProtocolError, "rejected"),
        (Status::Other(42), "rejected"),
    ];
    for (status, code) in cases {
        let t0 = Instant::now();
        let mut gateway = connected(config(), 1, t0);
        transmit(&mut gateway, t0);
        gateway.handle_input(t0, &error_response(status, 0));
        assert_eq!(outcomes(&mut gateway), [(0, Some(code))], "{status}");
    }
}

#[test]
fn transient_status_retries_the_notification_a_bounded_number_of_times() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 1, t0);
    for attempt in 0..3 {
        let frames = transmit(&mut gateway, t0);
        assert_eq!(frames, [(attempt, 0)]);
        gateway.handle_input(t0, &error_response(Status::ProcessingError, attempt));
        assert_eq!(gateway.poll_event(), Some(Event::Close));
        gateway.handle_closed(t0);
        if attempt < 2 {
            assert_eq!(outcomes(&mut gateway), []);
            assert_eq!(gateway.poll_event(), Some(Event::Connect));
            gateway.handle_connected(t0);
        }
    }
    assert_eq!(outcomes(&mut gateway), [(0, Some("unavailable"))]);
    assert!(gateway.is_idle());
}

#[test]
fn silent_close_resends_the_unconfirmed_tail_by_default() {
    let t0 = Instant::now();
    let mut gateway = connected(grace_only(), 2, t0);
    transmit(&mut gateway, t0);
    gateway.handle_queue_more(2);
    let t1 = t0 + GRACE;
    assert_eq!(transmit(&mut gateway, t1), [(2, 2), (3, 3)]);
    // Closed after 0 and 1 aged past the grace period, before 2 and 3 did.
    gateway.handle_closed(t1 + Duration::from_millis(10));
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None)]);
    assert_eq!(gateway.unresolved(), 2);
    // The silent close counts as a failure: reconnect after a backoff.
    assert_eq!(gateway.poll_event(), None);
    let retry_at = gateway.poll_timeout().unwrap();
    assert!(retry_at > t1);
    gateway.handle_timeout(retry_at);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(retry_at);
    assert_eq!(transmit(&mut gateway, retry_at), [(4, 2)], "a halved burst");
    gateway.handle_timeout(retry_at + GRACE);
    assert_eq!(transmit(&mut gateway, retry_at + GRACE), [(5, 3)]);
}

#[test]
fn a_silent_close_halves_the_unconfirmed_burst_and_confirmations_regrow_it() {
    let t0 = Instant::now();
    let mut gateway = connected(grace_only(), 8, t0);
    assert_eq!(transmit(&mut gateway, t0).len(), 8);
    gateway.handle_closed(t0);
    let retry_at = gateway.poll_timeout().unwrap();
    gateway.handle_timeout(retry_at);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(retry_at);
    assert_eq!(transmit(&mut gateway, retry_at).len(), 4, "half of 8");
    assert_eq!(transmit(&mut gateway, retry_at).len(), 0);
    gateway.handle_timeout(retry_at + GRACE);
    assert_eq!(outcomes(&mut gateway).len(), 4);
    assert_eq!(
        transmit(&mut gateway, retry_at + GRACE).len(),
        4,
        "regrown by 4"
    );
}

#[test]
fn silent_close_reports_the_tail_under_the_report_policy() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        silent_close: SilentClose::Report,
        ..config()
    };
    let mut gateway = connected(config, 2, t0);
    transmit(&mut gateway, t0);
    gateway.handle_closed(t0);
    assert_eq!(
        outcomes(&mut gateway),
        [(0, Some("unconfirmed")), (1, Some("unconfirmed"))]
    );
    assert!(gateway.is_idle());
}

#[test]
fn repeated_silent_closes_end_in_unconfirmed_not_a_loop() {
    let t0 = Instant::now();
    let mut gateway = connected(grace_only(), 1, t0);
    let mut now = t0;
    for _ in 0..3 {
        assert_eq!(transmit(&mut gateway, now).len(), 1);
        gateway.handle_closed(now);
        if let Some(retry_at) = gateway.poll_timeout() {
            now = retry_at;
            gateway.handle_timeout(now);
            assert_eq!(gateway.poll_event(), Some(Event::Connect));
            gateway.handle_connected(now);
        }
    }
    assert_eq!(outcomes(&mut gateway), [(0, Some("unconfirmed"))]);
}

#[test]
fn a_full_window_pauses_writing_until_the_oldest_is_confirmed() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        window: 2,
        ..grace_only()
    };
    let mut gateway = connected(config, 3, t0);
    assert_eq!(transmit(&mut gateway, t0), [(0, 0), (1, 1)]);
    assert_eq!(transmit(&mut gateway, t0), []);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(transmit(&mut gateway, t0 + GRACE), [(2, 2)]);
}

/// A gateway with a window of 3 whose first transmit filled it and ended with a checkpoint.
fn checkpointed(n: u32, t0: Instant) -> Gateway<u32> {
    let config = GatewayConfig {
        window: 3,
        ..config()
    };
    let mut gateway = connected(config, n, t0);
    assert_eq!(
        transmit(&mut gateway, t0),
        [(0, 0), (1, 1), (2, 2), (3, CHECKPOINT)]
    );
    assert_eq!(transmit(&mut gateway, t0), [], "nothing after a checkpoint");
    gateway
}

#[test]
fn a_full_window_ends_with_a_checkpoint_whose_answer_delivers_it_at_once() {
    let t0 = Instant::now();
    let mut gateway = checkpointed(5, t0);
    gateway.handle_input(t0, &error_response(Status::MissingDeviceToken, 3));
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None), (2, None)]);
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    gateway.handle_closed(t0);
    assert_eq!(
        gateway.poll_event(),
        Some(Event::Connect),
        "at once, no backoff"
    );
    gateway.handle_connected(t0);
    assert_eq!(transmit(&mut gateway, t0), [(4, 3), (5, 4)]);
    let stats = gateway.stats();
    assert_eq!((stats.checkpoints, stats.error_responses), (1, 0));
    assert_eq!((stats.delivered, stats.requeued), (3, 0));
}

#[test]
fn a_confirmed_window_is_reported_in_slices_while_the_next_is_written() {
    let t0 = Instant::now();
    let total = RELEASE_SLICE as u32 * 2 + 10;
    let config = GatewayConfig {
        window: total as usize,
        max_pending: total as usize + 1,
        max_transmit: usize::MAX,
        ..config()
    };
    let mut gateway = connected(config, total, t0);
    assert_eq!(transmit(&mut gateway, t0).len(), total as usize + 1);
    gateway.handle_input(t0, &error_response(Status::MissingDeviceToken, total));
    assert_eq!(outcomes(&mut gateway).len(), RELEASE_SLICE);
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    gateway.handle_closed(t0);
    gateway.queue(notification(total), total).unwrap();
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0);
    assert_eq!(transmit(&mut gateway, t0), [(total + 1, total)]);
    assert_eq!(gateway.poll_timeout(), Some(t0), "the next slice is due");
    gateway.handle_timeout(t0);
    let second = outcomes(&mut gateway);
    assert_eq!(second.len(), RELEASE_SLICE);
    assert_eq!(second[0], (RELEASE_SLICE as u32, None), "oldest first");
    gateway.handle_timeout(t0);
    assert_eq!(outcomes(&mut gateway).len(), 10);
    assert_eq!(
        gateway.poll_timeout(),
        Some(t0 + GRACE),
        "only the new window's grace"
    );
    assert_eq!(gateway.unresolved(), 1);
    assert_eq!(gateway.stats().delivered, u64::from(total));
}

#[test]
fn a_bad_token_before_the_checkpoint_is_settled_as_usual() {
    let t0 = Instant::now();
    let mut gateway = checkpointed(4, t0);
    gateway.handle_input(t0, &error_response(Status::InvalidToken, 1));
    assert_eq!(
        outcomes(&mut gateway),
        [(0, None), (1, Some("invalid_device"))]
    );
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    gateway.handle_closed(t0);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0);
    // The discarded 2 first, then 3; the old checkpoint's identifier is never reused.
    assert_eq!(transmit(&mut gateway, t0), [(4, 2), (5, 3)]);
    assert_eq!(gateway.stats().checkpoints, 0);
}

#[test]
fn an_unanswered_checkpoint_falls_back_to_the_grace_period() {
    let t0 = Instant::now();
    let mut gateway = checkpointed(4, t0);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None), (2, None)]);
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    gateway.handle_closed(t0 + GRACE);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0 + GRACE);
    assert_eq!(transmit(&mut gateway, t0 + GRACE), [(4, 3)]);
}

#[test]
fn a_silent_close_after_a_checkpoint_resends_its_window() {
    let t0 = Instant::now();
    let mut gateway = checkpointed(3, t0);
    gateway.handle_closed(t0);
    assert_eq!(outcomes(&mut gateway), []);
    gateway.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0 + Duration::from_secs(1));
    // Halved to 1 after the silent close: one notification, then a checkpoint.
    assert_eq!(
        transmit(&mut gateway, t0 + Duration::from_secs(1)),
        [(4, 0), (5, CHECKPOINT)]
    );
}

#[test]
fn the_simple_format_has_no_checkpoints() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        window: 2,
        ..GatewayConfig::new(Format::Simple)
    };
    let mut gateway = connected(config, 3, t0);
    let mut out = Vec::new();
    gateway.poll_transmit(&mut out);
    let mut expected = Vec::new();
    for i in 0..2 {
        notification(i)
            .frame(Format::Simple, i)
            .encode(&mut expected)
            .unwrap();
    }
    assert_eq!(out, expected, "two frames and no checkpoint");
}

#[test]
fn the_grace_period_counts_from_the_write_report() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 2, t0);
    assert_eq!(transmit_unwritten(&mut gateway), [(0, 0), (1, 1)]);
    assert_eq!(
        gateway.poll_timeout(),
        None,
        "no grace deadline before the write"
    );
    gateway.handle_timeout(t0 + 10 * GRACE);
    assert_eq!(
        outcomes(&mut gateway),
        [],
        "unwritten frames are never presumed"
    );
    assert_eq!(gateway.stats().frames_written, 0);
    let written_at = t0 + 10 * GRACE;
    gateway.handle_written(written_at);
    assert_eq!(gateway.stats().frames_written, 2);
    assert_eq!(gateway.poll_timeout(), Some(written_at + GRACE));
    gateway.handle_timeout(written_at + GRACE - Duration::from_millis(1));
    assert_eq!(outcomes(&mut gateway), []);
    gateway.handle_timeout(written_at + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None)]);
}

#[test]
fn transmitting_pauses_while_writes_are_outstanding() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        max_transmit: 1,
        max_unwritten_transmits: 2,
        ..config()
    };
    let mut gateway = connected(config, 4, t0);
    assert_eq!(transmit_unwritten(&mut gateway), [(0, 0)]);
    assert_eq!(transmit_unwritten(&mut gateway), [(1, 1)]);
    assert_eq!(
        transmit_unwritten(&mut gateway),
        [],
        "two writes outstanding"
    );
    let t1 = t0 + Duration::from_millis(300);
    gateway.handle_written(t1);
    assert_eq!(transmit_unwritten(&mut gateway), [(2, 2)]);
    assert_eq!(transmit_unwritten(&mut gateway), []);
    // Only the written frame ages: 1 and 2 wait for their writes.
    gateway.handle_timeout(t1 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None)]);
    let t2 = t1 + GRACE;
    gateway.handle_written(t2);
    gateway.handle_written(t2);
    assert_eq!(gateway.poll_timeout(), Some(t2 + GRACE));
    assert_eq!(transmit(&mut gateway, t2), [(3, 3)]);
    gateway.handle_timeout(t2 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(1, None), (2, None), (3, None)]);
    let stats = gateway.stats();
    assert_eq!((stats.frames_written, stats.delivered), (4, 4));
}

#[test]
fn unwritten_frames_of_a_closed_connection_count_an_attempt() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        max_attempts: 2,
        ..grace_only()
    };
    let mut gateway = connected(config, 1, t0);
    let mut now = t0;
    for attempt in 0..2 {
        // Partly written, perhaps read by the gateway: of unknown fate.
        assert_eq!(transmit_unwritten(&mut gateway), [(attempt, 0)]);
        gateway.handle_closed(now);
        gateway.handle_written(now); // a late report is ignored
        assert_eq!(gateway.stats().frames_written, 0);
        if let Some(retry_at) = gateway.poll_timeout() {
            now = retry_at;
            gateway.handle_timeout(now);
            assert_eq!(gateway.poll_event(), Some(Event::Connect));
            gateway.handle_connected(now);
        }
    }
    assert_eq!(outcomes(&mut gateway), [(0, Some("unconfirmed"))]);
    assert!(gateway.is_idle());
}

#[test]
fn a_verdict_naming_an_unwritten_frame_settles_the_window() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 3, t0);
    assert_eq!(transmit_unwritten(&mut gateway).len(), 3);
    // The gateway read the bytes before the transport reported the write.
    gateway.handle_input(t0, &error_response(Status::InvalidToken, 1));
    assert_eq!(
        outcomes(&mut gateway),
        [(0, None), (1, Some("invalid_device"))]
    );
    gateway.handle_written(t0); // nothing outstanding any more: ignored
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    gateway.handle_closed(t0);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connected(t0);
    assert_eq!(transmit(&mut gateway, t0), [(3, 2)]);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(2, None)]);
}

#[test]
fn a_late_verdict_for_a_presumed_notification_is_reported_as_overflow() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 2, t0);
    transmit(&mut gateway, t0);
    gateway.handle_timeout(t0 + GRACE);
    assert_eq!(outcomes(&mut gateway), [(0, None), (1, None)], "presumed");
    gateway.handle_queue_more(2);
    transmit(&mut gateway, t0 + GRACE);
    gateway.handle_input(t0, &error_response(Status::InvalidToken, 1));
    assert_eq!(
        gateway.poll_event(),
        Some(Event::Close),
        "the connection is dead"
    );
    assert_eq!(
        gateway.poll_event(),
        Some(Event::WindowOverflow {
            status: Status::InvalidToken,
            identifier: 1
        })
    );
    assert_eq!(gateway.unresolved(), 2, "2 and 3 are resent");
}

#[test]
fn an_identifier_never_sent_is_a_protocol_violation() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 2, t0);
    transmit(&mut gateway, t0);
    gateway.handle_input(t0, &error_response(Status::InvalidToken, 77));
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    assert!(matches!(
        gateway.poll_event(),
        Some(Event::ProtocolViolation(_))
    ));
    assert_eq!(gateway.unresolved(), 2, "treated as a silent close: resent");
    gateway.handle_input(t0, &[1, 2, 3]);
    let mut other = connected(config(), 1, t0);
    transmit(&mut other, t0);
    other.handle_input(t0, &[2, 0, 0, 0, 0, 0]);
    assert!(matches!(other.poll_event(), Some(Event::Close)));
}

#[test]
fn identifiers_wrap_around_safely() {
    let t0 = Instant::now();
    let config = GatewayConfig {
        first_identifier: u32::MAX - 1,
        ..config()
    };
    let mut gateway = connected(config, 4, t0);
    assert_eq!(
        transmit(&mut gateway, t0),
        [(u32::MAX - 1, 0), (u32::MAX, 1), (0, 2), (1, 3)]
    );
    gateway.handle_input(t0, &error_response(Status::InvalidToken, 0));
    assert_eq!(
        outcomes(&mut gateway),
        [(0, None), (1, None), (2, Some("invalid_device"))]
    );
    assert_eq!(gateway.unresolved(), 1);
}

#[test]
fn oversized_and_empty_payloads_fail_before_queueing() {
    let mut gateway: Gateway<u32> = Gateway::new(GatewayConfig::new(Format::Enhanced));
    let mut big = notification(0);
    big.payload = Bytes::from(vec![b'x'; 257]);
    gateway.queue(big, 0).unwrap();
    let mut empty = notification(1);
    empty.payload = Bytes::new();
    gateway.queue(empty, 1).unwrap();
    assert_eq!(
        outcomes(&mut gateway),
        [(0, Some("payload_too_large")), (1, Some("invalid_payload"))]
    );
    assert_eq!(gateway.poll_event(), None, "nothing to connect for");
}

#[test]
fn a_full_queue_hands_the_notification_back() {
    let config = GatewayConfig {
        max_pending: 2,
        ..config()
    };
    let mut gateway: Gateway<u32> = Gateway::new(config);
    gateway.queue(notification(0), 0).unwrap();
    gateway.queue(notification(1), 1).unwrap();
    assert!(!gateway.has_capacity());
    let Err(Full((back, tag))) = gateway.queue(notification(2), 2) else {
        panic!("expected Full");
    };
    assert_eq!((back, tag), (notification(2), 2));
}

#[test]
fn connection_failures_back_off_then_give_up_with_a_feedback_each() {
    let t0 = Instant::now();
    let mut gateway: Gateway<u32> = Gateway::new(config());
    gateway.queue(notification(0), 0).unwrap();
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..4 {
        assert_eq!(gateway.poll_event(), Some(Event::Connect));
        gateway.handle_connect_failed(now, "connection refused");
        let retry_at = gateway.poll_timeout().unwrap();
        delays.push(retry_at - now);
        gateway.handle_timeout(retry_at - Duration::from_millis(1));
        assert_eq!(gateway.poll_event(), None, "not before the backoff");
        now = retry_at;
        gateway.handle_timeout(now);
    }
    assert!(delays.windows(2).all(|pair| pair[1] >= pair[0] / 2 * 2 / 2));
    assert!(delays[3] > delays[0]);
    assert_eq!(gateway.poll_event(), Some(Event::Connect));
    gateway.handle_connect_failed(now, "connection refused");
    assert_eq!(outcomes(&mut gateway), [(0, Some("unavailable"))]);
    assert!(matches!(gateway.poll_event(), Some(Event::GaveUp { .. })));
}

#[test]
fn a_fatal_error_fails_everything_unresolved_at_once() {
    let t0 = Instant::now();
    let mut gateway = connected(config(), 3, t0);
    gateway.config.max_transmit = 1;
    assert_eq!(transmit(&mut gateway, t0).len(), 1);
    gateway.handle_fatal_error(t0, "certificate required");
    assert_eq!(
        outcomes(&mut gateway),
        [
            (0, Some("unavailable")),
            (1, Some("unavailable")),
            (2, Some("unavailable"))
        ]
    );
    assert_eq!(gateway.poll_event(), Some(Event::Close));
    assert!(matches!(gateway.poll_event(), Some(Event::GaveUp { .. })));
    assert!(gateway.is_idle());
}

impl Gateway<u32> {
    /// Queues more notifications numbered after those already queued.
    fn handle_queue_more(&mut self, n: u32) {
        let first = self.stats.queued as u32;
        for i in first..first + n {
            self.queue(notification(i), i).unwrap();
        }
    }
}

/// A gateway server as Apple ran it: accepts frames until a bad token, answers status 8 naming
/// it and discards the rest; optionally drops the connection silently after some frames.
struct SimServer {
    bad: BTreeSet<u32>,
    accepted: BTreeMap<u32, usize>,
    /// Frames this connection accepts before dropping silently, if any.
    drop_after: Option<usize>,
    accepted_on_connection: usize,
}

enum Verdict {
    Open,
    Rejected([u8; 6]),
    Dropped,
}

impl SimServer {
    /// Handles one write. Abrupt drops lose the frames after the quota; idle drops happen
    /// after the write, once the connection has been quiet.
    fn receive(&mut self, bytes: &[u8], idle_drops: bool) -> Verdict {
        let mut rest = bytes;
        loop {
            let (frame, used) = match Frame::decode(rest) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    let (status, identifier) = error.status().unwrap();
                    return Verdict::Rejected(error_response(status, identifier));
                }
            };
            rest = &rest[used..];
            if !idle_drops && self.drop_after == Some(self.accepted_on_connection) {
                return Verdict::Dropped;
            }
            let n = token_number(&frame.token);
            if self.bad.contains(&n) {
                let identifier = frame.identifier.unwrap();
                return Verdict::Rejected(error_response(Status::InvalidToken, identifier));
            }
            *self.accepted.entry(n).or_default() += 1;
            self.accepted_on_connection += 1;
        }
        match self.drop_after {
            Some(quota) if idle_drops && self.accepted_on_connection >= quota => Verdict::Dropped,
            _ => Verdict::Open,
        }
    }
}

/// Runs `total` notifications through a gateway against the simulated server; returns the
/// outcomes by token number and the server. The transport writes a transmit (and the server
/// reads it) at once when `write_lag` is 0, else only every `write_lag + 1` rounds or when
/// nothing new is transmitted: transmits wait, unwritten, while time passes.
fn simulate(
    total: u32,
    bad: BTreeSet<u32>,
    drops: Vec<usize>,
    idle_drops: bool,
    write_lag: usize,
    config: GatewayConfig,
) -> (BTreeMap<u32, Vec<Option<&'static str>>>, SimServer, usize) {
    let mut gateway: Gateway<u32> = Gateway::new(config);
    let mut server = SimServer {
        bad,
        accepted: BTreeMap::new(),
        drop_after: None,
        accepted_on_connection: 0,
    };
    let mut drops = drops.into_iter();
    let mut results: BTreeMap<u32, Vec<Option<&'static str>>> = BTreeMap::new();
    let mut now = Instant::now();
    let mut next = 0;
    let mut unwritten: VecDeque<Vec<u8>> = VecDeque::new();
    let mut overflows = 0;
    for round in 0..100_000 {
        while next < total && gateway.queue(notification(next), next).is_ok() {
            next += 1;
        }
        while let Some(event) = gateway.poll_event() {
            match event {
                Event::Connect => {
                    gateway.handle_connected(now);
                    server.accepted_on_connection = 0;
                    server.drop_after = drops.next();
                }
                Event::Close => {
                    unwritten.clear();
                    gateway.handle_closed(now);
                }
                Event::WindowOverflow { .. } => overflows += 1,
                other => panic!("unexpected event {other:?}"),
            }
        }
        let mut out = Vec::new();
        let produced = gateway.poll_transmit(&mut out) > 0;
        if produced {
            unwritten.push_back(out);
        }
        let write = !produced || round % (write_lag + 1) == 0;
        if write && let Some(bytes) = unwritten.pop_front() {
            gateway.handle_written(now);
            match server.receive(&bytes, idle_drops) {
                Verdict::Open => {}
                Verdict::Rejected(response) => gateway.handle_input(now, &response),
                Verdict::Dropped => {
                    if idle_drops {
                        // The drop happens once the connection was quiet for the grace period.
                        now += GRACE;
                        gateway.handle_timeout(now);
                    }
                    unwritten.clear();
                    gateway.handle_closed(now);
                }
            }
        } else if produced {
            // Waiting for the write.
        } else if let Some(deadline) = gateway.poll_timeout() {
            now = now.max(deadline);
            gateway.handle_timeout(now);
        } else if next == total && gateway.is_idle() {
            break;
        }
        while let Some(outcome) = gateway.poll_outcome() {
            let code = outcome.error.as_ref().map(DeviceError::code);
            results.entry(outcome.tag).or_default().push(code);
        }
    }
    assert!(gateway.is_idle(), "the simulation must finish");
    (results, server, overflows)
}

fn small_config(window: usize, seed: u64) -> GatewayConfig {
    GatewayConfig {
        window,
        max_pending: 16,
        max_transmit: 400,
        max_attempts: 50,
        max_connect_attempts: 1000,
        seed,
        ..config()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Bad tokens at random positions and connections dropped when idle, with a window large
    /// or small (ending in checkpoints): every good token is accepted exactly once and
    /// delivered; every bad one gets exactly one invalid_device.
    #[test]
    fn exactly_once_with_bad_tokens_and_idle_drops(
        total in 1u32..300,
        bad in proptest::collection::btree_set(0u32..300, 0..30),
        drops in proptest::collection::vec(0usize..40, 0..10),
        write_lag in 0usize..4,
        window in prop_oneof![Just(10_000usize), 4usize..64],
        seed in any::<u64>(),
    ) {
        let config = small_config(window, seed);
        let (results, server, overflows) =
            simulate(total, bad.clone(), drops, true, write_lag, config);
        prop_assert_eq!(overflows, 0);
        for n in 0..total {
            let outcome = results.get(&n).cloned().unwrap_or_default();
            if bad.contains(&n) {
                prop_assert_eq!(outcome, vec![Some("invalid_device")], "bad token {}", n);
                prop_assert_eq!(server.accepted.get(&n), None);
            } else {
                prop_assert_eq!(outcome, vec![None], "good token {}", n);
                prop_assert_eq!(server.accepted.get(&n), Some(&1), "good token {}", n);
            }
        }
    }

    /// Abrupt drops, a small window, either policy: every notification has exactly one
    /// outcome, and nothing is reported delivered that the server never accepted.
    #[test]
    fn every_notification_gets_exactly_one_outcome_under_abrupt_drops(
        total in 1u32..300,
        bad in proptest::collection::btree_set(0u32..300, 0..20),
        drops in proptest::collection::vec(0usize..40, 0..10),
        window in 4usize..64,
        report in any::<bool>(),
        write_lag in 0usize..4,
        seed in any::<u64>(),
    ) {
        let mut config = small_config(window, seed);
        if report {
            config.silent_close = SilentClose::Report;
        }
        let (results, server, overflows) =
            simulate(total, bad.clone(), drops, false, write_lag, config);
        prop_assert_eq!(overflows, 0, "the simulated server answers at once");
        for n in 0..total {
            let outcome = results.get(&n).cloned().unwrap_or_default();
            prop_assert_eq!(outcome.len(), 1, "token {} outcomes {:?}", n, outcome);
            let accepted = server.accepted.get(&n).copied().unwrap_or(0);
            match outcome[0] {
                None => prop_assert!(accepted >= 1, "delivered {} never accepted", n),
                Some("invalid_device") => prop_assert!(bad.contains(&n)),
                Some("unconfirmed") => {}
                Some(other) => prop_assert!(false, "unexpected {} for {}", other, n),
            }
        }
    }
}
